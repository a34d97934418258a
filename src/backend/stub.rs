//! What every backend's forward stub shares: the order of its steps, its
//! frame's layout and its literal pool.

use super::{EmitError, EmittedStub, StubRequest};
use crate::abi::{ArgSource, CLoc, CfuncForm, PlanEntry, ResultPointer, RetLoc, StubPlan};
use crate::lower::{self, FReg, Helper, HelperInput, HelperOutput, LabelId, Lowered, Op, Operand, Reg, TailTarget};
use crate::types::CType;
use dynasmrt::relocations::Relocation;
use dynasmrt::{DynamicLabel, DynasmApi, DynasmLabelApi, VecAssembler};

/// What a machine's stub is made of besides instructions: its frame's
/// shape and the registers the conversions use.
pub(crate) trait Machine {
    type Relocation: Relocation;
    const SHAPE: FrameShape;
    /// The code buffer's initial capacity: bytes, and bytes per parameter.
    const CODE_BYTES: (usize, usize);
    /// The incoming (cfunc) and outgoing (C) integer argument registers, in order.
    const INT_ARG_REGS: &'static [u8];
    /// `Reg::Arg` and `FReg::Arg` when the destination is no register of
    /// its own (a stack slot, the call block), and where a thunk returns.
    const SCRATCH: u8;
    const FSCRATCH: u8;
    /// `Reg::T1`, `Reg::T2`, `Reg::Ret`.
    const TEMPS: [u8; 3];
    /// Rejects what this machine has no code for, before anything is emitted.
    fn check(_req: &StubRequest, _frame: &Frame) -> Result<(), EmitError> {
        Ok(())
    }
    /// `Reg::Value` for an argument that is not in an incoming register.
    fn value_register(source: ArgSource, conv: &Lowered) -> u8;
    /// A helper's lowered fast path, in front of its thunk's call
    /// (`helper`), with the registers the thunk contract leaves free.
    fn fast_path(code: &mut Code<Self::Relocation>, l: &Lowered, helper: DynamicLabel);
    /// A thunk's call of `target` that saves and restores every argument
    /// register around it.
    fn call_saving_registers(code: &mut Code<Self::Relocation>, target: usize);
    /// A struct accessor's registers (`backend::accessor`): `Receiver`,
    /// `Name`, `Value`, `Arg`, `T1`, `T2`, `Ret`; `FReg::Arg`, `FReg::Ret`.
    const ACCESSOR_REGS: ([u8; 7], [u8; 2]);
    /// Instructions for an op that needs no more than registers, labels
    /// and the pool; `false` for the others.
    fn plain_op(code: &mut Code<Self::Relocation>, op: MachineOp) -> bool;
    /// Returns from code without a frame.
    fn leaf_return(code: &mut Code<Self::Relocation>);
    /// Jumps from code without a frame to `target`, registers as they are.
    fn leaf_jump(code: &mut Code<Self::Relocation>, target: usize);
}

/// A slow-path thunk on machine `M` for the helper at `target`: its
/// lowered `fast_path` first, if it has one.
pub(crate) fn thunk<M: Machine>(target: usize, fast_path: Option<&Lowered>) -> Vec<u8> {
    let mut code = Code::new();
    let helper = code.ops.new_dynamic_label();
    if let Some(l) = fast_path {
        M::fast_path(&mut code, l, helper);
    }
    code.ops.dynamic_label(helper);
    M::call_saving_registers(&mut code, target);
    code.finish()
}

/// A forward stub being built on machine `M`; `build` orders the steps,
/// `Steps` (one impl per machine) selects their instructions.
pub(crate) struct Stub<'a, M: Machine> {
    pub code: Code<M::Relocation>,
    pub req: &'a StubRequest<'a>,
    pub frame: Frame,
    /// The argv form's argument-count error.
    pub arity: Option<DynamicLabel>,
    /// A blocking stub's inner function.
    pub inner: DynamicLabel,
}

