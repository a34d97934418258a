//! `long double` (x87 80-bit extended precision) ↔ Ruby, with the ffi gem's
//! rules (its LongDouble.c):
//!
//! - Ruby → C: a Float goes through `double`; a BigDecimal (if the class is
//!   loaded) through `strtold(big.to_s("E"))`, keeping all 64 mantissa
//!   bits; anything else through NUM2DBL (Integer, `to_f`; TypeError for
//!   String/nil).
//! - C → Ruby: `BigDecimal("%.35Le" % value)`, requiring bigdecimal on first
//!   use; a Float if bigdecimal cannot be loaded. Like the ffi gem,
//!   infinities and NaN raise ArgumentError (BigDecimal() rejects "inf").
//!
//! The value itself (Rust has no `f80`) is `crate::LongDouble`.

use super::{annotate, finish, info, StubInfo};
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::value::ReprValue;
use magnus::{Error, Module, RString, Ruby, Value};
use rb_sys::VALUE;
use crate::LongDouble;

/// The BigDecimal class if it is loaded (the ffi gem's argument rule does
/// not require it), or after requiring it (its result rule does).
fn big_decimal(ruby: &Ruby, load: bool) -> Option<Value> {
    let object = ruby.class_object();
    // SAFETY: a constant lookup with the GVL held.
    let defined = unsafe { rb_sys::rb_const_defined(object.as_raw(), rb_sys::rb_intern2(c"BigDecimal".as_ptr(), 10)) } != 0;
    // Through Kernel#require, as the ffi gem does: rb_require bypasses
    // RubyGems, which bigdecimal needs from Ruby 3.4 on (a bundled gem).
    if !defined && (!load || ruby.module_kernel().funcall::<_, _, Value>("require", ("bigdecimal",)).is_err()) {
        return None;
    }
    object.const_get::<_, Value>("BigDecimal").ok()
}

/// Ruby → long double, the ffi gem's rbffi_num2longdouble.
pub fn from_value(value: Value) -> Result<LongDouble, Error> {
    let ruby = Ruby::get().expect("Ruby thread");
    let raw = value.as_raw();
    // SAFETY: `raw` is a live VALUE.
    if unsafe { rb_sys::RB_FLOAT_TYPE_P(raw) } {
        return Ok(LongDouble::from_f64(unsafe { rb_sys::rb_num2dbl(raw) }));
    }
    if let Some(class) = big_decimal(&ruby, false) {
        if value.is_kind_of(magnus::RClass::from_value(class).expect("BigDecimal is a class")) {
            let s: RString = value.funcall("to_s", ("E",))?;
            let s = std::ffi::CString::new(s.to_string()?).unwrap_or_default();
            return Ok(LongDouble::parse(&s));
        }
    }
    let bits = super::convert_num(super::Num::Double, value)?;
    Ok(LongDouble::from_f64(f64::from_bits(bits as u64)))
}

/// long double → Ruby, the ffi gem's rbffi_longdouble_new.
pub fn to_value(ld: LongDouble) -> Result<Value, Error> {
    let ruby = Ruby::get().expect("Ruby thread");
    match big_decimal(&ruby, true) {
        Some(_) => ruby.module_kernel().funcall("BigDecimal", (ld.format(),)),
        None => Ok(ruby.float_from_f64(ld.to_f64()).as_value()),
    }
}

/// A :long_double parameter: `*slot` holds the VALUE on entry (the
/// argument's 16-byte outgoing stack slot); the long double replaces it.
pub extern "C" fn arg_long_double(slot: *mut LongDouble, info_ptr: *const StubInfo, index: u32) {
    // SAFETY: the stub stored the VALUE in the first 8 bytes of the slot.
    let value = unsafe { Value::from_raw(*(slot as *const VALUE)) };
    let r = from_value(value).map_err(|e| annotate(unsafe { info(info_ptr) }, index, e));
    let ld = finish(r);
    // SAFETY: the slot is 16 bytes of the stub's frame, or of a blocking
    // call's block, which is only 8-aligned.
    unsafe { std::ptr::write_unaligned(slot, ld) };
}

/// A :long_double result the stub stored (fstp) at `bytes`.
pub extern "C" fn ret_long_double(bytes: *const LongDouble) -> VALUE {
    // SAFETY: the stub's 16-byte return buffer (8-aligned in a call block).
    let ld = unsafe { std::ptr::read_unaligned(bytes) };
    finish(to_value(ld)).as_raw()
}

/// `FiddleJit::Native.long_double_unpack(bytes)`: the long double in a
/// 16-byte String (read by Pointer#get_bytes, which checks bounds) as the
/// ffi gem returns it; struct fields and `Pointer#get(:long_double, off)`.
pub fn unpack(bytes: RString) -> Result<Value, Error> {
    let mut ld = LongDouble::default();
    // SAFETY: copied out before any Ruby call can move or free the String.
    let src = unsafe { bytes.as_slice() };
    let n = src.len().min(16);
    ld.0[..n].copy_from_slice(&src[..n]);
    to_value(ld)
}

/// `FiddleJit::Native.long_double_pack(value)`: 16 bytes for Pointer#put_bytes.
pub fn pack(value: Value) -> Result<RString, Error> {
    let ld = from_value(value)?;
    Ok(Ruby::get().expect("Ruby thread").str_from_slice(&ld.0))
}
