/* Differential check of fiddle_jit's AAPCS64 planner (src/abi/aapcs64.rs,
 * Linux rules) against gcc: gcc compiles real calls, with struct and scalar
 * arguments, to `dump_regs`, an assembly function that records x0-x8,
 * d0-d7 and the caller's stack argument area, writes a byte pattern through
 * x8 (when a struct result is returned in memory) and returns known bits in
 * x0, x1 and d0-d3. The planner's locations (plans.h, written by `cargo
 * test gcc_harness_plans`) must find every argument byte and every result
 * byte where gcc put them. Run by run_callbacks.sh under qemu-aarch64. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

struct check {
    int arg;      /* argument index; -1 ends the list */
    int offset;   /* byte offset inside the argument (struct pieces) */
    int size;     /* bytes */
    int kind;     /* 'x' register, 'v' register, 's' stack offset, '8': via x8 */
    int at;       /* register number or stack offset */
    int by_ref;   /* the location holds the address of a copy */
};

#include "plans.h"

struct dump {
    uint64_t x[9];
    uint64_t d[8];
    uint8_t stack[256];
} dumped;
uint32_t ret_size;

/* Results dump_regs returns: x0, x1, d0-d3 (each a distinct pattern), and
 * byte i of an in-memory result is 0x40 + i. */
static const uint64_t ret_x[2] = {0x1122334455667788ull, 0x99aabbccddeeff01ull};
static const uint64_t ret_d[4] = {0x3ff0000000000000ull | 0x0102030405ull, 0x4000000000000000ull | 0x1112131415ull,
                                  0x4008000000000000ull | 0x2122232425ull, 0x4010000000000000ull | 0x3132333435ull};

/* Declared as data: each test casts it to the function type it calls. */
extern char dump_regs[];
__asm__(
    ".text\n"
    ".global dump_regs\n"
    ".type dump_regs, %function\n"
    "dump_regs:\n"
    "  adrp x9, dumped\n"
    "  add x9, x9, :lo12:dumped\n"
    "  stp x0, x1, [x9, #0]\n"
    "  stp x2, x3, [x9, #16]\n"
    "  stp x4, x5, [x9, #32]\n"
    "  stp x6, x7, [x9, #48]\n"
    "  str x8, [x9, #64]\n"
    "  stp d0, d1, [x9, #72]\n"
    "  stp d2, d3, [x9, #88]\n"
    "  stp d4, d5, [x9, #104]\n"
    "  stp d6, d7, [x9, #120]\n"
    "  add x10, x9, #136\n"
    "  mov x11, sp\n"
    "  mov x12, #32\n"
    "1:ldr x13, [x11], #8\n"
    "  str x13, [x10], #8\n"
    "  subs x12, x12, #1\n"
    "  b.ne 1b\n"
    "  adrp x10, ret_size\n"
    "  ldr w10, [x10, :lo12:ret_size]\n"
    "  mov w11, #0\n"
    "2:cmp w11, w10\n"
    "  b.ge 3f\n"
    "  add w12, w11, #0x40\n"
    "  strb w12, [x8, w11, uxtw]\n"
    "  add w11, w11, #1\n"
    "  b 2b\n"
    "3:adrp x10, ret_x\n"
    "  add x10, x10, :lo12:ret_x\n"
    "  ldp x0, x1, [x10]\n"
    "  adrp x10, ret_d\n"
    "  add x10, x10, :lo12:ret_d\n"
    "  ldp d0, d1, [x10]\n"
    "  ldp d2, d3, [x10, #16]\n"
    "  ret\n"
    ".size dump_regs, .-dump_regs\n");

static int failures, checks;

static const uint8_t *location(const struct check *c, const struct dump *d) {
    const uint8_t *p;
    switch (c->kind) {
    case 'x': p = (const uint8_t *)&d->x[c->at]; break;
    case 'v': p = (const uint8_t *)&d->d[c->at]; break;
    case 's': p = d->stack + c->at; break;
    default: return NULL;
    }
    if (c->by_ref) {
        uint64_t address;
        memcpy(&address, p, 8);
        p = (const uint8_t *)(uintptr_t)address;
    }
    return p;
}

static void hex(const uint8_t *p, int n) {
    for (int i = 0; i < n; i++) fprintf(stderr, "%02x", p[i]);
}

