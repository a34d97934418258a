//! Native data for the ffi gem's C-implemented type objects that fiddle_jit
//! defines in Ruby: `FiddleJit::Type` (and its subclasses Builtin, Mapped,
//! Array, Struct, StructLayout, FunctionType) and `StructLayout::Field`.
//!
//! In the ffi gem these are TypedData objects, which `ObjectSpace.memsize_of`
//! reports with the size of their C struct and which are frozen and
//! Ractor-shareable. Here their classes allocate a footprint: the Ruby
//! object is a T_DATA whose size (`__footprint__=`, set by the Ruby
//! constructor from what the object describes: fields, parameters) is what
//! memsize_of adds, and whose data type is RUBY_TYPED_FROZEN_SHAREABLE so a
//! frozen type or layout can be shared with Ractors. Their instance
//! variables are generic ivars (a T_DATA has no ivar slots), which these
//! rarely-read objects can afford.

use super::pointer::Word;
use crate::runtime::objects::written;
use magnus::gc::Marker;
use magnus::typed_data::Obj;
use magnus::rb_sys::{AsRawValue, FromRawValue};
use magnus::{method, prelude::*, DataTypeFunctions, Error, RModule, Ruby, TypedData, Value};
use rb_sys::VALUE;
use std::sync::OnceLock;

/// `size` for the memsize of both footprints.
macro_rules! footprint_size {
    ($name:ident) => {
        impl $name {
            /// Private `__footprint__=(bytes)`.
            fn set_bytes(rb_self: &$name, bytes: usize) {
                rb_self.bytes.set(bytes);
            }
        }
    };
}

#[derive(TypedData, Default)]
#[magnus(class = "FiddleJit::Type", free_immediately, size, mark, frozen_shareable, wb_protected)]
pub struct TypeFootprint {
    /// Bytes reported by memsize_of (beyond the object slot).
    bytes: Word,
    /// FunctionType's one-entry memo for `Function.for_callback`: the last
    /// callable passed for the type in the main Ractor and its Function,
    /// both kept alive (marked) until another takes their place, so a
    /// callback C stored from a temporary Proc lives until then. Native, so
    /// the type itself stays frozen (shareable); main Ractor only, so no
    /// Ractor is handed another's Function.
    memo_callable: Word,
    memo_function: Word,
    /// A StructLayout's `StructFieldTable` (`__native_table__=`, set once by
    /// its constructor), so `Struct.new` finds a class's table with one
    /// ivar lookup (`@layout` on the class) rather than two (the second a
    /// generic ivar of this T_DATA). Marked here.
    native_table: Word,
    /// A FunctionType's Signature (`__signature=`, set once by its
    /// constructor; see lib/fiddle_jit/function.rb), marked. Native: an
    /// instance variable of a T_DATA object is a generic-ivar table entry,
    /// about a fifth of what defining a callback type cost.
    signature: Word,
}

/// The memo's Function of FunctionType `function_type` when `callable` is
/// its callable (see `__callback_memo`), without a method call.
pub(crate) fn callback_memo(function_type: VALUE, callable: VALUE) -> Option<VALUE> {
    crate::runtime::objects::typed_data::<TypeFootprint>(function_type)?.memo_hit(callable)
}

/// Remembers `function` as the memo's Function for `callable` of
/// FunctionType `function_type` (see `__callback_memo!`).
pub(crate) fn remember_callback(function_type: VALUE, callable: VALUE, function: VALUE) {
    if let Some(footprint) = crate::runtime::objects::typed_data::<TypeFootprint>(function_type) {
        footprint.remember(function_type, callable, function);
    }
}

/// The Signature a FunctionType stored with `__signature=`, or None for
/// anything else.
pub(crate) fn function_type_signature(function_type: VALUE) -> Option<VALUE> {
    match crate::runtime::objects::typed_data::<TypeFootprint>(function_type)?.signature.get() {
        0 => None,
        signature => Some(signature as VALUE),
    }
}

/// The StructFieldTable a StructLayout stored with `__native_table__=`, or
/// None for anything else.
pub(crate) fn layout_native_table(layout: VALUE) -> Option<VALUE> {
    let footprint = crate::runtime::objects::typed_data::<TypeFootprint>(layout)?;
    match footprint.native_table.get() {
        0 => None,
        table => Some(table as VALUE),
    }
}

impl DataTypeFunctions for TypeFootprint {
    fn size(&self) -> usize {
        std::mem::size_of::<TypeFootprint>() + self.bytes.get()
    }

    fn mark(&self, marker: &Marker) {
        for v in [self.memo_callable.get(), self.memo_function.get(), self.native_table.get(), self.signature.get()] {
            if v != 0 {
                // SAFETY: stored from live VALUEs; kept alive (and pinned) here.
                marker.mark(unsafe { Value::from_raw(v as VALUE) });
            }
        }
    }
}

footprint_size!(TypeFootprint);

/// Set (to 1) only in the main Ractor, where Init runs.
static MAIN_RACTOR_KEY: OnceLock<usize> = OnceLock::new();

