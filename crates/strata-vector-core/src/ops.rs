//! Pure vector arithmetic, comparison and dimension rules.
//!
//! Semantics follow pgvector: element-wise operations require equal dimensions,
//! results must stay finite, comparison is lexicographic by element then by
//! dimension count (like Postgres arrays).

use super::{VectorError, MAX_DIM};
use std::cmp::Ordering;

/// Rejects NaN and infinite elements.
pub fn check_element(x: f32) -> Result<(), VectorError> {
    if x.is_nan() {
        Err(VectorError::NaN)
    } else if x.is_infinite() {
        Err(VectorError::Infinite)
    } else {
        Ok(())
    }
}

/// Checks a dimension count for a new vector.
pub fn check_dims(dims: usize) -> Result<(), VectorError> {
    match dims {
        0 => Err(VectorError::NoDimensions),
        d if d > MAX_DIM => Err(VectorError::TooManyDimensions),
        _ => Ok(()),
    }
}

/// Both operands of a binary operator must have the same dimensions.
pub fn same_dims<T>(a: &[T], b: &[T]) -> Result<(), VectorError> {
    if a.len() == b.len() {
        Ok(())
    } else {
        Err(VectorError::DifferentDims(a.len(), b.len()))
    }
}

/// Checks a value against a `vector(n)` type modifier (`-1` = unconstrained).
pub fn check_typmod(typmod: i32, dims: usize) -> Result<(), VectorError> {
    if typmod >= 0 && typmod as usize != dims {
        Err(VectorError::DimensionMismatch {
            expected: typmod as usize,
            actual: dims,
        })
    } else {
        Ok(())
    }
}

/// Validates the integer of `vector(n)`.
pub fn typmod_from_dims(dims: i32) -> Result<i32, VectorError> {
    if dims < 1 {
        Err(VectorError::TypmodTooSmall)
    } else if dims as usize > MAX_DIM {
        Err(VectorError::TypmodTooLarge)
    } else {
        Ok(dims)
    }
}

fn finite_result(v: Vec<f32>) -> Result<Vec<f32>, VectorError> {
    if v.iter().any(|x| x.is_infinite()) {
        Err(VectorError::Overflow)
    } else {
        Ok(v)
    }
}

pub fn add(a: &[f32], b: &[f32]) -> Result<Vec<f32>, VectorError> {
    same_dims(a, b)?;
    finite_result(a.iter().zip(b).map(|(x, y)| x + y).collect())
}

pub fn sub(a: &[f32], b: &[f32]) -> Result<Vec<f32>, VectorError> {
    same_dims(a, b)?;
    finite_result(a.iter().zip(b).map(|(x, y)| x - y).collect())
}

pub fn mul(a: &[f32], b: &[f32]) -> Result<Vec<f32>, VectorError> {
    same_dims(a, b)?;
    let out: Vec<f32> = a.iter().zip(b).map(|(x, y)| x * y).collect();
    let underflow = out
        .iter()
        .zip(a.iter().zip(b))
        .any(|(r, (x, y))| *r == 0.0 && *x != 0.0 && *y != 0.0);
    if underflow {
        return Err(VectorError::Underflow);
    }
    finite_result(out)
}

pub fn concat<T: Copy>(a: &[T], b: &[T]) -> Result<Vec<T>, VectorError> {
    check_dims(a.len() + b.len())?;
    Ok(a.iter().chain(b).copied().collect())
}

/// Euclidean norm, accumulated in `f64`.
pub fn norm(a: &[f32]) -> f64 {
    a.iter()
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt()
}

/// Scales to unit length; the zero vector stays zero.
pub fn l2_normalize(a: &[f32]) -> Result<Vec<f32>, VectorError> {
    let n = norm(a);
    if n > 0.0 {
        finite_result(a.iter().map(|x| (*x as f64 / n) as f32).collect())
    } else {
        Ok(a.to_vec())
    }
}

