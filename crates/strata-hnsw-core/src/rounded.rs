//! Version 9's elements of `vector` columns: the coordinates at half
//! precision, scaled by a power of two, with a bound on what the rounding
//! moved — so the index is half the vector bytes and the executor still
//! orders rows by their exact distances.
//!
//! ```text
//!  0  slack f32     L2 norm of (v - h), rounded up: how far the stored
//!                   vector h lies from the row's vector v (0: h == v)
//!  4  exp i16       h_i = binary16_i × 2^exp
//!  6  dims × binary16, little-endian
//! ```
//!
//! The exponent is 0 when the largest coordinate lies in [2^-10, 2^15) —
//! binary16's normal range keeps every coordinate within 2^-12 of itself
//! relative to it, and below 2^-14 within 2^-25 absolutely — otherwise the
//! one that brings the largest into [2^14, 2^15): any finite float4 vector
//! fits without overflow, and a power of two keeps integers of up to 11
//! significant bits (SIFT's bytes, counts) exact.
//!
//! A scan measures `d' = d(q, h)`. For a row returned with slack > 0 the
//! index hands the executor [`lower_bound`]`(d')` and asks it to recheck the
//! order: PostgreSQL's index scan then computes the operator on the row's
//! own vector and returns rows in exact distance order (it requires the
//! index's value never to exceed the exact one — that is what the bound
//! guarantees, float4 arithmetic included). Rows whose vectors are stored
//! exactly (slack 0) are returned as before, with `d'` itself.
//!
//! Pure: no Postgres calls.

use super::metric::Metric;
use strata_vector_core::half;

/// Bytes before the binary16 values: slack f32, exponent i16.
pub const HEADER: usize = 6;

/// Bytes of a `dims`-dimensional rounded vector.
pub const fn bytes_for(dims: usize) -> usize {
    HEADER + 2 * dims
}

/// The power of two a vector with largest magnitude `max` is divided by.
pub fn exponent_for(max: f32) -> i16 {
    if !(max.is_finite() && max > 0.0) || (f32::powi(2.0, -10)..32768.0).contains(&max) {
        return 0;
    }
    // floor(log2(max)) from the float's exponent (subnormals: from its bits)
    let e = if max >= f32::MIN_POSITIVE {
        ((max.to_bits() >> 23) & 0xff) as i32 - 127
    } else {
        -127 - (max.to_bits().leading_zeros() as i32 - 9)
    };
    (e - 14) as i16
}

/// 2^`exp` (exp within ±163, as [`exponent_for`] gives).
fn scale(exp: i16) -> f64 {
    (2.0f64).powi(exp as i32)
}

/// `x × 2^exp` as f32: the one computation both [`encode`] (to measure the
/// error) and [`decode_into`] make, so the slack describes what is read.
fn scaled(x: f32, exp: i16) -> f32 {
    if exp == 0 {
        x
    } else {
        (x as f64 * scale(exp)) as f32
    }
}

/// Writes `v` rounded into `out` (exactly [`bytes_for`] bytes).
pub fn encode(v: &[f32], out: &mut [u8]) {
    debug_assert_eq!(out.len(), bytes_for(v.len()));
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let exp = exponent_for(max);
    let mut err = 0.0f64;
    for (c, &x) in out[HEADER..].chunks_exact_mut(2).zip(v) {
        // a power of two: x × 2^-exp is exact unless it falls outside f32's
        // normal range, where its rounding is part of the error measured
        let h = half::from_f32_unchecked(scaled(x, -exp));
        c.copy_from_slice(&h.to_le_bytes());
        let back = scaled(half::to_f32(h), exp);
        err += (x as f64 - back as f64).powi(2);
    }
    out[0..4].copy_from_slice(&round_up(err.sqrt()).to_le_bytes());
    out[4..6].copy_from_slice(&exp.to_le_bytes());
}

/// `x` as the least f32 not below it.
fn round_up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x {
        f32::from_bits(f.to_bits() + 1)
    } else {
        f
    }
}

/// The stored slack (L2 norm of the rounding error, rounded up).
pub fn slack(bytes: &[u8]) -> f32 {
    f32::from_le_bytes(bytes[0..4].try_into().unwrap())
}

