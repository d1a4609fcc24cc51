//! Distance metrics of the `strata_hnsw` operator classes. Pure.
//!
//! [`Metric::distance`] is bit-for-bit the value of the SQL operator
//! (`<->`, `<#>`, `<=>`, `<+>`, and `<~>`, `<%>` on bits), so an index
//! scan's ORDER BY values equal a sequential scan's. Bit vectors reach the
//! graph as coordinates 0.0 and 1.0 ([`strata_vector_core::bits::widen`]):
//! Hamming distance is then their L1 distance and Jaccard distance comes
//! from dot products, every sum an exact integer.

use strata_vector_core::sparse::{self, Slots};
use strata_vector_core::{bits, kernels};

/// The `Sparse*` metrics measure sparse vectors as the graph carries them
/// ([`Slots`]): the same four distances over a different representation
/// (format version 8, `sparsevec` operator classes).
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    L2 = 1,
    InnerProduct = 2,
    Cosine = 3,
    L1 = 4,
    Hamming = 5,
    Jaccard = 6,
    SparseL2 = 7,
    SparseInnerProduct = 8,
    SparseCosine = 9,
    SparseL1 = 10,
}

impl Metric {
    /// Every metric, in the order of their numbers.
    pub const ALL: [Metric; 10] = {
        use Metric::*;
        [L2, InnerProduct, Cosine, L1, Hamming, Jaccard, SparseL2, SparseInnerProduct, SparseCosine, SparseL1]
    };

    /// The metric numbered `v` (numbered from 1 in `ALL`'s order).
    pub fn from_u16(v: u16) -> Option<Metric> {
        Metric::ALL.get((v as usize).checked_sub(1)?).copied()
    }

    /// This distance over sparse vectors (None for the bit metrics, which
    /// have no sparse form).
    pub fn for_sparse(self) -> Option<Metric> {
        Some(match self {
            Metric::L2 | Metric::SparseL2 => Metric::SparseL2,
            Metric::InnerProduct | Metric::SparseInnerProduct => Metric::SparseInnerProduct,
            Metric::Cosine | Metric::SparseCosine => Metric::SparseCosine,
            Metric::L1 | Metric::SparseL1 => Metric::SparseL1,
            Metric::Hamming | Metric::Jaccard => return None,
        })
    }

    /// Whether this metric measures sparse vectors.
    pub fn is_sparse(self) -> bool {
        self as u16 >= Metric::SparseL2 as u16
    }

    /// Whether a build keeps links to the large-norm elements an inner
    /// product search ends at ([`crate::graph::parallel_build::Spec`]).
    pub fn is_inner_product(self) -> bool {
        matches!(self, Metric::InnerProduct | Metric::SparseInnerProduct)
    }

    /// The metric of an operator class's distance function, by name.
    pub fn from_function_name(name: &str) -> Option<Metric> {
        Some(match name {
            "l2_distance" => Metric::L2,
            "vector_negative_inner_product" | "halfvec_negative_inner_product" | "sparsevec_negative_inner_product" => {
                Metric::InnerProduct
            }
            "cosine_distance" => Metric::Cosine,
            "l1_distance" => Metric::L1,
            "hamming_distance" => Metric::Hamming,
            "jaccard_distance" => Metric::Jaccard,
            _ => return None,
        })
    }

    /// The SQL operator's value. Where float4 arithmetic overflows (dense
    /// coordinates near 1e19 and up) the operator says Infinity for every
    /// such pair; a graph measured so cannot tell near from far, so the
    /// distance is then computed in float8 ([`Metric::distance_wide`]).
    pub fn distance(self, a: &[f32], b: &[f32]) -> f64 {
        let d = self.distance_f32(a, b);
        if d.is_finite() {
            d
        } else {
            self.distance_wide(a, b).unwrap_or(d)
        }
    }

