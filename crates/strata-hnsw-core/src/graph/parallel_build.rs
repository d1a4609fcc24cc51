//! The in-memory HNSW build on several threads: pgvector's insert algorithm
//! (the one the on-disk inserts follow, see `insert.rs`), run by every
//! thread at once over one shared graph. Pure: no Postgres calls;
//! the caller's thread ticks progress and interrupts between elements while
//! pool threads insert alongside it.
//!
//! Layout: each element's level lists live in three flat slot arrays — the
//! neighbor's index, its distance to the list's owner (f32 bits) and the
//! *pruner*: `NONE` when the diversity heuristic keeps the neighbor, else
//! the nearer kept neighbor that prunes it. Lists are sorted by distance
//! (ties in an order salted by the owner, so copies of one vector spread
//! over lists), and every slot is an atomic: searches read lists without a
//! lock (a list being rewritten reads as a mix of old and new entries, each
//! a valid element — a search tolerates that), writers hold the owner's
//! mutex.
//!
//! Why this is faster than a general build: distances to the owner are kept,
//! and the heuristic's verdicts too, so a back link into a full list costs
//! one to a few distance computations instead of re-running the heuristic
//! over the whole list (pgvector's `closerSet` cache; here with the pruner
//! remembered, so a pruned entry whose pruner stays is not checked again);
//! level-0 incoming links are counted, so the entry a full list drops is
//! never an element's last way in (one counter instead of the distances
//! and list reads of [`super::select_neighbors_sparing`]);
//! visited sets are per-thread epoch arrays; candidates' vectors and lists
//! are prefetched; nothing is allocated per visited element.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use super::links::Links;

/// No pruner: the heuristic keeps this neighbor; also an empty slot (the
/// slots become [`Links`]).
const NONE: u32 = super::links::NONE;

/// What a build needs besides the vectors.
pub struct Spec<'a, D> {
    /// Level of each element.
    pub levels: &'a [u8],
    pub ef_construction: usize,
    /// List capacity at level 0 and above.
    pub cap0: usize,
    pub cap: usize,
    /// Distance between two vectors; any order-preserving form of the
    /// metric (squared L2, negative inner product).
    pub dist: D,
    /// A factor per element that `dist` is multiplied by for both ends
    /// (`dist(a, b) · scale[a] · scale[b]`): cosine measured on the vectors
    /// as stored, negative inner products times inverse norms — the order
    /// of `1 - cos` without a unit copy of every vector.
    pub scale: Option<&'a [f32]>,
    /// Whether a full level-0 list spares the entries that are an
    /// element's last ways in (see [`Shared::link_back`]): true for the
    /// metrics, false for inner product, where an element inside the data's
    /// hull is nobody's answer and sparing it displaces the links to the
    /// large-norm elements every search ends at (measured on pgvector's
    /// build-recall data, 10,000 × 3 `random() * random()`, 40 builds:
    /// recall@20 at ef 40 0.94–1.0, 4 builds below 0.97, when sparing;
    /// 0.995–1.0 with pgvector's rule, the farthest pruned entry leaves).
    pub spare_last_links: bool,
}

/// A (distance, element, order key) triple ordered by distance, then key.
#[derive(Clone, Copy, Debug)]
struct Near {
    d: f32,
    id: u32,
    key: u32,
}

impl PartialEq for Near {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Near {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d
            .total_cmp(&o.d)
            .then(self.key.cmp(&o.key))
            .then(self.id.cmp(&o.id))
    }
}

/// splitmix64's finalizer, folded to 32 bits: the tie order of `id` in the
/// lists of `owner`.
fn tie_key(owner: u32, id: u32) -> u32 {
    let mut x = ((owner as u64) << 32 | id as u64) ^ 0x9E37_79B9_7F4A_7C15;
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (x ^ (x >> 31)) as u32
}

use strata_base::prefetch::lines as prefetch;

/// A list entry while it is being (re)selected.
#[derive(Clone, Copy, Debug)]
struct Entry {
    near: Near,
    pruner: u32,
}

/// The vectors a build links: `dims` values each (floats, or a bit
/// index's packed words), or runs of any length (a sparse index's
/// [`strata_vector_core::sparse::Slots`]), vector `i` ending at `ends[i]`.
#[derive(Clone, Copy)]
pub struct Vectors<'a, T> {
    data: &'a [T],
    stride: Stride<'a>,
}

#[derive(Clone, Copy)]
enum Stride<'a> {
    Fixed(usize),
    Ends(&'a [usize]),
}

