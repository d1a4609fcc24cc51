//! The `vector` type: a pgvector-compatible array of `float4`; `halfvec`,
//! its binary16 sibling; pgvector's functions on `bit`.
//!
//! On-disk / in-memory layout (format version 1, identical to pgvector):
//!
//! ```text
//!  0       4        6        8                       8 + 4*dim
//!  +-------+--------+--------+-----------------------+
//!  | vl_len| dim i16| 0  i16 | x[0] .. x[dim-1] f32  |
//!  +-------+--------+--------+-----------------------+
//! ```
//!
//! `halfvec` has the same layout with binary16 elements (2 bytes each).
//!
//! Pure parts: [`kernels`] (SIMD distances), [`half`] (binary16 conversion
//! and kernels), [`text`] (I/O format), [`ops`]
//! (arithmetic, comparison, typmod rules), [`bits`] (Hamming and Jaccard
//! distance of `bit` strings, `binary_quantize`). Postgres glue: [`datum`]
//! and [`bit_datum`] (varlena access), [`sql`], [`half_sql`] and
//! [`bit_sql`] (the SQL-callable functions), [`catalog`] and
//! `half_catalog` (the types, operators, casts, opclasses and aggregates).

pub mod bit_datum;
pub mod bit_sql;
pub mod catalog;
pub mod datum;
mod half_catalog;
pub mod half_sql;
mod sparse_catalog;
pub mod sparse_datum;
pub mod sparse_sql;
pub mod sql;
mod sql_type;

// The pure modules live in the pgrx-free core crate.
pub use strata_vector_core::{binary, bits, error, half, kernels, ops, sparse, text};

pub use strata_vector_core::{check_element, VectorError, MAX_DIM};
