//! What every backend's forward stub shares: the order of its steps, its
//! frame's layout and its literal pool.

use super::{EmitError, EmittedStub, StubRequest};
use crate::abi::{CLoc, CfuncForm, PlanEntry, StubPlan};
use crate::lower::{self, Lowered};
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
    /// Emits one argument's conversion (its hot part; the cold part is
    /// kept for `finish`).
    fn argument(&mut self, entry: &PlanEntry, conv: &Lowered);
    /// Makes the call (through `rb_thread_call_without_gvl` for a blocking
    /// stub) and saves errno.
    fn call(&mut self);
    /// Emits the result's conversion, which returns on every path.
    fn result(&mut self, conv: &Lowered);
    /// Emits the slow paths, the blocking call's inner function and the
    /// literal pool.
    fn finish(self) -> Result<EmittedStub, EmitError>;
}

/// A forward stub for `req`: the lowering's conversions through backend `B`.
pub(crate) fn build<'a, B: StubBackend<'a>>(req: &'a StubRequest<'a>) -> Result<EmittedStub, EmitError> {
    let args: Vec<Lowered> = req.plan.args.iter().map(lower::argument).collect();
    let result = lower::result(req.plan);
    let mut b = B::new(req, &args)?;
    b.prologue();
    for (entry, conv) in req.plan.args.iter().zip(&args) {
        b.argument(entry, conv);
    }
    b.call();
    b.result(&result);
    b.finish()
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
    /// Each argument passed by reference (AAPCS64 B.4): its copy.
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
        let copies = plan
            .args
            .iter()
            .map(|e| match e.dest {
                // 8-aligned: every other slot is.
                CLoc::ByReference { size, .. } => Some(slot((size as i32 + 7) / 8 * 8)),
                _ => None,
            })
            .collect();
        let retbuf = round16(used);
        let used = retbuf + (shape.retbuf_bytes)(&plan.ret_ty);
        Frame { argv, keep, block, spill, copies, retbuf, size: (shape.size)(used) }
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
