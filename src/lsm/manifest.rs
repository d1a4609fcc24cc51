//! The metapage as the table's manifest: which pages are in use (L0 through
//! its directory, runs through their fence indexes), where a logical TID
//! lives, and allocation of pages (reusing free ones found through the free
//! space map, re-checked against the metapage, else extending).
//!
//! Locking: the metapage's buffer lock orders everything that changes it —
//! L0 page allocation (exclusive, briefly, once per new L0 page) and the flush's
//! switch. Nobody holds a data page's lock while waiting for the metapage.
//! Flushes and merges switch the manifest under EXCLUSIVE (no DML in
//! flight) and keep the pages they free readable while older snapshots
//! exist; each scan takes a [`Live`] snapshot at its start. Point lookups go
//! through a backend's copy ([`super::manifest_cache`]).

use crate::pg::page::Page;
use crate::pg::relation::Rel;
use super::bloom;
use super::compact_page;
use super::format::{self, Meta, PageKind, RunDesc, BLOCK_SIZE, DIR_ENTRIES, MAX_L0_PAGES};
use super::page_image::{self, PageImage};
use super::page_id::{self, META_BLOCK};
use crate::pg::buffer::{self, Locked, PageWrite};
use crate::pg::page;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;

const _: () = assert!(BLOCK_SIZE == pg_sys::BLCKSZ as usize);

pub(super) fn corrupted(rel: Rel, what: String) -> ! {
    crate::pg::error::error(
        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        format!("{what} in relation \"{}\"", crate::pg::rel::relname(rel)),
    )
}

/// Decodes the locked metapage.
fn decode(rel: Rel, meta: &Locked) -> Meta {
    let p = meta.page();
    if page_id::page_kind(rel, META_BLOCK, p) != Some(PageKind::Meta) {
        corrupted(rel, "block 0 is not an lsm metapage".into());
    }
    Meta::decode(page::bytes(p))
        .unwrap_or_else(|e| corrupted(rel, format!("invalid metapage: {e}")))
}

/// The manifest, or None for a relation without blocks.
pub fn read(rel: Rel) -> Option<Meta> {
    if buffer::nblocks(rel) == 0 {
        return None;
    }
    Some(decode(rel, &Locked::share(rel, META_BLOCK)))
}

/// Writes `meta` into the metapage working copy `p` (pd_lower covers it).
fn encode_into(p: Page, meta: &Meta) {
    meta.encode(page::bytes_mut(p));
    page::set_lower(p, format::META_END);
}

/// Creates the metapage if the relation has no blocks yet.
pub fn ensure_metapage(rel: Rel) {
    if buffer::nblocks(rel) > 0 {
        return;
    }
    // the extension lock makes check-and-extend atomic among backends
    let _extending = crate::pg::storage::ExtensionLock::exclusive(rel);
    if buffer::nblocks(rel) == 0 {
        let buf = Locked::adopt(buffer::extend_locked(rel));
        debug_assert_eq!(buf.block(), META_BLOCK);
        let mut w = PageWrite::start(rel);
        let p = w.register(buf.buffer(), true);
        page::copy_image(p, PageImage::new(PageKind::Meta, 0, 0).bytes());
        encode_into(p, &Meta::new());
        w.commit();
    }
}

/// Whether the metapage reaches page `p` (block `block`).
pub fn in_use(meta: &Meta, block: pg_sys::BlockNumber, p: &[u8]) -> bool {
    if block == META_BLOCK {
        return true;
    }
    let Some(tag) = page_image::tag_of(p) else {
        return false;
    };
    match PageKind::from_u16(tag.kind) {
        Some(PageKind::L0) => {
            tag.vblock >= meta.header.l0_first_vblock && tag.vblock < meta.header.next_vblock
        }
        Some(PageKind::RunData | PageKind::RunIndex | PageKind::RunPayload) => {
            meta.has_run(tag.vblock) || meta.is_being_written(tag.vblock) || meta.is_open(tag.vblock)
        }
        Some(PageKind::L0Dir) => meta.lists_dir_page(block),
        Some(PageKind::Meta) => true,
        Some(PageKind::Free) | None => false,
    }
}

/// A page for new contents, pinned and exclusively locked: a free page from
/// the free space map (re-checked: not in use by `meta`, not freed by a
/// switch that older scans may still read, not in `taken`) or a new block.
/// The caller overwrites it with a full image.
pub fn allocate_block(
    rel: Rel,
    meta: &Meta,
    taken: &HashSet<pg_sys::BlockNumber>,
) -> pg_sys::Buffer {
    allocate_checked(rel, Some(meta), taken)
}

