//! FiddleJit::Pointer: a native address. Stubs read `address` inline (it is
//! the first field of the wrapped struct; see `emit::x86_64::unbox_pointer`),
//! so the layout is `repr(C)` and must keep `address` first.

use magnus::rb_sys::AsRawValue;
use magnus::typed_data::Obj;
use magnus::value::{Opaque, ReprValue};
use magnus::{function, method, prelude::*, Error, RModule, Ruby, TryConvert, TypedData, Value};
use std::sync::OnceLock;

#[magnus::wrap(class = "FiddleJit::Pointer", free_immediately, size)]
#[repr(C)]
pub struct Pointer {
    address: usize,
    /// Size of the pointed-to type, for `Pointer.new(type, address)`.
    type_size: usize,
}

static NULL: OnceLock<Opaque<Value>> = OnceLock::new();

impl Pointer {
    /// The address of a Pointer (or subclass instance), if `value` is one.
    pub fn address_of(value: Value) -> Option<usize> {
        <&Pointer>::try_convert(value).ok().map(|p| p.address)
    }

    /// A Pointer VALUE for `address`: the shared NULL for 0, like the ffi gem.
    pub fn new_value(address: usize) -> Value {
        let ruby = Ruby::get().expect("Ruby thread");
        if address == 0 {
            if let Some(null) = NULL.get() {
                return ruby.get_inner(*null);
            }
        }
        ruby.obj_wrap(Pointer { address, type_size: 1 }).as_value()
    }

    /// Address of the `rb_data_type_t` every Pointer object carries.
    pub fn data_type_address() -> usize {
        <Pointer as TypedData>::data_type() as *const _ as usize
    }

    fn rb_new(ruby: &Ruby, args: &[Value]) -> Result<Obj<Pointer>, Error> {
        let (type_size, address) = match args {
            [address] => (1, *address),
            [ty, address] => (type_size_of(ruby, *ty)?, *address),
            _ => {
                return Err(Error::new(
                    ruby.exception_arg_error(),
                    format!("wrong number of arguments (given {}, expected 1..2)", args.len()),
                ))
            }
        };
        // Like the ffi gem: a Pointer, or an Integer read as NUM2LL (so
        // negative values wrap and 2**63 is a RangeError); nothing else.
        let address = match Pointer::address_of(address) {
            Some(a) => a,
            None if address.is_kind_of(ruby.class_integer()) => i64::try_convert(address)? as usize,
            None => {
                return Err(Error::new(
                    ruby.exception_type_error(),
                    format!("wrong argument type {}, expected Integer or FiddleJit::Pointer", address.class()),
                ))
            }
        };
        Ok(ruby.obj_wrap(Pointer { address, type_size }))
    }

    fn address(&self) -> usize {
        self.address
    }

    fn is_null(&self) -> bool {
        self.address == 0
    }

    fn type_size(&self) -> usize {
        self.type_size
    }

    /// Equal addresses; `nil` equals NULL; anything else is an
    /// ArgumentError, as in the ffi gem.
    fn eq(ruby: &Ruby, rb_self: &Self, other: Value) -> Result<bool, Error> {
        if other.is_nil() {
            return Ok(rb_self.address == 0);
        }
        match Pointer::address_of(other) {
            Some(a) => Ok(a == rb_self.address),
            None => Err(Error::new(ruby.exception_arg_error(), "Invalid Memory object")),
        }
    }

    fn eql(&self, other: Value) -> bool {
        Pointer::address_of(other) == Some(self.address)
    }

    fn plus(ruby: &Ruby, rb_self: &Self, offset: i64) -> Obj<Pointer> {
        ruby.obj_wrap(Pointer { address: rb_self.address.wrapping_add(offset as usize), type_size: rb_self.type_size })
    }

    fn inspect(rb_self: Obj<Pointer>) -> String {
        format!("#<{} address=0x{:016x}>", rb_self.class(), rb_self.address)
    }

    fn hash(&self) -> usize {
        self.address
    }
}

fn type_size_of(ruby: &Ruby, ty: Value) -> Result<usize, Error> {
    if let Ok(n) = usize::try_convert(ty) {
        return Ok(n);
    }
    // Symbols are resolved by the Ruby layer (FiddleJit.type_size).
    let module: RModule = ruby.class_object().const_get("FiddleJit")?;
    module.funcall("type_size", (ty,))
}

pub fn init(ruby: &Ruby, module: RModule) -> Result<(), Error> {
    let class = module.define_class("Pointer", ruby.class_object())?;
    class.undef_default_alloc_func();
    class.define_singleton_method("new", function!(Pointer::rb_new, -1))?;
    class.define_method("address", method!(Pointer::address, 0))?;
    class.define_method("to_i", method!(Pointer::address, 0))?;
    class.define_method("null?", method!(Pointer::is_null, 0))?;
    class.define_method("type_size", method!(Pointer::type_size, 0))?;
    class.define_method("==", method!(Pointer::eq, 1))?;
    class.define_method("eql?", method!(Pointer::eql, 1))?;
    class.define_method("hash", method!(Pointer::hash, 0))?;
    class.define_method("+", method!(Pointer::plus, 1))?;
    class.define_method("inspect", method!(Pointer::inspect, 0))?;
    class.const_set("SIZE", std::mem::size_of::<usize>())?;
    let null = ruby.obj_wrap(Pointer { address: 0, type_size: 1 });
    class.const_set("NULL", null)?;
    // SAFETY: NULL is a constant (reachable forever) and pinned by
    // rb_gc_register_mark_object, so the stored VALUE never moves.
    unsafe { rb_sys::rb_gc_register_mark_object(null.as_raw()) };
    let _ = NULL.set(Opaque::from(null.as_value()));
    Ok(())
}
