//! VACUUM's Postgres-side services for `lsm`: freeze cutoffs, freezing one
//! tuple header, the cost-based delay point, pg_class statistics and the
//! cumulative-statistics report. The PG15/PG18 differences are gated here.

use crate::pg::relation::Rel;
use pgrx::pg_sys;

/// The horizons of one VACUUM (`vacuum_get_cutoffs` / `vacuum_set_xid_limits`).
#[derive(Clone, Copy, Debug)]
pub struct Cutoffs {
    /// Versions deleted before this are dead to every snapshot.
    pub oldest_xmin: pg_sys::TransactionId,
    /// Xids before this are frozen (vacuum_freeze_min_age).
    pub freeze_limit: pg_sys::TransactionId,
    /// MultiXacts before this are removed (vacuum_multixact_freeze_min_age).
    pub multi_cutoff: pg_sys::MultiXactId,
    /// The oldest MultiXact any running transaction may still need.
    pub oldest_mxact: pg_sys::MultiXactId,
    /// The table's current relfrozenxid / relminmxid.
    pub relfrozenxid: pg_sys::TransactionId,
    pub relminmxid: pg_sys::MultiXactId,
}

/// Computes the cutoffs for `rel` from VACUUM's parameters (which carry the
/// vacuum_freeze_* settings, 0 for `VACUUM (FREEZE)`).
///
/// # Safety
/// `params` are VACUUM's valid parameters.
pub unsafe fn cutoffs(rel: Rel, params: *mut pg_sys::VacuumParams) -> Cutoffs {
    let (relfrozenxid, relminmxid) = (rel.form().relfrozenxid, rel.form().relminmxid);
    #[cfg(feature = "pg15")]
    {
        let mut c = Cutoffs {
            oldest_xmin: pg_sys::InvalidTransactionId,
            freeze_limit: pg_sys::InvalidTransactionId,
            multi_cutoff: pg_sys::MultiXactId::from(0u32),
            oldest_mxact: pg_sys::MultiXactId::from(0u32),
            relfrozenxid,
            relminmxid,
        };
        // SAFETY: valid params from VACUUM; outputs are locals.
        unsafe {
            pg_sys::vacuum_set_xid_limits(
                rel.raw(),
                (*params).freeze_min_age,
                (*params).freeze_table_age,
                (*params).multixact_freeze_min_age,
                (*params).multixact_freeze_table_age,
                &mut c.oldest_xmin,
                &mut c.oldest_mxact,
                &mut c.freeze_limit,
                &mut c.multi_cutoff,
            );
        }
        c
    }
    #[cfg(not(feature = "pg15"))]
    {
        let mut vc = pg_sys::VacuumCutoffs::default();
        // SAFETY: valid params from VACUUM; `vc` is a local.
        unsafe { pg_sys::vacuum_get_cutoffs(rel.raw(), params, &mut vc) };
        Cutoffs {
            oldest_xmin: vc.OldestXmin,
            freeze_limit: vc.FreezeLimit,
            multi_cutoff: vc.MultiXactCutoff,
            oldest_mxact: vc.OldestMxact,
            relfrozenxid,
            relminmxid,
        }
    }
}

/// Freezes the tuple header `t` in place where `c` says so (xmin before
/// FreezeLimit becomes frozen, old or aborted xmax/MultiXacts are cleared or
/// replaced, as heap's VACUUM does). Returns whether it changed. `t` must
/// not be dead to every snapshot (the caller removes those instead).
#[allow(clippy::not_unsafe_ptr_arg_deref)] // a header on an exclusively locked page or a private copy, as every freezing helper here
pub fn freeze_header(t: pg_sys::HeapTupleHeader, c: &Cutoffs) -> bool {
    // SAFETY: `t` is a valid, writable tuple header; the cutoffs come from
    // this VACUUM and the relation's own pg_class row.
    unsafe {
        pg_sys::heap_freeze_tuple(
            t,
            c.relfrozenxid,
            c.relminmxid,
            c.freeze_limit,
            c.multi_cutoff,
        )
    }
}

/// VACUUM's cost-based delay point (vacuum_cost_delay / _limit).
pub fn delay_point() {
    // SAFETY: plain call; sleeps when the cost balance is over the limit.
    #[cfg(feature = "pg15")]
    unsafe {
        pg_sys::vacuum_delay_point()
    };
    // SAFETY: as above.
    #[cfg(not(feature = "pg15"))]
    unsafe {
        pg_sys::vacuum_delay_point(false)
    };
}

/// Updates pg_class: relpages and reltuples, and relfrozenxid / relminmxid
/// when `frozen` is given (None leaves them alone).
pub fn update_relstats(
    rel: Rel,
    pages: pg_sys::BlockNumber,
    reltuples: f64,
    frozen: Option<(pg_sys::TransactionId, pg_sys::MultiXactId)>,
) {
    let (xid, mxid) = frozen.unwrap_or((
        pg_sys::InvalidTransactionId,
        pg_sys::MultiXactId::from(0u32),
    ));
    // SAFETY: valid relation; invalid xid/mxid leave those columns alone.
    unsafe {
        let hasindex = rel.form().relhasindex;
        let none = std::ptr::null_mut();
        // (PostgreSQL 18 added the all-frozen page count: 0, like all-visible)
        #[cfg(feature = "pg15")]
        pg_sys::vac_update_relstats(rel.raw(), pages, reltuples, 0, hasindex, xid, mxid, none, none, false);
        #[cfg(not(feature = "pg15"))]
        pg_sys::vac_update_relstats(rel.raw(), pages, reltuples, 0, 0, hasindex, xid, mxid, none, none, false);
    }
}

/// Tells the cumulative statistics that the table was vacuumed, like heap:
/// sets its live-row count, resets its dead-row count (what autovacuum
/// triggers on) to `dead_left` and counts the vacuum.
pub fn report_vacuum(rel: Rel, start: pg_sys::TimestampTz, live: i64, dead_left: i64) {
    let (oid, shared) = (rel.data().rd_id, rel.form().relisshared);
    #[cfg(feature = "pg15")]
    {
        let _ = start;
        // SAFETY: plain statistics report for an open relation.
        unsafe { pg_sys::pgstat_report_vacuum(oid, shared, live, dead_left) };
    }
    #[cfg(not(feature = "pg15"))]
    // SAFETY: as above.
    unsafe {
        pg_sys::pgstat_report_vacuum(oid, shared, live, dead_left, start)
    };
}

/// Whether xid `a` precedes `b` (wraparound-aware).
pub fn xid_precedes(a: pg_sys::TransactionId, b: pg_sys::TransactionId) -> bool {
    // SAFETY: pure comparison.
    unsafe { pg_sys::TransactionIdPrecedes(a, b) }
}

/// Whether MultiXact `a` precedes `b` (wraparound-aware).
pub fn multi_precedes(a: pg_sys::MultiXactId, b: pg_sys::MultiXactId) -> bool {
    // SAFETY: pure comparison.
    unsafe { pg_sys::MultiXactIdPrecedes(a, b) }
}
