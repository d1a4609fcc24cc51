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
//! Concurrency: the caller holds ACCESS EXCLUSIVE on the table (also
//! WAL-logged, so hot-standby readers are kept out during replay), so no
//! scan, fetch or writer sees the manifest change under it and freed pages
//! can be reused at once. When the runs list is full the newest run is merged
//! into the flush's output (issue #7 brings a leveled policy).

use super::format::{self, Meta, RunDesc, FENCE_ENTRIES, MAX_RUNS, MAX_RUN_DATA_PAGES};
use super::manifest;
use super::page_image::{self, PageImage, RunPacker};
use super::storage::{self, META_BLOCK};
use crate::pg::buffer::{self, PageWrite};
use crate::pg::page;
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
}

/// Writes run pages: data pages as they fill, then the fence index.
struct RunWriter<'a> {
    rel: pg_sys::Relation,
    meta: &'a Meta,
    taken: HashSet<pg_sys::BlockNumber>,
    next_run_id: u32,
    packer: RunPacker,
    current: RunDesc,
    fences: Vec<(u64, u32)>,
    done: Vec<RunDesc>,
}

impl<'a> RunWriter<'a> {
    fn new(rel: pg_sys::Relation, meta: &'a Meta) -> RunWriter<'a> {
        let id = meta.header.next_run_id;
        RunWriter {
            rel,
            meta,
            taken: HashSet::new(),
            next_run_id: id + 1,
            packer: RunPacker::new(id),
            current: RunDesc::new(id),
            fences: Vec::new(),
            done: Vec::new(),
        }
    }

    /// Writes a finished page image into a fresh block (full-page WAL).
    fn write(&mut self, image: &PageImage) -> pg_sys::BlockNumber {
        let buf = manifest::allocate_block(self.rel, self.meta, &self.taken);
        let block = buffer::block_number(buf);
        self.taken.insert(block);
        let mut w = PageWrite::start(self.rel);
        let p = w.register(buf, true);
        page::copy_image(p, image.bytes());
        w.commit();
        buffer::unlock_release(buf);
        block
    }

    fn add(&mut self, rowid: u64, tuple: &[u8]) {
        if let Some((full, first)) = self.packer.add(rowid, tuple) {
            let block = self.write(&full);
            self.fences.push((first, block));
            if self.fences.len() == MAX_RUN_DATA_PAGES {
                // This run's index is full; the version that opened the next
                // page starts the next run instead.
                self.close_run();
                self.packer = RunPacker::new(self.current.run_id);
                let spilled = self.packer.add(rowid, tuple);
                debug_assert!(spilled.is_none());
            }
        }
        let run = &mut self.current;
        if run.versions == 0 {
            run.first_rowid = rowid;
        }
        run.last_rowid = rowid;
        run.versions += 1;
        run.tuple_bytes += tuple.len() as u64;
    }

    /// Writes the fence index of the current run and starts the next one.
    fn close_run(&mut self) {
        let id = self.current.run_id;
        let fences = std::mem::take(&mut self.fences);
        let mut leaves = Vec::new();
        for chunk in fences.chunks(FENCE_ENTRIES) {
            let leaf = page_image::fence_page(id, format::INDEX_LEAF, chunk);
            leaves.push((chunk[0].0, self.write(&leaf)));
        }
        let root = page_image::fence_page(id, format::INDEX_ROOT, &leaves);
        self.current.root = self.write(&root);
        self.current.data_pages = fences.len() as u32;
        self.done.push(self.current);
        self.current = RunDesc::new(self.next_run_id);
        self.next_run_id += 1;
    }

    fn finish(mut self) -> (Vec<RunDesc>, u32) {
        let packer = std::mem::replace(&mut self.packer, RunPacker::new(0));
        if let Some((last, first)) = packer.finish() {
            let block = self.write(&last);
            self.fences.push((first, block));
        }
        if !self.fences.is_empty() {
            self.close_run();
        }
        // The run id after the last one written (`current` is the unused next).
        (self.done, self.current.run_id)
    }
}

impl RunDesc {
    fn new(run_id: u32) -> RunDesc {
        RunDesc {
            run_id,
            level: 1,
            ..Default::default()
        }
    }
}

/// The row versions of one source page that survive, copied out (rowid,
/// tuple bytes), and the rowids dropped.
fn survivors(
    rel: pg_sys::Relation,
    block: pg_sys::BlockNumber,
    horizon: pg_sys::TransactionId,
    dropped: &mut Vec<u64>,
) -> Vec<(u64, Vec<u8>)> {
    let buf = buffer::read(rel, block);
    buffer::lock_share(buf);
    let p = buffer::page(buf);
    let mut out = Vec::new();
    for item in 1..=page::max_offset(p) {
        let Some(mut t) = storage::version_at(rel, p, item) else {
            continue;
        };
        let rowid = format::rowid(
            crate::pg::htup::tid_block(&t.t_self),
            crate::pg::htup::tid_offset(&t.t_self),
        );
        // SAFETY: share-locked page; HTSV may set hint bits, which the copy keeps.
        let status = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, horizon, buf) };
        if status == pg_sys::HTSV_Result::HEAPTUPLE_DEAD {
            dropped.push(rowid);
            continue;
        }
        // SAFETY: t_data points at t_len bytes on the pinned page.
        let bytes = unsafe { std::slice::from_raw_parts(t.t_data as *const u8, t.t_len as usize) };
        out.push((rowid, bytes.to_vec()));
    }
    buffer::unlock_release(buf);
    out
}

