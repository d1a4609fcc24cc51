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
//! Scoring a code against a query takes `D/4` table lookups: the query's
//! rotated vector is cut into groups of four coordinates, and for each group
//! the sums over all 16 sign patterns are tabulated once per query.

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

/// In-place fast Walsh–Hadamard transform (unnormalized).
fn fwht(x: &mut [f32]) {
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

    /// Bytes of one code: the sign bits and two floats.
    pub fn code_len(&self) -> usize {
        self.bits / 8 + 8
    }
}

/// Encodes `v` against `centroid` into `out` (`code_len` bytes): sign bits
/// (little-endian, coordinate `i` is bit `i % 8` of byte `i / 8`), then
/// `|v - c|` and `<x̄, P(v - c)/|v - c|>` as float4.
pub fn encode(rot: &Rotation, centroid: &[f32], v: &[f32], scratch: &mut Vec<f32>, out: &mut Vec<u8>) {
    let residual: Vec<f32> = v.iter().zip(centroid).map(|(a, b)| a - b).collect();
    rot.apply(&residual, scratch);
    let norm = scratch.iter().map(|x| x * x).sum::<f32>().sqrt();
    out.clear();
    out.resize(rot.bits / 8, 0);
    let mut abs_sum = 0.0f32;
    for (i, &x) in scratch[..rot.bits].iter().enumerate() {
        if x > 0.0 {
            out[i / 8] |= 1 << (i % 8);
        }
        abs_sum += x.abs();
    }
    // <x̄, ô> = Σ|ô_i| / sqrt(D): the cosine between the residual and its
    // sign vector (1 for a zero residual, whose estimate is then 0 anyway)
    let correction = if norm > 0.0 {
        abs_sum / norm / (rot.bits as f32).sqrt()
    } else {
        1.0
    };
    out.extend_from_slice(&norm.to_le_bytes());
    out.extend_from_slice(&correction.to_le_bytes());
}

/// A query prepared for scoring codes: tables of partial sums of its rotated
/// vector, and what the distance needs besides the estimate.
pub struct Query {
    /// Per group of 4 coordinates, the sum of the coordinates whose sign
    /// bit is set, for all 16 patterns.
    tables: Vec<[f32; 16]>,
    /// Sum of all rotated coordinates.
    total: f32,
    inv_sqrt_d: f32,
    sign_bytes: usize,
}

impl Query {
    /// Prepares `v` (already the vector whose inner products with the
    /// residuals are wanted: `q - c` for L2, `q` for inner product).
    pub fn new(rot: &Rotation, v: &[f32], scratch: &mut Vec<f32>) -> Query {
        rot.apply(v, scratch);
        scratch.truncate(rot.bits);
        let tables = scratch
            .chunks_exact(4)
            .map(|g| {
                let mut t = [0.0f32; 16];
                for (p, slot) in t.iter_mut().enumerate() {
                    *slot = (0..4).filter(|b| p >> b & 1 == 1).map(|b| g[b]).sum();
                }
                t
            })
            .collect();
        Query {
            tables,
            total: scratch.iter().sum(),
            inv_sqrt_d: 1.0 / (rot.bits as f32).sqrt(),
            sign_bytes: rot.bits / 8,
        }
    }

    /// Estimate of `<o - c, v>` for the vector `o` of `code`, and `|o - c|`.
    pub fn inner(&self, code: &[u8]) -> (f32, f32) {
        let bits = &code[..self.sign_bytes];
        let mut set = 0.0f32;
        for (k, &byte) in bits.iter().enumerate() {
            set += self.tables[2 * k][(byte & 15) as usize];
            set += self.tables[2 * k + 1][(byte >> 4) as usize];
        }
        let f = |at: usize| f32::from_le_bytes(code[at..at + 4].try_into().expect("4 bytes"));
        let norm = f(self.sign_bytes);
        let correction = f(self.sign_bytes + 4);
        // <x̄, P v> = (Σ_set - Σ_unset) / sqrt(D) = (2 Σ_set - Σ) / sqrt(D)
        let xv = (2.0 * set - self.total) * self.inv_sqrt_d;
        (norm * xv / correction, norm)
    }
}

/// Estimated squared L2 distance between the query `q` (prepared from
/// `q - c`, `qc2 = |q - c|²`) and the vector of `code`.
pub fn l2_squared(query: &Query, qc2: f32, code: &[u8]) -> f32 {
    let (ip, norm) = query.inner(code);
    norm * norm + qc2 - 2.0 * ip
}

