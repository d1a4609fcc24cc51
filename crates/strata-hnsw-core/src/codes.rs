//! One-bit neighbor codes for `strata_hnsw` traversal (issue 18's "compact
//! codes next to the neighbor list"). Pure.
//!
//! A scan is bound by one buffer access per element whose distance it
//! computes (docs/hnsw-profile.md). With a short code of each neighbor
//! stored next to an element's neighbor list, expanding one element scores
//! its whole neighborhood from the page already read; only the elements the
//! search goes on to expand are read — and their exact distances, which come
//! with that read, decide the results, so answers stay exact-distance
//! ordered.
//!
//! The code is RaBitQ's (Gao & Long, SIGMOD 2024) in its one-bit form: the
//! residual `o - c` from a reference point `c` — a centroid, or (measured
//! better, see docs/hnsw-profile.md) the owner of the neighbor list the code
//! sits in — is rotated by a random orthogonal
//! map `P` (here a randomized Hadamard transform: sign flips and a fast
//! Walsh–Hadamard transform, three rounds, over the dimensions padded to a
//! power of two), and the code keeps the sign of each rotated coordinate,
//! `|o - c|` and the correction `<x̄, P(o - c)/|o - c|>` where
//! `x̄ = sign bits / sqrt(D)`. For any vector `v`,
//! `<o - c, v> ≈ |o - c| · <x̄, P v> / <x̄, P ô>` — unbiased, with an error
//! that shrinks as `1/sqrt(D)`. Squared L2, inner product and (on unit
//! vectors) cosine distances all follow from that one estimate.
//!
//! Scoring a code against a query takes `D/8` table lookups: the query's
//! rotated vector is cut into groups of eight coordinates, and for each
//! group the signed sums over all 256 sign patterns are tabulated once per
//! query.

/// The rotation of a given dimension count: `rounds` sign vectors over the
/// padded dimensions, drawn from a seed.
#[derive(Clone, Debug)]
pub struct Rotation {
    dims: usize,
    padded: usize,
    /// How many rotated coordinates a code keeps (a multiple of 8, at most
    /// `padded`): any subset of a random rotation's coordinates is a random
    /// projection, so fewer bits give the same estimate with more noise.
    bits: usize,
    signs: Vec<Vec<f32>>,
}

const ROUNDS: usize = 3;

/// A deterministic generator for the rotation's signs (xorshift64*).
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// In-place fast Walsh–Hadamard transform (unnormalized) of a power-of-two
/// length. The first three stages run inside each block of eight, the rest
/// as whole half-blocks the compiler vectorizes; every output goes through
/// the same additions in the same order as the textbook loop
/// ([`fwht_reference`]), so codes are bit-identical to earlier builds'
/// (inserts and rotations were an eighth of an insert's profile with the
/// textbook loop, which does not vectorize below 8).
fn fwht(x: &mut [f32]) {
    let n = x.len();
    if n < 8 {
        return fwht_reference(x);
    }
    for c in x.chunks_exact_mut(8) {
        let c: &mut [f32; 8] = c.try_into().expect("blocks of eight");
        for h in [1, 2, 4] {
            for i in (0..8).step_by(2 * h) {
                for j in i..i + h {
                    let (a, b) = (c[j], c[j + h]);
                    c[j] = a + b;
                    c[j + h] = a - b;
                }
            }
        }
    }
    let mut h = 8;
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (lo, hi) = block.split_at_mut(h);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let (s, d) = (*a + *b, *a - *b);
                *a = s;
                *b = d;
            }
        }
        h *= 2;
    }
}

/// The textbook transform: short inputs, and the reference in tests.
fn fwht_reference(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for i in (0..n).step_by(2 * h) {
            for j in i..i + h {
                let (a, b) = (x[j], x[j + h]);
                x[j] = a + b;
                x[j + h] = a - b;
            }
        }
        h *= 2;
    }
}

impl Rotation {
    pub fn new(dims: usize, seed: u64) -> Rotation {
        Rotation::with_bits(dims, usize::MAX, seed)
    }

