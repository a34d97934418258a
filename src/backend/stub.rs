//! What every backend's forward stub shares: the order of its steps, its
//! frame's layout and its literal pool.

use super::{EmitError, EmittedStub, StubRequest};
use crate::abi::{ArgSource, CLoc, CfuncForm, PlanEntry, StubPlan};
use crate::lower::{self, FReg, LabelId, Lowered, Op, Reg};
use crate::types::CType;
use dynasmrt::relocations::Relocation;
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

/// The steps of a forward stub, which each backend fills in.
pub(crate) trait StubBackend<'a>: Sized {
    /// Lays out the frame (`args`: the arguments' lowered conversions).
    fn new(req: &'a StubRequest<'a>, args: &[Lowered]) -> Result<Self, EmitError>;
    /// Sets up the frame, saves the plan's spilled registers and, in the
    /// argv form, checks the argument count.
    fn prologue(&mut self);
    /// The machine registers of an argument's conversion (labels empty).
    fn argument_registers(&self, entry: &PlanEntry, conv: &Lowered) -> Conv;
    /// The machine registers of the result's conversion (labels empty).
    fn result_registers(&self) -> Conv;
    type Relocation: Relocation;
    fn code(&mut self) -> &mut Code<Self::Relocation>;
    /// Instructions for an op that needs no more than registers, labels
    /// and the pool; `false` for the others.
    fn code_op(&mut self, c: &Conv, op: MachineOp) -> bool;
    /// Instructions for the other ops, which need the stub's frame and
    /// request.
    fn stub_op(&mut self, c: &Conv, op: MachineOp);
    /// Makes the call (through `rb_thread_call_without_gvl` for a blocking
    /// stub) and saves errno.
    fn call(&mut self);
    /// After the slow paths: the rest of the out-of-line code (the
    /// argument-count error, the blocking call's inner function) and the
    /// literal pool.
    fn finish(self) -> Result<EmittedStub, EmitError>;
}

/// Instructions for one op of conversion `c`.
fn emit_op<'a, B: StubBackend<'a>>(b: &mut B, c: &Conv, op: Op) {
    let op = c.resolve(op);
    if !b.code_op(c, op) {
        b.stub_op(c, op);
    }
}

/// Labels for a conversion.
fn labels<'a, B: StubBackend<'a>>(b: &mut B, n: u8) -> Vec<DynamicLabel> {
    (0..n).map(|_| b.code().ops.new_dynamic_label()).collect()
}

/// A forward stub for `req`: the lowering's conversions through backend
/// `B`. Each conversion's hot part goes where it runs; the cold parts
/// (slow paths) after the result's conversion, which returns on every path.
pub(crate) fn build<'a, B: StubBackend<'a>>(req: &'a StubRequest<'a>) -> Result<EmittedStub, EmitError> {
    let args: Vec<Lowered> = req.plan.args.iter().map(lower::argument).collect();
    let result = lower::result(req.plan);
    let mut b = B::new(req, &args)?;
    b.prologue();
    let mut cold = Vec::with_capacity(args.len());
    for (entry, conv) in req.plan.args.iter().zip(&args) {
        let mut c = b.argument_registers(entry, conv);
        c.labels = labels(&mut b, conv.labels);
        for op in &conv.hot {
            emit_op(&mut b, &c, *op);
        }
        cold.push((c, &conv.cold));
    }
    b.call();
    let mut c = b.result_registers();
    c.labels = labels(&mut b, result.labels);
    for op in &result.hot {
        emit_op(&mut b, &c, *op);
    }
    for (c, ops) in cold {
        for op in ops {
            emit_op(&mut b, &c, *op);
        }
    }
    b.finish()
}

/// An op with machine registers and labels.
pub(crate) type MachineOp = Op<u8, u8, DynamicLabel>;

/// One conversion's machine registers (see `lower::Reg`) and labels, and
/// where its argument comes from and goes.
#[derive(Clone, Debug)]
pub(crate) struct Conv {
    pub value: u8,
    pub arg: u8,
    pub farg: u8,
    pub fret: u8,
    pub t1: u8,
    pub t2: u8,
    pub ret: u8,
    pub labels: Vec<DynamicLabel>,
    pub source: ArgSource,
    pub dest: CLoc,
    pub index: u32,
    /// The keep-alive slot and the by-reference copy (see [`Frame`]).
    pub keep: Option<i32>,
    pub copy: Option<i32>,
}

