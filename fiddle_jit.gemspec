# frozen_string_literal: true

require_relative "lib/fiddle_jit/version"

# The source gem: `gem install` builds the Rust crate with cargo through
# ext/fiddle_jit/extconf.rb (needs Rust, libclang and a C linker). The
# platform gems (x86_64-linux, aarch64-linux) are made from this spec by
# `rake native_gem`: same Ruby files, the compiled extension per Ruby minor
# version under lib/fiddle_jit/<major.minor>/, no extensions, no Rust sources.
Gem::Specification.new do |spec|
  spec.name = "fiddle_jit"
  spec.version = FiddleJit::VERSION
  spec.summary = "ffi-compatible foreign function interface with JIT-emitted per-function stubs"
  spec.description = <<~DESC
    fiddle_jit binds C functions like the ffi gem (extend FiddleJit::Library,
    attach_function), but emits a small machine-code stub per function
    (x86-64, aarch64) that unboxes Ruby arguments inline, calls the C symbol
    and reboxes the result, installed directly as the Ruby method.
    `require "fiddle_jit/ffi"` runs code written for the ffi gem unchanged.
  DESC
  spec.authors = ["fiddle_jit developers"]
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.1"
  spec.requirements = ["Building from source (the `ruby` platform gem): Rust >= 1.88 with cargo, " \
                       "libclang, a C compiler/linker (cc) and Ruby's headers. Platform gems need none of these."]
  spec.files = Dir[
    "Cargo.toml", "Cargo.lock", "build.rs", "src/**/*.rs", "ext/**/extconf.rb",
    "lib/**/*.rb", "README.md", "CHANGELOG.md", "LICENSE", "docs/**/*.md"
  ]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/fiddle_jit/extconf.rb"]
end
