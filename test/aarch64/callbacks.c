/* Runs fiddle_jit's aarch64 reverse trampolines (src/backend/aarch64_callback.rs)
 * under qemu-aarch64: C code compiled by gcc calls each trampoline, through
 * its per-callback thunk, with real C arguments; a fake runtime entry records
 * the raw 8-byte slots it receives and returns chosen bits. Every slot and
 * every return value is checked. Built and run by run_callbacks.sh; the
 * trampolines come from callbacks_blobs.h, written by `cargo test
 * harness_blobs` (the signature names there must match the ones here). */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "callbacks_blobs.h"

static int failures;
static int checks;

#define CHECK(cond, ...)                                    \
    do {                                                    \
        checks++;                                           \
        if (!(cond)) {                                      \
            failures++;                                     \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                   \
            fputc('\n', stderr);                            \
        }                                                   \
    } while (0)

/* --- the fake runtime entry: fn(slot, raw_args) -> u64 ------------------ */

struct slot {
    void *target;
    void *data;
};

static uint64_t seen[64];
static int expected_args;
static const struct slot *seen_slot;
static int calls;
static uint64_t result_bits;

/* Structs by value and long doubles arrive as addresses (valid during the
 * call): the entry copies deref_size[i] bytes from slot i. A struct result
 * goes to the address in slot nargs, a long double result over slots 0-1. */
static size_t deref_size[64];
static unsigned char seen_bytes[64][32];
static unsigned char ret_bytes[32];
static size_t ret_size;
static int ret_long_double;
static long double ld_result;

static uint64_t fake_entry(const struct slot *slot, uint64_t *raw) {
    seen_slot = slot;
    memcpy(seen, raw, sizeof(uint64_t) * expected_args);
    for (int i = 0; i < expected_args; i++) {
        if (deref_size[i]) memcpy(seen_bytes[i], (const void *)(uintptr_t)raw[i], deref_size[i]);
    }
    if (ret_size) memcpy((void *)(uintptr_t)raw[expected_args], ret_bytes, ret_size);
    if (ret_long_double) memcpy(raw, &ld_result, 16);
    calls++;
    return result_bits;
}

/* Raw slots hold a value in their low bytes; the rest is unspecified. */
static int64_t raw_int(int i, int bytes) {
    uint64_t v = seen[i];
    int shift = 64 - 8 * bytes;
    return (int64_t)(v << shift) >> shift;
}
static uint64_t raw_uint(int i, int bytes) {
    return bytes == 8 ? seen[i] : seen[i] & ((1ull << (8 * bytes)) - 1);
}
static float raw_float(int i) {
    float f;
    uint32_t bits = (uint32_t)seen[i];
    memcpy(&f, &bits, 4);
    return f;
}
static double raw_double(int i) {
    double d;
    memcpy(&d, &seen[i], 8);
    return d;
}
static uint64_t float_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}
static uint64_t double_bits(double d) {
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

/* --- code installation ---------------------------------------------------- */

static void *install(const unsigned char *code, size_t len, uint64_t literal) {
    unsigned char *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("mmap");
        return NULL;
    }
    memcpy(mem, code, len);
    memcpy(mem + len - 8, &literal, 8); /* the entry / slot literal is last */
    if (mprotect(mem, 4096, PROT_READ | PROT_EXEC) != 0) {
        perror("mprotect");
        return NULL;
    }
    __builtin___clear_cache((char *)mem, (char *)mem + len);
    return mem;
}

/* One callback: its trampoline, a slot pointing at it, a thunk for the slot. */
static void *callback(const unsigned char *tramp, size_t len, struct slot *slot) {
    slot->target = install(tramp, len, (uint64_t)(uintptr_t)fake_entry);
    slot->data = (void *)0x5eed;
    return install(thunk_code, sizeof thunk_code, (uint64_t)(uintptr_t)slot);
}

#define CALLBACK(name, slot) callback(tramp_##name, sizeof tramp_##name, slot)

