//! Backends: machine code from plans and lowered conversions.
//!
//! A forward stub is built in the same steps on every machine
//! ([`stub::build`]): prologue, each argument's conversion (lowered once
//! by `crate::lower`, instructions chosen here), the call, the result's
//! conversion, then the slow paths and the literal pool. Each backend
//! (`x86_64`, `aarch64`) fills in those steps: instruction selection for
//! the lowering's ops, the frame and the pool; it re-derives no ABI rule
//! (those are in the plan) and knows nothing of Ruby beyond what an op
//! says. Also here: the slow-path thunks, reverse trampolines for
//! callbacks, and disassembly.

// Pure code generation, compiled on every host: tested here, run under
// qemu-aarch64 by `rake aarch64` (test/aarch64/run.sh, run_callbacks.sh).
mod accessor;
#[cfg(all(test, target_arch = "x86_64"))]
mod accessor_tests;
pub mod aarch64;
pub mod aarch64_callback;
#[cfg(test)]
mod aarch64_tests;
pub mod disasm;
mod stub;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;
#[cfg(target_arch = "x86_64")]
pub mod x86_64_callback;
#[cfg(all(test, target_arch = "x86_64"))]
mod x86_64_tests;

use crate::abi::{CallbackPlan, StubPlan};
use crate::emit::arena::{self, CodeArena};
use crate::lower::{self, Helper, TailTarget};

/// Addresses a stub may call or compare against, provided by the runtime
/// layer. Each `arg_*` slow path has the contract
/// `fn(value: VALUE, info: *const StubInfo, index: u32) -> native` and either
/// returns the converted value (rax, or xmm0 for `arg_double`) or raises.
#[derive(Clone, Copy, Debug, Default)]
pub struct RuntimeTargets {
    /// NUM2INT semantics (int8/int16/int32 parameters).
    pub arg_int: usize,
    /// NUM2UINT semantics (uint8/uint16/uint32 parameters).
    pub arg_uint: usize,
    /// NUM2LL semantics (int64, long).
    pub arg_long_long: usize,
    /// NUM2ULL semantics (uint64, unsigned long).
    pub arg_ulong_long: usize,
    /// Raises: the VALUE is neither true nor false.
    pub arg_bool: usize,
    /// NUM2DBL semantics; result in xmm0.
    pub arg_double: usize,
    /// `fn(slot: *mut VALUE, info, index) -> *const c_char`: StringValueCStr
    /// semantics; may replace `*slot` with the result of `to_str`.
    pub arg_cstr: usize,
    /// Pointer subclasses, `to_ptr`, String; raises otherwise.
    pub arg_pointer: usize,
    /// `fn(argc: c_int, info) -> !` for the argv form.
    pub arity_error: usize,
    /// `fn(address) -> VALUE`: a Pointer object.
    pub ret_pointer: usize,
    /// `rb_ll2inum`, `rb_ull2inum`, `rb_float_new_in_heap`, `rb_str_new_cstr`.
    pub ll2inum: usize,
    pub ull2inum: usize,
    pub float_new_in_heap: usize,
    pub str_new_cstr: usize,
    /// The `rb_data_type_t` of Pointer objects, for the inline Pointer check.
    pub pointer_data_type: usize,
    /// The `rb_data_type_t` of Struct objects (`ruby::struct_memory`), for
    /// the inline Struct check: `[[data] + 0]` is then the address.
    pub struct_data_type: usize,
    /// `(errno, saved errno)`: both offsets from the thread pointer (static
    /// TLS, see `runtime::errno`). After the call the stub copies the 32-bit
    /// errno into the saved slot; `None` means it does not.
    pub errno_tp_offsets: Option<(i32, i32)>,
    /// `rb_thread_call_without_gvl`, for `blocking: true` stubs.
    pub call_without_gvl: usize,
    /// Struct by value: `fn(value, info, index) -> *const u8` (checks the
    /// VALUE is a big enough Struct and returns its address) and
    /// `fn(info, bytes) -> VALUE` (a new Struct holding a copy of `bytes`).
    pub arg_struct: usize,
    pub ret_struct: usize,
    /// long double: `fn(slot: *mut [u8; 16], info, index)` (the slot holds
    /// the VALUE on entry, the 80-bit value on return) and
    /// `fn(bytes: *const [u8; 16]) -> VALUE`.
    pub arg_long_double: usize,
    pub ret_long_double: usize,
}

/// Addresses of the installed slow-path thunks: one per conversion helper
/// ([`Helper`]), shared by every stub. A thunk saves the argument registers,
/// calls its helper and restores them (contracts in `x86_64`, `aarch64`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Thunks {
    pub arg_int: usize,
    pub arg_uint: usize,
    pub arg_long_long: usize,
    pub arg_ulong_long: usize,
    pub arg_double: usize,
    pub arg_bool: usize,
    pub arg_pointer: usize,
    pub arg_cstr: usize,
    pub arg_struct: usize,
    pub arg_long_double: usize,
}

