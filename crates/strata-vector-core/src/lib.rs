//! The pure half of the `vector` and `halfvec` types (and pgvector's `bit`
//! functions):
//! SIMD distance kernels, text and binary codecs, arithmetic and typmod
//! rules, bit distances and quantization, errors with their SQLSTATEs.
//!
//! No pgrx, no `pg_sys`: `unsafe` only in the modules marked below, each
//! saying why.

#![deny(unsafe_code)]

pub mod binary;
#[allow(unsafe_code)] // the popcnt build behind runtime feature detection
pub mod bits;
pub mod error;
#[allow(unsafe_code)] // the F16C kernels behind runtime feature detection
pub mod half;
#[allow(unsafe_code)] // SIMD kernels behind runtime feature detection
pub mod kernels;
pub mod ops;
pub mod sparse;
pub mod text;

pub use error::VectorError;
pub use ops::check_element;

/// Largest number of dimensions a vector may have.
pub const MAX_DIM: usize = 16000;

impl strata_base::error::SqlError for VectorError {
    fn sqlstate(&self) -> &'static str {
        VectorError::sqlstate(self)
    }
    fn detail(&self) -> Option<String> {
        VectorError::detail(self).map(str::to_string)
    }
}
