//! Flushing L0 into a run: every L0 row version that some snapshot may
//! still see is copied, in rowid order, into new RUN_DATA pages with a fence
//! index; versions dead to every snapshot (`HeapTupleSatisfiesVacuum` against
//! the table's removal horizon: aborted inserts, deletes and updates older
//! than every running snapshot) are dropped. Then one WAL record switches the
//! metapage: the run is listed, L0 starts empty at the next virtual block,
//! and the old L0 and directory pages become free.
//!
//! Crash safety: run pages are written (full-page WAL images) before the
//! switch and are unreachable until it; a crash before the switch leaves the
//! old manifest and orphan pages that count as free. After the switch the
//! old pages are unreachable. There is no in-between state.
//!
//! Concurrency: the caller holds EXCLUSIVE on the table (VACUUM,
//! `strata.lsm_flush`), so no writer runs, but readers do: a scan that began
//! before the switch keeps reading the old L0 pages, which stay pending —
//! not reused — until no snapshot that old can exist (see
//! [`super::format::Pending`]); hot standbys get a conflict record for the
//! dropped versions, as for heap pruning. Under ACCESS EXCLUSIVE nothing is
//! left pending. When the runs list is full the newest run is merged
//! into the flush's output (issue #7 brings a leveled policy).

use super::format::{MAX_RUNS, MAX_RUN_DATA_PAGES};
use super::manifest;
use super::format::PageKind;
use super::run_writer::{self, Readers, RunWriter};
use crate::pg::buffer;
use pgrx::pg_sys;

/// What a flush did.
#[derive(Debug, Default)]
pub struct FlushStats {
    pub l0_pages: u64,
    pub versions_moved: u64,
    pub versions_dropped: u64,
    pub runs_written: u64,
    pub merged_run: bool,
    /// Rowids of the dropped versions, ascending (for index cleanup).
    pub dropped: Vec<u64>,
    /// Not done: too many freed pages are still pending (old snapshots).
    pub skipped: bool,
}

/// Flushes L0 into a new level-1 run, dropping versions dead to every
/// snapshot by `horizon` (None: the table's current removal horizon). The
/// caller holds EXCLUSIVE (`Readers::Allowed`: scans may run, the freed
/// pages stay pending) or ACCESS EXCLUSIVE on `rel`.
pub fn flush(rel: pg_sys::Relation, horizon: Option<pg_sys::TransactionId>, readers: Readers) -> FlushStats {
    let mut stats = FlushStats::default();
    let Some(meta) = manifest::read(rel) else {
        return stats;
    };
    if meta.l0_pages() == 0 {
        return stats;
    }
    // SAFETY: horizon computation for this relation.
    let horizon = horizon.unwrap_or_else(|| unsafe { pg_sys::GetOldestNonRemovableTransactionId(rel) });
    let l0 = manifest::l0_blocks(rel, &meta);
    stats.l0_pages = l0.len() as u64;

    let mut sources: Vec<pg_sys::BlockNumber> = Vec::new();
    let mut freed: Vec<pg_sys::BlockNumber> = Vec::new();
    let mut kept_runs = meta.runs.clone();
    if meta.runs.len() >= MAX_RUNS {
        let newest = kept_runs.pop().expect("runs list is full");
        manifest::take_run(rel, &newest, &mut sources, &mut freed);
        stats.merged_run = true;
    }
    sources.extend(l0.iter().map(|(_, b)| *b));
    freed.extend(l0.iter().map(|(_, b)| *b));
    let dirs: Vec<u32> = meta.l0_dir.iter().copied().filter(|b| *b != 0).collect();
    freed.extend(&dirs);
    let mut components = vec![(PageKind::L0, meta.header.l0_first_vblock, meta.header.next_vblock)];
    components.extend(dirs.iter().map(|b| (PageKind::L0Dir, *b, 0)));
    if stats.merged_run {
        components.push((PageKind::RunData, meta.runs[meta.runs.len() - 1].run_id, 0));
    }
    if !run_writer::pending_room(rel, readers, components.len()) {
        stats.skipped = true;
        return stats;
    }

    // Run ids are reserved durably before any run page is written: pages of a
    // flush that a crash interrupts keep ids no later run will ever get, so
    // they can never be mistaken for a listed run's pages.
    let reserve = (2 * sources.len()).div_ceil(MAX_RUN_DATA_PAGES).max(1) as u32;
    let meta = run_writer::reserve_run_ids(rel, reserve);
    let mut writer = RunWriter::new(rel, &meta, 1);
    let mut bytes = 0u64;
    for block in sources {
        pgrx::check_for_interrupts!();
        for (rowid, tuple) in run_writer::survivors(rel, block, horizon, &mut stats.dropped).0 {
            writer.add(rowid, &tuple);
            bytes += tuple.len() as u64;
            stats.versions_moved += 1;
        }
    }
    stats.versions_dropped = stats.dropped.len() as u64;
    let written = writer.finish();
    let (new_runs, next_run_id) = (written.runs, written.next_run_id);
    stats.runs_written = new_runs.len() as u64;

    // The switch: one WAL record on the metapage.
    let conflict = (stats.versions_dropped > 0).then(|| crate::pg::standby::full_xid_of(horizon) - 1);
    run_writer::switch(rel, conflict, |next| {
        assert_eq!(
            (next.header.next_vblock, next.header.l0_first_vblock),
            (meta.header.next_vblock, meta.header.l0_first_vblock),
            "L0 changed during a flush under ACCESS EXCLUSIVE"
        );
        kept_runs.extend(new_runs);
        next.runs = kept_runs;
        debug_assert!(next_run_id <= next.header.next_run_id, "more runs than reserved");
        next.header.next_run_id = next.header.next_run_id.max(next_run_id);
        next.header.l0_first_vblock = next.header.next_vblock;
        next.l0_dir.iter_mut().for_each(|b| *b = 0);
        next.header.flushes += 1;
        if stats.merged_run {
            next.header.compactions += 1;
        }
        next.stats.flushed_bytes += bytes;
        next.stats.flushed_versions += stats.versions_moved;
        next.stats.dropped_versions += stats.versions_dropped;
        run_writer::add_pending(next, readers, &components);
    });

    manifest::record_free(rel, freed);
    // This backend's insert lane pointed into the old L0.
    buffer::set_target_block(rel, buffer::INVALID_BLOCK);
    stats.dropped.sort_unstable();
    stats
}
