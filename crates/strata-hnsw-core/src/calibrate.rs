//! Whether a new index's neighbor codes pay on its data, measured by the
//! build. Pure.
//!
//! Codes guide a scan well when their estimates rank a list's members
//! about as the exact distances do — true of real embeddings and clustered
//! data (5× fewer element reads at recall 0.95 on GloVe), not of data with
//! no structure, where every distance is about the same and the estimate's
//! error is as large as their spread (uniform random 128-d: recall 0.90 at
//! ef_search 400 where the exact search has 0.95). So CREATE INDEX, with the
//! graph and the vectors still in memory, runs sample searches both ways
//! over the graph it built — queries are sampled elements' own vectors, the
//! element itself left out of the answers, which are those of a wide exact
//! search — and picks how many elements the guided search keeps per unit of
//! `ef_search` (its *scale*): the least that finds as much as the exact
//! search does. If none does, or only at more cost than the exact search,
//! the index gets no codes.

use super::codes::Coder;
use super::format::ElemId;
use super::graph::guided::{CodedGraph, GuidedSearch};
use super::graph::links::Links;
use super::graph::{descend, search_layer, Graph, Scored};
use super::metric::Metric;

/// Queries a calibration runs (fewer on small graphs).
const QUERIES: usize = 100;
/// Scales tried, smallest first.
const SCALES: [u16; 4] = [1, 2, 3, 4];
/// The largest scale tried.
const LARGEST_SCALE: u16 = SCALES[SCALES.len() - 1];
/// A guided read costs more than an exact one (it scores a whole list):
/// codes are kept only when they read fewer elements by this factor.
const GUIDED_READ_COST: f64 = 1.5;

/// Most bytes of level-0 codes a calibration keeps once computed (beyond
/// that, or [`BuiltGraph::cache_bytes`], a list's codes are computed again
/// each time it is expanded).
pub const MAX_CODE_CACHE_BYTES: usize = 64 << 20;

/// The codes of the lists a calibration expanded, computed once: its
/// searches expand the same elements again and again (up to a full walk of
/// a small graph at the largest `ef`), and at high dimensions encoding a
/// list costs far more than searching it (6000 × 1536-d rows: minutes of
/// CREATE INDEX with every expansion encoding its list, under a second with
/// each list encoded once).
struct CodeCache {
    lists: Vec<std::sync::OnceLock<Box<[u8]>>>,
    bytes: std::sync::atomic::AtomicUsize,
    limit: usize,
}

impl CodeCache {
    fn new(n: usize, limit: usize) -> CodeCache {
        CodeCache {
            lists: (0..n).map(|_| std::sync::OnceLock::new()).collect(),
            bytes: std::sync::atomic::AtomicUsize::new(0),
            limit: limit.min(MAX_CODE_CACHE_BYTES),
        }
    }

    /// Element `i`'s level-0 codes, one after another, computed by `encode`
    /// (kept while the cache has room).
    fn with_codes<T>(&self, i: usize, encode: impl FnOnce() -> Box<[u8]>, f: impl FnOnce(&[u8]) -> T) -> T {
        use std::sync::atomic::Ordering;
        if let Some(c) = self.lists[i].get() {
            return f(c);
        }
        let codes = encode();
        if self.bytes.fetch_add(codes.len(), Ordering::Relaxed) + codes.len() > self.limit {
            self.bytes.fetch_sub(codes.len(), Ordering::Relaxed);
            return f(&codes);
        }
        f(self.lists[i].get_or_init(|| codes))
    }
}

/// The in-memory graph of a build as a [`CodedGraph`]: element `i` is
/// `ElemId { block: i + 1, offset: 1 }`; a list's codes are computed when it
/// is first expanded, as the pages would hold them. Counts element reads as
/// a disk search would make them.
struct Built<'a> {
    g: &'a BuiltGraph<'a>,
    codes: &'a CodeCache,
    prepared: Option<super::codes::Query>,
    /// The query's own element, never an answer.
    skip: usize,
    reads: u64,
}

fn id(i: usize) -> ElemId {
    ElemId {
        block: i as u32 + 1,
        offset: 1,
    }
}

fn index(e: ElemId) -> usize {
    e.block as usize - 1
}

impl BuiltGraph<'_> {
    fn vector(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }
}

impl Graph for Built<'_> {
    fn distance(&mut self, e: ElemId, q: &[f32]) -> Option<(f64, bool)> {
        self.reads += 1;
        let i = index(e);
        // the query's own element is traversed like a deleted one
        Some((self.g.metric.distance(self.g.vector(i), q), i == self.skip))
    }
    fn neighbors(&mut self, e: ElemId, level: usize) -> Vec<ElemId> {
        // the neighbor item is read too (on the element's page, usually)
        self.reads += 1;
        self.g.links.list(index(e), level).iter().map(|&j| id(j as usize)).collect()
    }
}

