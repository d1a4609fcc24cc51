//! Compressed RUN_DATA pages (format version 3). Pure: builds and decodes
//! page images; no Postgres calls.
//!
//! Row versions in runs are stamped in place (xmax, infomask, cmax, t_ctid,
//! hint bits, freezing) under the page's lock, like heap tuples. So only the
//! part of a version that never changes is compressed: each version keeps an
//! uncompressed *stub* — its rowid and the 23-byte fixed `HeapTupleHeader`,
//! where every visibility check and stamp works as on an uncompressed page —
//! and the rest of every tuple (null bitmap, padding, column data) goes into
//! one zstd frame per page, in the special space, in front of the page tag:
//!
//! ```text
//!  +------------+------------------+------+------------------+--------------------------+-----+
//!  | PageHeader | lp[1] .. lp[n]   | free | stub n .. stub 1 | blob                     | tag |
//!  +------------+------------------+------+------------------+--------------------------+-----+
//!                                                             ^ pd_special               ^ BLCKSZ - 16
//!  stub (line pointer i, lp_len 31, 32 bytes with padding):
//!       rowid u64 | t_xmin u32 | t_xmax u32 | t_cid u32 | t_ctid 6 | t_infomask2 u16 | t_infomask u16 | t_hoff u8
//!  blob: crc32 u32 | zstd_len u32 | raw_len u32 | nitems u16 | codec u8 (1 = zstd) | pad u8 | zstd frame | pad to 8
//!  raw (the frame decompressed): rest_len u16 x n | rest 1 | rest 2 | ... | rest n
//!        rest i = bytes 23 .. t_len of version i (null bitmap, padding, data)
//!  crc32 (IEEE) covers blob bytes 4..16, the zstd frame and the n rowids, in that order
//! ```
//!
//! The tag's flags carry [`RUN_COMPRESSED`]. A page whose versions fit
//! uncompressed is written uncompressed (the version 2 layout); compression
//! is only used where it packs at least 1.5x the versions into a page (see
//! `run_packer::RunPacker`). A reader verifies
//! the crc every time it decompresses a page; a mismatch or an undecodable
//! frame is [`CodecError`], which the Postgres side reports as XX001 naming
//! the relation and block.

use super::columnar::{self, Attr};
use super::format::{self, PageKind, BLOCK_SIZE, PAGE_HEADER_SIZE, ROWID_PREFIX, TAG_SIZE};
use super::page_image::{self, maxalign, PageImage};
use thiserror::Error;

/// RUN_DATA tag flag: the page has the compressed layout.
pub const RUN_COMPRESSED: u32 = 1;
/// Fixed part of a `HeapTupleHeader` (`SizeofHeapTupleHeader`).
pub use strata_base::page_layout::HEAP_TUPLE_HEADER_SIZE as TUPLE_HEADER_SIZE;
/// Bytes of a stub as stored (the line pointer's length).
pub const STUB_LEN: usize = ROWID_PREFIX + TUPLE_HEADER_SIZE;
/// Bytes of the blob header.
pub const BLOB_HEADER: usize = 16;
pub const CODEC_ZSTD: u8 = 1;
pub const CODEC_LZ4: u8 = 2;
/// Blob byte 15: rests one after the other (all version 3 pages).
pub const LAYOUT_ROWS: u8 = 0;
/// Blob byte 15: column-wise (version 6 pages; see `columnar`).
pub const LAYOUT_COLUMNS: u8 = 1;
/// Blob byte 15: column-wise, each section compressed on its own (version 7
/// pages; see [`Sections`]): a reader decompresses the columns it reads.
pub const LAYOUT_SECTIONS: u8 = 2;
/// Blob byte 15: as [`LAYOUT_SECTIONS`], and a column's section may be a
/// dictionary (version 9 pages; see `column_dict`).
pub const LAYOUT_DICT_SECTIONS: u8 = 3;
/// Blob byte 15: as [`LAYOUT_DICT_SECTIONS`] with codec lz4, and a section
/// whose directory length has bit 31 ([`ZSTD_SECTION`]) is compressed with
/// zstd instead — where that makes it at most [`ZSTD_PAYS`] of its lz4 size
/// (high-entropy text such as hex digests or base64, which lz4 barely
/// shrinks; version 10 pages). A scan pays zstd's slower decoding only for
/// those columns.
pub const LAYOUT_MIXED_SECTIONS: u8 = 4;
/// Bit of a layout-4 directory entry's compressed length: a zstd section.
pub const ZSTD_SECTION: u32 = 1 << 31;
/// A section is stored with zstd when that makes it at most this share of
/// its lz4 size.
pub const ZSTD_PAYS: f64 = 0.75;
/// zstd is tried only on sections lz4 leaves at least this share of their
/// raw size (what lz4 compresses well, zstd rarely beats by a quarter).
const ZSTD_TRY: f64 = 0.6;

