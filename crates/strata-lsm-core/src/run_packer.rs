//! Packing rowid-ordered row versions into RUN_DATA pages (flushes,
//! merges and bulk loads, in the backend or on [`super::pack_thread`]'s
//! second core). Pure. A page is compressed — [`super::compact_page`]'s
//! layout, [`super::compressed_page`]'s codecs — only when it holds more
//! versions than fit uncompressed; the page images come from
//! [`super::page_image`].

use super::columnar::Attr;
use super::compact_page;
use super::compressed_page::{self, Codec, Frame};
use super::format::{self, PageKind, PAGE_HEADER_SIZE, ROWID_PREFIX};
use super::page_image::{PageImage, SPECIAL_AT};
use strata_base::page_layout::{maxalign, ITEM_ID_SIZE};

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
        self.flush()
    }

    /// Emits everything pending now, the last page as full as the pending
    /// versions make it, and goes on packing after it (a bulk load whose
    /// rows must be on pages at the end of each batch).
    pub fn flush(&mut self) -> Vec<PackedPage> {
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
    use crate::page_image::{fence_for, item_count, item_extent, tag_of};
    use crate::run_page::{find_run_item, run_item_rowid};

    #[test]
    fn a_flush_ends_the_page_and_packing_goes_on() {
        let row = |i: u64| {
            let mut t = vec![0u8; 24];
            t[22] = 24;
            t.extend_from_slice(format!("row {i} flushed at batch ends").as_bytes());
            t
        };
        let mut p = RunPacker::new(5, Some(Codec::Lz4));
        let mut pages = Vec::new();
        for i in 0..700u64 {
            pages.extend(p.add(i, &row(i)));
            if i % 300 == 299 {
                let flushed = p.flush();
                assert!(!flushed.is_empty());
                assert_eq!(flushed.last().unwrap().last_rowid, i, "every added row is on a page");
                pages.extend(flushed);
            }
        }
        pages.extend(p.finish());
        let rowids: Vec<u64> = pages
            .iter()
            .flat_map(|pg| pg.first_rowid..=pg.last_rowid)
            .collect();
        assert_eq!(rowids, (0..700).collect::<Vec<_>>());
        assert_eq!(pages.iter().map(|pg| pg.versions).sum::<u64>(), 700);
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
    fn largest_l0_tuple_fits_a_run_page() {
        let big = vec![1u8; crate::format::MAX_TUPLE_SIZE];
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
