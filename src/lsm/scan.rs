//! Sequential, TID-range, parallel, sample and ANALYZE scans of `lsm` tables.
//!
//! A sequential or TID range scan reads the data pages in rowid order (every
//! run's, then L0's: [`manifest::scan_order`], listed when a pass starts, with
//! the [`Live`] components of the same manifest), so that, like heap, it
//! returns rows in TID order — an append-only table in insertion order.
//! Parallel scans hand out physical blocks instead and skip those that are
//! not live data pages. On each page the scan collects the items visible to
//! the snapshot under a share lock (page-at-a-time, like heap's page mode);
//! tuples are then returned from the pinned page. Pages never compact in
//! place, so a pinned page's tuples stay where they are. Either scan
//! direction may be taken at any time (SCROLL cursors).

use crate::pg::page::Page;
use crate::pg::snapshot::Snap;
use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use super::chain;
use super::compact_page;
use super::format::{self, ROWS_PER_VBLOCK};
use super::manifest::{self, Live};
use super::page_image;
use super::slot;
use super::storage;
use super::version_data;
use crate::pg::buffer::{self, INVALID_BLOCK};
use crate::pg::htup;
use crate::pg::page;
use crate::pg::predicate;
use crate::pg::stats;
use pgrx::pg_sys;
use pgrx::prelude::*;

#[repr(C)]
pub struct LsmScan {
    pub base: pg_sys::TableScanDescData,
    pub pbscanwork: pg_sys::ParallelBlockTableScanWorkerData,
    nblocks: pg_sys::BlockNumber,
    block: pg_sys::BlockNumber,
    buf: pg_sys::Buffer,
    offsets: [u16; ROWS_PER_VBLOCK as usize],
    count: usize,
    /// Index into `offsets` of the tuple returned last (-1 before the first).
    pos: isize,
    range: Option<(pg_sys::ItemPointerData, pg_sys::ItemPointerData)>,
    /// Block and next offset of an ANALYZE or sample scan.
    work_block: pg_sys::BlockNumber,
    work_offset: u16,
    started: bool,
    live: Live,
    /// Bitmap scans: the data pages of the current bitmap page (a virtual
    /// block of a run may span several), the next one to load, and which
    /// offsets of that virtual block the bitmap wants (None: lossy, all).
    pieces: [pg_sys::BlockNumber; ROWS_PER_VBLOCK as usize],
    npieces: usize,
    next_piece: usize,
    want_vblock: pg_sys::BlockNumber,
    want: Option<[u64; 5]>,
    /// Bitmap scans: roots on the loaded page that the snapshot does not see
    /// but whose chains go on (see `chain`), walked after the page's own
    /// visible versions; the page a walk pinned last.
    chains: [pg_sys::ItemPointerData; ROWS_PER_VBLOCK as usize],
    nchains: usize,
    next_chain: usize,
    chain_buf: pg_sys::Buffer,
    /// Non-parallel sequential and TID range scans: the data pages of this
    /// pass in rowid order (palloc'd in the scan's memory context), their
    /// number, and the position of the current one.
    order: *mut pg_sys::BlockNumber,
    norder: usize,
    at: isize,
    /// Sequential and TID range scans of a compressed page: its visible
    /// versions, decoded once when the page is loaded, side by side in
    /// `arena` (palloc'd in the scan's memory context and reused page
    /// after page), and where each one is (`spans[i]` for `offsets[i]`).
    /// Slots then point into the arena, as they point into a heap page.
    unpacked: bool,
    arena: *mut u8,
    arena_cap: usize,
    arena_cxt: pg_sys::MemoryContext,
    spans: [(u32, u32); ROWS_PER_VBLOCK as usize],
    /// The TIDs of `offsets`' versions on an unpacked page (a compact page
    /// may be rewritten, expanded, while only pinned: see `compact_page`).
    tids: [pg_sys::ItemPointerData; ROWS_PER_VBLOCK as usize],
    /// Sequential and TID range scans of a column-wise compressed page:
    /// its visible versions in a batch that lsm slots read column by column
    /// (see `slot`), instead of `arena`; made on first use, dropped with
    /// the scan's memory context.
    batch: *mut slot::Batch,
    batched: bool,
}

impl LsmScan {
    /// The scanned table.
    fn rel(&self) -> Rel {
        // SAFETY: set from the open relation in `begin`; PostgreSQL keeps it
        // open until the scan ends.
        unsafe { Rel::from_raw(self.base.rs_rd) }
    }

