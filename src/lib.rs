//! fiddle_jit: an ffi-gem-compatible FFI whose calls go through per-function
//! machine-code stubs.
//!
//! Layers, each depending only on those before it (docs/design.md):
//! `types` (C type model) ← `abi` (calling-convention plans) ← `lower`
//! (Ruby's side of each conversion, as machine-independent ops) ←
//! `backend` (machine code for them; `emit`: executable memory) ←
//! `runtime` (slow paths stubs call, callbacks; what it needs of the Ruby
//! classes comes through `runtime::host`) ← `ruby` (magnus bindings).
//! `cargo test` covers the pure layers; the Ruby-facing ones need an
//! interpreter and are tested by RSpec.

pub mod abi;
pub mod backend;
pub mod emit;
pub mod lower;
pub mod types;
pub mod binary128;
#[cfg(target_arch = "x86_64")]
pub mod x87;

/// This machine's C `long double`: x87 80-bit extended on x86-64, IEEE
/// binary128 on AArch64 (Linux).
#[cfg(target_arch = "x86_64")]
pub use x87::LongDouble;
#[cfg(target_arch = "aarch64")]
pub use binary128::LongDouble;

#[cfg(not(test))]
pub mod ruby;
#[cfg(not(test))]
pub mod runtime;

#[cfg(not(test))]
#[magnus::init]
fn init(ruby: &magnus::Ruby) -> Result<(), magnus::Error> {
    ruby::init(ruby)
}