    /// A rotation whose codes keep `bits` coordinates (rounded down to a
    /// multiple of 8, at least 8, at most the padded dimensions).
    pub fn with_bits(dims: usize, bits: usize, seed: u64) -> Rotation {
        let padded = dims.next_power_of_two().max(64);
        let bits = (bits.min(padded) / 8 * 8).max(8);
        let mut state = seed | 1;
        let signs = (0..ROUNDS)
            .map(|_| {
                (0..padded)
                    .map(|_| if next(&mut state) >> 63 == 0 { 1.0 } else { -1.0 })
                    .collect()
            })
            .collect();
        Rotation { dims, padded, bits, signs }
    }

    /// Rotated coordinates (padded length) of `v`; orthogonal: lengths and
    /// inner products are kept.
    pub fn apply(&self, v: &[f32], out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&v[..self.dims.min(v.len())]);
        out.resize(self.padded, 0.0);
        let scale = 1.0 / (self.padded as f32).sqrt();
        for signs in &self.signs {
            for (x, s) in out.iter_mut().zip(signs) {
                *x *= s;
            }
            fwht(out);
            for x in out.iter_mut() {
                *x *= scale;
            }
        }
    }

    pub fn padded(&self) -> usize {
        self.padded
    }

    /// Coordinates a code keeps.
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Bytes of one code.
    pub fn code_len(&self) -> usize {
        code_len(self.bits)
    }
}

/// Coordinates a code keeps unless the index's lists need narrower ones
/// (`format::code_bits_for`): all the rotated ones, one bit per (padded)
/// dimension. Fewer lose more than they save: on uniform 10k × 128, 64 bits
/// never matched the exact search (0.83 at 1169 reads against 0.85 at
/// 1229), 128 bits beat it at a quarter of the reads (0.90 at 327); on GloVe
/// 50d (64 coordinates) 48 bits lost a tenth of the recall.
pub const DEFAULT_BITS: usize = usize::MAX;

/// Fewest dimensions of an index with codes: below, a code (64 bits at
/// least) costs about as much space as the vector, whose exact distance is
/// then cheap too.
pub const MIN_DIMS: usize = 32;

/// The rotation seed of new indexes (any value works; fixed, so that two
/// builds of the same data are the same).
pub const DEFAULT_SEED: u32 = 0x5EED_0001;

/// What a code estimates: the metric's comparable distance (see
/// `Metric::comparable`) — squared L2, or the negative inner product
/// (cosine: on unit vectors, `1 - a·b`, the same estimate plus one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Estimate {
    SquaredL2,
    NegativeInner,
}

/// Bytes of one neighbor code for a rotation keeping `bits` coordinates:
/// the sign bits, then the factors `A` and `B` as bfloat16.
pub fn code_len(bits: usize) -> usize {
    bits / 8 + 4
}

fn to_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7FC0;
    }
    let b = x.to_bits();
    // round to nearest, ties to even
    ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Writes the code of neighbor `o` in the list of owner `c` into `out`
/// (`code_len` bytes), from both vectors already rotated by `rot` (and
/// made unit length under cosine).
///
/// With `r = P(o - c)`, signs `s_i` of its first `bits` coordinates,
/// `A = |r|² / Σ|r_i|` and `S(v) = Σ s_i (P v)_i`, RaBitQ's estimate is
/// `<o - c, v> ≈ A · S(v)`. For a query `q` whose exact distance `d_c` to the
/// owner is known (the owner was just read), with `v = q - c`:
///
/// * squared L2: `|o - q|² = |o - c|² + d_c - 2<o - c, q - c>`
///   `≈ d_c + B - 2 A S(q)`, `B = |r|² + 2 A S(c)`;
/// * negative inner product: `-<o, q> = d_c - <o - c, q - c> - <o - c, c>`
///   `≈ d_c + B - A S(q)`, `B = A S(c) - <r, P c>`.
///
/// So one table of `P q` per query scores every code of every list; the
/// error still scales with `|o - c| · |q - c|`, small near the answer.
pub fn encode(rot: &Rotation, kind: Estimate, c_rot: &[f32], o_rot: &[f32], out: &mut [u8]) {
    let bits = rot.bits;
    let (n2, abs_sum, s_c, r_c) = encode_sums(bits, &o_rot[..rot.padded], &c_rot[..rot.padded], out);
    let a = if abs_sum > 0.0 { n2 / abs_sum } else { 0.0 };
    let b = match kind {
        Estimate::SquaredL2 => n2 + 2.0 * a * s_c,
        Estimate::NegativeInner => a * s_c - r_c,
    };
    out[bits / 8..bits / 8 + 2].copy_from_slice(&to_bf16(a).to_le_bytes());
    out[bits / 8 + 2..bits / 8 + 4].copy_from_slice(&to_bf16(b).to_le_bytes());
}

