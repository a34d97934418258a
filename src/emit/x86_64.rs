//! x86-64 (SysV) forward stubs.
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
//!   [mov eax, #vector registers]  call fn
//!   rebox rax / xmm0 → rax; add rsp, FRAME; ret     (or a tail call)
//!   ->slow paths, out of line after the hot code
//! ```
//!
//! Why this is safe without a staging area: Ruby passes argument i in
//! register i+1 (self is in rdi), and C wants the k-th integer argument in
//! register k with k ≤ i, so writing destinations left to right never
//! overwrites a VALUE not yet read. Slow paths call helpers that clobber every
//! caller-saved register, so each saves exactly the registers live at that
//! point (destinations already written, sources not yet read) and restores
//! them afterwards.

use super::ruby_layout::*;
use super::{EmitError, RuntimeTargets, StubRequest};
use crate::abi::{ArgSource, CLoc, CfuncForm, PlanEntry, RetLoc};
use crate::types::CType;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;
type SlowPath = Box<dyn FnOnce(&mut Asm)>;

/// SysV integer argument registers in order: rdi, rsi, rdx, rcx, r8, r9.
const INT_ARG_REGS: [u8; 6] = [7, 6, 2, 1, 8, 9];
const RAX: u8 = 0;
const R11: u8 = 11;

/// Registers holding something a slow path must preserve.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Live {
    int: [bool; 6],
    xmm: [bool; 8],
}

impl Live {
    fn count(&self) -> i32 {
        (self.int.iter().filter(|b| **b).count() + self.xmm.iter().filter(|b| **b).count()) as i32
    }

    /// Bytes the save area takes (keeps rsp 16-aligned).
    fn save_bytes(&self) -> i32 {
        (8 * self.count() + 15) / 16 * 16
    }

    fn save(&self, ops: &mut Asm) {
        let bytes = self.save_bytes();
        if bytes == 0 {
            return;
        }
        dynasm!(ops ; .arch x64 ; sub rsp, bytes);
        let mut slot = 0;
        for (k, _) in self.int.iter().enumerate().filter(|(_, l)| **l) {
            dynasm!(ops ; .arch x64 ; mov [rsp + 8 * slot], Rq(INT_ARG_REGS[k]));
            slot += 1;
        }
        for (k, _) in self.xmm.iter().enumerate().filter(|(_, l)| **l) {
            dynasm!(ops ; .arch x64 ; movsd QWORD [rsp + 8 * slot], Rx(k as u8));
            slot += 1;
        }
    }

    /// Restores what `save` saved. Leaves rax, r10, r11, xmm14 and xmm15
    /// alone; the final `add` changes the flags, so test after restoring.
    fn restore(&self, ops: &mut Asm) {
        let bytes = self.save_bytes();
        if bytes == 0 {
            return;
        }
        let mut slot = 0;
        for (k, _) in self.int.iter().enumerate().filter(|(_, l)| **l) {
            dynasm!(ops ; .arch x64 ; mov Rq(INT_ARG_REGS[k]), [rsp + 8 * slot]);
            slot += 1;
        }
        for (k, _) in self.xmm.iter().enumerate().filter(|(_, l)| **l) {
            dynasm!(ops ; .arch x64 ; movsd Rx(k as u8), QWORD [rsp + 8 * slot]);
            slot += 1;
        }
        dynasm!(ops ; .arch x64 ; add rsp, bytes);
    }
}

/// The stub's own frame, below the return address.
#[derive(Clone, Copy)]
struct Frame {
    /// Outgoing stack arguments start at rsp+0.
    /// Slot for argv (argv form only).
    argv: i32,
    /// First keep-alive slot: one per :string argument, holding a `to_str`
    /// result for the conservative GC scan until the call returns.
    keep: i32,
    size: i32,
}

/// Where an argument's VALUE is, as seen with `extra` bytes pushed below the
/// frame (a slow path's save area).
#[derive(Clone, Copy)]
struct Source {
    src: ArgSource,
    frame: Frame,
}

