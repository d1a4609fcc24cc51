//! Compact compressed RUN_DATA pages (format version 6). Pure: builds,
//! expands and reads page images; no Postgres calls.
//!
//! Version 3 pages keep a 32-byte stub (rowid and tuple header) per version
//! so that stamps, hint bits and visibility checks work in place; on short
//! rows that is most of the page. Version 6 drops the rowid from the page
//! body (a rowid map in the special space) and lets versions that nobody has
//! stamped *share* one header: rows a load or flush writes together usually
//! have identical headers (same xmin and cid, no xmax, hint bits alike) up to
//! `t_ctid`, which for them is their own TID. Their line pointers all point
//! at one 24-byte header whose `t_ctid` is (0,0), read as "this version's own
//! TID". Visibility checks and hint bits work on the shared header as they
//! would on each row's (they share what the checks read). A stamp (xmax,
//! lock, `t_ctid`, chain flags) is for one row only, so before the first stamp
//! of a version it gets a header of its own (*detached*) in the free space a
//! shared page keeps for that (one header slot per eight versions), which
//! changes a line pointer, `pd_upper` and 24 bytes. When no slot is left the
//! blob moves to a RUN_PAYLOAD page of its own, named by the head, and its
//! bytes become slots. Headers never move once a version owns one. Pages
//! that format versions 6 and 7 *expanded* (a header per version, state 0)
//! are read and stamped as they are.
//!
//! ```text
//!  +------------+----------------+------+----------------------+-------------------------------+-----+
//!  | PageHeader | lp[1] .. lp[n] | free | headers (24 B each)  | head | rowid map | blob (opt.) | tag |
//!  +------------+----------------+------+----------------------+-------------------------------+-----+
//!                                                               ^ pd_special                   ^ BLCKSZ - 16
//!  tag: version 6, kind RUN_DATA, flags RUN_COMPRESSED | RUN_COMPACT (1 | 4)
//!  lp i (lp_len 23): the header of version i — shared by several versions or its own
//!  header: t_xmin u32 | t_xmax u32 | t_cid u32 | t_ctid 6 | t_infomask2 u16 | t_infomask u16 | t_hoff u8
//!          (t_ctid (0,0) = the version's own TID; only versions with t_xmax 0, t_ctid = own TID,
//!           no HEAP_HOT_UPDATED, redirect or combo cid share)
//!  head (16 B): first_rowid u64 | payload_block u32 | nrows u16 | map u8 | state u8
//!          payload_block 0 = the blob follows the map; else the RUN_PAYLOAD page holding it
//!          state 1 = shared (detach before a stamp), 0 = every version has its own header
//!  rowid map: map 0 = dense, rowid of version i = first_rowid + i - 1;
//!             map 1 = u16 offset from first_rowid per version (padded to 8)
//!  blob: the version 3 blob (crc32 | frame_len | raw_len | nitems | codec | pad | frame),
//!        codec 1 = zstd, 2 = LZ4 block; crc over blob bytes 4..16, the frame and the n rowids
//!
//!  RUN_PAYLOAD page (kind 7, owner = run id): | PageHeader | free | blob | tag |, pd_special = blob
//! ```

use super::columnar::Attr;
use super::compressed_page::{self, CodecError, Frame, Opened, Payload, Sections, BLOB_HEADER, TUPLE_HEADER_SIZE};
use super::format::{self, PageKind, BLOCK_SIZE, PAGE_HEADER_SIZE, TAG_SIZE};
use super::page_image::{self, maxalign, PageImage};

/// RUN_DATA tag flag: the page has the version 6 compact layout (always
/// together with [`compressed_page::RUN_COMPRESSED`]).
pub const RUN_COMPACT: u32 = 4;
/// `lp_len` of a header (the fixed part of `HeapTupleHeaderData`).
pub const TUPLE_HEADER_LEN: usize = TUPLE_HEADER_SIZE;
/// Bytes of the head in front of the rowid map.
pub const HEAD_SIZE: usize = 16;
/// Bytes a header takes in the page body.
pub const HEADER_SLOT: usize = 24;
use strata_base::page_layout::ITEM_ID_SIZE;
const MAP_DENSE: u8 = 0;
const MAP_OFFSETS: u8 = 1;
const STATE_SHARED: u8 = 1;
/// Largest rowid span of a page with an offset map.
pub const MAX_SPAN: u64 = u16::MAX as u64;

use super::format::infomask::{
    HEAP_COMBOCID, HEAP_HOT_UPDATED, HEAP_XMAX_INVALID, HEAP_XMIN_COMMITTED, HEAP_XMIN_INVALID,
};
use super::format::REDIRECT_FLAG as REDIRECT;

/// Whether a page image is a version 6 compact RUN_DATA page.
pub fn is_compact(page: &[u8]) -> bool {
    page_image::tag_of(page).is_some_and(|t| {
        t.kind == PageKind::RunData as u16 && t.flags & RUN_COMPACT != 0
    })
}

/// The head of a compact page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub first_rowid: u64,
    pub payload_block: u32,
    pub nrows: u16,
    pub map: u8,
    pub shared: bool,
}

fn special(page: &[u8]) -> usize {
    format::u16_at(page, 16) as usize
}

/// The head of compact page `page` (unchecked; `lsm_verify` checks it).
pub fn head(page: &[u8]) -> Head {
    let at = special(page).min(BLOCK_SIZE - TAG_SIZE - HEAD_SIZE);
    Head {
        first_rowid: format::u64_at(page, at),
        payload_block: format::u32_at(page, at + 8),
        nrows: format::u16_at(page, at + 12),
        map: page[at + 14],
        shared: page[at + 15] == STATE_SHARED,
    }
}

/// Offset of the head's `payload_block` (a page move re-points it).
pub fn payload_block_at(page: &[u8]) -> usize {
    special(page) + 8
}

fn map_len(nrows: usize, map: u8) -> usize {
    if map == MAP_DENSE {
        0
    } else {
        maxalign(2 * nrows)
    }
}

