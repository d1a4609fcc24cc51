//! Column-wise layout of a compressed page's payload (format version 6,
//! blob layout byte 1). Pure: splits each version's row data into its
//! column values and lays the values of one column side by side before the
//! codec sees them, and puts rows back together byte for byte.
//!
//! Values of one column look alike (ids that count up, timestamps seconds
//! apart, a handful of statuses), so LZ4 and zstd find far more to share
//! column by column than row by row; integer columns whose values move in
//! small steps are stored as varint deltas. Splitting needs the column
//! layout (`attlen`, `attalign`), which never changes for a column without a
//! table rewrite. A page whose rows do not split cleanly, or do not come back
//! identical, is written row-wise instead (the encoder checks every row).
//!
//! ```text
//!  raw = rows section | column 0 | column 1 | ... | column m-1     (m = most attributes of a row)
//!  rows section, per version: natts u16 (bit 15: has a null bitmap) | prefix_len u8 | prefix
//!        prefix = bytes 23 .. t_hoff of the tuple (null bitmap, padding)
//!  column c: kind u8 | len u32 | values of the versions that have column c not null, in order
//!        kind 0: the values as stored (fixed width, or varlena / cstring with their own length)
//!        kind 1: byval integers of attlen 1, 2, 4 or 8: zigzag varint of the difference
//!                from the previous value (the first from 0), wrapping at the width
//! ```
//!
//! Row data is laid out as heap's `heap_fill_tuple` does: a value is
//! aligned to its `attalign` (from the 8-aligned data start), except
//! varlenas with a one-byte header (short or external), which are not;
//! padding is zero.

pub use super::column_attr::Attr;
pub(super) use super::column_attr::varlena_len;

pub(super) const KIND_RAW: u8 = 0;
pub(super) const KIND_DELTA: u8 = 1;
/// A dictionary and a code per value (blob layout 3; see [`super::column_dict`]).
pub(super) const KIND_DICT: u8 = 2;
pub(super) const HAS_NULLS: u16 = 0x8000;
use strata_base::page_layout::HEAP_TUPLE_HEADER_SIZE as TUPLE_HEADER_SIZE;

use super::column_dict::Dict;

fn align(off: usize, a: u8) -> usize {
    let a = a.max(1) as usize;
    (off + a - 1) & !(a - 1)
}

/// Splits a version's data at its columns, pushing each non-null value to
/// `columns[c]`; false when the data does not follow the layout exactly as
/// [`place`] would rebuild it (values where it would put them, zero
/// padding, nothing left over), so that every split row comes back intact.
fn split<'a>(
    attrs: &[Attr],
    natts: usize,
    nulls: Option<&[u8]>,
    data: &'a [u8],
    columns: &mut [Vec<&'a [u8]>],
) -> bool {
    let mut off = 0usize;
    for (c, a) in attrs.iter().enumerate().take(natts) {
        if nulls.is_some_and(|bits| bits[c / 8] & (1 << (c % 8)) == 0) {
            continue;
        }
        let start = match a.len {
            -1 if data.get(off).is_some_and(|b| *b != 0) => off, // a one-byte header here
            _ => align(off, a.align),
        };
        let Some(rest) = data.get(start..) else {
            return false;
        };
        let len = match a.len {
            l if l > 0 => Some(l as usize),
            -1 => varlena_len(rest).filter(|_| rest[0] & 0x01 == 0x01 || start == align(off, a.align)),
            -2 => rest.iter().position(|b| *b == 0).map(|p| p + 1),
            _ => None,
        };
        let Some(v) = len.and_then(|len| rest.get(..len)) else {
            return false;
        };
        // place() puts a value with a one-byte varlena header right after
        // the previous one, everything else aligned, with zero padding
        let one_byte_header = a.len == -1 && v[0] & 0x01 == 0x01;
        let rebuilt = if one_byte_header { off } else { align(off, a.align) };
        if rebuilt != start || data[off..start].iter().any(|b| *b != 0) {
            return false;
        }
        columns[c].push(v);
        off = start + v.len();
    }
    off == data.len()
}

