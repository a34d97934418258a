//! `Function.for_callback` (lib/fiddle_jit/function.rb), native: the
//! Function a callable stands for as an argument of a callback type. The
//! ffi gem does all of it in C; in Ruby the lookups were eight method calls
//! for a Proc passed again (ethon passes the same callback Procs on every
//! request), and making one for a new Proc (ffi-libarchive passes one per
//! archive) about seventeen.
//!
//! The lookups, in order: the type's one-entry memo (see
//! `footprint::callback_memo`); nil or a Pointer (a Function too) as it is;
//! the ffi gem's cache on the callable, its first callback type's Function
//! in `@__ffi_callback__` and other types' in the Hash
//! `@__ffi_callback_table__`. A Function found in the cache becomes the
//! memo's.
//!
//! On a miss, a Function for a Proc is made here when nothing needs Ruby
//! (`make`); otherwise `Function.new_for_callback` makes it.

use super::constructor::Signature;
use super::Function;
use crate::ruby::footprint;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{prelude::*, Error, RClass, Ruby, Value};
use rb_sys::{ID, VALUE};
use std::sync::OnceLock;

const QNIL: VALUE = rb_sys::Qnil as VALUE;
const QFALSE: VALUE = rb_sys::Qfalse as VALUE;

struct Ids {
    first: ID,
    table: ID,
    call: ID,
    /// FunctionType's `@options` (set only when not empty).
    options: ID,
    new_for_callback: ID,
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
            options: rb_sys::rb_intern(c"@options".as_ptr()),
            new_for_callback: rb_sys::rb_intern(c"new_for_callback".as_ptr()),
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

/// A new Function for Proc `value` as an argument of callback type `ty`,
/// made and cached as `Function.new_for_callback` would (Function.__new
/// with the type's Signature, the type set, the callable's
/// `@__ffi_callback__` unless frozen, the type's memo), when that needs no
/// Ruby code: in the main Ractor, `ty` an exact FunctionType without
/// options whose Signature needs no adapting, `value` a Proc with no
/// Function in `@__ffi_callback__` yet (a second type's goes to a Hash the
/// Ruby path makes). None: the Ruby path must.
fn make(ruby: &Ruby, ty: VALUE, value: VALUE) -> Result<Option<VALUE>, Error> {
    if !footprint::in_main_ractor() {
        return Ok(None);
    }
    let names = super::param_conversions::names();
    // SAFETY: class and type tests and instance-variable reads of live
    // objects (`ty` a heap object once its class is FunctionType's).
    let plain = unsafe {
        rb_sys::rb_obj_class(ty) == names.function_type
            && rb_sys::rb_obj_is_proc(value) == rb_sys::Qtrue as VALUE
            && rb_sys::rb_attr_get(ty, ids().options) == QNIL
    };
    let Some(sig) = footprint::function_type_signature(ty).filter(|_| plain) else { return Ok(None) };
    // SAFETY: FunctionType's `__signature=` stores only Signatures.
    let sig = unsafe { Signature::new(sig) };
    // SAFETY: `value` is a live Proc.
    let (callable, frozen) = unsafe { (Value::from_raw(value), rb_sys::rb_obj_frozen_p(value) == rb_sys::Qtrue as VALUE) };
    // SAFETY: an instance-variable read of a live object.
    if sig.adapts() || (!frozen && unsafe { rb_sys::rb_attr_get(value, ids().first) } != QNIL) {
        return Ok(None);
    }
    // SAFETY: the Function class, pinned by `names`.
    let class = RClass::from_value(unsafe { Value::from_raw(names.function) }).expect("FiddleJit::Function is a class");
    let function = sig.callback(ruby, class, callable)?;
    // SAFETY: a FunctionType for a new Function (as `__callback_type=`).
    Function::set_callback_type(function, unsafe { Value::from_raw(ty) });
    if !frozen {
        // SAFETY: sets an instance variable of a live, unfrozen Proc.
        unsafe { rb_sys::rb_ivar_set(value, ids().first, function.as_raw()) };
    }
    footprint::remember_callback(ty, value, function.as_raw());
    Ok(Some(function.as_raw()))
}

/// `existing`, else `make`: None when the Ruby path must make one.
fn lookup_or_make(ruby: &Ruby, ty: VALUE, value: VALUE) -> Result<Option<VALUE>, Error> {
    match existing(ruby, ty, value)? {
        Some(found) => Ok(Some(found)),
        None => make(ruby, ty, value),
    }
}

/// Interns the names the lookups use (see `ids`).
pub(super) fn init() {
    ids();
}

/// `Function.__for_callback(type, value)`: `lookup_or_make`, with false
/// for none (`for_callback` then calls `new_for_callback`).
pub(super) fn for_callback(ruby: &Ruby, ty: Value, value: Value) -> Result<Value, Error> {
    Ok(match lookup_or_make(ruby, ty.as_raw(), value.as_raw())? {
        // SAFETY: live (an argument, or marked by its holder).
        Some(found) => unsafe { Value::from_raw(found) },
        None => ruby.qfalse().as_value(),
    })
}

/// What a native caller passes for callback argument `value` of `ty`:
/// `lookup_or_make`, else `Function.new_for_callback(ty, value)`. Raises
/// (unwinds) what they raise.
///
/// # Safety
/// With the GVL, from a frame that may be unwound: nothing with a
/// destructor alive in the caller's frames up to the Ruby method.
pub(crate) unsafe fn function_for(ty: VALUE, value: VALUE) -> VALUE {
    match lookup_or_make(&Ruby::get_unchecked(), ty, value) {
        Ok(Some(found)) => found,
        Ok(None) => {
            let function = super::param_conversions::names().function;
            rb_sys::rb_funcallv(function, ids().new_for_callback, 2, [ty, value].as_ptr())
        }
        Err(e) => magnus::rb_sys::resume_error(e),
    }
}
