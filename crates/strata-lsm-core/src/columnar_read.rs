//! Column-at-a-time reading of a column-wise payload (see [`super::columnar`]
//! for the layout). Pure: no Postgres calls.
//!
//! A sequential scan does not need rows rebuilt byte for byte: the executor
//! asks a slot for its first k columns and reads `Datum`s. [`Layout::parse`]
//! reads the rows section and where each column's section is (cheap, once
//! per page); [`Layout::decode_column`] then turns one column into a
//! [`Column`] — one cell per version, in version order — only when some row
//! of the page is asked for that column. A query that reads two columns of
//! six decodes two.
//!
//! A cell is what `fetch_att` would return from a heap tuple:
//!
//! ```text
//!  tag VALUE  word = the Datum of a by-value column (sign-extended like
//!             CharGetDatum / Int16GetDatum / Int32GetDatum)
//!  tag NULL   the row's null bitmap says null
//!  tag RAW    word = byte offset of the value inside the raw payload
//!             (varlenas with a 1-byte header, cstrings, 1-aligned fixed
//!             values, and values already at their alignment)
//!  tag SIDE   word = byte offset inside the column's side buffer, 8-aligned:
//!             a value that would be misaligned in the raw payload
//!             (4-byte varlena headers, int/double-aligned fixed types)
//!  tag ABSENT the row has fewer attributes than this column (added later:
//!             the caller reads the column's missing value)
//! ```
//!
//! Offsets into the raw payload assume the payload starts 8-aligned (the
//! caller checks).

use super::columnar::{
    column_at, get_varint, read_le, sign_extend, varlena_len, Attr, HAS_NULLS, KIND_DELTA, KIND_DICT,
    KIND_RAW,
};
use super::column_dict::Dict;

pub const TAG_VALUE: u8 = 0;
pub const TAG_NULL: u8 = 1;
pub const TAG_RAW: u8 = 2;
pub const TAG_SIDE: u8 = 3;
pub const TAG_ABSENT: u8 = 4;

/// One version's entry in the rows section.
#[derive(Clone, Copy, Debug, Default)]
struct Row {
    natts: u16,
    has_nulls: bool,
    /// Offset of its prefix (null bitmap first) in the raw payload.
    prefix_at: u32,
}

impl Row {
    /// The cell tag of column `c` when this row has no value there:
    /// ABSENT (fewer attributes) or NULL (its null bitmap says so).
    #[inline]
    fn missing(&self, raw: &[u8], c: usize) -> Option<u8> {
        if c >= self.natts as usize {
            return Some(TAG_ABSENT);
        }
        let null = self.has_nulls && raw[self.prefix_at as usize + c / 8] & (1 << (c % 8)) == 0;
        null.then_some(TAG_NULL)
    }
}

/// One column's section: kind and body extent in the raw payload.
#[derive(Clone, Copy, Debug, Default)]
struct Section {
    kind: u8,
    start: u32,
    len: u32,
}

/// The rows section and column sections of one payload (buffers reused
/// from page to page).
#[derive(Default)]
pub struct Layout {
    rows: Vec<Row>,
    sections: Vec<Section>,
    /// Whether `sections[c]` has been found (a payload whose column
    /// sections are decompressed when first read: [`Layout::locate`]).
    located: Vec<bool>,
}

/// One decoded column of a page: a cell per version (see the module comment).
#[derive(Default)]
pub struct Column {
    pub tags: Vec<u8>,
    pub words: Vec<u64>,
    /// Misaligned values copied to 8-aligned places (as u64 words to keep
    /// the buffer itself 8-aligned).
    pub side: Vec<u64>,
}

impl Column {
    /// Start of the side buffer.
    pub fn side_ptr(&self) -> *const u8 {
        self.side.as_ptr() as *const u8
    }

    fn push_side(&mut self, v: &[u8]) -> u64 {
        let at = self.side.len() * 8;
        self.side.resize(self.side.len() + v.len().div_ceil(8), 0);
        // SAFETY: the side buffer was just grown by at least `v.len()` bytes
        // past byte `at`.
        let dst = unsafe {
            std::slice::from_raw_parts_mut((self.side.as_mut_ptr() as *mut u8).add(at), v.len())
        };
        dst.copy_from_slice(v);
        at as u64
    }
}

fn bad<T>(m: &str) -> Result<T, String> {
    Err(format!("column-wise payload: {m}"))
}

