//! x86-64 (SysV) reverse trampolines: C calls Ruby.
//!
//! Two pieces of code per callback:
//!
//! * a **thunk** per callback, the address C receives:
//!   `mov r10, SLOT ; jmp [r10]`, where `SLOT` is a `[target, data]` pair in
//!   ordinary memory. r10 is a scratch register in SysV (the static-chain
//!   register, never an argument), so every argument register is intact
//!   when the trampoline starts.
//! * a **trampoline** per signature, emitted from `abi::plan_callback`: it
//!   copies every C argument from where the plan says it is (integer
//!   register, vector register or caller stack slot) into a raw 8-byte slot
//!   array on its own stack, then calls the runtime entry
//!   `fn(slot: usize, raw: *const u64) -> u64`, and moves the returned bits
//!   into rax or xmm0 as the return type requires.
//!
//! Frame: `push rbp; mov rbp, rsp; sub rsp, 8 * nargs (16-aligned)`. Stack
//! arguments are read at `rbp + 16 + offset`.

use super::{CallbackRequest, EmitError};
use crate::abi::{CLoc, RetLoc};
use crate::types::CType;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynasmApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;

/// SysV integer argument registers in order: rdi, rsi, rdx, rcx, r8, r9.
const INT_ARG_REGS: [u8; 6] = [7, 6, 2, 1, 8, 9];

pub fn emit_trampoline(req: &CallbackRequest) -> Result<Vec<u8>, EmitError> {
    let plan = req.plan;
    for (i, (ty, loc)) in plan.args.iter().enumerate() {
        if matches!(ty, CType::Struct(_) | CType::Void) || matches!(loc, CLoc::Pieces(_) | CLoc::StackCopy { .. }) {
            return Err(EmitError::Unsupported(format!("callback argument {} of type {}", i + 1, ty)));
        }
    }
    if matches!(plan.ret, RetLoc::Pieces(_) | RetLoc::Indirect { .. }) || matches!(plan.ret_ty, CType::Struct(_)) {
        return Err(EmitError::Unsupported("callback returning a struct by value".into()));
    }
    let frame = ((plan.args.len() as i32 * 8) + 15) / 16 * 16;
    let frame = frame.max(16);
    let mut ops = Asm::new(0);
    dynasm!(ops
        ; .arch x64
        ; push rbp
        ; mov rbp, rsp
        ; sub rsp, frame
    );
    for (i, (ty, loc)) in plan.args.iter().enumerate() {
        let slot = 8 * i as i32;
        match *loc {
            CLoc::Int(k) => dynasm!(ops ; .arch x64 ; mov QWORD [rsp + slot], Rq(INT_ARG_REGS[k as usize])),
            // The whole low quadword: a float's bits are its low 4 bytes.
            CLoc::Float(k) => dynasm!(ops ; .arch x64 ; movsd QWORD [rsp + slot], Rx(k)),
            // A long double's slot holds the address of its 16 bytes on the
            // caller's stack (alive until the trampoline returns).
            CLoc::Stack(off) if *ty == CType::LongDouble => dynasm!(ops
                ; .arch x64
                ; lea rax, [rbp + 16 + off as i32]
                ; mov QWORD [rsp + slot], rax
            ),
            CLoc::Stack(off) => dynasm!(ops
                ; .arch x64
                ; mov rax, QWORD [rbp + 16 + off as i32]
                ; mov QWORD [rsp + slot], rax
            ),
            CLoc::Pieces(_) | CLoc::StackCopy { .. } | CLoc::ByReference { .. } => unreachable!("rejected above"),
        }
    }
    dynasm!(ops
        ; .arch x64
        ; mov rdi, r10
        ; mov rsi, rsp
        ; mov r11, QWORD req.entry as i64
        ; call r11
    );
    match plan.ret_ty {
        CType::F64 => dynasm!(ops ; .arch x64 ; movq xmm0, rax),
        CType::F32 => dynasm!(ops ; .arch x64 ; movd xmm0, eax),
        // The entry wrote the 80-bit result over the first two slots.
        CType::LongDouble => dynasm!(ops ; .arch x64 ; fld TWORD [rsp]),
        _ => {}
    }
    dynasm!(ops ; .arch x64 ; leave ; ret);
    ops.finalize().map_err(|e| EmitError::Assembler(format!("{e:?}")))
}

