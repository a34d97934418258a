# frozen_string_literal: true

require_relative "fiddle_jit/version"
# The native extension, one build per Ruby minor version:
# fiddle_jit/<major.minor>/fiddle_jit.so under lib/ in a checkout or a
# platform gem, under the gem's extension directory for a source gem.
module FiddleJit
  RUBY_MINOR = RUBY_VERSION[/\A\d+\.\d+/]
end
begin
  require "fiddle_jit/#{FiddleJit::RUBY_MINOR}/fiddle_jit"
rescue LoadError => e
  raise unless e.path.nil? || e.path.end_with?("fiddle_jit/#{FiddleJit::RUBY_MINOR}/fiddle_jit")

  built = $LOAD_PATH.flat_map { |dir| Dir[File.join(dir, "fiddle_jit", "*", "fiddle_jit.{so,bundle}")] }
                    .map { |f| File.basename(File.dirname(f)) }.uniq.sort
  raise LoadError, "fiddle_jit has no native extension for Ruby #{FiddleJit::RUBY_MINOR} (#{RUBY_PLATFORM}); " \
                   "this installation has #{built.empty? ? "none" : "Ruby #{built.join(", ")}"}. " \
                   "Install the source gem (`gem install fiddle_jit --platform ruby`) to build one"
end
# The Ruby half, in load order: each file from the binary of its compiled
# instructions where one was made from its current source on this Ruby
# (compiling this source was most of the cost of loading fiddle_jit), else
# compiled as `require` would and its binary kept beside the extension
# (src/ruby/own_files.rs, lib/fiddle_jit/source_cache.rb). Not while
# Coverage runs (it measures only what `require` compiles) or with
# FIDDLE_JIT_ISEQ_CACHE=0.
module FiddleJit
  so = $LOADED_FEATURES.reverse_each.find { |f| f.end_with?("/fiddle_jit/#{RUBY_MINOR}/fiddle_jit.so", "/fiddle_jit/#{RUBY_MINOR}/fiddle_jit.bundle") }
  binaries = File.join(File.dirname(so), "iseq") unless so.nil? || ENV["FIDDLE_JIT_ISEQ_CACHE"] == "0" ||
                                                           (defined?(::Coverage.running?) && ::Coverage.running?)
  __own_files(File.join(__dir__, "fiddle_jit"), binaries,
              [RUBY_REVISION, RUBY_PLATFORM, RubyVM::InstructionSequence.compile_option.sort].inspect)
  %w[errors types pointer auto_pointer type struct_layout struct_layout_builder struct enum platform_types data_converter function_type dynamic_library library_path library_loader
     library function variadic platform errno].each { |name| __require_own(name) }
end
