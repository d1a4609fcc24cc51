//! Checks of the pages against the metapage (the second pass): the L0
//! directory, every run's fence index, data pages and filter, rowid order,
//! no page used twice, update links to live versions.

use super::*;

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
        let (data_pages, versions) = check_run(
            run,
            pages,
            &mut claim,
            &mut report,
            &mut live_rowids,
            &mut links,
        );
        if data_pages != run.data_pages || versions != run.versions {
            report(run.root, 0, format!(
                "run {} lists {} data pages and {} versions; its index reaches {data_pages} and {versions}",
                run.run_id, run.data_pages, run.versions
            ));
        }
    }
    // A bulk load's open run (version 11): reserved rowids below L0 that no
    // listed run holds (runs flushed from L0 after an abandoned load are
    // listed above it); its index as far as it is published.
    if let Some(open) = meta.open {
        let overlapped = meta
            .runs
            .iter()
            .any(|r| r.first_rowid < open.end_rowid && r.last_rowid >= open.first_rowid);
        if open.first_rowid >= open.end_rowid
            || open.end_rowid > l0_low
            || overlapped
            || meta.has_run(open.run_id)
        {
            report(0, 0, format!("open run {} has a bad rowid range", open.run_id));
        }
        let as_run = RunDesc {
            run_id: open.run_id,
            root: open.root,
            first_rowid: open.first_rowid,
            last_rowid: open.end_rowid.saturating_sub(1),
            ..Default::default()
        };
        check_run(&as_run, pages, &mut claim, &mut report, &mut live_rowids, &mut links);
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
            // (an open run's pages its index does not reach yet are normal:
            // a load writes data pages before it publishes them, and a
            // crash can fall between)
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

pub(super) fn check_run(
    run: &RunDesc,
    pages: &[Summary],
    claim: &mut dyn FnMut(u32, &str, &mut dyn FnMut(u32, u16, String)) -> bool,
    report: &mut dyn FnMut(u32, u16, String),
    live_rowids: &mut HashSet<u64>,
    links: &mut Vec<(u32, Link)>,
) -> (u32, u64) {
    let id = run.run_id;
    let index_page = |b: u32, flags: u32| {
        pages
            .get(b as usize)
            .filter(|s| s.kind == Some(PageKind::RunIndex) && s.owner == id && s.flags == flags)
    };
    if !claim(run.root, "run root", report) {
        return (0, 0);
    }
    let Some(root) = index_page(run.root, format::INDEX_ROOT) else {
        report(
            run.root,
            0,
            format!("run {id}'s root is not its root index page"),
        );
        return (0, 0);
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
    (data_pages, versions)
}

/// A run's bloom filter pages are its own, and no rowid the run holds
/// (its versions are the last links pushed) is missing from the filter.
pub(super) fn check_filter(
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
