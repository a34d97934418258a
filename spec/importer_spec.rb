# frozen_string_literal: true

require_relative "spec_helper"
require "fiddle/import"
require "fiddle_jit/importer"

# FiddleJit::Importer against Ruby's bundled Fiddle::Importer: the same
# declarations, the same results.
RSpec.describe FiddleJit::Importer do
  DECLS = lambda do |importer|
    Module.new do
      extend importer
      dlload FiddleJit::LibraryLoader::LIBC
      typealias "myuint", "unsigned int"
      typealias "ssize", "long"
      extern "size_t strlen(const char *)"
      extern "int abs(int)"
      extern "long labs(long)"
      extern "myuint htonl(myuint)"
      extern "unsigned short htons(unsigned short)"
      extern "int atoi(const char *)"
      extern "double atof(const char *)"
      extern "long long llabs(long long)"
      extern "char *getenv(const char *)"
      extern "void *memset(void *, int, size_t)"
      extern "int gettimeofday(void *, void *)"
      extern "ssize strtol(const char *, void *, int)"
      const_set(:Timeval, struct(["long tv_sec", "long tv_usec"]))
      const_set(:Mixed, struct(["char c", "double d", "short s", "int a[3]", "unsigned char u", "float f", "void *p"]))
      const_set(:Num, union(["int i", "double d", "char b[8]"]))
    end
  end

  let(:fiddle) { DECLS.call(Fiddle::Importer) }
  let(:jit) { DECLS.call(FiddleJit::Importer) }

  def both(&block) = [fiddle, jit].map(&block)

  it "calls functions declared in C syntax with the same results" do
    ENV["FJ_IMPORTER"] = "importer value"
    a, b = both do |m|
      [m.strlen("hello"), m.abs(-42), m.labs(-(2**40)), m.htonl(1), m.htons(0x1234), m.atoi("123abc"),
       m.atof("2.5e3"), m.llabs(-(2**62)), m.strtol("-77", nil, 10), m.getenv("FJ_IMPORTER").then { |p| m == fiddle ? p.to_s : p.read_string }]
    end
    expect(b).to eq(a)
  end

  it "defines module methods like Fiddle::Importer" do
    expect(jit.respond_to?(:strlen)).to be(true)
    expect(fiddle.respond_to?(:strlen)).to be(true)
  end

  it "lays out structs and unions like Fiddle (sizes, member names, values)" do
    a, b = both do |m|
      s = m::Mixed.malloc
      s.c = -3
      s.d = 1.25
      s.s = 300
      s.a = [7, 8, 9]
      s.u = 250
      s.f = 0.5
      raw = m == fiddle ? Fiddle::Pointer.new(s.to_i)[0, m::Mixed.size] : s.to_ptr.get_bytes(0, m::Mixed.size)
      [m::Mixed.size, m::Timeval.size, m::Num.size, m::Mixed.members, m.sizeof("int"), m.sizeof("long long"),
       m.sizeof(m::Mixed), s.c, s.d, s.s, s.a, s.u, s.f, s["d"], raw]
    end
    expect(b).to eq(a)
  end

  it "passes structs to C (gettimeofday) and reads members back" do
    a, b = both do |m|
      tv = m::Timeval.malloc
      rc = m.gettimeofday(m == fiddle ? tv.to_ptr : tv, nil)
      [rc, (tv.tv_sec - Time.now.to_i).abs <= 2, tv.tv_usec.between?(0, 999_999)]
    end
    expect(b).to eq(a)
  end

  it "unions share storage" do
    a, b = both do |m|
      u = m::Num.malloc
      u.d = 1.0
      [u.i, u.b]
    end
    expect(b).to eq(a)
  end

  it "raises NotImplementedError for variadic declarations and bind" do
    expect { jit.extern "int printf(const char *, ...)" }.to raise_error(NotImplementedError, /variadic/)
    expect { jit.bind("int cb(int)") { 0 } }.to raise_error(NotImplementedError, /callbacks/)
  end

  it "missing symbols and libraries raise like fiddle_jit's Library" do
    expect { jit.extern "int no_such_function_imp(int)" }.to raise_error(FiddleJit::NotFoundError)
    expect { Module.new { extend FiddleJit::Importer }.dlload("no_such_lib_imp") }.to raise_error(LoadError)
  end
end
