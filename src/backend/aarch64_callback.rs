//! aarch64 (AAPCS64) reverse trampolines: C calls Ruby. Same contract as
//! `x86_64_callback`; pure code generation, compiled on every host so the
//! encodings are tested here and the code is run under qemu-aarch64 by
//! `test/aarch64/run_callbacks.sh`.
//!
//! * **thunk**, one per callback, the address C receives:
//!   `ldr x16, slot ; ldr x17, [x16] ; br x17` with `slot` (the address of
//!   a `[target, data]` pair) in a literal after the code. x16/x17 (IP0,
//!   IP1) are the intra-procedure-call scratch registers: never arguments,
//!   free to clobber between a call and its callee, so every argument
//!   register (x0–x7, x8, v0–v7) and the caller's stack are intact when
//!   the trampoline starts. x18 (the platform register) is never touched.
//! * **trampoline**, one per signature, emitted from `abi::plan_callback`:
//!   copies each C argument from its x register, v register (the low 64
//!   bits: a float's bits are its low 4 bytes) or caller stack slot (loaded
//!   at exactly its size, so Apple's packed slots work) into 8-byte raw
//!   slots on its own stack, calls `entry(slot = x16, raw = sp)`, and moves
//!   the returned bits to v0 for float/double (x0 is already right for
//!   everything else; the runtime returns narrow integers extended to 32
//!   bits, which is what Apple callers expect and Linux callers ignore).
//!
//! Frame: `stp x29, x30, [sp, #-16]! ; mov x29, sp ; sub sp, sp, #raw`
//! (raw rounded to 16: sp stays 16-aligned). Stack arguments are read at
//! `x29 + 16 + offset`: aarch64 pushes no return address.

use super::{CallbackRequest, EmitError};
use crate::abi::{CLoc, RetLoc};
use crate::types::CType;
use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<Aarch64Relocation>;

/// Largest caller stack offset a scaled 12-bit load reaches for every
/// access size (ldrb: 4095 bytes).
const MAX_STACK_OFFSET: u32 = 4095 - 16;
/// Most raw slots `str [sp, #8 * i]` reaches (and far beyond
/// runtime::callback::MAX_ARGS).
const MAX_ARGS: usize = 512;
/// Largest frame `sub sp, sp, #imm12` and the scaled stores reach.
const MAX_FRAME: u32 = 4080;