impl Conv {
    /// Registers only: for the result, a helper's fast path.
    pub fn registers(value: u8, arg: u8, farg: u8, fret: u8, [t1, t2, ret]: [u8; 3]) -> Conv {
        Conv {
            value,
            arg,
            farg,
            fret,
            t1,
            t2,
            ret,
            labels: Vec::new(),
            source: ArgSource::Int(0),
            dest: CLoc::Int(0),
            index: 0,
            keep: None,
            copy: None,
        }
    }

    /// `op` with these registers and labels.
    pub fn resolve(&self, op: Op) -> MachineOp {
        let r = |reg| match reg {
            Reg::Value => self.value,
            Reg::Arg => self.arg,
            Reg::Ret => self.ret,
            Reg::T1 => self.t1,
            Reg::T2 => self.t2,
        };
        let f = |reg| match reg {
            FReg::Arg => self.farg,
            FReg::Ret => self.fret,
        };
        op.resolve(r, f, |l: LabelId| self.labels[l.0 as usize])
    }
}

/// A stub's frame: offsets from the stack pointer once the prologue has
/// run. Outgoing stack arguments start at 0.
#[derive(Clone, Debug)]
pub(crate) struct Frame {
    /// argv's slot (the argv form only).
    pub argv: Option<i32>,
    /// Each argument's keep-alive slot, where its conversion has one: a
    /// `to_str` result stays there, visible to the conservative GC scan,
    /// until the call returns.
    pub keep: Vec<Option<i32>>,
    /// `blocking: true`: the call block the GVL-free inner function reads.
    pub block: Option<i32>,
    /// The plan's spilled registers: register r at `spill + 8 * r`.
    pub spill: Option<i32>,
    /// Each argument passed by reference (AAPCS64 B.4): its copy; each
    /// long double passed in a register (AAPCS64): its 16 bytes, where the
    /// helper writes it before it is loaded.
    pub copies: Vec<Option<i32>>,
    /// Struct and long double results: their bytes (16-aligned).
    pub retbuf: i32,
    /// Bytes the prologue reserves.
    pub size: i32,
}

/// What differs between the machines' frames.
pub(crate) struct FrameShape {
    /// A blocking call's block, apart from its stack arguments.
    pub block_bytes: i32,
    /// Integer argument registers (the spill area has a slot for each).
    pub int_arg_regs: i32,
    /// The result buffer's bytes for a return type.
    pub retbuf_bytes: fn(&CType) -> i32,
    /// The frame's size for `used` bytes of locals (stack alignment).
    pub size: fn(i32) -> i32,
}

pub(crate) fn round16(n: i32) -> i32 {
    (n + 15) / 16 * 16
}

impl Frame {
    pub fn layout(plan: &StubPlan, args: &[Lowered], blocking: bool, shape: &FrameShape) -> Frame {
        let mut used = plan.stack_bytes as i32;
        let mut slot = |bytes: i32| {
            used += bytes;
            used - bytes
        };
        let argv = matches!(plan.form, CfuncForm::Argv(_)).then(|| slot(8));
        let keep = args.iter().map(|l| l.keep_slot.then(|| slot(8))).collect();
        let block = blocking.then(|| slot(shape.block_bytes + plan.stack_bytes as i32));
        let spill = (!plan.spill.is_empty()).then(|| slot(8 * shape.int_arg_regs));
        let retbuf = round16(used);
        used = retbuf + (shape.retbuf_bytes)(&plan.ret_ty);
        // Last (only AAPCS64 has them): a copy of any size leaves every
        // other slot at a small offset.
        let copies = plan
            .args
            .iter()
            .map(|e| match e.dest {
                // 16-aligned (a long double's q slot, a copy's loop).
                CLoc::ByReference { size, .. } => Some(round16(size as i32)),
                CLoc::Float(_) if e.ty == CType::LongDouble => Some(16),
                _ => None,
            })
            .map(|bytes| {
                bytes.map(|b| {
                    used = round16(used) + b;
                    used - b
                })
            })
            .collect();
        Frame { argv, keep, block, spill, copies, retbuf, size: (shape.size)(used) }
    }
}