/// Whether a blob of layout 4 stores any section with zstd (read from its
/// directory, unchecked: for naming a page's codec).
pub fn has_zstd_section(blob: &[u8]) -> bool {
    if blob.len() < BLOB_HEADER + 2 || blob[15] != LAYOUT_MIXED_SECTIONS {
        return false;
    }
    let frame = &blob[BLOB_HEADER..];
    let n = format::u16_at(frame, 0) as usize;
    (0..n)
        .take_while(|i| 6 + 8 * i <= frame.len())
        .any(|i| format::u32_at(frame, 2 + 8 * i) & ZSTD_SECTION != 0)
}

/// Whether a blob layout compresses each section on its own.
pub fn is_sectioned(layout: u8) -> bool {
    matches!(layout, LAYOUT_SECTIONS | LAYOUT_DICT_SECTIONS | LAYOUT_MIXED_SECTIONS)
}
/// Largest decompressed payload a page may declare (256 versions of at most a page each).
const MAX_RAW: usize = 256 * BLOCK_SIZE;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("checksum mismatch")]
    Checksum { stored: u32, computed: u32 },
    #[error("bad compressed block: {0}")]
    Layout(String),
    #[error("compressed block does not decompress: {0}")]
    Frame(String),
}

impl strata_base::error::SqlError for CodecError {
    fn sqlstate(&self) -> &'static str {
        "XX001"
    }
}

/// Whether a page image (RUN_DATA) has the compressed layout.
pub fn is_compressed(page: &[u8]) -> bool {
    page_image::tag_of(page)
        .is_some_and(|t| t.kind == PageKind::RunData as u16 && t.flags & RUN_COMPRESSED != 0)
}

fn crc(blob_header: &[u8], frame: &[u8], rowids: impl Iterator<Item = u64>) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&blob_header[4..BLOB_HEADER]);
    h.update(frame);
    // rowids in chunks of 64: per-rowid updates of 8 bytes took the slow
    // path (a twentieth of a sequential scan), and one buffer for them all
    // was an allocation per page read
    let mut chunk = [0u8; 512];
    let mut n = 0;
    for r in rowids {
        chunk[n..n + 8].copy_from_slice(&r.to_le_bytes());
        n += 8;
        if n == chunk.len() {
            h.update(&chunk);
            n = 0;
        }
    }
    h.update(&chunk[..n]);
    h.finalize()
}

/// The uncompressed payload of versions: rest lengths, then the rests.
fn raw_payload(versions: &[(u64, &[u8])]) -> Vec<u8> {
    let total: usize = versions
        .iter()
        .map(|(_, t)| 2 + t.len() - TUPLE_HEADER_SIZE)
        .sum();
    let mut raw = Vec::with_capacity(total);
    for (_, t) in versions {
        raw.extend_from_slice(&((t.len() - TUPLE_HEADER_SIZE) as u16).to_le_bytes());
    }
    for (_, t) in versions {
        raw.extend_from_slice(&t[TUPLE_HEADER_SIZE..]);
    }
    raw
}

/// Bytes of a page that stubs and line pointers of `n` versions take.
pub fn stubs_size(n: usize) -> usize {
    n * (4 + maxalign(STUB_LEN))
}

/// Room left for the blob (header and frame) next to `n` stubs.
pub fn blob_room(n: usize) -> usize {
    (BLOCK_SIZE - PAGE_HEADER_SIZE - TAG_SIZE).saturating_sub(stubs_size(n)) & !7
}

/// How a page's payload is compressed (the blob's codec byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// zstd at a level (1 = fastest).
    Zstd(i32),
    /// LZ4 block format: larger frames, decoded several times faster.
    Lz4,
}

impl Codec {
    pub fn id(self) -> u8 {
        match self {
            Codec::Zstd(_) => CODEC_ZSTD,
            Codec::Lz4 => CODEC_LZ4,
        }
    }
}

/// A compressed payload: the frame and what the blob header says of it.
pub struct Frame {
    pub bytes: Vec<u8>,
    /// Length of the payload before compression.
    pub raw_len: usize,
    pub codec: Codec,
    /// [`LAYOUT_ROWS`] or [`LAYOUT_COLUMNS`].
    pub layout: u8,
}

