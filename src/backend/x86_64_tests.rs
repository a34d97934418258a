//! Runs emitted x86-64 stubs without a Ruby interpreter: fake VALUEs laid
//! out like CRuby's (Fixnums, flonums, RStrings) and fake slow paths that
//! record how they were called.

use super::*;
use crate::abi::plan_stub;
use crate::emit::arena::CodeArena;
use crate::lower::ruby_layout::*;
use crate::backend::{RuntimeTargets, StubRequest};
use crate::types::{CType, CType::*, Signature};
use std::sync::Mutex;

type V = u64;
const NIL: V = QNIL as V;

fn fix(n: i64) -> V {
    ((n << 1) | 1) as V
}

fn unfix(v: V) -> i64 {
    assert_eq!(v & 1, 1, "expected a Fixnum, got {v:#x}");
    (v as i64) >> 1
}

/// CRuby's rb_float_new_inline for values that fit a flonum.
fn flo(d: f64) -> V {
    if d == 0.0 && d.is_sign_positive() {
        return FLONUM_ZERO as V;
    }
    let bits = d.to_bits();
    let b = ((bits >> 60) & 7) as i32;
    assert!(bits != 0x3000_0000_0000_0000 && ((b - 3) & !1) == 0, "{d} is not a flonum");
    (bits.rotate_left(3) & !1) | 2
}

fn unflo(v: V) -> f64 {
    if v == FLONUM_ZERO as V {
        return 0.0;
    }
    assert_eq!(v & 3, 2, "expected a flonum, got {v:#x}");
    let b63 = v >> 63;
    f64::from_bits(((2 - b63) | (v & !3)).rotate_right(3))
}

/// Records the last slow-path call: (helper, value, index).
static SLOW: Mutex<Vec<(&'static str, u64, u32)>> = Mutex::new(Vec::new());
extern "C" fn fake_arg_long_long(v: V, _info: usize, i: u32) -> i64 {
    SLOW.lock().unwrap().push(("long_long", v, i));
    -4242
}
extern "C" fn fake_arg_int(v: V, _info: usize, i: u32) -> i64 {
    SLOW.lock().unwrap().push(("int", v, i));
    0x1_0000_0181 // upper bits must be dropped for narrow types
}
extern "C" fn fake_arg_double(v: V, _info: usize, i: u32) -> f64 {
    SLOW.lock().unwrap().push(("double", v, i));
    2.5
}
extern "C" fn fake_arg_cstr(slot: *const V, _info: usize, i: u32) -> *const u8 {
    // SAFETY: the stub passes its keep-alive slot, holding the VALUE.
    SLOW.lock().unwrap().push(("cstr", unsafe { *slot }, i));
    c"slow".as_ptr() as *const u8
}
extern "C" fn fake_ll2inum(n: i64) -> V {
    SLOW.lock().unwrap().push(("ll2inum", n as u64, 0));
    0xb16
}
extern "C" fn fake_float_new_in_heap(d: f64) -> V {
    SLOW.lock().unwrap().push(("heap_float", d.to_bits(), 0));
    0xf10a7
}
extern "C" fn fake_str_new_cstr(p: *const u8) -> V {
    p as V
}

fn targets() -> RuntimeTargets {
    RuntimeTargets {
        arg_int: fake_arg_int as *const () as usize,
        arg_uint: fake_arg_int as *const () as usize,
        arg_long_long: fake_arg_long_long as *const () as usize,
        arg_ulong_long: fake_arg_long_long as *const () as usize,
        arg_double: fake_arg_double as *const () as usize,
        arg_cstr: fake_arg_cstr as *const () as usize,
        ll2inum: fake_ll2inum as *const () as usize,
        float_new_in_heap: fake_float_new_in_heap as *const () as usize,
        str_new_cstr: fake_str_new_cstr as *const () as usize,
        call_without_gvl: fake_without_gvl as *const () as usize,
        ..RuntimeTargets::default()
    }
}

static ARENA: Mutex<Option<(CodeArena, crate::backend::Thunks)>> = Mutex::new(None);

/// Stands in for rb_thread_call_without_gvl: records the call, runs `f`.
extern "C" fn fake_without_gvl(f: extern "C" fn(usize) -> usize, data: usize, ubf: isize, _d2: usize) -> usize {
    SLOW.lock().unwrap().push(("without_gvl", ubf as u64, 0));
    f(data)
}

/// Emits and installs a stub for `function` with `params -> ret`.
fn stub(params: Vec<CType>, ret: CType, function: usize) -> usize {
    stub_with(params, ret, function, false)
}

fn stub_with(params: Vec<CType>, ret: CType, function: usize, blocking: bool) -> usize {
    let plan = plan_stub(&Signature::new(params, ret)).unwrap();
    let t = targets();
    let mut guard = ARENA.lock().unwrap();
    let (arena, thunks) = guard.get_or_insert_with(|| {
        let mut arena = CodeArena::new();
        let thunks = crate::backend::install_thunks(&mut arena, &t).unwrap();
        (arena, thunks)
    });
    let code = emit_stub(&StubRequest { plan: &plan, function, info: 0x1f0, targets: &t, thunks, blocking }).unwrap();
    arena.install(&code.code).unwrap()
}

/// The installed stub at `address` as the function type `F` Ruby (or
/// the test) calls it through.
fn cfunc<F: Copy>(address: usize) -> F {
    assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<usize>());
    // SAFETY: `address` is complete machine code in the arena, emitted
    // for the signature `F` spells out (each caller picks `F` from the
    // parameter list it planned), never freed.
    unsafe { std::mem::transmute_copy(&address) }
}