/// Advances `next_run_id` by `n` in one WAL record; returns the manifest
/// as it was before (its `next_run_id` is the first reserved id).
fn reserve_run_ids(rel: pg_sys::Relation, n: u32) -> Meta {
    let meta_buf = buffer::read(rel, META_BLOCK);
    buffer::lock_exclusive(meta_buf);
    let mut w = PageWrite::start(rel);
    let mp = w.register(meta_buf, false);
    let before = Meta::decode(page::bytes(mp)).expect("metapage decoded above");
    let mut after = before.clone();
    after.header.next_run_id = before.header.next_run_id.checked_add(n).expect("run ids exhausted");
    after.encode(page::bytes_mut(mp));
    w.commit();
    buffer::unlock_release(meta_buf);
    before
}

/// Flushes L0 into a new run. The caller holds ACCESS EXCLUSIVE on `rel`.
pub fn flush(rel: pg_sys::Relation) -> FlushStats {
    let mut stats = FlushStats::default();
    let Some(meta) = manifest::read(rel) else {
        return stats;
    };
    if meta.l0_pages() == 0 {
        return stats;
    }
    // SAFETY: horizon computation for this relation.
    let horizon = unsafe { pg_sys::GetOldestNonRemovableTransactionId(rel) };
    let l0 = manifest::l0_blocks(rel, &meta);
    stats.l0_pages = l0.len() as u64;

    let mut sources: Vec<pg_sys::BlockNumber> = Vec::new();
    let mut freed: Vec<pg_sys::BlockNumber> = Vec::new();
    let mut kept_runs = meta.runs.clone();
    if meta.runs.len() >= MAX_RUNS {
        let newest = kept_runs.pop().expect("runs list is full");
        let (data, index) = manifest::run_pages(rel, &newest);
        sources.extend(data.iter().map(|(_, b)| *b));
        freed.extend(data.iter().map(|(_, b)| *b));
        freed.extend(index);
        stats.merged_run = true;
    }
    sources.extend(l0.iter().map(|(_, b)| *b));
    freed.extend(l0.iter().map(|(_, b)| *b));
    freed.extend(meta.l0_dir.iter().copied().filter(|b| *b != 0));

    // Run ids are reserved durably before any run page is written: pages of a
    // flush that a crash interrupts keep ids no later run will ever get, so
    // they can never be mistaken for a listed run's pages.
    let reserve = (2 * sources.len()).div_ceil(MAX_RUN_DATA_PAGES).max(1) as u32;
    let meta = reserve_run_ids(rel, reserve);
    let mut writer = RunWriter::new(rel, &meta);
    for block in sources {
        pgrx::check_for_interrupts!();
        for (rowid, tuple) in survivors(rel, block, horizon, &mut stats.dropped) {
            writer.add(rowid, &tuple);
            stats.versions_moved += 1;
        }
    }
    stats.versions_dropped = stats.dropped.len() as u64;
    let (new_runs, next_run_id) = writer.finish();
    stats.runs_written = new_runs.len() as u64;

    // The switch: one WAL record on the metapage.
    let meta_buf = buffer::read(rel, META_BLOCK);
    buffer::lock_exclusive(meta_buf);
    let mut w = PageWrite::start(rel);
    let mp = w.register(meta_buf, false);
    let mut next = Meta::decode(page::bytes(mp)).expect("metapage decoded above");
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
    next.encode(page::bytes_mut(mp));
    w.commit();
    buffer::unlock_release(meta_buf);

    manifest::record_free(rel, freed);
    // This backend's insert lane pointed into the old L0.
    buffer::set_target_block(rel, buffer::INVALID_BLOCK);
    stats.dropped.sort_unstable();
    stats
}
