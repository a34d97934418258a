//! aarch64 stubs on any host: encoder checks here, and the inputs of the
//! qemu-user harness (`test/aarch64/`, `rake aarch64`), which runs every
//! stub of [`table`] against C fixtures with fake VALUEs and helpers.
//!
//! `FIDDLE_JIT_AARCH64_OUT=<dir> cargo test --lib aarch64_tests` writes one
//! `.bin` per stub and thunk plus `manifest.txt`. Every address a stub
//! needs is a SENTINEL (`0x5E5E_0000_0000_xxxx`) in its literal pool, which
//! the harness replaces with its own fixtures and fakes.

use super::aarch64::{mov_imm, A64};
use crate::lower::ruby_layout::*;
use super::{RuntimeTargets, StubRequest, Thunks};
use crate::abi::aapcs64::{plan_stub, Platform};
use crate::types::{CType, CType::*, Signature, StructType};
use std::sync::Arc;
use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::VecAssembler;

const SENTINEL: u64 = 0x5E5E_0000_0000_0000;
/// errno's and the saved copy's offsets from tpidr_el0 are i32s: markers
/// of their own.
const ERRNO_OFFSET_SENTINEL: i32 = 0x5E5E_00EE;
const SAVED_ERRNO_OFFSET_SENTINEL: i32 = 0x5E5E_00EF;
const FUNCTION_ID: u64 = 0x200;
const INFO_ID: u64 = 0x201;
const THUNK_ID: u64 = 0x100;

fn s(id: u64) -> usize {
    (SENTINEL | id) as usize
}

/// Helper ids, shared with harness.c (`enum helper`).
fn targets() -> RuntimeTargets {
    RuntimeTargets {
        arg_int: s(1),
        arg_uint: s(2),
        arg_long_long: s(3),
        arg_ulong_long: s(4),
        arg_bool: s(5),
        arg_double: s(6),
        arg_cstr: s(7),
        arg_pointer: s(8),
        arity_error: s(9),
        ret_pointer: s(10),
        ll2inum: s(11),
        ull2inum: s(12),
        float_new_in_heap: s(13),
        str_new_cstr: s(14),
        pointer_data_type: s(15),
        errno_tp_offsets: Some((ERRNO_OFFSET_SENTINEL, SAVED_ERRNO_OFFSET_SENTINEL)),
        call_without_gvl: s(17),
        arg_struct: s(18),
        ret_struct: s(19),
        arg_long_double: s(20),
        ret_long_double: s(21),
        // Struct objects take the slow path on aarch64 (no inline check yet).
        struct_data_type: s(22),
    }
}

fn thunks() -> Thunks {
    let t = |i: u64| s(THUNK_ID + i);
    Thunks {
        arg_int: t(0),
        arg_uint: t(1),
        arg_long_long: t(2),
        arg_ulong_long: t(3),
        arg_double: t(4),
        arg_bool: t(5),
        arg_pointer: t(6),
        arg_cstr: t(7),
        arg_struct: t(8),
        arg_long_double: t(9),
    }
}

/// One stub the harness runs: its name (harness.c refers to it), signature
/// and whether it releases the GVL.
struct Case {
    name: String,
    sig: Signature,
    blocking: bool,
    /// Linux except for the Apple layout cases, which the harness checks by
    /// reading the stack area raw.
    platform: Platform,
}

fn case(name: &str, params: Vec<CType>, ret: CType) -> Case {
    Case { name: name.to_string(), sig: Signature::new(params, ret), blocking: false, platform: Platform::Linux }
}

const INTS: [(&str, CType); 8] =
    [("i8", I8), ("u8", U8), ("i16", I16), ("u16", U16), ("i32", I32), ("u32", U32), ("i64", I64), ("u64", U64)];