/// [`allocate_block`] for a writer that does not hold the metapage and
/// runs alongside DML (a merge): each candidate is checked against the
/// manifest as it is now (concurrent L0 allocations change it), read
/// before the candidate is locked (the metapage is locked first elsewhere).
pub fn allocate_block_now(
    rel: Rel,
    taken: &HashSet<pg_sys::BlockNumber>,
) -> pg_sys::Buffer {
    allocate_checked(rel, None, taken)
}

/// Free-space-map candidates an allocation may pass over (pending or busy
/// pages) before it extends the file instead.
const MAX_SKIPPED: usize = 16;

fn allocate_checked(
    rel: Rel,
    meta: Option<&Meta>,
    taken: &HashSet<pg_sys::BlockNumber>,
) -> pg_sys::Buffer {
    let nblocks = buffer::nblocks(rel);
    // Pages passed over because they are still pending or busy are free (or
    // will be): the lookup took them out of the map, so they go back in.
    let mut skipped = Vec::new();
    let found = loop {
        if skipped.len() >= MAX_SKIPPED {
            break None;
        }
        let Some(b) = crate::pg::fsm::take_free_page(rel) else {
            break None;
        };
        if b == META_BLOCK || b >= nblocks || taken.contains(&b) {
            continue;
        }
        let now = if meta.is_none() { read(rel) } else { None };
        let Some(meta) = meta.or(now.as_ref()) else {
            continue;
        };
        let buf = buffer::read(rel, b);
        // A page someone holds locked or pinned is in use, being set up or
        // still read: skip it (pending entries should already keep readers'
        // pages; this is the second line of defence).
        if !buffer::try_lock_cleanup(buf) {
            buffer::release(buf);
            skipped.push(b);
            continue;
        }
        let buf = Locked::adopt(buf);
        let bytes = page::bytes(buf.page());
        let pending = page_image::tag_of(bytes).is_some_and(|t| meta.is_pending(b, &t));
        if !in_use(meta, b, bytes) && !pending {
            break Some(buf.into_buffer());
        }
        if pending {
            skipped.push(b);
        }
    };
    if !skipped.is_empty() {
        record_free(rel, skipped);
    }
    found.unwrap_or_else(|| buffer::extend_locked(rel))
}

/// Drops the pending entries that no snapshot can need any more (their pages
/// become reusable), after telling hot standbys to resolve conflicts with
/// snapshots that old. Returns whether any was dropped.
pub fn prune_pending(rel: Rel, meta: &mut Meta) -> bool {
    let done: Vec<u64> = meta
        .pending
        .iter()
        .map(|p| p.safe_fxid)
        .filter(|f| crate::pg::standby::no_snapshot_older_than(rel, *f))
        .collect();
    let Some(horizon) = done.iter().max().copied() else {
        return false;
    };
    crate::pg::standby::log_conflict(rel, horizon);
    meta.pending.retain(|p| !done.contains(&p.safe_fxid));
    true
}

/// Reports pages as free to the free space map.
pub fn record_free(rel: Rel, blocks: impl IntoIterator<Item = pg_sys::BlockNumber>) {
    for b in blocks {
        // not WAL-logged; re-checked before reuse
        crate::pg::fsm::record_free(rel, b);
    }
    crate::pg::fsm::vacuum(rel);
}

/// Whether the table has a BRIN index. BRIN summarizes and scans TID block
/// ranges up to the file's physical size (`RelationGetNumberOfBlocks`), so
/// such a table keeps its file at least as long as its virtual blocks reach.
pub fn keeps_dense(rel: Rel) -> bool {
    crate::pg::rel::has_index_of_am(rel, pg_sys::BRIN_AM_OID)
}

/// Extends the file with FREE pages (WAL-logged, reported to the free space
/// map) until block `upto` exists.
pub fn cover_virtual_blocks(rel: Rel, upto: pg_sys::BlockNumber) {
    let mut added = Vec::new();
    while buffer::nblocks(rel) <= upto {
        let buf = Locked::adopt(buffer::extend_locked(rel));
        let mut w = PageWrite::start(rel);
        let p = w.register(buf.buffer(), true);
        page::copy_image(p, PageImage::new(PageKind::Free, 0, 0).bytes());
        w.commit();
        added.push(buf.block());
    }
    if !added.is_empty() {
        record_free(rel, added);
    }
}

