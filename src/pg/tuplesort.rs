//! Reading a datum tuplesort (PG15's `tuplesort_getdatum` has no `copy` flag).

use pgrx::pg_sys;

/// The next non-null datum of a sorted datum tuplesort, or None when it is
/// exhausted. Pass-by-value datums only (as for CIC's TID sort).
pub fn next_datum(state: *mut pg_sys::Tuplesortstate) -> Option<pg_sys::Datum> {
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