/// The Datum `fetch_att` makes of a by-value integer of `width` bytes.
fn byval_datum(v: i64, width: usize) -> u64 {
    if width == 1 && (-1i8 as std::ffi::c_char as i64) > 0 {
        return v as u8 as u64; // unsigned char platforms
    }
    v as u64
}

impl Layout {
    /// Reads the rows section of `raw` (`n` versions) and locates every
    /// column section.
    pub fn parse(&mut self, attrs: &[Attr], raw: &[u8], n: usize) -> Result<(), String> {
        let (mut at, most) = self.parse_rows(attrs, raw, n)?;
        for _ in 0..most {
            let (kind, body, next) = column_at(raw, at)?;
            self.sections.push(Section {
                kind,
                start: (at + 5) as u32,
                len: body.len() as u32,
            });
            self.located.push(true);
            at = next;
        }
        if at != raw.len() {
            return bad("bytes after the last column");
        }
        Ok(())
    }

    /// Reads the rows section alone, which must end at `end` (the column
    /// sections are found later, each by [`Layout::locate`]); the number of
    /// column sections it implies.
    pub fn parse_prefix(
        &mut self,
        attrs: &[Attr],
        raw: &[u8],
        n: usize,
        end: usize,
    ) -> Result<usize, String> {
        let (at, most) = self.parse_rows(attrs, raw, n)?;
        if at != end {
            return bad("rows section of an unexpected length");
        }
        self.sections.resize(most, Section::default());
        self.located.resize(most, false);
        Ok(most)
    }

    /// Finds column `c`'s section at `raw[at..at + len]` (its head included).
    pub fn locate(&mut self, c: usize, raw: &[u8], at: usize, len: usize) -> Result<(), String> {
        let (kind, body, next) = column_at(raw, at)?;
        if next != at + len || c >= self.sections.len() {
            return bad("column section of an unexpected length");
        }
        self.sections[c] = Section {
            kind,
            start: (at + 5) as u32,
            len: body.len() as u32,
        };
        self.located[c] = true;
        Ok(())
    }

    /// Whether column `c`'s section has been found.
    pub fn is_located(&self, c: usize) -> bool {
        self.located.get(c).copied().unwrap_or(false)
    }

    /// `(offset, length)` of the rows section, then of each column's section
    /// (head included), in a fully parsed payload of `raw_len` bytes.
    pub fn section_spans(&self, raw_len: usize) -> Vec<(usize, usize)> {
        let rows_end = self
            .sections
            .first()
            .map_or(raw_len, |s| s.start as usize - 5);
        let mut spans = vec![(0, rows_end)];
        spans.extend(
            self.sections
                .iter()
                .map(|s| (s.start as usize - 5, s.len as usize + 5)),
        );
        spans
    }

    /// Reads the rows section: where it ends, and the most attributes of a row.
    fn parse_rows(
        &mut self,
        attrs: &[Attr],
        raw: &[u8],
        n: usize,
    ) -> Result<(usize, usize), String> {
        self.rows.clear();
        self.sections.clear();
        self.located.clear();
        let mut at = 0usize;
        let mut most = 0usize;
        for _ in 0..n {
            let Some(head) = raw.get(at..at + 3) else {
                return bad("rows section truncated");
            };
            let flags = u16::from_le_bytes([head[0], head[1]]);
            let plen = head[2] as usize;
            let natts = (flags & !HAS_NULLS) as usize;
            let has_nulls = flags & HAS_NULLS != 0;
            if raw.len() < at + 3 + plen {
                return bad("rows section truncated");
            }
            if natts > attrs.len() || (has_nulls && plen < natts.div_ceil(8)) {
                return bad("a row has more attributes than the table");
            }
            self.rows.push(Row {
                natts: natts as u16,
                has_nulls,
                prefix_at: (at + 3) as u32,
            });
            most = most.max(natts);
            at += 3 + plen;
        }
        Ok((at, most))
    }

    /// Number of versions.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Number of column sections (the most attributes of a version).
    pub fn columns(&self) -> usize {
        self.sections.len()
    }

    /// Attributes stored for version `row` (0-based).
    #[inline]
    pub fn natts(&self, row: usize) -> usize {
        self.rows[row].natts as usize
    }

