# frozen_string_literal: true

module FiddleJit
  # Finds and opens shared libraries the way the ffi gem's ffi_lib does
  # (name as given, then "lib<name>.so", following GNU ld scripts such as
  # /usr/lib/x86_64-linux-gnu/libm.so), plus a search of the usual library
  # directories for versioned files ("libm.so.6") when no unversioned
  # development symlink is installed.
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

    # Opens the first loadable of +names+ (a name or an Array of fallback
    # names); LoadError naming every attempt otherwise, worded as the ffi
    # gem words it ("Could not open library 'x': <dlerror>", joined by ".\n").
    def open(names, flags)
      attempts = []
      Array(names).each do |name|
        return DynamicLibrary.open(nil, flags) if name.equal?(CURRENT_PROCESS)

        candidates(name.to_s).each do |candidate|
          lib = try_open(candidate, flags, attempts)
          return lib if lib
        end
      end
      raise LoadError, attempts.join(".\n")
    end

    def candidates(name)
      mapped = map_library_name(name)
      list = [name, mapped]
      unless mapped.include?("/")
        search_dirs.each do |dir|
          list << File.join(dir, mapped)
          # Versioned files when no dev symlink exists: highest version first.
          list.concat(Dir.glob(File.join(dir, "#{mapped}.*")).sort_by { |p| p.scan(/\d+/).map(&:to_i) }.reverse)
        end
      end
      list.uniq.select { |path| !path.include?("/") || File.exist?(path) || path == name }
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
      return unless message.match?(/invalid ELF header|file too short|invalid file format/)

      file = message[%r{(/\S+?\.so\S*?):}, 1] || path
      return unless File.file?(file)

      File.binread(file, 4096)[/(?:GROUP|INPUT)\s*\(\s*([^\s)]+)/, 1]
    end
  end
end