static void check_args(const char *name, const void *const *args, int nargs, const struct check *list) {
    int seen[32] = {0};
    struct dump d = dumped;
    for (const struct check *c = list; c->arg >= 0; c++) {
        const uint8_t *want = (const uint8_t *)args[c->arg] + c->offset;
        const uint8_t *got = location(c, &d);
        checks++;
        seen[c->arg] = 1;
        if (!got || memcmp(got, want, c->size) != 0) {
            failures++;
            fprintf(stderr, "FAIL %s: arg %d bytes %d..%d expected at %c%d%s: want ", name, c->arg, c->offset,
                    c->offset + c->size, c->kind, c->at, c->by_ref ? " (by reference)" : "");
            hex(want, c->size);
            fprintf(stderr, " got ");
            if (got) hex(got, c->size);
            fputc('\n', stderr);
        }
    }
    for (int i = 0; i < nargs; i++) {
        checks++;
        if (!seen[i]) {
            failures++;
            fprintf(stderr, "FAIL %s: the plan has no location for arg %d\n", name, i);
        }
    }
}

static void check_ret(const char *name, const void *result, const struct check *list) {
    for (const struct check *c = list; c->arg >= 0; c++) {
        uint8_t want[64];
        const uint8_t *src = NULL;
        switch (c->kind) {
        case 'x': src = (const uint8_t *)&ret_x[c->at]; break;
        case 'v': src = (const uint8_t *)&ret_d[c->at]; break;
        case '8':
            for (int i = 0; i < c->size; i++) want[i] = 0x40 + i;
            src = want;
            break;
        }
        checks++;
        if (!src || memcmp((const uint8_t *)result + c->offset, src, c->size) != 0) {
            failures++;
            fprintf(stderr, "FAIL %s: result bytes %d..%d expected from %c%d: want ", name, c->offset,
                    c->offset + c->size, c->kind, c->at);
            if (src) hex(src, c->size);
            fprintf(stderr, " got ");
            hex((const uint8_t *)result + c->offset, c->size);
            fputc('\n', stderr);
        }
    }
}

/* --- the signatures (see gcc_signatures in src/abi/aapcs64.rs) ----------- */

struct s12 { int32_t a, b, c; };
struct s16 { int64_t a; double b; };
struct s24 { int64_t a, b, c; };
struct hfa3f { float a, b, c; };
struct hfa4d { double a, b, c, d; };
struct hfa2f { float a, b; };
struct hfa1d { double a; };
struct five_d { double a, b, c, d, e; };
struct nested { struct { double a, b; } in; double c; };
struct __attribute__((aligned(16))) aligned16 { int64_t a, b; };
struct mixed8 { int8_t a; float b; };

#define ARGS(...) const void *args[] = {__VA_ARGS__}; const int nargs = sizeof args / sizeof args[0]
#define CHECK_ARGS(name) check_args(#name, args, nargs, name##_args)
#define EXPECT_RESULT(type) ret_size = sizeof(type); memset(&dumped, 0, sizeof dumped)

static void small_structs(void) {
    struct s12 a = {-1, 0x7eadbeef, 3};
    int8_t b = -7;
    struct s16 c = {0x0102030405060708, -2.5};
    double e = 6.25;
    ret_size = 0;
    int32_t r = ((int32_t(*)(struct s12, int8_t, struct s16, double))(void *)dump_regs)(a, b, c, e);
    ARGS(&a, &b, &c, &e);
    CHECK_ARGS(small_structs);
    check_ret("small_structs", &r, small_structs_ret);
}

static void hfas(void) {
    float a = 1.5f;
    struct hfa3f b = {2.5f, -3.5f, 4.5f};
    struct hfa4d c = {5.5, 6.5, -7.5, 8.5};
    int32_t e = 99;
    struct nested f = {{9.25, 10.25}, 11.25};
    ret_size = 0;
    double r = ((double (*)(float, struct hfa3f, struct hfa4d, int32_t, struct nested))(void *)dump_regs)(a, b, c, e, f);
    ARGS(&a, &b, &c, &e, &f);
    CHECK_ARGS(hfas);
    check_ret("hfas", &r, hfas_ret);
}

static void hfa_spill(void) {
    double v[6] = {0.5, 1.5, 2.5, 3.5, 4.5, 5.5};
    struct hfa3f h = {6.5f, 7.5f, 8.5f};
    double g = 9.5;
    struct hfa1d h1 = {10.5};
    float f = 11.5f;
    ret_size = 0;
    ((void (*)(double, double, double, double, double, double, struct hfa3f, double, struct hfa1d, float))(void *)dump_regs)(
        v[0], v[1], v[2], v[3], v[4], v[5], h, g, h1, f);
    ARGS(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &h, &g, &h1, &f);
    CHECK_ARGS(hfa_spill);
}

