//! The standard PostgreSQL page layout (`bufpage.h`, `itemid.h`) as plain
//! constants: the one place the lsm and hnsw page code — pure modules
//! included — take them from. `pg::page` ties each one to `pg_sys` with a
//! compile-time assert, so a server built with other values fails to build
//! instead of misreading pages.

/// Bytes of a page (`BLCKSZ`).
pub const BLOCK_SIZE: usize = 8192;
/// `SizeOfPageHeaderData`.
pub const PAGE_HEADER_SIZE: usize = 24;
/// `sizeof(ItemIdData)`: one line pointer.
pub const ITEM_ID_SIZE: usize = 4;
/// `LP_NORMAL`: a line pointer to an item in use.
pub const LP_NORMAL: u32 = 1;
/// `SizeofHeapTupleHeader`: a heap tuple's fixed header, before its null
/// bitmap.
pub const HEAP_TUPLE_HEADER_SIZE: usize = 23;
/// `MAXIMUM_ALIGNOF`.
pub const MAX_ALIGN: usize = 8;

/// `MAXALIGN(n)`.
pub const fn maxalign(n: usize) -> usize {
    (n + MAX_ALIGN - 1) & !(MAX_ALIGN - 1)
}

/// Page bytes an item of `len` bytes takes with its line pointer.
pub const fn item_cost(len: usize) -> usize {
    maxalign(len) + ITEM_ID_SIZE
}

/// `(lp_off, lp_flags, lp_len)` of an `ItemIdData` read as a little-endian
/// u32 (15, 2 and 15 bits, in that order).
pub const fn line_pointer(lp: u32) -> (usize, u32, usize) {
    ((lp & 0x7FFF) as usize, (lp >> 15) & 3, (lp >> 17) as usize)
}
