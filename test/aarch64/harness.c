/* Runs fiddle_jit's aarch64 stubs without Ruby and without an ARM machine
 * (cross-compiled, run under qemu-aarch64; see run.sh).
 *
 * Input: the directory written by `FIDDLE_JIT_AARCH64_OUT=<dir> cargo test
 * --lib aarch64_tests` (manifest.txt, one .bin per stub and thunk). Every
 * address a stub needs is a sentinel 0x5E5E00000000xxxx in its literal
 * pool; this program maps each stub, replaces the sentinels with its own C
 * fixtures and fake slow-path helpers, and calls it with fake VALUEs laid
 * out like Ruby 3.1's (Fixnums, flonums, RString embedded and heap,
 * RTypedData Pointers and Structs, nil/true/false). Fakes record (helper,
 * value, info, index); raising fakes longjmp back to the check.
 *
 * Exit status 0 iff every check passed; the last line is the summary.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

typedef uint64_t VALUE;

/* ---- Ruby 3.1 object layout (checked against the manifest's `layout`) -- */
#define QFALSE ((VALUE)0)
#define QNIL ((VALUE)8)
#define QTRUE ((VALUE)20)
#define T_STRING 0x05
#define T_DATA 0x0c
#define T_OBJECT 0x01
#define RSTRING_NOEMBED (1 << 13)
#define RSTRING_EMBED_LEN_SHIFT 14
#define ENCODING_SHIFT 22
#define ENC_UTF8 1
#define ENC_EUCJP 5

struct RString {
    uint64_t flags, klass;
    union {
        struct { long len; char *ptr; long capa; } heap;
        char ary[24];
    } as;
};
struct RTypedData {
    uint64_t flags, klass;
    const void *type;
    VALUE typed_flag;
    void *data;
};
/* FiddleJit::Pointer's data: the address comes first. */
struct PointerData { uint64_t address, size; };
/* FiddleJit::Struct's data: the Pointer data it views comes first. */
struct StructData { struct PointerData *memory; VALUE pointer, table; };

static const struct { const char *name; long value; } LAYOUT[] = {
    {"QNIL", 8}, {"QTRUE", 20}, {"T_STRING", T_STRING}, {"T_DATA", T_DATA},
    {"RSTRING_NOEMBED", RSTRING_NOEMBED}, {"RSTRING_EMBED_LEN_SHIFT", RSTRING_EMBED_LEN_SHIFT},
    {"ENCODING_SHIFT", ENCODING_SHIFT},
    {"RSTRING_HEAP_LEN", offsetof(struct RString, as.heap.len)},
    {"RSTRING_HEAP_PTR", offsetof(struct RString, as.heap.ptr)},
    {"RSTRING_EMBED_ARY", offsetof(struct RString, as.ary)},
    {"RTYPEDDATA_TYPE", offsetof(struct RTypedData, type)},
    {"RTYPEDDATA_DATA", offsetof(struct RTypedData, data)},
};

/* ---- checks ------------------------------------------------------------ */
static int checks, failures;
static const char *current = "";