impl<'a, T> Vectors<'a, T> {
    pub fn fixed(data: &'a [T], dims: usize) -> Self {
        Vectors {
            data,
            stride: Stride::Fixed(dims.max(1)),
        }
    }

    /// Vector `i` is `data[ends[i - 1]..ends[i]]` (from 0 for the first).
    pub fn ragged(data: &'a [T], ends: &'a [usize]) -> Self {
        assert!(ends.last().is_none_or(|&e| e <= data.len()), "ends within the data");
        Vectors {
            data,
            stride: Stride::Ends(ends),
        }
    }

    pub fn len(&self) -> usize {
        match self.stride {
            Stride::Fixed(dims) => self.data.len() / dims,
            Stride::Ends(ends) => ends.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, i: usize) -> &'a [T] {
        match self.stride {
            Stride::Fixed(dims) => &self.data[i * dims..][..dims],
            Stride::Ends(ends) => &self.data[if i == 0 { 0 } else { ends[i - 1] }..ends[i]],
        }
    }
}

struct Shared<'a, T, D> {
    vectors: Vectors<'a, T>,
    n: usize,
    spec: &'a Spec<'a, D>,
    /// Element i's level-0 list is at slot `i * cap0`; its upper lists
    /// from `upper_slot[i]` on, `cap` slots each. Lists are filled from
    /// their first slot, NONE after the last entry.
    upper_slot: Vec<usize>,
    ids: Vec<AtomicU32>,
    /// Per slot: the distance to the owner (f32 bits, low half) and the
    /// pruner (high half).
    meta: Vec<AtomicU64>,
    locks: Vec<Mutex<()>>,
    /// How many level-0 lists name each element.
    incoming: Vec<AtomicU32>,
    /// Entry point: element and level.
    entry: Mutex<(u32, u8)>,
    next: AtomicUsize,
    done: AtomicUsize,
    abort: AtomicBool,
}

/// How many neighbors ahead a search asks for their vectors.
const PREFETCH_AHEAD: usize = 3;

/// Per-thread search state.
struct Scratch {
    /// The epoch of the search that last visited each element: 16 bits
    /// (cleared once every 65,535 searches) keep twice as many marks in
    /// the CPU caches as 32. (A hash set sized to one search was slower:
    /// SIFT-like 1M, 117 s against 111 s.)
    visited: Vec<u16>,
    epoch: u16,
    candidates: BinaryHeap<std::cmp::Reverse<Near>>,
    found: BinaryHeap<Near>,
    neighbors: Vec<u32>,
}

impl Scratch {
    fn new(n: usize) -> Scratch {
        Scratch {
            visited: vec![0; n],
            epoch: 0,
            candidates: BinaryHeap::new(),
            found: BinaryHeap::new(),
            neighbors: Vec::new(),
        }
    }

    fn next_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.visited.fill(0);
            self.epoch = 1;
        }
    }
}

impl<'a, T: Copy + Sync, D: Fn(&[T], &[T]) -> f32 + Sync> Shared<'a, T, D> {
    fn new(vectors: Vectors<'a, T>, spec: &'a Spec<'a, D>) -> Self {
        let n = vectors.len();
        let mut upper_slot = Vec::with_capacity(n);
        let mut slots = n * spec.cap0;
        for &level in spec.levels {
            upper_slot.push(slots);
            slots += level as usize * spec.cap;
        }
        use strata_base::huge_pages::prefer_huge_pages;
        prefer_huge_pages(vectors.data);
        let ids: Vec<AtomicU32> = (0..slots).map(|_| AtomicU32::new(NONE)).collect();
        let meta: Vec<AtomicU64> = (0..slots).map(|_| AtomicU64::new(0)).collect();
        prefer_huge_pages(&ids);
        prefer_huge_pages(&meta);
        Shared {
            vectors,
            n,
            spec,
            upper_slot,
            ids,
            meta,
            locks: (0..n).map(|_| Mutex::new(())).collect(),
            incoming: (0..n).map(|_| AtomicU32::new(0)).collect(),
            entry: Mutex::new((0, spec.levels.first().copied().unwrap_or(0))),
            next: AtomicUsize::new(1),
            done: AtomicUsize::new(1),
            abort: AtomicBool::new(false),
        }
    }

    fn vector(&self, i: u32) -> &[T] {
        self.vectors.get(i as usize)
    }