/// Elements `start .. start+count` with 1-based `start`, like `substring`.
pub fn subvector<T: Copy>(a: &[T], start: i32, count: i32) -> Result<Vec<T>, VectorError> {
    if count < 1 {
        return Err(VectorError::NoDimensions);
    }
    let dim = a.len() as i64;
    let end = (start as i64 + count as i64).min(dim + 1);
    let start = (start as i64).max(1);
    if start > dim || end <= start {
        return Err(VectorError::NoDimensions);
    }
    Ok(a[(start - 1) as usize..(end - 1) as usize].to_vec())
}

/// Lexicographic by element, then by dimension count.
pub fn compare(a: &[f32], b: &[f32]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        if x < y {
            return Ordering::Less;
        }
        if x > y {
            return Ordering::Greater;
        }
    }
    a.len().cmp(&b.len())
}

/// Aggregate state for `avg(vector)`: `[count, sum_0, ..,
/// sum_{d-1}]` in f64, `{0}` before the first row. A state is taken as given
/// by the SQL layer, which has already rejected arrays that are not
/// 1-D, are empty or hold NULLs, as pgvector does.
pub fn accumulate(state: &[f64], v: &[f32]) -> Result<Vec<f64>, VectorError> {
    let dims = state.len() - 1;
    let mut out = Vec::with_capacity(v.len() + 1);
    out.push(state[0] + 1.0);
    if dims == 0 {
        out.extend(v.iter().map(|x| *x as f64));
        return Ok(out);
    }
    if dims != v.len() {
        return Err(VectorError::DimensionMismatch {
            expected: dims,
            actual: v.len(),
        });
    }
    for (s, x) in state[1..].iter().zip(v) {
        let sum = s + *x as f64;
        if sum.is_infinite() {
            return Err(VectorError::Overflow);
        }
        out.push(sum);
    }
    Ok(out)
}

/// Merges two partial states (parallel aggregation): counts add up, sums
/// add up element-wise; a state without sums takes the other's.
pub fn combine(a: &[f64], b: &[f64]) -> Result<Vec<f64>, VectorError> {
    let (da, db) = (a.len() - 1, b.len() - 1);
    let mut out = Vec::with_capacity(da.max(db) + 1);
    out.push(a[0] + b[0]);
    match (da, db) {
        (0, 0) => {}
        (0, _) => {
            check_dims(db)?;
            out.extend_from_slice(&b[1..]);
        }
        (_, 0) => {
            check_dims(da)?;
            out.extend_from_slice(&a[1..]);
        }
        _ => {
            check_dims(da)?;
            if da != db {
                return Err(VectorError::DimensionMismatch {
                    expected: da,
                    actual: db,
                });
            }
            for (x, y) in a[1..].iter().zip(&b[1..]) {
                let sum = x + y;
                if sum.is_infinite() {
                    return Err(VectorError::Overflow);
                }
                out.push(sum);
            }
        }
    }
    Ok(out)
}

