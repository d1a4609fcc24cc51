//! HNSW search and neighbor selection over any graph store. Pure: the
//! on-disk index implements [`Graph`] by reading pages; tests implement it
//! in memory.
//!
//! * [`search_layer`] — best-first search of one layer with a candidate list
//!   of size `ef` (Malkov & Yashunin, algorithm 2), able to resume;
//! * [`select_neighbors`] — the diversity heuristic (algorithm 4);
//! * [`parallel_build`] — the in-memory build of CREATE INDEX on several
//!   threads;
//! * [`random_level`] — the exponential level distribution, `mL = 1/ln(m)`.

use super::format::{ElemId, IdSet};
use links::Links;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What the search needs from a graph store.
pub trait Graph {
    /// Distance from `query` to element `id`'s vector, and whether the
    /// element is deleted (deleted elements are traversed, never returned).
    /// None when the element cannot be read (a free slot).
    fn distance(&mut self, id: ElemId, query: &[f32]) -> Option<(f64, bool)>;
    /// Neighbors of `id` at `level`.
    fn neighbors(&mut self, id: ElemId, level: usize) -> Vec<ElemId>;
}

/// A (distance, element) pair ordered by distance, then id.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored {
    pub distance: f64,
    pub id: ElemId,
}

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.id.cmp(&other.id))
    }
}

/// State of a best-first search of one layer, kept so that an iterative
/// index scan can widen it (larger `ef`) without starting over.
#[derive(Default)]
pub struct LayerSearch {
    pub visited: IdSet,
    /// Frontier: elements still to expand, nearest first.
    candidates: BinaryHeap<std::cmp::Reverse<Scored>>,
    /// Best elements found (a max-heap: the farthest on top), deleted ones
    /// included for navigation.
    found: BinaryHeap<Scored>,
    /// Elements pushed out of `found` by nearer ones; brought back when the
    /// search widens.
    spilled: Vec<Scored>,
    /// Elements whose distance was computed (the scan-tuple budget).
    pub evaluated: u64,
}

impl LayerSearch {
    /// Starts a search from `entries`.
    pub fn start<G: Graph>(g: &mut G, query: &[f32], entries: &[ElemId]) -> LayerSearch {
        let mut s = LayerSearch::default();
        for &id in entries {
            if s.visited.insert(id) {
                if let Some((d, _)) = g.distance(id, query) {
                    s.evaluated += 1;
                    let sc = Scored { distance: d, id };
                    s.candidates.push(std::cmp::Reverse(sc));
                    s.found.push(sc);
                }
            }
        }
        s
    }

    /// Runs (or continues) the search until no candidate can improve the
    /// `ef` best; stops early once `budget` distances were computed.
    pub fn run<G: Graph>(
        &mut self,
        g: &mut G,
        query: &[f32],
        level: usize,
        ef: usize,
        budget: u64,
    ) {
        let ef = ef.max(1);
        // each expanded element brings up to 2·m neighbors
        reserve_visited(&mut self.visited, ef * 16);
        // Widening: bring back what a smaller ef pushed out.
        for sc in self.spilled.drain(..) {
            self.found.push(sc);
            self.candidates.push(std::cmp::Reverse(sc));
        }
        spill_past(&mut self.found, &mut self.spilled, ef);
        while let Some(std::cmp::Reverse(c)) = self.candidates.pop() {
            let worst = self
                .found
                .peek()
                .map(|w| w.distance)
                .unwrap_or(f64::INFINITY);
            if c.distance > worst && self.found.len() >= ef {
                self.candidates.push(std::cmp::Reverse(c));
                break;
            }
            if self.evaluated >= budget {
                self.candidates.push(std::cmp::Reverse(c));
                break;
            }
            for n in g.neighbors(c.id, level) {
                if !self.visited.insert(n) {
                    continue;
                }
                let Some((d, _)) = g.distance(n, query) else {
                    continue;
                };
                self.evaluated += 1;
                let worst = self
                    .found
                    .peek()
                    .map(|w| w.distance)
                    .unwrap_or(f64::INFINITY);
                if self.found.len() < ef || d < worst {
                    let sc = Scored { distance: d, id: n };
                    self.candidates.push(std::cmp::Reverse(sc));
                    self.found.push(sc);
                    spill_past(&mut self.found, &mut self.spilled, ef);
                } else {
                    self.spilled.push(Scored { distance: d, id: n });
                }
            }
        }
    }

    /// The best elements found so far, nearest first.
    pub fn results(&self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.found.iter().copied().collect();
        v.sort();
        v
    }

    /// Whether the frontier is exhausted (the layer is fully explored from here).
    pub fn exhausted(&self) -> bool {
        self.candidates.is_empty() && self.spilled.is_empty()
    }

