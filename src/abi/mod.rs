//! Calling-convention planning: for each argument, where the Ruby VALUE comes
//! from when the stub is entered and where the native value must be when the
//! C function is called. Pure data in, data out; no Ruby, no machine code.
//!
//! The same location assignment serves both directions: a forward stub
//! (Ruby calls C) places arguments where [`assign_c_locations`] says, and a
//! reverse trampoline (C calls Ruby) reads them from there.

pub mod aapcs64;
pub mod sysv_x86_64;

use crate::types::{CType, Signature};

/// Where a C-level value lives at the call boundary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CLoc {
    /// The n-th integer argument register (SysV: rdi, rsi, rdx, rcx, r8, r9;
    /// AAPCS64: xn).
    Int(u8),
    /// The n-th vector argument register (SysV: xmm0..xmm7; AAPCS64: vn).
    Float(u8),
    /// Byte offset into the stack argument area: from rsp (sp) at the call
    /// instruction for the caller, from rsp+8 (x86-64) or sp (aarch64) at
    /// entry for the callee. An 8-byte slot (16, 16-aligned, for an x86-64
    /// long double), except on Apple arm64 where a named scalar argument
    /// takes exactly its size (see `abi::aapcs64`).
    Stack(u32),
    /// A small struct split into pieces (SysV eightbytes, AAPCS64 x-register
    /// words or HFA members), each in its own location.
    Pieces(Vec<Piece>),
    /// A struct passed by value in memory: copied into the stack argument
    /// area at `offset`.
    StackCopy { offset: u32, size: u32 },
    /// A struct passed by reference to a copy (AAPCS64 rule B.4, structs
    /// over 16 bytes): the caller copies the `size` bytes to memory it owns
    /// (its own frame, at least 8-byte aligned, alive until the call
    /// returns; the callee may write to it) and passes the copy's address
    /// like a pointer argument, in `address` (an `Int` register or a `Stack`
    /// slot). SysV never produces it.
    ByReference { address: Box<CLoc>, size: u32 },
}

/// One piece of a struct passed in registers: its bytes
/// `offset..offset + size` travel in `loc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub loc: CLoc,
    /// Byte offset of this eightbyte inside the struct.
    pub offset: u32,
    pub size: u8,
}

/// Where a return value comes back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetLoc {
    None,
    /// rax (SysV) — integers, pointers, bool.
    Int,
    /// xmm0 (SysV).
    Float,
    /// The x87 register stack's top, st(0): a long double (SysV class X87).
    X87,
    /// A small struct in rax/rdx/xmm0/xmm1 eightbytes (AAPCS64: x0/x1, or
    /// v0–v3 for an HFA).
    Pieces(Vec<Piece>),
    /// A large struct written through a hidden pointer the caller passes in
    /// `pointer`.
    Indirect { size: u32, pointer: ResultPointer },
}

/// Where the caller passes the address of a struct result returned in
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultPointer {
    /// As a hidden first integer argument (SysV: rdi), so every argument
    /// moves one integer register later; the callee returns it in rax.
    FirstIntArg,
    /// In x8 (AAPCS64), outside the argument registers: x0 stays the first
    /// argument, and the callee need not return the address.
    X8,
}

/// Where an argument's VALUE is when the stub converts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgSource {
    /// An incoming integer register (cfunc parameter index, self included).
    Int(u8),
    /// Incoming integer register n, saved to the stub's frame by its
    /// prologue (see [`StubPlan::spill`]).
    Spilled(u8),
    /// Byte offset into the caller's stack argument area.
    Stack(u32),
    /// `argv[i]` of the `(int argc, VALUE *argv, VALUE self)` form.
    Argv(u32),
}

/// What a stub turns an argument's VALUE into, or a result into a VALUE
/// from, in C terms: the value class and the convention's rule for the
/// register bits a narrow integer does not fill. How a Ruby value becomes
/// one is `crate::lower`'s business.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// No value (a void result).
    Void,
    /// An integer of `bytes` (1, 2, 4 or 8) bytes.
    Int { bytes: u8, signed: bool, widen: Widen },
    /// false → 0, true → 1, in the whole register.
    Bool,
    Double,
    Float,
    /// A NUL-terminated `char *` that Ruby sees as a String.
    CString,
    Pointer,
    /// A pointer from nil or a Struct of the class the stub's info names
    /// (`Struct.by_ref`).
    StructRef,
    /// A struct by value: its bytes go where `PlanEntry::dest` says.
    Struct,
    /// An x87 long double, in memory (SysV).
    LongDouble,
}