/// Adds a new L0 page: the next virtual block, mapped in the L0 directory.
/// Returns it pinned and exclusively locked, initialised and WAL-logged.
pub fn allocate_l0_page(rel: Rel) -> pg_sys::Buffer {
    ensure_metapage(rel);
    if keeps_dense(rel) {
        // the new page's virtual block must lie inside the file (BRIN)
        if let Some(next) = with_header(rel, |_, h| h.next_vblock) {
            cover_virtual_blocks(rel, next);
        }
    }
    let meta_buf = Locked::exclusive(rel, META_BLOCK);
    let mut meta = decode(rel, &meta_buf);
    if meta.l0_pages() as usize >= MAX_L0_PAGES {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!(
                "L0 of lsm table \"{}\" is full ({MAX_L0_PAGES} pages)",
                crate::pg::rel::relname(rel)
            ),
            "Run VACUUM on the table (or strata.lsm_flush) to flush L0 into a run."
        );
    }
    prune_pending(rel, &mut meta);
    let vblock = meta.header.next_vblock;
    let (slot, entry) = meta.dir_position_for_next();
    let l0_buf = allocate_block(rel, &meta, &HashSet::new());
    let l0_block = buffer::block_number(l0_buf);
    let new_dir = meta.l0_dir[slot] == 0;
    let dir_buf = if new_dir {
        Locked::adopt(allocate_block(rel, &meta, &HashSet::from([l0_block])))
    } else {
        Locked::exclusive(rel, meta.l0_dir[slot])
    };
    let dir_block = dir_buf.block();

    let mut w = PageWrite::start(rel);
    let mp = w.register(meta_buf.buffer(), false);
    let lp = w.register(l0_buf, true);
    let dp = w.register(dir_buf.buffer(), new_dir);
    page::copy_image(lp, PageImage::new(PageKind::L0, vblock, 0).bytes());
    if new_dir {
        page::copy_image(dp, PageImage::new(PageKind::L0Dir, slot as u32, 0).bytes());
        meta.l0_dir[slot] = dir_block;
    }
    if page_image::dir_entries(page::bytes(dp)).len() != entry
        || !page::append_below_lower(dp, &l0_block.to_le_bytes())
    {
        drop(w);
        corrupted(rel, format!("L0 directory page {dir_block} is out of step"));
    }
    meta.header.next_vblock += 1;
    encode_into(mp, &meta);
    w.commit();
    l0_buf
}

/// Physical blocks of the L0 pages, in virtual block order.
pub fn l0_blocks(rel: Rel, meta: &Meta) -> Vec<(u32, pg_sys::BlockNumber)> {
    let n = meta.l0_pages() as usize;
    let mut out = Vec::with_capacity(n);
    for slot in 0..n.div_ceil(DIR_ENTRIES) {
        let entries = read_page(rel, meta.l0_dir[slot], page_image::dir_entries);
        for (j, b) in entries.into_iter().enumerate() {
            let v = meta.header.l0_first_vblock + (slot * DIR_ENTRIES + j) as u32;
            if out.len() < n {
                out.push((v, b));
            }
        }
    }
    out
}

/// Runs `f` over the bytes of block `b` under a share lock.
pub fn read_page<T>(
    rel: Rel,
    b: pg_sys::BlockNumber,
    f: impl FnOnce(&[u8]) -> T,
) -> T {
    // A block past the end makes the buffer manager raise its own error.
    if b == META_BLOCK {
        corrupted(rel, "manifest names block 0 as a data page".into());
    }
    f(page::bytes(Locked::share(rel, b).page()))
}

/// `(first_rowid, block)` of every data page of a run, in rowid order, and
/// the blocks of its index pages (fence index and bloom filter).
pub fn run_pages(rel: Rel, run: &RunDesc) -> (Vec<(u64, u32)>, Vec<u32>) {
    let (leaves, filter) = read_page(rel, run.root, |p| {
        (page_image::fences(p), page_image::root_filter(p))
    });
    let mut data = Vec::with_capacity(run.data_pages as usize);
    let mut index = vec![run.root];
    index.extend(filter.into_iter().flat_map(|(_, blocks)| blocks));
    for (_, leaf) in leaves {
        index.push(leaf);
        data.extend(read_page(rel, leaf, page_image::fences));
    }
    (data, index)
}

