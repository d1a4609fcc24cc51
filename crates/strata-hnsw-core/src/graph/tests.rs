//! Tests of the graph algorithms, and the in-memory graph ([`MemGraph`])
//! other modules' tests build on.

use super::*;
use crate::metric::Metric;

/// An in-memory graph for tests: vectors, per-level adjacency, deletions.
pub struct MemGraph {
    pub vectors: Vec<Vec<f32>>,
    pub levels: Vec<u8>,
    pub adj: Vec<Vec<Vec<ElemId>>>,
    pub deleted: Vec<bool>,
    pub metric: Metric,
    pub m: usize,
    pub entry: Option<(ElemId, u8)>,
}

pub fn id(i: usize) -> ElemId {
    ElemId {
        block: (i / 1000) as u32 + 1,
        offset: (i % 1000) as u16 + 1,
    }
}
pub fn idx(e: ElemId) -> usize {
    (e.block as usize - 1) * 1000 + e.offset as usize - 1
}

impl Graph for MemGraph {
    fn distance(&mut self, e: ElemId, q: &[f32]) -> Option<(f64, bool)> {
        let i = idx(e);
        Some((self.metric.distance(&self.vectors[i], q), self.deleted[i]))
    }
    fn neighbors(&mut self, e: ElemId, level: usize) -> Vec<ElemId> {
        self.adj[idx(e)].get(level).cloned().unwrap_or_default()
    }
}

impl MemGraph {
    pub fn new(metric: Metric, m: usize) -> MemGraph {
        MemGraph {
            vectors: vec![],
            levels: vec![],
            adj: vec![],
            deleted: vec![],
            metric,
            m,
            entry: None,
        }
    }

    /// The standard HNSW insert, using this module's functions.
    pub fn insert(&mut self, v: Vec<f32>, u: f64, ef_construction: usize) {
        let i = self.vectors.len();
        let level = random_level(u, self.m, 15);
        self.vectors.push(v.clone());
        self.levels.push(level);
        self.adj.push(vec![Vec::new(); level as usize + 1]);
        self.deleted.push(false);
        let Some((entry, top)) = self.entry else {
            self.entry = Some((id(i), level));
            return;
        };
        let mut ep = descend(self, &v, entry, top as usize, level as usize);
        for l in (0..=level.min(top) as usize).rev() {
            let found = search_layer(self, &v, &[ep], ef_construction, l);
            ep = found[0].id;
            let cap = if l == 0 { 2 * self.m } else { self.m };
            let (metric, vectors, adj) = (self.metric, &self.vectors, &mut self.adj);
            let dist =
                |a: ElemId, b: ElemId| metric.distance(&vectors[idx(a)], &vectors[idx(b)]);
            let chosen = select_neighbors(&found, self.m, dist);
            adj[i][l] = chosen.iter().map(|s| s.id).collect();
            for s in chosen {
                let n = idx(s.id);
                adj[n][l].push(id(i));
                if adj[n][l].len() > cap {
                    let cands: Vec<Scored> = adj[n][l]
                        .iter()
                        .map(|&x| Scored {
                            distance: dist(x, id(n)),
                            id: x,
                        })
                        .collect();
                    adj[n][l] = select_neighbors(&cands, cap, dist)
                        .iter()
                        .map(|s| s.id)
                        .collect();
                }
            }
        }
        if level > top {
            self.entry = Some((id(i), level));
        }
    }

    pub fn knn(&mut self, q: &[f32], k: usize, ef: usize) -> Vec<usize> {
        let (entry, top) = self.entry.expect("non-empty graph");
        let ep = descend(self, q, entry, top as usize, 0);
        search_layer(self, q, &[ep], ef.max(k), 0)
            .into_iter()
            .filter(|s| !self.deleted[idx(s.id)])
            .take(k)
            .map(|s| idx(s.id))
            .collect()
    }
}