/// The signatures of spec/support/fixture_signatures.rb, as CTypes (the
/// Ruby aliases — char, long, size_t... — are the same CTypes).
fn table() -> Vec<Case> {
    let mut t = Vec::new();
    for (n, ty) in INTS {
        t.push(case(&format!("id_{n}"), vec![ty.clone()], ty.clone()));
        t.push(case(&format!("ret_{n}"), vec![], ty.clone()));
    }
    for (n, ty) in [("f32", F32), ("f64", F64), ("bool", Bool), ("pointer", Pointer), ("string", CString)] {
        t.push(case(&format!("id_{n}"), vec![ty.clone()], ty.clone()));
        t.push(case(&format!("ret_{n}"), vec![], ty.clone()));
    }
    t.push(case("void_void", vec![], Void));
    // A Struct.by_ref parameter (returned as a plain pointer).
    t.push(case("id_struct_ref", vec![StructRef], Pointer));
    for (n, ty) in INTS.into_iter().chain([("bool", Bool)]) {
        t.push(case(&format!("raw_x0_of_{n}"), vec![ty.clone()], U64));
        let mut stack = vec![I64; 8];
        stack.push(ty);
        t.push(case(&format!("raw_stack_of_{n}"), stack, U64));
    }
    for n in [8, 9, 15, 16, 20] {
        t.push(case(&format!("sum{n}_i64"), vec![I64; n], I64));
        t.push(case(&format!("sum{n}_dbl"), vec![F64; n], F64));
    }
    t.push(case("sum9_f32", vec![F32; 9], F32));
    let mut mix15: Vec<CType> = [I64, F64].into_iter().cycle().take(14).collect();
    mix15.push(I64);
    t.push(case("mix15", mix15, F64));
    t.push(case("mixed10", vec![I32, F64, CString, Pointer, Bool, U8, F32, I64, U64, I16], F64));
    let mixed20 = vec![
        I8, F32, U16, F64, Pointer, F32, CString, F64, I8, F32, U16, F64, Pointer, F32, CString, F64, I8, F32, U16, F64,
    ];
    t.push(case("mixed20", mixed20.clone(), F64));
    t.push(case("str_pair", vec![CString, CString], U64));
    t.push(case("float_to_double", vec![F32], F64));
    t.push(case("double_to_float", vec![F64], F32));
    t.push(case("add_float", vec![F32, F32], F32));
    t.push(case("int_float_mix", vec![I8, F32, I32, F64], F64));
    t.push(case("set_errno", vec![I32], Void));
    // ABI hygiene: sp 16-aligned at the call, caller-saved registers free.
    t.push(case("stack_aligned0", vec![], U64));
    t.push(case("stack_aligned9d", vec![F64; 9], U64));
    t.push(case("stack_aligned20", vec![I64; 20], U64));
    t.push(case("clobber_caller_saved", vec![I64], I64));
    for mut c in [
        case("sum9_i64_blocking", vec![I64; 9], I64),
        case("sum15_dbl_blocking", vec![F64; 15], F64),
        case("mixed20_blocking", mixed20, F64),
        case("set_errno_blocking", vec![I32], Void),
        case("stack_aligned9d_blocking", vec![F64; 9], U64),
    ] {
        c.blocking = true;
        t.push(c);
    }
    let varargs: Vec<CType> = [I64, F64].into_iter().cycle().take(18).collect();
    t.push(Case { name: "vsum".into(), sig: Signature::variadic(vec![I32], varargs, F64), ..case("", vec![], Void) });
    t.extend(struct_cases());
    t.extend(apple_cases());
    t.extend(long_double_cases());
    t
}

/// Long doubles (binary128): q registers with a slow path in between (the
/// thunks must keep q0..q7 whole), 16-aligned stack slots, an HFA of two;
/// each also blocking (the call block's q slots).
fn long_double_cases() -> Vec<Case> {
    let mut stack = vec![F64; 7];
    stack.extend([LongDouble, LongDouble, I32, F64, LongDouble]);
    let qq = st(vec![LongDouble, LongDouble]);
    let mut t = vec![
        case("ld_regs", vec![LongDouble, F64, LongDouble, I32], LongDouble),
        case("ld_stack", stack, LongDouble),
        case("id_s_qq", vec![qq.clone()], qq),
    ];
    // A copy over 4 KiB first (a looped copy, a frame beyond one `sub`
    // immediate), then a long double whose q slot lies after it.
    t.push(case("big_then_ld", vec![st(vec![U8; 5003]), LongDouble], LongDouble));
    for i in 0..t.len() {
        let mut c = Case { name: format!("{}_blocking", t[i].name), ..case("", t[i].sig.params.clone(), t[i].sig.ret.clone()) };
        c.blocking = true;
        t.push(c);
    }
    t
}

