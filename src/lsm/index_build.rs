//! Index support on `lsm` tables: building an index from the table
//! (`index_build_range_scan`), the second pass of CREATE INDEX CONCURRENTLY
//! (`index_validate_scan`) and telling btree which TIDs are dead
//! (`index_delete_tuples`).
//!
//! Build passes per page: classify every version under a share lock
//! (`HeapTupleSatisfiesVacuum`, or the build's MVCC snapshot) → unlock → form
//! index datums and call the AM's callback for the versions to index. Versions
//! being inserted or deleted by other transactions are waited for, then the page
//! is classified again, as heap does.

use crate::pg::snapshot::Snap;
use crate::pg::relation::Rel;
use super::index_datums::IndexDatums;
use super::{chain, format, scan, storage};
use crate::pg::buffer::{self, Locked};
use crate::pg::htup;
use crate::pg::page;
use pgrx::pg_sys;

fn is_brin(index: Rel) -> bool {
    index.form().relam == pg_sys::BRIN_AM_OID
}

/// The data blocks holding virtual blocks `lo..hi`, in TID order: runs in
/// rowid order, then L0 pages in virtual block order. BRIN's serial build
/// and range summarization need their tuples in TID order.
fn blocks_in_tid_order(table: Rel, lo: u32, hi: u32) -> Vec<pg_sys::BlockNumber> {
    let Some(meta) = super::manifest::read(table) else {
        return Vec::new();
    };
    let (lo_rowid, hi_rowid) = (format::rowid(lo, 1), format::rowid(hi, 1).saturating_sub(1));
    let mut out = super::manifest::run_blocks_for_range(table, lo_rowid, hi_rowid);
    out.extend(
        super::manifest::l0_blocks(table, &meta)
            .into_iter()
            .filter(|(v, _)| (lo..hi).contains(v))
            .map(|(_, b)| b),
    );
    out
}

/// What a build does with a row version (heap's
/// `heapam_index_build_range_scan` rules).
enum Class {
    /// Index it; whether it is alive.
    Index(bool),
    /// Dead to every snapshot.
    Skip,
    /// Recently dead but HOT-updated: the chain's newer member is indexed
    /// under the root instead, and snapshots older than the index must not
    /// use it (`ii_BrokenHotChain`).
    Broken,
    /// Inserted or deleted by another running transaction: wait for it.
    Wait(pg_sys::TransactionId),
}

fn classify(status: pg_sys::HTSV_Result::Type, h: *mut htup::Header, anyvisible: bool) -> Class {
    match status {
        pg_sys::HTSV_Result::HEAPTUPLE_LIVE => Class::Index(true),
        pg_sys::HTSV_Result::HEAPTUPLE_RECENTLY_DEAD if chain::is_hot_updated(h) => Class::Broken,
        pg_sys::HTSV_Result::HEAPTUPLE_RECENTLY_DEAD => Class::Index(false),
        pg_sys::HTSV_Result::HEAPTUPLE_DEAD => Class::Skip,
        in_progress => {
            // Inserted (alive) or deleted (not alive) by a running
            // transaction: index it when that is us, else wait.
            let inserting = in_progress == pg_sys::HTSV_Result::HEAPTUPLE_INSERT_IN_PROGRESS;
            let x = if inserting {
                htup::xmin(h)
            } else {
                htup::update_xid(h)
            };
            if anyvisible || crate::pg::multixact::is_current(x.into_inner()) {
                if !inserting && !anyvisible && chain::is_hot_updated(h) {
                    Class::Broken // our own update: treated as recently dead
                } else {
                    Class::Index(inserting)
                }
            } else {
                Class::Wait(x)
            }
        }
    }
}