/// The register bits above a narrow integer's own bytes, as the
/// convention has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Widen {
    /// Not defined: the receiver extends the value itself. Every 8-byte
    /// integer, and narrow results under both conventions (a callee sets
    /// only al/ax/eax, w0's low bits).
    None,
    /// Extended to 32 bits per the signedness; bits 32..63 not defined.
    /// SysV arguments: the psABI does not require it, but clang-built
    /// callees rely on it, so callers do it.
    To32,
    /// Extended to 64 bits per the signedness (AAPCS64 arguments): Apple's
    /// callers must extend to 32 bits and Linux callees extend themselves,
    /// so any extension to 32 bits or more serves the standard; this one
    /// is what libffi (and so the ffi gem) passes, which a binding whose
    /// type is narrower than the C parameter (`labs` attached with `:int`)
    /// observes.
    To64,
}

impl Conversion {
    /// The conversion of a value of type `ty`; `widen` is the convention's
    /// rule for narrow integers.
    pub fn of(ty: &CType, widen: Widen) -> Conversion {
        let int = |bytes: u8, signed| Conversion::Int { bytes, signed, widen: if bytes < 8 { widen } else { Widen::None } };
        match ty {
            CType::Void => Conversion::Void,
            CType::Bool => Conversion::Bool,
            CType::I8 => int(1, true),
            CType::U8 => int(1, false),
            CType::I16 => int(2, true),
            CType::U16 => int(2, false),
            CType::I32 => int(4, true),
            CType::U32 => int(4, false),
            CType::I64 => int(8, true),
            CType::U64 => int(8, false),
            CType::F32 => Conversion::Float,
            CType::F64 => Conversion::Double,
            CType::LongDouble => Conversion::LongDouble,
            CType::Pointer => Conversion::Pointer,
            CType::StructRef => Conversion::StructRef,
            CType::CString => Conversion::CString,
            CType::Struct(_) => Conversion::Struct,
        }
    }
}

/// How Ruby calls the stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfuncForm {
    /// `VALUE f(VALUE self, VALUE a1, ..., VALUE an)` — Ruby checks arity.
    Fixed(u8),
    /// `VALUE f(int argc, VALUE *argv, VALUE self)` — the stub checks argc.
    Argv(u32),
}

/// One argument's journey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanEntry {
    /// 0-based argument position, as the user sees it.
    pub index: usize,
    pub source: ArgSource,
    pub ty: CType,
    pub conv: Conversion,
    pub dest: CLoc,
}

/// Everything a backend needs to build a forward stub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StubPlan {
    pub form: CfuncForm,
    pub args: Vec<PlanEntry>,
    /// Incoming integer registers the prologue saves to the frame before
    /// any argument is converted, because a destination register would
    /// otherwise overwrite one of them before its VALUE is read (a struct's
    /// pieces fill registers faster than Ruby's arguments are consumed).
    /// Their arguments' sources are then [`ArgSource::Spilled`].
    pub spill: Vec<u8>,
    /// Bytes of outgoing stack arguments (a multiple of 16).
    pub stack_bytes: u32,
    /// Vector registers used: the value SysV variadic calls put in %al
    /// (AAPCS64 has no such register; there it is NSRN, informational).
    pub float_regs_used: u8,
    pub variadic: bool,
    pub ret_ty: CType,
    pub ret_conv: Conversion,
    pub ret: RetLoc,
}

/// Everything a backend needs to build a reverse trampoline (C calls Ruby).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallbackPlan {
    /// Where each incoming C argument is, in order.
    pub args: Vec<(CType, CLoc)>,
    pub ret_ty: CType,
    pub ret: RetLoc,
    /// Bytes of stack arguments the caller pushed.
    pub stack_bytes: u32,
}

/// Why a signature cannot be planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    VoidParam(usize),
    TooManyParams(usize),
    /// A struct by value holding a long double (x87 classes in aggregates).
    LongDoubleInStruct,
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::VoidParam(i) => write!(f, "argument {} cannot be :void", i + 1),
            PlanError::TooManyParams(n) => write!(f, "{n} arguments is more than fiddle_jit supports"),
            PlanError::LongDoubleInStruct => f.write_str("structs by value with :long_double fields are not supported"),
        }
    }
}

/// Ruby's limit for a fixed-arity cfunc.
pub const MAX_FIXED_ARITY: usize = 15;
/// A sanity bound: ffi-gem bindings never come close.
pub const MAX_PARAMS: usize = 256;

/// The largest struct whose passing depends on where its scalars lie: SysV
/// classifies eightbytes only up to 16 bytes, an AAPCS64 HFA is at most
/// four 16-byte members. Above it only the scalars' types and alignments
/// matter (MEMORY class, or a copy passed by reference).
pub const MAX_CLASSIFIED_AGGREGATE: usize = 64;

/// The parameter checks every convention makes.
fn check_common(sig: &Signature) -> Result<(), PlanError> {
    if let Some(i) = sig.params.iter().position(|t| *t == CType::Void) {
        return Err(PlanError::VoidParam(i));
    }
    if sig.params.len() > MAX_PARAMS {
        return Err(PlanError::TooManyParams(sig.params.len()));
    }
    Ok(())
}

/// A convention's C locations for a signature: `(argument locations, return
/// location, stack bytes, vector registers used)`.
type Assigned = (Vec<CLoc>, RetLoc, u32, u8);

