//! Struct field accessors (`lower::struct_access`) in machine code: the
//! lowered ops with each machine's accessor registers, no frame (the code
//! is a leaf: it returns, tail-calls a boxing function, or jumps to the
//! generic cfunc with its arguments untouched).

use super::stub::{Code, Machine};
use super::{EmitError, EmittedStub, RuntimeTargets};
use crate::lower::{FReg, LabelId, Lowered, Op, Operand, Reg, TailTarget};

/// Machine code for the lowered accessor `l` of the layout table `table`
/// (its `Const::Info`), whose fallback is the cfunc at `fallback`.
pub(crate) fn emit<M: Machine>(l: &Lowered, table: usize, fallback: usize, targets: &RuntimeTargets) -> Result<EmittedStub, EmitError> {
    let mut code = Code::<M::Relocation>::with_info(table);
    let ([receiver, name, value, arg, t1, t2, ret], [farg, fret]) = M::ACCESSOR_REGS;
    let labels: Vec<_> = (0..l.labels).map(|_| code.ops.new_dynamic_label()).collect();
    let r = |reg| match reg {
        Reg::Receiver => receiver,
        Reg::Name => name,
        Reg::Value => value,
        Reg::Arg => arg,
        Reg::T1 => t1,
        Reg::T2 => t2,
        Reg::Ret => ret,
    };
    let f = |reg| match reg {
        FReg::Arg => farg,
        FReg::Ret => fret,
    };
    for op in l.hot.iter().chain(&l.cold) {
        match op.resolve(r, f, |x: LabelId| labels[x.0 as usize]) {
            Op::Return => M::leaf_return(&mut code),
            Op::Fallback => M::leaf_jump(&mut code, fallback),
            Op::TailCall { target } => {
                // The boxing functions take the integer in the first
                // argument register (the double stays in FReg::Ret).
                if target != TailTarget::FloatNewInHeap {
                    let moved = M::plain_op(&mut code, Op::Mov { dst: M::INT_ARG_REGS[0], src: Operand::Reg(ret) });
                    debug_assert!(moved, "a register move");
                }
                M::leaf_jump(&mut code, targets.tail_target(target));
            }
            op => assert!(M::plain_op(&mut code, op), "{op:?} in a struct accessor"),
        }
    }
    code.finish_stub()
}
