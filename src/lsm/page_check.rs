//! Structural checks of `lsm` pages from their raw bytes, for
//! `strata.lsm_verify` and the counts of `strata.lsm_info`. Pure: the caller
//! copies each page out of its buffer and passes the few facts that need
//! Postgres (next xid, relfrozenxid, number of attributes).
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

use super::format::{self, Meta, PageKind, PageTag, ROWS_PER_VBLOCK, TAG_SIZE};

pub const PAGE_HEADER_SIZE: usize = 24;
pub const ITEM_ID_SIZE: usize = 4;
pub const TUPLE_HEADER_SIZE: usize = 23;
const LP_NORMAL: u32 = 1;

// infomask bits (htup_details.h)
const HEAP_HASNULL: u16 = 0x0001;
const HEAP_XMIN_COMMITTED: u16 = 0x0100;
const HEAP_XMIN_INVALID: u16 = 0x0200;
const HEAP_XMIN_FROZEN: u16 = HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID;
const HEAP_XMAX_COMMITTED: u16 = 0x0400;
const HEAP_XMAX_INVALID: u16 = 0x0800;
const HEAP_XMAX_IS_MULTI: u16 = 0x1000;
const HEAP_NATTS_MASK: u16 = 0x07FF;
const FIRST_NORMAL_XID: u32 = 3;

/// What the checks need to know about the relation and the server.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub block_size: usize,
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

/// A row version's identity and update link, for cross-page checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub offset: u16,
    pub ctid_block: u32,
    pub ctid_offset: u16,
}

/// What one page holds.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub kind: Option<PageKind>,
    pub vblock: u32,
    pub versions: u32,
    pub tuple_bytes: u64,
    pub free_bytes: u64,
    pub max_offset: u16,
    pub links: Vec<Link>,
    pub meta: Option<Meta>,
}

fn u16_at(p: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([p[at], p[at + 1]])
}
fn u32_at(p: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(p[at..at + 4].try_into().unwrap())
}

