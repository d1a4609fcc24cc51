//! The standard PostgreSQL page layout (`bufpage.h`, `itemid.h`) as plain
//! constants and the pure helpers over it (line pointers, `rm_mask`'s
//! header-and-hole masking): the one place the lsm and hnsw page code — pure modules
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

/// Masks what `wal_consistency_checking` must not compare on any standard
/// page (bufmask.c's `mask_page_lsn_and_checksum`, `mask_page_hint_bits`'s
/// page flags and `pd_prune_xid`, `mask_unused_space`): LSN and checksum,
/// the hint flags, the prune xid, and the free space between `pd_lower`
/// and `pd_upper`.
pub fn mask_header_and_hole(page: &mut [u8]) {
    const MARKER: u8 = 0;
    let u16_at = |p: &[u8], at: usize| u16::from_ne_bytes([p[at], p[at + 1]]);
    page[0..10].fill(MARKER); // pd_lsn, pd_checksum
    let flags = u16_at(page, 10) & !(0x0001 | 0x0002); // PD_HAS_FREE_LINES, PD_PAGE_FULL
    page[10..12].copy_from_slice(&flags.to_ne_bytes());
    page[20..24].fill(MARKER); // pd_prune_xid
    let (lower, upper) = (u16_at(page, 12) as usize, u16_at(page, 14) as usize);
    if PAGE_HEADER_SIZE <= lower && lower <= upper && upper <= page.len() {
        page[lower..upper].fill(MARKER);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mask_hides_lsn_checksum_hints_and_the_hole() {
        let mut s = 3u64;
        let mut p: Vec<u8> = (0..8192)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect();
        p[12..14].copy_from_slice(&100u16.to_ne_bytes());
        p[14..16].copy_from_slice(&200u16.to_ne_bytes());
        let mut q = p.clone();
        q[0..10].fill(7);
        q[150] ^= 1;
        q[10] ^= 0x03;
        super::mask_header_and_hole(&mut p);
        super::mask_header_and_hole(&mut q);
        assert_eq!(p, q);
        let mut r = q.clone();
        r[300] ^= 1;
        super::mask_header_and_hole(&mut r);
        assert_ne!(r, q);
    }
}