/// Compresses `versions` (rowid order, tuple bytes each) row by row with
/// `codec`.
pub fn compress(versions: &[(u64, &[u8])], codec: Codec) -> Frame {
    let raw = raw_payload(versions);
    Frame {
        bytes: compress_raw(&raw, codec),
        raw_len: raw.len(),
        codec,
        layout: LAYOUT_ROWS,
    }
}

/// [`compress`] of the column-wise payload ([`super::columnar`]); None
/// when the versions do not split at the columns `attrs` describe.
pub fn compress_columns(versions: &[(u64, &[u8])], codec: Codec, attrs: &[Attr]) -> Option<Frame> {
    let tuples: Vec<&[u8]> = versions.iter().map(|(_, t)| *t).collect();
    let raw = columnar::encode(attrs, &tuples, false)?;
    Some(Frame {
        bytes: compress_raw(&raw, codec),
        raw_len: raw.len(),
        codec,
        layout: LAYOUT_COLUMNS,
    })
}

/// [`compress_columns`] with every section of the column-wise payload —
/// the rows section, then each column's — compressed on its own behind a
/// directory ([`LAYOUT_SECTIONS`]):
///
/// ```text
///  frame = nsections u16 | (zlen u32, raw_len u32) x nsections | section 0 | section 1 | ...
///          section 0 = the rows section, section c + 1 = column c (its 5-byte head included);
///          decompressed and concatenated in order they are the layout 1 payload
/// ```
///
/// With `dictionaries` a column may be a dictionary section ([`LAYOUT_DICT_SECTIONS`]);
/// with `zstd_level` too and codec lz4, a section may be zstd-compressed at
/// that level where it pays ([`LAYOUT_MIXED_SECTIONS`]).
pub fn compress_sections(
    versions: &[(u64, &[u8])],
    codec: Codec,
    attrs: &[Attr],
    dictionaries: bool,
    zstd_level: Option<i32>,
) -> Option<Frame> {
    let tuples: Vec<&[u8]> = versions.iter().map(|(_, t)| *t).collect();
    let raw = columnar::encode(attrs, &tuples, dictionaries)?;
    let mut layout = super::columnar_read::Layout::default();
    layout.parse(attrs, &raw, tuples.len()).ok()?;
    let spans = layout.section_spans(raw.len());
    let mut bytes = Vec::with_capacity(raw.len() / 2 + 8 * spans.len() + 2);
    bytes.extend_from_slice(&(spans.len() as u16).to_le_bytes());
    let mixed = match (codec, zstd_level) {
        (Codec::Lz4, Some(level)) if dictionaries => Some(level),
        _ => None,
    };
    let parts: Vec<(Vec<u8>, bool)> = spans
        .iter()
        .map(|&(at, len)| {
            let section = &raw[at..at + len];
            let plain = compress_raw(section, codec);
            match mixed {
                Some(level) if plain.len() as f64 >= ZSTD_TRY * len as f64 => {
                    let z = compress_raw(section, Codec::Zstd(level));
                    if (z.len() as f64) <= ZSTD_PAYS * plain.len() as f64 {
                        (z, true)
                    } else {
                        (plain, false)
                    }
                }
                _ => (plain, false),
            }
        })
        .collect();
    for ((part, zstd), &(_, len)) in parts.iter().zip(&spans) {
        let flag = if *zstd { ZSTD_SECTION } else { 0 };
        bytes.extend_from_slice(&(part.len() as u32 | flag).to_le_bytes());
        bytes.extend_from_slice(&(len as u32).to_le_bytes());
    }
    for (part, _) in &parts {
        bytes.extend_from_slice(part);
    }
    let layout = match (dictionaries, mixed) {
        (true, Some(_)) => LAYOUT_MIXED_SECTIONS,
        (true, None) => LAYOUT_DICT_SECTIONS,
        (false, _) => LAYOUT_SECTIONS,
    };
    Some(Frame { bytes, raw_len: raw.len(), codec, layout })
}

fn compress_raw(raw: &[u8], codec: Codec) -> Vec<u8> {
    let level = match codec {
        Codec::Lz4 => return lz4_flex::block::compress(raw),
        Codec::Zstd(level) => level,
    };
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        // one context per backend (and level): making one per page costs
        // more than compressing a page's few kilobytes
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            let fresh = zstd::bulk::Compressor::new(level).expect("zstd compression context");
            *c = Some((level, fresh));
        }
        let (_, compressor) = c.as_mut().expect("made above");
        compressor
            .compress(raw)
            .expect("zstd compression of an in-memory buffer")
    })
}

