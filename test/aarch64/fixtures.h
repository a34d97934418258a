/* C fixtures and the checks for each stub of aarch64_tests.rs's table.
 * Included by harness.c. Expected results are computed by calling the
 * fixture directly with the native values the stub should have produced. */
#include <stdbool.h>

typedef __int128 i128;
enum kind { K_I8, K_U8, K_I16, K_U16, K_I32, K_U32, K_I64, K_U64 };
static const char *KIND_NAMES[] = {"i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64"};
static int kind_bits(int k) { return 8 << (k / 2); }
static int kind_signed(int k) { return k % 2 == 0; }

/* x truncated to the kind's width and extended per its signedness. */
static i128 narrow(int k, uint64_t x) {
    int b = kind_bits(k);
    if (b == 64) return kind_signed(k) ? (i128)(int64_t)x : (i128)x;
    uint64_t m = x & ((1ULL << b) - 1);
    if (kind_signed(k) && (m >> (b - 1))) return (i128)m - ((i128)1 << b);
    return m;
}

/* What the stub's reboxing must produce for native result r. */
static void check_int_result(VALUE got, int k, i128 r) {
    if (r >= -((i128)1 << 62) && r < ((i128)1 << 62)) {
        CHECK_EQ(got, fix((int64_t)r));
        NO_SLOW_CALLS();
    } else if (kind_signed(k)) {
        CHECK_EQ(got, 0xb16);
        expect_calls(1, H_LL2INUM, (VALUE)(int64_t)r, 0);
    } else {
        CHECK_EQ(got, 0xb17);
        expect_calls(1, H_ULL2INUM, (VALUE)(uint64_t)r, 0);
    }
}

static void check_double_result(VALUE got, double r) {
    if (is_flonum_double(r)) {
        CHECK_EQ(got, flo(r));
        if (got & 3) CHECK_DBL(unflo(got), r);
        NO_SLOW_CALLS();
    } else {
        CHECK_EQ(got, 0xf10a7);
        expect_calls(1, H_FLOAT_NEW_IN_HEAP, bits(r), 0);
    }
}

/* ---- identity and constant-return fixtures ------------------------------- */
static int8_t fx_id_i8(int8_t x) { return x; }
static uint8_t fx_id_u8(uint8_t x) { return x; }
static int16_t fx_id_i16(int16_t x) { return x; }
static uint16_t fx_id_u16(uint16_t x) { return x; }
static int32_t fx_id_i32(int32_t x) { return x; }
static uint32_t fx_id_u32(uint32_t x) { return x; }
static int64_t fx_id_i64(int64_t x) { return x; }
static uint64_t fx_id_u64(uint64_t x) { return x; }
static float fx_id_f32(float x) { return x; }
static double fx_id_f64(double x) { return x; }
static bool fx_id_bool(bool x) { return x; }
static void *fx_id_pointer(void *x) { return x; }
static const char *fx_id_string(const char *x) { return x; }
static void *const ID_FIXTURES[] = {fx_id_i8, fx_id_u8, fx_id_i16, fx_id_u16, fx_id_i32, fx_id_u32, fx_id_i64, fx_id_u64};

/* Returns whatever 64 bits the check put in ret_value: the stub sees only
 * the low bits its type defines, the rest is garbage. */
static uint64_t ret_value;
static uint64_t fx_ret_raw(void) { return ret_value; }
static double fx_ret_f64(void) { return from_bits(ret_value); }
static float fx_ret_f32(void) { float f; uint32_t b = (uint32_t)ret_value; memcpy(&f, &b, 4); return f; }
/* The raw 64 bits of x0 / of the first stack slot, whatever type the stub
 * was told the argument has. */
static uint64_t fx_raw_x0(uint64_t x) { return x; }
static uint64_t fx_raw_stack(uint64_t a, uint64_t b, uint64_t c, uint64_t d, uint64_t e, uint64_t f, uint64_t g,
                             uint64_t h, uint64_t i) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)h;
    return i;
}
static int void_calls;
static void fx_void(void) { void_calls++; }

static const int64_t INT_SAMPLES[] = {0, 1, -1, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
    65535, 65536, 2147483647LL, 2147483648LL, -2147483648LL, -2147483649LL, 4294967295LL, 4294967296LL,
    -4294967296LL, 1LL << 40, (1LL << 62) - 1, -(1LL << 62)};
#define NSAMPLES (sizeof INT_SAMPLES / sizeof *INT_SAMPLES)

/* Does the stub convert Fixnum v inline (else: the helper's range rule)? */
static int inline_ok(int k, int64_t v) {
    if (kind_bits(k) == 64) return 1;
    if (kind_signed(k)) return v >= INT32_MIN && v <= INT32_MAX;
    return v >= INT32_MIN && v <= (int64_t)UINT32_MAX;
}
static const int HELPER_OF_KIND[] = {H_ARG_INT, H_ARG_UINT, H_ARG_INT, H_ARG_UINT, H_ARG_INT, H_ARG_UINT, H_ARG_LL, H_ARG_ULL};
static uint64_t fake_result(int k) {
    switch (HELPER_OF_KIND[k]) {
    case H_ARG_INT: return 0x100000181ULL;
    case H_ARG_UINT: return 0x1fffffffeULL;
    case H_ARG_LL: return (uint64_t)-4242;
    default: return 0xfedcba9876543210ULL;
    }
}

/* Raw x0 / stack slot for a converted value: narrow types extended to 64
   bits per their signedness, as libffi (the ffi gem) passes them. */
static uint64_t raw_of(int k, uint64_t x) {
    if (kind_bits(k) == 64) return x;
    return (uint64_t)(int64_t)narrow(k, x);
}