    /// The scan's snapshot (none for ANALYZE's block scans).
    fn snapshot(&self) -> Snap {
        // SAFETY: set from `begin`'s snapshot, which its caller keeps
        // registered until the scan ends.
        unsafe { Snap::from_raw(self.base.rs_snapshot) }
    }
}

/// Which row versions of a page a load keeps (before the snapshot check).
#[derive(Clone, Copy)]
enum Filter {
    All,
    /// Bitmap page: versions of virtual block `.0` whose offset is in the
    /// bitset (`None`: any offset, a lossy page).
    Bitmap(pg_sys::BlockNumber, Option<[u64; 5]>),
}

impl Filter {
    fn keeps(&self, tid: &pg_sys::ItemPointerData) -> bool {
        match self {
            Filter::All => true,
            Filter::Bitmap(v, bits) => {
                let o = htup::tid_offset(tid) as usize;
                htup::tid_block(tid) == *v && bits.is_none_or(|b| b[o / 64] & (1 << (o % 64)) != 0)
            }
        }
    }
}

pub fn begin(
    rel: Rel,
    snapshot: Snap,
    nkeys: i32,
    pscan: pg_sys::ParallelTableScanDesc,
    flags: u32,
) -> *mut LsmScan {
    if nkeys > 0 {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "lsm scans do not take scan keys"
        );
    }
    // SAFETY: palloc0 returns zeroed memory in the current (query) context,
    // freed with the query; all-zero is a valid initial state for every field.
    let scan = unsafe { pg_sys::palloc0(std::mem::size_of::<LsmScan>()) } as *mut LsmScan;
    // SAFETY: freshly allocated and zeroed.
    let s = unsafe { &mut *scan };
    s.base.rs_rd = rel.raw();
    s.base.rs_snapshot = snapshot.raw();
    s.base.rs_nkeys = 0;
    s.base.rs_flags = flags;
    s.base.rs_parallel = pscan;
    s.block = INVALID_BLOCK;
    s.work_block = INVALID_BLOCK;
    s.pos = -1;
    s.nblocks = buffer::nblocks(rel);
    // SAFETY: reads the backend's current memory context (the scan's).
    s.arena_cxt = unsafe { pg_sys::CurrentMemoryContext };
    if !ordered(s) {
        s.live = live_for(rel, pscan);
    }
    // Like heap: a sequential or sample scan reads the whole relation, so its
    // SIREAD lock covers the relation; bitmap scans lock the rows they return.
    let whole = pg_sys::ScanOptions::SO_TYPE_SEQSCAN | pg_sys::ScanOptions::SO_TYPE_SAMPLESCAN;
    if flags & whole != 0 {
        predicate::lock_relation(rel, snapshot);
    }
    stats::count_table_scan(rel, flags & pg_sys::ScanOptions::SO_TYPE_SEQSCAN != 0);
    scan
}

/// Whether the scan reads in rowid order: a non-parallel sequential or TID
/// range scan, which takes its components when each pass starts
/// ([`start_order`]); other scans take them at begin and rescan.
fn ordered(s: &LsmScan) -> bool {
    let kinds = pg_sys::ScanOptions::SO_TYPE_SEQSCAN | pg_sys::ScanOptions::SO_TYPE_TIDRANGESCAN;
    s.base.rs_parallel.is_null() && s.base.rs_flags & kinds != 0
}

/// The components a scan reads: a parallel scan's participants all use the
/// leader's, others read the manifest now.
fn live_for(rel: Rel, pscan: pg_sys::ParallelTableScanDesc) -> Live {
    if pscan.is_null() {
        Live::of(rel)
    } else {
        // SAFETY: lsm parallel scans are set up by our parallelscan_initialize.
        unsafe { *Live::shared(pscan) }
    }
}

fn release_page(s: &mut LsmScan) {
    if s.buf != 0 {
        buffer::release(s.buf);
        s.buf = 0;
    }
    s.count = 0;
    s.pos = -1;
    s.nchains = 0;
    s.next_chain = 0;
    s.unpacked = false;
    s.batched = false;
}