/// Apple arm64 layouts, checked on Linux: the C fixture reads the stack
/// argument area as plain 8-byte words. Scalars packed at natural size and
/// alignment; every variadic argument in its own 8-byte slot.
fn apple_cases() -> Vec<Case> {
    // Eight integers and eight doubles fill the registers first.
    let mut packed = vec![I64; 8];
    packed.extend(vec![F64; 8]);
    packed.extend([I8, I16, U8, F32, I32, Bool, F64, U16]);
    let varargs = Signature::variadic(vec![CString], vec![I32, F64, Pointer, I64, F32], U64);
    let mut t = vec![
        Case { platform: Platform::Apple, ..case("apple_packed", packed, U64) },
        Case { name: "apple_varargs".into(), sig: varargs, platform: Platform::Apple, ..case("", vec![], Void) },
    ];
    let mut blocking = Case { platform: Platform::Apple, ..case("apple_packed_blocking", t[0].sig.params.clone(), U64) };
    blocking.blocking = true;
    t.push(blocking);
    t
}

fn st(fields: Vec<CType>) -> CType {
    Struct(Arc::new(StructType::natural(fields)))
}

/// The structs of harness fixtures.h, one per AAPCS64 class: x-register
/// words (8, 16, 3, 12 bytes), HFAs of 2–4 floats/doubles, and over 16
/// bytes (by reference; results through x8).
fn struct_cases() -> Vec<Case> {
    let structs = [
        ("s_ii", st(vec![I32, I32])),
        ("s_ld", st(vec![I64, F64])),
        ("s_b3", st(vec![U8, U8, U8])),
        ("s_i12", st(vec![I32, I32, I32])),
        ("s_ff", st(vec![F32, F32])),
        ("s_fff", st(vec![F32, F32, F32])),
        ("s_dd", st(vec![F64, F64])),
        ("s_dddd", st(vec![F64, F64, F64, F64])),
        ("s_lll", st(vec![I64, I64, I64])),
        ("s_big", st(vec![I64, F64, I32, U8, I64, F32])),
    ];
    let by = |n: &str| structs.iter().find(|(name, _)| *name == n).unwrap().1.clone();
    let mut t: Vec<Case> = structs.iter().map(|(n, ty)| case(&format!("id_{n}"), vec![ty.clone()], ty.clone())).collect();
    t.push(case("scribble_lll", vec![by("s_lll")], I64));
    // Two HFAs fill v0-v7, so s_ff goes to the stack; seven ints leave one
    // x register, so s_ld goes to the stack; s_lll's address too.
    let mut exhaust = vec![by("s_dddd"), by("s_dddd"), by("s_ff")];
    exhaust.extend(vec![I64; 7]);
    exhaust.extend([by("s_ld"), by("s_lll")]);
    t.push(case("structs_exhaust", exhaust.clone(), F64));
    t.push(case("structs_mixed", vec![I32, by("s_lll"), F64, by("s_ii"), by("s_b3"), by("s_fff")], F64));
    let mut argv = vec![by("s_ld")];
    argv.extend(vec![I64; 15]);
    argv.push(by("s_lll"));
    t.push(case("structs_argv", argv, F64));
    for mut c in [
        case("structs_exhaust_blocking", exhaust, F64),
        case("id_s_dddd_blocking", vec![by("s_dddd")], by("s_dddd")),
        case("id_s_lll_blocking", vec![by("s_lll")], by("s_lll")),
    ] {
        c.blocking = true;
        t.push(c);
    }
    t
}

fn emit_case(c: &Case) -> super::EmittedStub {
    emit_case_on(c, c.platform)
}

fn emit_case_on(c: &Case, platform: Platform) -> super::EmittedStub {
    let p = plan_stub(&c.sig, platform).unwrap();
    let (t, th) = (targets(), thunks());
    let req = StubRequest { plan: &p, function: s(FUNCTION_ID), info: s(INFO_ID), targets: &t, thunks: &th, blocking: c.blocking };
    super::stub::build::<A64>(&req).unwrap_or_else(|e| panic!("{}: {e}", c.name))
}

fn words(code: &[u8]) -> Vec<u32> {
    code.chunks(4).map(|w| u32::from_le_bytes(w.try_into().unwrap())).collect()
}

/// Executes a movz/movn/movk sequence on one register.
fn run_moves(code: &[u8]) -> (u8, u64) {
    let (mut reg, mut value) = (None, 0u64);
    for w in words(code) {
        let (opc, hw, imm, rd) = ((w >> 23) & 0x1ff, (w >> 21) & 3, ((w >> 5) & 0xffff) as u64, (w & 31) as u8);
        assert_eq!(*reg.get_or_insert(rd), rd, "one register");
        let shift = 16 * hw;
        value = match opc {
            0b1_10_100101 => imm << shift,                                     // movz
            0b1_00_100101 => !(imm << shift),                                  // movn
            0b1_11_100101 => (value & !(0xffff << shift)) | (imm << shift),    // movk
            _ => panic!("not a wide move: {w:#010x}"),
        };
    }
    (reg.unwrap(), value)
}

