//! The x86-64 (SysV) backend: instructions for the lowering's ops, the
//! stub's frame and literal pool, and the slow-path thunks.
//!
//! ```text
//!   sub rsp, FRAME (push rax for 8)  ; FRAME ≡ 8 (mod 16): calls are 16-aligned
//!   [spill VALUE registers]  [argv form: check argc]
//!   each argument, left to right, converted straight into its C register
//!   [mov eax, #vector registers]  call [fn]  ; errno saved
//!   the result's conversion; add rsp, FRAME; ret   (or a tail call)
//!   slow paths, out of line
//!   [blocking: the inner function]
//!   literal pool: the C function, info, thunks, helpers, wide constants
//! ```
//!
//! Registers of a conversion (see `lower::Reg`): `Value` is the incoming
//! register, or the VALUE left in memory for ops that take a memory
//! operand, or rax; `Arg` is the destination register or rax; `T1` r10,
//! `T2` r11, `Ret` rax; `FReg::Arg` the destination xmm register or xmm15;
//! xmm14 is scratch. Writing straight into the destination is safe because
//! Ruby passes argument i in register i+1 (self is in rdi) and C wants its
//! k-th integer argument in register k ≤ i (the plan spills the VALUEs
//! first where a struct would break that).
//!
//! Thunk contract: r10 = the VALUE (or the address of a slot holding it),
//! r11 = the stub's info, eax = the argument index; result in rax, or
//! xmm15 for doubles; only rax, r10, r11, xmm8..xmm15 and flags change
//! (the argument registers survive). The StringValueCStr thunk first runs
//! the lowering's fast path (`lower::cstr_fast_path`) without saving
//! anything.

use super::stub::{round16, tail_pieces, Conv, FrameShape, Machine, MachineOp, Steps};
use crate::abi::{ArgSource, CLoc, ResultPointer, RetLoc};
use crate::lower::{Cond, Const, Helper, HelperInput, IntRange, Lowered, Op, Operand, Reg, TailTarget};
use crate::types::CType;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi};

/// SysV integer argument registers in order: rdi, rsi, rdx, rcx, r8, r9.
const INT_ARG_REGS: [u8; 6] = [7, 6, 2, 1, 8, 9];
const RAX: u8 = 0;
const RSP: u8 = 4;
const R10: u8 = 10;
const R11: u8 = 11;
const XMM15: u8 = 15;
/// `Reg::Value`'s register when the VALUE is read in place from its stack
/// slot (`reads_value_in_memory`).
const VALUE_IN_MEMORY: u8 = 0xff;
/// Strings up to this long are checked for NULs in the StringValueCStr
/// thunk's fast path; for longer ones the helper's memchr (vectorized by
/// glibc for the CPU) beats the SSE2 loop by more than the call costs.
const INLINE_SCAN_LIMIT: i32 = 4096;
/// Structs copied to the stack up to this size are copied by unrolled
/// moves; larger ones by a loop (attach time and code size stay constant).
const UNROLLED_COPY: i32 = 64;

/// Layout of a blocking call's block: 6 integer registers, 8 vector
/// registers, the stack arguments, then rax, xmm0, rdx, xmm1 after the call.
const BLOCK_XMM: i32 = 6 * 8;
const BLOCK_STACK: i32 = BLOCK_XMM + 8 * 8;

/// The x86-64 (SysV) machine.
pub(crate) struct X64;

type Stub<'a> = super::stub::Stub<'a, X64>;

impl Machine for X64 {
    type Relocation = X64Relocation;
    const SHAPE: FrameShape = FrameShape {
        block_bytes: BLOCK_STACK + 32,
        int_arg_regs: 6,
        retbuf_bytes: |ty| match ty {
            CType::Struct(s) => round16(s.size as i32),
            CType::LongDouble => 16,
            _ => 0,
        },
        // Entry rsp ≡ 8 (mod 16): a frame ≡ 8 makes rsp 16-aligned for calls.
        size: |used| (used + 8) / 16 * 16 + 8,
    };
    const CODE_BYTES: (usize, usize) = (256, 64);
    const INT_ARG_REGS: &'static [u8] = &INT_ARG_REGS;
    const SCRATCH: u8 = RAX;
    const FSCRATCH: u8 = XMM15;
    const TEMPS: [u8; 3] = [R10, R11, RAX];

    /// A VALUE on the stack stays there when every op can read it in place.
    fn value_register(source: ArgSource, l: &Lowered) -> u8 {
        match source {
            ArgSource::Stack(_) | ArgSource::Spilled(_) if l.hot.iter().chain(&l.cold).all(reads_value_in_memory) => {
                VALUE_IN_MEMORY
            }
            _ => RAX,
        }
    }

    /// A thunk's call: save every argument register, call `target(r10,
    /// r11, eax)`, restore.
    fn call_saving_registers(code: &mut Code, target: usize) {
        // Entry rsp ≡ 8 (mod 16); 6 pushes + 72 bytes keep calls aligned.
        dynasm!(code.ops
            ; .arch x64
            ; push rdi ; push rsi ; push rdx ; push rcx ; push r8 ; push r9
            ; sub rsp, 72
            ; movsd [rsp], xmm0 ; movsd [rsp + 8], xmm1 ; movsd [rsp + 16], xmm2 ; movsd [rsp + 24], xmm3
            ; movsd [rsp + 32], xmm4 ; movsd [rsp + 40], xmm5 ; movsd [rsp + 48], xmm6 ; movsd [rsp + 56], xmm7
            ; mov rdi, r10
            ; mov rsi, r11
            ; mov edx, eax
            ; mov r11, QWORD target as i64
            ; call r11
            ; movaps xmm15, xmm0
            ; movsd xmm0, [rsp] ; movsd xmm1, [rsp + 8] ; movsd xmm2, [rsp + 16] ; movsd xmm3, [rsp + 24]
            ; movsd xmm4, [rsp + 32] ; movsd xmm5, [rsp + 40] ; movsd xmm6, [rsp + 48] ; movsd xmm7, [rsp + 56]
            ; add rsp, 72
            ; pop r9 ; pop r8 ; pop rcx ; pop rdx ; pop rsi ; pop rdi
            ; ret
        );
    }

