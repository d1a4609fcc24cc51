//! Tuplesorts: reading a datum sort (PG15's `tuplesort_getdatum` has no
//! `copy` flag), and CLUSTER's sort of heap tuples by a btree index's keys.

use crate::pg::relation::Rel;
use pgrx::pg_sys;

/// The next non-null datum of a sorted datum tuplesort, or None when it is
/// exhausted. Pass-by-value datums only (as for CIC's TID sort).
///
/// # Safety
/// `state` is a valid, performed sort of datums.
pub unsafe fn next_datum(state: *mut pg_sys::Tuplesortstate) -> Option<pg_sys::Datum> {
    let mut val = pg_sys::Datum::from(0usize);
    let mut isnull = false;
    // SAFETY: `state` is a performed datum sort owned by the caller.
    let more = unsafe {
        #[cfg(feature = "pg15")]
        {
            pg_sys::tuplesort_getdatum(state, true, &mut val, &mut isnull, std::ptr::null_mut())
        }
        #[cfg(not(feature = "pg15"))]
        {
            pg_sys::tuplesort_getdatum(
                state,
                true,
                false,
                &mut val,
                &mut isnull,
                std::ptr::null_mut(),
            )
        }
    };
    (more && !isnull).then_some(val)
}

/// CLUSTER's sort: heap tuples in the order of a btree index's keys, spilling
/// to temporary files past `maintenance_work_mem` (as heap's CLUSTER sorts).
/// On error the sort is released with the transaction's resources.
pub struct ClusterSort(*mut pg_sys::Tuplesortstate);

impl ClusterSort {
    pub fn begin(table: Rel, btree: Rel) -> ClusterSort {
        // SAFETY: open relations; `btree` is a btree index of `table` (the
        // caller checks); the sort lives in the current memory context.
        ClusterSort(unsafe {
            pg_sys::tuplesort_begin_cluster(
                table.data().rd_att,
                btree.raw(),
                pg_sys::maintenance_work_mem,
                std::ptr::null_mut(),
                pg_sys::TUPLESORT_NONE as i32,
            )
        })
    }

    /// Adds a copy of `t`.
    ///
    /// # Safety
    /// `t` is a valid tuple; the sort copies it.
    pub unsafe fn put(&mut self, t: pg_sys::HeapTuple) {
        // SAFETY: a sort being filled; the tuple is copied into it.
        unsafe { pg_sys::tuplesort_putheaptuple(self.0, t) }
    }

    /// Sorts and hands `f` each tuple in order (valid during the call only),
    /// then ends the sort.
    pub fn drain(self, mut f: impl FnMut(pg_sys::HeapTuple)) {
        // SAFETY: the sort is ours; each returned tuple lives until the next
        // get; ended exactly once.
        unsafe {
            pg_sys::tuplesort_performsort(self.0);
            loop {
                let t = pg_sys::tuplesort_getheaptuple(self.0, true);
                if t.is_null() {
                    break;
                }
                f(t);
            }
            pg_sys::tuplesort_end(self.0);
        }
    }
}
