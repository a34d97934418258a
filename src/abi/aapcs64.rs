//! The Arm 64-bit procedure call standard (AAPCS64), Linux and Apple.
//!
//! Rule numbers (B.4, C.12, ...) are those of the AAPCS64 "Parameter passing
//! rules"; docs/aarch64.md has the summary and the Apple differences.
//!
//! - Integer-class arguments go to x0–x7 (NGRN), floating point to v0–v7
//!   (NSRN), the rest to the stack (NSAA) in order. Unlike SysV, a struct
//!   that does not fit the registers still closes that register file
//!   (NGRN := 8 or NSRN := 8), so no later argument of that class takes a
//!   register.
//! - Structs: a homogeneous floating-point aggregate (HFA: 1–4 members of
//!   one float type, nested structs and arrays flattened) takes one v
//!   register per member; other structs up to 16 bytes one or two x
//!   registers, starting at an even register when 16-byte aligned; larger
//!   ones are copied by the caller and passed by address
//!   ([`CLoc::ByReference`]).
//! - A struct result over 16 bytes (and not an HFA) is written through the
//!   address the caller puts in **x8**, which is not an argument register:
//!   x0 stays the first argument ([`ResultPointer::X8`]).
//! - Stack arguments: Linux uses 8-byte slots (16 for 16-byte-aligned
//!   types); Apple packs scalars and HFAs at their natural size and
//!   alignment. On Apple every variadic argument goes on the stack in 8-byte
//!   slots; on Linux variadic arguments follow the ordinary rules.
//! - Narrow integers: Apple callers sign/zero-extend arguments to 32 bits,
//!   Linux callers leave the upper bits unspecified ([`Platform`]).
//! - A cfunc with arity n ≤ 15 is `f(self, a1..an)` (self in x0, argument i
//!   in x(i+1), the rest in 8-byte stack slots); more arguments use
//!   `f(argc, argv, self)` with argc in w0, argv in x1, self in x2.

use super::*;
use crate::types::{RegClass, StructType};

pub const INT_ARG_REGS: u8 = 8;
pub const FLOAT_ARG_REGS: u8 = 8;
/// x8: where the caller passes the address of a large struct result.
pub const INDIRECT_RESULT_REG: u8 = 8;
/// x18: the platform register. Apple (and Windows) reserve it; Linux lets
/// it be used as a temporary, but emitted code never touches it anywhere so
/// that the same code is valid on every platform.
pub const PLATFORM_REG: u8 = 18;
/// Largest struct passed in registers; larger ones go by reference.
const MAX_REG_COMPOSITE: usize = 16;

/// Which variant of AAPCS64 to plan for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// Linux and the other ELF systems: the standard as written.
    Linux,
    /// Apple's arm64 (macOS, iOS): stack arguments packed at natural size
    /// and alignment, variadic arguments all on the stack, narrow integer
    /// arguments extended to 32 bits by the caller, x18 reserved.
    Apple,
}

impl Platform {
    /// The platform this library was compiled for (Linux for anything that
    /// is not Apple, so tests of the aarch64 planner run on any host).
    pub fn host() -> Platform {
        if cfg!(target_vendor = "apple") {
            Platform::Apple
        } else {
            Platform::Linux
        }
    }
}

/// The member type and count of a homogeneous floating-point aggregate:
/// 1–4 scalars of one float type, at consecutive offsets, no padding.
pub fn hfa(s: &StructType) -> Option<(CType, u8)> {
    let scalars = s.scalars();
    let member = scalars.first()?.0.clone();
    if !is_fp(&member) || scalars.len() > 4 {
        return None;
    }
    let size = member.size();
    let uniform = scalars.iter().enumerate().all(|(i, (t, offset))| *t == member && *offset == i * size);
    (uniform && s.size == scalars.len() * size).then_some((member, scalars.len() as u8))
}

/// A floating-point type: float, double, or long double (Linux: IEEE
/// binary128, a quad-precision value in a whole q register).
fn is_fp(ty: &CType) -> bool {
    ty.is_float() || *ty == CType::LongDouble
}

/// The alignment rules C.10 and C.14 use: the composite's *natural*
/// alignment, i.e. its most-aligned member's, ignoring any alignment added
/// to the struct as a whole (AAPCS64 §5.6; gcc and clang's "unadjusted
/// alignment", checked by test/aarch64/plan_vs_gcc.c), capped at 16.
fn arg_align(s: &StructType) -> u32 {
    s.scalars().iter().map(|(t, _)| t.align() as u32).max().unwrap_or(1).clamp(1, 16)
}

struct Assigner {
    platform: Platform,
    /// NGRN, NSRN, NSAA of the standard.
    next_int: u8,
    next_float: u8,
    stack: u32,
}

impl Assigner {
    /// The alignment C.10 and C.14 use for a (non-HFA) struct of up to 16
    /// bytes. Linux: its natural alignment ([`arg_align`]). Apple: clang's
    /// Darwin lowering uses the struct's own alignment, an `aligned(16)`
    /// included (it becomes an `i128`: even register pair, 16-aligned
    /// stack slot). UNTESTED on Apple hardware.
    fn composite_align(&self, s: &StructType) -> u32 {
        match self.platform {
            Platform::Linux => arg_align(s),
            Platform::Apple => (s.align as u32).clamp(1, 16),
        }
    }

