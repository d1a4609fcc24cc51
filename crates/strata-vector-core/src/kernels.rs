//! Distance kernels over `f32` slices.
//!
//! Pure Rust, no Postgres. Each kernel has a scalar reference implementation and,
//! on x86-64, an AVX2+FMA implementation chosen once at run time by CPU feature
//! detection. Accumulation is in `f32` like pgvector, so results agree with it to
//! rounding; callers widen to `f64` for SQL results.
//!
//! The public entry points (`l2_squared`, `dot`, `l1`, `cosine_parts`) dispatch
//! through a table resolved on first use.

use std::sync::OnceLock;

/// Sum of squared differences.
pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    table().l2_squared(a, b)
}

/// Inner product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    table().dot(a, b)
}

/// Sum of absolute differences.
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    table().l1(a, b)
}

/// `(a·b, |a|², |b|²)` in one pass, for cosine distance.
pub fn cosine_parts(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
    table().cosine_parts(a, b)
}

/// Cosine distance `1 - a·b / (|a| |b|)`, clamped to `[0, 2]`; NaN when either
/// vector is zero (pgvector's behaviour).
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    cosine_from_parts(cosine_parts(a, b))
}

/// Cosine distance from `(a·b, |a|², |b|²)` (pgvector's `sqrt(a * b)`
/// form), for every element type.
pub(crate) fn cosine_from_parts((ab, aa, bb): (f32, f32, f32)) -> f64 {
    let similarity = ab as f64 / ((aa as f64) * (bb as f64)).sqrt();
    if similarity.is_nan() {
        return f64::NAN;
    }
    1.0 - similarity.clamp(-1.0, 1.0)
}

/// Which implementation the dispatcher picked (for benchmarks and diagnostics).
pub fn active_isa() -> &'static str {
    table().name
}

/// One implementation of the four kernels over elements `T` (`f32` here,
/// binary16 bits in [`super::half`]). Its functions may need CPU features
/// (`#[target_feature]`), so they are kept as `unsafe fn`: [`Self::new`]
/// promises they can run on this CPU, and the methods call them.
pub(crate) struct KernelTable<T: 'static> {
    pub name: &'static str,
    l2_squared: unsafe fn(&[T], &[T]) -> f32,
    dot: unsafe fn(&[T], &[T]) -> f32,
    l1: unsafe fn(&[T], &[T]) -> f32,
    cosine_parts: unsafe fn(&[T], &[T]) -> (f32, f32, f32),
}

/// The four kernels of one implementation, in [`KernelTable`]'s order.
pub(crate) type Kernels<T> = (
    unsafe fn(&[T], &[T]) -> f32,
    unsafe fn(&[T], &[T]) -> f32,
    unsafe fn(&[T], &[T]) -> f32,
    unsafe fn(&[T], &[T]) -> (f32, f32, f32),
);

impl<T> KernelTable<T> {
    /// The table of implementation `name`: `(l2_squared, dot, l1, cosine_parts)`.
    ///
    /// # Safety
    /// Each function can run on this CPU: the features it is compiled for
    /// were detected.
    pub unsafe fn new(name: &'static str, (l2_squared, dot, l1, cosine_parts): Kernels<T>) -> KernelTable<T> {
        KernelTable { name, l2_squared, dot, l1, cosine_parts }
    }

    pub fn l2_squared(&self, a: &[T], b: &[T]) -> f32 {
        // SAFETY: `new`'s caller promised the function runs on this CPU.
        unsafe { (self.l2_squared)(a, b) }
    }

    pub fn dot(&self, a: &[T], b: &[T]) -> f32 {
        // SAFETY: as in `l2_squared`.
        unsafe { (self.dot)(a, b) }
    }

    pub fn l1(&self, a: &[T], b: &[T]) -> f32 {
        // SAFETY: as in `l2_squared`.
        unsafe { (self.l1)(a, b) }
    }

    pub fn cosine_parts(&self, a: &[T], b: &[T]) -> (f32, f32, f32) {
        // SAFETY: as in `l2_squared`.
        unsafe { (self.cosine_parts)(a, b) }
    }
}

fn table() -> &'static KernelTable<f32> {
    static TABLE: OnceLock<KernelTable<f32>> = OnceLock::new();
    TABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                // SAFETY: AVX2 and FMA, all these kernels need, were detected.
                return unsafe { KernelTable::new("avx2+fma", avx2::KERNELS) };
            }
        }
        // SAFETY: plain Rust.
        unsafe { KernelTable::new("scalar", (scalar::l2_squared, scalar::dot, scalar::l1, scalar::cosine_parts)) }
    })
}

/// Reference implementations; also the fallback on CPUs without AVX2.
pub mod scalar {
    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    pub fn l1(a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
    }