/// A compact page with its head read once (readers that visit every
/// version of a page).
#[derive(Clone, Copy)]
pub struct View<'a> {
    page: &'a [u8],
    pub head: Head,
    map_at: usize,
}

impl<'a> View<'a> {
    pub fn of(page: &'a [u8]) -> View<'a> {
        let head = head(page);
        let map_at = special(page) + HEAD_SIZE;
        // a map past the page (damage) reads as offset 0: lsm_verify reports it
        let fits = map_at + map_len(head.nrows as usize, head.map) <= BLOCK_SIZE - TAG_SIZE;
        View {
            page,
            head: Head {
                map: if fits { head.map } else { MAP_DENSE },
                ..head
            },
            map_at,
        }
    }

    /// Rowid of version `item` (1-based).
    #[inline]
    pub fn rowid_of(&self, item: usize) -> Option<u64> {
        if item == 0 || item > self.head.nrows as usize {
            return None;
        }
        if self.head.map == MAP_DENSE {
            return Some(self.head.first_rowid + item as u64 - 1);
        }
        Some(self.head.first_rowid + format::u16_at(self.page, self.map_at + 2 * (item - 1)) as u64)
    }

    /// The header of version `item` as the row has it (see [`header`]).
    #[inline]
    pub fn header(&self, item: usize) -> Option<[u8; TUPLE_HEADER_SIZE]> {
        let (off, len) = page_image::item_extent(self.page, item)?;
        if len != TUPLE_HEADER_SIZE {
            return None;
        }
        let mut h = [0u8; TUPLE_HEADER_SIZE];
        h.copy_from_slice(&self.page[off..off + TUPLE_HEADER_SIZE]);
        if self.head.shared && ctid_is_zero(&h) {
            let (v, o) = format::tid_of_rowid(self.rowid_of(item)?);
            put_ctid(&mut h, v, o);
        }
        Some(h)
    }

    /// Version `item`'s header as stored in the page, and the TID to write
    /// into its `t_ctid` when it is a shared header (see [`header`]).
    #[inline]
    pub fn stored_header(&self, item: usize) -> Option<(&'a [u8], Option<(u32, u16)>)> {
        let (off, len) = page_image::item_extent(self.page, item)?;
        if len != TUPLE_HEADER_SIZE {
            return None;
        }
        let h = &self.page[off..off + TUPLE_HEADER_SIZE];
        let own = if self.head.shared && ctid_is_zero(h) {
            Some(format::tid_of_rowid(self.rowid_of(item)?))
        } else {
            None
        };
        Some((h, own))
    }

    /// Version `item`'s header and its rest from `payload`.
    #[inline]
    pub fn tuple_parts<'p>(
        &self,
        payload: &'p Payload,
        item: usize,
    ) -> Option<([u8; TUPLE_HEADER_SIZE], &'p [u8])> {
        Some((self.header(item)?, payload.rest(item)?))
    }
}

/// Rowid of version `item` (1-based).
pub fn rowid_of(page: &[u8], item: usize) -> Option<u64> {
    View::of(page).rowid_of(item)
}

/// Item (1-based) of `rowid`, if the page holds it.
pub fn item_of(page: &[u8], rowid: u64) -> Option<usize> {
    let h = head(page);
    let n = h.nrows as usize;
    let off = rowid.checked_sub(h.first_rowid)?;
    if h.map == MAP_DENSE {
        return (off < n as u64).then_some(off as usize + 1);
    }
    if off > MAX_SPAN {
        return None;
    }
    let base = special(page) + HEAD_SIZE;
    if base + 2 * n > BLOCK_SIZE - TAG_SIZE {
        return None;
    }
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match (format::u16_at(page, base + 2 * mid) as u64).cmp(&off) {
            std::cmp::Ordering::Equal => return Some(mid + 1),
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
        }
    }
    None
}

/// Rowids of all versions, in item order.
pub fn rowids(page: &[u8]) -> Vec<u64> {
    let v = View::of(page);
    (1..=v.head.nrows as usize).map_while(|i| v.rowid_of(i)).collect()
}

/// The blob in the page itself (None when it is on a payload page).
pub fn inline_blob(page: &[u8]) -> Option<&[u8]> {
    let h = head(page);
    if h.payload_block != 0 {
        return None;
    }
    let at = special(page) + HEAD_SIZE + map_len(h.nrows as usize, h.map);
    (at <= BLOCK_SIZE - TAG_SIZE).then(|| &page[at..BLOCK_SIZE - TAG_SIZE])
}

/// The blob of a RUN_PAYLOAD page.
pub fn payload_page_blob(page: &[u8]) -> &[u8] {
    let at = special(page).min(BLOCK_SIZE - TAG_SIZE);
    &page[at..BLOCK_SIZE - TAG_SIZE]
}

/// Checks and decompresses the payload of compact page `page`; `blob` is
/// its blob (from [`inline_blob`] or its payload page).
pub fn decode(page: &[u8], blob: &[u8], attrs: &[Attr]) -> Result<Payload, CodecError> {
    open(page, blob)?.into_payload(attrs)
}

/// Checks and decompresses the blob of compact page `page` without
/// rebuilding its rows (see [`compressed_page::Opened`]).
pub fn open(page: &[u8], blob: &[u8]) -> Result<Opened, CodecError> {
    let (n, ids) = checked_rowids(page)?;
    Opened::of_ids(blob, n, ids)
}

/// [`open`] for a reader of some columns: the blob checked and only its
/// rows section decompressed (see [`Sections`]); None when the payload is
/// row by row.
pub fn open_sections(page: &[u8], blob: &[u8]) -> Result<Option<Sections>, CodecError> {
    let (n, ids) = checked_rowids(page)?;
    Sections::open_ids(blob, n, ids)
}

/// The number of versions of `page`, checked against its head, and their
/// rowids (computed from the map as they are read: no list is built).
fn checked_rowids(page: &[u8]) -> Result<(usize, impl Iterator<Item = u64> + '_), CodecError> {
    let v = View::of(page);
    let n = v.head.nrows as usize;
    let map_fits = v.head.map == MAP_DENSE || v.map_at + 2 * n <= page.len();
    if page_image::item_count(page) != n || !map_fits {
        return Err(CodecError::Layout(format!(
            "{} line pointers, {} versions in the head",
            page_image::item_count(page),
            n
        )));
    }
    Ok((n, (1..=n).map(move |i| v.rowid_of(i).expect("1..=nrows"))))
}