pub fn rescan(s: &mut LsmScan) {
    release_page(s);
    s.block = INVALID_BLOCK;
    s.started = false;
    s.nblocks = buffer::nblocks(s.rel());
    if !ordered(s) {
        s.live = live_for(s.rel(), s.base.rs_parallel);
    }
    s.npieces = 0;
    s.next_piece = 0;
    let sequential = s.base.rs_flags & pg_sys::ScanOptions::SO_TYPE_SEQSCAN != 0;
    stats::count_table_scan(s.rel(), sequential);
}

/// # Safety
/// `scan` was made by [`begin`] and is not used afterwards.
pub unsafe fn end(scan: *mut LsmScan) {
    // SAFETY: the executor passes the pointer returned by `begin`.
    let s = unsafe { &mut *scan };
    release_page(s);
    free_order(s);
    if s.chain_buf != 0 {
        buffer::release(s.chain_buf);
    }
    if !s.arena.is_null() {
        // SAFETY: palloc'd by `unpack`, no slot of this scan points into it
        // once the scan ends.
        unsafe { pg_sys::pfree(s.arena as *mut std::ffi::c_void) };
    }
    if s.base.rs_flags & pg_sys::ScanOptions::SO_TEMP_SNAPSHOT != 0 {
        // SAFETY: with SO_TEMP_SNAPSHOT the scan owns its registered snapshot.
        unsafe { pg_sys::UnregisterSnapshot(s.base.rs_snapshot) };
    }
    // SAFETY: allocated by palloc0 in `begin`, not used after this.
    unsafe { pg_sys::pfree(scan as *mut std::ffi::c_void) };
}

pub fn set_tid_range(s: &mut LsmScan, min: pg_sys::ItemPointerData, max: pg_sys::ItemPointerData) {
    s.range = Some((min, max));
}

fn tid_cmp(a: &pg_sys::ItemPointerData, b: &pg_sys::ItemPointerData) -> std::cmp::Ordering {
    (htup::tid_block(a), a.ip_posid).cmp(&(htup::tid_block(b), b.ip_posid))
}

/// Pins `block` and records the items of its row versions that `filter`
/// keeps and the snapshot sees.
fn load_page(s: &mut LsmScan, block: pg_sys::BlockNumber, filter: Filter) {
    release_page(s);
    let rel = s.rel();
    let buf = buffer::read(rel, block);
    buffer::lock_share(buf);
    let p = buffer::page(buf);
    s.buf = buf;
    s.block = block;
    if s.live.data_page_kind(rel, block, p).is_some() {
        // SSI work only in SERIALIZABLE transactions, decided once per page;
        // bitmap scans take tuple SIREAD locks on what they return
        let ssi = predicate::conflict_out_needed(rel, s.snapshot());
        let bitmap = s.base.rs_flags & pg_sys::ScanOptions::SO_TYPE_BITMAPSCAN != 0;
        // Versions sharing a header (compact pages) share their visibility
        // to an MVCC snapshot: checked once per header.
        // SAFETY: the executor's snapshot.
        let mvcc = unsafe { (*s.base.rs_snapshot).snapshot_type }
            == pg_sys::SnapshotType::SNAPSHOT_MVCC;
        let mut memo: Option<(*mut htup::Header, bool)> = None;
        let Some(view) = storage::PageView::of(rel, p) else {
            buffer::unlock(buf);
            return;
        };
        let whole = matches!(filter, Filter::All) && s.range.is_none();
        if whole && mvcc && !ssi && view.compact().is_some() {
            collect_compact(s, &view, p, buf);
        } else {
            for item in 1..=page::max_offset(p).min(ROWS_PER_VBLOCK) {
                let Some(mut t) = view.version(item) else {
                    continue;
                };
                if !filter.keeps(&t.t_self) {
                    continue;
                }
                let by_root = matches!(filter, Filter::Bitmap(..));
                if chain::is_redirect(t.t_data) {
                    // never visible; a bitmap's entry for it leads to its chain
                    if by_root {
                        s.chains[s.nchains] = t.t_self;
                        s.nchains += 1;
                    }
                    continue;
                }
                if by_root && chain::is_heap_only(t.t_data) {
                    continue; // reached through its chain's root, which index entries name
                }
                if let Some((lo, hi)) = &s.range {
                    if tid_cmp(&t.t_self, lo).is_lt() || tid_cmp(&t.t_self, hi).is_gt() {
                        continue;
                    }
                }
                let visible = match memo {
                    Some((h, v)) if h == t.t_data && mvcc && !ssi => v,
                    _ => {
                        // SAFETY: tuple on a share-locked page; snapshot from the executor.
                        let v = unsafe {
                            pg_sys::HeapTupleSatisfiesVisibility(&mut t, s.base.rs_snapshot, buf)
                        };
                        memo = Some((t.t_data, v));
                        v
                    }
                };
                if ssi {
                    predicate::check_conflict_out(visible, rel, &mut t, buf, s.snapshot());
                }
                if visible {
                    if ssi && bitmap {
                        predicate::lock_tid(rel, &t, s.snapshot());
                    }
                    s.offsets[s.count] = item;
                    s.tids[s.count] = t.t_self;
                    s.count += 1;
                } else if by_root && chain::is_hot_updated(t.t_data) {
                    s.chains[s.nchains] = t.t_self;
                    s.nchains += 1;
                }
            }
        }
        if s.count > 0 && version_data::is_compressed(p) && !load_batch(s, p) {
            unpack(s, p);
        }
    }
    buffer::unlock(buf);
}

