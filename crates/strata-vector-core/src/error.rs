//! Errors raised by the vector type, independent of Postgres.
//!
//! Every variant carries its SQLSTATE; `crate::pg::error` turns them into
//! `ereport(ERROR)` at the SQL boundary.

use super::MAX_DIM;

/// An error of the `vector` type's code. The variants that name the type
/// ("NaN not allowed in vector") are worded for `vector`; [`Self::of`]
/// words them for another type of the same family (`halfvec`), as
/// pgvector does.
#[derive(Debug, Clone, PartialEq)]
pub enum VectorError {
    Syntax { input: String, detail: &'static str },
    Empty,
    NaN,
    Infinite,
    OutOfRange(String),
    /// A value against a type modifier or an aggregate's state.
    DimensionMismatch { expected: usize, actual: usize },
    /// The two operands of a binary operator or distance.
    DifferentDims(usize, usize),
    TooManyDimensions,
    TypmodTooSmall,
    TypmodTooLarge,
    TypmodInvalid,
    Overflow,
    Underflow,
    ArrayNulls,
    ArrayNotOneDimensional,
    /// From arrays and subvector; text input uses `Empty`.
    NoDimensions,
    BinaryTruncated(usize),
    BinaryUnused(i16),
    /// An aggregate state array that no `avg(vector)` produced (pgvector
    /// raises it with `elog`, so XX000).
    StateArray(&'static str),
    /// Hamming or Jaccard distance of bit strings of two lengths.
    BitLengthMismatch(u32, u32),
    /// `sparsevec`: a negative element count in its binary form.
    NegativeNnz,
    /// `sparsevec`: more non-zero elements than it may hold.
    TooManyNonZero,
    /// `sparsevec`: more elements than dimensions.
    NnzAboveDims,
    /// `sparsevec`: an index outside `1..=dim`.
    IndexOutOfBounds,
    /// `sparsevec`: binary indices out of order.
    IndicesNotAscending,
    /// `sparsevec`: one index twice.
    DuplicateIndex,
    /// `sparsevec`: a zero value in its binary form.
    BinaryZero,
    /// One of the above, worded for type `.0`.
    Of(&'static str, Box<VectorError>),
}

impl VectorError {
    /// This error worded for type `ty` (`"halfvec"`).
    pub fn of(self, ty: &'static str) -> VectorError {
        match self {
            VectorError::Of(_, e) => VectorError::Of(ty, e),
            e => VectorError::Of(ty, Box::new(e)),
        }
    }

    /// The message, naming type `ty` where it names one.
    fn message(&self, ty: &str) -> String {
        use VectorError::*;
        match self {
            Syntax { input, .. } => format!("invalid input syntax for type {ty}: \"{input}\""),
            Empty | NoDimensions => format!("{ty} must have at least 1 dimension"),
            NaN => format!("NaN not allowed in {ty}"),
            Infinite => format!("infinite value not allowed in {ty}"),
            OutOfRange(v) => format!("\"{v}\" is out of range for type {ty}"),
            DimensionMismatch { expected, actual } => {
                format!("expected {expected} dimensions, not {actual}")
            }
            DifferentDims(a, b) => format!("different {ty} dimensions {a} and {b}"),
            TooManyDimensions => format!("{ty} cannot have more than {} dimensions", max_dims(ty)),
            TypmodTooSmall => format!("dimensions for type {ty} must be at least 1"),
            TypmodTooLarge => format!("dimensions for type {ty} cannot exceed {}", max_dims(ty)),
            TypmodInvalid => "invalid type modifier".into(),
            Overflow => "value out of range: overflow".into(),
            Underflow => "value out of range: underflow".into(),
            ArrayNulls => "array must not contain nulls".into(),
            ArrayNotOneDimensional => "array must be 1-D".into(),
            BinaryTruncated(d) => {
                format!("{ty} binary representation has {d} dimensions but the message is too short")
            }
            BinaryUnused(u) => format!("expected unused to be 0, not {u}"),
            StateArray(caller) => format!("{caller}: expected state array"),
            BitLengthMismatch(a, b) => format!("different bit lengths {a} and {b}"),
            NegativeNnz => format!("{ty} cannot have negative number of elements"),
            TooManyNonZero => format!(
                "{ty} cannot have more than {} non-zero elements",
                super::sparse::MAX_NNZ
            ),
            NnzAboveDims => format!("{ty} cannot have more elements than dimensions"),
            IndexOutOfBounds => format!("{ty} index out of bounds"),
            IndicesNotAscending => format!("{ty} indices must be in ascending order"),
            DuplicateIndex => format!("{ty} indices must not contain duplicates"),
            BinaryZero => format!("binary representation of {ty} cannot contain zero values"),
            Of(ty, e) => e.message(ty),
        }
    }
}

/// The most dimensions a value of type `ty` may have.
fn max_dims(ty: &str) -> usize {
    if ty == "sparsevec" {
        super::sparse::MAX_DIM
    } else {
        MAX_DIM
    }
}

impl std::fmt::Display for VectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message("vector"))
    }
}

impl std::error::Error for VectorError {}

impl VectorError {
    /// The five-character SQLSTATE of this error.
    pub fn sqlstate(&self) -> &'static str {
        use VectorError::*;
        match self {
            Syntax { .. } => "22P02",
            Empty | NaN | Infinite | DimensionMismatch { .. } | DifferentDims(..) => "22000",
            OutOfRange(_) | Overflow | Underflow => "22003",
            TooManyDimensions => "54000",
            TypmodTooSmall | TypmodTooLarge | TypmodInvalid => "22023",
            NoDimensions => "22000",
            ArrayNulls => "22004",
            ArrayNotOneDimensional => "22000",
            BinaryTruncated(_) | BinaryUnused(_) => "08P01",
            StateArray(_) => "XX000",
            BitLengthMismatch(..) => "22000",
            TooManyNonZero | NnzAboveDims => "54000",
            NegativeNnz | IndexOutOfBounds | IndicesNotAscending | DuplicateIndex | BinaryZero => "22000",
            Of(_, e) => e.sqlstate(),
        }
    }

    /// Optional DETAIL line.
    pub fn detail(&self) -> Option<&'static str> {
        match self {
            VectorError::Syntax { detail, .. } if !detail.is_empty() => Some(detail),
            VectorError::Of(_, e) => e.detail(),
            _ => None,
        }
    }
}