/// Runs `f` over the metapage's bytes and its checked header under a share
/// lock, without decoding the whole manifest (hot paths: inserts, fetches).
/// The relation must have blocks: callers reach it with TIDs that came from
/// the table (indexes, chains, lanes); `fetch::tid_valid` checks user TIDs.
pub fn with_header<T>(
    rel: Rel,
    f: impl FnOnce(&[u8], &format::MetaHeader) -> T,
) -> Option<T> {
    let buf = Locked::share(rel, META_BLOCK);
    let p = buf.page();
    if page_id::page_kind(rel, META_BLOCK, p) != Some(PageKind::Meta) {
        corrupted(rel, "block 0 is not an lsm metapage".into());
    }
    let bytes = page::bytes(p);
    let h = format::MetaHeader::decode(bytes).unwrap_or_else(|e| corrupted(rel, format!("invalid metapage: {e}")));
    Some(f(bytes, &h))
}

/// Pages a sequential scan reads (see [`format::scan_pages`]). The relation
/// must have blocks.
pub fn scan_pages(rel: Rel) -> u64 {
    with_header(rel, format::scan_pages).unwrap_or(0)
}

/// Lowest virtual block an insert may append to: the oldest L0 page, or,
/// while a flush copies the L0 pages below its seal, the seal (inserts
/// check their lane against it).
pub fn l0_append_floor(rel: Rel) -> Option<u32> {
    with_header(rel, |page, h| {
        h.l0_first_vblock
            .max(format::u32_at(page, format::META_SEAL_AT))
    })
}

/// The newest L0 page: its virtual block and physical block (None when L0
/// is empty).
pub fn newest_l0_page(rel: Rel) -> Option<(u32, pg_sys::BlockNumber)> {
    let v = with_header(rel, |_, h| h.next_vblock.checked_sub(1))??;
    let block = locate(rel, &crate::pg::htup::make_tid(v, 1))?;
    Some((v, block))
}

/// Whether virtual block `v` is in L0.
pub fn in_l0(rel: Rel, v: u32) -> bool {
    with_header(rel, |_, h| h.dir_position(v).is_some()).unwrap_or(false)
}

/// The virtual block and rowid of `tid` (None: an offset no version has).
pub fn tid_place(tid: &pg_sys::ItemPointerData) -> Option<(u32, u64)> {
    let (v, o) = (
        crate::pg::htup::tid_block(tid),
        crate::pg::htup::tid_offset(tid),
    );
    format::offset_in_range(o).then(|| (v, format::rowid(v, o)))
}

/// Physical block holding the row version `tid`, if the manifest has it.
pub fn locate(rel: Rel, tid: &pg_sys::ItemPointerData) -> Option<pg_sys::BlockNumber> {
    let (v, rowid) = tid_place(tid)?;
    enum Where {
        L0 { dir: u32, entry: usize },
        Run { root: u32 },
        Open(format::OpenRun),
        Nowhere,
    }
    let place = with_header(rel, |page, h| match h.dir_position(v) {
        Some((slot, entry)) => Where::L0 {
            dir: format::dir_slot_block(page, slot),
            entry,
        },
        None => match format::run_holding(page, h, rowid) {
            Some(run) => Where::Run { root: run.root },
            None => match format::open_run(page).filter(|o| o.holds(rowid)) {
                Some(open) => Where::Open(open),
                None => Where::Nowhere,
            },
        },
    })?;
    match place {
        Where::L0 { dir, entry } => {
            read_page(rel, dir, |p| page_image::dir_entry(p, entry))
        }
        Where::Run { root } => {
            let (leaf, filter) = root_step(rel, root, rowid);
            let leaf = leaf?;
            // a rowid the run's filter surely lacks was dropped: the leaf and
            // data page need not be read
            if filter.is_some_and(|(block, probe)| !filter_hits(rel, block, &probe)) {
                return None;
            }
            read_page(rel, leaf, |p| page_image::fence_block_for(p, rowid))
        }
        Where::Open(open) => locate_open(rel, &open, rowid),
        Where::Nowhere => None,
    }
}