/// `|r|²`, `Σ|r_i|` and `S(c)` over the coded coordinates, and `<r, c>`, for
/// `r = o - c` (rotated), writing the sign bytes into `out`; with AVX2 where
/// the CPU has it (a build encodes 2·m codes per element).
fn encode_sums(bits: usize, o: &[f32], c: &[f32], out: &mut [u8]) -> (f32, f32, f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has both features (checked just above).
        return unsafe { encode_sums_avx2(bits, o, c, out) };
    }
    encode_sums_body(bits, o, c, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn encode_sums_avx2(bits: usize, o: &[f32], c: &[f32], out: &mut [u8]) -> (f32, f32, f32, f32) {
    use std::arch::x86_64::*;
    // Eight coordinates per step: their sign byte from one compare and a
    // movemask, the sums in one register each (the portable body's lane
    // accumulators, written out: the compiler left that loop scalar).
    let sum = |v: __m256| -> f32 {
        let mut lanes = [0.0f32; 8];
        // SAFETY: 8 writable floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        lanes.iter().sum()
    };
    let groups = bits / 8;
    assert!(o.len() >= bits && c.len() >= bits && out.len() >= groups && o.len() == c.len());
    // SAFETY: every load reads 8 floats at 8·k < bits <= len (asserted),
    // every store one byte at k < groups <= out.len().
    unsafe {
        let (zero, sign_bit) = (_mm256_setzero_ps(), _mm256_set1_ps(-0.0));
        let (mut n2, mut abs_sum, mut s_c, mut r_c) = (zero, zero, zero, zero);
        for k in 0..groups {
            let ov = _mm256_loadu_ps(o.as_ptr().add(8 * k));
            let cv = _mm256_loadu_ps(c.as_ptr().add(8 * k));
            let r = _mm256_sub_ps(ov, cv);
            n2 = _mm256_fmadd_ps(r, r, n2);
            r_c = _mm256_fmadd_ps(r, cv, r_c);
            abs_sum = _mm256_add_ps(abs_sum, _mm256_andnot_ps(sign_bit, r));
            let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(r, zero);
            // +c where r > 0, -c elsewhere
            s_c = _mm256_add_ps(s_c, _mm256_xor_ps(cv, _mm256_andnot_ps(positive, sign_bit)));
            *out.get_unchecked_mut(k) = _mm256_movemask_ps(positive) as u8;
        }
        let (mut n2, abs_sum, s_c, mut r_c) = (sum(n2), sum(abs_sum), sum(s_c), sum(r_c));
        for (x, y) in o[bits..].iter().zip(&c[bits..]) {
            let r = x - y;
            n2 += r * r;
            r_c += r * y;
        }
        (n2, abs_sum, s_c, r_c)
    }
}

#[inline(always)]
fn encode_sums_body(bits: usize, o: &[f32], c: &[f32], out: &mut [u8]) -> (f32, f32, f32, f32) {
    // Branch-free over groups of eight coordinates (one sign byte each), with
    // one accumulator per lane, so the compiler vectorizes it (floating-point
    // sums are not reordered otherwise): a build encodes 2·m codes per element.
    let (mut n2, mut abs_sum, mut s_c, mut r_c) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    for (k, (og, cg)) in o[..bits].chunks_exact(8).zip(c[..bits].chunks_exact(8)).enumerate() {
        let mut byte = 0u8;
        for i in 0..8 {
            let r = og[i] - cg[i];
            n2[i] += r * r;
            r_c[i] += r * cg[i];
            abs_sum[i] += r.abs();
            let sign = if r > 0.0 { 1.0 } else { -1.0 };
            s_c[i] += sign * cg[i];
            byte |= ((r > 0.0) as u8) << i;
        }
        out[k] = byte;
    }
    for (i, (x, y)) in o[bits..].iter().zip(&c[bits..]).enumerate() {
        let r = x - y;
        n2[i % 8] += r * r;
        r_c[i % 8] += r * y;
    }
    let sum = |v: [f32; 8]| v.iter().sum::<f32>();
    (sum(n2), sum(abs_sum), sum(s_c), sum(r_c))
}

/// The codes of one index: its rotation and the estimate its metric
/// needs. Vectors are taken as stored; cosine codes are of unit copies.
#[derive(Clone, Debug)]
pub struct Coder {
    rot: Rotation,
    kind: Estimate,
    metric: super::metric::Metric,
}

impl Coder {
    /// The coder of an index with this metric, `bits` coordinates per code
    /// and rotation `seed`; None when the metric has no estimate (L1) or
    /// `bits` is 0.
    pub fn new(dims: usize, bits: usize, seed: u32, metric: super::metric::Metric) -> Option<Coder> {
        use super::metric::Metric;
        let kind = match metric {
            Metric::L2 => Estimate::SquaredL2,
            Metric::InnerProduct | Metric::Cosine => Estimate::NegativeInner,
            Metric::L1 | Metric::Hamming | Metric::Jaccard => return None,
            Metric::SparseL2 | Metric::SparseInnerProduct | Metric::SparseCosine | Metric::SparseL1 => return None,
        };
        (bits > 0).then(|| Coder {
            rot: Rotation::with_bits(dims, bits, seed as u64),
            kind,
            metric,
        })
    }

    pub fn code_len(&self) -> usize {
        self.rot.code_len()
    }

    /// Padded length of a rotated vector.
    pub fn padded(&self) -> usize {
        self.rot.padded()
    }

    /// `v` as the codes see it: `Metric::prepare`d (unit length under
    /// cosine).
    fn ready<'v>(&self, v: &'v [f32]) -> std::borrow::Cow<'v, [f32]> {
        if self.metric == super::metric::Metric::Cosine {
            let mut unit = v.to_vec();
            self.metric.prepare(&mut unit);
            std::borrow::Cow::Owned(unit)
        } else {
            std::borrow::Cow::Borrowed(v)
        }
    }

    /// `v` made ready and rotated, into `out`.
    pub fn rotate(&self, v: &[f32], out: &mut Vec<f32>) {
        self.rot.apply(&self.ready(v), out);
    }

    /// The code of the neighbor with rotated vector `o_rot` in the list of
    /// the owner with rotated vector `c_rot`, into `out` (`code_len` bytes).
    pub fn encode(&self, c_rot: &[f32], o_rot: &[f32], out: &mut [u8]) {
        encode(&self.rot, self.kind, c_rot, o_rot, out)
    }

    /// The codes of element `owner`'s list members `list`, one after
    /// another into `out`, from `rotated` ([`Coder::rotate`]d vectors,
    /// `padded()` floats each, by element index). The members' vectors lie
    /// anywhere in memory: the ones two slots ahead are asked for while one
    /// is encoded.
    pub fn encode_list(&self, rotated: &[f32], owner: usize, list: &[u32], out: &mut [u8]) {
        let (len, padded) = (self.code_len(), self.padded());
        let rot = |i: usize| &rotated[i * padded..(i + 1) * padded];
        let lines = (padded * 4).div_ceil(64);
        let prefetch = |j: u32| strata_base::prefetch::lines(rot(j as usize).as_ptr() as *const i8, lines);
        list.iter().take(2).for_each(|&j| prefetch(j));
        for (slot, &j) in list.iter().enumerate() {
            if let Some(&ahead) = list.get(slot + 2) {
                prefetch(ahead);
            }
            self.encode(rot(owner), rot(j as usize), &mut out[slot * len..(slot + 1) * len]);
        }
    }

    /// A query vector prepared for scoring codes.
    pub fn query(&self, q: &[f32]) -> Query {
        Query::new(&self.rot, self.kind, &self.ready(q), &mut Vec::new())
    }

    /// The estimated distance from `query` to the neighbor of `code` in the
    /// list of an owner at `owner_comparable` (its exact distance through
    /// [`Coder::comparable`]), in those comparable units: what a search ranks
    /// neighbors by, with no square root per neighbor under L2 (13% of a
    /// guided scan's time was that root).
    #[inline]
    pub fn estimate_comparable(&self, query: &Query, owner_comparable: f32, code: &[u8]) -> f64 {
        query.estimate(owner_comparable, code) as f64
    }

    /// An operator's distance in the units [`Query::estimate`] takes and
    /// gives (squared under L2; order-preserving on distances ≥ 0).
    #[inline]
    pub fn comparable(&self, distance: f64) -> f64 {
        match self.kind {
            Estimate::SquaredL2 => ((distance * distance) as f32) as f64,
            Estimate::NegativeInner => (distance as f32) as f64,
        }
    }
}