#[cfg(test)]
mod tests {
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
        // 128-d: the estimate's error is a small fraction of the distance,
        // and ranking by it puts the true nearest among the first few
        let dims = 128;
        let mut r = rng(11);
        let rot = Rotation::new(dims, 9);
        let data: Vec<Vec<f32>> = (0..500).map(|_| (0..dims).map(|_| r()).collect()).collect();
        let mut centroid = vec![0.0f32; dims];
        for v in &data {
            for (c, x) in centroid.iter_mut().zip(v) {
                *c += x / data.len() as f32;
            }
        }
        let (mut scratch, mut code) = (Vec::new(), Vec::new());
        let codes: Vec<Vec<u8>> = data
            .iter()
            .map(|v| {
                encode(&rot, &centroid, v, &mut scratch, &mut code);
                code.clone()
            })
            .collect();
        assert_eq!(codes[0].len(), rot.code_len());
        let l2 = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
        let mut rel_err = 0.0f32;
        let mut top_found = 0;
        for qi in 0..20 {
            let q: Vec<f32> = (0..dims).map(|_| r()).collect();
            let qc: Vec<f32> = q.iter().zip(&centroid).map(|(a, b)| a - b).collect();
            let prepared = Query::new(&rot, &qc, &mut scratch);
            let qc2: f32 = qc.iter().map(|x| x * x).sum();
            let mut est: Vec<(f32, usize)> =
                codes.iter().enumerate().map(|(i, c)| (l2_squared(&prepared, qc2, c), i)).collect();
            for &(e, i) in &est {
                rel_err += (e - l2(&q, &data[i])).abs() / l2(&q, &data[i]);
            }
            est.sort_by(|a, b| a.0.total_cmp(&b.0));
            let truth = (0..data.len())
                .min_by(|&a, &b| l2(&q, &data[a]).total_cmp(&l2(&q, &data[b])))
                .unwrap();
            top_found += est[..50].iter().any(|&(_, i)| i == truth) as usize;
            let _ = qi;
        }
        let mean = rel_err / (20 * data.len()) as f32;
        assert!(mean < 0.1, "mean relative error {mean}");
        // uniform 128-d data is the hard case (all distances alike): the true
        // nearest is still among the best tenth of the estimates
        assert!(top_found >= 18, "true nearest among the 50 best estimates {top_found}/20");
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
        use crate::hnsw::graph::parallel_build::{build_parallel, Spec};
        use crate::hnsw::graph::random_level;
        use std::collections::{BinaryHeap, HashSet};
        let (n, nq) = (100_000usize, 200usize);
        let (dims, all) = if let Ok(path) = std::env::var("STRATA_GLOVE") {
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
        let spec = Spec { levels: &levels, ef_construction: 64, cap0: 32, cap: 16, dist: l2 };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let links = build_parallel(data, dims, &spec, &pool, 1, |_| {});
        let top = (0..n).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
        let mut centroid = vec![0.0f32; dims];
        for i in 0..n {
            for (c, x) in centroid.iter_mut().zip(vec(i)) {
                *c += x / n as f32;
            }
        }
        let bits: usize = std::env::var("STRATA_BITS").ok().and_then(|b| b.parse().ok()).unwrap_or(usize::MAX);
        let rot = Rotation::with_bits(dims, bits, 3);
        eprintln!("{} bytes per code", rot.code_len());
        let (mut scratch, mut code) = (Vec::new(), Vec::new());
        let codes: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                encode(&rot, &centroid, vec(i), &mut scratch, &mut code);
                code.clone()
            })
            .collect();
        #[derive(PartialEq, PartialOrd, Clone, Copy)]
        struct K(f32, usize);
        impl Eq for K {}
        impl Ord for K {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
            }
        }
        // codes of each level-0 neighbor relative to the list's owner
        let local: Vec<Vec<Vec<u8>>> = (0..n)
            .map(|i| {
                links[i][0]
                    .iter()
                    .map(|&x| {
                        encode(&rot, vec(i), vec(x), &mut scratch, &mut code);
                        code.clone()
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
            let (mut hits_l, mut reads_l) = (0, 0);
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
                let qc: Vec<f32> = q.iter().zip(&centroid).map(|(a, b)| a - b).collect();
                let global = Query::new(&rot, &qc, &mut Vec::new());
                let qc2: f32 = qc.iter().map(|x| x * x).sum();
                hits_c += hit(&guided(&mut reads_c, &mut |c, _, k| {
                    l2_squared(&global, qc2, &codes[links[c][0][k]])
                }));
                // owner-relative codes: the estimate's error scales with
                // |x - c| |q - c|, both small near the answer
                let mut prepared: Option<(usize, Query)> = None;
                let mut scratch = Vec::new();
                hits_l += hit(&guided(&mut reads_l, &mut |c, d, k| {
                    if prepared.as_ref().is_none_or(|p| p.0 != c) {
                        let qc: Vec<f32> = q.iter().zip(vec(c)).map(|(a, b)| a - b).collect();
                        prepared = Some((c, Query::new(&rot, &qc, &mut scratch)));
                    }
                    l2_squared(&prepared.as_ref().unwrap().1, d, &local[c][k])
                }));
            }
            eprintln!(
                "ef {ef:4}: exact recall {:.3} reads {:6.0} | codes recall {:.3} reads {:6.0} | owner-relative {:.3} reads {:6.0}",
                hits_e as f64 / (10 * nq) as f64,
                reads_e as f64 / nq as f64,
                hits_c as f64 / (10 * nq) as f64,
                reads_c as f64 / nq as f64,
                hits_l as f64 / (10 * nq) as f64,
                reads_l as f64 / nq as f64
            );
        }
    }
}