static void expect_call(int nargs, uint64_t result) {
    memset(seen, 0xa5, sizeof seen);
    memset(seen_bytes, 0xa5, sizeof seen_bytes);
    memset(deref_size, 0, sizeof deref_size);
    ret_size = 0;
    ret_long_double = 0;
    expected_args = nargs;
    result_bits = result;
    seen_slot = NULL;
    calls = 0;
}

static void check_called(const char *name, const struct slot *slot) {
    CHECK(calls == 1, "%s: entry called %d times", name, calls);
    CHECK(seen_slot == slot, "%s: entry got slot %p, want %p", name, (void *)seen_slot, (void *)slot);
}

/* --- the signatures (see harness_signatures in aarch64_callback.rs) ------- */

static void test_ints(void) {
    static struct slot s;
    int32_t (*f)(int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t) = CALLBACK(ints, &s);
    expect_call(8, (uint32_t)-123456);
    int32_t r = f(-5, 250, -30000, 65000, -2000000000, 4000000000u, -9000000000000000000ll, 18000000000000000000ull);
    check_called("ints", &s);
    CHECK(r == -123456, "ints: returned %d", r);
    CHECK(raw_int(0, 1) == -5, "ints: i8 %lld", (long long)raw_int(0, 1));
    CHECK(raw_uint(1, 1) == 250, "ints: u8");
    CHECK(raw_int(2, 2) == -30000, "ints: i16");
    CHECK(raw_uint(3, 2) == 65000, "ints: u16");
    CHECK(raw_int(4, 4) == -2000000000, "ints: i32");
    CHECK(raw_uint(5, 4) == 4000000000u, "ints: u32");
    CHECK(raw_int(6, 8) == -9000000000000000000ll, "ints: i64");
    CHECK(raw_uint(7, 8) == 18000000000000000000ull, "ints: u64");
}

static void test_many_ints(void) {
    static struct slot s;
    static int target;
    int64_t (*f)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int32_t, int8_t, uint16_t,
                 void *) = CALLBACK(many_ints, &s);
    expect_call(12, (uint64_t)-77);
    int64_t r = f(1, -2, 3, -4, 5, -6, 7, 1ll << 40, -123456789, -100, 54321, &target);
    check_called("many_ints", &s);
    CHECK(r == -77, "many_ints: returned %lld", (long long)r);
    int64_t want[8] = {1, -2, 3, -4, 5, -6, 7, 1ll << 40};
    for (int i = 0; i < 8; i++) CHECK(raw_int(i, 8) == want[i], "many_ints: arg %d", i);
    CHECK(raw_int(8, 4) == -123456789, "many_ints: stack i32");
    CHECK(raw_int(9, 1) == -100, "many_ints: stack i8");
    CHECK(raw_uint(10, 2) == 54321, "many_ints: stack u16");
    CHECK(seen[11] == (uint64_t)(uintptr_t)&target, "many_ints: stack pointer");
}

static void test_many_floats(void) {
    static struct slot s;
    double (*f)(double, float, double, float, double, float, double, float, double, float, double) =
        CALLBACK(many_floats, &s);
    expect_call(11, double_bits(-6.5e300));
    double r = f(0.5, 1.25f, -2.5, 3.75f, 1e-300, -5.5f, 6.0, 7.125f, 8.5, -9.25f, 10.0625);
    check_called("many_floats", &s);
    CHECK(r == -6.5e300, "many_floats: returned %g", r);
    CHECK(raw_double(0) == 0.5 && raw_float(1) == 1.25f && raw_double(2) == -2.5 && raw_float(3) == 3.75f,
          "many_floats: v0-v3");
    CHECK(raw_double(4) == 1e-300 && raw_float(5) == -5.5f && raw_double(6) == 6.0 && raw_float(7) == 7.125f,
          "many_floats: v4-v7");
    CHECK(raw_double(8) == 8.5, "many_floats: stack double %g", raw_double(8));
    CHECK(raw_float(9) == -9.25f, "many_floats: stack float %g", raw_float(9));
    CHECK(raw_double(10) == 10.0625, "many_floats: stack double %g", raw_double(10));
}

