//! The AAPCS64 (Linux) `long double`, IEEE 754 binary128, as a value Rust
//! can hold: 16 bytes, little-endian. Rust has no stable `f128`, so the
//! conversions from and to `f64` are done on the bits here (exact widening;
//! narrowing rounds to nearest, ties to even, as the hardware-less libgcc
//! routines C code calls do), parsing and formatting by libc. No Ruby here.

/// A long double in memory, as C lays it out (`sizeof(long double)` = 16).
#[repr(C, align(16))]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct LongDouble(pub [u8; 16]);

const F64_FRACTION_BITS: u32 = 52;
const F128_FRACTION_BITS: u32 = 112;
const F64_BIAS: i32 = 1023;
const F128_BIAS: i32 = 16383;
const F128_EXP_MAX: u128 = 0x7fff;
/// Fraction bits a double lacks: 112 - 52.
const WIDEN: u32 = F128_FRACTION_BITS - F64_FRACTION_BITS;

impl LongDouble {
    pub fn from_bits(bits: u128) -> LongDouble {
        LongDouble(bits.to_le_bytes())
    }

    pub fn to_bits(self) -> u128 {
        u128::from_le_bytes(self.0)
    }

    /// Exact: every double is a binary128 value.
    pub fn from_f64(x: f64) -> LongDouble {
        let bits = x.to_bits();
        let sign = ((bits >> 63) as u128) << 127;
        let exp = ((bits >> F64_FRACTION_BITS) & 0x7ff) as i32;
        let frac = (bits & ((1u64 << F64_FRACTION_BITS) - 1)) as u128;
        let body = match exp {
            0x7ff => (F128_EXP_MAX << F128_FRACTION_BITS) | (frac << WIDEN), // inf, NaN (payload kept)
            0 if frac == 0 => 0,
            0 => {
                // Subnormal double: normalise (binary128's range covers it).
                let top = 127 - frac.leading_zeros() as i32; // index of the leading 1
                let exp128 = (F128_BIAS - F64_BIAS - F64_FRACTION_BITS as i32 + 1 + top) as u128;
                let frac128 = (frac << (F128_FRACTION_BITS as i32 - top)) & ((1u128 << F128_FRACTION_BITS) - 1);
                (exp128 << F128_FRACTION_BITS) | frac128
            }
            _ => (((exp - F64_BIAS + F128_BIAS) as u128) << F128_FRACTION_BITS) | (frac << WIDEN),
        };
        LongDouble::from_bits(sign | body)
    }

    /// Rounded to the nearest double, ties to even (what NUM2DBL-style
    /// users get).
    pub fn to_f64(self) -> f64 {
        let bits = self.to_bits();
        let sign = ((bits >> 127) as u64) << 63;
        let exp = ((bits >> F128_FRACTION_BITS) & F128_EXP_MAX) as i32;
        let frac = bits & ((1u128 << F128_FRACTION_BITS) - 1);
        if exp == F128_EXP_MAX as i32 {
            if frac == 0 {
                return f64::from_bits(sign | 0x7ff0_0000_0000_0000);
            }
            // NaN: keep the top of the payload, and keep it a NaN.
            let payload = (frac >> WIDEN) as u64 | (1 << (F64_FRACTION_BITS - 1));
            return f64::from_bits(sign | 0x7ff0_0000_0000_0000 | payload);
        }
        if exp == 0 {
            return f64::from_bits(sign); // binary128 subnormals are far below any double
        }
        let unbiased = exp - F128_BIAS;
        if unbiased > F64_BIAS {
            return f64::from_bits(sign | 0x7ff0_0000_0000_0000);
        }
        let significand = frac | (1u128 << F128_FRACTION_BITS); // 113 bits
        // Bits to drop: the fraction difference, plus the shift into the
        // subnormal range below 2**-1022.
        let drop = WIDEN as i32 + (-(F64_BIAS - 1) - unbiased).max(0);
        if drop > 114 {
            return f64::from_bits(sign); // below half the smallest subnormal
        }
        let kept = round_shift(significand, drop as u32) as u64;
        let magnitude = if unbiased < -(F64_BIAS - 1) {
            kept // subnormal; rounding up to 2**-1022 carries into the exponent field
        } else {
            // kept is 1.f (53 bits) or, after a carry, 2.0 (54 bits): adding
            // it to the exponent field moves the carry there.
            (((unbiased + F64_BIAS) as u64) << F64_FRACTION_BITS) + (kept - (1u64 << F64_FRACTION_BITS))
        };
        f64::from_bits(sign | magnitude.min(0x7ff0_0000_0000_0000))
    }

