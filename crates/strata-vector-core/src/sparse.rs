//! `sparsevec`, pgvector's sparse vector: a dimension count and the
//! non-zero elements as (0-based index, float4 value) pairs in ascending
//! index order. Pure: text and binary forms, the rules a value obeys,
//! conversions from dense values, distances, norms and ordering — each as
//! pgvector 0.8 computes it: distances accumulate in float4 in index order
//! with fused multiply-adds (as the PG18 wheel's pgvector, built for
//! x86-64-v3, and our AVX2 dense kernels do), so results agree with its to
//! the last bit.
//!
//! Text form: `{1:1.5,3:-2}/5` — 1-based indices, any order on input (sorted;
//! duplicates rejected), zeros dropped. Binary form (big-endian): `int32 dim,
//! int32 nnz, int32 unused = 0`, then the `nnz` 0-based indices, then the
//! `nnz` float4 values.
//!
//! Errors are [`VectorError`]s, worded for `sparsevec` by the caller
//! (`VectorError::of`).

use super::{check_element, text, VectorError};
use std::cmp::Ordering;

/// Most dimensions a `sparsevec` may have.
pub const MAX_DIM: usize = 1_000_000_000;
/// Most non-zero elements a `sparsevec` may hold.
pub const MAX_NNZ: usize = 16_000;

/// A sparse vector: `indices` (0-based, strictly ascending) and their
/// non-zero `values`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sparse {
    pub dim: i32,
    pub indices: Vec<i32>,
    pub values: Vec<f32>,
}

/// The dimension count's rules: at least 1, at most [`MAX_DIM`].
pub fn check_dim(dim: i64) -> Result<(), VectorError> {
    if dim < 1 {
        Err(VectorError::NoDimensions)
    } else if dim as usize > MAX_DIM {
        Err(VectorError::TooManyDimensions)
    } else {
        Ok(())
    }
}

/// The element count's rules against the dimension count.
pub fn check_nnz(nnz: i64, dim: i64) -> Result<(), VectorError> {
    if nnz < 0 {
        Err(VectorError::NegativeNnz)
    } else if nnz as usize > MAX_NNZ {
        Err(VectorError::TooManyNonZero)
    } else if nnz > dim {
        Err(VectorError::NnzAboveDims)
    } else {
        Ok(())
    }
}

/// Index `i` of `indices` against the dimension count and the one before.
fn check_index(indices: &[i32], i: usize, dim: i32) -> Result<(), VectorError> {
    let index = indices[i];
    if index < 0 || index >= dim {
        return Err(VectorError::IndexOutOfBounds);
    }
    if i > 0 {
        match index.cmp(&indices[i - 1]) {
            Ordering::Less => return Err(VectorError::IndicesNotAscending),
            Ordering::Equal => return Err(VectorError::DuplicateIndex),
            Ordering::Greater => {}
        }
    }
    Ok(())
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c')
}

/// `strtol`'s reading of a decimal integer at `bytes[*pos..]` (optional
/// sign, digits), clamped to `[lo, hi]`; None without digits.
fn read_integer(bytes: &[u8], pos: &mut usize, lo: i64, hi: i64) -> Option<i64> {
    let start = *pos;
    let mut p = *pos;
    let negative = match bytes.get(p) {
        Some(b'-') => {
            p += 1;
            true
        }
        Some(b'+') => {
            p += 1;
            false
        }
        _ => false,
    };
    let digits = p;
    let mut value: i64 = 0;
    while let Some(d) = bytes.get(p).filter(|c| c.is_ascii_digit()) {
        value = value.saturating_mul(10).saturating_add((d - b'0') as i64);
        p += 1;
    }
    if p == digits {
        *pos = start;
        return None;
    }
    *pos = p;
    Some(if negative { -value } else { value }.clamp(lo, hi))
}

