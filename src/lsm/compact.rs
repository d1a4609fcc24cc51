//! Merging runs: what the tiered policy ([`super::policy`]) asks for is
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
//! Concurrency: a merge copies and writes under VACUUM's SHARE UPDATE
//! EXCLUSIVE, alongside DML. Runs only change in place then: DML stamps
//! (xmax, infomask, cmax, t_ctid, hint bits) the headers of versions it
//! deletes, updates or locks. So the merge notes each source page's LSN when
//! it copies it, and for the switch takes EXCLUSIVE (tried for, like the
//! flush; writers wait only for this step): it copies again the headers of
//! the versions on every source page whose LSN moved (every source page, for
//! a relation without WAL) into the new pages, then switches the manifest.
//! Row data never changes in place, and no version can become dead to every
//! snapshot at the merge's fixed horizon after it was copied, so that is all
//! that can have changed. If EXCLUSIVE cannot be had, the merge is abandoned
//! and its pages are free again. The run ids being written are marked in the
//! metapage (`writing_from`), so concurrent L0 allocations never take their
//! pages. Readers keep reading the old runs, whose pages stay pending until
//! no snapshot that old can exist.

use crate::pg::relation::Rel;
use super::format::{Meta, PageKind};
use super::manifest;
use super::policy::{self, Merge, Policy, RunStat};
use super::run_writer::{self, Readers};
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
    /// Stopped early: EXCLUSIVE could not be had for a switch.
    pub abandoned: bool,
    /// Versions whose headers changed while their merge copied them.
    pub refreshed: u64,
}

/// The policy's view of the manifest's runs; `dead` from VACUUM's pass,
/// `too_old` says whether dead versions' ids hold back freezing.
pub fn run_stats(
    meta: &Meta,
    dead: &HashMap<u32, Dead>,
    too_old: &impl Fn(&Dead) -> bool,
) -> Vec<RunStat> {
    meta.runs
        .iter()
        .map(|r| {
            let d = dead.get(&r.run_id).copied().unwrap_or_default();
            RunStat {
                level: r.level,
                bytes: r.data_pages as u64 * BLCKSZ as u64,
                versions: r.versions,
                dead: d.versions,
                bodies: d.bodies,
                holds_back_freezing: d.versions > 0 && too_old(&d),
            }
        })
        .collect()
}

/// Carries out one merge of `meta`'s runs; false when it stopped early
/// (pending pages, or no lock for the switch: `st` says which).
fn merge(
    rel: Rel,
    meta: &Meta,
    m: &Merge,
    horizon: pg_sys::TransactionId,
    readers: Readers,
    lock: &run_writer::SwitchLock,
    st: &mut CompactStats,
) -> bool {
    let stretch = &meta.runs[m.first..=m.last];
    let components: Vec<(PageKind, u32, u32)> = stretch
        .iter()
        .map(|r| (PageKind::RunData, r.run_id, 0))
        .collect();
    if !run_writer::pending_room(rel, readers, components.len()) {
        st.skipped = true;
        return false;
    }
    let mut sources = Vec::new();
    let mut freed = Vec::new();
    for run in stretch {
        manifest::take_run(rel, run, &mut sources, &mut freed);
    }
    let old_ids: Vec<u32> = stretch.iter().map(|r| r.run_id).collect();
    let dropped_before = st.dropped.len();
    let run_writer::Copied { written, bytes, versions: moved, copied_at } =
        run_writer::copy_survivors(rel, sources, m.level, horizon, true, &mut st.dropped);
    let dropped = (st.dropped.len() - dropped_before) as u64;
    if !(lock.acquire)() {
        // the new pages were never listed: free again
        run_writer::switch(rel, None, |_| {});
        manifest::record_free(rel, written.blocks);
        st.dropped.truncate(dropped_before);
        st.abandoned = true;
        return false;
    }
    st.refreshed += run_writer::refresh_headers(rel, &copied_at, &written.data_pages);
    freed.extend(manifest::payload_blocks(rel, copied_at.iter().map(|(b, _)| *b)));
    let new_runs = written.runs;
    st.merges.push((*m, new_runs.len()));
    st.versions_moved += moved;
    st.versions_dropped += dropped;
    let conflict = (dropped > 0).then(|| crate::pg::standby::full_xid_of(horizon) - 1);
    run_writer::switch(rel, conflict, |next| {
        let now: Vec<u32> = next.runs[m.first..=m.last]
            .iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(now, old_ids, "runs changed during a merge");
        next.runs.splice(m.first..=m.last, new_runs);
        next.header.next_run_id = next.header.next_run_id.max(written.next_run_id);
        next.header.compactions += 1;
        next.stats.compacted_bytes += bytes;
        next.stats.compacted_versions += moved;
        next.stats.dropped_versions += dropped;
        run_writer::add_pending(next, readers, &components);
    });
    (lock.release)();
    manifest::record_free(rel, freed);
    true
}

/// Merges runs until `policy` is satisfied. `dead` holds VACUUM's per-run
/// dead counts (runs it did not count, e.g. those a merge wrote, count 0).
/// The caller holds SHARE UPDATE EXCLUSIVE on `rel` (no other merge or
/// flush runs); `lock` gives each merge EXCLUSIVE for its switch.
pub fn compact(
    rel: Rel,
    horizon: pg_sys::TransactionId,
    policy: &Policy,
    dead: &HashMap<u32, Dead>,
    too_old: impl Fn(&Dead) -> bool,
    readers: Readers,
    lock: &run_writer::SwitchLock,
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
        if !merge(rel, &meta, &m, horizon, readers, lock, &mut st) {
            break;
        }
    }
    st
}
