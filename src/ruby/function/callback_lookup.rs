//! `Function.for_callback`'s lookups (lib/fiddle_jit/function.rb), native:
//! the Function a callable already has for a callback type. The ffi gem
//! does these in C; in Ruby they were eight method calls for a Proc passed
//! again (ethon passes the same callback Procs on every request).
//!
//! In order: the type's one-entry memo (see `footprint::callback_memo`);
//! nil or a Pointer (a Function too) as it is; the ffi gem's cache on the
//! callable, its first callback type's Function in `@__ffi_callback__` and
//! other types' in the Hash `@__ffi_callback_table__`. A Function found in
//! the cache becomes the memo's.

use super::Function;
use crate::ruby::footprint;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{prelude::*, Error, Ruby, Value};
use rb_sys::{ID, VALUE};
use std::sync::OnceLock;

const QNIL: VALUE = rb_sys::Qnil as VALUE;
const QFALSE: VALUE = rb_sys::Qfalse as VALUE;

struct Ids {
    first: ID,
    table: ID,
    call: ID,
}

/// Made by `init` (the main Ractor, at load: two Ractors racing into the
/// OnceLock could deadlock on a GC barrier); calls only read them.
fn ids() -> &'static Ids {
    static IDS: OnceLock<Ids> = OnceLock::new();
    // SAFETY: interning static names, with the GVL.
    IDS.get_or_init(|| unsafe {
        Ids {
            first: rb_sys::rb_intern(c"@__ffi_callback__".as_ptr()),
            table: rb_sys::rb_intern(c"@__ffi_callback_table__".as_ptr()),
            call: rb_sys::rb_intern(c"call".as_ptr()),
        }
    })
}

/// The Function (or nil/Pointer) `value` stands for as an argument of
/// callback type `ty`, if it has one already; None: one must be made.
/// Raises the ffi gem's TypeError for a value that cannot be called.
pub(crate) fn existing(ruby: &Ruby, ty: VALUE, value: VALUE) -> Result<Option<VALUE>, Error> {
    if let Some(function) = footprint::callback_memo(ty, value) {
        return Ok(Some(function));
    }
    // SAFETY: `value` is a live argument of the running call.
    let callable = unsafe { Value::from_raw(value) };
    // SAFETY: type tests and instance-variable reads on a live object; the
    // calls that may run Ruby code (a #respond_to?, a table key's #hash)
    // under rb_protect.
    unsafe {
        if rb_sys::rb_obj_is_proc(value) != rb_sys::Qtrue as VALUE {
            if value == QNIL || crate::ruby::pointer::Pointer::from_value(callable).is_some() {
                return Ok(Some(value));
            }
            let responds = magnus::rb_sys::protect(|| rb_sys::rb_respond_to(value, ids().call) as VALUE)?;
            if responds == 0 {
                let message = format!("wrong argument type {}, expected pointer or proc", callable.class());
                return Err(Error::new(ruby.exception_type_error(), message));
            }
        }
        if rb_sys::SPECIAL_CONST_P(value) {
            return Ok(None);
        }
        let first = rb_sys::rb_attr_get(value, ids().first);
        let found = match Function::of(Value::from_raw(first)) {
            Some(f) if f.callback_type().is_some_and(|t| t.as_raw() == ty) => first,
            _ => {
                let table = rb_sys::rb_attr_get(value, ids().table);
                if rb_sys::RB_TYPE_P(table, rb_sys::ruby_value_type::RUBY_T_HASH) {
                    magnus::rb_sys::protect(|| rb_sys::rb_hash_lookup2(table, ty, QFALSE))?
                } else {
                    QFALSE
                }
            }
        };
        if found == QFALSE || found == QNIL {
            return Ok(None);
        }
        footprint::remember_callback(ty, value, found);
        Ok(Some(found))
    }
}

/// Interns the names the lookups use (see `ids`).
pub(super) fn init() {
    ids();
}

/// `Function.__for_callback(type, value)`: `existing`, with false for none.
pub(super) fn for_callback(ruby: &Ruby, ty: Value, value: Value) -> Result<Value, Error> {
    Ok(match existing(ruby, ty.as_raw(), value.as_raw())? {
        // SAFETY: live (an argument, or marked by its holder).
        Some(found) => unsafe { Value::from_raw(found) },
        None => ruby.qfalse().as_value(),
    })
}

/// What a native caller passes for callback argument `value` of `ty`:
/// `existing`, else `Function.for_callback(ty, value)`, which makes one.
/// Raises (unwinds) what they raise.
///
/// # Safety
/// With the GVL, from a frame that may be unwound: nothing with a
/// destructor alive in the caller's frames up to the Ruby method.
pub(crate) unsafe fn function_for(ty: VALUE, value: VALUE) -> VALUE {
    match existing(&Ruby::get_unchecked(), ty, value) {
        Ok(Some(found)) => found,
        Ok(None) => {
            let names = super::param_conversions::names();
            rb_sys::rb_funcallv(names.function, names.for_callback, 2, [ty, value].as_ptr())
        }
        Err(e) => magnus::rb_sys::resume_error(e),
    }
}