/// Puts TID `(v, o)` into header bytes `h`.
pub fn put_ctid(h: &mut [u8], v: u32, o: u16) {
    format::put_u16(h, 12, (v >> 16) as u16);
    format::put_u16(h, 14, v as u16);
    format::put_u16(h, 16, o);
}

fn ctid_is_zero(h: &[u8]) -> bool {
    h[12..18].iter().all(|b| *b == 0)
}

/// The header of version `item` as the row has it: on a shared page, a
/// header's `t_ctid` (0,0) becomes the version's own TID.
pub fn header(page: &[u8], item: usize) -> Option<[u8; TUPLE_HEADER_SIZE]> {
    View::of(page).header(item)
}

/// Whether the header at byte `offset` of `page` is shared by the
/// versions nobody stamped (a stamp must expand the page first).
pub fn shares_header(page: &[u8], offset: usize) -> bool {
    is_compact(page)
        && head(page).shared
        && offset + TUPLE_HEADER_SIZE <= BLOCK_SIZE
        && ctid_is_zero(&page[offset..offset + TUPLE_HEADER_SIZE])
}

/// Version `item`'s header (see [`header`]) and its rest from `payload`.
pub fn tuple_parts<'a>(
    page: &[u8],
    payload: &'a Payload,
    item: usize,
) -> Option<([u8; TUPLE_HEADER_SIZE], &'a [u8])> {
    View::of(page).tuple_parts(payload, item)
}

/// Whether a version (tuple bytes, with its rowid) may share a header: no
/// xmax, `t_ctid` its own TID, not the root or member of an updated chain
/// link, no combo cid.
fn shareable(t: &[u8], rowid: u64) -> bool {
    let mut own = [0u8; 6];
    let (v, o) = format::tid_of_rowid(rowid);
    format::put_u16(&mut own, 0, (v >> 16) as u16);
    format::put_u16(&mut own, 2, v as u16);
    format::put_u16(&mut own, 4, o);
    format::u32_at(t, 4) == 0
        && t[12..18] == own
        && format::u16_at(t, 18) & (HEAP_HOT_UPDATED | REDIRECT) == 0
        && format::u16_at(t, 20) & HEAP_COMBOCID == 0
}

/// How versions map to headers on a page: `slots[i]` is the header index of
/// version i; `headers` the distinct headers (shared ones with `t_ctid` (0,0)).
struct Headers {
    headers: Vec<[u8; TUPLE_HEADER_SIZE]>,
    slots: Vec<usize>,
    shared: bool,
}

fn plan_headers(versions: &[(u64, &[u8])]) -> Headers {
    // xmins some version already hints committed: the hint holds for all
    let committed: Vec<u32> = versions
        .iter()
        .filter(|(_, t)| {
            format::u16_at(t, 20) & (HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID) == HEAP_XMIN_COMMITTED
        })
        .map(|(_, t)| format::u32_at(t, 0))
        .fold(Vec::new(), |mut v, x| {
            if !v.contains(&x) {
                v.push(x);
            }
            v
        });
    let mut out = Headers {
        headers: Vec::new(),
        slots: Vec::with_capacity(versions.len()),
        shared: false,
    };
    // shared headers seen so far: (header, index); a page has few
    let mut seen: Vec<usize> = Vec::new();
    for (rowid, t) in versions {
        let mut h = [0u8; TUPLE_HEADER_SIZE];
        h.copy_from_slice(&t[..TUPLE_HEADER_SIZE]);
        if !shareable(t, *rowid) {
            out.slots.push(out.headers.len());
            out.headers.push(h);
            continue;
        }
        out.shared = true;
        put_ctid(&mut h, 0, 0);
        let mut mask = format::u16_at(&h, 20) | HEAP_XMAX_INVALID;
        if mask & HEAP_XMIN_INVALID == 0 && committed.contains(&format::u32_at(&h, 0)) {
            mask |= HEAP_XMIN_COMMITTED;
        }
        format::put_u16(&mut h, 20, mask);
        match seen.iter().find(|&&i| out.headers[i] == h) {
            Some(&i) => out.slots.push(i),
            None => {
                seen.push(out.headers.len());
                out.slots.push(out.headers.len());
                out.headers.push(h);
            }
        }
    }
    out
}

/// The rowid map a page of `versions` needs; None when their span is too
/// wide for one page.
fn map_kind(versions: &[(u64, &[u8])]) -> Option<u8> {
    let (first, last) = (versions.first()?.0, versions.last()?.0);
    if last - first + 1 == versions.len() as u64 {
        Some(MAP_DENSE)
    } else {
        (last - first <= MAX_SPAN).then_some(MAP_OFFSETS)
    }
}

/// Bytes a compact page needs for `n` versions with `headers` distinct
/// headers, a map of kind `map` and a frame of `frame_len` bytes inline.
fn needed(n: usize, headers: usize, map: u8, frame_len: usize) -> usize {
    PAGE_HEADER_SIZE
        + n * ITEM_ID_SIZE
        + headers * HEADER_SLOT
        + HEAD_SIZE
        + map_len(n, map)
        + maxalign(BLOB_HEADER + frame_len)
        + TAG_SIZE
}

/// The header and rowid-map needs of versions being gathered for one
/// compact page, kept as they are added (the packer asks after each).
/// Counts at least the headers [`build`] makes (it may merge hint bits).
#[derive(Default)]
pub struct Estimate {
    n: usize,
    first: u64,
    last: u64,
    shared: Vec<[u8; TUPLE_HEADER_SIZE]>,
    private: usize,
}

