//! Lowering: Ruby's side of every conversion, written once for all
//! machines.
//!
//! For each argument of a plan ([`argument`]) and for its result
//! ([`result`]) this layer writes the conversion between a Ruby VALUE and
//! the C value the plan asks for ([`Conversion`]) as a short list of
//! [`Op`]s: load, test tag bits, compare, shift, branch to the slow path,
//! place in the plan's destination. Everything known here about Ruby —
//! tag bits, object layout (from [`ruby_layout`], the one module that has
//! it), which slow-path helper applies and in what order things are
//! checked — is written once; the backends (`crate::backend::x86_64`,
//! `crate::backend::aarch64`) only choose instructions for the ops. No
//! machine register is named here: ops work on the abstract registers of
//! [`Reg`] and [`FReg`], which a backend maps per argument.
//!
//! A conversion has a hot part, emitted where the argument is converted,
//! and a cold part (slow paths), emitted after the stub's return; both use
//! the conversion's own labels ([`LabelId`]). Condition flags never live
//! from one op to the next.
//!
//! So "how does a `:double` argument get into xmm2 / d2": [`float_arg`]
//! says how a Float, a Fixnum or anything else becomes a double in
//! [`FReg::Arg`], and `backend::stub`'s `argument_registers` maps
//! `FReg::Arg` to the vector register the plan's destination names (each
//! backend's `place_float` stores it to the stack or call block instead).
//!
//! Also here: the fast path the StringValueCStr helper's thunk runs first
//! ([`cstr_fast_path`]), shared by every stub.

pub mod ruby_layout;
pub mod struct_access;

use crate::abi::{CLoc, Conversion, PlanEntry, StubPlan, Widen};
use ruby_layout::*;

/// An integer register of a conversion. The backend maps each to a machine
/// register for one argument (or the result):
///
/// - `Value` is read-only. A VALUE that arrives in a register stays there;
///   one in memory is loaded by [`Op::LoadValue`] into a scratch register,
///   or left in memory where the ops allow (x86-64).
/// - `Arg` is the destination register when the plan's destination is an
///   integer register, else a scratch register. It may be the same machine
///   register as `Value` (never when `Value` is an incoming register):
///   **an op that writes `Arg` ends `Value`'s life** in the hot path, so a
///   conversion writes `Arg` only after its last read of `Value` there
///   (the slow paths reload the VALUE from its source).
/// - `Ret` is where the C function's integer result arrives and the VALUE
///   the stub returns leaves (rax / x0).
/// - `T1`, `T2` are scratch; a helper call clobbers them.
/// - `Receiver`, `Name`: a struct accessor's `self` and field name
///   ([`struct_access`]); read-only, and no stub has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reg {
    Value,
    Arg,
    Ret,
    T1,
    T2,
    Receiver,
    Name,
}

/// A vector register: `Arg` is the destination register when the plan's
/// destination is one, else a scratch register; `Ret` holds the C
/// function's floating-point result (xmm0 / d0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FReg {
    Arg,
    Ret,
}

/// A label local to one conversion (`0..Lowered::labels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelId(pub u8);

/// A comparison's outcome a branch is taken on (unsigned for the orders).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    Eq,
    Ne,
    /// Unsigned ≤.
    BelowOrEqual,
    /// Unsigned >.
    Above,
}

/// An address the backend puts in the stub's literal pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Const {
    /// The stub's `info` pointer (`runtime::StubInfo`); a struct
    /// accessor's layout table ([`struct_access`]).
    Info,
    /// The `rb_data_type_t` of FiddleJit::Pointer objects.
    PointerDataType,
    /// The `rb_data_type_t` of FiddleJit::Struct objects.
    StructDataType,
}

/// The second operand of a comparison or a move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand<R = Reg> {
    Imm(i64),
    Reg(R),
    Const(Const),
}

impl Operand {
    fn resolve<R>(self, r: impl Fn(Reg) -> R) -> Operand<R> {
        match self {
            Operand::Imm(v) => Operand::Imm(v),
            Operand::Reg(reg) => Operand::Reg(r(reg)),
            Operand::Const(k) => Operand::Const(k),
        }
    }
}

/// A slow-path helper, called through its thunk (which saves the argument
/// registers; see `backend`). Contract: `fn(value, info, index)` returning
/// the converted value (integer or double) or raising.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helper {
    /// NUM2INT (int8/int16/int32).
    ArgInt,
    /// NUM2UINT (uint8/uint16/uint32).
    ArgUint,
    /// NUM2LL (int64).
    ArgLongLong,
    /// NUM2ULL (uint64).
    ArgUlongLong,
    /// Raises TypeError: not true or false.
    ArgBool,
    /// NUM2DBL.
    ArgDouble,
    /// StringValueCStr; its first argument is the address of a frame slot
    /// holding the VALUE, which `to_str` may replace.
    ArgCstr,
    /// Pointer subclasses, Structs, Strings, `to_ptr`.
    ArgPointer,
    /// The address of a Struct's bytes.
    ArgStruct,
    /// Writes the 80-bit value over the 16-byte slot whose address it gets.
    ArgLongDouble,
}

/// What a helper gets as its first argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperInput {
    /// The argument's VALUE (reloaded from its source).
    Value,
    /// The address of the conversion's keep-alive frame slot, holding the
    /// VALUE: whatever the helper stores there stays visible to the GC's
    /// conservative stack scan until the C call returns.
    KeptValue,
    /// The address of the argument's stack destination, holding the VALUE.
    ParkedInDest,
}

