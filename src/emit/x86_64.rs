//! x86-64 (SysV) forward stubs and the slow-path thunks they share.
//!
//! A stub is installed as the cfunc itself and converts each argument
//! straight into the register (or outgoing stack slot) the C function wants
//! it in:
//!
//! ```text
//!   sub rsp, FRAME              ; FRAME ≡ 8 (mod 16): rsp is 16-aligned below
//!   for each argument, left to right:
//!       rax ← its VALUE (incoming register, caller stack, or argv)
//!       unbox inline using only rax, r10, r11, xmm14, xmm15
//!       → its C register / stack slot
//!   [mov eax, #vector registers]  call [fn]
//!   rebox rax / xmm0 → rax; add rsp, FRAME; ret     (or a tail call)
//!   slow paths, out of line after the hot code
//!   literal pool: the C function, thunk and helper addresses, `info`
//! ```
//!
//! Why no staging area is needed: Ruby passes argument i in register i+1
//! (self is in rdi), and C wants the k-th integer argument in register k
//! with k ≤ i, so writing destinations left to right never overwrites a
//! VALUE not yet read.
//!
//! Slow paths call Rust helpers that clobber every caller-saved register.
//! They go through *thunks* (one per helper, emitted once per process) that
//! save and restore all argument registers around the helper. Thunk
//! contract: r10 = the VALUE (for :string, the address of a slot holding
//! it), r11 = the stub's info pointer, eax = the argument index; result in
//! rax, or xmm15 for doubles; only rax, r10, r11, xmm15 and flags change.

use super::ruby_layout::*;
use super::{EmitError, EmittedStub, RuntimeTargets, StubRequest, Thunks};
use crate::abi::{ArgSource, CLoc, CfuncForm, PlanEntry, RetLoc};
use crate::types::CType;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;
type SlowPath = Box<dyn FnOnce(&mut Asm, &mut Pool)>;

/// SysV integer argument registers in order: rdi, rsi, rdx, rcx, r8, r9.
const INT_ARG_REGS: [u8; 6] = [7, 6, 2, 1, 8, 9];
const RAX: u8 = 0;
const R10: u8 = 10;

/// 64-bit constants the stub loads RIP-relative (`call [=>label]` is 6 bytes
/// against 13 for `mov r11, imm64; call r11`), emitted after the code.
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

    fn label(&mut self, ops: &mut Asm, value: usize) -> DynamicLabel {
        if let Some((_, l)) = self.entries.iter().find(|(v, _)| *v == value as u64) {
            return *l;
        }
        let l = ops.new_dynamic_label();
        self.entries.push((value as u64, l));
        l
    }

    /// Emits the constants; returns the offsets of the function and info
    /// entries.
    fn emit(self, ops: &mut Asm) -> (usize, usize) {
        dynasm!(ops ; .arch x64 ; .align 8);
        let function_at = ops.offset().0;
        dynasm!(ops ; .arch x64 ; =>self.function.1 ; .u64 self.function.0);
        let info_at = ops.offset().0;
        dynasm!(ops ; .arch x64 ; =>self.info.1 ; .u64 self.info.0);
        for (value, label) in self.entries {
            dynasm!(ops ; .arch x64 ; =>label ; .u64 value);
        }
        (function_at, info_at)
    }
}

/// A thunk: save every argument register, call `target(r10, r11, eax)`,
/// restore.
fn emit_thunk(target: usize) -> Vec<u8> {
    let mut ops = Asm::new(0);
    // Entry rsp ≡ 8 (mod 16); 6 pushes + 72 bytes keep calls aligned.
    dynasm!(ops
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
    ops.finalize().expect("thunk assembles")
}

/// Machine code for every thunk, in the order of [`Thunks::from_addresses`].
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
        targets.arg_long_double,
    ]
    .into_iter()
    .map(emit_thunk)
    .collect()
}

/// Immediates (the VALUE in rax) → `slow`; nil and false → `null`, which
/// tells them apart (nil → NULL, false → the helper's error); heap objects
/// fall through.
fn split_immediates(ops: &mut Asm, slow: DynamicLabel, null: DynamicLabel) {
    if NIL_HAS_IMMEDIATE_BITS {
        dynasm!(ops
            ; .arch x64
            ; cmp rax, QNIL
            ; je =>null
            ; test al, IMMEDIATE_MASK as i8
            ; jnz =>slow
            ; test rax, rax
            ; jz =>null
        );
    } else {
        dynasm!(ops
            ; .arch x64
            ; test al, IMMEDIATE_MASK as i8
            ; jnz =>slow
            ; cmp rax, QNIL
            ; jbe =>null
        );
    }
}