/// The visible versions of compact page `p` (pinned, share-locked) for a
/// sequential scan under an MVCC snapshot without SSI: versions sharing a
/// header share its visibility and its chain flags (a redirect or a chain
/// member has a header of its own), so each header is checked once and the
/// versions are taken by their line pointers alone.
fn collect_compact(s: &mut LsmScan, view: &storage::PageView, p: Page, buf: pg_sys::Buffer) {
    let Some(c) = view.compact() else {
        return;
    };
    let bytes = page::bytes(p);
    let mut last: (usize, bool) = (usize::MAX, false);
    for item in 1..=page::max_offset(p).min(ROWS_PER_VBLOCK) {
        let Some((off, compact_page::TUPLE_HEADER_LEN)) = page_image::item_extent(bytes, item as usize) else {
            continue;
        };
        if off != last.0 {
            let Some(mut t) = view.version(item) else {
                continue;
            };
            // SAFETY: tuple on a share-locked page; snapshot from the executor.
            let visible = !chain::is_redirect(t.t_data)
                && unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut t, s.base.rs_snapshot, buf) };
            last = (off, visible);
        }
        if !last.1 {
            continue;
        }
        let Some(rowid) = c.rowid_of(item as usize) else {
            continue;
        };
        let (v, o) = format::tid_of_rowid(rowid);
        s.offsets[s.count] = item;
        s.tids[s.count] = htup::make_tid(v, o);
        s.count += 1;
    }
}

/// Loads the visible versions of the loaded compressed page into the
/// scan's batch when its payload is column-wise (false otherwise).
fn load_batch(s: &mut LsmScan, p: Page) -> bool {
    if s.batch.is_null() {
        let batch = slot::Batch::new(s.rel());
        s.batch = pgrx::PgMemoryContexts::For(s.arena_cxt).leak_and_drop_on_delete(batch);
    }
    // SAFETY: made above, alive as long as the scan's memory context.
    let batch = unsafe { &mut *s.batch };
    s.batched = batch.load(s.block, p, &s.offsets[..s.count]);
    s.batched
}

/// Decodes the visible versions of the loaded compressed page into the
/// scan's arena (see [`LsmScan::arena`]); the page is share-locked.
fn unpack(s: &mut LsmScan, p: Page) {
    let mut at = 0usize;
    let (rel, block, cxt) = (s.rel(), s.block, s.arena_cxt);
    let (arena, cap, spans) = (&mut s.arena, &mut s.arena_cap, &mut s.spans);
    version_data::for_each_full(rel, block, p, &s.offsets[..s.count], |i, header, own, rest| {
        let len = header.len() + rest.len();
        if at + len > *cap {
            let grown = (at + len).next_power_of_two().max(pg_sys::BLCKSZ as usize * 4);
            // SAFETY: allocations in the scan's memory context; repalloc keeps
            // the versions copied so far. A slot may still point at the last
            // page's version, but the scan stores the next one (or clears
            // the slot) before it returns, so no one reads the old pointer.
            *arena = unsafe {
                if arena.is_null() {
                    pg_sys::MemoryContextAlloc(cxt, grown)
                } else {
                    pg_sys::repalloc(*arena as *mut std::ffi::c_void, grown)
                }
            } as *mut u8;
            *cap = grown;
        }
        // SAFETY: the arena has `cap` >= `at + len` writable bytes.
        let dst = unsafe { std::slice::from_raw_parts_mut(arena.add(at), len) };
        let (head, tail) = dst.split_at_mut(header.len());
        head.copy_from_slice(header);
        if let Some((v, o)) = own {
            compact_page::put_ctid(head, v, o);
        }
        tail.copy_from_slice(rest);
        spans[i] = (at as u32, len as u32);
        at = page_image::maxalign(at + len);
    });
    s.unpacked = true;
}

