//! The lowering is pure data: checked here without a machine, by running
//! the ops in a small interpreter over fake VALUEs laid out like this
//! Ruby's, and by checking the register contract on every path.

use super::*;
use crate::abi::{plan_stub, ArgSource, CLoc, Conversion, PlanEntry, Widen};
use crate::types::{CType, Signature};
use std::collections::HashMap;

/// How a conversion left: placed a value, called a helper, returned...
#[derive(Debug, PartialEq)]
enum Outcome {
    Placed(u64),
    Helper(Helper),
    Returned(u64),
    TailCalled(TailTarget, u64),
    FellBack,
}

/// Registers and memory of the interpreter.
#[derive(Default)]
struct Machine {
    regs: HashMap<Reg, u64>,
    fregs: HashMap<FReg, u64>,
    /// Byte-addressed memory: (address, bytes).
    memory: Vec<(u64, Vec<u8>)>,
}

impl Machine {
    fn get(&self, r: Reg) -> u64 {
        *self.regs.get(&r).unwrap_or_else(|| panic!("{r:?} read before written"))
    }

    fn byte(&self, address: u64) -> u8 {
        for (base, bytes) in &self.memory {
            if address >= *base && address < base + bytes.len() as u64 {
                return bytes[(address - base) as usize];
            }
        }
        panic!("read outside the fake objects at {address:#x}")
    }

    fn word(&self, address: u64) -> u64 {
        u64::from_le_bytes(std::array::from_fn(|i| self.byte(address + i as u64)))
    }

    fn operand(&self, o: Operand) -> u64 {
        match o {
            Operand::Imm(v) => v as u64,
            Operand::Reg(r) => self.get(r),
            Operand::Const(Const::Info) => INFO,
            Operand::Const(Const::PointerDataType) => POINTER_TYPE,
            Operand::Const(Const::StructDataType) => STRUCT_TYPE,
        }
    }

    /// The index of the first NUL at `ptr`, reading at most `limit` bytes.
    fn first_nul(&self, ptr: u64, limit: u64) -> Option<u64> {
        (0..limit).find(|i| self.byte(ptr + i) == 0)
    }