/// A forward-stub plan from a convention's C locations. Ruby passes the
/// cfunc's VALUEs like C integer arguments (self first): in the first
/// `int_regs` registers, then in 8-byte stack slots; `argv` forces the
/// `(argc, argv, self)` form, which more than [`MAX_FIXED_ARITY`]
/// parameters need anyway. `widen` is the convention's rule for narrow
/// integer arguments.
fn stub_plan(sig: &Signature, argv: bool, int_regs: u8, widen: Widen, assigned: Assigned) -> StubPlan {
    let n = sig.params.len();
    let form = if n <= MAX_FIXED_ARITY && !argv { CfuncForm::Fixed(n as u8) } else { CfuncForm::Argv(n as u32) };
    let (locs, ret, stack_bytes, float_regs_used) = assigned;
    let source = |i: usize| match form {
        CfuncForm::Argv(_) => ArgSource::Argv(i as u32),
        CfuncForm::Fixed(_) if i + 1 < int_regs as usize => ArgSource::Int(i as u8 + 1),
        CfuncForm::Fixed(_) => ArgSource::Stack(8 * (i + 1 - int_regs as usize) as u32),
    };
    let mut args: Vec<PlanEntry> = sig
        .params
        .iter()
        .zip(locs)
        .enumerate()
        .map(|(index, (ty, dest))| PlanEntry {
            index,
            source: source(index),
            ty: ty.clone(),
            conv: Conversion::of(ty, widen),
            dest,
        })
        .collect();
    let mut spill = Vec::new();
    if overwrites_a_later_source(&args) {
        for e in &mut args {
            if let ArgSource::Int(r) = e.source {
                spill.push(r);
                e.source = ArgSource::Spilled(r);
            }
        }
    }
    StubPlan {
        form,
        args,
        spill,
        stack_bytes,
        float_regs_used,
        variadic: sig.is_variadic(),
        ret_ty: sig.ret.clone(),
        ret_conv: Conversion::of(&sig.ret, Widen::None),
        ret,
    }
}

/// The integer registers a destination writes.
fn int_registers(dest: &CLoc) -> Vec<u8> {
    match dest {
        CLoc::Int(k) => vec![*k],
        CLoc::Pieces(pieces) => pieces.iter().flat_map(|p| int_registers(&p.loc)).collect(),
        CLoc::ByReference { address, .. } => int_registers(address),
        CLoc::Float(_) | CLoc::Stack(_) | CLoc::StackCopy { .. } => vec![],
    }
}

/// Whether converting the arguments left to right straight into their
/// destinations would overwrite the incoming register of an argument not
/// yet converted. Ruby passes argument i in integer register i+1 and C
/// wants its k-th integer argument in register k ≤ i, so scalars never do;
/// struct pieces (two registers for one argument) can.
fn overwrites_a_later_source(args: &[PlanEntry]) -> bool {
    args.iter().enumerate().any(|(i, e)| {
        int_registers(&e.dest).into_iter().any(|k| args[i + 1..].iter().any(|later| later.source == ArgSource::Int(k)))
    })
}

// Both planners are pure Rust and compiled on every host (so `cargo test`
// checks the aarch64 rules on x86-64); the host's architecture picks one.

/// C locations for a (non-variadic) parameter list and return type, in the
/// host's convention.
pub fn assign_c_locations(params: &[CType], ret: &CType) -> (Vec<CLoc>, RetLoc, u32, u8) {
    #[cfg(target_arch = "aarch64")]
    return aapcs64::assign(params, ret, None, aapcs64::Platform::host());
    #[cfg(not(target_arch = "aarch64"))]
    return sysv_x86_64::assign(params, ret);
}

/// Plans a forward stub for `sig` in the host's convention.
pub fn plan_stub(sig: &Signature) -> Result<StubPlan, PlanError> {
    #[cfg(target_arch = "aarch64")]
    return aapcs64::plan_stub(sig, aapcs64::Platform::host());
    #[cfg(not(target_arch = "aarch64"))]
    return sysv_x86_64::plan_stub(sig);
}

/// Plans a forward stub in the `(argc, argv, self)` cfunc form whatever
/// its arity (`argv`), or in the usual form.
pub fn plan_stub_in_form(sig: &Signature, argv: bool) -> Result<StubPlan, PlanError> {
    #[cfg(target_arch = "aarch64")]
    return aapcs64::plan_stub_in_form(sig, argv, aapcs64::Platform::host());
    #[cfg(not(target_arch = "aarch64"))]
    return sysv_x86_64::plan_stub_in_form(sig, argv);
}

/// Plans a reverse trampoline for `sig` in the host's convention.
pub fn plan_callback(sig: &Signature) -> Result<CallbackPlan, PlanError> {
    #[cfg(target_arch = "aarch64")]
    return aapcs64::plan_callback(sig, aapcs64::Platform::host());
    #[cfg(not(target_arch = "aarch64"))]
    return sysv_x86_64::plan_callback(sig);
}