/// A query prepared for scoring codes: tables of partial sums of its rotated
/// vector.
pub struct Query {
    /// Per sign byte (8 coordinates), `S` of those coordinates for each of
    /// the 256 sign patterns: `Σ ±(P q)_i`, + where the bit is set. A code
    /// is scored with one lookup per byte (all tables: 1 KiB per byte, in
    /// the L1 cache for 64-bit codes).
    tables: Vec<[f32; 256]>,
    sign_bytes: usize,
    weight: f32,
}

impl Query {
    /// Prepares `q` (unit length under cosine).
    pub fn new(rot: &Rotation, kind: Estimate, q: &[f32], scratch: &mut Vec<f32>) -> Query {
        rot.apply(q, scratch);
        scratch.truncate(rot.bits);
        let tables = scratch
            .chunks_exact(8)
            .map(|g| {
                // signed sums of each half byte's four coordinates
                let half = |g: &[f32]| -> [f32; 16] {
                    std::array::from_fn(|p| (0..4).map(|b| if p >> b & 1 == 1 { g[b] } else { -g[b] }).sum())
                };
                let (lo, hi) = (half(&g[..4]), half(&g[4..]));
                std::array::from_fn(|p| lo[p & 15] + hi[p >> 4])
            })
            .collect();
        Query {
            tables,
            sign_bytes: rot.bits / 8,
            weight: match kind {
                Estimate::SquaredL2 => 2.0,
                Estimate::NegativeInner => 1.0,
            },
        }
    }

