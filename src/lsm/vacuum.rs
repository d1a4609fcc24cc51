//! VACUUM on an `lsm` table: flush L0 into a run (dropping the versions dead
//! to every snapshot), remove the dropped rowids from every index, and update
//! `relpages` in pg_class.
//!
//! The flush needs ACCESS EXCLUSIVE while VACUUM holds SHARE UPDATE
//! EXCLUSIVE. Like heap's end-of-vacuum truncation, it tries for the stronger
//! lock for a few seconds without queueing (so it never blocks other
//! sessions behind it) and skips the flush if it cannot get it; the lock is
//! released as soon as the flush is done. Dead versions already in runs stay
//! until compaction (issue #7). The index passes run after the lock is
//! released; until they do, index entries of dropped rowids are merely
//! dangling — rowids are never reused, so they can only miss, never mislead.

use super::flush::{self, FlushStats};
use super::storage;
use crate::pg::buffer;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// How long to keep trying for ACCESS EXCLUSIVE (as heap's truncation does).
const LOCK_RETRIES: u32 = 100;
const LOCK_RETRY_SLEEP_US: i64 = 50_000;

fn try_access_exclusive(rel: pg_sys::Relation) -> bool {
    for _ in 0..LOCK_RETRIES {
        // SAFETY: open relation; returns false instead of waiting.
        if unsafe { pg_sys::ConditionalLockRelation(rel, pg_sys::AccessExclusiveLock as i32) } {
            return true;
        }
        check_for_interrupts!();
        // SAFETY: plain sleep.
        unsafe { pg_sys::pg_usleep(LOCK_RETRY_SLEEP_US) };
    }
    false
}

/// IndexBulkDeleteCallback: is this TID one of the dropped rowids?
#[pg_guard]
unsafe extern "C-unwind" fn dropped_tid(tid: pg_sys::ItemPointer, state: *mut std::ffi::c_void) -> bool {
    // SAFETY: `state` is the sorted rowid vector passed below; `tid` is valid.
    let (dropped, tid) = unsafe { (&*(state as *const Vec<u64>), &*tid) };
    let rowid = super::format::rowid(crate::pg::htup::tid_block(tid), crate::pg::htup::tid_offset(tid));
    dropped.binary_search(&rowid).is_ok()
}

/// Bulk-deletes the dropped rowids from every index and runs index cleanup.
fn vacuum_indexes(
    rel: pg_sys::Relation,
    dropped: &Vec<u64>,
    strategy: pg_sys::BufferAccessStrategy,
    elevel: i32,
) {
    let mut n: i32 = 0;
    let mut irels: *mut pg_sys::Relation = std::ptr::null_mut();
    // SAFETY: opens the table's indexes with RowExclusiveLock, as heap does.
    unsafe { pg_sys::vac_open_indexes(rel, pg_sys::RowExclusiveLock as i32, &mut n, &mut irels) };
    // SAFETY: valid relation.
    let reltuples = unsafe { (*(*rel).rd_rel).reltuples } as f64;
    for i in 0..n as usize {
        // SAFETY: vac_open_indexes returned `n` open index relations.
        let index = unsafe { *irels.add(i) };
        let mut info = pg_sys::IndexVacuumInfo {
            index,
            #[cfg(not(feature = "pg15"))]
            heaprel: rel,
            analyze_only: false,
            report_progress: false,
            estimated_count: true,
            message_level: elevel,
            num_heap_tuples: reltuples.max(0.0),
            strategy,
        };
        // SAFETY: standard index vacuum calls; the callback state outlives them.
        unsafe {
            let mut stats = std::ptr::null_mut();
            if !dropped.is_empty() {
                stats = pg_sys::index_bulk_delete(
                    &mut info,
                    stats,
                    Some(dropped_tid),
                    dropped as *const Vec<u64> as *mut std::ffi::c_void,
                );
            }
            let stats = pg_sys::index_vacuum_cleanup(&mut info, stats);
            if !stats.is_null() {
                pg_sys::pfree(stats as *mut std::ffi::c_void);
            }
        }
    }
    // SAFETY: closes what vac_open_indexes opened; locks stay to commit.
    unsafe { pg_sys::vac_close_indexes(n, irels, pg_sys::NoLock as i32) };
}