static void check_integers(void) {
    char name[64];
    for (int k = K_I8; k <= K_U64; k++) {
        snprintf(name, sizeof name, "id_%s", KIND_NAMES[k]);
        void *s = stub(name, ID_FIXTURES[k]);
        for (size_t i = 0; i < NSAMPLES; i++) {
            int64_t v = INT_SAMPLES[i];
            VALUE got = CALL(s, fix(v));
            if (inline_ok(k, v)) {
                check_int_result(got, k, narrow(k, (uint64_t)v));
            } else {
                CHECK(ncalls >= 1 && calls[0].helper == HELPER_OF_KIND[k], "%s(%" PRId64 ") took no slow path", name, v);
                CHECK_EQ(calls[0].value, fix(v));
                CHECK(got == fix((int64_t)narrow(k, fake_result(k))), "%s(%" PRId64 ")", name, v);
            }
        }
        /* Non-Fixnums go to the helper with (value, info, index). */
        VALUE got = CALL(s, HEAP_FLOAT);
        CHECK(ncalls >= 1, "no slow path");
        CHECK(calls[0].helper == HELPER_OF_KIND[k] && calls[0].value == HEAP_FLOAT && calls[0].index == 0 &&
              calls[0].info == info_of_current, "slow path got (%s, %#" PRIx64 ", %#" PRIx64 ", %u)",
              HELPER_NAMES[calls[0].helper], calls[0].value, calls[0].info, calls[0].index);
        i128 r = narrow(k, fake_result(k));
        if (r >= -((i128)1 << 62) && r < ((i128)1 << 62)) CHECK_EQ(got, fix((int64_t)r));
        else CHECK_EQ(got, kind_signed(k) ? 0xb16 : 0xb17);
        EXPECT_RAISE(CALL(s, BAD));
        CHECK_EQ(CALL(s, fix(5)), fix(5)); /* still fine after a raise */

        /* Narrow results: only the type's low bits count. */
        snprintf(name, sizeof name, "ret_%s", KIND_NAMES[k]);
        s = stub(name, fx_ret_raw);
        const uint64_t garbage[] = {0, 1, 0xdeadbeefffffff80ULL, 0x123456789abcdef0ULL, 0xffffffffffffffffULL,
                                    0x8000000000000000ULL, 0x4000000000000000ULL, 0x3fffffffffffffffULL,
                                    0xc000000000000000ULL, 0xbfffffffffffffffULL, 0x00000000ffff7fffULL};
        for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++) {
            ret_value = garbage[i];
            check_int_result(call0(s), k, narrow(k, garbage[i]));
        }

        /* What the C function sees in x0 and in a stack slot. */
        snprintf(name, sizeof name, "raw_x0_of_%s", KIND_NAMES[k]);
        s = stub(name, fx_raw_x0);
        void *st;
        snprintf(name, sizeof name, "raw_stack_of_%s", KIND_NAMES[k]);
        for (size_t i = 0; i < NSAMPLES; i++) {
            int64_t v = INT_SAMPLES[i];
            if (!inline_ok(k, v)) continue;
            current = "raw_x0";
            check_int_result(CALL(s, fix(v)), K_U64, raw_of(k, (uint64_t)v));
        }
        st = stub(name, fx_raw_stack);
        for (size_t i = 0; i < NSAMPLES; i++) {
            int64_t v = INT_SAMPLES[i];
            if (!inline_ok(k, v)) continue;
            check_int_result(CALL(st, fix(1), fix(2), fix(3), fix(4), fix(5), fix(6), fix(7), fix(8), fix(v)),
                             K_U64, raw_of(k, (uint64_t)v));
        }
        /* Slow-path results are extended the same way. */
        VALUE got9 = CALL(st, fix(1), fix(2), fix(3), fix(4), fix(5), fix(6), fix(7), fix(8), HEAP_FLOAT);
        CHECK(ncalls >= 1 && calls[0].helper == HELPER_OF_KIND[k] && calls[0].index == 8, "slow path of argument 9");
        drop_calls(1);
        check_int_result(got9, K_U64, raw_of(k, fake_result(k)));
    }
}

static void check_bools(void) {
    void *s = stub("id_bool", fx_id_bool);
    CHECK_EQ(CALL(s, QTRUE), QTRUE);
    NO_SLOW_CALLS();
    CHECK_EQ(CALL(s, QFALSE), QFALSE);
    NO_SLOW_CALLS();
    VALUE wrong[] = {QNIL, fix(1), fix(0), HEAP_FLOAT, BAD};
    for (size_t i = 0; i < 5; i++) {
        EXPECT_RAISE(CALL(s, wrong[i]));
        expect_calls(1, H_ARG_BOOL, wrong[i], 0);
    }
    s = stub("ret_bool", fx_ret_raw);
    const uint64_t r[][2] = {{0, QFALSE}, {1, QTRUE}, {0x100, QFALSE}, {0xffffff01, QTRUE},
                             {0xffffffffffffff00ULL, QFALSE}, {0x80, QTRUE}};
    for (size_t i = 0; i < 6; i++) {
        ret_value = r[i][0];
        CHECK_EQ(call0(s), r[i][1]);
    }
    s = stub("raw_x0_of_bool", fx_raw_x0);
    check_int_result(CALL(s, QTRUE), K_U64, 1);
    check_int_result(CALL(s, QFALSE), K_U64, 0);
    s = stub("raw_stack_of_bool", fx_raw_stack);
    check_int_result(CALL(s, fix(1), fix(2), fix(3), fix(4), fix(5), fix(6), fix(7), fix(8), QTRUE), K_U64, 1);
    check_int_result(CALL(s, fix(1), fix(2), fix(3), fix(4), fix(5), fix(6), fix(7), fix(8), QFALSE), K_U64, 0);
}

static const double DBL_SAMPLES[] = {1.5, -2.25, 0.0, 1e-10, 3.141592653589793, -1e10, 65536.0, 1.0 / 3};

static void check_floats(void) {
    void *s = stub("id_f64", fx_id_f64);
    for (size_t i = 0; i < sizeof DBL_SAMPLES / sizeof *DBL_SAMPLES; i++) {
        check_double_result(CALL(s, flo(DBL_SAMPLES[i])), DBL_SAMPLES[i]);
    }
    /* Fixnums convert inline; heap Floats (and anything else) via the helper. */
    check_double_result(CALL(s, fix(7)), 7.0);
    check_double_result(CALL(s, fix(-(1LL << 53) - 1)), (double)(-(1LL << 53) - 1));
    VALUE got = CALL(s, HEAP_FLOAT);
    CHECK_EQ(got, flo(2.5));
    expect_calls(1, H_ARG_DOUBLE, HEAP_FLOAT, 0);
    got = CALL(s, QNIL);
    expect_calls(1, H_ARG_DOUBLE, QNIL, 0);
    EXPECT_RAISE(CALL(s, BAD));

    s = stub("id_f32", fx_id_f32);
    for (size_t i = 0; i < sizeof DBL_SAMPLES / sizeof *DBL_SAMPLES; i++) {
        check_double_result(CALL(s, flo(DBL_SAMPLES[i])), (double)(float)DBL_SAMPLES[i]);
    }
    check_double_result(CALL(s, fix(3)), 3.0);
    got = CALL(s, HEAP_FLOAT);
    CHECK_EQ(got, flo(2.5));

    /* Results the flonum encoding cannot hold go to rb_float_new_in_heap. */
    const uint64_t dbl[] = {bits(1e300), bits(-0.0), bits(NAN), 0xfff8000000000000ULL, bits(INFINITY),
                            bits(-INFINITY), bits(1e-300), 1 /* smallest denormal */, bits(0.0), bits(1.0),
                            bits(1.0 / 3), bits(1.7976931348623157e308), 0x3000000000000000ULL,
                            0x2fffffffffffffffULL, 0x4fffffffffffffffULL, 0x5000000000000000ULL};
    s = stub("ret_f64", fx_ret_f64);
    for (size_t i = 0; i < sizeof dbl / sizeof *dbl; i++) {
        ret_value = dbl[i];
        check_double_result(call0(s), from_bits(dbl[i]));
    }
    const uint32_t flt[] = {0x3dcccccd /* 0.1f */, 0x80000000, 0x7fc00000, 0x7f800000, 0xff800000, 0x7f7fffff,
                            0x00800000, 0x00400000, 0x3fc00000};
    s = stub("ret_f32", fx_ret_f32);
    for (size_t i = 0; i < sizeof flt / sizeof *flt; i++) {
        float f;
        memcpy(&f, &flt[i], 4);
        ret_value = 0xdead000000000000ULL | flt[i]; /* garbage above s0 */
        check_double_result(call0(s), (double)f);
    }
}