/// The members of the chain rooted at `root` to index under the root's TID,
/// with whether each is alive: the one `snapshot` sees (MVCC builds), or
/// each member heap's rules pick, waiting for running transactions first.
fn chain_picks(
    w: &mut chain::Walker,
    root: pg_sys::ItemPointerData,
    snapshot: Snap,
    mvcc: bool,
    anyvisible: bool,
    info: *mut pg_sys::IndexInfo,
) -> Vec<(pg_sys::ItemPointerData, bool)> {
    let rel = w.rel();
    if mvcc || anyvisible && !snapshot.is_none() {
        let mut tid = root;
        return if chain::search(w, &mut tid, snapshot, None, None, true) {
            vec![(tid, true)]
        } else {
            Vec::new()
        };
    }
    let oldest_xmin = crate::pg::xact::oldest_nonremovable_xid(rel);
    loop {
        let mut picks = Vec::new();
        let mut wait = None;
        let mut broken = false;
        chain::for_each_member(w, root, |loc| {
            let mut t = loc.heap_tuple(rel);
            // SAFETY: share-locked page.
            let status = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, oldest_xmin, loc.buf) };
            match classify(status, loc.header, anyvisible) {
                Class::Index(alive) => picks.push((loc.tid, alive)),
                Class::Skip => {}
                Class::Broken => broken = true,
                Class::Wait(x) => {
                    wait = Some((x, loc.tid));
                    return false;
                }
            }
            true
        });
        match wait {
            None => {
                if broken {
                    // SAFETY: valid IndexInfo.
                    unsafe { (*info).ii_BrokenHotChain = true };
                }
                return picks;
            }
            Some((x, tid)) => {
                crate::pg::multixact::wait_for(x.into_inner(), rel, tid, pg_sys::XLTW_Oper::XLTW_InsertIndexUnique);
            }
        }
    }
}

/// The `index_build_range_scan` callback: feeds `callback` the rows of
/// blocks `start_block..start_block + numblocks` (all for
/// `InvalidBlockNumber`) that the index must hold.
///
/// # Safety
/// PostgreSQL's arguments: open relations, a valid `IndexInfo`, a build
/// callback valid for `callback_state`, and the caller's scan or null.
#[pgrx::pg_guard]
#[allow(clippy::too_many_arguments)] // the table AM callback's signature
pub unsafe extern "C-unwind" fn index_build_range_scan(
    table: pg_sys::Relation,
    index: pg_sys::Relation,
    info: *mut pg_sys::IndexInfo,
    _allow_sync: bool,
    anyvisible: bool,
    _progress: bool,
    start_block: pg_sys::BlockNumber,
    numblocks: pg_sys::BlockNumber,
    callback: pg_sys::IndexBuildCallback,
    callback_state: *mut std::ffi::c_void,
    scan: pg_sys::TableScanDesc,
) -> f64 {
    // an index expression's or predicate's error, or a lock wait's, is
    // raised whole (see pg::error_catch)
    crate::pg::error_catch::rethrowing(|| {
        // SAFETY: PostgreSQL's arguments, passed on.
        unsafe {
            build_range_scan(
                table, index, info, anyvisible, start_block, numblocks, callback, callback_state, scan,
            )
        }
    })
}