    /// Runs `l` (hot part first) with `Value` = `value`.
    fn run(&mut self, l: &Lowered, value: u64) -> Outcome {
        let ops: Vec<Op> = l.hot.iter().chain(&l.cold).copied().collect();
        let at = |label: LabelId| ops.iter().position(|op| *op == Op::Label(label)).expect("a bound label");
        self.regs.insert(Reg::Value, value);
        let mut pc = 0;
        for _ in 0..10_000 {
            let op = ops[pc];
            pc += 1;
            let mut branch = |taken: bool, target: LabelId| {
                if taken {
                    pc = at(target);
                }
            };
            match op {
                Op::Label(_) | Op::LoadValue => {}
                Op::Jump(l) => branch(true, l),
                Op::Place { .. } => return Outcome::Placed(self.get(Reg::Arg)),
                Op::PlaceFloat { .. } => return Outcome::Placed(self.fregs[&FReg::Arg]),
                Op::BranchIfBits { reg, mask, set, target } => branch((self.get(reg) & mask as u64 != 0) == set, target),
                Op::BranchUnlessTag { reg, mask, tag, target, .. } => {
                    branch(self.get(reg) & mask as u64 != tag as u64, target)
                }
                Op::BranchIfCmp { a, cond, b, target } => {
                    let (a, b) = (self.get(a), self.operand(b));
                    let taken = match cond {
                        Cond::Eq => a == b,
                        Cond::Ne => a != b,
                        Cond::BelowOrEqual => a <= b,
                        Cond::Above => a > b,
                    };
                    branch(taken, target)
                }
                Op::BranchIfInRange { reg, range, fits, target, .. } => {
                    let v = self.get(reg) as i64;
                    let inside = match range {
                        IntRange::I32 => v == v as i32 as i64,
                        IntRange::U32 => v == v as u32 as i64,
                    };
                    branch(inside == fits, target)
                }
                Op::BranchUnlessFieldIn { src, shift, width, lo, hi, target, .. } => {
                    let field = (self.get(src) >> shift) & ((1 << width) - 1);
                    branch(!(lo as u64..=hi as u64).contains(&field), target)
                }
                Op::BranchIfHighBits { src, shift, target, .. } => branch(self.get(src) >> shift != 0, target),
                Op::Mov { dst, src } => {
                    let v = self.operand(src);
                    self.regs.insert(dst, v);
                }
                Op::Load { dst, base, offset } => {
                    let v = self.word(self.get(base).wrapping_add(offset as u64));
                    self.regs.insert(dst, v);
                }
                Op::AddImm { dst, src, imm } => {
                    let v = self.get(src).wrapping_add(imm as u64);
                    self.regs.insert(dst, v);
                }
                Op::AndImm { dst, src, imm } => {
                    let v = self.get(src) & imm as u64;
                    self.regs.insert(dst, v);
                }
                Op::OrImm { dst, src, imm } => {
                    let v = self.get(src) | imm as u64;
                    self.regs.insert(dst, v);
                }
                Op::BitField { dst, src, shift, width } => {
                    let v = (self.get(src) >> shift) & ((1 << width) - 1);
                    self.regs.insert(dst, v);
                }
                Op::ShiftOutTagBit { dst, src, unless } => {
                    let v = self.get(src);
                    if v & 1 == 0 {
                        branch(true, unless);
                    } else {
                        self.regs.insert(dst, ((v as i64) >> 1) as u64);
                    }
                }
                Op::DoubleOrBranch { dst, src, overflow } => match (self.get(src) as i64).checked_add(self.get(src) as i64) {
                    Some(v) => {
                        self.regs.insert(dst, v as u64);
                    }
                    None => branch(true, overflow),
                },
                Op::SubTopBit { dst, src } => {
                    let v = self.get(src);
                    self.regs.insert(dst, v - (v >> 63));
                }
                Op::RotateLeft { reg, n } => {
                    let v = self.get(reg).rotate_left(n as u32);
                    self.regs.insert(reg, v);
                }
                Op::RotateRight { reg, n } => {
                    let v = self.get(reg).rotate_right(n as u32);
                    self.regs.insert(reg, v);
                }
                Op::Extend32 { reg, from_bits, signed } | Op::Extend64 { reg, from_bits, signed } => {
                    let v = self.get(reg) << (64 - from_bits);
                    let v = if signed { ((v as i64) >> (64 - from_bits)) as u64 } else { v >> (64 - from_bits) };
                    let v = if matches!(op, Op::Extend32 { .. }) { v as u32 as u64 } else { v };
                    self.regs.insert(reg, v);
                }
                Op::ShiftInTagBit { reg } => {
                    let v = self.get(reg).wrapping_mul(2).wrapping_add(1);
                    self.regs.insert(reg, v);
                }
                Op::SelectOnLowByte { dst, src, nonzero, zero, .. } => {
                    let v = if self.get(src) & 0xff != 0 { nonzero } else { zero };
                    self.regs.insert(dst, v as u64);
                }
                Op::BitsToDouble { dst, src } => {
                    let v = self.get(src);
                    self.fregs.insert(dst, v);
                }
                Op::DoubleToBits { dst, src } => {
                    let v = self.fregs[&src];
                    self.regs.insert(dst, v);
                }
                Op::ZeroDouble { dst } => {
                    self.fregs.insert(dst, 0);
                }
                Op::IntToDouble { dst, src } => {
                    let v = (self.get(src) as i64 as f64).to_bits();
                    self.fregs.insert(dst, v);
                }
                Op::DoubleToFloat { reg } => {
                    let v = (f64::from_bits(self.fregs[&reg]) as f32).to_bits() as u64;
                    self.fregs.insert(reg, v);
                }
                Op::FloatToDouble { reg } => {
                    let v = (f32::from_bits(self.fregs[&reg] as u32) as f64).to_bits();
                    self.fregs.insert(reg, v);
                }
                Op::BranchUnlessNulAt16 { ptr, len, target, .. } => {
                    branch(self.first_nul(self.get(ptr), 16) != Some(self.get(len)), target)
                }
                Op::BranchUnlessNulAtLong { ptr, len, target, .. } => {
                    let (ptr, len) = (self.get(ptr), self.get(len));
                    branch(len < 16 || self.first_nul(ptr, len + 1) != Some(len), target)
                }
                Op::CallHelper { helper, .. } => return Outcome::Helper(helper),
                Op::Return => return Outcome::Returned(self.get(Reg::Ret)),
                Op::TailCall { target } => return Outcome::TailCalled(target, self.get(Reg::Ret)),
                Op::Fallback => return Outcome::FellBack,
                op => panic!("{op:?} is not interpreted here"),
            }
        }
        panic!("no way out")
    }
}

