//! Dictionary-coded column sections (blob layout 3, format version 9). Pure.
//!
//! A column whose values on a page are few — a status, a country, a flag,
//! padding that is the same in every row — is stored as its distinct values
//! once and a one-byte code per row instead of every value:
//!
//! ```text
//!  kind 2 body: ndict u16 | value 0 | value 1 | ... | value ndict-1 | code u8 x (rows with the column not null)
//!               values as in a kind 0 body (fixed width; varlena / cstring carry their length),
//!               in order of first appearance; code i names value code[i] (< ndict <= 256)
//! ```
//!
//! Besides packing tighter before the codec sees the section, it makes a
//! page cheap to decode: LZ4 rebuilds long repeats (the same 85-byte filler
//! in every row) a byte at a time, and a point lookup used to spend most of
//! its time there; a dictionary section decompresses to a few hundred bytes.
//! The encoder only picks it when it is smaller than the plain values.

use super::column_attr::{varlena_len, Attr};
use std::collections::HashMap;

/// Most distinct values a dictionary holds (codes are one byte).
pub const MAX_ENTRIES: usize = 256;

/// The kind 2 body of a column's non-null `values`; None when they have
/// more than [`MAX_ENTRIES`] distinct values or the dictionary would not
/// be smaller than the values themselves (`plain` bytes).
pub fn encode(values: &[&[u8]], plain: usize) -> Option<Vec<u8>> {
    // a dictionary needs at least one repeat to pay for its count
    if values.len() < 2 {
        return None;
    }
    let mut index: HashMap<&[u8], u8> = HashMap::with_capacity(16);
    let mut entries: Vec<&[u8]> = Vec::with_capacity(16);
    let mut entry_bytes = 0usize;
    let mut codes = Vec::with_capacity(values.len());
    for v in values {
        let code = match index.get(v) {
            Some(&c) => c,
            None => {
                if entries.len() == MAX_ENTRIES {
                    return None;
                }
                let c = entries.len() as u8;
                index.insert(v, c);
                entries.push(v);
                entry_bytes += v.len();
                // give up as soon as it cannot win
                if 2 + entry_bytes + values.len() >= plain {
                    return None;
                }
                c
            }
        };
        codes.push(code);
    }
    let mut out = Vec::with_capacity(2 + entry_bytes + codes.len());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for e in &entries {
        out.extend_from_slice(e);
    }
    out.extend_from_slice(&codes);
    Some(out)
}

/// A parsed kind 2 body: where each value is and the codes.
pub struct Dict<'a> {
    /// `(offset, length)` of each value in the body.
    pub entries: Vec<(usize, usize)>,
    pub body: &'a [u8],
    /// One per row that has the column not null, in row order.
    pub codes: &'a [u8],
}

impl<'a> Dict<'a> {
    /// Reads a kind 2 body of column layout `a`; an error names what is
    /// wrong (a code past the dictionary is caught here too).
    pub fn parse(a: Attr, body: &'a [u8]) -> Result<Dict<'a>, String> {
        let bad = |m: &str| Err(format!("dictionary column: {m}"));
        let Some(head) = body.get(..2) else {
            return bad("truncated");
        };
        let n = u16::from_le_bytes([head[0], head[1]]) as usize;
        if n == 0 || n > MAX_ENTRIES {
            return bad("bad entry count");
        }
        let mut entries = Vec::with_capacity(n);
        let mut at = 2usize;
        for _ in 0..n {
            let rest = &body[at.min(body.len())..];
            let len = match a.len {
                l if l > 0 => Some(l as usize),
                -1 => varlena_len(rest).filter(|l| *l > 0),
                -2 => rest.iter().position(|b| *b == 0).map(|p| p + 1),
                _ => None,
            };
            match len {
                Some(l) if l <= rest.len() => {
                    entries.push((at, l));
                    at += l;
                }
                _ => return bad("entry truncated"),
            }
        }
        let codes = &body[at..];
        if codes.iter().any(|&c| c as usize >= n) {
            return bad("code past the dictionary");
        }
        Ok(Dict { entries, body, codes })
    }

    /// Value `i` of the column (the i-th row that has it not null).
    #[inline]
    pub fn value(&self, i: usize) -> Option<&'a [u8]> {
        let &(at, len) = self.entries.get(*self.codes.get(i)? as usize)?;
        Some(&self.body[at..at + len])
    }

    /// Values the section holds.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: Attr = Attr { len: -1, align: 4, byval: false };
    const CSTRING: Attr = Attr { len: -2, align: 1, byval: false };

    fn short(s: &str) -> Vec<u8> {
        let mut v = vec![((s.len() + 1) << 1 | 1) as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn few_values_round_trip() {
        let words = [short("new"), short("open"), short("done")];
        let values: Vec<&[u8]> = (0..200).map(|i| words[i % 3].as_slice()).collect();
        let plain: usize = values.iter().map(|v| v.len()).sum();
        let body = encode(&values, plain).expect("three values repeat");
        assert_eq!(body.len(), 2 + 4 + 5 + 5 + 200);
        let d = Dict::parse(TEXT, &body).unwrap();
        assert_eq!(d.len(), 200);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(d.value(i), Some(*v));
        }
        assert_eq!(d.value(200), None);
    }

    #[test]
    fn distinct_or_short_values_stay_plain() {
        let distinct: Vec<Vec<u8>> = (0..300).map(|i| short(&format!("v{i}"))).collect();
        let values: Vec<&[u8]> = distinct.iter().map(|v| v.as_slice()).collect();
        let plain: usize = values.iter().map(|v| v.len()).sum();
        assert!(encode(&values, plain).is_none(), "more than 256 distinct");
        // one-byte values: a code per row is no smaller
        let bytes: Vec<[u8; 1]> = (0..100).map(|i| [i as u8 % 2]).collect();
        let values: Vec<&[u8]> = bytes.iter().map(|v| v.as_slice()).collect();
        assert!(encode(&values, 100).is_none());
        assert!(encode(&values[..1], 1).is_none());
    }

    #[test]
    fn damage_is_an_error() {
        let a = b"abc\0".to_vec();
        let b = b"de\0".to_vec();
        let values: Vec<&[u8]> = (0..50).map(|i| if i % 2 == 0 { a.as_slice() } else { b.as_slice() }).collect();
        let body = encode(&values, 175).unwrap();
        assert_eq!(Dict::parse(CSTRING, &body).unwrap().value(1), Some(b.as_slice()));
        for cut in 0..body.len() {
            // truncated bodies either fail or hold fewer codes, never panic
            if let Ok(d) = Dict::parse(CSTRING, &body[..cut]) {
                assert!(d.len() < 50);
            }
        }
        let mut past = body.clone();
        *past.last_mut().unwrap() = 7;
        assert!(Dict::parse(CSTRING, &past).is_err());
        let mut zero = body.clone();
        zero[0] = 0;
        assert!(Dict::parse(CSTRING, &zero).is_err());
    }
}