static void test_mixed(void) {
    static struct slot s;
    static char buf[4];
    float (*f)(int32_t, double, void *, float, int8_t, double, uint16_t, float, int64_t, double, int32_t, double,
               uint8_t, float, int64_t, double, int16_t, double, uint32_t, float) = CALLBACK(mixed, &s);
    expect_call(20, float_bits(-0.375f));
    float r = f(-1, 1.5, buf, 2.5f, -3, 3.5, 4, 4.5f, -5, 5.5, 6, 6.5, 7, 7.5f, -8, 8.5, -9, 9.5, 10, 10.5f);
    check_called("mixed", &s);
    CHECK(r == -0.375f, "mixed: returned %g", r);
    CHECK(raw_int(0, 4) == -1, "mixed: 0");
    CHECK(raw_double(1) == 1.5, "mixed: 1");
    CHECK(seen[2] == (uint64_t)(uintptr_t)buf, "mixed: 2");
    CHECK(raw_float(3) == 2.5f, "mixed: 3");
    CHECK(raw_int(4, 1) == -3, "mixed: 4");
    CHECK(raw_double(5) == 3.5, "mixed: 5");
    CHECK(raw_uint(6, 2) == 4, "mixed: 6");
    CHECK(raw_float(7) == 4.5f, "mixed: 7");
    CHECK(raw_int(8, 8) == -5, "mixed: 8");
    CHECK(raw_double(9) == 5.5, "mixed: 9");
    CHECK(raw_int(10, 4) == 6, "mixed: 10");
    CHECK(raw_double(11) == 6.5, "mixed: 11");
    CHECK(raw_uint(12, 1) == 7, "mixed: 12");
    CHECK(raw_float(13) == 7.5f, "mixed: 13");
    CHECK(raw_int(14, 8) == -8, "mixed: 14 (x7)");
    CHECK(raw_double(15) == 8.5, "mixed: 15 (v7)");
    CHECK(raw_int(16, 2) == -9, "mixed: 16 (stack)");
    CHECK(raw_double(17) == 9.5, "mixed: 17 (stack)");
    CHECK(raw_uint(18, 4) == 10, "mixed: 18 (stack)");
    CHECK(raw_float(19) == 10.5f, "mixed: 19 (stack)");
}

static void test_nothing(void) {
    static struct slot s;
    void (*f)(void) = CALLBACK(nothing, &s);
    expect_call(0, 0);
    f();
    check_called("nothing", &s);
}

static void test_bools(void) {
    static struct slot s;
    bool (*f)(bool, void *, bool) = CALLBACK(bools, &s);
    expect_call(3, 1);
    bool r = f(true, NULL, false);
    check_called("bools", &s);
    CHECK(r == true, "bools: returned %d", r);
    CHECK(raw_uint(0, 1) == 1 && seen[1] == 0 && raw_uint(2, 1) == 0, "bools: args");
}

static void test_stack_narrow(void) {
    static struct slot s;
    uint8_t (*f)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, double, double,
                 double, double, double, double, double, int8_t, uint8_t, int16_t, uint16_t, int32_t, float, double,
                 bool, uint32_t) = CALLBACK(stack_narrow, &s);
    expect_call(25, 200);
    uint8_t r = f(10, 11, 12, 13, 14, 15, 16, 17, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, -128, 255, -32768, 65535,
                  -7, 3.5f, -1e10, true, 4294967295u);
    check_called("stack_narrow", &s);
    CHECK(r == 200, "stack_narrow: returned %u", r);
    for (int i = 0; i < 8; i++) CHECK(raw_int(i, 8) == 10 + i, "stack_narrow: x%d", i);
    double d[8] = {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7};
    for (int i = 0; i < 8; i++) CHECK(raw_double(8 + i) == d[i], "stack_narrow: v%d", i);
    CHECK(raw_int(16, 1) == -128, "stack_narrow: i8");
    CHECK(raw_uint(17, 1) == 255, "stack_narrow: u8");
    CHECK(raw_int(18, 2) == -32768, "stack_narrow: i16");
    CHECK(raw_uint(19, 2) == 65535, "stack_narrow: u16");
    CHECK(raw_int(20, 4) == -7, "stack_narrow: i32");
    CHECK(raw_float(21) == 3.5f, "stack_narrow: f32");
    CHECK(raw_double(22) == -1e10, "stack_narrow: f64");
    CHECK(raw_uint(23, 1) == 1, "stack_narrow: bool");
    CHECK(raw_uint(24, 4) == 4294967295u, "stack_narrow: u32");
}

