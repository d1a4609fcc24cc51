//! `sparsevec` datums: borrowing a detoasted argument and building a
//! result. pgvector's layout:
//!
//! ```text
//!  0       4         8         12          16              16 + 4*nnz      16 + 8*nnz
//!  +-------+---------+---------+-----------+---------------+---------------+
//!  | vl_len| dim i32 | nnz i32 | 0     i32 | indices i32[] | values f32[]  |
//!  +-------+---------+---------+-----------+---------------+---------------+
//! ```
//!
//! Indices are 0-based and ascending; values are non-zero.

use super::sparse::View;
use crate::pg::varlena::{self, VARHDRSZ};
use pgrx::pg_sys;
use std::marker::PhantomData;

/// Bytes before the first index: varlena header, dim, nnz, unused.
const HEADER_SIZE: usize = VARHDRSZ + 12;

/// A `sparsevec` argument, detoasted and borrowed for the current call.
#[derive(Clone, Copy)]
pub struct SparseVec<'a> {
    view: View<'a>,
}

impl<'a> SparseVec<'a> {
    pub fn view(&self) -> View<'a> {
        self.view
    }

    /// Reads a sparse vector from a datum.
    ///
    /// # Safety
    /// `datum` must be a non-null `sparsevec` datum that outlives `'a`.
    pub unsafe fn from_raw_datum(datum: pg_sys::Datum) -> SparseVec<'a> {
        // SAFETY: caller guarantees a sparsevec varlena; detoasting yields
        // an int-aligned copy (or the original) whose header is followed by
        // nnz i32 indices and nnz f32 values within its size.
        unsafe {
            let ptr = varlena::detoast(datum) as *const u8;
            let dim = (ptr.add(VARHDRSZ) as *const i32).read();
            let nnz = (ptr.add(VARHDRSZ + 4) as *const i32).read().max(0) as usize;
            debug_assert!(varlena::varsize(ptr as *const pg_sys::varlena) >= HEADER_SIZE + 8 * nnz);
            let indices = std::slice::from_raw_parts(ptr.add(HEADER_SIZE) as *const i32, nnz);
            let values = std::slice::from_raw_parts(ptr.add(HEADER_SIZE + 4 * nnz) as *const f32, nnz);
            SparseVec {
                view: View { dim, indices, values },
            }
        }
    }
}

/// A newly built `sparsevec` in palloc'd memory, ready to return.
pub struct SparseVecBuf {
    ptr: *mut pg_sys::varlena,
    _not_send: PhantomData<*mut u8>,
}

impl SparseVecBuf {
    /// Copies `v` into a new varlena. Callers checked it.
    pub fn from_view(v: View<'_>) -> SparseVecBuf {
        let nnz = v.indices.len();
        let ptr = varlena::alloc_zeroed(HEADER_SIZE + 8 * nnz);
        // SAFETY: `ptr` was just allocated with room for the header, the
        // indices and the values; palloc memory is MAXALIGNed.
        unsafe {
            let base = ptr as *mut u8;
            (base.add(VARHDRSZ) as *mut i32).write(v.dim);
            (base.add(VARHDRSZ + 4) as *mut i32).write(nnz as i32);
            std::ptr::copy_nonoverlapping(v.indices.as_ptr(), base.add(HEADER_SIZE) as *mut i32, nnz);
            std::ptr::copy_nonoverlapping(
                v.values.as_ptr(),
                base.add(HEADER_SIZE + 4 * nnz) as *mut f32,
                nnz,
            );
        }
        SparseVecBuf {
            ptr,
            _not_send: PhantomData,
        }
    }

    pub fn into_datum(self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.ptr)
    }
}

super::sql_type::varlena_sql_type!(
    SparseVec,
    SparseVecBuf,
    "sparsevec",
    crate::vector::catalog::sparsevec_type_oid()
);
