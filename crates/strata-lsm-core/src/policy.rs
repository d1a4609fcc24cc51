//! The compaction policy of `lsm` tables. Pure: it sees a table's runs as
//! numbers and says which of them to merge next.
//!
//! Runs cover disjoint rowid ranges, and a run's rowids are older than those
//! of every run after it: a row is found by its rowid in exactly one run,
//! however many runs there are, and scans read the runs one after the other.
//! So, unlike a key-ordered LSM tree, nothing is gained by merging young runs
//! into old ones — doing so only rewrites the old data again. Merges here
//! keep the number of runs small and drop garbage; the policy is *tiered*:
//! runs of one level are merged with each other into one run of the next
//! level, never with the runs already there. Levels never increase towards
//! the young end (older data sits deeper), so the runs of one level are a
//! contiguous stretch.
//!
//! Rules, checked in this order (the first that applies is the next merge):
//!
//! 0. **Freezing.** A run whose dead versions carry ids older than VACUUM's
//!    freeze cutoff (all of them under `VACUUM (FREEZE)`) is rewritten on its
//!    own, at its level, without them — else relfrozenxid could not pass them.
//! 1. **Garbage.** A run whose garbage — versions dead to every snapshot, and
//!    redirects that still carry the body of the version they were (see
//!    `chain`), both counted by VACUUM's sweep — is at least `gc_ratio` of its
//!    versions is rewritten on its own, at its level, without it.
//! 2. **Level 1 full.** When level 1 holds `level1_runs` runs (at least
//!    two), they become one run of level 2.
//! 3. **A level over its size.** Level k ≥ 2 may hold `level_base ×
//!    size_ratio^(k-2)` bytes; beyond that its runs (two or more) become one
//!    run of level k + 1. (Bulk loads place runs at the level that holds
//!    them, so several loads side by side at one level are not rewritten
//!    before that level is full.)
//! 4. **Too many runs.** Past half the metapage's room for runs, the
//!    shallowest level with two or more runs is merged into the next.
//!
//! Flushes add a run at level 1, or deeper when it is large (see
//! [`flush_level`]); bulk loads go where their size fits ([`ingest_level`]).
//! Each byte is rewritten about once per level it passes through (a leveled
//! tree rewrites it about `size_ratio` times per level), and the levels grow
//! with the logarithm of the table size, base `size_ratio`.

/// What the policy needs to know of one run (runs are given in rowid order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStat {
    pub level: u16,
    /// Bytes of its data pages.
    pub bytes: u64,
    pub versions: u64,
    /// Versions dead to every snapshot (0 when not counted).
    pub dead: u64,
    /// Redirects whose version's body is still stored (a rewrite keeps
    /// their header alone; 0 when not counted).
    pub bodies: u64,
    /// Some dead version carries an xid or MultiXact older than VACUUM's
    /// freeze cutoff: only a rewrite lets relfrozenxid / relminmxid pass it.
    pub holds_back_freezing: bool,
}

/// The GUC-controlled knobs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Policy {
    /// Growth factor between consecutive levels (≥ 2).
    pub size_ratio: u64,
    /// Runs of one level that trigger their merge into the next (below 2
    /// counts as 2).
    pub level1_runs: usize,
    /// Bytes level 2 may hold before it is merged into level 3.
    pub level_base: u64,
    /// Dead fraction that makes a run be rewritten (> 1.0: never).
    pub gc_ratio: f64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            size_ratio: 10,
            level1_runs: 4,
            level_base: 64 << 20,
            gc_ratio: 0.5,
        }
    }
}

/// One merge: runs `first..=last` (indexes into the rowid-ordered list)
/// become runs of level `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Merge {
    pub first: usize,
    pub last: usize,
    pub level: u16,
    pub why: Reason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Freezing,
    Garbage,
    LevelFull,
    LevelOverSize,
    TooManyRuns,
}

impl Reason {
    pub fn describe(&self) -> &'static str {
        match self {
            Reason::Freezing => "dead versions older than the freeze cutoff",
            Reason::Garbage => "garbage",
            Reason::LevelFull => "level 1 full",
            Reason::LevelOverSize => "level over its size",
            Reason::TooManyRuns => "too many runs",
        }
    }
}