/// `$base`'s field for `helper` (`RuntimeTargets` and `Thunks` name their
/// fields alike), read, or assigned with `, = value`.
macro_rules! helper_field {
    ($base:expr, $helper:expr $(, = $value:expr)?) => {
        match $helper {
            Helper::ArgInt => $base.arg_int $(= $value)?,
            Helper::ArgUint => $base.arg_uint $(= $value)?,
            Helper::ArgLongLong => $base.arg_long_long $(= $value)?,
            Helper::ArgUlongLong => $base.arg_ulong_long $(= $value)?,
            Helper::ArgBool => $base.arg_bool $(= $value)?,
            Helper::ArgDouble => $base.arg_double $(= $value)?,
            Helper::ArgCstr => $base.arg_cstr $(= $value)?,
            Helper::ArgPointer => $base.arg_pointer $(= $value)?,
            Helper::ArgStruct => $base.arg_struct $(= $value)?,
            Helper::ArgLongDouble => $base.arg_long_double $(= $value)?,
        }
    };
}

impl RuntimeTargets {
    /// The function behind a thunk.
    fn helper(&self, helper: Helper) -> usize {
        helper_field!(self, helper)
    }

    /// The function a stub tail-calls.
    pub(crate) fn tail_target(&self, target: TailTarget) -> usize {
        match target {
            TailTarget::Ll2Inum => self.ll2inum,
            TailTarget::Ull2Inum => self.ull2inum,
            TailTarget::FloatNewInHeap => self.float_new_in_heap,
            TailTarget::StrNewCstr => self.str_new_cstr,
            TailTarget::RetPointer => self.ret_pointer,
        }
    }
}

impl Thunks {
    /// The thunk that calls `helper`.
    pub(crate) fn of(&self, helper: Helper) -> usize {
        helper_field!(self, helper)
    }

    #[allow(dead_code)] // unused on architectures without a backend
    fn set(&mut self, helper: Helper, address: usize) {
        helper_field!(self, helper, = address)
    }
}

/// Every helper with a thunk, in the order of `Thunks`' fields (and of
/// `runtime::jit`'s names for them).
pub(crate) const THUNK_HELPERS: [Helper; 10] = [
    Helper::ArgInt,
    Helper::ArgUint,
    Helper::ArgLongLong,
    Helper::ArgUlongLong,
    Helper::ArgDouble,
    Helper::ArgBool,
    Helper::ArgPointer,
    Helper::ArgCstr,
    Helper::ArgStruct,
    Helper::ArgLongDouble,
];

/// Machine code for every thunk on machine `M`, in the order of `Thunks`'
/// fields.
pub(crate) fn emit_thunks<M: stub::Machine>(targets: &RuntimeTargets) -> Vec<Vec<u8>> {
    THUNK_HELPERS.iter().map(|&h| stub::thunk::<M>(targets.helper(h), lower::helper_fast_path(h).as_ref())).collect()
}

/// Emits the thunks for `targets` into `arena`. Call once per process.
pub fn install_thunks(arena: &mut CodeArena, targets: &RuntimeTargets) -> Result<Thunks, EmitError> {
    #[cfg(target_arch = "x86_64")]
    return install_all(arena, emit_thunks::<x86_64::X64>(targets));
    #[cfg(target_arch = "aarch64")]
    return install_all(arena, emit_thunks::<aarch64::A64>(targets));
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (arena, targets);
        Err(EmitError::UnsupportedArch(std::env::consts::ARCH))
    }
}

/// Installs a backend's thunks, for a prefix of [`THUNK_HELPERS`] (the
/// others' addresses stay 0: no such thunk on this architecture).
#[allow(dead_code)] // unused on architectures without a backend
fn install_all(arena: &mut CodeArena, codes: Vec<Vec<u8>>) -> Result<Thunks, EmitError> {
    let mut thunks = Thunks::default();
    for (&helper, code) in THUNK_HELPERS.iter().zip(&codes) {
        let address = arena.install(code).map_err(|e| EmitError::ExecutableMemory(arena::describe_map_error(&e)))?;
        thunks.set(helper, address);
    }
    Ok(thunks)
}