    /// rdi, rsi, rdx: the cfunc's arguments; rcx is free (no argument).
    const ACCESSOR_REGS: ([u8; 7], [u8; 2]) = ([7, 6, 2, 1, R10, R11, RAX], [XMM15, 0]);

    fn plain_op(code: &mut Code, op: MachineOp) -> bool {
        code.op(op, 0)
    }

    fn leaf_return(code: &mut Code) {
        dynasm!(code.ops ; .arch x64 ; ret);
    }

    fn leaf_jump(code: &mut Code, target: usize) {
        let l = code.pool.label(&mut code.ops, target as u64);
        dynasm!(code.ops ; .arch x64 ; jmp QWORD [=>l]);
    }

    /// A helper's fast path in front of its thunk. r10 (the VALUE's slot),
    /// r11 and eax must reach the helper intact if it falls back, so it
    /// works in rdi, rsi and rdx, saved around it; its result goes in rax.
    fn fast_path(code: &mut Code, l: &Lowered, helper: DynamicLabel) {
        const RDI: u8 = 7;
        const RSI: u8 = 6;
        const RDX: u8 = 2;
        let mut c = Conv::registers(RDI, RDI, XMM15, 0, [RSI, RDX, RAX]);
        c.labels = (0..l.labels).map(|_| code.ops.new_dynamic_label()).collect();
        dynasm!(code.ops ; .arch x64 ; push rdi ; push rsi ; push rdx);
        for op in l.hot.iter().chain(&l.cold) {
            match op {
                Op::LoadValue => dynasm!(code.ops ; .arch x64 ; mov rdi, [r10]),
                Op::Return => dynasm!(code.ops ; .arch x64 ; pop rdx ; pop rsi ; pop rdi ; ret),
                Op::Fallback => dynasm!(code.ops ; .arch x64 ; pop rdx ; pop rsi ; pop rdi ; jmp =>helper),
                op => assert!(code.op(c.resolve(*op), 0), "{op:?} in a helper's fast path"),
            }
        }
    }
}