const INFO: u64 = 0x1f0;
const POINTER_TYPE: u64 = 0x70;
const STRUCT_TYPE: u64 = 0x71;

fn entry(conv: Conversion, dest: CLoc) -> PlanEntry {
    PlanEntry { index: 0, source: ArgSource::Int(1), ty: CType::Void, conv, dest }
}

fn int(bytes: u8, signed: bool, widen: Widen) -> Conversion {
    Conversion::Int { bytes, signed, widen }
}

fn fix(n: i64) -> u64 {
    ((n << 1) | 1) as u64
}

/// CRuby's rb_float_new_inline for values that fit a flonum.
fn flonum(d: f64) -> u64 {
    if d.to_bits() == 0 {
        return FLONUM_ZERO as u64;
    }
    (d.to_bits().rotate_left(3) & !1) | 2
}

fn convert(conv: Conversion, value: u64) -> Outcome {
    Machine::default().run(&argument(&entry(conv, CLoc::Int(0))), value)
}

#[test]
fn fixnums_convert_inline_within_the_ffi_gems_ranges() {
    let long = int(8, true, Widen::None);
    assert_eq!(convert(long, fix(-5)), Outcome::Placed(-5i64 as u64));
    assert_eq!(convert(long, fix(FIXNUM_MAX)), Outcome::Placed(FIXNUM_MAX as u64));
    assert_eq!(convert(int(8, false, Widen::None), fix(-1)), Outcome::Placed(u64::MAX), "NUM2ULL wraps");
    // NUM2INT: C int range; NUM2UINT: INT_MIN..=UINT_MAX.
    let i32 = int(4, true, Widen::To32);
    assert_eq!(convert(i32, fix(i32::MIN as i64)), Outcome::Placed(i32::MIN as i64 as u64));
    assert_eq!(convert(i32, fix(1 << 31)), Outcome::Helper(Helper::ArgInt));
    let u32 = int(4, false, Widen::To32);
    assert_eq!(convert(u32, fix(u32::MAX as i64)), Outcome::Placed(u32::MAX as u64));
    assert_eq!(convert(u32, fix(i32::MIN as i64)), Outcome::Placed(i32::MIN as i64 as u64));
    assert_eq!(convert(u32, fix(i32::MIN as i64 - 1)), Outcome::Helper(Helper::ArgUint));
    assert_eq!(convert(u32, fix(1 << 32)), Outcome::Helper(Helper::ArgUint));
    // Anything but a Fixnum: the helper.
    assert_eq!(convert(long, QNIL as u64), Outcome::Helper(Helper::ArgLongLong));
    assert_eq!(convert(int(2, false, Widen::To32), flonum(1.5)), Outcome::Helper(Helper::ArgUint));
}

