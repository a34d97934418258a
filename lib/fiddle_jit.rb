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
require_relative "fiddle_jit/errors"
require_relative "fiddle_jit/types"
require_relative "fiddle_jit/pointer"
require_relative "fiddle_jit/auto_pointer"
require_relative "fiddle_jit/struct"
require_relative "fiddle_jit/enum"
require_relative "fiddle_jit/platform_types"
require_relative "fiddle_jit/data_converter"
require_relative "fiddle_jit/library_loader"
require_relative "fiddle_jit/library"
require_relative "fiddle_jit/function"
require_relative "fiddle_jit/platform"
require_relative "fiddle_jit/errno"
