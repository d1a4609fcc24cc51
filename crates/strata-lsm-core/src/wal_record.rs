//! Records of Strata's WAL resource manager for `lsm` row changes, and the
//! page changes their redo makes (pure: byte layouts and page bytes only).
//!
//! Written when `strata` is in `shared_preload_libraries` (see
//! `crate::pg::wal`); each is one page change that used to be a GenericXLog
//! delta of the whole page. All integers little-endian; every record names
//! its pages as registered blocks, so full-page images and the redo LSN
//! check work as for Postgres's own records ([lsm-format.md] "WAL records").
//!
//! ```text
//! INSERT  0x10  block 0: an L0 page; its data, per new version:
//!               +----------+---------+------------------+
//!               | item u16 | len u16 | tuple (len bytes)|  ... repeated
//!               +----------+---------+------------------+
//! HEADERS 0x20  block 0: an L0 or RUN_DATA page; its data:
//!               +-------------+--------------+
//!               | ndetach u16 | item u16 ... |  versions of a compact page
//!               +-------------+--------------+  given headers of their own
//!               +------------+-----------------------------------------+
//!               | offset u16 | 22 bytes: t_xmin t_xmax t_cid t_ctid    |
//!               |            |           t_infomask2 t_infomask        | ...
//!               +------------+-----------------------------------------+
//!               (headers written, after the detaching); block 1 (when a
//!               detach ran out of slots): the new RUN_PAYLOAD page, a
//!               full-page image, which the page's moved blob names
//! UPDATE  0x30  an UPDATE's new version and the old version's stamp in one
//!               record: block 0 the L0 page taking the new version, block 1
//!               (absent when it is the same page) the old version's page;
//!               each block's data:
//!               +-----------------+-----------------------+--------------+
//!               | insert_len u16  | INSERT data           | HEADERS data |
//!               |                 | (insert_len bytes)    | (or nothing) |
//!               +-----------------+-----------------------+--------------+
//! UPDATE_SHORT 0x50  the same change with headers as deltas (written since
//!               December 2026; 0x30 records are still replayed): block 0's
//!               data, then, when the old version is on the same page, its
//!               stamp; block 1's data is the stamp.
//!               +----------+--------------+-------------+------------------+---------+
//!               | item u16 | tail_len u16 | header delta| tail: tuple bytes| [stamp] |
//!               |          |              | (from zeros)| 23 .. t_len      |         |
//!               +----------+--------------+-------------+------------------+---------+
//!               stamp: ndetach u16 | item u16 ... | offset u16 | header delta
//!                      (from the header at `offset` after the detaches)
//!               header delta: flags u16, then the fields the flags name, in
//!               this order: xmin u32, xmax u32, cid u32, ctid 6 bytes,
//!               infomask2 u16, infomask u16, hoff u8; flags XMIN_XID /
//!               XMAX_XID stand for the record's xid, CTID_NEW for the new
//!               version's TID (its page's virtual block and `item`; only on
//!               block 0, whose data a full-page image of block 0 leaves out)
//! ```

use super::compact_page;
use super::compressed_page::CodecError;
use super::format::{self, infomask, PageKind};
use super::page_image;

/// This format's resource manager id, from the custom range (128–255).
pub const RMGR_ID: u8 = 171;
pub const RMGR_NAME: &std::ffi::CStr = c"strata_lsm";

pub const INSERT: u8 = 0x10;
pub const HEADERS: u8 = 0x20;
pub const UPDATE: u8 = 0x30;
pub const UPDATE_SHORT: u8 = 0x50;

/// Bytes of a header a stamp may change (everything before `t_hoff`).
pub const HEADER_FIELDS: usize = super::compressed_page::TUPLE_HEADER_SIZE - 1;

/// The record type's name (`rm_identify`).
pub fn identify(info: u8) -> Option<&'static std::ffi::CStr> {
    match info {
        INSERT => Some(c"INSERT"),
        HEADERS => Some(c"HEADERS"),
        UPDATE => Some(c"UPDATE"),
        UPDATE_SHORT => Some(c"UPDATE_SHORT"),
        super::logical_record::ROW_INSERT => Some(c"ROW_INSERT"),
        super::logical_record::ROW_UPDATE => Some(c"ROW_UPDATE"),
        super::logical_record::ROW_DELETE => Some(c"ROW_DELETE"),
        super::logical_record::ROW_CONFIRM => Some(c"ROW_CONFIRM"),
        _ => None,
    }
}

