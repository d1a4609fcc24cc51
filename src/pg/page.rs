//! Standard-layout page access (`bufpage.h` macros, written out for PG15 and
//! PG18 alike): line pointers, items, special space.

use pgrx::pg_sys;

pub use crate::page_layout::{line_pointer, mask_header_and_hole, maxalign, BLOCK_SIZE as BLCKSZ, ITEM_ID_SIZE, LP_NORMAL, PAGE_HEADER_SIZE};

// The pure page layout is the server's.
const _: () = assert!(BLCKSZ == pg_sys::BLCKSZ as usize);
const _: () = assert!(PAGE_HEADER_SIZE == std::mem::size_of::<pg_sys::PageHeaderData>());
const _: () = assert!(ITEM_ID_SIZE == std::mem::size_of::<pg_sys::ItemIdData>());
const _: () = assert!(LP_NORMAL == pg_sys::LP_NORMAL);
const _: () = assert!(crate::page_layout::MAX_ALIGN == pg_sys::MAXIMUM_ALIGNOF as usize);
const _: () = assert!(
    crate::page_layout::HEAP_TUPLE_HEADER_SIZE == std::mem::offset_of!(pg_sys::HeapTupleHeaderData, t_bits)
);

// `line_pointer` decodes line pointers by hand, in little-endian bit order.
const _: () = assert!(
    cfg!(target_endian = "little"),
    "lsm pages are read as little-endian"
);

/// `MaxHeapTuplesPerPage` (also tidbitmap's TBM_MAX_TUPLES_PER_PAGE): 291 for 8 kB pages.
pub const MAX_HEAP_TUPLES_PER_PAGE: usize = (BLCKSZ - PAGE_HEADER_SIZE) / (24 + ITEM_ID_SIZE);

/// A page in memory: a shared buffer's page its holder keeps pinned (and
/// locked as its use needs: shared to read, exclusive to write), or a
/// working copy of one (a WAL record under construction, a build's private
/// page). Strata passes this around instead of PostgreSQL's raw `Page`;
/// one is made from the raw pointer only where a buffer or a record hands
/// a page over, through the unsafe [`Page::from_raw`] — so the helpers
/// below, which read and write through it, are safe to call. What they
/// read is only meaningful under the content lock the caller holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(transparent)]
pub struct Page(pg_sys::Page);

impl Page {
    /// # Safety
    /// `page` points at `BLCKSZ` bytes that stay this page's (a pinned
    /// buffer's, or a working copy's) while the handle, or any copy of it,
    /// is used; writes through it only under an exclusive lock or to a
    /// private copy.
    pub unsafe fn from_raw(page: pg_sys::Page) -> Page {
        debug_assert!(!page.is_null());
        Page(page)
    }

    /// The raw pointer, for PostgreSQL's functions.
    pub fn raw(self) -> pg_sys::Page {
        self.0
    }

    /// The first byte's address (offsets into the page are added to it).
    pub fn ptr(self) -> *mut u8 {
        self.0 as *mut u8
    }
}

fn header(page: Page) -> *mut pg_sys::PageHeaderData {
    page.0 as *mut pg_sys::PageHeaderData
}

/// Initialises an empty page with `special` bytes of special space.
pub fn init(page: Page, special: usize) {
    // SAFETY: `page` points to a BLCKSZ buffer page (or working copy).
    unsafe { pg_sys::PageInit(page.0, BLCKSZ, special) }
}

/// Starts loading a page's first and last cache lines — its header and
/// line pointers, and its special space's end where lsm pages keep their
/// tag — which a reader of the page then needs one after the other.
pub fn prefetch_ends(page: Page) {
    let p = page.0 as *const i8;
    strata_base::prefetch::lines(p, 1);
    strata_base::prefetch::lines(p.wrapping_add(BLCKSZ - 64), 1);
}

pub fn is_new(page: Page) -> bool {
    // SAFETY: the header is always readable on a pinned page.
    unsafe { (*header(page)).pd_upper == 0 }
}

/// Number of line pointers (`PageGetMaxOffsetNumber`).
pub fn max_offset(page: Page) -> u16 {
    // SAFETY: as above.
    let lower = unsafe { (*header(page)).pd_lower } as usize;
    if lower <= PAGE_HEADER_SIZE {
        0
    } else {
        ((lower - PAGE_HEADER_SIZE) / ITEM_ID_SIZE) as u16
    }
}

/// Bytes free between line pointers and tuples, minus one new line pointer.
pub fn free_space_for_new_item(page: Page) -> usize {
    // SAFETY: as above.
    let (lower, upper) = unsafe { ((*header(page)).pd_lower, (*header(page)).pd_upper) };
    (upper as usize)
        .saturating_sub(lower as usize)
        .saturating_sub(ITEM_ID_SIZE)
}

/// The line pointer for `offset` (1-based); caller checks `offset <= max_offset`.
pub fn item_id(page: Page, offset: u16) -> *mut pg_sys::ItemIdData {
    debug_assert!(offset >= 1 && offset <= max_offset(page));
    // SAFETY: line pointers follow the header; offset is in range per caller.
    let ptr =
        unsafe { page.ptr().add(PAGE_HEADER_SIZE + (offset as usize - 1) * ITEM_ID_SIZE) };
    ptr as *mut pg_sys::ItemIdData
}