/// Parses the text form (see the module comment), with pgvector's checks
/// in its order.
pub fn parse(input: &str) -> Result<Sparse, VectorError> {
    let syntax = |detail: &'static str| VectorError::Syntax {
        input: input.to_string(),
        detail,
    };
    let bytes = input.as_bytes();
    if bytes.iter().filter(|&&c| c == b',').count() + 1 > MAX_NNZ {
        return Err(VectorError::TooManyNonZero);
    }
    let mut pos = 0;
    let skip = |pos: &mut usize| {
        while bytes.get(*pos).is_some_and(|&c| is_space(c)) {
            *pos += 1;
        }
    };
    skip(&mut pos);
    if bytes.get(pos) != Some(&b'{') {
        return Err(syntax("Vector contents must start with \"{\"."));
    }
    pos += 1;
    skip(&mut pos);
    let mut elements: Vec<(i32, f32)> = Vec::new();
    if bytes.get(pos) == Some(&b'}') {
        pos += 1;
    } else {
        loop {
            skip(&mut pos);
            if pos >= bytes.len() {
                return Err(syntax(""));
            }
            let index = read_integer(bytes, &mut pos, i32::MIN as i64 + 1, i32::MAX as i64)
                .ok_or_else(|| syntax(""))?;
            skip(&mut pos);
            if bytes.get(pos) != Some(&b':') {
                return Err(syntax(""));
            }
            pos += 1;
            skip(&mut pos);
            let start = pos;
            while bytes.get(pos).is_some_and(|&c| !is_space(c) && c != b',' && c != b'}') {
                pos += 1;
            }
            let token = &input[start..pos];
            let value: f32 = token.parse().map_err(|_| syntax(""))?;
            if (value.is_infinite() && !text::names_infinity(token))
                || (value == 0.0 && underflows(token))
            {
                return Err(VectorError::OutOfRange(token.to_string()));
            }
            check_element(value)?;
            if value != 0.0 {
                elements.push(((index - 1) as i32, value));
            }
            skip(&mut pos);
            match bytes.get(pos) {
                Some(b',') => pos += 1,
                Some(b'}') => {
                    pos += 1;
                    break;
                }
                _ => return Err(syntax("")),
            }
        }
    }
    skip(&mut pos);
    if bytes.get(pos) != Some(&b'/') {
        return Err(syntax("Unexpected end of input."));
    }
    pos += 1;
    skip(&mut pos);
    let dim = read_integer(bytes, &mut pos, i32::MIN as i64, i32::MAX as i64).ok_or_else(|| syntax(""))?;
    skip(&mut pos);
    if pos != bytes.len() {
        return Err(syntax("Junk after closing."));
    }
    check_dim(dim)?;
    let dim = dim as i32;
    elements.sort_by_key(|e| e.0);
    let indices: Vec<i32> = elements.iter().map(|e| e.0).collect();
    for i in 0..indices.len() {
        check_index(&indices, i, dim)?;
    }
    Ok(Sparse {
        dim,
        indices,
        values: elements.iter().map(|e| e.1).collect(),
    })
}

/// Whether a decimal that reads as zero names a non-zero value (below
/// float4's range: `strtof`'s ERANGE, which pgvector reports).
fn underflows(token: &str) -> bool {
    let mantissa = token.split(['e', 'E']).next().unwrap_or("");
    mantissa.bytes().any(|c| (b'1'..=b'9').contains(&c))
}

/// The text form.
pub fn format(v: View<'_>) -> String {
    let mut out = String::with_capacity(v.indices.len() * 12 + 12);
    out.push('{');
    for (k, (i, x)) in v.indices.iter().zip(v.values).enumerate() {
        if k > 0 {
            out.push(',');
        }
        out.push_str(&(*i as i64 + 1).to_string());
        out.push(':');
        text::push_float4(&mut out, *x);
    }
    out.push_str("}/");
    out.push_str(&v.dim.to_string());
    out
}