/// Whether page image `p` is still a fence page (`flags`: root or leaf) of
/// the open run `open` — not a page reused since an abandoned run's were
/// freed.
fn is_open_index(p: &[u8], open: &format::OpenRun, flags: u32) -> bool {
    page_image::tag_of(p).is_some_and(|t| {
        t.kind == PageKind::RunIndex as u16 && t.vblock == open.run_id && t.flags == flags
    })
}

/// The data page of the open run `open` (a bulk load's, see
/// [`format::OpenRun`]) whose range holds `rowid`, read down its fence
/// index as it is now (it grows while the load runs, so no copy keeps it).
/// Pages that are no longer the run's (an abandoned run cleared by VACUUM
/// and reused since) hold none of its rowids: None.
pub fn locate_open(rel: Rel, open: &format::OpenRun, rowid: u64) -> Option<u32> {
    let step = |block: u32, flags: u32| {
        read_page(rel, block, |p| {
            is_open_index(p, open, flags)
                .then(|| page_image::fence_block_for(p, rowid))
                .flatten()
        })
    };
    let leaf = step(open.root, format::INDEX_ROOT)?;
    step(leaf, format::INDEX_LEAF)
}

/// Reads a run's root: the leaf whose range holds `rowid`, and where the
/// run's bloom filter keeps its bits (None: the run has no filter).
fn root_step(
    rel: Rel,
    root: u32,
    rowid: u64,
) -> (Option<u32>, Option<(u32, bloom::Probe)>) {
    read_page(rel, root, |p| {
        (
            page_image::fence_block_for(p, rowid),
            page_image::root_filter_probe(p, rowid),
        )
    })
}

/// Whether the filter page at `block` may hold the probed rowid (a page
/// that is not a filter page answers yes: `lsm_verify` reports it).
fn filter_hits(rel: Rel, block: u32, probe: &bloom::Probe) -> bool {
    read_page(rel, block, |p| {
        page_image::bloom_body(p).is_none_or(|body| probe.hits(body))
    })
}

/// What the bloom filter of the run whose range holds `tid` says of it:
/// `Some(false)` when the run surely lacks it; None when no run's range
/// holds it or that run has no filter.
pub fn run_filter_may_contain(
    rel: Rel,
    tid: &pg_sys::ItemPointerData,
) -> Option<bool> {
    let rowid = page_id::rowid_of(tid);
    let root = with_header(rel, |page, h| {
        format::run_holding(page, h, rowid).map(|r| r.root)
    })??;
    let (block, probe) = root_step(rel, root, rowid).1?;
    Some(filter_hits(rel, block, &probe))
}

/// A run about to be rewritten: its data blocks are appended to `sources`
/// (rowid order) and all its pages to `freed`.
pub fn take_run(
    rel: Rel,
    run: &RunDesc,
    sources: &mut Vec<u32>,
    freed: &mut Vec<u32>,
) {
    let (data, index) = run_pages(rel, run);
    sources.extend(data.iter().map(|(_, b)| *b));
    freed.extend(data.iter().map(|(_, b)| *b));
    freed.extend(index);
}

/// The RUN_PAYLOAD pages of the expanded compact data pages among `blocks`
/// (freed with them). DML expands pages alongside merges, so callers ask
/// once DML is locked out.
pub fn payload_blocks(
    rel: Rel,
    blocks: impl IntoIterator<Item = pg_sys::BlockNumber>,
) -> Vec<pg_sys::BlockNumber> {
    blocks
        .into_iter()
        .filter_map(|b| {
            read_page(rel, b, |p| {
                (compact_page::is_compact(p) && compact_page::head(p).payload_block != 0)
                    .then(|| compact_page::head(p).payload_block)
            })
        })
        .collect()
}

/// Data blocks whose rowids may fall in `lo..=hi` (bitmap pages of runs).
pub fn run_blocks_for_range(rel: Rel, lo: u64, hi: u64) -> Vec<pg_sys::BlockNumber> {
    let Some(meta) = read(rel) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    runs_blocks_in_range(rel, &meta, lo, hi, &mut out);
    out
}

/// Appends the data blocks of `meta`'s runs whose rowids may fall in
/// `lo..=hi`, in rowid order.
fn runs_blocks_in_range(
    rel: Rel,
    meta: &Meta,
    lo: u64,
    hi: u64,
    out: &mut Vec<pg_sys::BlockNumber>,
) {
    let mut runs: Vec<&RunDesc> = meta
        .runs
        .iter()
        .filter(|r| r.first_rowid <= hi && lo <= r.last_rowid)
        .collect();
    runs.sort_by_key(|r| r.first_rowid);
    for run in runs {
        let (data, _) = run_pages(rel, run);
        let start = page_image::fence_for(&data, lo).unwrap_or(0);
        out.extend(
            data[start..]
                .iter()
                .take_while(|(first, _)| *first <= hi)
                .map(|(_, b)| *b),
        );
    }
}

