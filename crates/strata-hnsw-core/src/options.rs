//! Index options (`WITH (m = 16, ef_construction = 64)`) and their rules.
//! Pure: the reloption parsing glue is in [`super::reloptions`].

use strata_base::error::SqlError;

pub const M_DEFAULT: i32 = 16;
pub const M_MIN: i32 = 2;
pub const M_MAX: i32 = 100;
pub const EF_CONSTRUCTION_DEFAULT: i32 = 64;
pub const EF_CONSTRUCTION_MIN: i32 = 4;
pub const EF_CONSTRUCTION_MAX: i32 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub m: i32,
    pub ef_construction: i32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            m: M_DEFAULT,
            ef_construction: EF_CONSTRUCTION_DEFAULT,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionsError {
    #[error("ef_construction must be greater than or equal to 2 * m")]
    EfBelowTwiceM { m: i32, ef_construction: i32 },
    #[error("column cannot have more than {max} dimensions for strata_hnsw index")]
    TooManyDims { max: usize },
    #[error("column does not have dimensions")]
    NoDims,
}

impl SqlError for OptionsError {
    fn sqlstate(&self) -> &'static str {
        match self {
            OptionsError::EfBelowTwiceM { .. } => "22023",
            OptionsError::TooManyDims { .. } => "54000",
            OptionsError::NoDims => "22023",
        }
    }

    fn detail(&self) -> Option<String> {
        match self {
            OptionsError::EfBelowTwiceM { m, ef_construction } => {
                Some(format!("m = {m}, ef_construction = {ef_construction}"))
            }
            _ => None,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            OptionsError::TooManyDims { .. } => Some(
                "Reduce the vectors' dimensions, or index a lower-dimensional projection.".into(),
            ),
            OptionsError::NoDims => Some(
                "Declare the column with its dimensions: vector(n), halfvec(n), bit(n) or sparsevec(n).".into(),
            ),
            _ => None,
        }
    }
}

impl Options {
    /// Cross-option rule (each option's own range is checked by reloptions).
    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.ef_construction < 2 * self.m {
            return Err(OptionsError::EfBelowTwiceM {
                m: self.m,
                ef_construction: self.ef_construction,
            });
        }
        Ok(())
    }
}

/// Checks the dimensions of the indexed vectors, stored as `scalar` (a
/// page holds 2,000 float4, 4,000 binary16 or 64,000 bit coordinates).
pub fn check_dims(dims: usize, scalar: super::format::Scalar) -> Result<(), OptionsError> {
    let max = scalar.max_dims();
    if dims > max {
        return Err(OptionsError::TooManyDims { max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(Options::default().validate().is_ok());
        let e = Options {
            m: 40,
            ef_construction: 64,
        }
        .validate()
        .unwrap_err();
        assert_eq!(e.sqlstate(), "22023");
        assert_eq!(e.detail().unwrap(), "m = 40, ef_construction = 64");
        use crate::format::Scalar;
        assert!(check_dims(2000, Scalar::Float4).is_ok());
        assert!(check_dims(4000, Scalar::Binary16).is_ok());
        assert!(check_dims(4001, Scalar::Binary16).is_err());
        assert!(check_dims(64_000, Scalar::Bit).is_ok());
        assert!(check_dims(64_001, Scalar::Bit).is_err());
        assert_eq!(check_dims(2001, Scalar::Float4).unwrap_err().sqlstate(), "54000");
    }
}