/// The binary form.
pub fn encode(v: View<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + 8 * v.indices.len());
    out.extend_from_slice(&v.dim.to_be_bytes());
    out.extend_from_slice(&(v.indices.len() as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for i in v.indices {
        out.extend_from_slice(&i.to_be_bytes());
    }
    for x in v.values {
        out.extend_from_slice(&x.to_bits().to_be_bytes());
    }
    out
}

/// Decodes one value from the front of `bytes` (checked like pgvector's
/// `sparsevec_recv`, `typmod` included); returns it and the bytes used.
pub fn decode(bytes: &[u8], typmod: i32) -> Result<(Sparse, usize), VectorError> {
    let int = |at: usize| -> Result<i32, VectorError> {
        bytes
            .get(at..at + 4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(VectorError::BinaryTruncated(0))
    };
    let (dim, nnz, unused) = (int(0)?, int(4)?, int(8)?);
    check_dim(dim as i64)?;
    check_nnz(nnz as i64, dim as i64)?;
    super::ops::check_typmod(typmod, dim as usize)?;
    if unused != 0 {
        return Err(VectorError::BinaryUnused(unused as i16));
    }
    let n = nnz as usize;
    let mut indices = Vec::with_capacity(n);
    for k in 0..n {
        indices.push(int(12 + 4 * k)?);
        check_index(&indices, k, dim)?;
    }
    let mut values = Vec::with_capacity(n);
    for k in 0..n {
        let x = f32::from_bits(int(12 + 4 * n + 4 * k)? as u32);
        check_element(x)?;
        if x == 0.0 {
            return Err(VectorError::BinaryZero);
        }
        values.push(x);
    }
    Ok((Sparse { dim, indices, values }, 12 + 8 * n))
}

/// The sparse form of dense values (`vector`, `halfvec` widened, arrays)
/// against `typmod`: the non-zero ones, checked in pgvector's order
/// (NaN counts as non-zero; the element checks after reject it).
pub fn from_dense(values: &[f32], typmod: i32) -> Result<Sparse, VectorError> {
    check_dim(values.len() as i64)?;
    super::ops::check_typmod(typmod, values.len())?;
    let nnz = values.iter().filter(|&&x| x != 0.0).count();
    check_nnz(nnz as i64, values.len() as i64)?;
    let (indices, values_nz): (Vec<i32>, Vec<f32>) = values
        .iter()
        .enumerate()
        .filter(|(_, &x)| x != 0.0)
        .map(|(i, &x)| (i as i32, x))
        .unzip();
    for &x in &values_nz {
        check_element(x)?;
    }
    Ok(Sparse {
        dim: values.len() as i32,
        indices,
        values: values_nz,
    })
}

impl Sparse {
    /// The dense values (the caller checks `dim` against the dense type's limit).
    pub fn to_dense(&self) -> Vec<f32> {
        self.view().to_dense()
    }
}

/// A view of a stored value: its indices and values as borrowed slices.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub dim: i32,
    pub indices: &'a [i32],
    pub values: &'a [f32],
}

impl View<'_> {
    /// The dense values (the caller checks `dim` against the dense type's limit).
    pub fn to_dense(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.dim as usize];
        for (i, x) in self.indices.iter().zip(self.values) {
            out[*i as usize] = *x;
        }
        out
    }

}

impl Sparse {
    pub fn view(&self) -> View<'_> {
        View {
            dim: self.dim,
            indices: &self.indices,
            values: &self.values,
        }
    }
}

/// Read access to a sparse vector's non-zero (index, value) pairs in
/// ascending index order: a stored value's [`View`], or the [`Slots`] the
/// HNSW graph code carries it in. The distances below take either.
pub trait Pairs: Copy {
    fn nnz(&self) -> usize;
    fn index(&self, k: usize) -> i32;
    fn value(&self, k: usize) -> f32;
}

impl Pairs for View<'_> {
    fn nnz(&self) -> usize {
        self.indices.len()
    }
    fn index(&self, k: usize) -> i32 {
        self.indices[k]
    }
    fn value(&self, k: usize) -> f32 {
        self.values[k]
    }
}

/// A sparse vector as one `f32` slice, the form every vector takes in the
/// HNSW graph code (`strata_hnsw_core`, whose queries and element vectors are
/// `&[f32]`; bit strings travel there as 0.0/1.0 coordinates the same way):
///
/// ```text
/// +---------+-------------------------+-------------------------+
/// | nnz     | index_0 .. index_{n-1}  | value_0 .. value_{n-1}  |
/// +---------+-------------------------+-------------------------+
///   1 slot    n slots                   n slots
/// ```
///
/// `nnz` and the indices are the bits of a `u32` / `i32` in an `f32` slot
/// (`f32::from_bits`): only moved, never computed with — below 2^30 none
/// of them is a NaN or an infinity, so no copy can alter them.
#[derive(Clone, Copy)]
pub struct Slots<'a> {
    /// The index slots and the value slots, split once.
    indices: &'a [f32],
    values: &'a [f32],
}