fn update_relstats(rel: pg_sys::Relation) {
    let pages = buffer::nblocks(rel);
    // SAFETY: valid relation; invalid frozenxid/minmulti leave those alone
    // (lsm does not freeze yet: issue #7).
    unsafe {
        let reltuples = (*(*rel).rd_rel).reltuples as f64;
        let hasindex = (*(*rel).rd_rel).relhasindex;
        #[cfg(feature = "pg15")]
        pg_sys::vac_update_relstats(
            rel,
            pages,
            reltuples,
            0,
            hasindex,
            pg_sys::InvalidTransactionId,
            pg_sys::MultiXactId::from(0u32),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            false,
        );
        #[cfg(not(feature = "pg15"))]
        pg_sys::vac_update_relstats(
            rel,
            pages,
            reltuples,
            0,
            0,
            hasindex,
            pg_sys::InvalidTransactionId,
            pg_sys::MultiXactId::from(0u32),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            false,
        );
    }
}

/// `relation_vacuum` (plain VACUUM; VACUUM FULL goes through CLUSTER).
pub fn vacuum(rel: pg_sys::Relation, params: *mut pg_sys::VacuumParams, strategy: pg_sys::BufferAccessStrategy) {
    // SAFETY: valid params from VACUUM.
    let verbose = unsafe { (*params).options } & pg_sys::VACOPT_VERBOSE != 0;
    // SAFETY: reads the clock.
    let start = unsafe { pg_sys::GetCurrentTimestamp() };
    let elevel = if verbose { pg_sys::INFO } else { pg_sys::DEBUG2 } as i32;
    let name = storage::relname(rel);
    let stats = if try_access_exclusive(rel) {
        let st = flush::flush(rel);
        // SAFETY: taken above; nothing of this transaction depends on it now.
        unsafe { pg_sys::UnlockRelation(rel, pg_sys::AccessExclusiveLock as i32) };
        st
    } else {
        report(elevel, format!("skipping the L0 flush of \"{name}\": could not get ACCESS EXCLUSIVE lock"));
        FlushStats::default()
    };
    if stats.l0_pages > 0 {
        report(
            elevel,
            format!(
                "flushed {} L0 pages of \"{name}\" into {} run(s): {} row versions moved, {} dead ones dropped",
                stats.l0_pages, stats.runs_written, stats.versions_moved, stats.versions_dropped
            ),
        );
    }
    vacuum_indexes(rel, &stats.dropped, strategy, elevel);
    update_relstats(rel);
    report_to_pgstat(rel, start);
}

/// Tells the cumulative statistics that the table was vacuumed, like heap:
/// resets its dead-row count (what autovacuum triggers on) and counts the
/// vacuum. Live rows: the `reltuples` estimate. Dead rows left behind: none
/// that VACUUM could remove — dead versions inside runs wait for compaction.
fn report_to_pgstat(rel: pg_sys::Relation, start: pg_sys::TimestampTz) {
    // SAFETY: open relation.
    let (oid, shared, reltuples) = unsafe {
        ((*rel).rd_id, (*(*rel).rd_rel).relisshared, (*(*rel).rd_rel).reltuples)
    };
    let live = reltuples.max(0.0) as i64;
    #[cfg(feature = "pg15")]
    {
        let _ = start;
        // SAFETY: plain statistics report for an open relation.
        unsafe { pg_sys::pgstat_report_vacuum(oid, shared, live, 0) };
    }
    #[cfg(not(feature = "pg15"))]
    // SAFETY: as above.
    unsafe {
        pg_sys::pgstat_report_vacuum(oid, shared, live, 0, start)
    };
}

fn report(elevel: i32, msg: String) {
    if elevel == pg_sys::INFO as i32 {
        ereport!(PgLogLevel::INFO, PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, msg);
    } else {
        ereport!(PgLogLevel::DEBUG2, PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION, msg);
    }
}