    /// Estimated comparable distance from the query to the neighbor of
    /// `code`, given the owner's exact comparable distance `d_owner`.
    #[inline]
    pub fn estimate(&self, d_owner: f32, code: &[u8]) -> f32 {
        let bits = &code[..self.sign_bytes];
        // two sums: the lookups do not wait on each other
        let (mut s0, mut s1) = (0.0f32, 0.0f32);
        let mut pairs = bits.chunks_exact(2);
        let mut k = 0;
        for pair in &mut pairs {
            s0 += self.tables[k][pair[0] as usize];
            s1 += self.tables[k + 1][pair[1] as usize];
            k += 2;
        }
        if let [last] = pairs.remainder() {
            s0 += self.tables[k][*last as usize];
        }
        let at = self.sign_bytes;
        let a = from_bf16(u16::from_le_bytes([code[at], code[at + 1]]));
        let b = from_bf16(u16::from_le_bytes([code[at + 2], code[at + 3]]));
        d_owner + b - self.weight * a * (s0 + s1)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fwht_is_bit_identical_to_the_textbook_loop() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for n in [1usize, 2, 4, 8, 16, 64, 128, 256, 1024, 2048] {
            for _ in 0..20 {
                let x: Vec<f32> = (0..n)
                    .map(|_| (super::next(&mut state) >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                    .collect();
                let (mut fast, mut slow) = (x.clone(), x);
                super::fwht(&mut fast);
                super::fwht_reference(&mut slow);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&slow), "n = {n}");
            }
        }
    }

    use super::*;

    fn rng(seed: u64) -> impl FnMut() -> f32 {
        let mut s = seed;
        move || (next(&mut s) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    #[test]
    fn the_rotation_keeps_lengths_and_inner_products() {
        let mut r = rng(7);
        let rot = Rotation::new(100, 42);
        let a: Vec<f32> = (0..100).map(|_| r()).collect();
        let b: Vec<f32> = (0..100).map(|_| r()).collect();
        let (mut ra, mut rb) = (Vec::new(), Vec::new());
        rot.apply(&a, &mut ra);
        rot.apply(&b, &mut rb);
        assert_eq!(ra.len(), 128);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(&a, &b) - dot(&ra, &rb)).abs() < 1e-4);
        assert!((dot(&a, &a) - dot(&ra, &ra)).abs() < 1e-4);
    }