    /// Asks the CPU to fetch the start of element `i`'s vector.
    fn prefetch(&self, i: u32) {
        let v = self.vectors.get(i as usize);
        let bytes = std::mem::size_of_val(v);
        prefetch(v.as_ptr() as *const i8, bytes.div_ceil(64).min(16));
    }

    fn d(&self, a: u32, b: u32) -> f32 {
        self.d_to(a, self.vector(a), b)
    }

    /// [`Self::d`] with element `a`'s vector `va` at hand.
    fn d_to(&self, a: u32, va: &[T], b: u32) -> f32 {
        let d = (self.spec.dist)(va, self.vector(b));
        match self.spec.scale {
            Some(s) => d * s[a as usize] * s[b as usize],
            None => d,
        }
    }

    /// First slot of element `i`'s list at `level`.
    fn slot(&self, i: u32, level: usize) -> usize {
        if level == 0 {
            i as usize * self.spec.cap0
        } else {
            self.upper_slot[i as usize] + (level - 1) * self.spec.cap
        }
    }

    /// Asks the CPU to fetch element `i`'s whole list at `level`, with
    /// distances and verdicts (before a back link).
    fn prefetch_entries(&self, i: u32, level: usize) {
        let s = self.slot(i, level);
        let cap = self.cap(level);
        prefetch(self.ids[s..].as_ptr() as *const i8, (cap * 4).div_ceil(64));
        prefetch(self.meta[s..].as_ptr() as *const i8, (cap * 8).div_ceil(64));
    }

    /// Asks the CPU to fetch the start of element `i`'s list at `level`.
    fn prefetch_list(&self, i: u32, level: usize) {
        prefetch(self.ids[self.slot(i, level)..].as_ptr() as *const i8, 1);
    }

    fn cap(&self, level: usize) -> usize {
        if level == 0 {
            self.spec.cap0
        } else {
            self.spec.cap
        }
    }

    /// Element `i`'s slots at `level` (ids up to the first NONE: lists
    /// never shrink, so an unlocked reader needs no length).
    fn slots(&self, i: u32, level: usize) -> &[AtomicU32] {
        let s = self.slot(i, level);
        &self.ids[s..s + self.cap(level)]
    }

    /// Element `i`'s neighbors at `level`, read without its lock.
    fn read_ids(&self, i: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        out.extend(
            self.slots(i, level)
                .iter()
                .map(|x| x.load(Relaxed))
                .take_while(|&x| x != NONE),
        );
    }

    /// A full list drops a pruned entry its pruner links to only while
    /// more level-0 lists than this (m / 2) link to its element.
    fn named_keep(&self) -> u32 {
        (self.spec.cap0 / 4).max(1) as u32
    }

    /// Whether element `i`'s list at `level` names `x` (unlocked read).
    fn names(&self, i: u32, level: usize, x: u32) -> bool {
        self.slots(i, level)
            .iter()
            .map(|y| y.load(Relaxed))
            .take_while(|&y| y != NONE)
            .any(|y| y == x)
    }

    /// Element `i`'s list at `level` as entries; the caller holds its lock.
    fn read_entries(&self, i: u32, level: usize, out: &mut Vec<Entry>) {
        out.clear();
        let s = self.slot(i, level);
        for k in s..s + self.cap(level) {
            let id = self.ids[k].load(Relaxed);
            if id == NONE {
                break;
            }
            let meta = self.meta[k].load(Relaxed);
            out.push(Entry {
                near: Near {
                    d: f32::from_bits(meta as u32),
                    id,
                    key: tie_key(i, id),
                },
                pruner: (meta >> 32) as u32,
            });
        }
    }

    /// Stores element `i`'s list at `level`; the caller holds its lock.
    fn write_entries(&self, i: u32, level: usize, entries: &[Entry]) {
        let s = self.slot(i, level);
        for (k, e) in entries.iter().enumerate() {
            self.meta[s + k].store((e.pruner as u64) << 32 | e.near.d.to_bits() as u64, Relaxed);
            self.ids[s + k].store(e.near.id, Relaxed);
        }
        // a shorter list than before (only a new element's own, replacing
        // early back links) ends with NONE
        for slot in &self.ids[s + entries.len()..s + self.cap(level)] {
            if slot.swap(NONE, Relaxed) == NONE {
                break;
            }
        }
    }

