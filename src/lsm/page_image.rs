//! Building and reading `lsm` page images as byte slices. Pure: flushes build
//! run pages here and the Postgres side only copies finished images into
//! buffers; readers parse pages (pinned buffers or copies) without pointer
//! arithmetic. Layouts are in [`super::format`].

use super::format::{
    self, PageKind, PageTag, BLOCK_SIZE, FENCE_SIZE, MAGIC, PAGE_HEADER_SIZE, ROWID_PREFIX,
    TAG_SIZE,
};

const ITEM_ID_SIZE: usize = 4;
const LP_NORMAL: u32 = 1;
const SPECIAL_AT: usize = BLOCK_SIZE - TAG_SIZE;

fn maxalign(n: usize) -> usize {
    (n + 7) & !7
}

/// A page under construction: standard header, line pointers growing up,
/// items growing down, the tag in the special space.
pub struct PageImage {
    bytes: Vec<u8>,
}

impl PageImage {
    pub fn new(kind: PageKind, owner: u32, flags: u32) -> PageImage {
        let mut bytes = vec![0u8; BLOCK_SIZE];
        format::put_u16(&mut bytes, 12, PAGE_HEADER_SIZE as u16); // pd_lower
        format::put_u16(&mut bytes, 14, SPECIAL_AT as u16); // pd_upper
        format::put_u16(&mut bytes, 16, SPECIAL_AT as u16); // pd_special
        format::put_u16(&mut bytes, 18, (BLOCK_SIZE as u16) | 4); // size | layout version 4
        let tag = PageTag { flags, ..PageTag::new(kind, owner) };
        format::put_u32(&mut bytes, SPECIAL_AT, tag.magic);
        format::put_u16(&mut bytes, SPECIAL_AT + 4, tag.version);
        format::put_u16(&mut bytes, SPECIAL_AT + 6, tag.kind);
        format::put_u32(&mut bytes, SPECIAL_AT + 8, tag.vblock);
        format::put_u32(&mut bytes, SPECIAL_AT + 12, tag.flags);
        PageImage { bytes }
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
        let lp = (at as u32) | (LP_NORMAL << 15) | ((len as u32) << 17);
        format::put_u32(&mut self.bytes, lower, lp);
        format::put_u16(&mut self.bytes, 12, (lower + ITEM_ID_SIZE) as u16);
        format::put_u16(&mut self.bytes, 14, at as u16);
        true
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

/// `(offset, length)` of normal item `n` (1-based), bounds-checked.
pub fn item_extent(page: &[u8], n: usize) -> Option<(usize, usize)> {
    if n == 0 || n > item_count(page) {
        return None;
    }
    let lp = format::u32_at(page, PAGE_HEADER_SIZE + (n - 1) * ITEM_ID_SIZE);
    let (off, flags, len) = ((lp & 0x7FFF) as usize, (lp >> 15) & 3, (lp >> 17) as usize);
    (flags == LP_NORMAL && off + len <= SPECIAL_AT).then_some((off, len))
}

/// Rowid of RUN_DATA item `n`.
pub fn run_item_rowid(page: &[u8], n: usize) -> Option<u64> {
    let (off, len) = item_extent(page, n)?;
    (len >= ROWID_PREFIX).then(|| format::u64_at(page, off))
}

/// Item number (1-based) of `rowid` on a RUN_DATA page (items are sorted).
pub fn find_run_item(page: &[u8], rowid: u64) -> Option<usize> {
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
    let lower = format::u16_at(page, 12) as usize;
    (PAGE_HEADER_SIZE..lower.min(SPECIAL_AT))
        .step_by(FENCE_SIZE)
        .filter(|at| at + FENCE_SIZE <= lower)
        .map(|at| (format::u64_at(page, at), format::u32_at(page, at + 8)))
        .collect()
}

/// Index of the last fence whose first rowid is `<= rowid`.
pub fn fence_for(fences: &[(u64, u32)], rowid: u64) -> Option<usize> {
    fences.partition_point(|(first, _)| *first <= rowid).checked_sub(1)
}

/// Builds a RUN_INDEX page from fence entries (at most FENCE_ENTRIES).
pub fn fence_page(run_id: u32, flags: u32, entries: &[(u64, u32)]) -> PageImage {
    let mut p = PageImage::new(PageKind::RunIndex, run_id, flags);
    for (first, block) in entries {
        let mut e = [0u8; FENCE_SIZE];
        e[..8].copy_from_slice(&first.to_le_bytes());
        e[8..12].copy_from_slice(&block.to_le_bytes());
        assert!(p.append_array(&e), "fence page overflow");
    }
    p
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

/// Packs rowid-ordered row versions into RUN_DATA pages.
pub struct RunPacker {
    run_id: u32,
    page: PageImage,
    first: Option<u64>,
}

impl RunPacker {
    pub fn new(run_id: u32) -> RunPacker {
        RunPacker {
            run_id,
            page: PageImage::new(PageKind::RunData, run_id, 0),
            first: None,
        }
    }

    /// Adds a version; when the current page is full it is returned (with its
    /// first rowid) and the version starts the next page.
    pub fn add(&mut self, rowid: u64, tuple: &[u8]) -> Option<(PageImage, u64)> {
        let prefix = rowid.to_le_bytes();
        if self.page.add_item(&[&prefix, tuple]) {
            self.first.get_or_insert(rowid);
            return None;
        }
        let full = std::mem::replace(&mut self.page, PageImage::new(PageKind::RunData, self.run_id, 0));
        let first = self.first.replace(rowid).expect("a full page has items");
        assert!(self.page.add_item(&[&prefix, tuple]), "row version larger than a run page");
        Some((full, first))
    }

    /// The last, partly filled page, if it has anything.
    pub fn finish(self) -> Option<(PageImage, u64)> {
        self.first.map(|f| (self.page, f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_versions_are_found_by_rowid() {
        let mut packer = RunPacker::new(7);
        let mut pages = vec![];
        let tuple = [0xABu8; 100];
        for i in 0..500u64 {
            if let Some(done) = packer.add(i * 3 + 256, &tuple) {
                pages.push(done);
            }
        }
        pages.extend(packer.finish());
        assert!(pages.len() > 5);
        let fence_list: Vec<(u64, u32)> =
            pages.iter().enumerate().map(|(i, (_, first))| (*first, i as u32)).collect();
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
        let entries: Vec<(u64, u32)> = (0..format::FENCE_ENTRIES as u64).map(|i| (i * 10, i as u32 + 1)).collect();
        let p = fence_page(3, format::INDEX_ROOT, &entries);
        assert_eq!(fences(p.bytes()), entries);
        assert_eq!(fence_for(&entries, 15), Some(1));
        assert_eq!(tag_of(p.bytes()).unwrap().flags, format::INDEX_ROOT);
        let mut d = PageImage::new(PageKind::L0Dir, 0, 0);
        for b in [5u32, 9, 12] {
            assert!(d.append_array(&b.to_le_bytes()));
        }
        assert_eq!(dir_entries(d.bytes()), vec![5, 9, 12]);
    }

    #[test]
    fn largest_l0_tuple_fits_a_run_page() {
        let big = vec![1u8; crate::lsm::format::MAX_TUPLE_SIZE];
        let mut packer = RunPacker::new(1);
        assert!(packer.add(1, &big).is_none());
        assert!(packer.add(2, &big).is_some());
    }
}
