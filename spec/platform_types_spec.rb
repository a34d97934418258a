# frozen_string_literal: true

require_relative "spec_helper"
require "tmpdir"
require "open3"

# The platform typedefs (lib/fiddle_jit/platform_types.rb, the ffi gem's
# types.conf names) against the host's C headers: a probe compiled with cc
# prints sizeof and signedness of every name.
RSpec.describe "platform typedefs" do
  # No _GNU_SOURCE: with it glibc makes __priority_which_t and
  # __rlimit_resource_t enums; types.conf (and plain C) see ints.
  HEADERS = %w[stdio.h stddef.h stdint.h wchar.h signal.h time.h pthread.h sys/types.h sys/time.h
               sys/resource.h sys/select.h sys/socket.h netinet/in.h].freeze

  probe = lambda do
    Dir.mktmpdir("fj-types") do |dir|
      c = +HEADERS.map { |h| "#include <#{h}>\n" }.join + "int main(void) {\n"
      FiddleJit::Types::PLATFORM_TYPEDEFS.each do |name, type|
        sign = type == :pointer ? '"pointer"' : "((#{name})-1 < (#{name})0) ? \"signed\" : \"unsigned\""
        c << %(  printf("#{name} %zu %s\\n", sizeof(#{name}), #{sign});\n)
      end
      c << "  return 0;\n}\n"
      File.write(File.join(dir, "probe.c"), c)
      _, err, st = Open3.capture3(ENV["CC"] || "cc", "-w", "-o", File.join(dir, "probe"), File.join(dir, "probe.c"))
      raise "probe failed to compile:\n#{err}" unless st.success?

      `#{File.join(dir, "probe")}`.lines.to_h do |l|
        name, size, sign = l.split
        [name.to_sym, [Integer(size), sign]]
      end
    end
  end
  facts = (probe.call if RUBY_PLATFORM.start_with?("x86_64-linux"))

  before { skip "the table is x86_64-linux's" unless facts }

  FiddleJit::Types::PLATFORM_TYPEDEFS.each_key do |name|
    it "#{name} has the C size and signedness" do
      canonical = FiddleJit::Types.resolve(name)
      size, sign = facts.fetch(name)
      expect(FiddleJit.type_size(name)).to eq(size)
      next if sign == "pointer"

      expect(canonical).to be_a(Symbol)
      expect(canonical.to_s.start_with?("u") ? "unsigned" : "signed").to eq(sign)
    end
  end

  it "matches the ffi gem's typedefs" do
    FiddleJit::Types::PLATFORM_TYPEDEFS.each_key do |name|
      expect([name, FiddleJit.type_size(name)]).to eq([name, FFI.type_size(FFI.find_type(name))])
    end
  end
end