impl Steps for Stub<'_> {
    fn enter(&mut self) {
        match self.frame.size {
            8 => dynasm!(self.code.ops ; .arch x64 ; push rax),
            size if size < 128 => dynasm!(self.code.ops ; .arch x64 ; sub rsp, BYTE size as i8),
            size => dynasm!(self.code.ops ; .arch x64 ; sub rsp, size),
        }
    }

    fn spill(&mut self, r: u8, at: i32) {
        dynasm!(self.code.ops ; .arch x64 ; mov [rsp + at], Rq(INT_ARG_REGS[r as usize]));
    }

    /// f(int argc, VALUE *argv, VALUE self).
    fn check_argc(&mut self, argv: i32, n: u32, arity: DynamicLabel) {
        dynasm!(self.code.ops
            ; .arch x64
            ; mov [rsp + argv], rsi
            ; cmp edi, n as i32
            ; jne =>arity
        );
    }

    fn code_op(&mut self, c: &Conv, op: MachineOp) -> bool {
        let value_at = if c.value == VALUE_IN_MEMORY { self.source_offset(c.source) } else { 0 };
        self.code.op(op, value_at)
    }

    fn load_value(&mut self, c: &Conv) {
        if c.value == RAX {
            self.load_source(c.source, RAX);
        }
    }

    /// Stack slots get all 8 bytes.
    fn place(&mut self, c: &Conv, _: u8) {
        let arg = c.arg;
        match (&c.dest, self.frame.block) {
            (CLoc::Int(k), None) => self.code.mov(INT_ARG_REGS[*k as usize], arg),
            (CLoc::Stack(off), None) => dynasm!(self.code.ops ; .arch x64 ; mov [rsp + *off as i32], Rq(arg)),
            (CLoc::Int(k), Some(b)) => dynasm!(self.code.ops ; .arch x64 ; mov [rsp + b + 8 * *k as i32], Rq(arg)),
            (CLoc::Stack(off), Some(b)) => dynasm!(self.code.ops ; .arch x64 ; mov [rsp + b + BLOCK_STACK + *off as i32], Rq(arg)),
            (dest, _) => unreachable!("integer destination {dest:?}"),
        }
    }

    /// r10 = the VALUE (or the address of the slot it is parked in), r11 =
    /// the info, eax = the argument index.
    fn call_thunk(&mut self, c: &Conv, helper: Helper, input: HelperInput) {
        self.load_source(c.source, R10);
        let at = match input {
            HelperInput::Value => None,
            HelperInput::KeptValue => Some(c.keep.expect("a keep-alive slot")),
            HelperInput::ParkedInDest => {
                let CLoc::Stack(off) = c.dest else { unreachable!("parked in a stack slot") };
                Some(self.frame.block.map_or(0, |b| b + BLOCK_STACK) + off as i32)
            }
        };
        match at {
            Some(at) if fits_i8(at as i64) => {
                dynasm!(self.code.ops ; .arch x64 ; mov [BYTE rsp + at as i8], r10 ; lea r10, [BYTE rsp + at as i8])
            }
            Some(at) => dynasm!(self.code.ops ; .arch x64 ; mov [rsp + at], r10 ; lea r10, [rsp + at]),
            None => {}
        }
        let (info, thunk) = (self.code.pool.info, self.code.pool.label(&mut self.code.ops, self.req.thunks.of(helper) as u64));
        dynasm!(self.code.ops ; .arch x64 ; mov r11, [=>info]);
        if c.index == 0 {
            dynasm!(self.code.ops ; .arch x64 ; xor eax, eax);
        } else {
            dynasm!(self.code.ops ; .arch x64 ; mov eax, c.index as i32);
        }
        dynasm!(self.code.ops ; .arch x64 ; call QWORD [=>thunk]);
    }

    fn mov_float(&mut self, dst: u8, src: u8) {
        if dst != src {
            dynasm!(self.code.ops ; .arch x64 ; movaps Rx(dst), Rx(src));
        }
    }

    fn ret(&mut self) {
        self.leave();
        dynasm!(self.code.ops ; .arch x64 ; ret);
    }

    fn tail_call(&mut self, target: TailTarget) {
        if target != TailTarget::FloatNewInHeap {
            dynasm!(self.code.ops ; .arch x64 ; mov rdi, rax);
        }
        let l = self.code.pool.label(&mut self.code.ops, self.req.targets.tail_target(target) as u64);
        self.leave();
        dynasm!(self.code.ops ; .arch x64 ; jmp QWORD [=>l]);
    }

    fn pass_result_buffer(&mut self, pointer: ResultPointer) {
        let (retbuf, reg) = (self.frame.retbuf, result_pointer_register(pointer));
        match self.frame.block {
            None => dynasm!(self.code.ops ; .arch x64 ; lea Rq(reg), [rsp + retbuf]),
            Some(b) => dynasm!(self.code.ops ; .arch x64 ; lea rax, [rsp + retbuf] ; mov [rsp + b + 8 * block_slot(reg)], rax),
        }
    }

    /// A variadic callee gets the number of vector registers used in al.
    fn call_function(&mut self) {
        let plan = self.req.plan;
        if plan.variadic {
            dynasm!(self.code.ops ; .arch x64 ; mov eax, plan.float_regs_used as i32);
        }
        let function = self.code.pool.function;
        dynasm!(self.code.ops ; .arch x64 ; call QWORD [=>function]);
    }

    fn arity_error(&mut self, arity: DynamicLabel) {
        let (info, helper) = (self.code.pool.info, self.code.pool.label(&mut self.code.ops, self.req.targets.arity_error as u64));
        dynasm!(self.code.ops
            ; .arch x64
            ; =>arity
            ; mov rsi, [=>info]                // edi still holds argc
            ; call QWORD [=>helper]            // raises
            ; int3
        );
    }

    /// `FReg::Arg` (a double, or a float when `single`) → its destination.
    fn place_float(&mut self, c: &Conv, single: bool) {
        let x = c.farg;
        match (&c.dest, self.frame.block) {
            (CLoc::Float(k), None) => {
                if *k != x {
                    dynasm!(self.code.ops ; .arch x64 ; movaps Rx(*k), Rx(x));
                }
            }
            (CLoc::Float(k), Some(b)) => dynasm!(self.code.ops ; .arch x64 ; movsd QWORD [rsp + b + BLOCK_XMM + 8 * *k as i32], Rx(x)),
            (CLoc::Stack(off), block) => {
                let at = block.map_or(0, |b| b + BLOCK_STACK) + *off as i32;
                if single {
                    dynasm!(self.code.ops ; .arch x64 ; movss DWORD [rsp + at], Rx(x));
                } else {
                    dynasm!(self.code.ops ; .arch x64 ; movsd QWORD [rsp + at], Rx(x));
                }
            }
            (dest, _) => unreachable!("floating-point destination {dest:?}"),
        }
    }
    /// The struct at [`base`] → its destination: each eightbyte to its
    /// register, or the whole struct to its stack slots, with loads of
    /// exactly the struct's bytes (it may end at a page boundary).
    fn copy_struct(&mut self, c: &Conv, base: u8) {
        let dest = &c.dest;
        let block = self.frame.block;
        match dest {
            CLoc::Pieces(pieces) => {
                for piece in pieces {
                    self.load_bytes(base, piece.offset as i32, piece.size as i32);
                    match (piece.loc.clone(), block) {
                        (CLoc::Int(k), None) => dynasm!(self.code.ops ; .arch x64 ; mov Rq(INT_ARG_REGS[k as usize]), r10),
                        (CLoc::Float(k), None) => dynasm!(self.code.ops ; .arch x64 ; movq Rx(k), r10),
                        (CLoc::Int(k), Some(b)) => dynasm!(self.code.ops ; .arch x64 ; mov [rsp + b + 8 * k as i32], r10),
                        (CLoc::Float(k), Some(b)) => dynasm!(self.code.ops ; .arch x64 ; mov [rsp + b + BLOCK_XMM + 8 * k as i32], r10),
                        _ => unreachable!("eightbytes go to registers"),
                    }
                }
            }
            CLoc::StackCopy { offset, size } => {
                let at = block.map_or(0, |b| b + BLOCK_STACK) + *offset as i32;
                let size = *size as i32;
                // Unrolled up to UNROLLED_COPY bytes; above, a loop over the
                // whole words (code size independent of the struct's).
                let looped = if size > UNROLLED_COPY { size & !7 } else { 0 };
                if looped > 0 {
                    dynasm!(self.code.ops
                        ; .arch x64
                        ; xor r11d, r11d
                        ; copy:
                        ; mov r10, [Rq(base) + r11]
                        ; mov [rsp + r11 + at], r10
                        ; add r11, 8
                        ; cmp r11, looped
                        ; jb <copy
                    );
                }
                for word in (looped..size).step_by(8) {
                    self.load_bytes(base, word, (size - word).min(8));
                    dynasm!(self.code.ops ; .arch x64 ; mov [rsp + at + word], r10);
                }
            }
            _ => unreachable!("the SysV planner gives structs pieces or a stack copy"),
        }
    }
    /// A struct return: its eightbytes (or the bytes the callee wrote
    /// through the hidden pointer) are in the frame's return buffer; the
    /// helper makes a new Struct instance holding a copy.
    fn box_struct_result(&mut self) {
        let retbuf = self.frame.retbuf;
        if let RetLoc::Pieces(pieces) = &self.req.plan.ret {
            for piece in pieces {
                let at = retbuf + piece.offset as i32;
                match piece.loc {
                    CLoc::Int(0) => dynasm!(self.code.ops ; .arch x64 ; mov [rsp + at], rax),
                    CLoc::Int(_) => dynasm!(self.code.ops ; .arch x64 ; mov [rsp + at], rdx),
                    CLoc::Float(0) => dynasm!(self.code.ops ; .arch x64 ; movsd [rsp + at], xmm0),
                    _ => dynasm!(self.code.ops ; .arch x64 ; movsd [rsp + at], xmm1),
                }
            }
        }
        let (info, helper) = (self.code.pool.info, self.code.pool.label(&mut self.code.ops, self.req.targets.ret_struct as u64));
        dynasm!(self.code.ops
            ; .arch x64
            ; mov rdi, [=>info]
            ; lea rsi, [rsp + retbuf]
            ; call QWORD [=>helper]
        );
    }
    /// st(0) → its 16-byte buffer (popping the x87 stack) → the helper,
    /// which builds a BigDecimal like the ffi gem. A blocking call's inner
    /// function already popped it into the call block.
    fn box_long_double_result(&mut self) {
        let at = match self.frame.block {
            Some(b) => b + BLOCK_STACK + self.req.plan.stack_bytes as i32,
            None => {
                let retbuf = self.frame.retbuf;
                dynasm!(self.code.ops ; .arch x64 ; fstp TWORD [rsp + retbuf]);
                retbuf
            }
        };
        let helper = self.code.pool.label(&mut self.code.ops, self.req.targets.ret_long_double as u64);
        dynasm!(self.code.ops
            ; .arch x64
            ; lea rdi, [rsp + at]
            ; call QWORD [=>helper]
        );
    }
    /// `blocking: true`: the arguments are in the call block; run the inner
    /// function through rb_thread_call_without_gvl (other Ruby threads run
    /// meanwhile; Thread#raise/kill interrupt it like blocking IO), then
    /// pick up its result.
    fn call_without_gvl(&mut self) {
        let b = self.frame.block.expect("blocking frame");
        let ret = b + BLOCK_STACK + self.req.plan.stack_bytes as i32;
        let without_gvl = self.code.pool.label(&mut self.code.ops, self.req.targets.call_without_gvl as u64);
        let inner = self.inner;
        dynasm!(self.code.ops
            ; .arch x64
            ; lea rdi, [=>inner]
            ; lea rsi, [rsp + b]
            ; mov rdx, -1                      // RUBY_UBF_IO
            ; xor ecx, ecx
            ; call QWORD [=>without_gvl]
            ; mov rax, [rsp + ret]
            ; movsd xmm0, [rsp + ret + 8]
            ; mov rdx, [rsp + ret + 16]
            ; movsd xmm1, [rsp + ret + 24]
        );
    }
    /// errno → the calling thread's saved slot (see runtime::errno): both
    /// are static TLS at fixed fs offsets. Ruby restores errno after
    /// re-taking the GVL, so a blocking call saves it here too. Uses esi:
    /// the return registers (rax, rdx, xmm0, xmm1) are live after the call.
    fn save_errno(&mut self) {
        let Some((errno, saved)) = self.req.targets.errno_tp_offsets else { return };
        dynasm!(self.code.ops
            ; .arch x64
            ; fs mov esi, DWORD [errno]
            ; fs mov DWORD [saved], esi
        );
    }
    /// `void *inner(void *block)`: loads the argument registers and stack
    /// arguments from the block, calls the C function, stores rax, xmm0,
    /// rdx and xmm1 back into it.
    fn emit_inner(&mut self) {
        let plan = self.req.plan;
        let stack = plan.stack_bytes as i32;
        let (function, inner) = (self.code.pool.function, self.inner);
        dynasm!(self.code.ops
            ; .arch x64
            ; =>inner
            ; push rbx                         // rsp 16-aligned from here
            ; mov rbx, rdi
        );
        if stack > 0 {
            dynasm!(self.code.ops ; .arch x64 ; sub rsp, stack);
        }
        for q in 0..stack / 8 {
            dynasm!(self.code.ops ; .arch x64 ; mov rax, [rbx + BLOCK_STACK + 8 * q] ; mov [rsp + 8 * q], rax);
        }
        // Every argument register, used or not: simpler than tracking
        // which ones struct eightbytes and the hidden pointer filled.
        for (k, reg) in INT_ARG_REGS.iter().enumerate() {
            dynasm!(self.code.ops ; .arch x64 ; mov Rq(*reg), [rbx + 8 * k as i32]);
        }
        for k in 0..8u8 {
            dynasm!(self.code.ops ; .arch x64 ; movsd Rx(k), [rbx + BLOCK_XMM + 8 * k as i32]);
        }
        if plan.variadic {
            dynasm!(self.code.ops ; .arch x64 ; mov eax, plan.float_regs_used as i32);
        }
        dynasm!(self.code.ops
            ; .arch x64
            ; call QWORD [=>function]
            ; mov [rbx + BLOCK_STACK + stack], rax
            ; movsd [rbx + BLOCK_STACK + stack + 8], xmm0
            ; mov [rbx + BLOCK_STACK + stack + 16], rdx
            ; movsd [rbx + BLOCK_STACK + stack + 24], xmm1
        );
        if plan.ret == RetLoc::X87 {
            // Pop st(0) over the rax/xmm0 words: the x87 stack must be
            // empty again, and the stub reads the value from here.
            dynasm!(self.code.ops ; .arch x64 ; fstp TWORD [rbx + BLOCK_STACK + stack]);
        }
        if stack > 0 {
            dynasm!(self.code.ops ; .arch x64 ; add rsp, stack);
        }
        dynasm!(self.code.ops ; .arch x64 ; pop rbx ; ret);
    }

}