static void check_pointers(void) {
    void *s = stub("id_pointer", fx_id_pointer);
    VALUE got = CALL(s, QNIL);
    CHECK_EQ(got, 0x9000);
    expect_calls(1, H_RET_POINTER, 0, 0);
    VALUE p = pointer_object(0x123456789a, pointer_type);
    got = CALL(s, p);
    expect_calls(1, H_RET_POINTER, 0x123456789a, 0);
    /* Another data type, an immediate, false: the helper. */
    VALUE others[] = {pointer_object(0x42, other_type), fix(5), QFALSE, QTRUE, flo(1.5)};
    for (size_t i = 0; i < 5; i++) {
        CALL(s, others[i]);
        expect_calls(2, H_ARG_POINTER, others[i], 0, H_RET_POINTER, (VALUE)0xabc000, 0);
    }
    /* A String → its bytes (RSTRING_PTR), inline, heap or embedded. */
    static const char heap_bytes_s[] = "heap bytes";
    VALUE hs = heap_string(heap_bytes_s), es = embedded("emb", 3, ENC_UTF8);
    CALL(s, hs);
    expect_calls(1, H_RET_POINTER, (VALUE)heap_bytes_s, 0);
    CALL(s, es);
    expect_calls(1, H_RET_POINTER, (VALUE)((struct RString *)es)->as.ary, 0);
    /* A Struct of any class → the address of the memory it views, inline. */
    VALUE st = struct_object(0x7777, 0xbeef00), other_class = struct_object(0x8888, 0xbeef00);
    CALL(s, st);
    expect_calls(1, H_RET_POINTER, (VALUE)0xbeef00, 0);
    CALL(s, other_class);
    expect_calls(1, H_RET_POINTER, (VALUE)0xbeef00, 0);
    EXPECT_RAISE(CALL(s, BAD));
    /* A Struct.by_ref parameter: nil and a Struct of exactly its class
     * (ref_classes[0]) inline; another class, a Pointer, a String, other
     * data types and immediates are the helper's (a subclass passes there,
     * the others are its TypeError). */
    s = stub("id_struct_ref", fx_id_pointer);
    ((uint64_t *)((struct fake_info *)info_of_current)->ref_classes)[0] = 0x7777;
    CHECK_EQ(CALL(s, QNIL), 0x9000);
    expect_calls(1, H_RET_POINTER, 0, 0);
    CALL(s, st);
    expect_calls(1, H_RET_POINTER, (VALUE)0xbeef00, 0);
    VALUE refused[] = {other_class, p, hs, es, pointer_object(0x42, other_type), fix(5), QFALSE};
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        CALL(s, refused[i]);
        expect_calls(2, H_ARG_POINTER, refused[i], 0, H_RET_POINTER, (VALUE)0xabc000, 0);
    }
    ((uint64_t *)((struct fake_info *)info_of_current)->ref_classes)[0] = 0;
    EXPECT_RAISE(CALL(s, BAD));
    s = stub("ret_pointer", fx_ret_raw);
    ret_value = 0xfffffffffffffff0ULL;
    CHECK_EQ(call0(s), 0x9000);
    expect_calls(1, H_RET_POINTER, 0xfffffffffffffff0ULL, 0);
}

static void check_strings(void) {
    void *s = stub("id_string", fx_id_string);
    /* Inline, no helper call: Strings in ASCII-8BIT, UTF-8 or US-ASCII whose
     * first NUL is at len, embedded or not (embedded ASCII-8BIT/UTF-8 under
     * 16 bytes in the stub, the others in the StringValueCStr thunk's fast
     * path). */
    const char *fast[] = {"", "hello", "123456789012345", "1234567890123456", "12345678901234567890123"};
    for (int enc = 0; enc <= 2; enc++) {
        for (size_t i = 0; i < sizeof fast / sizeof *fast; i++) {
            VALUE str = embedded(fast[i], (long)strlen(fast[i]), enc);
            CALL(s, str);
            expect_calls(1, H_STR_NEW_CSTR, (VALUE)((struct RString *)str)->as.ary, 0);
        }
    }
    static char long_text[300];
    memset(long_text, 'L', sizeof long_text - 1);
    const long heap_lengths[] = {16, 17, 40, 255, 256};
    for (size_t i = 0; i < sizeof heap_lengths / sizeof *heap_lengths; i++) {
        const char *text = long_text + sizeof long_text - 1 - heap_lengths[i];
        VALUE str = heap_bytes(text, heap_lengths[i], (int)i % 3);
        CALL(s, str);
        expect_calls(1, H_STR_NEW_CSTR, (VALUE)text, 0);
    }
    /* A NUL at each place of a long heap String: the helper. */
    char nul_inside[100];
    for (int at = 0; at < 99; at++) {
        memset(nul_inside, 'n', 99);
        nul_inside[99] = 0;
        nul_inside[at] = 0;
        VALUE str = heap_bytes(nul_inside, 99, ENC_UTF8);
        CALL(s, str);
        CHECK(ncalls == 2 && calls[0].helper == H_ARG_CSTR && calls[0].value == str, "NUL at %d: %d calls", at, ncalls);
        nstrings--;
    }
    /* Everything else: the helper, given the address of a slot holding the VALUE. */
    VALUE slow[] = {embedded("ab\0cd", 5, 1), embedded("hello", 5, ENC_EUCJP), embedded("hello", 5, 3 /* UTF-16BE */),
                    embedded("\0", 1, 0), embedded("1234567890123456\0xy", 19, 0),
                    heap_string("fifteen bytes!!"), heap_bytes("unterminated: the next byte is no NUL", 20, ENC_UTF8),
                    heap_bytes(long_text, 299, ENC_UTF8) /* longer than the fast path scans */,
                    QFALSE, QTRUE, fix(1), flo(2.0), pointer_object(1, pointer_type)};
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++) {
        CALL(s, slow[i]);
        CHECK(ncalls == 2 && calls[0].helper == H_ARG_CSTR && calls[0].value == slow[i] && calls[0].index == 0 &&
              calls[0].info == info_of_current && calls[1].helper == H_STR_NEW_CSTR,
              "string sample %zu: %d calls, first %s", i, ncalls, HELPER_NAMES[calls[0].helper]);
    }
    /* nil → NULL → nil, without a call. */
    CHECK_EQ(CALL(s, QNIL), QNIL);
    NO_SLOW_CALLS();
    EXPECT_RAISE(CALL(s, BAD));
    s = stub("ret_string", fx_ret_raw);
    ret_value = 0;
    CHECK_EQ(call0(s), QNIL);
    NO_SLOW_CALLS();
    ret_value = (uint64_t)"abc";
    CHECK_EQ(call0(s), 0x5700);
    expect_calls(1, H_STR_NEW_CSTR, (VALUE) "abc", 0);

    s = stub("void_void", fx_void);
    void_calls = 0;
    CHECK_EQ(call0(s), QNIL);
    CHECK_EQ(void_calls, 1);
}