fn slow_calls() -> Vec<(&'static str, u64, u32)> {
    std::mem::take(&mut *SLOW.lock().unwrap())
}

extern "C" fn sub3(a: i64, b: i64, c: i64) -> i64 {
    a - b - c
}

#[test]
fn fixnum_args_and_result_round_trip() {
    let _g = TEST_LOCK.lock().unwrap();
    let f: extern "C" fn(V, V, V, V) -> V = cfunc(stub(vec![I64; 3], I64, sub3 as *const () as usize));
    assert_eq!(unfix(f(NIL, fix(100), fix(30), fix(-5))), 75);
    assert_eq!(unfix(f(NIL, fix(-(1 << 61)), fix(1 << 61), fix(0))), -(1 << 62));
    assert!(slow_calls().is_empty());
}

#[test]
fn non_fixnum_goes_to_the_slow_path_with_value_and_index() {
    let _g = TEST_LOCK.lock().unwrap();
    let f: extern "C" fn(V, V, V, V) -> V = cfunc(stub(vec![I64; 3], I64, sub3 as *const () as usize));
    assert_eq!(unfix(f(NIL, fix(0), 0x1234_5670, fix(0))), 4242);
    assert_eq!(slow_calls(), vec![("long_long", 0x1234_5670, 1)]);
}

#[test]
fn result_outside_fixnum_range_is_boxed_by_the_helper() {
    let _g = TEST_LOCK.lock().unwrap();
    let f: extern "C" fn(V, V, V, V) -> V = cfunc(stub(vec![I64; 3], I64, sub3 as *const () as usize));
    assert_eq!(f(NIL, fix(FIXNUM_MAX), fix(-1), fix(0)), 0xb16);
    assert_eq!(slow_calls(), vec![("ll2inum", (FIXNUM_MAX as u64) + 1, 0)]);
}

extern "C" fn raw_edi(x: i32) -> i32 {
    x
}

#[test]
fn narrow_args_are_truncated_and_extended_to_32_bits() {
    let _g = TEST_LOCK.lock().unwrap();
    let i8f: extern "C" fn(V, V) -> V = cfunc(stub(vec![I8], I32, raw_edi as *const () as usize));
    let u8f: extern "C" fn(V, V) -> V = cfunc(stub(vec![U8], I32, raw_edi as *const () as usize));
    let u16f: extern "C" fn(V, V) -> V = cfunc(stub(vec![U16], I32, raw_edi as *const () as usize));
    assert_eq!(unfix(i8f(NIL, fix(200))), -56);
    assert_eq!(unfix(u8f(NIL, fix(-1))), 255);
    assert_eq!(unfix(u16f(NIL, fix(0x12345))), 0x2345);
    // Out of C int range: NUM2INT's slow path; its result is narrowed too.
    assert_eq!(unfix(i8f(NIL, fix(1 << 40))), 0x181u32 as u8 as i8 as i64);
    assert_eq!(slow_calls(), vec![("int", fix(1 << 40), 0)]);
}

#[test]
fn narrow_returns_ignore_garbage_upper_bits() {
    let _g = TEST_LOCK.lock().unwrap();
    extern "C" fn garbage() -> u64 {
        0xdead_beef_cafe_80ff
    }
    let call = |ret| -> V {
        let f: extern "C" fn(V) -> V = cfunc(stub(vec![], ret, garbage as *const () as usize));
        f(NIL)
    };
    assert_eq!(unfix(call(I8)), -1);
    assert_eq!(unfix(call(U8)), 255);
    assert_eq!(unfix(call(I16)), -32513); // 0x80ff
    assert_eq!(unfix(call(U16)), 0x80ff);
    assert_eq!(unfix(call(I32)), 0xcafe_80ffu32 as i32 as i64);
    assert_eq!(unfix(call(U32)), 0xcafe_80ff);
    assert_eq!(call(Bool), QTRUE as V);
    assert_eq!(call(Void), NIL);
}