#define CHECK(cond, ...) do { \
    checks++; \
    if (!(cond)) { failures++; printf("FAIL %s (line %d): ", current, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
} while (0)
#define CHECK_EQ(a, b) do { uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b); \
    CHECK(a_ == b_, "%s = %#" PRIx64 ", expected %s = %#" PRIx64, #a, a_, #b, b_); } while (0)
#define CHECK_DBL(a, b) do { double a_ = (a), b_ = (b); uint64_t x_, y_; memcpy(&x_, &a_, 8); memcpy(&y_, &b_, 8); \
    CHECK(x_ == y_, "%s = %.17g, expected %.17g", #a, a_, b_); } while (0)

/* ---- fake VALUEs --------------------------------------------------------- */
static VALUE fix(int64_t n) { return ((uint64_t)n << 1) | 1; }
static uint64_t bits(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }
static double from_bits(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }
static uint64_t rotl(uint64_t x, int n) { return (x << n) | (x >> (64 - n)); }
static uint64_t rotr(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }
/* CRuby's rb_float_new_inline / rb_float_flonum_value; 0 if not a flonum. */
static int is_flonum_double(double d) {
    uint64_t b = bits(d);
    int e = (int)((b >> 60) & 7);
    return b == 0 || (b != 0x3000000000000000ULL && ((e - 3) & ~1) == 0);
}
static VALUE flo(double d) {
    uint64_t b = bits(d);
    if (b == 0) return 0x8000000000000002ULL;
    if (!is_flonum_double(d)) { printf("harness bug: %g is no flonum\n", d); exit(2); }
    return (rotl(b, 3) & ~(uint64_t)1) | 2;
}
static double unflo(VALUE v) {
    if (v == 0x8000000000000002ULL) return 0.0;
    uint64_t b63 = v >> 63;
    return from_bits(rotr((2 - b63) | (v & ~(uint64_t)3), 3));
}

static struct RString strings[128];
static int nstrings;
static VALUE embedded(const char *bytes, long len, int enc) {
    struct RString *s = &strings[nstrings++];
    memset(s, 'x', sizeof *s); /* garbage after the bytes, like a reused slot */
    s->flags = T_STRING | ((uint64_t)len << RSTRING_EMBED_LEN_SHIFT) | ((uint64_t)enc << ENCODING_SHIFT);
    s->klass = 0x1234;
    memcpy(s->as.ary, bytes, len);
    if (len < 24) s->as.ary[len] = 0;
    return (VALUE)s;
}
/* A heap String of `len` bytes at `ptr` (whatever follows them). */
static VALUE heap_bytes(const char *ptr, long len, int enc) {
    struct RString *s = &strings[nstrings++];
    s->flags = T_STRING | RSTRING_NOEMBED | ((uint64_t)enc << ENCODING_SHIFT);
    s->klass = 0x1234;
    s->as.heap.len = len;
    s->as.heap.ptr = (char *)ptr;
    s->as.heap.capa = len;
    return (VALUE)s;
}
static VALUE heap_string(const char *cstr) { return heap_bytes(cstr, (long)strlen(cstr), ENC_UTF8); }
/* A String no inline path takes (EUC-JP): always the helper. */
static VALUE slow_string(const char *cstr) { return heap_bytes(cstr, (long)strlen(cstr), ENC_EUCJP); }

static const char pointer_type[16] = "Pointer type";
static const char other_type[16] = "Other type";
static struct RTypedData typed[64];
static struct PointerData pdata[64];
static int ntyped;
static VALUE pointer_object(uint64_t address, const void *type) {
    struct RTypedData *t = &typed[ntyped];
    pdata[ntyped] = (struct PointerData){address, 0};
    *t = (struct RTypedData){T_DATA, 0x5678, type, 1, &pdata[ntyped]};
    ntyped++;
    return (VALUE)t;
}
static const char struct_type[16] = "Struct type";
static struct StructData sdata[64];
static int nstructs;
/* A FiddleJit::Struct of class `klass` viewing memory at `address`. */
static VALUE struct_object(uint64_t klass, uint64_t address) {
    struct RTypedData *t = &typed[ntyped];
    pdata[ntyped] = (struct PointerData){address, 0};
    sdata[nstructs] = (struct StructData){&pdata[ntyped], 0, 0};
    *t = (struct RTypedData){T_DATA, klass, struct_type, 1, &sdata[nstructs]};
    ntyped++, nstructs++;
    return (VALUE)t;
}
/* A heap object no inline path accepts (a T_OBJECT); fakes raise on it. */
static uint64_t bad_object[5] = {T_OBJECT, 0x9abc, 0, 0, 0};
#define BAD ((VALUE)bad_object)
/* A heap Float stand-in: fakes of arg_double convert it to 2.5. */
static uint64_t heap_float[3] = {0x0d, 0xdef0, 0};
#define HEAP_FLOAT ((VALUE)heap_float)

/* ---- fake slow-path helpers --------------------------------------------- */
enum helper {
    H_ARG_INT = 1, H_ARG_UINT, H_ARG_LL, H_ARG_ULL, H_ARG_BOOL, H_ARG_DOUBLE, H_ARG_CSTR, H_ARG_POINTER,
    H_ARITY, H_RET_POINTER, H_LL2INUM, H_ULL2INUM, H_FLOAT_NEW_IN_HEAP, H_STR_NEW_CSTR, H_POINTER_TYPE,
    H_UNUSED_16, H_WITHOUT_GVL, H_ARG_STRUCT, H_RET_STRUCT, H_ARG_LD, H_RET_LD, H_STRUCT_TYPE, H_COUNT
};
static const char *HELPER_NAMES[H_COUNT] = {"?", "arg_int", "arg_uint", "arg_long_long", "arg_ulong_long",
    "arg_bool", "arg_double", "arg_cstr", "arg_pointer", "arity_error", "ret_pointer", "ll2inum", "ull2inum",
    "float_new_in_heap", "str_new_cstr", "pointer_data_type", "(unused)", "call_without_gvl",
    "arg_struct", "ret_struct", "arg_long_double", "ret_long_double", "struct_data_type"};

struct call { int helper; uint64_t value, info; uint32_t index; };
static struct call calls[64];
static int ncalls;
static jmp_buf raise_env;
static int raised;

static int misaligned_helper_calls;
static void record(int h, uint64_t v, uint64_t info, uint32_t index) {
    uint64_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    if (sp & 15) misaligned_helper_calls++; /* every fake's entry sp, via its own frame */
    if (ncalls < 64) calls[ncalls++] = (struct call){h, v, info, index};
}
static void raise_error(void) { raised = 1; longjmp(raise_env, 1); }

/* Each returns a distinctive value the checks expect. */
static int64_t fake_arg_int(VALUE v, uint64_t info, uint32_t i) {
    record(H_ARG_INT, v, info, i);
    if (v == BAD) raise_error();
    return 0x100000181LL; /* upper bits must be dropped: 0x181 as int32 */
}
static uint64_t fake_arg_uint(VALUE v, uint64_t info, uint32_t i) {
    record(H_ARG_UINT, v, info, i);
    if (v == BAD) raise_error();
    return 0x1fffffffeULL;
}
static int64_t fake_arg_ll(VALUE v, uint64_t info, uint32_t i) {
    record(H_ARG_LL, v, info, i);
    if (v == BAD) raise_error();
    return -4242;
}
static uint64_t fake_arg_ull(VALUE v, uint64_t info, uint32_t i) {
    record(H_ARG_ULL, v, info, i);
    if (v == BAD) raise_error();
    return 0xfedcba9876543210ULL;
}
static int64_t fake_arg_bool(VALUE v, uint64_t info, uint32_t i) {
    record(H_ARG_BOOL, v, info, i);
    raise_error();
    return 0;
}
/* What a callee may do to v0..v7 (all caller-saved, all 128 bits): the
 * thunks must restore the argument registers whole, or a long double
 * already loaded into a q register loses its upper half. */
static void clobber_vregs(void) {
    __asm__ volatile("movi v0.2d, #0xffffffffffffffff\n movi v1.2d, #0xffffffffffffffff\n"
                     "movi v2.2d, #0xffffffffffffffff\n movi v3.2d, #0xffffffffffffffff\n"
                     "movi v4.2d, #0xffffffffffffffff\n movi v5.2d, #0xffffffffffffffff\n"
                     "movi v6.2d, #0xffffffffffffffff\n movi v7.2d, #0xffffffffffffffff\n"
                     ::: "v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7");
}
static double fake_arg_double(VALUE v, uint64_t info, uint32_t i) {
    clobber_vregs();
    record(H_ARG_DOUBLE, v, info, i);
    if (v == BAD) raise_error();
    return 2.5;
}
static const char *fake_arg_cstr(VALUE *slot, uint64_t info, uint32_t i) {
    record(H_ARG_CSTR, *slot, info, i);
    if (*slot == BAD) raise_error();
    struct RString *s = (struct RString *)*slot;
    if (*slot && (*slot & 7) == 0 && (s->flags & 0x1f) == T_STRING) {
        if (s->flags & RSTRING_NOEMBED) return s->as.heap.ptr;
        return "slow embedded";
    }
    return "slow";
}
static uint64_t fake_arg_pointer(VALUE v, uint64_t info, uint32_t i) {
    record(H_ARG_POINTER, v, info, i);
    if (v == BAD) raise_error();
    return 0xabc000 + i;
}
static void fake_arity_error(int argc, uint64_t info) {
    record(H_ARITY, (uint64_t)argc, info, 0);
    raise_error();
}
static VALUE fake_ret_pointer(uint64_t address) { record(H_RET_POINTER, address, 0, 0); return 0x9000; }
static VALUE fake_ll2inum(int64_t n) { record(H_LL2INUM, (uint64_t)n, 0, 0); return 0xb16; }
static VALUE fake_ull2inum(uint64_t n) { record(H_ULL2INUM, n, 0, 0); return 0xb17; }
static VALUE fake_float_new_in_heap(double d) { record(H_FLOAT_NEW_IN_HEAP, bits(d), 0, 0); return 0xf10a7; }
static VALUE fake_str_new_cstr(const char *p) { record(H_STR_NEW_CSTR, (uint64_t)p, 0, 0); return 0x5700; }
/* Where stubs save errno: static TLS, like runtime::errno's. */
static __thread int32_t saved_errno __attribute__((tls_model("initial-exec")));
typedef void *(*gvl_fn)(void *);
static int inner_clobbers;
uint64_t callee_saved_probe(void *stub, VALUE self, VALUE a1, VALUE *result);
/* Runs the stub's GVL-free inner function, checking it too preserves the
 * callee-saved registers. */
static void *fake_without_gvl(gvl_fn f, void *data, intptr_t ubf, void *data2) {
    record(H_WITHOUT_GVL, (uint64_t)ubf, (uint64_t)data2, 0);
    VALUE result;
    inner_clobbers += (int)callee_saved_probe((void *)f, (VALUE)data, 0, &result);
    return (void *)result;
}
static const void *fake_arg_struct(VALUE v, uint64_t info, uint32_t i) {
    record(H_ARG_STRUCT, v, info, i);
    if (v == BAD) raise_error();
    return (const void *)v; /* the harness passes the struct's address as its VALUE */
}
static unsigned char ret_struct_bytes[64];
static size_t ret_struct_size;
static VALUE fake_ret_struct(uint64_t info, const unsigned char *bytes) {
    record(H_RET_STRUCT, 0, info, 0);
    memcpy(ret_struct_bytes, bytes, ret_struct_size);
    return 0x57c7;
}

/* long double (binary128): the VALUE parked in the argument's 16 bytes
 * becomes n / 3 for a Fixnum n (a value no double holds), 1/3 otherwise. */
static long double ld_of(VALUE v) { return (v & 1 ? (long double)((int64_t)v >> 1) : 1.0L) / 3.0L; }
static void fake_arg_long_double(void *slot, uint64_t info, uint32_t i) {
    VALUE v;
    memcpy(&v, slot, 8);
    clobber_vregs();
    record(H_ARG_LD, v, info, i);
    if (v == BAD) raise_error();
    long double x = ld_of(v);
    memcpy(slot, &x, 16);
}
static long double ret_ld;
static VALUE fake_ret_long_double(const void *bytes) {
    record(H_RET_LD, 0, 0, 0);
    memcpy(&ret_ld, bytes, 16);
    return 0x1d1d;
}

static uint64_t helper_address(int id) {
    switch (id) {
    case H_ARG_INT: return (uint64_t)fake_arg_int;
    case H_ARG_UINT: return (uint64_t)fake_arg_uint;
    case H_ARG_LL: return (uint64_t)fake_arg_ll;
    case H_ARG_ULL: return (uint64_t)fake_arg_ull;
    case H_ARG_BOOL: return (uint64_t)fake_arg_bool;
    case H_ARG_DOUBLE: return (uint64_t)fake_arg_double;
    case H_ARG_CSTR: return (uint64_t)fake_arg_cstr;
    case H_ARG_POINTER: return (uint64_t)fake_arg_pointer;
    case H_ARITY: return (uint64_t)fake_arity_error;
    case H_RET_POINTER: return (uint64_t)fake_ret_pointer;
    case H_LL2INUM: return (uint64_t)fake_ll2inum;
    case H_ULL2INUM: return (uint64_t)fake_ull2inum;
    case H_FLOAT_NEW_IN_HEAP: return (uint64_t)fake_float_new_in_heap;
    case H_STR_NEW_CSTR: return (uint64_t)fake_str_new_cstr;
    case H_POINTER_TYPE: return (uint64_t)pointer_type;
    case H_STRUCT_TYPE: return (uint64_t)struct_type;
    case H_WITHOUT_GVL: return (uint64_t)fake_without_gvl;
    case H_ARG_STRUCT: return (uint64_t)fake_arg_struct;
    case H_RET_STRUCT: return (uint64_t)fake_ret_struct;
    case H_ARG_LD: return (uint64_t)fake_arg_long_double;
    case H_RET_LD: return (uint64_t)fake_ret_long_double;
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------- */
#define SENTINEL 0x5E5E000000000000ULL
#define ERRNO_OFFSET_SENTINEL 0x5E5E00EEULL
#define SAVED_ERRNO_OFFSET_SENTINEL 0x5E5E00EFULL
#define THUNK_ID 0x100
#define FUNCTION_ID 0x200
#define INFO_ID 0x201

static const char *dir;
static int trace;
static uint64_t thunk_addr[16];

struct stub_entry { char name[64], file[96]; long code_len, function_at, info_at; int used; };
static struct stub_entry stubs[256];
static int nstubs;

static unsigned char *read_file(const char *file, long *len) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*len);
    if (fread(buf, 1, *len, f) != (size_t)*len) { perror(path); exit(2); }
    fclose(f);
    return buf;
}

static uint64_t tp(void) {
    uint64_t t;
    __asm__ volatile("mrs %0, tpidr_el0" : "=r"(t));
    return t;
}

/* Maps `file`, patching every sentinel word of its pool (from `pool_from`),
 * and returns the executable copy. */
static void *map_code(const char *file, long pool_from, uint64_t function, uint64_t info) {
    long len;
    unsigned char *code = read_file(file, &len);
    for (long at = (pool_from + 7) & ~7L; at + 8 <= len; at += 8) {
        uint64_t w, v;
        memcpy(&w, code + at, 8);
        if (w == ERRNO_OFFSET_SENTINEL) {
            v = (uint64_t)((char *)&errno - (char *)tp());
        } else if (w == SAVED_ERRNO_OFFSET_SENTINEL) {
            v = (uint64_t)((char *)&saved_errno - (char *)tp());
        } else if ((w & 0xffff000000000000ULL) == SENTINEL) {
            int id = (int)(w & 0xffff);
            if (id == FUNCTION_ID) v = function;
            else if (id == INFO_ID) v = info;
            else if (id >= THUNK_ID && id < THUNK_ID + 16) v = thunk_addr[id - THUNK_ID];
            else v = helper_address(id);
            if (!v) { printf("%s: unknown sentinel %#" PRIx64 "\n", file, w); exit(2); }
        } else {
            continue;
        }
        memcpy(code + at, &v, 8);
    }
    void *rw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memcpy(rw, code, len);
    __builtin___clear_cache((char *)rw, (char *)rw + len);
    if (mprotect(rw, len, PROT_READ | PROT_EXEC) != 0) { perror("mprotect"); exit(2); }
    free(code);
    return rw;
}

static void load_manifest(void) {
    char path[512], line[512];
    snprintf(path, sizeof path, "%s/manifest.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) { perror(path); exit(2); }
    while (fgets(line, sizeof line, f)) {
        char kind[16], a[96], b[96];
        long x, y, z, value;
        if (sscanf(line, "layout %95s %ld", a, &value) == 2) {
            int known = 0;
            for (size_t i = 0; i < sizeof LAYOUT / sizeof *LAYOUT; i++) {
                if (strcmp(LAYOUT[i].name, a) == 0) {
                    known = 1;
                    current = "layout";
                    CHECK(LAYOUT[i].value == value, "%s: emitter uses %ld, harness %ld", a, value, LAYOUT[i].value);
                }
            }
            if (!known) { printf("unknown layout constant %s\n", a); exit(2); }
        } else if (sscanf(line, "thunk %ld %95s", &x, a) == 2) {
            thunk_addr[x - THUNK_ID] = (uint64_t)map_code(a, 0, 0, 0);
        } else if (sscanf(line, "%15s %63s %95s %ld %ld %ld", kind, a, b, &x, &y, &z) == 6 && !strcmp(kind, "stub")) {
            struct stub_entry *s = &stubs[nstubs++];
            strcpy(s->name, a);
            strcpy(s->file, b);
            s->code_len = x, s->function_at = y, s->info_at = z;
        }
    }
    fclose(f);
}

/* Per-stub info, laid out like runtime::StubInfo as far as stubs read it
 * (ref_classes first: the Struct class each parameter requires, 0 = any);
 * the fakes check the stub passed its own. */
struct fake_info { const uint64_t *ref_classes; };
static struct fake_info infos[256];
static uint64_t ref_classes[256][32];
static uint64_t info_of_current;

/* The stub `name` calling `function`; every check until the next stub()
 * is reported under `name`. */
static void *stub(const char *name, void *function) {
    for (int i = 0; i < nstubs; i++) {
        if (strcmp(stubs[i].name, name) == 0) {
            struct stub_entry *s = &stubs[i];
            s->used = 1;
            if (trace) printf("stub %s\n", name);
            current = s->name;
            infos[i].ref_classes = ref_classes[i];
            info_of_current = (uint64_t)&infos[i];
            long len;
            unsigned char *code = read_file(s->file, &len);
            uint64_t f, inf;
            memcpy(&f, code + s->function_at, 8);
            memcpy(&inf, code + s->info_at, 8);
            free(code);
            CHECK_EQ(f, SENTINEL | FUNCTION_ID);
            CHECK_EQ(inf, SENTINEL | INFO_ID);
            return map_code(s->file, s->code_len, (uint64_t)function, info_of_current);
        }
    }
    printf("no stub %s in the manifest\n", name);
    exit(2);
}

/* ---- calling stubs -------------------------------------------------------- */
/* uint64_t callee_saved_probe(void *stub, VALUE self, VALUE a1, VALUE *result):
 * calls stub(self, a1) with x19..x28 and d8..d15 holding known values and
 * returns how many of them differ afterwards (AAPCS64: the callee must
 * preserve them; Ruby's VM keeps its state there). */
__asm__(
    ".text\n.p2align 2\n.globl callee_saved_probe\n.type callee_saved_probe, %function\n"
    "callee_saved_probe:\n"
    "stp x29, x30, [sp, #-176]!\n mov x29, sp\n"
    "stp x19, x20, [sp, #16]\n stp x21, x22, [sp, #32]\n stp x23, x24, [sp, #48]\n"
    "stp x25, x26, [sp, #64]\n stp x27, x28, [sp, #80]\n"
    "stp d8, d9, [sp, #96]\n stp d10, d11, [sp, #112]\n stp d12, d13, [sp, #128]\n stp d14, d15, [sp, #144]\n"
    "str x3, [sp, #160]\n"
    "mov x16, x0\n mov x0, x1\n mov x1, x2\n"
    "mov x19, #0x119\n mov x20, #0x120\n mov x21, #0x121\n mov x22, #0x122\n mov x23, #0x123\n"
    "mov x24, #0x124\n mov x25, #0x125\n mov x26, #0x126\n mov x27, #0x127\n mov x28, #0x128\n"
    "fmov d8, x19\n fmov d9, x20\n fmov d10, x21\n fmov d11, x22\n fmov d12, x23\n fmov d13, x24\n"
    "fmov d14, x25\n fmov d15, x26\n"
    "blr x16\n"
    "ldr x3, [sp, #160]\n str x0, [x3]\n mov x0, #0\n"
    "cmp x19, #0x119\n cinc x0, x0, ne\n cmp x20, #0x120\n cinc x0, x0, ne\n"
    "cmp x21, #0x121\n cinc x0, x0, ne\n cmp x22, #0x122\n cinc x0, x0, ne\n"
    "cmp x23, #0x123\n cinc x0, x0, ne\n cmp x24, #0x124\n cinc x0, x0, ne\n"
    "cmp x25, #0x125\n cinc x0, x0, ne\n cmp x26, #0x126\n cinc x0, x0, ne\n"
    "cmp x27, #0x127\n cinc x0, x0, ne\n cmp x28, #0x128\n cinc x0, x0, ne\n"
    "fmov x9, d8\n cmp x9, #0x119\n cinc x0, x0, ne\n fmov x9, d9\n cmp x9, #0x120\n cinc x0, x0, ne\n"
    "fmov x9, d10\n cmp x9, #0x121\n cinc x0, x0, ne\n fmov x9, d11\n cmp x9, #0x122\n cinc x0, x0, ne\n"
    "fmov x9, d12\n cmp x9, #0x123\n cinc x0, x0, ne\n fmov x9, d13\n cmp x9, #0x124\n cinc x0, x0, ne\n"
    "fmov x9, d14\n cmp x9, #0x125\n cinc x0, x0, ne\n fmov x9, d15\n cmp x9, #0x126\n cinc x0, x0, ne\n"
    "ldp x19, x20, [sp, #16]\n ldp x21, x22, [sp, #32]\n ldp x23, x24, [sp, #48]\n"
    "ldp x25, x26, [sp, #64]\n ldp x27, x28, [sp, #80]\n"
    "ldp d8, d9, [sp, #96]\n ldp d10, d11, [sp, #112]\n ldp d12, d13, [sp, #128]\n ldp d14, d15, [sp, #144]\n"
    "ldp x29, x30, [sp], #176\n ret\n"
    ".size callee_saved_probe, . - callee_saved_probe\n");
uint64_t callee_saved_probe(void *stub, VALUE self, VALUE a1, VALUE *result);

typedef VALUE (*fixed_fn)(VALUE self, VALUE, VALUE, VALUE, VALUE, VALUE, VALUE, VALUE, VALUE, VALUE, VALUE,
                          VALUE, VALUE, VALUE, VALUE, VALUE);
typedef VALUE (*argv_fn)(int argc, const VALUE *argv, VALUE self);
#define SELF ((VALUE)0x5e1f)

/* Calls a fixed-arity stub as Ruby would: self, then the arguments. */
static VALUE call_fixed(void *s, int n, const VALUE *a) {
    VALUE v[15] = {0};
    memcpy(v, a, n * sizeof(VALUE));
    ncalls = 0;
    return ((fixed_fn)s)(SELF, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12],
                         v[13], v[14]);
}
#define CALL(s, ...) call_fixed((s), sizeof((VALUE[]){__VA_ARGS__}) / sizeof(VALUE), (VALUE[]){__VA_ARGS__})
static VALUE call0(void *s) { ncalls = 0; return ((fixed_fn)s)(SELF, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0); }
static VALUE call_argv(void *s, int n, const VALUE *a) { ncalls = 0; return ((argv_fn)s)(n, a, SELF); }

/* The slow-path calls since the last CALL must be exactly these. */
static void expect_calls(int n, ...) {
    va_list ap;
    va_start(ap, n);
    CHECK(ncalls == n, "%d slow-path calls, expected %d (first: %s)", ncalls, n,
          ncalls ? HELPER_NAMES[calls[0].helper] : "-");
    for (int i = 0; i < n && i < ncalls; i++) {
        int h = va_arg(ap, int);
        VALUE v = va_arg(ap, VALUE);
        uint32_t index = va_arg(ap, uint32_t);
        CHECK(calls[i].helper == h, "call %d went to %s, expected %s", i, HELPER_NAMES[calls[i].helper], HELPER_NAMES[h]);
        CHECK_EQ(calls[i].value, v);
        int takes_info = h <= H_ARITY || h == H_ARG_STRUCT || h == H_RET_STRUCT || h == H_ARG_LD;
        if (takes_info) CHECK_EQ(calls[i].info, info_of_current);
        if (h <= H_ARG_POINTER || h == H_ARG_STRUCT || h == H_ARG_LD) CHECK_EQ(calls[i].index, index);
    }
    va_end(ap);
}
#define NO_SLOW_CALLS() expect_calls(0)

/* Forgets the first n recorded calls (checked separately). */
static void drop_calls(int n) {
    CHECK(ncalls >= n, "%d slow-path calls, expected at least %d", ncalls, n);
    if (ncalls < n) n = ncalls;
    memmove(calls, calls + n, (ncalls - n) * sizeof *calls);
    ncalls -= n;
}

/* Calls expecting a raise from a fake helper (longjmp back here). */
#define EXPECT_RAISE(expr) do { \
    raised = 0; \
    if (setjmp(raise_env) == 0) { (void)(expr); } \
    CHECK(raised, "%s did not raise", #expr); \
} while (0)

#include "fixtures.h"

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s <dir written by the cargo test>\n", argv[0]); return 2; }
    dir = argv[1];
    setvbuf(stdout, NULL, _IONBF, 0);
    trace = getenv("AARCH64_HARNESS_TRACE") != NULL;
    load_manifest();
    run_all();
    int unused = 0;
    for (int i = 0; i < nstubs; i++) {
        if (!stubs[i].used) { printf("FAIL stub %s was emitted but never run\n", stubs[i].name); unused++; }
    }
    current = "helpers";
    CHECK(misaligned_helper_calls == 0, "%d helper calls with sp not 16-aligned", misaligned_helper_calls);
    CHECK(inner_clobbers == 0, "blocking calls' inner functions changed %d callee-saved registers", inner_clobbers);
    printf("aarch64 harness: %d stubs, %d checks, %d passed, %d failed%s\n", nstubs, checks, checks - failures,
           failures, unused ? " (and stubs never run)" : "");
    return failures || unused || checks == 0 ? 1 : 0;
}