/* ---- many arguments ------------------------------------------------------ */
#define H(x) (h = h * 31 + (int64_t)(x))
static int64_t fx_sum8_i64(int64_t a, int64_t b, int64_t c, int64_t d, int64_t e, int64_t f, int64_t g, int64_t i) {
    int64_t h = 0; H(a); H(b); H(c); H(d); H(e); H(f); H(g); H(i); return h;
}
static int64_t fx_sum9_i64(int64_t a, int64_t b, int64_t c, int64_t d, int64_t e, int64_t f, int64_t g, int64_t i,
                           int64_t j) {
    int64_t h = 0; H(a); H(b); H(c); H(d); H(e); H(f); H(g); H(i); H(j); return h;
}
#define P15(T) T a1, T a2, T a3, T a4, T a5, T a6, T a7, T a8, T a9, T a10, T a11, T a12, T a13, T a14, T a15
#define H15 H(a1); H(a2); H(a3); H(a4); H(a5); H(a6); H(a7); H(a8); H(a9); H(a10); H(a11); H(a12); H(a13); H(a14); H(a15)
static int64_t fx_sum15_i64(P15(int64_t)) { int64_t h = 0; H15; return h; }
static int64_t fx_sum16_i64(P15(int64_t), int64_t a16) { int64_t h = 0; H15; H(a16); return h; }
static int64_t fx_sum20_i64(P15(int64_t), int64_t a16, int64_t a17, int64_t a18, int64_t a19, int64_t a20) {
    int64_t h = 0; H15; H(a16); H(a17); H(a18); H(a19); H(a20); return h;
}
#undef H
#define H(x) (h = h * 1.25 + (x))
static double fx_sum8_dbl(double a, double b, double c, double d, double e, double f, double g, double i) {
    double h = 0; H(a); H(b); H(c); H(d); H(e); H(f); H(g); H(i); return h;
}
static double fx_sum9_dbl(double a, double b, double c, double d, double e, double f, double g, double i, double j) {
    double h = 0; H(a); H(b); H(c); H(d); H(e); H(f); H(g); H(i); H(j); return h;
}
static double fx_sum15_dbl(P15(double)) { double h = 0; H15; return h; }
static double fx_sum16_dbl(P15(double), double a16) { double h = 0; H15; H(a16); return h; }
static double fx_sum20_dbl(P15(double), double a16, double a17, double a18, double a19, double a20) {
    double h = 0; H15; H(a16); H(a17); H(a18); H(a19); H(a20); return h;
}
static float fx_sum9_f32(float a, float b, float c, float d, float e, float f, float g, float i, float j) {
    float h = 0; H(a); H(b); H(c); H(d); H(e); H(f); H(g); H(i); H(j); return h;
}
static double fx_mix15(int64_t a1, double a2, int64_t a3, double a4, int64_t a5, double a6, int64_t a7, double a8,
                       int64_t a9, double a10, int64_t a11, double a12, int64_t a13, double a14, int64_t a15) {
    double h = 0; H15; return h;
}
static double str_h(const char *s) { return s ? (double)strlen(s) * 1000 + (unsigned char)s[0] : -1; }
static double fx_mixed10(int32_t a, double b, const char *c, void *d, bool e, uint8_t f, float g, int64_t i,
                         uint64_t j, int16_t k) {
    double h = 0; H(a); H(b); H(str_h(c)); H((double)(uintptr_t)d); H(e); H(f); H(g); H((double)i); H((double)j); H(k);
    return h;
}
static double fx_mixed20(int8_t a1, float a2, uint16_t a3, double a4, void *a5, float a6, const char *a7, double a8,
                         int8_t a9, float a10, uint16_t a11, double a12, void *a13, float a14, const char *a15,
                         double a16, int8_t a17, float a18, uint16_t a19, double a20) {
    double h = 0;
    H(a1); H(a2); H(a3); H(a4); H((double)(uintptr_t)a5); H(a6); H(str_h(a7)); H(a8); H(a9); H(a10);
    H(a11); H(a12); H((double)(uintptr_t)a13); H(a14); H(str_h(a15)); H(a16); H(a17); H(a18); H(a19); H(a20);
    return h;
}
static double fx_vsum(int n, ...) {
    va_list ap;
    va_start(ap, n);
    double h = n;
    for (int i = 0; i < 9; i++) {
        H((double)va_arg(ap, int64_t));
        H(va_arg(ap, double));
    }
    va_end(ap);
    return h;
}
#undef H

static void check_int_sums(void) {
    struct { const char *name; void *fn; int n; } cases[] = {
        {"sum8_i64", fx_sum8_i64, 8}, {"sum9_i64", fx_sum9_i64, 9}, {"sum15_i64", fx_sum15_i64, 15},
        {"sum16_i64", fx_sum16_i64, 16}, {"sum20_i64", fx_sum20_i64, 20}, {"sum9_i64_blocking", fx_sum9_i64, 9}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        void *s = stub(cases[c].name, cases[c].fn);
        int n = cases[c].n, blocking = strstr(cases[c].name, "blocking") != NULL;
        for (int slow_at = -1; slow_at < n; slow_at++) {
            VALUE a[20];
            int64_t x[20];
            for (int i = 0; i < n; i++) {
                x[i] = (i + 1) * 1000003LL * (i % 2 ? -1 : 1);
                a[i] = fix(x[i]);
            }
            if (slow_at >= 0) { a[slow_at] = HEAP_FLOAT; x[slow_at] = -4242; }
            int64_t want = n == 8 ? fx_sum8_i64(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7])
                         : n == 9 ? fx_sum9_i64(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8])
                         : n == 15 ? fx_sum15_i64(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13], x[14])
                         : n == 16 ? fx_sum16_i64(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15])
                         : fx_sum20_i64(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15], x[16], x[17], x[18], x[19]);
            VALUE got = n > 15 ? call_argv(s, n, a) : call_fixed(s, n, a);
            int skip = (slow_at >= 0) + blocking;
            if (slow_at >= 0) CHECK(calls[0].helper == H_ARG_LL && calls[0].index == (uint32_t)slow_at && calls[0].value == HEAP_FLOAT, "slow path at %d", slow_at);
            if (blocking) {
                CHECK(calls[skip - 1].helper == H_WITHOUT_GVL && calls[skip - 1].value == (uint64_t)-1 && calls[skip - 1].info == 0, "without_gvl(f, block, RUBY_UBF_IO, 0)");
            }
            /* the rest: the result's boxing */
            memmove(calls, calls + skip, (ncalls - skip) * sizeof *calls);
            ncalls -= skip;
            check_int_result(got, K_I64, want);
        }
        if (n > 15) {
            VALUE a[21];
            for (int i = 0; i < 21; i++) a[i] = fix(i);
            EXPECT_RAISE(call_argv(s, n - 1, a));
            expect_calls(1, H_ARITY, (VALUE)(n - 1), 0);
            EXPECT_RAISE(call_argv(s, n + 1, a));
            EXPECT_RAISE(call_argv(s, 0, a));
        }
    }
}

