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
//! Structs by value: an argument's slot holds the address of its bytes —
//! a buffer in the trampoline's frame that its eightbytes are stored to, or
//! the caller's stack copy of a MEMORY-class struct. A struct return gets
//! one more slot (index nargs) with the address the entry writes the result
//! bytes to: a 16-byte frame buffer loaded into rax/rdx/xmm0/xmm1 afterwards,
//! or the caller's hidden result pointer (arrived in rdi, returned in rax).
//!
//! Frame: `push rbp; mov rbp, rsp; sub rsp, slots + buffers (16-aligned)`.
//! Stack arguments are read at `rbp + 16 + offset`.

use super::{CallbackRequest, EmitError};
use crate::abi::{CLoc, RetLoc};
use crate::types::CType;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;

/// SysV integer argument registers in order: rdi, rsi, rdx, rcx, r8, r9.
const INT_ARG_REGS: [u8; 6] = [7, 6, 2, 1, 8, 9];

pub fn emit_trampoline(req: &CallbackRequest) -> Result<Vec<u8>, EmitError> {
    let plan = req.plan;
    for (i, (ty, loc)) in plan.args.iter().enumerate() {
        if matches!(ty, CType::Void) || matches!(loc, CLoc::ByReference { .. }) {
            return Err(EmitError::Unsupported(format!("callback argument {} of type {}", i + 1, ty)));
        }
    }
    let nargs = plan.args.len() as i32;
    // Struct by value arguments in registers get a buffer each (whole
    // eightbytes), after the raw slots; a struct return gets one more raw
    // slot (index nargs) holding where the entry writes the result bytes,
    // and, for a register return, a 16-byte buffer.
    let struct_ret = matches!(plan.ret, RetLoc::Pieces(_) | RetLoc::Indirect { .. });
    let mut used = 8 * (nargs + struct_ret as i32);
    let mut buffers = Vec::with_capacity(plan.args.len());
    for (ty, loc) in &plan.args {
        match (ty, loc) {
            (CType::Struct(s), CLoc::Pieces(_)) => {
                buffers.push(used);
                used += (s.size as i32 + 7) / 8 * 8;
            }
            _ => buffers.push(0),
        }
    }
    let retbuf = used;
    if matches!(plan.ret, RetLoc::Pieces(_)) {
        used += 16;
    }
    let frame = ((used + 15) / 16 * 16).max(16);
    let mut ops = Asm::new(0);
    dynasm!(ops
        ; .arch x64
        ; push rbp
        ; mov rbp, rsp
        ; sub rsp, frame
    );
    for (i, (ty, loc)) in plan.args.iter().enumerate() {
        let slot = 8 * i as i32;
        match loc {
            CLoc::Int(k) => dynasm!(ops ; .arch x64 ; mov QWORD [rsp + slot], Rq(INT_ARG_REGS[*k as usize])),
            // The whole low quadword: a float's bits are its low 4 bytes.
            CLoc::Float(k) => dynasm!(ops ; .arch x64 ; movsd QWORD [rsp + slot], Rx(*k)),
            // A long double's slot holds the address of its 16 bytes on the
            // caller's stack (alive until the trampoline returns).
            CLoc::Stack(off) if *ty == CType::LongDouble => dynasm!(ops
                ; .arch x64
                ; lea rax, [rbp + 16 + *off as i32]
                ; mov QWORD [rsp + slot], rax
            ),
            CLoc::Stack(off) => dynasm!(ops
                ; .arch x64
                ; mov rax, QWORD [rbp + 16 + *off as i32]
                ; mov QWORD [rsp + slot], rax
            ),
            // A struct in registers: its eightbytes go to its buffer, the
            // slot gets the buffer's address.
            CLoc::Pieces(pieces) => {
                let buf = buffers[i];
                for p in pieces {
                    let at = buf + p.offset as i32;
                    match p.loc {
                        CLoc::Int(k) => dynasm!(ops ; .arch x64 ; mov QWORD [rsp + at], Rq(INT_ARG_REGS[k as usize])),
                        CLoc::Float(k) => dynasm!(ops ; .arch x64 ; movsd QWORD [rsp + at], Rx(k)),
                        CLoc::Stack(off) => dynasm!(ops
                            ; .arch x64
                            ; mov rax, QWORD [rbp + 16 + off as i32]
                            ; mov QWORD [rsp + at], rax
                        ),
                        _ => return Err(EmitError::Unsupported(format!("callback argument {} piece {:?}", i + 1, p.loc))),
                    }
                }
                dynasm!(ops
                    ; .arch x64
                    ; lea rax, [rsp + buf]
                    ; mov QWORD [rsp + slot], rax
                );
            }
            // A MEMORY-class struct: the address of the caller's copy.
            CLoc::StackCopy { offset, .. } => dynasm!(ops
                ; .arch x64
                ; lea rax, [rbp + 16 + *offset as i32]
                ; mov QWORD [rsp + slot], rax
            ),
            CLoc::ByReference { .. } => unreachable!("rejected above"),
        }
    }
    let ret_slot = 8 * nargs;
    match plan.ret {
        RetLoc::Pieces(_) => dynasm!(ops
            ; .arch x64
            ; lea rax, [rsp + retbuf]
            ; mov QWORD [rsp + ret_slot], rax
        ),
        // The caller's result memory arrives in rdi; the entry writes there
        // and rax returns it.
        RetLoc::Indirect { .. } => dynasm!(ops ; .arch x64 ; mov QWORD [rsp + ret_slot], rdi),
        _ => {}
    }
    dynasm!(ops
        ; .arch x64
        ; mov rdi, r10
        ; mov rsi, rsp
        ; mov r11, QWORD req.entry as i64
        ; call r11
    );
    match &plan.ret {
        RetLoc::Pieces(pieces) => {
            for p in pieces {
                let at = retbuf + p.offset as i32;
                match p.loc {
                    CLoc::Int(0) => dynasm!(ops ; .arch x64 ; mov rax, QWORD [rsp + at]),
                    CLoc::Int(_) => dynasm!(ops ; .arch x64 ; mov rdx, QWORD [rsp + at]),
                    CLoc::Float(k) => dynasm!(ops ; .arch x64 ; movsd Rx(k), QWORD [rsp + at]),
                    _ => return Err(EmitError::Unsupported(format!("callback struct return piece {:?}", p.loc))),
                }
            }
        }
        RetLoc::Indirect { .. } => dynasm!(ops ; .arch x64 ; mov rax, QWORD [rsp + ret_slot]),
        _ => match plan.ret_ty {
            CType::F64 => dynasm!(ops ; .arch x64 ; movq xmm0, rax),
            CType::F32 => dynasm!(ops ; .arch x64 ; movd xmm0, eax),
            // The entry wrote the 80-bit result over the first two slots.
            CType::LongDouble => dynasm!(ops ; .arch x64 ; fld TWORD [rsp]),
            _ => {}
        },
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

/// `mov rcx, [data] ; jmp [target] ; data: .u64 ; target: .u64`: a Ruby
/// method entry (`VALUE f(int argc, VALUE *argv, VALUE self)`) that
/// reaches `target` with `data` as a fourth argument (rcx), the per-method
/// state a cfunc has no other way to get (what the ffi gem's MethodHandle
/// does with a libffi closure). Both in a literal pool, so every entry has
/// the same instructions: a freed entry's place is refilled by another
/// (one arena code class; valgrind's translations stay right).
pub fn emit_method_thunk(data: usize, target: usize) -> Result<Vec<u8>, EmitError> {
    let mut ops = Asm::new(0);
    dynasm!(ops
        ; .arch x64
        ; mov rcx, QWORD [->data]
        ; jmp QWORD [->target]
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

    extern "C" fn fake_method(argc: i32, argv: *const u64, recv: u64, data: usize) -> u64 {
        // SAFETY: the test passes `argc` readable values.
        let first = unsafe { *argv };
        argc as u64 + first + recv + data as u64
    }

    #[test]
    fn a_method_thunk_adds_its_data_as_the_fourth_argument() {
        let mut arena = CodeArena::new();
        let code = emit_method_thunk(0x4000, fake_method as *const () as usize).unwrap();
        let thunk = arena.install(&code).unwrap();
        // SAFETY: the thunk is a complete function of this signature.
        let f: extern "C" fn(i32, *const u64, u64) -> u64 = unsafe { std::mem::transmute(thunk) };
        assert_eq!(f(2, [30u64, 0].as_ptr(), 500), 2 + 30 + 500 + 0x4000);
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

    /// Copies struct argument bytes (slots 1 and 2 are their addresses)
    /// and writes a struct result to the destination in slot `NARGS`.
    extern "C" fn struct_entry(_slot: usize, raw: *const u64) -> u64 {
        let n = NARGS.with(|n| *n.borrow());
        // SAFETY: the trampoline passes n + 1 slots; 1 and 2 point at 16 and 32 bytes.
        unsafe {
            let a = std::slice::from_raw_parts(*raw.add(1) as *const u64, 2).to_vec();
            let b = std::slice::from_raw_parts(*raw.add(2) as *const u64, 4).to_vec();
            let (k, f) = (*raw as u32 as i32, f32::from_bits(*raw.add(3) as u32));
            let dest = *raw.add(n) as *mut u64;
            RESULT_BYTES.with(|r| std::ptr::copy_nonoverlapping(r.borrow().as_ptr(), dest, r.borrow().len()));
            SEEN.with(|s| *s.borrow_mut() = (k as usize, [a, b, vec![f.to_bits() as u64]].concat()));
        }
        0xbad
    }

    thread_local! {
        static RESULT_BYTES: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Mixed {
        i: i64,
        d: f64,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Big {
        a: [i64; 4],
    }

    fn struct_type(fields: Vec<CType>) -> CType {
        CType::Struct(std::sync::Arc::new(crate::types::StructType::natural(fields)))
    }

    fn build_structs(arena: &mut CodeArena, ret: CType) -> usize {
        let params = vec![CType::I32, struct_type(vec![CType::I64, CType::F64]), struct_type(vec![CType::I64; 4]), CType::F32];
        let plan = plan_callback(&Signature::new(params, ret)).unwrap();
        NARGS.with(|n| *n.borrow_mut() = 4);
        let code = emit_trampoline(&CallbackRequest { plan: &plan, entry: struct_entry as *const () as usize }).unwrap();
        let tramp = arena.install(&code).unwrap();
        let slot: &'static Slot = Box::leak(Box::new(Slot { target: tramp, data: 0 }));
        arena.install(&emit_thunk(slot as *const Slot as usize).unwrap()).unwrap()
    }

    #[test]
    fn struct_arguments_arrive_as_addresses_and_a_register_struct_returns_in_rax_and_xmm0() {
        let mut arena = CodeArena::new();
        let thunk = build_structs(&mut arena, struct_type(vec![CType::I64, CType::F64]));
        RESULT_BYTES.with(|r| *r.borrow_mut() = vec![(-9i64) as u64, 0.75f64.to_bits()]);
        // SAFETY: the thunk is a complete function of this signature.
        let f: extern "C" fn(i32, Mixed, Big, f32) -> Mixed = unsafe { std::mem::transmute(thunk) };
        let r = f(-3, Mixed { i: 11, d: 2.5 }, Big { a: [1, 2, 3, 4] }, 1.25);
        assert_eq!(r, Mixed { i: -9, d: 0.75 });
        let (k, seen) = seen();
        assert_eq!(k as i32, -3);
        assert_eq!(seen, vec![11, 2.5f64.to_bits(), 1, 2, 3, 4, 1.25f32.to_bits() as u64]);
    }

    #[test]
    fn a_memory_class_struct_returns_through_the_hidden_pointer() {
        let mut arena = CodeArena::new();
        let thunk = build_structs(&mut arena, struct_type(vec![CType::I64; 4]));
        RESULT_BYTES.with(|r| *r.borrow_mut() = vec![5, 6, 7, 8]);
        // SAFETY: as above.
        let f: extern "C" fn(i32, Mixed, Big, f32) -> Big = unsafe { std::mem::transmute(thunk) };
        assert_eq!(f(4, Mixed { i: 1, d: -1.0 }, Big { a: [9, 8, 7, 6] }, 0.5), Big { a: [5, 6, 7, 8] });
        let (k, seen) = seen();
        assert_eq!(k, 4);
        assert_eq!(seen, vec![1, (-1.0f64).to_bits(), 9, 8, 7, 6, 0.5f32.to_bits() as u64]);
    }
}