impl<'a> Slots<'a> {
    /// Reads `s` as slots; None when its length does not fit its `nnz`.
    pub fn new(s: &'a [f32]) -> Option<Slots<'a>> {
        let n = s.first()?.to_bits() as usize;
        (s.len() == Self::len_for(n)).then(|| Self::split(s, n))
    }

    /// `s` as slots, trusted to be laid out as such (the graph's own
    /// vectors; checked in debug builds; a shorter slice reads as fewer
    /// pairs, never out of bounds).
    pub fn of(s: &'a [f32]) -> Slots<'a> {
        debug_assert!(Self::new(s).is_some(), "sparse slots");
        let n = s.first().map_or(0, |x| x.to_bits() as usize).min(s.len().saturating_sub(1) / 2);
        Self::split(s, n)
    }

    fn split(s: &'a [f32], n: usize) -> Slots<'a> {
        let (indices, values) = s[1..1 + 2 * n].split_at(n);
        Slots { indices, values }
    }

    /// Slots a vector of `nnz` non-zero elements takes.
    pub fn len_for(nnz: usize) -> usize {
        1 + 2 * nnz
    }

    /// The slots of `v`.
    pub fn encode(v: View<'_>) -> Vec<f32> {
        let mut out = Vec::with_capacity(Self::len_for(v.indices.len()));
        out.push(f32::from_bits(v.indices.len() as u32));
        out.extend(v.indices.iter().map(|&i| f32::from_bits(i as u32)));
        out.extend_from_slice(v.values);
        out
    }

    /// The pairs as a [`Sparse`] of `dim` dimensions.
    pub fn to_sparse(self, dim: i32) -> Sparse {
        Sparse {
            dim,
            indices: (0..self.nnz()).map(|k| self.index(k)).collect(),
            values: (0..self.nnz()).map(|k| self.value(k)).collect(),
        }
    }
}

impl Pairs for Slots<'_> {
    fn nnz(&self) -> usize {
        self.indices.len()
    }
    fn index(&self, k: usize) -> i32 {
        self.indices[k].to_bits() as i32
    }
    fn value(&self, k: usize) -> f32 {
        self.values[k]
    }
}

/// A sparse query prepared for many inner products and cosine distances
/// (an index scan measures one query against every element it visits):
/// its pairs in an open-addressing table, so an element's indices are
/// looked up instead of merged — about 2.5 times faster than [`dot`]'s
/// branchy walk on 100 non-zeros a side. The values are [`dot`]'s and
/// [`cosine_distance`]'s bit for bit: the common indices in the element's
/// (ascending) order, the same fused multiply-adds.
pub struct Lookup {
    keys: Vec<i32>,
    values: Vec<f32>,
    shift: u32,
    squared_norm: f32,
}

impl Lookup {
    pub fn new(q: impl Pairs) -> Lookup {
        let bits = (2 * q.nnz()).max(16).next_power_of_two().trailing_zeros();
        let mut l = Lookup {
            keys: vec![-1; 1 << bits],
            values: vec![0.0; 1 << bits],
            shift: 32 - bits,
            squared_norm: squared_norm(q),
        };
        let mask = l.keys.len() - 1;
        for k in 0..q.nnz() {
            let mut h = l.slot(q.index(k));
            while l.keys[h] >= 0 {
                h = (h + 1) & mask;
            }
            l.keys[h] = q.index(k);
            l.values[h] = q.value(k);
        }
        l
    }

    fn slot(&self, index: i32) -> usize {
        ((index as u32).wrapping_mul(0x9E37_79B1) >> self.shift) as usize
    }

    /// The query's value at `index`, if it holds one.
    fn get(&self, index: i32) -> Option<f32> {
        let mask = self.keys.len() - 1;
        let mut h = self.slot(index);
        loop {
            match self.keys[h] {
                k if k == index => return Some(self.values[h]),
                k if k < 0 => return None,
                _ => h = (h + 1) & mask,
            }
        }
    }

    /// [`dot`]`(e, query)`.
    pub fn dot(&self, e: impl Pairs) -> f32 {
        let mut d = 0.0f32;
        for k in 0..e.nnz() {
            if let Some(q) = self.get(e.index(k)) {
                d = e.value(k).mul_add(q, d);
            }
        }
        d
    }

    /// [`cosine_distance`]`(e, query)`.
    pub fn cosine_distance(&self, e: impl Pairs) -> f64 {
        cosine_of(self.dot(e), squared_norm(e), self.squared_norm)
    }
}

/// Walks `a` and `b` in index order, calling `f(x, y, both)` per index
/// either holds (the other's value 0 where it holds none) — the order
/// pgvector adds the terms up in.
fn merge(a: impl Pairs, b: impl Pairs, mut f: impl FnMut(f32, f32, bool)) {
    let (na, nb) = (a.nnz(), b.nnz());
    let (mut i, mut j) = (0, 0);
    while i < na && j < nb {
        match a.index(i).cmp(&b.index(j)) {
            Ordering::Equal => {
                f(a.value(i), b.value(j), true);
                i += 1;
                j += 1;
            }
            Ordering::Less => {
                f(a.value(i), 0.0, false);
                i += 1;
            }
            Ordering::Greater => {
                f(0.0, b.value(j), false);
                j += 1;
            }
        }
    }
    (i..na).for_each(|k| f(a.value(k), 0.0, false));
    (j..nb).for_each(|k| f(0.0, b.value(k), false));
}

/// Both operands must have one dimension count.
pub fn same_dims(a: View<'_>, b: View<'_>) -> Result<(), VectorError> {
    if a.dim == b.dim {
        Ok(())
    } else {
        Err(VectorError::DifferentDims(a.dim as usize, b.dim as usize))
    }
}

/// Sum of squared differences, in float4.
pub fn l2_squared(a: impl Pairs, b: impl Pairs) -> f32 {
    let mut d = 0.0f32;
    merge(a, b, |x, y, _| d = (x - y).mul_add(x - y, d));
    d
}

/// Inner product, in float4.
pub fn dot(a: impl Pairs, b: impl Pairs) -> f32 {
    // only common indices count: skip the rest without visiting them one
    // by one as `merge` does (the same terms, in the same order)
    let (na, nb) = (a.nnz(), b.nnz());
    let (mut i, mut j, mut d) = (0, 0, 0.0f32);
    while i < na && j < nb {
        let (ai, bj) = (a.index(i), b.index(j));
        if ai == bj {
            d = a.value(i).mul_add(b.value(j), d);
            i += 1;
            j += 1;
        } else if ai < bj {
            i += 1;
        } else {
            j += 1;
        }
    }
    d
}

/// Sum of absolute differences, in float4.
pub fn l1(a: impl Pairs, b: impl Pairs) -> f32 {
    let mut d = 0.0f32;
    merge(a, b, |x, y, _| d += (x - y).abs());
    d
}

/// Cosine distance `1 - a·b / sqrt(|a|² |b|²)`, clamped; NaN when either
/// is zero.
pub fn cosine_distance(a: impl Pairs, b: impl Pairs) -> f64 {
    cosine_of(dot(a, b), squared_norm(a), squared_norm(b))
}

/// `1 - dot / sqrt(|a|² |b|²)`, clamped; NaN when either norm is zero.
fn cosine_of(dot: f32, a: f32, b: f32) -> f64 {
    let similarity = dot as f64 / ((a as f64) * (b as f64)).sqrt();
    if similarity.is_nan() {
        return f64::NAN;
    }
    1.0 - similarity.clamp(-1.0, 1.0)
}

/// Sum of the squared values, in float4 (cosine distance's norms).
pub fn squared_norm(v: impl Pairs) -> f32 {
    (0..v.nnz()).fold(0.0f32, |s, k| {
        let x = v.value(k);
        x.mul_add(x, s)
    })
}

/// Euclidean norm, accumulated in f64.
pub fn norm(a: View<'_>) -> f64 {
    // from +0 (an empty sum of f64 is -0 in Rust, and sqrt keeps the sign)
    a.values
        .iter()
        .fold(0.0f64, |s, &x| (x as f64).mul_add(x as f64, s))
        .sqrt()
}

/// Scaled to unit length; elements that become zero are dropped; one that
/// becomes infinite is an overflow.
pub fn l2_normalize(a: View<'_>) -> Result<Sparse, VectorError> {
    let n = norm(a);
    let mut out = Sparse {
        dim: a.dim,
        indices: Vec::with_capacity(a.indices.len()),
        values: Vec::with_capacity(a.values.len()),
    };
    for (&i, &x) in a.indices.iter().zip(a.values) {
        let y = if n > 0.0 { (x as f64 / n) as f32 } else { x };
        if y.is_infinite() {
            return Err(VectorError::Overflow);
        }
        if y != 0.0 {
            out.indices.push(i);
            out.values.push(y);
        }
    }
    Ok(out)
}

/// pgvector's order of sparse vectors (as if dense, element by element,
/// then by dimension count).
pub fn compare(a: View<'_>, b: View<'_>) -> Ordering {
    let n = a.indices.len().min(b.indices.len());
    let sign = |x: f32| if x < 0.0 { Ordering::Less } else { Ordering::Greater };
    for k in 0..n {
        let (ai, bi) = (a.indices[k], b.indices[k]);
        if ai < bi {
            return sign(a.values[k]);
        }
        if ai > bi {
            return sign(b.values[k]).reverse();
        }
        match a.values[k].partial_cmp(&b.values[k]) {
            Some(Ordering::Less) => return Ordering::Less,
            Some(Ordering::Greater) => return Ordering::Greater,
            _ => {}
        }
    }
    if a.indices.len() < b.indices.len() && b.indices[n] < a.dim {
        return sign(b.values[n]).reverse();
    }
    if a.indices.len() > b.indices.len() && a.indices[n] < b.dim {
        return sign(a.values[n]);
    }
    a.dim.cmp(&b.dim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sv(s: &str) -> Sparse {
        parse(s).unwrap()
    }

    #[test]
    fn text_form() {
        let v = sv(" { 3:2.5, 1:-1 ,2:0 } / 5 ");
        assert_eq!(v, Sparse { dim: 5, indices: vec![0, 2], values: vec![-1.0, 2.5] });
        assert_eq!(format(v.view()), "{1:-1,3:2.5}/5");
        assert_eq!(format(sv("{}/3").view()), "{}/3");
        let err = |s: &str| parse(s).unwrap_err().of("sparsevec").to_string();
        assert_eq!(err("{1:1,1:2}/3"), "sparsevec indices must not contain duplicates");
        assert_eq!(err("{4:1}/3"), "sparsevec index out of bounds");
        assert_eq!(err("{0:1}/3"), "sparsevec index out of bounds");
        assert_eq!(err("{1:1}/0"), "sparsevec must have at least 1 dimension");
        assert_eq!(err("{1:1}/1000000001"), "sparsevec cannot have more than 1000000000 dimensions");
        assert_eq!(err("{1:1e-50}/2"), "\"1e-50\" is out of range for type sparsevec");
        assert_eq!(err("{1:1e39}/2"), "\"1e39\" is out of range for type sparsevec");
        assert_eq!(err("{1:nan}/2"), "NaN not allowed in sparsevec");
        assert_eq!(err("{1:1}"), "invalid input syntax for type sparsevec: \"{1:1}\"");
        assert_eq!(parse("{1:1}/2 x").unwrap_err().detail(), Some("Junk after closing."));
        assert_eq!(parse("[1]/2").unwrap_err().detail(), Some("Vector contents must start with \"{\"."));
        assert_eq!(sv("{1:0e9}/2").indices.len(), 0);
    }

    #[test]
    fn binary_form() {
        let v = sv("{2:1.5,4:-2}/5");
        let b = encode(v.view());
        assert_eq!(decode(&b, -1), Ok((v.clone(), b.len())));
        assert_eq!(decode(&b, 4), Err(VectorError::DimensionMismatch { expected: 4, actual: 5 }));
        let mut zero = b.clone();
        zero[24..28].copy_from_slice(&0f32.to_bits().to_be_bytes());
        assert_eq!(decode(&zero, -1), Err(VectorError::BinaryZero));
        let mut order = b.clone();
        order[12..16].copy_from_slice(&4i32.to_be_bytes());
        assert_eq!(decode(&order, -1), Err(VectorError::IndicesNotAscending));
    }

    #[test]
    fn slots_measure_what_views_measure() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for _ in 0..200 {
            // 3,000 candidate indices spread over a billion dimensions
            let mut random = |dim: i32| {
                let mut v = Sparse { dim, indices: vec![], values: vec![] };
                for i in 0..3000 {
                    if next() % 7 == 0 {
                        v.indices.push(i * 333_000);
                        v.values.push((next() % 2001) as f32 / 1000.0 - 1.0 + 1e-3);
                    }
                }
                v
            };
            let (a, b) = (random(MAX_DIM as i32), random(MAX_DIM as i32));
            let (sa, sb) = (Slots::encode(a.view()), Slots::encode(b.view()));
            let (xa, xb) = (Slots::new(&sa).unwrap(), Slots::new(&sb).unwrap());
            assert_eq!(l2_squared(xa, xb).to_bits(), l2_squared(a.view(), b.view()).to_bits());
            assert_eq!(dot(xa, xb).to_bits(), dot(a.view(), b.view()).to_bits());
            assert_eq!(l1(xa, b.view()).to_bits(), l1(a.view(), b.view()).to_bits());
            let (c1, c2) = (cosine_distance(xa, xb), cosine_distance(a.view(), b.view()));
            assert!(c1.to_bits() == c2.to_bits() || (c1.is_nan() && c2.is_nan()));
            assert_eq!(xa.to_sparse(a.dim), a);
        }
        // a prepared query gives the same values
        for _ in 0..50 {
            let mut random = |dim: i32| {
                let mut v = Sparse { dim, indices: vec![], values: vec![] };
                for i in 0..400 {
                    if next() % 3 == 0 {
                        v.indices.push(i * 2_500_000);
                        v.values.push((next() % 2001) as f32 / 700.0 - 1.3);
                    }
                }
                v
            };
            let (q, e) = (random(MAX_DIM as i32), random(MAX_DIM as i32));
            let l = Lookup::new(q.view());
            let se = Slots::encode(e.view());
            assert_eq!(l.dot(Slots::of(&se)).to_bits(), dot(e.view(), q.view()).to_bits());
            let (c1, c2) = (l.cosine_distance(Slots::of(&se)), cosine_distance(e.view(), q.view()));
            assert!(c1.to_bits() == c2.to_bits() || (c1.is_nan() && c2.is_nan()));
        }
        let empty = Sparse { dim: 3, indices: vec![], values: vec![] };
        assert_eq!(Lookup::new(empty.view()).dot(empty.view()), 0.0);
        // the largest index a sparsevec may hold survives the trip
        let big = Sparse { dim: MAX_DIM as i32, indices: vec![0, MAX_DIM as i32 - 1], values: vec![1.0, -2.0] };
        let s = Slots::encode(big.view());
        assert_eq!(Slots::new(&s).unwrap().to_sparse(big.dim), big);
        assert!(Slots::new(&s[..4]).is_none());
        assert!(Slots::new(&[]).is_none());
    }

    #[test]
    fn distances_follow_pgvector() {
        let (a, b) = (sv("{1:1,3:2,5:3}/6"), sv("{2:4,3:1,6:-1}/6"));
        let (a, b) = (a.view(), b.view());
        let dense = |v: View<'_>| v.to_dense();
        let (da, db) = (dense(a), dense(b));
        assert_eq!(l2_squared(a, b), 1.0 + 16.0 + 1.0 + 9.0 + 1.0);
        assert!((l2_squared(a, b) - crate::kernels::scalar::l2_squared(&da, &db)).abs() < 1e-6);
        assert_eq!(dot(a, b), 2.0);
        assert_eq!(l1(a, b), crate::kernels::scalar::l1(&da, &db));
        assert!((cosine_distance(a, a)).abs() < 1e-7);
        assert!(cosine_distance(a, sv("{}/6").view()).is_nan());
        assert_eq!(norm(sv("{1:3,2:4}/2").view()), 5.0);
        assert!(norm(sv("{}/2").view()).is_sign_positive());
        assert_eq!(format(l2_normalize(sv("{1:3,2:4}/2").view()).unwrap().view()), "{1:0.6,2:0.8}/2");
    }

    #[test]
    fn dense_conversions_and_order() {
        let v = from_dense(&[0.0, 1.5, 0.0, -2.0], -1).unwrap();
        assert_eq!(format(v.view()), "{2:1.5,4:-2}/4");
        assert_eq!(v.to_dense(), vec![0.0, 1.5, 0.0, -2.0]);
        assert_eq!(from_dense(&[0.0, f32::NAN], -1), Err(VectorError::NaN));
        assert_eq!(from_dense(&[], -1), Err(VectorError::NoDimensions));
        // the order of the dense forms, then the dimension count
        let c = |x: &str, y: &str| compare(sv(x).view(), sv(y).view());
        assert_eq!(c("{1:1}/2", "{2:1}/2"), Ordering::Greater);
        assert_eq!(c("{1:-1}/2", "{2:1}/2"), Ordering::Less);
        assert_eq!(c("{1:1}/2", "{1:1}/2"), Ordering::Equal);
        assert_eq!(c("{1:1}/2", "{1:1}/3"), Ordering::Less);
        assert_eq!(c("{1:1}/2", "{1:1,2:-1}/2"), Ordering::Greater);
    }
}
