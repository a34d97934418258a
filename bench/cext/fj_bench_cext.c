/* The "C ext" column of bench/run.rb: each function written the usual,
 * hand-rolled way (NUM2INT, StringValueCStr, NUM2DBL, DBL2NUM, ...). */
#include <ruby.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#if defined(__has_include) && __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#else
#define CALLGRIND_ZERO_STATS
#define CALLGRIND_DUMP_STATS_AT(name) ((void)(name))
#define CALLGRIND_START_INSTRUMENTATION
#endif

/* From bench/build/libfjbench.so (bench/fixture/bench_fixture.c). */
extern int add(int a, int b);
extern long sum6(long a, long b, long c, long d, long e, long f);
extern long ptr_first(const long *p);
extern const char *str_ret(void);

/* A native buffer the usual way: a TypedData object owning the memory. */
static const rb_data_type_t buf_type = {
    "FjBenchCext::Buf", { 0, RUBY_TYPED_DEFAULT_FREE, 0 }, 0, 0, RUBY_TYPED_FREE_IMMEDIATELY
};

static VALUE fjb_buf_new(VALUE self, VALUE value) {
    long *mem = ALLOC(long);
    *mem = NUM2LONG(value);
    return TypedData_Wrap_Struct(rb_path2class("FjBenchCext::Buf"), &buf_type, mem);
}

static VALUE fjb_ptr_first(VALUE self, VALUE buf) {
    const long *p = rb_check_typeddata(buf, &buf_type);
    return LONG2NUM(ptr_first(p));
}

static VALUE fjb_str_ret(VALUE self) {
    return rb_str_new_cstr(str_ret());
}

static VALUE fjb_strlen(VALUE self, VALUE str) {
    const char *s = StringValueCStr(str);
    return SIZET2NUM(strlen(s));
}

static VALUE fjb_add(VALUE self, VALUE a, VALUE b) {
    return INT2NUM(add(NUM2INT(a), NUM2INT(b)));
}

static VALUE fjb_sin(VALUE self, VALUE x) {
    return DBL2NUM(sin(NUM2DBL(x)));
}

static VALUE fjb_sum6(VALUE self, VALUE a, VALUE b, VALUE c,
                      VALUE d, VALUE e, VALUE f) {
    return LONG2NUM(sum6(NUM2LONG(a), NUM2LONG(b), NUM2LONG(c),
                         NUM2LONG(d), NUM2LONG(e), NUM2LONG(f)));
}

static VALUE fjb_getpid(VALUE self) {
    return INT2NUM((int)getpid());
}

/* bench/icount.rb brackets each measured loop with these (no-ops unless
 * running under valgrind --tool=callgrind). */
static VALUE fjb_callgrind_zero(VALUE self) {
    CALLGRIND_ZERO_STATS;
    return Qnil;
}

static VALUE fjb_callgrind_dump(VALUE self, VALUE name) {
    CALLGRIND_DUMP_STATS_AT(StringValueCStr(name));
    return Qnil;
}

/* bench/side_by_side.rb runs children with --instr-atstart=no (Ruby's
 * boot, ~245 M instructions of rubygems on Debian, then runs at the speed of
 * an uninstrumented valgrind) and starts instrumenting here. */
static VALUE fjb_callgrind_start(VALUE self) {
    CALLGRIND_START_INSTRUMENTATION;
    return Qnil;
}

/* Dispatch floor: an arity-1 C method that does nothing. */
static VALUE fjb_noop1(VALUE self, VALUE x) {
    return Qnil;
}

void Init_fj_bench_cext(void) {
    VALUE m = rb_define_module("FjBenchCext");
    rb_define_module_function(m, "strlen", fjb_strlen, 1);
    rb_define_module_function(m, "add", fjb_add, 2);
    rb_define_module_function(m, "sin", fjb_sin, 1);
    rb_define_module_function(m, "sum6", fjb_sum6, 6);
    rb_define_module_function(m, "getpid", fjb_getpid, 0);
    rb_define_module_function(m, "noop1", fjb_noop1, 1);
    rb_define_module_function(m, "callgrind_zero", fjb_callgrind_zero, 0);
    rb_define_module_function(m, "callgrind_dump", fjb_callgrind_dump, 1);
    rb_define_module_function(m, "callgrind_start", fjb_callgrind_start, 0);
    rb_define_module_function(m, "ptr_first", fjb_ptr_first, 1);
    rb_define_module_function(m, "str_ret", fjb_str_ret, 0);
    VALUE buf = rb_define_class_under(m, "Buf", rb_cObject);
    rb_undef_alloc_func(buf);
    rb_define_module_function(m, "buf", fjb_buf_new, 1);
}