    fn stack_slot(&mut self, size: u32, align: u32) -> u32 {
        self.stack = self.stack.div_ceil(align) * align;
        let offset = self.stack;
        self.stack += size;
        offset
    }

    /// A scalar's stack slot: natural size and alignment on Apple (C.16 is
    /// not applied there), an 8-byte slot otherwise (C.5, C.16).
    fn scalar_stack(&mut self, ty: &CType) -> CLoc {
        let size = ty.size() as u32;
        CLoc::Stack(match self.platform {
            Platform::Apple => self.stack_slot(size, size),
            Platform::Linux => self.stack_slot(8, 8),
        })
    }

    fn scalar(&mut self, ty: &CType) -> CLoc {
        if *ty == CType::LongDouble {
            // Quad precision: v[NSRN] (C.1), else a 16-byte slot at the
            // next 16-aligned NSAA (C.5, C.16's natural alignment).
            if self.next_float < FLOAT_ARG_REGS {
                self.next_float += 1;
                return CLoc::Float(self.next_float - 1);
            }
            return CLoc::Stack(self.stack_slot(16, 16));
        }
        match ty.reg_class().unwrap_or(RegClass::Integer) {
            RegClass::Float if self.next_float < FLOAT_ARG_REGS => {
                self.next_float += 1; // C.1
                CLoc::Float(self.next_float - 1)
            }
            RegClass::Integer if self.next_int < INT_ARG_REGS => {
                self.next_int += 1; // C.9
                CLoc::Int(self.next_int - 1)
            }
            _ => self.scalar_stack(ty),
        }
    }

    fn aggregate(&mut self, s: &StructType) -> CLoc {
        if let Some((member, n)) = hfa(s) {
            let size = member.size() as u32;
            if self.next_float + n <= FLOAT_ARG_REGS {
                // C.2: one v register per member.
                let first = self.next_float;
                self.next_float += n;
                return CLoc::Pieces(
                    (0..n)
                        .map(|i| Piece { loc: CLoc::Float(first + i), offset: size * i as u32, size: size as u8 })
                        .collect(),
                );
            }
            // C.3–C.6: no v register for anything after it either.
            self.next_float = FLOAT_ARG_REGS;
            let offset = match self.platform {
                Platform::Apple => self.stack_slot(s.size as u32, arg_align(s)),
                Platform::Linux => self.stack_slot((s.size as u32).div_ceil(8) * 8, arg_align(s).max(8)),
            };
            return CLoc::StackCopy { offset, size: s.size as u32 };
        }
        if s.size > MAX_REG_COMPOSITE {
            // B.4: a pointer to a caller-owned copy, allocated like a pointer.
            return CLoc::ByReference { address: Box::new(self.scalar(&CType::Pointer)), size: s.size as u32 };
        }
        let align = self.composite_align(s);
        let words = s.size.div_ceil(8) as u8;
        let mut first = self.next_int;
        if align == 16 {
            first = first.div_ceil(2) * 2; // C.10
        }
        if first + words <= INT_ARG_REGS {
            // C.12: consecutive x registers, 8 bytes each (the last one
            // holds only the struct's remaining bytes).
            self.next_int = first + words;
            return CLoc::Pieces(
                (0..words)
                    .map(|i| Piece {
                        loc: CLoc::Int(first + i),
                        offset: 8 * i as u32,
                        size: (s.size - 8 * i as usize).min(8) as u8,
                    })
                    .collect(),
            );
        }
        // C.13–C.15 (Apple too: clang passes small structs as 64-bit
        // integer arrays, so they keep 8-byte slots there).
        self.next_int = INT_ARG_REGS;
        let offset = self.stack_slot((s.size as u32).div_ceil(8) * 8, align.max(8));
        CLoc::StackCopy { offset, size: s.size as u32 }
    }

    /// Apple's variadic arguments: always on the stack, 8-byte slots, the
    /// register counters untouched. An HFA's members each take a slot (as
    /// clang does); larger structs still go by reference.
    fn apple_variadic(&mut self, ty: &CType) -> CLoc {
        let CType::Struct(s) = ty else {
            return CLoc::Stack(self.stack_slot(8, 8));
        };
        if let Some((member, n)) = hfa(s) {
            let size = member.size() as u8;
            return CLoc::Pieces(
                (0..n)
                    .map(|i| Piece { loc: CLoc::Stack(self.stack_slot(8, 8)), offset: (size * i) as u32, size })
                    .collect(),
            );
        }
        if s.size > MAX_REG_COMPOSITE {
            return CLoc::ByReference { address: Box::new(CLoc::Stack(self.stack_slot(8, 8))), size: s.size as u32 };
        }
        let offset = self.stack_slot((s.size as u32).div_ceil(8) * 8, self.composite_align(s).max(8));
        CLoc::StackCopy { offset, size: s.size as u32 }
    }
}

fn ret_loc(ret: &CType) -> RetLoc {
    match ret {
        CType::Void => RetLoc::None,
        CType::Struct(s) => {
            if let Some((member, n)) = hfa(s) {
                let size = member.size() as u32;
                return RetLoc::Pieces(
                    (0..n).map(|i| Piece { loc: CLoc::Float(i), offset: size * i as u32, size: size as u8 }).collect(),
                );
            }
            if s.size > MAX_REG_COMPOSITE {
                return RetLoc::Indirect { size: s.size as u32, pointer: ResultPointer::X8 };
            }
            RetLoc::Pieces(
                (0..s.size.div_ceil(8))
                    .map(|i| Piece { loc: CLoc::Int(i as u8), offset: 8 * i as u32, size: (s.size - 8 * i).min(8) as u8 })
                    .collect(),
            )
        }
        t if is_fp(t) => RetLoc::Float,
        _ => RetLoc::Int,
    }
}