/// The next block a parallel scan's shared state hands this participant.
fn next_parallel(s: &mut LsmScan) -> Option<pg_sys::BlockNumber> {
    let pbscan = s.base.rs_parallel as pg_sys::ParallelBlockTableScanDesc;
    let rel = s.rel();
    // SAFETY: parallel state set up by parallelscan_initialize; the worker
    // struct lives in this scan.
    let b = unsafe {
        if !s.started {
            pg_sys::table_block_parallelscan_startblock_init(rel.raw(), &mut s.pbscanwork, pbscan);
        }
        pg_sys::table_block_parallelscan_nextpage(rel.raw(), &mut s.pbscanwork, pbscan)
    };
    s.started = true;
    (b != INVALID_BLOCK).then_some(b)
}

/// For a parallel index build: the next block of `scan` (a parallel lsm
/// scan) this participant must index, so that each block is indexed by
/// exactly one participant. None at the end.
pub fn next_build_block(scan: pg_sys::TableScanDesc) -> Option<pg_sys::BlockNumber> {
    // SAFETY: lsm scans are LsmScans (scan_begin allocates them).
    next_parallel(unsafe { &mut *(scan as *mut LsmScan) })
}

fn free_order(s: &mut LsmScan) {
    if !s.order.is_null() {
        // SAFETY: palloc'd by `start_order`, not referenced elsewhere.
        unsafe { pg_sys::pfree(s.order as *mut std::ffi::c_void) };
        s.order = std::ptr::null_mut();
    }
    s.norder = 0;
}

/// Lists the data pages of a new pass in rowid order (narrowed to the TID
/// range, if any) and takes the live components from the same manifest.
/// Rows a snapshot sees stay readable through a manifest read later than
/// the snapshot: flushes and merges keep every version some snapshot may
/// still see, and the pages they free stay pending.
fn start_order(s: &mut LsmScan) {
    free_order(s);
    let (lo, hi) = match &s.range {
        Some((min, max)) => (
            format::rowid(htup::tid_block(min), 1),
            format::rowid(htup::tid_block(max), ROWS_PER_VBLOCK),
        ),
        None => (0, u64::MAX),
    };
    let (live, blocks) = manifest::scan_order(s.rel(), lo, hi);
    s.live = live;
    if !blocks.is_empty() {
        let bytes = std::mem::size_of_val(blocks.as_slice());
        // SAFETY: allocated in the memory context holding the scan itself
        // (a pass may start in a shorter-lived context), filled right away.
        unsafe {
            let ctx = pg_sys::GetMemoryChunkContext(s as *mut LsmScan as *mut std::ffi::c_void);
            s.order = pg_sys::MemoryContextAlloc(ctx, bytes) as *mut pg_sys::BlockNumber;
            std::ptr::copy_nonoverlapping(blocks.as_ptr(), s.order, blocks.len());
        }
    }
    s.norder = blocks.len();
}

/// Next block in the scan direction, or None at the end.
fn next_block(s: &mut LsmScan, forward: bool) -> Option<pg_sys::BlockNumber> {
    if !s.base.rs_parallel.is_null() {
        return next_parallel(s);
    }
    if !(s.started && s.block != INVALID_BLOCK) {
        start_order(s);
        s.at = if forward { -1 } else { s.norder as isize };
    }
    s.started = true;
    s.at += if forward { 1 } else { -1 };
    if s.at < 0 || s.at as usize >= s.norder {
        return None;
    }
    // SAFETY: `at` indexes the `norder` blocks of `order`.
    Some(unsafe { *s.order.add(s.at as usize) })
}