thread_local! {
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// The blob header of a frame of `rowids.len()` versions: crc, lengths,
/// version count, codec, payload layout.
pub fn blob_header(frame: &Frame, rowids: &[u64]) -> [u8; BLOB_HEADER] {
    let mut header = [0u8; BLOB_HEADER];
    format::put_u32(&mut header, 4, frame.bytes.len() as u32);
    format::put_u32(&mut header, 8, frame.raw_len as u32);
    format::put_u16(&mut header, 12, rowids.len() as u16);
    header[14] = frame.codec.id();
    header[15] = frame.layout;
    let sum = crc(&header, &frame.bytes, rowids.iter().copied());
    format::put_u32(&mut header, 0, sum);
    header
}

/// Whether a frame of `frame_len` bytes fits next to `n` stubs.
pub fn fits(n: usize, frame_len: usize) -> bool {
    maxalign(BLOB_HEADER + frame_len) <= blob_room(n)
}

/// Builds a version 3 compressed page (stubs with rowids) of `versions`
/// from their frame (see [`compress`]); None when it does not fit. Pages
/// are written in the version 6 layout ([`super::compact_page`]); this one
/// stays for reading older tables and for `strata.lsm_page_format = 5`.
pub fn build(run_id: u32, versions: &[(u64, &[u8])], frame: &Frame) -> Option<PageImage> {
    let n = versions.len();
    if frame.layout != LAYOUT_ROWS || !fits(n, frame.bytes.len()) || n > format::ROWS_PER_VBLOCK as usize {
        return None;
    }
    let blob_len = maxalign(BLOB_HEADER + frame.bytes.len());
    let mut page = PageImage::with_special(PageKind::RunData, run_id, RUN_COMPRESSED, blob_len);
    page.set_version(5);
    for (rowid, t) in versions {
        if !page.add_item(&[&rowid.to_le_bytes(), &t[..TUPLE_HEADER_SIZE]]) {
            return None;
        }
    }
    let rowids: Vec<u64> = versions.iter().map(|(r, _)| *r).collect();
    let header = blob_header(frame, &rowids);
    page.write_special(&[&header, &frame.bytes]);
    Some(page)
}

/// A compressed page's payload, decompressed and checked.
pub struct Payload {
    raw: Vec<u8>,
    /// `(start, len)` in `raw` of each version's rest, by item number - 1.
    rests: Vec<(usize, usize)>,
}

impl Payload {
    /// Every version's rest, by item number - 1.
    pub fn rests(&self) -> Vec<&[u8]> {
        self.rests.iter().map(|&(start, len)| &self.raw[start..start + len]).collect()
    }

    /// The rest (bytes after the fixed header) of item `item` (1-based).
    pub fn rest(&self, item: usize) -> Option<&[u8]> {
        let (start, len) = *self.rests.get(item.checked_sub(1)?)?;
        Some(&self.raw[start..start + len])
    }

    pub fn len(&self) -> usize {
        self.rests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rests.is_empty()
    }

    /// Bytes of all rests (the decompressed row data).
    pub fn raw_len(&self) -> usize {
        self.raw.len()
    }
}

/// The stored crc of a compressed page (identifies its payload in caches).
pub fn stored_crc(page: &[u8]) -> u32 {
    format::u32_at(page, format::u16_at(page, 16) as usize)
}

/// Checks and decompresses the payload of a version 3 compressed page.
pub fn decode(page: &[u8]) -> Result<Payload, CodecError> {
    let layout = |m: String| Err(CodecError::Layout(m));
    if page.len() != BLOCK_SIZE {
        return layout(format!("page of {} bytes", page.len()));
    }
    let special = format::u16_at(page, 16) as usize;
    let end = BLOCK_SIZE - TAG_SIZE;
    if !special.is_multiple_of(8) || special < PAGE_HEADER_SIZE || special + BLOB_HEADER > end {
        return layout(format!("special space at {special}"));
    }
    let nitems = page_image::item_count(page);
    let mut rowids = Vec::with_capacity(nitems);
    for i in 1..=nitems {
        match page_image::plain_item_rowid(page, i) {
            Some(r) => rowids.push(r),
            None => return layout(format!("line pointer {i} is not a stub")),
        }
    }
    decode_blob(&page[special..end], &rowids, &[])
}

/// Checks and decompresses a blob (header and frame, at the start of
/// `blob`) holding the rests of the versions with `rowids`; a column-wise
/// payload is put back into rows by the table's column layout `attrs`.
pub fn decode_blob(blob: &[u8], rowids: &[u64], attrs: &[Attr]) -> Result<Payload, CodecError> {
    Opened::of(blob, rowids)?.into_payload(attrs)
}

/// A blob checked and decompressed, its rows not yet rebuilt: point
/// lookups keep it to rebuild one row at a time, readers of a whole page
/// turn it into a [`Payload`].
pub struct Opened {
    raw: Vec<u8>,
    columns: bool,
    nitems: usize,
}

impl Opened {
    /// Checks (crc) and decompresses `blob`, the blob of the versions with `rowids`.
    pub fn of(blob: &[u8], rowids: &[u64]) -> Result<Opened, CodecError> {
        Opened::of_ids(blob, rowids.len(), rowids.iter().copied())
    }

    /// [`Opened::of`] for `n` rowids given one by one.
    pub fn of_ids(blob: &[u8], n: usize, rowids: impl Iterator<Item = u64>) -> Result<Opened, CodecError> {
        let (raw, columns) = open_blob(blob, n, rowids)?;
        Ok(Opened { raw, columns, nitems: n })
    }

    /// The rest of version `item` (1-based).
    pub fn one(&self, attrs: &[Attr], item: usize) -> Result<Vec<u8>, CodecError> {
        let nitems = self.nitems;
        if item == 0 || item > nitems {
            return Err(CodecError::Layout(format!("no version {item} of {nitems}")));
        }
        if self.columns {
            return columnar::decode_one(attrs, &self.raw, nitems, item - 1).map_err(CodecError::Layout);
        }
        let (start, len) = row_spans(&self.raw, nitems)?[item - 1];
        Ok(self.raw[start..start + len].to_vec())
    }

    /// Every version's rest.
    pub fn payload(&self, attrs: &[Attr]) -> Result<Payload, CodecError> {
        if self.columns {
            let (raw, rests) = columnar::decode(attrs, &self.raw, self.nitems).map_err(CodecError::Layout)?;
            return Ok(Payload { raw, rests });
        }
        let rests = row_spans(&self.raw, self.nitems)?;
        Ok(Payload { raw: self.raw.clone(), rests })
    }

    /// [`Opened::payload`] without copying a row-by-row payload.
    pub fn into_payload(self, attrs: &[Attr]) -> Result<Payload, CodecError> {
        if self.columns {
            return self.payload(attrs);
        }
        let rests = row_spans(&self.raw, self.nitems)?;
        Ok(Payload { raw: self.raw, rests })
    }
}

/// The checked, decompressed payload of a blob, and whether it is laid
/// out column by column.
fn open_blob(blob: &[u8], n: usize, rowids: impl Iterator<Item = u64>) -> Result<(Vec<u8>, bool), CodecError> {
    let (codec, layout, frame, raw_len) = checked_blob(blob, n, rowids)?;
    if is_sectioned(layout) {
        let sections = Sections::of(codec, layout, frame, raw_len)?;
        let mut raw = vec![0u8; raw_len];
        for s in &sections.spans {
            decompress_into(s.codec, &frame[s.z..s.z + s.zlen], &mut raw[s.r..s.r + s.rlen])?;
        }
        return Ok((raw, true));
    }
    Ok((decompress_exact(codec, frame, raw_len)?, layout == LAYOUT_COLUMNS))
}

/// The checked header and frame of a blob: `(codec, layout, frame, raw_len)`.
fn checked_blob(
    blob: &[u8],
    n: usize,
    rowids: impl Iterator<Item = u64>,
) -> Result<(u8, u8, &[u8], usize), CodecError> {
    let layout = |m: String| Err(CodecError::Layout(m));
    if blob.len() < BLOB_HEADER {
        return layout(format!("blob of {} bytes", blob.len()));
    }
    let header = &blob[..BLOB_HEADER];
    let (stored, zlen, raw_len) = (
        format::u32_at(header, 0),
        format::u32_at(header, 4) as usize,
        format::u32_at(header, 8) as usize,
    );
    let (nitems, codec) = (format::u16_at(header, 12) as usize, header[14]);
    if codec != CODEC_ZSTD && codec != CODEC_LZ4 {
        return layout(format!("unknown codec {codec}"));
    }
    if header[15] > LAYOUT_MIXED_SECTIONS || header[15] == LAYOUT_MIXED_SECTIONS && codec != CODEC_LZ4 {
        return layout(format!("unknown payload layout {}", header[15]));
    }
    if BLOB_HEADER + zlen > blob.len() || raw_len > MAX_RAW {
        return layout(format!("frame of {zlen} bytes ({raw_len} raw) does not fit the page"));
    }
    if nitems != n {
        return layout(format!("{nitems} versions in the frame, {n} line pointers"));
    }
    let frame = &blob[BLOB_HEADER..BLOB_HEADER + zlen];
    let computed = crc(header, frame, rowids);
    if computed != stored {
        return Err(CodecError::Checksum { stored, computed });
    }
    Ok((codec, header[15], frame, raw_len))
}

/// A column-wise payload whose sections are decompressed when first read:
/// a sequential scan decompresses the rows section of every page and the
/// columns its query reads. Sections land at their offsets in `raw`, so
/// offsets into it are those of the whole (layout 1) payload. Made from a
/// blob of any column-wise layout (layout 1: decompressed at once).
pub struct Sections {
    /// The compressed sections (a copy: a pinned page may be rewritten).
    frame: Vec<u8>,
    spans: Vec<Span>,
    done: Vec<bool>,
    raw: Vec<u8>,
}

/// One section: its codec, offset and length in the frame, offset and
/// length in the payload.
#[derive(Clone, Copy, Debug)]
struct Span {
    codec: u8,
    z: usize,
    zlen: usize,
    r: usize,
    rlen: usize,
}

impl Sections {
    /// Checks (crc) a column-wise blob of the versions with `rowids` and
    /// decompresses its rows section; None for a row-by-row blob.
    pub fn open(blob: &[u8], rowids: &[u64]) -> Result<Option<Sections>, CodecError> {
        Sections::open_ids(blob, rowids.len(), rowids.iter().copied())
    }

    /// [`Sections::open`] for `n` rowids given one by one.
    pub fn open_ids(
        blob: &[u8],
        n: usize,
        rowids: impl Iterator<Item = u64>,
    ) -> Result<Option<Sections>, CodecError> {
        let (codec, layout, frame, raw_len) = checked_blob(blob, n, rowids)?;
        let mut sections = match layout {
            LAYOUT_SECTIONS | LAYOUT_DICT_SECTIONS | LAYOUT_MIXED_SECTIONS => {
                let mut s = Sections::of(codec, layout, frame, raw_len)?;
                s.frame = frame.to_vec();
                s.raw = vec![0; raw_len];
                s
            }
            LAYOUT_COLUMNS => Sections {
                frame: Vec::new(),
                spans: vec![Span {
                    codec,
                    z: 0,
                    zlen: 0,
                    r: 0,
                    rlen: raw_len,
                }],
                done: vec![true],
                raw: decompress_exact(codec, frame, raw_len)?,
            },
            _ => return Ok(None),
        };
        sections.ensure(0)?;
        Ok(Some(sections))
    }

    /// Reads the directory of a sectioned frame (nothing copied or
    /// decompressed yet: `frame` and `raw` are left empty).
    fn of(codec: u8, layout: u8, frame: &[u8], raw_len: usize) -> Result<Sections, CodecError> {
        let bad = |m: String| Err(CodecError::Layout(m));
        if frame.len() < 2 {
            return bad("no section directory".into());
        }
        let n = format::u16_at(frame, 0) as usize;
        let dir = 2 + 8 * n;
        if n == 0 || frame.len() < dir {
            return bad(format!("section directory of {n} sections does not fit"));
        }
        let (mut z, mut r) = (dir, 0usize);
        let mut spans = Vec::with_capacity(n);
        for i in 0..n {
            let mut zlen = format::u32_at(frame, 2 + 8 * i);
            let mut section_codec = codec;
            if layout == LAYOUT_MIXED_SECTIONS && zlen & ZSTD_SECTION != 0 {
                zlen &= !ZSTD_SECTION;
                section_codec = CODEC_ZSTD;
            }
            let (zlen, rlen) = (zlen as usize, format::u32_at(frame, 6 + 8 * i) as usize);
            if zlen > frame.len() || rlen > MAX_RAW {
                return bad(format!("section {i} of {zlen} bytes ({rlen} raw) does not fit"));
            }
            spans.push(Span {
                codec: section_codec,
                z,
                zlen,
                r,
                rlen,
            });
            z += zlen;
            r += rlen;
        }
        if z != frame.len() || r != raw_len {
            return bad(format!("sections of {z} bytes ({r} raw) in a frame of {} ({raw_len} raw)", frame.len()));
        }
        Ok(Sections { frame: Vec::new(), spans, done: vec![false; n], raw: Vec::new() })
    }

    /// Number of sections (1 for a layout 1 payload: all of it).
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Offset and length in the payload of section `i`.
    pub fn span(&self, i: usize) -> Option<(usize, usize)> {
        self.spans.get(i).map(|s| (s.r, s.rlen))
    }

    /// Decompresses section `i` into its place, once.
    pub fn ensure(&mut self, i: usize) -> Result<(), CodecError> {
        let Some(&s) = self.spans.get(i) else {
            return Err(CodecError::Layout(format!("no section {i}")));
        };
        if self.done[i] {
            return Ok(());
        }
        decompress_into(s.codec, &self.frame[s.z..s.z + s.zlen], &mut self.raw[s.r..s.r + s.rlen])?;
        self.done[i] = true;
        Ok(())
    }

    /// The payload (sections not decompressed yet are zeros).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// `(start, len)` of each rest of a row-by-row payload.
fn row_spans(raw: &[u8], nitems: usize) -> Result<Vec<(usize, usize)>, CodecError> {
    let layout = |m: String| Err(CodecError::Layout(m));
    if raw.len() < 2 * nitems {
        return layout(format!("payload of {} bytes for {nitems} versions", raw.len()));
    }
    let mut rests = Vec::with_capacity(nitems);
    let mut at = 2 * nitems;
    for i in 0..nitems {
        let len = format::u16_at(raw, 2 * i) as usize;
        if at + len > raw.len() {
            return layout(format!("version {} overruns the payload", i + 1));
        }
        rests.push((at, len));
        at += len;
    }
    if at != raw.len() {
        return layout(format!(
            "{} payload bytes belong to no version",
            raw.len() - at
        ));
    }
    Ok(rests)
}

/// `frame` decompressed, which must give exactly `len` bytes.
fn decompress_exact(codec: u8, frame: &[u8], len: usize) -> Result<Vec<u8>, CodecError> {
    let raw = decompress(codec, frame, len).map_err(CodecError::Frame)?;
    if raw.len() != len {
        return Err(CodecError::Layout(format!("payload of {} bytes, {len} declared", raw.len())));
    }
    Ok(raw)
}

/// `frame` decompressed into `out`, which it must fill exactly (no buffer
/// of its own and no copy: a point lookup decompresses every section).
fn decompress_into(codec: u8, frame: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
    let len = out.len();
    let got = if codec == CODEC_LZ4 {
        super::lz4_block::decode_into(frame, out).map_err(|e| CodecError::Frame(e.to_string()))?
    } else {
        zstd_decompress_into(frame, out).map_err(|e| CodecError::Frame(e.to_string()))?
    };
    if got != len {
        return Err(CodecError::Layout(format!("payload of {got} bytes, {len} declared")));
    }
    Ok(())
}

fn decompress(codec: u8, frame: &[u8], capacity: usize) -> Result<Vec<u8>, String> {
    if codec == CODEC_LZ4 {
        let mut out = vec![0u8; capacity];
        let n = super::lz4_block::decode_into(frame, &mut out).map_err(|e| e.to_string())?;
        out.truncate(n);
        return Ok(out);
    }
    zstd_decompress(frame, capacity).map_err(|e| e.to_string())
}

thread_local! {
    /// One zstd decompression context per thread, reused across pages
    /// (creating one showed up as a third of the decompression time of a scan).
    static ZSTD_CONTEXT: std::cell::RefCell<std::io::Result<zstd::bulk::Decompressor<'static>>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new());
}

fn zstd_decompress(frame: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    ZSTD_CONTEXT.with_borrow_mut(|c| match c {
        Ok(d) => d.decompress(frame, capacity),
        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
    })
}

/// zstd decompression straight into `out` (no buffer of its own and no copy:
/// a point lookup decompresses every section of its page); the bytes written.
fn zstd_decompress_into(frame: &[u8], out: &mut [u8]) -> std::io::Result<usize> {
    ZSTD_CONTEXT.with_borrow_mut(|c| match c {
        Ok(d) => d.decompress_to_buffer(frame, out),
        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
    })
}

/// The full tuple bytes of item `item`: its stub's header and its rest.
pub fn tuple(page: &[u8], payload: &Payload, item: usize) -> Option<Vec<u8>> {
    tuple_parts(page, payload, item).map(|parts| parts.concat())
}

/// [`tuple`] as its two parts, borrowed: the fixed header (from the page's
/// stub) and the rest (from the payload).
pub fn tuple_parts<'a>(page: &'a [u8], payload: &'a Payload, item: usize) -> Option<[&'a [u8]; 2]> {
    let (off, len) = page_image::item_extent(page, item)?;
    if len != STUB_LEN {
        return None;
    }
    let rest = payload.rest(item)?;
    Some([&page[off + ROWID_PREFIX..off + STUB_LEN], rest])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tuple: a 24-byte header (t_hoff 24) and `data`.
    fn tuple_bytes(xmin: u32, data: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 24];
        t[..4].copy_from_slice(&xmin.to_le_bytes());
        t[22] = 24;
        t.extend_from_slice(data);
        t
    }

    fn versions(n: usize) -> Vec<(u64, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let text = format!(
                    "row {i:06} of a compressible table, padded {}",
                    "x".repeat(60)
                );
                (
                    1000 + i as u64 * 3,
                    tuple_bytes(100 + i as u32, text.as_bytes()),
                )
            })
            .collect()
    }

    fn page_of(vs: &[(u64, Vec<u8>)]) -> PageImage {
        let refs: Vec<(u64, &[u8])> = vs.iter().map(|(r, t)| (*r, t.as_slice())).collect();
        build(7, &refs, &compress(&refs, Codec::Zstd(3))).expect("fits")
    }

    #[test]
    fn round_trip_restores_every_tuple() {
        let vs = versions(150);
        let page = page_of(&vs);
        let bytes = page.bytes();
        assert!(is_compressed(bytes));
        assert_eq!(page_image::tag_of(bytes).unwrap().vblock, 7);
        let payload = decode(bytes).unwrap();
        assert_eq!(payload.len(), 150);
        for (i, (rowid, t)) in vs.iter().enumerate() {
            assert_eq!(crate::run_page::run_item_rowid(bytes, i + 1), Some(*rowid));
            assert_eq!(tuple(bytes, &payload, i + 1).as_deref(), Some(t.as_slice()));
        }
        assert_eq!(crate::run_page::find_run_item(bytes, vs[77].0), Some(78));
    }

    #[test]
    fn more_versions_fit_than_uncompressed() {
        // 150 versions of ~110 bytes would take ~18 KB uncompressed.
        let vs = versions(150);
        let raw: usize = vs.iter().map(|(_, t)| t.len() + 8 + 4).sum();
        assert!(raw > BLOCK_SIZE * 2);
        page_of(&vs);
    }

    #[test]
    fn stamps_on_stubs_do_not_break_the_checksum() {
        let vs = versions(20);
        let mut bytes = page_of(&vs).bytes().to_vec();
        let (off, _) = page_image::item_extent(&bytes, 3).unwrap();
        // xmax and infomask of version 3 change in place
        bytes[off + 8 + 4..off + 8 + 8].copy_from_slice(&999u32.to_le_bytes());
        bytes[off + 8 + 20] |= 0x08;
        let payload = decode(&bytes).unwrap();
        let t = tuple(&bytes, &payload, 3).unwrap();
        assert_eq!(format::u32_at(&t, 4), 999);
        assert_eq!(&t[23..], &vs[2].1[23..]);
    }

    #[test]
    fn corruption_is_detected() {
        let vs = versions(40);
        let good = page_of(&vs).bytes().to_vec();
        let special = format::u16_at(&good, 16) as usize;
        // a flipped bit in the frame
        let mut bad = good.clone();
        bad[special + BLOB_HEADER + 5] ^= 0x10;
        assert!(matches!(decode(&bad), Err(CodecError::Checksum { .. })));
        // a changed rowid
        let mut bad = good.clone();
        let (off, _) = page_image::item_extent(&bad, 1).unwrap();
        bad[off] ^= 1;
        assert!(matches!(decode(&bad), Err(CodecError::Checksum { .. })));
        // a frame length running past the page
        let mut bad = good.clone();
        format::put_u32(&mut bad, special + 4, 9000);
        assert!(matches!(decode(&bad), Err(CodecError::Layout(_))));
        // a line pointer too many
        let mut bad = good;
        format::put_u16(&mut bad, special + 12, 41);
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn incompressible_versions_that_do_not_fit_are_refused() {
        // pseudo-random bytes do not compress
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut noise = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 32) as u8
                })
                .collect()
        };
        let vs: Vec<(u64, Vec<u8>)> = (0..3).map(|i| (i, tuple_bytes(5, &noise(3000)))).collect();
        let refs: Vec<(u64, &[u8])> = vs.iter().map(|(r, t)| (*r, t.as_slice())).collect();
        assert!(build(1, &refs, &compress(&refs, Codec::Zstd(3))).is_none());
        assert!(build(1, &refs[..2], &compress(&refs[..2], Codec::Zstd(3))).is_some());
    }
}