pub fn emit_trampoline(req: &CallbackRequest) -> Result<Vec<u8>, EmitError> {
    let plan = req.plan;
    if plan.args.len() > MAX_ARGS {
        return Err(EmitError::Unsupported(format!("a callback with {} arguments", plan.args.len())));
    }
    if cfg!(target_vendor = "apple") && (plan.ret_ty == CType::LongDouble || plan.args.iter().any(|(t, _)| *t == CType::LongDouble)) {
        // Apple's long double is a double; CType::LongDouble is binary128.
        return Err(EmitError::Unsupported("long double on Apple arm64".into()));
    }
    for (i, (ty, loc)) in plan.args.iter().enumerate() {
        let far = |off: u32| off > MAX_STACK_OFFSET;
        let ok = match loc {
            CLoc::Int(_) | CLoc::Float(_) => true,
            CLoc::Stack(off) | CLoc::StackCopy { offset: off, .. } => !far(*off),
            CLoc::Pieces(pieces) => pieces.iter().all(|p| match p.loc {
                CLoc::Int(_) => p.size <= 8,
                CLoc::Float(_) => matches!(p.size, 4 | 8 | 16),
                CLoc::Stack(off) => !far(off) && p.size <= 8,
                _ => false,
            }),
            CLoc::ByReference { address, .. } => match **address {
                CLoc::Int(_) => true,
                CLoc::Stack(off) => !far(off),
                _ => false,
            },
        };
        if !ok || *ty == CType::Void {
            return Err(EmitError::Unsupported(format!("callback argument {} of type {} in {:?}", i + 1, ty, loc)));
        }
    }
    let nargs = plan.args.len() as u32;
    // Raw slots (one more for a struct result: where the entry writes its
    // bytes), then 16-aligned buffers: one per struct arriving in registers
    // and per long double arriving in a q register (the slot gets the
    // buffer's address), and one for a struct result in registers.
    let struct_ret = matches!(plan.ret, RetLoc::Pieces(_) | RetLoc::Indirect { .. });
    let mut used = round16(8 * (nargs + struct_ret as u32)).max(16);
    let mut buffers = Vec::with_capacity(plan.args.len());
    for (ty, loc) in &plan.args {
        let bytes = match (ty, loc) {
            (CType::Struct(s), CLoc::Pieces(_)) => round16(s.size as u32),
            (CType::LongDouble, CLoc::Float(_)) => 16,
            _ => 0,
        };
        buffers.push(used);
        used += bytes;
    }
    let retbuf = used;
    if let (RetLoc::Pieces(_), CType::Struct(s)) = (&plan.ret, &plan.ret_ty) {
        used += round16(s.size as u32);
    }
    if used > MAX_FRAME {
        return Err(EmitError::Unsupported(format!("a callback frame of {used} bytes")));
    }
    let mut ops = Asm::new(0);
    dynasm!(ops
        ; .arch aarch64
        ; stp x29, x30, [sp, #-16]!
        ; mov x29, sp
        ; sub sp, sp, used
    );
    for (i, (ty, loc)) in plan.args.iter().enumerate() {
        let slot = 8 * i as u32;
        let buf = buffers[i];
        match (ty, loc) {
            // A long double: the slot holds the address of its 16 bytes.
            (CType::LongDouble, CLoc::Float(k)) => dynasm!(ops
                ; .arch aarch64
                ; str Q(*k), [sp, buf]
                ; add x9, sp, buf
                ; str x9, [sp, slot]
            ),
            (CType::LongDouble, CLoc::Stack(off)) => dynasm!(ops
                ; .arch aarch64
                ; add x9, x29, 16 + off
                ; str x9, [sp, slot]
            ),
            (_, CLoc::Int(k)) => dynasm!(ops ; .arch aarch64 ; str X(*k), [sp, slot]),
            (_, CLoc::Float(k)) => dynasm!(ops ; .arch aarch64 ; str D(*k), [sp, slot]),
            (_, CLoc::Stack(off)) => {
                load_stack(&mut ops, *off, ty.size() as u32);
                dynasm!(ops ; .arch aarch64 ; str x9, [sp, slot]);
            }
            // A struct in registers: its pieces go to its buffer (x words
            // whole, HFA members at their own width), the slot gets the
            // buffer's address.
            (_, CLoc::Pieces(pieces)) => {
                for p in pieces {
                    let at = buf + p.offset;
                    match (&p.loc, p.size) {
                        (CLoc::Int(k), _) => dynasm!(ops ; .arch aarch64 ; str X(*k), [sp, at]),
                        (CLoc::Float(k), 4) => dynasm!(ops ; .arch aarch64 ; str S(*k), [sp, at]),
                        (CLoc::Float(k), 8) => dynasm!(ops ; .arch aarch64 ; str D(*k), [sp, at]),
                        (CLoc::Float(k), _) => dynasm!(ops ; .arch aarch64 ; str Q(*k), [sp, at]),
                        (CLoc::Stack(off), size) => {
                            load_stack(&mut ops, *off, size as u32);
                            dynasm!(ops ; .arch aarch64 ; str x9, [sp, at]);
                        }
                        _ => unreachable!("rejected above"),
                    }
                }
                dynasm!(ops ; .arch aarch64 ; add x9, sp, buf ; str x9, [sp, slot]);
            }
            // A struct the caller copied to its stack argument area.
            (_, CLoc::StackCopy { offset, .. }) => dynasm!(ops
                ; .arch aarch64
                ; add x9, x29, 16 + offset
                ; str x9, [sp, slot]
            ),
            // Over 16 bytes (B.4): the address of the caller's copy.
            (_, CLoc::ByReference { address, .. }) => match **address {
                CLoc::Int(k) => dynasm!(ops ; .arch aarch64 ; str X(k), [sp, slot]),
                CLoc::Stack(off) => dynasm!(ops
                    ; .arch aarch64
                    ; ldr x9, [x29, 16 + off]
                    ; str x9, [sp, slot]
                ),
                _ => unreachable!("rejected above"),
            },
        }
    }
    let ret_slot = 8 * nargs;
    match plan.ret {
        RetLoc::Pieces(_) => dynasm!(ops
            ; .arch aarch64
            ; add x9, sp, retbuf
            ; str x9, [sp, ret_slot]
        ),
        // The caller's result memory arrives in x8; the entry writes there.
        RetLoc::Indirect { .. } => dynasm!(ops ; .arch aarch64 ; str x8, [sp, ret_slot]),
        _ => {}
    }
    dynasm!(ops
        ; .arch aarch64
        ; mov x0, x16
        ; mov x1, sp
        ; ldr x9, ->entry
        ; blr x9
    );
    match &plan.ret {
        RetLoc::Pieces(pieces) => {
            for p in pieces {
                let at = retbuf + p.offset;
                match (&p.loc, p.size) {
                    (CLoc::Int(k), _) => dynasm!(ops ; .arch aarch64 ; ldr X(*k), [sp, at]),
                    (CLoc::Float(k), 4) => dynasm!(ops ; .arch aarch64 ; ldr S(*k), [sp, at]),
                    (CLoc::Float(k), 8) => dynasm!(ops ; .arch aarch64 ; ldr D(*k), [sp, at]),
                    (CLoc::Float(k), 16) => dynasm!(ops ; .arch aarch64 ; ldr Q(*k), [sp, at]),
                    _ => return Err(EmitError::Unsupported(format!("callback struct return piece {:?}", p.loc))),
                }
            }
        }
        // AAPCS64 does not require the callee to return x8.
        RetLoc::Indirect { .. } => {}
        _ => match plan.ret_ty {
            CType::F64 => dynasm!(ops ; .arch aarch64 ; fmov d0, x0),
            CType::F32 => dynasm!(ops ; .arch aarch64 ; fmov s0, w0),
            // The entry wrote the binary128 result over the first two slots.
            CType::LongDouble => dynasm!(ops ; .arch aarch64 ; ldr q0, [sp]),
            _ => {}
        },
    }
    dynasm!(ops
        ; .arch aarch64
        ; mov sp, x29
        ; ldp x29, x30, [sp], #16
        ; ret
        ; .align 8
        ; ->entry:
        ; .u64 req.entry as u64
    );
    ops.finalize().map_err(|e| EmitError::Assembler(format!("{e:?}")))
}

/// x9 ← the `size` bytes of the caller's stack argument at `off`
/// (zero-extended: Apple packs narrow ones).
fn load_stack(ops: &mut Asm, off: u32, size: u32) {
    let at = 16 + off;
    match size {
        1 => dynasm!(ops ; .arch aarch64 ; ldrb w9, [x29, at]),
        2 => dynasm!(ops ; .arch aarch64 ; ldrh w9, [x29, at]),
        4 => dynasm!(ops ; .arch aarch64 ; ldr w9, [x29, at]),
        _ => dynasm!(ops ; .arch aarch64 ; ldr x9, [x29, at]),
    }
}

fn round16(n: u32) -> u32 {
    n.div_ceil(16) * 16
}

/// `ldr x16, slot ; ldr x17, [x16] ; br x17 ; slot: .u64`: the per-callback
/// entry point (24 bytes: three instructions, a pad word, the literal).
pub fn emit_thunk(slot: usize) -> Result<Vec<u8>, EmitError> {
    let mut ops = Asm::new(0);
    dynasm!(ops
        ; .arch aarch64
        ; ldr x16, ->slot
        ; ldr x17, [x16]
        ; br x17
        ; .align 8
        ; ->slot:
        ; .u64 slot as u64
    );
    ops.finalize().map_err(|e| EmitError::Assembler(format!("{e:?}")))
}

/// `ldr x3, data ; ldr x16, target ; br x16 ; data: .u64 ; target: .u64`:
/// a Ruby method entry (`VALUE f(int argc, VALUE *argv, VALUE self)`) that
/// reaches `target` with `data` as a fourth argument (x3), as
/// `x86_64_callback::emit_method_thunk`. x16 (IP0) is scratch.
pub fn emit_method_thunk(data: usize, target: usize) -> Result<Vec<u8>, EmitError> {
    let mut ops = Asm::new(0);
    dynasm!(ops
        ; .arch aarch64
        ; ldr x3, ->data
        ; ldr x16, ->target
        ; br x16
        ; .align 8
        ; ->data:
        ; .u64 data as u64
        ; ->target:
        ; .u64 target as u64
    );
    ops.finalize().map_err(|e| EmitError::Assembler(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::aapcs64::{plan_callback, Platform};
    use crate::abi::CallbackPlan;
    use crate::types::{Signature, StructType};
    use std::sync::Arc;

    fn words(code: &[u8]) -> Vec<u32> {
        code.chunks(4).map(|w| u32::from_le_bytes(w.try_into().unwrap())).collect()
    }

    fn plan(params: Vec<CType>, ret: CType) -> CallbackPlan {
        plan_callback(&Signature::new(params, ret), Platform::Linux).unwrap()
    }

    #[test]
    fn thunk_bytes() {
        let code = emit_thunk(0x1122_3344_5566_7788).unwrap();
        // Checked with aarch64-linux-gnu-objdump.
        assert_eq!(
            words(&code[..16]),
            vec![
                0x5800_0090, // ldr x16, #16
                0xf940_0211, // ldr x17, [x16]
                0xd61f_0220, // br x17
                0x0000_0000, // udf #0 (pad)
            ]
        );
        assert_eq!(code[16..], 0x1122_3344_5566_7788u64.to_le_bytes());
    }

    #[test]
    fn method_thunk_bytes() {
        let code = emit_method_thunk(0x1122_3344_5566_7788, 0x99aa_bbcc_ddee_ff00).unwrap();
        assert_eq!(
            words(&code[..16]),
            vec![
                0x5800_0083, // ldr x3, #16
                0x5800_00b0, // ldr x16, #20
                0xd61f_0200, // br x16
                0x0000_0000, // udf #0 (pad)
            ]
        );
        assert_eq!(code[16..24], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(code[24..], 0x99aa_bbcc_ddee_ff00u64.to_le_bytes());
    }

    #[test]
    fn trampoline_bytes_for_int_double_stack_arg_and_double_return() {
        // (i64 x 8, f64, i8) -> f64: x0..x7, d0, and the i8 from the stack.
        let mut params = vec![CType::I64; 8];
        params.extend([CType::F64, CType::I8]);
        let p = plan(params, CType::F64);
        assert_eq!(p.args[9].1, CLoc::Stack(0));
        let code = emit_trampoline(&CallbackRequest { plan: &p, entry: 0xdead_beef_cafe }).unwrap();
        // Checked with aarch64-linux-gnu-objdump.
        let expected = vec![
            0xa9bf_7bfd, // stp x29, x30, [sp, #-16]!
            0x9100_03fd, // mov x29, sp
            0xd101_43ff, // sub sp, sp, #0x50
            0xf900_03e0, // str x0, [sp]
            0xf900_07e1, // str x1, [sp, #8]
            0xf900_0be2, // str x2, [sp, #16]
            0xf900_0fe3, // str x3, [sp, #24]
            0xf900_13e4, // str x4, [sp, #32]
            0xf900_17e5, // str x5, [sp, #40]
            0xf900_1be6, // str x6, [sp, #48]
            0xf900_1fe7, // str x7, [sp, #56]
            0xfd00_23e0, // str d0, [sp, #64]
            0x3940_43a9, // ldrb w9, [x29, #16]
            0xf900_27e9, // str x9, [sp, #72]
            0xaa10_03e0, // mov x0, x16
            0x9100_03e1, // mov x1, sp
            0x5800_00c9, // ldr x9, entry (+24)
            0xd63f_0120, // blr x9
            0x9e67_0000, // fmov d0, x0
            0x9100_03bf, // mov sp, x29
            0xa8c1_7bfd, // ldp x29, x30, [sp], #16
            0xd65f_03c0, // ret
        ];
        assert_eq!(words(&code[..88]), expected);
        assert_eq!(code[88..], 0xdead_beef_cafeu64.to_le_bytes());
    }

    #[test]
    fn stack_loads_use_the_argument_size() {
        // Apple packs stack arguments: i8 at 0, i16 at 2, f32 at 4, i32 at 8.
        let mut params = vec![CType::I64; 8];
        params.extend(vec![CType::F64; 8]);
        params.extend([CType::I8, CType::I16, CType::F32, CType::I32]);
        let p = plan_callback(&Signature::new(params, CType::Void), Platform::Apple).unwrap();
        let locs: Vec<CLoc> = p.args[16..].iter().map(|a| a.1.clone()).collect();
        assert_eq!(locs, [0, 2, 4, 8].map(CLoc::Stack).to_vec());
        let code = words(&emit_trampoline(&CallbackRequest { plan: &p, entry: 0 }).unwrap());
        assert!(code.contains(&0x3940_43a9), "ldrb w9, [x29, #16]");
        assert!(code.contains(&0x7940_27a9), "ldrh w9, [x29, #18]");
        assert!(code.contains(&0xb940_17a9), "ldr w9, [x29, #20]");
        assert!(code.contains(&0xb940_1ba9), "ldr w9, [x29, #24]");
    }

    #[test]
    fn float_return_moves_w0_to_s0() {
        let code = words(&emit_trampoline(&CallbackRequest { plan: &plan(vec![], CType::F32), entry: 0 }).unwrap());
        assert!(code.contains(&0x1e27_0000), "fmov s0, w0");
        let code = words(&emit_trampoline(&CallbackRequest { plan: &plan(vec![], CType::I32), entry: 0 }).unwrap());
        assert!(!code.contains(&0x1e27_0000) && !code.contains(&0x9e67_0000));
    }

    fn strukt(fields: Vec<CType>) -> CType {
        CType::Struct(Arc::new(StructType::natural(fields)))
    }

    #[test]
    fn struct_arguments_become_buffer_addresses() {
        use CType::*;
        // (i32, {i64, i64} in x1/x2, HFA {f32, f32} in s0/s1, 32-byte struct by reference in x3) -> void
        let p = plan(vec![I32, strukt(vec![I64, I64]), strukt(vec![F32, F32]), strukt(vec![I64; 4])], Void);
        let code = words(&emit_trampoline(&CallbackRequest { plan: &p, entry: 0 }).unwrap());
        // Checked with aarch64-linux-gnu-objdump. Raw slots 0..32, buffers at 32 and 48.
        let expected = [
            0xa9bf7bfd, // stp x29, x30, [sp, #-16]!
            0x910003fd, // mov x29, sp
            0xd10103ff, // sub sp, sp, #0x40
            0xf90003e0, // str x0, [sp]
            0xf90013e1, // str x1, [sp, #32]
            0xf90017e2, // str x2, [sp, #40]
            0x910083e9, // add x9, sp, #0x20
            0xf90007e9, // str x9, [sp, #8]
            0xbd0033e0, // str s0, [sp, #48]
            0xbd0037e1, // str s1, [sp, #52]
            0x9100c3e9, // add x9, sp, #0x30
            0xf9000be9, // str x9, [sp, #16]
            0xf9000fe3, // str x3, [sp, #24]
            0xaa1003e0, // mov x0, x16
        ];
        assert_eq!(code[..expected.len()], expected);
    }

    #[test]
    fn struct_results_come_back_in_registers_or_through_x8() {
        use CType::*;
        // HFA of two doubles: slot 0 (after no arguments) = retbuf; d0, d1 loaded after the call.
        let code = words(&emit_trampoline(&CallbackRequest { plan: &plan(vec![], strukt(vec![F64, F64])), entry: 0 }).unwrap());
        assert!(code.contains(&0x910043e9) && code.contains(&0xf90003e9), "add x9, sp, #16 ; str x9, [sp]");
        assert!(code.contains(&0xfd400be0) && code.contains(&0xfd400fe1), "ldr d0, [sp, #16] ; ldr d1, [sp, #24]");
        // 24 bytes: the caller's x8 in slot 1 (after one argument).
        let code = words(&emit_trampoline(&CallbackRequest { plan: &plan(vec![I32], strukt(vec![I64; 3])), entry: 0 }).unwrap());
        assert!(code.contains(&0xf90007e8), "str x8, [sp, #8]");
        // A long double: a q register's 16 bytes in a buffer, the result loaded into q0.
        let code = words(&emit_trampoline(&CallbackRequest { plan: &plan(vec![LongDouble], LongDouble), entry: 0 }).unwrap());
        assert!(code.contains(&0x3d8007e0), "str q0, [sp, #16]");
        assert!(code.contains(&0x3dc003e0), "ldr q0, [sp]");
    }

    /// The signatures `test/aarch64/callbacks.c` calls, by name (keep the
    /// two in sync): every scalar width, more than eight integer and more
    /// than eight float arguments (so some arrive on the stack), pointers.
    fn harness_signatures() -> Vec<(&'static str, Vec<CType>, CType)> {
        use CType::*;
        let eight = |t: CType| vec![t; 8];
        vec![
            ("ints", vec![I8, U8, I16, U16, I32, U32, I64, U64], I32),
            ("many_ints", [eight(I64), vec![I32, I8, U16, Pointer]].concat(), I64),
            ("many_floats", vec![F64, F32, F64, F32, F64, F32, F64, F32, F64, F32, F64], F64),
            (
                "mixed",
                vec![
                    I32, F64, Pointer, F32, I8, F64, U16, F32, I64, F64, I32, F64, U8, F32, I64, F64, I16, F64, U32, F32,
                ],
                F32,
            ),
            ("nothing", vec![], Void),
            ("bools", vec![Bool, Pointer, Bool], Bool),
            ("stack_narrow", [eight(I64), eight(F64), vec![I8, U8, I16, U16, I32, F32, F64, Bool, U32]].concat(), U8),
            ("pointer_ret", vec![F32, I64], Pointer),
            // Structs by value: x words, an HFA, by reference, on the stack.
            ("structs", vec![I32, strukt(vec![I64, I64]), strukt(vec![F32, F32]), strukt(vec![I64; 4]), strukt(vec![F64, F64])], Void),
            (
                "struct_stack",
                [eight(I64)[..7].to_vec(), vec![strukt(vec![I64, I64])], vec![F64; 6], vec![strukt(vec![F64; 3]), F64, I64]].concat(),
                I64,
            ),
            ("ret_hfa", vec![F64], strukt(vec![F64; 4])),
            ("ret_ll", vec![], strukt(vec![I64, I32])),
            ("ret_big", vec![I32], strukt(vec![I64; 3])),
            // long double: q registers and 16-aligned stack slots.
            ("ld", vec![LongDouble, I32], LongDouble),
            ("ld_stack", [eight(F64), vec![LongDouble, I32, F64, LongDouble]].concat(), LongDouble),
        ]
    }

    /// Placeholders the harness overwrites: the trampoline's entry literal
    /// and the thunk's slot literal are each the last 8 bytes.
    const ENTRY_PLACEHOLDER: usize = 0x0123_4567_89ab_cdef;
    const SLOT_PLACEHOLDER: usize = 0x0fed_cba9_8765_4321;

    fn c_array(name: &str, code: &[u8]) -> String {
        let bytes: Vec<String> = code.iter().map(|b| format!("0x{b:02x}")).collect();
        format!("static const unsigned char {name}[{}] = {{{}}};\n", code.len(), bytes.join(","))
    }

    /// Emits the harness's trampolines (Linux AAPCS64) and a thunk; with
    /// `FIDDLE_JIT_AARCH64_OUT=<dir>` also writes them to
    /// `<dir>/callbacks_blobs.h` for test/aarch64/run_callbacks.sh.
    #[test]
    fn harness_blobs() {
        let mut header = String::from("/* Generated by `cargo test harness_blobs` (src/backend/aarch64_callback.rs). */\n");
        let thunk = emit_thunk(SLOT_PLACEHOLDER).unwrap();
        assert_eq!(thunk.len(), 24);
        assert_eq!(thunk[16..], (SLOT_PLACEHOLDER as u64).to_le_bytes());
        header += &c_array("thunk_code", &thunk);
        for (name, params, ret) in harness_signatures() {
            let n = params.len();
            let p = plan(params, ret);
            let code = emit_trampoline(&CallbackRequest { plan: &p, entry: ENTRY_PLACEHOLDER }).unwrap();
            assert_eq!(code.len() % 8, 0);
            assert_eq!(code[code.len() - 8..], (ENTRY_PLACEHOLDER as u64).to_le_bytes(), "{name}: entry literal last");
            // Prologue, one or two instructions per argument, call, epilogue.
            assert!(code.len() >= 4 * (3 + n + 4 + 3) + 8, "{name}");
            header += &c_array(&format!("tramp_{name}"), &code);
        }
        if let Some(dir) = std::env::var_os("FIDDLE_JIT_AARCH64_OUT") {
            let path = std::path::Path::new(&dir).join("callbacks_blobs.h");
            std::fs::write(&path, header).unwrap();
            eprintln!("wrote {}", path.display());
        }
    }
}
