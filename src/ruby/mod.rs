//! Ruby bindings (magnus): the classes and module functions lib/ builds on.

pub mod attach;
pub mod function;
pub mod library;
pub mod pointer;
pub mod struct_memory;
pub mod stub_lifetime;

use magnus::{Error, Ruby};

pub fn init(ruby: &Ruby) -> Result<(), Error> {
    let module = ruby.define_module("FiddleJit")?;
    pointer::init(ruby, module)?;
    struct_memory::init(ruby, module)?;
    library::init(ruby, module)?;
    attach::init(ruby, module)?;
    function::init(ruby, module)?;
    Ok(())
}