/// Where a helper's result goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperOutput {
    Arg,
    FArg,
    /// The helper raises or writes its result itself.
    None,
}

/// A function a stub tail-calls with its result (or, for the double, with
/// the C function's result still in [`FReg::Ret`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TailTarget {
    /// `rb_ll2inum(long long)`.
    Ll2Inum,
    /// `rb_ull2inum(unsigned long long)`.
    Ull2Inum,
    /// `rb_float_new_in_heap(double)`.
    FloatNewInHeap,
    /// `rb_str_new_cstr(const char *)`.
    StrNewCstr,
    /// `runtime::ret_pointer(address)`: a Pointer object.
    RetPointer,
}

/// A range of integers one comparison with the value's extension checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntRange {
    /// -2**31 ..= 2**31 - 1: the value equals its low 32 bits sign-extended.
    I32,
    /// 0 ..= 2**32 - 1: the value equals its low 32 bits zero-extended.
    U32,
}

/// One step of a conversion. Integer registers are 64 bits wide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op<R = Reg, F = FReg, L = LabelId> {
    Label(L),
    Jump(L),
    /// Makes `Reg::Value` the argument's VALUE (see [`Reg`]).
    LoadValue,
    /// `Reg::Arg` → the plan's destination; `bytes` is the C value's size
    /// (a packed stack slot gets exactly that many bytes).
    Place { bytes: u8 },
    /// `F::Arg` → the plan's destination, as a float when `single`.
    PlaceFloat { single: bool },
    /// Branch if `reg & mask` is nonzero (`set`) or zero (`!set`).
    BranchIfBits { reg: R, mask: i64, set: bool, target: L },
    /// Branch unless `reg & mask == tag` (a tag test). May clobber `tmp`.
    BranchUnlessTag { reg: R, mask: i64, tag: i64, tmp: R, target: L },
    /// Branch if `a cond b`.
    BranchIfCmp { a: R, cond: Cond, b: Operand<R>, target: L },
    /// Branch if `reg` is (`fits`) or is not (`!fits`) in `range`. May
    /// clobber `tmp`.
    BranchIfInRange { reg: R, range: IntRange, fits: bool, tmp: R, target: L },
    /// Branch unless bits `shift..shift + width` of `src`, as an unsigned
    /// number, are in `lo..=hi`. May clobber `tmp`.
    BranchUnlessFieldIn { src: R, shift: u8, width: u8, lo: i64, hi: i64, tmp: R, target: L },
    /// Branch if `src >> shift` (logical) is nonzero. May clobber `tmp`.
    BranchIfHighBits { src: R, shift: u8, tmp: R, target: L },
    Mov { dst: R, src: Operand<R> },
    /// `dst ← [base + offset]`, 8 bytes.
    Load { dst: R, base: R, offset: i32 },
    /// `dst ←` the `bytes` (1, 2, 4 or 8) at `base + offset`, any
    /// alignment, extended to 64 bits per `signed`.
    LoadSized { dst: R, base: R, offset: i32, bytes: u8, signed: bool },
    /// The low `bytes` (1, 2, 4 or 8) of `src` → `base + offset`, any
    /// alignment.
    Store { src: R, base: R, offset: i32, bytes: u8 },
    AddImm { dst: R, src: R, imm: i64 },
    AndImm { dst: R, src: R, imm: i64 },
    OrImm { dst: R, src: R, imm: i64 },
    /// `dst ← (src >> shift) & (2**width - 1)`.
    BitField { dst: R, src: R, shift: u8, width: u8 },
    /// If bit 0 of `src` is set, `dst ← src >> 1` (arithmetic); else branch
    /// (nothing written). Fixnums carry their tag in bit 0.
    ShiftOutTagBit { dst: R, src: R, unless: L },
    /// `dst ← src + src`, branching if that overflows (signed).
    DoubleOrBranch { dst: R, src: R, overflow: L },
    /// `dst ← src - (src >> 63)` (logical shift): subtracts the top bit.
    SubTopBit { dst: R, src: R },
    RotateLeft { reg: R, n: u8 },
    RotateRight { reg: R, n: u8 },
    /// `reg`'s low `from_bits` bits extended (per `signed`) to 32 bits;
    /// bits 32..63 zero.
    Extend32 { reg: R, from_bits: u8, signed: bool },
    /// `reg`'s low `from_bits` bits extended (per `signed`) to 64 bits.
    Extend64 { reg: R, from_bits: u8, signed: bool },
    /// `reg ← reg * 2 + 1`.
    ShiftInTagBit { reg: R },
    /// `dst ← src's low byte ≠ 0 ? nonzero : zero` (both 0..2**31). May
    /// clobber `tmp`.
    SelectOnLowByte { dst: R, src: R, nonzero: i64, zero: i64, tmp: R },
    /// The bits of `src` as a double.
    BitsToDouble { dst: F, src: R },
    /// A double's bits.
    DoubleToBits { dst: R, src: F },
    ZeroDouble { dst: F },
    /// Signed integer → double.
    IntToDouble { dst: F, src: R },
    DoubleToFloat { reg: F },
    FloatToDouble { reg: F },
    /// Branch unless the first NUL of the 16 bytes at `ptr` is at index
    /// `len` (so `len` < 16). All 16 bytes must be readable. May clobber
    /// `tmp`.
    BranchUnlessNulAt16 { ptr: R, len: R, tmp: R, target: L },
    /// Branch unless the first NUL at `ptr` is at index `len`, reading no
    /// byte outside `ptr[0..=len]`. Needs `len` ≥ 16; the backend may also
    /// branch for lengths it does not scan inline (its slow path is then
    /// cheaper than its loop). May clobber `len` and `tmp`.
    BranchUnlessNulAtLong { ptr: R, len: R, tmp: R, target: L },
    /// Calls `helper` through its thunk with (input, info, the argument's
    /// index); the argument registers survive, `T1`, `T2` and a scratch
    /// `Value`/`Arg` do not.
    CallHelper { helper: Helper, input: HelperInput, output: HelperOutput },
    /// Unreachable (after a helper that raises).
    Trap,
    /// The struct at address `src` → the plan's destination (pieces in
    /// registers, a stack copy, or a frame copy passed by reference).
    CopyStruct { src: R },
    /// The struct result (registers, or the buffer the callee wrote
    /// through the hidden pointer) → `Ret`, a new Struct (`ret_struct`).
    BoxStructResult,
    /// The x87 result → `Ret`, a BigDecimal (`ret_long_double`).
    BoxLongDoubleResult,
    /// Leaves the stub (or a helper's fast path), returning `Ret`.
    Return,
    /// Leaves a helper's fast path for the helper itself, with the
    /// helper's arguments as they came.
    Fallback,
    /// Leaves the stub by jumping to `target` with `Ret` (or, for
    /// `FloatNewInHeap`, `F::Ret`) as its argument.
    TailCall { target: TailTarget },
}