    /// Every element scored so far (the `ef` best and those pushed out),
    /// nearest first: what a search that must stop (scan budget, memory)
    /// still has to give.
    pub fn all_scored(&self) -> Vec<Scored> {
        nearest_first_once(self.found.iter().chain(&self.spilled))
    }

    /// Bytes this search holds (by capacity: the visited set's table and
    /// the three lists), for `strata.hnsw_scan_mem_multiplier`.
    pub fn memory_bytes(&self) -> usize {
        search_bytes(
            &self.visited,
            self.candidates.capacity() + self.found.capacity() + self.spilled.capacity(),
        )
    }
}

/// Room in `visited` for the `expect` elements a search typically marks, so
/// the set does not grow by rehashing while it runs (3% of a scan's CPU).
/// Not more: an iterative scan's memory bound counts the capacity.
pub(crate) fn reserve_visited(visited: &mut IdSet, expect: usize) {
    if visited.capacity() < expect {
        visited.reserve(expect - visited.len());
    }
}

/// Moves the farthest of `found` into `spilled` until `found` holds `ef`.
pub(crate) fn spill_past(found: &mut BinaryHeap<Scored>, spilled: &mut Vec<Scored>, ef: usize) {
    while found.len() > ef {
        spilled.push(found.pop().expect("non-empty"));
    }
}

/// `scored` nearest first, each element once.
pub(crate) fn nearest_first_once<'a>(scored: impl Iterator<Item = &'a Scored>) -> Vec<Scored> {
    let mut v: Vec<Scored> = scored.copied().collect();
    v.sort();
    v.dedup_by_key(|s| s.id);
    v
}

/// Bytes of a search's visited set and of `entries` [`Scored`] list slots.
pub(crate) fn search_bytes(visited: &IdSet, entries: usize) -> usize {
    // a hash set entry is the key plus one control byte
    visited.capacity() * (std::mem::size_of::<ElemId>() + 1) + entries * std::mem::size_of::<Scored>()
}

/// Best-first search of one layer; the `ef` nearest found, nearest first.
pub fn search_layer<G: Graph>(
    g: &mut G,
    query: &[f32],
    entries: &[ElemId],
    ef: usize,
    level: usize,
) -> Vec<Scored> {
    let mut s = LayerSearch::start(g, query, entries);
    s.run(g, query, level, ef, u64::MAX);
    s.results()
}

/// Greedy descent from `entry` (at `from_level`) down to `to_level`
/// (exclusive), returning the nearest element found.
pub fn descend<G: Graph>(
    g: &mut G,
    query: &[f32],
    entry: ElemId,
    from_level: usize,
    to_level: usize,
) -> ElemId {
    let mut cur = entry;
    let mut level = from_level;
    while level > to_level {
        if let Some(best) = search_layer(g, query, &[cur], 1, level).first() {
            cur = best.id;
        }
        level -= 1;
    }
    cur
}

/// `candidates` nearest first, each element once; candidates at the same
/// distance (copies of one vector, all at distance 0 from each other) in an
/// order drawn from the whole candidate set rather than by id. By id, every
/// full list of a vector's copies kept the same oldest copies and dropped
/// the newest: once a vector had more copies than a list holds, each new one
/// got no incoming link at all (1000 copies inserted one by one: 330 rows
/// reachable, pgvector 1000). Spread, each list keeps its own share of the
/// copies and every copy keeps incoming links. Deterministic: the order is a
/// hash of each id salted with the set's.
fn nearest_first_ties_spread(candidates: &[Scored]) -> Vec<Scored> {
    fn mix(mut x: u64) -> u64 {
        // splitmix64's finalizer
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }
    let key = |id: ElemId| ((id.block as u64) << 16) | id.offset as u64;
    let salt = candidates.iter().fold(0u64, |acc, s| acc ^ mix(key(s.id)));
    let rank = |id: ElemId| mix(key(id) ^ salt);
    let mut sorted = candidates.to_vec();
    sorted.sort_by(|a, b| {
        a.distance
            .total_cmp(&b.distance)
            .then_with(|| rank(a.id).cmp(&rank(b.id)))
            .then_with(|| a.id.cmp(&b.id))
    });
    sorted.dedup_by_key(|s| s.id);
    sorted
}