    /// Best-first search of one layer from `entries`; the `ef` nearest,
    /// nearest first, into `out`.
    fn search(
        &self,
        sc: &mut Scratch,
        q: u32,
        entries: &[Near],
        ef: usize,
        level: usize,
        out: &mut Vec<Near>,
    ) {
        sc.next_epoch();
        sc.candidates.clear();
        sc.found.clear();
        let qv = self.vector(q);
        sc.visited[q as usize] = sc.epoch;
        for &e in entries {
            if sc.visited[e.id as usize] != sc.epoch {
                sc.visited[e.id as usize] = sc.epoch;
                sc.candidates.push(std::cmp::Reverse(e));
                sc.found.push(e);
            }
        }
        while sc.found.len() > ef {
            sc.found.pop();
        }
        let mut nbrs = std::mem::take(&mut sc.neighbors);
        while let Some(std::cmp::Reverse(c)) = sc.candidates.pop() {
            if sc.found.len() >= ef && sc.found.peek().is_some_and(|w| c.d > w.d) {
                break;
            }
            self.read_ids(c.id, level, &mut nbrs);
            nbrs.retain(|&x| {
                let seen = &mut sc.visited[x as usize];
                let new = *seen != sc.epoch;
                *seen = sc.epoch;
                new
            });
            // Each vector is a few cache lines from anywhere in memory: ask
            // for whole vectors a few neighbors ahead of the one measured,
            // so the requests in flight stay within what the core can
            // track (asked for all at once, the prefetches themselves
            // stalled: half of this loop's time sat on them).
            for &x in nbrs.iter().take(PREFETCH_AHEAD) {
                self.prefetch(x);
            }
            for (k, &x) in nbrs.iter().enumerate() {
                if let Some(&ahead) = nbrs.get(k + PREFETCH_AHEAD) {
                    self.prefetch(ahead);
                }
                let d = self.d_to(q, qv, x);
                if sc.found.len() < ef || sc.found.peek().is_some_and(|w| d < w.d) {
                    let nr = Near { d, id: x, key: tie_key(q, x) };
                    self.prefetch_list(x, level);
                    sc.candidates.push(std::cmp::Reverse(nr));
                    sc.found.push(nr);
                    if sc.found.len() > ef {
                        sc.found.pop();
                    }
                }
            }
        }
        sc.neighbors = nbrs;
        out.clear();
        out.extend(sc.found.drain());
        out.sort_unstable();
    }

    /// The first kept entry among `kept` (indexes into `list`) that prunes
    /// `e` (is nearer to it than the owner is), or NONE.
    fn pruner_of(&self, e: &Near, list: &[Entry], kept: &[usize]) -> u32 {
        let v = self.vector(e.id);
        for &k in kept {
            let kid = list[k].near.id;
            if self.d_to(e.id, v, kid) < e.d {
                return kid;
            }
        }
        NONE
    }

    /// A new element's list at one level from its search's candidates
    /// (nearest first): the heuristic's choice, then the nearest pruned
    /// ones up to the capacity (pgvector's filled lists). Verdicts recorded.
    fn select_own(&self, candidates: &[Near], cap: usize, out: &mut Vec<Entry>) {
        let mut kept_idx: Vec<usize> = Vec::with_capacity(cap);
        let mut all: Vec<Entry> = Vec::with_capacity(candidates.len());
        for &c in candidates {
            if kept_idx.len() >= cap {
                break;
            }
            let pruner = self.pruner_of(&c, &all, &kept_idx);
            if pruner == NONE {
                kept_idx.push(all.len());
            }
            all.push(Entry { near: c, pruner });
        }
        out.clear();
        let mut room = cap - kept_idx.len();
        for e in all {
            if e.pruner == NONE {
                out.push(e);
            } else if room > 0 {
                room -= 1;
                out.push(e);
            }
        }
    }

    /// Element `owner`'s list at `level` takes a link to `new` (at
    /// distance `d`): appended while there is room, else the heuristic's
    /// verdicts are brought up to date — the new entry against the kept
    /// ones before it; kept entries after it against the newly kept ones
    /// only; pruned entries again only when their pruner lost its place —
    /// and one entry leaves: the farthest pruned one whose element other
    /// level-0 lists link to as well (so none loses its last incoming link,
    /// what [`super::select_neighbors_sparing`] and
    /// [`super::link_unreachable`] see to), else the farthest pruned; when
    /// every entry is kept, the farthest with other links in.
    ///
    /// Without [`Spec::spare_last_links`], pgvector's rule: the farthest
    /// pruned entry leaves, else the farthest.
    ///
    /// Not the on-disk inserts' sparing rule (drop a pruned entry that a
    /// kept neighbor links to): run over a whole build, it dropped the near
    /// entries a hub links to from list after list, and under inner
    /// product left the largest products one incoming link each.
    fn link_back(&self, owner: u32, level: usize, new: u32, d: f32, list: &mut Vec<Entry>) {
        let _guard = self.locks[owner as usize].lock().unwrap_or_else(|p| p.into_inner());
        self.link_locked(owner, level, new, d, list);
    }