    /// Decodes column `c` of every version into `out`.
    pub fn decode_column(
        &self,
        attrs: &[Attr],
        raw: &[u8],
        c: usize,
        out: &mut Column,
    ) -> Result<(), String> {
        out.tags.clear();
        out.words.clear();
        out.side.clear();
        let n = self.rows.len();
        out.tags.reserve(n);
        out.words.reserve(n);
        let Some(a) = attrs.get(c).copied() else {
            return bad("no such column");
        };
        if c < self.sections.len() && !self.is_located(c) {
            return bad("column section not read");
        }
        let section = self.sections.get(c).copied().unwrap_or_default();
        let body = &raw[section.start as usize..(section.start + section.len) as usize];
        let base = section.start as usize;
        if section.kind == KIND_DICT {
            return self.decode_dict_column(a, raw, c, base, body, out);
        }
        let mut pos = 0usize;
        let mut prev = 0i64;
        for row in &self.rows {
            if let Some(tag) = row.missing(raw, c) {
                out.tags.push(tag);
                out.words.push(0);
                continue;
            }
            if section.kind == KIND_DELTA {
                let Some(z) = get_varint(body, &mut pos) else {
                    return bad("delta column truncated");
                };
                prev = prev.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
                out.tags.push(TAG_VALUE);
                out.words.push(byval_datum(prev, a.len as usize));
                continue;
            }
            debug_assert_eq!(section.kind, KIND_RAW);
            let rest = &body[pos.min(body.len())..];
            let len = match a.len {
                l if l > 0 => l as usize,
                -1 => match varlena_len(rest) {
                    Some(l) if l > 0 => l,
                    _ => return bad("bad varlena"),
                },
                -2 => match rest.iter().position(|x| *x == 0) {
                    Some(p) => p + 1,
                    None => return bad("bad cstring"),
                },
                _ => return bad("bad attlen"),
            };
            let Some(v) = rest.get(..len) else {
                return bad("column truncated");
            };
            if a.byval {
                if !matches!(len, 1 | 2 | 4 | 8) {
                    return bad("by-value column of an odd width");
                }
                out.tags.push(TAG_VALUE);
                out.words
                    .push(byval_datum(sign_extend(read_le(v), len), len));
            } else {
                let off = base + pos;
                // 1-byte varlena headers and cstrings need no alignment
                let free = a.len == -2 || (a.len == -1 && v[0] & 0x01 == 0x01);
                if free || off.is_multiple_of(a.align.max(1) as usize) {
                    out.tags.push(TAG_RAW);
                    out.words.push(off as u64);
                } else {
                    let at = out.push_side(v);
                    out.tags.push(TAG_SIDE);
                    out.words.push(at);
                }
            }
            pos += len;
        }
        if pos != body.len() {
            return bad(&format!("column {c} has values left over"));
        }
        Ok(())
    }