impl Op {
    /// This op with the backend's registers and labels in place of the
    /// abstract ones.
    pub fn resolve<R: Copy, F: Copy, L: Copy>(
        self,
        r: impl Fn(Reg) -> R,
        f: impl Fn(FReg) -> F,
        l: impl Fn(LabelId) -> L,
    ) -> Op<R, F, L> {
        match self {
            Label(x) => Label(l(x)),
            Jump(x) => Jump(l(x)),
            LoadValue => LoadValue,
            Place { bytes } => Place { bytes },
            PlaceFloat { single } => PlaceFloat { single },
            BranchIfBits { reg, mask, set, target } => BranchIfBits { reg: r(reg), mask, set, target: l(target) },
            BranchUnlessTag { reg, mask, tag, tmp, target } => BranchUnlessTag { reg: r(reg), mask, tag, tmp: r(tmp), target: l(target) },
            BranchIfCmp { a, cond, b, target } => BranchIfCmp { a: r(a), cond, b: b.resolve(&r), target: l(target) },
            BranchIfInRange { reg, range, fits, tmp, target } => BranchIfInRange { reg: r(reg), range, fits, tmp: r(tmp), target: l(target) },
            BranchUnlessFieldIn { src, shift, width, lo, hi, tmp, target } => BranchUnlessFieldIn { src: r(src), shift, width, lo, hi, tmp: r(tmp), target: l(target) },
            BranchIfHighBits { src, shift, tmp, target } => BranchIfHighBits { src: r(src), shift, tmp: r(tmp), target: l(target) },
            Mov { dst, src } => Mov { dst: r(dst), src: src.resolve(&r) },
            Load { dst, base, offset } => Load { dst: r(dst), base: r(base), offset },
            LoadSized { dst, base, offset, bytes, signed } => LoadSized { dst: r(dst), base: r(base), offset, bytes, signed },
            Store { src, base, offset, bytes } => Store { src: r(src), base: r(base), offset, bytes },
            AddImm { dst, src, imm } => AddImm { dst: r(dst), src: r(src), imm },
            AndImm { dst, src, imm } => AndImm { dst: r(dst), src: r(src), imm },
            OrImm { dst, src, imm } => OrImm { dst: r(dst), src: r(src), imm },
            BitField { dst, src, shift, width } => BitField { dst: r(dst), src: r(src), shift, width },
            ShiftOutTagBit { dst, src, unless } => ShiftOutTagBit { dst: r(dst), src: r(src), unless: l(unless) },
            DoubleOrBranch { dst, src, overflow } => DoubleOrBranch { dst: r(dst), src: r(src), overflow: l(overflow) },
            SubTopBit { dst, src } => SubTopBit { dst: r(dst), src: r(src) },
            RotateLeft { reg, n } => RotateLeft { reg: r(reg), n },
            RotateRight { reg, n } => RotateRight { reg: r(reg), n },
            Extend32 { reg, from_bits, signed } => Extend32 { reg: r(reg), from_bits, signed },
            Extend64 { reg, from_bits, signed } => Extend64 { reg: r(reg), from_bits, signed },
            ShiftInTagBit { reg } => ShiftInTagBit { reg: r(reg) },
            SelectOnLowByte { dst, src, nonzero, zero, tmp } => SelectOnLowByte { dst: r(dst), src: r(src), nonzero, zero, tmp: r(tmp) },
            BitsToDouble { dst, src } => BitsToDouble { dst: f(dst), src: r(src) },
            DoubleToBits { dst, src } => DoubleToBits { dst: r(dst), src: f(src) },
            ZeroDouble { dst } => ZeroDouble { dst: f(dst) },
            IntToDouble { dst, src } => IntToDouble { dst: f(dst), src: r(src) },
            DoubleToFloat { reg } => DoubleToFloat { reg: f(reg) },
            FloatToDouble { reg } => FloatToDouble { reg: f(reg) },
            BranchUnlessNulAt16 { ptr, len, tmp, target } => BranchUnlessNulAt16 { ptr: r(ptr), len: r(len), tmp: r(tmp), target: l(target) },
            BranchUnlessNulAtLong { ptr, len, tmp, target } => BranchUnlessNulAtLong { ptr: r(ptr), len: r(len), tmp: r(tmp), target: l(target) },
            CallHelper { helper, input, output } => CallHelper { helper, input, output },
            Trap => Trap,
            CopyStruct { src } => CopyStruct { src: r(src) },
            BoxStructResult => BoxStructResult,
            BoxLongDoubleResult => BoxLongDoubleResult,
            Return => Return,
            Fallback => Fallback,
            TailCall { target } => TailCall { target },
        }
    }
}