/// Stores the visible tuple at index `pos` of the current page into `slot`.
fn emit(s: &mut LsmScan, pos: isize, slot: Slot) {
    s.pos = pos;
    if s.batched {
        let table = s.rel().data().rd_id;
        // SAFETY: the scan's live batch.
        unsafe { slot::store_columns(slot, s.batch, pos as usize, s.tids[pos as usize], table) };
        return;
    }
    if s.unpacked {
        let (off, len) = s.spans[pos as usize];
        let t = pg_sys::HeapTupleData {
            t_len: len,
            t_self: s.tids[pos as usize],
            // SAFETY: open relation.
            t_tableOid: s.rel().data().rd_id,
            // SAFETY: the span lies in the arena, filled when the page was loaded.
            t_data: unsafe { s.arena.add(off as usize) } as *mut htup::Header,
        };
        slot::store_buffer_tuple(slot, t, s.buf);
        return;
    }
    let item = s.offsets[pos as usize];
    let p = buffer::page(s.buf);
    let t = storage::version_at(s.rel(), p, item).expect("item recorded as visible");
    storage::store_in_slot(s.rel(), slot, t, s.buf);
}

/// The next row of the current batch into a slot that holds the row
/// before it in column mode (see `slot`): no Postgres call, so the handler
/// tries it before its guarded path. False when the full path must run.
#[inline]
pub fn next_in_batch(s: &mut LsmScan, forward: bool, slot: Slot) -> bool {
    if !s.batched {
        return false;
    }
    let next_pos = if forward { s.pos + 1 } else { s.pos - 1 };
    if next_pos < 0 || next_pos as usize >= s.count {
        return false;
    }
    let pos = next_pos as usize;
    // SAFETY: the scan's live batch.
    if !unsafe { slot::restore_columns(slot, s.batch, pos, s.tids[pos]) } {
        return false;
    }
    s.pos = next_pos;
    true
}

/// Returns the next visible tuple in `direction` into `slot`.
pub fn next(s: &mut LsmScan, forward: bool, slot: Slot) -> bool {
    loop {
        let next_pos = if forward { s.pos + 1 } else { s.pos - 1 };
        if s.buf != 0 && next_pos >= 0 && (next_pos as usize) < s.count {
            emit(s, next_pos, slot);
            return true;
        }
        match next_block(s, forward) {
            Some(b) => {
                load_page(s, b, Filter::All);
                s.pos = if forward { -1 } else { s.count as isize };
            }
            None => {
                release_page(s);
                s.block = INVALID_BLOCK;
                s.started = false;
                // SAFETY: valid slot.
                unsafe { pg_sys::ExecClearTuple(slot.raw()) };
                return false;
            }
        }
    }
}

// ------------------------------------------------------------ bitmap scans
//
// A bitmap's block numbers are virtual blocks (the block part of logical
// TIDs); each is located, then its exact offsets (or, for a lossy page, all of
// them) are checked against the snapshot page-at-a-time. PG15 hands us one
// TBMIterateResult per block; PG18 lets the AM drive the iterator.

/// Sets up bitmap page `vblock`: the data pages that may hold its versions
/// (one L0 page, or the run pages covering its rowids) and the wanted offsets.
fn bitmap_begin_vblock(s: &mut LsmScan, vblock: pg_sys::BlockNumber, exact: Option<&[u16]>) {
    release_page(s);
    let rel = s.rel();
    s.npieces = 0;
    s.next_piece = 0;
    s.want_vblock = vblock;
    s.want = exact.map(|offsets| {
        let mut bits = [0u64; 5];
        for &o in offsets.iter().filter(|o| format::offset_in_range(**o)) {
            bits[o as usize / 64] |= 1 << (o as usize % 64);
        }
        bits
    });
    let first = htup::make_tid(vblock, 1);
    let l0 = manifest::in_l0(rel, vblock);
    let blocks = if l0 {
        manifest::locate(rel, &first).into_iter().collect()
    } else {
        let lo = format::rowid(vblock, 1);
        manifest::run_blocks_for_range(rel, lo, lo + ROWS_PER_VBLOCK as u64 - 1)
    };
    for b in blocks.into_iter().take(s.pieces.len()) {
        s.pieces[s.npieces] = b;
        s.npieces += 1;
    }
}

/// Loads the next data page of the current bitmap page that has visible
/// versions; false when there is none left.
fn bitmap_next_piece(s: &mut LsmScan) -> bool {
    while s.next_piece < s.npieces {
        let block = s.pieces[s.next_piece];
        s.next_piece += 1;
        load_page(s, block, Filter::Bitmap(s.want_vblock, s.want));
        s.pos = -1;
        if s.count > 0 || s.nchains > 0 {
            return true;
        }
    }
    release_page(s);
    false
}