/// Each machine's instructions for the steps of a stub.
pub(crate) trait Steps {
    /// Sets up the frame.
    fn enter(&mut self);
    /// Saves incoming integer register `r` at `[frame + at]`.
    fn spill(&mut self, r: u8, at: i32);
    /// The argv form: saves argv at `[frame + argv]`, goes to `arity` unless
    /// argc is `n` (Ruby does not check the count for this form).
    fn check_argc(&mut self, argv: i32, n: u32, arity: DynamicLabel);
    /// Instructions for an op that needs no more than registers, labels
    /// and the pool; `false` for the others.
    fn code_op(&mut self, c: &Conv, op: MachineOp) -> bool;
    /// `Op::LoadValue`: `Reg::Value` ← the VALUE, unless it is there already.
    fn load_value(&mut self, c: &Conv);
    /// `Reg::Arg` (`bytes` of it) → its destination.
    fn place(&mut self, c: &Conv, bytes: u8);
    /// `FReg::Arg` (a double, or a float when `single`) → its destination.
    fn place_float(&mut self, c: &Conv, single: bool);
    /// A slow path: loads the VALUE, passes `input`, calls
    /// `helper`'s thunk; its result is in `SCRATCH` / `FSCRATCH`.
    fn call_thunk(&mut self, c: &Conv, helper: Helper, input: HelperInput);
    /// After a slow path's result is in place.
    fn thunk_returned(&mut self, _c: &Conv, _input: HelperInput) {}
    /// A float register move (nothing when `dst == src`).
    fn mov_float(&mut self, dst: u8, src: u8);
    fn copy_struct(&mut self, c: &Conv, src: u8);
    fn box_struct_result(&mut self);
    fn box_long_double_result(&mut self);
    /// Removes the frame and returns.
    fn ret(&mut self);
    /// Removes the frame and jumps to `target` with the result as its argument.
    fn tail_call(&mut self, target: TailTarget);
    /// The hidden result pointer (to the frame's result buffer) in its register.
    fn pass_result_buffer(&mut self, pointer: ResultPointer);
    fn call_function(&mut self);
    fn call_without_gvl(&mut self);
    fn save_errno(&mut self);
    /// At `arity`: raises the argument-count error.
    fn arity_error(&mut self, arity: DynamicLabel);
    /// A blocking stub's inner function.
    fn emit_inner(&mut self);
}

impl<'a, M: Machine> Stub<'a, M>
where
    Stub<'a, M>: Steps,
{
    /// Lays out the frame (`args`: the arguments' lowered conversions).
    fn new(req: &'a StubRequest<'a>, args: &[Lowered]) -> Result<Self, EmitError> {
        let frame = Frame::layout(req.plan, args, req.blocking, &M::SHAPE);
        M::check(req, &frame)?;
        let mut code = Code::for_stub(req, M::CODE_BYTES.0, M::CODE_BYTES.1);
        let inner = code.ops.new_dynamic_label();
        Ok(Stub { code, req, frame, arity: None, inner })
    }

    /// Sets up the frame, saves the plan's spilled registers and, in the
    /// argv form, checks the argument count.
    fn prologue(&mut self) {
        self.enter();
        if let Some(base) = self.frame.spill {
            for &r in &self.req.plan.spill {
                self.spill(r, base + 8 * r as i32);
            }
        }
        if let (CfuncForm::Argv(n), Some(argv)) = (self.req.plan.form, self.frame.argv) {
            let arity = self.code.ops.new_dynamic_label();
            self.check_argc(argv, n, arity);
            self.arity = Some(arity);
        }
    }

    /// The machine registers of an argument's conversion (labels empty):
    /// converted straight into its C register where it has one.
    fn argument_registers(&self, e: &PlanEntry, l: &Lowered) -> Conv {
        let value = match e.source {
            ArgSource::Int(r) => M::INT_ARG_REGS[r as usize],
            source => M::value_register(source, l),
        };
        let arg = match (&e.dest, self.frame.block) {
            (CLoc::Int(k), None) if M::INT_ARG_REGS[*k as usize] != value => M::INT_ARG_REGS[*k as usize],
            _ => M::SCRATCH,
        };
        let farg = match (&e.dest, self.frame.block) {
            (CLoc::Float(k), None) => *k,
            _ => M::FSCRATCH,
        };
        Conv {
            source: e.source,
            dest: e.dest.clone(),
            index: e.index as u32,
            keep: self.frame.keep[e.index],
            copy: self.frame.copies[e.index],
            ..Conv::registers(value, arg, farg, 0, M::TEMPS)
        }
    }

    /// The machine registers of the result's conversion (labels empty).
    fn result_registers(&self) -> Conv {
        let ret = M::TEMPS[2];
        Conv::registers(ret, ret, M::FSCRATCH, 0, M::TEMPS)
    }

    /// Instructions for one op of conversion `c`.
    fn op(&mut self, c: &Conv, op: Op) {
        let op = c.resolve(op);
        if self.code_op(c, op) {
            return;
        }
        match op {
            Op::LoadValue => self.load_value(c),
            Op::Place { bytes } => self.place(c, bytes),
            Op::PlaceFloat { single } => self.place_float(c, single),
            Op::CallHelper { helper, input, output } => {
                self.call_thunk(c, helper, input);
                match output {
                    HelperOutput::Arg => {
                        let moved = self.code_op(c, Op::Mov { dst: c.arg, src: Operand::Reg(M::SCRATCH) });
                        debug_assert!(moved, "a register move");
                    }
                    HelperOutput::FArg => self.mov_float(c.farg, M::FSCRATCH),
                    HelperOutput::None => {}
                }
                self.thunk_returned(c, input);
            }
            Op::CopyStruct { src } => self.copy_struct(c, src),
            Op::BoxStructResult => self.box_struct_result(),
            Op::BoxLongDoubleResult => self.box_long_double_result(),
            Op::Return => self.ret(),
            Op::TailCall { target } => self.tail_call(target),
            op => unreachable!("{op:?} in a stub"),
        }
    }

    /// Makes the call (through `rb_thread_call_without_gvl` for a blocking
    /// stub) and saves errno.
    fn call(&mut self) {
        if let RetLoc::Indirect { pointer, .. } = self.req.plan.ret {
            self.pass_result_buffer(pointer);
        }
        if self.req.blocking {
            self.call_without_gvl();
        } else {
            self.call_function();
        }
        self.save_errno();
    }

    /// After the slow paths: the argument-count error, the blocking call's
    /// inner function and the literal pool.
    fn finish(mut self) -> Result<EmittedStub, EmitError> {
        if let Some(arity) = self.arity {
            self.arity_error(arity);
        }
        if self.req.blocking {
            self.emit_inner();
        }
        self.code.finish_stub()
    }

    /// Labels for a conversion.
    fn labels(&mut self, n: u8) -> Vec<DynamicLabel> {
        (0..n).map(|_| self.code.ops.new_dynamic_label()).collect()
    }
}