/// `mov r10, slot ; jmp QWORD [r10]`: the per-callback entry point.
pub fn emit_thunk(slot: usize) -> Result<Vec<u8>, EmitError> {
    let mut ops = Asm::new(0);
    dynasm!(ops
        ; .arch x64
        ; mov r10, QWORD slot as i64
        ; jmp QWORD [r10]
    );
    ops.finalize().map_err(|e| EmitError::Assembler(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::plan_callback;
    use crate::emit::arena::CodeArena;
    use crate::types::Signature;
    use std::cell::RefCell;

    thread_local! {
        static SEEN: RefCell<(usize, Vec<u64>)> = const { RefCell::new((0, Vec::new())) };
        static RESULT: RefCell<u64> = const { RefCell::new(0) };
        static NARGS: RefCell<usize> = const { RefCell::new(0) };
    }

    extern "C" fn fake_entry(slot: usize, raw: *const u64) -> u64 {
        let n = NARGS.with(|n| *n.borrow());
        // SAFETY: the trampoline passes `n` raw slots.
        let args = unsafe { std::slice::from_raw_parts(raw, n) }.to_vec();
        SEEN.with(|s| *s.borrow_mut() = (slot, args));
        RESULT.with(|r| *r.borrow())
    }

    #[repr(C)]
    struct Slot {
        target: usize,
        data: usize,
    }

    /// Builds thunk + trampoline for `params -> ret`; returns the thunk address and the slot.
    fn build(arena: &mut CodeArena, params: Vec<CType>, ret: CType) -> (usize, &'static Slot) {
        let plan = plan_callback(&Signature::new(params.clone(), ret)).unwrap();
        NARGS.with(|n| *n.borrow_mut() = params.len());
        let code = emit_trampoline(&CallbackRequest { plan: &plan, entry: fake_entry as *const () as usize }).unwrap();
        let tramp = arena.install(&code).unwrap();
        let slot: &'static Slot = Box::leak(Box::new(Slot { target: tramp, data: 0xdead }));
        let thunk = arena.install(&emit_thunk(slot as *const Slot as usize).unwrap()).unwrap();
        (thunk, slot)
    }

    fn seen() -> (usize, Vec<u64>) {
        SEEN.with(|s| s.borrow().clone())
    }

    #[test]
    fn integer_and_float_registers_reach_the_entry_in_order() {
        let mut arena = CodeArena::new();
        let (thunk, slot) = build(&mut arena, vec![CType::I32, CType::F64, CType::Pointer, CType::F32], CType::I64);
        RESULT.with(|r| *r.borrow_mut() = (-5i64) as u64);
        // SAFETY: the thunk is a complete function of this signature.
        let f: extern "C" fn(i32, f64, usize, f32) -> i64 = unsafe { std::mem::transmute(thunk) };
        assert_eq!(f(-7, 2.5, 0x1234, 1.5), -5);
        let (s, args) = seen();
        assert_eq!(s, slot as *const Slot as usize);
        assert_eq!(args[0] as u32 as i32, -7);
        assert_eq!(f64::from_bits(args[1]), 2.5);
        assert_eq!(args[2], 0x1234);
        assert_eq!(f32::from_bits(args[3] as u32), 1.5);
    }

    #[test]
    fn stack_arguments_and_double_return() {
        let mut arena = CodeArena::new();
        let mut params = vec![CType::I64; 8];
        params.extend(vec![CType::F64; 10]);
        let (thunk, _) = build(&mut arena, params, CType::F64);
        RESULT.with(|r| *r.borrow_mut() = 6.25f64.to_bits());
        type F = extern "C" fn(i64, i64, i64, i64, i64, i64, i64, i64, f64, f64, f64, f64, f64, f64, f64, f64, f64, f64) -> f64;
        // SAFETY: as above.
        let f: F = unsafe { std::mem::transmute(thunk) };
        let r = f(1, 2, 3, 4, 5, 6, 7, 8, 0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5);
        assert_eq!(r, 6.25);
        let (_, args) = seen();
        let ints: Vec<i64> = args[..8].iter().map(|&v| v as i64).collect();
        assert_eq!(ints, vec![1, 2, 3, 4, 5, 6, 7, 8]);
        let floats: Vec<f64> = args[8..].iter().map(|&v| f64::from_bits(v)).collect();
        assert_eq!(floats, vec![0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]);
    }

    #[test]
    fn float_return_and_no_arguments() {
        let mut arena = CodeArena::new();
        let (thunk, _) = build(&mut arena, vec![], CType::F32);
        RESULT.with(|r| *r.borrow_mut() = 3.75f32.to_bits() as u64);
        // SAFETY: as above.
        let f: extern "C" fn() -> f32 = unsafe { std::mem::transmute(thunk) };
        assert_eq!(f(), 3.75);
    }

    #[test]
    fn structs_are_rejected() {
        let s = std::sync::Arc::new(crate::types::StructType::natural(vec![CType::I32, CType::I32]));
        let plan = plan_callback(&Signature::new(vec![CType::Struct(s)], CType::Void)).unwrap();
        assert!(matches!(emit_trampoline(&CallbackRequest { plan: &plan, entry: 0 }), Err(EmitError::Unsupported(_))));
    }
}
