# frozen_string_literal: true

require_relative "fiddle_jit/version"
# The native extension: lib/fiddle_jit/fiddle_jit.so in a checkout, the
# gem's extension directory once installed.
require "fiddle_jit/fiddle_jit"
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
