/* The "C ext" column of bench/run.rb: each function written the usual,
 * hand-rolled way (NUM2INT, StringValueCStr, NUM2DBL, DBL2NUM, ...). */
#include <ruby.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

/* From bench/build/libfjbench.so (bench/fixture/bench_fixture.c). */
extern int add(int a, int b);
extern long sum6(long a, long b, long c, long d, long e, long f);

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
}