impl Estimate {
    fn key(rowid: u64, t: &[u8]) -> Option<[u8; TUPLE_HEADER_SIZE]> {
        if !shareable(t, rowid) {
            return None;
        }
        let mut h = [0u8; TUPLE_HEADER_SIZE];
        h.copy_from_slice(&t[..TUPLE_HEADER_SIZE]);
        put_ctid(&mut h, 0, 0);
        let mask = format::u16_at(&h, 20) | HEAP_XMAX_INVALID;
        format::put_u16(&mut h, 20, mask);
        Some(h)
    }

    pub fn push(&mut self, rowid: u64, t: &[u8]) {
        if self.n == 0 {
            self.first = rowid;
        }
        self.n += 1;
        self.last = rowid;
        match Self::key(rowid, t) {
            Some(k) if !self.shared.contains(&k) => self.shared.push(k),
            Some(_) => {}
            None => self.private += 1,
        }
    }

    /// Whether the versions so far, `t` (with `rowid`) and a frame of
    /// `frame_len` bytes fit one compact page.
    pub fn fits_with(&self, rowid: u64, t: &[u8], frame_len: usize) -> bool {
        let n = self.n + 1;
        let first = if self.n == 0 { rowid } else { self.first };
        if n > format::ROWS_PER_VBLOCK as usize || rowid - first > MAX_SPAN {
            return false;
        }
        let map = if rowid - first + 1 == n as u64 {
            MAP_DENSE
        } else {
            MAP_OFFSETS
        };
        let key = Self::key(rowid, t);
        let headers = self.shared.len()
            + self.private
            + match key {
                Some(k) => !self.shared.contains(&k) as usize,
                None => 1,
            };
        let shared = !self.shared.is_empty() || key.is_some();
        let reserve = if shared { stamp_reserve(n) } else { 0 };
        needed(n, headers, map, frame_len) + reserve <= BLOCK_SIZE
    }
}

/// Builds a compact page of `versions` (rowid order) from their frame (see
/// [`compressed_page::compress`]); None when it does not fit.
pub fn build(run_id: u32, versions: &[(u64, &[u8])], frame: &Frame) -> Option<PageImage> {
    let n = versions.len();
    let map = map_kind(versions)?;
    if n == 0 || n > format::ROWS_PER_VBLOCK as usize {
        return None;
    }
    let plan = plan_headers(versions);
    let reserve = if plan.shared { stamp_reserve(n) } else { 0 };
    if needed(n, plan.headers.len(), map, frame.bytes.len()) + reserve > BLOCK_SIZE {
        return None;
    }
    let blob_len = maxalign(BLOB_HEADER + frame.bytes.len());
    let extra = HEAD_SIZE + map_len(n, map) + blob_len;
    let flags = compressed_page::RUN_COMPRESSED | RUN_COMPACT;
    let mut page = PageImage::with_special(PageKind::RunData, run_id, flags, extra);
    let mut items = vec![0usize; plan.headers.len()];
    for (i, &slot) in plan.slots.iter().enumerate() {
        if items[slot] == 0 {
            if !page.add_item(&[&plan.headers[slot]]) {
                return None;
            }
            items[slot] = i + 1;
        } else if !page.add_shared_line_pointer(items[slot]) {
            return None;
        }
    }
    let first = versions[0].0;
    let head = head_bytes(first, 0, n, map, plan.shared);
    let mut offsets = vec![0u8; map_len(n, map)];
    if map == MAP_OFFSETS {
        for (i, (rowid, _)) in versions.iter().enumerate() {
            format::put_u16(&mut offsets, 2 * i, (rowid - first) as u16);
        }
    }
    let rowids: Vec<u64> = versions.iter().map(|(r, _)| *r).collect();
    let blob = compressed_page::blob_header(frame, &rowids);
    page.write_special(&[&head, &offsets, &blob, &frame.bytes]);
    Some(page)
}

fn head_bytes(first: u64, payload_block: u32, n: usize, map: u8, shared: bool) -> [u8; HEAD_SIZE] {
    let mut head = [0u8; HEAD_SIZE];
    format::put_u64(&mut head, 0, first);
    format::put_u32(&mut head, 8, payload_block);
    format::put_u16(&mut head, 12, n as u16);
    head[14] = map;
    head[15] = if shared { STATE_SHARED } else { 0 };
    head
}

/// Header slots a shared page keeps free when it is written, for `n`
/// versions: one per eight versions, so that stamps give versions their own
/// header in place ([`detach`]) instead of rewriting the page.
fn stamp_reserve(n: usize) -> usize {
    HEADER_SLOT * n.div_ceil(8)
}

/// Free header slots of a compact page: between the line pointers and the
/// headers, and above the highest header (what a moved blob left).
pub fn free_slots(page: &[u8]) -> usize {
    let (lower, upper) = (format::u16_at(page, 12) as usize, format::u16_at(page, 14) as usize);
    let (top, special) = top_gap(page);
    upper.saturating_sub(maxalign(lower)) / HEADER_SLOT + (special - top) / HEADER_SLOT
}

/// The free bytes `[top, pd_special)` above the highest header: on a page
/// whose blob moved to a payload page, its old place (headers fill it
/// upwards, so it stays one range).
fn top_gap(page: &[u8]) -> (usize, usize) {
    let special = special(page).min(BLOCK_SIZE - TAG_SIZE);
    let top = (1..=page_image::item_count(page))
        .filter_map(|i| page_image::item_extent(page, i))
        .map(|(off, _)| off + HEADER_SLOT)
        .max()
        .unwrap_or(special);
    (top.min(special), special)
}

/// Whether version `item`'s line pointer points at a shared header, and
/// whether no other line pointer does.
fn sharing(page: &[u8], item: usize) -> Result<(bool, bool), CodecError> {
    let Some((off, TUPLE_HEADER_SIZE)) = page_image::item_extent(page, item) else {
        return Err(CodecError::Layout("a line pointer is not a header".into()));
    };
    if !head(page).shared || !ctid_is_zero(&page[off..off + TUPLE_HEADER_SIZE]) {
        return Ok((false, false));
    }
    let others = (1..=page_image::item_count(page))
        .any(|i| i != item && page_image::item_extent(page, i).is_some_and(|(o, _)| o == off));
    Ok((true, !others))
}

