//! Index support on `lsm` tables: building an index from the table
//! (`index_build_range_scan`) and telling btree which TIDs are dead
//! (`index_delete_tuples`).
//!
//! Build passes per page: classify every version under a share lock
//! (`HeapTupleSatisfiesVacuum`, or the build's MVCC snapshot) → unlock → form
//! index datums and call the AM's callback for the versions to index. Versions
//! being inserted or deleted by other transactions are waited for, then the page
//! is classified again, as heap does.

use super::format::PageKind;
use super::storage;
use crate::pg::buffer;
use crate::pg::htup;
use crate::pg::page;
use pgrx::pg_sys;

#[allow(clippy::too_many_arguments)]
pub fn build_range_scan(
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
    let callback = callback.expect("index build callback");
    // SAFETY: standard executor scaffolding for FormIndexDatum, as in heap.
    let (estate, econtext, slot, predicate) = unsafe {
        let estate = pg_sys::CreateExecutorState();
        let econtext = pg_sys::MakePerTupleExprContext(estate);
        let slot = pg_sys::table_slot_create(table, std::ptr::null_mut());
        (*econtext).ecxt_scantuple = slot;
        let predicate = pg_sys::ExecPrepareQual((*info).ii_Predicate, estate);
        (estate, econtext, slot, predicate)
    };
    // An MVCC snapshot for concurrent builds (or one the caller's scan carries).
    let snapshot = if !scan.is_null() {
        // SAFETY: caller-provided scan.
        unsafe { (*scan).rs_snapshot }
    } else {
        std::ptr::null_mut()
    };
    let mvcc = !snapshot.is_null()
        // SAFETY: valid snapshot.
        && unsafe { (*snapshot).snapshot_type } == pg_sys::SnapshotType::SNAPSHOT_MVCC;
    // SAFETY: horizon for this table.
    let oldest_xmin = unsafe { pg_sys::GetOldestNonRemovableTransactionId(table) };

    let nblocks = buffer::nblocks(table);
    let first = start_block.max(storage::META_BLOCK + 1);
    let last = if numblocks == pg_sys::InvalidBlockNumber {
        nblocks
    } else {
        start_block.saturating_add(numblocks).min(nblocks)
    };
    let mut reltuples = 0.0;
    let mut values = [pg_sys::Datum::from(0usize); pg_sys::INDEX_MAX_KEYS as usize];
    let mut isnull = [false; pg_sys::INDEX_MAX_KEYS as usize];

    for block in first..last {
        pgrx::check_for_interrupts!();
        let buf = buffer::read(table, block);
        let picked = 'classify: loop {
            buffer::lock_share(buf);
            let p = buffer::page(buf);
            let mut picked: Vec<(u16, bool)> = Vec::new();
            if storage::page_kind(table, block, p) != Some(PageKind::L0) {
                buffer::unlock(buf);
                break 'classify picked;
            }
            let vblock = storage::vblock_of(p, block);
            for off in 1..=page::max_offset(p) {
                let mut t = match storage::version_at(table, p, vblock, off) {
                    Some(t) => t,
                    None => continue,
                };
                if mvcc || anyvisible && !snapshot.is_null() {
                    // SAFETY: share-locked page.
                    if unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut t, snapshot, buf) } {
                        picked.push((off, true));
                    }
                    continue;
                }
                // SAFETY: share-locked page.
                let status = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, oldest_xmin, buf) };
                let wait_for = match status {
                    pg_sys::HTSV_Result::HEAPTUPLE_LIVE => {
                        picked.push((off, true));
                        None
                    }
                    pg_sys::HTSV_Result::HEAPTUPLE_RECENTLY_DEAD => {
                        picked.push((off, false));
                        None
                    }
                    pg_sys::HTSV_Result::HEAPTUPLE_DEAD => None,
                    in_progress => {
                        // Inserted (alive) or deleted (not alive) by a running
                        // transaction: index it when that is us, else wait.
                        let inserting =
                            in_progress == pg_sys::HTSV_Result::HEAPTUPLE_INSERT_IN_PROGRESS;
                        let x = if inserting {
                            htup::xmin(t.t_data)
                        } else {
                            htup::update_xid(t.t_data)
                        };
                        // SAFETY: transaction state lookup.
                        if anyvisible || unsafe { pg_sys::TransactionIdIsCurrentTransactionId(x) } {
                            picked.push((off, inserting));
                            None
                        } else {
                            Some(x)
                        }
                    }
                };
                if let Some(xwait) = wait_for {
                    buffer::unlock(buf);
                    let mut tid = t.t_self;
                    // SAFETY: waits for the other transaction to finish.
                    unsafe {
                        pg_sys::XactLockTableWait(
                            xwait,
                            table,
                            &mut tid,
                            pg_sys::XLTW_Oper::XLTW_InsertIndexUnique,
                        )
                    };
                    continue 'classify;
                }
            }
            buffer::unlock(buf);
            break 'classify picked;
        };

        let p = buffer::page(buf);
        let vblock = storage::vblock_of(p, block);
        for (off, alive) in picked {
            let t = storage::version_at(table, p, vblock, off).expect("classified item");
            reltuples += 1.0;
            storage::store_in_slot(slot, t, buf);
            // SAFETY: executor scaffolding set up above; the page stays pinned.
            unsafe {
                pg_sys::MemoryContextReset((*econtext).ecxt_per_tuple_memory);
                if !predicate.is_null() && !pg_sys::ExecQual(predicate, econtext) {
                    continue;
                }
                pg_sys::FormIndexDatum(
                    info,
                    slot,
                    estate,
                    values.as_mut_ptr(),
                    isnull.as_mut_ptr(),
                );
                let mut tid = t.t_self;
                callback(
                    index,
                    &mut tid,
                    values.as_mut_ptr(),
                    isnull.as_mut_ptr(),
                    alive,
                    callback_state,
                );
            }
        }
        buffer::release(buf);
    }
    // SAFETY: tear down what we created.
    unsafe {
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::FreeExecutorState(estate);
        (*info).ii_ExpressionsState = std::ptr::null_mut();
        (*info).ii_PredicateState = std::ptr::null_mut();
    }
    reltuples
}