#[test]
fn narrow_integers_are_widened_as_the_convention_says() {
    assert_eq!(convert(int(1, true, Widen::To32), fix(200)), Outcome::Placed(0xffff_ffc8), "-56 in 32 bits");
    assert_eq!(convert(int(2, false, Widen::To32), fix(-1)), Outcome::Placed(0xffff));
    // SysV: a 32-bit value's upper half is left as it is; AAPCS64 stubs
    // extend every narrow value to 64 bits, as libffi does.
    assert_eq!(convert(int(4, true, Widen::To32), fix(-1)), Outcome::Placed(u64::MAX));
    assert_eq!(convert(int(4, true, Widen::To64), fix(-6)), Outcome::Placed(-6i64 as u64));
    assert_eq!(convert(int(1, true, Widen::To64), fix(200)), Outcome::Placed(-56i64 as u64));
    assert_eq!(convert(int(2, false, Widen::To64), fix(-1)), Outcome::Placed(0xffff));
    assert_eq!(convert(int(4, false, Widen::To64), fix(-1)), Outcome::Placed(0xffff_ffff));
    assert_eq!(convert(int(4, false, Widen::To64), fix(i32::MIN as i64)), Outcome::Placed(0x8000_0000));
    // A helper's result is widened too: the extension follows the join.
    let l = argument(&entry(int(1, true, Widen::To32), CLoc::Int(0)));
    let done = l.hot.iter().position(|op| matches!(op, Op::Label(_))).unwrap();
    assert!(matches!(l.hot[done + 1], Op::Extend32 { from_bits: 8, signed: true, .. }));
    assert!(l.cold.iter().any(|op| matches!(op, Op::Jump(label) if Op::Label(*label) == l.hot[done])));
}

#[test]
fn booleans_are_true_or_false_only() {
    assert_eq!(convert(Conversion::Bool, QTRUE as u64), Outcome::Placed(1));
    assert_eq!(convert(Conversion::Bool, QFALSE as u64), Outcome::Placed(0));
    for v in [QNIL as u64, fix(1), fix(0)] {
        assert_eq!(convert(Conversion::Bool, v), Outcome::Helper(Helper::ArgBool));
    }
}

#[test]
fn flonums_and_fixnums_become_doubles_inline() {
    for d in [1.5, -2.25, 1e-10, 3.141592653589793, -1e10, 65536.0, 1.0 / 3.0, 0.0] {
        assert_eq!(convert(Conversion::Double, flonum(d)), Outcome::Placed(d.to_bits()), "{d}");
    }
    assert_eq!(convert(Conversion::Double, fix(-7)), Outcome::Placed((-7.0f64).to_bits()));
    assert_eq!(convert(Conversion::Float, flonum(0.1)), Outcome::Placed((0.1f32).to_bits() as u64));
    // A heap Float, nil: NUM2DBL.
    assert_eq!(convert(Conversion::Double, 0x5550), Outcome::Helper(Helper::ArgDouble));
    assert_eq!(convert(Conversion::Double, QNIL as u64), Outcome::Helper(Helper::ArgDouble));
}

fn result_of(ret: CType, bits: u64) -> Outcome {
    let plan = plan_stub(&Signature::new(vec![], ret)).unwrap();
    let mut m = Machine::default();
    m.regs.insert(Reg::Ret, bits);
    m.fregs.insert(FReg::Ret, bits);
    m.run(&result(&plan), 0)
}