/// Final step of `avg`: `None` when no rows were aggregated.
pub fn average(state: &[f64]) -> Result<Option<Vec<f32>>, VectorError> {
    let n = state[0];
    if n == 0.0 {
        return Ok(None);
    }
    check_dims(state.len() - 1)?;
    let out: Vec<f32> = state[1..].iter().map(|s| (s / n) as f32).collect();
    for x in &out {
        check_element(*x)?;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        assert_eq!(add(&[1.0, 2.0], &[3.0, 4.0]).unwrap(), vec![4.0, 6.0]);
        assert_eq!(sub(&[1.0, 2.0], &[3.0, 4.0]).unwrap(), vec![-2.0, -2.0]);
        assert_eq!(mul(&[1.0, 2.0], &[3.0, 4.0]).unwrap(), vec![3.0, 8.0]);
        assert_eq!(add(&[3e38], &[3e38]), Err(VectorError::Overflow));
        assert_eq!(mul(&[1e-30], &[1e-30]), Err(VectorError::Underflow));
        assert_eq!(add(&[1.0], &[1.0, 2.0]), Err(VectorError::DifferentDims(1, 2)));
        assert_eq!(
            add(&[1.0], &[1.0, 2.0]).unwrap_err().to_string(),
            "different vector dimensions 1 and 2"
        );
        assert_eq!(
            VectorError::NaN.of("halfvec").to_string(),
            "NaN not allowed in halfvec"
        );
    }

    #[test]
    fn subvector_is_like_substring() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(subvector(&v, 1, 3).unwrap(), vec![1.0, 2.0, 3.0]);
        assert_eq!(subvector(&v, 3, 2).unwrap(), vec![3.0, 4.0]);
        assert_eq!(subvector(&v, -1, 4).unwrap(), vec![1.0, 2.0]);
        assert_eq!(subvector(&v, 4, 100).unwrap(), vec![4.0, 5.0]);
        assert_eq!(subvector(&v, 6, 1), Err(VectorError::NoDimensions));
        assert_eq!(subvector(&v, 1, 0), Err(VectorError::NoDimensions));
        assert_eq!(subvector(&v, -5, 3), Err(VectorError::NoDimensions));
        assert_eq!(
            subvector(&v, i32::MAX, i32::MAX),
            Err(VectorError::NoDimensions)
        );
    }

    #[test]
    fn ordering_is_elementwise_then_length() {
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 3.0]), Ordering::Less);
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 2.0, 0.0]), Ordering::Less);
        assert_eq!(compare(&[2.0], &[1.0, 5.0]), Ordering::Greater);
        assert_eq!(compare(&[1.0], &[1.0]), Ordering::Equal);
    }

    #[test]
    fn normalize_and_norm() {
        assert_eq!(norm(&[3.0, 4.0]), 5.0);
        assert_eq!(l2_normalize(&[3.0, 4.0]).unwrap(), vec![0.6, 0.8]);
        assert_eq!(l2_normalize(&[0.0, 0.0]).unwrap(), vec![0.0, 0.0]);
    }

    #[test]
    fn average_state() {
        let s = accumulate(&[0.0], &[1.0, 2.0]).unwrap();
        let s = accumulate(&s, &[3.0, 4.0]).unwrap();
        assert_eq!(average(&s).unwrap(), Some(vec![2.0, 3.0]));
        let t = accumulate(&[0.0], &[5.0, 6.0]).unwrap();
        assert_eq!(
            average(&combine(&s, &t).unwrap()).unwrap(),
            Some(vec![3.0, 4.0])
        );
        assert_eq!(average(&[0.0]).unwrap(), None);
        assert!(accumulate(&s, &[1.0]).is_err());
        // pgvector's rules for states that hold a count but no sums
        assert_eq!(average(&[2.0]), Err(VectorError::NoDimensions));
        assert_eq!(combine(&[0.0], &[0.0]).unwrap(), vec![0.0]);
        assert_eq!(combine(&[3.0], &s).unwrap(), vec![5.0, 4.0, 6.0]);
        assert_eq!(combine(&s, &[1.0]).unwrap(), vec![3.0, 4.0, 6.0]);
        assert_eq!(
            combine(&[1.0, 1.7e308], &[1.0, 1.7e308]),
            Err(VectorError::Overflow)
        );
    }

    #[test]
    fn typmod_rules() {
        assert!(check_typmod(-1, 7).is_ok());
        assert!(check_typmod(3, 3).is_ok());
        assert_eq!(
            check_typmod(3, 2).unwrap_err().to_string(),
            "expected 3 dimensions, not 2"
        );
        assert_eq!(typmod_from_dims(0), Err(VectorError::TypmodTooSmall));
        assert_eq!(typmod_from_dims(16001), Err(VectorError::TypmodTooLarge));
    }
}