/// The stub's own frame, below the return address.
#[derive(Clone, Copy)]
struct Frame {
    /// Slot for argv (argv form only). Outgoing stack arguments start at rsp+0.
    argv: i32,
    /// First keep-alive slot: one per :string argument, holding a `to_str`
    /// result for the conservative GC scan until the call returns.
    keep: i32,
    /// `blocking: true` only: the call block the GVL-free inner function
    /// reads (see `Emitter::call_without_gvl`).
    block: Option<i32>,
    /// Struct-by-value signatures only: incoming VALUE registers are spilled
    /// here first, because a struct's eightbytes may fill argument registers
    /// faster than Ruby's arguments are consumed.
    spill: Option<i32>,
    /// Struct returns: the bytes the callee returns (eightbytes spilled from
    /// rax/rdx/xmm0/xmm1, or written through the hidden pointer).
    retbuf: i32,
    size: i32,
}

/// Layout of a blocking call's block: 6 integer registers, 8 vector
/// registers, the stack arguments, then rax, xmm0, rdx, xmm1 after the call.
const BLOCK_XMM: i32 = 6 * 8;
const BLOCK_STACK: i32 = BLOCK_XMM + 8 * 8;

fn block_size(stack_bytes: i32) -> i32 {
    BLOCK_STACK + stack_bytes + 32
}

/// Where an argument's VALUE is when the stub's frame is set up.
#[derive(Clone, Copy)]
struct Source {
    src: ArgSource,
    frame: Frame,
}