/// One forward stub to build.
pub struct StubRequest<'a> {
    pub plan: &'a StubPlan,
    /// The C function's address.
    pub function: usize,
    /// Opaque per-function data passed to slow paths (names for messages).
    pub info: usize,
    pub targets: &'a RuntimeTargets,
    pub thunks: &'a Thunks,
    /// Release the GVL around the C call (`blocking: true`).
    pub blocking: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// The host architecture has no backend yet.
    UnsupportedArch(&'static str),
    /// The plan uses something this backend cannot convert yet.
    Unsupported(String),
    Assembler(String),
    /// The OS refused executable memory (message from
    /// `arena::describe_map_error`).
    ExecutableMemory(String),
    /// The signature cannot be planned (`abi::PlanError`'s message).
    Plan(String),
}

impl std::fmt::Display for EmitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmitError::UnsupportedArch(arch) => {
                write!(f, "fiddle_jit has no code generator for {arch} yet (x86_64 and aarch64 only)")
            }
            EmitError::Unsupported(what) => write!(f, "not supported yet: {what}"),
            EmitError::Assembler(e) => write!(f, "assembler error: {e}"),
            EmitError::ExecutableMemory(e) | EmitError::Plan(e) => write!(f, "{e}"),
        }
    }
}

/// A stub's bytes: instructions first, then its literal pool.
#[derive(Clone)]
pub struct EmittedStub {
    pub code: Vec<u8>,
    /// Bytes of instructions (the rest is data).
    pub code_len: usize,
    /// Offsets of the literal-pool entries holding the C function's address
    /// and the stub's info: everything else in a stub depends only on the
    /// signature, so another function with the same signature gets a copy
    /// with these two patched (no assembling).
    pub function_at: usize,
    pub info_at: usize,
}

impl EmittedStub {
    /// This stub for another function and info of the same signature.
    pub fn retarget(&self, function: usize, info: usize) -> EmittedStub {
        let (f, i) = (self.function_at, self.info_at);
        let mut copy = self.clone();
        copy.code[f..f + 8].copy_from_slice(&(function as u64).to_le_bytes());
        copy.code[i..i + 8].copy_from_slice(&(info as u64).to_le_bytes());
        copy
    }
}

/// Emits position-independent machine code for `req`.
pub fn emit_stub(req: &StubRequest) -> Result<EmittedStub, EmitError> {
    #[cfg(target_arch = "x86_64")]
    {
        stub::build::<x86_64::X64>(req)
    }
    #[cfg(target_arch = "aarch64")]
    {
        stub::build::<aarch64::A64>(req)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = req;
        Err(EmitError::UnsupportedArch(std::env::consts::ARCH))
    }
}

/// One reverse trampoline (C calls Ruby) to build, shared by every callback
/// of its signature.
pub struct CallbackRequest<'a> {
    pub plan: &'a CallbackPlan,
    /// `extern "C" fn(slot: usize, raw_args: *const u64) -> u64`: the
    /// runtime entry; `slot` is the thunk's `[trampoline, data]` pair, each
    /// raw argument one 8-byte slot (floats in their low bytes), the result
    /// the return value's bits.
    pub entry: usize,
}

/// Emits the per-signature reverse trampoline for `req`.
pub fn emit_callback_trampoline(req: &CallbackRequest) -> Result<Vec<u8>, EmitError> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64_callback::emit_trampoline(req)
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64_callback::emit_trampoline(req)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = req;
        Err(EmitError::UnsupportedArch(std::env::consts::ARCH))
    }
}

/// Emits a Ruby method entry (argc, argv, self) that calls `target` with
/// `data` as a fourth argument (see `x86_64_callback::emit_method_thunk`).
pub fn emit_method_thunk(data: usize, target: usize) -> Result<Vec<u8>, EmitError> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64_callback::emit_method_thunk(data, target)
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64_callback::emit_method_thunk(data, target)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (data, target);
        Err(EmitError::UnsupportedArch(std::env::consts::ARCH))
    }
}

/// Emits a layout's struct accessor (`lower::struct_access`) lowered as
/// `l`, for the layout table `table` (its info: everything else in the code
/// depends only on the layout's shape), falling back to the cfunc at
/// `fallback`.
pub fn emit_struct_accessor(
    l: &lower::Lowered,
    table: usize,
    fallback: usize,
    targets: &RuntimeTargets,
) -> Result<EmittedStub, EmitError> {
    #[cfg(target_arch = "x86_64")]
    {
        accessor::emit::<x86_64::X64>(l, table, fallback, targets)
    }
    #[cfg(target_arch = "aarch64")]
    {
        accessor::emit::<aarch64::A64>(l, table, fallback, targets)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (l, table, fallback, targets);
        Err(EmitError::UnsupportedArch(std::env::consts::ARCH))
    }
}