impl Op {
    /// The integer registers `self` reads (a helper call reloads the VALUE
    /// from its source and reads none).
    pub fn reads(&self) -> Vec<Reg> {
        match *self {
            BranchIfBits { reg, .. } | BranchUnlessTag { reg, .. } | BranchIfInRange { reg, .. } => vec![reg],
            BranchIfCmp { a, b: Operand::Reg(b), .. } => vec![a, b],
            BranchIfCmp { a, .. } => vec![a],
            BranchUnlessFieldIn { src, .. } | BranchIfHighBits { src, .. } => vec![src],
            Mov { src: Operand::Reg(src), .. } => vec![src],
            Load { base, .. } | LoadSized { base, .. } => vec![base],
            Store { src, base, .. } => vec![src, base],
            AddImm { src, .. } | AndImm { src, .. } | OrImm { src, .. } | BitField { src, .. } => vec![src],
            ShiftOutTagBit { src, .. } | DoubleOrBranch { src, .. } | SubTopBit { src, .. } => vec![src],
            RotateLeft { reg, .. } | RotateRight { reg, .. } | Extend32 { reg, .. } | Extend64 { reg, .. } => vec![reg],
            ShiftInTagBit { reg } => vec![reg],
            SelectOnLowByte { src, .. } | BitsToDouble { src, .. } | IntToDouble { src, .. } => vec![src],
            BranchUnlessNulAt16 { ptr, len, .. } | BranchUnlessNulAtLong { ptr, len, .. } => vec![ptr, len],
            CopyStruct { src } => vec![src],
            Place { .. } => vec![Arg],
            Return | TailCall { .. } | BoxStructResult | BoxLongDoubleResult => vec![Ret],
            _ => vec![],
        }
    }

    /// The integer registers `self` may write.
    pub fn writes(&self) -> Vec<Reg> {
        match *self {
            BranchUnlessTag { tmp, .. } | BranchIfInRange { tmp, .. } => vec![tmp],
            BranchUnlessFieldIn { tmp, .. } | BranchIfHighBits { tmp, .. } => vec![tmp],
            Mov { dst, .. } | Load { dst, .. } | LoadSized { dst, .. } | AddImm { dst, .. } | AndImm { dst, .. } | OrImm { dst, .. } => vec![dst],
            BitField { dst, .. } | ShiftOutTagBit { dst, .. } | DoubleOrBranch { dst, .. } | SubTopBit { dst, .. } => {
                vec![dst]
            }
            RotateLeft { reg, .. } | RotateRight { reg, .. } | Extend32 { reg, .. } | Extend64 { reg, .. } => vec![reg],
            ShiftInTagBit { reg } => vec![reg],
            SelectOnLowByte { dst, tmp, .. } => vec![dst, tmp],
            DoubleToBits { dst, .. } => vec![dst],
            BranchUnlessNulAt16 { tmp, .. } => vec![tmp],
            BranchUnlessNulAtLong { len, tmp, .. } => vec![len, tmp],
            CallHelper { .. } => vec![Arg, T1, T2],
            BoxStructResult | BoxLongDoubleResult => vec![Ret, T1, T2],
            _ => vec![],
        }
    }
}

/// One conversion, lowered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lowered {
    pub hot: Vec<Op>,
    pub cold: Vec<Op>,
    /// Labels used: `LabelId(0)` .. `LabelId(labels - 1)`.
    pub labels: u8,
    /// The slow path needs a keep-alive frame slot ([`HelperInput::KeptValue`]).
    pub keep_slot: bool,
}

impl Lowered {
    fn label(&mut self) -> LabelId {
        self.labels += 1;
        LabelId(self.labels - 1)
    }
}

use Op::*;
use Reg::{Arg, Ret, Value, T1, T2};

/// The conversion of one argument: its VALUE → the plan's destination.
pub fn argument(e: &PlanEntry) -> Lowered {
    let mut l = Lowered::default();
    match e.conv {
        Conversion::Int { bytes, signed, widen } => integer_arg(&mut l, bytes, signed, widen),
        Conversion::Bool => bool_arg(&mut l),
        Conversion::Double => float_arg(&mut l, false),
        Conversion::Float => float_arg(&mut l, true),
        Conversion::CString => string_arg(&mut l),
        Conversion::Pointer => pointer_arg(&mut l),
        Conversion::StructRef => struct_ref_arg(&mut l, e.index),
        Conversion::Struct => struct_arg(&mut l),
        Conversion::LongDouble => long_double_arg(&mut l, &e.dest),
        Conversion::Void => unreachable!("the planner rejects void parameters"),
    }
    l
}

