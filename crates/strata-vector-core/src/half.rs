//! `halfvec` elements: IEEE 754 binary16 values stored as their bits
//! (`u16`), converted from and to `f32` the way pgvector does, and the four
//! distance kernels over them.
//!
//! Conversion. `f32 → binary16` rounds to nearest, ties to even; values
//! past 65,504 become infinite and values below 2^-25 become zero
//! ([`from_f32_unchecked`]). Where pgvector raises, [`from_f32`] does: a
//! finite value that would become infinite is "out of range for type
//! halfvec" (22003), naming the value as `float4out` prints it; NaN and
//! infinite inputs are the element checks' business. `binary16 → f32` is
//! exact.
//!
//! Kernels. Like pgvector's, they widen each element to `f32` and
//! accumulate in `f32`: a scalar reference and, on x86-64 CPUs with AVX,
//! F16C and FMA, an 8-lane version (`vcvtph2ps`) chosen once at run time.

use super::kernels::KernelTable;
use super::{check_element, text, VectorError};
use std::sync::OnceLock;

/// The largest finite binary16 value.
pub const MAX: f32 = 65504.0;

/// Exact value of binary16 `h`.
pub fn to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    match exp {
        // zero and subnormals: man × 2^-24 (exact in f32)
        0 => {
            let magnitude = man as f32 * f32::from_bits(0x3380_0000);
            f32::from_bits(sign | magnitude.to_bits())
        }
        0x1f => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
    }
}

/// `x` rounded to binary16 (nearest, ties to even); out-of-range values
/// become infinite, NaN stays NaN.
pub fn from_f32_unchecked(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        let nan = if man != 0 { 0x200 | (man >> 13) as u16 } else { 0 };
        return sign | 0x7c00 | nan;
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let (kept, dropped_bits) = if e <= 0 {
        if e < -10 {
            return sign;
        }
        // a subnormal: the significand with its leading one, shifted
        (man | 0x80_0000, (14 - e) as u32)
    } else {
        ((e as u32) << 23 | man, 13)
    };
    let mut r = kept >> dropped_bits;
    let rest = kept & ((1 << dropped_bits) - 1);
    let half = 1 << (dropped_bits - 1);
    if rest > half || (rest == half && r & 1 == 1) {
        // a carry out of the significand moves to the next binade, or to
        // infinity: both encode right
        r += 1;
    }
    sign | r as u16
}

/// `x` as binary16, or pgvector's out-of-range error when a finite `x`
/// does not fit.
pub fn from_f32(x: f32) -> Result<u16, VectorError> {
    let h = from_f32_unchecked(x);
    if is_infinite(h) && x.is_finite() {
        let mut shown = String::new();
        text::push_float4(&mut shown, x);
        return Err(VectorError::OutOfRange(shown));
    }
    Ok(h)
}

pub fn is_infinite(h: u16) -> bool {
    h & 0x7fff == 0x7c00
}

fn is_zero(h: u16) -> bool {
    h & 0x7fff == 0
}

/// The elements of a new `halfvec` from `f32` values: each in range
/// ([`from_f32`]), finite and a number (the element checks).
pub fn narrow(values: &[f32]) -> Result<Vec<u16>, VectorError> {
    values
        .iter()
        .map(|&x| {
            let h = from_f32(x)?;
            check_element(to_f32(h))?;
            Ok(h)
        })
        .collect()
}

/// Every element widened to `f32`.
pub fn widen(h: &[u16]) -> Vec<f32> {
    h.iter().map(|&x| to_f32(x)).collect()
}

/// Binary16 values stored little-endian in `bytes` (two bytes each, as
/// `strata_hnsw` elements keep them), widened — 8 at a time with F16C where
/// the CPU has it (a scan widens every element it measures).
pub fn widen_le_bytes(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(bytes.len() / 2);
    widen_le_bytes_into(bytes, &mut out);
    out
}