/// Gives version `item` (1-based) of shared compact page `page` a header of
/// its own before a stamp: the shared header itself when no other version
/// points at it (its `t_ctid` set to the version's TID), else a copy with
/// that `t_ctid` in a free slot, its line pointer pointed at it. Nothing
/// moves — the shared header stays for the versions still sharing it,
/// headers other versions own stay where they are — so a pointer to any
/// header stays valid, and a few bytes change (a small WAL record). True
/// when the version owns its header (also when it did already); false,
/// with nothing changed, when it needs a slot and none is free
/// ([`move_blob`] makes room).
pub fn detach(page: &mut [u8], item: usize) -> Result<bool, CodecError> {
    let (shares, alone) = sharing(page, item)?;
    if !shares {
        return Ok(true);
    }
    let Some(h) = View::of(page).header(item) else {
        return Err(CodecError::Layout("a version without a rowid".into()));
    };
    let (off, _) = page_image::item_extent(page, item).expect("checked by sharing");
    if alone {
        page[off..off + TUPLE_HEADER_SIZE].copy_from_slice(&h);
        return Ok(true);
    }
    let (top, special) = top_gap(page);
    let (lower, upper) = (format::u16_at(page, 12) as usize, format::u16_at(page, 14) as usize);
    let at = if special - top >= HEADER_SLOT {
        top
    } else if upper >= maxalign(lower) + HEADER_SLOT {
        format::put_u16(page, 14, (upper - HEADER_SLOT) as u16);
        upper - HEADER_SLOT
    } else {
        return Ok(false);
    };
    page[at..at + TUPLE_HEADER_SIZE].copy_from_slice(&h);
    page[at + TUPLE_HEADER_SIZE..at + HEADER_SLOT].fill(0);
    page_image::set_item(page, item, at, TUPLE_HEADER_SIZE);
    Ok(true)
}

/// Moves the blob of compact page `page` (in place) to a new RUN_PAYLOAD
/// page, returned, that is to be written at `payload_block`: the head and
/// rowid map move to the end of the page and name that block, and the
/// bytes the blob used become free header slots (left as they are: only
/// the head, map and page header change, a small WAL record next to the
/// payload page's image). The page is marked with this format version (an
/// older build that knows only expanded pages with a moved blob refuses
/// it instead of misreading it).
pub fn move_blob(page: &mut [u8], payload_block: u32) -> Result<PageImage, CodecError> {
    let bad = |m: &str| Err(CodecError::Layout(m.to_string()));
    let Some(tag) = page_image::tag_of(page) else {
        return bad("not an lsm page");
    };
    let h = head(page);
    let Some(blob) = inline_blob(page) else {
        return bad("the blob is on a payload page already");
    };
    let frame_len = format::u32_at(blob, 4) as usize;
    if BLOB_HEADER + frame_len > blob.len() {
        return bad("frame overruns the page");
    }
    let blob = &blob[..maxalign(BLOB_HEADER + frame_len)];
    let mut payload = PageImage::with_special(PageKind::RunPayload, tag.vblock, 0, blob.len());
    payload.write_special(&[blob]);
    let special = special(page);
    let map = map_len(h.nrows as usize, h.map);
    let new_special = BLOCK_SIZE - TAG_SIZE - HEAD_SIZE - map;
    let offsets = page[special + HEAD_SIZE..special + HEAD_SIZE + map].to_vec();
    let head = head_bytes(h.first_rowid, payload_block, h.nrows as usize, h.map, h.shared);
    page[new_special..new_special + HEAD_SIZE].copy_from_slice(&head);
    page[new_special + HEAD_SIZE..new_special + HEAD_SIZE + map].copy_from_slice(&offsets);
    format::put_u16(page, 16, new_special as u16);
    format::put_u16(page, BLOCK_SIZE - TAG_SIZE + 4, format::FORMAT_VERSION);
    Ok(payload)
}

