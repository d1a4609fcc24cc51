//! Flushing L0 into a run: every L0 row version that some snapshot may
//! still see is copied, in rowid order, into new RUN_DATA pages with a fence
//! index; versions dead to every snapshot (`HeapTupleSatisfiesVacuum` against
//! the table's removal horizon: aborted inserts, deletes and updates older
//! than every running snapshot) are dropped. Then one WAL record switches the
//! metapage: the run is listed, L0 starts at the seal (below), and the old L0
//! and directory pages become free.
//!
//! Concurrency: the flush runs alongside DML, like a merge. The caller holds
//! SHARE UPDATE EXCLUSIVE (VACUUM, `strata.lsm_flush`), so no other flush
//! or merge runs. The flush takes EXCLUSIVE twice, briefly:
//!
//! 1. to *seal* L0: the metapage's `l0_seal` becomes the next virtual block,
//!    and from then on inserts append only to L0 pages at or above it (no
//!    insert is in flight under EXCLUSIVE, and every later one reads the
//!    seal). The sealed pages `l0_first .. l0_seal` only change in place
//!    from then on: DML stamps the headers of versions it deletes, updates
//!    or locks;
//! 2. to *switch*, after copying the sealed pages under SHARE UPDATE
//!    EXCLUSIVE (throttled by the vacuum cost delay) and noting each one's
//!    LSN: it copies again the headers of the versions on sealed pages whose
//!    LSN moved ([`run_writer::refresh_headers`]), writes a new L0 directory
//!    for the pages inserts added meanwhile (`l0_seal .. next_vblock`;
//!    directory slots count from `l0_first`, which becomes the seal), and
//!    switches the manifest.
//!
//! Either lock is only tried for (through [`SwitchLock`]); without it the
//! flush is skipped or, at the switch, abandoned (its pages are free again
//! and the seal is lifted). Readers never wait: a scan that began before the
//! switch keeps reading the old L0 pages, which stay pending — not reused —
//! until no snapshot that old can exist (see [`super::format::Pending`]);
//! hot standbys get a conflict record for the dropped versions, as for heap
//! pruning. When the runs list is full the newest run is merged into the
//! flush's output.
//!
//! Crash safety: run and directory pages are written (full-page WAL images)
//! before the switch and are unreachable until it; a crash before the switch
//! leaves the old manifest (with a seal the next flush replaces) and orphan
//! pages that count as free. After the switch the old pages are unreachable.
//! There is no in-between state.

use crate::pg::relation::Rel;
use super::format::{PageKind, DIR_ENTRIES, MAX_DIR_PAGES, MAX_RUNS};
use super::manifest;
use super::policy;
use super::page_image::PageImage;
use super::run_writer::{self, Readers, SwitchLock};
use crate::pg::buffer::{self, Locked};
use pgrx::pg_sys;
use std::collections::HashSet;

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
    /// Not done (see `no_lock` and `abandoned`; otherwise too many freed
    /// pages are still pending because of old snapshots).
    pub skipped: bool,
    /// Not done: EXCLUSIVE could not be had to seal L0.
    pub no_lock: bool,
    /// Copied but not switched: EXCLUSIVE could not be had for the switch.
    pub abandoned: bool,
    /// Versions whose headers DML changed while the flush copied them.
    pub refreshed: u64,
    /// L0 pages inserts added while the flush copied (L0 after it).
    pub l0_pages_added: u64,
}