/// Deterministic pseudo-random numbers (xorshift) for tests.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The in-memory build of CREATE INDEX (two threads, ef_construction 64,
/// then orphans linked unless inner product), as `build::write_graph` runs it.
fn build(data: &[Vec<f32>], levels: &[u8], m: usize, metric: Metric) -> Vec<Vec<Vec<usize>>> {
    let dims = data[0].len();
    let flat = data.concat();
    let scale = metric.build_scale(&flat, dims);
    let spec = parallel_build::Spec {
        levels,
        ef_construction: 64,
        cap0: 2 * m,
        cap: m,
        dist: metric.build_distance(),
        scale: scale.as_deref(),
        spare_last_links: metric != Metric::InnerProduct,
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let mut links =
        parallel_build::build_parallel(&flat, dims, &spec, &pool, 1, |_| {});
    if metric != Metric::InnerProduct {
        let top = (0..levels.len()).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
        link_unreachable(&mut links, top, 2 * m, |a, b| metric.distance(&data[a], &data[b]));
    }
    links.to_nested()
}

#[test]
fn inner_product_build_finds_the_largest_products() {
    let mut rng = Rng(0x5DEECE66D);
    let (n, dims, m) = (2000, 16, 8);
    let data: Vec<Vec<f32>> = (0..n)
        .map(|_| (0..dims).map(|_| rng.next_f64() as f32 - 0.3).collect())
        .collect();
    let levels: Vec<u8> = (0..n)
        .map(|_| random_level(1.0 - rng.next_f64(), m, 15))
        .collect();
    let metric = Metric::InnerProduct;
    let cap = |l: usize| if l == 0 { 2 * m } else { m };
    let links = build(&data, &levels, m, metric);
    for (i, lists) in links.iter().enumerate() {
        assert_eq!(lists.len(), levels[i] as usize + 1);
        for (l, list) in lists.iter().enumerate() {
            assert!(list.len() <= cap(l) && !list.contains(&i), "element {i} level {l}");
        }
    }
    let mut g = Building::from_links(&data, &links, |a: &[f32], b: &[f32]| metric.distance(a, b));
    let top = (0..n).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
    let (mut hits, queries) = (0, 100);
    for _ in 0..queries {
        let q: Vec<f32> = (0..dims).map(|_| rng.next_f64() as f32 - 0.3).collect();
        let mut exact: Vec<usize> = (0..n).collect();
        exact.sort_by(|&a, &b| metric.distance(&data[a], &q).total_cmp(&metric.distance(&data[b], &q)));
        let ep = descend(&mut g, &q, built(top), levels[top] as usize, 0);
        let got: Vec<usize> = search_layer(&mut g, &q, &[ep], 40, 0)
            .iter()
            .take(10)
            .map(|s| s.id.block as usize)
            .collect();
        hits += got.iter().filter(|x| exact[..10].contains(x)).count();
    }
    let r = hits as f64 / (queries * 10) as f64;
    assert!(r >= 0.95, "recall@10 {r}");
}

#[test]
fn every_copy_of_a_repeated_vector_keeps_incoming_links() {
    // 300 copies of one vector among 200 others, inserted one by one
    // with full lists kept full (the on-disk insert's back links): the
    // copies outnumber a list twenty times over, and each must still be
    // reachable at level 0 from the entry point (the copies' own lists
    // hold copies only, pgvector's too: the other vectors are reached
    // through their own neighbors)
    let mut rng = Rng(0xD1CE);
    let (m, dims) = (8, 3);
    let mut data: Vec<Vec<f32>> = Vec::new();
    for i in 0..500 {
        if i % 5 < 3 {
            data.push(vec![1.0; dims]);
        } else {
            data.push((0..dims).map(|_| rng.next_f64() as f32 * 10.0).collect());
        }
    }
    let levels: Vec<u8> = (0..data.len())
        .map(|_| random_level(1.0 - rng.next_f64(), m, 15))
        .collect();
    let metric = Metric::L2;
    let links = build(&data, &levels, m, metric);
    let entry = (0..data.len()).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
    let mut reached = vec![false; data.len()];
    let mut stack = vec![entry];
    reached[entry] = true;
    while let Some(i) = stack.pop() {
        for &n in &links[i][0] {
            if !reached[n] {
                reached[n] = true;
                stack.push(n);
            }
        }
    }
    let lost: Vec<usize> = (0..data.len()).filter(|&i| i % 5 < 3 && !reached[i]).collect();
    assert!(lost.is_empty(), "copies unreachable: {lost:?}");
}

#[test]
fn an_element_far_from_the_rest_keeps_an_incoming_link() {
    // one vector, then 300 others far from it: each back link drops the
    // farthest pruned candidate, the lone one, unless it is spared
    let mut data: Vec<Vec<f32>> = vec![vec![1.0, 1.0, 1.0]];
    for i in 1..=300u32 {
        data.push(vec![(i % 17 + 20) as f32, (i % 13) as f32, (i % 11) as f32]);
    }
    let mut rng = Rng(0xABCD);
    let m = 16;
    let metric = Metric::L2;
    for run in 0..20 {
        let mut levels: Vec<u8> = (0..data.len())
            .map(|_| random_level(1.0 - rng.next_f64(), m, 15))
            .collect();
        levels[0] = 0;
        let links = build(&data, &levels, m, metric);
        let incoming = links.iter().filter(|ls| ls[0].contains(&0)).count();
        assert!(incoming > 0, "run {run}: the lone vector lost every incoming link");
    }
}

fn recall(metric: Metric) -> f64 {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let dims = 16;
    let data: Vec<Vec<f32>> = (0..2000)
        .map(|_| (0..dims).map(|_| rng.next_f64() as f32 - 0.5).collect())
        .collect();
    let mut g = MemGraph::new(metric, 8);
    for v in &data {
        let u = rng.next_f64();
        g.insert(v.clone(), u, 64);
    }
    let mut hits = 0;
    let queries = 50;
    for _ in 0..queries {
        let q: Vec<f32> = (0..dims).map(|_| rng.next_f64() as f32 - 0.5).collect();
        let mut exact: Vec<(f64, usize)> = data
            .iter()
            .enumerate()
            .map(|(i, v)| (metric.distance(v, &q), i))
            .collect();
        exact.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truth: std::collections::HashSet<usize> = exact.iter().take(10).map(|e| e.1).collect();
        hits += g
            .knn(&q, 10, 40)
            .iter()
            .filter(|i| truth.contains(i))
            .count();
    }
    hits as f64 / (queries * 10) as f64
}

#[test]
fn search_finds_true_neighbors() {
    for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine, Metric::L1] {
        let r = recall(metric);
        assert!(r >= 0.9, "{metric:?}: recall@10 {r}");
    }
}