impl CodedGraph for Built<'_> {
    fn expand(&mut self, e: ElemId, q: &[f32], out: &mut Vec<Scored>) -> Option<(f64, bool)> {
        self.reads += 1;
        let (i, g) = (index(e), self.g);
        let d = g.metric.distance(g.vector(i), q);
        let prepared = self.prepared.as_ref().expect("query prepared");
        let (list, len) = (g.links.list(i, 0), g.coder.code_len());
        let encode = || {
            let mut codes = vec![0u8; list.len() * len].into_boxed_slice();
            g.coder.encode_list(g.rotated, i, list, &mut codes);
            codes
        };
        let owner = g.coder.comparable(d) as f32;
        self.codes.with_codes(i, encode, |codes| {
            for (&j, code) in list.iter().zip(codes.chunks_exact(len)) {
                out.push(Scored {
                    distance: g.coder.estimate_comparable(prepared, owner, code),
                    id: id(j as usize),
                });
            }
        });
        Some((d, i == self.skip))
    }
    fn comparable(&self, distance: f64) -> f64 {
        self.g.coder.comparable(distance)
    }
}

/// What a calibration found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Calibration {
    /// The scale a guided search needs to find what the exact search finds
    /// at every `ef` measured (the largest tried where none does).
    pub scale: u16,
    /// Whether the codes pay: at the first `ef`, at that scale, as much
    /// found for fewer reads.
    pub pays: bool,
    /// Recall@10 and element reads per query of the exact search at the
    /// first `ef` measured.
    pub exact: (f64, f64),
    /// The same for the guided search at the chosen scale (or the largest
    /// tried).
    pub guided: (f64, f64),
}

/// The built graph a calibration searches.
pub struct BuiltGraph<'a> {
    /// The vectors, `dims` each.
    pub data: &'a [f32],
    /// Their [`Coder::rotate`]d copies.
    pub rotated: &'a [f32],
    pub dims: usize,
    /// Element i's list at level l: `links.list(i, l)`.
    pub links: &'a Links,
    /// The entry point.
    pub top: usize,
    pub metric: Metric,
    pub coder: &'a Coder,
    /// Most bytes of codes to keep (at most [`MAX_CODE_CACHE_BYTES`]).
    pub cache_bytes: usize,
}

impl<'a> BuiltGraph<'a> {
    fn searcher(&'a self, codes: &'a CodeCache, skip: usize) -> Built<'a> {
        Built {
            g: self,
            codes,
            prepared: None,
            skip,
            reads: 0,
        }
    }
}

/// One sample query: its element, where the descent to layer 0 ends and
/// what it read, and the true 10th distance (of a wide exact search).
struct Sample {
    element: usize,
    entry: ElemId,
    descent: u64,
    kth: f64,
}

/// Measures the guided search against the exact one at each of `efs` (on
/// the `pool`'s threads, which never call Postgres).
pub fn calibrate(g: &BuiltGraph, efs: &[usize], pool: &rayon::ThreadPool) -> Calibration {
    use rayon::prelude::*;
    let n = g.links.len();
    let queries = QUERIES.min(n / 10);
    let mut result = Calibration {
        scale: 2,
        pays: true,
        exact: (0.0, 0.0),
        guided: (0.0, 0.0),
    };
    if queries == 0 || efs.is_empty() {
        // too small to tell: codes cost little here
        return result;
    }
    let top_level = g.links.top_level(g.top);
    let cache = CodeCache::new(n, g.cache_bytes);
    let widest = (4 * efs.iter().copied().max().unwrap_or(1)).max(100);
    let query = |s: &Sample| &g.data[s.element * g.dims..(s.element + 1) * g.dims];
    let samples: Vec<Sample> = pool.install(|| {
        (0..queries)
            .into_par_iter()
            .map(|k| {
                let element = k * (n / queries);
                let q = &g.data[element * g.dims..(element + 1) * g.dims];
                let mut b = g.searcher(&cache, element);
                let entry = descend(&mut b, q, id(g.top), top_level, 0);
                let descent = b.reads;
                // the answers: a wide exact search
                let truth = search_layer(&mut b, q, &[entry], widest, 0);
                let kth = answers(&truth, element)
                    .last()
                    .map_or(f64::INFINITY, |&i| g.metric.distance(g.vector(i), q));
                Sample { element, entry, descent, kth }
            })
            .collect()
    });
    let per = |(hits, reads): (usize, u64)| (hits as f64 / (10 * queries) as f64, reads as f64 / queries as f64);
    let measure = |search: &(dyn Fn(&Sample, &mut Built) -> Vec<Scored> + Sync)| {
        per(pool.install(|| {
            samples
                .par_iter()
                .map(|s| {
                    let mut b = g.searcher(&cache, s.element);
                    b.reads = s.descent;
                    let found = search(s, &mut b);
                    (hits(&b, &answers(&found, s.element), query(s), s.kth), b.reads)
                })
                .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
        }))
    };
    result.scale = SCALES[0];
    for (k, &ef) in efs.iter().enumerate() {
        let exact = measure(&|s, b| search_layer(b, query(s), &[s.entry], ef, 0));
        // the least scale that finds as much
        let mut chosen = None;
        let mut last = (0.0, 0.0);
        for &scale in &SCALES {
            let guided = measure(&|s, b| {
                b.prepared = Some(g.coder.query(query(s)));
                let mut search = GuidedSearch::start(&[s.entry]);
                search.run(b, query(s), ef * scale as usize, u64::MAX);
                search.results()
            });
            last = guided;
            if guided.0 >= exact.0 {
                chosen = Some(scale);
                break;
            }
        }
        if k == 0 {
            result.exact = exact;
            result.guided = last;
            result.pays = chosen.is_some() && last.1 * GUIDED_READ_COST <= exact.1;
            if !result.pays {
                // the codes are dropped: their scale does not matter
                result.scale = chosen.unwrap_or(LARGEST_SCALE);
                return result;
            }
        }
        result.scale = result.scale.max(chosen.unwrap_or(LARGEST_SCALE));
    }
    result
}