/// Whether `op` can read a VALUE that stays in its stack slot (a memory
/// operand); the others need it in a register.
fn reads_value_in_memory(op: &Op) -> bool {
    match op {
        Op::ShiftOutTagBit { src: Reg::Value, .. } => true,
        op => !op.reads().contains(&Reg::Value),
    }
}

/// The register a hidden result pointer goes in.
fn result_pointer_register(pointer: ResultPointer) -> u8 {
    match pointer {
        ResultPointer::FirstIntArg => INT_ARG_REGS[0],
        ResultPointer::X8 => unreachable!("an AAPCS64 plan"),
    }
}

/// The call block's slot for integer argument register `reg`.
fn block_slot(reg: u8) -> i32 {
    INT_ARG_REGS.iter().position(|r| *r == reg).expect("an argument register") as i32
}

fn fits_i8(v: i64) -> bool {
    i8::try_from(v).is_ok()
}

fn fits_i32(v: i64) -> bool {
    i32::try_from(v).is_ok()
}

type Code = super::stub::Code<X64Relocation>;

impl Code {
    fn jcc(&mut self, cond: Cond, target: DynamicLabel) {
        match cond {
            Cond::Eq => dynasm!(self.ops ; .arch x64 ; je =>target),
            Cond::Ne => dynasm!(self.ops ; .arch x64 ; jne =>target),
            Cond::BelowOrEqual => dynasm!(self.ops ; .arch x64 ; jbe =>target),
            Cond::Above => dynasm!(self.ops ; .arch x64 ; ja =>target),
        }
    }