    /// `strtold(s)` (via sscanf's `%Lg`, which writes through a pointer).
    pub fn parse(s: &std::ffi::CStr) -> LongDouble {
        let mut out = LongDouble::default();
        // SAFETY: `%Lg` stores one long double (16 bytes) at the pointer.
        unsafe { libc::sscanf(s.as_ptr(), c"%Lg".as_ptr(), out.0.as_mut_ptr()) };
        out
    }

    /// `snprintf(buf, "%.35Le", value)`, the ffi gem's format.
    #[cfg(target_arch = "aarch64")]
    pub fn format(self) -> String {
        let mut buf = [0u8; 128];
        let n: i32;
        let bits = self.to_bits();
        // SAFETY: calls the variadic snprintf(buf, 128, fmt, long double):
        // on AAPCS64 Linux a variadic long double travels like a named one,
        // in q0 (built from the two halves). Every caller-saved register is
        // declared clobbered; `lo`, `hi` and `f` are read before the call.
        unsafe {
            std::arch::asm!(
                "fmov d0, {lo}",
                "mov v0.d[1], {hi}",
                "blr {f}",
                lo = in(reg) bits as u64,
                hi = in(reg) (bits >> 64) as u64,
                f = in(reg) libc::snprintf as *const () as usize,
                in("x0") buf.as_mut_ptr(),
                in("x1") buf.len(),
                in("x2") c"%.35Le".as_ptr(),
                lateout("x0") n,
                clobber_abi("C"),
            );
        }
        let n = (n.max(0) as usize).min(buf.len() - 1);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// `value >> shift` rounded to nearest, ties to even.
fn round_shift(value: u128, shift: u32) -> u128 {
    if shift == 0 {
        return value;
    }
    if shift >= 128 {
        return 0;
    }
    let kept = value >> shift;
    let rest = value & ((1u128 << shift) - 1);
    let half = 1u128 << (shift - 1);
    if rest > half || (rest == half && kept & 1 == 1) {
        kept + 1
    } else {
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_widen_exactly() {
        assert_eq!(LongDouble::from_f64(1.0).to_bits(), 0x3fff_u128 << 112);
        assert_eq!(LongDouble::from_f64(-2.0).to_bits(), (1u128 << 127) | (0x4000_u128 << 112));
        assert_eq!(LongDouble::from_f64(1.5).to_bits(), (0x3fff_u128 << 112) | (1u128 << 111));
        // The smallest subnormal double is 2**-1074.
        assert_eq!(LongDouble::from_f64(5e-324).to_bits(), ((16383 - 1074) as u128) << 112);
        assert_eq!(LongDouble::from_f64(f64::INFINITY).to_bits(), 0x7fff_u128 << 112);
        assert_eq!(LongDouble::from_f64(-0.0).to_bits(), 1u128 << 127);
    }

    #[test]
    fn doubles_round_trip() {
        for x in [0.0, -0.0, 1.5, -2.25, 0.1, 1.0 / 3.0, 1e300, -1e-300, f64::MIN_POSITIVE, f64::MAX, 5e-324,
                  f64::MIN_POSITIVE / 3.0, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(LongDouble::from_f64(x).to_f64().to_bits(), x.to_bits(), "{x:e}");
        }
        assert!(LongDouble::from_f64(f64::NAN).to_f64().is_nan());
    }

    #[test]
    fn narrowing_rounds_to_nearest_even() {
        let one = 0x3fff_u128 << 112;
        let ulp = 1u128 << WIDEN; // one double ulp at 1.0
        let f = |b: u128| LongDouble::from_bits(b).to_f64();
        assert_eq!(f(one + ulp / 2), 1.0); // tie, even stays
        assert_eq!(f(one + ulp + ulp / 2), 1.0 + 2.0 * f64::EPSILON); // tie, odd rounds up
        assert_eq!(f(one + ulp / 2 + 1), 1.0 + f64::EPSILON); // above the tie
        // Just below 2: rounds up into the next binade.
        assert_eq!(f((0x4000_u128 << 112) - 1), 2.0);
        // Beyond the double range: infinity; far below: zero.
        assert_eq!(f(0x43ff_u128 << 112), f64::INFINITY);
        assert_eq!(f(0x0001_u128 << 112), 0.0);
        // Half the smallest subnormal rounds to even (zero); a bit more to it.
        let half_min = ((16383 - 1075) as u128) << 112;
        assert_eq!(f(half_min), 0.0);
        assert_eq!(f(half_min + 1), 5e-324);
        // The largest subnormal plus half an ulp carries into the smallest normal.
        let x = LongDouble::from_f64(f64::MIN_POSITIVE - 5e-324).to_bits();
        assert_eq!(f(x + (1u128 << (112 - 52))), f64::MIN_POSITIVE); // exactly halfway; odd → up
    }
}
