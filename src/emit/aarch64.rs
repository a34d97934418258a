//! AArch64 (AAPCS64) forward stubs and the slow-path thunks they share.
//!
//! Pure code generation: compiled and unit-tested on every host, run
//! natively on aarch64 and under qemu-user elsewhere (`rake aarch64`).
//! Same structure and contracts as `x86_64`:
//!
//! ```text
//!   stp x29, x30, [sp, #-16]! ; mov x29, sp ; sub sp, sp, #LOCALS
//!   for each argument, left to right:
//!       x9 ← its VALUE (incoming register, caller stack, or argv)
//!       unbox inline using only x9..x13, d16
//!       → its C register (x0-x7 / v0-v7) or outgoing stack slot
//!   [add x8, sp, #retbuf]  ldr x16, =fn ; blr x16
//!   rebox x0 / d0 → x0; mov sp, x29; ldp x29, x30, [sp], #16; ret  (or a tail call)
//!   slow paths, out of line after the hot code
//!   literal pool: the C function, thunk and helper addresses, `info`
//! ```
//!
//! Why no staging area is needed: Ruby passes argument i in x(i+1) (self is
//! in x0), and C wants the k-th integer argument in xk with k ≤ i, so
//! writing destinations left to right never overwrites a VALUE not yet read.
//! Struct arguments can take two registers each, so their signatures spill
//! the incoming VALUEs to the frame first.
//!
//! Frame (offsets from sp after the prologue): outgoing stack arguments,
//! argv (argv form), one keep-alive slot per :string, the blocking call's
//! block, the VALUE spill, copies of structs passed by reference, the
//! struct result buffer; x29 points at the saved x29/x30 just above, and the
//! caller's stack arguments start at x29 + 16.
//!
//! Narrow integers: Linux AAPCS64 leaves the upper bits of a narrow argument
//! or result unspecified (the callee extends); Apple's ABI makes the caller
//! extend arguments to 32 bits. Stubs always extend arguments to 32 bits
//! (correct for both) and always extend narrow results themselves (correct
//! for both).
//!
//! Thunk contract: x9 = the VALUE (for :string, the address of a slot
//! holding it), x10 = the stub's info pointer, w11 = the argument index;
//! result in x9, or d16 for doubles. x0..x8 and the low halves of d0..d7
//! are preserved; x9..x17, v16..v31 and flags are not (stubs keep nothing
//! there across a slow path).

use super::ruby_layout::*;
use super::{EmitError, EmittedStub, RuntimeTargets, StubRequest};
use crate::abi::{ArgSource, CLoc, CfuncForm, PlanEntry, RetLoc};
use crate::types::CType;
use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<Aarch64Relocation>;
type SlowPath = Box<dyn FnOnce(&mut Asm, &mut Pool)>;

/// Scratch registers of a stub: the current VALUE / converted value, then
/// temporaries. All caller-saved and never argument registers.
const X9: u8 = 9;
const X11: u8 = 11;
/// `mrs` operand for TPIDR_EL0 (op0=3 op1=3 CRn=13 CRm=0 op2=2): the
/// thread pointer glibc's TLS (and so errno) is addressed from.
const TPIDR_EL0: u32 = 0b1_011_1101_0000_010;
/// Frames bigger than this would need an `add` beyond a 12-bit immediate
/// (and ldr/str offsets beyond their scaled range); no signature gets near.
const MAX_LOCALS: i32 = 4080;

/// 64-bit constants the stub loads PC-relative (`ldr x16, =>label`, one
/// instruction against up to four movz/movk), emitted after the code.
struct Pool {
    entries: Vec<(u64, DynamicLabel)>,
    /// Entries of their own (never shared with an equal constant), so a
    /// copy of the stub can be retargeted by patching just these two.
    function: (u64, DynamicLabel),
    info: (u64, DynamicLabel),
}

impl Pool {
    fn new(ops: &mut Asm, function: usize, info: usize) -> Pool {
        Pool {
            entries: Vec::with_capacity(8),
            function: (function as u64, ops.new_dynamic_label()),
            info: (info as u64, ops.new_dynamic_label()),
        }
    }

    fn label(&mut self, ops: &mut Asm, value: u64) -> DynamicLabel {
        if let Some((_, l)) = self.entries.iter().find(|(v, _)| *v == value) {
            return *l;
        }
        let l = ops.new_dynamic_label();
        self.entries.push((value, l));
        l
    }

    /// `ldr X(reg), =value`.
    fn load(&mut self, ops: &mut Asm, reg: u8, value: u64) {
        let l = self.label(ops, value);
        dynasm!(ops ; .arch aarch64 ; ldr X(reg), =>l);
    }

    /// `ldr x10, =info`.
    fn load_info(&self, ops: &mut Asm, reg: u8) {
        let l = self.info.1;
        dynasm!(ops ; .arch aarch64 ; ldr X(reg), =>l);
    }

    /// Emits the constants; returns the offsets of the function and info
    /// entries.
    fn emit(self, ops: &mut Asm) -> (usize, usize) {
        dynasm!(ops ; .arch aarch64 ; .align 8);
        let function_at = ops.offset().0;
        dynasm!(ops ; .arch aarch64 ; =>self.function.1 ; .u64 self.function.0);
        let info_at = ops.offset().0;
        dynasm!(ops ; .arch aarch64 ; =>self.info.1 ; .u64 self.info.0);
        for (value, label) in self.entries {
            dynasm!(ops ; .arch aarch64 ; =>label ; .u64 value);
        }
        (function_at, info_at)
    }
}

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