fn malformed(what: &str) -> CodecError {
    CodecError::Layout(format!("malformed strata_lsm WAL record: {what}"))
}

/// Appends one new version to an INSERT record's block data.
pub fn push_insert(out: &mut Vec<u8>, item: u16, tuple: &[u8]) {
    out.extend_from_slice(&item.to_le_bytes());
    out.extend_from_slice(&(tuple.len() as u16).to_le_bytes());
    out.extend_from_slice(tuple);
}

/// The `(item, tuple)` pairs of an INSERT record's block data.
pub fn inserts(data: &[u8]) -> Result<Vec<(u16, &[u8])>, CodecError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        if at + 4 > data.len() {
            return Err(malformed("INSERT entry header"));
        }
        let item = format::u16_at(data, at);
        let len = format::u16_at(data, at + 2) as usize;
        at += 4;
        if at + len > data.len() {
            return Err(malformed("INSERT tuple length"));
        }
        out.push((item, &data[at..at + len]));
        at += len;
    }
    Ok(out)
}

/// One block's data of an UPDATE record: INSERT data, then HEADERS data
/// (None: no header on this page changes). Builds write UPDATE_SHORT
/// records now; this encoder serves the tests of 0x30 replay.
#[cfg(test)]
pub fn encode_update(insert: &[u8], headers: Option<&Headers>) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + insert.len() + 32);
    out.extend_from_slice(&(insert.len() as u16).to_le_bytes());
    out.extend_from_slice(insert);
    if let Some(h) = headers {
        out.extend_from_slice(&h.encode());
    }
    out
}

/// The INSERT entries and headers of one block of an UPDATE record.
#[allow(clippy::type_complexity)]
pub fn decode_update(data: &[u8]) -> Result<(Vec<(u16, &[u8])>, Option<Headers>), CodecError> {
    if data.len() < 2 {
        return Err(malformed("UPDATE length"));
    }
    let n = format::u16_at(data, 0) as usize;
    let insert = data
        .get(2..2 + n)
        .ok_or_else(|| malformed("UPDATE insert length"))?;
    let rest = &data[2 + n..];
    let headers = (!rest.is_empty())
        .then(|| Headers::decode(rest))
        .transpose()?;
    Ok((inserts(insert)?, headers))
}

/// Bytes of a tuple header before `t_bits`: the fields a header delta covers.
pub const FIXED_HEADER: usize = HEADER_FIELDS + 1;

mod delta {
    pub const XMIN_XID: u16 = 0x001;
    pub const XMIN: u16 = 0x002;
    pub const XMAX_XID: u16 = 0x004;
    pub const XMAX: u16 = 0x008;
    pub const CID: u16 = 0x010;
    pub const CTID_NEW: u16 = 0x020;
    pub const CTID: u16 = 0x040;
    pub const MASK2: u16 = 0x080;
    pub const MASK: u16 = 0x100;
    pub const HOFF: u16 = 0x200;
}

/// What a header delta may name instead of spelling it out: the record's
/// xid, and the new version's TID `(virtual block, offset)` when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaContext {
    pub xid: u32,
    pub new_tid: Option<(u32, u16)>,
}

fn tid_bytes((v, o): (u32, u16)) -> [u8; 6] {
    let mut h = [0u8; 18];
    compact_page::put_ctid(&mut h, v, o);
    h[12..18].try_into().expect("6 bytes")
}

/// Encodes header `after` as a change of `before` (both the first
/// [`FIXED_HEADER`] bytes of a tuple).
pub fn encode_header_delta(before: &[u8], after: &[u8], cx: &DeltaContext) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 24);
    push_header_delta(&mut out, before, after, cx);
    out
}