#[test]
fn results_become_fixnums_flonums_or_go_to_the_allocating_helpers() {
    assert_eq!(result_of(CType::I8, 0xdead_beef_cafe_80ff), Outcome::Returned(fix(-1)), "only al is defined");
    assert_eq!(result_of(CType::U16, 0xdead_beef_cafe_80ff), Outcome::Returned(fix(0x80ff)));
    assert_eq!(result_of(CType::I64, (-(1i64 << 62)) as u64), Outcome::Returned(fix(-(1 << 62))));
    assert_eq!(result_of(CType::I64, 1 << 62), Outcome::TailCalled(TailTarget::Ll2Inum, 1 << 62));
    assert_eq!(result_of(CType::U64, u64::MAX), Outcome::TailCalled(TailTarget::Ull2Inum, u64::MAX));
    assert_eq!(result_of(CType::Bool, 0x100), Outcome::Returned(QFALSE as u64), "only the low byte counts");
    assert_eq!(result_of(CType::Void, 7), Outcome::Returned(QNIL as u64));
    assert_eq!(result_of(CType::CString, 0), Outcome::Returned(QNIL as u64));
    assert_eq!(result_of(CType::CString, 0x1234), Outcome::TailCalled(TailTarget::StrNewCstr, 0x1234));
    for d in [1.5f64, -2.25, 1e-10, 0.0, 1.0 / 3.0] {
        assert_eq!(result_of(CType::F64, d.to_bits()), Outcome::Returned(flonum(d)), "{d}");
    }
    // Outside the flonum range, -0.0, and the one double that would
    // collide with +0.0's flonum: heap Floats.
    for bits in [1e300f64.to_bits(), (-0.0f64).to_bits(), f64::NAN.to_bits(), 0x3000_0000_0000_0000] {
        assert!(matches!(result_of(CType::F64, bits), Outcome::TailCalled(TailTarget::FloatNewInHeap, _)), "{bits:#x}");
    }
}

/// A fake object at `address`: its words, then `tail` bytes.
fn object(address: u64, words: &[u64], tail: &[u8]) -> (u64, Vec<u8>) {
    let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.extend_from_slice(tail);
    (address, bytes)
}

/// A fake String at 0x1000 with `bytes` + NUL embedded (`heap`: at 0x8000).
fn string(bytes: &[u8], encoding: i32, heap: bool) -> Machine {
    let mut words = vec![0u64; 6];
    words[0] = (T_STRING | encoding << ENCODING_SHIFT) as u64;
    let text = [bytes, &[0], &[b'.'; 16]].concat();
    let mut m = Machine::default();
    if heap {
        words[0] |= RSTRING_NOEMBED as u64;
        words[RSTRING_HEAP_LEN as usize / 8] = bytes.len() as u64;
        words[RSTRING_HEAP_PTR as usize / 8] = 0x8000;
        m.memory.push(object(0x8000, &[], &text[..bytes.len() + 1]));
        m.memory.push(object(0x1000, &words, &[]));
    } else {
        match RSTRING_EMBED_LEN {
            EmbedLength::Flags { shift, .. } => words[0] |= (bytes.len() as u64) << shift,
            EmbedLength::Field(at) => words[at as usize / 8] = bytes.len() as u64,
        }
        words.truncate(RSTRING_EMBED_ARY as usize / 8);
        m.memory.push(object(0x1000, &words, &text));
    }
    m
}

#[test]
fn short_embedded_strings_are_the_stubs_and_the_rest_the_helpers() {
    let l = argument(&entry(Conversion::CString, CLoc::Int(0)));
    let ary = 0x1000 + RSTRING_EMBED_ARY as u64;
    assert_eq!(string(b"hello", 1, false).run(&l, 0x1000), Outcome::Placed(ary));
    assert_eq!(string(b"", 0, false).run(&l, 0x1000), Outcome::Placed(ary));
    assert_eq!(Machine::default().run(&l, QNIL as u64), Outcome::Placed(0));
    for (m, v) in [
        (string(b"hello", ENCODING_INDEX_US_ASCII, false), 0x1000),
        (string(b"sixteen bytes!!!", 1, false), 0x1000),
        (string(b"a\0b", 1, false), 0x1000),
        (string(b"on the heap", 1, true), 0x1000),
        (Machine::default(), QFALSE as u64),
        (Machine::default(), fix(3)),
    ] {
        assert_eq!({ m }.run(&l, v), Outcome::Helper(Helper::ArgCstr));
    }
}