    /// A dense metric's value computed in float8 (None for the others).
    fn distance_wide(self, a: &[f32], b: &[f32]) -> Option<f64> {
        let pairs = || a.iter().zip(b).map(|(x, y)| (*x as f64, *y as f64));
        Some(match self {
            Metric::L2 => pairs().map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt(),
            Metric::InnerProduct => -pairs().map(|(x, y)| x * y).sum::<f64>(),
            Metric::Cosine => {
                let (dot, na, nb) = pairs().fold((0.0, 0.0, 0.0), |(d, p, q), (x, y)| (d + x * y, p + x * x, q + y * y));
                1.0 - (dot / (na * nb).sqrt()).clamp(-1.0, 1.0)
            }
            Metric::L1 => pairs().map(|(x, y)| (x - y).abs()).sum::<f64>(),
            _ => return None,
        })
    }

    /// [`Metric::distance`] in float4 arithmetic, as the SQL operators
    /// compute it.
    fn distance_f32(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Metric::L2 => (kernels::l2_squared(a, b) as f64).sqrt(),
            Metric::InnerProduct => -(kernels::dot(a, b) as f64),
            Metric::Cosine => kernels::cosine_distance(a, b),
            Metric::L1 | Metric::Hamming => kernels::l1(a, b) as f64,
            Metric::Jaccard => {
                // bits::jaccard's formula on the same integer counts
                let (common, union) = jaccard_counts(a, b);
                if common == 0.0 {
                    1.0
                } else {
                    1.0 - common as f64 / union as f64
                }
            }
            Metric::SparseL2 => (sparse::l2_squared(Slots::of(a), Slots::of(b)) as f64).sqrt(),
            Metric::SparseInnerProduct => -(sparse::dot(Slots::of(a), Slots::of(b)) as f64),
            Metric::SparseCosine => sparse::cosine_distance(Slots::of(a), Slots::of(b)),
            Metric::SparseL1 => sparse::l1(Slots::of(a), Slots::of(b)) as f64,
        }
    }

    /// A distance in the metric's order, cheaper than the operator's value,
    /// for comparing candidates (the neighbor heuristic, the build) on
    /// vectors made ready by [`Metric::prepare`]: squared L2, negative inner
    /// product, `1 - a·b` on unit vectors for cosine, L1.
    pub fn comparable(self) -> fn(&[f32], &[f32]) -> f32 {
        match self {
            Metric::L2 => kernels::l2_squared,
            Metric::InnerProduct => |a, b| -kernels::dot(a, b),
            Metric::Cosine => |a, b| 1.0 - kernels::dot(a, b),
            Metric::L1 | Metric::Hamming => kernels::l1,
            Metric::Jaccard => |a, b| match jaccard_counts(a, b) {
                (0.0, _) => 1.0,
                (common, union) => 1.0 - common / union,
            },
            Metric::SparseL2 => |a, b| sparse::l2_squared(Slots::of(a), Slots::of(b)),
            Metric::SparseInnerProduct => |a, b| -sparse::dot(Slots::of(a), Slots::of(b)),
            Metric::SparseCosine => |a, b| sparse::cosine_distance(Slots::of(a), Slots::of(b)) as f32,
            Metric::SparseL1 => |a, b| sparse::l1(Slots::of(a), Slots::of(b)),
        }
    }

    /// The operator's value on two packed bit strings of equal length (the
    /// same as [`Metric::distance`] on them widened, by popcounts); None for
    /// the metrics of real vectors.
    pub fn bits_distance(self, a: &[u8], b: &[u8]) -> Option<f64> {
        match self {
            Metric::Hamming => Some(bits::hamming(a, b) as f64),
            Metric::Jaccard => Some(bits::jaccard(a, b)),
            _ => None,
        }
    }

    /// [`Metric::comparable`] for two packed bit strings, by popcounts —
    /// the same values as on the strings widened (every count is exact):
    /// how a build measures a bit index's strings, held packed. None for
    /// the metrics of real vectors.
    pub fn bits_comparable(self) -> Option<fn(&[u8], &[u8]) -> f32> {
        match self {
            Metric::Hamming => Some(|a, b| bits::hamming(a, b) as f32),
            Metric::Jaccard => Some(|a, b| match bits::jaccard_counts(a, b) {
                (0, _) => 1.0,
                (common, union) => 1.0 - common as f32 / union as f32,
            }),
            _ => None,
        }
    }

    /// Whether the level-0 neighbor codes can estimate this metric (they
    /// estimate squared L2 and inner products).
    pub fn has_codes(self) -> bool {
        matches!(self, Metric::L2 | Metric::InnerProduct | Metric::Cosine)
    }

    /// The distance an in-memory build compares the vectors by, as they
    /// are stored: [`Metric::comparable`], except under cosine the negative
    /// inner product, which the build scales by both vectors' inverse
    /// norms ([`Metric::build_scale`]) — `1 - cos` less one, the same order,
    /// without a unit copy of every vector (half of a 1,536-d build's
    /// memory).
    pub fn build_distance(self) -> fn(&[f32], &[f32]) -> f32 {
        match self {
            Metric::Cosine => Metric::InnerProduct.comparable(),
            m => m.comparable(),
        }
    }

    /// Per vector of `data` (`dims` values each), the factor
    /// [`Metric::build_distance`] is scaled by on both ends: cosine's
    /// inverse norms (0 for a zero vector, which cosine never indexes);
    /// None for the other metrics.
    pub fn build_scale(self, data: &[f32], dims: usize) -> Option<Vec<f32>> {
        (self == Metric::Cosine).then(|| {
            data.chunks_exact(dims.max(1))
                .map(|v| match kernels::dot(v, v).sqrt() {
                    n if n > 0.0 => 1.0 / n,
                    _ => 0.0,
                })
                .collect()
        })
    }

    /// Makes `v` ready for [`Metric::comparable`]: unit length under cosine
    /// (a zero vector is never indexed there), unchanged otherwise.
    pub fn prepare(self, v: &mut [f32]) {
        if self == Metric::Cosine {
            let norm = kernels::dot(v, v).sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
    }

    /// `query` prepared once for many distances to elements, where that
    /// pays: a sparse inner product or cosine distance looks the elements'
    /// indices up in it ([`sparse::Lookup`]) instead of merging. None
    /// elsewhere ([`Metric::distance`] is as fast).
    pub fn prepare_query(self, query: &[f32]) -> Option<PreparedQuery> {
        matches!(self, Metric::SparseInnerProduct | Metric::SparseCosine).then(|| PreparedQuery {
            metric: self,
            lookup: sparse::Lookup::new(Slots::of(query)),
        })
    }

    /// Whether a vector can be placed in the graph: under cosine a zero
    /// vector has no direction (its distance to anything is NaN), so it is
    /// left out, as pgvector does.
    pub fn indexable(self, v: &[f32]) -> bool {
        match self {
            Metric::Cosine => v.iter().any(|x| *x != 0.0),
            Metric::SparseCosine => sparse::squared_norm(Slots::of(v)) > 0.0,
            _ => true,
        }
    }
}

