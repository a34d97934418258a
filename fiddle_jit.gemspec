# frozen_string_literal: true

require_relative "lib/fiddle_jit/version"

Gem::Specification.new do |spec|
  spec.name = "fiddle_jit"
  spec.version = FiddleJit::VERSION
  spec.summary = "ffi-compatible foreign function interface with JIT-emitted per-function stubs"
  spec.description = <<~DESC
    fiddle_jit binds C functions like the ffi gem (extend FiddleJit::Library,
    attach_function), but emits a small x86-64 machine-code stub per function
    that unboxes Ruby arguments inline, calls the C symbol and reboxes the
    result, installed directly as the Ruby method.
  DESC
  spec.authors = ["fiddle_jit developers"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.1"
  spec.files = Dir[
    "Cargo.toml", "Cargo.lock", "build.rs", "src/**/*.rs", "ext/**/extconf.rb",
    "lib/**/*.rb", "README.md", "docs/**/*.md"
  ]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/fiddle_jit/extconf.rb"]
end