static void check_dbl_sums(void) {
    struct { const char *name; void *fn; int n; } cases[] = {
        {"sum8_dbl", fx_sum8_dbl, 8}, {"sum9_dbl", fx_sum9_dbl, 9}, {"sum15_dbl", fx_sum15_dbl, 15},
        {"sum16_dbl", fx_sum16_dbl, 16}, {"sum20_dbl", fx_sum20_dbl, 20}, {"sum15_dbl_blocking", fx_sum15_dbl, 15},
        {"sum9_f32", fx_sum9_f32, 9}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        void *s = stub(cases[c].name, cases[c].fn);
        int n = cases[c].n, blocking = strstr(cases[c].name, "blocking") != NULL;
        int single = strstr(cases[c].name, "f32") != NULL;
        for (int odd_at = -1; odd_at < n; odd_at++) {
            VALUE a[20];
            double x[20];
            for (int i = 0; i < n; i++) {
                x[i] = (i + 1) * 0.5 * (i % 2 ? -1 : 1);
                a[i] = flo(x[i]);
            }
            /* Alternately a heap Float (helper → 2.5) and a Fixnum (inline). */
            if (odd_at >= 0 && odd_at % 2) { a[odd_at] = HEAP_FLOAT; x[odd_at] = 2.5; }
            if (odd_at >= 0 && odd_at % 2 == 0) { a[odd_at] = fix(-7 - odd_at); x[odd_at] = -7 - odd_at; }
            double want = single ? (double)fx_sum9_f32(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8])
                        : n == 8 ? fx_sum8_dbl(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7])
                        : n == 9 ? fx_sum9_dbl(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8])
                        : n == 15 ? fx_sum15_dbl(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13], x[14])
                        : n == 16 ? fx_sum16_dbl(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15])
                        : fx_sum20_dbl(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15], x[16], x[17], x[18], x[19]);
            VALUE got = n > 15 ? call_argv(s, n, a) : call_fixed(s, n, a);
            int skip = (odd_at >= 0 && odd_at % 2) + blocking;
            if (odd_at >= 0 && odd_at % 2) CHECK(calls[0].helper == H_ARG_DOUBLE && calls[0].index == (uint32_t)odd_at, "slow path at %d", odd_at);
            if (blocking) CHECK(calls[skip - 1].helper == H_WITHOUT_GVL, "without_gvl");
            memmove(calls, calls + skip, (ncalls - skip) * sizeof *calls);
            ncalls -= skip;
            check_double_result(got, want);
        }
    }
    void *s = stub("mix15", fx_mix15);
    VALUE a[15];
    for (int i = 0; i < 15; i++) a[i] = i % 2 ? flo(i * 0.75) : fix(i * 11 - 50);
    check_double_result(call_fixed(s, 15, a), fx_mix15(-50, 0.75, -28, 2.25, -6, 3.75, 16, 5.25, 38, 6.75, 60, 8.25, 82, 9.75, 104));
}

static void check_mixed(void) {
    void *s = stub("mixed10", fx_mixed10);
    VALUE str = embedded("str", 3, 1), ptr = pointer_object(0x7000, pointer_type);
    VALUE got = CALL(s, fix(-5), flo(1.5), str, ptr, QTRUE, fix(200), flo(0.25), fix(-9), fix(77), fix(-300));
    check_double_result(got, fx_mixed10(-5, 1.5, "str", (void *)0x7000, true, 200, 0.25f, -9, 77, -300));
    /* The same with every argument through its slow path. */
    VALUE hs = heap_string("heap");
    VALUE other = pointer_object(0x8000, other_type);
    got = CALL(s, HEAP_FLOAT, HEAP_FLOAT, hs, other, QFALSE, HEAP_FLOAT, HEAP_FLOAT, HEAP_FLOAT, HEAP_FLOAT, HEAP_FLOAT);
    double want = fx_mixed10(0x181, 2.5, "heap", (void *)(0xabc000 + 3), false, 0xfe, 2.5f, -4242,
                             0xfedcba9876543210ULL, 0x181);
    for (int i = 0; i < 9 && i < ncalls; i++) {
        CHECK(calls[i].index == (uint32_t)(i < 4 ? i : i + 1) && calls[i].info == info_of_current, "call %d", i);
    }
    drop_calls(9);
    check_double_result(got, want);

    const char *names[] = {"mixed20", "mixed20_blocking"};
    for (int b = 0; b < 2; b++) {
        s = stub(names[b], fx_mixed20);
        VALUE a[20];
        VALUE s1 = embedded("abc", 3, 0), s2 = heap_string("heap string");
        VALUE p1 = pointer_object(0x1000, pointer_type);
        VALUE v[20] = {fix(-3), flo(0.5), fix(65535), flo(-1.25), p1, flo(2.0), s1, fix(4),
                       fix(127), HEAP_FLOAT, fix(7), flo(3.5), QNIL, fix(1), s2, flo(-0.75),
                       fix(-128), flo(0.125), fix(65536 + 5), HEAP_FLOAT};
        memcpy(a, v, sizeof a);
        got = call_argv(s, 20, a);
        want = fx_mixed20(-3, 0.5f, 65535, -1.25, (void *)0x1000, 2.0f, "abc", 4.0, 127, 2.5f, 7, 3.5, NULL, 1.0f,
                          "heap string", -0.75, -128, 0.125f, 5, 2.5);
        CHECK(calls[0].helper == H_ARG_DOUBLE && calls[0].index == 9, "argument 10's slow path");
        CHECK(calls[1].helper == H_ARG_CSTR && calls[1].index == 14, "argument 15's slow path");
        CHECK(calls[2].helper == H_ARG_DOUBLE && calls[2].index == 19, "argument 20's slow path");
        drop_calls(3 + b);
        check_double_result(got, want);
        EXPECT_RAISE(call_argv(s, 19, a));
        a[6] = BAD;
        EXPECT_RAISE(call_argv(s, 20, a));
    }

    s = stub("vsum", fx_vsum);
    VALUE va[19];
    va[0] = fix(9);
    for (int i = 0; i < 9; i++) {
        va[1 + 2 * i] = fix(i * 100 - 333);
        va[2 + 2 * i] = flo(i * 0.5 + 0.25);
    }
    got = call_argv(s, 19, va);
    want = fx_vsum(9, -333LL, 0.25, -233LL, 0.75, -133LL, 1.25, -33LL, 1.75, 67LL, 2.25, 167LL, 2.75, 267LL, 3.25,
                   367LL, 3.75, 467LL, 4.25);
    check_double_result(got, want);
}

static void set_errno_to(int e) { errno = e; }

static void check_errno(void) {
    const char *names[] = {"set_errno", "set_errno_blocking"};
    for (int b = 0; b < 2; b++) {
        void *s = stub(names[b], set_errno_to);
        int values[] = {42, 0, 123456, -1};
        for (int i = 0; i < 4; i++) {
            errno = 7;
            saved_errno = 99;
            CHECK_EQ(CALL(s, fix(values[i])), QNIL);
            CHECK_EQ(saved_errno, values[i]);
        }
    }
}


/* ---- structs by value (AAPCS64: x-register words, HFAs in v registers,
 * stack copies, copies passed by reference over 16 bytes, x8 results) ---- */
typedef struct { int32_t a, b; } s_ii;
typedef struct { int64_t a; double b; } s_ld;
typedef struct { uint8_t a, b, c; } s_b3;
typedef struct { int32_t a, b, c; } s_i12;
typedef struct { float x, y; } s_ff;
typedef struct { float x, y, z; } s_fff;
typedef struct { double x, y; } s_dd;
typedef struct { double x, y, z, w; } s_dddd;
typedef struct { int64_t a, b, c; } s_lll;
typedef struct { int64_t a; double b; int32_t c; uint8_t d; int64_t e; float f; } s_big;

#define ID_STRUCT(T) static T fx_id_##T(T s) { return s; }
ID_STRUCT(s_ii) ID_STRUCT(s_ld) ID_STRUCT(s_b3) ID_STRUCT(s_i12) ID_STRUCT(s_ff) ID_STRUCT(s_fff)
ID_STRUCT(s_dd) ID_STRUCT(s_dddd) ID_STRUCT(s_lll) ID_STRUCT(s_big)