/// The next visible tuple of the current bitmap page, if any: the page's
/// own visible versions, then those its chains lead to.
fn bitmap_emit_next(s: &mut LsmScan, slot: Slot) -> bool {
    let found = bitmap_find_next(s, slot);
    if found {
        stats::count_fetched(s.rel());
    }
    found
}

fn bitmap_find_next(s: &mut LsmScan, slot: Slot) -> bool {
    loop {
        let next = s.pos + 1;
        if s.buf != 0 && (next as usize) < s.count {
            emit(s, next, slot);
            return true;
        }
        while s.next_chain < s.nchains {
            let mut tid = s.chains[s.next_chain];
            s.next_chain += 1;
            let mut w = chain::Walker::new(s.rel(), s.chain_buf);
            let found = chain::search(&mut w, &mut tid, s.snapshot(), Some(slot), None, true);
            s.chain_buf = w.buf;
            if found {
                return true;
            }
        }
        if !bitmap_next_piece(s) {
            return false;
        }
    }
}

/// PG15 `scan_bitmap_next_block`: sets up one bitmap page; false when it has
/// no visible tuple.
#[cfg(feature = "pg15")]
pub fn bitmap_next_block(s: &mut LsmScan, tbmres: &pg_sys::TBMIterateResult) -> bool {
    let n = tbmres.ntuples;
    // SAFETY: for exact pages `offsets` holds `ntuples` entries.
    let exact = (n >= 0).then(|| unsafe { tbmres.offsets.as_slice(n as usize) });
    let vblock = tbmres.blockno;
    bitmap_begin_vblock(s, vblock, exact);
    bitmap_next_piece(s)
}

/// PG15 `scan_bitmap_next_tuple`.
#[cfg(feature = "pg15")]
pub fn bitmap_next_tuple(s: &mut LsmScan, slot: Slot) -> bool {
    bitmap_emit_next(s, slot)
}

/// PG18 `scan_bitmap_next_tuple`: iterates the bitmap itself.
#[cfg(not(feature = "pg15"))]
pub fn bitmap_next_tuple(
    s: &mut LsmScan,
    slot: Slot,
    recheck: &mut bool,
    lossy_pages: &mut u64,
    exact_pages: &mut u64,
) -> bool {
    const MAX_TUPLES: usize = page::MAX_HEAP_TUPLES_PER_PAGE;
    loop {
        if bitmap_emit_next(s, slot) {
            return true;
        }
        check_for_interrupts!();
        let mut res = pg_sys::TBMIterateResult::default();
        // SAFETY: the executor set rs_tbmiterator before the first call.
        if !unsafe { pg_sys::tbm_iterate(&mut s.base.st.rs_tbmiterator, &mut res) } {
            release_page(s);
            // SAFETY: valid slot.
            unsafe { pg_sys::ExecClearTuple(slot.raw()) };
            return false;
        }
        let mut offsets = [0u16; MAX_TUPLES];
        let exact = if res.lossy {
            None
        } else {
            // SAFETY: `res` came from tbm_iterate; `offsets` holds MAX_TUPLES.
            let n = unsafe {
                pg_sys::tbm_extract_page_tuple(&mut res, offsets.as_mut_ptr(), MAX_TUPLES as u32)
            };
            Some(&offsets[..n.max(0) as usize])
        };
        *recheck = res.recheck;
        bitmap_begin_vblock(s, res.blockno, exact);
        if res.lossy {
            *lossy_pages += 1;
        } else {
            *exact_pages += 1;
        }
    }
}

// ------------------------------------------------------------- TABLESAMPLE

/// # Safety
/// `state` is the executor's sample scan state for this scan.
pub unsafe fn sample_next_block(s: &mut LsmScan, state: *mut pg_sys::SampleScanState) -> bool {
    release_page(s);
    // SAFETY: the executor passes a valid sample scan state with its routine.
    let tsm = unsafe { (*state).tsmroutine };
    // SAFETY: the routine of a valid sample scan state.
    let block = match unsafe { (*tsm).NextSampleBlock } {
        // SAFETY: the TSM's own callback with its own state.
        Some(f) => unsafe { f(state, s.nblocks) },
        None => {
            let b = if s.work_block == INVALID_BLOCK {
                0
            } else {
                s.work_block + 1
            };
            if b < s.nblocks {
                b
            } else {
                INVALID_BLOCK
            }
        }
    };
    if block == INVALID_BLOCK {
        s.work_block = INVALID_BLOCK;
        return false;
    }
    s.work_block = block;
    load_page(s, block, Filter::All);
    true
}

