//! Ruby bindings (magnus): the classes and module functions lib/ builds on.

pub mod attach;
pub mod footprint;
pub mod function;
pub mod library;
pub mod own_files;
pub mod pointer;
pub mod struct_accessors;
pub mod struct_memory;
pub mod stub_lifetime;
pub mod variadic;

use crate::runtime::host::{self, Host};
use function::Function;
use magnus::{Error, Ruby};
use pointer::Pointer;
use struct_memory::StructData;

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    // Every method defined from here on (and the stubs, see attach.rs) may
    // be called from any Ractor: what they share across Ractors is either
    // immutable (NULL, frozen shareable objects) or behind a lock (the code
    // arena, the callback registry), and errno is per thread.
    // SAFETY: a plain flag of the extension loader, set during Init.
    unsafe { rb_sys::rb_ext_ractor_safe(true) };
    host::install(Host {
        pointer_address: Pointer::address_of,
        new_pointer: Pointer::new_value,
        struct_address: StructData::address_of,
        function_address: Function::address_of,
        check_readable: pointer::check_readable,
        new_memory: pointer::Pointer::new_memory,
        pointer_data_type: Pointer::data_type_address(),
        struct_data_type: StructData::data_type_address(),
    });
    let module = ruby.define_module("FiddleJit")?;
    footprint::init(ruby, module)?;
    pointer::init(ruby, module)?;
    struct_memory::init(ruby, module)?;
    struct_accessors::init(ruby, module)?;
    library::init(ruby, module)?;
    own_files::init(ruby, module)?;
    attach::init(ruby, module)?;
    function::init(ruby, module)?;
    variadic::init(ruby, module)?;
    Ok(())
}