#[test]
fn widening_a_search_continues_it() {
    let mut rng = Rng(42);
    let mut g = MemGraph::new(Metric::L2, 6);
    for _ in 0..500 {
        let v: Vec<f32> = (0..8).map(|_| rng.next_f64() as f32).collect();
        let u = rng.next_f64();
        g.insert(v, u, 40);
    }
    let q = vec![0.5f32; 8];
    let (entry, top) = g.entry.unwrap();
    let ep = descend(&mut g, &q, entry, top as usize, 0);
    let mut s = LayerSearch::start(&mut g, &q, &[ep]);
    s.run(&mut g, &q, 0, 10, u64::MAX);
    let first = s.results();
    s.run(&mut g, &q, 0, 100, u64::MAX);
    let wider = s.results();
    assert_eq!(first.len(), 10);
    assert_eq!(wider.len(), 100);
    // widening keeps what was found and can only improve each rank
    for (w, f) in wider.iter().zip(&first) {
        assert!(
            w.distance <= f.distance,
            "rank got worse: {w:?} after {f:?}"
        );
    }
    assert!(first.iter().all(|f| wider.iter().any(|w| w.id == f.id)));
    // what a stopped search still holds: its ef best, then those pushed out
    let all = s.all_scored();
    assert!(all.len() >= wider.len());
    assert_eq!(&all[..wider.len()], &wider[..]);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    assert!(s.memory_bytes() >= all.len() * std::mem::size_of::<Scored>());
    s.run(&mut g, &q, 0, 1000, u64::MAX);
    assert_eq!(s.results().len(), 500);
    assert!(s.exhausted());
}

#[test]
fn heuristic_prefers_diverse_neighbors() {
    // base at 0; a and b close together at distance 1, c at distance 2 on the other side
    let pos = [1.0f64, 1.1, -2.0];
    let cands: Vec<Scored> = (0..3)
        .map(|i| Scored {
            distance: pos[i].abs(),
            id: id(i),
        })
        .collect();
    let chosen = select_neighbors(&cands, 2, |a, b| (pos[idx(a)] - pos[idx(b)]).abs());
    assert_eq!(
        chosen.iter().map(|s| idx(s.id)).collect::<Vec<_>>(),
        vec![0, 2]
    );
    // the pruned candidate does not come back to fill the list
    let roomy = select_neighbors(&cands, 3, |a, b| (pos[idx(a)] - pos[idx(b)]).abs());
    assert_eq!(roomy.len(), 2);
}