#[test]
fn the_helpers_fast_path_takes_what_stringvaluecstr_returns_unchanged() {
    let l = cstr_fast_path();
    let ary = 0x1000 + RSTRING_EMBED_ARY as u64;
    let long = b"0123456789abcdefghijklmnopqrstuvwxyz";
    for encoding in [0, ENCODING_INDEX_UTF_8, ENCODING_INDEX_US_ASCII] {
        assert_eq!(string(b"hello", encoding, false).run(&l, 0x1000), Outcome::Returned(ary));
        assert_eq!(string(&long[..20], encoding, false).run(&l, 0x1000), Outcome::Returned(ary));
        assert_eq!(string(long, encoding, true).run(&l, 0x1000), Outcome::Returned(0x8000));
    }
    for (m, v) in [
        (string(b"hello", 3, false), 0x1000),                 // UTF-16BE
        (string(b"0123456789\0abcdefghij", 1, true), 0x1000),  // a NUL inside
        (string(b"0123456789abcd", 1, true), 0x1000),         // short heap Strings: the helper's job
        (Machine::default(), QNIL as u64),
        (Machine::default(), QFALSE as u64),
        (Machine::default(), flonum(2.0)),
    ] {
        assert_eq!({ m }.run(&l, v), Outcome::FellBack);
    }
}

#[test]
fn pointers_structs_and_strings_are_unboxed_inline_and_by_ref_classes_checked() {
    let typed = |klass: u64, data_type: u64, data: u64| {
        let mut words = vec![0u64; 5];
        words[RBASIC_FLAGS as usize / 8] = T_DATA as u64;
        words[RBASIC_KLASS as usize / 8] = klass;
        words[RTYPEDDATA_TYPE as usize / 8] = data_type;
        words[RTYPEDDATA_DATA as usize / 8] = data;
        object(0x1000, &words, &[])
    };
    let with = |objects: Vec<(u64, Vec<u8>)>| Machine { memory: objects, ..Machine::default() };
    let pointer_data = object(0x2000, &[0xabc0], &[]);
    let struct_data = object(0x3000, &[0x2000], &[]);
    // StubInfo: ref_classes first, one class per parameter.
    let info = |class: u64| vec![object(INFO, &[0x4000], &[]), object(0x4000, &[class], &[])];
    let pointer = argument(&entry(Conversion::Pointer, CLoc::Int(0)));
    let by_ref = argument(&entry(Conversion::StructRef, CLoc::Int(0)));
    let a_pointer = || with(vec![typed(0x50, POINTER_TYPE, 0x2000), pointer_data.clone()]);
    let a_struct = |klass: u64, ref_class: u64| {
        with([vec![typed(klass, STRUCT_TYPE, 0x3000), pointer_data.clone(), struct_data.clone()], info(ref_class)].concat())
    };
    // :pointer: Pointers and Structs of any class, inline; nil is NULL.
    assert_eq!(a_pointer().run(&pointer, 0x1000), Outcome::Placed(0xabc0));
    for klass in [0x50, 0x60] {
        assert_eq!(a_struct(klass, 0).run(&pointer, 0x1000), Outcome::Placed(0xabc0), "class {klass:#x}");
    }
    assert_eq!(with(vec![typed(0x50, 0x99, 0x2000)]).run(&pointer, 0x1000), Outcome::Helper(Helper::ArgPointer));
    assert_eq!(Machine::default().run(&pointer, QNIL as u64), Outcome::Placed(0));
    assert_eq!(Machine::default().run(&pointer, QFALSE as u64), Outcome::Helper(Helper::ArgPointer));
    // Struct.by_ref: only a Struct of exactly the required class is inline;
    // another class (the helper passes a subclass's), a Pointer (the
    // helper's TypeError, as the ffi gem) and other data types go to the
    // helper; nil is NULL.
    assert_eq!(a_struct(0x50, 0x50).run(&by_ref, 0x1000), Outcome::Placed(0xabc0));
    assert_eq!(a_struct(0x60, 0x50).run(&by_ref, 0x1000), Outcome::Helper(Helper::ArgPointer), "another class");
    let mut pointer_for_by_ref = a_pointer();
    pointer_for_by_ref.memory.extend(info(0x50));
    assert_eq!(pointer_for_by_ref.run(&by_ref, 0x1000), Outcome::Helper(Helper::ArgPointer), "a Pointer");
    assert_eq!(with(vec![typed(0x50, 0x99, 0x2000)]).run(&by_ref, 0x1000), Outcome::Helper(Helper::ArgPointer));
    assert_eq!(Machine::default().run(&by_ref, QNIL as u64), Outcome::Placed(0));
    assert_eq!(Machine::default().run(&by_ref, QFALSE as u64), Outcome::Helper(Helper::ArgPointer));
    // Strings: their bytes (any encoding, NULs or not) for :pointer; the
    // helper's TypeError for a by_ref parameter.
    assert_eq!(string(b"a\0b", 3, false).run(&pointer, 0x1000), Outcome::Placed(0x1000 + RSTRING_EMBED_ARY as u64));
    assert_eq!(
        string(b"0123456789abcdefghijklmnopqrstuvwxyz", 3, true).run(&pointer, 0x1000),
        Outcome::Placed(0x8000)
    );
    for heap in [false, true] {
        let mut m = string(b"abc", 3, heap);
        m.memory.extend(info(0x50));
        assert_eq!(m.run(&by_ref, 0x1000), Outcome::Helper(Helper::ArgPointer), "heap {heap}");
    }
}