/// Problems of a compact page's layout (for `lsm_verify`): line pointers
/// that are not headers, a head that disagrees with the line pointers, a
/// rowid map out of order, shared headers on a page not marked shared.
pub fn check(page: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let h = head(page);
    let n = page_image::item_count(page);
    if h.nrows as usize != n || n == 0 || n > format::ROWS_PER_VBLOCK as usize {
        out.push(format!("{n} line pointers, {} versions in the head", h.nrows));
        return out;
    }
    if h.map > MAP_OFFSETS {
        out.push(format!("unknown rowid map {}", h.map));
        return out;
    }
    if special(page) + HEAD_SIZE + map_len(n, h.map) > BLOCK_SIZE - TAG_SIZE {
        out.push("rowid map overruns the page".into());
        return out;
    }
    let ids = rowids(page);
    if ids.windows(2).any(|w| w[0] >= w[1]) {
        out.push("rowid map not increasing".into());
    }
    let mut offsets = std::collections::HashSet::new();
    for item in 1..=n {
        match page_image::item_extent(page, item) {
            Some((off, TUPLE_HEADER_SIZE)) => {
                let fresh = offsets.insert(off);
                if !h.shared && (!fresh || ctid_is_zero(&page[off..off + TUPLE_HEADER_SIZE])) {
                    out.push(format!("version {item} shares a header on an expanded page"));
                }
            }
            _ => out.push(format!("line pointer {item} is not a header")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compressed_page::Codec;

    /// A tuple with header fields as a load writes them: xmin, cid 0,
    /// t_ctid its own TID, t_hoff 24, then `data`.
    fn tuple(rowid: u64, xmin: u32, data: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 24];
        format::put_u32(&mut t, 0, xmin);
        let (v, o) = format::tid_of_rowid(rowid);
        put_ctid(&mut t, v, o);
        format::put_u16(&mut t, 18, 3);
        t[22] = 24;
        t.extend_from_slice(data);
        t
    }

    fn rows(rowids: impl Iterator<Item = u64>, xmin: impl Fn(u64) -> u32) -> Vec<(u64, Vec<u8>)> {
        rowids
            .map(|r| {
                let text = format!("user{r:07}@example.com status=open {}", r % 7);
                (r, tuple(r, xmin(r), text.as_bytes()))
            })
            .collect()
    }

    fn page_of(vs: &[(u64, Vec<u8>)], codec: Codec) -> Option<PageImage> {
        let refs: Vec<(u64, &[u8])> = vs.iter().map(|(r, t)| (*r, t.as_slice())).collect();
        build(9, &refs, &compressed_page::compress(&refs, codec))
    }

    fn assert_round_trip(page: &[u8], blob: &[u8], vs: &[(u64, Vec<u8>)]) {
        let payload = decode(page, blob, &[]).unwrap();
        let opened = open(page, blob).unwrap();
        assert!(opened.one(&[], 0).is_err());
        assert!(opened.one(&[], vs.len() + 1).is_err());
        for (i, (rowid, t)) in vs.iter().enumerate() {
            // a point lookup's rebuild of one version equals the page's
            assert_eq!(opened.one(&[], i + 1).unwrap(), &t[TUPLE_HEADER_SIZE..]);
            assert_eq!(rowid_of(page, i + 1), Some(*rowid));
            assert_eq!(item_of(page, *rowid), Some(i + 1));
            let (h, rest) = tuple_parts(page, &payload, i + 1).unwrap();
            // headers come back as written, up to hint bits a page shares
            assert_eq!(&h[..20], &t[..20], "version {i}");
            assert_eq!(rest, &t[TUPLE_HEADER_SIZE..]);
        }
    }

    #[test]
    fn a_load_shares_one_header_and_packs_256_rows() {
        let vs = rows(1000..1256, |_| 700);
        for codec in [Codec::Zstd(1), Codec::Lz4] {
            let page = page_of(&vs, codec).expect("fits");
            let p = page.bytes();
            assert!(is_compact(p));
            assert!(compressed_page::is_compressed(p));
            let h = head(p);
            assert_eq!((h.first_rowid, h.nrows, h.map, h.shared), (1000, 256, MAP_DENSE, true));
            // one header for all
            let offs: std::collections::HashSet<usize> =
                (1..=256).map(|i| page_image::item_extent(p, i).unwrap().0).collect();
            assert_eq!(offs.len(), 1);
            assert!(check(p).is_empty(), "{:?}", check(p));
            assert_round_trip(p, inline_blob(p).unwrap(), &vs);
            assert_eq!(item_of(p, 999), None);
            assert_eq!(item_of(p, 1256), None);
        }
    }

    /// The page of `refs` with `frame`: it checks clean and decodes to
    /// every version's bytes.
    fn built_whole(refs: &[(u64, &[u8])], frame: &Frame, attrs: &[Attr]) -> PageImage {
        let page = build(9, refs, frame).expect("fits");
        let p = page.bytes();
        assert!(check(p).is_empty(), "{:?}", check(p));
        let payload = decode(p, inline_blob(p).unwrap(), attrs).unwrap();
        for (i, (_, t)) in refs.iter().enumerate() {
            assert_eq!(payload.rest(i + 1).unwrap(), &t[TUPLE_HEADER_SIZE..]);
        }
        page
    }

    /// A tuple of a loaded run at `rowid`: xmin 700, `t_ctid` its own TID.
    fn stored_at(mut t: Vec<u8>, rowid: u64) -> (u64, Vec<u8>) {
        format::put_u32(&mut t, 0, 700);
        let (v, o) = format::tid_of_rowid(rowid);
        put_ctid(&mut t, v, o);
        (rowid, t)
    }

    /// Version 7 pages compress each column on its own: a reader of some
    /// columns decompresses those (and the rows section) alone, a full read
    /// gives what one frame (version 6) gives, and damage is caught by the
    /// crc before anything is decompressed.
    #[test]
    fn column_sections_decode_alone_and_like_one_frame() {
        use crate::columnar::tests::{short_text, tuple as row};
        use crate::columnar::{self, Attr};
        let attrs = [
            Attr { len: 8, align: 8, byval: true },
            Attr { len: 4, align: 4, byval: true },
            Attr { len: -1, align: 4, byval: false },
            Attr { len: -1, align: 4, byval: false },
        ];
        let vs: Vec<(u64, Vec<u8>)> = (0..200u64)
            .map(|i| {
                let t = row(
                    &attrs,
                    &[
                        Some((i as i64 * 10).to_le_bytes().to_vec()),
                        Some(((i % 7) as i32).to_le_bytes().to_vec()),
                        Some(short_text(&format!("user{i}@example.com"))),
                        Some(short_text(["new", "open", "done"][i as usize % 3])),
                    ],
                );
                stored_at(t, 3000 + i)
            })
            .collect();
        let refs: Vec<(u64, &[u8])> = vs.iter().map(|(r, t)| (*r, t.as_slice())).collect();
        let tuples: Vec<&[u8]> = vs.iter().map(|(_, t)| t.as_slice()).collect();
        let plain_raw = columnar::encode(&attrs, &tuples, false).unwrap();
        let dict_raw = columnar::encode(&attrs, &tuples, true).unwrap();
        // the status column as a dictionary: three values and a byte per row
        assert!(dict_raw.len() + 600 < plain_raw.len(), "{} vs {}", dict_raw.len(), plain_raw.len());
        let one = compressed_page::compress_columns(&refs, Codec::Lz4, &attrs).unwrap();
        let sectioned = compressed_page::compress_sections(&refs, Codec::Lz4, &attrs, false, None).unwrap();
        let dict = compressed_page::compress_sections(&refs, Codec::Lz4, &attrs, true, None).unwrap();
        assert_eq!(one.layout, compressed_page::LAYOUT_COLUMNS);
        assert_eq!(sectioned.layout, compressed_page::LAYOUT_SECTIONS);
        assert_eq!(dict.layout, compressed_page::LAYOUT_DICT_SECTIONS);
        for frame in [one, sectioned, dict] {
            let sectioned = compressed_page::is_sectioned(frame.layout);
            let raw = if frame.layout == compressed_page::LAYOUT_DICT_SECTIONS { &dict_raw } else { &plain_raw };
            let page = built_whole(&refs, &frame, &attrs);
            let p = page.bytes();
            let blob = inline_blob(p).unwrap();
            let mut lazy = open_sections(p, blob).unwrap().expect("column-wise");
            if sectioned {
                assert_eq!(lazy.len(), 5, "rows section and four columns");
                // only the rows section so far
                let (at, len) = lazy.span(2).unwrap();
                assert!(lazy.raw()[at..at + len].iter().all(|b| *b == 0));
                assert_eq!(lazy.raw()[..lazy.span(0).unwrap().1], raw[..lazy.span(0).unwrap().1]);
            }
            for i in 0..lazy.len() {
                lazy.ensure(i).unwrap();
            }
            assert_eq!(lazy.raw(), &raw[..]);
            // a flipped byte in the last section: the crc says so at open
            let mut bad = p.to_vec();
            let (off, _) = page_image::item_extent(p, 1).unwrap();
            let blob_at = blob.as_ptr() as usize - p.as_ptr() as usize;
            let last = blob_at + BLOB_HEADER + frame.bytes.len() - 1;
            assert!(last > off);
            bad[last] ^= 0x55;
            let damaged = inline_blob(&bad).unwrap();
            assert!(matches!(open_sections(&bad, damaged), Err(CodecError::Checksum { .. })));
        }
    }

    /// Version 10 pages store a section with zstd where lz4 barely
    /// shrinks it (hex digests): smaller pages that read back the same, the
    /// other sections staying lz4.
    #[test]
    fn sections_lz4_leaves_large_go_zstd() {
        use crate::columnar::tests::{short_text, tuple as row};
        use crate::columnar::{self, Attr};
        let attrs = [
            Attr { len: 4, align: 4, byval: true },
            Attr { len: -1, align: 4, byval: false },
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let vs: Vec<(u64, Vec<u8>)> = (0..150u64)
            .map(|i| {
                let hex: String = (0..32)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        char::from_digit((x % 16) as u32, 16).unwrap()
                    })
                    .collect();
                let t = row(
                    &attrs,
                    &[Some((i as i32).to_le_bytes().to_vec()), Some(short_text(&hex))],
                );
                stored_at(t, 3000 + i)
            })
            .collect();
        let refs: Vec<(u64, &[u8])> = vs.iter().map(|(r, t)| (*r, t.as_slice())).collect();
        let tuples: Vec<&[u8]> = vs.iter().map(|(_, t)| t.as_slice()).collect();
        let raw = columnar::encode(&attrs, &tuples, true).unwrap();
        let lz4 = compressed_page::compress_sections(&refs, Codec::Lz4, &attrs, true, None).unwrap();
        let mixed = compressed_page::compress_sections(&refs, Codec::Lz4, &attrs, true, Some(1)).unwrap();
        assert_eq!(mixed.layout, compressed_page::LAYOUT_MIXED_SECTIONS);
        assert!(
            (mixed.bytes.len() as f64) < 0.8 * lz4.bytes.len() as f64,
            "{} vs {}",
            mixed.bytes.len(),
            lz4.bytes.len()
        );
        // the directory flags the digest column alone
        let flags: Vec<bool> = (0..3)
            .map(|i| format::u32_at(&mixed.bytes, 2 + 8 * i) & compressed_page::ZSTD_SECTION != 0)
            .collect();
        assert_eq!(flags, [false, false, true]);
        let page = built_whole(&refs, &mixed, &attrs);
        let p = page.bytes();
        let blob = inline_blob(p).unwrap();
        let mut lazy = open_sections(p, blob).unwrap().expect("column-wise");
        for i in 0..lazy.len() {
            lazy.ensure(i).unwrap();
        }
        assert_eq!(lazy.raw(), &raw[..]);
        // a zstd codec asks for no mixing; without dictionaries neither
        let z = compressed_page::compress_sections(&refs, Codec::Zstd(1), &attrs, true, Some(1)).unwrap();
        assert_eq!(z.layout, compressed_page::LAYOUT_DICT_SECTIONS);
        let plain = compressed_page::compress_sections(&refs, Codec::Lz4, &attrs, false, Some(1)).unwrap();
        assert_eq!(plain.layout, compressed_page::LAYOUT_SECTIONS);
    }

    #[test]
    fn gaps_use_an_offset_map_and_different_xmins_their_own_headers() {
        let vs = rows((0..200u64).map(|i| 5000 + i * 3), |r| 800 + (r % 2) as u32);
        let page = page_of(&vs, Codec::Lz4).expect("fits");
        let p = page.bytes();
        let h = head(p);
        assert_eq!(h.map, MAP_OFFSETS);
        let offs: std::collections::HashSet<usize> =
            (1..=200).map(|i| page_image::item_extent(p, i).unwrap().0).collect();
        assert_eq!(offs.len(), 2);
        assert_round_trip(p, inline_blob(p).unwrap(), &vs);
        assert_eq!(item_of(p, 5001), None);
        // a span wider than the map can say is refused
        let wide = rows([1u64, 70_000].into_iter(), |_| 5);
        assert!(page_of(&wide, Codec::Lz4).is_none());
    }

    #[test]
    fn stamped_versions_keep_their_own_headers() {
        let mut vs = rows(100..140, |_| 900);
        // version 5 was deleted (xmax) and version 6 is a chain's root
        format::put_u32(&mut vs[4].1, 4, 950);
        let hot = format::u16_at(&vs[5].1, 18) | HEAP_HOT_UPDATED;
        format::put_u16(&mut vs[5].1, 18, hot);
        let page = page_of(&vs, Codec::Zstd(1)).unwrap();
        let p = page.bytes();
        let offs: std::collections::HashSet<usize> =
            (1..=40).map(|i| page_image::item_extent(p, i).unwrap().0).collect();
        assert_eq!(offs.len(), 3);
        assert_round_trip(p, inline_blob(p).unwrap(), &vs);
    }

    #[test]
    fn every_version_gets_its_own_header_and_headers_never_move() {
        // small rows: the free slots suffice; wide rows: the blob moves
        for (n, width, moves) in [(40usize, 10usize, false), (256, 60, true)] {
            let vs: Vec<(u64, Vec<u8>)> = (0..n as u64)
                .map(|i| (300 + i, tuple(300 + i, 42, format!("{i:0width$}").as_bytes())))
                .collect();
            let page = page_of(&vs, Codec::Lz4).unwrap();
            let mut p = page.bytes().to_vec();
            let mut owned: Vec<(usize, usize)> = Vec::new();
            let mut payload = None;
            for i in (1..=n).rev() {
                if !detach(&mut p, i).unwrap() {
                    assert!(payload.is_none(), "the blob moves once");
                    payload = Some(move_blob(&mut p, 77).unwrap());
                    assert_eq!(head(&p).payload_block, 77);
                    assert_eq!(page_image::tag_of(&p).unwrap().version, format::FORMAT_VERSION);
                    assert!(detach(&mut p, i).unwrap());
                }
                owned.push((i, page_image::item_extent(&p, i).unwrap().0));
                // headers already owned stay where they were
                for &(j, off) in &owned {
                    assert_eq!(page_image::item_extent(&p, j).unwrap().0, off);
                }
            }
            assert_eq!(payload.is_some(), moves);
            let offs: std::collections::HashSet<usize> = owned.iter().map(|&(_, o)| o).collect();
            assert_eq!(offs.len(), n, "every version has a header of its own");
            assert!(check(&p).is_empty(), "{:?}", check(&p));
            let blob = match &payload {
                Some(pp) => {
                    let tag = page_image::tag_of(pp.bytes()).unwrap();
                    assert_eq!((tag.kind, tag.vblock), (PageKind::RunPayload as u16, 9));
                    payload_page_blob(pp.bytes()).to_vec()
                }
                None => inline_blob(&p).unwrap().to_vec(),
            };
            assert_round_trip(&p, &blob, &vs);
            // every header is the version's own, with its TID in t_ctid
            for i in 1..=n {
                let (off, _) = page_image::item_extent(&p, i).unwrap();
                assert_eq!(&p[off + 12..off + 18], &vs[i - 1].1[12..18]);
            }
        }
    }

    #[test]
    fn a_header_shared_by_no_other_version_is_detached_in_place() {
        // every version its own xmin: each has a shared-form header alone
        let vs = rows(10..30, |r| 1000 + r as u32);
        let page = page_of(&vs, Codec::Lz4).unwrap();
        let mut p = page.bytes().to_vec();
        assert!(head(&p).shared);
        let (free, upper) = (free_slots(&p), format::u16_at(&p, 14));
        for i in 1..=20 {
            let at = page_image::item_extent(&p, i).unwrap().0;
            assert!(detach(&mut p, i).unwrap());
            assert_eq!(page_image::item_extent(&p, i).unwrap().0, at);
            assert!(!shares_header(&p, at));
        }
        assert_eq!((free_slots(&p), format::u16_at(&p, 14)), (free, upper));
        assert_round_trip(&p, inline_blob(&p).unwrap(), &vs);
    }

    #[test]
    fn detaching_gives_one_version_its_own_header_in_place() {
        let vs = rows(500..756, |_| 77);
        let page = page_of(&vs, Codec::Lz4).unwrap();
        let mut p = page.bytes().to_vec();
        let shared_at = page_image::item_extent(&p, 1).unwrap().0;
        // a shared page keeps a slot per eight versions free for this
        assert!(free_slots(&p) >= 256 / 8, "{} free slots", free_slots(&p));
        let before = p.clone();
        assert!(detach(&mut p, 10).unwrap());
        let (off, len) = page_image::item_extent(&p, 10).unwrap();
        assert_eq!(len, TUPLE_HEADER_SIZE);
        assert_ne!(off, shared_at);
        assert_eq!(format::u16_at(&p, 14) as usize, off);
        // the version's header has its own TID; the others still share
        assert_eq!(&p[off + 12..off + 18], &vs[9].1[12..18]);
        assert_eq!(page_image::item_extent(&p, 11).unwrap().0, shared_at);
        assert!(head(&p).shared && check(&p).is_empty(), "{:?}", check(&p));
        assert_round_trip(&p, inline_blob(&p).unwrap(), &vs);
        // a few bytes changed: the line pointer, pd_upper and the header
        let changed = p.iter().zip(&before).filter(|(a, b)| a != b).count();
        assert!(changed <= 4 + 2 + HEADER_SLOT, "{changed} bytes changed");
        // detaching again changes nothing; the reserve runs out at last
        let snapshot = p.clone();
        assert!(detach(&mut p, 10).unwrap());
        assert_eq!(p, snapshot);
        let mut i = 11;
        while detach(&mut p, i).unwrap() {
            i += 1;
        }
        assert!(i > 10 + 256 / 8);
        let full = p.clone();
        assert!(!detach(&mut p, 256).unwrap());
        assert_eq!(p, full, "no room: nothing changed");
        assert_round_trip(&p, inline_blob(&p).unwrap(), &vs);
    }

    #[test]
    fn corruption_is_detected() {
        let vs = rows(10..60, |_| 3);
        let good = page_of(&vs, Codec::Lz4).unwrap().bytes().to_vec();
        let blob_at = special(&good) + HEAD_SIZE;
        let mut bad = good.clone();
        bad[blob_at + BLOB_HEADER + 3] ^= 0x40;
        assert!(matches!(
            decode(&bad, inline_blob(&bad).unwrap(), &[]),
            Err(CodecError::Checksum { .. })
        ));
        // the first rowid is covered by the crc through the rowids
        let mut bad = good.clone();
        bad[special(&good)] ^= 1;
        assert!(decode(&bad, inline_blob(&bad).unwrap(), &[]).is_err());
        // a head that disagrees with the line pointers
        let at = special(&good) + 12;
        let mut bad = good;
        format::put_u16(&mut bad, at, 49);
        assert!(!check(&bad).is_empty());
        assert!(decode(&bad, inline_blob(&bad).unwrap(), &[]).is_err());
    }
}