/// The diversity heuristic: take candidates nearest first, keeping one only
/// if it is not farther from the base than from every neighbor kept so far.
/// Ties are kept: with an exact duplicate of the base among the kept ones,
/// every other candidate is exactly as far from it as from the base, and a
/// strict test would then cut the base's list down to the duplicate alone
/// (an insert of a duplicate used to strip its twin of all other links,
/// leaving the twin's old neighbors unreachable). Pruned candidates are
/// not used to fill the list up here (see [`select_neighbors_filled`]): in
/// the in-memory build's test graphs, filling from a whole search's
/// candidates crowded out the few links between clusters (recall 1.0 ->
/// 0.5 on 1000 Gaussian clusters). `between(a, b)` is the distance between
/// two candidates.
pub fn select_neighbors(
    candidates: &[Scored],
    m: usize,
    between: impl FnMut(ElemId, ElemId) -> f64,
) -> Vec<Scored> {
    heuristic_split(candidates, m, between).0
}

/// The heuristic's choice and the rest (pruned or not examined), both
/// nearest first, from one sort of the candidates.
fn heuristic_split(
    candidates: &[Scored],
    m: usize,
    mut between: impl FnMut(ElemId, ElemId) -> f64,
) -> (Vec<Scored>, Vec<Scored>) {
    let mut kept: Vec<Scored> = Vec::with_capacity(m);
    let mut rest: Vec<Scored> = Vec::new();
    for c in nearest_first_ties_spread(candidates) {
        if kept.len() < m && kept.iter().all(|k| between(c.id, k.id) >= c.distance) {
            kept.push(c);
        } else {
            rest.push(c);
        }
    }
    (kept, rest)
}

/// [`select_neighbors`], then the nearest pruned candidates until the list
/// holds `m` (what pgvector does at every insert): the choice of VACUUM's
/// repairs (the in-memory build keeps the same lists incrementally, see
/// [`parallel_build`]); on-disk inserts fill
/// to a smaller target ([`select_neighbors_filled_to`], see
/// `insert::choose_neighbors`).
pub fn select_neighbors_filled(
    candidates: &[Scored],
    m: usize,
    between: impl FnMut(ElemId, ElemId) -> f64,
) -> Vec<Scored> {
    select_neighbors_filled_to(candidates, m, m, between)
}

/// [`select_neighbors`] keeping up to `m`, then the nearest pruned
/// candidates until the list holds `fill_to` (at most `m`).
pub fn select_neighbors_filled_to(
    candidates: &[Scored],
    m: usize,
    fill_to: usize,
    between: impl FnMut(ElemId, ElemId) -> f64,
) -> Vec<Scored> {
    let (mut kept, rest) = heuristic_split(candidates, m, between);
    kept.extend(rest.into_iter().take(fill_to.min(m).saturating_sub(kept.len())));
    kept
}

/// [`select_neighbors_filled`] for a list over capacity (a full list taking
/// a back link): the pruned candidates left out are, farthest first, ones
/// that another way reaches — a kept neighbor nearer to them than the base
/// is (why the heuristic pruned them) whose own list names them
/// (`names(kept, pruned)`); only when none has such a way is the farthest
/// left out. Leaving out the farthest alone drops the last link to an
/// element far from the rest: one vector followed by 300 others far from it
/// was unreachable in 20 of 20 sequential builds (pgvector's inserts lose it
/// too: 8 of 8 runs). Lists still drop such an element while others name it
/// (each relying on the others), down to the last, which keeps it.
pub fn select_neighbors_sparing(
    candidates: &[Scored],
    m: usize,
    mut between: impl FnMut(ElemId, ElemId) -> f64,
    mut names: impl FnMut(ElemId, ElemId) -> bool,
) -> Vec<Scored> {
    let (mut kept, mut rest) = heuristic_split(candidates, m, &mut between);
    let excess = (kept.len() + rest.len()).saturating_sub(m);
    for _ in 0..excess {
        let spare = (0..rest.len()).rev().find(|&i| {
            let c = rest[i];
            kept.iter()
                .any(|k| between(c.id, k.id) < c.distance && names(k.id, c.id))
        });
        rest.remove(spare.unwrap_or(rest.len() - 1));
    }
    kept.extend(rest);
    kept
}

/// Vectors and built lists as a [`Graph`] (tests search what the
/// in-memory build made): element `i` is `ElemId { block: i, offset: 1 }`.
#[cfg(test)]
struct Building<'a, D> {
    vectors: &'a [Vec<f32>],
    links: Vec<Vec<Vec<ElemId>>>,
    dist: D,
}

#[cfg(test)]
fn built(i: usize) -> ElemId {
    ElemId {
        block: i as u32,
        offset: 1,
    }
}

#[cfg(test)]
impl<'a, D> Building<'a, D> {
    /// The graph of `links[i][l]` (element indexes) over `vectors`.
    fn from_links(vectors: &'a [Vec<f32>], links: &[Vec<Vec<usize>>], dist: D) -> Self {
        let links = links
            .iter()
            .map(|ls| ls.iter().map(|l| l.iter().map(|&x| built(x)).collect()).collect())
            .collect();
        Building { vectors, links, dist }
    }
}