/// [`encode_header_delta`] appended to `out` (no allocation of its own:
/// records are encoded on every row change).
pub fn push_header_delta(out: &mut Vec<u8>, before: &[u8], after: &[u8], cx: &DeltaContext) {
    let flags_at = out.len();
    out.extend_from_slice(&[0, 0]);
    let mut flags = 0u16;
    let mut u32_field = |at: usize, by_xid: u16, plain: u16, flags: &mut u16| {
        if after[at..at + 4] != before[at..at + 4] {
            if format::u32_at(after, at) == cx.xid && cx.xid != 0 {
                *flags |= by_xid;
            } else {
                *flags |= plain;
                out.extend_from_slice(&after[at..at + 4]);
            }
        }
    };
    u32_field(0, delta::XMIN_XID, delta::XMIN, &mut flags);
    u32_field(4, delta::XMAX_XID, delta::XMAX, &mut flags);
    if after[8..12] != before[8..12] {
        flags |= delta::CID;
        out.extend_from_slice(&after[8..12]);
    }
    if after[12..18] != before[12..18] {
        if cx.new_tid.is_some_and(|t| tid_bytes(t) == after[12..18]) {
            flags |= delta::CTID_NEW;
        } else {
            flags |= delta::CTID;
            out.extend_from_slice(&after[12..18]);
        }
    }
    for (at, len, bit) in [(18, 2, delta::MASK2), (20, 2, delta::MASK), (22, 1, delta::HOFF)] {
        if after[at..at + len] != before[at..at + len] {
            flags |= bit;
            out.extend_from_slice(&after[at..at + len]);
        }
    }
    out[flags_at..flags_at + 2].copy_from_slice(&flags.to_le_bytes());
}

/// Bytes of the header delta at `data[at..]` (flags and the fields they
/// name), checked against the data's length.
fn delta_len(data: &[u8], at: usize) -> Result<usize, CodecError> {
    let flags = data
        .get(at..at + 2)
        .map(|b| format::u16_at(b, 0))
        .ok_or_else(|| malformed("header delta length"))?;
    if flags >= delta::HOFF << 1 {
        return Err(malformed("header delta flags"));
    }
    let len = [
        (delta::XMIN, 4),
        (delta::XMAX, 4),
        (delta::CID, 4),
        (delta::CTID, 6),
        (delta::MASK2, 2),
        (delta::MASK, 2),
        (delta::HOFF, 1),
    ]
    .iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, n)| n)
    .sum::<usize>()
        + 2;
    if at + len > data.len() {
        return Err(malformed("header delta length"));
    }
    Ok(len)
}

/// Applies a header delta at `data[*at..]` to `h` (a header's first
/// [`FIXED_HEADER`] bytes), moving `*at` past it.
pub fn apply_header_delta(
    data: &[u8],
    at: &mut usize,
    h: &mut [u8],
    cx: &DeltaContext,
) -> Result<(), CodecError> {
    delta_len(data, *at)?; // flags known, fields all there
    let mut take = |n: usize| -> Result<&[u8], CodecError> {
        let s = data
            .get(*at..*at + n)
            .ok_or_else(|| malformed("header delta length"))?;
        *at += n;
        Ok(s)
    };
    let flags = format::u16_at(take(2)?, 0);
    let xid = cx.xid.to_le_bytes();
    for (field, by_xid, plain) in [(0, delta::XMIN_XID, delta::XMIN), (4, delta::XMAX_XID, delta::XMAX)] {
        if flags & by_xid != 0 {
            h[field..field + 4].copy_from_slice(&xid);
        } else if flags & plain != 0 {
            h[field..field + 4].copy_from_slice(take(4)?);
        }
    }
    if flags & delta::CID != 0 {
        h[8..12].copy_from_slice(take(4)?);
    }
    if flags & delta::CTID_NEW != 0 {
        let t = cx.new_tid.ok_or_else(|| malformed("CTID_NEW without the new TID"))?;
        h[12..18].copy_from_slice(&tid_bytes(t));
    } else if flags & delta::CTID != 0 {
        h[12..18].copy_from_slice(take(6)?);
    }
    for (field, len, bit) in [(18, 2, delta::MASK2), (20, 2, delta::MASK), (22, 1, delta::HOFF)] {
        if flags & bit != 0 {
            h[field..field + len].copy_from_slice(take(len)?);
        }
    }
    Ok(())
}

/// A stamp of an UPDATE_SHORT record: versions of a compact page detached,
/// then the header at `offset` changed by a delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub detached: Vec<u16>,
    pub offset: u16,
    pub delta: Vec<u8>,
}

/// Appends a detach list (`ndetach u16 | item u16 ...`, the start of a
/// HEADERS record's data and of a stamp).
fn push_detached(out: &mut Vec<u8>, items: &[u16]) {
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    for i in items {
        out.extend_from_slice(&i.to_le_bytes());
    }
}