    #[test]
    fn estimates_follow_the_true_distances() {
        // 128-d, a cluster around an owner far from the origin (where a
        // query-side estimate of <o - c, q> alone would be poor): the error
        // of owner-relative estimates is a small fraction of the distance,
        // for squared L2 and for the negative inner product, and ranking by
        // them puts the true nearest among the first few (queries near the
        // owner, as when a search expands it)
        let dims = 128;
        let mut r = rng(11);
        let rot = Rotation::new(dims, 9);
        let centre: Vec<f32> = (0..dims).map(|_| 4.0 * r()).collect();
        let near = |r: &mut dyn FnMut() -> f32| -> Vec<f32> {
            centre.iter().map(|c| c + 0.3 * r()).collect()
        };
        let owner = near(&mut r);
        let data: Vec<Vec<f32>> = (0..500).map(|_| near(&mut r)).collect();
        let mut scratch = Vec::new();
        let mut rotated = |v: &[f32]| {
            rot.apply(v, &mut scratch);
            scratch.clone()
        };
        let c_rot = rotated(&owner);
        let l2 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
        let neg_dot = |a: &[f32], b: &[f32]| -a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        for (kind, dist, tolerance) in [
            (Estimate::SquaredL2, &l2 as &dyn Fn(&[f32], &[f32]) -> f32, 0.1f32),
            (Estimate::NegativeInner, &neg_dot, 0.01),
        ] {
            let codes: Vec<Vec<u8>> = data
                .iter()
                .map(|v| {
                    let mut code = vec![0u8; rot.code_len()];
                    encode(&rot, kind, &c_rot, &rotated(v), &mut code);
                    code
                })
                .collect();
            let mut rel_err = 0.0f32;
            let mut top_found = 0;
            for _ in 0..20 {
                // a search expands owners near the query
                let q: Vec<f32> = owner.iter().map(|c| c + 0.15 * r()).collect();
                let prepared = Query::new(&rot, kind, &q, &mut Vec::new());
                let d_owner = dist(&q, &owner);
                let mut est: Vec<(f32, usize)> =
                    codes.iter().enumerate().map(|(i, c)| (prepared.estimate(d_owner, c), i)).collect();
                for &(e, i) in &est {
                    rel_err += (e - dist(&q, &data[i])).abs() / dist(&q, &data[i]).abs();
                }
                est.sort_by(|a, b| a.0.total_cmp(&b.0));
                let truth = (0..data.len())
                    .min_by(|&a, &b| dist(&q, &data[a]).total_cmp(&dist(&q, &data[b])))
                    .unwrap();
                top_found += est[..50].iter().any(|&(_, i)| i == truth) as usize;
            }
            let mean = rel_err / (20 * data.len()) as f32;
            assert!(mean < tolerance, "{kind:?}: mean relative error {mean}");
            // the true nearest is among the best tenth of the estimates
            assert!(top_found >= 18, "{kind:?}: true nearest among the 50 best {top_found}/20");
        }
    }