pub(crate) fn in_main_ractor() -> bool {
    MAIN_RACTOR_KEY.get().is_some_and(|&key| {
        // SAFETY: a lookup in the current Ractor's local storage.
        !unsafe { rb_sys::rb_ractor_local_storage_ptr(key as rb_sys::rb_ractor_local_key_t) }.is_null()
    })
}

impl TypeFootprint {
    /// Private `__native_table__=(table)`: once, by StructLayout#initialize.
    fn set_native_table(rb_self: Obj<TypeFootprint>, table: Value) {
        if rb_self.native_table.get() == 0 {
            rb_self.native_table.set(table.as_raw() as usize);
            written(rb_self.as_raw(), table.as_raw());
        }
    }

    /// Private `__signature=(signature)`: once, by FunctionType's constructor.
    fn set_signature(rb_self: Obj<TypeFootprint>, signature: Value) {
        if rb_self.signature.get() == 0 {
            rb_self.signature.set(signature.as_raw() as usize);
            written(rb_self.as_raw(), signature.as_raw());
        }
    }

    /// `__signature`: the Signature `__signature=` set, or nil.
    fn signature(ruby: &Ruby, rb_self: &TypeFootprint) -> Value {
        match rb_self.signature.get() {
            0 => ruby.qnil().as_value(),
            // SAFETY: marked by this object, so alive.
            v => unsafe { Value::from_raw(v as VALUE) },
        }
    }

    /// `__callback_memo(callable)`: the memo's Function when `callable` is
    /// its callable (and this is the main Ractor), else nil.
    fn callback_memo(ruby: &Ruby, rb_self: &TypeFootprint, callable: Value) -> Value {
        rb_self.memo_hit(callable.as_raw()).map_or(ruby.qnil().as_value(), |f| {
            // SAFETY: marked by this object, so alive.
            unsafe { Value::from_raw(f) }
        })
    }

    fn memo_hit(&self, callable: VALUE) -> Option<VALUE> {
        let hit = self.memo_callable.get() == callable as usize && self.memo_function.get() != 0;
        (hit && in_main_ractor()).then(|| self.memo_function.get() as VALUE)
    }

    /// `__callback_memo_forget(function)`: forget a freed Function.
    fn forget_callback_memo(rb_self: &TypeFootprint, function: Value) {
        if rb_self.memo_function.get() == function.as_raw() as usize {
            rb_self.memo_callable.set(0);
            rb_self.memo_function.set(0);
        }
    }

    /// `__callback_memo!(callable, function)`: remember them (main Ractor only).
    fn set_callback_memo(rb_self: Obj<TypeFootprint>, callable: Value, function: Value) {
        rb_self.remember(rb_self.as_raw(), callable.as_raw(), function.as_raw());
    }

    /// `owner`: this object's VALUE (for the write barriers).
    fn remember(&self, owner: VALUE, callable: VALUE, function: VALUE) {
        if in_main_ractor() {
            // Function first: a reader holding the GVL sees either the old
            // pair or, once callable matches, the new Function.
            self.memo_function.set(function as usize);
            self.memo_callable.set(callable as usize);
            written(owner, function);
            written(owner, callable);
        }
    }
}

#[derive(TypedData, Default)]
#[magnus(class = "FiddleJit::StructLayout::Field", free_immediately, size, frozen_shareable, wb_protected)]
pub struct FieldFootprint {
    /// Bytes reported by memsize_of (beyond the object slot).
    bytes: Word,
}

impl DataTypeFunctions for FieldFootprint {
    fn size(&self) -> usize {
        std::mem::size_of::<FieldFootprint>() + self.bytes.get()
    }
}

footprint_size!(FieldFootprint);

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    static MARK_TYPE: rb_sys::rb_ractor_local_storage_type = rb_sys::rb_ractor_local_storage_type { mark: None, free: None };
    // SAFETY: Init runs in the main Ractor; one key for the process.
    let key = unsafe { rb_sys::rb_ractor_local_storage_ptr_newkey(&MARK_TYPE) };
    unsafe { rb_sys::rb_ractor_local_storage_ptr_set(key, 1 as *mut std::ffi::c_void) };
    let _ = MAIN_RACTOR_KEY.set(key as usize);

    let type_class = module.define_class("Type", ruby.class_object())?;
    type_class.define_alloc_func::<TypeFootprint>();
    type_class.define_private_method("__footprint__=", method!(TypeFootprint::set_bytes, 1))?;
    type_class.define_method("__callback_memo", method!(TypeFootprint::callback_memo, 1))?;
    type_class.define_method("__signature", method!(TypeFootprint::signature, 0))?;
    type_class.define_private_method("__signature=", method!(TypeFootprint::set_signature, 1))?;
    type_class.define_method("__callback_memo!", method!(TypeFootprint::set_callback_memo, 2))?;
    type_class.define_method("__callback_memo_forget", method!(TypeFootprint::forget_callback_memo, 1))?;
    let layout = module.define_class("StructLayout", type_class)?;
    layout.define_private_method("__native_table__=", method!(TypeFootprint::set_native_table, 1))?;
    let field = layout.define_class("Field", ruby.class_object())?;
    field.define_alloc_func::<FieldFootprint>();
    field.define_private_method("__footprint__=", method!(FieldFootprint::set_bytes, 1))?;
    Ok(())
}