fn exponent(bytes: &[u8]) -> i16 {
    i16::from_le_bytes([bytes[4], bytes[5]])
}

/// The stored vector `h`, widened to f32 into `out` (cleared first).
pub fn decode_into(bytes: &[u8], out: &mut Vec<f32>) {
    half::widen_le_bytes_into(&bytes[HEADER..], out);
    let exp = exponent(bytes);
    if exp != 0 {
        out.iter_mut().for_each(|x| *x = scaled(*x, exp));
    }
}

/// The stored vector `h`, widened.
pub fn decode(bytes: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity((bytes.len() - HEADER) / 2);
    decode_into(bytes, &mut out);
    out
}

/// Whether `bytes` may stand for the rows of `v` too: `v` rounds to the
/// same stored vector with no more slack than it records (so the bound
/// holds for every row of the element; rows of one vector always share).
pub fn stands_for(bytes: &[u8], v: &[f32]) -> bool {
    if bytes.len() != bytes_for(v.len()) {
        return false;
    }
    let mut mine = vec![0u8; bytes.len()];
    encode(v, &mut mine);
    mine[HEADER - 2..] == bytes[HEADER - 2..] && slack(&mine) <= slack(bytes)
}

/// A bound `b ≤ d(q, v)` for every vector `v` within `slack` of `h`, given
/// `d = d(q, h)` as a scan computed it, `q_norm = |q|`, `h_norm = |h|` (both
/// needed by inner product and cosine only) — float4 rounding of both the
/// scan's kernel and the SQL operator's included (each within
/// `(dims + 8) · 2^-23` of its terms' magnitude).
pub fn lower_bound(metric: Metric, d: f64, slack: f32, q_norm: f64, h_norm: f64, dims: usize) -> f64 {
    let s = slack as f64;
    let g = (dims as f64 + 8.0) * f64::powi(2.0, -23);
    let b = match metric {
        // |q - v| ≥ |q - h| - |v - h|
        Metric::L2 => d - s - 2.0 * g * (d.abs() + s),
        // |<q, v - h>| ≤ |q|·|v - h|; each dot product within g·|q|·|x|
        Metric::InnerProduct => d - q_norm * s - 2.0 * g * q_norm * (2.0 * h_norm + s),
        // |v/|v| - h/|h|| ≤ 2|v - h|/|h|, and cosines move at most that;
        // each side's cosine within 3g
        Metric::Cosine => {
            if h_norm > 0.0 {
                d - 2.0 * s / h_norm - 8.0 * g
            } else {
                f64::NEG_INFINITY
            }
        }
        // Σ|v_i - h_i| ≤ √dims · |v - h|
        Metric::L1 => {
            let s1 = (dims as f64).sqrt() * s;
            d - s1 - 2.0 * g * (d.abs() + s1)
        }
        // other metrics never store rounded vectors
        _ => d,
    };
    if !(d.is_finite() && b.is_finite()) {
        // float4 overflowed (coordinates near 1e19 and up): the kernel's
        // value says nothing of the exact one, which is at least the floor
        return floor(metric);
    }
    b.min(d)
}