/// Appends value `v` of a column laid out as `a` to row data that starts at
/// `data[base]`, as heap lays it out (alignment padding is zero).
#[inline]
fn place(data: &mut Vec<u8>, base: usize, a: Attr, v: &[u8]) {
    let one_byte_header = a.len == -1 && v.first().is_some_and(|b| b & 0x01 == 0x01);
    if !one_byte_header {
        let to = base + align(data.len() - base, a.align);
        while data.len() < to {
            data.push(0); // at most 7 bytes
        }
    }
    // the common widths as fixed-size copies (a call to memcpy per value
    // was a tenth of a scan)
    match v.len() {
        8 => data.extend_from_slice(&<[u8; 8]>::try_from(v).expect("8 bytes")),
        4 => data.extend_from_slice(&<[u8; 4]>::try_from(v).expect("4 bytes")),
        _ => data.extend_from_slice(v),
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

pub(super) fn read_le(v: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..v.len()].copy_from_slice(v);
    u64::from_le_bytes(w)
}

pub(super) fn sign_extend(v: u64, width: usize) -> i64 {
    let shift = 64 - 8 * width as u32;
    ((v << shift) as i64) >> shift
}

/// Varint deltas of a byval integer column (None: not such a column).
fn delta_encode(a: Attr, values: &[&[u8]]) -> Option<Vec<u8>> {
    let width = a.len as usize;
    if !a.byval || !matches!(width, 1 | 2 | 4 | 8) {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() * 2);
    let mut prev = 0i64;
    for v in values {
        let x = sign_extend(read_le(v), width);
        let d = x.wrapping_sub(prev);
        put_varint(&mut out, ((d << 1) ^ (d >> 63)) as u64);
        prev = x;
    }
    Some(out)
}

/// The column-wise raw payload of versions (tuple bytes each, header
/// included); None when a version does not follow `attrs` or would not
/// come back identical. With `dictionaries` (blob layout 3) a column of few
/// distinct values may be stored as a dictionary (kind 2) when that is the
/// smallest.
pub fn encode(attrs: &[Attr], tuples: &[&[u8]], dictionaries: bool) -> Option<Vec<u8>> {
    let mut rows = Vec::with_capacity(tuples.len() * 4);
    let mut columns: Vec<Vec<&[u8]>> = vec![Vec::with_capacity(tuples.len()); attrs.len()];
    let mut most = 0usize;
    for t in tuples {
        if t.len() < TUPLE_HEADER_SIZE {
            return None;
        }
        let (mask2, mask, hoff) = (
            u16::from_le_bytes([t[18], t[19]]),
            u16::from_le_bytes([t[20], t[21]]),
            t[22] as usize,
        );
        let natts = (mask2 & 0x07FF) as usize;
        let has_nulls = mask & 0x0001 != 0;
        if natts > attrs.len() || hoff < TUPLE_HEADER_SIZE || hoff > t.len() || hoff - TUPLE_HEADER_SIZE > 255 {
            return None;
        }
        let prefix = &t[TUPLE_HEADER_SIZE..hoff];
        let nulls = has_nulls.then_some(prefix);
        if nulls.is_some_and(|b| b.len() < natts.div_ceil(8)) {
            return None;
        }
        if !split(attrs, natts, nulls, &t[hoff..], &mut columns) {
            return None;
        }
        most = most.max(natts);
        rows.extend_from_slice(&(natts as u16 | if has_nulls { HAS_NULLS } else { 0 }).to_le_bytes());
        rows.push(prefix.len() as u8);
        rows.extend_from_slice(prefix);
    }
    let mut raw = rows;
    for (c, values) in columns.iter().enumerate().take(most) {
        let plain: usize = values.iter().map(|v| v.len()).sum();
        let (mut kind, mut bytes) = match delta_encode(attrs[c], values) {
            Some(d) if d.len() < plain => (KIND_DELTA, d),
            _ => (KIND_RAW, values.concat()),
        };
        if dictionaries {
            if let Some(d) = super::column_dict::encode(values, bytes.len().min(plain)) {
                (kind, bytes) = (KIND_DICT, d);
            }
        }
        raw.push(kind);
        raw.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        raw.extend_from_slice(&bytes);
    }
    Some(raw)
}

/// A version's entry in the rows section: its attribute count, whether it
/// has a null bitmap, and its prefix (null bitmap, padding).
struct RowHead<'a> {
    natts: usize,
    has_nulls: bool,
    prefix: &'a [u8],
}