    /// [`Self::link_back`] with the owner's lock held.
    fn link_locked(&self, owner: u32, level: usize, new: u32, d: f32, list: &mut Vec<Entry>) {
        self.read_entries(owner, level, list);
        if list.iter().any(|e| e.near.id == new) {
            return;
        }
        let near = Near { d, id: new, key: tie_key(owner, new) };
        let p = list.partition_point(|e| e.near < near);
        list.insert(p, Entry { near, pruner: NONE });
        let cap = self.cap(level);
        let mut kept: Vec<usize> = Vec::with_capacity(list.len());
        let mut added: Vec<usize> = Vec::new();
        let mut lost_kept = false;
        for j in 0..list.len() {
            let e = list[j];
            if j < p {
                if e.pruner == NONE {
                    kept.push(j);
                }
                continue;
            }
            let pruner = if j == p {
                let pr = self.pruner_of(&e.near, list, &kept);
                if pr == NONE {
                    added.push(j);
                }
                pr
            } else if e.pruner == NONE {
                let pr = self.pruner_of(&e.near, list, &added);
                lost_kept |= pr != NONE;
                pr
            } else if lost_kept && !kept.iter().any(|&k| list[k].near.id == e.pruner) {
                let pr = self.pruner_of(&e.near, list, &kept);
                if pr == NONE {
                    added.push(j);
                }
                pr
            } else {
                e.pruner
            };
            list[j].pruner = pruner;
            if pruner == NONE {
                kept.push(j);
            }
        }
        if list.len() > cap {
            // `claim(j)`: entry j's element has other level-0 links in (so
            // none loses its last way in: copies of one vector, all kept,
            // would); its count is taken down if so
            let claim_above = |j: usize, floor: u32| {
                level > 0
                    || self.incoming[list[j].near.id as usize]
                        .fetch_update(Relaxed, Relaxed, |c| (c > floor).then(|| c - 1))
                        .is_ok()
            };
            let claim = |j: usize| claim_above(j, 1);
            let pruned = || (0..list.len()).rev().filter(|&j| list[j].pruner != NONE);
            let (leaves, counted) = if !self.spec.spare_last_links {
                (pruned().next().unwrap_or(list.len() - 1), false)
            } else if kept.len() == list.len() {
                match (0..list.len()).rev().find(|&j| claim(j)) {
                    Some(j) => (j, true),
                    None => (list.len() - 1, false),
                }
            } else if let Some(j) = pruned().find(|&j| {
                // farthest first, one its pruner links to as well (the
                // heuristic's redundant link), unless few lists link to it
                self.names(list[j].pruner, level, list[j].near.id) && claim_above(j, self.named_keep())
            }) {
                (j, true)
            } else if let Some(j) = pruned().find(|&j| claim(j)) {
                (j, true)
            } else {
                (pruned().next().unwrap_or(list.len() - 1), false)
            };
            if leaves == p {
                // the new entry itself: nothing changed (it was pruned or
                // last, so no verdict moved); its count was not raised
                if level == 0 && counted {
                    self.incoming[new as usize].fetch_add(1, Relaxed);
                }
                return;
            }
            if level == 0 && !counted {
                self.incoming[list[leaves].near.id as usize].fetch_sub(1, Relaxed);
            }
            list.remove(leaves);
        }
        if level == 0 {
            self.incoming[new as usize].fetch_add(1, Relaxed);
        }
        self.write_entries(owner, level, list);
    }

