//! `vector` datums: borrowing a detoasted argument and building a result.
//!
//! [`Vector`] borrows the elements of an argument for the duration of a function
//! call; [`VectorBuf`] is a freshly palloc'd varlena returned to Postgres. Both
//! map to the SQL type `vector`.

use crate::pg::varlena::{self, VARHDRSZ};
use pgrx::pg_sys;
use std::marker::PhantomData;

/// Bytes before the first element: varlena header, dim (i16), unused (i16).
pub const HEADER_SIZE: usize = VARHDRSZ + 4;

/// Total varlena size of a vector with `dims` elements.
pub const fn size_of(dims: usize) -> usize {
    HEADER_SIZE + 4 * dims
}

/// A `vector` argument, detoasted and borrowed for the current call.
#[derive(Clone, Copy)]
pub struct Vector<'a> {
    elements: &'a [f32],
}

impl<'a> Vector<'a> {
    pub fn as_slice(&self) -> &'a [f32] {
        self.elements
    }

    pub fn dims(&self) -> usize {
        self.elements.len()
    }

    /// Reads a vector from a datum.
    ///
    /// # Safety
    /// `datum` must be a non-null `vector` datum that outlives `'a`.
    pub unsafe fn from_raw_datum(datum: pg_sys::Datum) -> Vector<'a> {
        // SAFETY: caller guarantees a vector varlena; detoasting yields a
        // 4-byte-header copy (or the original if already plain) that is at least
        // int-aligned, so the f32 elements at offset 8 are aligned.
        unsafe {
            let ptr = varlena::detoast(datum) as *const u8;
            let dims = (ptr.add(VARHDRSZ) as *const i16).read() as usize;
            debug_assert!(varlena::varsize(ptr as *const pg_sys::varlena) >= size_of(dims));
            let elements = std::slice::from_raw_parts(ptr.add(HEADER_SIZE) as *const f32, dims);
            Vector { elements }
        }
    }
}

/// A newly built `vector` in palloc'd memory, ready to return.
pub struct VectorBuf {
    ptr: *mut pg_sys::varlena,
    _not_send: PhantomData<*mut u8>,
}

impl VectorBuf {
    /// Copies `elements` into a new varlena. Callers check dimensions first.
    pub fn from_slice(elements: &[f32]) -> VectorBuf {
        let ptr = varlena::alloc_zeroed(size_of(elements.len()));
        // SAFETY: `ptr` was just allocated with room for the header and
        // `elements.len()` floats; palloc memory is MAXALIGNed.
        unsafe {
            let base = ptr as *mut u8;
            (base.add(VARHDRSZ) as *mut i16).write(elements.len() as i16);
            std::ptr::copy_nonoverlapping(
                elements.as_ptr(),
                base.add(HEADER_SIZE) as *mut f32,
                elements.len(),
            );
        }
        VectorBuf {
            ptr,
            _not_send: PhantomData,
        }
    }

    pub fn into_datum(self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.ptr)
    }
}

super::sql_type::varlena_sql_type!(Vector, VectorBuf, "vector", crate::vector::catalog::vector_type_oid());