/// The detach list at the start of `data`, and the bytes after it.
fn decode_detached<'a>(data: &'a [u8], what: &str) -> Result<(Vec<u16>, &'a [u8]), CodecError> {
    let n = data
        .get(0..2)
        .map(|b| format::u16_at(b, 0) as usize)
        .ok_or_else(|| malformed(&format!("{what} length")))?;
    let rest = data
        .get(2 + 2 * n..)
        .ok_or_else(|| malformed(&format!("{what} items")))?;
    Ok(((0..n).map(|i| format::u16_at(data, 2 + 2 * i)).collect(), rest))
}

/// Redo of a detach list: the versions get their own headers; when the
/// slots run out the blob moves to `payload_block`, the record's block 1
/// (an error when the record registered none).
fn replay_detaches(page: &mut [u8], items: &[u16], payload_block: Option<u32>) -> Result<(), CodecError> {
    if items.is_empty() {
        return Ok(());
    }
    let mut missing = false;
    detach_items(page, items.iter().map(|&i| i as usize), || {
        missing = payload_block.is_none();
        payload_block.unwrap_or(0)
    })?;
    if missing {
        return Err(malformed("a blob moved but no payload page is named"));
    }
    Ok(())
}

impl Stamp {
    pub fn encode(&self, out: &mut Vec<u8>) {
        push_detached(out, &self.detached);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.delta);
    }

    pub fn decode(data: &[u8]) -> Result<Stamp, CodecError> {
        let (detached, rest) = decode_detached(data, "stamp")?;
        if rest.len() < 2 {
            return Err(malformed("stamp items"));
        }
        Ok(Stamp {
            detached,
            offset: format::u16_at(rest, 0),
            delta: rest[2..].to_vec(),
        })
    }

    /// Redo: detaches (an UPDATE detaches only where a slot is free, so
    /// no blob moves), then applies the delta to the header at `offset`.
    pub fn apply(&self, page: &mut [u8], cx: &DeltaContext) -> Result<(), CodecError> {
        replay_detaches(page, &self.detached, None)?;
        let at = self.offset as usize;
        if at < format::PAGE_HEADER_SIZE || at + FIXED_HEADER > page.len() {
            return Err(malformed("stamp offset"));
        }
        let mut h = [0u8; FIXED_HEADER];
        h.copy_from_slice(&page[at..at + FIXED_HEADER]);
        let mut pos = 0;
        apply_header_delta(&self.delta, &mut pos, &mut h, cx)?;
        if pos != self.delta.len() {
            return Err(malformed("stamp delta length"));
        }
        page[at..at + HEADER_FIELDS].copy_from_slice(&h[..HEADER_FIELDS]);
        Ok(())
    }
}

/// Block 0's data of an UPDATE_SHORT record, decoded.
#[derive(Debug, PartialEq, Eq)]
pub struct ShortUpdate<'a> {
    pub item: u16,
    /// Header delta (from zeros) and the tuple's bytes past the fixed header.
    delta: &'a [u8],
    tail: &'a [u8],
    pub stamp: Option<Stamp>,
}

/// Encodes block 0's data of an UPDATE_SHORT record: the new version
/// `tuple` at `item` (its header as a delta from zeros, by `cx`), and the
/// old version's stamp when it is on the same page.
pub fn encode_short_update(item: u16, tuple: &[u8], cx: &DeltaContext, stamp: Option<&Stamp>) -> Vec<u8> {
    let tail = &tuple[FIXED_HEADER..];
    let mut out = Vec::with_capacity(4 + 26 + tail.len() + 40);
    out.extend_from_slice(&item.to_le_bytes());
    out.extend_from_slice(&(tail.len() as u16).to_le_bytes());
    push_header_delta(&mut out, &[0u8; FIXED_HEADER], &tuple[..FIXED_HEADER], cx);
    out.extend_from_slice(tail);
    if let Some(s) = stamp {
        s.encode(&mut out);
    }
    out
}