/// [`index_build_range_scan`]'s work.
///
/// # Safety
/// As [`index_build_range_scan`].
#[allow(clippy::too_many_arguments)]
unsafe fn build_range_scan(
    table: pg_sys::Relation,
    index: pg_sys::Relation,
    info: *mut pg_sys::IndexInfo,
    anyvisible: bool,
    start_block: pg_sys::BlockNumber,
    numblocks: pg_sys::BlockNumber,
    callback: pg_sys::IndexBuildCallback,
    callback_state: *mut std::ffi::c_void,
    scan: pg_sys::TableScanDesc,
) -> f64 {
    // SAFETY: PostgreSQL hands the callback open relations.
    let (table, index) = unsafe { (Rel::from_raw(table), Rel::from_raw(index)) };
    let brin = is_brin(index);
    if brin && buffer::nblocks(table) > 0 {
        // BRIN scans cover TID blocks up to the file's size (see manifest::keeps_dense)
        if let Some(next) = super::manifest::with_header(table, |_, h| h.next_vblock) {
            super::manifest::cover_virtual_blocks(table, next);
        }
    }
    let callback = callback.expect("index build callback");
    // Hands the index the datums just formed, as the entry for `entry_tid`.
    let feed = |datums: &mut IndexDatums, entry_tid: &mut pg_sys::ItemPointerData, alive: bool| {
        // SAFETY: the AM's callback, given the caller's state and the
        // datums just formed from the version stored in the slot (which
        // keeps its buffer pinned).
        unsafe {
            callback(
                index.raw(),
                entry_tid,
                datums.values.as_mut_ptr(),
                datums.isnull.as_mut_ptr(),
                alive,
                callback_state,
            )
        }
    };
    let mut datums = IndexDatums::new(table, info);
    // An MVCC snapshot for concurrent builds (or one the caller's scan carries).
    // A concurrent build (CIC, REINDEX CONCURRENTLY) runs while others write:
    // like heap, it indexes what one MVCC snapshot sees, so an update racing
    // the scan cannot make both versions of a row look alive.
    // SAFETY: valid IndexInfo.
    let concurrent = unsafe { (*info).ii_Concurrent };
    let mut registered: pg_sys::Snapshot = std::ptr::null_mut();
    let snapshot = if !scan.is_null() {
        // SAFETY: caller-provided scan, whose snapshot its caller keeps
        // registered for the build.
        unsafe { Snap::from_raw((*scan).rs_snapshot) }
    } else if concurrent {
        // SAFETY: registered here, unregistered at the end.
        registered = unsafe { pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot()) };
        // SAFETY: registered until the end of this function.
        unsafe { Snap::from_raw(registered) }
    } else {
        Snap::none()
    };
    let mvcc = snapshot.is_mvcc();
    let oldest_xmin = crate::pg::xact::oldest_nonremovable_xid(table);

    let nblocks = buffer::nblocks(table);
    let first = start_block.max(storage::META_BLOCK + 1);
    let last = if numblocks == pg_sys::InvalidBlockNumber {
        nblocks
    } else {
        start_block.saturating_add(numblocks).min(nblocks)
    };
    let mut reltuples = 0.0;
    let live = super::manifest::Live::of(table);
    // A parallel build (btree, brin) gives each participant a parallel scan:
    // blocks then come from its shared state, each to one participant only.
    // SAFETY: caller-provided scan, when given.
    let parallel = !scan.is_null() && unsafe { !(*scan).rs_parallel.is_null() };
    // BRIN: its block ranges are ranges of virtual blocks, and its serial
    // build wants them in order (a parallel BRIN build merges ranges itself)
    let vrange = (
        start_block,
        if numblocks == pg_sys::InvalidBlockNumber {
            u32::MAX
        } else {
            start_block.saturating_add(numblocks)
        },
    );
    let by_tid = brin && !parallel;
    let mut serial: Box<dyn Iterator<Item = pg_sys::BlockNumber>> = if by_tid {
        Box::new(blocks_in_tid_order(table, vrange.0, vrange.1).into_iter())
    } else {
        Box::new(first..last)
    };
    let mut next = move || {
        if parallel {
            std::iter::from_fn(|| super::scan::next_build_block(scan))
                .find(|&b| b > storage::META_BLOCK)
        } else {
            serial.next()
        }
    };

    if scan.is_null() {
        // heap's build begins a sequential scan of its own, counted as one
        // (a given scan was counted when it began)
        crate::pg::stats::count_table_scan(table, true);
    }
    let mut chains: Vec<pg_sys::ItemPointerData> = Vec::new();
    let mut walker = chain::Walker::new(table, 0);
    while let Some(block) = next() {
        pgrx::check_for_interrupts!();
        let buf = buffer::read(table, block);
        let picked = 'classify: loop {
            chains.clear();
            buffer::lock_share(buf);
            let p = buffer::page(buf);
            let mut picked: Vec<(u16, bool)> = Vec::new();
            if live.data_page_kind(table, block, p).is_none() {
                buffer::unlock(buf);
                break 'classify picked;
            }
            for off in 1..=page::max_offset(p) {
                let mut t = match storage::version_at(table, p, off) {
                    Some(t) => t,
                    None => continue,
                };
                // every version the build reads, as heap's scan returns
                // each tuple to it (seq_tup_read)
                crate::pg::stats::count_returned(table);
                if by_tid && !(vrange.0..vrange.1).contains(&htup::tid_block(&t.t_self)) {
                    continue;
                }
                // index entries name chain roots: a chain's members are
                // indexed, under its root's TID, when the root is reached
                if chain::is_heap_only(t.t_data) {
                    continue;
                }
                if chain::has_chain(t.t_data) {
                    chains.push(t.t_self);
                    continue;
                }
                if mvcc || anyvisible && !snapshot.is_none() {
                    // SAFETY: share-locked page.
                    if unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut t, snapshot.raw(), buf) } {
                        picked.push((off, true));
                    }
                    continue;
                }
                // SAFETY: share-locked page.
                let status = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, oldest_xmin, buf) };
                let wait_for = match classify(status, t.t_data, anyvisible) {
                    Class::Index(alive) => {
                        picked.push((off, alive));
                        None
                    }
                    Class::Skip | Class::Broken => None,
                    Class::Wait(x) => Some(x),
                };
                if let Some(xwait) = wait_for {
                    buffer::unlock(buf);
                    crate::pg::multixact::wait_for(xwait.into_inner(), table, t.t_self, pg_sys::XLTW_Oper::XLTW_InsertIndexUnique);
                    continue 'classify;
                }
            }
            buffer::unlock(buf);
            break 'classify picked;
        };

        let p = buffer::page(buf);
        for (off, alive) in picked {
            let t = storage::version_at(table, p, off).expect("classified item");
            reltuples += 1.0;
            storage::store_in_slot(table, datums.slot, t, buf);
            if !datums.form() {
                continue;
            }
            let mut tid = t.t_self;
            feed(&mut datums, &mut tid, alive);
        }
        buffer::release(buf);
        for root in &chains {
            let mut root_tid = *root;
            for (tid, alive) in chain_picks(&mut walker, root_tid, snapshot, mvcc, anyvisible, info) {
                let Some(loc) = walker.lock(tid) else {
                    continue;
                };
                reltuples += 1.0;
                storage::store_in_slot(table, datums.slot, loc.heap_tuple(table), walker.buf);
                walker.unlock();
                if !datums.form() {
                    continue;
                }
                feed(&mut datums, &mut root_tid, alive);
            }
        }
    }
    walker.release();
    datums.finish();
    if !scan.is_null() {
        // Like heapam_index_build_range_scan, the build ends the scan it was
        // given (a parallel build's; with its temporary snapshot, if any).
        // SAFETY: the scan begun above, not used afterwards.
        unsafe { scan::end(scan as *mut scan::LsmScan) };
    }
    if !registered.is_null() {
        // SAFETY: registered above.
        unsafe { pg_sys::UnregisterSnapshot(registered) };
    }
    reltuples
}