extern "C" fn fma3(a: f64, b: f32, c: i32) -> f64 {
    a * b as f64 + c as f64
}

#[test]
fn flonum_fixnum_and_slow_float_args() {
    let _g = TEST_LOCK.lock().unwrap();
    let f: extern "C" fn(V, V, V, V) -> V = cfunc(stub(vec![F64, F32, I32], F64, fma3 as *const () as usize));
    assert_eq!(unflo(f(NIL, flo(1.5), flo(4.0), fix(1))), 7.0);
    assert_eq!(unflo(f(NIL, fix(3), flo(0.0), fix(2))), 2.0); // Fixnum → double inline, +0.0 flonum
    assert!(slow_calls().is_empty());
    assert_eq!(unflo(f(NIL, 0x5555_0000, flo(2.0), fix(0))), 5.0); // heap object → helper (2.5)
    assert_eq!(slow_calls(), vec![("double", 0x5555_0000, 0)]);
}

#[test]
fn doubles_outside_flonum_range_and_zero_box_correctly() {
    let _g = TEST_LOCK.lock().unwrap();
    extern "C" fn id(d: f64) -> f64 {
        d
    }
    let f: extern "C" fn(V, V) -> V = cfunc(stub(vec![F64], F64, id as *const () as usize));
    for d in [1.0, -2.5, 1e-10, 123456.789] {
        assert_eq!(unflo(f(NIL, flo(d))), d);
    }
    assert_eq!(f(NIL, flo(0.0)), FLONUM_ZERO as V);
    slow_calls();
    extern "C" fn huge(_: f64) -> f64 {
        1e300
    }
    let g: extern "C" fn(V, V) -> V = cfunc(stub(vec![F64], F64, huge as *const () as usize));
    assert_eq!(g(NIL, flo(1.0)), 0xf10a7);
    assert_eq!(slow_calls(), vec![("heap_float", 1e300f64.to_bits(), 0)]);
}

extern "C" fn weighted20(
    a0: i64, a1: f64, a2: i64, a3: f64, a4: i64, a5: f64, a6: i64, a7: f64, a8: i64, a9: f64,
    a10: i64, a11: f64, a12: i64, a13: f64, a14: i64, a15: f64, a16: i64, a17: f64, a18: i64, a19: f64,
) -> f64 {
    let ints = [a0, a2, a4, a6, a8, a10, a12, a14, a16, a18];
    let dbls = [a1, a3, a5, a7, a9, a11, a13, a15, a17, a19];
    let mut s = 0.0;
    for k in 0..10 {
        s += ints[k] as f64 * (2 * k + 1) as f64 + dbls[k] * (2 * k + 2) as f64;
    }
    s
}

#[test]
fn twenty_mixed_args_use_argv_form_and_spill_in_order() {
    let _g = TEST_LOCK.lock().unwrap();
    let params: Vec<CType> = (0..20).map(|i| if i % 2 == 0 { I64 } else { F64 }).collect();
    let f: extern "C" fn(i32, *const V, V) -> V = cfunc(stub(params, F64, weighted20 as *const () as usize));
    let argv: Vec<V> = (0..20).map(|i| if i % 2 == 0 { fix(i + 1) } else { flo((i + 1) as f64 / 4.0) }).collect();
    let expect: f64 = (0..20).map(|i| ((i + 1) as f64 / if i % 2 == 0 { 1.0 } else { 4.0 }) * (i + 1) as f64).sum();
    assert_eq!(unflo(f(20, argv.as_ptr(), NIL)), expect);
}

#[test]
fn fifteen_args_come_from_registers_and_the_callers_stack() {
    let _g = TEST_LOCK.lock().unwrap();
    extern "C" fn last_minus_first(
        a: i64, _b: i64, _c: i64, _d: i64, _e: i64, _f: i64, _g: i64, _h: i64, _i: i64, _j: i64, _k: i64,
        _l: i64, _m: i64, _n: i64, o: i64,
    ) -> i64 {
        o * 100 + a
    }
    let f: extern "C" fn(V, V, V, V, V, V, V, V, V, V, V, V, V, V, V, V) -> V =
        cfunc(stub(vec![I64; 15], I64, last_minus_first as *const () as usize));
    let r = f(NIL, fix(1), fix(2), fix(3), fix(4), fix(5), fix(6), fix(7), fix(8), fix(9), fix(10), fix(11), fix(12), fix(13), fix(14), fix(15));
    assert_eq!(unfix(r), 1501);
}