/// Fixnums inline, with the ffi gem's range rule (NUM2INT for signed
/// narrow types, NUM2UINT for unsigned ones, none for 64 bits); anything
/// else — Bignum, Float, `to_int`, enum Symbols — goes to the helper, which
/// applies the same rule. Narrow values are then widened as the convention
/// says (`Widen`): the helper's result too.
fn integer_arg(l: &mut Lowered, bytes: u8, signed: bool, widen: Widen) {
    let (slow, done) = (l.label(), l.label());
    l.hot.extend([LoadValue, ShiftOutTagBit { dst: Arg, src: Value, unless: slow }]);
    check_int_range(l, Arg, bytes, signed, T1, slow);
    let helper = match (bytes, signed) {
        (8, true) => Helper::ArgLongLong,
        (8, false) => Helper::ArgUlongLong,
        (_, true) => Helper::ArgInt,
        (_, false) => Helper::ArgUint,
    };
    l.hot.push(Label(done));
    match widen {
        Widen::To64 if bytes < 8 => l.hot.push(Extend64 { reg: Arg, from_bits: 8 * bytes, signed }),
        Widen::To32 if bytes < 4 => l.hot.push(Extend32 { reg: Arg, from_bits: 8 * bytes, signed }),
        _ => {}
    }
    l.hot.push(Place { bytes });
    l.cold.extend([Label(slow), CallHelper { helper, input: HelperInput::Value, output: HelperOutput::Arg }, Jump(done)]);
}

/// Branches to `slow` unless `reg` (a Fixnum's integer) is in the range
/// the ffi gem takes for a C integer of `bytes` bytes: NUM2INT's for
/// signed narrow types, NUM2UINT's for unsigned ones (then truncated), any
/// for 64 bits. May clobber `tmp`.
pub(crate) fn check_int_range(l: &mut Lowered, reg: Reg, bytes: u8, signed: bool, tmp: Reg, slow: LabelId) {
    match (bytes, signed) {
        (8, _) => {}
        (_, true) => l.hot.push(BranchIfInRange { reg, range: IntRange::I32, fits: false, tmp, target: slow }),
        (_, false) => {
            // NUM2UINT takes INT_MIN..=UINT_MAX: most values pass the first check.
            let fits = l.label();
            l.hot.extend([
                BranchIfInRange { reg, range: IntRange::I32, fits: true, tmp, target: fits },
                BranchIfInRange { reg, range: IntRange::U32, fits: false, tmp, target: slow },
                Label(fits),
            ]);
        }
    }
}

/// true → 1, false → 0; anything else raises TypeError (as the ffi gem).
fn bool_arg(l: &mut Lowered) {
    let (slow, done) = (l.label(), l.label());
    l.hot.extend([
        LoadValue,
        Mov { dst: T1, src: Operand::Imm(1) },
        BranchIfCmp { a: Value, cond: Cond::Eq, b: Operand::Imm(QTRUE as i64), target: done },
        Mov { dst: T1, src: Operand::Imm(0) },
        BranchIfCmp { a: Value, cond: Cond::Ne, b: Operand::Imm(QFALSE as i64), target: slow },
        Label(done),
        Mov { dst: Arg, src: Operand::Reg(T1) },
        Place { bytes: 1 },
    ]);
    l.cold.extend([Label(slow), CallHelper { helper: Helper::ArgBool, input: HelperInput::Value, output: HelperOutput::None }, Trap]);
}

/// A flonum decoded inline (CRuby's rb_float_flonum_value: the double's
/// bits are the VALUE rotated right by 3 after its low two bits, the tag
/// `10`, are replaced by `2 - b63`, which is `v - b63` since they are
/// `10`); +0.0 has a flonum of its own. A Fixnum is converted in the cold
/// part without a call; heap Floats, Bignums and `to_f` objects go to
/// NUM2DBL. `single`: then rounded to a float.
pub fn float_arg(l: &mut Lowered, single: bool) {
    let (not_flonum, zero, call, done) = (l.label(), l.label(), l.label(), l.label());
    l.hot.extend([
        LoadValue,
        BranchUnlessTag { reg: Value, mask: FLONUM_MASK as i64, tag: FLONUM_FLAG as i64, tmp: T1, target: not_flonum },
        BranchIfCmp { a: Value, cond: Cond::Eq, b: Operand::Imm(FLONUM_ZERO), target: zero },
        SubTopBit { dst: T1, src: Value },
        RotateRight { reg: T1, n: 3 },
        BitsToDouble { dst: FReg::Arg, src: T1 },
        Label(done),
    ]);
    if single {
        l.hot.push(DoubleToFloat { reg: FReg::Arg });
    }
    l.hot.push(PlaceFloat { single });
    l.cold.extend([
        Label(zero),
        ZeroDouble { dst: FReg::Arg },
        Jump(done),
        Label(not_flonum),
        ShiftOutTagBit { dst: T1, src: Value, unless: call },
        IntToDouble { dst: FReg::Arg, src: T1 },
        Jump(done),
        Label(call),
        CallHelper { helper: Helper::ArgDouble, input: HelperInput::Value, output: HelperOutput::FArg },
        Jump(done),
    ]);
}