/// What a sequential or TID range scan reads, in rowid (that is TID)
/// order: the data pages of every run, then the L0 pages by virtual block,
/// as far as they may hold rowids in `lo..=hi` — with the [`Live`] of the
/// same manifest. Heap scans return an append-only table in insertion
/// order; so does this.
pub fn scan_order(rel: Rel, lo: u64, hi: u64) -> (Live, Vec<pg_sys::BlockNumber>) {
    let Some(meta) = read(rel) else {
        return (Live::default(), Vec::new());
    };
    let mut out = Vec::with_capacity(
        (meta
            .runs
            .iter()
            .map(|r| r.data_pages as usize)
            .sum::<usize>())
            + meta.l0_pages() as usize,
    );
    runs_blocks_in_range(rel, &meta, lo, hi, &mut out);
    let (vlo, vhi) = (format::tid_of_rowid(lo).0, format::tid_of_rowid(hi).0);
    out.extend(
        l0_blocks(rel, &meta)
            .into_iter()
            .filter(|(v, _)| (vlo..=vhi).contains(v))
            .map(|(_, b)| b),
    );
    (Live::of_meta(&meta), out)
}

/// What a scan treats as in use, fixed at its start. A flush or merge may
/// switch the manifest while the scan runs; the pages it frees stay as they
/// are (pending) until no snapshot as old as the scan's can exist, so the
/// scan reads the old components to the end. Parallel scans share the
/// leader's (see [`Live::shared`]).
/// Plain data (no heap allocation): it lives inside palloc'd scan structs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Live {
    l0_first: u32,
    nruns: u32,
    runs: [u32; format::MAX_RUNS],
}

impl Live {
    pub fn of(rel: Rel) -> Live {
        read(rel).map(|m| Live::of_meta(&m)).unwrap_or_default()
    }

    fn of_meta(m: &Meta) -> Live {
        let mut live = Live {
            l0_first: m.header.l0_first_vblock,
            nruns: m.runs.len() as u32,
            ..Live::default()
        };
        for (i, r) in m.runs.iter().enumerate() {
            live.runs[i] = r.run_id;
        }
        live
    }

    /// The Live stored after a parallel scan's block-scan state (placed there
    /// by `parallelscan_initialize`), so all participants read the same
    /// components.
    ///
    /// # Safety
    /// `pscan` must be an lsm parallel scan descriptor sized by
    /// [`Live::parallel_size`].
    pub unsafe fn shared(pscan: pg_sys::ParallelTableScanDesc) -> *mut Live {
        // SAFETY: per the contract, a Live follows the block-scan state.
        unsafe { (pscan as *mut u8).add(Self::parallel_offset()) as *mut Live }
    }

    /// Offset of the shared Live inside a parallel scan descriptor.
    pub fn parallel_offset() -> usize {
        let base = std::mem::size_of::<pg_sys::ParallelBlockTableScanDescData>();
        base.next_multiple_of(std::mem::align_of::<Live>())
    }

    /// Size of an lsm parallel scan descriptor.
    pub fn parallel_size() -> usize {
        Self::parallel_offset() + std::mem::size_of::<Live>()
    }