/// `TransactionIdPrecedes` for normal xids (modulo-2^32 comparison).
pub fn xid_precedes(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Checks one page; `problems` collects what is wrong.
pub fn check_page(block: u32, p: &[u8], ctx: &Context, problems: &mut Vec<Problem>) -> Summary {
    let mut out = Summary::default();
    let mut report = |offset: u16, message: String| {
        problems.push(Problem {
            block,
            offset,
            message,
        })
    };
    if p.len() != ctx.block_size {
        report(0, format!("page has {} bytes, expected {}", p.len(), ctx.block_size));
        return out;
    }
    let (lower, upper, special) = (
        u16_at(p, 12) as usize,
        u16_at(p, 14) as usize,
        u16_at(p, 16) as usize,
    );
    if upper == 0 {
        // PageIsNew: extended but never initialised (a crash between the
        // extension and its WAL record). Readers treat it as empty.
        if p.iter().any(|&b| b != 0) {
            report(0, "uninitialised page is not all zeroes".into());
        }
        return out;
    }
    let size_version = u16_at(p, 18) as usize;
    if size_version & 0xFF00 != ctx.block_size || size_version & 0xFF != 4 {
        report(0, format!("bad pd_pagesize_version {size_version:#06x}"));
        return out;
    }
    if special != ctx.block_size - TAG_SIZE {
        report(0, format!("special space at {special}, expected {}", ctx.block_size - TAG_SIZE));
        return out;
    }
    if lower < PAGE_HEADER_SIZE || lower > upper || upper > special {
        report(0, format!("bad page bounds lower={lower} upper={upper} special={special}"));
        return out;
    }
    let tag = PageTag {
        magic: u32_at(p, special),
        version: u16_at(p, special + 4),
        kind: u16_at(p, special + 6),
        vblock: u32_at(p, special + 8),
        flags: u32_at(p, special + 12),
    };
    let kind = match tag.validate() {
        Ok(k) => k,
        Err(e) => {
            report(0, format!("bad page tag: {e}"));
            return out;
        }
    };
    out.kind = Some(kind);
    out.vblock = tag.vblock;
    out.free_bytes = (upper - lower) as u64;
    match kind {
        PageKind::Meta => {
            if block != 0 {
                report(0, "metapage outside block 0".into());
            }
            check_meta(p, lower, &mut out, &mut report);
        }
        PageKind::L0 => {
            if block == 0 {
                report(0, "block 0 is not the metapage".into());
            }
            if tag.vblock != block {
                report(0, format!("L0 page has virtual block {}, expected {block}", tag.vblock));
            }
            check_rows(p, lower, upper, special, ctx, &mut out, &mut report);
        }
        other => report(0, format!("page kind {other:?} is not used by format version 1")),
    }
    out
}

fn check_meta(p: &[u8], lower: usize, out: &mut Summary, report: &mut impl FnMut(u16, String)) {
    let size = std::mem::size_of::<Meta>();
    if lower < PAGE_HEADER_SIZE + size {
        report(0, format!("metapage pd_lower {lower} does not cover the meta struct"));
        return;
    }
    let at = PAGE_HEADER_SIZE;
    let meta = Meta {
        magic: u32_at(p, at),
        version: u32_at(p, at + 4),
        l0_directory: u32_at(p, at + 8),
        manifest: u32_at(p, at + 12),
        flushes: u64::from_le_bytes(p[at + 16..at + 24].try_into().unwrap()),
        compactions: u64::from_le_bytes(p[at + 24..at + 32].try_into().unwrap()),
    };
    if meta.magic != format::MAGIC || meta.version != format::FORMAT_VERSION as u32 {
        report(0, format!("bad meta magic/version {:#x}/{}", meta.magic, meta.version));
    }
    if meta.l0_directory != 0 || meta.manifest != 0 {
        report(0, "format version 1 has no L0 directory or run manifest".into());
    }
    out.meta = Some(meta);
}

fn check_rows(
    p: &[u8],
    lower: usize,
    upper: usize,
    special: usize,
    ctx: &Context,
    out: &mut Summary,
    report: &mut impl FnMut(u16, String),
) {
    let nitems = (lower - PAGE_HEADER_SIZE) / ITEM_ID_SIZE;
    if (lower - PAGE_HEADER_SIZE) % ITEM_ID_SIZE != 0 {
        report(0, format!("pd_lower {lower} is not at a line pointer boundary"));
    }
    if nitems > ROWS_PER_VBLOCK as usize {
        report(0, format!("{nitems} line pointers, at most {ROWS_PER_VBLOCK} allowed"));
        return;
    }
    out.max_offset = nitems as u16;
    let mut extents = Vec::with_capacity(nitems);
    for i in 0..nitems {
        let offset = (i + 1) as u16;
        let raw = u32_at(p, PAGE_HEADER_SIZE + i * ITEM_ID_SIZE);
        let (off, flags, len) = (
            (raw & 0x7FFF) as usize,
            (raw >> 15) & 0x3,
            (raw >> 17) as usize,
        );
        if flags != LP_NORMAL {
            report(offset, format!("line pointer has flags {flags}; L0 pages only hold normal items"));
            continue;
        }
        if off < upper || off + len > special || off % 8 != 0 {
            report(offset, format!("tuple at {off}+{len} lies outside {upper}..{special} or is unaligned"));
            continue;
        }
        if len < TUPLE_HEADER_SIZE {
            report(offset, format!("tuple length {len} is shorter than a tuple header"));
            continue;
        }
        extents.push((off, len, offset));
        out.versions += 1;
        out.tuple_bytes += len as u64;
        check_tuple(&p[off..off + len], offset, ctx, out, report);
    }
    extents.sort_unstable();
    for w in extents.windows(2) {
        if w[0].0 + w[0].1 > w[1].0 {
            report(w[1].2, format!("tuple overlaps the tuple of line pointer {}", w[0].2));
        }
    }
}

fn check_tuple(
    t: &[u8],
    offset: u16,
    ctx: &Context,
    out: &mut Summary,
    report: &mut impl FnMut(u16, String),
) {
    let (xmin, xmax) = (u32_at(t, 0), u32_at(t, 4));
    let ctid_block = ((u16_at(t, 12) as u32) << 16) | u16_at(t, 14) as u32;
    let ctid_offset = u16_at(t, 16);
    let (mask2, mask, hoff) = (u16_at(t, 18), u16_at(t, 20), t[22] as usize);
    let natts = mask2 & HEAP_NATTS_MASK;
    if hoff < TUPLE_HEADER_SIZE || hoff % 8 != 0 || hoff > t.len() {
        report(offset, format!("bad t_hoff {hoff} for a tuple of {} bytes", t.len()));
    } else if mask & HEAP_HASNULL != 0 && hoff < TUPLE_HEADER_SIZE + (natts as usize).div_ceil(8) {
        report(offset, format!("t_hoff {hoff} leaves no room for a null bitmap of {natts} attributes"));
    }
    if natts > ctx.natts {
        report(offset, format!("tuple has {natts} attributes, relation has {}", ctx.natts));
    }
    if mask & (HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID) == HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID {
        report(offset, "xmax is marked both committed and invalid".into());
    }
    let frozen = mask & HEAP_XMIN_FROZEN == HEAP_XMIN_FROZEN;
    if xmin >= FIRST_NORMAL_XID && !frozen {
        if !xid_precedes(xmin, ctx.next_xid) {
            report(offset, format!("xmin {xmin} is not older than the next xid {}", ctx.next_xid));
        }
        if ctx.frozen_xid >= FIRST_NORMAL_XID && xid_precedes(xmin, ctx.frozen_xid) {
            report(offset, format!("xmin {xmin} precedes relfrozenxid {}", ctx.frozen_xid));
        }
    }
    if mask & (HEAP_XMAX_INVALID | HEAP_XMAX_IS_MULTI) == 0
        && xmax >= FIRST_NORMAL_XID
        && !xid_precedes(xmax, ctx.next_xid)
    {
        report(offset, format!("xmax {xmax} is not older than the next xid {}", ctx.next_xid));
    }
    if !format::offset_in_range(ctid_offset) {
        report(offset, format!("t_ctid offset {ctid_offset} is out of range"));
    } else {
        out.links.push(Link {
            offset,
            ctid_block,
            ctid_offset,
        });
    }
}

/// Cross-page checks: every update link (`t_ctid` other than the row itself)
/// names a row version that exists. `pages[b]` is block `b`'s summary.
pub fn check_links(pages: &[Summary], problems: &mut Vec<Problem>) {
    for (block, s) in pages.iter().enumerate() {
        for l in &s.links {
            if l.ctid_block == s.vblock && l.ctid_offset == l.offset {
                continue;
            }
            let target = pages
                .get(l.ctid_block as usize)
                .filter(|t| t.kind == Some(PageKind::L0));
            if target.is_none_or(|t| l.ctid_offset > t.max_offset) {
                problems.push(Problem {
                    block: block as u32,
                    offset: l.offset,
                    message: format!(
                        "t_ctid ({},{}) names no row version",
                        l.ctid_block, l.ctid_offset
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BS: usize = 8192;
    const CTX: Context = Context {
        block_size: BS,
        natts: 3,
        next_xid: 1000,
        frozen_xid: 3,
    };

    /// Builds an L0 page at `block` holding tuples (xmin, xmax, infomask, ctid).
    fn l0_page(block: u32, tuples: &[(u32, u32, u16, (u32, u16))]) -> Vec<u8> {
        let mut p = vec![0u8; BS];
        let special = BS - TAG_SIZE;
        let mut upper = special;
        for (i, &(xmin, xmax, mask, (cb, co))) in tuples.iter().enumerate() {
            let len = 32;
            upper -= len;
            let t = &mut p[upper..upper + len];
            t[0..4].copy_from_slice(&xmin.to_le_bytes());
            t[4..8].copy_from_slice(&xmax.to_le_bytes());
            t[12..14].copy_from_slice(&((cb >> 16) as u16).to_le_bytes());
            t[14..16].copy_from_slice(&(cb as u16).to_le_bytes());
            t[16..18].copy_from_slice(&co.to_le_bytes());
            t[18..20].copy_from_slice(&2u16.to_le_bytes());
            t[20..22].copy_from_slice(&mask.to_le_bytes());
            t[22] = 24;
            let lp = (upper as u32) | (LP_NORMAL << 15) | ((len as u32) << 17);
            let at = PAGE_HEADER_SIZE + i * ITEM_ID_SIZE;
            p[at..at + 4].copy_from_slice(&lp.to_le_bytes());
        }
        let lower = PAGE_HEADER_SIZE + tuples.len() * ITEM_ID_SIZE;
        p[12..14].copy_from_slice(&(lower as u16).to_le_bytes());
        p[14..16].copy_from_slice(&(upper as u16).to_le_bytes());
        p[16..18].copy_from_slice(&(special as u16).to_le_bytes());
        p[18..20].copy_from_slice(&((BS as u16) | 4).to_le_bytes());
        p[special..special + 4].copy_from_slice(&format::MAGIC.to_le_bytes());
        p[special + 4..special + 6].copy_from_slice(&format::FORMAT_VERSION.to_le_bytes());
        p[special + 6..special + 8].copy_from_slice(&(PageKind::L0 as u16).to_le_bytes());
        p[special + 8..special + 12].copy_from_slice(&block.to_le_bytes());
        p
    }

    fn check(block: u32, p: &[u8]) -> (Summary, Vec<Problem>) {
        let mut problems = vec![];
        let s = check_page(block, p, &CTX, &mut problems);
        (s, problems)
    }

    #[test]
    fn healthy_page_has_no_problems() {
        let p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID, (1, 1)), (11, 12, 0, (1, 1))]);
        let (s, problems) = check(1, &p);
        assert_eq!(problems, vec![]);
        assert_eq!((s.kind, s.versions, s.tuple_bytes, s.max_offset), (Some(PageKind::L0), 2, 64, 2));
    }

    #[test]
    fn new_page_is_empty_not_broken() {
        let (s, problems) = check(5, &vec![0u8; BS]);
        assert!(problems.is_empty() && s.kind.is_none());
        let mut p = vec![0u8; BS];
        p[100] = 1;
        assert_eq!(check(5, &p).1.len(), 1);
    }

    #[test]
    fn detects_bad_tag_bounds_and_xids() {
        let mut p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID, (1, 1))]);
        p[BS - TAG_SIZE] ^= 0xFF;
        assert!(check(1, &p).1[0].message.contains("bad page magic"));

        let p = l0_page(2, &[(10, 0, HEAP_XMAX_INVALID, (2, 1))]);
        assert!(check(3, &p).1[0].message.contains("virtual block 2"));

        let p = l0_page(1, &[(5000, 0, HEAP_XMAX_INVALID, (1, 1))]);
        assert!(check(1, &p).1[0].message.contains("next xid"));

        let both = HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID;
        let p = l0_page(1, &[(10, 0, both, (1, 1))]);
        assert!(check(1, &p).1[0].message.contains("both committed and invalid"));

        let mut p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID, (1, 1))]);
        p[14..16].copy_from_slice(&10u16.to_le_bytes()); // upper < lower
        assert!(check(1, &p).1[0].message.contains("bad page bounds"));
    }

    #[test]
    fn frozen_xmin_may_precede_relfrozenxid() {
        let ctx = Context { frozen_xid: 500, ..CTX };
        let p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID | HEAP_XMIN_FROZEN, (1, 1))]);
        let mut problems = vec![];
        check_page(1, &p, &ctx, &mut problems);
        assert!(problems.is_empty());
        let p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID, (1, 1))]);
        check_page(1, &p, &ctx, &mut problems);
        assert!(problems[0].message.contains("relfrozenxid"));
    }

    #[test]
    fn update_links_must_name_existing_versions() {
        let a = l0_page(1, &[(10, 11, 0, (2, 1)), (10, 11, 0, (2, 9))]);
        let b = l0_page(2, &[(11, 0, HEAP_XMAX_INVALID, (2, 1))]);
        let mut problems = vec![];
        let meta = Summary::default();
        let pages = vec![meta, check_page(1, &a, &CTX, &mut problems), check_page(2, &b, &CTX, &mut problems)];
        check_links(&pages, &mut problems);
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].block, problems[0].offset), (1, 2));
    }
}