/// Locations of `params` (the first `fixed` of them named, the rest
/// variadic; `None` for a non-variadic function), the return location, the
/// stack bytes used (rounded to 16: sp stays 16-aligned) and the number of
/// v registers used.
pub fn assign(params: &[CType], ret: &CType, fixed: Option<usize>, platform: Platform) -> (Vec<CLoc>, RetLoc, u32, u8) {
    let ret = ret_loc(ret);
    // x8 carries an indirect result's address: no argument register is used.
    let mut a = Assigner { platform, next_int: 0, next_float: 0, stack: 0 };
    let locs = params
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let variadic = fixed.is_some_and(|n| i >= n);
            match t {
                _ if variadic && platform == Platform::Apple => a.apple_variadic(t),
                CType::Struct(s) => a.aggregate(s),
                t => a.scalar(t),
            }
        })
        .collect();
    (locs, ret, a.stack.div_ceil(16) * 16, a.next_float)
}

fn check_params(sig: &Signature) -> Result<(), PlanError> {
    check_common(sig)
}

/// Plans a forward stub (Ruby calls C). `Stack` offsets in the plan are
/// from sp at the `blr`; incoming `ArgSource::Stack` offsets from sp at
/// stub entry (aarch64 pushes no return address).
pub fn plan_stub(sig: &Signature, platform: Platform) -> Result<StubPlan, PlanError> {
    plan_stub_in_form(sig, false, platform)
}

/// [`plan_stub`], in the `(argc, argv, self)` form whatever the arity when
/// `argv` (the ffi-compatible mode; see `sysv_x86_64::plan_stub_in_form`).
pub fn plan_stub_in_form(sig: &Signature, argv: bool, platform: Platform) -> Result<StubPlan, PlanError> {
    check_params(sig)?;
    // Ruby's VALUEs are 8 bytes, so their stack slots are 8 bytes on Apple too.
    // Apple's callees may rely on narrow arguments extended to 32 bits,
    // Linux's extend them themselves: extending to 64 bits serves both and
    // is what libffi passes (the ffi gem's `labs` bound with `:int` sees
    // -6, not 2**32 - 6). Reverse trampolines never rely on it: the runtime
    // truncates each raw slot.
    let widen = Widen::To64;
    Ok(stub_plan(sig, argv, INT_ARG_REGS, widen, assign(&sig.params, &sig.ret, sig.fixed_params, platform)))
}

/// Plans a reverse trampoline (C calls Ruby): the same locations, read by
/// the callee; `Stack` offsets are from sp at entry.
pub fn plan_callback(sig: &Signature, platform: Platform) -> Result<CallbackPlan, PlanError> {
    check_params(sig)?;
    let (locs, ret, stack_bytes, _) = assign(&sig.params, &sig.ret, sig.fixed_params, platform);
    Ok(CallbackPlan { args: sig.params.iter().cloned().zip(locs).collect(), ret_ty: sig.ret.clone(), ret, stack_bytes })
}

#[cfg(test)]
mod tests {
    use super::Platform::{Apple, Linux};
    use super::*;
    use crate::types::CType::*;
    use std::sync::Arc;

    fn dests_on(platform: Platform, params: Vec<CType>) -> Vec<CLoc> {
        plan_stub(&Signature::new(params, I32), platform).unwrap().args.into_iter().map(|e| e.dest).collect()
    }

    fn dests(params: Vec<CType>) -> Vec<CLoc> {
        dests_on(Linux, params)
    }

    fn strukt(fields: Vec<CType>) -> CType {
        Struct(Arc::new(StructType::natural(fields)))
    }

    fn ints(regs: std::ops::Range<u8>) -> Vec<CLoc> {
        regs.map(CLoc::Int).collect()
    }

    fn floats(regs: std::ops::Range<u8>) -> Vec<CLoc> {
        regs.map(CLoc::Float).collect()
    }

    fn piece(loc: CLoc, offset: u32, size: u8) -> Piece {
        Piece { loc, offset, size }
    }

    #[test]
    fn integers_fill_eight_registers_then_8_byte_slots() {
        let d = dests(vec![I64; 10]);
        assert_eq!(d[..8], ints(0..8)[..]);
        assert_eq!(d[8..], [CLoc::Stack(0), CLoc::Stack(8)]);
    }

    #[test]
    fn floats_fill_v0_to_v7_independently_of_integers() {
        let d = dests(vec![F64, I32, F32, CString, Pointer, F64, Bool]);
        assert_eq!(
            d,
            vec![CLoc::Float(0), CLoc::Int(0), CLoc::Float(1), CLoc::Int(1), CLoc::Int(2), CLoc::Float(2), CLoc::Int(3)]
        );
    }