/// `(item pointer, length)` of a normal item, or `None` for unused/dead slots
/// and offsets past the end.
pub fn item(page: Page, offset: u16) -> Option<(*mut u8, usize)> {
    if offset == 0 || offset > max_offset(page) {
        return None;
    }
    let id = item_id(page, offset);
    // SAFETY: `id` points at a line pointer inside the page (4 bytes, not
    // necessarily aligned for u32). Decoded by hand: bindgen's bitfield
    // getters loop bit by bit, and this runs for every row a scan looks at.
    let (off, flags, len) = line_pointer(unsafe { (id as *const u32).read_unaligned() });
    if flags != LP_NORMAL || off + len > BLCKSZ {
        return None;
    }
    // SAFETY: lp_off/lp_len were checked to stay within the page.
    Some((unsafe { page.ptr().add(off) }, len))
}

/// Pointer to the special space.
pub fn special(page: Page) -> *mut u8 {
    // SAFETY: pd_special is an offset inside the page for initialised pages.
    unsafe { page.ptr().add((*header(page)).pd_special as usize) }
}

pub fn special_size(page: Page) -> usize {
    // SAFETY: as above.
    BLCKSZ - unsafe { (*header(page)).pd_special } as usize
}

/// Appends an item; returns its offset or `None` when it does not fit.
pub fn add_item(page: Page, data: &[u8]) -> Option<u16> {
    add_item_extended(page, data, 0, 0)
}

fn add_item_extended(page: Page, data: &[u8], offset: u16, flags: u32) -> Option<u16> {
    // SAFETY: `data` is readable; PageAddItemExtended checks the offset and
    // space and returns InvalidOffsetNumber (0) when it cannot add.
    let off = unsafe {
        pg_sys::PageAddItemExtended(
            page.0,
            data.as_ptr() as pg_sys::Item,
            data.len(),
            offset,
            flags as i32,
        )
    };
    (off != 0).then_some(off)
}

/// Puts an item at line pointer `offset` (the next one, or an unused one):
/// replay of an append that got that offset. `Some(offset)` on success.
pub fn add_item_at(page: Page, data: &[u8], offset: u16) -> Option<u16> {
    add_item_extended(page, data, offset, pg_sys::PAI_OVERWRITE)
}

/// `pd_lsn` (`PageGetLSN`) of a locked page.
pub fn lsn(page: Page) -> pg_sys::XLogRecPtr {
    // SAFETY: header of a pinned, locked page.
    let l = unsafe { (*header(page)).pd_lsn };
    (u64::from(l.xlogid) << 32) | u64::from(l.xrecoff)
}

/// `pd_lsn` of a page that is pinned but not locked, read as it is in
/// memory at this instant (each half once, volatile). A writer holds the
/// exclusive lock while it changes the page and sets the LSN last, so the
/// value read is the LSN of a state the page was in: the last one whose
/// change completed before the pin (the pin's atomic operation orders this
/// read after it), or, while a change is under way, the one before it — a
/// torn read of the two halves either matches no LSN the page had or equals
/// the old one. What that state *was* needs the content lock to read.
pub fn lsn_unlocked(page: Page) -> pg_sys::XLogRecPtr {
    // SAFETY: the header of a pinned page (its memory stays this block's
    // while the pin is held); volatile: the value may change under us.
    let (hi, lo) = unsafe {
        let l = std::ptr::addr_of!((*header(page)).pd_lsn);
        (
            std::ptr::read_volatile(std::ptr::addr_of!((*l).xlogid)),
            std::ptr::read_volatile(std::ptr::addr_of!((*l).xrecoff)),
        )
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Sets `pd_lsn` (`PageSetLSN`, a macro on PG15).
pub fn set_lsn(page: Page, lsn: pg_sys::XLogRecPtr) {
    // SAFETY: header of an exclusively locked page.
    unsafe {
        (*header(page)).pd_lsn = pg_sys::PageXLogRecPtr {
            xlogid: (lsn >> 32) as u32,
            xrecoff: lsn as u32,
        }
    };
}

/// Sets `pd_lower` (metapages keep their struct below it so full-page images
/// and GenericXLog deltas include it).
pub fn set_lower(page: Page, lower: usize) {
    // SAFETY: header is writable on an exclusively locked page / working copy.
    unsafe { (*header(page)).pd_lower = lower as u16 };
}

/// The page as bytes (valid while the buffer stays pinned; contents may only
/// be relied on under the buffer's content lock).
pub fn bytes<'a>(page: Page) -> &'a [u8] {
    // SAFETY: a pinned page is BLCKSZ readable bytes.
    unsafe { std::slice::from_raw_parts(page.ptr(), BLCKSZ) }
}

/// The page as mutable bytes: for GenericXLog working copies and exclusively
/// locked pages only.
pub fn bytes_mut<'a>(page: Page) -> &'a mut [u8] {
    // SAFETY: as above; the caller holds the right to modify the page.
    unsafe { std::slice::from_raw_parts_mut(page.ptr(), BLCKSZ) }
}

/// Overwrites a whole page (a working copy) with a prepared image.
pub fn copy_image(page: Page, image: &[u8]) {
    bytes_mut(page).copy_from_slice(image);
}

/// Appends bytes just below pd_lower (fixed arrays after the header).
pub fn append_below_lower(page: Page, data: &[u8]) -> bool {
    // SAFETY: header of a working copy or exclusively locked page.
    let (lower, upper) = unsafe {
        (
            (*header(page)).pd_lower as usize,
            (*header(page)).pd_upper as usize,
        )
    };
    if lower + data.len() > upper {
        return false;
    }
    bytes_mut(page)[lower..lower + data.len()].copy_from_slice(data);
    set_lower(page, lower + data.len());
    true
}