impl RowHead<'_> {
    fn is_null(&self, c: usize) -> bool {
        self.has_nulls && self.prefix[c / 8] & (1 << (c % 8)) == 0
    }
}

/// The rows section's `n` entries, and where the columns start.
fn row_heads<'a>(attrs: &[Attr], raw: &'a [u8], n: usize) -> Result<(Vec<RowHead<'a>>, usize), String> {
    let mut at = 0usize;
    let mut rows = Vec::with_capacity(n);
    for _ in 0..n {
        rows.push(row_head_at(attrs, raw, &mut at)?);
    }
    Ok((rows, at))
}

/// The rows section's entry at `*at`, which moves past it.
fn row_head_at<'a>(attrs: &[Attr], raw: &'a [u8], at: &mut usize) -> Result<RowHead<'a>, String> {
    let bad = |m: &str| Err(format!("column-wise payload: {m}"));
    let Some(head) = raw.get(*at..*at + 3) else {
        return bad("rows section truncated");
    };
    let natts_flags = u16::from_le_bytes([head[0], head[1]]);
    let plen = head[2] as usize;
    let Some(prefix) = raw.get(*at + 3..*at + 3 + plen) else {
        return bad("rows section truncated");
    };
    let natts = (natts_flags & !HAS_NULLS) as usize;
    let has_nulls = natts_flags & HAS_NULLS != 0;
    if natts > attrs.len() || (has_nulls && plen < natts.div_ceil(8)) {
        return bad("a row has more attributes than the table");
    }
    *at += 3 + plen;
    Ok(RowHead { natts, has_nulls, prefix })
}

/// The column section at `at`: its kind, its values, and where the next
/// one starts.
pub(super) fn column_at(raw: &[u8], at: usize) -> Result<(u8, &[u8], usize), String> {
    let bad = |m: &str| Err(format!("column-wise payload: {m}"));
    let Some(head) = raw.get(at..at + 5) else {
        return bad("column section truncated");
    };
    let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let Some(body) = raw.get(at + 5..at + 5 + len) else {
        return bad("column section truncated");
    };
    if head[0] > KIND_DICT {
        return bad("unknown column kind");
    }
    Ok((head[0], body, at + 5 + len))
}

