//! SQL-callable functions on `bit` that pgvector defines: Hamming and
//! Jaccard distance (operators `<~>` and `<%>` in [`super::catalog`]) and
//! `binary_quantize(vector | halfvec)`. Thin adapters over the pure [`super::bits`].

use super::bit_datum::{BitBuf, Bits};
use super::datum::{HalfVec, Vector};
use super::{bits, VectorError};
use pgrx::prelude::*;

/// pgvector's check: both bit strings have one length.
fn same_length(a: &Bits<'_>, b: &Bits<'_>) {
    if a.bit_len() != b.bit_len() {
        crate::pg::error::raise(&VectorError::BitLengthMismatch(a.bit_len(), b.bit_len()));
    }
}

#[pg_extern(immutable, strict, parallel_safe)]
fn hamming_distance(a: Bits<'_>, b: Bits<'_>) -> f64 {
    same_length(&a, &b);
    bits::hamming(a.bytes(), b.bytes()) as f64
}

#[pg_extern(immutable, strict, parallel_safe)]
fn jaccard_distance(a: Bits<'_>, b: Bits<'_>) -> f64 {
    same_length(&a, &b);
    bits::jaccard(a.bytes(), b.bytes())
}

#[pg_extern(immutable, strict, parallel_safe)]
fn binary_quantize(v: Vector<'_>) -> BitBuf {
    let x = v.as_slice();
    BitBuf::filled(x.len(), |out| bits::quantize_into(x, out))
}

#[pg_extern(immutable, strict, parallel_safe, name = "binary_quantize")]
fn halfvec_binary_quantize(v: HalfVec<'_>) -> BitBuf {
    let x = v.as_slice();
    BitBuf::filled(x.len(), |out| bits::quantize_half_into(x, out))
}