/// The least value the metric's SQL operator returns.
fn floor(metric: Metric) -> f64 {
    match metric {
        Metric::L2 | Metric::L1 | Metric::Cosine => 0.0,
        _ => f64::NEG_INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform values in [-0.5, 0.5) from a fixed seed.
    fn uniform(mut seed: u64) -> impl FnMut() -> f32 {
        move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        }
    }

    fn round_trip(v: &[f32]) -> (Vec<f32>, f32) {
        let mut b = vec![0u8; bytes_for(v.len())];
        encode(v, &mut b);
        (decode(&b), slack(&b))
    }

    #[test]
    fn integers_and_binary16_values_are_exact() {
        let sift: Vec<f32> = (0..128).map(|i| ((i * 37) % 256) as f32).collect();
        assert_eq!(round_trip(&sift), (sift.clone(), 0.0));
        let big: Vec<f32> = (0..16).map(|i| (i * 4096) as f32).collect();
        assert_eq!(round_trip(&big), (big.clone(), 0.0));
        let halves = [0.5f32, -0.25, 1.0, 0.0];
        assert_eq!(round_trip(&halves), (halves.to_vec(), 0.0));
    }

    #[test]
    fn the_slack_bounds_the_error_at_every_scale() {
        let mut next = uniform(7);
        for scale in [1e-30f32, 1e-6, 0.01, 1.0, 300.0, 1e5, 1e30] {
            let v: Vec<f32> = (0..100).map(|_| next() * scale).collect();
            let (h, s) = round_trip(&v);
            let err: f64 = v.iter().zip(&h).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>().sqrt();
            assert!(err <= s as f64, "scale {scale}: {err} > {s}");
            let norm = strata_vector_core::ops::norm(&v);
            assert!(err <= norm * 1e-3, "scale {scale}: relative error {}", err / norm);
            assert!(h.iter().all(|x| x.is_finite()));
        }
    }

    #[test]
    fn exponents_keep_the_largest_in_range() {
        assert_eq!(exponent_for(1.0), 0);
        assert_eq!(exponent_for(255.0), 0);
        assert_eq!(exponent_for(65504.0), 1);
        assert_eq!(exponent_for(1e30), 99 - 14);
        assert_eq!(exponent_for(0.001), 0);
        assert_eq!(exponent_for(0.0001), -14 - 14);
        assert_eq!(exponent_for(1e-40), -133 - 14);
        assert_eq!(exponent_for(0.0), 0);
        for max in [0.0001f32, 1e-40, 1e5, 3e38] {
            let m = max as f64 / scale(exponent_for(max));
            assert!((16384.0..32768.0).contains(&m), "{max}: {m}");
        }
    }

    #[test]
    fn copies_share_and_near_misses_do_not_widen_the_bound() {
        let v = [0.1f32, 0.2, 0.3, 0.4];
        let mut b = vec![0u8; bytes_for(4)];
        encode(&v, &mut b);
        assert!(stands_for(&b, &v));
        // rounds to the same halves but lies farther from them
        let w = [0.1f32 + 5e-6, 0.2, 0.3, 0.4];
        let mut bw = vec![0u8; bytes_for(4)];
        encode(&w, &mut bw);
        assert_eq!(bw[HEADER..], b[HEADER..]);
        assert!(slack(&bw) > slack(&b));
        assert!(!stands_for(&b, &w));
        assert!(stands_for(&bw, &v));
        assert!(!stands_for(&b, &[0.1, 0.2, 0.3]));
    }

    #[test]
    fn bounds_never_pass_the_exact_distance() {
        let mut next = uniform(11);
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine, Metric::L1] {
            for _ in 0..2000 {
                let v: Vec<f32> = (0..64).map(|_| next()).collect();
                // a query near v: where the bound is tightest
                let q: Vec<f32> = v.iter().map(|x| x + next() * 0.1).collect();
                let (h, s) = round_trip(&v);
                let norm = strata_vector_core::ops::norm;
                let d = metric.distance(&q, &h);
                let exact = metric.distance(&q, &v);
                let b = lower_bound(metric, d, s, norm(&q), norm(&h), 64);
                assert!(b <= exact, "{metric:?}: bound {b} > exact {exact}");
                assert!(exact - b < 0.01 * exact.abs().max(0.1), "{metric:?}: loose: {b} vs {exact}");
            }
        }
    }

    #[test]
    fn an_overflowed_distance_bounds_by_the_floor() {
        let v = [1e30f32, 2e30, 3e30, 4e30];
        let (h, s) = round_trip(&v);
        assert!(s.is_finite() && s > 0.0);
        // measured in float8 where float4 overflows
        let d = Metric::L2.distance(&v, &h);
        assert!(d.is_finite() && d <= s as f64 && lower_bound(Metric::L2, d, s, 0.0, 0.0, 4) <= 0.0);
        assert_eq!(lower_bound(Metric::L2, f64::INFINITY, s, 0.0, 0.0, 4), 0.0);
        assert_eq!(lower_bound(Metric::InnerProduct, f64::NAN, s, 1e30, 1e30, 4), f64::NEG_INFINITY);
        assert_eq!(lower_bound(Metric::Cosine, f64::INFINITY, s, 1.0, 1.0, 4), 0.0);
    }
}
