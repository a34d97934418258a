# frozen_string_literal: true

require_relative "spec_helper"

# The platform typedefs (lib/fiddle_jit/platform_types.rb, the ffi gem's
# types.conf names) against the C headers of the machine the suite runs on
# (x86_64-linux on the host, aarch64-linux in the arm64 chroot): a probe
# compiled with cc prints sizeof and signedness of every name
# (spec/support/c_types.rb).
RSpec.describe "platform typedefs" do
  if FIDDLE_JIT_ORACLE_MODE
    it("checks fiddle_jit's own tables") { skip "fiddle_jit's typedef tables are not the ffi gem's API" }
    next
  end

  TABLES = { "x86_64-linux" => FiddleJit::Types::X86_64_LINUX_TYPEDEFS,
             "aarch64-linux" => FiddleJit::Types::AARCH64_LINUX_TYPEDEFS }.freeze
  platform = "#{RbConfig::CONFIG["host_cpu"].sub(/\Aarm64\z/, "aarch64")}-#{RbConfig::CONFIG["host_os"][/linux/]}"

  it "the host's table is in use" do
    skip "no typedef table for #{platform} is checked yet (x86_64-linux, aarch64-linux)" unless TABLES.key?(platform)
    expect(FiddleJit::Types::PLATFORM_TYPEDEFS).to equal(TABLES.fetch(platform))
  end

  describe "on this machine" do
    before { skip "no typedef table for #{platform} is checked yet" unless TABLES.key?(platform) }

    FiddleJit::Types::PLATFORM_TYPEDEFS.each_key do |name|
      it "#{name} has the C size and signedness" do
        canonical = FiddleJit::Types.resolve(name)
        size, kind = CTypes.facts(FiddleJit::Types::PLATFORM_TYPEDEFS.keys).fetch(name)
        expect(FiddleJit.type_size(name)).to eq(size)
        if kind == "pointer"
          expect(canonical).to eq(:pointer)
        else
          expect(canonical).to be_a(Symbol)
          expect(canonical.to_s.start_with?("u") ? "unsigned" : "signed").to eq(kind)
        end
      end
    end
  end

  it "has every typedef the ffi gem has, at the same size" do
    # Its types.conf also names "*__caddr_t" and "*__qaddr_t" (pointer typedefs
    # misread by its generator): no Symbol literal can spell them.
    FFI::TypeDefs.each_key do |name|
      next unless name.is_a?(Symbol) && !name.start_with?("*")

      expect([name, FiddleJit.type_size(name)]).to eq([name, FFI.type_size(FFI.find_type(name))])
    end
  end

  it "the typedefs the ffi gem lacks here are C's (checked above); those it has match it" do
    lacking = FiddleJit::Types::PLATFORM_TYPEDEFS.keys.reject { |name| FFI::TypeDefs.key?(name) }
    # Pinned: Debian's ffi 1.15.5 has the whole x86_64-linux table; its
    # aarch64-linux types.conf omits these 29 names.
    expected_lacking = if FFI::Platform::NAME == "aarch64-linux"
                         %i[__intmax_t __uintmax_t in_addr_t in_port_t int_fast16_t int_fast32_t int_fast64_t
                            int_fast8_t int_least32_t int_least64_t int_least8_t intmax_t intptr_t ptrdiff_t
                            uint16_t uint32_t uint64_t uint8_t uint_fast16_t uint_fast32_t uint_fast64_t
                            uint_fast8_t uint_least16_t uint_least32_t uint_least64_t uint_least8_t uintmax_t
                            uintptr_t wchar_t]
                       else
                         []
                       end
    expect(lacking).to match_array(expected_lacking)
    (FiddleJit::Types::PLATFORM_TYPEDEFS.keys - lacking).each do |name|
      expect([name, FiddleJit.type_size(name)]).to eq([name, FFI.type_size(FFI.find_type(name))])
    end
  end
end