    /// Kind of a page holding live row versions (L0 or RUN_DATA), else None.
    /// L0 pages added after the snapshot count as live.
    pub fn data_page_kind(
        &self,
        rel: Rel,
        block: pg_sys::BlockNumber,
        p: Page,
    ) -> Option<PageKind> {
        let kind = page_id::page_kind(rel, block, p)?;
        let owner = page_id::tag(p)?.vblock;
        match kind {
            PageKind::L0 if owner >= self.l0_first => Some(kind),
            PageKind::RunData if self.runs[..self.nruns as usize].contains(&owner) => Some(kind),
            _ => None,
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::run_filter_may_contain;
    use crate::pg::htup;
    use pgrx::prelude::*;
    use pgrx::PgRelation;
    use std::collections::HashMap;

    /// Flushes table `name` (wide rows: 30 per L0 page, so each virtual
    /// block leaves offsets 31..=256 unused inside the run's rowid range)
    /// and returns the relation and every row's `(block, offset)`.
    fn flushed_table(name: &str) -> (PgRelation, Vec<(u32, u16)>) {
        // through L0 (a bulk load would fill every virtual block)
        Spi::run("SET strata.lsm_bulk_load = off").unwrap();
        Spi::run(&format!("CREATE TABLE {name} (id int, pad text) USING lsm")).unwrap();
        Spi::run(&format!(
            "INSERT INTO {name} SELECT g, repeat('x', 250) FROM generate_series(1, 6000) g"
        ))
        .unwrap();
        Spi::run(&format!("SELECT strata.lsm_flush('{name}')")).unwrap();
        let oid = Spi::get_one::<pg_sys::Oid>(&format!("SELECT '{name}'::regclass::oid"))
            .unwrap()
            .unwrap();
        // SAFETY: `oid` names the table just created in this transaction.
        let rel = unsafe { PgRelation::with_lock(oid, pg_sys::AccessShareLock as _) };
        let tids = Spi::connect(|c| {
            let sql = format!(
                "SELECT (ctid::text::point)[0]::int8, (ctid::text::point)[1]::int8 FROM {name}"
            );
            c.select(&sql, None, &[])
                .unwrap()
                .map(|r| {
                    (
                        r.get::<i64>(1).unwrap().unwrap() as u32,
                        r.get::<i64>(2).unwrap().unwrap() as u16,
                    )
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(tids.len(), 6000);
        (rel, tids)
    }

    #[pg_test]
    fn run_filters_keep_every_row_and_reject_unused_rowids() {
        let (table, tids) = flushed_table("bf");
        // SAFETY: `table` keeps it open until the test ends.
        let rel = unsafe { crate::pg::relation::Rel::from_raw(table.as_ptr()) };
        let filter_pages = Spi::get_one::<i64>(
            "SELECT filter_pages FROM strata.lsm_info('bf') WHERE component = 'total'",
        )
        .unwrap();
        assert_eq!(filter_pages, Some(1));
        for (b, o) in &tids {
            let tid = htup::make_tid(*b, *o);
            assert_eq!(
                run_filter_may_contain(rel, &tid),
                Some(true),
                "row ({b},{o})"
            );
        }
        // offsets past each block's last row are inside the run's range, yet
        // no version has them
        let mut last: HashMap<u32, u16> = HashMap::new();
        for (b, o) in &tids {
            let e = last.entry(*b).or_default();
            *e = (*e).max(*o);
        }
        let (mut rejected, mut probed) = (0, 0);
        for (b, o) in &last {
            if *b == *last.keys().max().unwrap() {
                continue; // the run ends at the last row
            }
            for off in o + 1..=256 {
                probed += 1;
                let tid = htup::make_tid(*b, off);
                if run_filter_may_contain(rel, &tid) == Some(false) {
                    rejected += 1;
                    assert!(super::locate(rel, &tid).is_none());
                }
            }
        }
        assert!(
            probed > 40_000 && rejected * 100 >= probed * 97,
            "{rejected} of {probed} rejected"
        );
        let (b, o) = tids[0];
        let sql = format!("SELECT count(*) FROM bf WHERE ctid = '({b},{})'", o + 200);
        assert_eq!(Spi::get_one::<i64>(&sql).unwrap(), Some(0));
        let verify = Spi::get_one::<i64>("SELECT count(*) FROM strata.lsm_verify('bf')").unwrap();
        assert_eq!(verify, Some(0));
    }

    #[pg_test]
    fn runs_without_filters_when_turned_off() {
        Spi::run("SET strata.lsm_bloom_bits_per_key = 0").unwrap();
        let (table, tids) = flushed_table("nf");
        // SAFETY: `table` keeps it open until the test ends.
        let rel = unsafe { crate::pg::relation::Rel::from_raw(table.as_ptr()) };
        let (b, o) = tids[0];
        assert_eq!(
            run_filter_may_contain(rel, &htup::make_tid(b, o)),
            None
        );
        let filter_pages = Spi::get_one::<i64>(
            "SELECT filter_pages FROM strata.lsm_info('nf') WHERE component = 'total'",
        )
        .unwrap();
        assert_eq!(filter_pages, Some(0));
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM nf WHERE id % 7 = 0").unwrap(),
            Some(857)
        );
    }
}
