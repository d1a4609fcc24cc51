//! `vector` and `halfvec` datums: borrowing a detoasted argument and
//! building a result.
//!
//! Both types share one layout (pgvector's), differing in the element:
//! `float4` for `vector`, IEEE binary16 (kept as its `u16` bits) for
//! `halfvec`:
//!
//! ```text
//!  0       4        6        8                         8 + size*dim
//!  +-------+--------+--------+-------------------------+
//!  | vl_len| dim i16| 0  i16 | x[0] .. x[dim-1]        |
//!  +-------+--------+--------+-------------------------+
//! ```
//!
//! [`Vector`] / [`HalfVec`] borrow the elements of an argument for the
//! duration of a function call; [`VectorBuf`] / [`HalfVecBuf`] are freshly
//! palloc'd varlenas returned to Postgres.

use crate::pg::varlena::{self, VARHDRSZ};
use pgrx::pg_sys;
use std::marker::PhantomData;
use strata_hnsw_core::format::Scalar;

/// Bytes before the first element: varlena header, dim (i16), unused (i16).
pub const HEADER_SIZE: usize = VARHDRSZ + 4;

/// Total varlena size of a `vector` with `dims` elements.
pub const fn size_of(dims: usize) -> usize {
    HEADER_SIZE + 4 * dims
}

/// An element type of the layout: `f32` or `u16` (binary16 bits).
pub trait Element: Copy + 'static {}
impl Element for f32 {}
impl Element for u16 {}

/// A `vector` (`f32`) or `halfvec` (`u16`) argument, detoasted and
/// borrowed for the current call.
#[derive(Clone, Copy)]
pub struct Elements<'a, T: Element> {
    elements: &'a [T],
}

pub type Vector<'a> = Elements<'a, f32>;
pub type HalfVec<'a> = Elements<'a, u16>;

impl<'a, T: Element> Elements<'a, T> {
    pub fn as_slice(&self) -> &'a [T] {
        self.elements
    }

    pub fn dims(&self) -> usize {
        self.elements.len()
    }

    /// Reads the elements of a datum.
    ///
    /// # Safety
    /// `datum` must be a non-null datum of the type whose element is `T`
    /// that outlives `'a`.
    pub unsafe fn from_raw_datum(datum: pg_sys::Datum) -> Elements<'a, T> {
        // SAFETY: caller guarantees a varlena of this layout; detoasting
        // yields a 4-byte-header copy (or the original if already plain)
        // that is at least int-aligned, so the elements at offset 8 are
        // aligned for f32 and u16.
        unsafe {
            let ptr = varlena::detoast(datum) as *const u8;
            let dims = (ptr.add(VARHDRSZ) as *const i16).read() as usize;
            debug_assert!(
                varlena::varsize(ptr as *const pg_sys::varlena)
                    >= HEADER_SIZE + std::mem::size_of::<T>() * dims
            );
            let elements = std::slice::from_raw_parts(ptr.add(HEADER_SIZE) as *const T, dims);
            Elements { elements }
        }
    }
}

/// The values of the datum of an indexed column as float4: a `vector`'s
/// borrowed, a `halfvec`'s widened, a `bit(n)`'s as 0.0 / 1.0, a
/// `sparsevec`'s as the graph's slots (`sparse::Slots`) — exactly,
/// so distances computed on them are the SQL operators' (pgvector's
/// `halfvec` kernels widen the same way).
///
/// # Safety
/// `datum` must be a non-null datum of `scalar`'s SQL type that outlives
/// `'a`.
pub unsafe fn floats_of<'a>(datum: pg_sys::Datum, scalar: Scalar) -> std::borrow::Cow<'a, [f32]> {
    match scalar {
        Scalar::Binary16 => {
            // SAFETY: the caller's guarantee.
            let h = unsafe { HalfVec::from_raw_datum(datum) };
            std::borrow::Cow::Owned(super::half::widen(h.as_slice()))
        }
        Scalar::Bit => {
            // SAFETY: the caller's guarantee.
            let b = unsafe { super::bit_datum::Bits::from_raw_datum(datum) };
            std::borrow::Cow::Owned(super::bits::widen(b.bytes(), b.bit_len() as usize))
        }
        Scalar::Float4 | Scalar::Rounded16 => {
            // SAFETY: the caller's guarantee.
            std::borrow::Cow::Borrowed(unsafe { Vector::from_raw_datum(datum) }.as_slice())
        }
        Scalar::Sparse => {
            // SAFETY: the caller's guarantee.
            let v = unsafe { super::sparse_datum::SparseVec::from_raw_datum(datum) };
            std::borrow::Cow::Owned(super::sparse::Slots::encode(v.view()))
        }
    }
}

/// A newly built `vector` or `halfvec` in palloc'd memory, ready to return.
pub struct ElementsBuf<T: Element> {
    ptr: *mut pg_sys::varlena,
    _element: PhantomData<*mut T>,
}

pub type VectorBuf = ElementsBuf<f32>;
pub type HalfVecBuf = ElementsBuf<u16>;

impl<T: Element> ElementsBuf<T> {
    /// Copies `elements` into a new varlena. Callers check dimensions first.
    pub fn from_slice(elements: &[T]) -> ElementsBuf<T> {
        let ptr = varlena::alloc_zeroed(HEADER_SIZE + std::mem::size_of_val(elements));
        // SAFETY: `ptr` was just allocated with room for the header and
        // the elements; palloc memory is MAXALIGNed.
        unsafe {
            let base = ptr as *mut u8;
            (base.add(VARHDRSZ) as *mut i16).write(elements.len() as i16);
            std::ptr::copy_nonoverlapping(
                elements.as_ptr(),
                base.add(HEADER_SIZE) as *mut T,
                elements.len(),
            );
        }
        ElementsBuf {
            ptr,
            _element: PhantomData,
        }
    }

    pub fn into_datum(self) -> pg_sys::Datum {
        pg_sys::Datum::from(self.ptr)
    }
}

super::sql_type::varlena_sql_type!(Vector, VectorBuf, "vector", crate::vector::catalog::vector_type_oid());
super::sql_type::varlena_sql_type!(HalfVec, HalfVecBuf, "halfvec", crate::vector::catalog::halfvec_type_oid());