/// A thunk: save every argument register (x0-x8, d0-d7), call
/// `target(x9, x10, w11)`, restore; result in x9 and d16.
fn emit_thunk(target: usize) -> Vec<u8> {
    let mut ops = Asm::new(0);
    let target_label = ops.new_dynamic_label();
    dynasm!(ops
        ; .arch aarch64
        ; stp x29, x30, [sp, #-160]!
        ; mov x29, sp
        ; stp x0, x1, [sp, #16] ; stp x2, x3, [sp, #32] ; stp x4, x5, [sp, #48] ; stp x6, x7, [sp, #64]
        ; str x8, [sp, #80]
        ; stp d0, d1, [sp, #96] ; stp d2, d3, [sp, #112] ; stp d4, d5, [sp, #128] ; stp d6, d7, [sp, #144]
        ; mov x0, x9
        ; mov x1, x10
        ; mov w2, w11
        ; ldr x16, =>target_label
        ; blr x16
        ; mov x9, x0
        ; fmov d16, d0
        ; ldp x0, x1, [sp, #16] ; ldp x2, x3, [sp, #32] ; ldp x4, x5, [sp, #48] ; ldp x6, x7, [sp, #64]
        ; ldr x8, [sp, #80]
        ; ldp d0, d1, [sp, #96] ; ldp d2, d3, [sp, #112] ; ldp d4, d5, [sp, #128] ; ldp d6, d7, [sp, #144]
        ; ldp x29, x30, [sp], #160
        ; ret
        ; .align 8
        ; =>target_label
        ; .u64 target as u64
    );
    ops.finalize().expect("thunk assembles")
}

/// Machine code for every thunk, in the order of `Thunks`' fields.
pub fn emit_thunks(targets: &RuntimeTargets) -> Vec<Vec<u8>> {
    [
        targets.arg_int,
        targets.arg_uint,
        targets.arg_long_long,
        targets.arg_ulong_long,
        targets.arg_double,
        targets.arg_bool,
        targets.arg_pointer,
        targets.arg_cstr,
        targets.arg_struct,
    ]
    .into_iter()
    .map(emit_thunk)
    .collect()
}

/// Immediates (the VALUE in x9) → `slow`; nil and false → `null`, which
/// tells them apart (nil → NULL, false → the helper's error); heap objects
/// fall through.
fn split_immediates(ops: &mut Asm, slow: DynamicLabel, null: DynamicLabel) {
    if NIL_HAS_IMMEDIATE_BITS {
        dynasm!(ops
            ; .arch aarch64
            ; cmp x9, QNIL as u32
            ; b.eq =>null
            ; tst x9, IMMEDIATE_MASK as u64
            ; b.ne =>slow
            ; cbz x9, =>null
        );
    } else {
        dynasm!(ops
            ; .arch aarch64
            ; tst x9, IMMEDIATE_MASK as u64
            ; b.ne =>slow
            ; cmp x9, QNIL as u32
            ; b.ls =>null
        );
    }
}

/// The stub's locals, as offsets from sp after the prologue (x29 points at
/// the saved x29/x30 pair just above them).
#[derive(Clone, Copy)]
struct Frame {
    /// Slot for argv (argv form only). Outgoing stack arguments start at sp+0.
    argv: i32,
    /// First keep-alive slot: one per :string argument, holding a `to_str`
    /// result for the conservative GC scan until the call returns.
    keep: i32,
    /// `blocking: true` only: the call block the GVL-free inner function
    /// reads (see `Emitter::call_without_gvl`).
    block: Option<i32>,
    /// Struct-by-value signatures only: incoming x0..x7 spilled here first.
    spill: Option<i32>,
    /// Struct returns: the bytes the callee returns (registers spilled, or
    /// written through x8).
    retbuf: i32,
    locals: i32,
}

/// Layout of a blocking call's block: x0..x8, d0..d7, the stack arguments,
/// then x0, x1, d0..d3 after the call.
const BLOCK_D: i32 = 9 * 8;
const BLOCK_STACK: i32 = BLOCK_D + 8 * 8;
const BLOCK_RET: i32 = 6 * 8;

/// Where an argument's VALUE is once the frame is set up.
#[derive(Clone, Copy)]
struct Source {
    src: ArgSource,
    frame: Frame,
}

impl Source {
    fn load(&self, ops: &mut Asm, reg: u8) {
        match self.src {
            ArgSource::Int(r) => match self.frame.spill {
                Some(base) => dynasm!(ops ; .arch aarch64 ; ldr X(reg), [sp, (base + 8 * r as i32) as u32]),
                None => dynasm!(ops ; .arch aarch64 ; mov X(reg), X(r)),
            },
            // Above the saved x29/x30 pair.
            ArgSource::Stack(off) => dynasm!(ops ; .arch aarch64 ; ldr X(reg), [x29, 16 + off]),
            ArgSource::Argv(i) => dynasm!(ops
                ; .arch aarch64
                ; ldr X(reg), [sp, self.frame.argv as u32]
                ; ldr X(reg), [X(reg), 8 * i]
            ),
        }
    }
}

/// What a conversion hands to its slow path.
#[derive(Clone, Copy)]
struct ArgCtx {
    source: Source,
    index: u32,
}

impl ArgCtx {
    /// Loads x10 = info, w11 = index and calls `thunk` (x9 already set).
    fn call_thunk(&self, ops: &mut Asm, pool: &mut Pool, thunk: usize) {
        pool.load_info(ops, 10);
        mov_imm(ops, X11, self.index as u64);
        pool.load(ops, 16, thunk as u64);
        dynasm!(ops ; .arch aarch64 ; blr x16);
    }

    /// The usual slow path: x9 = the VALUE, then the thunk.
    fn convert_via(&self, ops: &mut Asm, pool: &mut Pool, thunk: usize) {
        self.source.load(ops, X9);
        self.call_thunk(ops, pool, thunk);
    }
}

/// X(dst) ← the `n` (1..=8) bytes at [x9 + off], zero-extended, reading no
/// byte past them (the struct may end at a page boundary). Uses x12.
fn load_bytes(ops: &mut Asm, dst: u8, off: u32, n: u32) {
    if n == 8 {
        dynasm!(ops ; .arch aarch64 ; ldr X(dst), [x9, off]);
        return;
    }
    let mut done = 0;
    for chunk in [4, 2, 1] {
        if n & chunk == 0 {
            continue;
        }
        let reg = if done == 0 { dst } else { 12 };
        let at = off + done;
        match chunk {
            4 => dynasm!(ops ; .arch aarch64 ; ldr W(reg), [x9, at]),
            2 => dynasm!(ops ; .arch aarch64 ; ldrh W(reg), [x9, at]),
            _ => dynasm!(ops ; .arch aarch64 ; ldrb W(reg), [x9, at]),
        }
        if done > 0 {
            dynasm!(ops ; .arch aarch64 ; orr X(dst), X(dst), x12, lsl 8 * done);
        }
        done += chunk;
    }
}

/// Copies `size` bytes from [x9] to [x13] (any alignment), touching no
/// byte outside either range. Uses x11, x12.
fn copy_bytes(ops: &mut Asm, size: u32) {
    let mut at = 0;
    while size - at >= 8 {
        dynasm!(ops ; .arch aarch64 ; ldr x11, [x9, at] ; str x11, [x13, at]);
        at += 8;
    }
    for chunk in [4, 2, 1] {
        if (size - at) & chunk == 0 {
            continue;
        }
        match chunk {
            4 => dynasm!(ops ; .arch aarch64 ; ldr w11, [x9, at] ; str w11, [x13, at]),
            2 => dynasm!(ops ; .arch aarch64 ; ldrh w11, [x9, at] ; strh w11, [x13, at]),
            _ => dynasm!(ops ; .arch aarch64 ; ldrb w11, [x9, at] ; strb w11, [x13, at]),
        }
        at += chunk;
    }
}

struct Emitter<'a> {
    ops: Asm,
    pool: Pool,
    req: &'a StubRequest<'a>,
    targets: RuntimeTargets,
    frame: Frame,
    /// The next free byte of the frame's struct copy area.
    next_copy: i32,
    slow: Vec<SlowPath>,
}

fn round16(n: i32) -> i32 {
    (n + 15) / 16 * 16
}

pub fn emit_stub(req: &StubRequest) -> Result<EmittedStub, EmitError> {
    let plan = req.plan;
    check_plan(req)?;
    let strings = plan.args.iter().filter(|e| e.ty == CType::CString).count() as i32;
    let has_struct = plan.args.iter().any(|e| matches!(e.ty, CType::Struct(_)));
    let ret_struct_size = match &plan.ret_ty {
        // + 16: register pieces are stored whole.
        CType::Struct(s) => round16(s.size as i32) + 16,
        _ => 0,
    };
    let argv = plan.stack_bytes as i32;
    let keep = argv + 8;
    let mut used = keep + 8 * strings;
    let block = req.blocking.then_some(used);
    used += block.map_or(0, |_| BLOCK_STACK + plan.stack_bytes as i32 + BLOCK_RET);
    let spill = has_struct.then_some(used);
    used += if has_struct { 8 * 8 } else { 0 };
    // Copies of structs over 16 bytes, passed by reference (8-aligned).
    let copies = used;
    for e in &plan.args {
        if let CLoc::ByReference { size, .. } = e.dest {
            used += (size as i32 + 7) / 8 * 8;
        }
    }
    let retbuf = round16(used);
    used = retbuf + ret_struct_size;
    let locals = round16(used);
    if locals > MAX_LOCALS {
        return Err(EmitError::Unsupported(format!("a stub frame of {locals} bytes")));
    }
    // Room for a typical stub up front (as x86_64: growing the buffers
    // byte by byte dominates the emitter's cost).
    let n = plan.args.len();
    let mut ops = Asm::new_with_capacity(0, 320 + 80 * n, 0, 0, 16 + 4 * n, 0, 16 + 4 * n);
    let pool = Pool::new(&mut ops, req.function, req.info);
    let mut em = Emitter {
        ops,
        pool,
        req,
        targets: *req.targets,
        frame: Frame { argv, keep, block, spill, retbuf, locals },
        next_copy: copies,
        slow: Vec::with_capacity(n),
    };
    em.prologue();
    let mut strings_seen = 0;
    for e in &plan.args {
        let ctx = ArgCtx { source: Source { src: e.source, frame: em.frame }, index: e.index as u32 };
        em.convert_arg(e, ctx, &mut strings_seen);
    }
    let inner = em.ops.new_dynamic_label();
    if req.blocking {
        em.call_without_gvl(inner);
    } else {
        em.call();
    }
    em.rebox_and_return();
    for slow in std::mem::take(&mut em.slow) {
        slow(&mut em.ops, &mut em.pool);
    }
    if req.blocking {
        em.emit_inner(inner);
    }
    let code_len = em.ops.offset().0;
    let (function_at, info_at) = em.pool.emit(&mut em.ops);
    let code = em.ops.finalize().map_err(|e| EmitError::Assembler(format!("{e:?}")))?;
    Ok(EmittedStub { code, code_len, function_at, info_at })
}

/// Rejects plans this emitter has no code for, before emitting anything.
fn check_plan(req: &StubRequest) -> Result<(), EmitError> {
    let plan = req.plan;
    // AAPCS64's long double is IEEE binary128 in a q register (Linux) or a
    // plain double (Apple); neither is implemented yet.
    if plan.ret_ty == CType::LongDouble || plan.args.iter().any(|e| e.ty == CType::LongDouble) {
        return Err(EmitError::Unsupported("long double on aarch64".into()));
    }
    for e in &plan.args {
        let ok = match (&e.ty, &e.dest) {
            (CType::Struct(_), CLoc::Pieces(p)) => p.iter().all(|p| {
                matches!(p.loc, CLoc::Int(0..=7) | CLoc::Float(0..=7) | CLoc::Stack(_)) && (1..=8).contains(&p.size)
            }),
            (CType::Struct(_), CLoc::StackCopy { .. }) => true,
            (CType::Struct(_), CLoc::ByReference { address, .. }) => matches!(**address, CLoc::Int(0..=7) | CLoc::Stack(_)),
            (CType::Struct(_), _) => false,
            (CType::F32 | CType::F64, CLoc::Float(k)) => *k < 8,
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

impl Emitter<'_> {
    fn prologue(&mut self) {
        let frame = self.frame;
        dynasm!(self.ops
            ; .arch aarch64
            ; stp x29, x30, [sp, #-16]!
            ; mov x29, sp
            ; sub sp, sp, frame.locals as u32
        );
        if let (Some(base), CfuncForm::Fixed(n)) = (frame.spill, self.req.plan.form) {
            for r in 1..=n.min(7) {
                dynasm!(self.ops ; .arch aarch64 ; str X(r), [sp, base as u32 + 8 * r as u32]);
            }
        }
        if let CfuncForm::Argv(n) = self.req.plan.form {
            // f(int argc, VALUE *argv, VALUE self): Ruby does not check the
            // count for this form, so the stub does.
            let arity = self.ops.new_dynamic_label();
            let helper = self.targets.arity_error;
            dynasm!(self.ops ; .arch aarch64 ; str x1, [sp, frame.argv as u32]);
            mov_imm(&mut self.ops, X9, n as u64);
            dynasm!(self.ops
                ; .arch aarch64
                ; cmp w0, w9
                ; b.ne =>arity
            );
            self.slow.push(Box::new(move |ops, pool| {
                dynasm!(ops ; .arch aarch64 ; =>arity);
                pool.load_info(ops, 1); // w0 still holds argc
                pool.load(ops, 16, helper as u64);
                dynasm!(ops ; .arch aarch64 ; blr x16 ; brk 0); // raises
            }));
        }
    }

    /// Moves the converted integer-class value in `reg` to its destination
    /// (for a blocking call: to its place in the call block). `bytes` is the
    /// C type's size: an 8-aligned stack slot gets the whole extended
    /// register (Linux: 8-byte slots), otherwise exactly the value's bytes
    /// (Apple packs stack arguments at their natural size).
    fn store_int(&mut self, dest: &CLoc, reg: u8, bytes: u32) {
        let stack_base = |block: Option<i32>| block.map_or(0, |b| b + BLOCK_STACK) as u32;
        match (dest, self.frame.block) {
            (CLoc::Int(k), None) => dynasm!(self.ops ; .arch aarch64 ; mov X(*k), X(reg)),
            (CLoc::Int(k), Some(b)) => dynasm!(self.ops ; .arch aarch64 ; str X(reg), [sp, b as u32 + 8 * *k as u32]),
            (CLoc::Stack(off), block) => {
                let at = stack_base(block) + off;
                if off % 8 == 0 || bytes == 8 {
                    dynasm!(self.ops ; .arch aarch64 ; str X(reg), [sp, at]);
                } else if bytes == 4 {
                    dynasm!(self.ops ; .arch aarch64 ; str W(reg), [sp, at]);
                } else if bytes == 2 {
                    dynasm!(self.ops ; .arch aarch64 ; strh W(reg), [sp, at]);
                } else {
                    dynasm!(self.ops ; .arch aarch64 ; strb W(reg), [sp, at]);
                }
            }
            _ => unreachable!("rejected in check_plan"),
        }
    }

    /// Stores d16 (a double, or a float in s16 when `single`) to its
    /// destination.
    fn store_float(&mut self, dest: &CLoc, single: bool) {
        match (dest, self.frame.block) {
            (CLoc::Float(k), None) => dynasm!(self.ops ; .arch aarch64 ; fmov D(*k), d16),
            (CLoc::Float(k), Some(b)) => {
                dynasm!(self.ops ; .arch aarch64 ; str d16, [sp, (b + BLOCK_D) as u32 + 8 * *k as u32])
            }
            (CLoc::Stack(off), block) => {
                let at = block.map_or(0, |b| b + BLOCK_STACK) as u32 + off;
                if single {
                    dynasm!(self.ops ; .arch aarch64 ; str s16, [sp, at])
                } else {
                    dynasm!(self.ops ; .arch aarch64 ; str d16, [sp, at])
                }
            }
            _ => unreachable!("rejected in check_plan"),
        }
    }

    fn convert_arg(&mut self, e: &PlanEntry, ctx: ArgCtx, strings_seen: &mut i32) {
        match e.ty {
            CType::LongDouble => unreachable!("rejected in check_plan"),
            CType::I8 | CType::I16 | CType::I32 | CType::U8 | CType::U16 | CType::U32 | CType::I64 | CType::U64 => {
                ctx.source.load(&mut self.ops, X9);
                self.unbox_integer(e, ctx)
            }
            CType::Bool => {
                ctx.source.load(&mut self.ops, X9);
                self.unbox_bool(e, ctx)
            }
            CType::F32 | CType::F64 => {
                ctx.source.load(&mut self.ops, X9);
                self.unbox_float(e, ctx)
            }
            CType::CString => {
                let keep = self.frame.keep + 8 * *strings_seen;
                *strings_seen += 1;
                ctx.source.load(&mut self.ops, X9);
                self.unbox_cstring(e, ctx, keep)
            }
            CType::Pointer => {
                ctx.source.load(&mut self.ops, X9);
                self.unbox_pointer(e, ctx)
            }
            CType::Struct(_) => {
                let copy_at = self.next_copy;
                if let CLoc::ByReference { size, .. } = e.dest {
                    self.next_copy += (size as i32 + 7) / 8 * 8;
                }
                self.copy_struct(e, ctx, copy_at)
            }
            CType::Void => unreachable!("rejected by the planner"),
        }
    }

    /// Fixnums inline, with the ffi gem's range rule (NUM2INT for signed
    /// narrow types, NUM2UINT for unsigned narrow types, none for 64-bit);
    /// anything else goes to the slow path, which applies the same rule to
    /// Bignum, Float and `to_int`. Narrow values are then truncated and
    /// extended to 32 bits (see the module comment).
    fn unbox_integer(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let (slow, done) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch aarch64
            ; tbz x9, 0, =>slow               // FIXNUM_FLAG is bit 0
            ; asr x9, x9, 1
        );
        let thunk = match e.ty {
            CType::I8 | CType::I16 | CType::I32 => {
                dynasm!(self.ops
                    ; .arch aarch64
                    ; cmp x9, w9, sxtw                // fits a C int?
                    ; b.ne =>slow
                );
                self.req.thunks.arg_int
            }
            CType::U8 | CType::U16 | CType::U32 => {
                // NUM2UINT accepts INT_MIN..UINT_MAX: v + 2**31 < 2**32 + 2**31.
                dynasm!(self.ops
                    ; .arch aarch64
                    ; mov x10, 0x8000_0000
                    ; add x10, x9, x10
                );
                mov_imm(&mut self.ops, X11, 0x1_8000_0000);
                dynasm!(self.ops
                    ; .arch aarch64
                    ; cmp x10, x11
                    ; b.hs =>slow
                );
                self.req.thunks.arg_uint
            }
            CType::I64 => self.req.thunks.arg_long_long,
            _ => self.req.thunks.arg_ulong_long,
        };
        dynasm!(self.ops ; .arch aarch64 ; =>done);
        match e.ty {
            CType::I8 => dynasm!(self.ops ; .arch aarch64 ; sxtb w9, w9),
            CType::U8 => dynasm!(self.ops ; .arch aarch64 ; uxtb w9, w9),
            CType::I16 => dynasm!(self.ops ; .arch aarch64 ; sxth w9, w9),
            CType::U16 => dynasm!(self.ops ; .arch aarch64 ; uxth w9, w9),
            // Writing a W register zeroes the upper half.
            CType::I32 | CType::U32 => dynasm!(self.ops ; .arch aarch64 ; mov w9, w9),
            _ => {}
        }
        self.store_int(&e.dest, X9, e.ty.size() as u32);
        self.slow.push(Box::new(move |ops, pool| {
            dynasm!(ops ; .arch aarch64 ; =>slow);
            ctx.convert_via(ops, pool, thunk);
            dynasm!(ops ; .arch aarch64 ; b =>done);
        }));
    }

    /// true → 1, false → 0; anything else raises TypeError (as the ffi gem).
    fn unbox_bool(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let (slow, done) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch aarch64
            ; cmp x9, QTRUE as u32
            ; cset w10, eq
            ; b.eq =>done
            ; cbnz x9, =>slow                    // Qfalse is 0
            ; =>done
        );
        self.store_int(&e.dest, 10, 1);
        let thunk = self.req.thunks.arg_bool;
        self.slow.push(Box::new(move |ops, pool| {
            dynasm!(ops ; .arch aarch64 ; =>slow);
            ctx.convert_via(ops, pool, thunk); // raises
            dynasm!(ops ; .arch aarch64 ; brk 0);
        }));
    }

    /// Flonums decoded inline (CRuby's rb_float_flonum_value), Fixnums
    /// converted in the slow section without a call; heap Floats, Bignums and
    /// `to_f` objects through the helper. The double is built in d16.
    fn unbox_float(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let (slow, zero, done) =
            (self.ops.new_dynamic_label(), self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch aarch64
            ; and x10, x9, FLONUM_MASK as u64
            ; cmp x10, FLONUM_FLAG as u32
            ; b.ne =>slow
        );
        mov_imm(&mut self.ops, 10, FLONUM_ZERO as u64);
        dynasm!(self.ops
            ; .arch aarch64
            ; cmp x9, x10
            ; b.eq =>zero
            // bits = rotr((2 - b63) | (v & ~3), 3)
            ; lsr x10, x9, 63
            ; mov x11, 2
            ; sub x11, x11, x10
            ; and x9, x9, 0xffff_ffff_ffff_fffc
            ; orr x9, x9, x11
            ; ror x9, x9, 3
            ; fmov d16, x9
            ; =>done
        );
        let single = e.ty == CType::F32;
        if single {
            dynasm!(self.ops ; .arch aarch64 ; fcvt s16, d16);
        }
        self.store_float(&e.dest, single);
        let thunk = self.req.thunks.arg_double;
        self.slow.push(Box::new(move |ops, pool| {
            let call = ops.new_dynamic_label();
            dynasm!(ops
                ; .arch aarch64
                ; =>zero
                ; fmov d16, xzr
                ; b =>done
                ; =>slow
                ; tbz x9, 0, =>call
                ; asr x9, x9, 1
                ; scvtf d16, x9
                ; b =>done
                ; =>call
            );
            ctx.convert_via(ops, pool, thunk); // result in d16
            dynasm!(ops ; .arch aarch64 ; b =>done);
        }));
    }

    /// nil → NULL; an embedded String in ASCII-8BIT or UTF-8 whose first
    /// NUL is right after its bytes (len < 16) → its pointer, inline (two
    /// word-at-a-time zero-byte scans). Everything else — heap strings,
    /// longer strings, other encodings, `to_str`, embedded NULs, wrong types
    /// — goes to the helper, which behaves like StringValueCStr.
    fn unbox_cstring(&mut self, e: &PlanEntry, ctx: ArgCtx, keep: i32) {
        let (slow, null, done, second) = (
            self.ops.new_dynamic_label(),
            self.ops.new_dynamic_label(),
            self.ops.new_dynamic_label(),
            self.ops.new_dynamic_label(),
        );
        let found = self.ops.new_dynamic_label();
        // One mask and compare: T_STRING, embedded, encoding index 0 or 1.
        let fast_kind = (T_MASK | RSTRING_NOEMBED | (ENCODING_MASK & !(1 << ENCODING_SHIFT))) as u64;
        split_immediates(&mut self.ops, slow, null);
        dynasm!(self.ops
            ; .arch aarch64
            ; ldr x10, [x9, RBASIC_FLAGS as u32]
        );
        mov_imm(&mut self.ops, X11, fast_kind);
        dynasm!(self.ops
            ; .arch aarch64
            ; and x11, x10, x11
            ; cmp x11, T_STRING as u32
            ; b.ne =>slow
        );
        match RSTRING_EMBED_LEN {
            EmbedLength::Flags { shift, width } => dynasm!(self.ops ; .arch aarch64 ; ubfx x10, x10, shift, width),
            EmbedLength::Field(at) => dynasm!(self.ops ; .arch aarch64 ; ldr x10, [x9, at as u32]),
        }
        dynasm!(self.ops
            ; .arch aarch64
            ; add x9, x9, RSTRING_EMBED_ARY as u32
            // The embedded area lies inside the object: reading 16 bytes
            // from it is safe whatever the length. Valid iff the first NUL
            // is at index len. Zero bytes of a word w: the lowest set bit of
            // (w - 0x01..01) & !w & 0x80..80 marks the first one exactly.
            ; mov x13, 0
            ; ldr x11, [x9]
            ; =>second
            ; orr x12, xzr, 0x0101_0101_0101_0101
            ; sub x12, x11, x12
            ; bic x12, x12, x11
            ; and x12, x12, 0x8080_8080_8080_8080
            ; cbnz x12, =>found
            ; cbnz x13, =>slow                   // no NUL in 16 bytes
            ; mov x13, 8
            ; ldr x11, [x9, 8]
            ; b =>second
            ; =>found
            ; rbit x12, x12
            ; clz x12, x12
            ; add x12, x13, x12, lsr 3           // index of the first NUL
            ; cmp x12, x10
            ; b.ne =>slow
            ; =>done
        );
        self.store_int(&e.dest, X9, 8);
        let thunk = self.req.thunks.arg_cstr;
        self.slow.push(Box::new(move |ops, pool| {
            dynasm!(ops
                ; .arch aarch64
                ; =>null
                ; cbz x9, =>slow                  // Qfalse → the helper's TypeError
                ; mov x9, 0
                ; b =>done
                ; =>slow
            );
            // StringValueCStr on a frame slot, so a `to_str` result stays
            // visible to the GC until the C call returns.
            ctx.source.load(ops, X9);
            dynasm!(ops
                ; .arch aarch64
                ; str x9, [sp, keep as u32]
                ; add x9, sp, keep as u32
            );
            ctx.call_thunk(ops, pool, thunk);
            dynasm!(ops ; .arch aarch64 ; b =>done);
        }));
    }

    /// nil → NULL; a Pointer (its rb_data_type_t, compared by address) →
    /// its address, inline. Subclasses with other data types, `to_ptr`,
    /// Strings and errors → the helper.
    fn unbox_pointer(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let (slow, null, done) =
            (self.ops.new_dynamic_label(), self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        split_immediates(&mut self.ops, slow, null);
        dynasm!(self.ops
            ; .arch aarch64
            ; ldr x10, [x9, RBASIC_FLAGS as u32]
            ; and x10, x10, T_MASK as u64
            ; cmp x10, T_DATA as u32             // offset 16 means `type` only for T_DATA
            ; b.ne =>slow
        );
        self.pool.load(&mut self.ops, 10, self.targets.pointer_data_type as u64);
        dynasm!(self.ops
            ; .arch aarch64
            ; ldr x11, [x9, RTYPEDDATA_TYPE as u32]
            ; cmp x10, x11
            ; b.ne =>slow
            ; ldr x9, [x9, RTYPEDDATA_DATA as u32]
            ; ldr x9, [x9]                       // Pointer's first field: address
            ; =>done
        );
        self.store_int(&e.dest, X9, 8);
        let thunk = self.req.thunks.arg_pointer;
        self.slow.push(Box::new(move |ops, pool| {
            dynasm!(ops
                ; .arch aarch64
                ; =>null
                ; cbz x9, =>slow
                ; mov x9, 0
                ; b =>done
                ; =>slow
            );
            ctx.convert_via(ops, pool, thunk);
            dynasm!(ops ; .arch aarch64 ; b =>done);
        }));
    }

    /// A struct by value: the helper checks the VALUE is a Struct (of at
    /// least the struct's size) and returns its address in x9; the stub
    /// then copies each piece to its register, or the whole struct to its
    /// stack slots or to the frame (over 16 bytes: the callee gets the
    /// copy's address), with loads and stores of exactly the struct's bytes.
    fn copy_struct(&mut self, e: &PlanEntry, ctx: ArgCtx, copy_at: i32) {
        let thunk = self.req.thunks.arg_struct;
        ctx.convert_via(&mut self.ops, &mut self.pool, thunk);
        let block = self.frame.block;
        let stack_base = block.map_or(0, |b| b + BLOCK_STACK) as u32;
        match &e.dest {
            CLoc::Pieces(pieces) => {
                for piece in pieces {
                    let (off, size) = (piece.offset, piece.size as u32);
                    match (&piece.loc, block) {
                        (CLoc::Int(k), None) => load_bytes(&mut self.ops, *k, off, size),
                        (CLoc::Int(k), Some(b)) => {
                            load_bytes(&mut self.ops, X11, off, size);
                            dynasm!(self.ops ; .arch aarch64 ; str x11, [sp, b as u32 + 8 * *k as u32]);
                        }
                        // HFA members: s or d registers, loaded exactly.
                        (CLoc::Float(k), None) if size == 4 => {
                            dynasm!(self.ops ; .arch aarch64 ; ldr S(*k), [x9, off])
                        }
                        (CLoc::Float(k), None) => dynasm!(self.ops ; .arch aarch64 ; ldr D(*k), [x9, off]),
                        (CLoc::Float(k), Some(b)) => {
                            load_bytes(&mut self.ops, X11, off, size);
                            dynasm!(self.ops ; .arch aarch64 ; str x11, [sp, (b + BLOCK_D) as u32 + 8 * *k as u32]);
                        }
                        // Apple variadic HFAs: one 8-byte slot per member.
                        (CLoc::Stack(slot), _) => {
                            load_bytes(&mut self.ops, X11, off, size);
                            dynasm!(self.ops ; .arch aarch64 ; str x11, [sp, stack_base + slot]);
                        }
                        _ => unreachable!("rejected in check_plan"),
                    }
                }
            }
            CLoc::StackCopy { offset, size } => {
                dynasm!(self.ops ; .arch aarch64 ; add x13, sp, stack_base + offset);
                copy_bytes(&mut self.ops, *size);
            }
            CLoc::ByReference { address, size } => {
                // AAPCS64 B.4: the callee may write to the copy, never to
                // the Struct's own memory.
                dynasm!(self.ops ; .arch aarch64 ; add x13, sp, copy_at as u32);
                copy_bytes(&mut self.ops, *size);
                self.store_int(address, 13, 8);
            }
            _ => unreachable!("rejected in check_plan"),
        }
    }

    fn call(&mut self) {
        if let RetLoc::Indirect { .. } = self.req.plan.ret {
            // AAPCS64: the result's address travels in x8.
            let retbuf = self.frame.retbuf;
            dynasm!(self.ops ; .arch aarch64 ; add x8, sp, retbuf as u32);
        }
        let function = self.pool.function.1;
        dynasm!(self.ops
            ; .arch aarch64
            ; ldr x16, =>function
            ; blr x16
        );
        self.save_errno();
    }

    /// `blocking: true`: the arguments are in the call block; run the inner
    /// function through rb_thread_call_without_gvl (other Ruby threads run
    /// meanwhile; Thread#raise/kill interrupt it like blocking IO), then
    /// pick up its result. Ruby restores errno after re-taking the GVL, so
    /// it is saved here as for any call.
    fn call_without_gvl(&mut self, inner: DynamicLabel) {
        let b = self.frame.block.expect("blocking frame") as u32;
        if let RetLoc::Indirect { .. } = self.req.plan.ret {
            let retbuf = self.frame.retbuf as u32;
            dynasm!(self.ops ; .arch aarch64 ; add x9, sp, retbuf ; str x9, [sp, b + 8 * 8]);
        }
        let ret = b + (BLOCK_STACK as u32) + self.req.plan.stack_bytes;
        dynasm!(self.ops
            ; .arch aarch64
            ; adr x0, =>inner
            ; add x1, sp, b
            ; movn x2, 0                         // RUBY_UBF_IO (-1)
            ; mov x3, 0
        );
        self.pool.load(&mut self.ops, 16, self.targets.call_without_gvl as u64);
        dynasm!(self.ops
            ; .arch aarch64
            ; blr x16
            ; add x9, sp, ret
            ; ldp x0, x1, [x9]
            ; ldp d0, d1, [x9, 16]
            ; ldp d2, d3, [x9, 32]
        );
        self.save_errno();
    }

    /// `void *inner(void *block)`: loads the argument registers and stack
    /// arguments from the block, calls the C function, stores x0, x1 and
    /// d0..d3 back into it.
    fn emit_inner(&mut self, inner: DynamicLabel) {
        let stack = self.req.plan.stack_bytes;
        let function = self.pool.function.1;
        dynasm!(self.ops
            ; .arch aarch64
            ; =>inner
            ; stp x29, x30, [sp, #-32]!
            ; mov x29, sp
            ; str x19, [sp, 16]
            ; mov x19, x0
            ; sub sp, sp, stack
        );
        for q in 0..stack / 8 {
            dynasm!(self.ops ; .arch aarch64 ; ldr x9, [x19, BLOCK_STACK as u32 + 8 * q] ; str x9, [sp, 8 * q]);
        }
        // Every argument register, used or not: simpler than tracking which
        // ones struct pieces and the result pointer filled.
        dynasm!(self.ops
            ; .arch aarch64
            ; ldp x0, x1, [x19] ; ldp x2, x3, [x19, 16] ; ldp x4, x5, [x19, 32] ; ldp x6, x7, [x19, 48]
            ; ldr x8, [x19, 64]
            ; ldp d0, d1, [x19, 72] ; ldp d2, d3, [x19, 88] ; ldp d4, d5, [x19, 104] ; ldp d6, d7, [x19, 120]
            ; ldr x16, =>function
            ; blr x16
            ; add x9, x19, BLOCK_STACK as u32 + stack
            ; stp x0, x1, [x9]
            ; stp d0, d1, [x9, 16]
            ; stp d2, d3, [x9, 32]
            ; mov sp, x29
            ; ldr x19, [sp, 16]
            ; ldp x29, x30, [sp], #32
            ; ret
        );
    }

    /// errno → the calling thread's saved copy (see runtime::errno): both
    /// are static TLS at fixed offsets from tpidr_el0. The offsets come from
    /// the pool (any i32, the same code for every process, and a harness can
    /// patch them). Uses x9..x12: the return registers (x0, x1, d0..d3) are
    /// live after the call.
    fn save_errno(&mut self) {
        let Some((errno, saved)) = self.targets.errno_tp_offsets else { return };
        self.pool.load(&mut self.ops, 10, errno as i64 as u64);
        self.pool.load(&mut self.ops, X11, saved as i64 as u64);
        dynasm!(self.ops
            ; .arch aarch64
            ; mrs x9, TPIDR_EL0
            ; ldr w12, [x9, x10]
            ; str w12, [x9, x11]
        );
    }

    fn epilogue(&mut self) {
        dynasm!(self.ops
            ; .arch aarch64
            ; mov sp, x29
            ; ldp x29, x30, [sp], #16
            ; ret
        );
    }

    /// `return target(x0)` (or `target(d0)`) as a tail call: the frame is
    /// gone when it runs.
    fn tail_call(&mut self, target: usize) {
        self.pool.load(&mut self.ops, 16, target as u64);
        dynasm!(self.ops
            ; .arch aarch64
            ; mov sp, x29
            ; ldp x29, x30, [sp], #16
            ; br x16
        );
    }

    /// x0 (n-bit, already extended to 64) → Fixnum in x0.
    fn tag_fixnum(&mut self) {
        dynasm!(self.ops ; .arch aarch64 ; lsl x0, x0, 1 ; orr x0, x0, 1);
    }

    /// C result (x0 / d0) → VALUE in x0, then return.
    fn rebox_and_return(&mut self) {
        let targets = self.targets;
        match self.req.plan.ret_ty {
            CType::LongDouble => unreachable!("rejected in check_plan"),
            CType::Void => mov_imm(&mut self.ops, 0, QNIL as u64),
            CType::Bool => dynasm!(self.ops
                ; .arch aarch64
                ; tst w0, 0xff                       // only the low byte is defined
                ; mov x10, QTRUE as u64
                ; csel x0, x10, xzr, ne
            ),
            // Only the low n bits are defined for narrow returns: extend, then tag.
            CType::I8 => {
                dynasm!(self.ops ; .arch aarch64 ; sxtb x0, w0);
                self.tag_fixnum()
            }
            CType::U8 => {
                dynasm!(self.ops ; .arch aarch64 ; uxtb w0, w0);
                self.tag_fixnum()
            }
            CType::I16 => {
                dynasm!(self.ops ; .arch aarch64 ; sxth x0, w0);
                self.tag_fixnum()
            }
            CType::U16 => {
                dynasm!(self.ops ; .arch aarch64 ; uxth w0, w0);
                self.tag_fixnum()
            }
            CType::I32 => {
                dynasm!(self.ops ; .arch aarch64 ; sxtw x0, w0);
                self.tag_fixnum()
            }
            CType::U32 => {
                dynasm!(self.ops ; .arch aarch64 ; mov w0, w0);
                self.tag_fixnum()
            }
            CType::I64 => {
                let big = self.ops.new_dynamic_label();
                dynasm!(self.ops
                    ; .arch aarch64
                    ; adds x10, x0, x0                 // overflows iff outside Fixnum range
                    ; b.vs =>big
                    ; orr x0, x10, 1
                );
                self.epilogue();
                dynasm!(self.ops ; .arch aarch64 ; =>big);
                self.tail_call(targets.ll2inum);
                return;
            }
            CType::U64 => {
                let big = self.ops.new_dynamic_label();
                dynasm!(self.ops
                    ; .arch aarch64
                    ; lsr x10, x0, 62                  // Fixnums hold 0..2**62-1
                    ; cbnz x10, =>big
                );
                self.tag_fixnum();
                self.epilogue();
                dynasm!(self.ops ; .arch aarch64 ; =>big);
                self.tail_call(targets.ull2inum);
                return;
            }
            CType::F32 | CType::F64 => {
                if self.req.plan.ret_ty == CType::F32 {
                    dynasm!(self.ops ; .arch aarch64 ; fcvt d0, s0);
                }
                self.rebox_double_and_return();
                return;
            }
            CType::Pointer => {
                self.tail_call(targets.ret_pointer);
                return;
            }
            CType::CString => {
                let null = self.ops.new_dynamic_label();
                dynasm!(self.ops ; .arch aarch64 ; cbz x0, =>null);
                self.tail_call(targets.str_new_cstr);
                dynasm!(self.ops ; .arch aarch64 ; =>null);
                mov_imm(&mut self.ops, 0, QNIL as u64);
            }
            CType::Struct(_) => self.rebox_struct(),
        }
        self.epilogue();
    }

    /// A struct return: its pieces (or the bytes the callee wrote through
    /// x8) are in the frame's return buffer; the helper makes a new Struct
    /// instance holding a copy.
    fn rebox_struct(&mut self) {
        let retbuf = self.frame.retbuf as u32;
        if let RetLoc::Pieces(pieces) = &self.req.plan.ret {
            for piece in pieces {
                let at = retbuf + piece.offset;
                match (&piece.loc, piece.size) {
                    (CLoc::Int(k), _) => dynasm!(self.ops ; .arch aarch64 ; str X(*k), [sp, at]),
                    (CLoc::Float(k), 4) => dynasm!(self.ops ; .arch aarch64 ; str S(*k), [sp, at]),
                    (CLoc::Float(k), _) => dynasm!(self.ops ; .arch aarch64 ; str D(*k), [sp, at]),
                    _ => unreachable!("struct results come back in registers"),
                }
            }
        }
        self.pool.load_info(&mut self.ops, 0);
        self.pool.load(&mut self.ops, 16, self.targets.ret_struct as u64);
        dynasm!(self.ops
            ; .arch aarch64
            ; add x1, sp, retbuf
            ; blr x16
        );
    }

    /// d0 → Float VALUE: a flonum when the exponent fits (CRuby's
    /// rb_float_new_inline), else a heap Float via rb_float_new_in_heap.
    fn rebox_double_and_return(&mut self) {
        let (not_flonum, heap) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch aarch64
            ; fmov x0, d0
            ; ubfx x10, x0, 60, 3
            ; sub w10, w10, 3
            ; tst w10, 0xffff_fffe                // exponent bits b62..b60 in {011, 100}?
            ; b.ne =>not_flonum
            ; mov x10, 0x3000_0000_0000_0000
            ; cmp x0, x10
            ; b.eq =>heap
            ; ror x0, x0, 61                      // rotate left by 3
            ; and x0, x0, 0xffff_ffff_ffff_fffe
            ; orr x0, x0, FLONUM_FLAG as u64
        );
        self.epilogue();
        dynasm!(self.ops
            ; .arch aarch64
            ; =>not_flonum
            ; cbnz x0, =>heap                     // +0.0 has its own flonum
        );
        mov_imm(&mut self.ops, 0, FLONUM_ZERO as u64);
        self.epilogue();
        dynasm!(self.ops ; .arch aarch64 ; =>heap); // d0 still holds the double
        self.tail_call(self.targets.float_new_in_heap);
    }
}