    fn pool_label(&mut self, k: Const) -> DynamicLabel {
        match k {
            Const::Info => self.pool.info,
            Const::PointerDataType => self.pool.label(&mut self.ops, self.data_types[0]),
            Const::StructDataType => self.pool.label(&mut self.ops, self.data_types[1]),
        }
    }

    /// `dst ← [base + offset]`, with a one-byte displacement where it fits.
    fn load(&mut self, dst: u8, base: u8, offset: i32) {
        if fits_i8(offset as i64) {
            dynasm!(self.ops ; .arch x64 ; mov Rq(dst), [BYTE Rq(base) + offset as i8]);
        } else {
            dynasm!(self.ops ; .arch x64 ; mov Rq(dst), [Rq(base) + offset]);
        }
    }

    /// `Op::LoadSized` (x86-64 loads any alignment; 32-bit destinations
    /// clear bits 32..63).
    fn load_sized(&mut self, dst: u8, base: u8, offset: i32, bytes: u8, signed: bool) {
        match (bytes, signed) {
            (1, true) => dynasm!(self.ops ; .arch x64 ; movsx Rq(dst), BYTE [Rq(base) + offset]),
            (1, false) => dynasm!(self.ops ; .arch x64 ; movzx Rd(dst), BYTE [Rq(base) + offset]),
            (2, true) => dynasm!(self.ops ; .arch x64 ; movsx Rq(dst), WORD [Rq(base) + offset]),
            (2, false) => dynasm!(self.ops ; .arch x64 ; movzx Rd(dst), WORD [Rq(base) + offset]),
            (4, true) => dynasm!(self.ops ; .arch x64 ; movsxd Rq(dst), DWORD [Rq(base) + offset]),
            (4, false) => dynasm!(self.ops ; .arch x64 ; mov Rd(dst), DWORD [Rq(base) + offset]),
            _ => self.load(dst, base, offset),
        }
    }

    /// `Op::Store`.
    fn store(&mut self, src: u8, base: u8, offset: i32, bytes: u8) {
        match bytes {
            1 => dynasm!(self.ops ; .arch x64 ; mov BYTE [Rq(base) + offset], Rb(src)),
            2 => dynasm!(self.ops ; .arch x64 ; mov WORD [Rq(base) + offset], Rw(src)),
            4 => dynasm!(self.ops ; .arch x64 ; mov DWORD [Rq(base) + offset], Rd(src)),
            _ => dynasm!(self.ops ; .arch x64 ; mov QWORD [Rq(base) + offset], Rq(src)),
        }
    }

    /// `cmp reg, imm` (64 or 32 bits), with a one-byte immediate where it
    /// fits: dynasm-rs always picks the 4-byte form of `cmp r/m, imm`, so
    /// that one is encoded here (REX, 83 /7 ib).
    pub(super) fn cmp_imm(&mut self, reg: u8, imm: i32, wide: bool) {
        match i8::try_from(imm) {
            Ok(imm) => {
                let rex = 0x40 | if wide { 8 } else { 0 } | (reg >> 3);
                if rex != 0x40 {
                    self.ops.push(rex);
                }
                self.ops.extend([0x83, 0xf8 | (reg & 7), imm as u8]);
            }
            Err(_) if wide => dynasm!(self.ops ; .arch x64 ; cmp Rq(reg), imm),
            Err(_) => dynasm!(self.ops ; .arch x64 ; cmp Rd(reg), imm),
        }
    }

    /// `and reg32, imm` (clearing bits 32..63), one-byte immediate where it fits.
    fn and32(&mut self, reg: u8, imm: i32) {
        if fits_i8(imm as i64) {
            dynasm!(self.ops ; .arch x64 ; and Rd(reg), BYTE imm as i8);
        } else {
            dynasm!(self.ops ; .arch x64 ; and Rd(reg), imm);
        }
    }

