//! Runs emitted x86-64 struct accessors on fake objects: a receiver laid
//! out like an RTypedData, a struct's data and a Pointer's data of a
//! layout of the test's own, and fake fallbacks and boxing functions.

use crate::backend::{emit_struct_accessor, RuntimeTargets};
use crate::emit::arena::CodeArena;
use crate::lower::ruby_layout::*;
use crate::lower::struct_access::{self, AccessField, FieldKind, PointerLayout, StructAccess};
use std::sync::Mutex;

type V = u64;
const DATA_TYPE: u64 = 0xd47a_7e00;
const TABLE: u64 = 0x7ab1_e000;
const FELL_BACK: V = 0xfa11;
/// Field names: static-Symbol-like immediates.
fn sym(i: u64) -> V {
    (i << 8) | 0x0c
}

static CALLS: Mutex<Vec<(&'static str, u64)>> = Mutex::new(Vec::new());
static LOCK: Mutex<()> = Mutex::new(());

extern "C" fn fallback(_recv: V, name: V, _value: V) -> V {
    CALLS.lock().unwrap().push(("fallback", name));
    FELL_BACK
}
extern "C" fn ll2inum(n: i64) -> V {
    CALLS.lock().unwrap().push(("ll2inum", n as u64));
    0xb16
}
extern "C" fn ull2inum(n: u64) -> V {
    CALLS.lock().unwrap().push(("ull2inum", n));
    0xb17
}
extern "C" fn ret_pointer(address: u64) -> V {
    CALLS.lock().unwrap().push(("ret_pointer", address));
    0x9041
}
extern "C" fn float_new_in_heap(d: f64) -> V {
    CALLS.lock().unwrap().push(("heap_float", d.to_bits()));
    0xf10a7
}

fn fields() -> Vec<AccessField> {
    let kinds = [
        FieldKind::Int { bytes: 1, signed: true },
        FieldKind::Int { bytes: 2, signed: false },
        FieldKind::Int { bytes: 4, signed: true },
        FieldKind::Int { bytes: 4, signed: false },
        FieldKind::Int { bytes: 8, signed: true },
        FieldKind::Int { bytes: 8, signed: false },
        FieldKind::Float,
        FieldKind::Double,
        FieldKind::Pointer,
    ];
    // Odd offsets: accesses at any alignment.
    kinds.iter().enumerate().map(|(i, &kind)| AccessField { name: sym(i as u64 + 1), offset: 1 + 8 * i as u32, kind }).collect()
}

/// A fake Struct and its memory (`bytes` of it, readable and writable).
struct Fake {
    object: Box<[u64; 8]>,
    data: Box<[u64; 3]>,
    pointer: Box<[u64; 3]>,
    memory: Box<[u8; 88]>,
}

impl Fake {
    fn new(bytes: u64) -> Box<Fake> {
        let mut f = Box::new(Fake { object: Box::new([0; 8]), data: Box::new([0; 3]), pointer: Box::new([0; 3]), memory: Box::new([0; 88]) });
        f.pointer[0] = f.memory.as_ptr() as u64;
        f.pointer[1] = bytes;
        f.pointer[2] = 3 << 8; // not swapped; READ | WRITE
        f.data[0] = f.pointer.as_ptr() as u64;
        f.data[2] = TABLE;
        f.object[RTYPEDDATA_TYPE as usize / 8] = DATA_TYPE;
        f.object[RTYPEDDATA_DATA as usize / 8] = f.data.as_ptr() as u64;
        f
    }

    fn receiver(&self) -> V {
        self.object.as_ptr() as V
    }
}

fn access() -> StructAccess {
    StructAccess {
        data_type: DATA_TYPE,
        table: TABLE,
        memory_at: 0,
        table_at: 16,
        pointer: PointerLayout { address_at: 0, size_at: 8, swap_and_flags_at: 16, read: 1, write: 2 },
        fields: fields(),
    }
}

fn targets() -> RuntimeTargets {
    let fakes = [ll2inum as *const (), ull2inum as *const (), float_new_in_heap as *const (), ret_pointer as *const ()];
    let [ll2inum, ull2inum, float_new_in_heap, ret_pointer] = fakes.map(|f| f as usize);
    RuntimeTargets { ll2inum, ull2inum, float_new_in_heap, ret_pointer, ..RuntimeTargets::default() }
}

/// The reader and writer for `access()`, installed (never freed).
fn accessors() -> (extern "C" fn(V, V) -> V, extern "C" fn(V, V, V) -> V) {
    static ARENA: Mutex<Option<(usize, usize)>> = Mutex::new(None);
    let (r, w) = *ARENA.lock().unwrap().get_or_insert_with(|| {
        let mut arena = CodeArena::new();
        let a = access();
        let f = fallback as *const () as usize;
        let reader = emit_struct_accessor(&struct_access::reader(&a), TABLE as usize, f, &targets()).unwrap();
        let writer = emit_struct_accessor(&struct_access::writer(&a), TABLE as usize, f, &targets()).unwrap();
        let r = arena.install(&reader.code).unwrap();
        let w = arena.install(&writer.code).unwrap();
        std::mem::forget(arena);
        (r, w)
    });
    // SAFETY: complete accessors of those signatures, never freed.
    unsafe { (std::mem::transmute::<usize, _>(r), std::mem::transmute::<usize, _>(w)) }
}

fn calls() -> Vec<(&'static str, u64)> {
    std::mem::take(&mut *CALLS.lock().unwrap())
}

fn fix(n: i64) -> V {
    ((n << 1) | 1) as V
}

/// CRuby's flonum of `d` (which must have one).
fn flo(d: f64) -> V {
    if d == 0.0 {
        return FLONUM_ZERO as V;
    }
    (d.to_bits().rotate_left(3) & !1) | 2
}

#[test]
fn integer_fields_round_trip_at_their_limits() {
    let _g = LOCK.lock().unwrap();
    let (get, set) = accessors();
    let s = Fake::new(80);
    let cases: [(u64, &[i64]); 6] = [
        (1, &[-128, 127, 0]),
        (2, &[0, 65535]),
        (3, &[i32::MIN as i64, i32::MAX as i64]),
        (4, &[0, u32::MAX as i64]),
        (5, &[FIXNUM_MAX, -FIXNUM_MAX - 1, -1]),
        (6, &[0, FIXNUM_MAX]),
    ];
    for (field, values) in cases {
        for &v in values {
            assert_eq!(set(s.receiver(), sym(field), fix(v)), fix(v));
            assert_eq!(get(s.receiver(), sym(field)), fix(v), "field {field} value {v}");
        }
    }
    // Unsigned narrow fields take NUM2UINT's range and truncate.
    assert_eq!(set(s.receiver(), sym(2), fix(-1)), fix(-1));
    assert_eq!(get(s.receiver(), sym(2)), fix(65535));
    assert_eq!(calls(), []);
}

#[test]
fn wide_values_are_boxed_by_the_runtime() {
    let _g = LOCK.lock().unwrap();
    let (get, _) = accessors();
    let mut s = Fake::new(80);
    s.memory[33..41].copy_from_slice(&i64::MIN.to_le_bytes());
    s.memory[41..49].copy_from_slice(&u64::MAX.to_le_bytes());
    s.memory[57..65].copy_from_slice(&1e300f64.to_le_bytes());
    assert_eq!(get(s.receiver(), sym(5)), 0xb16);
    assert_eq!(get(s.receiver(), sym(6)), 0xb17);
    assert_eq!(get(s.receiver(), sym(8)), 0xf10a7);
    s.memory[65..73].copy_from_slice(&0x1234_5678u64.to_le_bytes());
    assert_eq!(get(s.receiver(), sym(9)), 0x9041);
    assert_eq!(
        calls(),
        [("ll2inum", i64::MIN as u64), ("ull2inum", u64::MAX), ("heap_float", 1e300f64.to_bits()), ("ret_pointer", 0x1234_5678)]
    );
}

#[test]
fn floats_and_doubles_from_flonums_and_fixnums() {
    let _g = LOCK.lock().unwrap();
    let (get, set) = accessors();
    let s = Fake::new(80);
    for (value, stored) in [(flo(1.5), 1.5), (flo(0.0), 0.0), (fix(-3), -3.0), (flo(-2.25), -2.25)] {
        assert_eq!(set(s.receiver(), sym(8), value), value);
        assert_eq!(f64::from_le_bytes(s.memory[57..65].try_into().unwrap()), stored);
        assert_eq!(get(s.receiver(), sym(8)), flo(stored));
        assert_eq!(set(s.receiver(), sym(7), value), value);
        assert_eq!(f32::from_le_bytes(s.memory[49..53].try_into().unwrap()), stored as f32);
        assert_eq!(get(s.receiver(), sym(7)), flo(stored));
    }
    assert_eq!(calls(), []);
}

#[test]
fn everything_else_falls_back() {
    let _g = LOCK.lock().unwrap();
    let (get, set) = accessors();
    let s = Fake::new(80);
    // Unknown names, values not converted inline, out-of-range Fixnums.
    assert_eq!(get(s.receiver(), sym(99)), FELL_BACK);
    assert_eq!(set(s.receiver(), sym(1), fix(1 << 31)), FELL_BACK);
    assert_eq!(set(s.receiver(), sym(4), fix(1 << 32)), FELL_BACK);
    assert_eq!(set(s.receiver(), sym(4), QNIL as V), FELL_BACK);
    assert_eq!(set(s.receiver(), sym(8), QTRUE as V), FELL_BACK);
    assert_eq!(set(s.receiver(), sym(9), QNIL as V), FELL_BACK);
    // Memory too short for the field, swapped, read-only, NULL; another
    // table; another data type; a frozen receiver.
    let short = Fake::new(40);
    assert_eq!(get(short.receiver(), sym(5)), FELL_BACK);
    assert_eq!(get(short.receiver(), sym(4)), fix(0));
    let mut odd = Fake::new(80);
    odd.pointer[2] = (3 << 8) | 1;
    assert_eq!(get(odd.receiver(), sym(1)), FELL_BACK);
    odd.pointer[2] = 1 << 8;
    assert_eq!(get(odd.receiver(), sym(1)), fix(0));
    assert_eq!(set(odd.receiver(), sym(1), fix(1)), FELL_BACK);
    odd.pointer[2] = 3 << 8;
    odd.pointer[0] = 0;
    assert_eq!(get(odd.receiver(), sym(1)), FELL_BACK);
    let mut other = Fake::new(80);
    other.data[2] = TABLE + 8;
    assert_eq!(get(other.receiver(), sym(1)), FELL_BACK);
    other.data[2] = TABLE;
    other.object[RTYPEDDATA_TYPE as usize / 8] = DATA_TYPE + 8;
    assert_eq!(get(other.receiver(), sym(1)), FELL_BACK);
    other.object[RTYPEDDATA_TYPE as usize / 8] = DATA_TYPE;
    other.object[0] = FL_FREEZE as u64;
    assert_eq!(set(other.receiver(), sym(1), fix(1)), FELL_BACK);
    assert_eq!(get(other.receiver(), sym(1)), fix(0));
    assert_eq!(calls().len(), 13);
}

#[test]
fn accessors_of_one_shape_differ_only_in_their_table() {
    let a = access();
    let f = fallback as *const () as usize;
    for l in [struct_access::reader(&a), struct_access::writer(&a)] {
        let one = emit_struct_accessor(&l, 0x1000, f, &targets()).unwrap();
        let mut other = emit_struct_accessor(&l, 0x7f00_0000_2000, f, &targets()).unwrap().code;
        let at = one.info_at;
        other[at..at + 8].copy_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(one.code, other);
    }
}
