//! Errors raised by the vector type, independent of Postgres.
//!
//! Every variant carries its SQLSTATE; `crate::pg::error` turns them into
//! `ereport(ERROR)` at the SQL boundary.

use super::MAX_DIM;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VectorError {
    #[error("invalid input syntax for type vector: \"{input}\"")]
    Syntax { input: String, detail: &'static str },
    #[error("vector must have at least 1 dimension")]
    Empty,
    #[error("NaN not allowed in vector")]
    NaN,
    #[error("infinite value not allowed in vector")]
    Infinite,
    #[error("\"{0}\" is out of range for type vector")]
    OutOfRange(String),
    #[error("expected {expected} dimensions, not {actual}")]
    DimensionMismatch { expected: usize, actual: usize },
    #[error("vector cannot have more than {MAX_DIM} dimensions")]
    TooManyDimensions,
    #[error("dimensions for type vector must be at least 1")]
    TypmodTooSmall,
    #[error("dimensions for type vector cannot exceed {MAX_DIM}")]
    TypmodTooLarge,
    #[error("invalid type modifier")]
    TypmodInvalid,
    #[error("value out of range: overflow")]
    Overflow,
    #[error("value out of range: underflow")]
    Underflow,
    #[error("array must not contain nulls")]
    ArrayNulls,
    #[error("array must be 1-D")]
    ArrayNotOneDimensional,
    /// From arrays and subvector; text input uses `Empty`.
    #[error("vector must have at least 1 dimension")]
    NoDimensions,
    #[error("vector binary representation has {0} dimensions but the message is too short")]
    BinaryTruncated(usize),
    #[error("expected unused to be 0, not {0}")]
    BinaryUnused(i16),
    /// An aggregate state array that no `avg(vector)` produced (pgvector
    /// raises it with `elog`, so XX000).
    #[error("{0}: expected state array")]
    StateArray(&'static str),
    /// Hamming or Jaccard distance of bit strings of two lengths.
    #[error("different bit lengths {0} and {1}")]
    BitLengthMismatch(u32, u32),
}

impl VectorError {
    /// The five-character SQLSTATE of this error.
    pub fn sqlstate(&self) -> &'static str {
        use VectorError::*;
        match self {
            Syntax { .. } => "22P02",
            Empty | NaN | Infinite | DimensionMismatch { .. } => "22000",
            OutOfRange(_) | Overflow | Underflow => "22003",
            TooManyDimensions => "54000",
            TypmodTooSmall | TypmodTooLarge | TypmodInvalid => "22023",
            NoDimensions => "22000",
            ArrayNulls => "22004",
            ArrayNotOneDimensional => "22000",
            BinaryTruncated(_) | BinaryUnused(_) => "08P01",
            StateArray(_) => "XX000",
            BitLengthMismatch(..) => "22000",
        }
    }

    /// Optional DETAIL line.
    pub fn detail(&self) -> Option<&'static str> {
        match self {
            VectorError::Syntax { detail, .. } if !detail.is_empty() => Some(detail),
            _ => None,
        }
    }
}
