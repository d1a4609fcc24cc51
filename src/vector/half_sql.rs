//! SQL-callable functions of the `halfvec` type (pgvector's half-precision
//! vector): I/O, typmod, casts to and from `vector` and arrays, distances,
//! functions, arithmetic, comparison and aggregate support. Thin adapters
//! over the pure [`super::half`], [`super::text`], [`super::binary`] and
//! [`super::ops`]; every error is worded for `halfvec` as pgvector words it.

use super::datum::{HalfVec, HalfVecBuf, Vector, VectorBuf};
use super::{binary, half, ops, text, VectorError};
use crate::pg::error::OrRaise;
use pgrx::datum::{Array, Internal};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cmp::Ordering;
use std::ffi::{CStr, CString};

const TYPE: &str = "halfvec";

/// The value, or the error raised with its `halfvec` wording.
fn ok<T>(r: Result<T, VectorError>) -> T {
    r.map_err(|e| e.of(TYPE)).or_raise()
}

/// A result after the dimension checks every new `halfvec` gets.
fn new_half(elements: &[u16]) -> HalfVecBuf {
    ok(ops::check_dims(elements.len()));
    HalfVecBuf::from_slice(elements)
}

// ---------------------------------------------------------------- I/O

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_in(input: &CStr, _typoid: pg_sys::Oid, typmod: i32) -> HalfVecBuf {
    HalfVecBuf::from_slice(&ok(super::sql::text_input(input, typmod, text::parse_half)))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_out(v: HalfVec<'_>) -> CString {
    CString::new(text::format(&half::widen(v.as_slice()))).expect("formatted floats contain no NUL")
}

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_typmod_in(list: Array<'_, &CStr>) -> i32 {
    ok(super::sql::typmod_of(list))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_recv(buf: Internal, _typoid: pg_sys::Oid, typmod: i32) -> HalfVecBuf {
    let elements = super::sql::receive(buf, |bytes| ok(binary::decode_half(bytes)));
    ok(ops::check_typmod(typmod, elements.len()));
    new_half(&elements)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_send(v: HalfVec<'_>) -> Vec<u8> {
    binary::encode_half(v.as_slice())
}

/// The length-coercion cast `halfvec -> halfvec(n)`.
#[pg_extern(immutable, strict, parallel_safe, name = "halfvec")]
fn halfvec_apply_typmod(v: HalfVec<'_>, typmod: i32, _explicit: bool) -> HalfVecBuf {
    ok(ops::check_typmod(typmod, v.dims()));
    HalfVecBuf::from_slice(v.as_slice())
}

// ---------------------------------------------------------------- casts

/// pgvector's `array_to_halfvec`: 1-D, no NULLs, dimensions and typmod
/// checked before the values, each value rounded to binary16 (out of range
/// named), then the element checks.
fn from_array<T, F>(array: Array<'_, T>, typmod: i32, convert: F) -> HalfVecBuf
where
    T: pgrx::datum::UnboxDatum,
    F: Fn(T::As<'_>) -> Result<f32, VectorError>,
{
    let values = super::sql::array_values(array, TYPE, convert);
    ok(ops::check_dims(values.len()));
    ok(ops::check_typmod(typmod, values.len()));
    let values: Vec<f32> = ok(values.into_iter().collect());
    new_half(&ok(half::narrow(&values)))
}

super::sql_type::array_casts_sql!(HalfVecBuf, from_array, "array_to_halfvec";
    array_to_halfvec_int4, array_to_halfvec_float4, array_to_halfvec_float8, array_to_halfvec_numeric);

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_to_float4(v: HalfVec<'_>, _typmod: i32, _explicit: bool) -> Vec<f32> {
    half::widen(v.as_slice())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_to_vector(v: HalfVec<'_>, typmod: i32, _explicit: bool) -> VectorBuf {
    ok(ops::check_dims(v.dims()));
    ok(ops::check_typmod(typmod, v.dims()));
    VectorBuf::from_slice(&half::widen(v.as_slice()))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_to_halfvec(v: Vector<'_>, typmod: i32, _explicit: bool) -> HalfVecBuf {
    ok(ops::check_dims(v.dims()));
    ok(ops::check_typmod(typmod, v.dims()));
    HalfVecBuf::from_slice(&ok(half::narrow(v.as_slice())))
}

// ---------------------------------------------------------------- distances

fn pair<'a>(a: HalfVec<'a>, b: HalfVec<'a>) -> (&'a [u16], &'a [u16]) {
    ok(ops::same_dims(a.as_slice(), b.as_slice()));
    (a.as_slice(), b.as_slice())
}

super::sql_type::distance_sql!(HalfVec, pair, half;
    halfvec_l2_distance, halfvec_l2_squared_distance, halfvec_inner_product,
    halfvec_negative_inner_product, halfvec_cosine_distance, halfvec_l1_distance);

// ---------------------------------------------------------------- functions

#[pg_extern(immutable, strict, parallel_safe, name = "vector_dims")]
fn halfvec_vector_dims(v: HalfVec<'_>) -> i32 {
    v.dims() as i32
}

#[pg_extern(immutable, strict, parallel_safe, name = "l2_norm")]
fn halfvec_l2_norm(v: HalfVec<'_>) -> f64 {
    half::norm(v.as_slice())
}

#[pg_extern(immutable, strict, parallel_safe, name = "l2_normalize")]
fn halfvec_l2_normalize(v: HalfVec<'_>) -> HalfVecBuf {
    new_half(&ok(half::l2_normalize(v.as_slice())))
}

#[pg_extern(immutable, strict, parallel_safe, name = "subvector")]
fn halfvec_subvector(v: HalfVec<'_>, start: i32, count: i32) -> HalfVecBuf {
    new_half(&ok(ops::subvector(v.as_slice(), start, count)))
}

/// A new `halfvec` from an operator's elements (or its error).
fn new_result(elements: Result<Vec<u16>, VectorError>) -> HalfVecBuf {
    new_half(&ok(elements))
}

super::sql_type::elementwise_sql!(HalfVec, HalfVecBuf, new_result, half;
    halfvec_add, halfvec_sub, halfvec_mul, halfvec_concat);

// ---------------------------------------------------------------- comparison

fn order(a: HalfVec<'_>, b: HalfVec<'_>) -> Ordering {
    half::compare(a.as_slice(), b.as_slice())
}

super::sql_type::comparison_sql!(HalfVec, order;
    halfvec_lt, halfvec_le, halfvec_eq, halfvec_ne, halfvec_ge, halfvec_gt, halfvec_cmp);

// ---------------------------------------------------------------- aggregates

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_accum(state: Array<'_, f64>, v: HalfVec<'_>) -> Vec<f64> {
    let state = super::sql::state_values(state, "halfvec_accum");
    ok(ops::accumulate(&state, &half::widen(v.as_slice())))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_combine(a: Array<'_, f64>, b: Array<'_, f64>) -> Vec<f64> {
    let a = super::sql::state_values(a, "halfvec_combine");
    ok(ops::combine(&a, &super::sql::state_values(b, "halfvec_combine")))
}

#[pg_extern(immutable, strict, parallel_safe)]
fn halfvec_avg(state: Array<'_, f64>) -> Option<HalfVecBuf> {
    let state = super::sql::state_values(state, "halfvec_avg");
    ok(ops::average(&state)).map(|v| new_half(&ok(half::narrow(&v))))
}
