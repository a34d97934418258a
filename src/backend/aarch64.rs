//! The AArch64 (AAPCS64) backend: instructions for the lowering's ops, the
//! stub's frame and literal pool, and the slow-path thunks.
//!
//! Pure code generation: compiled and unit-tested on every host, run
//! natively on aarch64 and under qemu-user elsewhere (`rake aarch64`).
//!
//! ```text
//!   stp x29, x30, [sp, #-16]! ; mov x29, sp ; [sub sp, sp, #LOCALS]
//!   [spill VALUE registers]  [argv form: check argc]
//!   each argument, left to right, converted straight into its C register
//!   [add x8, sp, #retbuf]  ldr x16, =fn ; blr x16   ; errno saved
//!   the result's conversion; [mov sp, x29]; ldp x29, x30, [sp], #16; ret  (or a tail call)
//!   slow paths, out of line
//!   [blocking: the inner function]
//!   literal pool: the C function, info, thunks, helpers, errno offsets
//! ```
//!
//! Registers of a conversion (see `lower::Reg`): `Value` is the incoming
//! register or x9 (loaded); `Arg` the destination register or x9; `T1`
//! x10, `T2` x11, `Ret` x0; `FReg::Arg` the destination v register or d16;
//! x12, x13, x16 and x17 are scratch. x18 (the platform register) is never
//! touched. Writing straight into the destination is safe because Ruby
//! passes argument i in x(i+1) (self is in x0) and C wants its k-th integer
//! argument in xk with k ≤ i (the plan spills the VALUEs first where a
//! struct would break that).
//!
//! Frame (offsets from sp after the prologue, `stub::Frame`): outgoing
//! stack arguments, argv (argv form), keep-alive slots, the blocking call's
//! block, the VALUE spill, the struct result buffer, then copies of structs
//! passed by reference and long doubles' q slots (last: a copy of any size
//! leaves the other slots within the scaled immediates); x29 points at the
//! saved x29/x30 just above, and the caller's stack arguments start at
//! x29 + 16.
//!
//! Thunk contract: x9 = the VALUE (or the address of a slot holding it),
//! x10 = the stub's info, w11 = the argument index; result in x9, or d16
//! for doubles. x0..x8 and the whole of q0..q7 (a long double argument is
//! all 128 bits) are preserved; x9..x17, v16..v31 and flags are not. The StringValueCStr thunk first
//! runs the lowering's fast path (`lower::cstr_fast_path`), which saves
//! nothing.

use super::stub::{round16, tail_pieces, Conv, Frame, FrameShape, Machine, MachineOp, Steps};
use super::{EmitError, StubRequest};
use crate::abi::{ArgSource, CLoc, ResultPointer, RetLoc};
use crate::lower::{Cond, Const, Helper, HelperInput, IntRange, Lowered, Op, Operand, TailTarget};
use crate::types::CType;
use dynasmrt::aarch64::{encode_logical_immediate_64bit, Aarch64Relocation};
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<Aarch64Relocation>;

const X9: u8 = 9;
const X10: u8 = 10;
const X11: u8 = 11;
const X12: u8 = 12;
const D16: u8 = 16;
/// `mrs` operand for TPIDR_EL0 (op0=3 op1=3 CRn=13 CRm=0 op2=2): the
/// thread pointer glibc's TLS (and so errno) is addressed from.
const TPIDR_EL0: u32 = 0b1_011_1101_0000_010;
/// Largest frame (two `sub sp` immediates: 24 bits). Everything but the
/// by-reference copies, which come last, stays within the loads' and
/// stores' scaled immediates; the copies are addressed with `add_sp`.
const MAX_LOCALS: i32 = (1 << 24) - 16;
/// Structs up to this size are copied by unrolled loads and stores;
/// larger ones by a loop (attach time and code size stay constant).
const UNROLLED_COPY: u32 = 64;
/// Strings up to this long are checked for NULs in the StringValueCStr
/// thunk's fast path, 8 bytes a step; longer ones go to the helper's
/// memchr.
const INLINE_SCAN_LIMIT: u32 = 256;

/// Layout of a blocking call's block: x0..x8, q0..q7 (16 bytes each: a
/// long double fills one), the stack arguments, then x0, x1, q0..q3 after
/// the call.
const BLOCK_Q: i32 = 10 * 8;
const BLOCK_STACK: i32 = BLOCK_Q + 8 * 16;
const BLOCK_RET: i32 = 2 * 8 + 4 * 16;

/// `X(reg) ← value` with movz/movn and movk, one instruction per 16-bit
/// half that differs from the background (all zeros or all ones).
pub(crate) fn mov_imm(ops: &mut Asm, reg: u8, value: u64) {
    let halves: Vec<u32> = (0..4).map(|i| ((value >> (16 * i)) & 0xffff) as u32).collect();
    let ones = halves.iter().filter(|&&h| h == 0xffff).count();
    let zeros = halves.iter().filter(|&&h| h == 0).count();
    let inverted = ones > zeros;
    let background = if inverted { 0xffff } else { 0 };
    let mut first = true;
    for (i, &h) in halves.iter().enumerate() {
        if h == background {
            continue;
        }
        let shift = 16 * i as u32;
        match (first, inverted) {
            (true, false) => dynasm!(ops ; .arch aarch64 ; movz X(reg), h, lsl shift),
            (true, true) => dynasm!(ops ; .arch aarch64 ; movn X(reg), !h & 0xffff, lsl shift),
            (false, _) => dynasm!(ops ; .arch aarch64 ; movk X(reg), h, lsl shift),
        }
        first = false;
    }
    if first {
        // Every half is the background: 0 or !0.
        if inverted {
            dynasm!(ops ; .arch aarch64 ; movn X(reg), 0)
        } else {
            dynasm!(ops ; .arch aarch64 ; movz X(reg), 0)
        }
    }
}

/// Instructions `mov_imm` needs for `value`.
fn mov_imm_len(value: u64) -> usize {
    let halves = (0..4).map(|i| (value >> (16 * i)) & 0xffff);
    halves.clone().filter(|&h| h != 0).count().min(halves.filter(|&h| h != 0xffff).count()).max(1)
}

/// The aarch64 (AAPCS64) machine.
pub(crate) struct A64;

type Stub<'a> = super::stub::Stub<'a, A64>;