    #[test]
    fn nine_ints_and_nine_doubles_spill_one_each_in_order() {
        // i, d, i, d, ...: the 9th int (index 16) and 9th double (17) spill.
        let params: Vec<CType> = (0..18).map(|i| if i % 2 == 0 { I64 } else { F64 }).collect();
        let plan = plan_stub(&Signature::new(params, F64), Linux).unwrap();
        let d: Vec<CLoc> = plan.args.iter().map(|e| e.dest.clone()).collect();
        assert_eq!(d[14], CLoc::Int(7));
        assert_eq!(d[15], CLoc::Float(7));
        assert_eq!(d[16], CLoc::Stack(0));
        assert_eq!(d[17], CLoc::Stack(8));
        assert_eq!(plan.stack_bytes, 16);
        assert_eq!(plan.float_regs_used, 8);
        assert_eq!(plan.form, CfuncForm::Argv(18));
        assert_eq!(plan.ret, RetLoc::Float);
    }

    #[test]
    fn stack_area_is_rounded_to_16() {
        let plan = plan_stub(&Signature::new(vec![F32; 9], Void), Linux).unwrap();
        assert_eq!(plan.args[8].dest, CLoc::Stack(0));
        assert_eq!(plan.stack_bytes, 16);
        let plan = plan_stub(&Signature::new(vec![I8; 8], Void), Linux).unwrap();
        assert_eq!(plan.stack_bytes, 0);
    }

    #[test]
    fn narrow_stack_args_take_8_byte_slots_on_linux_and_pack_on_apple() {
        let mut params = vec![I64; 8];
        params.extend([I8, I16, U8, I32, F32, F64, Bool]);
        let fill_floats = vec![F64; 8];
        let params: Vec<CType> = fill_floats.into_iter().chain(params).collect();
        let linux = dests_on(Linux, params.clone());
        let stack: Vec<CLoc> = [0, 8, 16, 24, 32, 40, 48].map(CLoc::Stack).to_vec();
        assert_eq!(linux[16..], stack[..]);
        // Apple: i8 at 0, i16 at 2, u8 at 4, i32 at 8, f32 at 12, f64 at 16, bool at 24.
        let apple = dests_on(Apple, params.clone());
        let stack: Vec<CLoc> = [0, 2, 4, 8, 12, 16, 24].map(CLoc::Stack).to_vec();
        assert_eq!(apple[16..], stack[..]);
        let plan = plan_stub(&Signature::new(params, Void), Apple).unwrap();
        assert_eq!(plan.stack_bytes, 32);
    }

    #[test]
    fn cfunc_sources_shift_by_self_through_x7_then_spill() {
        let plan = plan_stub(&Signature::new(vec![I64; 9], Void), Linux).unwrap();
        assert_eq!(plan.form, CfuncForm::Fixed(9));
        let s: Vec<ArgSource> = plan.args.iter().map(|e| e.source).collect();
        assert_eq!(s[0], ArgSource::Int(1));
        assert_eq!(s[6], ArgSource::Int(7));
        assert_eq!(s[7], ArgSource::Stack(0));
        assert_eq!(s[8], ArgSource::Stack(8));
        assert_eq!(plan.args[8].dest, CLoc::Stack(0));
        assert_eq!(plan.ret, RetLoc::None);
        // The same on Apple: VALUEs are 8 bytes.
        let apple = plan_stub(&Signature::new(vec![I64; 9], Void), Apple).unwrap();
        assert_eq!(apple.args[8].source, ArgSource::Stack(8));
    }

    #[test]
    fn more_than_fifteen_args_use_the_argv_form() {
        let plan = plan_stub(&Signature::new(vec![I32; 16], I32), Linux).unwrap();
        assert_eq!(plan.form, CfuncForm::Argv(16));
        assert_eq!(plan.args[15].source, ArgSource::Argv(15));
        assert_eq!(plan.args[15].dest, CLoc::Stack(56));
        assert_eq!(plan_stub(&Signature::new(vec![I32; 15], I32), Linux).unwrap().form, CfuncForm::Fixed(15));
    }

    #[test]
    fn void_and_too_many_parameters_are_rejected() {
        assert_eq!(plan_stub(&Signature::new(vec![I32, Void], I32), Linux), Err(PlanError::VoidParam(1)));
        assert_eq!(
            plan_callback(&Signature::new(vec![I32; MAX_PARAMS + 1], I32), Apple),
            Err(PlanError::TooManyParams(MAX_PARAMS + 1))
        );
    }

    #[test]
    fn hfa_detection() {
        let f4 = StructType::natural(vec![F32; 4]);
        assert_eq!(hfa(&f4), Some((F32, 4)));
        assert_eq!(hfa(&StructType::natural(vec![F64])), Some((F64, 1)));
        // Nested and array-like members flatten.
        let inner = strukt(vec![F64, F64]);
        assert_eq!(hfa(&StructType::natural(vec![inner.clone(), F64])), Some((F64, 3)));
        assert_eq!(hfa(&StructType::natural(vec![F32; 5])), None, "more than four members");
        assert_eq!(hfa(&StructType::natural(vec![F32, F64])), None, "mixed float types");
        assert_eq!(hfa(&StructType::natural(vec![F64, I64])), None);
        assert_eq!(hfa(&StructType::natural(vec![])), None);
        // Tail padding (explicit alignment) is not allowed in an HFA.
        let padded = StructType { fields: vec![(F32, 0), (F32, 4), (F32, 8)], size: 16, align: 16 };
        assert_eq!(hfa(&padded), None);
    }

