//! The raw reads of Ruby objects' typed-data headers (outside the stubs,
//! which `lower` describes), in one place. What makes them sound, once:
//!
//! - a VALUE given here is live: an argument of the running method or
//!   helper, or one pinned by its owner (rb_gc_mark);
//! - a heap object's flags word is readable, and a T_DATA object's
//!   RTypedData header too, at the offsets `lower::ruby_layout` takes from
//!   rb-sys for the Ruby being built against;
//! - an object whose `rb_data_type_t` is `T`'s (magnus' `TypedData`) has a
//!   `T` behind its data pointer, set by the allocator before Ruby code can
//!   see the object and freed only with it, so a `&T` is valid while the
//!   object is.

use crate::lower::ruby_layout::{RTYPEDDATA_DATA, RTYPEDDATA_TYPE, T_DATA, T_MASK};
use magnus::TypedData;
use rb_sys::VALUE;

/// Is `value` an immediate (Fixnum, flonum, static Symbol, nil, true,
/// false), not a heap object? (On 64-bit CRuby every heap object is 8-byte
/// aligned, and nil and false are the two even immediates.)
pub fn is_immediate(value: VALUE) -> bool {
    value & 7 != 0 || value == rb_sys::Qnil as VALUE || value == rb_sys::Qfalse as VALUE
}

/// The `T` of `value` if it is typed data of exactly `T`'s data type: a
/// type check and two loads, no exception built on failure.
#[inline(always)]
pub fn typed_data<'a, T: TypedData>(value: VALUE) -> Option<&'a T> {
    if is_immediate(value) {
        return None; // immediates
    }
    // SAFETY: `value` is a live heap object (module invariants): its flags,
    // and for T_DATA its typed-data header, are readable.
    unsafe {
        let flags = *(value as *const VALUE);
        if flags as i32 & T_MASK != T_DATA {
            return None;
        }
        if data_type_of(value) != <T as TypedData>::data_type() as *const _ as usize {
            return None;
        }
        Some(typed_data_unchecked(value))
    }
}

/// `value`'s builtin type (`T_CLASS`, `T_STRING`, ...: its flags' type
/// bits), or None for an immediate.
pub fn builtin_type(value: VALUE) -> Option<i32> {
    if is_immediate(value) {
        return None;
    }
    // SAFETY: a live heap object's flags word is readable (module invariants).
    Some(unsafe { *(value as *const VALUE) } as i32 & T_MASK)
}

/// The address of the `rb_data_type_t` of `value`.
///
/// # Safety
/// `value` is a live typed-data T_DATA object.
#[inline(always)]
pub unsafe fn data_type_of(value: VALUE) -> usize {
    *((value as *const u8).add(RTYPEDDATA_TYPE as usize) as *const usize)
}

/// The `T` of `value`, known to be typed data of `T`'s data type.
///
/// SAFETY: the caller knows `value` is a live typed-data object of `T`'s
/// type (e.g. the receiver of a method defined only on that class, or a
/// VALUE such an object stored and pins).
pub unsafe fn typed_data_unchecked<'a, T>(value: VALUE) -> &'a T {
    &**((value as *const u8).add(RTYPEDDATA_DATA as usize) as *const *const T)
}

/// Records that `owner` (a write-barrier-protected object) now references
/// `value` (Ruby's RB_OBJ_WRITTEN): required after storing a VALUE into
/// such an object's data, or an old `owner` would not keep a young `value`
/// alive across a minor GC.
pub fn written(owner: VALUE, value: VALUE) {
    if is_immediate(value) {
        return; // immediates
    }
    // SAFETY: two live objects (module invariants), with the GVL.
    unsafe { rb_sys::rb_gc_writebarrier(owner, value) };
}
