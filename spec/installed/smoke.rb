# frozen_string_literal: true

# The installed platform gem, as a user runs it. Not part of the normal
# suite (the name does not end in _spec.rb): spec/installed/user_install.sh
# runs it with `rspec smoke.rb` in a fresh chroot, from a scratch directory,
# after `gem install --local` into GEM_HOME. It needs nothing from the
# checkout; FIDDLE_JIT_CHECKOUT only names the directory nothing may come from.
#
#   GEM_HOME=... FIDDLE_JIT_PLATFORM=x86_64-linux FIDDLE_JIT_CHECKOUT=/path rspec smoke.rb
require "open3"
require "rbconfig"
require "fiddle_jit"
require "fiddle_jit/ffi"

RSpec.describe "the installed fiddle_jit platform gem" do
  let(:gem_home) { File.realpath(ENV.fetch("GEM_HOME")) }
  let(:checkout) { ENV.fetch("FIDDLE_JIT_CHECKOUT") }
  let(:spec) { Gem.loaded_specs.fetch("fiddle_jit") }

  # Another Ruby process with the same environment; returns [stdout+stderr, success?].
  def ruby(*args)
    out, status = Open3.capture2e(RbConfig.ruby, *args)
    [out, status.success?]
  end

  describe "where it came from" do
    it "is the platform gem, activated from GEM_HOME" do
      expect(spec.platform.to_s).to eq(ENV.fetch("FIDDLE_JIT_PLATFORM"))
      expect(spec.version.to_s).to eq(FiddleJit::VERSION)
      expect(File.realpath(spec.full_gem_path)).to start_with("#{gem_home}/gems/")
      expect(spec.extensions).to be_empty
    end

    it "loaded the compiled extension for this Ruby from the gem, nothing from the checkout" do
      so = $LOADED_FEATURES.grep(%r{/fiddle_jit\.(so|bundle)\z})
      expect(so.size).to eq(1)
      expect(File.realpath(so.first))
        .to eq(File.realpath(File.join(spec.full_gem_path, "lib", "fiddle_jit", FiddleJit::RUBY_MINOR, File.basename(so.first))))
      expect($LOADED_FEATURES.grep(/\A#{Regexp.escape(checkout)}/)).to eq([])
      expect($LOAD_PATH.grep(/\A#{Regexp.escape(checkout)}/)).to eq([])
    end

    it "did not load the ffi gem's extension" do
      expect($LOADED_FEATURES.grep(/ffi_c\.(so|bundle)\z/)).to eq([])
      expect(FFI::FIDDLE_JIT).to be(true)
    end

    it "built nothing at install time (no extension directory)" do
      expect(Dir.exist?(spec.extension_dir)).to be(false)
    end
  end

  describe "FiddleJit::Library" do
    let(:libc) do
      Module.new do
        extend FiddleJit::Library
        ffi_lib "c"
        attach_function :strlen, [:string], :size_t
        attach_function :labs, [:long], :long
        attach_function :getpid, [], :int
        attach_function :snprintf, [:pointer, :size_t, :string, :varargs], :int
      end
    end

    it "calls libc" do
      expect(libc.strlen("hello")).to eq(5)
      expect(libc.labs(-42)).to eq(42)
      expect(libc.getpid).to eq(Process.pid)
      buf = FiddleJit::MemoryPointer.new(:char, 32)
      expect(libc.snprintf(buf, 32, "%d-%s-%.1f", :int, 7, :string, "x", :double, 2.5)).to eq(7)
      expect(buf.read_string).to eq("7-x-2.5")
    end

    it "calls libm with doubles" do
      libm = Module.new do
        extend FiddleJit::Library
        ffi_lib "m"
        attach_function :hypot, [:double, :double], :double
      end
      expect(libm.hypot(3.0, 4.0)).to eq(5.0)
    end

    it "raises like the ffi gem on bad arguments" do
      expect { libc.strlen(1) }.to raise_error(TypeError)
      expect { libc.strlen("a\0b") }.to raise_error(ArgumentError)
      expect { libc.labs(2**64) }.to raise_error(RangeError)
    end
  end

  describe "the ffi drop-in (require \"fiddle_jit/ffi\")" do
    # struct tm as glibc lays it out on 64-bit Linux.
    class SmokeTm < FFI::Struct
      layout :tm_sec, :int, :tm_min, :int, :tm_hour, :int, :tm_mday, :int, :tm_mon, :int,
             :tm_year, :int, :tm_wday, :int, :tm_yday, :int, :tm_isdst, :int,
             :tm_gmtoff, :long, :tm_zone, :string
    end

    class SmokeDiv < FFI::Struct
      layout :quot, :int, :rem, :int
    end

    module SmokeLibC
      extend FFI::Library
      ffi_lib FFI::Library::LIBC
      attach_function :strlen, [:string], :size_t
      attach_function :labs, [:long], :long
      attach_function :gmtime_r, [:pointer, SmokeTm.by_ref], SmokeTm.by_ref
      attach_function :div, [:int, :int], SmokeDiv.by_value
      callback :compare, [:pointer, :pointer], :int
      attach_function :qsort, [:pointer, :size_t, :size_t, :compare], :void
    end

    it "attaches and calls through FFI::Library" do
      expect(SmokeLibC.strlen("drop-in")).to eq(7)
      expect(SmokeLibC.labs(-3)).to eq(3)
    end

    it "fills a struct passed by reference" do
      time = FFI::MemoryPointer.new(:long)
      time.write_long(86_400 * 365 + 3600 + 61) # 1971-01-01 01:01:01 UTC
      tm = SmokeTm.new
      result = SmokeLibC.gmtime_r(time, tm)
      expect(result).to be_a(SmokeTm)
      expect(result.pointer.address).to eq(tm.pointer.address)
      expect([tm[:tm_year], tm[:tm_mon], tm[:tm_mday], tm[:tm_hour], tm[:tm_min], tm[:tm_sec]])
        .to eq([71, 0, 1, 1, 1, 1])
      expect(tm[:tm_zone]).to eq("GMT")
    end

    it "returns a struct by value" do
      d = SmokeLibC.div(17, 5)
      expect([d[:quot], d[:rem]]).to eq([3, 2])
    end

    it "sorts with a Ruby block as the qsort callback" do
      values = [5, -1, 42, 0, 7, 3]
      buf = FFI::MemoryPointer.new(:int, values.size)
      buf.write_array_of_int(values)
      calls = 0
      SmokeLibC.qsort(buf, values.size, FFI.type_size(:int)) do |a, b|
        calls += 1
        a.read_int <=> b.read_int
      end
      expect(buf.read_array_of_int(values.size)).to eq(values.sort)
      expect(calls).to be > 0
    end

    it "raises the ffi gem's exceptions and messages" do
      expect { SmokeLibC.strlen(1) }.to raise_error(TypeError, "no implicit conversion of Integer into String")
      expect { SmokeLibC.strlen("a\0b") }.to raise_error(ArgumentError, "string contains null byte")
      expect { SmokeLibC.strlen }.to raise_error(ArgumentError, "wrong number of arguments (0 for 1)")
      expect do
        Module.new do
          extend FFI::Library
          ffi_lib FFI::Library::LIBC
          attach_function :no_such_function_in_libc, [], :int
        end
      end.to raise_error(FFI::NotFoundError, /Function 'no_such_function_in_libc' not found in \[libc\.so\.6\]/)
      expect { Module.new { extend FFI::Library; ffi_lib "no_such_library_xyz" } }
        .to raise_error(LoadError, /Could not open library 'no_such_library_xyz'/)
    end
  end

  describe "a Debian gem written for the ffi gem, unmodified, with -rfiddle_jit/ffi_shim" do
    it "rbnacl (libsodium): hashes, secret boxes and Ed25519 signatures match known values" do
      script = <<~RUBY
        require "rbnacl"
        abort "the ffi gem was loaded" unless FFI.const_defined?(:FIDDLE_JIT)
        puts RbNaCl::Hash.sha256("abc").unpack1("H*")
        box = RbNaCl::SecretBox.new("\\x01".b * 32)
        nonce = "\\x02".b * box.nonce_bytes
        puts box.decrypt(nonce, box.encrypt(nonce, "secret message"))
        key = RbNaCl::Signatures::Ed25519::SigningKey.new("\\x02".b * 32)
        puts key.verify_key.to_bytes.unpack1("H*")
        puts key.sign("msg").unpack1("H*")
        puts key.verify_key.verify(key.sign("msg"), "msg")
        puts $LOADED_FEATURES.grep(/fiddle_jit\\.so/).first
      RUBY
      out, ok = ruby("-rfiddle_jit/ffi_shim", "-e", script)
      expect(ok).to be(true), out
      # Known answers: SHA-256("abc") from FIPS 180-2; the Ed25519 key and
      # signature as the ffi gem computes them (rbnacl on ruby-ffi 1.15.5).
      expect(out.lines.map(&:chomp)).to eq([
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "secret message",
        "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394",
        "81591c20a490c0db747fb805879e508490e70011005e630a0aeb313009f9913b" \
        "cb10a7a4b0bdef8601132977e3bc8e838de0a810eaff8ace89e0e740a981f10b",
        "true",
        $LOADED_FEATURES.grep(/fiddle_jit\.so/).first
      ])
    end

    it "sys-filesystem: statvfs of / and the mount table" do
      script = <<~RUBY
        require "sys/filesystem"
        abort "the ffi gem was loaded" unless FFI.const_defined?(:FIDDLE_JIT)
        stat = Sys::Filesystem.stat("/")
        p [stat.path, stat.block_size.positive?, stat.blocks >= stat.blocks_free, stat.files >= stat.files_free]
        p Sys::Filesystem.mounts.map(&:mount_point).include?("/proc")
      RUBY
      out, ok = ruby("-rfiddle_jit/ffi_shim", "-e", script)
      expect(ok).to be(true), out
      expect(out.lines.map(&:chomp)).to eq(['["/", true, true, true]', "true"])
    end
  end
end
