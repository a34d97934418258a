# frozen_string_literal: true

# Ruby-side signatures of every fixture function used by the differential
# specs. Each entry: ruby method name => [c symbol, [arg types], return type].
# Both sides (fiddle_jit and the ffi gem) attach exactly these, lazily, on
# first use, so an attach failure shows up only in the examples that need it.
module FixtureSignatures
  SIGS = {}

  def self.sig(name, args, ret, c_name: name)
    raise ArgumentError, "duplicate signature #{name}" if SIGS.key?(name)

    SIGS[name] = [c_name, args, ret].freeze
  end

  # --- 1. identity functions ----------------------------------------------
  # Integer types: type => [bits, signed?]
  INT_TYPES = {
    int8: [8, true], uint8: [8, false], int16: [16, true], uint16: [16, false],
    int32: [32, true], uint32: [32, false], int64: [64, true], uint64: [64, false],
    char: [8, true], uchar: [8, false], short: [16, true], ushort: [16, false],
    int: [32, true], uint: [32, false], long: [64, true], ulong: [64, false],
    long_long: [64, true], ulong_long: [64, false],
    size_t: [64, false], ssize_t: [64, true], intptr_t: [64, true], uintptr_t: [64, false]
  }.freeze

  INT_TYPES.each_key { |t| sig(:"id_#{t}", [t], t) }
  sig :id_float, [:float], :float
  sig :id_double, [:double], :double
  sig :id_bool, [:bool], :bool
  sig :id_pointer, [:pointer], :pointer
  sig :id_string, [:string], :string

  # --- 2. boundary constants -------------------------------------------------
  # name => [type, expected value]
  INT_CONSTANTS = {
    ret_int8_min: [:int8, -2**7], ret_int8_max: [:int8, 2**7 - 1], ret_uint8_max: [:uint8, 2**8 - 1],
    ret_int16_min: [:int16, -2**15], ret_int16_max: [:int16, 2**15 - 1], ret_uint16_max: [:uint16, 2**16 - 1],
    ret_int32_min: [:int32, -2**31], ret_int32_max: [:int32, 2**31 - 1], ret_uint32_max: [:uint32, 2**32 - 1],
    ret_int64_min: [:int64, -2**63], ret_int64_max: [:int64, 2**63 - 1], ret_uint64_max: [:uint64, 2**64 - 1],
    ret_fixnum_max: [:int64, 2**62 - 1], ret_fixnum_max_p1: [:int64, 2**62],
    ret_fixnum_min: [:int64, -2**62], ret_fixnum_min_m1: [:int64, -2**62 - 1],
    ret_uint64_high_bit: [:uint64, 2**63],
    ret_long_min: [:long, -2**63], ret_ulong_max: [:ulong, 2**64 - 1],
    ret_size_max: [:size_t, 2**64 - 1], ret_ssize_min: [:ssize_t, -2**63],
    ret_intptr_min: [:intptr_t, -2**63], ret_uintptr_max: [:uintptr_t, 2**64 - 1]
  }.freeze

  bits = ->(hex) { [hex].pack("Q>").unpack1("G") }
  FLOAT_CONSTANTS = {
    ret_dbl_neg_zero: [:double, -0.0], ret_dbl_pos_zero: [:double, 0.0],
    ret_dbl_nan: [:double, Float::NAN], ret_dbl_neg_nan: [:double, bits.call(0xfff8000000000000)],
    ret_dbl_inf: [:double, Float::INFINITY], ret_dbl_neg_inf: [:double, -Float::INFINITY],
    ret_dbl_max: [:double, Float::MAX], ret_dbl_min: [:double, Float::MIN],
    ret_dbl_denorm: [:double, Float::MIN / 2], ret_dbl_true_min: [:double, 5e-324],
    ret_dbl_huge: [:double, 1e300], ret_dbl_tiny: [:double, 1e-300],
    ret_dbl_one: [:double, 1.0], ret_dbl_third: [:double, 1.0 / 3],
    ret_flt_neg_zero: [:float, -0.0], ret_flt_nan: [:float, Float::NAN],
    ret_flt_inf: [:float, Float::INFINITY], ret_flt_neg_inf: [:float, -Float::INFINITY],
    ret_flt_max: [:float, [0x7f7fffff].pack("L").unpack1("f")],
    ret_flt_min: [:float, [0x00800000].pack("L").unpack1("f")],
    ret_flt_denorm: [:float, [0x00400000].pack("L").unpack1("f")],
    ret_flt_tenth: [:float, [0.1].pack("f").unpack1("f")],
    ret_flt_third: [:float, [1.0 / 3].pack("f").unpack1("f")]
  }.freeze

  INT_CONSTANTS.each { |name, (type, _)| sig(name, [], type) }
  FLOAT_CONSTANTS.each { |name, (type, _)| sig(name, [], type) }

  # --- 3. narrow returns with garbage upper bits -----------------------------
  GARBAGE_RETURNS = {
    ret_int8_garbage: [:int8, -1], ret_uint8_garbage: [:uint8, 255],
    ret_char_garbage: [:char, -1], ret_uchar_garbage: [:uchar, 255],
    ret_int8_garbage_min: [:int8, -128], ret_uint8_garbage_hi: [:uint8, 128],
    ret_int8_garbage_pos: [:int8, 127],
    ret_int16_garbage: [:int16, -1], ret_uint16_garbage: [:uint16, 65_535],
    ret_short_garbage: [:short, -1], ret_ushort_garbage: [:ushort, 65_535],
    ret_int16_garbage_min: [:int16, -32_768], ret_int16_garbage_pos: [:int16, 32_767],
    ret_int32_garbage: [:int32, -1], ret_uint32_garbage: [:uint32, 4_294_967_295],
    ret_int_garbage: [:int, -1], ret_uint_garbage: [:uint, 4_294_967_295],
    ret_int32_garbage_pos: [:int32, 2_147_483_647],
    ret_int32_garbage_min: [:int32, -2_147_483_648], ret_uint32_garbage_hi: [:uint32, 2_147_483_648],
    ret_bool_garbage_true: [:bool, true], ret_bool_garbage_false: [:bool, false],
    ret_float_garbage: [:float, 1.5], ret_double_garbage: [:double, 2.5]
  }.freeze
  GARBAGE_RETURNS.each { |name, (type, _)| sig(name, [], type) }

  # --- 4. narrow argument extension ------------------------------------------
  NARROW_ARG_TYPES = %i[int8 uint8 int16 uint16 bool].freeze
  NARROW_ARG_TYPES.each { |t| sig(:"widen_#{t}", [t], :int32) }
  sig :widen_int32, [:int32], :int64
  sig :widen_uint32, [:uint32], :int64
  %i[int8 uint8 char uchar int16 uint16 short ushort bool].each do |t|
    sig(:"raw_edi_of_#{t}", [t], :int32)
  end
  %i[int8 uint8 int16 uint16 bool].each do |t|
    sig(:"raw_stack_of_#{t}", [:int64] * 6 + [t], :int32)
  end

  # --- 5. many arguments -------------------------------------------------------
  sig :sum6_i64, [:int64] * 6, :int64
  sig :sum7_i64, [:int64] * 7, :int64
  sig :sum8_i64, [:int64] * 8, :int64
  sig :sum20_i64, [:int64] * 20, :int64
  sig :mix6, %i[int64 double] * 3, :double
  sig :mix8, %i[int64 double] * 4, :double
  sig :mix15, %i[int64 double] * 7 + [:int64], :double
  sig :sum15_dbl, [:double] * 15, :double
  sig :dbl12_int8, %i[double int64 double double int64 double double int64 double double
                      int64 double double int64 double int64 double int64 double int64], :double
  MIXED20_ARGS = %i[int8 float uint16 double pointer float string double int8 float
                    uint16 double pointer float string double int8 float uint16 double].freeze
  sig :mixed20, MIXED20_ARGS, :double
  # the same C function seen with every argument as a wider/narrower alias
  sig :mixed20_aliases, %i[char float ushort double pointer float string double char float
                           ushort double pointer float string double char float ushort double],
      :double, c_name: :mixed20

  # --- 6. ABI hygiene ------------------------------------------------------------
  sig :stack_aligned0, [], :int
  sig :stack_aligned1s, [:int64] * 6 + [:double] * 9, :int
  sig :stack_aligned7, [:int64] * 7, :int
  sig :stack_aligned8, [:int64] * 8, :int
  sig :stack_aligned9d, [:double] * 9, :int
  sig :stack_aligned20, [:int64] * 20, :int
  sig :clobber_caller_saved, [:int64], :int64

  # --- 7. strings ------------------------------------------------------------------
  sig :str_len, [:string], :size_t
  sig :str_static, [], :string
  sig :str_null, [], :string
  sig :str_empty, [], :string
  sig :is_null, [:pointer], :int
  sig :is_null_str, [:string], :int, c_name: :is_null
  sig :str_utf8, [], :string
  sig :str_binary, [], :string
  sig :str_dup_upper, [:string], :string
  sig :str_byte_sum, [:string], :uint64
  sig :str_pair_sum, %i[string string], :uint64
  sig :ptr_first_byte, [:pointer], :int
  sig :ptr_offset, %i[pointer intptr_t], :pointer
  sig :ptr_diff, %i[pointer pointer], :intptr_t
  # a :string return read through :pointer, and vice versa
  sig :str_static_ptr, [], :pointer, c_name: :str_static
  sig :str_null_ptr, [], :pointer, c_name: :str_null

  # --- 8. void / global state -----------------------------------------------------
  sig :do_nothing, [], :void
  sig :nothing_count, [], :int
  sig :set_global, [:int], :void
  sig :get_global, [], :int

  # --- 9. float promotions -----------------------------------------------------------
  sig :float_to_double, [:float], :double
  sig :double_to_float, [:double], :float
  sig :add_float, %i[float float], :float
  sig :add_double, %i[double double], :double
  sig :int_float_mix, %i[int8 float int32 double], :double

  SIGS.freeze
end
