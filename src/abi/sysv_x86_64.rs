//! The System V AMD64 calling convention (Linux, BSD, macOS on x86-64).
//!
//! - Integer-class arguments go to rdi, rsi, rdx, rcx, r8, r9; vector-class
//!   to xmm0–xmm7; the rest to 8-byte stack slots in order.
//! - Structs up to 16 bytes are split into eightbytes, each classed INTEGER
//!   or SSE; if the registers for all of its eightbytes are not free, the
//!   whole struct goes on the stack. Larger structs travel in memory, and are
//!   returned through a hidden pointer in rdi.
//! - A long double (class X87/X87UP) always travels in memory: a 16-byte,
//!   16-aligned stack slot; it is returned in st(0).
//! - Variadic callers set %al to the number of vector registers used.
//! - A cfunc with arity n ≤ 15 is `f(self, a1..an)`; Ruby passes self in
//!   rdi, so argument i arrives one register later than C wants it.

use super::*;
use crate::types::{RegClass, StructType};

pub const INT_ARG_REGS: u8 = 6;
pub const FLOAT_ARG_REGS: u8 = 8;

struct Assigner {
    next_int: u8,
    next_float: u8,
    stack: u32,
}

impl Assigner {
    fn scalar(&mut self, class: RegClass) -> CLoc {
        match class {
            RegClass::Integer if self.next_int < INT_ARG_REGS => {
                self.next_int += 1;
                CLoc::Int(self.next_int - 1)
            }
            RegClass::Float if self.next_float < FLOAT_ARG_REGS => {
                self.next_float += 1;
                CLoc::Float(self.next_float - 1)
            }
            _ => self.stack_slot(8, 8),
        }
    }

    fn stack_slot(&mut self, size: u32, align: u32) -> CLoc {
        let align = align.max(8);
        self.stack = self.stack.div_ceil(align) * align;
        let offset = self.stack;
        self.stack += size.div_ceil(8) * 8;
        CLoc::Stack(offset)
    }

    fn aggregate(&mut self, s: &StructType) -> CLoc {
        if let Some(classes) = classify(s) {
            let ints = classes.iter().filter(|c| **c == RegClass::Integer).count() as u8;
            let floats = classes.len() as u8 - ints;
            if self.next_int + ints <= INT_ARG_REGS && self.next_float + floats <= FLOAT_ARG_REGS {
                return CLoc::Pieces(
                    classes
                        .iter()
                        .enumerate()
                        .map(|(i, class)| Piece {
                            loc: self.scalar(*class),
                            offset: 8 * i as u32,
                            size: eightbyte_size(s, i),
                        })
                        .collect(),
                );
            }
        }
        let CLoc::Stack(offset) = self.stack_slot(s.size as u32, s.align as u32) else { unreachable!() };
        CLoc::StackCopy { offset, size: s.size as u32 }
    }
}

fn eightbyte_size(s: &StructType, i: usize) -> u8 {
    (s.size - 8 * i).min(8) as u8
}

/// SysV classification of a struct's eightbytes; `None` means MEMORY.
pub fn classify(s: &StructType) -> Option<Vec<RegClass>> {
    if s.size == 0 || s.size > 16 {
        return None;
    }
    let mut classes = vec![RegClass::Float; s.size.div_ceil(8)];
    for (ty, offset) in s.scalars() {
        if offset % ty.align() != 0 {
            return None; // unaligned (packed) fields force MEMORY
        }
        if ty.reg_class() == Some(RegClass::Integer) {
            classes[offset / 8] = RegClass::Integer;
        }
    }
    Some(classes)
}

fn ret_loc(ret: &CType) -> RetLoc {
    match ret {
        CType::Void => RetLoc::None,
        CType::Struct(s) => match classify(s) {
            Some(classes) => {
                let (mut ints, mut floats) = (0u8, 0u8);
                RetLoc::Pieces(
                    classes
                        .iter()
                        .enumerate()
                        .map(|(i, class)| {
                            let loc = match class {
                                RegClass::Integer => { ints += 1; CLoc::Int(ints - 1) }
                                RegClass::Float => { floats += 1; CLoc::Float(floats - 1) }
                            };
                            Piece { loc, offset: 8 * i as u32, size: eightbyte_size(s, i) }
                        })
                        .collect(),
                )
            }
            None => RetLoc::Indirect { size: s.size as u32, pointer: ResultPointer::FirstIntArg },
        },
        t if t.is_float() => RetLoc::Float,
        CType::LongDouble => RetLoc::X87,
        _ => RetLoc::Int,
    }
}