    #[test]
    fn hfa_of_floats_and_of_doubles_take_one_v_register_per_member() {
        let d = dests(vec![F32, strukt(vec![F32, F32, F32]), strukt(vec![F64; 4]), I32]);
        assert_eq!(d[0], CLoc::Float(0));
        assert_eq!(
            d[1],
            CLoc::Pieces(vec![
                piece(CLoc::Float(1), 0, 4),
                piece(CLoc::Float(2), 4, 4),
                piece(CLoc::Float(3), 8, 4),
            ])
        );
        assert_eq!(
            d[2],
            CLoc::Pieces((0..4).map(|i| piece(CLoc::Float(4 + i), 8 * i as u32, 8)).collect())
        );
        assert_eq!(d[3], CLoc::Int(0));
    }

    #[test]
    fn hfa_that_no_longer_fits_goes_to_the_stack_and_closes_v_registers() {
        // 6 doubles leave v6, v7: a 3-member HFA does not fit.
        let mut params = vec![F64; 6];
        params.extend([strukt(vec![F32; 3]), F64, strukt(vec![F64])]);
        let plan = plan_stub(&Signature::new(params.clone(), Void), Linux).unwrap();
        let d: Vec<CLoc> = plan.args.iter().map(|e| e.dest.clone()).collect();
        assert_eq!(d[..6], floats(0..6)[..]);
        assert_eq!(d[6], CLoc::StackCopy { offset: 0, size: 12 }); // 12 rounded to 16
        assert_eq!(d[7], CLoc::Stack(16), "NSRN = 8: v6 stays unused");
        assert_eq!(d[8], CLoc::StackCopy { offset: 24, size: 8 });
        assert_eq!(plan.float_regs_used, 8);
        assert_eq!(plan.stack_bytes, 32);
        // Apple packs the HFA at 4-byte alignment and 12 bytes.
        let apple = dests_on(Apple, params);
        assert_eq!(apple[6], CLoc::StackCopy { offset: 0, size: 12 });
        assert_eq!(apple[7], CLoc::Stack(16));
        assert_eq!(apple[8], CLoc::StackCopy { offset: 24, size: 8 });
        let apple = dests_on(Apple, [vec![F64; 7], vec![strukt(vec![F32; 3]), F32, strukt(vec![F32])]].concat());
        assert_eq!(apple[7], CLoc::StackCopy { offset: 0, size: 12 });
        assert_eq!(apple[8], CLoc::Stack(12));
        assert_eq!(apple[9], CLoc::StackCopy { offset: 16, size: 4 });
    }

    #[test]
    fn small_structs_take_one_or_two_x_registers() {
        // 12 bytes: { int, int, int } => x0 (8 bytes) + x1 (4 bytes).
        let s12 = strukt(vec![I32, I32, I32]);
        // 16 bytes mixing int and double: no SSE class on AAPCS64, x regs.
        let s16 = strukt(vec![I64, F64]);
        let d = dests(vec![s12, I8, s16, F64]);
        assert_eq!(d[0], CLoc::Pieces(vec![piece(CLoc::Int(0), 0, 8), piece(CLoc::Int(1), 8, 4)]));
        assert_eq!(d[1], CLoc::Int(2));
        assert_eq!(d[2], CLoc::Pieces(vec![piece(CLoc::Int(3), 0, 8), piece(CLoc::Int(4), 8, 8)]));
        assert_eq!(d[3], CLoc::Float(0));
    }

    #[test]
    fn alignment_added_to_a_whole_struct_does_not_move_it() {
        // struct __attribute__((aligned(16))) { int64_t a, b; }: its natural
        // alignment is its members' (8), so no even-register rounding (C.10)
        // and 8-byte stack alignment (C.14), as gcc does.
        let aligned = Struct(Arc::new(StructType { fields: vec![(I64, 0), (I64, 8)], size: 16, align: 16 }));
        let d = dests(vec![I32, aligned.clone(), I32]);
        assert_eq!(d[1], CLoc::Pieces(vec![piece(CLoc::Int(1), 0, 8), piece(CLoc::Int(2), 8, 8)]));
        assert_eq!(d[2], CLoc::Int(3));
        let d = dests([vec![I64; 8], vec![I32, aligned.clone()]].concat());
        assert_eq!(d[9], CLoc::StackCopy { offset: 8, size: 16 });
        let mut params = vec![I64; 7];
        params.extend([aligned, I64]);
        let d = dests(params);
        assert_eq!(d[7], CLoc::StackCopy { offset: 0, size: 16 });
        assert_eq!(d[8], CLoc::Stack(16), "NGRN = 8 after a struct goes to the stack");
    }

    #[test]
    fn apple_pairs_a_struct_aligned_to_16_like_clang() {
        let aligned = Struct(Arc::new(StructType { fields: vec![(I64, 0), (I64, 8)], size: 16, align: 16 }));
        let d = dests_on(Apple, vec![I32, aligned.clone(), I32]);
        assert_eq!(d[1], CLoc::Pieces(vec![piece(CLoc::Int(2), 0, 8), piece(CLoc::Int(3), 8, 8)]));
        assert_eq!(d[2], CLoc::Int(4));
        let d = dests_on(Apple, [vec![I64; 8], vec![I32, aligned]].concat());
        assert_eq!(d[9], CLoc::StackCopy { offset: 16, size: 16 });
    }

    #[test]
    fn struct_that_no_longer_fits_goes_to_the_stack_and_closes_x_registers() {
        let s16 = strukt(vec![I64, I64]);
        let d = dests(vec![I64, I64, I64, I64, I64, I64, I64, s16, I32, F64]);
        assert_eq!(d[7], CLoc::StackCopy { offset: 0, size: 16 });
        assert_eq!(d[8], CLoc::Stack(16), "x7 stays unused, unlike SysV");
        assert_eq!(d[9], CLoc::Float(0));
    }