/// nil → NULL; an embedded String in ASCII-8BIT or UTF-8 whose first NUL
/// is right after its bytes (so under 16 bytes) → its pointer, inline.
/// Everything else goes to the helper, StringValueCStr on a keep-alive
/// frame slot, whose thunk first tries [`cstr_fast_path`].
fn string_arg(l: &mut Lowered) {
    let [slow, nil_or_false, done] = [(); 3].map(|_| l.label());
    l.keep_slot = true;
    // Type, NOEMBED and encoding index 0 or 1 (ASCII-8BIT, UTF-8) in one
    // mask and compare.
    let hot_kind = T_MASK | RSTRING_NOEMBED | (ENCODING_MASK & !(ENCODING_INDEX_UTF_8 << ENCODING_SHIFT));
    l.hot.extend(flags_of_a_heap_object(nil_or_false, slow));
    l.hot.extend([
        AndImm { dst: T2, src: T1, imm: hot_kind as i64 },
        BranchIfCmp { a: T2, cond: Cond::Ne, b: Operand::Imm(T_STRING as i64), target: slow },
        embedded_length(T1),
        // The embedded area lies inside the object and has at least 16
        // bytes (see ruby_layout).
        AddImm { dst: Arg, src: Value, imm: RSTRING_EMBED_ARY as i64 },
        BranchUnlessNulAt16 { ptr: Arg, len: T1, tmp: T2, target: slow },
        Label(done),
        Place { bytes: 8 },
    ]);
    l.cold.extend(nil_is_null(nil_or_false, slow, done));
    l.cold.extend([
        Label(slow),
        CallHelper { helper: Helper::ArgCstr, input: HelperInput::KeptValue, output: HelperOutput::Arg },
        Jump(done),
    ]);
}

/// `T1` ← the flags of the object `Value` is, after sending nil, false
/// and the smallest immediates to `nil_or_false` (nil is one of them by its
/// bits from Ruby 3.2 on: 4, inside the immediate mask) and the other
/// immediates to `slow`.
fn flags_of_a_heap_object(nil_or_false: LabelId, slow: LabelId) -> [Op; 4] {
    [
        LoadValue,
        BranchIfCmp { a: Value, cond: Cond::BelowOrEqual, b: Operand::Imm(QNIL as i64), target: nil_or_false },
        BranchIfBits { reg: Value, mask: IMMEDIATE_MASK as i64, set: true, target: slow },
        Load { dst: T1, base: Value, offset: RBASIC_FLAGS },
    ]
}

/// At `nil_or_false`: nil → NULL, anything else (false, a small immediate)
/// → `slow`, where the helper raises the ffi gem's error.
fn nil_is_null(nil_or_false: LabelId, slow: LabelId, done: LabelId) -> [Op; 4] {
    [
        Label(nil_or_false),
        BranchIfCmp { a: Value, cond: Cond::Ne, b: Operand::Imm(QNIL as i64), target: slow },
        Mov { dst: Arg, src: Operand::Imm(0) },
        Jump(done),
    ]
}

/// `T1` (flags on entry, 3.1) ← an embedded String's length.
fn embedded_length(flags: Reg) -> Op {
    match RSTRING_EMBED_LEN {
        EmbedLength::Flags { shift, width } => BitField { dst: flags, src: flags, shift: shift as u8, width: width as u8 },
        EmbedLength::Field(at) => Load { dst: flags, base: Value, offset: at },
    }
}

/// The lowered fast path `helper`'s thunk runs before saving anything and
/// calling it, if it has one.
pub fn helper_fast_path(helper: Helper) -> Option<Lowered> {
    (helper == Helper::ArgCstr).then(cstr_fast_path)
}

/// The StringValueCStr helper's fast path, run by its thunk (once per
/// process, shared by every stub) before anything is saved: a String
/// whose bytes StringValueCStr would hand out unchanged → its pointer in
/// `Ret`. That is one in ASCII-8BIT, UTF-8 or US-ASCII (one-byte
/// terminators), embedded or not, whose first NUL is at index len (Ruby
/// 3.2+ embeds long Strings in larger slots; a heap String's ptr[len] is
/// read by StringValueCStr too). Everything else — other encodings,
/// `to_str`, NULs inside, no terminator (shared substrings), nil, false —
/// falls back to the helper. `Value` is the VALUE in the slot the thunk
/// gets.
pub fn cstr_fast_path() -> Lowered {
    let mut l = Lowered::default();
    let [fail, heap, long, done] = [(); 4].map(|_| l.label());
    let encoding_width = (ENCODING_MASK >> ENCODING_SHIFT).count_ones() as u8;
    l.hot.extend([
        LoadValue,
        BranchIfBits { reg: Value, mask: IMMEDIATE_MASK as i64, set: true, target: fail },
        BranchIfCmp { a: Value, cond: Cond::BelowOrEqual, b: Operand::Imm(QNIL as i64), target: fail },
        Load { dst: T1, base: Value, offset: RBASIC_FLAGS },
        AndImm { dst: T2, src: T1, imm: T_MASK as i64 },
        BranchIfCmp { a: T2, cond: Cond::Ne, b: Operand::Imm(T_STRING as i64), target: fail },
        BitField { dst: T2, src: T1, shift: ENCODING_SHIFT as u8, width: encoding_width },
        BranchIfCmp { a: T2, cond: Cond::Above, b: Operand::Imm(ENCODING_INDEX_US_ASCII as i64), target: fail },
        BranchIfBits { reg: T1, mask: RSTRING_NOEMBED as i64, set: true, target: heap },
        embedded_length(T1),
        AddImm { dst: Arg, src: Value, imm: RSTRING_EMBED_ARY as i64 },
        BranchUnlessNulAt16 { ptr: Arg, len: T1, tmp: T2, target: long },
        Label(done),
        Mov { dst: Ret, src: Operand::Reg(Arg) },
        Return,
        Label(heap),
        Load { dst: T1, base: Value, offset: RSTRING_HEAP_LEN },
        Load { dst: Arg, base: Value, offset: RSTRING_HEAP_PTR },
        Label(long),
        BranchUnlessNulAtLong { ptr: Arg, len: T1, tmp: T2, target: fail },
        Jump(done),
        Label(fail),
        Fallback,
    ]);
    l
}