impl<'a> ShortUpdate<'a> {
    pub fn decode(data: &'a [u8]) -> Result<ShortUpdate<'a>, CodecError> {
        if data.len() < 4 {
            return Err(malformed("UPDATE_SHORT length"));
        }
        let item = format::u16_at(data, 0);
        let tail_len = format::u16_at(data, 2) as usize;
        let at = 4 + delta_len(data, 4)?;
        let delta = &data[4..at];
        let tail = data
            .get(at..at + tail_len)
            .ok_or_else(|| malformed("UPDATE_SHORT tail"))?;
        let rest = &data[at + tail_len..];
        let stamp = (!rest.is_empty()).then(|| Stamp::decode(rest)).transpose()?;
        Ok(ShortUpdate {
            item,
            delta,
            tail,
            stamp,
        })
    }

    /// The new version's tuple; `cx.new_tid` must be its own TID.
    pub fn tuple(&self, cx: &DeltaContext) -> Result<Vec<u8>, CodecError> {
        let mut t = vec![0u8; FIXED_HEADER + self.tail.len()];
        let mut at = 0;
        apply_header_delta(self.delta, &mut at, &mut t[..FIXED_HEADER], cx)?;
        t[FIXED_HEADER..].copy_from_slice(self.tail);
        Ok(t)
    }
}

/// A HEADERS record's data: versions detached, then headers written.
#[derive(Clone, Default, Debug, PartialEq, Eq)]
pub struct Headers {
    pub detached: Vec<u16>,
    pub written: Vec<(u16, [u8; HEADER_FIELDS])>,
}

impl Headers {
    /// Records that the header at byte `offset` of `page` was written.
    pub fn written_at(&mut self, page: &[u8], offset: usize) {
        let mut h = [0u8; HEADER_FIELDS];
        h.copy_from_slice(&page[offset..offset + HEADER_FIELDS]);
        self.written.push((offset as u16, h));
    }

    pub fn is_empty(&self) -> bool {
        self.detached.is_empty() && self.written.is_empty()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + 2 * self.detached.len() + 24 * self.written.len());
        push_detached(&mut out, &self.detached);
        for (at, h) in &self.written {
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(h);
        }
        out
    }

    pub fn decode(data: &[u8]) -> Result<Headers, CodecError> {
        let (detached, rest) = decode_detached(data, "HEADERS")?;
        if rest.len() % (2 + HEADER_FIELDS) != 0 {
            return Err(malformed("HEADERS length"));
        }
        Ok(Headers {
            detached,
            written: rest
                .chunks_exact(2 + HEADER_FIELDS)
                .map(|e| (format::u16_at(e, 0), e[2..].try_into().expect("chunk size")))
                .collect(),
        })
    }

    /// Redo: detaches, then writes the headers. `payload_block` is the
    /// record's block 1, if it registered one.
    pub fn apply(&self, page: &mut [u8], payload_block: Option<u32>) -> Result<(), CodecError> {
        replay_detaches(page, &self.detached, payload_block)?;
        for (at, h) in &self.written {
            let at = *at as usize;
            if at < format::PAGE_HEADER_SIZE || at + HEADER_FIELDS > page.len() {
                return Err(malformed("HEADERS offset"));
            }
            page[at..at + HEADER_FIELDS].copy_from_slice(h);
        }
        Ok(())
    }
}

/// Gives versions `items` of a compact page their own headers
/// ([`compact_page::detach`]). When the slots run out, the page's blob moves
/// to a payload page at the block `payload_block()` returns
/// ([`compact_page::move_blob`]) — at most once — and its image is returned.
/// The same steps serve the change and its redo (which names the block the
/// record registered and drops the image: it comes as a full-page image).
pub fn detach_items(
    page: &mut [u8],
    items: impl IntoIterator<Item = usize>,
    mut payload_block: impl FnMut() -> u32,
) -> Result<Option<page_image::PageImage>, CodecError> {
    let mut payload = None;
    for item in items {
        let mut done = compact_page::detach(page, item)?;
        if !done && payload.is_none() {
            payload = Some(compact_page::move_blob(page, payload_block())?);
            done = compact_page::detach(page, item)?;
        }
        if !done {
            return Err(CodecError::Layout("no room for a header".into()));
        }
    }
    Ok(payload)
}

