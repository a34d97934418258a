//! Struct field accessors: a layout's `Struct#[]` and `#[]=` as ops, so a
//! number field costs a few loads and compares on top of the method call.
//!
//! The accessor is a cfunc `(self, name[, value])`. It checks, in order:
//! the receiver's data type and that its data views memory through this
//! layout's table (a struct of another layout, or not initialized, goes
//! elsewhere); the memory's Pointer: not byte-swapped, readable (writable
//! for `[]=`), not NULL; then compares `name` with each field's Symbol
//! VALUE (static Symbols are immediates, dynamic ones pinned by the table)
//! and checks the field lies within the memory's size. Any check failing,
//! an unknown name or a value it does not convert inline ends in
//! [`Op::Fallback`]: a jump to the generic Rust cfunc with the arguments
//! untouched, which does all of it again and raises what it raises.
//!
//! Registers: `Receiver` and `Name` the first two arguments, `Value` the
//! third (`[]=`'s value); `T1`, `T2`, `Arg` and `FReg::Arg` scratch; `Ret`
//! may be the receiver's register (aarch64), so it is written only once no
//! path can fall back.

use super::ruby_layout::*;
use super::{box_double_bits, check_int_range, cstring_result, int64_result, Cond, Const, FReg, LabelId, Lowered, Op::*, Operand, Reg, TailTarget};
use Reg::{Arg, Name, Receiver, Ret, Value, T1, T2};

/// Fields beyond this many are left to the fallback (the dispatch is a
/// chain of compares, and a conversion's labels are numbered in a `u8`).
pub const MAX_FIELDS: usize = 32;

/// What the accessors of one layout are built from (all offsets in bytes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StructAccess {
    /// The `rb_data_type_t` of Struct objects.
    pub data_type: u64,
    /// The layout's field table VALUE a struct's data must hold.
    pub table: u64,
    /// Offsets in a Struct's data of its memory (the Pointer's data) and
    /// its table.
    pub memory_at: i32,
    pub table_at: i32,
    pub pointer: PointerLayout,
    /// At most [`MAX_FIELDS`]; names the fallback's.
    pub fields: Vec<AccessField>,
}

/// Where a Pointer's data keeps what the guards read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PointerLayout {
    pub address_at: i32,
    /// Accessible bytes from the address (an unsigned word).
    pub size_at: i32,
    /// A 16-bit word: its low byte is 1 when scalars are stored
    /// byte-swapped (else 0), its high byte the access bits, of which
    /// `read` and `write` are set when allowed.
    pub swap_and_flags_at: i32,
    pub read: u8,
    pub write: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccessField {
    /// The field name's VALUE (a Symbol).
    pub name: u64,
    pub offset: u32,
    pub kind: FieldKind,
}

/// The field types accessed inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldKind {
    Int { bytes: u8, signed: bool },
    Float,
    Double,
    /// `:pointer`: read as a new Pointer (`TailTarget::RetPointer`);
    /// written by the fallback (nil, Pointers, Structs, `to_ptr`...).
    Pointer,
    /// `:string`: read as nil or a new String of the bytes up to the NUL
    /// (rb_str_new_cstr); written by the fallback (which raises).
    String,
}

impl FieldKind {
    fn bytes(self) -> u8 {
        match self {
            FieldKind::Int { bytes, .. } => bytes,
            FieldKind::Float => 4,
            FieldKind::Double | FieldKind::Pointer | FieldKind::String => 8,
        }
    }

    /// Whether `Struct#[]=` stores it inline.
    fn written_inline(self) -> bool {
        !matches!(self, FieldKind::Pointer | FieldKind::String)
    }
}