/// Marks the TIDs whose versions are dead to every snapshot as deletable and
/// returns the newest xmax among them (the snapshot conflict horizon).
pub fn delete_tuples(
    rel: pg_sys::Relation,
    op: *mut pg_sys::TM_IndexDeleteOp,
) -> pg_sys::TransactionId {
    // SAFETY: horizon for this table.
    let oldest_xmin = unsafe { pg_sys::GetOldestNonRemovableTransactionId(rel) };
    let mut horizon = pg_sys::InvalidTransactionId;
    // SAFETY: btree passes ndeltids entries in deltids and the status array.
    let (n, deltids, status) = unsafe { ((*op).ndeltids as usize, (*op).deltids, (*op).status) };
    for i in 0..n {
        // SAFETY: i < ndeltids.
        let d = unsafe { &*deltids.add(i) };
        let Some(buf) = storage::pin_tid(rel, d.tid) else {
            continue;
        };
        buffer::lock_share(buf);
        if let Some(loc) = storage::find_on_page(rel, buf, d.tid) {
            let mut t = loc.heap_tuple(rel);
            // SAFETY: share-locked page.
            let st = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, oldest_xmin, buf) };
            if st == pg_sys::HTSV_Result::HEAPTUPLE_DEAD {
                // SAFETY: status has an entry for every deltid id.
                unsafe { (*status.add(d.id as usize)).knowndeletable = true };
                let x = htup::update_xid(loc.header);
                // SAFETY: xid comparison helper.
                if x != pg_sys::InvalidTransactionId
                    && (horizon == pg_sys::InvalidTransactionId
                        || unsafe { pg_sys::TransactionIdFollows(x, horizon) })
                {
                    horizon = x;
                }
            }
        }
        buffer::unlock_release(buf);
    }
    horizon
}