static void test_pointer_ret(void) {
    static struct slot s;
    static int target;
    void *(*f)(float, int64_t) = CALLBACK(pointer_ret, &s);
    expect_call(2, (uint64_t)(uintptr_t)&target);
    void *r = f(-0.0f, 1ll << 62);
    check_called("pointer_ret", &s);
    CHECK(r == &target, "pointer_ret: returned %p", r);
    CHECK(float_bits(raw_float(0)) == 0x80000000u, "pointer_ret: -0.0f bits");
    CHECK(raw_int(1, 8) == 1ll << 62, "pointer_ret: i64");
}

/* Two callbacks of one signature share the trampoline code but not slots. */
static void test_two_slots_one_trampoline(void) {
    static struct slot a, b;
    int32_t (*fa)(int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t) = CALLBACK(ints, &a);
    b.target = a.target;
    b.data = (void *)0xb;
    int32_t (*fb)(int8_t, uint8_t, int16_t, uint16_t, int32_t, uint32_t, int64_t, uint64_t) =
        install(thunk_code, sizeof thunk_code, (uint64_t)(uintptr_t)&b);
    expect_call(8, 1);
    fb(1, 2, 3, 4, 5, 6, 7, 8);
    check_called("second slot", &b);
    expect_call(8, 2);
    CHECK(fa(1, 2, 3, 4, 5, 6, 7, 8) == 2, "first slot result");
    check_called("first slot", &a);
}

/* --- structs by value and long doubles ------------------------------------ */
typedef struct { int64_t a, b; } s_ll;
typedef struct { float x, y; } s_ff;
typedef struct { int64_t a, b, c, d; } s_l4;
typedef struct { double x, y; } s_dd;
typedef struct { double x, y, z; } s_d3;
typedef struct { double x, y, z, w; } s_d4;
typedef struct { int64_t a; int32_t b; } s_li;
typedef struct { int64_t a, b, c; } s_l3;

#define SEEN_IS(i, v) CHECK(memcmp(seen_bytes[i], &(v), sizeof(v)) == 0, "%s: argument %d's bytes", __func__, i)

static void test_structs(void) {
    static struct slot s;
    void (*f)(int32_t, s_ll, s_ff, s_l4, s_dd) = CALLBACK(structs, &s);
    s_ll ll = {-1, 1ll << 50};
    s_ff ff = {1.5f, -0.25f};
    s_l4 l4 = {1, -2, 3, -4};
    s_dd dd = {1e300, -0.5};
    expect_call(5, 0);
    deref_size[1] = sizeof ll, deref_size[2] = sizeof ff, deref_size[3] = sizeof l4, deref_size[4] = sizeof dd;
    f(-7, ll, ff, l4, dd);
    check_called("structs", &s);
    CHECK(raw_int(0, 4) == -7, "structs: i32");
    SEEN_IS(1, ll);
    SEEN_IS(2, ff);
    SEEN_IS(3, l4);
    SEEN_IS(4, dd);
}

static void test_struct_stack(void) {
    static struct slot s;
    int64_t (*f)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, s_ll, double, double, double, double,
                 double, double, s_d3, double, int64_t) = CALLBACK(struct_stack, &s);
    s_ll ll = {5, -6};
    s_d3 d3 = {0.125, -8.5, 3e-300};
    expect_call(17, 99);
    deref_size[7] = sizeof ll, deref_size[14] = sizeof d3;
    int64_t r = f(0, 1, 2, 3, 4, 5, 6, ll, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, d3, -9.75, -(1ll << 60));
    check_called("struct_stack", &s);
    CHECK(r == 99, "struct_stack: returned %lld", (long long)r);
    for (int i = 0; i < 7; i++) CHECK(raw_int(i, 8) == i, "struct_stack: x%d", i);
    SEEN_IS(7, ll);
    for (int i = 0; i < 6; i++) CHECK(raw_double(8 + i) == 0.5 + i, "struct_stack: v%d", i);
    SEEN_IS(14, d3);
    CHECK(raw_double(15) == -9.75, "struct_stack: double after the HFA (stack)");
    CHECK(raw_int(16, 8) == -(1ll << 60), "struct_stack: last i64 (stack)");
}