/// # Safety
/// `state` is the executor's sample scan state for this scan.
pub unsafe fn sample_next_tuple(
    s: &mut LsmScan,
    state: *mut pg_sys::SampleScanState,
    slot: Slot,
) -> bool {
    if s.buf == 0 {
        return false;
    }
    let p = buffer::page(s.buf);
    let max = if s.live.data_page_kind(s.rel(), s.block, p).is_some() {
        page::max_offset(p)
    } else {
        0
    };
    // SAFETY: valid sample state and routine.
    let tsm = unsafe { (*state).tsmroutine };
    loop {
        // SAFETY: the TSM's own callback.
        let off =
            unsafe { ((*tsm).NextSampleTuple.expect("NextSampleTuple"))(state, s.block, max) };
        if off == 0 {
            // SAFETY: valid slot.
            unsafe { pg_sys::ExecClearTuple(slot.raw()) };
            return false;
        }
        if let Some(i) = s.offsets[..s.count].iter().position(|o| *o == off) {
            emit(s, i as isize, slot);
            stats::count_returned(s.rel());
            return true;
        }
    }
}

// ------------------------------------------------------------------ ANALYZE

/// Pins and share-locks `buf` for ANALYZE's per-tuple pass.
pub fn analyze_begin_block(s: &mut LsmScan, buf: pg_sys::Buffer) {
    s.buf = buf;
    s.block = buffer::block_number(buf);
    s.work_offset = 1;
    buffer::lock_share(buf);
}

/// # Safety
/// The `scan_analyze_next_tuple` callback's arguments: `liverows` and
/// `deadrows` are writable counters.
pub unsafe fn analyze_next_tuple(
    s: &mut LsmScan,
    oldest_xmin: pg_sys::TransactionId,
    liverows: *mut f64,
    deadrows: *mut f64,
    slot: Slot,
) -> bool {
    let rel = s.rel();
    let p = buffer::page(s.buf);
    let max = if s.live.data_page_kind(rel, s.block, p).is_some() {
        page::max_offset(p)
    } else {
        0
    };
    while s.work_offset <= max {
        let off = s.work_offset;
        s.work_offset += 1;
        let Some(mut t) = storage::version_at(rel, p, off).filter(|t| !chain::is_redirect(t.t_data))
        else {
            continue;
        };
        // SAFETY: share-locked page.
        let status = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, oldest_xmin, s.buf) };
        let sample = match status {
            pg_sys::HTSV_Result::HEAPTUPLE_LIVE => {
                // SAFETY: counters owned by ANALYZE.
                unsafe { *liverows += 1.0 };
                true
            }
            pg_sys::HTSV_Result::HEAPTUPLE_DEAD | pg_sys::HTSV_Result::HEAPTUPLE_RECENTLY_DEAD => {
                // SAFETY: as above.
                unsafe { *deadrows += 1.0 };
                false
            }
            pg_sys::HTSV_Result::HEAPTUPLE_INSERT_IN_PROGRESS => {
                let mine = crate::pg::multixact::is_current(htup::xmin(t.t_data).into_inner());
                if mine {
                    // SAFETY: as above.
                    unsafe { *liverows += 1.0 };
                }
                mine
            }
            _ => {
                // DELETE_IN_PROGRESS
                let xmax = htup::update_xid(t.t_data);
                if crate::pg::multixact::is_current(xmax.into_inner()) {
                    // SAFETY: ANALYZE's counters, valid for the call.
                    unsafe { *deadrows += 1.0 };
                    false
                } else {
                    // SAFETY: as above.
                    unsafe { *liverows += 1.0 };
                    true
                }
            }
        };
        if sample {
            storage::store_in_slot(s.rel(), slot, t, s.buf);
            return true;
        }
    }
    buffer::unlock_release(s.buf);
    s.buf = 0;
    // SAFETY: valid slot.
    unsafe { pg_sys::ExecClearTuple(slot.raw()) };
    false
}
