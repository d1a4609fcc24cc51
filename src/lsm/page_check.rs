//! Structural checks of `lsm` pages from their raw bytes, for
//! `strata.lsm_verify` and the counts of `strata.lsm_info`. Pure: the caller
//! copies each page out of its buffer and passes the few facts that need
//! Postgres (next xid, relfrozenxid, number of attributes).
//!
//! Two passes: [`check_page`] checks each page on its own and summarises it;
//! [`check_manifest`] then checks the pages against the metapage — the L0
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

pub use crate::page_layout::{ITEM_ID_SIZE, PAGE_HEADER_SIZE};
use crate::page_layout::LP_NORMAL;
pub use crate::page_layout::HEAP_TUPLE_HEADER_SIZE as TUPLE_HEADER_SIZE;

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

/// Checks one page; `problems` collects what is wrong. `blob_of` reads the
/// payload page of an expanded compact page.
pub fn check_page(
    block: u32,
    p: &[u8],
    ctx: &Context<'_>,
    blob_of: BlobOf,
    problems: &mut Vec<Problem>,
) -> Summary {
    let mut out = Summary::default();
    let mut report = |offset: u16, message: String| {
        problems.push(Problem {
            block,
            offset,
            message,
        })
    };
    if p.len() != ctx.block_size {
        report(
            0,
            format!("page has {} bytes, expected {}", p.len(), ctx.block_size),
        );
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
    let tag_at = ctx.block_size - TAG_SIZE;
    // compressed data pages and run roots with a bloom filter keep more
    // than the tag in their special space
    let raw_tag = PageTag::read(p, tag_at);
    let filter_root =
        raw_tag.kind == PageKind::RunIndex as u16 && raw_tag.flags == format::INDEX_ROOT;
    let extended = compressed_page::is_compressed(p)
        || filter_root
        || raw_tag.kind == PageKind::RunPayload as u16;
    if special != tag_at && !(extended && special < tag_at) {
        report(0, format!("special space at {special}, expected {tag_at}"));
        return out;
    }
    if lower < PAGE_HEADER_SIZE || lower > upper || upper > special {
        report(
            0,
            format!("bad page bounds lower={lower} upper={upper} special={special}"),
        );
        return out;
    }
    let tag = PageTag::read(p, tag_at);
    let kind = match tag.validate() {
        Ok(k) => k,
        Err(e) => {
            report(0, format!("bad page tag: {e}"));
            return out;
        }
    };
    out.kind = Some(kind);
    out.owner = tag.vblock;
    out.flags = tag.flags;
    out.free_bytes = (upper - lower) as u64;
    if (kind == PageKind::Meta) != (block == 0) {
        report(
            0,
            format!("block {block} holds a {kind:?} page; only block 0 is the metapage"),
        );
        return out;
    }
    match kind {
        PageKind::Meta => match Meta::decode(p) {
            Ok(m) => out.meta = Some(m),
            Err(e) => report(0, format!("bad metapage: {e}")),
        },
        PageKind::L0 | PageKind::RunData => check_rows(
            p, lower, upper, special, kind, ctx, blob_of, &mut out, &mut report,
        ),
        PageKind::RunPayload => {
            let blob = compact_page::payload_page_blob(p);
            let frame = u32_at(blob, 4) as usize;
            if blob.len() < compressed_page::BLOB_HEADER + frame {
                report(0, format!("payload page's frame of {frame} bytes overruns it"));
            }
        }
        PageKind::RunIndex if tag.flags == format::INDEX_BLOOM => match page_image::bloom_body(p) {
            Some(body) => out.bloom = Some(body.to_vec()),
            None => report(0, format!("bad bloom filter page (pd_lower {lower})")),
        },
        PageKind::RunIndex => {
            if special < tag_at {
                out.filter = page_image::root_filter(p);
                if tag.flags != format::INDEX_ROOT || out.filter.is_none() {
                    report(0, "bad bloom filter trailer in the special space".into());
                }
            }
            out.entries = page_image::fences(p);
            if out.entries.len() > FENCE_ENTRIES
                || (lower - PAGE_HEADER_SIZE) % format::FENCE_SIZE != 0
            {
                report(0, format!("bad fence array (pd_lower {lower})"));
            }
            if out.entries.windows(2).any(|w| w[0].0 >= w[1].0) {
                report(0, "fences are not in increasing rowid order".into());
            }
        }
        PageKind::L0Dir => {
            out.entries = page_image::dir_entries(p)
                .into_iter()
                .map(|b| (0, b))
                .collect();
        }
        PageKind::Free => {}
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn check_rows(
    p: &[u8],
    lower: usize,
    upper: usize,
    special: usize,
    kind: PageKind,
    ctx: &Context<'_>,
    blob_of: BlobOf,
    out: &mut Summary,
    report: &mut impl FnMut(u16, String),
) {
    let nitems = (lower - PAGE_HEADER_SIZE) / ITEM_ID_SIZE;
    let compact = compact_page::is_compact(p);
    if (lower - PAGE_HEADER_SIZE) % ITEM_ID_SIZE != 0 {
        report(
            0,
            format!("pd_lower {lower} is not at a line pointer boundary"),
        );
    }
    if nitems > ROWS_PER_VBLOCK as usize {
        report(
            0,
            format!("{nitems} line pointers, at most {ROWS_PER_VBLOCK} allowed"),
        );
        return;
    }
    if compact {
        let problems = compact_page::check(p);
        let bad = !problems.is_empty();
        for m in problems {
            report(0, m);
        }
        if bad {
            return;
        }
        let h = compact_page::head(p);
        if h.payload_block != 0 {
            out.payload_block = Some(h.payload_block);
        }
    }
    let blob = match compact_page::head(p).payload_block {
        _ if !compact => None,
        0 => compact_page::inline_blob(p).map(|b| b.to_vec()),
        // A free page's payload page may hold anything by now: whether a
        // page in use has its own is checked with its run (check_run).
        b => match blob_of(b) {
            Some((owner, blob)) if owner == out.owner => Some(blob),
            _ => return,
        },
    };
    let decoded = match &blob {
        Some(blob) => Some(compact_page::decode(p, blob, ctx.attrs)),
        None if compressed_page::is_compressed(p) => Some(compressed_page::decode(p)),
        None => None,
    };
    if kind == PageKind::RunData {
        out.layout = Some(match (compact, compressed_page::is_compressed(p)) {
            (true, _) if compact_page::head(p).shared => "compact, shared headers",
            (true, _) => "compact",
            (false, true) => "stubs",
            (false, false) => "uncompressed",
        });
        let codec = blob
            .as_deref()
            .or_else(|| (!compact).then(|| &p[special..]))
            .filter(|b| b.len() > 15 && compressed_page::is_compressed(p))
            .map(|b| {
                // a layout-4 page without a zstd section reads as layout 3
                let mixed = compressed_page::has_zstd_section(b);
                let layout = match b[15] {
                    compressed_page::LAYOUT_MIXED_SECTIONS if !mixed => compressed_page::LAYOUT_DICT_SECTIONS,
                    l => l,
                };
                (b[14], layout)
            });
        out.codec = codec.map(|c| match c {
            (compressed_page::CODEC_ZSTD, compressed_page::LAYOUT_ROWS) => "zstd",
            (compressed_page::CODEC_ZSTD, compressed_page::LAYOUT_COLUMNS) => "zstd, by column, one frame",
            (compressed_page::CODEC_ZSTD, compressed_page::LAYOUT_SECTIONS) => "zstd, by column",
            (compressed_page::CODEC_ZSTD, compressed_page::LAYOUT_DICT_SECTIONS) => "zstd, by column, dictionaries",
            (compressed_page::CODEC_LZ4, compressed_page::LAYOUT_ROWS) => "lz4",
            (compressed_page::CODEC_LZ4, compressed_page::LAYOUT_COLUMNS) => "lz4, by column, one frame",
            (compressed_page::CODEC_LZ4, compressed_page::LAYOUT_SECTIONS) => "lz4, by column",
            (compressed_page::CODEC_LZ4, compressed_page::LAYOUT_DICT_SECTIONS) => "lz4, by column, dictionaries",
            (compressed_page::CODEC_LZ4, compressed_page::LAYOUT_MIXED_SECTIONS) => "lz4 and zstd, by column, dictionaries",
            _ => "unknown",
        });
    }
    let payload = if let Some(decoded) = decoded {
        match decoded {
            Ok(payload) => Some(payload),
            Err(e) => {
                report(0, e.to_string());
                return;
            }
        }
    } else {
        None
    };
    let mut extents = Vec::with_capacity(nitems);
    let mut last_rowid = None;
    for i in 0..nitems {
        let offset = (i + 1) as u16;
        let raw = u32_at(p, PAGE_HEADER_SIZE + i * ITEM_ID_SIZE);
        let (off, flags, len) = crate::page_layout::line_pointer(raw);
        if flags != LP_NORMAL {
            report(
                offset,
                format!("line pointer has flags {flags}; lsm pages only hold normal items"),
            );
            continue;
        }
        if off < upper || off + len > special || off % 8 != 0 {
            report(
                offset,
                format!("tuple at {off}+{len} lies outside {upper}..{special} or is unaligned"),
            );
            continue;
        }
        let prefix = if kind == PageKind::RunData && !compact {
            ROWID_PREFIX
        } else {
            0
        };
        if len < prefix + TUPLE_HEADER_SIZE {
            report(
                offset,
                format!("item length {len} is shorter than a tuple header"),
            );
            continue;
        }
        let rowid = if kind == PageKind::RunData {
            let r = if compact {
                compact_page::rowid_of(p, offset as usize).unwrap_or(0)
            } else {
                format::u64_at(p, off)
            };
            if last_rowid.is_some_and(|l| l >= r) {
                report(
                    offset,
                    format!("rowid {r} is not above the previous item's"),
                );
            }
            last_rowid = Some(r);
            r
        } else {
            format::rowid(out.owner, offset)
        };
        extents.push((off, len, offset));
        out.versions += 1;
        match &payload {
            None => {
                out.tuple_bytes += (len - prefix) as u64;
                check_tuple(&p[off + prefix..off + len], offset, rowid, ctx, out, report);
            }
            Some(payload) if compact => match compact_page::tuple_parts(p, payload, offset as usize) {
                Some((h, rest)) => {
                    let t = [&h[..], rest].concat();
                    out.tuple_bytes += t.len() as u64;
                    check_tuple(&t, offset, rowid, ctx, out, report);
                }
                None => report(offset, format!("compact item of {len} bytes is not a header")),
            },
            Some(payload) => match compressed_page::tuple(p, payload, offset as usize) {
                Some(t) => {
                    out.tuple_bytes += t.len() as u64;
                    check_tuple(&t, offset, rowid, ctx, out, report);
                }
                None => report(
                    offset,
                    format!("compressed item of {len} bytes is not a stub"),
                ),
            },
        }
    }
    extents.sort_unstable();
    if compact {
        // versions nobody stamped share a header (compact_page::check)
        extents.dedup_by_key(|e| e.0);
    }
    for w in extents.windows(2) {
        if w[0].0 + w[0].1 > w[1].0 {
            report(
                w[1].2,
                format!("tuple overlaps the tuple of line pointer {}", w[0].2),
            );
        }
    }
}

fn check_tuple(
    t: &[u8],
    offset: u16,
    rowid: u64,
    ctx: &Context<'_>,
    out: &mut Summary,
    report: &mut impl FnMut(u16, String),
) {
    let (xmin, xmax) = (u32_at(t, 0), u32_at(t, 4));
    let ctid_block = ((u16_at(t, 12) as u32) << 16) | u16_at(t, 14) as u32;
    let ctid_offset = u16_at(t, 16);
    let (mask2, mask, hoff) = (u16_at(t, 18), u16_at(t, 20), t[22] as usize);
    let natts = mask2 & HEAP_NATTS_MASK;
    if hoff < TUPLE_HEADER_SIZE || hoff % 8 != 0 || hoff > t.len() {
        report(
            offset,
            format!("bad t_hoff {hoff} for a tuple of {} bytes", t.len()),
        );
    } else if mask & HEAP_HASNULL != 0 && hoff < TUPLE_HEADER_SIZE + (natts as usize).div_ceil(8) {
        report(
            offset,
            format!("t_hoff {hoff} leaves no room for a null bitmap of {natts} attributes"),
        );
    }
    if natts > ctx.natts {
        report(
            offset,
            format!("tuple has {natts} attributes, relation has {}", ctx.natts),
        );
    }
    if mask & (HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID) == HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID {
        report(offset, "xmax is marked both committed and invalid".into());
    }
    let frozen = mask & HEAP_XMIN_FROZEN == HEAP_XMIN_FROZEN;
    if xmin >= FIRST_NORMAL_XID && !frozen {
        if !xid_precedes(xmin, ctx.next_xid) {
            report(
                offset,
                format!(
                    "xmin {xmin} is not older than the next xid {}",
                    ctx.next_xid
                ),
            );
        }
        if ctx.frozen_xid >= FIRST_NORMAL_XID && xid_precedes(xmin, ctx.frozen_xid) {
            out.old_xmins.push((offset, xmin));
        }
    }
    if mask & (HEAP_XMAX_INVALID | HEAP_XMAX_IS_MULTI) == 0
        && xmax >= FIRST_NORMAL_XID
        && !xid_precedes(xmax, ctx.next_xid)
    {
        report(
            offset,
            format!(
                "xmax {xmax} is not older than the next xid {}",
                ctx.next_xid
            ),
        );
    }
    if !format::offset_in_range(ctid_offset) {
        report(
            offset,
            format!("t_ctid offset {ctid_offset} is out of range"),
        );
    } else {
        out.links.push(Link {
            item: offset,
            rowid,
            ctid_block,
            ctid_offset,
            mask2,
        });
    }
    if mask2 & format::REDIRECT_FLAG != 0 {
        out.redirects += 1;
        if mask2 & HEAP_ONLY_TUPLE != 0 || natts != 0 || xmin != 0 {
            report(offset, "redirect is heap-only, has attributes or an xmin".into());
        }
    }
}

/// Cross-page checks against the metapage (`pages[b]` is block `b`'s
/// summary); returns, per block, whether the manifest uses it.
pub fn check_manifest(
    pages: &[Summary],
    frozen_xid: u32,
    problems: &mut Vec<Problem>,
) -> Vec<bool> {
    let mut used = vec![false; pages.len()];
    let mut report = |block: u32, item: u16, message: String| {
        problems.push(Problem {
            block,
            offset: item,
            message,
        })
    };
    let Some(meta) = pages.first().and_then(|s| s.meta.clone()) else {
        if !pages.is_empty() {
            report(0, 0, "no valid metapage".into());
        }
        return used;
    };
    used[0] = true;
    let mut claim = |block: u32, what: &str, report: &mut dyn FnMut(u32, u16, String)| -> bool {
        match used.get_mut(block as usize) {
            None => {
                report(
                    0,
                    0,
                    format!("{what} names block {block}, past the end of the relation"),
                );
                false
            }
            Some(u) if *u => {
                report(block, 0, format!("block is used twice (again as {what})"));
                false
            }
            Some(u) => {
                *u = true;
                true
            }
        }
    };
    let kind_of = |b: u32| pages.get(b as usize).and_then(|s| s.kind);
    let mut live_rowids: HashSet<u64> = HashSet::new();
    let mut links: Vec<(u32, Link)> = Vec::new();

    // L0: every directory entry names an L0 page with that virtual block.
    let h = &meta.header;
    if meta.l0_seal != 0 && !(h.l0_first_vblock..=h.next_vblock).contains(&meta.l0_seal) {
        report(
            0,
            0,
            format!(
                "L0 seal {} lies outside L0 ({}..{})",
                meta.l0_seal, h.l0_first_vblock, h.next_vblock
            ),
        );
    }
    let l0_pages = meta.l0_pages() as usize;
    for slot in 0..l0_pages.div_ceil(format::DIR_ENTRIES) {
        let dir = meta.l0_dir[slot];
        if !claim(dir, "L0 directory page", &mut report) {
            continue;
        }
        if kind_of(dir) != Some(PageKind::L0Dir) || pages[dir as usize].owner != slot as u32 {
            report(
                dir,
                0,
                format!("L0 directory slot {slot} does not name its directory page"),
            );
            continue;
        }
        let expected = (l0_pages - slot * format::DIR_ENTRIES).min(format::DIR_ENTRIES);
        let entries = &pages[dir as usize].entries;
        if entries.len() != expected {
            report(
                dir,
                0,
                format!(
                    "directory page has {} entries, expected {expected}",
                    entries.len()
                ),
            );
        }
        for (j, (_, b)) in entries.iter().enumerate().take(expected) {
            let v = h.l0_first_vblock + (slot * format::DIR_ENTRIES + j) as u32;
            if !claim(*b, "L0 page", &mut report) {
                continue;
            }
            let s = &pages[*b as usize];
            if s.kind != Some(PageKind::L0) || s.owner != v {
                report(
                    *b,
                    0,
                    format!("L0 directory maps virtual block {v} here, but the page is not it"),
                );
                continue;
            }
            for l in &s.links {
                if !live_rowids.insert(l.rowid) {
                    report(*b, l.item, format!("rowid {} is stored twice", l.rowid));
                }
            }
            links.extend(s.links.iter().map(|l| (*b, *l)));
        }
    }
    // Runs: sorted, disjoint, below L0; fence index consistent with data pages.
    let l0_low = format::rowid(h.l0_first_vblock, 1);
    for (i, run) in meta.runs.iter().enumerate() {
        if run.first_rowid > run.last_rowid || run.last_rowid >= l0_low {
            report(0, 0, format!("run {} has a bad rowid range", run.run_id));
        }
        if i > 0 && meta.runs[i - 1].last_rowid >= run.first_rowid {
            report(
                0,
                0,
                format!("run {} overlaps the run before it", run.run_id),
            );
        }
        check_run(
            run,
            pages,
            &mut claim,
            &mut report,
            &mut live_rowids,
            &mut links,
        );
    }
    // A page that claims to belong to the manifest but is not reached from it
    // would be read by scans (they go by page tags) yet never by lookups.
    for (b, s) in pages.iter().enumerate() {
        if used[b] {
            for (item, xmin) in &s.old_xmins {
                report(
                    b as u32,
                    *item,
                    format!("xmin {xmin} precedes relfrozenxid {}", frozen_xid),
                );
            }
            continue;
        }
        let claims = match s.kind {
            Some(PageKind::L0) => s.owner >= h.l0_first_vblock && s.owner < h.next_vblock,
            Some(PageKind::RunData | PageKind::RunIndex | PageKind::RunPayload) => {
                meta.has_run(s.owner)
            }
            _ => false,
        };
        if claims {
            report(
                b as u32,
                0,
                format!(
                    "{:?} page claims to be in use but the manifest does not reach it",
                    s.kind.unwrap()
                ),
            );
        }
    }
    // A redirect names a heap-only version of the table (the first live
    // member of its chain when VACUUM wrote it; VACUUM re-points or drops
    // it before that member goes).
    let heap_only: HashSet<u64> = links
        .iter()
        .filter(|(_, l)| l.mask2 & HEAP_ONLY_TUPLE != 0)
        .map(|(_, l)| l.rowid)
        .collect();
    for (block, l) in &links {
        if l.mask2 & format::REDIRECT_FLAG != 0
            && !heap_only.contains(&format::rowid(l.ctid_block, l.ctid_offset))
        {
            report(
                *block,
                l.item,
                format!(
                    "redirect to ({},{}), which is no heap-only version of the table",
                    l.ctid_block, l.ctid_offset
                ),
            );
        }
    }
    // An update link may dangle once its target was dropped as dead (rowids
    // are never reused, so it can never lead to a wrong version), but it can
    // never name a rowid that was not yet handed out.
    let next_rowid = format::rowid(h.next_vblock, 1);
    for (block, l) in links {
        let target = format::rowid(l.ctid_block, l.ctid_offset);
        if target >= next_rowid {
            report(
                block,
                l.item,
                format!(
                    "t_ctid ({},{}) names a rowid never allocated",
                    l.ctid_block, l.ctid_offset
                ),
            );
        }
    }
    used
}

fn check_run(
    run: &RunDesc,
    pages: &[Summary],
    claim: &mut dyn FnMut(u32, &str, &mut dyn FnMut(u32, u16, String)) -> bool,
    report: &mut dyn FnMut(u32, u16, String),
    live_rowids: &mut HashSet<u64>,
    links: &mut Vec<(u32, Link)>,
) {
    let id = run.run_id;
    let index_page = |b: u32, flags: u32| {
        pages
            .get(b as usize)
            .filter(|s| s.kind == Some(PageKind::RunIndex) && s.owner == id && s.flags == flags)
    };
    if !claim(run.root, "run root", report) {
        return;
    }
    let Some(root) = index_page(run.root, format::INDEX_ROOT) else {
        report(
            run.root,
            0,
            format!("run {id}'s root is not its root index page"),
        );
        return;
    };
    let mut data_pages = 0u32;
    let mut versions = 0u64;
    let mut first_seen: HashMap<u32, u64> = HashMap::new();
    for (leaf_first, leaf) in &root.entries {
        if !claim(*leaf, "run leaf", report) {
            continue;
        }
        let Some(l) = index_page(*leaf, format::INDEX_LEAF) else {
            report(
                *leaf,
                0,
                format!("run {id}'s root names a page that is not its leaf"),
            );
            continue;
        };
        if l.entries.first().map(|e| e.0) != Some(*leaf_first) {
            report(
                *leaf,
                0,
                "leaf's first fence differs from its root entry".into(),
            );
        }
        for (first, data) in &l.entries {
            data_pages += 1;
            if !claim(*data, "run data page", report) {
                continue;
            }
            let s = &pages[*data as usize];
            if s.kind != Some(PageKind::RunData) || s.owner != id {
                report(
                    *data,
                    0,
                    format!("run {id}'s fence names a page that is not its data page"),
                );
                continue;
            }
            first_seen.insert(*data, *first);
            versions += s.versions as u64;
            if let Some(pb) = s.payload_block {
                let theirs = pages
                    .get(pb as usize)
                    .is_some_and(|q| q.kind == Some(PageKind::RunPayload) && q.owner == id);
                if claim(pb, "run payload page", report) && !theirs {
                    report(pb, 0, format!("run {id}'s data page {data} names a payload page that is not its own"));
                }
            }
            if s.links.first().map(|l| l.rowid) != Some(*first) {
                report(
                    *data,
                    0,
                    format!("fence says first rowid {first}, page starts elsewhere"),
                );
            }
            for l in &s.links {
                if l.rowid < run.first_rowid || l.rowid > run.last_rowid {
                    report(
                        *data,
                        l.item,
                        format!("rowid {} outside run {id}'s range", l.rowid),
                    );
                }
                if !live_rowids.insert(l.rowid) {
                    report(*data, l.item, format!("rowid {} is stored twice", l.rowid));
                }
                links.push((*data, *l));
            }
        }
    }
    if let Some((k, blocks)) = &root.filter {
        check_filter(run, *k, blocks, pages, claim, report, links);
    }
    if data_pages != run.data_pages || versions != run.versions {
        report(run.root, 0, format!(
            "run {id} lists {} data pages and {} versions; its index reaches {data_pages} and {versions}",
            run.data_pages, run.versions
        ));
    }
}

/// A run's bloom filter pages are its own, and no rowid the run holds
/// (its versions are the last links pushed) is missing from the filter.
fn check_filter(
    run: &RunDesc,
    k: u8,
    blocks: &[u32],
    pages: &[Summary],
    claim: &mut dyn FnMut(u32, &str, &mut dyn FnMut(u32, u16, String)) -> bool,
    report: &mut dyn FnMut(u32, u16, String),
    links: &[(u32, Link)],
) {
    let id = run.run_id;
    let mut bodies = Vec::with_capacity(blocks.len());
    for b in blocks {
        if !claim(*b, "run bloom filter page", report) {
            return;
        }
        match pages
            .get(*b as usize)
            .filter(|s| s.kind == Some(PageKind::RunIndex) && s.owner == id)
        {
            Some(Summary {
                bloom: Some(body), ..
            }) => bodies.push(body),
            _ => {
                report(
                    *b,
                    0,
                    format!("run {id}'s root names a page that is not its bloom filter page"),
                );
                return;
            }
        }
    }
    let in_run = links
        .iter()
        .rev()
        .take_while(|(_, l)| (run.first_rowid..=run.last_rowid).contains(&l.rowid));
    for (block, l) in in_run {
        let probe = bloom::Probe::new(l.rowid, bodies.len(), k);
        if !probe.hits(bodies[probe.page]) {
            report(
                *block,
                l.item,
                format!("rowid {} is missing from run {id}'s bloom filter", l.rowid),
            );
        }
    }
}

#[cfg(test)]
mod tests;