/// The rests (tuple bytes after the fixed header) of `n` versions from a
/// column-wise raw payload: one buffer, and `(start, len)` of each rest.
pub fn decode(attrs: &[Attr], raw: &[u8], n: usize) -> Result<(Vec<u8>, Vec<(usize, usize)>), String> {
    let bad = |m: &str| Err(format!("column-wise payload: {m}"));
    let (rows, mut at) = row_heads(attrs, raw, n)?;
    // columns: a cursor per column
    let most = rows.iter().map(|r| r.natts).max().unwrap_or(0);
    let mut cols: Vec<(u8, &[u8], usize, i64)> = Vec::with_capacity(most);
    let mut dicts: Vec<Option<Dict>> = Vec::with_capacity(most);
    // (`attrs[c]` only for a dictionary column: a payload with more
    // columns than the table is an error there, not here)
    #[allow(clippy::needless_range_loop)]
    for c in 0..most {
        let (kind, body, next) = column_at(raw, at)?;
        cols.push((kind, body, 0, 0));
        dicts.push(if kind == KIND_DICT { Some(Dict::parse(attrs[c], body)?) } else { None });
        at = next;
    }
    if at != raw.len() {
        return bad("bytes after the last column");
    }
    // room for every row without growing: values, prefixes, padding, and
    // delta values widened back to 8 bytes
    let mut out = Vec::with_capacity(raw.len() + n * (most * 15 + 8));
    let mut spans = Vec::with_capacity(n);
    for row in rows {
        let start = out.len();
        out.extend_from_slice(row.prefix);
        let base = out.len();
        for c in 0..row.natts {
            if row.is_null(c) {
                continue;
            }
            let a = attrs[c];
            let (kind, body, pos, prev) = &mut cols[c];
            if let Some(d) = &dicts[c] {
                let Some(v) = d.value(*pos) else {
                    return bad("dictionary column truncated");
                };
                *pos += 1;
                place(&mut out, base, a, v);
                continue;
            }
            if *kind == KIND_DELTA {
                let width = a.len as usize;
                let Some(z) = get_varint(body, pos) else {
                    return bad("delta column truncated");
                };
                let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
                let x = prev.wrapping_add(d);
                *prev = x;
                place(&mut out, base, a, &x.to_le_bytes()[..width]);
                continue;
            }
            let len = match a.len {
                l if l > 0 => l as usize,
                -1 => match body.get(*pos..).and_then(varlena_len) {
                    Some(l) => l,
                    None => return bad("bad varlena"),
                },
                -2 => match body.get(*pos..).and_then(|b| b.iter().position(|x| *x == 0)) {
                    Some(p) => p + 1,
                    None => return bad("bad cstring"),
                },
                _ => return bad("bad attlen"),
            };
            if *pos + len > body.len() {
                return bad("column truncated");
            }
            let v = &body[*pos..*pos + len];
            *pos += len;
            place(&mut out, base, a, v);
        }
        spans.push((start, out.len() - start));
    }
    for (c, (_, body, pos, _)) in cols.iter().enumerate() {
        let end = dicts[c].as_ref().map_or(body.len(), |d| d.len());
        if *pos != end {
            return bad(&format!("column {c} has values left over"));
        }
    }
    Ok((out, spans))
}