    #[test]
    fn struct_over_16_bytes_is_passed_as_a_pointer_to_a_copy() {
        let s24 = strukt(vec![I64, I64, I64]);
        let big_hfa = strukt(vec![F64; 5]); // five members: not an HFA
        let d = dests(vec![s24.clone(), big_hfa, F64]);
        assert_eq!(d[0], CLoc::ByReference { address: Box::new(CLoc::Int(0)), size: 24 });
        assert_eq!(d[1], CLoc::ByReference { address: Box::new(CLoc::Int(1)), size: 40 });
        assert_eq!(d[2], CLoc::Float(0));
        // The address itself spills like a pointer.
        let mut params = vec![I64; 8];
        params.push(s24);
        let d = dests(params);
        assert_eq!(d[8], CLoc::ByReference { address: Box::new(CLoc::Stack(0)), size: 24 });
    }

    #[test]
    fn scalar_and_small_struct_returns() {
        let ret = |t: CType| plan_stub(&Signature::new(vec![], t), Linux).unwrap().ret;
        assert_eq!(ret(I8), RetLoc::Int);
        assert_eq!(ret(F32), RetLoc::Float);
        assert_eq!(ret(Void), RetLoc::None);
        assert_eq!(
            ret(strukt(vec![F32, F32])),
            RetLoc::Pieces(vec![piece(CLoc::Float(0), 0, 4), piece(CLoc::Float(1), 4, 4)])
        );
        assert_eq!(
            ret(strukt(vec![F64; 4])),
            RetLoc::Pieces((0..4).map(|i| piece(CLoc::Float(i), 8 * i as u32, 8)).collect())
        );
        assert_eq!(
            ret(strukt(vec![I32, I32, I32])),
            RetLoc::Pieces(vec![piece(CLoc::Int(0), 0, 8), piece(CLoc::Int(1), 8, 4)])
        );
        assert_eq!(ret(strukt(vec![I8, F32])), RetLoc::Pieces(vec![piece(CLoc::Int(0), 0, 8)]));
    }

    #[test]
    fn large_struct_return_goes_through_x8_and_keeps_x0_for_arguments() {
        let s24 = strukt(vec![I64, I64, I64]);
        let plan = plan_stub(&Signature::new(vec![I64, s24.clone()], s24), Linux).unwrap();
        assert_eq!(plan.ret, RetLoc::Indirect { size: 24, pointer: ResultPointer::X8 });
        assert_eq!(plan.args[0].dest, CLoc::Int(0), "x0 is not taken by the result address");
        assert_eq!(plan.args[1].dest, CLoc::ByReference { address: Box::new(CLoc::Int(1)), size: 24 });
        assert_eq!(plan.stack_bytes, 0);
    }

    #[test]
    fn linux_variadic_arguments_follow_the_ordinary_rules() {
        let sig = Signature::variadic(vec![CString], vec![F32, I8, F64, strukt(vec![F32, F32])], I32);
        let plan = plan_stub(&sig, Linux).unwrap();
        assert!(plan.variadic);
        let d: Vec<CLoc> = plan.args.iter().map(|e| e.dest.clone()).collect();
        assert_eq!(plan.args[1].ty, F64, "promoted");
        assert_eq!(d[..4], [CLoc::Int(0), CLoc::Float(0), CLoc::Int(1), CLoc::Float(1)]);
        assert_eq!(d[4], CLoc::Pieces(vec![piece(CLoc::Float(2), 0, 4), piece(CLoc::Float(3), 4, 4)]));
        assert_eq!(plan.stack_bytes, 0);
    }

    #[test]
    fn apple_variadic_arguments_all_go_on_the_stack_in_8_byte_slots() {
        let sig = Signature::variadic(
            vec![CString, F64],
            vec![F32, I8, I64, strukt(vec![I32, I32, I32]), strukt(vec![F32, F32]), strukt(vec![I64; 3])],
            I32,
        );
        let plan = plan_stub(&sig, Apple).unwrap();
        let d: Vec<CLoc> = plan.args.iter().map(|e| e.dest.clone()).collect();
        // The named arguments still use registers.
        assert_eq!(d[..2], [CLoc::Int(0), CLoc::Float(0)]);
        assert_eq!(d[2..5], [CLoc::Stack(0), CLoc::Stack(8), CLoc::Stack(16)]);
        assert_eq!(d[5], CLoc::StackCopy { offset: 24, size: 12 });
        assert_eq!(d[6], CLoc::Pieces(vec![piece(CLoc::Stack(40), 0, 4), piece(CLoc::Stack(48), 4, 4)]));
        assert_eq!(d[7], CLoc::ByReference { address: Box::new(CLoc::Stack(56)), size: 24 });
        assert_eq!(plan.stack_bytes, 64);
        assert_eq!(plan.float_regs_used, 1);
        // A named narrow int after no variadics: register, as on Linux.
        let sig = Signature::variadic(vec![I8], vec![], Void);
        assert_eq!(plan_stub(&sig, Apple).unwrap().args[0].dest, CLoc::Int(0));
    }

