//! SQL-callable functions of the `vector` type: I/O, typmod, casts, operators,
//! distance functions and aggregate support. Each is a thin adapter from SQL
//! arguments to the pure code in [`super::ops`], [`super::text`],
//! [`super::binary`] and [`super::kernels`].

use super::datum::{Vector, VectorBuf};
use super::{binary, kernels, ops, text, VectorError};
use crate::pg::array::ndim;
use crate::pg::error::OrRaise;
use pgrx::datum::{Array, Internal};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cmp::Ordering;
use std::ffi::{CStr, CString};

/// Builds a result vector after the dimension checks every new vector gets.
fn new_vector(elements: &[f32]) -> VectorBuf {
    ops::check_dims(elements.len()).or_raise();
    VectorBuf::from_slice(elements)
}

// ---------------------------------------------------------------- I/O

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_in(input: &CStr, _typoid: pg_sys::Oid, typmod: i32) -> VectorBuf {
    VectorBuf::from_slice(&text_input(input, typmod, text::parse).or_raise())
}

/// The elements of a type's text input, parsed by `parse` (`vector`'s or
/// `halfvec`'s), with the checks every input gets.
pub(super) fn text_input<T>(
    input: &CStr,
    typmod: i32,
    parse: impl FnOnce(&str) -> Result<Vec<T>, VectorError>,
) -> Result<Vec<T>, VectorError> {
    let input = input.to_str().map_err(|_| VectorError::Syntax {
        input: input.to_string_lossy().into_owned(),
        detail: "",
    })?;
    let elements = parse(input)?;
    ops::check_dims(elements.len())?;
    ops::check_typmod(typmod, elements.len())?;
    Ok(elements)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_out(v: Vector<'_>) -> CString {
    CString::new(text::format(v.as_slice())).expect("formatted floats contain no NUL")
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_typmod_in(list: Array<'_, &CStr>) -> i32 {
    typmod_of(list).or_raise()
}

/// The dimension count of `vector(n)` / `halfvec(n)` from the type
/// modifier's list.
pub(super) fn typmod_of(list: Array<'_, &CStr>) -> Result<i32, VectorError> {
    ops::typmod_from_dims(typmod_items(list)?)
}

/// The one integer of a type modifier's list (range unchecked).
pub(super) fn typmod_items(list: Array<'_, &CStr>) -> Result<i32, VectorError> {
    let items: Vec<Option<&CStr>> = list.iter().collect();
    let [Some(item)] = items[..] else {
        return Err(VectorError::TypmodInvalid);
    };
    item.to_str()
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(VectorError::TypmodInvalid)
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_recv(buf: Internal, _typoid: pg_sys::Oid, typmod: i32) -> VectorBuf {
    let elements = receive(buf, |bytes| binary::decode(bytes).or_raise());
    ops::check_typmod(typmod, elements.len()).or_raise();
    new_vector(&elements)
}

/// Reads one value from a receive function's StringInfo with `decode`
/// (the value and the bytes it took), moving its cursor past them.
pub(super) fn receive<T>(mut buf: Internal, decode: impl FnOnce(&[u8]) -> (T, usize)) -> T {
    // SAFETY: the receive function's first argument is always a StringInfo.
    let buf = unsafe { buf.get_mut::<pg_sys::StringInfoData>() }.expect("StringInfo argument");
    let remaining: &[u8] = if buf.len > buf.cursor {
        // SAFETY: `data[cursor..len]` is the unread part of the message.
        unsafe {
            std::slice::from_raw_parts(
                buf.data.add(buf.cursor as usize) as *const u8,
                (buf.len - buf.cursor) as usize,
            )
        }
    } else {
        &[]
    };
    let (elements, used) = decode(remaining);
    buf.cursor += used as i32;
    elements
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_send(v: Vector<'_>) -> Vec<u8> {
    binary::encode(v.as_slice())
}

/// The length-coercion cast `vector -> vector(n)`.
#[pg_extern(immutable, strict, parallel_safe, name = "vector")]
fn vector_apply_typmod(v: Vector<'_>, typmod: i32, _explicit: bool) -> VectorBuf {
    ops::check_typmod(typmod, v.dims()).or_raise();
    VectorBuf::from_slice(v.as_slice())
}

// ---------------------------------------------------------------- casts

fn from_array<T, F>(array: Array<'_, T>, typmod: i32, convert: F) -> VectorBuf
where
    T: pgrx::datum::UnboxDatum,
    F: Fn(T::As<'_>) -> Result<f32, VectorError>,
{
    let mut elements = Vec::with_capacity(array.len());
    for item in array.iter() {
        let Some(item) = item else {
            crate::pg::error::raise(&VectorError::ArrayNulls)
        };
        let x = convert(item).or_raise();
        ops::check_element(x).or_raise();
        elements.push(x);
    }
    if ndim(array) > 1 {
        crate::pg::error::raise(&VectorError::ArrayNotOneDimensional);
    }
    ops::check_typmod(typmod, elements.len()).or_raise();
    new_vector(&elements)
}

super::sql_type::array_casts_sql!(VectorBuf, from_array, "array_to_vector";
    array_to_vector_int4, array_to_vector_float4, array_to_vector_float8, array_to_vector_numeric);

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_to_float4(v: Vector<'_>, _typmod: i32, _explicit: bool) -> Vec<f32> {
    v.as_slice().to_vec()
}

/// The values of an array on its way to a `halfvec` or `sparsevec`, after
/// pgvector's first checks for those (1-D, no NULLs; raised worded for
/// `ty`), each as `convert` makes it — its error is the caller's to raise
/// after the dimension checks, where pgvector converts.
pub(super) fn array_values<T, F>(
    array: Array<'_, T>,
    ty: &'static str,
    convert: F,
) -> Vec<Result<f32, VectorError>>
where
    T: pgrx::datum::UnboxDatum,
    F: Fn(T::As<'_>) -> Result<f32, VectorError>,
{
    let nulls = array.contains_nulls();
    // converted before the checks (reading the dimension count consumes
    // the array)
    let values = array.iter().flatten().map(convert).collect();
    if ndim(array) > 1 {
        crate::pg::error::raise(&VectorError::ArrayNotOneDimensional.of(ty));
    }
    if nulls {
        crate::pg::error::raise(&VectorError::ArrayNulls.of(ty));
    }
    values
}

// ---------------------------------------------------------------- distances

fn pair<'a>(a: Vector<'a>, b: Vector<'a>) -> (&'a [f32], &'a [f32]) {
    ops::same_dims(a.as_slice(), b.as_slice()).or_raise();
    (a.as_slice(), b.as_slice())
}

// (the Rust names, and so the C symbols, are those of the first release)
super::sql_type::distance_sql!(Vector, pair, kernels;
    l2_distance, vector_l2_squared_distance, inner_product,
    vector_negative_inner_product, cosine_distance, l1_distance);

// ---------------------------------------------------------------- functions

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_dims(v: Vector<'_>) -> i32 {
    v.dims() as i32
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_norm(v: Vector<'_>) -> f64 {
    ops::norm(v.as_slice())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn l2_normalize(v: Vector<'_>) -> VectorBuf {
    new_vector(&ops::l2_normalize(v.as_slice()).or_raise())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn subvector(v: Vector<'_>, start: i32, count: i32) -> VectorBuf {
    new_vector(&ops::subvector(v.as_slice(), start, count).or_raise())
}

/// A new vector from an operator's elements (or its error).
fn new_result(elements: Result<Vec<f32>, VectorError>) -> VectorBuf {
    new_vector(&elements.or_raise())
}

super::sql_type::elementwise_sql!(Vector, VectorBuf, new_result, ops; vector_add, vector_sub, vector_mul, vector_concat);

// ---------------------------------------------------------------- comparison

fn order(a: Vector<'_>, b: Vector<'_>) -> Ordering {
    ops::compare(a.as_slice(), b.as_slice())
}

super::sql_type::comparison_sql!(Vector, order;
    vector_lt, vector_le, vector_eq, vector_ne, vector_ge, vector_gt, vector_cmp);

// ---------------------------------------------------------------- aggregates

/// The values of an `avg(vector)` state array; pgvector's checks: 1-D, at
/// least the count, no NULLs (the type is `double precision[]` by signature).
pub(super) fn state_values(state: Array<'_, f64>, caller: &'static str) -> Vec<f64> {
    let malformed = state.is_empty() || state.contains_nulls();
    let values: Vec<f64> = state.iter().map(|x| x.unwrap_or_default()).collect();
    if malformed || crate::pg::array::ndim(state) != 1 {
        crate::pg::error::raise(&VectorError::StateArray(caller));
    }
    values
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_accum(state: Array<'_, f64>, v: Vector<'_>) -> Vec<f64> {
    ops::accumulate(&state_values(state, "vector_accum"), v.as_slice()).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_combine(a: Array<'_, f64>, b: Array<'_, f64>) -> Vec<f64> {
    let a = state_values(a, "vector_combine");
    ops::combine(&a, &state_values(b, "vector_combine")).or_raise()
}

#[pg_extern(immutable, strict, parallel_safe)]
fn vector_avg(state: Array<'_, f64>) -> Option<VectorBuf> {
    ops::average(&state_values(state, "vector_avg"))
        .or_raise()
        .map(|v| new_vector(&v))
}
