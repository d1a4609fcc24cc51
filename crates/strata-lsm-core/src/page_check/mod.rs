//! Structural checks of `lsm` pages from their raw bytes, for
//! `strata.lsm_verify` and the counts of `strata.lsm_info`. Pure: the caller
//! copies each page out of its buffer and passes the few facts that need
//! Postgres (next xid, relfrozenxid, number of attributes).
//!
//! Two passes: [`check_page`] (`page.rs`) checks each page on its own and
//! summarises it; [`check_manifest`] (`manifest.rs`) then checks the pages
//! against the metapage — the L0
//! directory, every run's fence index and data pages, rowid order, no page
//! used twice, and that every update link names an existing live version.
//!
//! A page is parsed from the standard layout (`bufpage.h`, `itemid.h`,
//! `htup_details.h`) rather than through pointers, so a damaged page can never
//! make the checker read outside it.
//!
//! ```text
//!  PageHeader (24 bytes)                  ItemId (4 bytes, little endian)
//!  0  pd_lsn u64                          bits 0..15  lp_off
//!  8  pd_checksum u16, pd_flags u16       bits 15..17 lp_flags (1 = NORMAL)
//!  12 pd_lower u16, pd_upper u16          bits 17..32 lp_len
//!  16 pd_special u16, pd_pagesize_version u16
//!  20 pd_prune_xid u32
//!
//!  HeapTupleHeader (23 bytes + null bitmap, padded to t_hoff)
//!  0 t_xmin u32   4 t_xmax u32   8 t_cid u32   12 t_ctid (bi_hi u16, bi_lo u16, posid u16)
//!  18 t_infomask2 u16   20 t_infomask u16   22 t_hoff u8
//! ```

use super::bloom;
use super::columnar::Attr;
use super::compact_page;
use super::compressed_page;
use super::format::{
    self, u16_at, u32_at, Meta, PageKind, PageTag, RunDesc, FENCE_ENTRIES, ROWID_PREFIX,
    ROWS_PER_VBLOCK, TAG_SIZE,
};
use super::page_image;
use std::collections::{HashMap, HashSet};

pub use strata_base::page_layout::{ITEM_ID_SIZE, PAGE_HEADER_SIZE};
use strata_base::page_layout::LP_NORMAL;
pub use strata_base::page_layout::HEAP_TUPLE_HEADER_SIZE as TUPLE_HEADER_SIZE;

use super::format::infomask::{
    HEAP_HASNULL, HEAP_NATTS_MASK, HEAP_ONLY_TUPLE, HEAP_XMAX_COMMITTED, HEAP_XMAX_INVALID,
    HEAP_XMAX_IS_MULTI, HEAP_XMIN_FROZEN,
};
#[cfg(test)]
use super::format::infomask::HEAP_XMIN_INVALID;
const FIRST_NORMAL_XID: u32 = 3;

/// What the checks need to know about the relation and the server.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub block_size: usize,
    /// The relation's column layout (column-wise compressed payloads).
    pub attrs: &'a [Attr],
    /// Number of attributes of the relation (dropped ones included).
    pub natts: u16,
    /// `ReadNextTransactionId()`: no stored xid may be at or after it.
    pub next_xid: u32,
    /// `relfrozenxid`: unfrozen xmins must not precede it (0 = unknown).
    pub frozen_xid: u32,
}

/// One problem found on a page (`offset` 0 = the page itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub block: u32,
    pub offset: u16,
    pub message: String,
}

/// A row version's identity (rowid) and update link, for cross-page checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub item: u16,
    pub rowid: u64,
    pub ctid_block: u32,
    pub ctid_offset: u16,
    /// The version's `t_infomask2` (heap-only and redirect flags).
    pub mask2: u16,
}

/// What one page holds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub kind: Option<PageKind>,
    /// The tag's owner: virtual block (L0), run id (RUN_*), slot (L0_DIR).
    pub owner: u32,
    pub flags: u32,
    pub versions: u32,
    pub tuple_bytes: u64,
    pub free_bytes: u64,
    pub links: Vec<Link>,
    pub meta: Option<Meta>,
    /// RUN_INDEX fences or L0_DIR entries.
    pub entries: Vec<(u64, u32)>,
    /// A root RUN_INDEX page's bloom filter: `(k, filter page blocks)`.
    pub filter: Option<(u8, Vec<u32>)>,
    /// A bloom filter page's bits.
    pub bloom: Option<Vec<u8>>,
    /// `(item, xmin)` of unfrozen versions older than relfrozenxid: a
    /// problem only on pages in use (free pages keep stale copies).
    pub old_xmins: Vec<(u16, u32)>,
    /// Redirects of update chains (see `chain`).
    pub redirects: u32,
    /// An expanded compact page's RUN_PAYLOAD page.
    pub payload_block: Option<u32>,
    /// How a RUN_DATA page stores its versions: "uncompressed", "stubs"
    /// (version 3 compressed), "compact, shared headers", "compact"; and the
    /// codec of a compressed one.
    pub layout: Option<&'static str>,
    pub codec: Option<&'static str>,
}

/// Reads the owner (run id) and blob of the RUN_PAYLOAD page at a block
/// (None: not one).
pub type BlobOf<'a> = &'a dyn Fn(u32) -> Option<(u32, Vec<u8>)>;

/// `TransactionIdPrecedes` for normal xids (modulo-2^32 comparison).
pub fn xid_precedes(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

mod manifest;
mod page;

pub use manifest::check_manifest;
pub use page::check_page;

#[cfg(test)]
mod tests;