    /// Inserts element `i` into the graph.
    fn insert(&self, sc: &mut Scratch, i: u32, found: &mut Vec<Near>, list: &mut Vec<Entry>) {
        let level = self.spec.levels[i as usize] as usize;
        let (ep, top) = *self.entry.lock().unwrap_or_else(|p| p.into_inner());
        let top = top as usize;
        let mut eps = vec![Near { d: self.d(i, ep), id: ep, key: 0 }];
        for l in (level + 1..=top).rev() {
            self.search(sc, i, &eps, 1, l, found);
            if !found.is_empty() {
                eps.clone_from(found);
            }
        }
        let mut chosen = Vec::new();
        for l in (0..=level.min(top)).rev() {
            self.search(sc, i, &eps, self.spec.ef_construction, l, found);
            for f in found.iter_mut() {
                f.key = tie_key(i, f.id);
            }
            found.sort_unstable();
            self.select_own(found, self.cap(l), &mut chosen);
            if l == 0 {
                for e in &chosen {
                    self.incoming[e.near.id as usize].fetch_add(1, Relaxed);
                }
            }
            {
                let _guard = self.locks[i as usize].lock().unwrap_or_else(|p| p.into_inner());
                // Another thread's element can link back here before this
                // list is written: one that found `i` at the level above
                // starts this level's search from it. Those links join the
                // list as later back links do.
                self.read_entries(i, l, list);
                let early: Vec<Entry> = list
                    .iter()
                    .filter(|e| !chosen.iter().any(|c| c.near.id == e.near.id))
                    .copied()
                    .collect();
                self.write_entries(i, l, &chosen);
                for e in early {
                    if l == 0 {
                        // counted when it came; counted again as it rejoins
                        self.incoming[e.near.id as usize].fetch_sub(1, Relaxed);
                    }
                    self.link_locked(i, l, e.near.id, e.near.d, list);
                }
            }
            for (k, e) in chosen.iter().enumerate() {
                if let Some(next) = chosen.get(k + 2) {
                    self.prefetch_entries(next.near.id, l);
                }
                self.link_back(e.near.id, l, i, e.near.d, list);
            }
            if !found.is_empty() {
                eps.clone_from(found);
            }
        }
        if level > top {
            let mut entry = self.entry.lock().unwrap_or_else(|p| p.into_inner());
            if level > entry.1 as usize {
                *entry = (i, level as u8);
            }
        }
    }

    /// Inserts elements until none is left or the build is aborted;
    /// `tick` (the caller's thread only) runs every 256 elements.
    fn work(&self, mut tick: Option<&mut dyn FnMut(usize)>) {
        let mut sc = Scratch::new(self.n);
        let (mut found, mut list) = (Vec::new(), Vec::new());
        let mut count = 0usize;
        while !self.abort.load(Relaxed) {
            let i = self.next.fetch_add(1, Relaxed);
            if i >= self.n {
                break;
            }
            self.insert(&mut sc, i as u32, &mut found, &mut list);
            let done = self.done.fetch_add(1, Relaxed) + 1;
            count += 1;
            if count.is_multiple_of(256) {
                if let Some(t) = tick.as_mut() {
                    t(done);
                }
            }
        }
    }
}

/// Sets the abort flag when the caller's thread unwinds (an interrupt
/// raised by `tick`), so that the pool threads stop at their next element.
struct AbortOnUnwind<'a>(&'a AtomicBool);

impl Drop for AbortOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Relaxed);
        }
    }
}

/// Builds the graph of the vectors in `data` (`dims` values each: floats,
/// or packed bits, whatever `spec.dist` measures) with the calling thread and `helpers` of
/// `pool`'s threads. `tick(done)` runs on the calling thread every few
/// hundred elements (progress, interrupts — it may unwind; the helpers then
/// stop). Returns `links[i][l]`: element `i`'s neighbors at level `l`,
/// nearest first.
pub fn build_parallel<T, D>(
    data: &[T],
    dims: usize,
    spec: &Spec<'_, D>,
    pool: &rayon::ThreadPool,
    helpers: usize,
    tick: impl FnMut(usize),
) -> Links
where
    T: Copy + Sync,
    D: Fn(&[T], &[T]) -> f32 + Sync,
{
    build_vectors(Vectors::fixed(data, dims), spec, pool, helpers, tick)
}

