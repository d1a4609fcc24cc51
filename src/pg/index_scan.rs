//! Reading an index's TIDs in its own order (CLUSTER by an index that
//! tuplesort cannot sort by, like heap's rewrite).

use crate::pg::relation::Rel;
use pgrx::pg_sys;

/// Calls `f` with every TID `index` holds, in the index's order, read with
/// SnapshotAny (CLUSTER by an index it cannot sort by, like heap's).
pub fn each_tid(
    table: Rel,
    index: Rel,
    mut f: impl FnMut(pg_sys::ItemPointerData),
) {
    // SAFETY: open relations; a plain forward index scan without keys,
    // ended before returning (an error releases it with the transaction).
    unsafe {
        let any = &raw mut pg_sys::SnapshotAnyData;
        #[cfg(feature = "pg15")]
        let scan = pg_sys::index_beginscan(table.raw(), index.raw(), any, 0, 0);
        #[cfg(not(feature = "pg15"))]
        let scan = pg_sys::index_beginscan(table.raw(), index.raw(), any, std::ptr::null_mut(), 0, 0);
        pg_sys::index_rescan(scan, std::ptr::null_mut(), 0, std::ptr::null_mut(), 0);
        loop {
            let tid = pg_sys::index_getnext_tid(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tid.is_null() {
                break;
            }
            f(*tid);
        }
        pg_sys::index_endscan(scan);
    }
}