/// A forward stub for `req` on machine `M`: the lowering's conversions,
/// each hot part where it runs, the cold parts (slow paths) after the
/// result's conversion, which returns on every path.
pub(crate) fn build<'a, M: Machine>(req: &'a StubRequest<'a>) -> Result<EmittedStub, EmitError>
where
    Stub<'a, M>: Steps,
{
    let args: Vec<Lowered> = req.plan.args.iter().map(lower::argument).collect();
    let result = lower::result(req.plan);
    let mut b = Stub::<M>::new(req, &args)?;
    b.prologue();
    let mut cold = Vec::with_capacity(args.len());
    for (entry, conv) in req.plan.args.iter().zip(&args) {
        let mut c = b.argument_registers(entry, conv);
        c.labels = b.labels(conv.labels);
        for op in &conv.hot {
            b.op(&c, *op);
        }
        cold.push((c, &conv.cold));
    }
    b.call();
    let mut c = b.result_registers();
    c.labels = b.labels(result.labels);
    for op in &result.hot {
        b.op(&c, *op);
    }
    for (c, ops) in cold {
        for op in ops {
            b.op(&c, *op);
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
            Reg::Receiver | Reg::Name => unreachable!("a struct accessor's register in a stub"),
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

/// The loads of an `n`-byte tail (`n` < 8) that read no byte past it: a
/// 4-, 2- and 1-byte piece as `n` has them, each as (offset, size).
pub(crate) fn tail_pieces(n: u32) -> impl Iterator<Item = (u32, u32)> {
    [4, 2, 1].into_iter().filter(move |size| n & size != 0).map(move |size| (n & !(2 * size - 1), size))
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
        Code::with_info(0)
    }

    /// For code that is no stub but has an info of its own (a struct
    /// accessor's table): finished with `finish_stub`, it can be copied
    /// for another info as stubs are.
    pub fn with_info(info: usize) -> Self {
        let mut ops = VecAssembler::new(0);
        let pool = Pool::new(&mut ops, 0, info);
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