/// Byte budget of level `k` (k ≥ 2).
pub fn level_capacity(p: &Policy, k: u16) -> u64 {
    let mut cap = p.level_base.max(1);
    for _ in 2..k {
        cap = cap.saturating_mul(p.size_ratio.max(2));
    }
    cap
}

/// The contiguous stretch of runs of level `k` (for k = 1: of level 1 or
/// below), if any.
fn stretch(runs: &[RunStat], k: u16) -> Option<(usize, usize)> {
    let at = |r: &RunStat| r.level == k || (k == 1 && r.level < 1);
    let first = runs.iter().position(at)?;
    let last = runs.iter().rposition(at)?;
    Some((first, last))
}

/// Runs a table may hold before rule 4 merges for the count alone.
const MANY_RUNS: usize = super::format::MAX_RUNS / 2;

/// The next merge the policy wants, if any.
pub fn next_merge(runs: &[RunStat], p: &Policy) -> Option<Merge> {
    let alone = |i: usize, why| Merge {
        first: i,
        last: i,
        level: runs[i].level,
        why,
    };
    if let Some(i) = runs
        .iter()
        .position(|r| r.holds_back_freezing && r.dead > 0)
    {
        return Some(alone(i, Reason::Freezing));
    }
    if let Some(i) = runs.iter().position(|r| {
        let garbage = r.dead + r.bodies;
        garbage > 0 && garbage as f64 >= p.gc_ratio * r.versions as f64
    }) {
        return Some(alone(i, Reason::Garbage));
    }
    let deepest = runs.iter().map(|r| r.level.max(1)).max().unwrap_or(0);
    let levels = || (1..=deepest).filter_map(|k| stretch(runs, k).map(|(f, l)| (k, f, l)));
    let into_next = |(k, first, last): (u16, usize, usize), why| Merge {
        first,
        last,
        level: k + 1,
        why,
    };
    if let Some((f, l)) = stretch(runs, 1).filter(|&(f, l)| l - f + 1 >= p.level1_runs.max(2)) {
        return Some(into_next((1, f, l), Reason::LevelFull));
    }
    if let Some(s) = levels().find(|&(k, f, l)| {
        let bytes: u64 = runs[f..=l].iter().map(|r| r.bytes).sum();
        k >= 2 && l > f && bytes > level_capacity(p, k)
    }) {
        return Some(into_next(s, Reason::LevelOverSize));
    }
    if runs.len() > MANY_RUNS {
        if let Some(s) = levels().find(|&(_, f, l)| l > f) {
            return Some(into_next(s, Reason::TooManyRuns));
        }
    }
    None
}

/// The level of a flush's runs `runs[from..]` (the young end): level 1,
/// unless together they hold at least `level_base / size_ratio` bytes (a
/// flush of a large L0, e.g. after a load into a table with indexes): then
/// the level a bulk load of their size takes, so that the next flushes,
/// merged with each other, do not rewrite it.
pub fn flush_level(runs: &[RunStat], from: usize, p: &Policy) -> u16 {
    let bytes: u64 = runs[from.min(runs.len())..].iter().map(|r| r.bytes).sum();
    if bytes.saturating_mul(p.size_ratio.max(2)) < p.level_base.max(1) {
        return 1;
    }
    ingest_level(runs, from, p)
}

/// The level of a bulk load's runs `runs[from..]` (the young end): the
/// shallowest level k ≥ 2 that holds them beside the level-k runs already
/// there, as a leveled tree ingests a sorted file below its small levels —
/// so the next VACUUM does not rewrite a load that only filled level 1 by
/// count. Levels never increase towards the young end, so a load after a
/// run of level j gets at most j (after a level-1 run: 1, as a flush).
pub fn ingest_level(runs: &[RunStat], from: usize, p: &Policy) -> u16 {
    let (older, load) = runs.split_at(from.min(runs.len()));
    let cap = older.last().map_or(u16::MAX, |r| r.level.max(1));
    let bytes: u64 = load.iter().map(|r| r.bytes).sum();
    let deepest = older.iter().map(|r| r.level).max().unwrap_or(2).max(2);
    let mut k = 2u16;
    while k < cap && k < deepest.saturating_add(8) {
        let there: u64 = older.iter().filter(|r| r.level == k).map(|r| r.bytes).sum();
        if there + bytes <= level_capacity(p, k) {
            break;
        }
        k += 1;
    }
    k.min(cap)
}

