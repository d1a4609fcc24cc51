//! Cumulative statistics that access methods report themselves:
//! `pg_stat_*_indexes.idx_scan` and PG18's `Index Searches` in EXPLAIN
//! ANALYZE (`idx_tup_read` is counted by `index_getnext_tid` for us), and a
//! table's `seq_scan`, `seq_tup_read` and bitmap-fetched rows, which heap
//! counts in its scan code (`pgstat_count_heap_scan`, `_getnext`, `_fetch`).

use super::relation::Rel;
use pgrx::pg_sys;

type Counts = pg_sys::PgStat_TableCounts;

/// A `PgStat_TableCounts` field, named `t_<name>` on PG15 and `<name>` later.
macro_rules! counter {
    ($c:expr, $pg15:ident, $later:ident) => {{
        #[cfg(feature = "pg15")]
        let field = &mut $c.$pg15;
        #[cfg(not(feature = "pg15"))]
        let field = &mut $c.$later;
        field
    }};
}

/// The relation's counters in this backend's pending statistics, set up on
/// first use — the expansion of `pgstat_should_count_relation`; None when
/// statistics are not collected for it.
///
/// # Safety
/// `rel` is an open relation.
unsafe fn counts(rel: pg_sys::Relation) -> Option<&'static mut Counts> {
    // SAFETY: an open relation; pgstat_info is null or the relation's
    // entry, which lives while the relation is open and belongs to this
    // backend; pgstat_assoc_relation sets it up.
    unsafe {
        if (*rel).pgstat_info.is_null() {
            if !(*rel).pgstat_enabled {
                return None;
            }
            pg_sys::pgstat_assoc_relation(rel);
        }
        counts_of((*rel).pgstat_info)
    }
}

/// The counters of a statistics entry (none for a null one).
///
/// # Safety
/// `info` is null or a relation's live statistics entry in this backend.
unsafe fn counts_of(info: *mut pg_sys::PgStat_TableStatus) -> Option<&'static mut Counts> {
    // SAFETY: the caller's entry, when not null.
    let info = unsafe { info.as_mut() }?;
    #[cfg(feature = "pg15")]
    {
        Some(&mut info.t_counts)
    }
    #[cfg(not(feature = "pg15"))]
    {
        Some(&mut info.counts)
    }
}

/// The counters of a relation whose statistics entry [`counts`] already
/// set up (none otherwise): plain memory, no Postgres call, for the
/// unguarded row-at-a-time paths.
fn counts_if_set(rel: Rel) -> Option<&'static mut Counts> {
    // SAFETY: an open relation's entry, as in `counts`.
    unsafe { counts_of(rel.data().pgstat_info) }
}

/// A table scan starts (or restarts): its statistics entry is set up, and a
/// sequential scan is counted (`pg_stat_*_tables.seq_scan`, heap's
/// `pgstat_count_heap_scan` in `initscan`).
pub fn count_table_scan(rel: Rel, sequential: bool) {
    // SAFETY: an open relation.
    if let Some(c) = unsafe { counts(rel.raw()) } {
        if sequential {
            *counter!(c, t_numscans, numscans) += 1;
        }
    }
}

/// A row returned by a sequential, TID range or sample scan
/// (`seq_tup_read`, heap's `pgstat_count_heap_getnext`).
#[inline]
pub fn count_returned(rel: Rel) {
    if let Some(c) = counts_if_set(rel) {
        *counter!(c, t_tuples_returned, tuples_returned) += 1;
    }
}

/// A row returned by a bitmap scan (heap's `pgstat_count_heap_fetch`).
pub fn count_fetched(rel: Rel) {
    if let Some(c) = counts_if_set(rel) {
        *counter!(c, t_tuples_fetched, tuples_fetched) += 1;
    }
}

/// One index scan started searching: `pgstat_count_index_scan(rel)` and, on
/// PG18, `scan->instrument->nsearches++` — what btree and pgvector do once
/// per search of the index.
///
/// # Safety
/// `scan` is a valid index scan.
pub unsafe fn count_index_search(scan: pg_sys::IndexScanDesc) {
    // SAFETY: a valid scan descriptor of an open index; pgstat_info is null
    // or the relation's stats entry, and pgstat_assoc_relation sets it up
    // (the expansion of the pgstat_should_count_relation macro).
    unsafe {
        if let Some(c) = counts((*scan).indexRelation) {
            *counter!(c, t_numscans, numscans) += 1;
        }
        #[cfg(not(feature = "pg15"))]
        if !(*scan).instrument.is_null() {
            (*(*scan).instrument).nsearches += 1;
        }
    }
}

/// `n` rows inserted into `rel` (`pgstat_count_heap_insert`).
pub fn count_insert(rel: Rel, n: i64) {
    // SAFETY: an open relation; a statistics counter.
    unsafe { pg_sys::pgstat_count_heap_insert(rel.raw(), n) };
}

/// A row of `rel` updated; `index_stable`: with no new index entries
/// (heap's HOT; PG18 also counts the others as new-page updates, as heap
/// does for an update that left its page).
pub fn count_update(rel: Rel, index_stable: bool) {
    // SAFETY: an open relation; a statistics counter.
    #[cfg(feature = "pg15")]
    unsafe {
        pg_sys::pgstat_count_heap_update(rel.raw(), index_stable)
    };
    // SAFETY: as above.
    #[cfg(not(feature = "pg15"))]
    unsafe {
        pg_sys::pgstat_count_heap_update(rel.raw(), index_stable, !index_stable)
    };
}

/// A row of `rel` deleted (`pgstat_count_heap_delete`).
pub fn count_delete(rel: Rel) {
    // SAFETY: an open relation; a statistics counter.
    unsafe { pg_sys::pgstat_count_heap_delete(rel.raw()) };
}