/// `itemptr_encode`: the int8 form of a TID that CIC's tuplesort holds.
fn encode_tid(tid: &pg_sys::ItemPointerData) -> i64 {
    ((htup::tid_block(tid) as i64) << 16) | htup::tid_offset(tid) as i64
}

/// Second pass of CREATE INDEX CONCURRENTLY: every chain root (see `chain`)
/// whose TID is not in the index's sorted TID list (`state`) and whose chain
/// has a version visible to `snapshot` gets an entry: that version's datums
/// under the root's TID. The data pages are read in rowid order; the index's
/// TIDs are read into memory (8 bytes each) and looked up.
///
/// # Safety
/// The `index_validate_scan` callback's arguments: open relations, a valid
/// `IndexInfo` and validate_index's state.
pub unsafe fn validate_scan(
    table: Rel,
    index: Rel,
    info: *mut pg_sys::IndexInfo,
    snapshot: Snap,
    state: *mut pg_sys::ValidateIndexState,
) {
    // SAFETY: valid state from validate_index().
    let state = unsafe { &mut *state };
    let mut datums = IndexDatums::new(table, info);
    let mut indexed: Vec<i64> = Vec::new();
    // SAFETY: validate_index's sort, performed by its caller.
    while let Some(d) = unsafe { crate::pg::tuplesort::next_datum(state.tuplesort) } {
        indexed.push(d.value() as i64);
    }
    if !indexed.is_sorted() {
        indexed.sort_unstable();
    }
    // SAFETY: valid IndexInfo.
    let unique = unsafe { (*info).ii_Unique };
    let check = if unique {
        pg_sys::IndexUniqueCheck::UNIQUE_CHECK_YES
    } else {
        pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO
    };
    let (live, blocks) = super::manifest::scan_order(table, 0, u64::MAX);
    let mut walker = chain::Walker::new(table, 0);
    let mut missing: Vec<pg_sys::ItemPointerData> = Vec::new();
    for block in blocks {
        pgrx::check_for_interrupts!();
        missing.clear();
        let page_guard = Locked::share(table, block);
        let p = page_guard.page();
        if live.data_page_kind(table, block, p).is_some() {
            for off in 1..=page::max_offset(p) {
                let Some(t) = storage::version_at(table, p, off) else {
                    continue;
                };
                if chain::is_heap_only(t.t_data) {
                    continue;
                }
                if indexed.binary_search(&encode_tid(&t.t_self)).is_ok() {
                    state.htups += 1.0;
                } else {
                    missing.push(t.t_self);
                }
            }
        }
        drop(page_guard);
        for root in &missing {
            let mut tid = *root;
            if !chain::search(&mut walker, &mut tid, snapshot, Some(datums.slot), None, true) {
                continue;
            }
            state.htups += 1.0;
            if !datums.form() {
                continue;
            }
            let mut root_tid = *root;
            // SAFETY: datums formed for this chain's visible version; index
            // and table are open.
            unsafe {
                pg_sys::index_insert(
                    index.raw(),
                    datums.values.as_mut_ptr(),
                    datums.isnull.as_mut_ptr(),
                    &mut root_tid,
                    table.raw(),
                    check,
                    false,
                    info,
                )
            };
            state.tups_inserted += 1.0;
        }
    }
    walker.release();
    datums.finish();
}

