//! Checks of one page on its own (the first pass): header, line pointers,
//! tag, rows and their headers, compressed blobs; a [`Summary`] per page for
//! the manifest pass.

use super::*;

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
                || !(lower - PAGE_HEADER_SIZE).is_multiple_of(format::FENCE_SIZE)
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
pub(super) fn check_rows(
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
    if !(lower - PAGE_HEADER_SIZE).is_multiple_of(ITEM_ID_SIZE) {
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
        let (off, flags, len) = strata_base::page_layout::line_pointer(raw);
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

pub(super) fn check_tuple(
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