#[test]
fn a_duplicate_of_the_base_does_not_crowd_out_its_neighbors() {
    // base at 0 with an exact duplicate (id 0) and neighbors on both sides
    let pos = [0.0f64, 1.0, -1.5, 3.0];
    let cands: Vec<Scored> = (0..4)
        .map(|i| Scored {
            distance: pos[i].abs(),
            id: id(i),
        })
        .collect();
    let chosen = select_neighbors(&cands, 4, |a, b| (pos[idx(a)] - pos[idx(b)]).abs());
    assert_eq!(
        chosen.iter().map(|s| idx(s.id)).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    // a duplicate of a kept neighbor is still pruned
    let pos = [1.0f64, 1.0, -2.0];
    let cands: Vec<Scored> = (0..3)
        .map(|i| Scored {
            distance: pos[i].abs(),
            id: id(i),
        })
        .collect();
    let chosen = select_neighbors(&cands, 3, |a, b| (pos[idx(a)] - pos[idx(b)]).abs());
    let chosen: Vec<usize> = chosen.iter().map(|s| idx(s.id)).collect();
    // either copy (ties are in no fixed order), then the other side
    assert!(chosen == vec![0, 2] || chosen == vec![1, 2], "{chosen:?}");
}

#[test]
fn unreached_elements_are_linked_in_without_making_orphans() {
    // points on a line, lists of capacity 2, entry 0. First: 3 has no
    // incoming link and its nearest neighbour (4) is full — 4's farthest
    // neighbour that has another incoming link (0, also reached from 1)
    // makes room. Then: 3 and 4 name each other (and 2) and nothing reached
    // names them — 3, the first not reached, goes into 2's list in place of
    // 0, and 4 is reached through 3.
    let cases: [([f64; 5], [[usize; 2]; 5], usize, [usize; 2]); 2] = [
        ([0.0, 1.0, 2.0, 3.1, 4.0], [[1, 2], [0, 2], [1, 4], [2, 4], [2, 0]], 4, [2, 3]),
        ([0.0, 1.0, 2.0, 5.0, 5.5], [[1, 2], [0, 2], [1, 0], [4, 2], [3, 2]], 2, [1, 3]),
    ];
    for (pos, lists, changed, list) in cases {
        let d = |a: usize, b: usize| (pos[a] - pos[b]).abs();
        let nested: Vec<Vec<Vec<usize>>> = lists.iter().map(|l| vec![l.to_vec()]).collect();
        let mut links = Links::from_nested(2, 1, &nested);
        assert_eq!(link_unreachable(&mut links, 0, 2, d), 1);
        assert_eq!(links.list(changed, 0), list.map(|x| x as u32));
        let mut indeg = [0; 5];
        for i in 0..5 {
            for &t in links.list(i, 0) {
                indeg[t as usize] += 1;
            }
        }
        assert!(indeg.iter().all(|&x| x > 0), "{indeg:?}");
        // nothing left to do
        assert_eq!(link_unreachable(&mut links, 0, 2, d), 0);
    }
}

#[test]
fn filled_selection_keeps_the_diverse_then_the_nearest() {
    // points on a line around a base at 0: the heuristic keeps one per side
    let pos = [0.0f64, 1.0, 2.0, 3.0, -1.5, -4.0];
    let cands: Vec<Scored> = (1..pos.len())
        .map(|i| Scored {
            distance: pos[i].abs(),
            id: id(i),
        })
        .collect();
    let d = |a: ElemId, b: ElemId| (pos[idx(a)] - pos[idx(b)]).abs();
    let ids = |v: Vec<Scored>| v.into_iter().map(|s| idx(s.id)).collect::<Vec<_>>();
    assert_eq!(ids(select_neighbors(&cands, 4, d)), vec![1, 4]);
    assert_eq!(ids(select_neighbors_filled(&cands, 4, d)), vec![1, 4, 2, 3]);
    assert_eq!(
        ids(select_neighbors_filled(&cands, 9, d)),
        vec![1, 4, 2, 3, 5]
    );
    assert_eq!(ids(select_neighbors_filled(&cands, 1, d)), vec![1]);
}

#[test]
fn a_full_list_spares_the_candidate_nothing_else_reaches() {
    // base at 0; kept: 1 (and 10, the other side); pruned: 2, 3 and 9
    // (9 is far out on the 10 side, nearer to 10 than to the base)
    let pos = [0.0f64, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, -9.0, -2.0];
    let cands: Vec<Scored> = [1, 2, 3, 9, 10]
        .iter()
        .map(|&i| Scored {
            distance: pos[i].abs(),
            id: id(i),
        })
        .collect();
    let d = |a: ElemId, b: ElemId| (pos[idx(a)] - pos[idx(b)]).abs();
    let ids = |v: Vec<Scored>| {
        let mut v: Vec<usize> = v.into_iter().map(|s| idx(s.id)).collect();
        v.sort();
        v
    };
    // nobody else names 9: 3 (named by 1) goes instead
    let names = |k: ElemId, c: ElemId| (idx(k), idx(c)) == (1, 3) || (idx(k), idx(c)) == (1, 2);
    assert_eq!(ids(select_neighbors_sparing(&cands, 4, d, names)), vec![1, 2, 9, 10]);
    // when 10 names 9, the farthest goes as with the plain filled choice
    let names = |k: ElemId, c: ElemId| (idx(k), idx(c)) == (10, 9);
    assert_eq!(ids(select_neighbors_sparing(&cands, 4, d, names)), vec![1, 2, 3, 10]);
    // nothing named at all: the farthest goes
    assert_eq!(ids(select_neighbors_sparing(&cands, 4, d, |_, _| false)), vec![1, 2, 3, 10]);
    // under capacity nothing is left out
    assert_eq!(ids(select_neighbors_sparing(&cands, 9, d, |_, _| false)), vec![1, 2, 3, 9, 10]);
}

#[test]
fn levels_follow_the_exponential_law() {
    assert_eq!(random_level(1.0, 16, 15), 0);
    assert_eq!(random_level(0.5, 16, 15), 0);
    assert_eq!(random_level(1.0 / 16.0 - 1e-9, 16, 15), 1);
    assert_eq!(random_level(0.0, 16, 15), 15);
}

#[test]
fn an_inner_product_build_keeps_the_largest_products_reachable() {
    // the hnsw regress suite's grid: a few large-norm vectors are the
    // answers of most inner-product queries; each must stay in many lists
    // (a full list once dropped the near entry its hub also linked to, until
    // one link was left and the search missed it)
    let data: Vec<Vec<f32>> = (1..=1000u32)
        .map(|g| vec![(g % 17) as f32, ((g * 7) % 13) as f32, ((g * 3) % 11) as f32])
        .collect();
    let mut rng = Rng(0x77);
    let m = 16;
    let metric = Metric::InnerProduct;
    let q = [1.0f32, 2.0, 3.0];
    let mut exact: Vec<usize> = (0..data.len()).collect();
    exact.sort_by(|&a, &b| metric.distance(&data[a], &q).total_cmp(&metric.distance(&data[b], &q)));
    for run in 0..5 {
        let levels: Vec<u8> = (0..data.len())
            .map(|_| random_level(1.0 - rng.next_f64(), m, 15))
            .collect();
        let links = build(&data, &levels, m, metric);
        let incoming = |o: usize| links.iter().filter(|l| l[0].contains(&o)).count();
        assert!(exact[..5].iter().all(|&o| incoming(o) >= 10), "run {run}");
        let mut g = Building::from_links(&data, &links, |a: &[f32], b: &[f32]| metric.distance(a, b));
        let top = (0..data.len()).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
        let ep = descend(&mut g, &q, built(top), levels[top] as usize, 0);
        let got: Vec<usize> = search_layer(&mut g, &q, &[ep], 200, 0)
            .iter()
            .take(5)
            .map(|s| s.id.block as usize)
            .collect();
        assert_eq!(got, exact[..5], "run {run}");
    }
}

#[test]
fn an_inner_product_build_meets_pgvectors_recall_floor() {
    // pgvector's build-recall test data (10,000 × 3, each component
    // random() * random()): recall@20 at ef_search 40 >= 0.97 for inner
    // product on every build (sparing elements' last incoming links left 4
    // builds of 40 below it)
    let m = 16;
    let metric = Metric::InnerProduct;
    for run in 0..5u64 {
        let mut rng = Rng(0x1234 + run * 7919);
        let data: Vec<Vec<f32>> = (0..10_000)
            .map(|_| (0..3).map(|_| (rng.next_f64() * rng.next_f64()) as f32).collect())
            .collect();
        let levels: Vec<u8> = (0..data.len())
            .map(|_| random_level(1.0 - rng.next_f64(), m, 15))
            .collect();
        let links = build(&data, &levels, m, metric);
        let mut g = Building::from_links(&data, &links, |a: &[f32], b: &[f32]| metric.distance(a, b));
        let top = (0..data.len()).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
        let mut hits = 0;
        for _ in 0..20 {
            let q: Vec<f32> = (0..3).map(|_| rng.next_f64() as f32).collect();
            let mut exact: Vec<usize> = (0..data.len()).collect();
            exact.sort_by(|&a, &b| metric.distance(&data[a], &q).total_cmp(&metric.distance(&data[b], &q)));
            let ep = descend(&mut g, &q, built(top), levels[top] as usize, 0);
            hits += search_layer(&mut g, &q, &[ep], 40, 0)
                .iter()
                .take(20)
                .filter(|s| exact[..20].contains(&(s.id.block as usize)))
                .count();
        }
        let r = hits as f64 / 400.0;
        assert!(r >= 0.97, "run {run}: recall@20 {r}");
    }
}