/* Writes to its by-reference copy: the caller's Struct must not change. */
static int64_t fx_scribble_lll(s_lll s) { int64_t sum = s.a + s.b + s.c; s.a = s.b = s.c = -1; __asm__ volatile("" ::"r"(&s) : "memory"); return sum; }

#define H(x) (h = h * 1.25 + (double)(x))
static double fx_structs_exhaust(s_dddd p, s_dddd q, s_ff r, int64_t i1, int64_t i2, int64_t i3, int64_t i4,
                                 int64_t i5, int64_t i6, int64_t i7, s_ld t, s_lll u) {
    double h = 0;
    H(p.x); H(p.y); H(p.z); H(p.w); H(q.x); H(q.y); H(q.z); H(q.w); H(r.x); H(r.y);
    H(i1); H(i2); H(i3); H(i4); H(i5); H(i6); H(i7); H(t.a); H(t.b); H(u.a); H(u.b); H(u.c);
    return h;
}
static double fx_structs_mixed(int32_t a, s_lll b, double c, s_ii d, s_b3 e, s_fff f) {
    double h = 0;
    H(a); H(b.a); H(b.b); H(b.c); H(c); H(d.a); H(d.b); H(e.a); H(e.b); H(e.c); H(f.x); H(f.y); H(f.z);
    return h;
}
static double fx_structs_argv(s_ld a, int64_t b1, int64_t b2, int64_t b3, int64_t b4, int64_t b5, int64_t b6,
                              int64_t b7, int64_t b8, int64_t b9, int64_t b10, int64_t b11, int64_t b12, int64_t b13,
                              int64_t b14, int64_t b15, s_lll c) {
    double h = 0;
    H(a.a); H(a.b); H(b1); H(b2); H(b3); H(b4); H(b5); H(b6); H(b7); H(b8); H(b9); H(b10); H(b11); H(b12); H(b13);
    H(b14); H(b15); H(c.a); H(c.b); H(c.c);
    return h;
}
#undef H

/* Struct instances live in static memory; their address is the "VALUE"
 * the fake arg_struct helper hands back. */
static s_ii v_ii = {-7, 0x7fffffff};
static s_ld v_ld = {-1234567890123LL, 2.75};
static s_b3 v_b3 = {1, 0x80, 0xff};
static s_i12 v_i12 = {-1, 2, -3};
static s_ff v_ff = {1.5f, -0.25f};
static s_fff v_fff = {0.1f, 0.2f, 0.3f};
static s_dd v_dd = {1e300, -0.0};
static s_dddd v_dddd = {1.0, 2.0, 3.5, -4.25}, v_dddd2 = {-1.0, 1e-300, 0.5, 8.0};
static s_lll v_lll = {1LL << 40, -2, 3};
static s_big v_big = {-9, 6.5, -33, 200, 1LL << 50, 0.75f};