/// Flushes the L0 pages present at its start into a new run (level 1, or
/// deeper when it is large: [`policy::flush_level`]),
/// dropping versions dead to every snapshot by `horizon` (VACUUM's, after
/// its sweep; None: the table's current removal horizon, keeping dead
/// update-chain members), alongside DML. The caller holds SHARE UPDATE
/// EXCLUSIVE on `rel`; `lock` gives EXCLUSIVE for the seal and the switch.
pub fn flush(
    rel: Rel,
    horizon: Option<pg_sys::TransactionId>,
    readers: Readers,
    lock: &SwitchLock,
) -> FlushStats {
    let mut stats = FlushStats::default();
    let Some(start) = manifest::read(rel).filter(|m| m.l0_pages() > 0) else {
        return stats;
    };
    // The switch records what it frees as pending (checked again there);
    // without room now, copying L0 would be wasted.
    let dirs = start.l0_dir.iter().filter(|b| **b != 0).count();
    if !run_writer::pending_room(
        rel,
        readers,
        2 + dirs + (start.runs.len() >= MAX_RUNS) as usize,
    ) {
        stats.skipped = true;
        return stats;
    }
    // VACUUM passes the horizon its sweep shortened the update chains by
    // (see `chain`); only then may dead chain members be dropped.
    let chains_swept = horizon.is_some();
    let horizon = horizon.unwrap_or_else(|| crate::pg::xact::oldest_nonremovable_xid(rel));

    // 1. the seal
    if !(lock.acquire)() {
        stats.skipped = true;
        stats.no_lock = true;
        return stats;
    }
    let meta = run_writer::switch(rel, None, |m| m.l0_seal = m.header.next_vblock);
    (lock.release)();
    let (first, seal) = (meta.header.l0_first_vblock, meta.header.next_vblock);
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

    let run_writer::Copied { written, bytes, versions, copied_at } =
        run_writer::copy_survivors(rel, sources, 1, horizon, chains_swept, &mut stats.dropped);
    stats.versions_moved += versions;

    // 2. the switch
    let abandon = |stats: &mut FlushStats, blocks: Vec<pg_sys::BlockNumber>| {
        // nothing was listed: the pages are free again, inserts may use
        // the sealed pages again, and no version was dropped
        run_writer::switch(rel, None, |m| m.l0_seal = 0);
        manifest::record_free(rel, blocks);
        *stats = FlushStats {
            skipped: true,
            l0_pages: stats.l0_pages,
            ..FlushStats::default()
        };
    };
    if !(lock.acquire)() {
        abandon(&mut stats, written.blocks);
        stats.abandoned = true;
        return stats;
    }
    stats.refreshed = run_writer::refresh_headers(rel, &copied_at, &written.data_pages);
    freed.extend(manifest::payload_blocks(rel, copied_at.iter().map(|(b, _)| *b)));
    let now = manifest::read(rel).expect("the metapage exists");
    let old_dirs: Vec<u32> = now.l0_dir.iter().copied().filter(|b| *b != 0).collect();
    let mut components = vec![(PageKind::L0, first, seal)];
    components.extend(old_dirs.iter().map(|b| (PageKind::L0Dir, *b, 0)));
    if stats.merged_run {
        components.push((PageKind::RunData, meta.runs[meta.runs.len() - 1].run_id, 0));
    }
    if !run_writer::pending_room(rel, readers, components.len()) {
        // (headers refreshed above may have expanded new pages)
        let mut blocks = manifest::payload_blocks(rel, written.data_pages.iter().map(|(_, b)| *b));
        blocks.extend(written.blocks);
        abandon(&mut stats, blocks);
        (lock.release)();
        return stats;
    }
    let added: Vec<u32> = manifest::l0_blocks(rel, &now)
        .into_iter()
        .skip(l0.len())
        .map(|(_, b)| b)
        .collect();
    stats.l0_pages_added = added.len() as u64;
    let mut taken: HashSet<pg_sys::BlockNumber> = written.blocks.iter().copied().collect();
    let new_dir = write_directory(rel, &now, &added, &mut taken);
    freed.extend(&old_dirs);
    stats.versions_dropped = stats.dropped.len() as u64;
    let new_runs = written.runs;
    stats.runs_written = new_runs.len() as u64;
    let conflict =
        (stats.versions_dropped > 0).then(|| crate::pg::standby::full_xid_of(horizon) - 1);
    run_writer::switch(rel, conflict, |next| {
        assert_eq!(
            (
                next.header.l0_first_vblock,
                next.l0_seal,
                next.header.next_vblock,
                &next.runs
            ),
            (first, seal, now.header.next_vblock, &meta.runs),
            "L0 or runs changed during a flush"
        );
        let from = kept_runs.len();
        kept_runs.extend(new_runs);
        next.runs = kept_runs;
        // a large flush goes below level 1, where later flushes, merged with
        // each other, leave it alone
        let sizes = super::compact::run_stats(next, &Default::default(), &|_| false);
        let level = policy::flush_level(&sizes, from, &super::gucs::policy());
        next.runs[from..].iter_mut().for_each(|r| r.level = level);
        next.header.next_run_id = next.header.next_run_id.max(written.next_run_id);
        next.header.l0_first_vblock = seal;
        next.l0_seal = 0;
        next.l0_dir = new_dir;
        next.header.flushes += 1;
        if stats.merged_run {
            next.header.compactions += 1;
        }
        next.stats.flushed_bytes += bytes;
        next.stats.flushed_versions += stats.versions_moved;
        next.stats.dropped_versions += stats.versions_dropped;
        run_writer::add_pending(next, readers, &components);
    });
    (lock.release)();
    manifest::record_free(rel, freed);
    // This backend's insert lane pointed into the old L0.
    buffer::set_target_block(rel, buffer::INVALID_BLOCK);
    stats.dropped.sort_unstable();
    stats
}

/// Writes the L0 directory pages for the L0 pages at `blocks` (the virtual
/// blocks from the seal on, in order) into free blocks not in `taken`, and
/// returns the metapage's new `l0_dir`. The caller holds EXCLUSIVE.
fn write_directory(
    rel: Rel,
    meta: &super::format::Meta,
    blocks: &[u32],
    taken: &mut HashSet<pg_sys::BlockNumber>,
) -> Vec<u32> {
    let mut dir = vec![0u32; MAX_DIR_PAGES];
    for (slot, chunk) in blocks.chunks(DIR_ENTRIES).enumerate() {
        let mut image = PageImage::new(PageKind::L0Dir, slot as u32, 0);
        let entries: Vec<u8> = chunk.iter().flat_map(|b| b.to_le_bytes()).collect();
        assert!(image.append_array(&entries), "directory page overflow");
        let buf = Locked::adopt(manifest::allocate_block(rel, meta, taken));
        dir[slot] = buf.block();
        taken.insert(dir[slot]);
        run_writer::write_image(rel, buf, &image);
    }
    dir
}