/// Locations of `params`, the return location, the stack bytes used
/// (rounded to 16) and the number of vector registers used.
pub fn assign(params: &[CType], ret: &CType) -> (Vec<CLoc>, RetLoc, u32, u8) {
    let ret = ret_loc(ret);
    let mut a = Assigner { next_int: 0, next_float: 0, stack: 0 };
    if matches!(ret, RetLoc::Indirect { .. }) {
        a.next_int = 1; // the hidden result pointer takes rdi
    }
    let locs = params
        .iter()
        .map(|t| match t {
            CType::Struct(s) => a.aggregate(s),
            CType::LongDouble => a.stack_slot(16, 16),
            t => a.scalar(t.reg_class().unwrap_or(RegClass::Integer)),
        })
        .collect();
    (locs, ret, a.stack.div_ceil(16) * 16, a.next_float)
}

fn check_params(sig: &Signature) -> Result<(), PlanError> {
    check_common(sig)?;
    // X87 classes inside aggregates (a struct {long double} comes back in
    // st0, larger ones in memory): rare enough to refuse rather than plan.
    let has_x87 = |t: &CType| matches!(t, CType::Struct(s) if s.scalars().iter().any(|(f, _)| *f == CType::LongDouble));
    if sig.params.iter().chain(std::iter::once(&sig.ret)).any(has_x87) {
        return Err(PlanError::LongDoubleInStruct);
    }
    Ok(())
}

pub fn plan_stub(sig: &Signature) -> Result<StubPlan, PlanError> {
    plan_stub_in_form(sig, false)
}

/// `argv`: use the `(argc, argv, self)` form whatever the arity, so the
/// stub checks the argument count itself (and words the error like the ffi
/// gem, whose attached functions have arity -1).
pub fn plan_stub_in_form(sig: &Signature, argv: bool) -> Result<StubPlan, PlanError> {
    check_params(sig)?;
    Ok(stub_plan(sig, argv, INT_ARG_REGS, Widen::To32, assign(&sig.params, &sig.ret)))
}

