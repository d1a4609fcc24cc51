//! VACUUM on an `lsm` table: freeze and count the dead (the sweep), flush
//! L0 into a run and merge runs by the tiered policy (both dropping the
//! versions dead to every snapshot), remove the dropped rowids from every
//! index, and update pg_class (relpages, relfrozenxid, relminmxid) and the
//! cumulative statistics.
//!
//! Locks: the sweep, the flush's and the merges' copying run under VACUUM's
//! SHARE UPDATE EXCLUSIVE, alongside DML. The flush takes EXCLUSIVE twice,
//! briefly (to seal L0, and to switch), each merge once (to switch): writers
//! wait for those steps only; readers never wait (the pages a switch frees
//! stay pending until no older snapshot can exist). The packing of the file
//! needs ACCESS EXCLUSIVE. Like heap's end-of-vacuum truncation, VACUUM tries
//! for each without queueing (so it never waits behind other sessions, nor
//! makes them queue behind it) — a few seconds for EXCLUSIVE, half a second
//! for ACCESS EXCLUSIVE — and skips that part if it cannot get it; each lock
//! is released as soon as its step is done. `VACUUM (TRUNCATE false)` and
//! the `vacuum_truncate` setting turn the packing and truncation off, as they
//! turn off heap's (whose ACCESS EXCLUSIVE a standby replays, cancelling its
//! queries). `PARALLEL` is accepted and runs the index passes in the
//! backend; for a temporary table it warns as heap does.
//! The index passes run after that;
//! until they do, index entries of dropped rowids are merely dangling —
//! rowids are never reused, so they can only miss, never mislead.

use crate::pg::relation::Rel;
use super::compact;
use super::flush;
use super::gucs;
use super::manifest;
use super::run_writer::{self, Readers};
use super::shrink;
use super::storage;
use super::sweep::{self, Sweep};
use crate::pg::buffer;
use crate::pg::vacuum::{self as pgvac, Cutoffs};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// How long to keep trying for ACCESS EXCLUSIVE (as heap's truncation does).
const LOCK_RETRIES: u32 = 100;
const LOCK_RETRY_SLEEP_US: i64 = 50_000;
/// Packing only tries briefly (about half a second): it is optional.
const SHRINK_LOCK_RETRIES: u32 = 10;

/// Tries for `mode` on `rel` up to `tries` times, never queueing.
fn try_lock(rel: Rel, mode: u32, tries: u32) -> bool {
    crate::pg::rel::try_lock_retrying(rel, mode, tries, LOCK_RETRY_SLEEP_US)
}

/// The rowids whose index entries VACUUM removes: those its flush and
/// merges dropped (sorted), and the range of an abandoned bulk load's open
/// run (see [`run_writer::take_abandoned_open_run`]).
struct Dropped {
    rowids: Vec<u64>,
    range: Option<std::ops::Range<u64>>,
}

impl Dropped {
    fn is_empty(&self) -> bool {
        self.rowids.is_empty() && self.range.is_none()
    }

    fn contains(&self, rowid: u64) -> bool {
        self.range.as_ref().is_some_and(|r| r.contains(&rowid))
            || self.rowids.binary_search(&rowid).is_ok()
    }
}

/// IndexBulkDeleteCallback: is this TID one of the dropped rowids?
#[pg_guard]
unsafe extern "C-unwind" fn dropped_tid(
    tid: pg_sys::ItemPointer,
    state: *mut std::ffi::c_void,
) -> bool {
    // SAFETY: `state` is the `Dropped` passed below; `tid` is valid.
    let (dropped, tid) = unsafe { (&*(state as *const Dropped), &*tid) };
    dropped.contains(storage::rowid_of(tid))
}

