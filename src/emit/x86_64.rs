//! x86-64 (SysV) forward stubs.
//!
//! A stub is installed as the cfunc itself. Shape:
//!
//! ```text
//!   push rbp; mov rbp, rsp; sub rsp, FRAME      ; rsp 16-aligned from here on
//!   spill incoming VALUE registers              ; slow paths may clobber them
//!   for each argument: load VALUE → rax, unbox inline, store to its staging
//!       slot (register args) or outgoing stack slot (stack args)
//!   load argument registers from staging; [mov eax, #vector regs]; call fn
//!   rebox rax/xmm0 → rax; leave; ret
//!   ->slow paths (one per conversion), each jumping back to its `done` label
//! ```
//!
//! Frame, from rsp up: outgoing stack arguments | 6 integer + 8 vector
//! staging slots | spilled incoming VALUE registers | scratch.

use super::ruby_layout::*;
use super::{EmitError, RuntimeTargets, StubRequest};
use crate::abi::{ArgSource, CLoc, CfuncForm, PlanEntry, RetLoc};
use crate::types::CType;
use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

type Asm = VecAssembler<X64Relocation>;
type SlowPath = Box<dyn FnOnce(&mut Asm)>;

const RAX: u8 = 0;
const RCX: u8 = 1;
/// SysV integer argument registers in order: rdi, rsi, rdx, rcx, r8, r9.
const INT_ARG_REGS: [u8; 6] = [7, 6, 2, 1, 8, 9];

#[derive(Clone, Copy)]
struct Frame {
    int_stage: i32,
    float_stage: i32,
    spill: i32,
    scratch: i32,
    size: i32,
}

impl Frame {
    fn new(stack_bytes: u32) -> Frame {
        let int_stage = stack_bytes as i32;
        let float_stage = int_stage + 6 * 8;
        let spill = float_stage + 8 * 8;
        let scratch = spill + 6 * 8;
        let size = (scratch + 8 + 15) / 16 * 16;
        Frame { int_stage, float_stage, spill, scratch, size }
    }
}

/// Loads the VALUE of an argument into `reg`.
fn load_value(ops: &mut Asm, frame: Frame, source: ArgSource, reg: u8) {
    match source {
        ArgSource::Int(r) => dynasm!(ops ; .arch x64 ; mov Rq(reg), QWORD [rsp + frame.spill + 8 * r as i32]),
        // Caller's stack arguments sit above the saved rbp and return address.
        ArgSource::Stack(off) => dynasm!(ops ; .arch x64 ; mov Rq(reg), QWORD [rbp + 16 + off as i32]),
        ArgSource::Argv(i) => dynasm!(ops
            ; .arch x64
            ; mov Rq(reg), QWORD [rsp + frame.spill + 8]
            ; mov Rq(reg), QWORD [Rq(reg) + 8 * i as i32]
        ),
    }
}

/// Loads the address of the slot holding an argument's VALUE into `reg`.
fn load_slot_address(ops: &mut Asm, frame: Frame, source: ArgSource, reg: u8) {
    match source {
        ArgSource::Int(r) => dynasm!(ops ; .arch x64 ; lea Rq(reg), [rsp + frame.spill + 8 * r as i32]),
        ArgSource::Stack(off) => dynasm!(ops ; .arch x64 ; lea Rq(reg), [rbp + 16 + off as i32]),
        ArgSource::Argv(i) => dynasm!(ops
            ; .arch x64
            ; mov Rq(reg), QWORD [rsp + frame.spill + 8]
            ; lea Rq(reg), [Rq(reg) + 8 * i as i32]
        ),
    }
}

fn call_absolute(ops: &mut Asm, target: usize) {
    dynasm!(ops
        ; .arch x64
        ; mov r11, QWORD target as i64
        ; call r11
    );
}

