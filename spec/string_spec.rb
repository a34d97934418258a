# frozen_string_literal: true

require_relative "spec_helper"

RSpec.describe ":string arguments and returns" do
  string_args = {
    "nil" => nil,
    "empty" => +"",
    "short embedded" => +"abc",
    "frozen literal" => "frozen literal",
    "explicitly frozen" => "abc".dup.freeze,
    "interned (-'')" => -"interned",
    "long heap (1000 bytes)" => "x" * 1000,
    "23 bytes (embed boundary)" => "y" * 23,
    "24 bytes (embed boundary)" => "y" * 24,
    "shared substring (not NUL-terminated in place)" => ("z" * 100)[10, 50],
    "shared tail substring" => ("q" * 100)[50..],
    "embedded NUL" => +"a\0b",
    "only NUL" => +"\0",
    "trailing NUL" => +"abc\0",
    "UTF-8 non-ASCII" => +"héllo ✓",
    "invalid UTF-8" => (+"\xff\xfe").force_encoding("UTF-8"),
    "binary" => (+"\xff\xfe\x80").b,
    "ISO-8859-1" => "é".encode("ISO-8859-1"),
    "UTF-16LE" => "hi".encode("UTF-16LE"),
    "UTF-16LE empty" => "".encode("UTF-16LE"),
    "UTF-16LE with NUL char" => "a\0b".encode("UTF-16LE"),
    "UTF-32LE" => "hi".encode("UTF-32LE"),
    "US-ASCII" => "ascii".encode("US-ASCII"),
    "Symbol" => :sym,
    "Integer" => 5,
    "Float" => 1.5,
    "true" => true,
    "Object" => Differential::Plain.new,
    "Array" => ["a"],
    "Pointer" => Differential::Ptr.new(0x1234),
    "to_str object" => Differential::ToStr.new("via to_str"),
    "to_str returning non-String" => Differential::WrongConv.new,
    "to_str raising" => Differential::RaisingConv.new
  }.freeze

  describe "differential: :string parameters" do
    string_args.each do |label, v|
      it "str_len(#{label})" do
        expect_same(:str_len, v)
      end

      it "str_byte_sum(#{label})" do
        expect_same(:str_byte_sum, v)
      end

      it "id_string(#{label}) (:string in and out)" do
        expect_same(:id_string, v)
      end

      it "is_null_str(#{label})" do
        expect_same(:is_null_str, v)
      end
    end

    it "pins the oracle: NUL inside a String raises ArgumentError, Symbol raises TypeError" do
      expect_same_raise(:str_len, +"a\0b")
      expect(Differential.ffi.call(:str_len, [+"a\0b"])[1]).to be_a(ArgumentError)
      expect(Differential.ffi.call(:str_len, [:sym])[1]).to be_a(TypeError)
    end

    it "str_dup_upper" do
      expect_same(:str_dup_upper, "hello World", expect: "HELLO WORLD".b)
      expect_same(:str_dup_upper, "x" * 1000)
      expect_same(:str_dup_upper, nil, expect: nil)
    end

    it "two string arguments keep their order" do
      expect_same(:str_pair_sum, "ab", "cd")
      expect_same(:str_pair_sum, "cd", "ab")
      expect_same(:str_pair_sum, nil, "x")
      expect_same(:str_pair_sum, "x" * 500, nil)
      expect_same_raise(:str_pair_sum, "ok", :bad)
      expect_same_raise(:str_pair_sum, :bad, "ok")
    end

    it "wrong arity" do
      expect_same_raise(:str_len)
      expect_same_raise(:str_len, "a", "b")
      expect_same_raise(:str_pair_sum, "a")
    end

    it "does not modify or unfreeze the argument" do
      s = +"hello"
      f = "frozen!".dup.freeze
      jit_fn(:str_len).call(s)
      jit_fn(:str_len).call(f)
      expect(s).to eq("hello")
      expect(s.frozen?).to be(false)
      expect(f.frozen?).to be(true)
    end
  end

  describe "differential: :string returns" do
    %i[str_static str_null str_empty str_utf8 str_binary].each do |name|
      it "#{name} (bytes and encoding)" do
        expect_same(name)
      end
    end

    it "pins the oracle: returned strings are ASCII-8BIT" do
      expect_same(:str_static, expect: "hello".b)
      expect_same(:str_utf8, expect: "héllo wörld ✓ 日本".b)
    end

    it "frozen-ness of returned strings matches the ffi gem" do
      expect(jit_fn(:str_static).call.frozen?).to eq(ffi_fn(:str_static).call.frozen?)
      expect(jit_fn(:str_empty).call.frozen?).to eq(ffi_fn(:str_empty).call.frozen?)
    end

    it "returns a fresh copy each call (mutating it does not affect the next call)" do
      a = jit_fn(:str_static).call
      a << "!" unless a.frozen?
      expect(jit_fn(:str_static).call).to eq("hello")
      expect(jit_fn(:str_static).call).not_to be(jit_fn(:str_static).call)
    end

    it "copies the C buffer (a later call reusing the static buffer does not change it)" do
      first = jit_fn(:str_dup_upper).call("first")
      jit_fn(:str_dup_upper).call("second")
      expect(first).to eq("FIRST")
    end
  end

  describe "fiddle_jit: :string returns" do
    it "NULL => nil" do
      expect(jit_fn(:str_null).call).to be_nil
    end

    it "non-NULL => String" do
      s = jit_fn(:str_static).call
      expect(s).to be_a(String)
      expect(s).to eq("hello")
    end

    it "a NUL-terminated non-ASCII UTF-8 result keeps every byte" do
      expect(jit_fn(:str_utf8).call.bytes).to eq("héllo wörld ✓ 日本".bytes)
    end

    it "id_string round-trips content" do
      expect(jit_fn(:id_string).call("round trip")).to eq("round trip")
      expect(jit_fn(:id_string).call(nil)).to be_nil
    end
  end

  describe ":string arguments under GC pressure (in process; see gc_stress_spec.rb for more)" do
    it "fresh strings each call under GC.stress (minor GCs), 200 calls" do
      str_len = jit_fn(:str_len)
      bad = []
      GC.stress = 0x01 # a minor GC on every allocation
      begin
        200.times do |i|
          n = i % 50
          bad << i unless str_len.call("x" * n) == n
        end
      ensure
        GC.stress = false
      end
      expect(bad).to be_empty
    end

    it "survives GC.compact between calls" do
      skip "GC.compact unavailable" unless GC.respond_to?(:compact)
      strings = Array.new(100) { |i| "s#{i}" * (i % 7 + 1) }
      GC.compact
      lens = strings.map { |s| jit_fn(:str_len).call(s) }
      expect(lens).to eq(strings.map(&:bytesize))
    end
  end
end