/// A fake String object: `words` 8-byte words, flags = T_STRING with
/// encoding index `encoding`, then embedded `bytes` (NUL-terminated) or,
/// with `heap`, its length and pointer (3.1: as.heap; 3.3+: len).
fn fake_string(bytes: &[u8], encoding: u64, heap: Option<*const u8>) -> Vec<u64> {
    let mut s = vec![0u64; 8 + bytes.len() / 8];
    s[0] = T_STRING as u64 | encoding << ENCODING_SHIFT;
    match heap {
        Some(ptr) => {
            s[0] |= RSTRING_NOEMBED as u64;
            s[(RSTRING_HEAP_LEN / 8) as usize] = bytes.len() as u64;
            s[(RSTRING_HEAP_PTR / 8) as usize] = ptr as u64;
        }
        None => {
            match RSTRING_EMBED_LEN {
                EmbedLength::Flags { shift, width } => {
                    assert!(bytes.len() < 1 << width);
                    s[0] |= (bytes.len() as u64) << shift;
                }
                EmbedLength::Field(at) => s[at as usize / 8] = bytes.len() as u64,
            }
            // SAFETY: the words hold the header and len + 1 more bytes.
            let ary = unsafe { std::slice::from_raw_parts_mut((s.as_mut_ptr() as *mut u8).add(RSTRING_EMBED_ARY as usize), bytes.len() + 1) };
            ary[..bytes.len()].copy_from_slice(bytes);
        }
    }
    s
}

extern "C" fn c_strlen(p: *const libc::c_char) -> usize {
    // SAFETY: the stubs pass NUL-terminated bytes (or NULL).
    if p.is_null() { 999 } else { unsafe { libc::strlen(p) } }
}

const UTF_8: u64 = 1;
const US_ASCII: u64 = 2;

#[test]
fn strings_stringvaluecstr_accepts_unchanged_are_inline() {
    let _g = TEST_LOCK.lock().unwrap();
    let f: extern "C" fn(V, V) -> V = cfunc(stub(vec![CString], U64, c_strlen as *const () as usize));
    let text = |n: usize| (0..n).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>();
    let mut inline = Vec::new();
    for n in [0, 5, 15, 16, 23] {
        for encoding in [0, UTF_8, US_ASCII] {
            inline.push((fake_string(&text(n), encoding, None), n));
        }
    }
    // Heap Strings: their bytes, NUL-terminated at len (as Ruby keeps them).
    let heap_bytes: Vec<Vec<u8>> = [16, 17, 40, 100, 256, 300, 4096].iter().map(|&n| [text(n), vec![0]].concat()).collect();
    for b in &heap_bytes {
        let n = b.len() - 1;
        inline.push((fake_string(&b[..n], US_ASCII, Some(b.as_ptr())), n));
    }
    for (s, n) in &inline {
        assert_eq!(unfix(f(NIL, s.as_ptr() as V)), *n as i64);
    }
    assert_eq!(unfix(f(NIL, NIL)), 999);
    assert!(slow_calls().is_empty(), "these Strings and nil stay inline");
}

#[test]
fn strings_stringvaluecstr_would_change_or_reject_go_to_the_helper() {
    let _g = TEST_LOCK.lock().unwrap();
    let f: extern "C" fn(V, V) -> V = cfunc(stub(vec![CString], U64, c_strlen as *const () as usize));
    let nul_inside = b"0123456789\0abcdefghijklmnop\0".to_vec();
    let unterminated = vec![b'u'; 41];
    let short_heap = b"0123456789\0".to_vec();
    let long_heap = [vec![b'l'; 5000], vec![0]].concat();
    let values = vec![
        fake_string(b"a\0b", UTF_8, None),                        // embedded NUL
        fake_string(b"0123456789abcdef\0xyz", 0, None),          // embedded NUL after 16 bytes
        fake_string(b"hello", 3, None),                            // UTF-16BE: two-byte terminator
        fake_string(b"hello", 10, None),                           // EUC-JP
        fake_string(&nul_inside[..27], UTF_8, Some(nul_inside.as_ptr())),
        fake_string(&unterminated[..40], UTF_8, Some(unterminated.as_ptr())), // a shared substring
        fake_string(&short_heap[..10], UTF_8, Some(short_heap.as_ptr())),
        fake_string(&long_heap[..5000], UTF_8, Some(long_heap.as_ptr())),     // memchr's job
        vec![T_DATA as u64, 0, 0, 0, 0, 0],
    ];
    let mut expect: Vec<V> = values.iter().map(|v| v.as_ptr() as V).collect();
    expect.extend([0x0c, 0, fix(5), QTRUE as V]);
    for &v in &expect {
        assert_eq!(unfix(f(NIL, v)), 4, "{v:#x}");
    }
    let calls = slow_calls();
    assert_eq!(calls.iter().map(|c| c.1).collect::<Vec<_>>(), expect, "the helper sees each VALUE in its slot");
    assert!(calls.iter().all(|c| c.0 == "cstr" && c.2 == 0));
}

