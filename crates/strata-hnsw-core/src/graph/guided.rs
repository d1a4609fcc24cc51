//! Code-guided best-first search of layer 0 (format version 4). Pure.
//!
//! [`LayerSearch`](super::LayerSearch) computes the exact distance of every
//! neighbor it meets — one element read each. Here expanding an element is
//! one read that gives its exact distance *and* estimates for its whole
//! neighborhood, from the codes stored with its list ([`CodedGraph::expand`]):
//!
//! * candidates are ordered by estimate; the nearest is expanded next;
//! * `found` holds only expanded elements, by exact distance, so what a scan
//!   returns is exact-distance ordered;
//! * the search stops when the nearest candidate's estimate is above the
//!   worst of the `ef` found (as the exact search stops on exact distances).
//!
//! Like `LayerSearch` it can be widened (a larger `ef`) without starting
//! over: neighbors not queued because their estimate was above the worst
//! found, and found elements pushed out by nearer ones, come back.
//! docs/hnsw-profile.md has the measurement (5× fewer reads at recall 0.95
//! on GloVe, 1.5–1.7× on clustered 128-d data).

use super::{Graph, Scored};
use crate::format::{ElemId, IdSet};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How many elements a guided search keeps per unit of `ef_search` where the
/// build did not measure it (an index built empty; `calibrate.rs` measures
/// it on the data otherwise). Its list holds only elements it read (an
/// exact search's holds every neighbor it scored), so at the same size it
/// can find less (docs/hnsw-profile.md); scaled, a user's `ef_search` keeps
/// the recall it gave before codes, for less work.
pub const EF_SCALE: usize = 2;

/// How many neighbors set aside a run keeps unsorted before compacting them
/// (1 MiB): a LIMIT query's run sets aside a few thousand, and sorting them
/// every 4,096 was a fifth of a GloVe scan's time; a long walk still
/// compacts, and the scan's memory check compacts first
/// ([`GuidedSearch::memory_bytes`]).
const DEFERRED_UNSORTED: usize = 65_536;

/// Below this many entries set aside, the memory check does not compact.
const COMPACTED_FLOOR: usize = 4096;

/// A graph whose level-0 lists carry codes of their neighbors.
pub trait CodedGraph: Graph {
    /// Reads element `id`: returns its exact distance to `query` (the
    /// operator's units) and whether it is deleted, and appends its level-0
    /// neighbors with estimated distances in [`CodedGraph::comparable`]'s
    /// units to `out`. None when it cannot be read (a free slot).
    fn expand(&mut self, id: ElemId, query: &[f32], out: &mut Vec<Scored>) -> Option<(f64, bool)>;

    /// An exact distance in the units of `expand`'s estimates: any
    /// transform that keeps the order of distances (squared under L2, so
    /// no neighbor's estimate needs a square root).
    fn comparable(&self, distance: f64) -> f64;
}

/// State of a code-guided search of layer 0, kept for widening.
#[derive(Default)]
pub struct GuidedSearch {
    visited: IdSet,
    /// Elements to expand, by estimate (entries first: they have none).
    candidates: BinaryHeap<Reverse<Scored>>,
    /// Expanded elements, exact distances, the farthest on top; deleted
    /// ones included for navigation.
    found: BinaryHeap<Scored>,
    /// Expanded elements pushed out of `found` by nearer ones.
    spilled: Vec<Scored>,
    /// Neighbors seen but not queued (estimate above the worst found); one
    /// may be here more than once, or be queued or expanded since.
    deferred: Vec<Scored>,
    /// Reused for each expansion's neighbors.
    scratch: Vec<Scored>,
    /// `deferred`'s length at which it is next compacted.
    compact_at: usize,
    /// Whether `run` may be called again with a larger `ef` (a scan's);
    /// a search run once (an insert's) keeps no deferred neighbors.
    widens: bool,
    /// Elements read (the scan-tuple budget).
    pub evaluated: u64,
    /// The worst found's distance in comparable units, kept with `found`.
    worst_comparable: f64,
}