    fn mov(&mut self, dst: u8, src: u8) {
        if dst != src {
            dynasm!(self.ops ; .arch x64 ; mov Rq(dst), Rq(src));
        }
    }

    /// Instructions for `op`, if it is one that needs only registers,
    /// labels and the pool; `false` for the others. `value_at`: where a
    /// VALUE read in place is (`VALUE_IN_MEMORY`).
    fn op(&mut self, op: MachineOp, value_at: i32) -> bool {
        match op {
            Op::Label(l) => dynasm!(self.ops ; .arch x64 ; =>l),
            Op::Jump(l) => dynasm!(self.ops ; .arch x64 ; jmp =>l),
            Op::BranchIfBits { reg, mask, set, target } => {
                if (0..=0x7f).contains(&mask) {
                    dynasm!(self.ops ; .arch x64 ; test Rb(reg), mask as i8);
                } else {
                    dynasm!(self.ops ; .arch x64 ; test Rd(reg), mask as i32);
                }
                self.jcc(if set { Cond::Ne } else { Cond::Eq }, target);
            }
            Op::BranchUnlessTag { reg, mask, tag, tmp, target } => {
                if mask == tag && mask.count_ones() == 1 {
                    dynasm!(self.ops ; .arch x64 ; test Rb(reg), mask as i8 ; jz =>target);
                } else {
                    // (v - tag) & mask == 0 ⟺ v & mask == tag (tag ⊆ mask).
                    dynasm!(self.ops
                        ; .arch x64
                        ; lea Rd(tmp), [BYTE Rq(reg) - tag as i8]
                        ; test Rb(tmp), mask as i8
                        ; jnz =>target
                    );
                }
            }
            Op::BranchIfCmp { a, cond, b, target } => {
                match b {
                    Operand::Imm(0) if matches!(cond, Cond::Eq | Cond::Ne) => dynasm!(self.ops ; .arch x64 ; test Rq(a), Rq(a)),
                    Operand::Imm(v) if fits_i32(v) => self.cmp_imm(a, v as i32, true),
                    Operand::Imm(v) => {
                        let l = self.pool.label(&mut self.ops, v as u64);
                        dynasm!(self.ops ; .arch x64 ; cmp Rq(a), [=>l]);
                    }
                    Operand::Reg(b) => dynasm!(self.ops ; .arch x64 ; cmp Rq(a), Rq(b)),
                    Operand::Const(k) => {
                        let l = self.pool_label(k);
                        dynasm!(self.ops ; .arch x64 ; cmp Rq(a), [=>l]);
                    }
                }
                self.jcc(cond, target);
            }
            Op::BranchIfInRange { reg, range, fits, tmp, target } => {
                match range {
                    IntRange::I32 => dynasm!(self.ops ; .arch x64 ; movsxd Rq(tmp), Rd(reg)),
                    IntRange::U32 => dynasm!(self.ops ; .arch x64 ; mov Rd(tmp), Rd(reg)),
                }
                dynasm!(self.ops ; .arch x64 ; cmp Rq(tmp), Rq(reg));
                self.jcc(if fits { Cond::Eq } else { Cond::Ne }, target);
            }
            Op::BranchUnlessFieldIn { src, shift, width, lo, hi, tmp, target } => {
                if shift + width == 63 {
                    // The field is right below the sign bit: shift it out.
                    dynasm!(self.ops ; .arch x64 ; lea Rq(tmp), [Rq(src) + Rq(src)] ; shr Rq(tmp), shift as i8 + 1);
                } else {
                    self.mov(tmp, src);
                    dynasm!(self.ops ; .arch x64 ; shr Rq(tmp), shift as i8 ; and Rd(tmp), ((1u32 << width) - 1) as i32);
                }
                if lo != 0 {
                    dynasm!(self.ops ; .arch x64 ; sub Rd(tmp), BYTE lo as i8);
                }
                self.cmp_imm(tmp, (hi - lo) as i32, false);
                dynasm!(self.ops ; .arch x64 ; ja =>target);
            }
            Op::BranchIfHighBits { src, shift, tmp, target } => {
                self.mov(tmp, src);
                dynasm!(self.ops ; .arch x64 ; shr Rq(tmp), shift as i8 ; jnz =>target);
            }
            Op::Mov { dst, src } => match src {
                Operand::Imm(0) => dynasm!(self.ops ; .arch x64 ; xor Rd(dst), Rd(dst)),
                Operand::Imm(v) if u32::try_from(v).is_ok() => dynasm!(self.ops ; .arch x64 ; mov Rd(dst), v as i32),
                Operand::Imm(v) if fits_i32(v) => dynasm!(self.ops ; .arch x64 ; mov Rq(dst), v as i32),
                Operand::Imm(v) => dynasm!(self.ops ; .arch x64 ; mov Rq(dst), QWORD v),
                Operand::Reg(src) => self.mov(dst, src),
                Operand::Const(k) => {
                    let l = self.pool_label(k);
                    dynasm!(self.ops ; .arch x64 ; mov Rq(dst), [=>l]);
                }
            },
            Op::Load { dst, base, offset } => self.load(dst, base, offset),
            Op::LoadSized { dst, base, offset, bytes, signed } => self.load_sized(dst, base, offset, bytes, signed),
            Op::Store { src, base, offset, bytes } => self.store(src, base, offset, bytes),
            Op::AddImm { dst, src, imm } if dst == src => dynasm!(self.ops ; .arch x64 ; add Rq(dst), imm as i32),
            Op::AddImm { dst, src, imm } if fits_i8(imm) => dynasm!(self.ops ; .arch x64 ; lea Rq(dst), [BYTE Rq(src) + imm as i8]),
            Op::AddImm { dst, src, imm } => dynasm!(self.ops ; .arch x64 ; lea Rq(dst), [Rq(src) + imm as i32]),
            // A 32-bit and clears bits 32..63, as such a mask does.
            Op::AndImm { dst, src, imm } if u32::try_from(imm).is_ok() => {
                if dst != src {
                    dynasm!(self.ops ; .arch x64 ; mov Rd(dst), Rd(src));
                }
                self.and32(dst, imm as i32);
            }
            Op::AndImm { dst, src, imm } => {
                self.mov(dst, src);
                if fits_i8(imm) {
                    dynasm!(self.ops ; .arch x64 ; and Rq(dst), BYTE imm as i8);
                } else {
                    dynasm!(self.ops ; .arch x64 ; and Rq(dst), imm as i32);
                }
            }
            Op::OrImm { dst, src, imm } => {
                self.mov(dst, src);
                if fits_i8(imm) {
                    dynasm!(self.ops ; .arch x64 ; or Rq(dst), BYTE imm as i8);
                } else {
                    dynasm!(self.ops ; .arch x64 ; or Rq(dst), imm as i32);
                }
            }
            Op::BitField { dst, src, shift, width } => {
                let mask = ((1u64 << width) - 1) as i32;
                if shift + width <= 32 {
                    if dst != src {
                        dynasm!(self.ops ; .arch x64 ; mov Rd(dst), Rd(src));
                    }
                    dynasm!(self.ops ; .arch x64 ; shr Rd(dst), shift as i8);
                } else {
                    self.mov(dst, src);
                    dynasm!(self.ops ; .arch x64 ; shr Rq(dst), shift as i8);
                }
                self.and32(dst, mask);
            }
            Op::ShiftOutTagBit { dst, src, unless } => {
                if src == VALUE_IN_MEMORY {
                    self.load(dst, RSP, value_at);
                } else {
                    self.mov(dst, src);
                }
                // The tag bit shifts out into CF.
                dynasm!(self.ops ; .arch x64 ; sar Rq(dst), 1 ; jnc =>unless);
            }
            Op::DoubleOrBranch { dst, src, overflow } => {
                self.mov(dst, src);
                dynasm!(self.ops ; .arch x64 ; add Rq(dst), Rq(dst) ; jo =>overflow);
            }
            Op::SubTopBit { dst, src } => {
                self.mov(dst, src);
                dynasm!(self.ops ; .arch x64 ; bt Rq(dst), 63 ; sbb Rq(dst), BYTE 0);
            }
            Op::RotateLeft { reg, n } => dynasm!(self.ops ; .arch x64 ; rol Rq(reg), n as i8),
            Op::RotateRight { reg, n } => dynasm!(self.ops ; .arch x64 ; ror Rq(reg), n as i8),
            // 32-bit destinations clear bits 32..63.
            Op::Extend32 { reg, from_bits: 8, signed: true } => dynasm!(self.ops ; .arch x64 ; movsx Rd(reg), Rb(reg)),
            Op::Extend32 { reg, from_bits: 16, signed: true } => dynasm!(self.ops ; .arch x64 ; movsx Rd(reg), Rw(reg)),
            Op::Extend64 { reg, from_bits: 8, signed: true } => dynasm!(self.ops ; .arch x64 ; movsx Rq(reg), Rb(reg)),
            Op::Extend64 { reg, from_bits: 16, signed: true } => dynasm!(self.ops ; .arch x64 ; movsx Rq(reg), Rw(reg)),
            Op::Extend64 { reg, from_bits: 32, signed: true } => dynasm!(self.ops ; .arch x64 ; movsxd Rq(reg), Rd(reg)),
            Op::Extend32 { reg, from_bits: 8, .. } | Op::Extend64 { reg, from_bits: 8, .. } => {
                dynasm!(self.ops ; .arch x64 ; movzx Rd(reg), Rb(reg))
            }
            Op::Extend32 { reg, from_bits: 16, .. } | Op::Extend64 { reg, from_bits: 16, .. } => {
                dynasm!(self.ops ; .arch x64 ; movzx Rd(reg), Rw(reg))
            }
            Op::Extend32 { reg, .. } | Op::Extend64 { reg, .. } => dynasm!(self.ops ; .arch x64 ; mov Rd(reg), Rd(reg)),
            Op::ShiftInTagBit { reg } => dynasm!(self.ops ; .arch x64 ; lea Rq(reg), [Rq(reg) + Rq(reg) + 1]),
            // mov keeps the flags of the test.
            Op::SelectOnLowByte { dst, src, nonzero, zero, tmp } => dynasm!(self.ops
                ; .arch x64
                ; test Rb(src), Rb(src)
                ; mov Rd(dst), zero as i32
                ; mov Rd(tmp), nonzero as i32
                ; cmovnz Rd(dst), Rd(tmp)
            ),
            Op::BitsToDouble { dst, src } => dynasm!(self.ops ; .arch x64 ; movq Rx(dst), Rq(src)),
            Op::DoubleToBits { dst, src } => dynasm!(self.ops ; .arch x64 ; movq Rq(dst), Rx(src)),
            Op::ZeroDouble { dst } => dynasm!(self.ops ; .arch x64 ; xorps Rx(dst), Rx(dst)),
            Op::IntToDouble { dst, src } => dynasm!(self.ops ; .arch x64 ; cvtsi2sd Rx(dst), Rq(src)),
            Op::DoubleToFloat { reg } => dynasm!(self.ops ; .arch x64 ; cvtsd2ss Rx(reg), Rx(reg)),
            Op::FloatToDouble { reg } => dynasm!(self.ops ; .arch x64 ; cvtss2sd Rx(reg), Rx(reg)),
            Op::BranchUnlessNulAt16 { ptr, len, tmp, target } => dynasm!(self.ops
                ; .arch x64
                ; movdqu xmm15, [Rq(ptr)]
                ; pxor xmm14, xmm14
                ; pcmpeqb xmm15, xmm14
                ; pmovmskb Rd(tmp), xmm15
                ; bsf Rd(tmp), Rd(tmp)                  // ZF: no NUL at all
                ; jz =>target
                ; cmp Rq(tmp), Rq(len)
                ; jne =>target
            ),
            Op::BranchUnlessNulAtLong { ptr, len, tmp, target } => self.nul_at_long(ptr, len, tmp, target),
            Op::Trap => dynasm!(self.ops ; .arch x64 ; int3),
            _ => return false,
        }
        true
    }