    /// [`Layout::decode_column`] of a dictionary section (`body`, at `base`
    /// in `raw`): each distinct value's cell is made once (a misaligned one
    /// copied to the side buffer once) and every row takes its code's.
    fn decode_dict_column(
        &self,
        a: Attr,
        raw: &[u8],
        c: usize,
        base: usize,
        body: &[u8],
        out: &mut Column,
    ) -> Result<(), String> {
        let dict = Dict::parse(a, body)?;
        let mut cells = Vec::with_capacity(dict.entries.len());
        for &(at, len) in &dict.entries {
            let v = &body[at..at + len];
            let cell = if a.byval {
                if !matches!(len, 1 | 2 | 4 | 8) {
                    return bad("by-value column of an odd width");
                }
                (TAG_VALUE, byval_datum(sign_extend(read_le(v), len), len))
            } else {
                let off = base + at;
                let free = a.len == -2 || (a.len == -1 && v[0] & 0x01 == 0x01);
                if free || off.is_multiple_of(a.align.max(1) as usize) {
                    (TAG_RAW, off as u64)
                } else {
                    (TAG_SIDE, out.push_side(v))
                }
            };
            cells.push(cell);
        }
        let mut next = 0usize;
        for row in &self.rows {
            if let Some(tag) = row.missing(raw, c) {
                out.tags.push(tag);
                out.words.push(0);
                continue;
            }
            let Some(&code) = dict.codes.get(next) else {
                return bad("dictionary column truncated");
            };
            let (tag, word) = cells[code as usize];
            out.tags.push(tag);
            out.words.push(word);
            next += 1;
        }
        if next != dict.len() {
            return bad(&format!("column {c} has values left over"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::columnar;
    use super::super::columnar::tests::{long_text, short_text, tuple};
    use super::*;

    const INT8: Attr = Attr {
        len: 8,
        align: 8,
        byval: true,
    };
    const INT4: Attr = Attr {
        len: 4,
        align: 4,
        byval: true,
    };
    const INT2: Attr = Attr {
        len: 2,
        align: 2,
        byval: true,
    };
    const TEXT: Attr = Attr {
        len: -1,
        align: 4,
        byval: false,
    };
    const INTERVAL: Attr = Attr {
        len: 16,
        align: 8,
        byval: false,
    };

    /// Every cell of every column equals the value in the rebuilt rows.
    #[test]
    fn cells_match_the_values_of_the_rows() {
        let attrs = [INT8, INT4, TEXT, INT2, INTERVAL, TEXT];
        let mut rows = Vec::new();
        for i in 0..50i64 {
            let mut vals = vec![
                Some((1000 + i).to_le_bytes().to_vec()),
                Some(((i * 7919) as i32 - 100).to_le_bytes().to_vec()),
                Some(if i % 3 == 0 {
                    long_text(&format!("long {i}"))
                } else {
                    short_text(&format!("s{i}"))
                }),
                if i % 5 == 0 {
                    None
                } else {
                    Some((-(i as i16)).to_le_bytes().to_vec())
                },
                Some([i as u8; 16].to_vec()),
                Some(short_text("x")),
            ];
            if i % 7 == 0 {
                vals.truncate(3); // written before columns 4-6 were added
            }
            rows.push(tuple(&attrs, &vals));
        }
        let refs: Vec<&[u8]> = rows.iter().map(|r| r.as_slice()).collect();
        let raw = columnar::encode(&attrs, &refs, false).expect("splits");
        let mut layout = Layout::default();
        layout.parse(&attrs, &raw, rows.len()).expect("parses");
        let mut cols: Vec<Column> = (0..attrs.len()).map(|_| Column::default()).collect();
        for (c, col) in cols.iter_mut().enumerate() {
            layout.decode_column(&attrs, &raw, c, col).expect("decodes");
        }
        for i in 0..50usize {
            let ii = i as i64;
            assert_eq!(layout.natts(i), if i % 7 == 0 { 3 } else { 6 });
            let cell = |c: usize| (cols[c].tags[i], cols[c].words[i]);
            assert_eq!(cell(0), (TAG_VALUE, (1000 + ii) as u64));
            assert_eq!(
                cell(1),
                (TAG_VALUE, ((ii * 7919) as i32 - 100) as i64 as u64)
            );
            let (tag, word) = cell(2);
            let text = match tag {
                TAG_RAW => &raw[word as usize..],
                TAG_SIDE => {
                    // SAFETY: the side buffer is `side.len()` u64 words, read
                    // as bytes while `cols` lives.
                    let side = unsafe {
                        std::slice::from_raw_parts(cols[2].side_ptr(), cols[2].side.len() * 8)
                    };
                    &side[word as usize..]
                }
                t => panic!("tag {t}"),
            };
            let want = if i % 3 == 0 {
                long_text(&format!("long {i}"))
            } else {
                short_text(&format!("s{i}"))
            };
            assert_eq!(&text[..want.len()], &want[..]);
            if tag == TAG_RAW && want[0] & 1 == 0 {
                assert_eq!(word % 4, 0, "4-byte headers stay aligned");
            }
            if i % 7 == 0 {
                assert_eq!(cell(3).0, TAG_ABSENT);
                assert_eq!(cell(4).0, TAG_ABSENT);
                continue;
            }
            if i % 5 == 0 {
                assert_eq!(cell(3).0, TAG_NULL);
            } else {
                assert_eq!(cell(3), (TAG_VALUE, -(ii) as u64));
            }
            let (tag, word) = cell(4);
            let bytes = match tag {
                TAG_RAW => {
                    assert_eq!(word % 8, 0);
                    raw[word as usize..word as usize + 16].to_vec()
                }
                TAG_SIDE => {
                    assert_eq!(word % 8, 0);
                    // SAFETY: the side buffer is `side.len()` u64 words, read
                    // as bytes while `cols` lives.
                    let side = unsafe {
                        std::slice::from_raw_parts(cols[4].side_ptr(), cols[4].side.len() * 8)
                    };
                    side[word as usize..word as usize + 16].to_vec()
                }
                t => panic!("tag {t}"),
            };
            assert_eq!(bytes, vec![i as u8; 16]);
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let attrs = [INT8, TEXT];
        let rows: Vec<Vec<u8>> = (0..10i64)
            .map(|i| {
                tuple(
                    &attrs,
                    &[Some(i.to_le_bytes().to_vec()), Some(short_text("abc"))],
                )
            })
            .collect();
        let refs: Vec<&[u8]> = rows.iter().map(|r| r.as_slice()).collect();
        let raw = columnar::encode(&attrs, &refs, false).expect("splits");
        let mut layout = Layout::default();
        assert!(layout.parse(&attrs, &raw[..raw.len() - 1], 10).is_err());
        assert!(layout.parse(&attrs, &raw, 11).is_err());
        layout.parse(&attrs, &raw, 10).expect("parses");
        let mut col = Column::default();
        let mut broken = raw.clone();
        // the text column's first length byte: claim a longer value
        let at = broken.len() - 10 * 4;
        broken[at] = (40 << 1) | 1;
        assert!(layout.decode_column(&attrs, &broken, 1, &mut col).is_err());
        layout
            .decode_column(&attrs, &raw, 1, &mut col)
            .expect("decodes");
    }

    /// The value a cell names, as bytes (a by-value one as its Datum word).
    fn cell_value(col: &Column, raw: &[u8], i: usize, a: Attr) -> (u8, Vec<u8>) {
        let (tag, word) = (col.tags[i], col.words[i]);
        let at = |b: &[u8], off: usize| {
            let len = match a.len {
                l if l > 0 => l as usize,
                _ => varlena_len(&b[off..]).unwrap(),
            };
            b[off..off + len].to_vec()
        };
        match tag {
            TAG_VALUE => (tag, word.to_le_bytes().to_vec()),
            TAG_RAW => (tag, at(raw, word as usize)),
            TAG_SIDE => {
                // SAFETY: the side buffer holds side.len() words.
                let side = unsafe { std::slice::from_raw_parts(col.side_ptr(), col.side.len() * 8) };
                (tag, at(side, word as usize))
            }
            _ => (tag, Vec::new()),
        }
    }

    /// Dictionary sections give every row the cell of its value: the same
    /// values as plain sections, misaligned ones copied aside once.
    #[test]
    fn dictionary_cells_match_plain_cells() {
        let attrs = [INT8, TEXT, INTERVAL, INT2, TEXT];
        let statuses = [short_text("new"), short_text("open"), long_text(&"x".repeat(200))];
        let rows: Vec<Vec<u8>> = (0..120i64)
            .map(|i| {
                tuple(
                    &attrs,
                    &[
                        Some((7000 + i).to_le_bytes().to_vec()),
                        (i % 5 != 0).then(|| statuses[i as usize % 3].clone()),
                        Some([(i % 2) as u8 + 1; 16].to_vec()),
                        Some(((i % 2) as i16 - 1).to_le_bytes().to_vec()),
                        Some(short_text("same in every row")),
                    ],
                )
            })
            .collect();
        let refs: Vec<&[u8]> = rows.iter().map(|r| r.as_slice()).collect();
        let plain = columnar::encode(&attrs, &refs, false).expect("splits");
        let dict = columnar::encode(&attrs, &refs, true).expect("splits");
        assert!(dict.len() < plain.len());
        let (mut lp, mut ld) = (Layout::default(), Layout::default());
        lp.parse(&attrs, &plain, rows.len()).unwrap();
        ld.parse(&attrs, &dict, rows.len()).unwrap();
        let kinds: Vec<u8> = ld.sections.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [KIND_DELTA, KIND_DICT, KIND_DICT, KIND_DELTA, KIND_DICT]);
        for (c, &a) in attrs.iter().enumerate() {
            let (mut cp, mut cd) = (Column::default(), Column::default());
            lp.decode_column(&attrs, &plain, c, &mut cp).unwrap();
            ld.decode_column(&attrs, &dict, c, &mut cd).unwrap();
            for i in 0..rows.len() {
                let (tp, vp) = cell_value(&cp, &plain, i, a);
                let (td, vd) = cell_value(&cd, &dict, i, a);
                assert_eq!(vp, vd, "column {c} row {i}");
                assert_eq!(tp == TAG_NULL, td == TAG_NULL);
            }
            if c == 2 {
                // 16-byte values, 8-aligned: at most one side copy per entry
                assert!(cd.side.len() * 8 <= 2 * 16, "{}", cd.side.len());
            }
        }
    }
}