pub fn plan_callback(sig: &Signature) -> Result<CallbackPlan, PlanError> {
    check_params(sig)?;
    let (locs, ret, stack_bytes, _) = assign(&sig.params, &sig.ret);
    Ok(CallbackPlan { args: sig.params.iter().cloned().zip(locs).collect(), ret_ty: sig.ret.clone(), ret, stack_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CType::*;
    use std::sync::Arc;

    fn dests(params: Vec<CType>) -> Vec<CLoc> {
        plan_stub(&Signature::new(params, I32)).unwrap().args.into_iter().map(|e| e.dest).collect()
    }

    #[test]
    fn integers_fill_six_registers_then_the_stack() {
        let d = dests(vec![I64; 8]);
        assert_eq!(d[..6], [CLoc::Int(0), CLoc::Int(1), CLoc::Int(2), CLoc::Int(3), CLoc::Int(4), CLoc::Int(5)]);
        assert_eq!(d[6..], [CLoc::Stack(0), CLoc::Stack(8)]);
    }

    #[test]
    fn ints_and_doubles_are_counted_separately() {
        let d = dests(vec![F64, I32, F32, CString, Pointer, F64]);
        assert_eq!(d, vec![CLoc::Float(0), CLoc::Int(0), CLoc::Float(1), CLoc::Int(1), CLoc::Int(2), CLoc::Float(2)]);
    }

    #[test]
    fn ninth_double_spills_and_stack_area_is_16_aligned() {
        let plan = plan_stub(&Signature::new(vec![F64; 9], F64)).unwrap();
        assert_eq!(plan.args[8].dest, CLoc::Stack(0));
        assert_eq!(plan.stack_bytes, 16);
        assert_eq!(plan.float_regs_used, 8);
        assert_eq!(plan.ret, RetLoc::Float);
    }

    #[test]
    fn mixed_twenty_args_interleave_on_the_stack_in_order() {
        // 10 ints and 10 doubles alternating: ints 7..10 and doubles 9..10 spill.
        let params: Vec<CType> = (0..20).map(|i| if i % 2 == 0 { I64 } else { F64 }).collect();
        let d = dests(params);
        assert_eq!(d[12], CLoc::Stack(0)); // 7th int
        assert_eq!(d[14], CLoc::Stack(8));
        assert_eq!(d[16], CLoc::Stack(16)); // 9th int... (index 16 is the 9th int)
        assert_eq!(d[17], CLoc::Stack(24)); // 9th double
        assert_eq!(d[19], CLoc::Stack(40));
    }

    #[test]
    fn cfunc_sources_shift_by_self_then_spill() {
        let plan = plan_stub(&Signature::new(vec![I64; 7], Void)).unwrap();
        assert_eq!(plan.form, CfuncForm::Fixed(7));
        let s: Vec<ArgSource> = plan.args.iter().map(|e| e.source).collect();
        assert_eq!(s[0], ArgSource::Int(1));
        assert_eq!(s[4], ArgSource::Int(5));
        assert_eq!(s[5], ArgSource::Stack(0));
        assert_eq!(s[6], ArgSource::Stack(8));
        assert_eq!(plan.ret, RetLoc::None);
    }

    #[test]
    fn more_than_fifteen_args_use_the_argv_form() {
        let plan = plan_stub(&Signature::new(vec![I32; 16], I32)).unwrap();
        assert_eq!(plan.form, CfuncForm::Argv(16));
        assert_eq!(plan.args[15].source, ArgSource::Argv(15));
        let plan = plan_stub(&Signature::new(vec![I32; 15], I32)).unwrap();
        assert_eq!(plan.form, CfuncForm::Fixed(15));
    }

    #[test]
    fn void_parameter_is_rejected() {
        assert_eq!(plan_stub(&Signature::new(vec![I32, Void], I32)), Err(PlanError::VoidParam(1)));
    }

    #[test]
    fn variadic_plan_counts_vector_registers_for_al() {
        let sig = Signature::variadic(vec![CString], vec![F32, I32, F64], I32);
        let plan = plan_stub(&sig).unwrap();
        assert!(plan.variadic);
        assert_eq!(plan.float_regs_used, 2);
        assert_eq!(plan.args[1].ty, F64); // promoted
    }

    #[test]
    fn small_struct_splits_into_integer_and_sse_eightbytes() {
        // struct { int a; int b; double d; } => INTEGER, SSE
        let s = Arc::new(StructType::natural(vec![I32, I32, F64]));
        let d = dests(vec![Struct(s), I64]);
        assert_eq!(
            d[0],
            CLoc::Pieces(vec![
                Piece { loc: CLoc::Int(0), offset: 0, size: 8 },
                Piece { loc: CLoc::Float(0), offset: 8, size: 8 },
            ])
        );
        assert_eq!(d[1], CLoc::Int(1));
    }

    #[test]
    fn struct_goes_to_stack_whole_when_registers_run_out() {
        let s = Arc::new(StructType::natural(vec![I64, I64]));
        let d = dests(vec![I64, I64, I64, I64, I64, Struct(s), I64]);
        assert_eq!(d[5], CLoc::StackCopy { offset: 0, size: 16 });
        assert_eq!(d[6], CLoc::Int(5)); // the last register is still used
    }

    #[test]
    fn large_struct_return_uses_hidden_pointer_in_rdi() {
        let big = Arc::new(StructType::natural(vec![I64, I64, I64]));
        let plan = plan_stub(&Signature::new(vec![I64, Struct(big.clone())], Struct(big))).unwrap();
        assert_eq!(plan.ret, RetLoc::Indirect { size: 24, pointer: ResultPointer::FirstIntArg });
        assert_eq!(plan.args[0].dest, CLoc::Int(1));
        assert_eq!(plan.args[1].dest, CLoc::StackCopy { offset: 0, size: 24 });
        assert_eq!(plan.stack_bytes, 32);
    }

    #[test]
    fn float_pair_struct_returns_in_xmm0_only() {
        // struct { float x, y; } is one SSE eightbyte
        let s = Arc::new(StructType::natural(vec![F32, F32]));
        assert_eq!(
            plan_stub(&Signature::new(vec![], Struct(s))).unwrap().ret,
            RetLoc::Pieces(vec![Piece { loc: CLoc::Float(0), offset: 0, size: 8 }])
        );
    }

    #[test]
    fn callback_reads_arguments_where_a_caller_puts_them() {
        let sig = Signature::new(vec![I32, F64, Pointer, F32], F64);
        let cb = plan_callback(&sig).unwrap();
        let fwd = plan_stub(&sig).unwrap();
        let cb_locs: Vec<CLoc> = cb.args.into_iter().map(|a| a.1).collect();
        let fwd_locs: Vec<CLoc> = fwd.args.into_iter().map(|e| e.dest).collect();
        assert_eq!(cb_locs, fwd_locs);
        assert_eq!(cb.ret, RetLoc::Float);
    }

    #[test]
    fn long_double_takes_a_16_aligned_stack_slot_and_returns_in_st0() {
        // The 7th integer takes stack bytes 0..8; a long double never uses
        // registers and its slot is padded to a 16-byte boundary.
        let mut params = vec![I64; 7];
        params.push(LongDouble);
        params.push(F64);
        params.push(LongDouble);
        let plan = plan_stub(&Signature::new(params, LongDouble)).unwrap();
        assert_eq!(plan.args[6].dest, CLoc::Stack(0));
        assert_eq!(plan.args[7].dest, CLoc::Stack(16));
        assert_eq!(plan.args[8].dest, CLoc::Float(0));
        assert_eq!(plan.args[9].dest, CLoc::Stack(32));
        assert_eq!(plan.stack_bytes, 48);
        assert_eq!(plan.float_regs_used, 1);
        assert_eq!(plan.ret, RetLoc::X87);
    }

    #[test]
    fn long_double_leaves_registers_for_later_arguments() {
        let d = dests(vec![LongDouble, I32, F64]);
        assert_eq!(d, vec![CLoc::Stack(0), CLoc::Int(0), CLoc::Float(0)]);
        let sig = Signature::variadic(vec![CString], vec![LongDouble, F64], I32);
        let plan = plan_stub(&sig).unwrap();
        assert_eq!((plan.args[1].dest.clone(), plan.float_regs_used), (CLoc::Stack(0), 1));
    }

    #[test]
    fn structs_with_long_double_fields_are_refused() {
        let s = Arc::new(StructType::natural(vec![LongDouble]));
        assert_eq!(plan_stub(&Signature::new(vec![], Struct(s.clone()))), Err(PlanError::LongDoubleInStruct));
        assert_eq!(plan_callback(&Signature::new(vec![Struct(s)], Void)), Err(PlanError::LongDoubleInStruct));
    }

    #[test]
    fn callback_and_stub_agree_on_long_double_slots() {
        let sig = Signature::new(vec![F64, LongDouble, I32, LongDouble], LongDouble);
        let cb: Vec<CLoc> = plan_callback(&sig).unwrap().args.into_iter().map(|a| a.1).collect();
        let fwd: Vec<CLoc> = plan_stub(&sig).unwrap().args.into_iter().map(|e| e.dest).collect();
        assert_eq!(cb, fwd);
        assert_eq!(cb[3], CLoc::Stack(16));
    }

    #[test]
    fn narrow_integer_arguments_are_widened_to_32_bits_and_results_not() {
        let plan = plan_stub(&Signature::new(vec![I8, U16, I32, I64, Bool], U8)).unwrap();
        let convs: Vec<Conversion> = plan.args.iter().map(|e| e.conv).collect();
        assert_eq!(
            convs,
            vec![
                Conversion::Int { bytes: 1, signed: true, widen: Widen::To32 },
                Conversion::Int { bytes: 2, signed: false, widen: Widen::To32 },
                Conversion::Int { bytes: 4, signed: true, widen: Widen::To32 },
                Conversion::Int { bytes: 8, signed: true, widen: Widen::None },
                Conversion::Bool,
            ]
        );
        assert_eq!(plan.ret_conv, Conversion::Int { bytes: 1, signed: false, widen: Widen::None });
    }

    #[test]
    fn scalar_arguments_need_no_spill_even_behind_a_hidden_result_pointer() {
        // The hidden pointer shifts every integer destination one register
        // later: argument i's destination is its own incoming register,
        // which is read before it is written.
        let big = Arc::new(StructType::natural(vec![I64, I64, I64]));
        let plan = plan_stub(&Signature::new(vec![I64, F64, Pointer], Struct(big))).unwrap();
        assert_eq!(plan.spill, Vec::<u8>::new());
        assert_eq!((plan.args[0].source, plan.args[0].dest.clone()), (ArgSource::Int(1), CLoc::Int(1)));
        assert_eq!(plan_stub(&Signature::new(vec![I64; 6], I64)).unwrap().spill, Vec::<u8>::new());
    }

    #[test]
    fn struct_pieces_that_would_overwrite_later_values_spill_them_first() {
        // { long, long } takes two registers: the second struct's pieces
        // go to rdx and rcx, and rcx still holds the third VALUE.
        let s = Arc::new(StructType::natural(vec![I64, I64]));
        let plan = plan_stub(&Signature::new(vec![Struct(s.clone()), Struct(s.clone()), F64], Void)).unwrap();
        assert_eq!(plan.spill, vec![1, 2, 3]);
        let sources: Vec<ArgSource> = plan.args.iter().map(|e| e.source).collect();
        assert_eq!(sources, vec![ArgSource::Spilled(1), ArgSource::Spilled(2), ArgSource::Spilled(3)]);
        // A struct's own incoming register is read (by the helper) before
        // its pieces are written.
        assert_eq!(plan_stub(&Signature::new(vec![Struct(s), I32, F64], Void)).unwrap().spill, Vec::<u8>::new());
    }

    #[test]
    fn argv_form_can_be_forced_for_any_arity() {
        let sig = Signature::new(vec![I32, F64], I32);
        let plan = plan_stub_in_form(&sig, true).unwrap();
        assert_eq!(plan.form, CfuncForm::Argv(2));
        assert_eq!(plan.args[1].source, ArgSource::Argv(1));
        assert_eq!(plan.args[1].dest, CLoc::Float(0));
        assert_eq!(plan_stub_in_form(&Signature::new(vec![], Void), true).unwrap().form, CfuncForm::Argv(0));
        assert_eq!(plan_stub_in_form(&sig, false).unwrap(), plan_stub(&sig).unwrap());
    }
}
