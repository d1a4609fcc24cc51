//! Building and reading `lsm` page images as byte slices. Pure: flushes build
//! run pages here and the Postgres side only copies finished images into
//! buffers; readers parse pages (pinned buffers or copies) without pointer
//! arithmetic. Layouts are in [`super::format`].

use super::format::{
    self, PageKind, PageTag, BLOCK_SIZE, FENCE_SIZE, MAGIC, PAGE_HEADER_SIZE, ROWID_PREFIX,
    TAG_SIZE,
};

pub use strata_base::page_layout::maxalign;
use strata_base::page_layout::{ITEM_ID_SIZE, LP_NORMAL};
/// Where a page's special space (its tag) starts.
pub const SPECIAL_AT: usize = BLOCK_SIZE - TAG_SIZE;

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
        debug_assert!(extra.is_multiple_of(8) && extra < SPECIAL_AT - PAGE_HEADER_SIZE);
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
    let (off, flags, len) = strata_base::page_layout::line_pointer(lp);
    (flags == LP_NORMAL && off + len <= SPECIAL_AT).then_some((off, len))
}

/// Rowid of item `n` of a plain (uncompressed, or version 3 compressed)
/// RUN_DATA page: the prefix of its item.
pub fn plain_item_rowid(page: &[u8], n: usize) -> Option<u64> {
    let (off, len) = item_extent(page, n)?;
    (len >= ROWID_PREFIX).then(|| format::u64_at(page, off))
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

/// Index of the last fence whose first rowid is `<= rowid` (fences in
/// ascending order of first rowid).
///
/// A run's pages hold similar numbers of rows, so the first rowids grow
/// nearly evenly: the search starts where interpolation puts `rowid`, gallops
/// from there to bracket the answer, and bisects the bracket — one or two
/// probes for an even run instead of a bisection's log2(n) dependent reads
/// (each a likely cache miss in a backend's copy of the fences), and never
/// more than about twice a bisection's for a skewed one.
pub fn fence_for(fences: &[(u64, u32)], rowid: u64) -> Option<usize> {
    let n = fences.len();
    let first = fences.first()?.0;
    if rowid < first {
        return None;
    }
    let last = fences[n - 1].0;
    if rowid >= last {
        return Some(n - 1);
    }
    // first <= rowid < last, so n >= 2 and the answer lies in [0, n - 1)
    let key = |i: usize| fences[i].0;
    let guess = ((rowid - first) as u128 * (n - 1) as u128 / (last - first) as u128) as usize;
    // bracket [lo, hi): key(lo) <= rowid, and hi == n or key(hi) > rowid
    let (lo, hi) = if key(guess) <= rowid {
        let (mut lo, mut step) = (guess, 1);
        loop {
            let probe = lo + step;
            if probe >= n || key(probe) > rowid {
                break (lo, probe.min(n));
            }
            lo = probe;
            step *= 2;
        }
    } else {
        let (mut hi, mut step) = (guess, 1);
        loop {
            if hi <= step {
                break (0, hi); // key(0) = first <= rowid
            }
            let probe = hi - step;
            if key(probe) <= rowid {
                break (probe, hi);
            }
            hi = probe;
            step *= 2;
        }
    };
    Some(lo + fences[lo..hi].partition_point(|(f, _)| *f <= rowid) - 1)
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
            root_page_with_filter(3, &entries, &crate::bloom::encode_trailer(5, &blocks));
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
        let body = vec![0x5Au8; crate::bloom::PAGE_BYTES];
        let bp = bloom_page(3, &body);
        assert_eq!(bloom_body(bp.bytes()), Some(&body[..]));
        assert_eq!(bloom_body(p), None);
    }

    #[test]
    fn fence_for_equals_a_bisection() {
        let bisect = |f: &[(u64, u32)], r: u64| f.partition_point(|(x, _)| *x <= r).checked_sub(1);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for n in [0usize, 1, 2, 3, 5, 17, 100, 680, 5000] {
            // even, growing (quadratic), clustered and random gaps
            for shape in 0..4 {
                let mut firsts = Vec::with_capacity(n);
                let mut at = 1 + next() % 1000;
                for i in 0..n as u64 {
                    firsts.push(at);
                    at += match shape {
                        0 => 64,
                        1 => 1 + i * i,
                        2 => if i % 50 == 0 { 1_000_000 } else { 1 },
                        _ => 1 + next() % 10_000,
                    };
                }
                let fences: Vec<(u64, u32)> = firsts.iter().map(|&f| (f, f as u32)).collect();
                let mut probes: Vec<u64> = vec![0, u64::MAX];
                for &f in &firsts {
                    probes.extend([f.saturating_sub(1), f, f + 1]);
                }
                let hi = firsts.last().map_or(10, |l| l + 10);
                probes.extend((0..2000).map(|_| next() % hi));
                for r in probes {
                    assert_eq!(fence_for(&fences, r), bisect(&fences, r), "n {n} shape {shape} rowid {r}");
                }
            }
        }
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
}