/// Calls an `arg_*` slow path with (VALUE, info, index) and resumes at `done`.
fn call_arg_helper(ops: &mut Asm, frame: Frame, e: &PlanEntry, info: usize, helper: usize, done: DynamicLabel) {
    load_value(ops, frame, e.source, 7); // rdi
    dynasm!(ops
        ; .arch x64
        ; mov rsi, QWORD info as i64
        ; mov edx, e.index as i32
    );
    call_absolute(ops, helper);
    dynasm!(ops ; .arch x64 ; jmp =>done);
}

struct Emitter<'a> {
    ops: Asm,
    req: &'a StubRequest<'a>,
    targets: RuntimeTargets,
    frame: Frame,
    slow: Vec<SlowPath>,
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
    let mut em = Emitter {
        ops: Asm::new(0),
        req,
        targets: *req.targets,
        frame: Frame::new(plan.stack_bytes),
        slow: Vec::new(),
    };
    em.prologue();
    for e in &plan.args {
        em.convert_arg(e);
    }
    em.call();
    em.rebox_return();
    dynasm!(em.ops ; .arch x64 ; leave ; ret);
    // Slow paths after the hot code: straight-line fast path, cold code out
    // of the way. Each may add more slow paths only before this point.
    for slow in std::mem::take(&mut em.slow) {
        slow(&mut em.ops);
    }
    em.ops.finalize().map_err(|e| EmitError::Assembler(format!("{e:?}")))
}