static void struct_spill(void) {
    int64_t i[7] = {1, 2, 3, 4, 5, 6, 7};
    struct s16 s = {-8, 8.5};
    int32_t j = -9;
    double d = 10.5;
    int8_t k = 11;
    ret_size = 0;
    int64_t r = ((int64_t(*)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, struct s16, int32_t, double,
                             int8_t))(void *)dump_regs)(i[0], i[1], i[2], i[3], i[4], i[5], i[6], s, j, d, k);
    ARGS(&i[0], &i[1], &i[2], &i[3], &i[4], &i[5], &i[6], &s, &j, &d, &k);
    CHECK_ARGS(struct_spill);
    check_ret("struct_spill", &r, struct_spill_ret);
}

static void by_reference(void) {
    struct s24 a = {-1, -2, -3};
    struct five_d b = {1.0, 2.0, 3.0, 4.0, 5.0};
    double c = 6.0;
    /* mixed8 has 3 padding bytes: zero them so the bytes gcc copies into
     * the register are all defined. */
    struct mixed8 m;
    memset(&m, 0, sizeof m);
    m.a = -9;
    m.b = 9.5f;
    ret_size = 0;
    void *r = ((void *(*)(struct s24, struct five_d, double, struct mixed8))(void *)dump_regs)(a, b, c, m);
    ARGS(&a, &b, &c, &m);
    CHECK_ARGS(by_reference);
    check_ret("by_reference", &r, by_reference_ret);
}

static void by_reference_spill(void) {
    int64_t i[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct s24 s = {100, 200, 300};
    int16_t h = -16;
    ret_size = 0;
    uint8_t r = ((uint8_t(*)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, struct s24,
                             int16_t))(void *)dump_regs)(i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], s, h);
    ARGS(&i[0], &i[1], &i[2], &i[3], &i[4], &i[5], &i[6], &i[7], &s, &h);
    CHECK_ARGS(by_reference_spill);
    check_ret("by_reference_spill", &r, by_reference_spill_ret);
}

static void aligned16(void) {
    int32_t a = -1;
    struct aligned16 s = {0x1111, 0x2222};
    int32_t c = -3;
    float f = 4.5f;
    ret_size = 0;
    int16_t r = ((int16_t(*)(int32_t, struct aligned16, int32_t, float))(void *)dump_regs)(a, s, c, f);
    ARGS(&a, &s, &c, &f);
    CHECK_ARGS(aligned16);
    check_ret("aligned16", &r, aligned16_ret);
}

static void aligned16_spill(void) {
    int64_t i[7] = {1, 2, 3, 4, 5, 6, 7};
    struct aligned16 s = {0x3333, 0x4444};
    int64_t last = 8;
    ret_size = 0;
    int32_t r = ((int32_t(*)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, struct aligned16,
                             int64_t))(void *)dump_regs)(i[0], i[1], i[2], i[3], i[4], i[5], i[6], s, last);
    ARGS(&i[0], &i[1], &i[2], &i[3], &i[4], &i[5], &i[6], &s, &last);
    CHECK_ARGS(aligned16_spill);
    check_ret("aligned16_spill", &r, aligned16_spill_ret);
}

static void aligned16_stack(void) {
    int64_t i[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int32_t a = -1;
    struct aligned16 s = {0x5555, 0x6666};
    int16_t b = -2;
    ret_size = 0;
    ((void (*)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int32_t, struct aligned16,
               int16_t))(void *)dump_regs)(i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], a, s, b);
    ARGS(&i[0], &i[1], &i[2], &i[3], &i[4], &i[5], &i[6], &i[7], &a, &s, &b);
    CHECK_ARGS(aligned16_stack);
}