/// `Struct#[](name)`: the field read and boxed (Fixnum, Bignum through
/// rb_(u)ll2inum, flonum, heap Float through rb_float_new_in_heap, Pointer
/// through the runtime's `ret_pointer`, String through rb_str_new_cstr).
pub fn reader(a: &StructAccess) -> Lowered {
    let mut l = Lowered::default();
    let fallback = l.label();
    guards(&mut l, a, a.pointer.read, fallback);
    for (f, at) in dispatch(&mut l, &a.fields, fallback) {
        l.hot.push(Label(at));
        in_bounds(&mut l, f, fallback);
        let (offset, bytes) = (f.offset as i32, f.kind.bytes());
        match f.kind {
            FieldKind::Int { bytes: 8, signed } => {
                l.hot.push(LoadSized { dst: Ret, base: T1, offset, bytes, signed });
                int64_result(&mut l, signed);
            }
            // Every narrow value fits a Fixnum.
            FieldKind::Int { signed, .. } => l.hot.extend([
                LoadSized { dst: Ret, base: T1, offset, bytes, signed },
                ShiftInTagBit { reg: Ret },
                Return,
            ]),
            FieldKind::Double => {
                l.hot.extend([LoadSized { dst: Ret, base: T1, offset, bytes, signed: false }, BitsToDouble { dst: FReg::Ret, src: Ret }]);
                box_double_bits(&mut l);
            }
            FieldKind::Pointer => l.hot.extend([
                LoadSized { dst: Ret, base: T1, offset, bytes, signed: false },
                TailCall { target: TailTarget::RetPointer },
            ]),
            FieldKind::String => {
                l.hot.push(LoadSized { dst: Ret, base: T1, offset, bytes, signed: false });
                cstring_result(&mut l);
            }
            FieldKind::Float => {
                l.hot.extend([
                    LoadSized { dst: T2, base: T1, offset, bytes, signed: false },
                    BitsToDouble { dst: FReg::Ret, src: T2 },
                    FloatToDouble { reg: FReg::Ret },
                    DoubleToBits { dst: Ret, src: FReg::Ret },
                ]);
                box_double_bits(&mut l);
            }
        }
    }
    l.cold.extend([Label(fallback), Fallback]);
    l
}

/// `Struct#[]=(name, value)`, returning `value`: a Fixnum in the C type's
/// range (as the ffi gem takes it, truncated to unsigned narrow types) into
/// an integer field; a flonum or Fixnum into a float or double field.
/// Everything else (Bignums, heap Floats, `to_int`, pointer and string
/// fields, a frozen struct) falls back. The receiver's flags are checked first.
pub fn writer(a: &StructAccess) -> Lowered {
    let mut l = Lowered::default();
    let fallback = l.label();
    l.hot.extend([
        Load { dst: T1, base: Receiver, offset: RBASIC_FLAGS },
        BranchIfBits { reg: T1, mask: FL_FREEZE, set: true, target: fallback },
    ]);
    guards(&mut l, a, a.pointer.write, fallback);
    let numbers: Vec<AccessField> = a.fields.iter().filter(|f| f.kind.written_inline()).copied().collect();
    for (f, at) in dispatch(&mut l, &numbers, fallback) {
        l.hot.push(Label(at));
        in_bounds(&mut l, f, fallback);
        match f.kind {
            FieldKind::Int { bytes, signed } => {
                l.hot.push(ShiftOutTagBit { dst: Arg, src: Value, unless: fallback });
                check_int_range(&mut l, Arg, bytes, signed, T2, fallback);
            }
            FieldKind::Float | FieldKind::Double => double_bits_of_value(&mut l, f.kind == FieldKind::Float, fallback),
            FieldKind::Pointer | FieldKind::String => unreachable!("filtered out above"),
        }
        l.hot.extend([
            Store { src: Arg, base: T1, offset: f.offset as i32, bytes: f.kind.bytes() },
            Mov { dst: Ret, src: Operand::Reg(Value) },
            Return,
        ]);
    }
    l.cold.extend([Label(fallback), Fallback]);
    l
}

/// `T1` ← the address of the receiver's memory, `T2` ← its size, after
/// checking the receiver is a Struct (its data type, compared by address:
/// a method of a Struct class only ever gets its instances, whose data is
/// always StructData) viewing this layout's table, and that its memory
/// allows `need` inline.
fn guards(l: &mut Lowered, a: &StructAccess, need: u8, fallback: LabelId) {
    let p = a.pointer;
    l.hot.extend([
        Load { dst: T1, base: Receiver, offset: RTYPEDDATA_TYPE },
        BranchIfCmp { a: T1, cond: Cond::Ne, b: Operand::Imm(a.data_type as i64), target: fallback },
        Load { dst: T1, base: Receiver, offset: RTYPEDDATA_DATA },
        Load { dst: T2, base: T1, offset: a.table_at },
        // The table is the code's `Const::Info`, in its literal pool: the
        // instructions depend only on the layout's shape (see runtime::jit).
        BranchIfCmp { a: T2, cond: Cond::Ne, b: Operand::Const(Const::Info), target: fallback },
        Load { dst: T1, base: T1, offset: a.memory_at },
        // Not swapped and `need` allowed, in one compare.
        LoadSized { dst: T2, base: T1, offset: p.swap_and_flags_at, bytes: 2, signed: false },
        AndImm { dst: T2, src: T2, imm: 0xff | (need as i64) << 8 },
        BranchIfCmp { a: T2, cond: Cond::Ne, b: Operand::Imm((need as i64) << 8), target: fallback },
        Load { dst: T2, base: T1, offset: p.size_at },
        Load { dst: T1, base: T1, offset: p.address_at },
        BranchIfCmp { a: T1, cond: Cond::Eq, b: Operand::Imm(0), target: fallback },
    ]);
}