    /// `BranchUnlessNulAtLong`: 128 bytes a step, with SSE2 (every x86-64
    /// has it). xmm14 = 0; a block has a NUL iff its bytewise minimum has.
    fn nul_at_long(&mut self, p: u8, n: u8, t: u8, target: DynamicLabel) {
        let [blocks128, blocks16, first] = [(); 3].map(|_| self.ops.new_dynamic_label());
        self.cmp_imm(n, 16, true);
        dynasm!(self.ops
            ; .arch x64
            ; jb =>target
            ; cmp Rq(n), INLINE_SCAN_LIMIT
            ; ja =>target
            ; pxor xmm14, xmm14
            // The 16 bytes ending with ptr[len]: only their last may be NUL.
            ; movdqu xmm15, [Rq(p) + Rq(n) - 15]
            ; pcmpeqb xmm15, xmm14
            ; pmovmskb Rd(t), xmm15
            ; cmp Rd(t), 0x8000
            ; jne =>target
            // Then [0, len - 15) in 16-byte blocks down from len - 16: 8 a
            // step while they last, then one, then the one at 0.
            ; sub Rq(n), BYTE 16
            ; =>blocks128
        );
        self.cmp_imm(n, 112, true);
        dynasm!(self.ops
            ; .arch x64
            ; jl =>blocks16
            ; movdqu xmm15, [Rq(p) + Rq(n)]
        );
        for k in 1..8 {
            dynasm!(self.ops ; .arch x64 ; movdqu xmm13, [Rq(p) + Rq(n) - 16 * k] ; pminub xmm15, xmm13);
        }
        dynasm!(self.ops
            ; .arch x64
            ; pcmpeqb xmm15, xmm14
            ; pmovmskb Rd(t), xmm15
            ; test Rd(t), Rd(t)
            ; jnz =>target
            ; sub Rq(n), 128
            ; jmp =>blocks128
            ; =>blocks16
            ; test Rq(n), Rq(n)
            ; jle =>first
            ; movdqu xmm15, [Rq(p) + Rq(n)]
            ; pcmpeqb xmm15, xmm14
            ; pmovmskb Rd(t), xmm15
            ; test Rd(t), Rd(t)
            ; jnz =>target
            ; sub Rq(n), BYTE 16
            ; jmp =>blocks16
            ; =>first
            ; movdqu xmm15, [Rq(p)]
            ; pcmpeqb xmm15, xmm14
            ; pmovmskb Rd(t), xmm15
            ; test Rd(t), Rd(t)
            ; jnz =>target
        );
    }
}