/// Bulk-deletes the dropped rowids from every index and runs index cleanup.
fn vacuum_indexes(
    rel: Rel,
    dropped: &Dropped,
    live_rows: f64,
    strategy: pg_sys::BufferAccessStrategy,
    elevel: i32,
) {
    let mut n: i32 = 0;
    let mut irels: *mut pg_sys::Relation = std::ptr::null_mut();
    // SAFETY: opens the table's indexes with RowExclusiveLock, as heap does.
    unsafe { pg_sys::vac_open_indexes(rel.raw(), pg_sys::RowExclusiveLock as i32, &mut n, &mut irels) };
    for i in 0..n as usize {
        // SAFETY: vac_open_indexes returned `n` open index relations.
        let index = unsafe { Rel::from_raw(*irels.add(i)) };
        let mut info = pg_sys::IndexVacuumInfo {
            index: index.raw(),
            #[cfg(not(feature = "pg15"))]
            heaprel: rel.raw(),
            analyze_only: false,
            report_progress: false,
            estimated_count: true,
            message_level: elevel,
            num_heap_tuples: live_rows,
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
                    dropped as *const Dropped as *mut std::ffi::c_void,
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

/// relfrozenxid / relminmxid after this VACUUM, and the dead versions left:
/// the removal cutoffs, held back by the oldest ids the sweep saw on live
/// versions (after freezing) and on dead versions of components that are
/// still there (not flushed, not merged away) — heap's NewRelfrozenXid rule.
fn new_frozen(
    rel: Rel,
    c: &Cutoffs,
    sw: &Sweep,
    flushed: bool,
) -> (pg_sys::TransactionId, pg_sys::MultiXactId, u64) {
    let listed: Vec<u32> = manifest::read(rel)
        .map(|m| m.runs.iter().map(|r| r.run_id).collect())
        .unwrap_or_default();
    let mut oldest = sw.live;
    let mut dead_left = 0u64;
    for (key, d) in &sw.dead {
        let remains = if *key == sweep::L0 {
            !flushed
        } else {
            listed.contains(key)
        };
        if remains {
            dead_left += d.versions;
            oldest.merge(&d.oldest);
        }
    }
    let xid = oldest
        .xid
        .filter(|x| pgvac::xid_precedes(*x, c.oldest_xmin))
        .unwrap_or(c.oldest_xmin);
    let multi = oldest
        .multi
        .filter(|m| pgvac::multi_precedes(*m, c.oldest_mxact))
        .unwrap_or(c.oldest_mxact);
    (xid, multi, dead_left)
}

/// `relation_vacuum` (plain VACUUM; VACUUM FULL goes through CLUSTER):
///
/// 1. the sweep (SHARE UPDATE EXCLUSIVE, DML runs alongside): freezes every
///    live version per the vacuum_freeze_* cutoffs, counts the dead per run;
/// 2. alongside DML: flush L0 into a level-1 run (EXCLUSIVE, only tried
///    for, to seal L0 and to switch); then merge runs until the tiered
///    policy (strata.lsm_* settings) is satisfied, each merge taking
///    EXCLUSIVE for its switch only — both drop dead versions — and, under ACCESS EXCLUSIVE
///    when free, pack the file when more than two thirds of it are free (a
///    third when there was nothing to flush or merge) and cut
///    its trailing free pages;
/// 3. dropped rowids are removed from every index;
/// 4. pg_class (relpages, reltuples: the live rows the sweep counted,
///    relfrozenxid, relminmxid) and pgstat are updated.
///
/// # Safety
/// The `relation_vacuum` callback's arguments: valid `VacuumParams` and
/// buffer access strategy (or null).
pub unsafe fn vacuum(
    rel: Rel,
    params: *mut pg_sys::VacuumParams,
    strategy: pg_sys::BufferAccessStrategy,
) {
    // SAFETY: valid params from VACUUM.
    let verbose = unsafe { (*params).options } & pg_sys::VACOPT_VERBOSE != 0;
    // SAFETY: reads the clock.
    let start = unsafe { pg_sys::GetCurrentTimestamp() };
    let elevel = if verbose {
        pg_sys::INFO
    } else {
        pg_sys::DEBUG2
    } as i32;
    let name = crate::pg::rel::relname(rel);
    // SAFETY: valid params from VACUUM (vacuum_rel resolved TRUNCATE and
    // INDEX_CLEANUP from the options, reloptions and settings).
    let (truncate, index_cleanup, nworkers) =
        unsafe { ((*params).truncate, (*params).index_cleanup, (*params).nworkers) };
    if nworkers > 0
        && index_cleanup != pg_sys::VacOptValue::VACOPTVALUE_DISABLED
        && crate::pg::rel::uses_local_buffers(rel)
        && crate::pg::rel::index_oids(rel).len() > 1
    {
        // heap's words (parallel workers cannot read a temporary table)
        ereport!(
            PgLogLevel::WARNING,
            PgSqlErrorCode::ERRCODE_WARNING,
            format!("disabling parallel option of vacuum on \"{name}\" --- cannot vacuum temporary tables in parallel")
        );
    }
    // SAFETY: VACUUM's parameters, passed on by our caller.
    let cutoffs = unsafe { pgvac::cutoffs(rel, params) };
    // a bulk load that aborted or crashed left its open run: its rows are
    // dead, its pages free, its index entries go in the index pass below
    let abandoned = run_writer::take_abandoned_open_run(rel);
    if let Some(r) = &abandoned {
        report(
            elevel,
            format!(
                "dropped the open run of an aborted bulk load of \"{name}\" (rowids {}..{})",
                r.start, r.end
            ),
        );
    }
    let sw = sweep::sweep(rel, &cutoffs);
    let dead_seen: u64 = sw.dead.values().map(|d| d.versions).sum();
    let bodies: u64 = sw.dead.values().map(|d| d.bodies).sum();
    let chains = if sw.redirected + bodies > 0 {
        format!(
            ", {} roots redirected, {} redirects still holding a body",
            sw.redirected, bodies
        )
    } else {
        String::new()
    };
    report(
        elevel,
        format!(
            "swept \"{name}\": {} pages, {} row versions, {} frozen, {} dead{chains}",
            sw.pages, sw.versions, sw.frozen, dead_seen
        ),
    );
    let unlock = |mode: u32| crate::pg::rel::unlock(rel, mode);
    // the flush and the merges copy alongside DML and take EXCLUSIVE only
    // briefly: to seal L0, and for each switch
    let lock = run_writer::SwitchLock {
        acquire: &|| try_lock(rel, pg_sys::ExclusiveLock, LOCK_RETRIES),
        release: &|| unlock(pg_sys::ExclusiveLock),
    };
    let fl = flush::flush(rel, Some(cutoffs.oldest_xmin), Readers::Allowed, &lock);
    if fl.no_lock {
        report(
            elevel,
            format!("skipping the L0 flush of \"{name}\": could not get EXCLUSIVE lock"),
        );
    } else if fl.abandoned {
        report(elevel, format!("abandoning the L0 flush of \"{name}\": could not get EXCLUSIVE lock for its switch"));
    } else if fl.skipped {
        report(elevel, format!("postponing the L0 flush of \"{name}\": pages freed earlier are still pending (old snapshots)"));
    }
    let flushed = !fl.skipped;
    let too_old = |d: &sweep::Dead| {
        d.oldest
            .xid
            .is_some_and(|x| pgvac::xid_precedes(x, cutoffs.freeze_limit))
            || d.oldest
                .multi
                .is_some_and(|m| pgvac::multi_precedes(m, cutoffs.multi_cutoff))
    };
    let co = compact::compact(
        rel,
        cutoffs.oldest_xmin,
        &gucs::policy(),
        &sw.dead,
        too_old,
        Readers::Allowed,
        &lock,
    );
    if co.skipped {
        report(elevel, format!("postponing merges of \"{name}\": pages freed earlier are still pending (old snapshots)"));
    }
    if co.abandoned {
        report(
            elevel,
            format!(
                "abandoning a merge of \"{name}\": could not get EXCLUSIVE lock for its switch"
            ),
        );
    }
    // Packing moves pages under readers' feet: only when nobody reads.
    let may_truncate = truncate != pg_sys::VacOptValue::VACOPTVALUE_DISABLED;
    let (moved, cut) = if may_truncate && try_lock(rel, pg_sys::AccessExclusiveLock, SHRINK_LOCK_RETRIES) {
        let quiet = fl.l0_pages == 0 && co.merges.is_empty();
        let s = shrink::shrink(rel, quiet);
        unlock(pg_sys::AccessExclusiveLock);
        s
    } else {
        (0, 0)
    };
    if fl.l0_pages > 0 {
        report(
            elevel,
            format!(
                "flushed {} L0 pages of \"{name}\" into {} run(s): {} row versions moved, {} dead ones dropped",
                fl.l0_pages, fl.runs_written, fl.versions_moved, fl.versions_dropped
            ),
        );
    }
    for (m, out) in &co.merges {
        report(
            elevel,
            format!(
                "merged {} run(s) of \"{name}\" into {out} run(s) at level {} ({})",
                m.last - m.first + 1,
                m.level,
                m.why.describe()
            ),
        );
    }
    if !co.merges.is_empty() {
        report(
            elevel,
            format!(
                "merges of \"{name}\": {} row versions moved, {} dead ones dropped",
                co.versions_moved, co.versions_dropped
            ),
        );
    }
    if fl.refreshed > 0 || fl.l0_pages_added > 0 {
        report(
            elevel,
            format!(
                "L0 flush of \"{name}\": {} row headers changed by concurrent DML were copied again; {} L0 pages were added meanwhile",
                fl.refreshed, fl.l0_pages_added
            ),
        );
    }
    if co.refreshed > 0 {
        report(
            elevel,
            format!(
                "merges of \"{name}\": {} row headers changed by concurrent DML were copied again",
                co.refreshed
            ),
        );
    }
    if cut > 0 {
        report(
            elevel,
            format!("truncated \"{name}\" by {cut} pages after moving {moved} pages"),
        );
    }
    if sw.frozen > 0 {
        run_writer::switch(rel, None, |m| m.stats.frozen_versions += sw.frozen);
    }
    let mut rowids = fl.dropped;
    rowids.extend(co.dropped);
    rowids.sort_unstable();
    rowids.dedup();
    let dropped = Dropped {
        rowids,
        range: abandoned,
    };
    vacuum_indexes(rel, &dropped, sw.live_rows as f64, strategy, elevel);
    let (xid, multi, dead_left) = new_frozen(rel, &cutoffs, &sw, flushed);
    pgvac::update_relstats(
        rel,
        buffer::nblocks(rel),
        sw.live_rows as f64,
        Some((xid, multi)),
    );
    pgvac::report_vacuum(rel, start, sw.live_rows as i64, dead_left as i64);
}

fn report(elevel: i32, msg: String) {
    if elevel == pg_sys::INFO as i32 {
        ereport!(
            PgLogLevel::INFO,
            PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
            msg
        );
    } else {
        ereport!(
            PgLogLevel::DEBUG2,
            PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
            msg
        );
    }
}