impl Source {
    fn load(&self, ops: &mut Asm, reg: u8, extra: i32) {
        match self.src {
            ArgSource::Int(r) => {
                if INT_ARG_REGS[r as usize] != reg {
                    dynasm!(ops ; .arch x64 ; mov Rq(reg), Rq(INT_ARG_REGS[r as usize]))
                }
            }
            // Above the frame and the return address.
            ArgSource::Stack(off) => {
                dynasm!(ops ; .arch x64 ; mov Rq(reg), [rsp + extra + self.frame.size + 8 + off as i32])
            }
            ArgSource::Argv(i) => dynasm!(ops
                ; .arch x64
                ; mov Rq(reg), [rsp + extra + self.frame.argv]
                ; mov Rq(reg), [Rq(reg) + 8 * i as i32]
            ),
        }
    }
}

fn call_absolute(ops: &mut Asm, target: usize) {
    dynasm!(ops
        ; .arch x64
        ; mov r11, QWORD target as i64
        ; call r11
    );
}

struct Emitter<'a> {
    ops: Asm,
    req: &'a StubRequest<'a>,
    targets: RuntimeTargets,
    frame: Frame,
    slow: Vec<SlowPath>,
}

/// What a conversion hands to its slow path.
#[derive(Clone, Copy)]
struct ArgCtx {
    source: Source,
    live: Live,
    info: usize,
    index: u32,
}

impl ArgCtx {
    /// Calls `helper(value, info, index)` preserving live registers; the
    /// result stays in rax (and xmm0 is copied to xmm15).
    fn call_helper(&self, ops: &mut Asm, helper: usize) {
        self.live.save(ops);
        self.source.load(ops, 7, self.live.save_bytes());
        dynasm!(ops
            ; .arch x64
            ; mov rsi, QWORD self.info as i64
            ; mov edx, self.index as i32
        );
        call_absolute(ops, helper);
        dynasm!(ops ; .arch x64 ; movaps xmm15, xmm0);
        self.live.restore(ops);
    }
}

pub fn emit_stub(req: &StubRequest) -> Result<Vec<u8>, EmitError> {
    let plan = req.plan;
    for e in &plan.args {
        if matches!(e.dest, CLoc::Pieces(_) | CLoc::StackCopy { .. }) || matches!(e.ty, CType::Struct(_)) {
            return Err(EmitError::Unsupported(format!("struct by value (argument {})", e.index + 1)));
        }
    }
    if matches!(plan.ret, RetLoc::Pieces(_) | RetLoc::Indirect { .. }) {
        return Err(EmitError::Unsupported("struct return by value".into()));
    }
    let strings = plan.args.iter().filter(|e| e.ty == CType::CString).count() as i32;
    let argv = plan.stack_bytes as i32;
    let keep = argv + 8;
    // Entry rsp ≡ 8 (mod 16); FRAME ≡ 8 makes rsp 16-aligned for calls.
    let size = (keep + 8 * strings + 8) / 16 * 16 + 8;
    let mut em = Emitter {
        ops: Asm::new(0),
        req,
        targets: *req.targets,
        frame: Frame { argv, keep, size },
        slow: Vec::new(),
    };
    em.prologue();
    let mut strings_seen = 0;
    for (i, e) in plan.args.iter().enumerate() {
        let ctx = ArgCtx {
            source: Source { src: e.source, frame: em.frame },
            live: em.live_before(i),
            info: req.info,
            index: e.index as u32,
        };
        em.convert_arg(e, ctx, &mut strings_seen);
    }
    em.call();
    em.rebox_and_return();
    // Slow paths after the hot code; each may have queued more.
    while !em.slow.is_empty() {
        for slow in std::mem::take(&mut em.slow) {
            slow(&mut em.ops);
        }
    }
    em.ops.finalize().map_err(|e| EmitError::Assembler(format!("{e:?}")))
}