#[cfg(test)]
impl<D: Fn(&[f32], &[f32]) -> f64> Graph for Building<'_, D> {
    fn distance(&mut self, id: ElemId, query: &[f32]) -> Option<(f64, bool)> {
        Some(((self.dist)(&self.vectors[id.block as usize], query), false))
    }
    fn neighbors(&mut self, id: ElemId, level: usize) -> Vec<ElemId> {
        self.links[id.block as usize].get(level).cloned().unwrap_or_default()
    }
}

/// Level of a new element: `floor(-ln(u) / ln(m))` for uniform `u` in (0, 1],
/// capped at `max_level`.
pub fn random_level(u: f64, m: usize, max_level: u8) -> u8 {
    let ml = 1.0 / (m.max(2) as f64).ln();
    let l = (-(u.max(f64::MIN_POSITIVE)).ln() * ml).floor();
    (l.max(0.0) as u64).min(max_level as u64) as u8
}

/// Where a neighbor list of capacity `cap` takes an unreached element in: `Some(None)`
/// appends it (there is room), `Some(Some(k))` replaces entry `k` — a link to
/// an element that is gone (`keeps_link` None) first, else the farthest
/// (`dist`) whose target keeps another incoming link (`keeps_link`
/// Some(true)) — and `None` means the list cannot take it without making a
/// new orphan.
pub fn orphan_slot<T>(
    list: &[T],
    cap: usize,
    keeps_link: impl Fn(&T) -> Option<bool>,
    mut dist: impl FnMut(&T) -> f64,
) -> Option<Option<usize>> {
    if list.len() < cap {
        return Some(None);
    }
    list.iter()
        .enumerate()
        .filter_map(|(k, f)| match keeps_link(f) {
            None => Some((true, f64::INFINITY, k)),
            Some(true) => Some((false, dist(f), k)),
            Some(false) => None,
        })
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, k)| Some(k))
}

/// Makes every element reachable at level 0 from `entry`, so that a search
/// can find it: the diversity heuristic leaves a few elements of a built
/// graph with no incoming link (about 0.4% on uniform 128-d data), and a
/// few small groups linked only among themselves (two near vectors naming
/// each other after every other list dropped them, each list relying on
/// the other). For each element not reached, nearest out-neighbor first
/// among the reached ones: that neighbor takes it into its list if there
/// is room, or instead of its farthest neighbor that has another incoming
/// link (so no new orphan appears); the element's group is then reached
/// through it. `links.list(i, 0)` is the layer-0 list of element `i`, `cap` its
/// capacity. Returns how many elements were linked.
pub fn link_unreachable(
    links: &mut Links,
    entry: usize,
    cap: usize,
    dist: impl Fn(usize, usize) -> f64,
) -> usize {
    let n = links.len();
    if n == 0 {
        return 0;
    }
    let mut indeg = vec![0u32; n];
    for i in 0..n {
        for &t in links.list(i, 0) {
            indeg[t as usize] += 1;
        }
    }
    let mut reached = vec![false; n];
    let mut stack = Vec::new();
    let mut reach = |from: usize, links: &Links, reached: &mut Vec<bool>| {
        reached[from] = true;
        stack.push(from);
        while let Some(i) = stack.pop() {
            for &t in links.list(i, 0) {
                let t = t as usize;
                if !reached[t] {
                    reached[t] = true;
                    stack.push(t);
                }
            }
        }
    };
    reach(entry, links, &mut reached);
    let mut linked = 0;
    loop {
        let before = linked;
        for o in 0..n {
            if reached[o] {
                continue;
            }
            let mut cands: Vec<(f64, usize)> = links
                .list(o, 0)
                .iter()
                .map(|&c| c as usize)
                .filter(|&c| reached[c])
                .map(|c| (dist(o, c), c))
                .collect();
            cands.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (_, c) in cands {
                let list = links.list(c, 0);
                let slot = orphan_slot(list, cap, |&f| Some(indeg[f as usize] > 1), |&f| dist(c, f as usize));
                match slot {
                    None => continue,
                    Some(None) => {
                        links.push(c, 0, o);
                    }
                    Some(Some(k)) => {
                        let f = links.replace(c, 0, k, o);
                        indeg[f] -= 1;
                    }
                }
                indeg[o] += 1;
                linked += 1;
                reach(o, links, &mut reached);
                break;
            }
        }
        // a group none of whose lists names a reached element waits for
        // another group to reach it; stop when a round links nothing
        if linked == before {
            return linked;
        }
    }
}

pub mod guided;
pub mod links;
pub mod parallel_build;

#[cfg(test)]
pub mod tests;
