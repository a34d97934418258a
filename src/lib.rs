//! fiddle_jit: an ffi-gem-compatible FFI whose calls go through per-function
//! machine-code stubs.
//!
//! Layers, each depending only on those before it:
//! `types` (C type model) ← `abi` (calling-convention plans) ← `emit`
//! (machine code and executable memory) ← `ruby` (bindings, slow paths).

pub mod abi;
pub mod types;