/// A query [`Metric::prepare_query`] prepared.
pub struct PreparedQuery {
    metric: Metric,
    lookup: sparse::Lookup,
}

impl PreparedQuery {
    /// [`Metric::distance`]`(element, query)`, bit for bit.
    pub fn distance(&self, element: &[f32]) -> f64 {
        let e = Slots::of(element);
        match self.metric {
            Metric::SparseCosine => self.lookup.cosine_distance(e),
            _ => -(self.lookup.dot(e) as f64),
        }
    }
}

/// Bits set in both and in either of two 0.0 / 1.0 vectors (exact below
/// 2^24 bits).
fn jaccard_counts(a: &[f32], b: &[f32]) -> (f32, f32) {
    let common = kernels::dot(a, b);
    (common, kernels::dot(a, a) + kernels::dot(b, b) - common)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_match_the_operators() {
        let (a, b) = ([1.0f32, 2.0, 3.0], [4.0f32, 5.0, 6.0]);
        assert_eq!(Metric::L2.distance(&a, &b), 5.196152422706632);
        assert_eq!(Metric::InnerProduct.distance(&a, &b), -32.0);
        assert!((Metric::Cosine.distance(&a, &b) - 0.025368153802923787).abs() < 1e-7);
        assert_eq!(Metric::L1.distance(&a, &b), 9.0);
        for m in [Metric::L2, Metric::InnerProduct, Metric::Cosine, Metric::L1, Metric::Hamming, Metric::Jaccard] {
            assert_eq!(Metric::from_u16(m as u16), Some(m));
        }
        assert_eq!(
            Metric::from_function_name("cosine_distance"),
            Some(Metric::Cosine)
        );
        assert_eq!(Metric::from_function_name("vector_cmp"), None);
    }

    #[test]
    fn cosine_builds_order_like_unit_vectors() {
        let q = [1.0f32, 2.0, 3.0];
        let others = [[4.0f32, 5.0, 6.0], [-1.0, 0.5, 2.0], [3.0, 2.0, 1.0], [0.1, 0.2, 0.4]];
        let m = Metric::Cosine;
        let data: Vec<f32> = std::iter::once(&q).chain(&others).flatten().copied().collect();
        let scale = m.build_scale(&data, 3).unwrap();
        for (i, o) in others.iter().enumerate() {
            // one less than the cosine distance, up to rounding
            let built = m.build_distance()(&q, o) * scale[0] * scale[i + 1];
            assert!((built as f64 + 1.0 - m.distance(&q, o)).abs() < 1e-6, "{i}");
        }
        assert_eq!(Metric::L2.build_scale(&data, 3), None);
        assert_eq!(m.build_scale(&[0.0, 0.0, 3.0, 4.0], 2), Some(vec![0.0, 0.2]));
    }

    #[test]
    fn comparable_distances_keep_the_order() {
        let q = [1.0f32, 2.0, 3.0];
        let others = [[4.0f32, 5.0, 6.0], [-1.0, 0.5, 2.0], [3.0, 2.0, 1.0], [0.1, 0.2, 0.4]];
        for m in [Metric::L2, Metric::InnerProduct, Metric::Cosine, Metric::L1] {
            let mut pq = q;
            m.prepare(&mut pq);
            let f = m.comparable();
            let mut by_op: Vec<usize> = (0..others.len()).collect();
            let mut by_cmp = by_op.clone();
            by_op.sort_by(|&a, &b| m.distance(&q, &others[a]).total_cmp(&m.distance(&q, &others[b])));
            by_cmp.sort_by(|&a, &b| {
                let (mut x, mut y) = (others[a], others[b]);
                m.prepare(&mut x);
                m.prepare(&mut y);
                f(&pq, &x).total_cmp(&f(&pq, &y))
            });
            assert_eq!(by_op, by_cmp, "{m:?}");
        }
    }

    #[test]
    fn bit_distances_match_the_bit_operators() {
        let mut rng = crate::graph::tests::Rng(0x2545_F491_4F6C_DD1D);
        let mut next = || rng.next_u64();
        for n in [1usize, 7, 8, 9, 63, 64, 65, 1000] {
            for _ in 0..20 {
                let mk = |r: &mut dyn FnMut() -> u64| {
                    let mut b: Vec<u8> = (0..bits::bytes_for(n)).map(|_| r() as u8).collect();
                    if n % 8 != 0 {
                        *b.last_mut().unwrap() &= 0xFFu8 << (8 - n % 8);
                    }
                    b
                };
                let (a, b) = (mk(&mut next), mk(&mut next));
                let (fa, fb) = (bits::widen(&a, n), bits::widen(&b, n));
                assert_eq!(Metric::Hamming.distance(&fa, &fb), bits::hamming(&a, &b) as f64);
                assert_eq!(
                    Metric::Jaccard.distance(&fa, &fb).to_bits(),
                    bits::jaccard(&a, &b).to_bits()
                );
                assert_eq!(Metric::Hamming.bits_distance(&a, &b), Some(bits::hamming(&a, &b) as f64));
                assert_eq!(Metric::Jaccard.bits_distance(&a, &b), Some(bits::jaccard(&a, &b)));
                let mut packed = vec![0u8; a.len()];
                bits::pack_nonzero(&fa, &mut packed);
                assert_eq!(packed, a);
                for m in [Metric::Hamming, Metric::Jaccard] {
                    let packed = m.bits_comparable().unwrap()(&a, &b);
                    assert_eq!(packed.to_bits(), m.comparable()(&fa, &fb).to_bits(), "{m:?} on {n} bits");
                }
            }
        }
        let zero = [0.0f32; 8];
        assert_eq!(Metric::Jaccard.distance(&zero, &zero), 1.0);
        assert!(!Metric::Hamming.has_codes() && !Metric::Jaccard.has_codes() && Metric::L2.has_codes());
        assert!(Metric::L2.bits_comparable().is_none());
        assert_eq!(Metric::Jaccard.bits_comparable().unwrap()(&[0, 0], &[0, 0]), 1.0);
    }

    #[test]
    fn sparse_metrics_are_the_sparsevec_operators() {
        use strata_vector_core::sparse::{self as sp, Slots};
        let (a, b) = (sp::parse("{1:1,3:2,5:3}/6").unwrap(), sp::parse("{2:4,3:1,6:-1}/6").unwrap());
        let (sa, sb) = (Slots::encode(a.view()), Slots::encode(b.view()));
        let want = [
            (Metric::L2, (sp::l2_squared(a.view(), b.view()) as f64).sqrt()),
            (Metric::InnerProduct, -(sp::dot(a.view(), b.view()) as f64)),
            (Metric::Cosine, sp::cosine_distance(a.view(), b.view())),
            (Metric::L1, sp::l1(a.view(), b.view()) as f64),
        ];
        for (dense, d) in want {
            let m = dense.for_sparse().unwrap();
            assert!(m.is_sparse() && !dense.is_sparse() && !m.has_codes());
            assert_eq!(Metric::from_u16(m as u16), Some(m));
            assert_eq!(m.distance(&sa, &sb).to_bits(), d.to_bits(), "{m:?}");
            assert_eq!(m.build_distance()(&sa, &sb), m.comparable()(&sa, &sb));
            assert_eq!(m.build_scale(&sa, 1), None);
        }
        assert_eq!(Metric::Hamming.for_sparse(), None);
        let zero = Slots::encode(sp::parse("{}/6").unwrap().view());
        assert!(!Metric::SparseCosine.indexable(&zero) && Metric::SparseL2.indexable(&zero));
        assert!(Metric::SparseCosine.indexable(&sa));
        assert!(Metric::SparseInnerProduct.is_inner_product() && Metric::InnerProduct.is_inner_product());
        for m in [Metric::SparseInnerProduct, Metric::SparseCosine] {
            let p = m.prepare_query(&sb).unwrap();
            assert_eq!(p.distance(&sa).to_bits(), m.distance(&sa, &sb).to_bits(), "{m:?}");
        }
        assert!(Metric::SparseL2.prepare_query(&sb).is_none() && Metric::L2.prepare_query(&[1.0]).is_none());
        assert_eq!(
            Metric::from_function_name("sparsevec_negative_inner_product"),
            Some(Metric::InnerProduct)
        );
    }

    #[test]
    fn zero_vectors_have_no_cosine_direction() {
        assert!(Metric::Cosine.indexable(&[0.0, 1.0]) && !Metric::Cosine.indexable(&[0.0, 0.0]));
        assert!(Metric::L2.indexable(&[0.0, 0.0]));
    }

    #[test]
    fn metric_numbers_are_their_place_in_all() {
        for (i, m) in Metric::ALL.into_iter().enumerate() {
            assert_eq!(m as usize, i + 1);
            assert_eq!(Metric::from_u16(m as u16), Some(m));
        }
        assert_eq!(Metric::from_u16(0), None);
        assert_eq!(Metric::from_u16(Metric::ALL.len() as u16 + 1), None);
    }
}
