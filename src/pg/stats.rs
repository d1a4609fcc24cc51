//! Cumulative statistics that index access methods report themselves:
//! `pg_stat_*_indexes.idx_scan` and PG18's `Index Searches` in EXPLAIN
//! ANALYZE. (`idx_tup_read` is counted by `index_getnext_tid` for us.)

use super::relation::Rel;
use pgrx::pg_sys;

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
        let rel = (*scan).indexRelation;
        if (*rel).pgstat_info.is_null() {
            if !(*rel).pgstat_enabled {
                return;
            }
            pg_sys::pgstat_assoc_relation(rel);
        }
        let info = (*rel).pgstat_info;
        if !info.is_null() {
            #[cfg(feature = "pg15")]
            {
                (*info).t_counts.t_numscans += 1;
            }
            #[cfg(not(feature = "pg15"))]
            {
                (*info).counts.numscans += 1;
            }
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
