//! Building and reading `lsm` page images as byte slices. Pure: flushes build
//! run pages here and the Postgres side only copies finished images into
//! buffers; readers parse pages (pinned buffers or copies) without pointer
//! arithmetic. Layouts are in [`super::format`].

use super::columnar::Attr;
use super::compact_page;
use super::compressed_page::{self, Codec, Frame};
use super::format::{
    self, PageKind, PageTag, BLOCK_SIZE, FENCE_SIZE, MAGIC, PAGE_HEADER_SIZE, ROWID_PREFIX,
    TAG_SIZE,
};

const ITEM_ID_SIZE: usize = 4;
const LP_NORMAL: u32 = 1;
const SPECIAL_AT: usize = BLOCK_SIZE - TAG_SIZE;

pub fn maxalign(n: usize) -> usize {
    (n + 7) & !7
}

/// A page under construction: standard header, line pointers growing up,
/// items growing down, the tag in the special space.
pub struct PageImage {
    bytes: Vec<u8>,
}

impl PageImage {
    pub fn new(kind: PageKind, owner: u32, flags: u32) -> PageImage {
        PageImage::with_special(kind, owner, flags, 0)
    }

    /// A page whose special space holds `extra` (a multiple of 8) bytes in
    /// front of the tag (compressed run pages keep their blob there).
    pub fn with_special(kind: PageKind, owner: u32, flags: u32, extra: usize) -> PageImage {
        debug_assert!(extra % 8 == 0 && extra < SPECIAL_AT - PAGE_HEADER_SIZE);
        let special = SPECIAL_AT - extra;
        let mut bytes = vec![0u8; BLOCK_SIZE];
        format::put_u16(&mut bytes, 12, PAGE_HEADER_SIZE as u16); // pd_lower
        format::put_u16(&mut bytes, 14, special as u16); // pd_upper
        format::put_u16(&mut bytes, 16, special as u16); // pd_special
        format::put_u16(&mut bytes, 18, (BLOCK_SIZE as u16) | 4); // size | layout version 4
        let tag = PageTag {
            flags,
            ..PageTag::new(kind, owner)
        };
        format::put_u32(&mut bytes, SPECIAL_AT, tag.magic);
        format::put_u16(&mut bytes, SPECIAL_AT + 4, tag.version);
        format::put_u16(&mut bytes, SPECIAL_AT + 6, tag.kind);
        format::put_u32(&mut bytes, SPECIAL_AT + 8, tag.vblock);
        format::put_u32(&mut bytes, SPECIAL_AT + 12, tag.flags);
        PageImage { bytes }
    }