/// Every conversion of every type, as planned for both conventions.
fn all_conversions() -> Vec<(String, Lowered)> {
    use CType::*;
    let mut out = Vec::new();
    let types = [Bool, I8, U8, I16, U16, I32, U32, I64, U64, F32, F64, Pointer, CString];
    for ty in types.iter().chain([&Void, &LongDouble]) {
        let sig = Signature::new(if *ty == Void { vec![] } else { types.to_vec() }, ty.clone());
        for plan in [crate::abi::sysv_x86_64::plan_stub(&sig), crate::abi::aapcs64::plan_stub(&sig, crate::abi::aapcs64::Platform::Linux)] {
            let Ok(plan) = plan else { continue };
            for e in &plan.args {
                out.push((format!("{:?} to {:?}", e.conv, e.dest), argument(e)));
            }
            out.push((format!("result {:?}", plan.ret_conv), result(&plan)));
        }
    }
    out.push(("the cstr fast path".into(), cstr_fast_path()));
    out
}

/// Walks every path of `l`: whether `Value` is read after `Arg` was
/// written (in the hot path, where a slow path does not reload it).
fn value_read_after_arg_written(l: &Lowered) -> Option<Op> {
    let ops: Vec<Op> = l.hot.iter().chain(&l.cold).copied().collect();
    let at = |label: LabelId| ops.iter().position(|op| *op == Op::Label(label)).unwrap();
    let mut todo = vec![(0usize, false)];
    let mut seen = std::collections::HashSet::new();
    while let Some((pc, written)) = todo.pop() {
        if pc >= ops.len() || !seen.insert((pc, written)) {
            continue;
        }
        let op = ops[pc];
        if written && op.reads().contains(&Reg::Value) {
            return Some(op);
        }
        // A helper call reloads the VALUE from its source and makes a new Arg.
        let written = !matches!(op, Op::CallHelper { .. }) && (written || op.writes().contains(&Reg::Arg));
        let targets: Vec<LabelId> = match op {
            Op::Jump(l) => {
                todo.push((at(l), written));
                continue;
            }
            Op::BranchIfBits { target, .. }
            | Op::BranchUnlessTag { target, .. }
            | Op::BranchIfCmp { target, .. }
            | Op::BranchIfInRange { target, .. }
            | Op::BranchUnlessFieldIn { target, .. }
            | Op::BranchIfHighBits { target, .. }
            | Op::BranchUnlessNulAt16 { target, .. }
            | Op::BranchUnlessNulAtLong { target, .. } => vec![target],
            Op::ShiftOutTagBit { unless, .. } => vec![unless],
            Op::DoubleOrBranch { overflow, .. } => vec![overflow],
            Op::Place { .. } | Op::PlaceFloat { .. } | Op::Return | Op::TailCall { .. } | Op::Fallback | Op::Trap => {
                continue
            }
            _ => vec![],
        };
        // A branch not taken leaves what it wrote (a shifted-out tag bit
        // writes only when it does not branch).
        let taken_written = written && !matches!(op, Op::ShiftOutTagBit { .. });
        todo.extend(targets.into_iter().map(|t| (at(t), taken_written)));
        todo.push((pc + 1, written));
    }
    None
}