static void narrow_stack(void) {
    double v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    int64_t i[8] = {10, 11, 12, 13, 14, 15, 16, 17};
    int8_t a = -8;
    int16_t b = -16;
    uint8_t c = 200;
    int32_t d = -32;
    float e = 1.25f;
    double f = -2.5;
    bool g = true;
    uint16_t h = 65535;
    ret_size = 0;
    float r = ((float (*)(double, double, double, double, double, double, double, double, int64_t, int64_t, int64_t,
                          int64_t, int64_t, int64_t, int64_t, int64_t, int8_t, int16_t, uint8_t, int32_t, float, double,
                          bool, uint16_t))(void *)dump_regs)(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], i[0], i[1], i[2],
                                                     i[3], i[4], i[5], i[6], i[7], a, b, c, d, e, f, g, h);
    ARGS(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &i[0], &i[1], &i[2], &i[3], &i[4], &i[5], &i[6],
         &i[7], &a, &b, &c, &d, &e, &f, &g, &h);
    CHECK_ARGS(narrow_stack);
    check_ret("narrow_stack", &r, narrow_stack_ret);
}

static void ret_hfa2f(void) {
    int32_t a = 5;
    float b = 6.5f;
    ret_size = 0;
    struct hfa2f r = ((struct hfa2f(*)(int32_t, float))(void *)dump_regs)(a, b);
    ARGS(&a, &b);
    CHECK_ARGS(ret_hfa2f);
    check_ret("ret_hfa2f", &r, ret_hfa2f_ret);
}

static void ret_hfa4d(void) {
    ret_size = 0;
    struct hfa4d r = ((struct hfa4d(*)(void))(void *)dump_regs)();
    check_ret("ret_hfa4d", &r, ret_hfa4d_ret);
}

static void ret_nested_hfa(void) {
    double a = 3.0;
    ret_size = 0;
    struct nested r = ((struct nested(*)(double))(void *)dump_regs)(a);
    ARGS(&a);
    CHECK_ARGS(ret_nested_hfa);
    check_ret("ret_nested_hfa", &r, ret_nested_hfa_ret);
}

static void ret_s12(void) {
    struct s12 a = {7, 8, 9};
    ret_size = 0;
    struct s12 r = ((struct s12(*)(struct s12))(void *)dump_regs)(a);
    ARGS(&a);
    CHECK_ARGS(ret_s12);
    check_ret("ret_s12", &r, ret_s12_ret);
}

static void ret_s16(void) {
    struct s16 a = {-1, 1.0};
    double b = 2.0;
    ret_size = 0;
    struct s16 r = ((struct s16(*)(struct s16, double))(void *)dump_regs)(a, b);
    ARGS(&a, &b);
    CHECK_ARGS(ret_s16);
    check_ret("ret_s16", &r, ret_s16_ret);
}

static void ret_s24(void) {
    int64_t a = 42;
    struct s24 b = {4, 5, 6};
    double c = 7.0;
    EXPECT_RESULT(struct s24);
    struct s24 r = ((struct s24(*)(int64_t, struct s24, double))(void *)dump_regs)(a, b, c);
    ARGS(&a, &b, &c);
    CHECK_ARGS(ret_s24);
    check_ret("ret_s24", &r, ret_s24_ret);
}

static void ret_s24_full(void) {
    int64_t i[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    double d = 9.0;
    EXPECT_RESULT(struct s24);
    struct s24 r = ((struct s24(*)(int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                                   double))(void *)dump_regs)(i[0], i[1], i[2], i[3], i[4], i[5], i[6], i[7], d);
    ARGS(&i[0], &i[1], &i[2], &i[3], &i[4], &i[5], &i[6], &i[7], &d);
    CHECK_ARGS(ret_s24_full);
    check_ret("ret_s24_full", &r, ret_s24_full_ret);
}

static void variadic(void) {
    const char *fmt = "fmt";
    double a = 1.5;
    int32_t b = -2;
    double c = 3.5;
    int32_t d = -4; /* an int8 promoted to int */
    int64_t e = 1ll << 50;
    ret_size = 0;
    int32_t r = ((int32_t(*)(const char *, ...))(void *)dump_regs)(fmt, a, b, c, d, e);
    ARGS(&fmt, &a, &b, &c, &d, &e);
    CHECK_ARGS(variadic);
    check_ret("variadic", &r, variadic_ret);
}

int main(void) {
    small_structs();
    hfas();
    hfa_spill();
    struct_spill();
    by_reference();
    by_reference_spill();
    aligned16();
    aligned16_spill();
    aligned16_stack();
    narrow_stack();
    ret_hfa2f();
    ret_hfa4d();
    ret_nested_hfa();
    ret_s12();
    ret_s16();
    ret_s24();
    ret_s24_full();
    variadic();
    if (failures) {
        fprintf(stderr, "aarch64 planner vs gcc: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("aarch64 planner vs gcc: all %d checks passed\n", checks);
    return 0;
}