impl Emitter<'_> {
    fn prologue(&mut self) {
        let frame = self.frame;
        dynasm!(self.ops
            ; .arch x64
            ; push rbp
            ; mov rbp, rsp
            ; sub rsp, frame.size
        );
        match self.req.plan.form {
            CfuncForm::Fixed(n) => {
                // Ruby passes self in rdi; argument i arrives in register i+1.
                for r in 1..=(n as usize).min(5) {
                    dynasm!(self.ops ; .arch x64 ; mov QWORD [rsp + frame.spill + 8 * r as i32], Rq(INT_ARG_REGS[r]));
                }
            }
            CfuncForm::Argv(n) => {
                // f(int argc, VALUE *argv, VALUE self): Ruby does not check
                // the count for this form, so the stub does.
                let arity = self.ops.new_dynamic_label();
                let (info, helper) = (self.req.info, self.targets.arity_error);
                dynasm!(self.ops
                    ; .arch x64
                    ; mov QWORD [rsp + frame.spill + 8], rsi
                    ; cmp edi, n as i32
                    ; jne =>arity
                );
                self.slow.push(Box::new(move |ops| {
                    dynasm!(ops ; .arch x64 ; =>arity ; mov rsi, QWORD info as i64);
                    call_absolute(ops, helper); // never returns
                    dynasm!(ops ; .arch x64 ; int3);
                }));
            }
        }
    }

    /// Stores rax (integer class) or xmm0 (vector class) where the plan says.
    fn store_native(&mut self, e: &PlanEntry) {
        let frame = self.frame;
        let single = e.ty == CType::F32;
        match (&e.dest, e.ty.is_float()) {
            (CLoc::Int(k), _) => dynasm!(self.ops ; .arch x64 ; mov QWORD [rsp + frame.int_stage + 8 * *k as i32], rax),
            (CLoc::Float(k), _) if single => {
                dynasm!(self.ops ; .arch x64 ; movss DWORD [rsp + frame.float_stage + 8 * *k as i32], xmm0)
            }
            (CLoc::Float(k), _) => dynasm!(self.ops ; .arch x64 ; movsd QWORD [rsp + frame.float_stage + 8 * *k as i32], xmm0),
            (CLoc::Stack(off), false) => dynasm!(self.ops ; .arch x64 ; mov QWORD [rsp + *off as i32], rax),
            (CLoc::Stack(off), true) if single => dynasm!(self.ops ; .arch x64 ; movss DWORD [rsp + *off as i32], xmm0),
            (CLoc::Stack(off), true) => dynasm!(self.ops ; .arch x64 ; movsd QWORD [rsp + *off as i32], xmm0),
            (CLoc::Pieces(_) | CLoc::StackCopy { .. }, _) => unreachable!("rejected in emit_stub"),
        }
    }

    fn convert_arg(&mut self, e: &PlanEntry) {
        load_value(&mut self.ops, self.frame, e.source, RAX);
        match e.ty {
            CType::I8 | CType::I16 | CType::I32 | CType::U8 | CType::U16 | CType::U32 | CType::I64 | CType::U64 => {
                self.unbox_integer(e)
            }
            CType::Bool => self.unbox_bool(e),
            CType::F32 | CType::F64 => self.unbox_float(e),
            CType::CString => self.unbox_cstring(e),
            CType::Pointer => self.unbox_pointer(e),
            CType::Void | CType::Struct(_) => unreachable!("rejected by the planner / emit_stub"),
        }
        self.store_native(e);
    }

    /// Fixnums inline, with the ffi gem's range rule (NUM2INT for signed
    /// narrow types, NUM2UINT for unsigned narrow types, none for 64-bit);
    /// anything else goes to the slow path, which applies the same rule to
    /// Bignum, Float and `to_int`. Narrow values are then truncated and
    /// extended to 32 bits: SysV leaves it to the caller, and clang-built
    /// callees rely on it.
    fn unbox_integer(&mut self, e: &PlanEntry) {
        let (slow, done) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch x64
            ; test al, FIXNUM_FLAG as i8
            ; jz =>slow
            ; sar rax, 1
        );
        let helper = match e.ty {
            CType::I8 | CType::I16 | CType::I32 => {
                // fits a C int?
                dynasm!(self.ops
                    ; .arch x64
                    ; movsxd rcx, eax
                    ; cmp rcx, rax
                    ; jne =>slow
                );
                self.targets.arg_int
            }
            CType::U8 | CType::U16 | CType::U32 => {
                // NUM2UINT accepts INT_MIN..UINT_MAX: v + 2**31 < 2**32 + 2**31.
                dynasm!(self.ops
                    ; .arch x64
                    ; mov ecx, 0x8000_0000u32 as i32
                    ; add rcx, rax
                    ; mov rdx, QWORD 0x1_8000_0000
                    ; cmp rcx, rdx
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
        let (frame, e2, info) = (self.frame, e.clone(), self.req.info);
        self.slow.push(Box::new(move |ops| {
            dynasm!(ops ; .arch x64 ; =>slow);
            call_arg_helper(ops, frame, &e2, info, helper, done);
        }));
    }

    /// true → 1, false → 0; anything else raises TypeError (as the ffi gem).
    fn unbox_bool(&mut self, e: &PlanEntry) {
        let (slow, done) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch x64
            ; xor ecx, ecx
            ; cmp rax, QTRUE
            ; sete cl
            ; je =>done
            ; test rax, rax // Qfalse is 0
            ; jnz =>slow
            ; =>done
            ; mov eax, ecx
        );
        let (frame, e2, info, helper) = (self.frame, e.clone(), self.req.info, self.targets.arg_bool);
        self.slow.push(Box::new(move |ops| {
            dynasm!(ops ; .arch x64 ; =>slow);
            call_arg_helper(ops, frame, &e2, info, helper, done); // raises
        }));
    }

    /// Flonums decoded inline (CRuby's rb_float_flonum_value), Fixnums
    /// converted in the slow section without a call; heap Floats, Bignums and
    /// `to_f` objects through the helper. Result in xmm0.
    fn unbox_float(&mut self, e: &PlanEntry) {
        let (slow, zero, done) =
            (self.ops.new_dynamic_label(), self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch x64
            ; mov ecx, eax
            ; and ecx, FLONUM_MASK
            ; cmp ecx, FLONUM_FLAG
            ; jne =>slow
            ; mov rcx, QWORD FLONUM_ZERO
            ; cmp rax, rcx
            ; je =>zero
            // bits = rotr((2 - b63) | (v & ~3), 3)
            ; mov rcx, rax
            ; shr rcx, 63
            ; mov edx, 2
            ; sub edx, ecx
            ; and rax, -4
            ; or rax, rdx
            ; ror rax, 3
            ; movq xmm0, rax
            ; =>done
        );
        if e.ty == CType::F32 {
            dynasm!(self.ops ; .arch x64 ; cvtsd2ss xmm0, xmm0);
        }
        let (frame, e2, info, helper) = (self.frame, e.clone(), self.req.info, self.targets.arg_double);
        self.slow.push(Box::new(move |ops| {
            let call = ops.new_dynamic_label();
            dynasm!(ops
                ; .arch x64
                ; =>zero
                ; xorps xmm0, xmm0
                ; jmp =>done
                ; =>slow
                ; test al, FIXNUM_FLAG as i8
                ; jz =>call
                ; sar rax, 1
                ; cvtsi2sd xmm0, rax
                ; jmp =>done
                ; =>call
            );
            call_arg_helper(ops, frame, &e2, info, helper, done);
        }));
    }

    /// nil → NULL; a String in a one-byte-terminator encoding whose bytes
    /// hold no NUL and are NUL-terminated → its pointer, inline. Everything
    /// else (to_str, other encodings, missing terminator, embedded NUL,
    /// wrong type) → the helper, which behaves like StringValueCStr.
    fn unbox_cstring(&mut self, e: &PlanEntry) {
        let l: Vec<DynamicLabel> = (0..8).map(|_| self.ops.new_dynamic_label()).collect();
        let (slow, null, heap, have, scan, ok, long_scan, done) = (l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]);
        let frame = self.frame;
        dynasm!(self.ops
            ; .arch x64
            ; cmp rax, QNIL
            ; je =>null
            ; jb =>slow                    // false and small immediates
            ; test al, IMMEDIATE_MASK as i8
            ; jnz =>slow
            ; mov rcx, QWORD [rax + RBASIC_FLAGS]
            ; mov edx, ecx
            ; and edx, T_MASK
            ; cmp edx, T_STRING
            ; jne =>slow
            ; mov edx, ecx
            ; and edx, ENCODING_MASK
            ; cmp edx, ENCODING_INLINE_LIMIT
            ; jae =>slow
            ; test ecx, RSTRING_NOEMBED
            ; jnz =>heap
            ; lea rdx, [rax + RSTRING_EMBED_ARY]
            ; shr ecx, RSTRING_EMBED_LEN_SHIFT
            ; and ecx, RSTRING_EMBED_LEN_MAX_MASK
            ; =>have                        // rdx = ptr, rcx = len
            ; cmp BYTE [rdx + rcx], 0
            ; jne =>slow
            ; cmp rcx, RSTRING_EMBED_CAPACITY
            ; jae =>long_scan
            ; lea rdi, [rdx + rcx]
            ; neg rcx
            ; jz =>ok
            ; =>scan
            ; cmp BYTE [rdi + rcx], 0
            ; je =>slow
            ; inc rcx
            ; jnz =>scan
            ; =>ok
            ; mov rax, rdx
            ; =>done
        );
        let (e2, info, targets) = (e.clone(), self.req.info, self.targets);
        self.slow.push(Box::new(move |ops| {
            dynasm!(ops
                ; .arch x64
                ; =>null
                ; xor eax, eax
                ; jmp =>done
                ; =>heap
                ; mov rdx, QWORD [rax + RSTRING_HEAP_PTR]
                ; mov rcx, QWORD [rax + RSTRING_HEAP_LEN]
                ; jmp =>have
                ; =>long_scan
                ; mov [rsp + frame.scratch], rdx
                ; mov rdi, rdx
                ; xor esi, esi
                ; mov rdx, rcx
            );
            call_absolute(ops, targets.memchr);
            dynasm!(ops
                ; .arch x64
                ; test rax, rax
                ; jnz =>slow
                ; mov rax, [rsp + frame.scratch]
                ; jmp =>done
                ; =>slow
            );
            load_slot_address(ops, frame, e2.source, 7);
            dynasm!(ops
                ; .arch x64
                ; mov rsi, QWORD info as i64
                ; mov edx, e2.index as i32
            );
            call_absolute(ops, targets.arg_cstr);
            dynasm!(ops ; .arch x64 ; jmp =>done);
        }));
    }

    /// nil → NULL; a Pointer (its rb_data_type_t, compared by address) →
    /// its address, inline. Subclasses with other data types, `to_ptr`,
    /// Strings and errors → the helper.
    fn unbox_pointer(&mut self, e: &PlanEntry) {
        let (slow, null, done) =
            (self.ops.new_dynamic_label(), self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch x64
            ; cmp rax, QNIL
            ; je =>null
            ; jb =>slow
            ; test al, IMMEDIATE_MASK as i8
            ; jnz =>slow
            ; mov rcx, QWORD [rax + RBASIC_FLAGS]
            ; and ecx, T_MASK
            ; cmp ecx, T_DATA
            ; jne =>slow
            ; mov rcx, QWORD self.targets.pointer_data_type as i64
            ; cmp rcx, QWORD [rax + RTYPEDDATA_TYPE]
            ; jne =>slow
            ; mov rcx, QWORD [rax + RTYPEDDATA_DATA]
            ; mov rax, QWORD [rcx]            // Pointer's first field: address
            ; =>done
        );
        let (frame, e2, info, helper) = (self.frame, e.clone(), self.req.info, self.targets.arg_pointer);
        self.slow.push(Box::new(move |ops| {
            dynasm!(ops
                ; .arch x64
                ; =>null
                ; xor eax, eax
                ; jmp =>done
                ; =>slow
            );
            call_arg_helper(ops, frame, &e2, info, helper, done);
        }));
    }

    fn call(&mut self) {
        let frame = self.frame;
        for e in &self.req.plan.args {
            match e.dest {
                CLoc::Int(k) => dynasm!(self.ops
                    ; .arch x64
                    ; mov Rq(INT_ARG_REGS[k as usize]), QWORD [rsp + frame.int_stage + 8 * k as i32]
                ),
                CLoc::Float(k) => dynasm!(self.ops
                    ; .arch x64
                    ; movsd Rx(k), QWORD [rsp + frame.float_stage + 8 * k as i32]
                ),
                _ => {}
            }
        }
        if self.req.plan.variadic {
            dynasm!(self.ops ; .arch x64 ; mov eax, self.req.plan.float_regs_used as i32);
        }
        call_absolute(&mut self.ops, self.req.function);
    }

    /// C result (rax / xmm0) → VALUE in rax.
    fn rebox_return(&mut self) {
        let targets = self.targets;
        match self.req.plan.ret_ty {
            CType::Void => dynasm!(self.ops ; .arch x64 ; mov eax, QNIL),
            CType::Bool => dynasm!(self.ops
                ; .arch x64
                ; test al, al
                ; mov eax, QFALSE
                ; mov ecx, QTRUE
                ; cmovnz eax, ecx
            ),
            // Only al/ax/eax are defined for narrow returns: extend, then tag.
            CType::I8 => dynasm!(self.ops ; .arch x64 ; movsx rax, al ; lea rax, [rax + rax + 1]),
            CType::U8 => dynasm!(self.ops ; .arch x64 ; movzx eax, al ; lea rax, [rax + rax + 1]),
            CType::I16 => dynasm!(self.ops ; .arch x64 ; movsx rax, ax ; lea rax, [rax + rax + 1]),
            CType::U16 => dynasm!(self.ops ; .arch x64 ; movzx eax, ax ; lea rax, [rax + rax + 1]),
            CType::I32 => dynasm!(self.ops ; .arch x64 ; movsxd rax, eax ; lea rax, [rax + rax + 1]),
            CType::U32 => dynasm!(self.ops ; .arch x64 ; mov eax, eax ; lea rax, [rax + rax + 1]),
            CType::I64 => {
                let (big, done) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rcx, rax
                    ; add rcx, rcx                // overflows iff outside Fixnum range
                    ; jo =>big
                    ; lea rax, [rcx + 1]
                    ; =>done
                );
                self.slow.push(Box::new(move |ops| {
                    dynasm!(ops ; .arch x64 ; =>big ; mov rdi, rax);
                    call_absolute(ops, targets.ll2inum);
                    dynasm!(ops ; .arch x64 ; jmp =>done);
                }));
            }
            CType::U64 => {
                let (big, done) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
                dynasm!(self.ops
                    ; .arch x64
                    ; mov rcx, QWORD FIXNUM_MAX
                    ; cmp rax, rcx
                    ; ja =>big
                    ; lea rax, [rax + rax + 1]
                    ; =>done
                );
                self.slow.push(Box::new(move |ops| {
                    dynasm!(ops ; .arch x64 ; =>big ; mov rdi, rax);
                    call_absolute(ops, targets.ull2inum);
                    dynasm!(ops ; .arch x64 ; jmp =>done);
                }));
            }
            CType::F32 | CType::F64 => {
                if self.req.plan.ret_ty == CType::F32 {
                    dynasm!(self.ops ; .arch x64 ; cvtss2sd xmm0, xmm0);
                }
                self.rebox_double();
            }
            CType::Pointer => {
                dynasm!(self.ops ; .arch x64 ; mov rdi, rax);
                call_absolute(&mut self.ops, targets.ret_pointer);
            }
            CType::CString => {
                let (null, done) = (self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
                dynasm!(self.ops
                    ; .arch x64
                    ; test rax, rax
                    ; jz =>null
                    ; mov rdi, rax
                );
                call_absolute(&mut self.ops, targets.str_new_cstr);
                dynasm!(self.ops ; .arch x64 ; =>done);
                self.slow.push(Box::new(move |ops| {
                    dynasm!(ops ; .arch x64 ; =>null ; mov eax, QNIL ; jmp =>done);
                }));
            }
            CType::Struct(_) => unreachable!("rejected in emit_stub"),
        }
    }

    /// xmm0 → Float VALUE: a flonum when the exponent fits (CRuby's
    /// rb_float_new_inline), else a heap Float via rb_float_new_in_heap.
    fn rebox_double(&mut self) {
        let (not_flonum, heap, done) =
            (self.ops.new_dynamic_label(), self.ops.new_dynamic_label(), self.ops.new_dynamic_label());
        dynasm!(self.ops
            ; .arch x64
            ; movq rax, xmm0
            ; mov rcx, rax
            ; shr rcx, 60
            ; and ecx, 7
            ; sub ecx, 3
            ; test ecx, -2                    // exponent bits b62..b60 in {011, 100}?
            ; jnz =>not_flonum
            ; mov rcx, QWORD 0x3000_0000_0000_0000
            ; cmp rax, rcx
            ; je =>heap
            ; rol rax, 3
            ; and rax, -2
            ; or rax, FLONUM_FLAG
            ; =>done
        );
        let helper = self.targets.float_new_in_heap;
        self.slow.push(Box::new(move |ops| {
            dynasm!(ops
                ; .arch x64
                ; =>not_flonum
                ; test rax, rax                 // +0.0 has its own flonum
                ; jnz =>heap
                ; mov rax, QWORD FLONUM_ZERO
                ; jmp =>done
                ; =>heap                        // xmm0 still holds the double
            );
            call_absolute(ops, helper);
            dynasm!(ops ; .arch x64 ; jmp =>done);
        }));
    }
}

#[allow(dead_code)]
const _: u8 = RCX;