#[test]
fn the_contract_walk_sees_a_value_read_after_an_arg_write() {
    let skip = LabelId(0);
    let bad = Lowered {
        hot: vec![
            Op::LoadValue,
            Op::Mov { dst: Reg::Arg, src: Operand::Imm(1) },
            Op::BranchIfCmp { a: Reg::T1, cond: Cond::Eq, b: Operand::Imm(0), target: skip },
            Op::AddImm { dst: Reg::T2, src: Reg::Value, imm: 8 },
            Op::Label(skip),
            Op::Place { bytes: 8 },
        ],
        labels: 1,
        ..Lowered::default()
    };
    assert_eq!(value_read_after_arg_written(&bad), Some(bad.hot[3]));
}

#[test]
fn no_conversion_reads_its_value_after_writing_its_arg() {
    for (name, l) in all_conversions() {
        assert_eq!(value_read_after_arg_written(&l), None, "{name}: {l:#?}");
    }
}

#[test]
fn every_label_is_bound_once_and_every_path_ends() {
    for (name, l) in all_conversions() {
        let ops: Vec<Op> = l.hot.iter().chain(&l.cold).copied().collect();
        for n in 0..l.labels {
            let bound = ops.iter().filter(|op| **op == Op::Label(LabelId(n))).count();
            assert_eq!(bound, 1, "{name}: label {n} bound {bound} times");
        }
        // The hot part ends where the value is in place (or the stub left);
        // the cold part, entered only through labels, in a way back or out.
        let leaves = |op: &Op| matches!(op, Op::Return | Op::TailCall { .. } | Op::Fallback);
        let placed = |op: &Op| {
            matches!(
                op,
                Op::Place { .. }
                    | Op::PlaceFloat { .. }
                    | Op::CopyStruct { .. }
                    | Op::CallHelper { input: HelperInput::ParkedInDest, .. }
            )
        };
        assert!(l.hot.last().is_some_and(|op| placed(op) || leaves(op)), "{name}: hot part ends with {:?}", l.hot.last());
        if let Some(last) = l.cold.last() {
            assert!(matches!(last, Op::Jump(_) | Op::Trap) || leaves(last), "{name}: cold part ends with {last:?}");
        }
    }
}

#[test]
fn a_double_argument_is_built_in_the_argument_vector_register() {
    // What backends map FReg::Arg to the destination register for: the
    // conversion writes FReg::Arg and places it, nothing else.
    let l = argument(&entry(Conversion::Double, CLoc::Float(2)));
    assert!(l.hot.contains(&Op::BitsToDouble { dst: FReg::Arg, src: Reg::T1 }));
    assert_eq!(l.hot.last(), Some(&Op::PlaceFloat { single: false }));
}