/// [`widen_le_bytes`] into `out` (cleared first; no allocation once it
/// has room): a scan widens every element it measures into one buffer.
pub fn widen_le_bytes_into(bytes: &[u8], out: &mut Vec<f32>) {
    static WIDEN: OnceLock<fn(&[u8], &mut Vec<f32>)> = OnceLock::new();
    out.clear();
    (WIDEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("f16c") {
                return f16c::widen_le_bytes;
            }
        }
        scalar::widen_le_bytes
    }))(bytes, out)
}

/// An element-wise result computed in `f32` (exact for one sum, difference
/// or product of two binary16 values) rounded to binary16: infinite is
/// "value out of range: overflow", a zero from two non-zero operands
/// "underflow" when `underflow` is asked (multiplication), as pgvector.
fn elementwise(
    a: &[u16],
    b: &[u16],
    op: impl Fn(f32, f32) -> f32,
    underflow: bool,
) -> Result<Vec<u16>, VectorError> {
    super::ops::same_dims(a, b)?;
    let out: Vec<u16> = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| from_f32_unchecked(op(to_f32(x), to_f32(y))))
        .collect();
    for ((&r, &x), &y) in out.iter().zip(a).zip(b) {
        if is_infinite(r) {
            return Err(VectorError::Overflow);
        }
        if underflow && is_zero(r) && !is_zero(x) && !is_zero(y) {
            return Err(VectorError::Underflow);
        }
    }
    Ok(out)
}

pub fn add(a: &[u16], b: &[u16]) -> Result<Vec<u16>, VectorError> {
    elementwise(a, b, |x, y| x + y, false)
}

pub fn sub(a: &[u16], b: &[u16]) -> Result<Vec<u16>, VectorError> {
    elementwise(a, b, |x, y| x - y, false)
}

pub fn mul(a: &[u16], b: &[u16]) -> Result<Vec<u16>, VectorError> {
    elementwise(a, b, |x, y| x * y, true)
}

/// Scaled to unit length (norm in `f64`); the zero vector stays zero;
/// an element that becomes infinite is an overflow.
pub fn l2_normalize(a: &[u16]) -> Result<Vec<u16>, VectorError> {
    let n = norm(a);
    if n == 0.0 {
        return Ok(a.to_vec());
    }
    let out: Vec<u16> = a
        .iter()
        .map(|&x| from_f32_unchecked((to_f32(x) as f64 / n) as f32))
        .collect();
    if out.iter().any(|&h| is_infinite(h)) {
        return Err(VectorError::Overflow);
    }
    Ok(out)
}

/// Lexicographic by value, then by dimension count (pgvector's order).
pub fn compare(a: &[u16], b: &[u16]) -> std::cmp::Ordering {
    for (&x, &y) in a.iter().zip(b) {
        match to_f32(x).partial_cmp(&to_f32(y)) {
            Some(std::cmp::Ordering::Equal) | None => {}
            Some(o) => return o,
        }
    }
    a.len().cmp(&b.len())
}

/// Euclidean norm, accumulated in `f64`.
pub fn norm(a: &[u16]) -> f64 {
    a.iter()
        .map(|&x| to_f32(x) as f64 * to_f32(x) as f64)
        .sum::<f64>()
        .sqrt()
}

/// Sum of squared differences.
pub fn l2_squared(a: &[u16], b: &[u16]) -> f32 {
    table().l2_squared(a, b)
}

/// Inner product.
pub fn dot(a: &[u16], b: &[u16]) -> f32 {
    table().dot(a, b)
}

/// Sum of absolute differences.
pub fn l1(a: &[u16], b: &[u16]) -> f32 {
    table().l1(a, b)
}

/// Cosine distance `1 - a·b / sqrt(|a|² |b|²)`, clamped like pgvector's;
/// NaN when either vector is zero.
pub fn cosine_distance(a: &[u16], b: &[u16]) -> f64 {
    super::kernels::cosine_from_parts(table().cosine_parts(a, b))
}

/// Which implementation the dispatcher picked.
pub fn active_isa() -> &'static str {
    table().name
}