/// nil → NULL; a FiddleJit::Pointer (its `rb_data_type_t`, compared by
/// address) → the address, the first field of its data, inline. A
/// FiddleJit::Struct (the other data type, any class) → the first field of
/// the Pointer data its StructData's first field points at, and a String →
/// its bytes (RSTRING_PTR, as the ffi gem passes it), both in the cold part
/// (so the Pointer path keeps its length). Other data types, `to_ptr` and
/// errors → the helper.
fn pointer_arg(l: &mut Lowered) {
    let [slow, nil_or_false, not_data, heap_string, not_pointer, address, done] = [(); 7].map(|_| l.label());
    l.hot.extend(flags_of_a_heap_object(nil_or_false, slow));
    l.hot.extend(typed_data(Const::PointerDataType, not_data, not_pointer));
    l.hot.extend([
        Load { dst: Arg, base: Value, offset: RTYPEDDATA_DATA },
        Label(address),
        Load { dst: Arg, base: Arg, offset: 0 },
        Label(done),
        Place { bytes: 8 },
    ]);
    l.cold.extend([
        Label(not_data),
        BranchIfCmp { a: T1, cond: Cond::Ne, b: Operand::Imm(T_STRING as i64), target: slow },
        Load { dst: T1, base: Value, offset: RBASIC_FLAGS },
        BranchIfBits { reg: T1, mask: RSTRING_NOEMBED as i64, set: true, target: heap_string },
        AddImm { dst: Arg, src: Value, imm: RSTRING_EMBED_ARY as i64 },
        Jump(done),
        Label(heap_string),
        Load { dst: Arg, base: Value, offset: RSTRING_HEAP_PTR },
        Jump(done),
        Label(not_pointer),
        BranchIfCmp { a: T1, cond: Cond::Ne, b: Operand::Const(Const::StructDataType), target: slow },
        Load { dst: Arg, base: Value, offset: RTYPEDDATA_DATA },
        Load { dst: Arg, base: Arg, offset: 0 },
        Jump(address),
    ]);
    l.cold.extend(nil_is_null(nil_or_false, slow, done));
    l.cold.extend(pointer_helper(slow, done));
}

/// A `Struct.by_ref` parameter: nil → NULL; a FiddleJit::Struct whose
/// class is exactly the one the parameter requires
/// (`StubInfo.ref_classes[index]`) → its memory's address (as a Struct in
/// [`pointer_arg`]), inline. Anything else → the helper: a subclass's
/// instance passes, a Pointer, String or other object is its TypeError (as
/// the ffi gem's `StructByReference#to_native`).
fn struct_ref_arg(l: &mut Lowered, index: usize) {
    let [slow, nil_or_false, done] = [(); 3].map(|_| l.label());
    l.hot.extend(flags_of_a_heap_object(nil_or_false, slow));
    l.hot.extend(typed_data(Const::StructDataType, slow, slow));
    l.hot.extend(ref_class(index));
    l.hot.extend([
        Load { dst: T1, base: Value, offset: RBASIC_KLASS },
        BranchIfCmp { a: T1, cond: Cond::Ne, b: Operand::Reg(T2), target: slow },
        Load { dst: Arg, base: Value, offset: RTYPEDDATA_DATA },
        Load { dst: Arg, base: Arg, offset: 0 },
        Load { dst: Arg, base: Arg, offset: 0 },
        Label(done),
        Place { bytes: 8 },
    ]);
    l.cold.extend(nil_is_null(nil_or_false, slow, done));
    l.cold.extend(pointer_helper(slow, done));
}

/// With `T1` an object's flags: on to `not_data` unless it is a T_DATA,
/// to `other_type` unless its `rb_data_type_t` is `data_type` (compared by
/// address); `T1` is then the data type.
fn typed_data(data_type: Const, not_data: LabelId, other_type: LabelId) -> [Op; 4] {
    [
        AndImm { dst: T1, src: T1, imm: T_MASK as i64 },
        // RTypedData's `type` is one only in a T_DATA.
        BranchIfCmp { a: T1, cond: Cond::Ne, b: Operand::Imm(T_DATA as i64), target: not_data },
        Load { dst: T1, base: Value, offset: RTYPEDDATA_TYPE },
        BranchIfCmp { a: T1, cond: Cond::Ne, b: Operand::Const(data_type), target: other_type },
    ]
}

/// The pointer parameters' slow path: `runtime::arg_pointer`.
fn pointer_helper(slow: LabelId, done: LabelId) -> [Op; 3] {
    [
        Label(slow),
        CallHelper { helper: Helper::ArgPointer, input: HelperInput::Value, output: HelperOutput::Arg },
        Jump(done),
    ]
}

/// `T2` ← the Struct class `Struct.by_ref` parameter `index` requires:
/// `StubInfo.ref_classes[index]` (ref_classes is StubInfo's first field).
fn ref_class(index: usize) -> [Op; 3] {
    [
        Mov { dst: T2, src: Operand::Const(Const::Info) },
        Load { dst: T2, base: T2, offset: 0 },
        Load { dst: T2, base: T2, offset: 8 * index as i32 },
    ]
}

/// A struct by value: the helper checks the VALUE is a Struct (or Pointer)
/// with at least the struct's size and returns its address; its bytes are
/// then copied where the plan says.
fn struct_arg(l: &mut Lowered) {
    l.hot.extend([
        CallHelper { helper: Helper::ArgStruct, input: HelperInput::Value, output: HelperOutput::Arg },
        CopyStruct { src: Arg },
    ]);
}