#[test]
fn mov_imm_builds_any_constant_in_few_instructions() {
    for v in [0u64, 1, 0xffff, 0x1_0000, 0x8000_0000_0000_0002, u64::MAX, u64::MAX - 5, 0x5E5E_0000_0000_0201, 0x1234_5678_9abc_def0, 0xffff_0000_ffff_1234] {
        let mut ops = VecAssembler::<Aarch64Relocation>::new(0);
        mov_imm(&mut ops, 13, v);
        let code = ops.finalize().unwrap();
        assert_eq!(run_moves(&code), (13, v), "{v:#x}");
        let halves = (0..4).map(|i| (v >> (16 * i)) & 0xffff);
        let best = halves.clone().filter(|&h| h != 0).count().min(halves.filter(|&h| h != 0xffff).count()).max(1);
        assert_eq!(code.len() / 4, best, "{v:#x}");
    }
}

#[test]
fn thunks_save_the_argument_registers_and_end_with_their_target() {
    let codes = super::emit_thunks::<A64>(&targets());
    assert_eq!(codes.len(), 10);
    for (code, id) in codes.iter().zip([1u64, 2, 3, 4, 6, 5, 8, 7, 18, 20]) {
        let tail = u64::from_le_bytes(code[code.len() - 8..].try_into().unwrap());
        assert_eq!(tail, SENTINEL | id);
        // stp x29, x30, [sp, #-224]! first (after a fast path), ret before the pool.
        let words = words(&code[..code.len() - 8]);
        let fast_path = if id == 7 { 1 } else { 0 };
        assert_eq!(words.iter().filter(|w| **w == 0xa9b27bfd).count(), 1);
        assert_eq!(words[0] == 0xa9b27bfd, fast_path == 0);
        assert!(words.contains(&0xd65f03c0));
        // q0..q7 saved and restored whole (a long double argument is 128 bits):
        // stp q0, q1, [sp, #96] ... ldp q6, q7, [sp, #192].
        for w in [0xad0307e0u32, 0xad040fe2, 0xad0517e4, 0xad061fe6, 0xad4307e0, 0xad440fe2, 0xad4517e4, 0xad461fe6] {
            assert!(words.contains(&w), "{w:#x} in thunk {id}");
        }
    }
}

#[test]
fn every_table_signature_emits_with_function_and_info_in_the_pool() {
    for c in table() {
        let stub = emit_case(&c);
        let at = |o: usize| u64::from_le_bytes(stub.code[o..o + 8].try_into().unwrap());
        assert_eq!((at(stub.function_at), at(stub.info_at)), (SENTINEL | FUNCTION_ID, SENTINEL | INFO_ID), "{}", c.name);
        assert!(stub.function_at >= stub.code_len && stub.code_len % 4 == 0);
        let moved = stub.retarget(0x1111, 0x2222);
        assert_eq!(u64::from_le_bytes(moved.code[stub.function_at..][..8].try_into().unwrap()), 0x1111);
        assert_eq!(moved.code[..stub.code_len], stub.code[..stub.code_len]);
    }
}

#[test]
fn apple_plans_emit_too() {
    // Every table signature planned for Apple (packed stack arguments,
    // variadic arguments on the stack, incl. structs) must assemble: each
    // store's offset must be encodable.
    let mut cases = table();
    let hfa = Signature::variadic(vec![I32], vec![st(vec![F32, F32, F32]), st(vec![I64; 3])], Void);
    cases.push(Case { name: "variadic_structs".into(), sig: hfa, blocking: true, ..case("", vec![], Void) });
    for c in cases {
        let stub = emit_case_on(&c, Platform::Apple);
        assert!(stub.code_len > 0, "{}", c.name);
    }
}

#[test]
fn narrow_results_are_extended_in_the_stub() {
    // sxtb x0, w0 / uxtb w0, w0 / sxth x0, w0 / uxth w0, w0 / sxtw x0, w0 / mov w0, w0
    for (ty, insn) in [(I8, 0x93401c00u32), (U8, 0x53001c00), (I16, 0x93403c00), (U16, 0x53003c00), (I32, 0x93407c00), (U32, 0x2a0003e0)] {
        let stub = emit_case(&case("ret", vec![], ty.clone()));
        assert!(words(&stub.code[..stub.code_len]).contains(&insn), "{ty:?}");
    }
}