fn table() -> &'static KernelTable<u16> {
    static TABLE: OnceLock<KernelTable<u16>> = OnceLock::new();
    TABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx")
                && std::is_x86_feature_detected!("f16c")
                && std::is_x86_feature_detected!("fma")
            {
                // SAFETY: AVX, F16C and FMA, all these kernels need, were detected.
                return unsafe { KernelTable::new("avx+f16c+fma", f16c::KERNELS) };
            }
        }
        // SAFETY: plain Rust.
        unsafe { KernelTable::new("scalar", (scalar::l2_squared, scalar::dot, scalar::l1, scalar::cosine_parts)) }
    })
}

/// Reference implementations; also the fallback without F16C.
pub mod scalar {
    use super::to_f32;

    pub fn widen_le_bytes(bytes: &[u8], out: &mut Vec<f32>) {
        out.extend(bytes.chunks_exact(2).map(|c| to_f32(u16::from_le_bytes([c[0], c[1]]))));
    }

    fn pairs<'a>(a: &'a [u16], b: &'a [u16]) -> impl Iterator<Item = (f32, f32)> + 'a {
        debug_assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(&x, &y)| (to_f32(x), to_f32(y)))
    }

    pub fn l2_squared(a: &[u16], b: &[u16]) -> f32 {
        pairs(a, b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    pub fn dot(a: &[u16], b: &[u16]) -> f32 {
        pairs(a, b).map(|(x, y)| x * y).sum()
    }

    pub fn l1(a: &[u16], b: &[u16]) -> f32 {
        pairs(a, b).map(|(x, y)| (x - y).abs()).sum()
    }

    pub fn cosine_parts(a: &[u16], b: &[u16]) -> (f32, f32, f32) {
        pairs(a, b).fold((0.0, 0.0, 0.0), |(ab, aa, bb), (x, y)| {
            (ab + x * y, aa + x * x, bb + y * y)
        })
    }
}

#[cfg(target_arch = "x86_64")]
mod f16c {
    //! 8 binary16 values widened at once (`vcvtph2ps`), accumulated with
    //! FMA; installed only after `is_x86_feature_detected!` confirmed AVX,
    //! F16C and FMA. Tails go through the scalar reference.
    use super::scalar;
    use crate::kernels::hsum;
    use std::arch::x86_64::*;


    /// 8 values from `i` on, widened; the caller keeps `i + 8 <= s.len()`.
    #[target_feature(enable = "avx,f16c,fma")]
    fn load(s: &[u16], i: usize) -> __m256 {
        debug_assert!(i + 8 <= s.len());
        // SAFETY: 8 u16 (16 bytes) from `i` are in bounds by the caller's
        // check; `loadu` needs no alignment.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(s.as_ptr().add(i) as *const __m128i) })
    }

    /// Runs `step` over each 8-lane block of `a` and `b`; returns where
    /// the tail starts.
    #[target_feature(enable = "avx,f16c,fma")]
    fn blocks(a: &[u16], b: &[u16], mut step: impl FnMut(__m256, __m256)) -> usize {
        let n = a.len().min(b.len()) / 8 * 8;
        let mut i = 0;
        while i < n {
            step(load(a, i), load(b, i));
            i += 8;
        }
        n
    }

    #[target_feature(enable = "avx,f16c,fma")]
    fn l2_squared_f16c(a: &[u16], b: &[u16]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let tail = blocks(a, b, |x, y| {
            let d = _mm256_sub_ps(x, y);
            acc = _mm256_fmadd_ps(d, d, acc);
        });
        hsum(acc) + scalar::l2_squared(&a[tail..], &b[tail..])
    }

    #[target_feature(enable = "avx,f16c,fma")]
    fn dot_f16c(a: &[u16], b: &[u16]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let tail = blocks(a, b, |x, y| acc = _mm256_fmadd_ps(x, y, acc));
        hsum(acc) + scalar::dot(&a[tail..], &b[tail..])
    }

    #[target_feature(enable = "avx,f16c,fma")]
    fn l1_f16c(a: &[u16], b: &[u16]) -> f32 {
        let sign = _mm256_set1_ps(-0.0);
        let mut acc = _mm256_setzero_ps();
        let tail = blocks(a, b, |x, y| {
            acc = _mm256_add_ps(acc, _mm256_andnot_ps(sign, _mm256_sub_ps(x, y)))
        });
        hsum(acc) + scalar::l1(&a[tail..], &b[tail..])
    }

    #[target_feature(enable = "avx,f16c,fma")]
    fn cosine_parts_f16c(a: &[u16], b: &[u16]) -> (f32, f32, f32) {
        let (mut ab, mut aa, mut bb) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let tail = blocks(a, b, |x, y| {
            ab = _mm256_fmadd_ps(x, y, ab);
            aa = _mm256_fmadd_ps(x, x, aa);
            bb = _mm256_fmadd_ps(y, y, bb);
        });
        let (t_ab, t_aa, t_bb) = scalar::cosine_parts(&a[tail..], &b[tail..]);
        (hsum(ab) + t_ab, hsum(aa) + t_aa, hsum(bb) + t_bb)
    }

    #[target_feature(enable = "avx,f16c")]
    fn widen_f16c(bytes: &[u8], out: &mut Vec<f32>) {
        let n = bytes.len() / 2;
        out.reserve(n);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: 16 bytes from byte 2i are in bounds (i + 8 <= n);
            // `loadu` needs no alignment.
            let h = unsafe { _mm_loadu_si128(bytes.as_ptr().add(2 * i) as *const __m128i) };
            let mut lanes = [0f32; 8];
            // SAFETY: `lanes` holds the 8 floats stored.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_cvtph_ps(h)) };
            out.extend_from_slice(&lanes);
            i += 8;
        }
        scalar::widen_le_bytes(&bytes[2 * i..2 * n], out);
    }

    pub fn widen_le_bytes(bytes: &[u8], out: &mut Vec<f32>) {
        // SAFETY: installed only when AVX and F16C were detected; the
        // bytes are little-endian, as x86-64 is.
        unsafe { widen_f16c(bytes, out) }
    }

    /// The kernels, for [`KernelTable::new`](crate::kernels::KernelTable)
    /// once AVX, F16C and FMA were detected.
    pub(super) const KERNELS: crate::kernels::Kernels<u16> = (l2_squared_f16c, dot_f16c, l1_f16c, cosine_parts_f16c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary16_value_round_trips_through_f32() {
        for h in 0..=u16::MAX {
            let x = to_f32(h);
            if x.is_nan() {
                assert!(to_f32(from_f32_unchecked(x)).is_nan());
            } else {
                assert_eq!(from_f32_unchecked(x), h, "{h:#06x} = {x}");
            }
        }
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_f32(from_f32_unchecked(2.1)), 2.0996094);
        // halfway between 1 and the next binary16 (1 + 2^-10): to even (1)
        assert_eq!(from_f32_unchecked(1.0 + f32::powi(2.0, -11)), 0x3c00);
        // halfway above an odd significand: up
        assert_eq!(from_f32_unchecked(1.0 + 3.0 * f32::powi(2.0, -11)), 0x3c02);
        // the largest value that still rounds to 65504, and the first that does not
        assert_eq!(from_f32_unchecked(65519.99), 0x7bff);
        assert_eq!(from_f32_unchecked(65520.0), 0x7c00);
        // subnormals, the smallest and below it
        assert_eq!(from_f32_unchecked(f32::powi(2.0, -24)), 1);
        assert_eq!(from_f32_unchecked(f32::powi(2.0, -25)), 0);
        assert_eq!(from_f32_unchecked(1.5 * f32::powi(2.0, -25)), 1);
        assert_eq!(from_f32_unchecked(-1e-8), 0x8000);
    }

    #[test]
    fn out_of_range_values_are_named_as_float4out_prints_them() {
        assert_eq!(from_f32(65520.0), Err(VectorError::OutOfRange("65520".into())));
        assert_eq!(
            from_f32(-4e38f64 as f32).map_err(|e| e.of("halfvec").to_string()),
            Ok(0xfc00),
            "an infinite input is the element check's to reject"
        );
        assert_eq!(
            narrow(&[1.0, f32::NAN]).unwrap_err().of("halfvec").to_string(),
            "NaN not allowed in halfvec"
        );
        assert_eq!(narrow(&[1e-8]).unwrap(), vec![0]);
    }

    #[test]
    fn arithmetic_checks_like_pgvector() {
        let h = |v: &[f32]| narrow(v).unwrap();
        assert_eq!(widen(&add(&h(&[1.0, 2.0]), &h(&[3.0, 4.0])).unwrap()), vec![4.0, 6.0]);
        assert_eq!(add(&h(&[65504.0]), &h(&[65504.0])), Err(VectorError::Overflow));
        assert_eq!(mul(&h(&[1e-4]), &h(&[1e-4])), Err(VectorError::Underflow));
        assert_eq!(sub(&h(&[1.0]), &h(&[1.0, 2.0])), Err(VectorError::DifferentDims(1, 2)));
        assert_eq!(widen(&l2_normalize(&h(&[3.0, 4.0])).unwrap()), vec![0.60009766, 0.7998047]);
        assert_eq!(l2_normalize(&h(&[0.0, 0.0])).unwrap(), vec![0, 0]);
        // by value: -0 equals 0, and -1 (0xbc00) sorts before 1 (0x3c00)
        use std::cmp::Ordering::*;
        assert_eq!(compare(&h(&[-0.0]), &h(&[0.0])), Equal);
        assert_eq!(compare(&h(&[-1.0]), &h(&[1.0])), Less);
        assert_eq!(compare(&h(&[1.0]), &h(&[1.0, 0.0])), Less);
    }

    #[test]
    fn kernels_agree_with_the_reference() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            from_f32_unchecked(((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 8.0)
        };
        for n in [1usize, 7, 8, 9, 31, 100, 1536] {
            let a: Vec<u16> = (0..n).map(|_| next()).collect();
            let b: Vec<u16> = (0..n).map(|_| next()).collect();
            let close = |p: f32, q: f32| (p - q).abs() <= 1e-4 * p.abs().max(q.abs()).max(1.0);
            assert!(close(l2_squared(&a, &b), scalar::l2_squared(&a, &b)), "l2 {n}");
            assert!(close(dot(&a, &b), scalar::dot(&a, &b)), "dot {n}");
            assert!(close(l1(&a, &b), scalar::l1(&a, &b)), "l1 {n}");
            let (p, q) = (table().cosine_parts(&a, &b), scalar::cosine_parts(&a, &b));
            assert!(close(p.0, q.0) && close(p.1, q.1) && close(p.2, q.2), "cosine {n}");
        }
        // widening stored bytes: every finite value, odd tails included
        let finite: Vec<u8> = (0..=u16::MAX)
            .filter(|&h| h & 0x7c00 != 0x7c00)
            .flat_map(|h| h.to_le_bytes())
            .collect();
        for len in [finite.len(), 2 * 7, 2 * 9, 0] {
            let got = widen_le_bytes(&finite[..len]);
            let mut want = Vec::new();
            scalar::widen_le_bytes(&finite[..len], &mut want);
            assert!(got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()) && got.len() == want.len());
            // into a buffer holding something already: replaced
            let mut reused = vec![7.0f32; 3];
            widen_le_bytes_into(&finite[..len], &mut reused);
            assert_eq!(reused, got);
        }
        let (a, b) = (narrow(&[1.0, 2.0, 3.0]).unwrap(), narrow(&[4.0, 5.0, 6.0]).unwrap());
        assert_eq!(l2_squared(&a, &b), 27.0);
        assert_eq!(dot(&a, &b), 32.0);
        assert_eq!(l1(&a, &b), 9.0);
        assert!(cosine_distance(&a, &narrow(&[0.0, 0.0, 0.0]).unwrap()).is_nan());
    }
}