    #[test]
    fn bfloat16_factors_round_to_nearest() {
        for x in [0.0f32, 1.0, -2.5, 3.0e-5, 6.0e4, 1.0e30] {
            let back = from_bf16(to_bf16(x));
            assert!((back - x).abs() <= x.abs() / 256.0, "{x} -> {back}");
        }
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    /// The measurement behind the design (run by hand, release build):
    /// `[STRATA_GLOVE=.../glove_6B_50d_emb.npy] cargo test --release --lib
    /// --no-default-features --features pg18 codes::tests::reads -- --ignored
    /// --nocapture` — GloVe 100k (unit vectors), or without the variable
    /// the bench's clustered 100k × 128.
    /// Per ef: recall@10 and elements read (one buffer access each on disk)
    /// for the exact search and for the code-guided one.
    #[test]
    #[ignore]
    fn reads_and_recall() {
        use crate::graph::parallel_build::{build_parallel, Spec};
        use crate::graph::random_level;
        use std::collections::{BinaryHeap, HashSet};
        let (n, nq) = (100_000usize, 200usize);
        let (dims, all) = if std::env::var("STRATA_UNIFORM").is_ok() {
            let mut r = rng(77);
            (128, (0..(n + nq) * 128).map(|_| 2.0 * r()).collect::<Vec<f32>>())
        } else if let Ok(path) = std::env::var("STRATA_GLOVE") {
            let bytes = std::fs::read(path).unwrap();
            let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize + 10;
            let dims = 50;
            let mut all: Vec<f32> = bytes[hlen..hlen + (n + nq) * dims * 4]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            for v in all.chunks_exact_mut(dims) {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
            }
            (dims, all)
        } else {
            // the bench's clustered set: n/100 centres in [-1, 1)^128,
            // Gaussian noise of 0.05 (Box-Muller)
            let dims = 128;
            let mut r = rng(99);
            let centres: Vec<f32> = (0..n / 100 * dims).map(|_| 2.0 * r()).collect();
            let mut all = Vec::with_capacity((n + nq) * dims);
            for _ in 0..n + nq {
                let c = ((r() + 0.5) * (n / 100) as f32) as usize % (n / 100);
                for k in 0..dims {
                    let (u1, u2) = (r() + 0.5 + 1e-7, r() + 0.5);
                    let g = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                    all.push(centres[c * dims + k] + 0.05 * g);
                }
            }
            (dims, all)
        };
        let (data, queries) = all.split_at(n * dims);
        let vec = |i: usize| &data[i * dims..(i + 1) * dims];
        let l2 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
        let mut r = rng(5);
        let levels: Vec<u8> = (0..n).map(|_| random_level((r() + 0.5) as f64 + 1e-9, 16, 15)).collect();
        let spec = Spec {
            levels: &levels,
            ef_construction: 64,
            cap0: 32,
            cap: 16,
            dist: l2,
            scale: None,
            spare_last_links: true,
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let links = build_parallel(data, dims, &spec, &pool, 1, |_| {}).to_nested();
        let top = (0..n).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
        let bits: usize = std::env::var("STRATA_BITS").ok().and_then(|b| b.parse().ok()).unwrap_or(usize::MAX);
        let rot = Rotation::with_bits(dims, bits, 3);
        eprintln!("{} bits, {} bytes per code", rot.bits(), rot.code_len());
        let mut scratch = Vec::new();
        let rotated: Vec<f32> = (0..n)
            .flat_map(|i| {
                rot.apply(vec(i), &mut scratch);
                scratch.clone()
            })
            .collect();
        let rvec = |i: usize| &rotated[i * rot.padded()..(i + 1) * rot.padded()];
        #[derive(PartialEq, Clone, Copy)]
        struct K(f32, usize);
        impl Eq for K {}
        impl Ord for K {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
            }
        }
        impl PartialOrd for K {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        // codes of each level-0 neighbor relative to the list's owner
        let local: Vec<Vec<Vec<u8>>> = (0..n)
            .map(|i| {
                links[i][0]
                    .iter()
                    .map(|&x| {
                        let mut code = vec![0u8; rot.code_len()];
                        encode(&rot, Estimate::SquaredL2, rvec(i), rvec(x), &mut code);
                        code
                    })
                    .collect()
            })
            .collect();
        let descend = |q: &[f32], reads: &mut usize| {
            let mut cur = top;
            let mut d = l2(q, vec(cur));
            *reads += 1;
            for l in (1..=levels[top] as usize).rev() {
                loop {
                    let mut moved = false;
                    for &x in &links[cur][l] {
                        *reads += 1;
                        let dx = l2(q, vec(x));
                        if dx < d {
                            (d, cur, moved) = (dx, x, true);
                        }
                    }
                    if !moved {
                        break;
                    }
                }
            }
            (cur, d)
        };
        for ef in [10usize, 20, 40, 80, 160] {
            let (mut hits_e, mut reads_e, mut hits_c, mut reads_c) = (0, 0, 0, 0);
            for qi in 0..nq {
                let q = &queries[qi * dims..(qi + 1) * dims];
                let mut truth: Vec<K> = (0..n).map(|i| K(l2(q, vec(i)), i)).collect();
                truth.select_nth_unstable(9);
                let kth = truth[..10].iter().map(|k| k.0).fold(f32::MIN, f32::max);
                let hit = |got: &[K]| got.iter().take(10).filter(|k| l2(q, vec(k.1)) <= kth).count();
                // exact search: one read per distance computed
                let (ep, d0) = descend(q, &mut reads_e);
                let mut seen = HashSet::from([ep]);
                let mut cand = BinaryHeap::from([std::cmp::Reverse(K(d0, ep))]);
                let mut res = BinaryHeap::from([K(d0, ep)]);
                while let Some(std::cmp::Reverse(c)) = cand.pop() {
                    if res.len() >= ef && c.0 > res.peek().unwrap().0 {
                        break;
                    }
                    for &x in &links[c.1][0] {
                        if seen.insert(x) {
                            reads_e += 1;
                            let d = l2(q, vec(x));
                            if res.len() < ef || d < res.peek().unwrap().0 {
                                cand.push(std::cmp::Reverse(K(d, x)));
                                res.push(K(d, x));
                                if res.len() > ef {
                                    res.pop();
                                }
                            }
                        }
                    }
                }
                hits_e += hit(&res.into_sorted_vec());
                // code-guided: neighbors scored from codes, one read per
                // element expanded (its exact distance comes with it);
                // `score(c, d, k)`: the estimate for neighbor k of c
                let guided = |reads: &mut usize,
                                  score: &mut dyn FnMut(usize, f32, usize) -> f32|
                 -> Vec<K> {
                    let (ep, d0) = descend(q, reads);
                    let mut seen = HashSet::from([ep]);
                    let mut cand = BinaryHeap::from([std::cmp::Reverse(K(d0, ep))]);
                    let mut res: BinaryHeap<K> = BinaryHeap::new();
                    while let Some(std::cmp::Reverse(c)) = cand.pop() {
                        if res.len() >= ef && c.0 > res.peek().unwrap().0 {
                            break;
                        }
                        *reads += 1;
                        let d = l2(q, vec(c.1));
                        res.push(K(d, c.1));
                        if res.len() > ef {
                            res.pop();
                        }
                        for (k, &x) in links[c.1][0].iter().enumerate() {
                            if seen.insert(x) {
                                let e = score(c.1, d, k);
                                if res.len() < ef || e < res.peek().unwrap().0 {
                                    cand.push(std::cmp::Reverse(K(e, x)));
                                }
                            }
                        }
                    }
                    res.into_sorted_vec()
                };
                let prepared = Query::new(&rot, Estimate::SquaredL2, q, &mut Vec::new());
                hits_c += hit(&guided(&mut reads_c, &mut |c, d, k| prepared.estimate(d, &local[c][k])));
            }
            eprintln!(
                "ef {ef:4}: exact recall {:.3} reads {:6.0} | owner-relative codes recall {:.3} reads {:6.0}",
                hits_e as f64 / (10 * nq) as f64,
                reads_e as f64 / nq as f64,
                hits_c as f64 / (10 * nq) as f64,
                reads_c as f64 / nq as f64,
            );
        }
    }

    #[test]
    fn the_avx2_encoding_matches_the_portable_one() {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            let mut x = 0x2545_f491_4f6c_dd1du64;
            let mut next = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            };
            for (bits, padded) in [(64, 64), (128, 128), (96, 128), (480, 2048)] {
                let o: Vec<f32> = (0..padded).map(|_| next()).collect();
                let c: Vec<f32> = (0..padded).map(|_| next()).collect();
                let (mut a, mut b) = (vec![0u8; bits / 8], vec![0u8; bits / 8]);
                // SAFETY: the CPU has both features (checked above).
                let fast = unsafe { encode_sums_avx2(bits, &o, &c, &mut a) };
                let slow = encode_sums_body(bits, &o, &c, &mut b);
                assert_eq!(a, b, "sign bytes, {bits} of {padded}");
                for (f, s) in [(fast.0, slow.0), (fast.1, slow.1), (fast.2, slow.2), (fast.3, slow.3)] {
                    assert!((f - s).abs() <= 1e-4 * (1.0 + s.abs()), "{bits}/{padded}: {fast:?} vs {slow:?}");
                }
            }
        }
    }
}