/// [`build_parallel`] over any [`Vectors`] (a sparse index's runs of slots).
pub fn build_vectors<T, D>(
    vectors: Vectors<'_, T>,
    spec: &Spec<'_, D>,
    pool: &rayon::ThreadPool,
    helpers: usize,
    mut tick: impl FnMut(usize),
) -> Links
where
    T: Copy + Sync,
    D: Fn(&[T], &[T]) -> f32 + Sync,
{
    let n = vectors.len();
    assert_eq!(spec.levels.len(), n, "one level per vector");
    assert!(spec.cap0 < u16::MAX as usize && spec.cap < u16::MAX as usize);
    if n == 0 {
        return Links::new(spec.cap0, spec.cap, &[]);
    }
    let shared = Shared::new(vectors, spec);
    {
        let g = &shared;
        pool.in_place_scope(|s| {
            for _ in 0..helpers {
                s.spawn(move |_| g.work(None));
            }
            // inside the scope, which waits for the helpers before an unwind
            // leaves it: the flag must be up by then, or they build the
            // rest of the graph first (a cancel waited minutes)
            let _abort = AbortOnUnwind(&g.abort);
            g.work(Some(&mut tick));
        });
    }
    // The slot array becomes the lists (in place: same size and alignment);
    // distances, verdicts and locks go first.
    let Shared { upper_slot, ids, meta, locks, incoming, .. } = shared;
    drop((meta, locks, incoming));
    let ids: Vec<u32> = ids.into_iter().map(AtomicU32::into_inner).collect();
    Links::from_slots(spec.cap0, spec.cap, upper_slot, ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
    }

    #[test]
    fn a_full_list_updates_its_verdicts_like_a_fresh_selection() {
        // after many back links, each list's stored verdicts equal the
        // heuristic run from scratch over the list (nearest first)
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f32 / (1u64 << 53) as f32
        };
        let data: Vec<Vec<f32>> = (0..600).map(|_| (0..4).map(|_| rnd()).collect()).collect();
        let levels = vec![0u8; data.len()];
        let l2 = |a: &[f32], b: &[f32]| strata_vector_core::kernels::l2_squared(a, b);
        let spec = Spec {
            levels: &levels,
            ef_construction: 32,
            cap0: 8,
            cap: 4,
            dist: l2,
            scale: None,
            spare_last_links: true,
        };
        let flat = data.concat();
        let shared = Shared::new(Vectors::fixed(&flat, 4), &spec);
        let mut sc = Scratch::new(data.len());
        let (mut found, mut list) = (Vec::new(), Vec::new());
        for i in 1..data.len() as u32 {
            shared.insert(&mut sc, i, &mut found, &mut list);
        }
        let mut checked = 0;
        for i in 0..data.len() as u32 {
            shared.read_entries(i, 0, &mut list);
            assert!(list.windows(2).all(|w| w[0].near < w[1].near), "element {i} sorted");
            let mut kept: Vec<usize> = Vec::new();
            for j in 0..list.len() {
                let fresh = shared.pruner_of(&list[j].near, &list, &kept);
                assert_eq!(fresh == NONE, list[j].pruner == NONE, "element {i} entry {j}");
                if fresh == NONE {
                    kept.push(j);
                } else {
                    // a stored pruner is a kept entry nearer to it than the owner
                    let pr = list[j].pruner;
                    assert!(kept.iter().any(|&k| list[k].near.id == pr));
                    assert!(shared.d(pr, list[j].near.id) < list[j].near.d);
                }
                assert_eq!(list[j].near.d, shared.d(i, list[j].near.id));
                checked += 1;
            }
        }
        assert!(checked > 600 * 6);
    }

    #[test]
    fn parallel_build_gives_a_searchable_graph() {
        use crate::graph::tests::Rng;
        use crate::graph::{built, descend, random_level, search_layer, Building};
        let mut rng = Rng(0x5EED);
        let (n, dims, m) = (3000, 16, 8);
        let data: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..dims).map(|_| rng.next_f64() as f32).collect())
            .collect();
        let levels: Vec<u8> = (0..n).map(|_| random_level(1.0 - rng.next_f64(), m, 15)).collect();
        let l2 = |a: &[f32], b: &[f32]| strata_vector_core::kernels::l2_squared(a, b);
        let spec = Spec {
            levels: &levels,
            ef_construction: 64,
            cap0: 2 * m,
            cap: m,
            dist: l2,
            scale: None,
            spare_last_links: true,
        };
        let mut ticks = 0;
        let links = build_parallel(&data.concat(), dims, &spec, &pool(2), 2, |_| ticks += 1).to_nested();
        assert!(ticks > 0);
        for (i, lists) in links.iter().enumerate() {
            assert_eq!(lists.len(), levels[i] as usize + 1);
            for (l, list) in lists.iter().enumerate() {
                let cap = if l == 0 { 2 * m } else { m };
                assert!(list.len() <= cap && !list.contains(&i), "element {i} level {l}");
                assert!(list.iter().all(|&x| levels[x] as usize >= l));
            }
        }
        let mut g = Building::from_links(&data, &links, |a: &[f32], b: &[f32]| {
            crate::metric::Metric::L2.distance(a, b)
        });
        let top = (0..n).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
        let mut hits = 0;
        for _ in 0..100 {
            let q: Vec<f32> = (0..dims).map(|_| rng.next_f64() as f32).collect();
            let mut exact: Vec<usize> = (0..n).collect();
            exact.sort_by(|&a, &b| l2(&data[a], &q).total_cmp(&l2(&data[b], &q)));
            let ep = descend(&mut g, &q, built(top), levels[top] as usize, 0);
            hits += search_layer(&mut g, &q, &[ep], 40, 0)
                .iter()
                .take(10)
                .filter(|s| exact[..10].contains(&(s.id.block as usize)))
                .count();
        }
        assert!(hits >= 950, "recall@10 {}", hits as f64 / 1000.0);
    }

    #[test]
    fn sparse_vectors_of_any_length_give_a_searchable_graph() {
        use crate::graph::tests::Rng;
        use crate::graph::{built, descend, random_level, search_layer, Building};
        use crate::metric::Metric;
        use strata_vector_core::sparse::{Slots, Sparse};
        let mut rng = Rng(0xC0FFEE);
        let (n, m, dim) = (2000, 8, 30_000);
        // 40 topics of 60 terms each; a vector draws 30 to 60 of its topic's
        // terms (lengths vary twofold) with random weights
        let topics: Vec<Vec<i32>> = (0..40)
            .map(|_| {
                let mut t: Vec<i32> = (0..60).map(|_| (rng.next_u64() % dim) as i32).collect();
                t.sort_unstable();
                t.dedup();
                t
            })
            .collect();
        let random = |rng: &mut Rng| {
            let t = &topics[(rng.next_u64() % 40) as usize];
            let keep = 30 + (rng.next_u64() % 31) as usize;
            let mut v = Sparse { dim: dim as i32, indices: vec![], values: vec![] };
            for &i in t.iter().take(keep) {
                v.indices.push(i);
                v.values.push(rng.next_f64() as f32 + 0.1);
            }
            Slots::encode(v.view())
        };
        let data: Vec<Vec<f32>> = (0..n).map(|_| random(&mut rng)).collect();
        let ends: Vec<usize> = data.iter().scan(0, |end, v| { *end += v.len(); Some(*end) }).collect();
        let flat = data.concat();
        let levels: Vec<u8> = (0..n).map(|_| random_level(1.0 - rng.next_f64(), m, 15)).collect();
        let spec = Spec {
            levels: &levels,
            ef_construction: 64,
            cap0: 2 * m,
            cap: m,
            dist: Metric::SparseL2.comparable(),
            scale: None,
            spare_last_links: true,
        };
        let links = build_vectors(Vectors::ragged(&flat, &ends), &spec, &pool(2), 2, |_| {}).to_nested();
        let mut g = Building::from_links(&data, &links, |a: &[f32], b: &[f32]| Metric::SparseL2.distance(a, b));
        let top = (0..n).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).unwrap();
        let mut hits = 0;
        for _ in 0..100 {
            let q = random(&mut rng);
            let d = |i: usize| Metric::SparseL2.distance(&data[i], &q);
            let mut exact: Vec<usize> = (0..n).collect();
            exact.sort_by(|&a, &b| d(a).total_cmp(&d(b)));
            let ep = descend(&mut g, &q, built(top), levels[top] as usize, 0);
            hits += search_layer(&mut g, &q, &[ep], 100, 0)
                .iter()
                .take(10)
                .filter(|s| d(s.id.block as usize) <= d(exact[9]))
                .count();
        }
        assert!(hits >= 950, "recall@10 {}", hits as f64 / 1000.0);
    }

    #[test]
    fn an_interrupt_stops_every_thread() {
        let data: Vec<Vec<f32>> = (0..10_000).map(|i| vec![i as f32, (i % 7) as f32]).collect();
        let levels = vec![0u8; data.len()];
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let l2 = |a: &[f32], b: &[f32]| {
            calls.fetch_add(1, Relaxed);
            strata_vector_core::kernels::l2_squared(a, b)
        };
        let spec = Spec {
            levels: &levels,
            ef_construction: 16,
            cap0: 8,
            cap: 4,
            dist: l2,
            scale: None,
            spare_last_links: true,
        };
        let p = pool(2);
        build_parallel(&data.concat(), 2, &spec, &p, 2, |_| {});
        let full = calls.swap(0, Relaxed);
        // the caller's thread raises at its first tick (256 elements in):
        // the helpers must stop at their next element, not finish the graph
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            build_parallel(&data.concat(), 2, &spec, &p, 2, |_| panic!("canceled"))
        }));
        assert!(r.is_err());
        let canceled = calls.load(Relaxed);
        assert!(canceled < full / 2, "{canceled} distances after the interrupt's build, {full} in a whole one");
    }
}
