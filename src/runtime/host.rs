//! What the slow paths need from the `ruby` layer, handed in by it once at
//! init (`ruby::init`): the Pointer, Struct and Function classes' data.
//! The runtime sits below `ruby` (docs/design.md) and does not import it;
//! this table is the one way up.

use magnus::{Error, Value};
use std::sync::OnceLock;

pub struct Host {
    /// The address a FiddleJit::Pointer (any subclass) holds; None for
    /// anything else.
    pub pointer_address: fn(Value) -> Option<usize>,
    /// A Pointer VALUE for an address (the shared NULL for 0).
    pub new_pointer: fn(usize) -> Value,
    /// A new MemoryPointer of that many zeroed bytes.
    pub new_memory: fn(usize) -> Result<Value, Error>,
    /// The address of a FiddleJit::Struct's memory, without `to_ptr`.
    pub struct_address: fn(Value) -> Option<usize>,
    /// The address of a FiddleJit::Function; None for anything else.
    pub function_address: fn(Value) -> Option<usize>,
    /// The ffi gem's read check for a Pointer a stub copies from
    /// (`ruby::pointer::check_readable`).
    pub check_readable: fn(Value) -> Result<(), Error>,
    /// The `rb_data_type_t` addresses of Pointer and Struct objects, which
    /// the stubs compare inline.
    pub pointer_data_type: usize,
    pub struct_data_type: usize,
}

static HOST: OnceLock<Host> = OnceLock::new();

/// Called once, by `ruby::init`, before any stub or callback exists.
pub fn install(host: Host) {
    let _ = HOST.set(host);
}

pub(crate) fn host() -> &'static Host {
    HOST.get().expect("runtime::host::install ran in Init")
}