impl Emitter<'_> {
    /// Registers live while argument `i` is converted: destinations of
    /// earlier arguments and register sources of later ones.
    fn live_before(&self, i: usize) -> Live {
        let mut live = Live::default();
        for (j, e) in self.req.plan.args.iter().enumerate() {
            if j < i {
                match e.dest {
                    CLoc::Int(k) => live.int[k as usize] = true,
                    CLoc::Float(k) => live.xmm[k as usize] = true,
                    _ => {}
                }
            } else if j > i {
                if let ArgSource::Int(r) = e.source {
                    live.int[r as usize] = true;
                }
            }
        }
        live
    }

    fn prologue(&mut self) {
        let frame = self.frame;
        dynasm!(self.ops ; .arch x64 ; sub rsp, frame.size);
        if let CfuncForm::Argv(n) = self.req.plan.form {
            // f(int argc, VALUE *argv, VALUE self): Ruby does not check the
            // count for this form, so the stub does.
            let arity = self.ops.new_dynamic_label();
            let (info, helper) = (self.req.info, self.targets.arity_error);
            dynasm!(self.ops
                ; .arch x64
                ; mov [rsp + frame.argv], rsi
                ; cmp edi, n as i32
                ; jne =>arity
            );
            self.slow.push(Box::new(move |ops| {
                dynasm!(ops ; .arch x64 ; =>arity ; mov rsi, QWORD info as i64);
                call_absolute(ops, helper); // raises
                dynasm!(ops ; .arch x64 ; int3);
            }));
        }
    }

    /// Moves the converted integer-class value in `reg` to its destination.
    fn store_int(ops: &mut Asm, dest: &CLoc, reg: u8) {
        match dest {
            CLoc::Int(k) => dynasm!(ops ; .arch x64 ; mov Rq(INT_ARG_REGS[*k as usize]), Rq(reg)),
            CLoc::Stack(off) => dynasm!(ops ; .arch x64 ; mov [rsp + *off as i32], Rq(reg)),
            _ => unreachable!("rejected in emit_stub"),
        }
    }

    fn convert_arg(&mut self, e: &PlanEntry, ctx: ArgCtx, strings_seen: &mut i32) {
        ctx.source.load(&mut self.ops, RAX, 0);
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
            CType::Void | CType::Struct(_) => unreachable!("rejected by the planner / emit_stub"),
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
        let helper = match e.ty {
            CType::I8 | CType::I16 | CType::I32 => {
                dynasm!(self.ops
                    ; .arch x64
                    ; movsxd r10, eax            // fits a C int?
                    ; cmp r10, rax
                    ; jne =>slow
                );
                self.targets.arg_int
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
                self.targets.arg_uint
            }
            CType::I64 => self.targets.arg_long_long,
            _ => self.targets.arg_ulong_long,
        };
        dynasm!(self.ops ; .arch x64 ; =>done);
        match e.ty {
            CType::I8 => dynasm!(self.ops ; .arch x64 ; movsx eax, al),
            CType::U8 => dynasm!(self.ops ; .arch x64 ; movzx eax, al),
            CType::I16 => dynasm!(self.ops ; .arch x64 ; movsx eax, ax),
            CType::U16 => dynasm!(self.ops ; .arch x64 ; movzx eax, ax),
            _ => {}
        }
        Self::store_int(&mut self.ops, &e.dest, RAX);
        self.slow.push(Box::new(move |ops| {
            dynasm!(ops ; .arch x64 ; =>slow);
            ctx.call_helper(ops, helper);
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
        Self::store_int(&mut self.ops, &e.dest, 10);
        let helper = self.targets.arg_bool;
        self.slow.push(Box::new(move |ops| {
            dynasm!(ops ; .arch x64 ; =>slow);
            ctx.call_helper(ops, helper); // raises
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
        match (&e.dest, single) {
            (CLoc::Float(k), _) => dynasm!(self.ops ; .arch x64 ; movaps Rx(*k), xmm15),
            (CLoc::Stack(off), true) => dynasm!(self.ops ; .arch x64 ; movss DWORD [rsp + *off as i32], xmm15),
            (CLoc::Stack(off), false) => dynasm!(self.ops ; .arch x64 ; movsd QWORD [rsp + *off as i32], xmm15),
            _ => unreachable!("floats go to vector registers or the stack"),
        }
        let helper = self.targets.arg_double;
        self.slow.push(Box::new(move |ops| {
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
            ctx.call_helper(ops, helper); // result copied to xmm15
            dynasm!(ops ; .arch x64 ; jmp =>done);
        }));
    }

    /// nil → NULL; a String in ASCII-8BIT or UTF-8 with no NUL in its bytes
    /// and a NUL after them → its pointer, inline (SSE compare for embedded
    /// strings, a byte loop or memchr for heap strings). Everything else
    /// (to_str, other encodings, missing terminator, embedded NUL, wrong type)
    /// → the helper, which behaves like StringValueCStr.
    fn unbox_cstring(&mut self, e: &PlanEntry, ctx: ArgCtx, keep: i32) {
        let l: Vec<DynamicLabel> = (0..8).map(|_| self.ops.new_dynamic_label()).collect();
        let (slow, null, heap, embed_long, done, scan, heap_long, other) = (l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]);
        // One mask and compare: T_STRING, embedded, encoding index 0 or 1
        // (ASCII-8BIT, UTF-8). Heap strings and the rest are sorted out of line.
        let fast_kind = T_MASK | RSTRING_NOEMBED | (ENCODING_MASK & !(1 << ENCODING_SHIFT));
        dynasm!(self.ops
            ; .arch x64
            ; test al, IMMEDIATE_MASK as i8
            ; jnz =>slow
            ; cmp rax, QNIL
            ; jbe =>null                       // nil, or false (0) which `null` sends on
            ; mov r10, [rax + RBASIC_FLAGS]
            ; mov r11d, r10d
            ; and r11d, fast_kind
            ; cmp r11d, T_STRING
            ; jne =>other
            ; shr r10d, RSTRING_EMBED_LEN_SHIFT
            ; and r10d, RSTRING_EMBED_LEN_MAX_MASK
            ; lea rax, [rax + RSTRING_EMBED_ARY]
            // The embedded area lies inside the 40-byte object: reading 16
            // bytes from it is safe whatever the length. Valid iff the first
            // NUL is at index len.
            ; movdqu xmm15, [rax]
            ; pxor xmm14, xmm14
            ; pcmpeqb xmm15, xmm14
            ; pmovmskb r11d, xmm15
            ; bsf r11d, r11d
            ; jz =>embed_long
            ; cmp r11d, r10d
            ; jne =>slow
            ; =>done
        );
        Self::store_int(&mut self.ops, &e.dest, RAX);
        let memchr = self.targets.memchr;
        let helper = self.targets.arg_cstr;
        self.slow.push(Box::new(move |ops| {
            dynasm!(ops
                ; .arch x64
                ; =>null
                ; test rax, rax                  // Qfalse → the helper's TypeError
                ; jz =>slow
                ; xor eax, eax
                ; jmp =>done
                ; =>other                        // heap String in a fast encoding?
                ; and r11d, !RSTRING_NOEMBED
                ; cmp r11d, T_STRING
                ; jne =>slow
                ; test r10d, RSTRING_NOEMBED
                ; jnz =>heap
                ; jmp =>slow
                ; =>embed_long                 // no NUL in bytes 0..16: len must be 16..23
                ; cmp r10d, 16
                ; jb =>slow
                ; movdqu xmm15, [rax + 8]
                ; pcmpeqb xmm15, xmm14
                ; pmovmskb r11d, xmm15
                ; bsf r11d, r11d
                ; jz =>slow
                ; add r11d, 8
                ; cmp r11d, r10d
                ; jne =>slow
                ; jmp =>done
                ; =>heap
                ; mov r10, [rax + RSTRING_HEAP_LEN]
                ; mov rax, [rax + RSTRING_HEAP_PTR]
                ; cmp BYTE [rax + r10], 0
                ; jne =>slow
                ; cmp r10, 32
                ; jae =>heap_long
                ; lea r11, [rax + r10]
                ; neg r10
                ; jz =>done
                ; =>scan
                ; cmp BYTE [r11 + r10], 0
                ; je =>slow
                ; inc r10
                ; jnz =>scan
                ; jmp =>done
                ; =>heap_long
            );
            // memchr(ptr, 0, len), preserving live registers and rax (ptr).
            dynasm!(ops ; .arch x64 ; sub rsp, 16 ; mov [rsp], rax);
            ctx.live.save(ops);
            dynasm!(ops
                ; .arch x64
                ; mov rdi, rax
                ; xor esi, esi
                ; mov rdx, r10
            );
            call_absolute(ops, memchr);
            dynasm!(ops ; .arch x64 ; mov r11, rax);
            ctx.live.restore(ops);
            dynasm!(ops
                ; .arch x64
                ; mov rax, [rsp]
                ; add rsp, 16
                ; test r11, r11                 // after the adds: they set flags
                ; jnz =>slow
                ; jmp =>done
                ; =>slow
            );
            // StringValueCStr on a frame slot, so a `to_str` result stays
            // visible to the GC until the C call returns.
            ctx.live.save(ops);
            let extra = ctx.live.save_bytes();
            ctx.source.load(ops, R11, extra);
            dynasm!(ops
                ; .arch x64
                ; mov [rsp + extra + keep], r11
                ; lea rdi, [rsp + extra + keep]
                ; mov rsi, QWORD ctx.info as i64
                ; mov edx, ctx.index as i32
            );
            call_absolute(ops, helper);
            ctx.live.restore(ops);
            dynasm!(ops ; .arch x64 ; jmp =>done);
        }));
    }

    /// nil → NULL; a Pointer (its rb_data_type_t, compared by address) →
    /// its address, inline. Subclasses with other data types, `to_ptr`,
    /// Strings and errors → the helper.
    fn unbox_pointer(&mut self, e: &PlanEntry, ctx: ArgCtx) {
        let (slow, null, done) =
            (self.ops.new_dynamic_label(), self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch x64
            ; test al, IMMEDIATE_MASK as i8
            ; jnz =>slow
            ; cmp rax, QNIL
            ; jbe =>null                      // nil, or false (sent on to the helper)
            ; mov r10, [rax + RBASIC_FLAGS]
            ; and r10d, T_MASK
            ; cmp r10d, T_DATA                // offset 16 means `type` only for T_DATA
            ; jne =>slow
            ; mov r10, QWORD self.targets.pointer_data_type as i64
            ; cmp r10, [rax + RTYPEDDATA_TYPE]
            ; jne =>slow
            ; mov rax, [rax + RTYPEDDATA_DATA]
            ; mov rax, [rax]                  // Pointer's first field: address
            ; =>done
        );
        Self::store_int(&mut self.ops, &e.dest, RAX);
        let helper = self.targets.arg_pointer;
        self.slow.push(Box::new(move |ops| {
            dynasm!(ops
                ; .arch x64
                ; =>null
                ; test rax, rax
                ; jz =>slow
                ; xor eax, eax
                ; jmp =>done
                ; =>slow
            );
            ctx.call_helper(ops, helper);
            dynasm!(ops ; .arch x64 ; jmp =>done);
        }));
    }

    fn call(&mut self) {
        if self.req.plan.variadic {
            dynasm!(self.ops ; .arch x64 ; mov eax, self.req.plan.float_regs_used as i32);
        }
        call_absolute(&mut self.ops, self.req.function);
    }

    fn epilogue(&mut self) {
        let size = self.frame.size;
        dynasm!(self.ops ; .arch x64 ; add rsp, size ; ret);
    }

    /// `return target(rax)` as a tail call: the frame is gone when it runs.
    fn tail_call_with_rax(&mut self, target: usize) {
        let size = self.frame.size;
        dynasm!(self.ops
            ; .arch x64
            ; mov rdi, rax
            ; add rsp, size
            ; mov r11, QWORD target as i64
            ; jmp r11
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
                    ; mov r10, QWORD FIXNUM_MAX
                    ; cmp rax, r10
                    ; ja =>big
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
            CType::Struct(_) => unreachable!("rejected in emit_stub"),
        }
        self.epilogue();
    }

    /// xmm0 → Float VALUE: a flonum when the exponent fits (CRuby's
    /// rb_float_new_inline), else a heap Float via rb_float_new_in_heap.
    fn rebox_double_and_return(&mut self) {
        let (not_flonum, heap) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        let size = self.frame.size;
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
            ; mov r11, QWORD self.targets.float_new_in_heap as i64
            ; jmp r11
        );
    }
}
