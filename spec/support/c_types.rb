# frozen_string_literal: true

require "open3"
require "tmpdir"

# What C itself says about type names: a probe compiled by the system cc
# (inside the chroot for another architecture) prints sizeof and the kind
# (signed, unsigned, pointer) of each name. The platform typedef table is
# checked against it, and where the ffi gem lacks a typedef C has (1.15.5 on
# aarch64-linux has no intptr_t), the differential specs' oracle attaches
# the builtin C says is the same type.
module CTypes
  # No _GNU_SOURCE: with it glibc makes __priority_which_t and
  # __rlimit_resource_t enums; types.conf (and plain C) see ints.
  HEADERS = %w[stdio.h stddef.h stdint.h wchar.h signal.h time.h pthread.h sys/types.h sys/time.h
               sys/resource.h sys/select.h sys/socket.h netinet/in.h].freeze

  @facts = {}

  # name => [size in bytes, "signed" | "unsigned" | "pointer"] for every
  # name in +names+ (Symbols); raises when the probe does not compile.
  def self.facts(names)
    missing = names - @facts.keys
    @facts.merge!(probe(missing)) unless missing.empty?
    @facts.slice(*names)
  end

  # The ffi gem's builtin integer of the same size and signedness as the C
  # type +name+ (:intptr_t => :int64 on LP64).
  def self.builtin_for(name)
    size, kind = facts([name]).fetch(name)
    raise ArgumentError, "#{name} is a #{kind} type" unless %w[signed unsigned].include?(kind)

    :"#{"u" if kind == "unsigned"}int#{size * 8}"
  end

  def self.probe(names)
    Dir.mktmpdir("fj-ctypes") do |dir|
      c = +HEADERS.map { |h| "#include <#{h}>\n" }.join
      # gcc's type classes: 5 is pointer_type_class.
      c << "#define KIND(T) (__builtin_classify_type((T)0) == 5 ? \"pointer\" : " \
           "((T)-1 < (T)0) ? \"signed\" : \"unsigned\")\nint main(void) {\n"
      names.each { |name| c << %(  printf("#{name} %zu %s\\n", sizeof(#{name}), KIND(#{name}));\n) }
      c << "  return 0;\n}\n"
      src = File.join(dir, "probe.c")
      exe = File.join(dir, "probe")
      File.write(src, c)
      _, err, st = Open3.capture3(ENV["CC"] || "cc", "-w", "-o", exe, src)
      raise "CTypes: the probe failed to compile:\n#{err}" unless st.success?

      out, st = Open3.capture2(exe)
      raise "CTypes: the probe failed" unless st.success?

      out.lines.to_h do |l|
        name, size, kind = l.split
        [name.to_sym, [Integer(size), kind]]
      end
    end
  end
end