#define CHECK_STRUCT_ID(T, v) do { \
    void *s_ = stub("id_" #T, fx_id_##T); \
    ret_struct_size = sizeof(T); \
    memset(ret_struct_bytes, 0xee, sizeof ret_struct_bytes); \
    CHECK_EQ(CALL(s_, (VALUE)&v), 0x57c7); \
    expect_calls(2, H_ARG_STRUCT, (VALUE)&v, 0, H_RET_STRUCT, (VALUE)0, 0); \
    CHECK(memcmp(ret_struct_bytes, &v, sizeof(T)) == 0, "%s came back changed", #T); \
    EXPECT_RAISE(CALL(s_, BAD)); \
} while (0)

static void check_structs(void) {
    CHECK_STRUCT_ID(s_ii, v_ii);
    CHECK_STRUCT_ID(s_ld, v_ld);
    CHECK_STRUCT_ID(s_b3, v_b3);
    CHECK_STRUCT_ID(s_i12, v_i12);
    CHECK_STRUCT_ID(s_ff, v_ff);
    CHECK_STRUCT_ID(s_fff, v_fff);
    CHECK_STRUCT_ID(s_dd, v_dd);
    CHECK_STRUCT_ID(s_dddd, v_dddd);
    CHECK_STRUCT_ID(s_lll, v_lll);
    CHECK_STRUCT_ID(s_big, v_big);

    void *s = stub("scribble_lll", fx_scribble_lll);
    s_lll before = v_lll;
    VALUE sum = CALL(s, (VALUE)&v_lll);
    drop_calls(1);
    check_int_result(sum, K_I64, v_lll.a + v_lll.b + v_lll.c);
    CHECK(memcmp(&before, &v_lll, sizeof before) == 0, "the callee wrote to the Struct's own memory");

    const char *names[] = {"structs_exhaust", "structs_exhaust_blocking"};
    for (int b = 0; b < 2; b++) {
        s = stub(names[b], fx_structs_exhaust);
        VALUE got = CALL(s, (VALUE)&v_dddd, (VALUE)&v_dddd2, (VALUE)&v_ff, fix(1), fix(-2), fix(3), fix(-4), fix(5),
                         fix(-6), fix(7), (VALUE)&v_ld, (VALUE)&v_lll);
        double want = fx_structs_exhaust(v_dddd, v_dddd2, v_ff, 1, -2, 3, -4, 5, -6, 7, v_ld, v_lll);
        CHECK(calls[0].helper == H_ARG_STRUCT && calls[0].index == 0 && calls[3].helper == H_ARG_STRUCT &&
              calls[3].index == 10 && calls[4].index == 11, "struct slow paths");
        drop_calls(5 + b);
        check_double_result(got, want);
    }
    s = stub("structs_mixed", fx_structs_mixed);
    VALUE got = CALL(s, fix(-11), (VALUE)&v_lll, flo(0.5), (VALUE)&v_ii, (VALUE)&v_b3, (VALUE)&v_fff);
    drop_calls(4);
    check_double_result(got, fx_structs_mixed(-11, v_lll, 0.5, v_ii, v_b3, v_fff));
    s = stub("structs_argv", fx_structs_argv);
    VALUE a[17];
    a[0] = (VALUE)&v_ld;
    for (int i = 1; i <= 15; i++) a[i] = fix(i * i - 40);
    a[16] = (VALUE)&v_lll;
    got = call_argv(s, 17, a);
    drop_calls(2);
    check_double_result(got, fx_structs_argv(v_ld, -39, -36, -31, -24, -15, -4, 9, 24, 41, 60, 81, 104, 129, 156,
                                             185, v_lll));
    s = stub("id_s_dddd_blocking", fx_id_s_dddd);
    ret_struct_size = sizeof(s_dddd);
    CHECK_EQ(CALL(s, (VALUE)&v_dddd2), 0x57c7);
    CHECK(memcmp(ret_struct_bytes, &v_dddd2, sizeof(s_dddd)) == 0, "HFA result through the blocking path");
    s = stub("id_s_lll_blocking", fx_id_s_lll);
    ret_struct_size = sizeof(s_lll);
    CHECK_EQ(CALL(s, (VALUE)&v_lll), 0x57c7);
    CHECK(memcmp(ret_struct_bytes, &v_lll, sizeof(s_lll)) == 0, "x8 result through the blocking path");
}

/* ---- Apple arm64 layouts, read back on Linux ----------------------------
 * The stub was planned for Apple; this Linux fixture takes eight register
 * words and then sees the stack argument area as plain 8-byte words. */
static uint64_t stack_words[6];
static uint64_t fx_stack_words(uint64_t r0, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4, uint64_t r5,
                               uint64_t r6, uint64_t r7, uint64_t s0, uint64_t s1, uint64_t s2, uint64_t s3,
                               uint64_t s4, uint64_t s5) {
    (void)r1, (void)r2, (void)r3, (void)r4, (void)r5, (void)r6, (void)r7;
    uint64_t w[6] = {s0, s1, s2, s3, s4, s5};
    memcpy(stack_words, w, sizeof w);
    return r0;
}
static void expect_bytes(size_t at, const void *want, size_t n, const char *what) {
    CHECK(memcmp((const char *)stack_words + at, want, n) == 0, "%s at stack offset %zu", what, at);
}

static void check_apple_layouts(void) {
    const char *names[] = {"apple_packed", "apple_packed_blocking"};
    for (int b = 0; b < 2; b++) {
        void *s = stub(names[b], fx_stack_words);
        int8_t i8 = -100; int16_t i16 = -30000; uint8_t u8 = 250; float f = 0.1f; int32_t i32 = -2000000000;
        uint8_t t = 1; double d = -1e300; uint16_t u16 = 65000;
        VALUE a[24] = {fix(11), fix(2), fix(3), fix(4), fix(5), fix(6), fix(7), fix(8),
                       flo(1), flo(2), flo(3), flo(4), flo(5), flo(6), flo(7), flo(8),
                       fix(i8), fix(i16), fix(u8), flo(0.1), fix(i32), QTRUE, HEAP_FLOAT, fix(u16)};
        d = 2.5; /* HEAP_FLOAT converts to 2.5 */
        memset(stack_words, 0xa5, sizeof stack_words);
        VALUE got = call_argv(s, 24, a);
        drop_calls(1 + b);
        check_int_result(got, K_U64, 11);
        if (trace) for (int i = 0; i < 6; i++) printf("word %d: %016" PRIx64 "\n", i, stack_words[i]);
        expect_bytes(0, &i8, 1, "int8");
        expect_bytes(2, &i16, 2, "int16");
        expect_bytes(4, &u8, 1, "uint8");
        expect_bytes(8, &f, 4, "float");
        expect_bytes(12, &i32, 4, "int32");
        expect_bytes(16, &t, 1, "bool");
        expect_bytes(24, &d, 8, "double");
        expect_bytes(32, &u16, 2, "uint16");
    }
    void *s = stub("apple_varargs", fx_stack_words);
    VALUE str = embedded("fmt", 3, 0);
    memset(stack_words, 0xa5, sizeof stack_words);
    VALUE got = CALL(s, str, fix(-5), flo(1.5), pointer_object(0xfeed, pointer_type), fix(-(1LL << 40)), flo(0.25));
    check_int_result(got, K_U64, (uint64_t)((struct RString *)str)->as.ary);
    /* Every variadic argument in its own 8-byte slot; int extended to 64 bits. */
    CHECK_EQ(stack_words[0], (uint64_t)-5);
    CHECK_EQ(stack_words[1], bits(1.5));
    CHECK_EQ(stack_words[2], 0xfeed);
    CHECK_EQ(stack_words[3], (uint64_t)-(1LL << 40));
    CHECK_EQ(stack_words[4], bits(0.25));
}

/* ---- ABI hygiene ------------------------------------------------------------ */
static uint64_t sp_mod16(void) {
    uint64_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp & 15;
}
static uint64_t fx_stack_aligned0(void) { return sp_mod16(); }
static uint64_t fx_stack_aligned9d(double a, double b, double c, double d, double e, double f, double g, double h,
                                   double i) {
    (void)a, (void)b, (void)c, (void)d, (void)e, (void)f, (void)g, (void)h, (void)i;
    return sp_mod16();
}
static uint64_t fx_stack_aligned20(P15(int64_t), int64_t a16, int64_t a17, int64_t a18, int64_t a19, int64_t a20) {
    (void)a1, (void)a2, (void)a3, (void)a4, (void)a5, (void)a6, (void)a7, (void)a8, (void)a9, (void)a10;
    (void)a11, (void)a12, (void)a13, (void)a14, (void)a15, (void)a16, (void)a17, (void)a18, (void)a19, (void)a20;
    return sp_mod16();
}
/* Trashes every caller-saved register it may (x9-x17, v16-v31 and the
 * argument registers) before returning x. */
static int64_t fx_clobber(int64_t x) {
    __asm__ volatile(
        "mov x9, #-1\n mov x10, #-1\n mov x11, #-1\n mov x12, #-1\n mov x13, #-1\n mov x14, #-1\n mov x15, #-1\n"
        "mov x16, #-1\n mov x17, #-1\n mov x1, #-1\n mov x2, #-1\n mov x3, #-1\n mov x4, #-1\n mov x5, #-1\n"
        "mov x6, #-1\n mov x7, #-1\n mov x8, #-1\n movi v16.2d, #-1\n movi v17.2d, #-1\n movi v31.2d, #-1\n"
        "movi v0.2d, #-1\n movi v1.2d, #-1\n movi v7.2d, #-1\n"
        ::: "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14", "x15", "x16",
            "x17", "v0", "v1", "v7", "v16", "v17", "v31", "memory");
    return x;
}

static void check_hygiene(void) {
    VALUE a[20];
    for (int i = 0; i < 20; i++) a[i] = fix(i);
    check_int_result(call0(stub("stack_aligned0", fx_stack_aligned0)), K_U64, 0);
    VALUE d[9];
    for (int i = 0; i < 9; i++) d[i] = flo(i + 0.5);
    check_int_result(call_fixed(stub("stack_aligned9d", fx_stack_aligned9d), 9, d), K_U64, 0);
    void *s = stub("stack_aligned9d_blocking", fx_stack_aligned9d);
    VALUE got = call_fixed(s, 9, d);
    drop_calls(1);
    check_int_result(got, K_U64, 0);
    check_int_result(call_argv(stub("stack_aligned20", fx_stack_aligned20), 20, a), K_U64, 0);
    s = stub("clobber_caller_saved", fx_clobber);
    check_int_result(CALL(s, fix(-77)), K_I64, -77);
    got = CALL(s, HEAP_FLOAT);
    drop_calls(1);
    check_int_result(got, K_I64, -4242);

    /* Callee-saved registers survive every kind of stub: inline paths,
     * slow paths, tail calls, argv form, blocking calls. */
    struct { const char *name; void *fn; VALUE arg; } probes[] = {
        {"id_i64", fx_id_i64, fix(5)}, {"id_i64", fx_id_i64, HEAP_FLOAT}, {"id_u64", fx_id_u64, fix(-1)},
        {"id_f64", fx_id_f64, HEAP_FLOAT}, {"id_string", fx_id_string, 0}, {"id_pointer", fx_id_pointer, QNIL},
        {"set_errno_blocking", set_errno_to, fix(3)}, {"id_s_lll_blocking", fx_id_s_lll, (VALUE)&v_lll},
        {"id_s_dddd", fx_id_s_dddd, (VALUE)&v_dddd}};
    for (size_t i = 0; i < sizeof probes / sizeof *probes; i++) {
        s = stub(probes[i].name, probes[i].fn);
        VALUE arg = probes[i].arg ? probes[i].arg : heap_string("heap");
        VALUE result = 0;
        ret_struct_size = 32;
        uint64_t clobbered = callee_saved_probe(s, SELF, arg, &result);
        CHECK(clobbered == 0, "%" PRIu64 " callee-saved registers changed", clobbered);
        CHECK(result != 0, "no result");
    }
}

/* ---- two strings, float promotions ----------------------------------------- */
static uint64_t fx_str_pair(const char *a, const char *b) { return strlen(a) * 1000 + strlen(b); }
static double fx_float_to_double(float x) { return x; }
static float fx_double_to_float(double x) { return (float)x; }
static float fx_add_float(float a, float b) { return a + b; }
static double fx_int_float_mix(int8_t a, float b, int32_t c, double d) { return a * 1000.0 + b * 100.0 + c * 10.0 + d; }

static void check_pairs_and_promotions(void) {
    void *s = stub("str_pair", fx_str_pair);
    VALUE a = slow_string("first slow string"), b = slow_string("second");
    VALUE got = CALL(s, a, b);
    /* Each string its own keep-alive slot: the first must survive the second's slow path. */
    expect_calls(2, H_ARG_CSTR, a, 0, H_ARG_CSTR, b, 1);
    drop_calls(2);
    check_int_result(got, K_U64, 17 * 1000 + 6);
    got = CALL(s, embedded("ab", 2, 1), b);
    drop_calls(1);
    check_int_result(got, K_U64, 2 * 1000 + 6);
    check_double_result(CALL(stub("float_to_double", fx_float_to_double), flo(0.1)), (double)0.1f);
    check_double_result(CALL(stub("double_to_float", fx_double_to_float), flo(0.1)), (double)0.1f);
    s = stub("add_float", fx_add_float);
    check_double_result(CALL(s, flo(1.25), fix(2)), 3.25);
    got = CALL(s, HEAP_FLOAT, flo(0.5));
    drop_calls(1);
    check_double_result(got, 3.0);
    s = stub("int_float_mix", fx_int_float_mix);
    check_double_result(CALL(s, fix(-3), flo(0.5), fix(70000), flo(-0.125)), fx_int_float_mix(-3, 0.5f, 70000, -0.125));
}

/* ---- long double (binary128 in q registers and 16-aligned stack slots) ---- */
typedef struct { long double a, b; } s_qq;
static s_qq v_qq;
static long double fx_ld_regs(long double a, double b, long double c, int32_t d) { return a * 2 + b + c * 3 + d; }
/* Seven doubles leave v7 for the first long double; the rest go to the
 * stack (16-aligned, around an 8-byte double slot). */
static long double fx_ld_stack(double d0, double d1, double d2, double d3, double d4, double d5, double d6,
                               long double q7, long double s0, int32_t x0, double s16, long double s32) {
    return d0 + d1 + d2 + d3 + d4 + d5 + d6 + q7 * 2 + s0 * 3 + x0 + s16 * 5 + s32 * 7;
}
static s_qq fx_id_s_qq(s_qq v) { return v; }
typedef struct { uint8_t b[5003]; } s_5003;
static s_5003 v_5003;
/* Weighted byte sum (every byte, the odd tail included) plus x; then
 * scribbles over its copy, which must not reach the Struct's memory. */
static long double fx_big_then_ld(s_5003 v, long double x) {
    long double sum = x;
    for (int i = 0; i < 5003; i++) sum += (long double)v.b[i] * (i % 13 + 1);
    memset(v.b, 0x55, sizeof v.b);
    return sum;
}

static void check_long_doubles(void) {
    const char *regs[] = {"ld_regs", "ld_regs_blocking"};
    for (volatile int b = 0; b < 2; b++) {
        void *s = stub(regs[b], fx_ld_regs);
        ret_ld = 0;
        CHECK_EQ(CALL(s, fix(4), HEAP_FLOAT, fix(-5), fix(7)), 0x1d1d);
        CHECK(ncalls == 4 + b, "%d slow-path calls", ncalls);
        CHECK(calls[0].helper == H_ARG_LD && calls[0].value == fix(4) && calls[0].index == 0, "first long double");
        CHECK(calls[1].helper == H_ARG_DOUBLE && calls[1].index == 1, "double slow path (clobbers v0-v7)");
        CHECK(calls[2].helper == H_ARG_LD && calls[2].value == fix(-5) && calls[2].index == 2, "second long double");
        CHECK(calls[3 + b].helper == H_RET_LD, "result helper");
        long double want = fx_ld_regs(ld_of(fix(4)), 2.5, ld_of(fix(-5)), 7);
        CHECK(memcmp(&ret_ld, &want, 16) == 0, "ld_regs: %.36Lg, expected %.36Lg", ret_ld, want);
        EXPECT_RAISE(CALL(s, BAD, flo(1.0), fix(1), fix(1)));
    }
    const char *stack[] = {"ld_stack", "ld_stack_blocking"};
    for (int b = 0; b < 2; b++) {
        void *s = stub(stack[b], fx_ld_stack);
        ret_ld = 0;
        CHECK_EQ(CALL(s, flo(1.0), flo(2.0), flo(3.0), flo(4.0), flo(5.0), flo(6.0), flo(7.0), fix(1), fix(2), fix(-9),
                      HEAP_FLOAT, fix(10)), 0x1d1d);
        drop_calls(5 + b);
        long double want = fx_ld_stack(1, 2, 3, 4, 5, 6, 7, ld_of(fix(1)), ld_of(fix(2)), -9, 2.5, ld_of(fix(10)));
        CHECK(memcmp(&ret_ld, &want, 16) == 0, "ld_stack: %.36Lg, expected %.36Lg", ret_ld, want);
    }
    const char *hfa[] = {"id_s_qq", "id_s_qq_blocking"};
    for (int b = 0; b < 2; b++) {
        void *s = stub(hfa[b], fx_id_s_qq);
        v_qq.a = 1.0L / 3;
        v_qq.b = -2.0L / 7;
        ret_struct_size = sizeof(s_qq);
        memset(ret_struct_bytes, 0xee, sizeof ret_struct_bytes);
        CHECK_EQ(CALL(s, (VALUE)&v_qq), 0x57c7);
        drop_calls(2 + b);
        CHECK(memcmp(ret_struct_bytes, &v_qq, sizeof(s_qq)) == 0, "HFA of long doubles came back changed");
    }
    const char *big[] = {"big_then_ld", "big_then_ld_blocking"};
    for (int b = 0; b < 2; b++) {
        void *s = stub(big[b], fx_big_then_ld);
        for (int i = 0; i < 5003; i++) v_5003.b[i] = (uint8_t)(i * 7 + 3);
        s_5003 before = v_5003;
        ret_ld = 0;
        CHECK_EQ(CALL(s, (VALUE)&v_5003, fix(3)), 0x1d1d);
        drop_calls(3 + b);
        long double want = fx_big_then_ld(before, ld_of(fix(3)));
        CHECK(memcmp(&ret_ld, &want, 16) == 0, "big_then_ld: %.36Lg, expected %.36Lg", ret_ld, want);
        CHECK(memcmp(&before, &v_5003, sizeof before) == 0, "the callee wrote to the Struct's own memory");
    }
}

static void run_all(void) {
    check_integers();
    check_bools();
    check_floats();
    check_pointers();
    check_strings();
    check_int_sums();
    check_dbl_sums();
    check_mixed();
    check_errno();
    check_structs();
    check_apple_layouts();
    check_hygiene();
    check_pairs_and_promotions();
    check_long_doubles();
}