/// `rm_mask` for pages these records change: what may differ between a
/// primary's page and its replay without being logged — the LSN and
/// checksum, the free space between `pd_lower` and `pd_upper`, page hint
/// flags, and the commit hint bits of every row header (set by visibility
/// checks without WAL; frozen headers keep their xmin bits, as heap's mask).
pub fn mask(page: &mut [u8]) {
    strata_base::page_layout::mask_header_and_hole(page);
    let kind = page_image::tag_of(page).and_then(|t| PageKind::from_u16(t.kind));
    let headers: Vec<usize> = (1..=page_image::item_count(page))
        .filter_map(|n| match kind {
            Some(PageKind::L0) => page_image::item_extent(page, n).map(|(off, _)| off),
            Some(PageKind::RunData) => crate::run_page::run_item_tuple(page, n).map(|(off, _)| off),
            _ => None,
        })
        .collect();
    for at in headers {
        if at + HEADER_FIELDS > page.len() {
            continue;
        }
        let mut mask = format::u16_at(page, at + 20);
        if mask & infomask::HEAP_XMIN_FROZEN == infomask::HEAP_XMIN_FROZEN {
            mask &= !(infomask::HEAP_XMAX_COMMITTED | infomask::HEAP_XMAX_INVALID);
        } else {
            mask &= !(infomask::HEAP_XMIN_FROZEN
                | infomask::HEAP_XMAX_COMMITTED
                | infomask::HEAP_XMAX_INVALID);
        }
        format::put_u16(page, at + 20, mask);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn update_blocks_round_trip() {
        let mut ins = Vec::new();
        super::push_insert(&mut ins, 7, &[1, 2, 3, 4, 5]);
        let mut h = super::Headers::default();
        h.written.push((48, [9u8; super::HEADER_FIELDS]));
        let both = super::encode_update(&ins, Some(&h));
        let (got, hdr) = super::decode_update(&both).unwrap();
        assert_eq!(got, vec![(7u16, &[1u8, 2, 3, 4, 5][..])]);
        assert_eq!(hdr, Some(h.clone()));
        let only_headers = super::encode_update(&[], Some(&h));
        assert_eq!(
            super::decode_update(&only_headers).unwrap(),
            (vec![], Some(h))
        );
        let only_insert = super::encode_update(&ins, None);
        assert_eq!(super::decode_update(&only_insert).unwrap().1, None);
        assert!(super::decode_update(&[9, 0, 1]).is_err());
    }

    use super::*;

    #[test]
    fn insert_entries_round_trip() {
        let mut data = Vec::new();
        push_insert(&mut data, 3, b"abc");
        push_insert(&mut data, 4, b"");
        push_insert(&mut data, 9, &[7u8; 300]);
        let got = inserts(&data).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], (3, &b"abc"[..]));
        assert_eq!(got[1], (4, &b""[..]));
        assert_eq!(got[2].0, 9);
        assert_eq!(got[2].1, &[7u8; 300][..]);
        assert!(inserts(&data[..data.len() - 1]).is_err());
        assert!(inserts(&data[..2]).is_err());
    }

    #[test]
    fn headers_replay_the_logged_bytes() {
        let mut page = vec![0u8; 8192];
        for (i, b) in page[100..130].iter_mut().enumerate() {
            *b = i as u8;
        }
        let mut rec = Headers::default();
        rec.written_at(&page, 100);
        let data = rec.encode();
        let back = Headers::decode(&data).unwrap();
        assert_eq!(back, rec);
        let mut replay = vec![0u8; 8192];
        back.apply(&mut replay, None).unwrap();
        assert_eq!(replay[100..122], page[100..122]);
        assert!(
            replay[122..].iter().all(|&b| b == 0),
            "only the fields before t_hoff"
        );
        assert!(Headers::decode(&data[..5]).is_err());
        assert!(Headers::decode(&[3, 0, 1, 0]).is_err());
        let mut far = rec;
        far.written[0].0 = 8180;
        assert!(far.apply(&mut replay, None).is_err());
    }

    /// A full compact page as a load writes it: versions of xmin 700
    /// sharing one header, rows of incompressible bytes, as many as fit.
    fn loaded_page() -> Vec<u8> {
        use crate::compressed_page::{self, Codec};
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let vs: Vec<(u64, Vec<u8>)> = (1000..1256u64)
            .map(|r| {
                let mut t = vec![0u8; 24];
                format::put_u32(&mut t, 0, 700);
                let (v, o) = format::tid_of_rowid(r);
                compact_page::put_ctid(&mut t, v, o);
                format::put_u16(&mut t, 18, 1);
                t[22] = 24;
                for _ in 0..24 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    t.push(seed as u8);
                }
                (r, t)
            })
            .collect();
        let refs: Vec<(u64, &[u8])> = vs.iter().map(|(r, t)| (*r, t.as_slice())).collect();
        (1..=refs.len())
            .rev()
            .find_map(|n| {
                let frame = compressed_page::compress(&refs[..n], Codec::Lz4);
                compact_page::build(9, &refs[..n], &frame)
            })
            .expect("some rows fit")
            .bytes()
            .to_vec()
    }

    /// Replaying a HEADERS record on the page as it was before the change
    /// gives the page the change made — also when the detaches ran out of
    /// slots and moved the blob — up to what `mask` hides.
    #[test]
    fn headers_redo_reproduces_detaches_and_a_blob_move() {
        let before = loaded_page();
        let mut after = before.clone();
        let items: Vec<usize> = (1..=page_image::item_count(&before)).collect();
        let mut moved_to = None;
        let image = detach_items(&mut after, items.iter().copied(), || {
            moved_to = Some(4242);
            4242
        })
        .unwrap();
        assert!(
            image.is_some() && moved_to == Some(4242),
            "detaching every version of a full page uses up its slots"
        );
        let mut rec = Headers {
            detached: items.iter().map(|&i| i as u16).collect(),
            ..Headers::default()
        };
        for &i in &items[..5] {
            let (at, _) = crate::run_page::run_item_tuple(&after, i).unwrap();
            format::put_u32(&mut after, at + 4, 800); // xmax
            rec.written_at(&after, at);
        }
        let data = rec.encode();
        let mut replay = before.clone();
        Headers::decode(&data)
            .unwrap()
            .apply(&mut replay, Some(4242))
            .unwrap();
        assert_eq!(replay, after);
        assert!(
            compact_page::check(&replay).is_empty(),
            "{:?}",
            compact_page::check(&replay)
        );
        // without its payload block the record cannot be replayed
        let mut bare = before.clone();
        assert!(Headers::decode(&data)
            .unwrap()
            .apply(&mut bare, None)
            .is_err());
    }

    #[test]
    fn mask_hides_hint_bits_and_the_lsn_only() {
        let page = loaded_page();
        let (at, _) = crate::run_page::run_item_tuple(&page, 1).unwrap();
        let mut hinted = page.clone();
        let m = format::u16_at(&hinted, at + 20)
            | infomask::HEAP_XMIN_COMMITTED
            | infomask::HEAP_XMAX_INVALID;
        format::put_u16(&mut hinted, at + 20, m);
        hinted[0..8].copy_from_slice(&0x1234_5678u64.to_le_bytes());
        let (mut a, mut b) = (page.clone(), hinted);
        mask(&mut a);
        mask(&mut b);
        assert_eq!(a, b);
        let mut stamped = page.clone();
        format::put_u32(&mut stamped, at + 4, 800);
        mask(&mut stamped);
        assert_ne!(a, stamped, "an xmax is not a hint");
    }

    fn header(xmin: u32, xmax: u32, cid: u32, ctid: (u32, u16), m2: u16, m: u16, hoff: u8) -> [u8; FIXED_HEADER] {
        let mut h = [0u8; FIXED_HEADER];
        format::put_u32(&mut h, 0, xmin);
        format::put_u32(&mut h, 4, xmax);
        format::put_u32(&mut h, 8, cid);
        compact_page::put_ctid(&mut h, ctid.0, ctid.1);
        format::put_u16(&mut h, 18, m2);
        format::put_u16(&mut h, 20, m);
        h[22] = hoff;
        h
    }

    #[test]
    fn header_deltas_round_trip_and_name_the_xid_and_new_tid() {
        let cx = DeltaContext {
            xid: 900,
            new_tid: Some((70_000, 12)),
        };
        let zero = [0u8; FIXED_HEADER];
        // a new version: xmin is the record's xid, t_ctid its own TID
        let new = header(900, 0, 3, (70_000, 12), 3 | 0x8000, 0x0802, 24);
        let d = encode_header_delta(&zero, &new, &cx);
        assert_eq!(d.len(), 2 + 4 + 2 + 2 + 1, "cid, masks and hoff spelled out");
        let mut h = zero;
        let mut at = 0;
        apply_header_delta(&d, &mut at, &mut h, &cx).unwrap();
        assert_eq!((h, at), (new, d.len()));
        // a stamp: xmax is the xid, t_ctid the new version's TID
        let old = header(500, 0, 0, (9, 4), 3, 0x0902, 24);
        let stamped = header(500, 900, 3, (70_000, 12), 3 | 0x4000, 0x0102, 24);
        let d = encode_header_delta(&old, &stamped, &cx);
        assert_eq!(d.len(), 2 + 4 + 2 + 2);
        let (mut h, mut at) = (old, 0);
        apply_header_delta(&d, &mut at, &mut h, &cx).unwrap();
        assert_eq!(h, stamped);
        // without the new TID or with another xid, the fields are spelled out
        let other = DeltaContext { xid: 901, new_tid: None };
        let d = encode_header_delta(&old, &stamped, &other);
        assert_eq!(d.len(), 2 + 4 + 4 + 6 + 2 + 2);
        let (mut h, mut at) = (old, 0);
        apply_header_delta(&d, &mut at, &mut h, &other).unwrap();
        assert_eq!(h, stamped);
        // CTID_NEW cannot be replayed without the new TID; damage is an error
        let d = encode_header_delta(&old, &stamped, &cx);
        let (mut h, mut at) = (old, 0);
        assert!(apply_header_delta(&d, &mut at, &mut h, &other).is_err());
        let (mut h, mut at) = (old, 0);
        assert!(apply_header_delta(&d[..d.len() - 1], &mut at, &mut h, &cx).is_err());
        let (mut h, mut at) = (old, 0);
        assert!(apply_header_delta(&[0xff, 0xff], &mut at, &mut h, &cx).is_err());
    }

    /// An UPDATE_SHORT stamp replayed on the page before the change gives
    /// the page the change made: a detach of a shared header and the stamp.
    #[test]
    fn short_update_stamp_redo_reproduces_the_change() {
        let before = loaded_page();
        let cx = DeltaContext {
            xid: 900,
            new_tid: None,
        };
        let mut after = before.clone();
        let item = 3usize;
        assert!(detach_items(&mut after, [item], || 0).unwrap().is_none());
        let (at, _) = page_image::item_extent(&after, item).unwrap();
        let mut old = [0u8; FIXED_HEADER];
        old.copy_from_slice(&after[at..at + FIXED_HEADER]);
        format::put_u32(&mut after, at + 4, 900);
        format::put_u32(&mut after, at + 8, 2);
        compact_page::put_ctid(&mut after[at..], 77, 5);
        let m2 = format::u16_at(&after, at + 18) | infomask::HEAP_HOT_UPDATED;
        format::put_u16(&mut after, at + 18, m2);
        let stamp = Stamp {
            detached: vec![item as u16],
            offset: at as u16,
            delta: encode_header_delta(&old, &after[at..at + FIXED_HEADER], &cx),
        };
        let mut data = Vec::new();
        stamp.encode(&mut data);
        let mut replay = before.clone();
        Stamp::decode(&data).unwrap().apply(&mut replay, &cx).unwrap();
        assert_eq!(replay, after);
        // block 0: the new version and, on the same page, the stamp
        let tuple = {
            let mut t = header(900, 0, 2, (77, 5), 2, 0x0802, 24).to_vec();
            t.extend_from_slice(&[0, 7, 0, 0, 0, 1, 2, 3, 4]);
            t
        };
        let with_new = DeltaContext {
            xid: 900,
            new_tid: Some((77, 5)),
        };
        let b0 = encode_short_update(5, &tuple, &with_new, Some(&stamp));
        let u = ShortUpdate::decode(&b0).unwrap();
        assert_eq!(u.item, 5);
        assert_eq!(u.tuple(&with_new).unwrap(), tuple);
        assert_eq!(u.stamp.as_ref(), Some(&stamp));
        assert!(b0.len() < 4 + tuple.len() + data.len(), "shorter than the tuple and a full header");
        let b0 = encode_short_update(5, &tuple, &with_new, None);
        assert_eq!(ShortUpdate::decode(&b0).unwrap().stamp, None);
        assert!(ShortUpdate::decode(&b0[..b0.len() - 10]).is_err());
    }
}