/// Marks the TIDs whose chains (see `chain`) are dead to every snapshot as
/// deletable and returns the newest xmax among them (the snapshot conflict
/// horizon). A TID the manifest no longer has was dropped by a flush or
/// merge as dead (rowids are never reused).
///
/// # Safety
/// `op` is a valid `TM_IndexDeleteOp` whose arrays hold `ndeltids` entries.
pub unsafe fn delete_tuples(
    rel: Rel,
    op: *mut pg_sys::TM_IndexDeleteOp,
) -> pg_sys::TransactionId {
    let oldest_xmin = crate::pg::xact::oldest_nonremovable_xid(rel);
    let mut horizon = pg_sys::InvalidTransactionId;
    let mut walker = chain::Walker::new(rel, 0);
    // SAFETY: btree passes ndeltids entries in deltids and the status array.
    let (n, deltids, status) = unsafe { ((*op).ndeltids as usize, (*op).deltids, (*op).status) };
    for i in 0..n {
        // SAFETY: i < ndeltids.
        let d = unsafe { &*deltids.add(i) };
        let mut newest = pg_sys::InvalidTransactionId;
        // a broken walk (a concurrent VACUUM) is not known to be all dead
        let walk = chain::for_each_member(&mut walker, d.tid, |loc| {
            let mut t = loc.heap_tuple(rel);
            // SAFETY: share-locked page.
            let st = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, oldest_xmin, loc.buf) };
            if st != pg_sys::HTSV_Result::HEAPTUPLE_DEAD {
                return false;
            }
            let x = htup::update_xid(loc.header);
            if x != pg_sys::InvalidTransactionId
                && (newest == pg_sys::InvalidTransactionId
                    || crate::pg::vacuum::xid_precedes(newest, x))
            {
                newest = x;
            }
            true
        });
        let all_dead = walk == chain::Walk::Done;
        // SAFETY: status has an entry for every deltid id.
        unsafe { (*status.add(d.id as usize)).knowndeletable = all_dead };
        if all_dead
            && newest != pg_sys::InvalidTransactionId
            && (horizon == pg_sys::InvalidTransactionId
                || crate::pg::vacuum::xid_precedes(horizon, newest))
        {
            horizon = newest;
        }
    }
    walker.release();
    horizon
}
