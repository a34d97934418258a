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
use magnus::{method, prelude::*, DataTypeFunctions, Error, RClass, RModule, Ruby, TypedData};

/// One data type per class tree (magnus ties a data type to one class).
macro_rules! footprint {
    ($name:ident, $class:literal) => {
        #[derive(TypedData, Default)]
        #[magnus(class = $class, free_immediately, size, frozen_shareable)]
        pub struct $name {
            /// Bytes reported by memsize_of (beyond the object slot).
            bytes: Word,
        }

        impl DataTypeFunctions for $name {
            fn size(&self) -> usize {
                std::mem::size_of::<$name>() + self.bytes.get()
            }
        }

        impl $name {
            /// Private `__footprint__=(bytes)`.
            fn set_bytes(rb_self: &$name, bytes: usize) {
                rb_self.bytes.set(bytes);
            }

            fn define(class: RClass) -> Result<(), Error> {
                class.define_alloc_func::<$name>();
                class.define_private_method("__footprint__=", method!($name::set_bytes, 1))?;
                Ok(())
            }
        }
    };
}

footprint!(TypeFootprint, "FiddleJit::Type");
footprint!(FieldFootprint, "FiddleJit::StructLayout::Field");

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let type_class = module.define_class("Type", ruby.class_object())?;
    TypeFootprint::define(type_class)?;
    let layout = module.define_class("StructLayout", type_class)?;
    let field = layout.define_class("Field", ruby.class_object())?;
    FieldFootprint::define(field)?;
    Ok(())
}