impl Machine for A64 {
    type Relocation = Aarch64Relocation;
    const SHAPE: FrameShape = FrameShape {
        block_bytes: BLOCK_STACK + BLOCK_RET,
        int_arg_regs: 8,
        // + 16: register pieces are stored whole.
        retbuf_bytes: |ty| match ty {
            CType::Struct(s) => round16(s.size as i32) + 16,
            CType::LongDouble => 16,
            _ => 0,
        },
        size: round16,
    };
    const CODE_BYTES: (usize, usize) = (320, 80);
    const INT_ARG_REGS: &'static [u8] = &[0, 1, 2, 3, 4, 5, 6, 7];
    const SCRATCH: u8 = X9;
    const FSCRATCH: u8 = D16;
    const TEMPS: [u8; 3] = [X10, X11, 0];

    fn check(req: &StubRequest, frame: &Frame) -> Result<(), EmitError> {
        check_plan(req)?;
        if frame.size > MAX_LOCALS {
            return Err(EmitError::Unsupported(format!("a stub frame of {} bytes", frame.size)));
        }
        Ok(())
    }

    fn value_register(_: ArgSource, _: &Lowered) -> u8 {
        X9
    }

    /// A thunk's call: save every argument register (x0-x8, q0-q7), call
    /// `target(x9, x10, w11)`, restore; result in x9 and d16.
    fn call_saving_registers(code: &mut Code, target: usize) {
        let target = code.pool.label(&mut code.ops, target as u64);
        dynasm!(code.ops
            ; .arch aarch64
            ; stp x29, x30, [sp, #-224]!
            ; mov x29, sp
            ; stp x0, x1, [sp, #16] ; stp x2, x3, [sp, #32] ; stp x4, x5, [sp, #48] ; stp x6, x7, [sp, #64]
            ; str x8, [sp, #80]
            ; stp q0, q1, [sp, #96] ; stp q2, q3, [sp, #128] ; stp q4, q5, [sp, #160] ; stp q6, q7, [sp, #192]
            ; mov x0, x9
            ; mov x1, x10
            ; mov w2, w11
            ; ldr x16, =>target
            ; blr x16
            ; mov x9, x0
            ; fmov d16, d0
            ; ldp x0, x1, [sp, #16] ; ldp x2, x3, [sp, #32] ; ldp x4, x5, [sp, #48] ; ldp x6, x7, [sp, #64]
            ; ldr x8, [sp, #80]
            ; ldp q0, q1, [sp, #96] ; ldp q2, q3, [sp, #128] ; ldp q4, q5, [sp, #160] ; ldp q6, q7, [sp, #192]
            ; ldp x29, x30, [sp], #224
            ; ret
        );
    }

    /// x0, x1, x2: the cfunc's arguments; the result leaves in x0 too, so
    /// the lowering writes `Ret` only where nothing falls back any more.
    const ACCESSOR_REGS: ([u8; 7], [u8; 2]) = ([0, 1, 2, X9, X10, X11, 0], [D16, 0]);

    fn plain_op(code: &mut Code, op: MachineOp) -> bool {
        code.op(op)
    }

    fn leaf_return(code: &mut Code) {
        dynasm!(code.ops ; .arch aarch64 ; ret);
    }

    fn leaf_jump(code: &mut Code, target: usize) {
        let l = code.pool.label(&mut code.ops, target as u64);
        dynasm!(code.ops ; .arch aarch64 ; ldr x16, =>l ; br x16);
    }

    /// A helper's fast path in front of its thunk. x9 (the VALUE's slot),
    /// x10 and w11 must reach the helper intact if it falls back, so it
    /// works in x14, x15 and x17 (x12, x13 are the ops' own scratch); its
    /// result goes in x9.
    fn fast_path(code: &mut Code, l: &Lowered, helper: DynamicLabel) {
        let mut c = Conv::registers(14, 14, D16, 0, [15, 17, X9]);
        c.labels = (0..l.labels).map(|_| code.ops.new_dynamic_label()).collect();
        for op in l.hot.iter().chain(&l.cold) {
            match op {
                Op::LoadValue => dynasm!(code.ops ; .arch aarch64 ; ldr x14, [x9]),
                Op::Return => dynasm!(code.ops ; .arch aarch64 ; ret),
                Op::Fallback => dynasm!(code.ops ; .arch aarch64 ; b =>helper),
                op => assert!(code.op(c.resolve(*op)), "{op:?} in a helper's fast path"),
            }
        }
    }
}

/// Rejects plans this backend has no code for, before emitting anything.
fn check_plan(req: &StubRequest) -> Result<(), EmitError> {
    let plan = req.plan;
    // AAPCS64's long double is IEEE binary128 in a q register on Linux,
    // but a plain double on Apple, where CType::LongDouble (16 bytes) is
    // not the C type.
    let long_double = plan.ret_ty == CType::LongDouble || plan.args.iter().any(|e| e.ty == CType::LongDouble);
    if long_double && cfg!(target_vendor = "apple") {
        return Err(EmitError::Unsupported("long double on Apple arm64".into()));
    }
    for e in &plan.args {
        let ok = match (&e.ty, &e.dest) {
            (CType::Struct(_), CLoc::Pieces(p)) => p.iter().all(|p| match p.loc {
                CLoc::Int(0..=7) | CLoc::Stack(_) => (1..=8).contains(&p.size),
                // HFA members: float, double, long double.
                CLoc::Float(0..=7) => matches!(p.size, 4 | 8 | 16),
                _ => false,
            }),
            (CType::Struct(_), CLoc::StackCopy { .. }) => true,
            (CType::Struct(_), CLoc::ByReference { address, .. }) => matches!(**address, CLoc::Int(0..=7) | CLoc::Stack(_)),
            (CType::Struct(_), _) => false,
            (CType::F32 | CType::F64 | CType::LongDouble, CLoc::Float(k)) => *k < 8,
            (CType::LongDouble, CLoc::Stack(off)) => off % 16 == 0,
            (CType::LongDouble, _) => false,
            (_, CLoc::Int(k)) => *k < 8,
            (_, CLoc::Stack(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(EmitError::Unsupported(format!("argument {} of type {:?} in {:?}", e.index + 1, e.ty, e.dest)));
        }
    }
    Ok(())
}

impl Steps for Stub<'_> {
    fn enter(&mut self) {
        dynasm!(self.code.ops
            ; .arch aarch64
            ; stp x29, x30, [sp, #-16]!
            ; mov x29, sp
        );
        let size = self.frame.size as u32;
        if size >> 12 != 0 {
            dynasm!(self.code.ops ; .arch aarch64 ; sub sp, sp, size >> 12, lsl 12);
        }
        if size & 0xfff != 0 {
            dynasm!(self.code.ops ; .arch aarch64 ; sub sp, sp, size & 0xfff);
        }
    }

    fn spill(&mut self, r: u8, at: i32) {
        dynasm!(self.code.ops ; .arch aarch64 ; str X(r), [sp, at as u32]);
    }

    /// f(int argc, VALUE *argv, VALUE self).
    fn check_argc(&mut self, argv: i32, n: u32, arity: DynamicLabel) {
        dynasm!(self.code.ops ; .arch aarch64 ; str x1, [sp, argv as u32]);
        mov_imm(&mut self.code.ops, X9, n as u64);
        dynasm!(self.code.ops ; .arch aarch64 ; cmp w0, w9 ; b.ne =>arity);
    }

    fn code_op(&mut self, _: &Conv, op: MachineOp) -> bool {
        self.code.op(op)
    }

    fn load_value(&mut self, c: &Conv) {
        if !matches!(c.source, ArgSource::Int(_)) {
            self.load_source(c.source, c.value);
        }
    }

    /// x9 = the VALUE (or the address of the slot it is parked in), x10 =
    /// the info, w11 = the argument index.
    fn call_thunk(&mut self, c: &Conv, helper: Helper, input: HelperInput) {
        self.load_source(c.source, X9);
        match input {
            HelperInput::Value => {}
            HelperInput::KeptValue => {
                let keep = c.keep.expect("a keep-alive slot") as u32;
                dynasm!(self.code.ops ; .arch aarch64 ; str x9, [sp, keep] ; add x9, sp, keep);
            }
            // A long double: the VALUE goes to the 16 bytes the
            // helper overwrites with the binary128 value (its
            // stack slot, its q slot in the call block, or its
            // frame slot, loaded into its q register below).
            HelperInput::ParkedInDest => {
                let at = self.long_double_at(c) as u32;
                self.add_sp(X12, at);
                dynasm!(self.code.ops ; .arch aarch64 ; str x9, [x12] ; mov x9, x12);
            }
        }
        let thunk = self.code.pool.label(&mut self.code.ops, self.req.thunks.of(helper) as u64);
        let info = self.code.pool.info;
        dynasm!(self.code.ops ; .arch aarch64 ; ldr x10, =>info);
        mov_imm(&mut self.code.ops, X11, c.index as u64);
        dynasm!(self.code.ops ; .arch aarch64 ; ldr x16, =>thunk ; blr x16);
    }

    /// The thunks preserve q0..q7 whole: no later slow path clobbers the
    /// long double's upper half.
    fn thunk_returned(&mut self, c: &Conv, input: HelperInput) {
        if let (HelperInput::ParkedInDest, CLoc::Float(k), None) = (input, &c.dest, self.frame.block) {
            let at = self.long_double_at(c) as u32;
            self.add_sp(X12, at);
            dynasm!(self.code.ops ; .arch aarch64 ; ldr Q(*k), [x12]);
        }
    }

    fn mov_float(&mut self, dst: u8, src: u8) {
        if dst != src {
            dynasm!(self.code.ops ; .arch aarch64 ; fmov D(dst), D(src));
        }
    }

    fn ret(&mut self) {
        self.leave();
        dynasm!(self.code.ops ; .arch aarch64 ; ret);
    }

    /// x0 (or d0) is already the target's argument.
    fn tail_call(&mut self, target: TailTarget) {
        let l = self.code.pool.label(&mut self.code.ops, self.req.targets.tail_target(target) as u64);
        dynasm!(self.code.ops ; .arch aarch64 ; ldr x16, =>l);
        self.leave();
        dynasm!(self.code.ops ; .arch aarch64 ; br x16);
    }

    fn pass_result_buffer(&mut self, pointer: ResultPointer) {
        let (retbuf, reg) = (self.frame.retbuf as u32, result_pointer_register(pointer));
        match self.frame.block {
            None => dynasm!(self.code.ops ; .arch aarch64 ; add XSP(reg), sp, retbuf),
            Some(b) => dynasm!(self.code.ops ; .arch aarch64 ; add x9, sp, retbuf ; str x9, [sp, b as u32 + 8 * reg as u32]),
        }
    }

    fn call_function(&mut self) {
        let function = self.code.pool.function;
        dynasm!(self.code.ops ; .arch aarch64 ; ldr x16, =>function ; blr x16);
    }

    /// w0 still holds argc.
    fn arity_error(&mut self, arity: DynamicLabel) {
        dynasm!(self.code.ops ; .arch aarch64 ; =>arity);
        let info = self.code.pool.info;
        let helper = self.code.pool.label(&mut self.code.ops, self.req.targets.arity_error as u64);
        dynasm!(self.code.ops ; .arch aarch64 ; ldr x1, =>info ; ldr x16, =>helper ; blr x16 ; brk 0);
    }
    /// `Reg::Arg` → its destination (for a blocking call: its place in the
    /// call block). `bytes` is the C type's size: an 8-aligned stack slot
    /// gets the whole extended register (Linux: 8-byte slots), any other
    /// exactly the value's bytes (Apple packs stack arguments).
    fn place(&mut self, c: &Conv, bytes: u8) {
        let bytes = bytes as u32;
        let reg = c.arg;
        let stack_base = |block: Option<i32>| block.map_or(0, |b| b + BLOCK_STACK) as u32;
        match (&c.dest, self.frame.block) {
            (CLoc::Int(k), None) => self.code.mov(*k, reg),
            (CLoc::Int(k), Some(b)) => dynasm!(self.code.ops ; .arch aarch64 ; str X(reg), [sp, b as u32 + 8 * *k as u32]),
            (CLoc::Stack(off), block) => self.store_sized(reg, stack_base(block) + off, if off % 8 == 0 { 8 } else { bytes }),
            (dest, _) => unreachable!("integer destination {dest:?}"),
        }
    }
    /// `FReg::Arg` (a double, or a float in its s register when `single`)
    /// → its destination.
    fn place_float(&mut self, c: &Conv, single: bool) {
        let v = c.farg;
        match (&c.dest, self.frame.block) {
            (CLoc::Float(k), None) => {
                if *k != v {
                    dynasm!(self.code.ops ; .arch aarch64 ; fmov D(*k), D(v));
                }
            }
            (CLoc::Float(k), Some(b)) => dynasm!(self.code.ops ; .arch aarch64 ; str D(v), [sp, (b + BLOCK_Q) as u32 + 16 * *k as u32]),
            (CLoc::Stack(off), block) => {
                let at = block.map_or(0, |b| b + BLOCK_STACK) as u32 + off;
                if single {
                    dynasm!(self.code.ops ; .arch aarch64 ; str S(v), [sp, at]);
                } else {
                    dynasm!(self.code.ops ; .arch aarch64 ; str D(v), [sp, at]);
                }
            }
            (dest, _) => unreachable!("floating-point destination {dest:?}"),
        }
    }
    /// The struct at [x9] → its destination: each piece to its register,
    /// or the whole struct to its stack slots or to its frame copy (over 16
    /// bytes: the callee gets the copy's address), with loads and stores of
    /// exactly the struct's bytes.
    fn copy_struct(&mut self, c: &Conv, src: u8) {
        debug_assert_eq!(src, X9, "copy_struct reads from x9");
        let block = self.frame.block;
        let stack_base = block.map_or(0, |b| b + BLOCK_STACK) as u32;
        match &c.dest {
            CLoc::Pieces(pieces) => {
                for piece in pieces {
                    let (off, size) = (piece.offset, piece.size as u32);
                    match (&piece.loc, block) {
                        (CLoc::Int(k), None) => self.load_bytes(*k, off, size),
                        (CLoc::Int(k), Some(b)) => {
                            self.load_bytes(X11, off, size);
                            dynasm!(self.code.ops ; .arch aarch64 ; str x11, [sp, b as u32 + 8 * *k as u32]);
                        }
                        // HFA members: s, d or q registers, loaded exactly.
                        (CLoc::Float(k), None) if size == 4 => dynasm!(self.code.ops ; .arch aarch64 ; ldr S(*k), [x9, off]),
                        (CLoc::Float(k), None) if size == 8 => dynasm!(self.code.ops ; .arch aarch64 ; ldr D(*k), [x9, off]),
                        (CLoc::Float(k), None) => dynasm!(self.code.ops ; .arch aarch64 ; ldr Q(*k), [x9, off]),
                        (CLoc::Float(k), Some(b)) if size == 16 => {
                            let at = (b + BLOCK_Q) as u32 + 16 * *k as u32;
                            dynasm!(self.code.ops ; .arch aarch64 ; ldr q16, [x9, off] ; add x12, sp, at ; str q16, [x12]);
                        }
                        (CLoc::Float(k), Some(b)) => {
                            self.load_bytes(X11, off, size);
                            dynasm!(self.code.ops ; .arch aarch64 ; str x11, [sp, (b + BLOCK_Q) as u32 + 16 * *k as u32]);
                        }
                        // Apple variadic HFAs: one 8-byte slot per member.
                        (CLoc::Stack(slot), _) => {
                            self.load_bytes(X11, off, size);
                            dynasm!(self.code.ops ; .arch aarch64 ; str x11, [sp, stack_base + slot]);
                        }
                        _ => unreachable!("rejected in check_plan"),
                    }
                }
            }
            CLoc::StackCopy { offset, size } => {
                dynasm!(self.code.ops ; .arch aarch64 ; add x13, sp, stack_base + offset);
                self.copy_bytes(*size);
            }
            CLoc::ByReference { address, size } => {
                // AAPCS64 B.4: the callee may write to the copy, never to
                // the Struct's own memory.
                let at = c.copy.expect("a frame copy") as u32;
                self.add_sp(13, at);
                self.copy_bytes(*size);
                self.place(&Conv { arg: 13, dest: (**address).clone(), ..c.clone() }, 8);
            }
            _ => unreachable!("rejected in check_plan"),
        }
    }
    /// A struct return: its pieces (or the bytes the callee wrote through
    /// x8) are in the frame's return buffer; the helper makes a new Struct
    /// instance holding a copy.
    fn box_struct_result(&mut self) {
        let retbuf = self.frame.retbuf as u32;
        if let RetLoc::Pieces(pieces) = &self.req.plan.ret {
            for piece in pieces {
                let at = retbuf + piece.offset;
                match (&piece.loc, piece.size) {
                    (CLoc::Int(k), _) => dynasm!(self.code.ops ; .arch aarch64 ; str X(*k), [sp, at]),
                    (CLoc::Float(k), 4) => dynasm!(self.code.ops ; .arch aarch64 ; str S(*k), [sp, at]),
                    (CLoc::Float(k), 8) => dynasm!(self.code.ops ; .arch aarch64 ; str D(*k), [sp, at]),
                    (CLoc::Float(k), _) => dynasm!(self.code.ops ; .arch aarch64 ; str Q(*k), [sp, at]),
                    _ => unreachable!("struct results come back in registers"),
                }
            }
        }
        let (info, helper) = (self.code.pool.info, self.code.pool.label(&mut self.code.ops, self.req.targets.ret_struct as u64));
        dynasm!(self.code.ops
            ; .arch aarch64
            ; ldr x0, =>info
            ; ldr x16, =>helper
            ; add x1, sp, retbuf
            ; blr x16
        );
    }
    /// q0 → the frame's 16-byte return buffer → the helper, which builds a
    /// BigDecimal like the ffi gem (after a blocking call q0 was reloaded
    /// from the call block).
    fn box_long_double_result(&mut self) {
        let retbuf = self.frame.retbuf as u32;
        let helper = self.code.pool.label(&mut self.code.ops, self.req.targets.ret_long_double as u64);
        dynasm!(self.code.ops
            ; .arch aarch64
            ; str q0, [sp, retbuf]
            ; add x0, sp, retbuf
            ; ldr x16, =>helper
            ; blr x16
        );
    }
    /// `blocking: true`: the arguments are in the call block; run the inner
    /// function through rb_thread_call_without_gvl (other Ruby threads run
    /// meanwhile; Thread#raise/kill interrupt it like blocking IO), then
    /// pick up its result.
    fn call_without_gvl(&mut self) {
        let b = self.frame.block.expect("blocking frame") as u32;
        let ret = b + (BLOCK_STACK as u32) + self.req.plan.stack_bytes;
        let inner = self.inner;
        dynasm!(self.code.ops
            ; .arch aarch64
            ; adr x0, =>inner
            ; add x1, sp, b
            ; movn x2, 0                         // RUBY_UBF_IO (-1)
            ; mov x3, 0
        );
        let without_gvl = self.code.pool.label(&mut self.code.ops, self.req.targets.call_without_gvl as u64);
        dynasm!(self.code.ops
            ; .arch aarch64
            ; ldr x16, =>without_gvl
            ; blr x16
            ; add x9, sp, ret
            ; ldp x0, x1, [x9]
            ; ldp q0, q1, [x9, 16]
            ; ldp q2, q3, [x9, 48]
        );
    }
    /// errno → the calling thread's saved copy (see runtime::errno): both
    /// are static TLS at fixed offsets from tpidr_el0. The offsets come from
    /// the pool (any i32, the same code for every process, and a harness can
    /// patch them). Ruby restores errno after re-taking the GVL, so a
    /// blocking call saves it here too. Uses x9..x12: the return registers
    /// (x0, x1, d0..d3) are live after the call.
    fn save_errno(&mut self) {
        let Some((errno, saved)) = self.req.targets.errno_tp_offsets else { return };
        let errno = self.code.pool.label(&mut self.code.ops, errno as i64 as u64);
        let saved = self.code.pool.label(&mut self.code.ops, saved as i64 as u64);
        dynasm!(self.code.ops
            ; .arch aarch64
            ; ldr x10, =>errno
            ; ldr x11, =>saved
            ; mrs x9, TPIDR_EL0
            ; ldr w12, [x9, x10]
            ; str w12, [x9, x11]
        );
    }
    /// `void *inner(void *block)`: loads the argument registers and stack
    /// arguments from the block, calls the C function, stores x0, x1 and
    /// q0..q3 back into it.
    fn emit_inner(&mut self) {
        let stack = self.req.plan.stack_bytes;
        let (function, inner) = (self.code.pool.function, self.inner);
        dynasm!(self.code.ops
            ; .arch aarch64
            ; =>inner
            ; stp x29, x30, [sp, #-32]!
            ; mov x29, sp
            ; str x19, [sp, 16]
            ; mov x19, x0
            ; sub sp, sp, stack
        );
        for q in 0..stack / 8 {
            dynasm!(self.code.ops ; .arch aarch64 ; ldr x9, [x19, BLOCK_STACK as u32 + 8 * q] ; str x9, [sp, 8 * q]);
        }
        // Every argument register, used or not: simpler than tracking which
        // ones struct pieces and the result pointer filled.
        dynasm!(self.code.ops
            ; .arch aarch64
            ; ldp x0, x1, [x19] ; ldp x2, x3, [x19, 16] ; ldp x4, x5, [x19, 32] ; ldp x6, x7, [x19, 48]
            ; ldr x8, [x19, 64]
            ; ldp q0, q1, [x19, 80] ; ldp q2, q3, [x19, 112] ; ldp q4, q5, [x19, 144] ; ldp q6, q7, [x19, 176]
            ; ldr x16, =>function
            ; blr x16
            ; add x9, x19, BLOCK_STACK as u32 + stack
            ; stp x0, x1, [x9]
            ; stp q0, q1, [x9, 16]
            ; stp q2, q3, [x9, 48]
            ; mov sp, x29
            ; ldr x19, [sp, 16]
            ; ldp x29, x30, [sp], #32
            ; ret
        );
    }

}

/// The register a hidden result pointer goes in.
fn result_pointer_register(pointer: ResultPointer) -> u8 {
    match pointer {
        ResultPointer::X8 => 8,
        ResultPointer::FirstIntArg => unreachable!("a SysV plan"),
    }
}

type Code = super::stub::Code<Aarch64Relocation>;

impl Code {
    fn bcond(&mut self, cond: Cond, target: DynamicLabel) {
        match cond {
            Cond::Eq => dynasm!(self.ops ; .arch aarch64 ; b.eq =>target),
            Cond::Ne => dynasm!(self.ops ; .arch aarch64 ; b.ne =>target),
            Cond::BelowOrEqual => dynasm!(self.ops ; .arch aarch64 ; b.ls =>target),
            Cond::Above => dynasm!(self.ops ; .arch aarch64 ; b.hi =>target),
        }
    }

    /// `X(reg)` ← a constant: from the pool when `mov_imm` would take more
    /// than two instructions.
    fn load_imm(&mut self, reg: u8, value: u64) {
        if mov_imm_len(value) <= 2 {
            mov_imm(&mut self.ops, reg, value);
        } else {
            let l = self.pool.label(&mut self.ops, value);
            dynasm!(self.ops ; .arch aarch64 ; ldr X(reg), =>l);
        }
    }

    fn load_const(&mut self, reg: u8, k: Const) {
        let l = match k {
            Const::Info => self.pool.info,
            Const::PointerDataType => self.pool.label(&mut self.ops, self.data_types[0]),
            Const::StructDataType => self.pool.label(&mut self.ops, self.data_types[1]),
        };
        dynasm!(self.ops ; .arch aarch64 ; ldr X(reg), =>l);
    }

    fn mov(&mut self, dst: u8, src: u8) {
        if dst != src {
            dynasm!(self.ops ; .arch aarch64 ; mov X(dst), X(src));
        }
    }

    /// The register and scaled offset addressing `bytes` at `base +
    /// offset`: as given when the scaled immediate encodes it, else x16 ←
    /// the address (normal memory takes any alignment).
    fn address(&mut self, base: u8, offset: i32, bytes: u8) -> (u8, u32) {
        let size = bytes as i32;
        if offset >= 0 && offset % size == 0 && offset / size < 4096 {
            return (base, offset as u32);
        }
        self.load_imm(16, offset as i64 as u64);
        dynasm!(self.ops ; .arch aarch64 ; add x16, X(base), x16);
        (16, 0)
    }

    /// `Op::LoadSized`.
    fn load_sized(&mut self, dst: u8, base: u8, offset: i32, bytes: u8, signed: bool) {
        let (b, at) = self.address(base, offset, bytes);
        match (bytes, signed) {
            (1, true) => dynasm!(self.ops ; .arch aarch64 ; ldrsb X(dst), [X(b), at]),
            (1, false) => dynasm!(self.ops ; .arch aarch64 ; ldrb W(dst), [X(b), at]),
            (2, true) => dynasm!(self.ops ; .arch aarch64 ; ldrsh X(dst), [X(b), at]),
            (2, false) => dynasm!(self.ops ; .arch aarch64 ; ldrh W(dst), [X(b), at]),
            (4, true) => dynasm!(self.ops ; .arch aarch64 ; ldrsw X(dst), [X(b), at]),
            (4, false) => dynasm!(self.ops ; .arch aarch64 ; ldr W(dst), [X(b), at]),
            _ => dynasm!(self.ops ; .arch aarch64 ; ldr X(dst), [X(b), at]),
        }
    }

    /// `Op::Store`.
    fn store(&mut self, src: u8, base: u8, offset: i32, bytes: u8) {
        let (b, at) = self.address(base, offset, bytes);
        match bytes {
            1 => dynasm!(self.ops ; .arch aarch64 ; strb W(src), [X(b), at]),
            2 => dynasm!(self.ops ; .arch aarch64 ; strh W(src), [X(b), at]),
            4 => dynasm!(self.ops ; .arch aarch64 ; str W(src), [X(b), at]),
            _ => dynasm!(self.ops ; .arch aarch64 ; str X(src), [X(b), at]),
        }
    }

    /// Sets flags from `X(r) & mask`.
    fn logical_imm_test(&mut self, r: u8, mask: u64) {
        if encode_logical_immediate_64bit(mask).is_some() {
            dynasm!(self.ops ; .arch aarch64 ; tst X(r), mask);
        } else {
            self.load_imm(X12, mask);
            dynasm!(self.ops ; .arch aarch64 ; tst X(r), x12);
        }
    }

    /// Instructions for `op`, if it is one that needs only registers,
    /// labels and the pool; `false` for the others.
    fn op(&mut self, op: MachineOp) -> bool {
        match op {
            Op::Label(l) => dynasm!(self.ops ; .arch aarch64 ; =>l),
            Op::Jump(l) => dynasm!(self.ops ; .arch aarch64 ; b =>l),
            Op::BranchIfBits { reg, mask, set: true, target } if mask.count_ones() == 1 => {
                dynasm!(self.ops ; .arch aarch64 ; tbnz X(reg), mask.trailing_zeros(), =>target)
            }
            Op::BranchIfBits { reg, mask, set: false, target } if mask.count_ones() == 1 => {
                dynasm!(self.ops ; .arch aarch64 ; tbz X(reg), mask.trailing_zeros(), =>target)
            }
            Op::BranchIfBits { reg, mask, set, target } => {
                self.logical_imm_test(reg, mask as u64);
                self.bcond(if set { Cond::Ne } else { Cond::Eq }, target);
            }
            Op::BranchUnlessTag { reg, mask, tag, target, .. } if mask == tag && mask.count_ones() == 1 => {
                dynasm!(self.ops ; .arch aarch64 ; tbz X(reg), mask.trailing_zeros(), =>target)
            }
            Op::BranchUnlessTag { reg, mask, tag, tmp, target } => dynasm!(self.ops
                ; .arch aarch64
                ; and XSP(tmp), X(reg), mask as u64
                ; cmp XSP(tmp), tag as u32
                ; b.ne =>target
            ),
            Op::BranchIfCmp { a, cond: Cond::Eq, b: Operand::Imm(0), target } => dynasm!(self.ops ; .arch aarch64 ; cbz X(a), =>target),
            Op::BranchIfCmp { a, cond: Cond::Ne, b: Operand::Imm(0), target } => dynasm!(self.ops ; .arch aarch64 ; cbnz X(a), =>target),
            Op::BranchIfCmp { a, cond, b, target } => {
                match b {
                    Operand::Imm(v) if (0..4096).contains(&v) => dynasm!(self.ops ; .arch aarch64 ; cmp XSP(a), v as u32),
                    Operand::Imm(v) => {
                        self.load_imm(X12, v as u64);
                        dynasm!(self.ops ; .arch aarch64 ; cmp X(a), x12);
                    }
                    Operand::Reg(b) => dynasm!(self.ops ; .arch aarch64 ; cmp X(a), X(b)),
                    Operand::Const(k) => {
                        self.load_const(X12, k);
                        dynasm!(self.ops ; .arch aarch64 ; cmp X(a), x12);
                    }
                }
                self.bcond(cond, target);
            }
            Op::BranchIfInRange { reg, range, fits, target, .. } => {
                match range {
                    IntRange::I32 => dynasm!(self.ops ; .arch aarch64 ; cmp XSP(reg), W(reg), sxtw),
                    IntRange::U32 => dynasm!(self.ops ; .arch aarch64 ; cmp XSP(reg), W(reg), uxtw),
                }
                self.bcond(if fits { Cond::Eq } else { Cond::Ne }, target);
            }
            Op::BranchUnlessFieldIn { src, shift, width, lo, hi, tmp, target } => {
                dynasm!(self.ops ; .arch aarch64 ; ubfx X(tmp), X(src), shift as u32, width as u32);
                if lo != 0 {
                    dynasm!(self.ops ; .arch aarch64 ; sub XSP(tmp), XSP(tmp), lo as u32);
                }
                dynasm!(self.ops ; .arch aarch64 ; cmp XSP(tmp), (hi - lo) as u32 ; b.hi =>target);
            }
            Op::BranchIfHighBits { src, shift, tmp, target } => {
                dynasm!(self.ops ; .arch aarch64 ; lsr X(tmp), X(src), shift as u32 ; cbnz X(tmp), =>target)
            }
            Op::Mov { dst, src: Operand::Imm(v) } => self.load_imm(dst, v as u64),
            Op::Mov { dst, src: Operand::Reg(src) } => self.mov(dst, src),
            Op::Mov { dst, src: Operand::Const(k) } => self.load_const(dst, k),
            Op::Load { dst, base, offset } => dynasm!(self.ops ; .arch aarch64 ; ldr X(dst), [X(base), offset as u32]),
            Op::LoadSized { dst, base, offset, bytes, signed } => self.load_sized(dst, base, offset, bytes, signed),
            Op::Store { src, base, offset, bytes } => self.store(src, base, offset, bytes),
            Op::AddImm { dst, src, imm } => dynasm!(self.ops ; .arch aarch64 ; add XSP(dst), XSP(src), imm as u32),
            Op::AndImm { dst, src, imm } if encode_logical_immediate_64bit(imm as u64).is_some() => {
                dynasm!(self.ops ; .arch aarch64 ; and XSP(dst), X(src), imm as u64)
            }
            Op::AndImm { dst, src, imm } => {
                self.load_imm(X12, imm as u64);
                dynasm!(self.ops ; .arch aarch64 ; and X(dst), X(src), x12);
            }
            Op::OrImm { dst, src, imm } => dynasm!(self.ops ; .arch aarch64 ; orr XSP(dst), X(src), imm as u64),
            Op::BitField { dst, src, shift, width } => {
                dynasm!(self.ops ; .arch aarch64 ; ubfx X(dst), X(src), shift as u32, width as u32)
            }
            Op::ShiftOutTagBit { dst, src, unless } => {
                dynasm!(self.ops ; .arch aarch64 ; tbz X(src), 0, =>unless ; asr X(dst), X(src), 1)
            }
            Op::DoubleOrBranch { dst, src, overflow } => {
                dynasm!(self.ops ; .arch aarch64 ; adds X(dst), X(src), X(src) ; b.vs =>overflow)
            }
            Op::SubTopBit { dst, src } => dynasm!(self.ops ; .arch aarch64 ; sub X(dst), X(src), X(src), lsr 63),
            Op::RotateLeft { reg, n } => dynasm!(self.ops ; .arch aarch64 ; ror X(reg), X(reg), 64 - n as u32),
            Op::RotateRight { reg, n } => dynasm!(self.ops ; .arch aarch64 ; ror X(reg), X(reg), n as u32),
            // Writing a w register zeroes bits 32..63.
            Op::Extend32 { reg, from_bits: 8, signed: true } => dynasm!(self.ops ; .arch aarch64 ; sxtb W(reg), W(reg)),
            Op::Extend32 { reg, from_bits: 16, signed: true } => dynasm!(self.ops ; .arch aarch64 ; sxth W(reg), W(reg)),
            Op::Extend64 { reg, from_bits: 8, signed: true } => dynasm!(self.ops ; .arch aarch64 ; sxtb X(reg), W(reg)),
            Op::Extend64 { reg, from_bits: 16, signed: true } => dynasm!(self.ops ; .arch aarch64 ; sxth X(reg), W(reg)),
            Op::Extend64 { reg, from_bits: 32, signed: true } => dynasm!(self.ops ; .arch aarch64 ; sxtw X(reg), W(reg)),
            Op::Extend32 { reg, from_bits: 8, .. } | Op::Extend64 { reg, from_bits: 8, .. } => {
                dynasm!(self.ops ; .arch aarch64 ; uxtb W(reg), W(reg))
            }
            Op::Extend32 { reg, from_bits: 16, .. } | Op::Extend64 { reg, from_bits: 16, .. } => {
                dynasm!(self.ops ; .arch aarch64 ; uxth W(reg), W(reg))
            }
            Op::Extend32 { reg, .. } | Op::Extend64 { reg, .. } => dynasm!(self.ops ; .arch aarch64 ; mov W(reg), W(reg)),
            Op::ShiftInTagBit { reg } => dynasm!(self.ops ; .arch aarch64 ; lsl X(reg), X(reg), 1 ; orr XSP(reg), X(reg), 1),
            Op::SelectOnLowByte { dst, src, nonzero, zero, tmp } => {
                dynasm!(self.ops ; .arch aarch64 ; tst W(src), 0xff);
                mov_imm(&mut self.ops, tmp, nonzero as u64);
                if zero == 0 {
                    dynasm!(self.ops ; .arch aarch64 ; csel X(dst), X(tmp), xzr, ne);
                } else {
                    mov_imm(&mut self.ops, X12, zero as u64);
                    dynasm!(self.ops ; .arch aarch64 ; csel X(dst), X(tmp), x12, ne);
                }
            }
            Op::BitsToDouble { dst, src } => dynasm!(self.ops ; .arch aarch64 ; fmov D(dst), X(src)),
            Op::DoubleToBits { dst, src } => dynasm!(self.ops ; .arch aarch64 ; fmov X(dst), D(src)),
            Op::ZeroDouble { dst } => dynasm!(self.ops ; .arch aarch64 ; fmov D(dst), xzr),
            Op::IntToDouble { dst, src } => dynasm!(self.ops ; .arch aarch64 ; scvtf D(dst), X(src)),
            Op::DoubleToFloat { reg } => dynasm!(self.ops ; .arch aarch64 ; fcvt S(reg), D(reg)),
            Op::FloatToDouble { reg } => dynasm!(self.ops ; .arch aarch64 ; fcvt D(reg), S(reg)),
            Op::BranchUnlessNulAt16 { ptr, len, tmp, target } => self.nul_at_16(ptr, len, tmp, target),
            Op::BranchUnlessNulAtLong { ptr, len, tmp, target } => self.nul_at_long(ptr, len, tmp, target),
            Op::Trap => dynasm!(self.ops ; .arch aarch64 ; brk 0),
            _ => return false,
        }
        true
    }

    /// `BranchUnlessNulAt16`, a word at a time. The zero bytes of a word w:
    /// the lowest set bit of (w - 0x01..01) & !w & 0x80..80 marks the first
    /// one exactly (higher ones may be false). Uses x12, x13.
    fn nul_at_16(&mut self, p: u8, n: u8, t: u8, target: DynamicLabel) {
        let (second, found) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch aarch64
            ; mov x13, 0
            ; ldr X(t), [X(p)]
            ; =>second
            ; orr x12, xzr, 0x0101_0101_0101_0101
            ; sub x12, X(t), x12
            ; bic x12, x12, X(t)
            ; and x12, x12, 0x8080_8080_8080_8080
            ; cbnz x12, =>found
            ; cbnz x13, =>target                 // no NUL in 16 bytes
            ; mov x13, 8
            ; ldr X(t), [X(p), 8]
            ; b =>second
            ; =>found
            ; rbit x12, x12
            ; clz x12, x12
            ; add x12, x13, x12, lsr 3           // index of the first NUL
            ; cmp x12, X(n)
            ; b.ne =>target
        );
    }

    /// `BranchUnlessNulAtLong`, a word at a time (as `nul_at_16`). Uses
    /// x12, x13.
    fn nul_at_long(&mut self, p: u8, n: u8, t: u8, target: DynamicLabel) {
        let words = self.ops.new_dynamic_label();
        dynasm!(self.ops
            ; .arch aarch64
            ; cmp XSP(n), 16
            ; b.lo =>target
            ; cmp XSP(n), INLINE_SCAN_LIMIT
            ; b.hi =>target
            ; orr x13, xzr, 0x0101_0101_0101_0101
            // The 8 bytes ending with ptr[len]: only their last may be NUL,
            // so the zero-byte mask is exactly its top bit.
            ; add x12, X(p), X(n)
            ; ldur X(t), [x12, -7]
            ; sub x12, X(t), x13
            ; bic x12, x12, X(t)
            ; and x12, x12, 0x8080_8080_8080_8080
            ; eor x12, x12, 0x8000_0000_0000_0000
            ; cbnz x12, =>target
            // Then words down from len - 8, and the one at 0.
            ; sub XSP(n), XSP(n), 8
            ; =>words
            ; ldr X(t), [X(p), X(n)]
            ; sub x12, X(t), x13
            ; bic x12, x12, X(t)
            ; tst x12, 0x8080_8080_8080_8080
            ; b.ne =>target
            ; subs X(n), XSP(n), 8
            ; b.hi =>words
            ; ldr X(t), [X(p)]
            ; sub x12, X(t), x13
            ; bic x12, x12, X(t)
            ; tst x12, 0x8080_8080_8080_8080
            ; b.ne =>target
        );
    }
}

impl Stub<'_> {
    /// `X(reg)` ← the VALUE, from where it arrived.
    fn load_source(&mut self, source: ArgSource, reg: u8) {
        match source {
            ArgSource::Int(r) => {
                if r != reg {
                    dynasm!(self.code.ops ; .arch aarch64 ; mov X(reg), X(r));
                }
            }
            ArgSource::Spilled(r) => {
                let at = self.frame.spill.expect("a spill area") as u32 + 8 * r as u32;
                dynasm!(self.code.ops ; .arch aarch64 ; ldr X(reg), [sp, at]);
            }
            // Above the saved x29/x30 pair.
            ArgSource::Stack(off) => dynasm!(self.code.ops ; .arch aarch64 ; ldr X(reg), [x29, 16 + off]),
            ArgSource::Argv(i) => {
                let argv = self.frame.argv.expect("an argv slot") as u32;
                dynasm!(self.code.ops ; .arch aarch64 ; ldr X(reg), [sp, argv] ; ldr X(reg), [X(reg), 8 * i]);
            }
        }
    }

    /// Removes the frame and restores x29, x30.
    fn leave(&mut self) {
        if self.frame.size > 0 {
            dynasm!(self.code.ops ; .arch aarch64 ; mov sp, x29);
        }
        dynasm!(self.code.ops ; .arch aarch64 ; ldp x29, x30, [sp], #16);
    }

    fn store_sized(&mut self, reg: u8, at: u32, bytes: u32) {
        match bytes {
            8 => dynasm!(self.code.ops ; .arch aarch64 ; str X(reg), [sp, at]),
            4 => dynasm!(self.code.ops ; .arch aarch64 ; str W(reg), [sp, at]),
            2 => dynasm!(self.code.ops ; .arch aarch64 ; strh W(reg), [sp, at]),
            _ => dynasm!(self.code.ops ; .arch aarch64 ; strb W(reg), [sp, at]),
        }
    }

    /// X(dst) ← the `n` (1..=8) bytes at [x9 + off], zero-extended, reading
    /// no byte past them (the struct may end at a page boundary). Uses x12.
    fn load_bytes(&mut self, dst: u8, off: u32, n: u32) {
        if n == 8 {
            dynasm!(self.code.ops ; .arch aarch64 ; ldr X(dst), [x9, off]);
            return;
        }
        for (done, size) in tail_pieces(n) {
            let reg = if done == 0 { dst } else { X12 };
            let at = off + done;
            match size {
                4 => dynasm!(self.code.ops ; .arch aarch64 ; ldr W(reg), [x9, at]),
                2 => dynasm!(self.code.ops ; .arch aarch64 ; ldrh W(reg), [x9, at]),
                _ => dynasm!(self.code.ops ; .arch aarch64 ; ldrb W(reg), [x9, at]),
            }
            if done > 0 {
                dynasm!(self.code.ops ; .arch aarch64 ; orr X(dst), X(dst), x12, lsl 8 * done);
            }
        }
    }

    /// `X(reg)` ← sp + `off` (any offset below 2**24).
    fn add_sp(&mut self, reg: u8, off: u32) {
        if off < 4096 {
            dynasm!(self.code.ops ; .arch aarch64 ; add XSP(reg), sp, off);
        } else {
            dynasm!(self.code.ops ; .arch aarch64 ; add XSP(reg), sp, off >> 12, lsl 12);
            if off & 0xfff != 0 {
                dynasm!(self.code.ops ; .arch aarch64 ; add XSP(reg), XSP(reg), off & 0xfff);
            }
        }
    }

    /// Copies `size` bytes from [x9] to [x13] (any alignment), touching no
    /// byte outside either range; x13 is kept. Up to `UNROLLED_COPY` bytes
    /// unrolled; above, a loop over the whole words, then the tail through
    /// x9 and x13 advanced past them (restored). Uses x10, x11, x12.
    fn copy_bytes(&mut self, size: u32) {
        if size > UNROLLED_COPY {
            let looped = size & !7;
            mov_imm(&mut self.code.ops, X10, looped as u64);
            dynasm!(self.code.ops
                ; .arch aarch64
                ; mov x12, 0
                ; copy:
                ; ldr x11, [x9, x12]
                ; str x11, [x13, x12]
                ; add x12, x12, 8
                ; cmp x12, x10
                ; b.lo <copy
            );
            if size > looped {
                dynasm!(self.code.ops ; .arch aarch64 ; add x9, x9, x10 ; add x13, x13, x10);
                self.copy_bytes(size - looped);
                dynasm!(self.code.ops ; .arch aarch64 ; sub x13, x13, x10);
            }
            return;
        }
        let mut at = 0;
        while size - at >= 8 {
            dynasm!(self.code.ops ; .arch aarch64 ; ldr x11, [x9, at] ; str x11, [x13, at]);
            at += 8;
        }
        for chunk in [4, 2, 1] {
            if (size - at) & chunk == 0 {
                continue;
            }
            match chunk {
                4 => dynasm!(self.code.ops ; .arch aarch64 ; ldr w11, [x9, at] ; str w11, [x13, at]),
                2 => dynasm!(self.code.ops ; .arch aarch64 ; ldrh w11, [x9, at] ; strh w11, [x13, at]),
                _ => dynasm!(self.code.ops ; .arch aarch64 ; ldrb w11, [x9, at] ; strb w11, [x13, at]),
            }
            at += chunk;
        }
    }

    /// Where a long double argument's 16 bytes are (offset from sp): its
    /// stack slot, its q slot in the call block, or its frame slot.
    fn long_double_at(&self, c: &Conv) -> i32 {
        match (&c.dest, self.frame.block) {
            (CLoc::Stack(off), block) => block.map_or(0, |b| b + BLOCK_STACK) + *off as i32,
            (CLoc::Float(k), Some(b)) => b + BLOCK_Q + 16 * *k as i32,
            (CLoc::Float(_), None) => c.copy.expect("a frame slot for the long double"),
            (dest, _) => unreachable!("long double in {dest:?}"),
        }
    }

}
