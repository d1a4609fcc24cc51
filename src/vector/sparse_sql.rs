//! SQL-callable functions of the `sparsevec` type (pgvector's sparse
//! vector): I/O, typmod, casts to and from `vector`, `halfvec` and arrays,
//! distances, norms and ordering. Thin adapters over the pure
//! [`super::sparse`]; errors are worded for `sparsevec` as pgvector words
//! them (those of the dense side of a cast for that type).

use super::datum::{HalfVec, HalfVecBuf, Vector, VectorBuf};
use super::sparse::{self, Sparse};
use super::sparse_datum::{SparseVec, SparseVecBuf};
use super::{half, ops, VectorError};
use crate::pg::error::OrRaise;
use pgrx::datum::{Array, Internal};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cmp::Ordering;
use std::ffi::{CStr, CString};

const TYPE: &str = "sparsevec";

/// The value, or the error raised with its `sparsevec` wording.
fn ok<T>(r: Result<T, VectorError>) -> T {
    r.map_err(|e| e.of(TYPE)).or_raise()
}

// ---------------------------------------------------------------- I/O

#[pg_extern(immutable, strict, parallel_safe)]
fn sparsevec_in(input: &CStr, _typoid: pg_sys::Oid, typmod: i32) -> SparseVecBuf {
    let input = input.to_str().map_err(|_| VectorError::Syntax {
        input: input.to_string_lossy().into_owned(),
        detail: "",
    });
    let v = ok(input.and_then(sparse::parse));
    ok(ops::check_typmod(typmod, v.dim as usize));
    SparseVecBuf::from_view(v.view())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sparsevec_out(v: SparseVec<'_>) -> CString {
    CString::new(sparse::format(v.view())).expect("formatted values contain no NUL")
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sparsevec_typmod_in(list: Array<'_, &CStr>) -> i32 {
    let dims = ok(super::sql::typmod_items(list));
    if dims < 1 {
        ok::<()>(Err(VectorError::TypmodTooSmall));
    }
    if dims as usize > sparse::MAX_DIM {
        ok::<()>(Err(VectorError::TypmodTooLarge));
    }
    dims
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sparsevec_recv(buf: Internal, _typoid: pg_sys::Oid, typmod: i32) -> SparseVecBuf {
    let v = super::sql::receive(buf, |bytes| ok(sparse::decode(bytes, typmod)));
    SparseVecBuf::from_view(v.view())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sparsevec_send(v: SparseVec<'_>) -> Vec<u8> {
    sparse::encode(v.view())
}

/// The length-coercion cast `sparsevec -> sparsevec(n)`.
#[pg_extern(immutable, strict, parallel_safe, name = "sparsevec")]
fn sparsevec_apply_typmod(v: SparseVec<'_>, typmod: i32, _explicit: bool) -> SparseVecBuf {
    ok(ops::check_typmod(typmod, v.view().dim as usize));
    SparseVecBuf::from_view(v.view())
}

// ---------------------------------------------------------------- casts

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_to_sparsevec(v: Vector<'_>, typmod: i32, _explicit: bool) -> SparseVecBuf {
    SparseVecBuf::from_view(ok(sparse::from_dense(v.as_slice(), typmod)).view())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_to_sparsevec(v: HalfVec<'_>, typmod: i32, _explicit: bool) -> SparseVecBuf {
    SparseVecBuf::from_view(ok(sparse::from_dense(&half::widen(v.as_slice()), typmod)).view())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sparsevec_to_vector(v: SparseVec<'_>, typmod: i32, _explicit: bool) -> VectorBuf {
    let dim = v.view().dim as usize;
    ops::check_dims(dim).or_raise();
    ops::check_typmod(typmod, dim).or_raise();
    VectorBuf::from_slice(&v.view().to_dense())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn sparsevec_to_halfvec(v: SparseVec<'_>, typmod: i32, _explicit: bool) -> HalfVecBuf {
    let dim = v.view().dim as usize;
    let halfvec = |r: Result<(), VectorError>| r.map_err(|e| e.of("halfvec")).or_raise();
    halfvec(ops::check_dims(dim));
    halfvec(ops::check_typmod(typmod, dim));
    let values = half::narrow(&v.view().to_dense()).map_err(|e| e.of("halfvec")).or_raise();
    HalfVecBuf::from_slice(&values)
}

/// pgvector's `array_to_sparsevec`: 1-D, no NULLs, dimensions and typmod,
/// the values, then the dense rules.
fn from_array<T, F>(array: Array<'_, T>, typmod: i32, convert: F) -> SparseVecBuf
where
    T: pgrx::datum::UnboxDatum,
    F: Fn(T::As<'_>) -> Result<f32, VectorError>,
{
    let values = super::sql::array_values(array, TYPE, convert);
    ok(sparse::check_dim(values.len() as i64));
    ok(ops::check_typmod(typmod, values.len()));
    let values: Vec<f32> = ok(values.into_iter().collect());
    SparseVecBuf::from_view(ok(sparse::from_dense(&values, typmod)).view())
}

super::sql_type::array_casts_sql!(SparseVecBuf, from_array, "array_to_sparsevec";
    array_to_sparsevec_int4, array_to_sparsevec_float4, array_to_sparsevec_float8, array_to_sparsevec_numeric);

// ---------------------------------------------------------------- distances

fn pair<'a>(a: SparseVec<'a>, b: SparseVec<'a>) -> (sparse::View<'a>, sparse::View<'a>) {
    ok(sparse::same_dims(a.view(), b.view()));
    (a.view(), b.view())
}

super::sql_type::distance_sql!(SparseVec, pair, sparse;
    sparsevec_l2_distance, sparsevec_l2_squared_distance, sparsevec_inner_product,
    sparsevec_negative_inner_product, sparsevec_cosine_distance, sparsevec_l1_distance);

// ---------------------------------------------------------------- functions

#[pg_extern(immutable, strict, parallel_safe, name = "l2_norm")]
fn sparsevec_l2_norm(v: SparseVec<'_>) -> f64 {
    sparse::norm(v.view())
}

#[pg_extern(immutable, strict, parallel_safe, name = "l2_normalize")]
fn sparsevec_l2_normalize(v: SparseVec<'_>) -> SparseVecBuf {
    let out: Sparse = ok(sparse::l2_normalize(v.view()));
    SparseVecBuf::from_view(out.view())
}

// ---------------------------------------------------------------- comparison

fn order(a: SparseVec<'_>, b: SparseVec<'_>) -> Ordering {
    sparse::compare(a.view(), b.view())
}

super::sql_type::comparison_sql!(SparseVec, order;
    sparsevec_lt, sparsevec_le, sparsevec_eq, sparsevec_ne, sparsevec_ge, sparsevec_gt, sparsevec_cmp);
