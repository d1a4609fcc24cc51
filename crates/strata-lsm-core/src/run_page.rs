//! Reading the versions of a RUN_DATA page whichever its layout: plain
//! pages (rowid prefix + tuple per item, [`super::page_image`]), compact
//! compressed ones (headers only, rowids in the head, [`super::compact_page`]).
//! Pure; it sits above both so neither layout module needs the other.

use super::format::ROWID_PREFIX;
use super::{compact_page, page_image};
use strata_base::page_layout::HEAP_TUPLE_HEADER_SIZE;

/// Rowid of RUN_DATA item `n` (any layout).
pub fn run_item_rowid(page: &[u8], n: usize) -> Option<u64> {
    if compact_page::is_compact(page) {
        return compact_page::rowid_of(page, n);
    }
    page_image::plain_item_rowid(page, n)
}

/// `(offset, length)` of the tuple (or, on compressed pages, the header) of
/// RUN_DATA item `n`: after its rowid, except on compact pages.
pub fn run_item_tuple(page: &[u8], n: usize) -> Option<(usize, usize)> {
    let (off, len) = page_image::item_extent(page, n)?;
    if compact_page::is_compact(page) {
        return (len == HEAP_TUPLE_HEADER_SIZE).then_some((off, len));
    }
    (len > ROWID_PREFIX).then_some((off + ROWID_PREFIX, len - ROWID_PREFIX))
}

/// Item number (1-based) of `rowid` on a RUN_DATA page (items are sorted).
pub fn find_run_item(page: &[u8], rowid: u64) -> Option<usize> {
    if compact_page::is_compact(page) {
        return compact_page::item_of(page, rowid);
    }
    let (mut lo, mut hi) = (1usize, page_image::item_count(page));
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