    pub fn cosine_parts(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
        debug_assert_eq!(a.len(), b.len());
        let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
        for (x, y) in a.iter().zip(b) {
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        (ab, aa, bb)
    }
}

/// Horizontal sum of an AVX register's 8 float lanes (the AVX2 kernels
/// here and the F16C ones in [`super::half`] end with it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
pub(crate) fn hsum(v: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let hi = _mm256_extractf128_ps(v, 1);
    let lo = _mm256_castps256_ps128(v);
    let s = _mm_add_ps(hi, lo);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
    _mm_cvtss_f32(s)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! 8-lane AVX2 kernels with FMA, installed in the dispatch table only
    //! after `is_x86_feature_detected!` confirmed both features.
    use std::arch::x86_64::*;

    use super::hsum;

    /// Loads 8 floats at `i`; caller guarantees `i + 8 <= s.len()`.
    #[target_feature(enable = "avx2,fma")]
    fn load(s: &[f32], i: usize) -> __m256 {
        debug_assert!(i + 8 <= s.len());
        // SAFETY: the caller keeps `i + 8 <= s.len()`, so 8 floats are in bounds;
        // `loadu` has no alignment requirement.
        unsafe { _mm256_loadu_ps(s.as_ptr().add(i)) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2_squared_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            let d = _mm256_sub_ps(load(a, i), load(b, i));
            acc = _mm256_fmadd_ps(d, d, acc);
            i += 8;
        }
        let mut sum = hsum(acc);
        while i < n {
            let d = a[i] - b[i];
            sum += d * d;
            i += 1;
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            acc = _mm256_fmadd_ps(load(a, i), load(b, i), acc);
            i += 8;
        }
        let mut sum = hsum(acc);
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    fn l1_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let sign = _mm256_set1_ps(-0.0);
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            let d = _mm256_sub_ps(load(a, i), load(b, i));
            acc = _mm256_add_ps(acc, _mm256_andnot_ps(sign, d));
            i += 8;
        }
        let mut sum = hsum(acc);
        while i < n {
            sum += (a[i] - b[i]).abs();
            i += 1;
        }
        sum
    }

    #[target_feature(enable = "avx2,fma")]
    fn cosine_parts_avx2(a: &[f32], b: &[f32]) -> (f32, f32, f32) {
        let n = a.len().min(b.len());
        let (mut ab, mut aa, mut bb) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        let mut i = 0;
        while i + 8 <= n {
            let (x, y) = (load(a, i), load(b, i));
            ab = _mm256_fmadd_ps(x, y, ab);
            aa = _mm256_fmadd_ps(x, x, aa);
            bb = _mm256_fmadd_ps(y, y, bb);
            i += 8;
        }
        let (mut sab, mut saa, mut sbb) = (hsum(ab), hsum(aa), hsum(bb));
        while i < n {
            sab += a[i] * b[i];
            saa += a[i] * a[i];
            sbb += b[i] * b[i];
            i += 1;
        }
        (sab, saa, sbb)
    }

    /// The kernels, for [`super::KernelTable::new`] once AVX2 and FMA were
    /// detected.
    pub(super) const KERNELS: super::Kernels<f32> = (l2_squared_avx2, dot_avx2, l1_avx2, cosine_parts_avx2);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random vectors (xorshift), no external crates.
    fn vectors(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s % 20_000) as f32 / 1000.0) - 10.0
            })
            .collect()
    }

    fn close(x: f32, y: f32) -> bool {
        (x - y).abs() <= 1e-4 * x.abs().max(y.abs()).max(1.0)
    }

    #[test]
    fn dispatched_kernels_match_scalar_reference_for_all_lengths() {
        for len in 0..70 {
            let a = vectors(len as u64 + 1, len);
            let b = vectors(len as u64 + 1000, len);
            assert!(
                close(l2_squared(&a, &b), scalar::l2_squared(&a, &b)),
                "l2 len {len}"
            );
            assert!(close(dot(&a, &b), scalar::dot(&a, &b)), "dot len {len}");
            assert!(close(l1(&a, &b), scalar::l1(&a, &b)), "l1 len {len}");
            let (p, q) = (cosine_parts(&a, &b), scalar::cosine_parts(&a, &b));
            assert!(
                close(p.0, q.0) && close(p.1, q.1) && close(p.2, q.2),
                "cos len {len}"
            );
        }
    }

    #[test]
    fn known_values() {
        let a = [1.0, 2.0, 3.0];
        let b = [4.0, 5.0, 6.0];
        assert_eq!(l2_squared(&a, &b), 27.0);
        assert_eq!((l2_squared(&a, &b) as f64).sqrt(), 5.196152422706632);
        assert_eq!(dot(&a, &b), 32.0);
        assert_eq!(l1(&a, &b), 9.0);
        assert!((cosine_distance(&a, &b) - 0.025368153802923787).abs() < 1e-7);
    }

    #[test]
    fn cosine_edge_cases() {
        assert!(cosine_distance(&[0.0, 0.0], &[1.0, 2.0]).is_nan());
        assert_eq!(cosine_distance(&[1.0, 1.0], &[1.0, 1.0]), 0.0);
        assert_eq!(cosine_distance(&[1.0, 0.0], &[-1.0, 0.0]), 2.0);
    }

    #[test]
    fn isa_is_reported() {
        assert!(["scalar", "avx2+fma"].contains(&active_isa()));
    }
}
