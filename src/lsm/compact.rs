//! Merging runs: what the leveled policy ([`super::policy`]) asks for is
//! carried out here, one merge at a time, until the policy is satisfied.
//!
//! A merge reads the data pages of a contiguous stretch of runs in rowid
//! order, drops the versions dead to every snapshot (the same removal
//! horizon as the flush), writes the survivors into new runs of the target
//! level ([`RunWriter`]) and replaces the stretch with them in one WAL
//! record on the metapage ([`run_writer::switch`]). A crash before the
//! switch leaves the old runs listed (the new pages are free); after it, the
//! new ones. The dropped rowids are returned, for VACUUM to remove from
//! every index.
//!
//! Concurrency: like the flush, merges run under EXCLUSIVE (no writers;
//! readers keep reading the old runs, whose pages stay pending until no
//! snapshot that old can exist) or ACCESS EXCLUSIVE.

use super::format::{Meta, PageKind, MAX_RUN_DATA_PAGES};
use super::manifest;
use super::policy::{self, Merge, Policy, RunStat};
use super::run_writer::{self, Readers, RunWriter};
use super::sweep::Dead;
use crate::pg::page::BLCKSZ;
use pgrx::pg_sys;
use std::collections::HashMap;

/// What the merges of one compaction did.
#[derive(Debug, Default)]
pub struct CompactStats {
    pub merges: Vec<(Merge, usize)>,
    pub versions_moved: u64,
    pub versions_dropped: u64,
    /// Rowids of the dropped versions (unsorted).
    pub dropped: Vec<u64>,
    /// Stopped early: too many freed pages are still pending.
    pub skipped: bool,
}

/// The policy's view of the manifest's runs; `dead` from VACUUM's pass,
/// `too_old` says whether dead versions' ids hold back freezing.
pub fn run_stats(meta: &Meta, dead: &HashMap<u32, Dead>, too_old: &impl Fn(&Dead) -> bool) -> Vec<RunStat> {
    meta.runs
        .iter()
        .map(|r| {
            let d = dead.get(&r.run_id).copied().unwrap_or_default();
            RunStat {
                level: r.level,
                bytes: r.data_pages as u64 * BLCKSZ as u64,
                versions: r.versions,
                dead: d.versions,
                holds_back_freezing: d.versions > 0 && too_old(&d),
            }
        })
        .collect()
}

/// Carries out one merge of `meta`'s runs.
fn merge(
    rel: pg_sys::Relation,
    meta: &Meta,
    m: &Merge,
    horizon: pg_sys::TransactionId,
    readers: Readers,
    st: &mut CompactStats,
) -> bool {
    let stretch = &meta.runs[m.first..=m.last];
    let components: Vec<(PageKind, u32, u32)> = stretch.iter().map(|r| (PageKind::RunData, r.run_id, 0)).collect();
    if !run_writer::pending_room(rel, readers, components.len()) {
        return false;
    }
    let mut sources = Vec::new();
    let mut freed = Vec::new();
    for run in stretch {
        manifest::take_run(rel, run, &mut sources, &mut freed);
    }
    let old_ids: Vec<u32> = stretch.iter().map(|r| r.run_id).collect();
    let reserve = (2 * sources.len()).div_ceil(MAX_RUN_DATA_PAGES).max(1) as u32;
    let reserved = run_writer::reserve_run_ids(rel, reserve);
    let mut writer = RunWriter::new(rel, &reserved, m.level);
    let (mut bytes, mut moved) = (0u64, 0u64);
    let dropped_before = st.dropped.len();
    for block in sources {
        pgrx::check_for_interrupts!();
        crate::pg::vacuum::delay_point();
        for (rowid, tuple) in run_writer::survivors(rel, block, horizon, &mut st.dropped) {
            writer.add(rowid, &tuple);
            bytes += tuple.len() as u64;
            moved += 1;
        }
    }
    let dropped = (st.dropped.len() - dropped_before) as u64;
    let (new_runs, next_run_id) = writer.finish();
    st.merges.push((*m, new_runs.len()));
    st.versions_moved += moved;
    st.versions_dropped += dropped;
    let conflict = (dropped > 0).then(|| crate::pg::standby::full_xid_of(horizon) - 1);
    run_writer::switch(rel, conflict, |next| {
        let now: Vec<u32> = next.runs[m.first..=m.last].iter().map(|r| r.run_id).collect();
        assert_eq!(now, old_ids, "runs changed during a merge under ACCESS EXCLUSIVE");
        next.runs.splice(m.first..=m.last, new_runs);
        next.header.next_run_id = next.header.next_run_id.max(next_run_id);
        next.header.compactions += 1;
        next.stats.compacted_bytes += bytes;
        next.stats.compacted_versions += moved;
        next.stats.dropped_versions += dropped;
        run_writer::add_pending(next, readers, &components);
    });
    manifest::record_free(rel, freed);
    true
}

/// Merges runs until `policy` is satisfied. `dead` holds VACUUM's per-run
/// dead counts (runs it did not count, e.g. those a merge wrote, count 0).
/// The caller holds ACCESS EXCLUSIVE on `rel`.
pub fn compact(
    rel: pg_sys::Relation,
    horizon: pg_sys::TransactionId,
    policy: &Policy,
    dead: &HashMap<u32, Dead>,
    too_old: impl Fn(&Dead) -> bool,
    readers: Readers,
) -> CompactStats {
    let mut st = CompactStats::default();
    // Each merge moves data one level down or rewrites a run without its
    // garbage (after which it counts no dead versions), so this ends; the
    // bound guards against a policy bug.
    for _ in 0..64 {
        let Some(meta) = manifest::read(rel) else {
            break;
        };
        // runs a merge wrote have new ids, which `dead` does not know
        let stats = run_stats(&meta, dead, &too_old);
        let Some(m) = policy::next_merge(&stats, policy) else {
            break;
        };
        if !merge(rel, &meta, &m, horizon, readers, &mut st) {
            st.skipped = true;
            break;
        }
    }
    st
}