impl Stub<'_> {
    /// `[rsp + offset]` of a VALUE in memory: the caller's stack arguments
    /// (above the frame and the return address) or the spill area.
    fn source_offset(&self, source: ArgSource) -> i32 {
        match source {
            ArgSource::Stack(off) => self.frame.size + 8 + off as i32,
            ArgSource::Spilled(r) => self.frame.spill.expect("a spill area") + 8 * r as i32,
            _ => unreachable!("not in the frame"),
        }
    }

    /// `reg` ← the VALUE, from where it arrived.
    fn load_source(&mut self, source: ArgSource, reg: u8) {
        match source {
            ArgSource::Int(r) => {
                let from = INT_ARG_REGS[r as usize];
                if from != reg {
                    dynasm!(self.code.ops ; .arch x64 ; mov Rq(reg), Rq(from));
                }
            }
            ArgSource::Stack(_) | ArgSource::Spilled(_) => {
                let at = self.source_offset(source);
                self.code.load(reg, RSP, at);
            }
            ArgSource::Argv(i) => {
                let argv = self.frame.argv.expect("an argv slot");
                self.code.load(reg, RSP, argv);
                self.code.load(reg, reg, 8 * i as i32);
            }
        }
    }

    /// Removes the frame (rcx is free: no result travels in it).
    fn leave(&mut self) {
        match self.frame.size {
            8 => dynasm!(self.code.ops ; .arch x64 ; pop rcx),
            size if size < 128 => dynasm!(self.code.ops ; .arch x64 ; add rsp, BYTE size as i8),
            size => dynasm!(self.code.ops ; .arch x64 ; add rsp, size),
        }
    }

    /// r10 ← the `n` (1..=8) bytes at [base + off], zero-extended, reading
    /// no byte past them. Uses r11.
    fn load_bytes(&mut self, base: u8, off: i32, n: i32) {
        if n == 8 {
            dynasm!(self.code.ops ; .arch x64 ; mov r10, [Rq(base) + off]);
            return;
        }
        for (at, size) in tail_pieces(n as u32) {
            let (reg, at) = (if at == 0 { R10 } else { R11 }, at as i32);
            match size {
                4 => dynasm!(self.code.ops ; .arch x64 ; mov Rd(reg), [Rq(base) + off + at]),
                2 => dynasm!(self.code.ops ; .arch x64 ; movzx Rd(reg), WORD [Rq(base) + off + at]),
                _ => dynasm!(self.code.ops ; .arch x64 ; movzx Rd(reg), BYTE [Rq(base) + off + at]),
            }
            if at > 0 {
                dynasm!(self.code.ops ; .arch x64 ; shl r11, (8 * at) as i8 ; or r10, r11);
            }
        }
    }

}