impl GuidedSearch {
    /// Starts a search from `entries` (expanded first, in order) that can
    /// be widened.
    pub fn start(entries: &[ElemId]) -> GuidedSearch {
        GuidedSearch::starting(entries, true)
    }

    /// Starts a search that runs once: neighbors too far to queue are
    /// dropped, not set aside for a wider run (an insert's candidate
    /// search spent an eighth of its time sorting and compacting them).
    pub fn start_once(entries: &[ElemId]) -> GuidedSearch {
        GuidedSearch::starting(entries, false)
    }

    fn starting(entries: &[ElemId], widens: bool) -> GuidedSearch {
        let mut s = GuidedSearch {
            compact_at: DEFERRED_UNSORTED,
            widens,
            ..GuidedSearch::default()
        };
        for &id in entries {
            if s.visited.insert(id) {
                s.candidates.push(Reverse(Scored {
                    distance: f64::NEG_INFINITY,
                    id,
                }));
            }
        }
        s
    }

    fn worst(&self) -> f64 {
        self.found.peek().map_or(f64::INFINITY, |w| w.distance)
    }

    /// Runs (or continues) the search until no candidate's estimate can
    /// improve the `ef` best found; stops early once `budget` elements were
    /// read.
    pub fn run<G: CodedGraph>(&mut self, g: &mut G, query: &[f32], ef: usize, budget: u64) {
        let ef = ef.max(1);
        // only queued and expanded elements are marked: a few per list slot
        // (16 per unit of ef, as the exact search reserves, took a full walk
        // of 20k rows past work_mem at the largest scale)
        super::reserve_visited(&mut self.visited, ef * 4);
        // Widening: bring back what a smaller ef left behind.
        for sc in self.spilled.drain(..) {
            self.found.push(sc);
        }
        // nearest estimate first: an element left aside more than once is
        // queued with its best
        self.deferred.sort();
        for sc in self.deferred.drain(..) {
            if self.visited.insert(sc.id) {
                self.candidates.push(Reverse(sc));
            }
        }
        super::spill_past(&mut self.found, &mut self.spilled, ef);
        self.worst_comparable = g.comparable(self.worst());
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(Reverse(c)) = self.candidates.pop() {
            // candidates carry estimates in comparable units
            if (self.found.len() >= ef && c.distance > self.worst_comparable) || self.evaluated >= budget {
                self.candidates.push(Reverse(c));
                break;
            }
            scratch.clear();
            let Some((d, _deleted)) = g.expand(c.id, query, &mut scratch) else {
                continue;
            };
            self.evaluated += 1;
            self.found.push(Scored { distance: d, id: c.id });
            super::spill_past(&mut self.found, &mut self.spilled, ef);
            self.worst_comparable = g.comparable(self.worst());
            // Only queued and expanded elements are marked visited, and a
            // neighbor too far to queue is set aside without a look at the
            // set (most are): it is estimated again when another list names
            // it (maybe nearer to it), and the set stays small.
            for &n in &scratch {
                if self.found.len() >= ef && n.distance >= self.worst_comparable {
                    if self.widens {
                        self.deferred.push(n);
                    }
                } else if self.visited.insert(n.id) {
                    self.candidates.push(Reverse(n));
                }
            }
            if self.deferred.len() > self.compact_at {
                self.compact_deferred();
            }
        }
        self.scratch = scratch;
    }