impl Source {
    fn load(&self, ops: &mut Asm, reg: u8) {
        match self.src {
            ArgSource::Int(r) => match self.frame.spill {
                Some(base) => dynasm!(ops ; .arch x64 ; mov Rq(reg), [rsp + base + 8 * r as i32]),
                None => dynasm!(ops ; .arch x64 ; mov Rq(reg), Rq(INT_ARG_REGS[r as usize])),
            },
            // Above the frame and the return address.
            ArgSource::Stack(off) => dynasm!(ops ; .arch x64 ; mov Rq(reg), [rsp + self.frame.size + 8 + off as i32]),
            ArgSource::Argv(i) => dynasm!(ops
                ; .arch x64
                ; mov Rq(reg), [rsp + self.frame.argv]
                ; mov Rq(reg), [Rq(reg) + 8 * i as i32]
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
    /// Loads r11 = info, eax = index and calls `thunk` (r10 already set).
    fn call_thunk(&self, ops: &mut Asm, pool: &mut Pool, thunk: usize) {
        let (info, thunk) = (pool.info.1, pool.label(ops, thunk));
        dynasm!(ops
            ; .arch x64
            ; mov r11, [=>info]
            ; mov eax, self.index as i32
            ; call QWORD [=>thunk]
        );
    }

    /// The usual slow path: r10 = the VALUE, then the thunk.
    fn convert_via(&self, ops: &mut Asm, pool: &mut Pool, thunk: usize) {
        self.source.load(ops, R10);
        self.call_thunk(ops, pool, thunk);
    }
}

/// r10 ← the `n` (1..=8) bytes at [rax + off], zero-extended, reading no
/// byte past them (the struct may end at a page boundary). Uses r11.
fn load_bytes(ops: &mut Asm, off: i32, n: i32) {
    let mut done = 0;
    for chunk in [4, 2, 1] {
        if n == 8 {
            dynasm!(ops ; .arch x64 ; mov r10, [rax + off]);
            return;
        }
        if (n - done) & chunk == 0 {
            continue;
        }
        let reg = if done == 0 { 10 } else { 11 };
        match chunk {
            4 => dynasm!(ops ; .arch x64 ; mov Rd(reg), [rax + off + done]),
            2 => dynasm!(ops ; .arch x64 ; movzx Rd(reg), WORD [rax + off + done]),
            _ => dynasm!(ops ; .arch x64 ; movzx Rd(reg), BYTE [rax + off + done]),
        }
        if done > 0 {
            dynasm!(ops ; .arch x64 ; shl r11, (8 * done) as i8 ; or r10, r11);
        }
        done += chunk;
    }
}

struct Emitter<'a> {
    ops: Asm,
    pool: Pool,
    req: &'a StubRequest<'a>,
    targets: RuntimeTargets,
    thunks: Thunks,
    frame: Frame,
    slow: Vec<SlowPath>,
}

pub fn emit_stub(req: &StubRequest) -> Result<EmittedStub, EmitError> {
    let plan = req.plan;
    let strings = plan.args.iter().filter(|e| e.ty == CType::CString).count() as i32;
    let has_struct = plan.args.iter().any(|e| matches!(e.ty, CType::Struct(_)));
    let ret_struct_size = match &plan.ret_ty {
        CType::Struct(s) => (s.size as i32 + 15) / 16 * 16,
        CType::LongDouble => 16,
        _ => 0,
    };
    let argv = plan.stack_bytes as i32;
    let keep = argv + 8;
    let mut used = keep + 8 * strings;
    let block = req.blocking.then_some(used);
    used += block.map_or(0, |_| block_size(plan.stack_bytes as i32));
    let spill = has_struct.then_some(used);
    used += if has_struct { 8 * 6 } else { 0 };
    let retbuf = (used + 15) / 16 * 16;
    used = retbuf + ret_struct_size;
    // Entry rsp ≡ 8 (mod 16); FRAME ≡ 8 makes rsp 16-aligned for calls.
    let size = (used + 8) / 16 * 16 + 8;
    // Room for a typical stub up front: growing these buffers byte by byte
    // was a third of the emitter's cost.
    let n = plan.args.len();
    let mut ops = Asm::new_with_capacity(0, 256 + 64 * n, 0, 0, 16 + 4 * n, 0, 16 + 4 * n);
    let pool = Pool::new(&mut ops, req.function, req.info);
    let mut em = Emitter {
        ops,
        pool,
        req,
        targets: *req.targets,
        thunks: *req.thunks,
        frame: Frame { argv, keep, block, spill, retbuf, size },
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

impl Emitter<'_> {
    fn prologue(&mut self) {
        let frame = self.frame;
        if frame.size < 128 {
            dynasm!(self.ops ; .arch x64 ; sub rsp, BYTE frame.size as i8);
        } else {
            dynasm!(self.ops ; .arch x64 ; sub rsp, frame.size);
        }
        if let (Some(base), CfuncForm::Fixed(n)) = (frame.spill, self.req.plan.form) {
            for r in 1..=(n as usize).min(5) {
                dynasm!(self.ops ; .arch x64 ; mov [rsp + base + 8 * r as i32], Rq(INT_ARG_REGS[r]));
            }
        }
        if let CfuncForm::Argv(n) = self.req.plan.form {
            // f(int argc, VALUE *argv, VALUE self): Ruby does not check the
            // count for this form, so the stub does.
            let arity = self.ops.new_dynamic_label();
            let helper = self.targets.arity_error;
            dynasm!(self.ops
                ; .arch x64
                ; mov [rsp + frame.argv], rsi
                ; cmp edi, n as i32
                ; jne =>arity
            );
            self.slow.push(Box::new(move |ops, pool| {
                let (info, helper) = (pool.info.1, pool.label(ops, helper));
                dynasm!(ops
                    ; .arch x64
                    ; =>arity
                    ; mov rsi, [=>info]                // edi still holds argc
                    ; call QWORD [=>helper]            // raises
                    ; int3
                );
            }));
        }
    }

    /// Moves the converted integer-class value in `reg` to its destination
    /// (for a blocking call: to its place in the call block).
    fn store_int(&mut self, dest: &CLoc, reg: u8) {
        match (dest, self.frame.block) {
            (CLoc::Int(k), None) => dynasm!(self.ops ; .arch x64 ; mov Rq(INT_ARG_REGS[*k as usize]), Rq(reg)),
            (CLoc::Stack(off), None) => dynasm!(self.ops ; .arch x64 ; mov [rsp + *off as i32], Rq(reg)),
            (CLoc::Int(k), Some(b)) => dynasm!(self.ops ; .arch x64 ; mov [rsp + b + 8 * *k as i32], Rq(reg)),
            (CLoc::Stack(off), Some(b)) => dynasm!(self.ops ; .arch x64 ; mov [rsp + b + BLOCK_STACK + *off as i32], Rq(reg)),
            _ => unreachable!("rejected in emit_stub"),
        }
    }

    /// Stores xmm15 (a double, or a float when `single`) to its destination.
    fn store_float(&mut self, dest: &CLoc, single: bool) {
        match (dest, self.frame.block) {
            (CLoc::Float(k), None) => dynasm!(self.ops ; .arch x64 ; movaps Rx(*k), xmm15),
            (CLoc::Float(k), Some(b)) => dynasm!(self.ops ; .arch x64 ; movsd QWORD [rsp + b + BLOCK_XMM + 8 * *k as i32], xmm15),
            (CLoc::Stack(off), block) => {
                let off = block.map_or(0, |b| b + BLOCK_STACK) + *off as i32;
                if single {
                    dynasm!(self.ops ; .arch x64 ; movss DWORD [rsp + off], xmm15)
                } else {
                    dynasm!(self.ops ; .arch x64 ; movsd QWORD [rsp + off], xmm15)
                }
            }
            _ => unreachable!("floats go to vector registers or the stack"),
        }
    }

    fn convert_arg(&mut self, e: &PlanEntry, ctx: ArgCtx, strings_seen: &mut i32) {
        ctx.source.load(&mut self.ops, RAX);
        match e.ty {
            CType::I8 | CType::I16 | CType::I32 | CType::U8 | CType::U16 | CType::U32 | CType::I64 | CType::U64 => {
                self.unbox_integer(e, ctx)
            }
            CType::Bool => self.unbox_bool(e, ctx),
            CType::F32 | CType::F64 => self.unbox_float(e, ctx),
            CType::CString => {
                let keep = self.frame.keep + 8 * *strings_seen;
                *strings_seen += 1;
                self.unbox_cstring(e, ctx, keep)
            }
            CType::Pointer => self.unbox_pointer(e, ctx),
            CType::Struct(_) => self.copy_struct(e, ctx),
            CType::LongDouble => self.convert_long_double(e, ctx),
            CType::Void => unreachable!("rejected by the planner"),
        }
    }

    /// Fixnums inline, with the ffi gem's range rule (NUM2INT for signed
    /// narrow types, NUM2UINT for unsigned narrow types, none for 64-bit);
    /// anything else goes to the slow path, which applies the same rule to
    /// Bignum, Float and `to_int`. Narrow values are then truncated and
    /// extended to 32 bits: SysV leaves that to the caller, and clang-built
    /// callees rely on it.
    fn unbox_integer(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let (slow, done) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch x64
            ; test al, FIXNUM_FLAG as i8
            ; jz =>slow
            ; sar rax, 1
        );
        let thunk = match e.ty {
            CType::I8 | CType::I16 | CType::I32 => {
                dynasm!(self.ops
                    ; .arch x64
                    ; movsxd r10, eax            // fits a C int?
                    ; cmp r10, rax
                    ; jne =>slow
                );
                self.thunks.arg_int
            }
            CType::U8 | CType::U16 | CType::U32 => {
                // NUM2UINT accepts INT_MIN..UINT_MAX: v + 2**31 < 2**32 + 2**31.
                dynasm!(self.ops
                    ; .arch x64
                    ; mov r10d, 0x8000_0000u32 as i32
                    ; add r10, rax
                    ; mov r11, QWORD 0x1_8000_0000
                    ; cmp r10, r11
                    ; jae =>slow
                );
                self.thunks.arg_uint
            }
            CType::I64 => self.thunks.arg_long_long,
            _ => self.thunks.arg_ulong_long,
        };
        dynasm!(self.ops ; .arch x64 ; =>done);
        match e.ty {
            CType::I8 => dynasm!(self.ops ; .arch x64 ; movsx eax, al),
            CType::U8 => dynasm!(self.ops ; .arch x64 ; movzx eax, al),
            CType::I16 => dynasm!(self.ops ; .arch x64 ; movsx eax, ax),
            CType::U16 => dynasm!(self.ops ; .arch x64 ; movzx eax, ax),
            _ => {}
        }
        self.store_int(&e.dest, RAX);
        self.slow.push(Box::new(move |ops, pool| {
            dynasm!(ops ; .arch x64 ; =>slow);
            ctx.convert_via(ops, pool, thunk);
            dynasm!(ops ; .arch x64 ; jmp =>done);
        }));
    }

    /// true → 1, false → 0; anything else raises TypeError (as the ffi gem).
    fn unbox_bool(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let (slow, done) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch x64
            ; xor r10d, r10d
            ; cmp rax, QTRUE
            ; sete r10b
            ; je =>done
            ; test rax, rax                   // Qfalse is 0
            ; jnz =>slow
            ; =>done
        );
        self.store_int(&e.dest, R10);
        let thunk = self.thunks.arg_bool;
        self.slow.push(Box::new(move |ops, pool| {
            dynasm!(ops ; .arch x64 ; =>slow);
            ctx.convert_via(ops, pool, thunk); // raises
            dynasm!(ops ; .arch x64 ; int3);
        }));
    }

    /// Flonums decoded inline (CRuby's rb_float_flonum_value), Fixnums
    /// converted in the slow section without a call; heap Floats, Bignums and
    /// `to_f` objects through the helper. The double is built in xmm15.
    fn unbox_float(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let (slow, zero, done) =
            (self.ops.new_dynamic_label(), self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch x64
            ; mov r10d, eax
            ; and r10d, FLONUM_MASK
            ; cmp r10d, FLONUM_FLAG
            ; jne =>slow
            ; mov r10, QWORD FLONUM_ZERO
            ; cmp rax, r10
            ; je =>zero
            // bits = rotr((2 - b63) | (v & ~3), 3)
            ; mov r10, rax
            ; shr r10, 63
            ; mov r11d, 2
            ; sub r11d, r10d
            ; and rax, -4
            ; or rax, r11
            ; ror rax, 3
            ; movq xmm15, rax
            ; =>done
        );
        let single = e.ty == CType::F32;
        if single {
            dynasm!(self.ops ; .arch x64 ; cvtsd2ss xmm15, xmm15);
        }
        self.store_float(&e.dest, single);
        let thunk = self.thunks.arg_double;
        self.slow.push(Box::new(move |ops, pool| {
            let call = ops.new_dynamic_label();
            dynasm!(ops
                ; .arch x64
                ; =>zero
                ; xorps xmm15, xmm15
                ; jmp =>done
                ; =>slow
                ; test al, FIXNUM_FLAG as i8
                ; jz =>call
                ; sar rax, 1
                ; cvtsi2sd xmm15, rax
                ; jmp =>done
                ; =>call
            );
            ctx.convert_via(ops, pool, thunk); // result in xmm15
            dynasm!(ops ; .arch x64 ; jmp =>done);
        }));
    }

    /// nil → NULL; an embedded String in ASCII-8BIT or UTF-8 whose first
    /// NUL is right after its bytes → its pointer, inline (one SSE compare).
    /// Everything else — heap strings, 16+ bytes, other encodings, `to_str`,
    /// embedded NULs, wrong types — goes to the helper, which behaves like
    /// StringValueCStr (with its own fast path for plain heap strings).
    fn unbox_cstring(&mut self, e: &PlanEntry, ctx: ArgCtx, keep: i32) {
        let (slow, null, done) =
            (self.ops.new_dynamic_label(), self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        // One mask and compare: T_STRING, embedded, encoding index 0 or 1.
        let fast_kind = T_MASK | RSTRING_NOEMBED | (ENCODING_MASK & !(1 << ENCODING_SHIFT));
        split_immediates(&mut self.ops, slow, null);
        dynasm!(self.ops
            ; .arch x64
            ; mov r10, [rax + RBASIC_FLAGS]
            ; mov r11d, r10d
            ; and r11d, fast_kind
            ; cmp r11d, T_STRING
            ; jne =>slow
        );
        match RSTRING_EMBED_LEN {
            EmbedLength::Flags { shift, width } => dynasm!(self.ops
                ; .arch x64
                ; shr r10d, shift as i8
                ; and r10d, ((1u32 << width) - 1) as i32
            ),
            EmbedLength::Field(at) => dynasm!(self.ops ; .arch x64 ; mov r10, [rax + at]),
        }
        dynasm!(self.ops
            ; .arch x64
            ; lea rax, [rax + RSTRING_EMBED_ARY]
            // The embedded area lies inside the object: reading 16 bytes
            // from it is safe whatever the length. Valid iff the first NUL
            // is at index len (so len < 16 here).
            ; movdqu xmm15, [rax]
            ; pxor xmm14, xmm14
            ; pcmpeqb xmm15, xmm14
            ; pmovmskb r11d, xmm15
            ; bsf r11d, r11d
            ; jz =>slow
            ; cmp r11, r10
            ; jne =>slow
            ; =>done
        );
        self.store_int(&e.dest, RAX);
        let thunk = self.thunks.arg_cstr;
        self.slow.push(Box::new(move |ops, pool| {
            dynasm!(ops
                ; .arch x64
                ; =>null
                ; test rax, rax                  // Qfalse → the helper's TypeError
                ; jz =>slow
                ; xor eax, eax
                ; jmp =>done
                ; =>slow
            );
            // StringValueCStr on a frame slot, so a `to_str` result stays
            // visible to the GC until the C call returns.
            ctx.source.load(ops, R10);
            dynasm!(ops
                ; .arch x64
                ; mov [rsp + keep], r10
                ; lea r10, [rsp + keep]
            );
            ctx.call_thunk(ops, pool, thunk);
            dynasm!(ops ; .arch x64 ; jmp =>done);
        }));
    }

    /// A long double travels in a 16-byte stack slot: the VALUE is parked
    /// in that slot and the helper overwrites it with the 80-bit value
    /// (ffi's rules: Float via double, BigDecimal at full precision, else
    /// NUM2DBL). No inline path: x87 values are rare and never hot.
    fn convert_long_double(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let CLoc::Stack(off) = e.dest else { unreachable!("long doubles travel in memory") };
        let at = self.frame.block.map_or(0, |b| b + BLOCK_STACK) + off as i32;
        dynasm!(self.ops ; .arch x64 ; mov [rsp + at], rax ; lea r10, [rsp + at]);
        let thunk = self.thunks.arg_long_double;
        ctx.call_thunk(&mut self.ops, &mut self.pool, thunk);
    }

    /// A struct by value: the helper checks the VALUE is a Struct (of at
    /// least the struct's size) and returns its address in rax; the stub
    /// then copies each eightbyte to its register, or the whole struct to
    /// its stack slots, with loads of exactly the struct's bytes.
    fn copy_struct(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let thunk = self.thunks.arg_struct;
        ctx.source.load(&mut self.ops, R10);
        ctx.call_thunk(&mut self.ops, &mut self.pool, thunk);
        let block = self.frame.block;
        match &e.dest {
            CLoc::Pieces(pieces) => {
                for piece in pieces {
                    load_bytes(&mut self.ops, piece.offset as i32, piece.size as i32);
                    match (piece.loc.clone(), block) {
                        (CLoc::Int(k), None) => dynasm!(self.ops ; .arch x64 ; mov Rq(INT_ARG_REGS[k as usize]), r10),
                        (CLoc::Float(k), None) => dynasm!(self.ops ; .arch x64 ; movq Rx(k), r10),
                        (CLoc::Int(k), Some(b)) => dynasm!(self.ops ; .arch x64 ; mov [rsp + b + 8 * k as i32], r10),
                        (CLoc::Float(k), Some(b)) => dynasm!(self.ops ; .arch x64 ; mov [rsp + b + BLOCK_XMM + 8 * k as i32], r10),
                        _ => unreachable!("eightbytes go to registers"),
                    }
                }
            }
            CLoc::StackCopy { offset, size } => {
                let base = block.map_or(0, |b| b + BLOCK_STACK) + *offset as i32;
                let mut at = 0;
                while at < *size as i32 {
                    load_bytes(&mut self.ops, at, (*size as i32 - at).min(8));
                    dynasm!(self.ops ; .arch x64 ; mov [rsp + base + at], r10);
                    at += 8;
                }
            }
            _ => unreachable!("the planner gives structs pieces or a stack copy"),
        }
    }

    /// nil → NULL; a Pointer (its rb_data_type_t, compared by address) →
    /// `[data + 0]`, its address, inline. A Struct (the other data type
    /// compared) → `[[data + 0] + 0]`: its StructData's first field is the
    /// Pointer data it views (out of line, so the Pointer path keeps its
    /// length), if the parameter requires no Struct class (`info.ref_classes[i]`
    /// is 0, see runtime::StubInfo) or the object's class is exactly that
    /// one. Other data types and classes, `to_ptr`, Strings and errors →
    /// the helper.
    fn unbox_pointer(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let (slow, null, done) =
            (self.ops.new_dynamic_label(), self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        let (not_pointer, load_address) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        let pointer_type = self.pool.label(&mut self.ops, self.targets.pointer_data_type);
        let struct_type = self.pool.label(&mut self.ops, self.targets.struct_data_type);
        let (info, class_slot) = (self.pool.info.1, 8 * e.index as i32);
        let any_class = self.ops.new_dynamic_label();
        split_immediates(&mut self.ops, slow, null);
        dynasm!(self.ops
            ; .arch x64
            ; mov r10, [rax + RBASIC_FLAGS]
            ; and r10d, T_MASK
            ; cmp r10d, T_DATA                // offset 16 means `type` only for T_DATA
            ; jne =>slow
            ; mov r10, [rax + RTYPEDDATA_TYPE]
            ; cmp r10, [=>pointer_type]
            ; jne =>not_pointer
            ; mov rax, [rax + RTYPEDDATA_DATA]
            ; =>load_address
            ; mov rax, [rax]                  // Pointer's first field: address
            ; =>done
        );
        self.store_int(&e.dest, RAX);
        let thunk = self.thunks.arg_pointer;
        self.slow.push(Box::new(move |ops, pool| {
            dynasm!(ops
                ; .arch x64
                ; =>not_pointer
                ; cmp r10, [=>struct_type]
                ; jne =>slow
                ; mov r11, [=>info]
                ; mov r11, [r11]              // StubInfo.ref_classes
                ; mov r11, [r11 + class_slot]
                ; test r11, r11
                ; jz =>any_class
                ; cmp r11, [rax + RBASIC_KLASS]
                ; jne =>slow
                ; =>any_class
                ; mov rax, [rax + RTYPEDDATA_DATA]
                ; mov rax, [rax]              // StructData's first field: its Pointer's data
                ; jmp =>load_address
                ; =>null
                ; test rax, rax
                ; jz =>slow
                ; xor eax, eax
                ; jmp =>done
                ; =>slow
            );
            ctx.convert_via(ops, pool, thunk);
            dynasm!(ops ; .arch x64 ; jmp =>done);
        }));
    }

    fn call(&mut self) {
        if let RetLoc::Indirect { .. } = self.req.plan.ret {
            let retbuf = self.frame.retbuf;
            dynasm!(self.ops ; .arch x64 ; lea rdi, [rsp + retbuf]);
        }
        if self.req.plan.variadic {
            dynasm!(self.ops ; .arch x64 ; mov eax, self.req.plan.float_regs_used as i32);
        }
        let function = self.pool.function.1;
        dynasm!(self.ops ; .arch x64 ; call QWORD [=>function]);
        self.save_errno();
    }

    /// `blocking: true`: the arguments are in the call block; run the inner
    /// function through rb_thread_call_without_gvl (other Ruby threads run
    /// meanwhile; Thread#raise/kill interrupt it like blocking IO), then
    /// pick up its result. Ruby restores errno after re-taking the GVL, so
    /// it is saved here as for any call.
    fn call_without_gvl(&mut self, inner: DynamicLabel) {
        let b = self.frame.block.expect("blocking frame");
        if let RetLoc::Indirect { .. } = self.req.plan.ret {
            let retbuf = self.frame.retbuf;
            dynasm!(self.ops ; .arch x64 ; lea rax, [rsp + retbuf] ; mov [rsp + b], rax);
        }
        let ret = b + BLOCK_STACK + self.req.plan.stack_bytes as i32;
        let without_gvl = self.pool.label(&mut self.ops, self.targets.call_without_gvl);
        dynasm!(self.ops
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
        self.save_errno();
    }

    /// `void *inner(void *block)`: loads the argument registers and stack
    /// arguments from the block, calls the C function, stores rax and xmm0.
    fn emit_inner(&mut self, inner: DynamicLabel) {
        let stack = self.req.plan.stack_bytes as i32;
        let function = self.pool.function.1;
        dynasm!(self.ops
            ; .arch x64
            ; =>inner
            ; push rbx                         // rsp 16-aligned from here
            ; mov rbx, rdi
        );
        if stack > 0 {
            dynasm!(self.ops ; .arch x64 ; sub rsp, stack);
        }
        for q in 0..stack / 8 {
            dynasm!(self.ops ; .arch x64 ; mov rax, [rbx + BLOCK_STACK + 8 * q] ; mov [rsp + 8 * q], rax);
        }
        // Every argument register, used or not: simpler than tracking
        // which ones struct eightbytes and the hidden pointer filled.
        for k in 0..6u8 {
            dynasm!(self.ops ; .arch x64 ; mov Rq(INT_ARG_REGS[k as usize]), [rbx + 8 * k as i32]);
        }
        for k in 0..8u8 {
            dynasm!(self.ops ; .arch x64 ; movsd Rx(k), [rbx + BLOCK_XMM + 8 * k as i32]);
        }
        if self.req.plan.variadic {
            dynasm!(self.ops ; .arch x64 ; mov eax, self.req.plan.float_regs_used as i32);
        }
        dynasm!(self.ops
            ; .arch x64
            ; call QWORD [=>function]
            ; mov [rbx + BLOCK_STACK + stack], rax
            ; movsd [rbx + BLOCK_STACK + stack + 8], xmm0
            ; mov [rbx + BLOCK_STACK + stack + 16], rdx
            ; movsd [rbx + BLOCK_STACK + stack + 24], xmm1
        );
        if self.req.plan.ret == RetLoc::X87 {
            // Pop st(0) over the rax/xmm0 words: the x87 stack must be
            // empty again, and the stub reads the value from here.
            dynasm!(self.ops ; .arch x64 ; fstp TWORD [rbx + BLOCK_STACK + stack]);
        }
        if stack > 0 {
            dynasm!(self.ops ; .arch x64 ; add rsp, stack);
        }
        dynasm!(self.ops ; .arch x64 ; pop rbx ; ret);
    }

    /// errno → the calling thread's saved slot (see runtime::errno): both
    /// are static TLS at fixed fs offsets. Uses esi: the return registers
    /// (rax, rdx, xmm0, xmm1) are live after the call.
    fn save_errno(&mut self) {
        let Some((errno, saved)) = self.targets.errno_tp_offsets else { return };
        dynasm!(self.ops
            ; .arch x64
            ; fs mov esi, DWORD [errno]
            ; fs mov DWORD [saved], esi
        );
    }

    fn epilogue(&mut self) {
        let size = self.frame.size;
        dynasm!(self.ops ; .arch x64 ; add rsp, size ; ret);
    }

    /// `return target(rax)` as a tail call: the frame is gone when it runs.
    fn tail_call_with_rax(&mut self, target: usize) {
        let size = self.frame.size;
        let target = self.pool.label(&mut self.ops, target);
        dynasm!(self.ops
            ; .arch x64
            ; mov rdi, rax
            ; add rsp, size
            ; jmp QWORD [=>target]
        );
    }

    /// C result (rax / xmm0) → VALUE in rax, then return.
    fn rebox_and_return(&mut self) {
        let targets = self.targets;
        let size = self.frame.size;
        match self.req.plan.ret_ty {
            CType::Void => dynasm!(self.ops ; .arch x64 ; mov eax, QNIL),
            CType::Bool => dynasm!(self.ops
                ; .arch x64
                ; test al, al
                ; mov eax, QFALSE
                ; mov r10d, QTRUE
                ; cmovnz eax, r10d
            ),
            // Only al/ax/eax are defined for narrow returns: extend, then tag.
            CType::I8 => dynasm!(self.ops ; .arch x64 ; movsx rax, al ; lea rax, [rax + rax + 1]),
            CType::U8 => dynasm!(self.ops ; .arch x64 ; movzx eax, al ; lea rax, [rax + rax + 1]),
            CType::I16 => dynasm!(self.ops ; .arch x64 ; movsx rax, ax ; lea rax, [rax + rax + 1]),
            CType::U16 => dynasm!(self.ops ; .arch x64 ; movzx eax, ax ; lea rax, [rax + rax + 1]),
            CType::I32 => dynasm!(self.ops ; .arch x64 ; movsxd rax, eax ; lea rax, [rax + rax + 1]),
            CType::U32 => dynasm!(self.ops ; .arch x64 ; mov eax, eax ; lea rax, [rax + rax + 1]),
            CType::I64 => {
                let big = self.ops.new_dynamic_label();
                dynasm!(self.ops
                    ; .arch x64
                    ; mov r10, rax
                    ; add r10, r10                  // overflows iff outside Fixnum range
                    ; jo =>big
                    ; lea rax, [r10 + 1]
                    ; add rsp, size
                    ; ret
                    ; =>big
                );
                self.tail_call_with_rax(targets.ll2inum);
                return;
            }
            CType::U64 => {
                let big = self.ops.new_dynamic_label();
                dynasm!(self.ops
                    ; .arch x64
                    ; mov r10, rax
                    ; shr r10, 62                   // Fixnums hold 0..2**62-1
                    ; jnz =>big
                    ; lea rax, [rax + rax + 1]
                    ; add rsp, size
                    ; ret
                    ; =>big
                );
                self.tail_call_with_rax(targets.ull2inum);
                return;
            }
            CType::F32 | CType::F64 => {
                if self.req.plan.ret_ty == CType::F32 {
                    dynasm!(self.ops ; .arch x64 ; cvtss2sd xmm0, xmm0);
                }
                self.rebox_double_and_return();
                return;
            }
            CType::Pointer => {
                self.tail_call_with_rax(targets.ret_pointer);
                return;
            }
            CType::CString => {
                let null = self.ops.new_dynamic_label();
                dynasm!(self.ops
                    ; .arch x64
                    ; test rax, rax
                    ; jz =>null
                );
                self.tail_call_with_rax(targets.str_new_cstr);
                dynasm!(self.ops ; .arch x64 ; =>null ; mov eax, QNIL);
            }
            CType::Struct(_) => self.rebox_struct(),
            CType::LongDouble => self.rebox_long_double(),
        }
        self.epilogue();
    }

    /// A struct return: its eightbytes (or the bytes the callee wrote
    /// through the hidden pointer) are in the frame's return buffer; the
    /// helper makes a new Struct instance holding a copy.
    fn rebox_struct(&mut self) {
        let retbuf = self.frame.retbuf;
        if let RetLoc::Pieces(pieces) = &self.req.plan.ret {
            for piece in pieces {
                let at = retbuf + piece.offset as i32;
                match piece.loc {
                    CLoc::Int(0) => dynasm!(self.ops ; .arch x64 ; mov [rsp + at], rax),
                    CLoc::Int(_) => dynasm!(self.ops ; .arch x64 ; mov [rsp + at], rdx),
                    CLoc::Float(0) => dynasm!(self.ops ; .arch x64 ; movsd [rsp + at], xmm0),
                    _ => dynasm!(self.ops ; .arch x64 ; movsd [rsp + at], xmm1),
                }
            }
        }
        let (info, helper) = (self.pool.info.1, self.pool.label(&mut self.ops, self.targets.ret_struct));
        dynasm!(self.ops
            ; .arch x64
            ; mov rdi, [=>info]
            ; lea rsi, [rsp + retbuf]
            ; call QWORD [=>helper]
        );
    }

    /// st(0) → its 16-byte buffer (popping the x87 stack) → the helper,
    /// which builds a BigDecimal like the ffi gem. A blocking call's inner
    /// function already popped it into the call block.
    fn rebox_long_double(&mut self) {
        let at = match self.frame.block {
            Some(b) => b + BLOCK_STACK + self.req.plan.stack_bytes as i32,
            None => {
                let retbuf = self.frame.retbuf;
                dynasm!(self.ops ; .arch x64 ; fstp TWORD [rsp + retbuf]);
                retbuf
            }
        };
        let helper = self.pool.label(&mut self.ops, self.targets.ret_long_double);
        dynasm!(self.ops
            ; .arch x64
            ; lea rdi, [rsp + at]
            ; call QWORD [=>helper]
        );
    }

    /// xmm0 → Float VALUE: a flonum when the exponent fits (CRuby's
    /// rb_float_new_inline), else a heap Float via rb_float_new_in_heap.
    fn rebox_double_and_return(&mut self) {
        let (not_flonum, heap) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        let size = self.frame.size;
        let in_heap = self.pool.label(&mut self.ops, self.targets.float_new_in_heap);
        dynasm!(self.ops
            ; .arch x64
            ; movq rax, xmm0
            ; mov r10, rax
            ; shr r10, 60
            ; and r10d, 7
            ; sub r10d, 3
            ; test r10d, -2                   // exponent bits b62..b60 in {011, 100}?
            ; jnz =>not_flonum
            ; mov r10, QWORD 0x3000_0000_0000_0000
            ; cmp rax, r10
            ; je =>heap
            ; rol rax, 3
            ; and rax, -2
            ; or rax, FLONUM_FLAG
            ; add rsp, size
            ; ret
            ; =>not_flonum
            ; test rax, rax                   // +0.0 has its own flonum
            ; jnz =>heap
            ; mov rax, QWORD FLONUM_ZERO
            ; add rsp, size
            ; ret
            ; =>heap                          // xmm0 still holds the double
            ; add rsp, size
            ; jmp QWORD [=>in_heap]
        );
    }
}
