//! The x87 80-bit `long double` as a value Rust can hold: 16 bytes as C lays
//! it out (10 significant bytes, little-endian, then padding), moved with
//! x87 `fld`/`fstp` in inline asm and formatted/parsed by libc. No Ruby here.

use std::arch::asm;

/// A long double in memory, as C lays it out (`sizeof(long double)` = 16).
#[repr(C, align(16))]
#[derive(Clone, Copy, Default)]
pub struct LongDouble(pub [u8; 16]);

impl LongDouble {
    pub fn from_f64(x: f64) -> LongDouble {
        let mut out = LongDouble::default();
        // SAFETY: loads 8 bytes from `x`, stores 10 into `out`; the x87
        // stack is left as it was (one push, one pop).
        unsafe {
            asm!(
                "fld qword ptr [{x}]",
                "fstp tbyte ptr [{o}]",
                x = in(reg) &x,
                o = in(reg) out.0.as_mut_ptr(),
                out("st(0)") _,
                options(nostack),
            );
        }
        out
    }

    /// Rounded to the nearest double (what NUM2DBL-style users get).
    pub fn to_f64(self) -> f64 {
        let mut x = 0f64;
        // SAFETY: loads 10 bytes from `self`, stores 8 into `x`.
        unsafe {
            asm!(
                "fld tbyte ptr [{p}]",
                "fstp qword ptr [{x}]",
                p = in(reg) self.0.as_ptr(),
                x = in(reg) &mut x,
                out("st(0)") _,
                options(nostack),
            );
        }
        x
    }

    /// `strtold(s)` (via sscanf's `%Lg`, which writes through a pointer).
    pub fn parse(s: &std::ffi::CStr) -> LongDouble {
        let mut out = LongDouble::default();
        // SAFETY: `%Lg` stores one long double (16 bytes) at the pointer.
        unsafe { libc::sscanf(s.as_ptr(), c"%Lg".as_ptr(), out.0.as_mut_ptr()) };
        out
    }

    /// `snprintf(buf, "%.35Le", value)`, the ffi gem's format.
    pub fn format(self) -> String {
        let mut buf = [0u8; 128];
        let n: i32;
        // SAFETY: calls the variadic snprintf(buf, 128, fmt, long double):
        // the long double goes in a 16-byte stack slot at rsp (16-aligned
        // at the call), al = 0 vector registers. r12 (callee-saved) keeps
        // the original rsp; every caller-saved register is declared
        // clobbered. `ld` and `f` are pinned to registers the sequence does
        // not write before the call.
        unsafe {
            asm!(
                "mov r12, rsp",
                "and rsp, -16",
                "sub rsp, 16",
                "mov r10, qword ptr [rcx]",
                "mov qword ptr [rsp], r10",
                "mov r10, qword ptr [rcx + 8]",
                "mov qword ptr [rsp + 8], r10",
                "xor eax, eax",
                "call r11",
                "mov rsp, r12",
                in("rcx") self.0.as_ptr(),
                in("r11") libc::snprintf as *const () as usize,
                in("rdi") buf.as_mut_ptr(),
                in("rsi") buf.len(),
                in("rdx") c"%.35Le".as_ptr(),
                out("r12") _,
                lateout("eax") n,
                clobber_abi("C"),
            );
        }
        let n = (n.max(0) as usize).min(buf.len() - 1);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_round_trip_through_80_bits() {
        for x in [0.0, -0.0, 1.5, -2.25, 1e300, f64::MIN_POSITIVE, f64::INFINITY] {
            assert_eq!(LongDouble::from_f64(x).to_f64().to_bits(), x.to_bits());
        }
        // 1.0 is 0x3fff exponent, explicit integer bit.
        let one = LongDouble::from_f64(1.0).0;
        assert_eq!(&one[..10], &[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
    }

    #[test]
    fn formats_and_parses_with_libc() {
        assert_eq!(LongDouble::from_f64(1.5).format(), "1.50000000000000000000000000000000000e+00");
        let third = LongDouble::parse(c"0.333333333333333333333333333333333333");
        // The nearest 80-bit value to 1/3 (what ffi prints for 1.0L/3).
        assert_eq!(third.format(), "3.33333333333333333342368351437379204e-01");
        assert_ne!(third.to_f64().to_bits(), 0);
        assert_eq!(LongDouble::from_f64(f64::INFINITY).format(), "inf");
    }
}