/// A long double travels in a 16-byte stack slot (x86-64's 80-bit value;
/// AAPCS64's binary128 once the q registers are taken) or in a q register
/// (AAPCS64): the VALUE is parked in the slot (for a register, in 16 bytes
/// the backend loads it from) and the helper overwrites it with the value
/// (the ffi gem's rules: Float via double, BigDecimal at full precision,
/// else NUM2DBL). No inline path: long doubles are rare and never hot.
fn long_double_arg(l: &mut Lowered, dest: &CLoc) {
    debug_assert!(matches!(dest, CLoc::Stack(_) | CLoc::Float(_)), "long doubles travel in memory or q registers");
    l.hot.push(CallHelper { helper: Helper::ArgLongDouble, input: HelperInput::ParkedInDest, output: HelperOutput::None });
}

/// The conversion of the C function's result into the VALUE the stub
/// returns, ending in [`Op::Return`] or [`Op::TailCall`] on every path.
pub fn result(plan: &StubPlan) -> Lowered {
    let mut l = Lowered::default();
    match plan.ret_conv {
        Conversion::Void => l.hot.extend([Mov { dst: Ret, src: Operand::Imm(QNIL as i64) }, Return]),
        // Only the low byte of a C bool result is defined.
        Conversion::Bool => l.hot.extend([
            SelectOnLowByte { dst: Ret, src: Ret, nonzero: QTRUE as i64, zero: QFALSE as i64, tmp: T1 },
            Return,
        ]),
        Conversion::Int { bytes: 8, signed, .. } => int64_result(&mut l, signed),
        Conversion::Int { bytes, signed, widen } => {
            // Every narrow value fits a Fixnum. Only its own bytes are defined.
            debug_assert_eq!(widen, Widen::None);
            l.hot.extend([Extend64 { reg: Ret, from_bits: 8 * bytes, signed }, ShiftInTagBit { reg: Ret }, Return]);
        }
        Conversion::Double => double_result(&mut l, false),
        Conversion::Float => double_result(&mut l, true),
        // (No Struct.by_ref result reaches a stub: the Ruby layer wraps a plain pointer.)
        Conversion::Pointer | Conversion::StructRef => l.hot.push(TailCall { target: TailTarget::RetPointer }),
        Conversion::CString => cstring_result(&mut l),
        Conversion::Struct => l.hot.extend([BoxStructResult, Return]),
        Conversion::LongDouble => l.hot.extend([BoxLongDoubleResult, Return]),
    }
    l
}

/// The C string at `Ret`: nil for NULL, else a new String of its bytes
/// (rb_str_new_cstr).
pub(crate) fn cstring_result(l: &mut Lowered) {
    let null = l.label();
    l.hot.extend([
        BranchIfCmp { a: Ret, cond: Cond::Eq, b: Operand::Imm(0), target: null },
        TailCall { target: TailTarget::StrNewCstr },
        Label(null),
        Mov { dst: Ret, src: Operand::Imm(QNIL as i64) },
        Return,
    ]);
}

/// A Fixnum when the value fits one (2 * v + 1 does not overflow; an
/// unsigned value is below 2**62), else a Bignum from rb_(u)ll2inum.
pub(crate) fn int64_result(l: &mut Lowered, signed: bool) {
    let big = l.label();
    if signed {
        l.hot.extend([
            DoubleOrBranch { dst: T1, src: Ret, overflow: big },
            AddImm { dst: Ret, src: T1, imm: FIXNUM_FLAG as i64 },
            Return,
            Label(big),
            TailCall { target: TailTarget::Ll2Inum },
        ]);
    } else {
        l.hot.extend([
            BranchIfHighBits { src: Ret, shift: 62, tmp: T1, target: big },
            ShiftInTagBit { reg: Ret },
            Return,
            Label(big),
            TailCall { target: TailTarget::Ull2Inum },
        ]);
    }
}

/// A flonum when the exponent fits (CRuby's rb_float_new_inline: bits
/// 62..60 are 011 or 100; the VALUE is the bits rotated left by 3 with the
/// low two bits `10`), +0.0's own flonum, else a heap Float from
/// rb_float_new_in_heap. The one double whose flonum would collide with
/// +0.0's (bits 0x3000...0) goes to the heap as well.
fn double_result(l: &mut Lowered, single: bool) {
    if single {
        l.hot.push(FloatToDouble { reg: FReg::Ret });
    }
    l.hot.push(DoubleToBits { dst: Ret, src: FReg::Ret });
    box_double_bits(l);
}

/// `double_result` once `Ret` holds the double's bits (and `FReg::Ret`
/// the double, for the heap path).
pub(crate) fn box_double_bits(l: &mut Lowered) {
    let (not_flonum, heap) = (l.label(), l.label());
    l.hot.extend([
        BranchUnlessFieldIn { src: Ret, shift: 60, width: 3, lo: 3, hi: 4, tmp: T1, target: not_flonum },
        RotateLeft { reg: Ret, n: 3 },
        AndImm { dst: Ret, src: Ret, imm: !1 },
        OrImm { dst: Ret, src: Ret, imm: FLONUM_FLAG as i64 },
        BranchIfCmp { a: Ret, cond: Cond::Eq, b: Operand::Imm(FLONUM_ZERO), target: heap },
        Return,
        Label(not_flonum),
        BranchIfCmp { a: Ret, cond: Cond::Ne, b: Operand::Imm(0), target: heap },
        Mov { dst: Ret, src: Operand::Imm(FLONUM_ZERO) },
        Return,
        Label(heap),
        TailCall { target: TailTarget::FloatNewInHeap },
    ]);
}

#[cfg(test)]
mod tests;