    #[test]
    fn callback_reads_arguments_where_a_caller_puts_them() {
        for platform in [Linux, Apple] {
            let mut params = vec![I32, F64, Pointer, F32, I8];
            params.extend(vec![I64; 8]);
            params.extend(vec![F32; 6]);
            let sig = Signature::new(params, F64);
            let cb = plan_callback(&sig, platform).unwrap();
            let fwd = plan_stub(&sig, platform).unwrap();
            let cb_locs: Vec<CLoc> = cb.args.into_iter().map(|a| a.1).collect();
            let fwd_locs: Vec<CLoc> = fwd.args.into_iter().map(|e| e.dest).collect();
            assert_eq!(cb_locs, fwd_locs);
            assert_eq!(cb.stack_bytes, fwd.stack_bytes);
            assert_eq!(cb.ret, RetLoc::Float);
        }
    }

    #[test]
    fn narrow_integer_arguments_are_extended_to_64_bits() {
        for platform in [Linux, Apple] {
            let plan = plan_stub(&Signature::new(vec![I8, U32, U64], I16), platform).unwrap();
            let convs: Vec<Conversion> = plan.args.iter().map(|e| e.conv).collect();
            assert_eq!(
                convs,
                vec![
                    Conversion::Int { bytes: 1, signed: true, widen: Widen::To64 },
                    Conversion::Int { bytes: 4, signed: false, widen: Widen::To64 },
                    Conversion::Int { bytes: 8, signed: false, widen: Widen::None },
                ]
            );
            assert_eq!(plan.ret_conv, Conversion::Int { bytes: 2, signed: true, widen: Widen::None });
        }
    }

    #[test]
    fn long_doubles_take_q_registers_then_16_aligned_stack_slots() {
        // binary128: v[NSRN] whole (C.1), then 16 bytes at a 16-aligned NSAA.
        let mut params = vec![LongDouble, F64, I32];
        params.extend(vec![F64; 5]);
        params.extend([LongDouble, LongDouble, F64, LongDouble]);
        let plan = plan_stub(&Signature::new(params, LongDouble), Linux).unwrap();
        let d: Vec<CLoc> = plan.args.iter().map(|e| e.dest.clone()).collect();
        assert_eq!(d[..3], [CLoc::Float(0), CLoc::Float(1), CLoc::Int(0)]);
        assert_eq!(d[7], CLoc::Float(6));
        assert_eq!(d[8], CLoc::Float(7));
        assert_eq!(d[9..], [CLoc::Stack(0), CLoc::Stack(16), CLoc::Stack(32)]);
        assert_eq!(plan.stack_bytes, 48);
        assert_eq!(plan.ret, RetLoc::Float);
        // Variadic on Linux: the same rules (snprintf's %Lg reads q registers).
        let v = plan_stub(&Signature::variadic(vec![CString], vec![LongDouble, I32], I32), Linux).unwrap();
        assert_eq!(v.args[1].dest, CLoc::Float(0));
        // An HFA of long doubles: one q register per member, results in q0..q1.
        let qq = strukt(vec![LongDouble, LongDouble]);
        let plan = plan_stub(&Signature::new(vec![F64, qq.clone()], qq), Linux).unwrap();
        let q = |k, offset| piece(CLoc::Float(k), offset, 16);
        assert_eq!(plan.args[1].dest, CLoc::Pieces(vec![q(1, 0), q(2, 16)]));
        assert_eq!(plan.ret, RetLoc::Pieces(vec![q(0, 0), q(1, 16)]));
    }

    #[test]
    fn two_register_structs_spill_the_incoming_values_first() {
        let s16 = strukt(vec![I64, I64]);
        let plan = plan_stub(&Signature::new(vec![s16.clone(), s16.clone(), I64], Void), Linux).unwrap();
        assert_eq!(plan.spill, vec![1, 2, 3]);
        assert_eq!(plan.args[2].source, ArgSource::Spilled(3));
        assert_eq!(plan_stub(&Signature::new(vec![s16, I64, I64], Void), Linux).unwrap().spill, Vec::<u8>::new());
        // x8 carries a large result's address: x0 stays the first argument.
        let s24 = strukt(vec![I64, I64, I64]);
        assert_eq!(plan_stub(&Signature::new(vec![I64, F64], s24), Linux).unwrap().spill, Vec::<u8>::new());
    }

    #[test]
    fn host_platform_is_linux_here() {
        assert_eq!(Platform::host(), if cfg!(target_vendor = "apple") { Apple } else { Linux });
    }

