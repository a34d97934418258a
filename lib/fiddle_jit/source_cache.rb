# frozen_string_literal: true

module FiddleJit
  # The miss path of FiddleJit.__require_own (src/ruby/own_files.rs), which
  # loads fiddle_jit's own Ruby files from the binaries of their compiled
  # instruction sequences: a file with no binary for its current source (or
  # one this Ruby cannot read) is compiled here, as `require` would, and
  # its binary written for the next process where the directory is
  # writable (atomically: a rename, so a concurrent process reads the old
  # file or the new one). Loaded only on a miss.
  module SourceCache
    MAGIC = "FJISEQ1\n".b

    # Compiles and evaluates +path+ and makes it a loaded feature; writes
    # its binary to +binary_path+ under +key+.
    def self.load(path, binary_path, key)
      # (UTF-8, the source encoding `require` assumes.)
      source = File.read(path, encoding: Encoding::UTF_8)
      iseq = RubyVM::InstructionSequence.compile(source, path, path, 1)
      write(binary_path, [key, path, source].map { |f| [f.bytesize].pack("L<") + f.b }.join.prepend(MAGIC) + iseq.to_binary)
      iseq.eval
      # (Not `$LOADED_FEATURES <<`: see FiddleJit.__provide_feature.)
      FiddleJit.__provide_feature(path) unless $LOADED_FEATURES.frozen?
      true
    end

    def self.write(binary_path, data)
      dir = File.dirname(binary_path)
      Dir.mkdir(dir) if !File.directory?(dir) && File.writable?(File.dirname(dir))
      return unless File.writable?(dir)

      tmp = "#{binary_path}.#{Process.pid}.tmp"
      File.binwrite(tmp, data)
      File.rename(tmp, binary_path)
    rescue SystemCallError, IOError
      File.delete(tmp) if tmp && File.exist?(tmp)
    end
  end
end