static void test_struct_returns(void) {
    static struct slot a, b, c;
    s_d4 (*fa)(double) = CALLBACK(ret_hfa, &a);
    s_d4 d4 = {1.0, -2.0, 0.1, 1e-310};
    expect_call(1, 0xbad);
    memcpy(ret_bytes, &d4, ret_size = sizeof d4);
    s_d4 r4 = fa(6.5);
    check_called("ret_hfa", &a);
    CHECK(raw_double(0) == 6.5, "ret_hfa: argument");
    CHECK(memcmp(&r4, &d4, sizeof d4) == 0, "ret_hfa: v0-v3");
    s_li (*fb)(void) = CALLBACK(ret_ll, &b);
    s_li li = {-3, 77};
    expect_call(0, 0xbad);
    memcpy(ret_bytes, &li, ret_size = sizeof li);
    s_li r2 = fb();
    check_called("ret_ll", &b);
    CHECK(r2.a == -3 && r2.b == 77, "ret_ll: x0/x1");
    s_l3 (*fc)(int32_t) = CALLBACK(ret_big, &c);
    s_l3 l3 = {1ll << 40, -2, 3};
    expect_call(1, 0xbad);
    memcpy(ret_bytes, &l3, ret_size = sizeof l3);
    s_l3 r3 = fc(12);
    check_called("ret_big", &c);
    CHECK(raw_int(0, 4) == 12, "ret_big: argument");
    CHECK(memcmp(&r3, &l3, sizeof l3) == 0, "ret_big: through x8");
}

static void test_long_doubles(void) {
    static struct slot a, b;
    long double (*fa)(long double, int32_t) = CALLBACK(ld, &a);
    long double third = 1.0L / 3, big = -1e4000L, seventh = 1.0L / 7;
    expect_call(2, 0xbad);
    deref_size[0] = 16;
    ret_long_double = 1;
    ld_result = seventh;
    long double r = fa(third, -4);
    check_called("ld", &a);
    SEEN_IS(0, third);
    CHECK(raw_int(1, 4) == -4, "ld: i32");
    CHECK(memcmp(&r, &seventh, 16) == 0, "ld: q0 result %.36Lg", r);
    long double (*fb)(double, double, double, double, double, double, double, double, long double, int32_t, double,
                      long double) = CALLBACK(ld_stack, &b);
    expect_call(12, 0xbad);
    deref_size[8] = 16, deref_size[11] = 16;
    ret_long_double = 1;
    ld_result = big;
    r = fb(0, 1, 2, 3, 4, 5, 6, 7, third, 9, 10.5, seventh);
    check_called("ld_stack", &b);
    for (int i = 0; i < 8; i++) CHECK(raw_double(i) == i, "ld_stack: v%d", i);
    SEEN_IS(8, third);
    CHECK(raw_int(9, 4) == 9, "ld_stack: i32");
    CHECK(raw_double(10) == 10.5, "ld_stack: stack double");
    SEEN_IS(11, seventh);
    CHECK(memcmp(&r, &big, 16) == 0, "ld_stack: q0 result");
}

int main(void) {
    test_ints();
    test_many_ints();
    test_many_floats();
    test_mixed();
    test_nothing();
    test_bools();
    test_stack_narrow();
    test_pointer_ret();
    test_two_slots_one_trampoline();
    test_structs();
    test_struct_stack();
    test_struct_returns();
    test_long_doubles();
    if (failures) {
        fprintf(stderr, "aarch64 callbacks: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("aarch64 callbacks: all %d checks passed\n", checks);
    return 0;
}