    /// Writes `parts` at the start of the special space (see [`with_special`]).
    pub fn write_special(&mut self, parts: &[&[u8]]) {
        let mut at = format::u16_at(&self.bytes, 16) as usize;
        for p in parts {
            assert!(at + p.len() <= SPECIAL_AT, "special space overflow");
            self.bytes[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
    }

    fn lower(&self) -> usize {
        format::u16_at(&self.bytes, 12) as usize
    }
    fn upper(&self) -> usize {
        format::u16_at(&self.bytes, 14) as usize
    }

    /// Whether an item of `len` bytes (plus its line pointer) still fits.
    pub fn fits(&self, len: usize) -> bool {
        self.upper() >= self.lower() + ITEM_ID_SIZE + maxalign(len)
    }

    /// Adds an item made of `parts` concatenated; false when it does not fit.
    pub fn add_item(&mut self, parts: &[&[u8]]) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if !self.fits(len) {
            return false;
        }
        let at = self.upper() - maxalign(len);
        let mut pos = at;
        for p in parts {
            self.bytes[pos..pos + p.len()].copy_from_slice(p);
            pos += p.len();
        }
        let lower = self.lower();
        format::put_u16(&mut self.bytes, 12, (lower + ITEM_ID_SIZE) as u16);
        let n = self.item_count();
        set_item(&mut self.bytes, n, at, len);
        format::put_u16(&mut self.bytes, 14, at as u16);
        true
    }

    /// Adds a line pointer to the item of line pointer `item` (1-based): two
    /// versions sharing one header on a compact page.
    pub fn add_shared_line_pointer(&mut self, item: usize) -> bool {
        let lower = self.lower();
        if item == 0 || item > self.item_count() || lower + ITEM_ID_SIZE > self.upper() {
            return false;
        }
        let lp = format::u32_at(&self.bytes, PAGE_HEADER_SIZE + (item - 1) * ITEM_ID_SIZE);
        format::put_u32(&mut self.bytes, lower, lp);
        format::put_u16(&mut self.bytes, 12, (lower + ITEM_ID_SIZE) as u16);
        true
    }

    /// Writes `owner` into the tag (run id, virtual block, slot).
    pub fn set_owner(&mut self, owner: u32) {
        format::put_u32(&mut self.bytes, SPECIAL_AT + 8, owner);
    }

    /// Writes format version `v` into the tag (pages in an older layout).
    pub fn set_version(&mut self, v: u16) {
        format::put_u16(&mut self.bytes, SPECIAL_AT + 4, v);
    }

    /// Appends raw bytes below `pd_lower` (fence and directory arrays).
    pub fn append_array(&mut self, data: &[u8]) -> bool {
        let lower = self.lower();
        if lower + data.len() > self.upper() {
            return false;
        }
        self.bytes[lower..lower + data.len()].copy_from_slice(data);
        format::put_u16(&mut self.bytes, 12, (lower + data.len()) as u16);
        true
    }

    pub fn item_count(&self) -> usize {
        (self.lower() - PAGE_HEADER_SIZE) / ITEM_ID_SIZE
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The tag of a page image, if it is an initialised lsm page.
pub fn tag_of(page: &[u8]) -> Option<PageTag> {
    if format::u16_at(page, 14) == 0 || format::u32_at(page, SPECIAL_AT) != MAGIC {
        return None;
    }
    Some(PageTag::read(page, SPECIAL_AT))
}

/// Number of line pointers.
pub fn item_count(page: &[u8]) -> usize {
    (format::u16_at(page, 12) as usize).saturating_sub(PAGE_HEADER_SIZE) / ITEM_ID_SIZE
}

/// Points line pointer `n` (1-based, existing) at a normal item of `len`
/// bytes at `offset`.
pub fn set_item(page: &mut [u8], n: usize, offset: usize, len: usize) {
    let lp = (offset as u32) | (LP_NORMAL << 15) | ((len as u32) << 17);
    format::put_u32(page, PAGE_HEADER_SIZE + (n - 1) * ITEM_ID_SIZE, lp);
}

/// `(offset, length)` of normal item `n` (1-based), bounds-checked.
pub fn item_extent(page: &[u8], n: usize) -> Option<(usize, usize)> {
    if n == 0 || n > item_count(page) {
        return None;
    }
    let lp = format::u32_at(page, PAGE_HEADER_SIZE + (n - 1) * ITEM_ID_SIZE);
    let (off, flags, len) = crate::pg::page::line_pointer(lp);
    (flags == LP_NORMAL && off + len <= SPECIAL_AT).then_some((off, len))
}

/// Rowid of RUN_DATA item `n` (any layout).
pub fn run_item_rowid(page: &[u8], n: usize) -> Option<u64> {
    if compact_page::is_compact(page) {
        return compact_page::rowid_of(page, n);
    }
    let (off, len) = item_extent(page, n)?;
    (len >= ROWID_PREFIX).then(|| format::u64_at(page, off))
}

/// `(offset, length)` of the tuple (or, on compressed pages, the header) of
/// RUN_DATA item `n`: after its rowid, except on compact pages.
pub fn run_item_tuple(page: &[u8], n: usize) -> Option<(usize, usize)> {
    let (off, len) = item_extent(page, n)?;
    if compact_page::is_compact(page) {
        return (len == compressed_page::TUPLE_HEADER_SIZE).then_some((off, len));
    }
    (len > ROWID_PREFIX).then_some((off + ROWID_PREFIX, len - ROWID_PREFIX))
}

/// Item number (1-based) of `rowid` on a RUN_DATA page (items are sorted).
pub fn find_run_item(page: &[u8], rowid: u64) -> Option<usize> {
    if compact_page::is_compact(page) {
        return compact_page::item_of(page, rowid);
    }
    let (mut lo, mut hi) = (1usize, item_count(page));
    while lo <= hi {
        let mid = (lo + hi) / 2;
        let r = run_item_rowid(page, mid)?;
        match r.cmp(&rowid) {
            std::cmp::Ordering::Equal => return Some(mid),
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid - 1,
        }
    }
    None
}

/// Fence entries `(first_rowid, block)` of a RUN_INDEX page.
pub fn fences(page: &[u8]) -> Vec<(u64, u32)> {
    (0..fence_count(page))
        .map(|i| fence_entry(page, i))
        .collect()
}

/// Number of fence entries on a RUN_INDEX page.
fn fence_count(page: &[u8]) -> usize {
    let lower = (format::u16_at(page, 12) as usize).min(SPECIAL_AT);
    lower.saturating_sub(PAGE_HEADER_SIZE) / FENCE_SIZE
}

/// Fence entry `i` (0-based) of a RUN_INDEX page.
fn fence_entry(page: &[u8], i: usize) -> (u64, u32) {
    let at = PAGE_HEADER_SIZE + i * FENCE_SIZE;
    (format::u64_at(page, at), format::u32_at(page, at + 8))
}

/// The block of the last fence entry of a RUN_INDEX page whose first rowid
/// is `<= rowid`: [`fences`] + [`fence_for`] read in place (a binary search
/// over the page, no list built; point lookups take this path twice).
pub fn fence_block_for(page: &[u8], rowid: u64) -> Option<u32> {
    // entries [0, lo) start at or below rowid, [hi, n) above it
    let (mut lo, mut hi) = (0, fence_count(page));
    while lo < hi {
        let mid = (lo + hi) / 2;
        if fence_entry(page, mid).0 <= rowid {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1).map(|i| fence_entry(page, i).1)
}

/// Index of the last fence whose first rowid is `<= rowid`.
pub fn fence_for(fences: &[(u64, u32)], rowid: u64) -> Option<usize> {
    fences
        .partition_point(|(first, _)| *first <= rowid)
        .checked_sub(1)
}

/// Builds a RUN_INDEX page from fence entries (at most FENCE_ENTRIES).
pub fn fence_page(run_id: u32, flags: u32, entries: &[(u64, u32)]) -> PageImage {
    fence_page_with_special(run_id, flags, entries, &[])
}

/// [`fence_page`] with `special` (a multiple of 8 bytes) in the special
/// space in front of the tag.
fn fence_page_with_special(
    run_id: u32,
    flags: u32,
    entries: &[(u64, u32)],
    special: &[u8],
) -> PageImage {
    let mut p = PageImage::with_special(PageKind::RunIndex, run_id, flags, special.len());
    p.write_special(&[special]);
    for (first, block) in entries {
        let mut e = [0u8; FENCE_SIZE];
        e[..8].copy_from_slice(&first.to_le_bytes());
        e[8..12].copy_from_slice(&block.to_le_bytes());
        assert!(p.append_array(&e), "fence page overflow");
    }
    p
}

/// A run's root RUN_INDEX page with a bloom filter trailer in its special
/// space (see [`super::bloom`]); `trailer` comes from `bloom::encode_trailer`.
pub fn root_page_with_filter(run_id: u32, entries: &[(u64, u32)], trailer: &[u8]) -> PageImage {
    fence_page_with_special(run_id, format::INDEX_ROOT, entries, trailer)
}

/// Filter pages a root with `leaves` fence entries can list in its trailer.
pub fn filter_pages_fitting(leaves: usize) -> usize {
    super::bloom::pages_fitting(SPECIAL_AT - PAGE_HEADER_SIZE - leaves * FENCE_SIZE)
}

/// The bloom filter a root RUN_INDEX page lists: `(k, filter page blocks)`.
pub fn root_filter(page: &[u8]) -> Option<(u8, Vec<u32>)> {
    super::bloom::decode_trailer(root_trailer(page)?)
}

/// Where the root RUN_INDEX page's filter keeps the bits of `rowid`: the
/// filter page's block and the probe (reads one trailer entry).
pub fn root_filter_probe(page: &[u8], rowid: u64) -> Option<(u32, super::bloom::Probe)> {
    super::bloom::trailer_probe(root_trailer(page)?, rowid)
}

/// The special space of a root page in front of its tag, if it has more.
fn root_trailer(page: &[u8]) -> Option<&[u8]> {
    let special = format::u16_at(page, 16) as usize;
    (PAGE_HEADER_SIZE..SPECIAL_AT)
        .contains(&special)
        .then(|| &page[special..SPECIAL_AT])
}

/// Byte offset in a root page of the trailer entry naming filter page `i`.
pub fn root_filter_entry_at(page: &[u8], i: usize) -> usize {
    format::u16_at(page, 16) as usize + super::bloom::trailer_entry_at(i)
}

/// A bloom filter page of run `run_id` holding `body` ([`super::bloom::PAGE_BYTES`]).
pub fn bloom_page(run_id: u32, body: &[u8]) -> PageImage {
    let mut p = PageImage::new(PageKind::RunIndex, run_id, format::INDEX_BLOOM);
    assert!(
        body.len() == super::bloom::PAGE_BYTES && p.append_array(body),
        "bloom page overflow"
    );
    p
}

/// The filter bits of a bloom page; None when the page is not full-sized.
pub fn bloom_body(page: &[u8]) -> Option<&[u8]> {
    let lower = format::u16_at(page, 12) as usize;
    (lower == PAGE_HEADER_SIZE + super::bloom::PAGE_BYTES).then(|| &page[PAGE_HEADER_SIZE..lower])
}

/// Entry `entry` of an L0 directory page, without reading the others (a
/// lookup's step: collecting the page's thousands of entries to take one
/// was 5% of an update workload's CPU).
pub fn dir_entry(page: &[u8], entry: usize) -> Option<u32> {
    let lower = format::u16_at(page, 12) as usize;
    let at = PAGE_HEADER_SIZE + 4 * entry;
    (at + 4 <= lower.min(SPECIAL_AT)).then(|| format::u32_at(page, at))
}

/// Physical blocks listed by an L0 directory page (entries below pd_lower).
pub fn dir_entries(page: &[u8]) -> Vec<u32> {
    let lower = format::u16_at(page, 12) as usize;
    (PAGE_HEADER_SIZE..lower.min(SPECIAL_AT))
        .step_by(4)
        .filter(|at| at + 4 <= lower)
        .map(|at| format::u32_at(page, at))
        .collect()
}

/// A finished RUN_DATA page and what it holds.
pub struct PackedPage {
    pub image: PageImage,
    pub first_rowid: u64,
    pub last_rowid: u64,
    pub versions: u64,
    pub tuple_bytes: u64,
}

/// Packs rowid-ordered row versions into RUN_DATA pages. Versions are held
/// until their page is full; a page is compressed (see
/// [`super::compact_page`], or [`super::compressed_page`] for the version 5
/// layout) only when it holds more versions than fit uncompressed, and a
/// codec is set.
pub struct RunPacker {
    /// Run id written into the tags of the pages it emits.
    pub run_id: u32,
    codec: Option<Codec>,
    /// Compact (version 6) compressed pages, else version 3 ones.
    compact: bool,
    /// Header and rowid-map needs of the pending versions on a compact page.
    estimate: compact_page::Estimate,
    /// The table's column layout: compact pages then store their rows
    /// column-wise (see [`super::columnar`]).
    columns: Option<Vec<Attr>>,
    /// Column-wise pages compress each column on its own (version 7).
    sections: bool,
    /// Sectioned pages may store a column as a dictionary (version 9).
    dictionaries: bool,
    /// lz4 pages may store a section with zstd at this level where it pays
    /// (version 10).
    zstd_sections: Option<i32>,
    pending: Vec<(u64, Vec<u8>)>,
    /// Bytes the pending versions take on an uncompressed page.
    plain_bytes: usize,
    /// Payload bytes of the pending versions (2 + rest each).
    raw_bytes: usize,
    /// Frame bytes per raw payload byte of the last page compressed (or
    /// measured): the next page is filled by this estimate and compressed
    /// once, as consecutive pages of a run compress alike.
    ratio: Option<f64>,
}

/// Safety margin on the estimated frame size of a page being filled.
const ESTIMATE_MARGIN: f64 = 1.04;

/// Bytes a version takes on an uncompressed run page (line pointer included).
fn plain_size(tuple_len: usize) -> usize {
    ITEM_ID_SIZE + maxalign(ROWID_PREFIX + tuple_len)
}

const PLAIN_ROOM: usize = SPECIAL_AT - PAGE_HEADER_SIZE;

impl RunPacker {
    pub fn new(run_id: u32, codec: Option<Codec>) -> RunPacker {
        RunPacker::with_layout(run_id, codec, true)
    }

    /// A packer writing compact pages (`compact`) or version 3 ones.
    pub fn with_layout(run_id: u32, codec: Option<Codec>, compact: bool) -> RunPacker {
        RunPacker {
            run_id,
            codec,
            compact,
            estimate: compact_page::Estimate::default(),
            columns: None,
            sections: true,
            dictionaries: true,
            zstd_sections: None,
            pending: Vec::new(),
            plain_bytes: 0,
            raw_bytes: 0,
            ratio: None,
        }
    }

    /// Stores compact pages column-wise by the table's column layout, each
    /// column compressed on its own (version 7, the default).
    pub fn with_columns(mut self, attrs: Vec<Attr>) -> RunPacker {
        self.columns = Some(attrs);
        self
    }

    /// Column-wise pages as one compressed frame (`false`: version 6, for
    /// `strata.lsm_page_format = 6`) or a frame per column (`true`).
    pub fn with_sections(mut self, on: bool) -> RunPacker {
        self.sections = on;
        self
    }

    /// Sectioned pages with dictionary columns where they are smaller
    /// (`true`: version 9, the default) or never (`false`: versions 7 and 8,
    /// for `strata.lsm_page_format` 7 and 8).
    pub fn with_dictionaries(mut self, on: bool) -> RunPacker {
        self.dictionaries = on;
        self
    }

    /// Dictionary pages whose lz4 sections may be zstd-compressed at
    /// `level` where that makes them at least a quarter smaller
    /// (`Some`: version 10, the default) or never (`None`: version 9).
    pub fn with_zstd_sections(mut self, level: Option<i32>) -> RunPacker {
        self.zstd_sections = level;
        self
    }

    /// Adds a version; returns the pages it completed (usually none or one).
    pub fn add(&mut self, rowid: u64, tuple: &[u8]) -> Vec<PackedPage> {
        let mut out = Vec::new();
        loop {
            if self.accepts(rowid, tuple) {
                break;
            }
            out.push(self.emit_page());
        }
        self.plain_bytes += plain_size(tuple.len());
        self.estimate.push(rowid, tuple);
        self.raw_bytes += 2 + tuple
            .len()
            .saturating_sub(compressed_page::TUPLE_HEADER_SIZE);
        self.pending.push((rowid, tuple.to_vec()));
        out
    }

    /// Whether a frame of `frame_len` bytes fits next to the pending
    /// versions and `next` (rowid, tuple), in the layout written.
    fn frame_fits(&self, next: (u64, &[u8]), frame_len: usize) -> bool {
        if self.compact {
            self.estimate.fits_with(next.0, next.1, frame_len)
        } else {
            compressed_page::fits(self.pending.len() + 1, frame_len)
        }
    }

    /// Compresses `refs` for the layout written: column-wise on compact
    /// pages when the packer knows the columns and the rows split at them.
    /// The frame, and its bytes per row-wise payload byte (what the packer
    /// estimates with).
    fn compress(&self, refs: &[(u64, &[u8])], codec: Codec) -> (Frame, f64) {
        let row_raw: usize = refs
            .iter()
            .map(|(_, t)| 2 + t.len().saturating_sub(compressed_page::TUPLE_HEADER_SIZE))
            .sum();
        let columns = self.columns.as_deref().filter(|_| self.compact);
        let frame = columns
            .and_then(|attrs| {
                if self.sections {
                    compressed_page::compress_sections(
                        refs,
                        codec,
                        attrs,
                        self.dictionaries,
                        self.zstd_sections,
                    )
                } else {
                    compressed_page::compress_columns(refs, codec, attrs)
                }
            })
            .unwrap_or_else(|| compressed_page::compress(refs, codec));
        let ratio = frame.bytes.len() as f64 / row_raw.max(1) as f64;
        (frame, ratio)
    }

    fn build(&self, refs: &[(u64, &[u8])], frame: &Frame) -> Option<PageImage> {
        if self.compact {
            compact_page::build(self.run_id, refs, frame)
        } else {
            compressed_page::build(self.run_id, refs, frame)
        }
    }

    /// Whether `tuple` (with `rowid`) may join the pending versions' page.
    fn accepts(&mut self, rowid: u64, tuple: &[u8]) -> bool {
        let n = self.pending.len() + 1;
        if self.pending.is_empty() || self.plain_bytes + plain_size(tuple.len()) <= PLAIN_ROOM {
            return true;
        }
        let Some(codec) = self.codec else {
            return false;
        };
        if n > format::ROWS_PER_VBLOCK as usize {
            return false;
        }
        let raw = self.raw_bytes
            + 2
            + tuple
                .len()
                .saturating_sub(compressed_page::TUPLE_HEADER_SIZE);
        // Estimate by the last page's ratio (with a margin); the page is
        // compressed, and checked exactly, once, when emitted. Without a
        // ratio yet, this page is measured as it stands.
        let ratio = match self.ratio {
            Some(r) => r,
            None => {
                let refs = self.refs_with(tuple);
                let (frame, ratio) = self.compress(&refs, codec);
                self.ratio = Some(ratio);
                return self.frame_fits((rowid, tuple), frame.bytes.len());
            }
        };
        self.frame_fits((rowid, tuple), (raw as f64 * ratio * ESTIMATE_MARGIN) as usize + 16)
    }

    fn refs_with<'a>(&'a self, extra: &'a [u8]) -> Vec<(u64, &'a [u8])> {
        let mut refs: Vec<(u64, &[u8])> = self
            .pending
            .iter()
            .map(|(r, t)| (*r, t.as_slice()))
            .collect();
        refs.push((u64::MAX, extra));
        refs
    }

    /// Builds the page of the longest prefix of the pending versions that
    /// fits (all of them, unless an estimate was too optimistic) and keeps
    /// the rest pending.
    fn emit_page(&mut self) -> PackedPage {
        assert!(!self.pending.is_empty(), "emit of an empty page");
        let plain_fit = {
            let mut used = 0;
            self.pending
                .iter()
                .take_while(|(_, t)| {
                    used += plain_size(t.len());
                    used <= PLAIN_ROOM
                })
                .count()
        };
        let mut image = None;
        let mut count = plain_fit;
        let most = self.pending.len().min(format::ROWS_PER_VBLOCK as usize);
        if let (Some(codec), true) = (self.codec, plain_fit < most) {
            let ratio = std::cell::Cell::new(self.ratio);
            let try_build = |n: usize| {
                let refs: Vec<(u64, &[u8])> = self.pending[..n]
                    .iter()
                    .map(|(r, t)| (*r, t.as_slice()))
                    .collect();
                let (frame, r) = self.compress(&refs, codec);
                ratio.set(Some(r));
                self.build(&refs, &frame).ok_or(frame.bytes.len())
            };
            // usually all pending versions fit (they were estimated); else a
            // prefix scaled to the measured overshoot, then the longest
            // prefix that fits, by bisection
            match try_build(most) {
                Ok(page) => (count, image) = (most, Some(page)),
                Err(frame_len) => {
                    let room = compressed_page::blob_room(most).max(1);
                    let scaled = ((most as f64 * room as f64 / frame_len as f64) * 0.97) as usize;
                    let (mut lo, mut hi) = (plain_fit, most - 1);
                    if scaled > lo && scaled < hi {
                        match try_build(scaled) {
                            Ok(page) => (lo, image) = (scaled, Some(page)),
                            Err(_) => hi = scaled - 1,
                        }
                    }
                    while lo < hi {
                        let mid = (lo + hi).div_ceil(2);
                        match try_build(mid) {
                            Ok(page) => (lo, image) = (mid, Some(page)),
                            Err(_) => hi = mid - 1,
                        }
                    }
                    count = lo;
                }
            }
            self.ratio = ratio.get();
        }
        // Compression costs every reader a decompression and a copy per row
        // (sequential scans of compressed runs run at about half the speed):
        // only worth it when the page holds half as many versions again.
        if image.is_some() && count * 2 < plain_fit * 3 {
            (count, image) = (plain_fit, None);
        }
        let count = count.max(1);
        let rest = self.pending.split_off(count);
        let page_versions = std::mem::replace(&mut self.pending, rest);
        let image = image.unwrap_or_else(|| {
            let mut p = PageImage::new(PageKind::RunData, self.run_id, 0);
            for (rowid, t) in &page_versions {
                assert!(
                    p.add_item(&[&rowid.to_le_bytes(), t]),
                    "row version larger than a run page"
                );
            }
            p
        });
        self.plain_bytes = self.pending.iter().map(|(_, t)| plain_size(t.len())).sum();
        self.estimate = compact_page::Estimate::default();
        for (r, t) in &self.pending {
            self.estimate.push(*r, t);
        }
        self.raw_bytes = self
            .pending
            .iter()
            .map(|(_, t)| 2 + t.len().saturating_sub(compressed_page::TUPLE_HEADER_SIZE))
            .sum();
        PackedPage {
            image,
            first_rowid: page_versions[0].0,
            last_rowid: page_versions[page_versions.len() - 1].0,
            versions: page_versions.len() as u64,
            tuple_bytes: page_versions.iter().map(|(_, t)| t.len() as u64).sum(),
        }
    }

    /// Emits everything pending (the last pages).
    pub fn finish(mut self) -> Vec<PackedPage> {
        let mut out = Vec::new();
        while !self.pending.is_empty() {
            out.push(self.emit_page());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_pages_carry_their_filter() {
        let entries: Vec<(u64, u32)> = (0..100u64).map(|i| (i * 1000, 10 + i as u32)).collect();
        let fitting = filter_pages_fitting(entries.len());
        assert_eq!(fitting, (8176 - 24 - 1600 - 8) / 4);
        let blocks: Vec<u32> = (500..500 + fitting as u32).collect();
        let root =
            root_page_with_filter(3, &entries, &crate::lsm::bloom::encode_trailer(5, &blocks));
        let p = root.bytes();
        assert_eq!(fences(p), entries);
        assert_eq!(root_filter(p), Some((5, blocks.clone())));
        let (block, probe) = root_filter_probe(p, 12_345).unwrap();
        assert_eq!(block, blocks[probe.page]);
        assert_eq!(
            root_filter_probe(fence_page(3, format::INDEX_ROOT, &entries).bytes(), 12_345),
            None
        );
        let at = root_filter_entry_at(p, 7);
        assert_eq!(format::u32_at(p, at), 507);
        assert_eq!(tag_of(p).unwrap().flags, format::INDEX_ROOT);
        // a root without a filter, and a full root
        assert_eq!(
            root_filter(fence_page(3, format::INDEX_ROOT, &entries).bytes()),
            None
        );
        assert_eq!(filter_pages_fitting(format::FENCE_ENTRIES), 0);
        let body = vec![0x5Au8; crate::lsm::bloom::PAGE_BYTES];
        let bp = bloom_page(3, &body);
        assert_eq!(bloom_body(bp.bytes()), Some(&body[..]));
        assert_eq!(bloom_body(p), None);
    }

    #[test]
    fn packed_versions_are_found_by_rowid() {
        let mut packer = RunPacker::new(7, None);
        let mut pages = vec![];
        let tuple = [0xABu8; 100];
        for i in 0..500u64 {
            pages.extend(packer.add(i * 3 + 256, &tuple));
        }
        pages.extend(packer.finish());
        assert!(pages.len() > 5);
        assert_eq!(pages.iter().map(|p| p.versions).sum::<u64>(), 500);
        let pages: Vec<(PageImage, u64)> = pages
            .into_iter()
            .map(|p| (p.image, p.first_rowid))
            .collect();
        let fence_list: Vec<(u64, u32)> = pages
            .iter()
            .enumerate()
            .map(|(i, (_, first))| (*first, i as u32))
            .collect();
        for probe in [256u64, 259, 256 + 3 * 499, 256 + 3 * 250] {
            let i = fence_for(&fence_list, probe).unwrap();
            let page = pages[i].0.bytes();
            let n = find_run_item(page, probe).expect("rowid on its fenced page");
            assert_eq!(run_item_rowid(page, n), Some(probe));
            let (off, len) = item_extent(page, n).unwrap();
            assert_eq!(len, 108);
            assert_eq!(&page[off + 8..off + len], &tuple[..]);
        }
        // rowids between versions and outside the run are not found
        let page = pages[0].0.bytes();
        assert_eq!(find_run_item(page, 257), None);
        assert_eq!(fence_for(&fence_list, 255), None);
        let tag = tag_of(page).unwrap();
        assert_eq!((tag.validate(), tag.vblock), (Ok(PageKind::RunData), 7));
    }

    #[test]
    fn fence_and_directory_arrays() {
        let entries: Vec<(u64, u32)> = (0..format::FENCE_ENTRIES as u64)
            .map(|i| (i * 10, i as u32 + 1))
            .collect();
        let p = fence_page(3, format::INDEX_ROOT, &entries);
        assert_eq!(fences(p.bytes()), entries);
        assert_eq!(fence_for(&entries, 15), Some(1));
        // in place: every entry's own rowid, the rowids between, before and after
        for (i, (first, block)) in entries.iter().enumerate() {
            assert_eq!(fence_block_for(p.bytes(), *first), Some(*block));
            assert_eq!(fence_block_for(p.bytes(), first + 9), Some(*block), "{i}");
        }
        assert_eq!(
            fence_block_for(p.bytes(), u64::MAX),
            Some(entries.last().unwrap().1)
        );
        let one = fence_page(3, 0, &[(100, 7)]);
        assert_eq!(fence_block_for(one.bytes(), 99), None);
        assert_eq!(fence_block_for(one.bytes(), 100), Some(7));
        assert_eq!(fence_block_for(fence_page(3, 0, &[]).bytes(), 5), None);
        assert_eq!(tag_of(p.bytes()).unwrap().flags, format::INDEX_ROOT);
        let mut d = PageImage::new(PageKind::L0Dir, 0, 0);
        for b in [5u32, 9, 12] {
            assert!(d.append_array(&b.to_le_bytes()));
        }
        assert_eq!(dir_entries(d.bytes()), vec![5, 9, 12]);
        let one: Vec<Option<u32>> = (0..4).map(|e| dir_entry(d.bytes(), e)).collect();
        assert_eq!(one, vec![Some(5), Some(9), Some(12), None]);
    }

    #[test]
    fn largest_l0_tuple_fits_a_run_page() {
        let big = vec![1u8; crate::lsm::format::MAX_TUPLE_SIZE];
        let mut packer = RunPacker::new(1, None);
        assert!(packer.add(1, &big).is_empty());
        assert_eq!(packer.add(2, &big).len(), 1);
        assert_eq!(packer.finish().len(), 1);
        // compressed, two such (uniform) tuples share a page
        let mut packer = RunPacker::new(1, Some(Codec::Zstd(3)));
        assert!(packer.add(1, &big).is_empty());
        assert!(packer.add(2, &big).is_empty());
        let pages = packer.finish();
        assert_eq!((pages.len(), pages[0].versions), (1, 2));
        assert!(compressed_page::is_compressed(pages[0].image.bytes()));
    }

    /// Tuples with a 24-byte header and compressible text.
    fn text_tuple(i: u64, extra: usize) -> Vec<u8> {
        let mut t = vec![0u8; 24];
        t[22] = 24;
        t.extend_from_slice(
            format!(
                "customer {i:08} lives at {} Main Street {}",
                i % 97,
                "-".repeat(extra)
            )
            .as_bytes(),
        );
        t
    }

    /// `(rowid, tuple bytes)` of every version on a packed page, whatever
    /// its layout.
    fn unpack(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let n = item_count(bytes);
        if compact_page::is_compact(bytes) {
            let payload =
                compact_page::decode(bytes, compact_page::inline_blob(bytes).unwrap(), &[]).unwrap();
            return (1..=n)
                .map(|i| {
                    let (h, rest) = compact_page::tuple_parts(bytes, &payload, i).unwrap();
                    (compact_page::rowid_of(bytes, i).unwrap(), [&h[..], rest].concat())
                })
                .collect();
        }
        if compressed_page::is_compressed(bytes) {
            let payload = compressed_page::decode(bytes).unwrap();
            return (1..=n)
                .map(|i| {
                    let t = compressed_page::tuple(bytes, &payload, i).unwrap();
                    (run_item_rowid(bytes, i).unwrap(), t)
                })
                .collect();
        }
        (1..=n)
            .map(|i| {
                let (off, len) = item_extent(bytes, i).unwrap();
                (run_item_rowid(bytes, i).unwrap(), bytes[off + 8..off + len].to_vec())
            })
            .collect()
    }

    #[test]
    fn compression_packs_more_versions_and_loses_none() {
        let n = 5000u64;
        let tuples: Vec<Vec<u8>> = (0..n).map(|i| text_tuple(i, (i % 50) as usize)).collect();
        let pack = |codec, compact| {
            let mut packer = RunPacker::with_layout(2, codec, compact);
            let mut pages = vec![];
            for (i, t) in tuples.iter().enumerate() {
                pages.extend(packer.add(i as u64 * 2, t));
            }
            pages.extend(packer.finish());
            pages
        };
        let plain = pack(None, true);
        for (codec, compact) in [
            (Codec::Zstd(3), false),
            (Codec::Zstd(3), true),
            (Codec::Lz4, true),
        ] {
            let packed = pack(Some(codec), compact);
            assert!(
                packed.len() * 2 <= plain.len(),
                "{} compressed pages vs {} plain",
                packed.len(),
                plain.len()
            );
            // every version comes back, in rowid order, with its bytes (the
            // header up to the hint bits a compact page shares)
            let mut i = 0usize;
            for page in &packed {
                let bytes = page.image.bytes();
                assert_eq!(compact, compact_page::is_compact(bytes) || !compressed_page::is_compressed(bytes));
                let versions = unpack(bytes);
                assert_eq!(versions.len() as u64, page.versions);
                assert_eq!(page.first_rowid, i as u64 * 2);
                for (rowid, t) in versions {
                    assert_eq!(rowid, i as u64 * 2);
                    assert_eq!(&t[..20], &tuples[i][..20]);
                    assert_eq!(&t[23..], &tuples[i][23..]);
                    i += 1;
                }
                assert_eq!(page.last_rowid, (i as u64 - 1) * 2);
            }
            assert_eq!(i as u64, n);
        }
    }

    #[test]
    fn barely_compressible_versions_stay_plain() {
        // short rows of random hex: ~30% more per page in the version 3
        // layout, not worth it (the compact layout drops the stubs and gains
        // more)
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut packer = RunPacker::with_layout(2, Some(Codec::Zstd(3)), false);
        let mut pages = vec![];
        for i in 0..3000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut t = vec![0u8; 24];
            t[22] = 24;
            t.extend_from_slice(format!("{i},{},payload-{x:x}", x % 1_000_000).as_bytes());
            pages.extend(packer.add(i, &t));
        }
        pages.extend(packer.finish());
        assert_eq!(pages.iter().map(|p| p.versions).sum::<u64>(), 3000);
        assert!(pages
            .iter()
            .all(|p| !compressed_page::is_compressed(p.image.bytes())));
    }

    #[test]
    fn pages_that_fit_plain_stay_plain() {
        let mut packer = RunPacker::new(2, Some(Codec::Zstd(3)));
        for i in 0..10 {
            assert!(packer.add(i, &text_tuple(i, 0)).is_empty());
        }
        let pages = packer.finish();
        assert_eq!(pages.len(), 1);
        assert!(!compressed_page::is_compressed(pages[0].image.bytes()));
    }
}