/// Emits the per-callback thunk that loads `slot` and jumps through it.
/// Every thunk is the same code around the slot's address, a 64-bit
/// literal (an immediate on x86-64, a literal-pool word on aarch64): the
/// assembler makes it once, for a marker address, and each thunk is that
/// template with its address written over the marker's bytes (a callback
/// per Function.new made the assembler's cost show: ffi-yajl makes 11 per
/// parse).
pub fn emit_callback_thunk(slot: usize) -> Result<Vec<u8>, EmitError> {
    static TEMPLATE: ThunkTemplate = std::sync::OnceLock::new();
    thunk_from_template(&TEMPLATE, emit_callback_thunk_with_assembler, slot)
}

/// The thunks of `slots` as one piece of code, each starting on a 16-byte
/// boundary (the arena's stub alignment: a thunk's literal stays aligned),
/// with trap bytes between them; and each one's offset in it.
pub fn emit_callback_thunks(slots: &[usize]) -> Result<(Vec<u8>, Vec<usize>), EmitError> {
    #[cfg(target_arch = "aarch64")]
    const TRAP: u8 = 0x00; // `udf #0` is the all-zero word
    #[cfg(not(target_arch = "aarch64"))]
    const TRAP: u8 = 0xcc; // int3
    let mut code = Vec::with_capacity(slots.len() * 32);
    let mut offsets = Vec::with_capacity(slots.len());
    for &slot in slots {
        offsets.push(code.len());
        code.extend(emit_callback_thunk(slot)?);
        code.resize(code.len().next_multiple_of(16), TRAP);
    }
    Ok((code, offsets))
}

/// A thunk's code for a marker address and where the marker is in it
/// (None: the assembler failed, or the marker's bytes are not there once).
type ThunkTemplate = std::sync::OnceLock<Option<(Vec<u8>, usize)>>;

/// `emit(slot)`, from `template` (made by `emit` on first use).
fn thunk_from_template(template: &ThunkTemplate, emit: fn(usize) -> Result<Vec<u8>, EmitError>, slot: usize) -> Result<Vec<u8>, EmitError> {
    const MARKER: u64 = 0x5a17_c0de_7e57_ab1e;
    let template = template.get_or_init(|| {
        let code = emit(MARKER as usize).ok()?;
        let marker = MARKER.to_le_bytes();
        let mut at = code.windows(8).enumerate().filter(|(_, w)| *w == marker).map(|(i, _)| i);
        // The marker's bytes exactly once, or no template.
        match (at.next(), at.next()) {
            (Some(i), None) => Some((code, i)),
            _ => None,
        }
    });
    match template {
        Some((code, at)) => {
            let mut code = code.clone();
            code[*at..*at + 8].copy_from_slice(&(slot as u64).to_le_bytes());
            Ok(code)
        }
        None => emit(slot),
    }
}

fn emit_callback_thunk_with_assembler(slot: usize) -> Result<Vec<u8>, EmitError> {
    #[cfg(target_arch = "x86_64")]
    {
        x86_64_callback::emit_thunk(slot)
    }
    #[cfg(target_arch = "aarch64")]
    {
        aarch64_callback::emit_thunk(slot)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = slot;
        Err(EmitError::UnsupportedArch(std::env::consts::ARCH))
    }
}

#[cfg(test)]
mod thunk_template_tests {
    use super::*;

    #[test]
    fn a_thunk_from_the_template_is_the_assemblers_thunk_on_both_architectures() {
        let emitters: [fn(usize) -> Result<Vec<u8>, EmitError>; 2] = [
            aarch64_callback::emit_thunk,
            #[cfg(target_arch = "x86_64")]
            x86_64_callback::emit_thunk,
            #[cfg(not(target_arch = "x86_64"))]
            aarch64_callback::emit_thunk,
        ];
        for emit in emitters {
            let template = ThunkTemplate::new();
            for slot in [0x10usize, 0x7f12_3456_7890, usize::MAX - 7, 0x5a17_c0de_7e57_ab1e, 0x1e_ab57_7ede_c017] {
                assert_eq!(thunk_from_template(&template, emit, slot).unwrap(), emit(slot).unwrap(), "slot {slot:#x}");
            }
            assert!(template.get().unwrap().is_some(), "the marker is in the code once");
        }
    }

    #[test]
    fn a_batch_of_thunks_is_each_thunk_on_a_16_byte_boundary() {
        let slots = [0x1000usize, 0x2040, 0x7fff_0000_0008];
        let (code, offsets) = emit_callback_thunks(&slots).unwrap();
        assert_eq!(offsets.len(), slots.len());
        for (&slot, &at) in slots.iter().zip(&offsets) {
            let one = emit_callback_thunk(slot).unwrap();
            assert_eq!(at % 16, 0);
            assert_eq!(&code[at..at + one.len()], &one[..]);
        }
        assert_eq!(code.len() % 16, 0);
    }
}
