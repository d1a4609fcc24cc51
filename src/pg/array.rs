//! Helpers for Postgres arrays that pgrx's `Array` does not expose.

use pgrx::datum::Array;
use pgrx::datum::UnboxDatum;
use pgrx::pg_sys;

/// Number of dimensions of the array (`ARR_NDIM`).
pub fn ndim<T: UnboxDatum>(array: Array<'_, T>) -> usize {
    let ptr: *const pg_sys::ArrayType = array.into_array_type();
    // SAFETY: `into_array_type` returns the detoasted ArrayType the Array wraps,
    // which stays valid for the rest of the function call.
    unsafe { (*ptr).ndim as usize }
}