    /// Keeps one entry per element in `deferred` (its best estimate), none
    /// for one queued or expanded since: what a search holds, which the
    /// scan's memory bound counts, grows with the elements it met, not with
    /// the lists that named them (a full walk of 20k uniform vectors stopped
    /// at `work_mem` with 1.5% unread before).
    fn compact_deferred(&mut self) {
        self.deferred.sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.distance.total_cmp(&b.distance)));
        self.deferred.dedup_by_key(|s| s.id);
        let visited = &self.visited;
        self.deferred.retain(|s| !visited.contains(&s.id));
        self.compact_at = (2 * self.deferred.len()).max(DEFERRED_UNSORTED);
    }

    /// The best elements found so far, nearest first.
    pub fn results(&self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.found.iter().copied().collect();
        v.sort();
        v
    }

    /// Whether nothing is left to expand.
    pub fn exhausted(&self) -> bool {
        self.candidates.is_empty() && self.deferred.is_empty() && self.spilled.is_empty()
    }

    /// Every element read so far (the `ef` best and those pushed out),
    /// nearest first.
    pub fn all_scored(&self) -> Vec<Scored> {
        super::nearest_first_once(self.found.iter().chain(&self.spilled))
    }

    /// Bytes this search holds (by capacity), once the neighbors set aside
    /// are compacted to one entry each (a run leaves them unsorted).
    pub fn memory_bytes(&mut self) -> usize {
        if self.deferred.len() > COMPACTED_FLOOR {
            self.compact_deferred();
            self.deferred.shrink_to_fit();
        }
        let lists = self.candidates.capacity()
            + self.found.capacity()
            + self.spilled.capacity()
            + self.deferred.capacity()
            + self.scratch.capacity();
        super::search_bytes(&self.visited, lists)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::Coder;
    use crate::graph::tests::{id, idx, MemGraph, Rng};
    use crate::graph::{descend, search_layer};
    use crate::metric::Metric;

    /// A [`MemGraph`] with the codes of its level-0 lists.
    struct Coded {
        g: MemGraph,
        coder: Coder,
        codes: Vec<Vec<Vec<u8>>>,
        reads: usize,
    }

    impl Graph for Coded {
        fn distance(&mut self, e: ElemId, q: &[f32]) -> Option<(f64, bool)> {
            self.g.distance(e, q)
        }
        fn neighbors(&mut self, e: ElemId, level: usize) -> Vec<ElemId> {
            self.g.neighbors(e, level)
        }
    }

    impl CodedGraph for Coded {
        fn expand(&mut self, e: ElemId, q: &[f32], out: &mut Vec<Scored>) -> Option<(f64, bool)> {
            self.reads += 1;
            let i = idx(e);
            let (d, deleted) = self.g.distance(e, q)?;
            let prepared = self.coder.query(q);
            for (k, &n) in self.g.adj[i][0].iter().enumerate() {
                out.push(Scored {
                    distance: self.coder.estimate_comparable(&prepared, self.coder.comparable(d) as f32, &self.codes[i][k]),
                    id: n,
                });
            }
            Some((d, deleted))
        }
        fn comparable(&self, distance: f64) -> f64 {
            self.coder.comparable(distance)
        }
    }

    fn coded(metric: Metric, n: usize, dims: usize, seed: u64) -> (Coded, Vec<Vec<f32>>) {
        let mut rng = Rng(seed);
        let centres: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dims).map(|_| 4.0 * rng.next_f64() as f32 - 2.0).collect())
            .collect();
        let point = |rng: &mut Rng| -> Vec<f32> {
            let c = &centres[(rng.next_f64() * 20.0) as usize % 20];
            c.iter().map(|x| x + 0.3 * (rng.next_f64() as f32 - 0.5)).collect()
        };
        let mut g = MemGraph::new(metric, 8);
        for _ in 0..n {
            let v = point(&mut rng);
            let u = rng.next_f64();
            g.insert(v, u, 64);
        }
        let queries = (0..50).map(|_| point(&mut rng)).collect();
        let coder = Coder::new(dims, 64, 7, metric).expect("a metric with codes");
        let mut rot = Vec::new();
        let rotated: Vec<Vec<f32>> = g
            .vectors
            .iter()
            .map(|v| {
                coder.rotate(v, &mut rot);
                rot.clone()
            })
            .collect();
        let codes = (0..n)
            .map(|i| {
                g.adj[i][0]
                    .iter()
                    .map(|&x| {
                        let mut c = vec![0u8; coder.code_len()];
                        coder.encode(&rotated[i], &rotated[idx(x)], &mut c);
                        c
                    })
                    .collect()
            })
            .collect();
        (
            Coded {
                g,
                coder,
                codes,
                reads: 0,
            },
            queries,
        )
    }

    #[test]
    fn guided_search_finds_what_the_exact_one_does_with_fewer_reads() {
        for metric in [Metric::L2, Metric::Cosine, Metric::InnerProduct] {
            let (mut c, queries) = coded(metric, 3000, 32, 0x1234_5678);
            let (mut guided_hits, mut exact_hits, mut exact_reads) = (0, 0, 0);
            for q in &queries {
                let mut truth: Vec<(f64, usize)> = c
                    .g
                    .vectors
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (metric.distance(v, q), i))
                    .collect();
                truth.sort_by(|a, b| a.0.total_cmp(&b.0));
                let kth = truth[9].0;
                let (entry, top) = c.g.entry.unwrap();
                let ep = descend(&mut c, q, entry, top as usize, 0);
                let mut s = GuidedSearch::start(&[ep]);
                s.run(&mut c, q, 40, u64::MAX);
                let got = s.results();
                // exact distances, nearest first
                assert!(got.windows(2).all(|w| w[0] <= w[1]));
                for sc in &got {
                    assert_eq!(sc.distance, metric.distance(&c.g.vectors[idx(sc.id)], q));
                }
                guided_hits += got.iter().take(10).filter(|s| s.distance <= kth).count();
                let mut counting = Counting(&mut c.g, 0);
                let exact = search_layer(&mut counting, q, &[ep], 40, 0);
                exact_reads += counting.1;
                exact_hits += exact.iter().take(10).filter(|s| s.distance <= kth).count();
            }
            let n = queries.len() * 10;
            let (guided, exact) = (guided_hits as f64 / n as f64, exact_hits as f64 / n as f64);
            assert!(guided >= exact - 0.05, "{metric:?}: recall {guided} vs exact {exact}");
            assert!(
                c.reads < exact_reads,
                "{metric:?}: {} reads vs {exact_reads}",
                c.reads
            );
        }
    }

    /// Counts the distances an exact search computes (one read each on disk).
    struct Counting<'a>(&'a mut MemGraph, usize);
    impl Graph for Counting<'_> {
        fn distance(&mut self, e: ElemId, q: &[f32]) -> Option<(f64, bool)> {
            self.1 += 1;
            self.0.distance(e, q)
        }
        fn neighbors(&mut self, e: ElemId, level: usize) -> Vec<ElemId> {
            self.0.neighbors(e, level)
        }
    }

    #[test]
    fn widening_a_guided_search_continues_it() {
        let (mut c, queries) = coded(Metric::L2, 1500, 16, 99);
        let q = &queries[0];
        let mut s = GuidedSearch::start(&[id(0)]);
        s.run(&mut c, q, 10, u64::MAX);
        let first = s.results();
        s.run(&mut c, q, 100, u64::MAX);
        let wider = s.results();
        assert_eq!((first.len(), wider.len()), (10, 100));
        for (w, f) in wider.iter().zip(&first) {
            assert!(w.distance <= f.distance, "rank got worse: {w:?} after {f:?}");
        }
        // a budget stops it; what it read is still given, nearest first
        let mut b = GuidedSearch::start(&[id(0)]);
        b.run(&mut c, q, 1000, 50);
        assert_eq!(b.evaluated, 50);
        assert!(!b.exhausted());
        let all = b.all_scored();
        assert_eq!(all.len(), 50);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        // widened to everything, every element is read once
        s.run(&mut c, q, 5000, u64::MAX);
        assert_eq!(s.results().len(), 1500);
        assert!(s.exhausted());
        assert!(s.memory_bytes() > 0);
    }

    #[test]
    fn a_search_run_once_finds_what_a_widenable_one_does() {
        let (mut c, queries) = coded(Metric::L2, 1500, 16, 7);
        for q in queries.iter().take(10) {
            let mut a = GuidedSearch::start(&[id(0)]);
            a.run(&mut c, q, 40, u64::MAX);
            let mut b = GuidedSearch::start_once(&[id(0)]);
            b.run(&mut c, q, 40, u64::MAX);
            assert_eq!(a.results(), b.results());
            assert!(b.deferred.is_empty());
        }
    }
}