/// Whether levels never increase towards the young end.
pub fn levels_ordered(runs: &[RunStat]) -> bool {
    runs.windows(2).all(|w| w[0].level >= w[1].level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_loads_go_below_level_1_where_they_fit() {
        let p = Policy::default();
        let mb = 1u64 << 20;
        // an empty table: a 61 MB load fits level 2 (64 MB), a 300 MB one level 3
        let load = vec![run(1, 2 * mb), run(1, 4 * mb), run(1, 55 * mb)];
        assert_eq!(ingest_level(&load, 0, &p), 2);
        assert!(next_merge(&relabel(&load, 0, 2), &p).is_none(), "nothing to merge after the load");
        let big = vec![run(1, 100 * mb), run(1, 200 * mb)];
        assert_eq!(ingest_level(&big, 0, &p), 3);
        assert!(next_merge(&relabel(&big, 0, 3), &p).is_none());
        // after a level-2 run holding 40 MB: 101 MB would need level 3, but
        // a load never goes deeper than the run before it
        let mut t = vec![run(3, 500 * mb), run(2, 40 * mb)];
        t.extend(load.iter().copied());
        assert_eq!(ingest_level(&t, 2, &p), 2);
        // after a level-1 run (a flush): level 1, as before
        let mut t = vec![run(2, 10 * mb), run(1, mb)];
        t.extend(load.iter().copied());
        assert_eq!(ingest_level(&t, 2, &p), 1);
        // the ordering holds whatever the load
        for from in 0..t.len() {
            let k = ingest_level(&t, from, &p);
            assert!(levels_ordered(&relabel(&t, from, k)));
        }
    }

    fn relabel(runs: &[RunStat], from: usize, level: u16) -> Vec<RunStat> {
        let mut r = runs.to_vec();
        r[from..].iter_mut().for_each(|x| x.level = level);
        r
    }

    fn run(level: u16, bytes: u64) -> RunStat {
        RunStat {
            level,
            bytes,
            versions: bytes / 100,
            dead: 0,
            bodies: 0,
            holds_back_freezing: false,
        }
    }

    /// Applies a merge the way compaction does: the stretch becomes one run
    /// of the merge's level, without its dead versions. Returns bytes written.
    fn apply(runs: &mut Vec<RunStat>, m: &Merge) -> u64 {
        let src = &runs[m.first..=m.last];
        let versions: u64 = src.iter().map(|r| r.versions - r.dead).sum();
        let bytes: u64 = src
            .iter()
            .map(|r| r.bytes - r.bytes * (r.dead + r.bodies) / r.versions.max(1))
            .sum();
        let merged = RunStat {
            level: m.level,
            bytes,
            versions,
            dead: 0,
            bodies: 0,
            holds_back_freezing: false,
        };
        runs.splice(m.first..=m.last, [merged]);
        bytes
    }

    fn settle(runs: &mut Vec<RunStat>, p: &Policy) -> u64 {
        let mut written = 0;
        let mut steps = 0;
        while let Some(m) = next_merge(runs, p) {
            written += apply(runs, &m);
            assert!(
                levels_ordered(runs),
                "levels out of order after {m:?}: {runs:?}"
            );
            steps += 1;
            assert!(steps < 100, "policy does not settle: {runs:?}");
        }
        written
    }

    #[test]
    fn nothing_to_do_on_few_runs() {
        let p = Policy::default();
        assert_eq!(next_merge(&[], &p), None);
        assert_eq!(next_merge(&[run(1, 1000), run(1, 1000)], &p), None);
        assert_eq!(
            next_merge(&[run(3, 500 << 20), run(2, 1 << 20), run(1, 1000)], &p),
            None
        );
    }

    #[test]
    fn a_full_level_becomes_one_run_of_the_next() {
        let p = Policy {
            level1_runs: 3,
            ..Policy::default()
        };
        // the level-1 runs alone: the level-2 run stays as it is
        let runs = [
            run(3, 1 << 30),
            run(2, 1 << 20),
            run(1, 10),
            run(1, 10),
            run(1, 10),
        ];
        let m = next_merge(&runs, &p).unwrap();
        assert_eq!(
            (m.first, m.last, m.level, m.why),
            (2, 4, 2, Reason::LevelFull)
        );
        let runs = [run(3, 1 << 30), run(1, 10), run(1, 10), run(1, 10)];
        let m = next_merge(&runs, &p).unwrap();
        assert_eq!((m.first, m.last, m.level), (1, 3, 2));
        // deeper levels go by size: three level-2 runs far below the
        // level's budget stay as they are
        let runs = [run(2, 100), run(2, 100), run(2, 100), run(1, 10)];
        assert_eq!(next_merge(&runs, &p), None);
        // a fan-in of one would merge a run with nothing: two at least
        let p = Policy {
            level1_runs: 1,
            ..p
        };
        assert_eq!(next_merge(&[run(2, 100), run(1, 10)], &p), None);
        let m = next_merge(&[run(1, 10), run(1, 10)], &p).unwrap();
        assert_eq!((m.first, m.last, m.level), (0, 1, 2));
    }

    #[test]
    fn oversized_level_moves_down() {
        let p = Policy {
            level_base: 1000,
            size_ratio: 4,
            ..Policy::default()
        };
        assert_eq!(level_capacity(&p, 2), 1000);
        assert_eq!(level_capacity(&p, 3), 4000);
        assert_eq!(level_capacity(&p, 4), 16000);
        let runs = [run(3, 3000), run(2, 600), run(2, 600)];
        let m = next_merge(&runs, &p).unwrap();
        assert_eq!(
            (m.first, m.last, m.level, m.why),
            (1, 2, 3, Reason::LevelOverSize)
        );
        // one run over its level's size is left where it is: rewriting it
        // alone would only relabel it
        assert_eq!(next_merge(&[run(3, 5000), run(1, 10)], &p), None);
    }

    #[test]
    fn too_many_runs_merge_the_shallowest_level() {
        let p = Policy {
            level1_runs: 100,
            level_base: 1 << 40,
            ..Policy::default()
        };
        let mut runs: Vec<RunStat> = (0..MANY_RUNS).map(|_| run(2, 100)).collect();
        runs.push(run(1, 10));
        assert_eq!(next_merge(&runs[..MANY_RUNS], &p), None);
        runs.push(run(1, 10));
        let m = next_merge(&runs, &p).unwrap();
        assert_eq!(
            (m.first, m.last, m.level, m.why),
            (MANY_RUNS, MANY_RUNS + 1, 2, Reason::TooManyRuns)
        );
    }

    #[test]
    fn large_flushes_go_below_level_1() {
        let p = Policy::default(); // 64 MB level base, ratio 10
        let mb = 1u64 << 20;
        let t = [run(2, 20 * mb), run(1, mb), run(1, 6 * mb)];
        assert_eq!(flush_level(&t, 2, &p), 1);
        // 7 MB after a level-1 run: level 1 (levels never increase towards
        // the young end)
        let t = [run(2, 20 * mb), run(1, mb), run(1, 7 * mb)];
        assert_eq!(flush_level(&t, 2, &p), 1);
        let t = [run(2, 20 * mb), run(1, 7 * mb)];
        assert_eq!(flush_level(&t, 1, &p), 2);
        assert_eq!(flush_level(&[run(1, 100 * mb)], 0, &p), 3);
    }

    #[test]
    fn updates_of_old_rows_do_not_rewrite_them_for_young_runs() {
        // A 10 MB table, then flushes of 1 MB that each turn a tenth of the
        // old rows into redirects: the old run is rewritten only for its
        // garbage, never because young runs pile up.
        let p = Policy {
            gc_ratio: 0.5,
            ..Policy::default()
        };
        let mb = 1u64 << 20;
        let mut runs = vec![run(2, 10 * mb)];
        let (mut written, mut since) = (0, 0);
        for round in 1..=10 {
            since += 1;
            runs[0].bodies = (runs[0].versions * since).div_ceil(10);
            runs.push(run(1, mb));
            let old = runs[0];
            written += settle(&mut runs, &p);
            if since < 5 {
                assert_eq!(runs[0], old, "round {round}: the old run was rewritten");
            } else {
                assert_eq!(runs[0].bodies, 0, "round {round}: half garbage, not rewritten");
                since = 0;
            }
        }
        // the young runs merged twice (4 MB each), the old run twice (5 MB,
        // then 2.5 MB)
        assert!(written <= 16 * mb, "{written}");
        assert!(runs.iter().all(|r| r.level >= 1) && levels_ordered(&runs));
    }

    #[test]
    fn garbage_is_rewritten_in_place_first() {
        let p = Policy {
            gc_ratio: 0.5,
            level1_runs: 2,
            ..Policy::default()
        };
        let mut runs = vec![run(2, 10_000), run(1, 100), run(1, 100)];
        runs[0].dead = runs[0].versions / 2;
        let m = next_merge(&runs, &p).unwrap();
        assert_eq!(
            (m.first, m.last, m.level, m.why),
            (0, 0, 2, Reason::Garbage)
        );
        runs[0].dead = runs[0].versions / 2 - 1;
        assert_eq!(next_merge(&runs, &p).unwrap().why, Reason::LevelFull);
        // redirects still carrying their bodies are garbage too
        runs[0].bodies = 1;
        assert_eq!(next_merge(&runs, &p).unwrap().why, Reason::Garbage);
        runs[0].bodies = 0;
        // gc_ratio above 1 turns the rule off
        let p = Policy { gc_ratio: 1.5, ..p };
        runs[0].dead = runs[0].versions;
        assert_eq!(next_merge(&runs, &p).unwrap().why, Reason::LevelFull);
        // old dead versions are rewritten away whatever their share
        runs[2].dead = 1;
        runs[2].holds_back_freezing = true;
        let m = next_merge(&runs, &p).unwrap();
        assert_eq!(
            (m.first, m.last, m.level, m.why),
            (2, 2, 1, Reason::Freezing)
        );
    }

    #[test]
    fn many_flushes_stay_logarithmic() {
        // 2000 flushes of 1 MB: runs stay few, levels grow like log_R(size),
        // and each byte is rewritten a bounded number of times.
        let p = Policy {
            size_ratio: 8,
            level1_runs: 4,
            level_base: 8 << 20,
            gc_ratio: 0.3,
        };
        let mut runs = Vec::new();
        let (mut flushed, mut written) = (0u64, 0u64);
        for _ in 0..2000 {
            runs.push(run(1, 1 << 20));
            flushed += 1 << 20;
            written += settle(&mut runs, &p);
            assert!(runs.len() <= 16, "too many runs: {}", runs.len());
        }
        let deepest = runs.iter().map(|r| r.level).max().unwrap();
        // 2000 MB over an 8 MB base with ratio 8: levels 2..=5
        assert!((4..=6).contains(&deepest), "deepest level {deepest}");
        // each byte is rewritten about once per level below the first
        let amplification = written as f64 / flushed as f64;
        assert!(
            amplification < deepest as f64,
            "write amplification {amplification}"
        );
        assert!(amplification > 1.0);
        for k in 2..deepest {
            let on_k: Vec<_> = runs.iter().filter(|r| r.level == k).collect();
            let bytes: u64 = on_k.iter().map(|r| r.bytes).sum();
            assert!(
                on_k.len() < 2 || bytes <= level_capacity(&p, k),
                "level {k} over budget"
            );
        }
    }

    #[test]
    fn churn_keeps_garbage_bounded() {
        // Every flush kills a share of the older versions: GC keeps the dead
        // fraction of each run below gc_ratio after settling.
        let p = Policy {
            size_ratio: 4,
            level1_runs: 2,
            level_base: 4 << 20,
            gc_ratio: 0.25,
        };
        let mut runs: Vec<RunStat> = Vec::new();
        for i in 0..500u64 {
            for r in runs.iter_mut() {
                r.dead = (r.dead + r.versions / 10).min(r.versions);
            }
            runs.push(run(1, 1 << 20));
            settle(&mut runs, &p);
            for r in &runs {
                assert!(
                    (r.dead as f64) < p.gc_ratio * r.versions as f64 || r.dead == 0,
                    "flush {i}: {r:?}"
                );
            }
        }
        let total: u64 = runs.iter().map(|r| r.bytes).sum();
        assert!(total < 40 << 20, "total {total}");
    }
}
