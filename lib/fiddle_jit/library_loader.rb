# frozen_string_literal: true

module FiddleJit
  # Finds and opens shared libraries the way the ffi gem's ffi_lib does
  # (name as given, then "lib<name>.so", following GNU ld scripts such as
  # /usr/lib/x86_64-linux-gnu/libm.so), plus, only when that fails, a search
  # of the usual library directories for versioned files ("libm.so.6") for
  # systems without the unversioned development symlink.
  module LibraryLoader
    LIBC = if RUBY_PLATFORM.include?("darwin") then "libc.dylib"
           elsif RUBY_PLATFORM.include?("musl") then "libc.so"
           else "libc.so.6"
           end
    LIBSUFFIX = RUBY_PLATFORM.include?("darwin") ? "dylib" : "so"
    CURRENT_PROCESS = Object.new.tap { |o| def o.inspect = "FiddleJit::CURRENT_PROCESS" }.freeze

    module_function

    def search_dirs
      multiarch = RbConfig::CONFIG["arch"].sub(/-linux.*/, "-linux-gnu")
      env = ENV.fetch("LD_LIBRARY_PATH", "").split(":").reject(&:empty?)
      env + ["/lib/#{multiarch}", "/usr/lib/#{multiarch}", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
             "/usr/local/lib", "/opt/local/lib", "/opt/homebrew/lib"]
    end

    # "m" => "libm.so"; "c" => LIBC; paths and names with a suffix unchanged.
    def map_library_name(name)
      name = name.to_s
      return LIBC if name == "c"
      return name unless File.basename(name) == name

      name = "lib#{name}" unless name.start_with?("lib")
      name += ".#{LIBSUFFIX}" unless name.match?(/\.#{LIBSUFFIX}($|\.\d+)/)
      name
    end

    # What the ffi gem (1.17) appends to every "Could not open library"
    # message on Linux, where it searches no directories of its own.
    SEARCH_PATH_MESSAGE = "Searched in <system library path>"

    # Opens the first loadable of +names+ (a name or an Array of fallback
    # names) the way the ffi gem 1.17 does: each name as given, then mapped
    # ("m" => "libm.so"), following GNU ld scripts. Only when none loads,
    # versioned files ("libm.so.6") in the usual library directories, for
    # systems without the development symlink (beyond the ffi gem; scanned
    # once per name per process). LoadError otherwise, worded as the ffi gem
    # words it: every "Could not open library 'x': <dlerror>", joined by
    # ".\n", then SEARCH_PATH_MESSAGE.
    def open(names, flags)
      return DynamicLibrary.open(nil, flags) if names.equal?(CURRENT_PROCESS)

      errors = []
      # Not Array(): nil is a name as in the ffi gem ("", the process itself).
      libnames = (names.is_a?(::Array) ? names : [names]).flat_map { |name| [name.to_s, map_library_name(name)].uniq }
      libnames.each do |libname|
        lib = try_open(libname, flags, errors)
        return lib if lib
      end
      libnames.each do |libname|
        versioned_files(libname).each do |path|
          lib = try_open(path, flags, errors)
          return lib if lib
        end
      end
      raise LoadError, [*errors, SEARCH_PATH_MESSAGE].join(".\n")
    end

    VERSIONED = {} # rubocop:disable Style/MutableConstant -- a per-process cache
    private_constant :VERSIONED

    # "libfoo.so" => the existing "libfoo.so.N[.M]" files of the library
    # directories, highest version first (per directory, directories in
    # search_dirs order).
    def versioned_files(libname)
      return [] if libname.include?("/") || !libname.end_with?(".#{LIBSUFFIX}")

      # One readdir per distinct directory, natively (src/ruby/library.rs).
      VERSIONED[libname] ||= DynamicLibrary.versioned_files(search_dirs, libname).freeze
    end

    def try_open(path, flags, attempts, depth = 0)
      DynamicLibrary.open(path, flags)
    rescue LoadError => e
      script = ld_script_target(path, e.message) if depth < 3
      return try_open(script, flags, attempts, depth + 1) if script

      attempts << e.message
      nil
    end

    # A GNU ld script (libc.so, libm.so) names the real library:
    # "GROUP ( /lib/x86_64-linux-gnu/libm.so.6 ... )".
    def ld_script_target(path, message)
      # The ffi gem's pattern: the file name in dlerror's message stops at
      # blanks, parentheses and the colon.
      match = message.match(/(([^ \t()])+\.so([^ \t:()])*):([ \t])*(invalid ELF header|file too short|invalid file format)/)
      return unless match

      file = match[1]
      file = path unless File.file?(file)
      return unless File.file?(file)

      File.binread(file, 4096)[/(?:GROUP|INPUT)\s*\(\s*([^\s)]+)/, 1]
    end
  end
end
