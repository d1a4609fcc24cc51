//! The `vector` type: a pgvector-compatible array of `float4`.
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
//! Pure parts: [`kernels`] (SIMD distances), [`text`] (I/O format), [`ops`]
//! (arithmetic, comparison, typmod rules), [`bits`] (Hamming and Jaccard
//! distance of `bit` strings, `binary_quantize`). Postgres glue: [`datum`]
//! and [`bit_datum`] (varlena access), [`sql`] and [`bit_sql`] (the
//! SQL-callable functions) and [`catalog`] (the type, operators, casts,
//! opclasses and aggregates).

pub mod binary;
pub mod bit_datum;
pub mod bit_sql;
pub mod bits;
pub mod catalog;
pub mod datum;
pub mod error;
pub mod kernels;
pub mod ops;
pub mod sql;
mod sql_type;
pub mod text;

pub use error::VectorError;
pub use ops::check_element;

/// Largest number of dimensions a vector may have.
pub const MAX_DIM: usize = 16000;

impl crate::error::SqlError for VectorError {
    fn sqlstate(&self) -> &'static str {
        VectorError::sqlstate(self)
    }
    fn detail(&self) -> Option<String> {
        VectorError::detail(self).map(str::to_string)
    }
}
