# frozen_string_literal: true

module FiddleJit
  # The miss path of FiddleJit.__require_own (src/ruby/own_files.rs), which
  # loads fiddle_jit's own Ruby files from the binaries of their compiled
  # instruction sequences: a file with no binary for its current source (or
  # one this Ruby cannot read) is compiled here, as `require` would, and
  # its binary written for the next process where the directory is
  # writable (natively, FiddleJit.__store_own). Loaded only on a miss.
  module SourceCache
    # Compiles and evaluates +path+ and makes it a loaded feature; has its
    # binary written to +binary_path+ under +key+.
    def self.load(path, binary_path, key)
      # (UTF-8, the source encoding `require` assumes.)
      source = File.read(path, encoding: Encoding::UTF_8)
      iseq = RubyVM::InstructionSequence.compile(source, path, path, 1)
      FiddleJit.__store_own(binary_path, key, path, source, iseq.to_binary)
      iseq.eval
      # (Not `$LOADED_FEATURES <<`: see FiddleJit.__provide_feature.)
      FiddleJit.__provide_feature(path) unless $LOADED_FEATURES.frozen?
      true
    end
  end
end