    /// Signatures `test/aarch64/plan_vs_gcc.c` calls through a register
    /// dumping function (keep the two in sync), so gcc's caller code checks
    /// the Linux plan: structs in x and v registers, HFAs, spills that close
    /// a register file, by-reference copies, 16-byte alignment, x8 results,
    /// narrow stack slots and variadic arguments.
    fn gcc_signatures() -> Vec<(&'static str, Signature)> {
        let s12 = strukt(vec![I32, I32, I32]);
        let s16 = strukt(vec![I64, F64]);
        let s24 = strukt(vec![I64, I64, I64]);
        let hfa3f = strukt(vec![F32; 3]);
        let hfa4d = strukt(vec![F64; 4]);
        let hfa2f = strukt(vec![F32, F32]);
        let hfa1d = strukt(vec![F64]);
        let five_d = strukt(vec![F64; 5]);
        let nested = strukt(vec![strukt(vec![F64, F64]), F64]);
        let aligned = Struct(Arc::new(StructType { fields: vec![(I64, 0), (I64, 8)], size: 16, align: 16 }));
        let mixed8 = strukt(vec![I8, F32]);
        vec![
            ("small_structs", Signature::new(vec![s12.clone(), I8, s16.clone(), F64], I32)),
            ("hfas", Signature::new(vec![F32, hfa3f.clone(), hfa4d.clone(), I32, nested.clone()], F64)),
            ("hfa_spill", Signature::new([vec![F64; 6], vec![hfa3f.clone(), F64, hfa1d.clone(), F32]].concat(), Void)),
            ("struct_spill", Signature::new([vec![I64; 7], vec![s16.clone(), I32, F64, I8]].concat(), I64)),
            ("by_reference", Signature::new(vec![s24.clone(), five_d, F64, mixed8], Pointer)),
            ("by_reference_spill", Signature::new([vec![I64; 8], vec![s24.clone(), I16]].concat(), U8)),
            ("aligned16", Signature::new(vec![I32, aligned.clone(), I32, F32], I16)),
            ("aligned16_spill", Signature::new([vec![I64; 7], vec![aligned.clone(), I64]].concat(), I32)),
            ("aligned16_stack", Signature::new([vec![I64; 8], vec![I32, aligned, I16]].concat(), Void)),
            (
                "narrow_stack",
                Signature::new([vec![F64; 8], vec![I64; 8], vec![I8, I16, U8, I32, F32, F64, Bool, U16]].concat(), F32),
            ),
            ("ret_hfa2f", Signature::new(vec![I32, F32], hfa2f)),
            ("ret_hfa4d", Signature::new(vec![], hfa4d)),
            ("ret_nested_hfa", Signature::new(vec![F64], nested)),
            ("ret_s12", Signature::new(vec![s12.clone()], s12)),
            ("ret_s16", Signature::new(vec![s16.clone(), F64], s16)),
            ("ret_s24", Signature::new(vec![I64, s24.clone(), F64], s24.clone())),
            ("ret_s24_full", Signature::new([vec![I64; 8], vec![F64]].concat(), s24)),
            ("variadic", Signature::variadic(vec![CString], vec![F64, I32, F64, I8, I64], I32)),
        ]
    }

    /// One check of the gcc harness: `size` bytes of argument `arg` at byte
    /// `offset` are at `kind`/`at` (x register, v register, stack offset;
    /// `by_ref`: that location holds the address of a copy).
    fn check_line(arg: usize, offset: u32, size: u32, loc: &CLoc, by_ref: bool) -> String {
        let (kind, at) = match loc {
            CLoc::Int(n) => ('x', *n as u32),
            CLoc::Float(n) => ('v', *n as u32),
            CLoc::Stack(off) => ('s', *off),
            other => panic!("not a leaf location: {other:?}"),
        };
        format!("{{{arg}, {offset}, {size}, '{kind}', {at}, {}}},", by_ref as u8)
    }

    fn checks_for(arg: usize, ty: &CType, loc: &CLoc) -> Vec<String> {
        match loc {
            CLoc::Pieces(pieces) => pieces.iter().map(|p| check_line(arg, p.offset, p.size as u32, &p.loc, false)).collect(),
            CLoc::StackCopy { offset, size } => vec![check_line(arg, 0, *size, &CLoc::Stack(*offset), false)],
            CLoc::ByReference { address, size } => vec![check_line(arg, 0, *size, address, true)],
            leaf => vec![check_line(arg, 0, ty.size() as u32, leaf, false)],
        }
    }

    /// Writes `plans.h` for test/aarch64/plan_vs_gcc.c when
    /// `FIDDLE_JIT_AARCH64_OUT=<dir>` is set (run_callbacks.sh does).
    #[test]
    fn gcc_harness_plans() {
        let mut header = String::from("/* Generated by `cargo test gcc_harness_plans` (src/abi/aapcs64.rs). */\n");
        for (name, sig) in gcc_signatures() {
            let plan = plan_stub(&sig, Linux).unwrap();
            let mut lines = Vec::new();
            for e in &plan.args {
                lines.extend(checks_for(e.index, &e.ty, &e.dest));
            }
            let ret: Vec<String> = match (&plan.ret, &sig.ret) {
                (RetLoc::None, _) => vec![],
                (RetLoc::Int, t) => vec![check_line(0, 0, t.size() as u32, &CLoc::Int(0), false)],
                (RetLoc::Float, t) => vec![check_line(0, 0, t.size() as u32, &CLoc::Float(0), false)],
                (RetLoc::Pieces(pieces), _) => {
                    pieces.iter().map(|p| check_line(0, p.offset, p.size as u32, &p.loc, false)).collect()
                }
                (RetLoc::Indirect { size, pointer }, _) => {
                    assert_eq!(*pointer, ResultPointer::X8);
                    vec![format!("{{0, 0, {size}, '8', 0, 0}},")]
                }
                (RetLoc::X87, _) => unreachable!("SysV only"),
            };
            assert!(!lines.is_empty() || sig.params.is_empty());
            header += &format!(
                "static const struct check {name}_args[] = {{{}{{-1, 0, 0, 0, 0, 0}}}};\n",
                lines.concat()
            );
            header += &format!("static const struct check {name}_ret[] = {{{}{{-1, 0, 0, 0, 0, 0}}}};\n", ret.concat());
        }
        if let Some(dir) = std::env::var_os("FIDDLE_JIT_AARCH64_OUT") {
            std::fs::write(std::path::Path::new(&dir).join("plans.h"), header).unwrap();
        }
    }
}