/// The rest of version `target` (0-based) alone from a column-wise raw
/// payload of `n` versions: counts the values of the versions before it in
/// each column and reads only its own (a point lookup; [`decode`] rebuilds
/// every row).
pub fn decode_one(attrs: &[Attr], raw: &[u8], n: usize, target: usize) -> Result<Vec<u8>, String> {
    let bad = |m: &str| Err(format!("column-wise payload: {m}"));
    if target >= n {
        return bad("no such version");
    }
    // one pass over the rows section, keeping nothing but what the target
    // row needs (a point lookup's cost was mostly this section's parse)
    // (rows without nulls, the usual case, are counted by their attribute
    // count and spread over the columns once at the end)
    let mut at = 0usize;
    let mut before = vec![0usize; attrs.len()];
    let mut whole = vec![0usize; attrs.len() + 1];
    let mut most = 0;
    let mut mine = None;
    for i in 0..n {
        if i != target {
            let Some(head) = raw.get(at..at + 3) else {
                return bad("rows section truncated");
            };
            let flags = u16::from_le_bytes([head[0], head[1]]);
            let natts = (flags & !HAS_NULLS) as usize;
            if flags & HAS_NULLS == 0 && natts <= attrs.len() {
                at += 3 + head[2] as usize;
                most = most.max(natts);
                whole[natts] += (i < target) as usize;
                continue;
            }
        }
        let row = row_head_at(attrs, raw, &mut at)?;
        most = most.max(row.natts);
        if i < target {
            for (c, count) in before.iter_mut().enumerate().take(row.natts) {
                *count += !row.is_null(c) as usize;
            }
        } else if i == target {
            mine = Some(row);
        }
    }
    if at > raw.len() {
        return bad("rows section truncated");
    }
    let mut rows_with = 0;
    for c in (0..attrs.len()).rev() {
        rows_with += whole[c + 1];
        before[c] += rows_with;
    }
    let mine = mine.expect("target < n");
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(mine.prefix);
    let base = out.len();
    for c in 0..most {
        let (kind, body, next) = column_at(raw, at)?;
        at = next;
        if c >= mine.natts || mine.is_null(c) {
            continue;
        }
        let a = attrs[c];
        let skip = before[c];
        if kind == KIND_DICT {
            let Some(v) = Dict::parse(a, body)?.value(skip) else {
                return bad("dictionary column truncated");
            };
            place(&mut out, base, a, v);
            continue;
        }
        if kind == KIND_DELTA {
            let (mut pos, mut x) = (0usize, 0i64);
            for _ in 0..=skip {
                let Some(z) = get_varint(body, &mut pos) else {
                    return bad("delta column truncated");
                };
                x = x.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
            place(&mut out, base, a, &x.to_le_bytes()[..a.len as usize]);
            continue;
        }
        let value_len = |b: &[u8]| -> Option<usize> {
            match a.len {
                l if l > 0 => Some(l as usize),
                -1 => varlena_len(b),
                -2 => b.iter().position(|x| *x == 0).map(|p| p + 1),
                _ => None,
            }
        };
        let mut pos = if a.len > 0 { skip * a.len as usize } else { 0 };
        if a.len <= 0 {
            for _ in 0..skip {
                match body.get(pos..).and_then(value_len) {
                    Some(l) => pos += l,
                    None => return bad("bad value"),
                }
            }
        }
        let Some(v) = body.get(pos..).and_then(|b| value_len(b).and_then(|l| b.get(..l))) else {
            return bad("column truncated");
        };
        place(&mut out, base, a, v);
    }
    Ok(out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    const INT8: Attr = Attr { len: 8, align: 8, byval: true };
    const INT4: Attr = Attr { len: 4, align: 4, byval: true };
    const TEXT: Attr = Attr { len: -1, align: 4, byval: false };
    const BOOL: Attr = Attr { len: 1, align: 1, byval: true };

    /// A heap tuple of `values` (None = null) laid out as heap_fill_tuple does.
    pub(in crate) fn tuple(attrs: &[Attr], values: &[Option<Vec<u8>>]) -> Vec<u8> {
        let natts = values.len();
        let has_nulls = values.iter().any(|v| v.is_none());
        let bitmap_len = if has_nulls { natts.div_ceil(8) } else { 0 };
        let hoff = align(TUPLE_HEADER_SIZE + bitmap_len, 8);
        let mut t = vec![0u8; hoff];
        t[18..20].copy_from_slice(&(natts as u16).to_le_bytes());
        t[20..22].copy_from_slice(&(if has_nulls { 1u16 } else { 0 } | 0x0002).to_le_bytes());
        t[22] = hoff as u8;
        for (c, v) in values.iter().enumerate() {
            if v.is_some() && has_nulls {
                t[TUPLE_HEADER_SIZE + c / 8] |= 1 << (c % 8);
            }
        }
        let present: Vec<(usize, &[u8])> =
            values.iter().enumerate().filter_map(|(c, v)| v.as_deref().map(|v| (c, v))).collect();
        let base = t.len();
        for (c, v) in present {
            place(&mut t, base, attrs[c], v);
        }
        t
    }

    pub(in crate) fn short_text(s: &str) -> Vec<u8> {
        let mut v = vec![((s.len() + 1) << 1 | 1) as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    pub(in crate) fn long_text(s: &str) -> Vec<u8> {
        let mut v = (((s.len() + 4) as u32) << 2).to_le_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    #[test]
    fn rows_come_back_byte_for_byte() {
        let attrs = [INT8, INT4, TEXT, BOOL, INT8, TEXT];
        let tuples: Vec<Vec<u8>> = (0..300i64)
            .map(|i| {
                tuple(
                    &attrs,
                    &[
                        Some((1000 + i).to_le_bytes().to_vec()),
                        Some(((i * 7919) % 1000) as i32).map(|x| x.to_le_bytes().to_vec()),
                        (i % 5 != 0).then(|| short_text(&format!("user{i}@example.com"))),
                        Some(vec![(i % 2) as u8]),
                        Some((1_700_000_000_000_000 + i * 3_000_000).to_le_bytes().to_vec()),
                        Some(if i % 50 == 0 { long_text(&"x".repeat(200)) } else { short_text("open") }),
                    ],
                )
            })
            .collect();
        let refs: Vec<&[u8]> = tuples.iter().map(|t| t.as_slice()).collect();
        let mut sizes = Vec::new();
        for dictionaries in [false, true] {
            let raw = encode(&attrs, &refs, dictionaries).expect("splits");
            let (buf, spans) = decode(&attrs, &raw, refs.len()).unwrap();
            for (i, (t, (s, l))) in tuples.iter().zip(&spans).enumerate() {
                assert_eq!(&buf[*s..s + l], &t[TUPLE_HEADER_SIZE..]);
                assert_eq!(decode_one(&attrs, &raw, refs.len(), i).unwrap(), &t[TUPLE_HEADER_SIZE..]);
            }
            // counting ids and steady timestamps take a byte or three each
            let plain: usize = tuples.iter().map(|t| t.len() - TUPLE_HEADER_SIZE).sum();
            assert!(raw.len() * 10 < plain * 8, "{} vs {plain}", raw.len());
            sizes.push(raw.len());
        }
        // the last column ("open", a long text every 50th row) as a
        // dictionary: 7 distinct values, a byte per row instead of five
        assert!(sizes[1] + 4 * 290 < sizes[0], "{sizes:?}");
    }

    #[test]
    fn rows_with_fewer_attributes_and_damage() {
        let attrs = [INT4, TEXT, INT8];
        let old = tuple(&attrs[..2], &[Some(5i32.to_le_bytes().to_vec()), Some(short_text("a"))]);
        let new = tuple(&attrs, &[Some(6i32.to_le_bytes().to_vec()), None, Some(9i64.to_le_bytes().to_vec())]);
        let refs = [old.as_slice(), new.as_slice()];
        let raw = encode(&attrs, &refs, false).unwrap();
        let (buf, spans) = decode(&attrs, &raw, 2).unwrap();
        assert_eq!(&buf[spans[0].0..spans[0].0 + spans[0].1], &old[TUPLE_HEADER_SIZE..]);
        assert_eq!(&buf[spans[1].0..spans[1].0 + spans[1].1], &new[TUPLE_HEADER_SIZE..]);
        assert_eq!(decode_one(&attrs, &raw, 2, 0).unwrap(), &old[TUPLE_HEADER_SIZE..]);
        assert_eq!(decode_one(&attrs, &raw, 2, 1).unwrap(), &new[TUPLE_HEADER_SIZE..]);
        assert!(decode_one(&attrs, &raw, 2, 2).is_err());
        // data that does not follow the layout is refused (row-wise instead)
        let mut odd = new.clone();
        odd.push(0);
        assert!(encode(&attrs, &[odd.as_slice()], false).is_none());
        // a damaged payload is an error, not a panic
        for cut in 0..raw.len() {
            let _ = decode(&attrs, &raw[..cut], 2);
            let _ = decode_one(&attrs, &raw[..cut], 2, 1);
        }
        assert!(decode(&attrs, &raw[..raw.len() - 1], 2).is_err());
    }
}