/// Writes the harness inputs when `FIDDLE_JIT_AARCH64_OUT` is set.
#[test]
fn write_harness_inputs() {
    let Some(dir) = std::env::var_os("FIDDLE_JIT_AARCH64_OUT") else { return };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut manifest = String::new();
    for (name, value) in [
        ("QNIL", QNIL as i64),
        ("QTRUE", QTRUE as i64),
        ("T_STRING", T_STRING as i64),
        ("T_DATA", T_DATA as i64),
        ("RSTRING_NOEMBED", RSTRING_NOEMBED as i64),
        // The harness's fake Strings are Ruby 3.1's; another layout fails its check.
        ("RSTRING_EMBED_LEN_SHIFT", match RSTRING_EMBED_LEN {
            EmbedLength::Flags { shift, .. } => shift as i64,
            EmbedLength::Field(_) => -1,
        }),
        ("ENCODING_SHIFT", ENCODING_SHIFT as i64),
        ("RSTRING_HEAP_LEN", RSTRING_HEAP_LEN as i64),
        ("RSTRING_HEAP_PTR", RSTRING_HEAP_PTR as i64),
        ("RSTRING_EMBED_ARY", RSTRING_EMBED_ARY as i64),
        ("RTYPEDDATA_TYPE", RTYPEDDATA_TYPE as i64),
        ("RTYPEDDATA_DATA", RTYPEDDATA_DATA as i64),
    ] {
        manifest += &format!("layout {name} {value}\n");
    }
    for (i, code) in super::emit_thunks::<A64>(&targets()).iter().enumerate() {
        let file = format!("thunk{i}.bin");
        std::fs::write(dir.join(&file), code).unwrap();
        manifest += &format!("thunk {} {file}\n", THUNK_ID + i as u64);
    }
    for c in table() {
        let stub = emit_case(&c);
        let file = format!("{}.bin", c.name);
        std::fs::write(dir.join(&file), &stub.code).unwrap();
        manifest += &format!("stub {} {file} {} {} {}\n", c.name, stub.code_len, stub.function_at, stub.info_at);
    }
    std::fs::write(dir.join("manifest.txt"), manifest).unwrap();
}

/// A layout of every inline kind at offsets the scaled immediates encode,
/// at odd ones and beyond their range (`Code::address`), for `table`.
fn accessor_code(table: usize, writer: bool) -> super::EmittedStub {
    use crate::lower::struct_access::{self, AccessField, FieldKind, PointerLayout, StructAccess};
    let kinds = [FieldKind::Int { bytes: 1, signed: true }, FieldKind::Int { bytes: 2, signed: false }, FieldKind::Int { bytes: 4, signed: true },
        FieldKind::Int { bytes: 8, signed: false }, FieldKind::Float, FieldKind::Double, FieldKind::Pointer];
    let offsets = [0, 3, 8, 9, 40_000, 1 << 20, 16];
    let fields = (0..14)
        .map(|i| AccessField { name: (i << 8) | 0x0c, offset: offsets[i as usize % 7] + i as u32, kind: kinds[i as usize % 7] })
        .collect();
    let access = StructAccess {
        data_type: s(22) as u64,
        table: table as u64,
        memory_at: 0,
        table_at: 16,
        pointer: PointerLayout { address_at: 0, size_at: 16, swap_and_flags_at: 56, read: 1, write: 2 },
        fields,
    };
    let l = if writer { struct_access::writer(&access) } else { struct_access::reader(&access) };
    super::accessor::emit::<A64>(&l, table, s(30), &targets()).unwrap()
}

#[test]
fn struct_accessors_emit_and_differ_only_in_their_table() {
    for writer in [false, true] {
        let (a, b) = (accessor_code(0x1000, writer), accessor_code(0x2000, writer));
        let at = a.info_at;
        assert_eq!(u64::from_le_bytes(a.code[at..at + 8].try_into().unwrap()), 0x1000);
        let mut b = b.code;
        b[at..at + 8].copy_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(a.code, b, "the same shape, the same code (writer: {writer})");
        // Every word up to the pool is an instruction: no `udf` padding.
        assert!(words(&a.code[..a.code_len]).iter().all(|&w| w != 0));
    }
}
