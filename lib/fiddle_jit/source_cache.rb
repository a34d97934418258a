# frozen_string_literal: true

module FiddleJit
  # Loads fiddle_jit's own Ruby files (lib/fiddle_jit.rb's list) from their
  # compiled form when it can. Compiling that source is most of what
  # `require "fiddle_jit"` costs (about 65 of 74 M instructions on Ruby
  # 3.1); loading the same code's binary instruction sequences costs about a
  # sixth of that. As Python's __pycache__: the binaries are written beside
  # the native extension (only when that directory is writable) and a file's
  # binary is used only while the file's source is byte for byte the one it
  # was compiled from, on this very Ruby (revision, platform, compile
  # options); otherwise the file is compiled from source, as `require` would.
  # Not used while Coverage runs (it measures only what `require` compiles)
  # or with FIDDLE_JIT_ISEQ_CACHE=0.
  class SourceCache
    # The cache for the native extension loaded from +so_path+ (nil: none).
    def self.for_extension(so_path)
      return nil if so_path.nil? || ENV["FIDDLE_JIT_ISEQ_CACHE"] == "0" || !defined?(RubyVM::InstructionSequence)
      return nil if defined?(::Coverage) && ::Coverage.respond_to?(:running?) && ::Coverage.running?

      new(File.join(File.dirname(so_path), "lib.iseq"))
    end

    def initialize(path)
      @path = path
      @key = [RUBY_REVISION, RUBY_PLATFORM, RubyVM::InstructionSequence.compile_option.sort].inspect
      @entries = read_entries
      # Binaries are made for missing entries only where they can be saved.
      @writable = File.writable?(File.dirname(path))
      @changed = false
    end

    # Loads +file+ (an absolute path) unless it is a loaded feature already;
    # then it is one.
    def require(file)
      return false if $LOADED_FEATURES.include?(file)

      compiled(file).eval
      # (Not `$LOADED_FEATURES <<`: see FiddleJit.__provide_feature.)
      FiddleJit.__provide_feature(file) unless $LOADED_FEATURES.frozen?
      true
    end

    # Writes the entries if any was made (atomically: a rename, so a
    # concurrent process reads the old file or the new one).
    def save
      return release unless @changed

      tmp = "#{@path}.#{Process.pid}.tmp"
      File.binwrite(tmp, Marshal.dump([@key, @entries]))
      File.rename(tmp, @path)
    rescue SystemCallError, IOError
      File.delete(tmp) if tmp && File.exist?(tmp)
    end

    # +file+'s instruction sequence: the cached binary while the source is
    # the one it was compiled from, else compiled now (and kept for #save
    # where the cache can be written).
    def compiled(file)
      # (UTF-8, the source encoding `require` assumes.)
      source = File.read(file, encoding: Encoding::UTF_8)
      cached_source, binary = @entries[file]
      if cached_source == source
        begin
          return RubyVM::InstructionSequence.load_from_binary(binary)
        rescue StandardError
          nil # a binary this Ruby cannot read: compiled again below
        ensure
          source.clear # (see #release)
        end
      end
      iseq = RubyVM::InstructionSequence.compile(source, file, file, 1)
      if @writable
        @entries[file] = [source, iseq.to_binary]
        @changed = true
      end
      iseq
    end

    private

    # Frees the cached sources and binaries now rather than at some later
    # GC: Ruby counts the bytes a process has malloc'ed since its last major
    # GC, and the few hundred kilobytes read here would otherwise hasten the
    # next one (ethon's `require` ran one more than under the ffi gem).
    def release
      @entries.each_value { |strings| strings.each(&:clear) }
      @entries = {}
      nil
    end

    # { path => [source, binary] } of the cache file when it was written
    # for this Ruby, else empty.
    def read_entries
      data = File.binread(@path)
      key, entries = Marshal.load(data) # rubocop:disable Security/MarshalLoad -- our own file
      key == @key && entries.is_a?(Hash) ? entries : {}
    rescue StandardError
      {}
    ensure
      data&.clear
    end
  end
end
