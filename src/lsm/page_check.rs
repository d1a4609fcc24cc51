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

pub const PAGE_HEADER_SIZE: usize = 24;
pub const ITEM_ID_SIZE: usize = 4;
pub const TUPLE_HEADER_SIZE: usize = 23;
const LP_NORMAL: u32 = 1;

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
            .map(|b| (b[14], b[15] == compressed_page::LAYOUT_COLUMNS));
        out.codec = codec.map(|c| match c {
            (compressed_page::CODEC_ZSTD, false) => "zstd",
            (compressed_page::CODEC_ZSTD, true) => "zstd, by column",
            (compressed_page::CODEC_LZ4, false) => "lz4",
            (compressed_page::CODEC_LZ4, true) => "lz4, by column",
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
        let (off, flags, len) = crate::pg::page::line_pointer(raw);
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
mod tests {
    use super::*;
    use crate::lsm::page_image::{fence_page, PageImage, RunPacker};

    const BS: usize = 8192;
    const CTX: Context<'static> = Context {
        block_size: BS,
        attrs: &[],
        natts: 3,
        next_xid: 1000,
        frozen_xid: 3,
    };

    /// A 32-byte tuple (xmin, xmax, infomask, ctid).
    fn tuple(xmin: u32, xmax: u32, mask: u16, (cb, co): (u32, u16)) -> Vec<u8> {
        let mut t = vec![0u8; 32];
        t[0..4].copy_from_slice(&xmin.to_le_bytes());
        t[4..8].copy_from_slice(&xmax.to_le_bytes());
        t[12..14].copy_from_slice(&((cb >> 16) as u16).to_le_bytes());
        t[14..16].copy_from_slice(&(cb as u16).to_le_bytes());
        t[16..18].copy_from_slice(&co.to_le_bytes());
        t[18..20].copy_from_slice(&2u16.to_le_bytes());
        t[20..22].copy_from_slice(&mask.to_le_bytes());
        t[22] = 24;
        t
    }

    fn l0_page(vblock: u32, tuples: &[(u32, u32, u16, (u32, u16))]) -> Vec<u8> {
        let mut p = PageImage::new(PageKind::L0, vblock, 0);
        for &(xmin, xmax, mask, ctid) in tuples {
            assert!(p.add_item(&[&tuple(xmin, xmax, mask, ctid)]));
        }
        p.bytes().to_vec()
    }

    fn check(block: u32, p: &[u8]) -> (Summary, Vec<Problem>) {
        let mut problems = vec![];
        let s = check_page(block, p, &CTX, &|_| None, &mut problems);
        (s, problems)
    }

    fn meta_page(meta: &Meta) -> Vec<u8> {
        let mut p = PageImage::new(PageKind::Meta, 0, 0);
        p.append_array(&vec![0u8; format::META_END - format::PAGE_HEADER_SIZE]);
        let mut bytes = p.bytes().to_vec();
        meta.encode(&mut bytes);
        bytes
    }

    #[test]
    fn healthy_page_has_no_problems() {
        let p = l0_page(
            7,
            &[(10, 0, HEAP_XMAX_INVALID, (7, 1)), (11, 12, 0, (7, 1))],
        );
        let (s, problems) = check(1, &p);
        assert_eq!(problems, vec![]);
        assert_eq!(
            (s.kind, s.owner, s.versions, s.tuple_bytes),
            (Some(PageKind::L0), 7, 2, 64)
        );
        assert_eq!(s.links[1].rowid, format::rowid(7, 2));
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
        assert!(check(0, &p).1[0]
            .message
            .contains("only block 0 is the metapage"));

        let p = l0_page(1, &[(5000, 0, HEAP_XMAX_INVALID, (1, 1))]);
        assert!(check(1, &p).1[0].message.contains("next xid"));

        let both = HEAP_XMAX_COMMITTED | HEAP_XMAX_INVALID;
        let p = l0_page(1, &[(10, 0, both, (1, 1))]);
        assert!(check(1, &p).1[0]
            .message
            .contains("both committed and invalid"));

        let mut p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID, (1, 1))]);
        p[14..16].copy_from_slice(&10u16.to_le_bytes()); // upper < lower
        assert!(check(1, &p).1[0].message.contains("bad page bounds"));
    }

    #[test]
    fn frozen_xmin_may_precede_relfrozenxid() {
        let ctx = Context {
            frozen_xid: 500,
            ..CTX
        };
        let p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID | HEAP_XMIN_FROZEN, (1, 1))]);
        let mut problems = vec![];
        check_page(1, &p, &ctx, &|_| None, &mut problems);
        assert!(problems.is_empty());
        let p = l0_page(1, &[(10, 0, HEAP_XMAX_INVALID, (1, 1))]);
        let s = check_page(1, &p, &ctx, &|_| None, &mut problems);
        assert!(problems.is_empty());
        assert_eq!(s.old_xmins, vec![(1, 10)]);
    }

    #[test]
    fn old_xmins_matter_only_on_pages_in_use() {
        // xmins 10..12 and 11 (run, L0) precede relfrozenxid 100
        let (_, mut pages) = table();
        let ctx = Context {
            frozen_xid: 100,
            ..CTX
        };
        // a stale L0 page the manifest no longer reaches
        pages.push(l0_page(0, &[(5, 0, HEAP_XMAX_INVALID, (0, 1))]));
        let mut problems = vec![];
        let summaries: Vec<Summary> = pages
            .iter()
            .enumerate()
            .map(|(b, p)| check_page(b as u32, p, &ctx, &|_| None, &mut problems))
            .collect();
        let used = check_manifest(&summaries, ctx.frozen_xid, &mut problems);
        assert!(!used[pages.len() - 1]);
        assert!(!problems.is_empty());
        assert!(problems
            .iter()
            .all(|p| p.message.contains("precedes relfrozenxid 100")));
        assert!(problems
            .iter()
            .all(|p| (p.block as usize) < pages.len() - 1));
    }

    /// A table: metapage, one run (data, leaf, root), L0 directory and two L0 pages.
    fn table() -> (Meta, Vec<Vec<u8>>) {
        // rowids 256, 257 (vblock 1); 257 was updated into L0 rowid 2*256
        table_of(tuple(10, 11, 0, (2, 1)), tuple(11, 0, HEAP_XMAX_INVALID, (2, 1)))
    }

    /// [`table`] with rowid 257 (in the run) and L0 rowid 2*256 given.
    fn table_of(t257: Vec<u8>, t512: Vec<u8>) -> (Meta, Vec<Vec<u8>>) {
        let mut packer = RunPacker::new(1, None);
        assert!(packer
            .add(256, &tuple(10, 0, HEAP_XMAX_INVALID, (1, 1)))
            .is_empty());
        assert!(packer.add(257, &t257).is_empty());
        let done = packer.finish().pop().unwrap();
        let (data, first) = (done.image, done.first_rowid);
        let leaf = fence_page(1, format::INDEX_LEAF, &[(first, 1)]);
        let root = fence_page(1, format::INDEX_ROOT, &[(first, 2)]);
        let mut dir = PageImage::new(PageKind::L0Dir, 0, 0);
        dir.append_array(&5u32.to_le_bytes());
        dir.append_array(&6u32.to_le_bytes());
        let mut meta = Meta::new();
        meta.header.l0_first_vblock = 2;
        meta.header.next_vblock = 4;
        meta.header.next_run_id = 2;
        meta.l0_dir[0] = 4;
        meta.runs.push(RunDesc {
            run_id: 1,
            root: 3,
            data_pages: 1,
            first_rowid: 256,
            last_rowid: 257,
            versions: 2,
            tuple_bytes: 64,
            ..Default::default()
        });
        let pages = vec![
            meta_page(&meta),
            data.bytes().to_vec(),
            leaf.bytes().to_vec(),
            root.bytes().to_vec(),
            dir.bytes().to_vec(),
            {
                let mut p = PageImage::new(PageKind::L0, 2, 0);
                assert!(p.add_item(&[&t512]));
                p.bytes().to_vec()
            },
            l0_page(3, &[(12, 0, HEAP_XMAX_INVALID, (3, 1))]),
        ];
        (meta, pages)
    }

    /// A header-only redirect to `ctid`, as VACUUM writes into a run.
    fn redirect(ctid: (u32, u16)) -> Vec<u8> {
        let mut t = tuple(0, 0, HEAP_XMIN_INVALID | HEAP_XMAX_INVALID, ctid);
        t[18..20].copy_from_slice(&format::REDIRECT_FLAG.to_le_bytes());
        t.truncate(24);
        t
    }

    #[test]
    fn redirects_are_counted_and_must_name_a_heap_only_version() {
        let mut member = tuple(11, 0, HEAP_XMAX_INVALID, (2, 1));
        member[18..20].copy_from_slice(&(HEAP_ONLY_TUPLE | 2).to_le_bytes());
        let (_, pages) = table_of(redirect((2, 1)), member);
        let (_, problems) = verify(&pages);
        assert!(problems.is_empty(), "{problems:?}");
        let mut p = vec![];
        assert_eq!(check_page(1, &pages[1], &CTX, &|_| None, &mut p).redirects, 1);

        // the target is no heap-only version: reported where the redirect is
        let (_, pages) = table_of(redirect((2, 1)), tuple(11, 0, HEAP_XMAX_INVALID, (2, 1)));
        let (_, problems) = verify(&pages);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].block, problems[0].offset), (1, 2));
        assert!(problems[0].message.contains("no heap-only version"));
    }

    fn verify(pages: &[Vec<u8>]) -> (Vec<bool>, Vec<Problem>) {
        let mut problems = vec![];
        let summaries: Vec<Summary> = pages
            .iter()
            .enumerate()
            .map(|(b, p)| check_page(b as u32, p, &CTX, &|_| None, &mut problems))
            .collect();
        let used = check_manifest(&summaries, CTX.frozen_xid, &mut problems);
        (used, problems)
    }

    #[test]
    fn consistent_table_verifies() {
        let (_, mut pages) = table();
        let (used, problems) = verify(&pages);
        assert_eq!(problems, vec![]);
        assert!(used.iter().all(|u| *u));
        // an orphan page (an interrupted flush's) is unused, not a problem
        pages.push(PageImage::new(PageKind::RunData, 9, 0).bytes().to_vec());
        let (used, problems) = verify(&pages);
        assert_eq!((problems.len(), used[7]), (0, false));
    }

    #[test]
    fn stray_pages_claiming_the_manifest_are_found() {
        let (_, mut pages) = table();
        // a data page of run 1 that its fence index does not reach
        let mut packer = RunPacker::new(1, None);
        assert!(packer
            .add(300, &tuple(10, 0, HEAP_XMAX_INVALID, (1, 45)))
            .is_empty());
        pages.push(packer.finish().pop().unwrap().image.bytes().to_vec());
        let (_, problems) = verify(&pages);
        assert!(problems
            .iter()
            .any(|p| p.block == 7 && p.message.contains("does not reach it")));
    }

    #[test]
    fn run_bloom_filters_are_checked() {
        use crate::lsm::bloom::{encode_trailer, Filter};
        use crate::lsm::page_image::{bloom_page, root_page_with_filter};
        let (_, mut pages) = table();
        let with_filter = |rowids: &[u64]| {
            let mut f = Filter::new(1, 7);
            rowids.iter().for_each(|r| f.add(*r));
            let root = root_page_with_filter(1, &[(256, 2)], &encode_trailer(7, &[7]));
            (
                root.bytes().to_vec(),
                bloom_page(1, &f.pages[0]).bytes().to_vec(),
            )
        };
        let (root, bits) = with_filter(&[256, 257]);
        pages[3] = root;
        pages.push(bits);
        let (used, problems) = verify(&pages);
        assert_eq!(problems, vec![]);
        assert!(used[7]);
        // a filter that lacks rowid 257 would make lookups miss it
        let (root, bits) = with_filter(&[256]);
        pages[3] = root;
        pages[7] = bits;
        let (_, problems) = verify(&pages);
        assert!(
            problems
                .iter()
                .any(|p| p.block == 1 && p.message.contains("rowid 257 is missing")),
            "{problems:?}"
        );
        // the root names a page that is not a filter page of the run
        pages[7] = PageImage::new(PageKind::RunIndex, 1, format::INDEX_LEAF)
            .bytes()
            .to_vec();
        assert!(verify(&pages)
            .1
            .iter()
            .any(|p| p.message.contains("not its bloom filter page")));
        // a truncated filter page
        pages[7] = PageImage::new(PageKind::RunIndex, 1, format::INDEX_BLOOM)
            .bytes()
            .to_vec();
        assert!(verify(&pages)
            .1
            .iter()
            .any(|p| p.message.contains("bad bloom filter page")));
    }

    #[test]
    fn manifest_damage_is_found() {
        let (mut meta, pages) = table();
        // the directory maps a virtual block to a page that holds another one
        let mut bad = pages.clone();
        bad[6] = l0_page(9, &[(12, 0, HEAP_XMAX_INVALID, (9, 1))]);
        assert!(verify(&bad)
            .1
            .iter()
            .any(|p| p.message.contains("virtual block 3")));
        // a run that claims more versions than its pages hold
        meta.runs[0].versions = 3;
        let mut bad = pages.clone();
        bad[0] = meta_page(&meta);
        assert!(verify(&bad)
            .1
            .iter()
            .any(|p| p.message.contains("its index reaches 1 and 2")));
        // an update link to a rowid never handed out (a dropped one is fine)
        let mut bad = pages.clone();
        bad[5] = l0_page(2, &[(11, 12, 0, (3, 7))]);
        assert!(verify(&bad).1.is_empty());
        bad[5] = l0_page(2, &[(11, 12, 0, (4, 1))]);
        assert!(verify(&bad)
            .1
            .iter()
            .any(|p| p.message.contains("t_ctid (4,1)")));
        // the same rowid live in two places: the run also holds L0's rowid 512
        let mut packer = RunPacker::new(1, None);
        assert!(packer
            .add(256, &tuple(10, 0, HEAP_XMAX_INVALID, (1, 1)))
            .is_empty());
        assert!(packer
            .add(512, &tuple(10, 0, HEAP_XMAX_INVALID, (2, 1)))
            .is_empty());
        let mut bad = pages.clone();
        bad[1] = packer.finish().pop().unwrap().image.bytes().to_vec();
        assert!(verify(&bad)
            .1
            .iter()
            .any(|p| p.message.contains("rowid 512 is stored twice")));
        // a seal outside L0 (virtual blocks 2..4)
        meta.runs[0].versions = 2;
        meta.l0_seal = 9;
        let mut bad = pages.clone();
        bad[0] = meta_page(&meta);
        assert!(verify(&bad)
            .1
            .iter()
            .any(|p| p.message.contains("L0 seal 9 lies outside L0")));
        meta.l0_seal = 3;
        let mut good = pages.clone();
        good[0] = meta_page(&meta);
        assert_eq!(verify(&good).1.len(), 0);
        // one block used twice
        meta.l0_dir[0] = 1;
        let mut bad = pages.clone();
        bad[0] = meta_page(&meta);
        assert!(verify(&bad)
            .1
            .iter()
            .any(|p| p.message.contains("used twice")));
    }
}