#[test]
fn a_nul_anywhere_inside_sends_the_string_to_the_helper() {
    let _g = TEST_LOCK.lock().unwrap();
    let f: extern "C" fn(V, V) -> V = cfunc(stub(vec![CString], U64, c_strlen as *const () as usize));
    for n in [16usize, 17, 23, 40, 127, 128, 129, 200, 300, 1000] {
        let mut bytes = [vec![b'n'; n], vec![0]].concat();
        for at in 0..n {
            bytes[at] = 0;
            let mut strings = vec![fake_string(&bytes[..n], UTF_8, Some(bytes.as_ptr()))];
            if !matches!(RSTRING_EMBED_LEN, EmbedLength::Flags { width, .. } if n >= 1 << width) {
                strings.push(fake_string(&bytes[..n], UTF_8, None));
            }
            for s in strings {
                assert_eq!(unfix(f(NIL, s.as_ptr() as V)), 4, "NUL at {at} of {n}");
                assert_eq!(slow_calls().len(), 1, "NUL at {at} of {n}");
            }
            bytes[at] = b'n';
        }
    }
}

#[test]
fn heap_strings_are_read_no_further_than_their_terminator() {
    let _g = TEST_LOCK.lock().unwrap();
    let f: extern "C" fn(V, V) -> V = cfunc(stub(vec![CString], U64, c_strlen as *const () as usize));
    let page = 4096;
    // SAFETY: an anonymous mapping of three pages, the outer two made
    // inaccessible; only the middle one is written.
    let middle = unsafe {
        let map = libc::mmap(std::ptr::null_mut(), 3 * page, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        assert_ne!(map, libc::MAP_FAILED);
        let middle = (map as *mut u8).add(page);
        assert_eq!(libc::mprotect(middle as *mut libc::c_void, page, libc::PROT_READ | libc::PROT_WRITE), 0);
        std::slice::from_raw_parts_mut(middle, page)
    };
    for n in [16, 17, 31, 32, 33, 100, 127, 128, 129, 143, 144, 145, 255, 256, 1000, 4000] {
        middle.fill(b'x');
        // At the start of the page, then ending with its last byte.
        middle[n] = 0;
        let first = fake_string(&middle[..n], UTF_8, Some(middle.as_ptr()));
        assert_eq!(unfix(f(NIL, first.as_ptr() as V)), n as i64);
        middle[n] = b'x';
        middle[page - 1] = 0;
        let last = fake_string(&middle[page - 1 - n..page - 1], UTF_8, Some(middle[page - 1 - n..].as_ptr()));
        assert_eq!(unfix(f(NIL, last.as_ptr() as V)), n as i64);
    }
    assert!(slow_calls().is_empty());
}

#[test]
fn blocking_stubs_marshal_registers_and_stack_through_the_call_block() {
    let _g = TEST_LOCK.lock().unwrap();
    let params: Vec<CType> = (0..20).map(|i| if i % 2 == 0 { I64 } else { F64 }).collect();
    let f: extern "C" fn(i32, *const V, V) -> V =
        cfunc(stub_with(params, F64, weighted20 as *const () as usize, true));
    let argv: Vec<V> = (0..20).map(|i| if i % 2 == 0 { fix(i + 1) } else { flo((i + 1) as f64 / 4.0) }).collect();
    let expect: f64 = (0..20).map(|i| ((i + 1) as f64 / if i % 2 == 0 { 1.0 } else { 4.0 }) * (i + 1) as f64).sum();
    assert_eq!(unflo(f(20, argv.as_ptr(), NIL)), expect);
    assert_eq!(slow_calls(), vec![("without_gvl", u64::MAX, 0)], "called once, with RUBY_UBF_IO");
    let g: extern "C" fn(V, V, V, V) -> V =
        cfunc(stub_with(vec![I64; 3], I64, sub3 as *const () as usize, true));
    assert_eq!(unfix(g(NIL, fix(10), fix(3), fix(2))), 5);
    slow_calls();
}

static TEST_LOCK: Mutex<()> = Mutex::new(());

#[test]
#[ignore = "timing probe, run by hand: cargo test --release -- --ignored emit_speed --nocapture"]
fn emit_speed() {
    let plan = plan_stub(&Signature::new(vec![I64, F64, Pointer, CString], I64)).unwrap();
    let t = targets();
    let thunks = crate::backend::Thunks::default();
    let start = std::time::Instant::now();
    for _ in 0..10000 {
        std::hint::black_box(emit_stub(&StubRequest { plan: &plan, function: 1, info: 2, targets: &t, thunks: &thunks, blocking: false }).unwrap());
    }
    let plan_start = std::time::Instant::now();
    for _ in 0..10000 {
        std::hint::black_box(plan_stub(&Signature::new(vec![I64, F64, Pointer, CString], I64)).unwrap());
    }
    println!("emit {:?} per stub, plan {:?}", (plan_start - start) / 10000, plan_start.elapsed() / 10000);
}

#[test]
fn a_retargeted_stub_calls_the_new_function_with_the_new_info() {
    let _g = TEST_LOCK.lock().unwrap();
    extern "C" fn plus(a: i64, b: i64) -> i64 {
        a + b
    }
    extern "C" fn minus(a: i64, b: i64) -> i64 {
        a - b
    }
    let plan = plan_stub(&Signature::new(vec![I64, I64], I64)).unwrap();
    let t = targets();
    let mut guard = ARENA.lock().unwrap();
    let (arena, thunks) = guard.get_or_insert_with(|| {
        let mut arena = CodeArena::new();
        let thunks = crate::backend::install_thunks(&mut arena, &t).unwrap();
        (arena, thunks)
    });
    let template = emit_stub(&StubRequest { plan: &plan, function: plus as *const () as usize, info: 0x111, targets: &t, thunks, blocking: false }).unwrap();
    let copy = template.retarget(minus as *const () as usize, 0x222);
    let (a, b) = (arena.install(&template.code).unwrap(), arena.install(&copy.code).unwrap());
    drop(guard);
    let (fa, fb): (extern "C" fn(V, V, V) -> V, extern "C" fn(V, V, V) -> V) = (cfunc(a), cfunc(b));
    assert_eq!((unfix(fa(NIL, fix(5), fix(3))), unfix(fb(NIL, fix(5), fix(3)))), (8, 2));
    // The slow path of the copy reports the copy's info.
    fb(NIL, 0x4440, fix(1));
    assert_eq!(slow_calls(), vec![("long_long", 0x4440, 0)]);
    assert_eq!(u64::from_le_bytes(copy.code[copy.info_at..copy.info_at + 8].try_into().unwrap()), 0x222);
}

// --- long double: real libm functions, fake conversion helpers ---------------

/// Stands in for runtime::long_double::arg_long_double: the slot holds a
/// Fixnum VALUE; writes it back as an 80-bit value.
extern "C" fn fake_arg_long_double(slot: *mut crate::x87::LongDouble, _info: usize, i: u32) {
    // SAFETY: the stub passes its 16-byte outgoing slot holding the VALUE.
    let v = unsafe { *(slot as *const V) };
    SLOW.lock().unwrap().push(("long_double", v, i));
    // SAFETY: as above: 16 writable bytes.
    unsafe { std::ptr::write_unaligned(slot, crate::x87::LongDouble::from_f64(unfix(v) as f64)) };
}

/// Stands in for ret_long_double: the result rounded to a double, as a flonum.
extern "C" fn fake_ret_long_double(bytes: *const crate::x87::LongDouble) -> V {
    // SAFETY: the stub's 16-byte return buffer.
    flo(unsafe { std::ptr::read_unaligned(bytes) }.to_f64())
}

fn libm(name: &std::ffi::CStr) -> usize {
    // SAFETY: dlopen/dlsym of the system libm.
    unsafe {
        let handle = libc::dlopen(c"libm.so.6".as_ptr(), libc::RTLD_NOW);
        assert!(!handle.is_null(), "libm.so.6");
        let f = libc::dlsym(handle, name.as_ptr());
        assert!(!f.is_null());
        f as usize
    }
}

fn long_double_stub(params: Vec<CType>, function: usize, blocking: bool) -> usize {
    let plan = plan_stub(&Signature::new(params, LongDouble)).unwrap();
    let mut t = targets();
    t.arg_long_double = fake_arg_long_double as *const () as usize;
    t.ret_long_double = fake_ret_long_double as *const () as usize;
    // Thunks of their own: the shared arena's were built without these helpers.
    let mut arena = CodeArena::new();
    let thunks = crate::backend::install_thunks(&mut arena, &t).unwrap();
    let code = emit_stub(&StubRequest { plan: &plan, function, info: 0x1f0, targets: &t, thunks: &thunks, blocking }).unwrap();
    let address = arena.install(&code.code).unwrap();
    std::mem::forget(arena); // the code stays mapped for the test's lifetime
    address
}

#[test]
fn long_double_args_go_to_16_byte_stack_slots_and_return_from_st0() {
    let _g = TEST_LOCK.lock().unwrap();
    for blocking in [false, true] {
        // ldexpl(long double x, int e): x on the stack, e in edi.
        let f: extern "C" fn(V, V, V) -> V =
            cfunc(long_double_stub(vec![LongDouble, I32], libm(c"ldexpl"), blocking));
        assert_eq!(unflo(f(NIL, fix(3), fix(4))), 48.0);
        assert_eq!(slow_calls().into_iter().filter(|c| c.0 == "long_double").collect::<Vec<_>>(), vec![("long_double", fix(3), 0)]);
        // fmal(x, y, z): three consecutive 16-byte slots.
        let g: extern "C" fn(V, V, V, V) -> V =
            cfunc(long_double_stub(vec![LongDouble; 3], libm(c"fmal"), blocking));
        assert_eq!(unflo(g(NIL, fix(2), fix(-3), fix(100))), 94.0);
        let idx: Vec<u32> = slow_calls().into_iter().filter(|c| c.0 == "long_double").map(|c| c.2).collect();
        assert_eq!(idx, vec![0, 1, 2]);
    }
}

// --- :pointer arguments: Pointer and Struct objects unboxed inline ----------

extern "C" fn fake_arg_pointer(v: V, _info: usize, i: u32) -> u64 {
    SLOW.lock().unwrap().push(("pointer", v, i));
    0x77
}

extern "C" fn ident_ptr(p: u64) -> u64 {
    p
}

/// A fake T_DATA object: flags, klass and the RTypedData `type`/`data`
/// words at CRuby's offsets.
fn fake_typed_data(klass: u64, data_type: u64, data: u64) -> Box<[u64; 8]> {
    let mut obj = Box::new([0u64; 8]);
    obj[(RBASIC_FLAGS / 8) as usize] = T_DATA as u64;
    obj[(RBASIC_KLASS / 8) as usize] = klass;
    obj[(RTYPEDDATA_TYPE / 8) as usize] = data_type;
    obj[(RTYPEDDATA_DATA / 8) as usize] = data;
    obj
}

#[test]
fn pointer_and_struct_objects_are_unboxed_inline() {
    let _g = TEST_LOCK.lock().unwrap();
    let (pointer_type, struct_type, other_type) = (Box::new(1u64), Box::new(2u64), Box::new(3u64));
    let pointer_data = Box::new([0xabc0u64, 0, 0]); // Pointer: address first
    let struct_data = Box::new([&*pointer_data as *const _ as u64, 0, 0]); // StructData: memory first
    const KLASS: u64 = 0x5000;
    // StubInfo stand-ins (ref_classes first): the by_ref parameter takes only KLASS.
    let only_klass = Box::new([KLASS]);
    let info_klass = Box::new([&*only_klass as *const _ as u64]);
    let mut t = targets();
    t.arg_pointer = fake_arg_pointer as *const () as usize;
    t.pointer_data_type = &*pointer_type as *const u64 as usize;
    t.struct_data_type = &*struct_type as *const u64 as usize;
    let mut stubs = Vec::new();
    {
        let mut guard = ARENA.lock().unwrap();
        let (arena, _) = guard.get_or_insert_with(|| {
            let mut arena = CodeArena::new();
            let thunks = crate::backend::install_thunks(&mut arena, &targets()).unwrap();
            (arena, thunks)
        });
        // Thunks of our own: arg_pointer differs from the shared targets.
        let thunks = crate::backend::install_thunks(arena, &t).unwrap();
        for param in [Pointer, StructRef] {
            let plan = plan_stub(&Signature::new(vec![param], U64)).unwrap();
            let info = &*info_klass as *const _ as usize;
            let req = StubRequest { plan: &plan, function: ident_ptr as *const () as usize, info, targets: &t, thunks: &thunks, blocking: false };
            let code = emit_stub(&req).unwrap();
            stubs.push(arena.install(&code.code).unwrap());
        }
    }
    let f_pointer: extern "C" fn(V, V) -> V = cfunc(stubs[0]);
    let f_by_ref: extern "C" fn(V, V) -> V = cfunc(stubs[1]);
    let pointer = fake_typed_data(0x6000, &*pointer_type as *const u64 as u64, &*pointer_data as *const _ as u64);
    let strukt = fake_typed_data(KLASS, &*struct_type as *const u64 as u64, &*struct_data as *const _ as u64);
    let other_struct = fake_typed_data(0x7000, &*struct_type as *const u64 as u64, &*struct_data as *const _ as u64);
    let other_data = fake_typed_data(KLASS, &*other_type as *const u64 as u64, &*pointer_data as *const _ as u64);
    let addr = |o: &Box<[u64; 8]>| &**o as *const _ as V;

    slow_calls();
    for f in [f_pointer, f_by_ref] {
        assert_eq!(unfix(f(NIL, addr(&strukt))), 0xabc0); // [[data + 0] + 0]
        assert_eq!(unfix(f(NIL, NIL)), 0);
    }
    assert_eq!(unfix(f_pointer(NIL, addr(&pointer))), 0xabc0); // [data + 0]
    assert_eq!(unfix(f_pointer(NIL, addr(&other_struct))), 0xabc0); // any Struct class
    assert!(slow_calls().is_empty(), "Pointers, Structs and nil take no slow path");
    // Another data type, an immediate; for the by_ref parameter another
    // class and a Pointer too (the helper's TypeError): the helper.
    assert_eq!(unfix(f_pointer(NIL, addr(&other_data))), 0x77);
    assert_eq!(unfix(f_pointer(NIL, fix(3))), 0x77);
    assert_eq!(unfix(f_by_ref(NIL, addr(&other_struct))), 0x77);
    assert_eq!(unfix(f_by_ref(NIL, addr(&pointer))), 0x77);
    assert_eq!(
        slow_calls(),
        vec![
            ("pointer", addr(&other_data), 0),
            ("pointer", fix(3), 0),
            ("pointer", addr(&other_struct), 0),
            ("pointer", addr(&pointer), 0)
        ]
    );
}

#[test]
fn cmp_with_a_small_immediate_is_encoded_with_one_byte() {
    // cmp rsi, 8 / cmp r11, -1 / cmp r10d, 1 / cmp rax, 300: checked by decoding.
    let mut code = crate::backend::stub::Code::<dynasmrt::x64::X64Relocation>::new();
    code.cmp_imm(6, 8, true);
    code.cmp_imm(11, -1, true);
    code.cmp_imm(10, 1, false);
    code.cmp_imm(0, 300, true);
    let len = dynasmrt::DynasmApi::offset(&code.ops).0;
    let bytes = code.finish();
    let text: Vec<String> = iced_x86::Decoder::new(64, &bytes[..len], 0).iter().map(|i| format!("{} {}", i.len(), i)).collect();
    assert_eq!(text, ["4 cmp rsi,8", "4 cmp r11,0FFFFFFFFFFFFFFFFh", "4 cmp r10d,1", "7 cmp rax,12Ch"]);
}

/// The instructions a stub for `params -> ret` runs before its call when
/// every argument takes the inline path (the code falls through to it).
fn instructions_before_the_call(params: Vec<CType>, ret: CType) -> Vec<String> {
    let plan = plan_stub(&Signature::new(params, ret)).unwrap();
    let (t, thunks) = (targets(), crate::backend::Thunks::default());
    let stub = emit_stub(&StubRequest { plan: &plan, function: 1, info: 2, targets: &t, thunks: &thunks, blocking: false }).unwrap();
    let mut out = Vec::new();
    for i in iced_x86::Decoder::new(64, &stub.code[..stub.code_len], 0).iter() {
        out.push(i.to_string());
        if i.mnemonic() == iced_x86::Mnemonic::Call {
            return out;
        }
    }
    panic!("no call: {out:?}")
}

#[test]
fn the_benchmarks_signatures_convert_straight_into_their_registers() {
    // sum6(long × 6): mov dst, src; sar dst, 1; jnc slow — three a Fixnum.
    let sum6 = instructions_before_the_call(vec![I64; 6], I64);
    assert_eq!(sum6.len(), 1 + 6 * 3 + 1, "{sum6:#?}");
    assert_eq!(sum6[1..3], ["mov rdi,rsi", "sar rdi,1"], "{sum6:#?}");
    assert!(sum6[3].starts_with("jae "), "the tag bit shifted out into CF");
    assert_eq!(sum6[16], "mov r9,[rsp+10h]", "the sixth VALUE, read in place from the caller's stack");
    // add(int, int): and the C int range check.
    assert_eq!(instructions_before_the_call(vec![I32; 2], I32).len(), 1 + 2 * 6 + 1);
    // sin(double): flonum check, +0.0, decode, straight into xmm0.
    let sin = instructions_before_the_call(vec![F64], F64);
    assert_eq!(sin.len(), 1 + 10 + 1, "{sin:#?}");
    assert_eq!(sin[10], "movq xmm0,r10");
    // No frame beyond the alignment slot in the fixed-arity form.
    assert_eq!(sum6[0], "push rax");
}