/// Compares `Name` with the fields' names; no match falls back. Returns
/// each field with its label. A few names are compared in layout order;
/// more are searched (unsigned order of the VALUEs), so a later field costs
/// about log2(n) compares, not n. A repeated name may find any of its
/// entries: the table gave them all its last field.
fn dispatch<'a>(l: &mut Lowered, fields: &'a [AccessField], fallback: LabelId) -> Vec<(&'a AccessField, LabelId)> {
    debug_assert!(fields.len() <= MAX_FIELDS);
    let fields: Vec<_> = fields.iter().map(|f| (f, l.label())).collect();
    let mut sorted = fields.clone();
    if sorted.len() > LINEAR_SEARCH {
        sorted.sort_by_key(|(f, _)| f.name);
    }
    search(l, &sorted, fallback);
    fields
}

/// Names compared one after the other, at most (see `dispatch`).
const LINEAR_SEARCH: usize = 4;

/// `dispatch`'s compares for `fields` (ascending by name when more than
/// `LINEAR_SEARCH`).
fn search(l: &mut Lowered, fields: &[(&AccessField, LabelId)], fallback: LabelId) {
    if fields.len() <= LINEAR_SEARCH {
        for &(f, at) in fields {
            l.hot.push(BranchIfCmp { a: Name, cond: Cond::Eq, b: Operand::Imm(f.name as i64), target: at });
        }
        l.hot.push(Jump(fallback));
        return;
    }
    let (lower, upper) = fields.split_at(fields.len() / 2);
    let above = l.label();
    let last_lower = lower[lower.len() - 1].0.name;
    l.hot.push(BranchIfCmp { a: Name, cond: Cond::Above, b: Operand::Imm(last_lower as i64), target: above });
    search(l, lower, fallback);
    l.hot.push(Label(above));
    search(l, upper, fallback);
}

/// Falls back unless the field's bytes end within the memory's size (`T2`).
fn in_bounds(l: &mut Lowered, f: &AccessField, fallback: LabelId) {
    let end = f.offset as i64 + f.kind.bytes() as i64;
    l.hot.push(BranchIfCmp { a: T2, cond: Cond::BelowOrEqual, b: Operand::Imm(end - 1), target: fallback });
}

/// `Arg` ← the bits of `Value` as a double (a flonum decoded as
/// `lower::float_arg` does, or a Fixnum converted), or as a float in the
/// low 32 bits when `single`. Anything else falls back.
fn double_bits_of_value(l: &mut Lowered, single: bool, fallback: LabelId) {
    let (not_flonum, zero, to_float, done) = (l.label(), l.label(), l.label(), l.label());
    l.hot.extend([
        BranchUnlessTag { reg: Value, mask: FLONUM_MASK as i64, tag: FLONUM_FLAG as i64, tmp: T2, target: not_flonum },
        BranchIfCmp { a: Value, cond: Cond::Eq, b: Operand::Imm(FLONUM_ZERO), target: zero },
        SubTopBit { dst: Arg, src: Value },
        RotateRight { reg: Arg, n: 3 },
    ]);
    if single {
        l.hot.extend([
            BitsToDouble { dst: FReg::Arg, src: Arg },
            Label(to_float),
            DoubleToFloat { reg: FReg::Arg },
            DoubleToBits { dst: Arg, src: FReg::Arg },
        ]);
    }
    l.hot.push(Label(done));
    // +0.0 is all zero bits as a double and as a float.
    l.cold.extend([
        Label(zero),
        Mov { dst: Arg, src: Operand::Imm(0) },
        Jump(done),
        Label(not_flonum),
        ShiftOutTagBit { dst: Arg, src: Value, unless: fallback },
        IntToDouble { dst: FReg::Arg, src: Arg },
    ]);
    if single {
        l.cold.push(Jump(to_float));
    } else {
        l.cold.extend([DoubleToBits { dst: Arg, src: FReg::Arg }, Jump(done)]);
    }
}