/// Instructions being assembled and their literal pool: what every op
/// that needs no stub frame is emitted into (stubs and thunks). Each
/// backend adds its instruction selection for `Code<its relocation>`.
pub(crate) struct Code<R: Relocation> {
    pub ops: VecAssembler<R>,
    pub pool: Pool,
    /// `Const::PointerDataType`, `Const::StructDataType`.
    pub data_types: [u64; 2],
}

impl<R: Relocation> Code<R> {
    /// For a stub of `req`, with room for about `bytes_per_arg` bytes a
    /// parameter up front: growing the buffers byte by byte was a third of
    /// the emitter's cost.
    pub fn for_stub(req: &StubRequest, base_bytes: usize, bytes_per_arg: usize) -> Self {
        let n = req.plan.args.len();
        let mut ops = VecAssembler::new_with_capacity(0, base_bytes + bytes_per_arg * n, 0, 0, 16 + 4 * n, 0, 16 + 4 * n);
        let pool = Pool::new(&mut ops, req.function, req.info);
        let data_types = [req.targets.pointer_data_type as u64, req.targets.struct_data_type as u64];
        Code { ops, pool, data_types }
    }

    /// For code that is no stub (a thunk): no function, no info.
    pub fn new() -> Self {
        let mut ops = VecAssembler::new(0);
        let pool = Pool::new(&mut ops, 0, 0);
        Code { ops, pool, data_types: [0; 2] }
    }

    /// A stub: its instructions, then its pool.
    pub fn finish_stub(mut self) -> Result<EmittedStub, EmitError> {
        let code_len = self.ops.offset().0;
        let (function_at, info_at) = self.pool.emit(&mut self.ops);
        let code = self.ops.finalize().map_err(|e| EmitError::Assembler(format!("{e:?}")))?;
        Ok(EmittedStub { code, code_len, function_at, info_at })
    }

    /// Other code: its instructions, then its constants.
    pub fn finish(mut self) -> Vec<u8> {
        self.pool.emit_constants(&mut self.ops);
        self.ops.finalize().expect("code assembles")
    }
}

/// 64-bit constants a stub loads PC-relative, emitted after its code.
pub(crate) struct Pool {
    entries: Vec<(u64, DynamicLabel)>,
    /// Entries of their own (never shared with an equal constant), so a
    /// copy of the stub can be retargeted by patching just these two.
    pub function: DynamicLabel,
    pub info: DynamicLabel,
    values: (u64, u64),
}

impl Pool {
    pub fn new<R: Relocation>(ops: &mut VecAssembler<R>, function: usize, info: usize) -> Pool {
        Pool {
            entries: Vec::with_capacity(8),
            function: ops.new_dynamic_label(),
            info: ops.new_dynamic_label(),
            values: (function as u64, info as u64),
        }
    }

    /// The label of an entry holding `value`.
    pub fn label<R: Relocation>(&mut self, ops: &mut VecAssembler<R>, value: u64) -> DynamicLabel {
        if let Some((_, l)) = self.entries.iter().find(|(v, _)| *v == value) {
            return *l;
        }
        let l = ops.new_dynamic_label();
        self.entries.push((value, l));
        l
    }

    /// Emits the constants, 8-aligned; returns the offsets of the function
    /// and info entries.
    pub fn emit<R: Relocation>(self, ops: &mut VecAssembler<R>) -> (usize, usize) {
        ops.align(8, 0);
        let function_at = ops.offset().0;
        ops.dynamic_label(self.function);
        ops.push_u64(self.values.0);
        let info_at = ops.offset().0;
        ops.dynamic_label(self.info);
        ops.push_u64(self.values.1);
        self.emit_constants(ops);
        (function_at, info_at)
    }

    /// Emits the constants other than the function and info (code that is
    /// no stub, such as a thunk, has neither), 8-aligned.
    pub fn emit_constants<R: Relocation>(&self, ops: &mut VecAssembler<R>) {
        ops.align(8, 0);
        for &(value, label) in &self.entries {
            ops.dynamic_label(label);
            ops.push_u64(value);
        }
    }
}