/// The first ten elements found, the query's own element left out.
fn answers(found: &[Scored], skip: usize) -> Vec<usize> {
    found.iter().map(|s| index(s.id)).filter(|&i| i != skip).take(10).collect()
}

/// How many of `found` are within the true 10th distance.
fn hits(b: &Built, found: &[usize], q: &[f32], kth: f64) -> usize {
    found.iter().filter(|&&i| b.g.metric.distance(b.g.vector(i), q) <= kth).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::parallel_build::{build_parallel, Spec};
    use crate::graph::random_level;
    use crate::graph::tests::Rng;

    fn calibrated(data: &[f32], dims: usize, bits: usize) -> Calibration {
        let n = data.len() / dims;
        let mut rng = Rng(17);
        let levels: Vec<u8> = (0..n).map(|_| random_level(rng.next_f64() + 1e-12, 8, 15)).collect();
        let spec = Spec {
            levels: &levels,
            ef_construction: 40,
            cap0: 16,
            cap: 8,
            dist: Metric::L2.comparable(),
            scale: None,
            spare_last_links: true,
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let links = build_parallel(data, dims, &spec, &pool, 1, |_| {});
        let top = (0..n).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
        let coder = Coder::new(dims, bits, 3, Metric::L2).unwrap();
        let mut r = Vec::new();
        let rotated: Vec<f32> = data
            .chunks_exact(dims)
            .flat_map(|v| {
                coder.rotate(v, &mut r);
                r.clone()
            })
            .collect();
        let g = BuiltGraph {
            data,
            rotated: &rotated,
            dims,
            links: &links,
            top,
            metric: Metric::L2,
            coder: &coder,
            cache_bytes: MAX_CODE_CACHE_BYTES,
        };
        calibrate(&g, &[40, 200], &pool)
    }

    #[test]
    fn codes_are_kept_where_they_pay_and_dropped_where_they_do_not() {
        // (debug builds: a few seconds)
        let (n, dims) = (5000, 64);
        let mut rng = Rng(5);
        // 50 clusters: at its scale the guided search finds what the exact one
        // does, with fewer reads (whether by enough to pay is close here)
        let centres: Vec<f32> = (0..50 * dims).map(|_| 4.0 * rng.next_f64() as f32 - 2.0).collect();
        let clustered: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = (i * 7919) % 50;
                let centre = centres[c * dims..(c + 1) * dims].to_vec();
                centre
                    .into_iter()
                    .map(|x| x + 0.1 * (rng.next_f64() as f32 - 0.5))
                    .collect::<Vec<f32>>()
            })
            .collect();
        let c = calibrated(&clustered, dims, 64);
        assert!(c.guided.0 >= c.exact.0 && c.guided.1 < c.exact.1, "clustered: {c:?}");
        // uniform noise in 128 dimensions, every distance alike: codes of
        // all 128 rotated coordinates still pay, a quarter of them cannot
        // rank (measured at 10k × 128, m 16: 0.90 at 327 reads against the
        // exact search's 0.85 at 1229 with 128 bits; with 64 bits at most
        // 0.83 at 1169)
        let dims = 128;
        let uniform: Vec<f32> = (0..3000 * dims).map(|_| rng.next_f64() as f32).collect();
        let full = calibrated(&uniform, dims, 128);
        assert!(full.pays, "uniform, 128 bits: {full:?}");
        let narrow = calibrated(&uniform, dims, 32);
        assert!(!narrow.pays, "uniform, 32 bits: {narrow:?}");
    }
}
