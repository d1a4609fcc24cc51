//! Giving free pages back to the file system. Flushes and merges write new
//! runs before they free the old pages, so free pages pile up in the middle
//! of the file; heap-style truncation of trailing free pages alone rarely
//! helps. When more than two thirds of the file are free (a third, when
//! VACUUM had nothing to flush or merge: nothing will fill the holes soon),
//! VACUUM (under ACCESS EXCLUSIVE, when it gets it at once) moves the run
//! pages at the end of the file into the lowest free blocks; either way it
//! truncates the file after the last page in use. Each move is a page image
//! in the WAL, so a table being written to keeps its holes for the next
//! flushes and merges to fill.
//!
//! One move is one GenericXLog record over three pages: the new copy (full
//! image), the page or metapage entry that points at it (the run's root in
//! the metapage, a leaf's or bloom filter page's entry in its root, a data
//! page's entry in its leaf), and the old block, overwritten with an empty FREE page so that
//! nothing (scans go by page tags) takes it for a page of the run. A crash
//! between moves leaves a
//! consistent manifest; the truncation is WAL-logged by Postgres. L0 and
//! directory pages are not moved (L0 is empty right after a flush). Moves
//! leave the metapage as it was, so the manifest copies backends keep are
//! dropped by a relcache invalidation ([`super::manifest_cache`]).

use crate::pg::relation::Rel;
use super::format::{self, Meta, PageKind, FENCE_SIZE, PAGE_HEADER_SIZE};
use super::manifest;
use super::page_image::{self, PageImage};
use super::storage::META_BLOCK;
use crate::pg::buffer::{self, PageWrite};
use crate::pg::page;
use std::collections::{BTreeSet, HashMap};

/// Where the pointer to a page lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// `runs[i].root` in the metapage.
    RunRoot(usize),
    /// Fence entry `entry` of the RUN_INDEX page at `block`.
    Fence { block: u32, entry: usize },
    /// Entry `entry` of the bloom filter trailer of the run root at `block`.
    Filter { block: u32, entry: usize },
    /// The head of the expanded compact data page at `block` (its payload page).
    Payload { block: u32 },
    /// Not movable (metapage, L0 and directory pages).
    Fixed,
}

/// The moves that pack the pages in use into the lowest blocks: `(from,
/// to)` pairs, in the order to carry them out, and the new block count.
/// `used` maps each block in use to its parent; children of a moved page
/// must be re-pointed by the caller (their parent block changes).
pub fn plan(nblocks: u32, used: &HashMap<u32, Parent>) -> (Vec<(u32, u32)>, u32) {
    let mut free: BTreeSet<u32> = (1..nblocks).filter(|b| !used.contains_key(b)).collect();
    let mut moves = Vec::new();
    let mut in_use: BTreeSet<u32> = used.keys().copied().collect();
    in_use.insert(0);
    while let Some(&last) = in_use.iter().next_back() {
        let Some(&lowest) = free.iter().next() else {
            break;
        };
        if lowest > last || used.get(&last).is_none_or(|p| *p == Parent::Fixed) {
            break;
        }
        free.remove(&lowest);
        in_use.remove(&last);
        in_use.insert(lowest);
        moves.push((last, lowest));
    }
    let end = in_use.iter().next_back().map_or(1, |b| b + 1);
    (moves, end)
}

/// Every page the manifest reaches, with its parent.
fn pages_in_use(rel: Rel, meta: &Meta) -> HashMap<u32, Parent> {
    let mut used = HashMap::new();
    used.insert(META_BLOCK, Parent::Fixed);
    for (i, run) in meta.runs.iter().enumerate() {
        used.insert(run.root, Parent::RunRoot(i));
        let (leaves, filter) = manifest::read_page(rel, run.root, |p| {
            (page_image::fences(p), page_image::root_filter(p))
        });
        for (j, b) in filter
            .into_iter()
            .flat_map(|(_, blocks)| blocks)
            .enumerate()
        {
            used.insert(
                b,
                Parent::Filter {
                    block: run.root,
                    entry: j,
                },
            );
        }
        for (j, (_, leaf)) in leaves.iter().enumerate() {
            used.insert(
                *leaf,
                Parent::Fence {
                    block: run.root,
                    entry: j,
                },
            );
            let data_pages = manifest::read_page(rel, *leaf, page_image::fences);
            for (k, (_, data)) in data_pages.iter().enumerate() {
                used.insert(
                    *data,
                    Parent::Fence {
                        block: *leaf,
                        entry: k,
                    },
                );
            }
            for (_, data) in &data_pages {
                for payload in manifest::payload_blocks(rel, [*data]) {
                    used.insert(payload, Parent::Payload { block: *data });
                }
            }
        }
    }
    for (_, b) in manifest::l0_blocks(rel, meta) {
        used.insert(b, Parent::Fixed);
    }
    for b in meta.l0_dir.iter().filter(|b| **b != 0) {
        used.insert(*b, Parent::Fixed);
    }
    used
}

/// Moves page `from` to the free block `to` and re-points its parent.
fn move_page(rel: Rel, from: u32, to: u32, parent: Parent) {
    let parent_block = match parent {
        Parent::RunRoot(_) => META_BLOCK,
        Parent::Fence { block, .. } | Parent::Filter { block, .. } | Parent::Payload { block } => {
            block
        }
        Parent::Fixed => unreachable!("fixed pages are not planned to move"),
    };
    let (src, dst, par) = (
        buffer::read(rel, from),
        buffer::read(rel, to),
        buffer::read(rel, parent_block),
    );
    // lock order: ascending block numbers (all released after the record)
    let mut order = [(from, src), (to, dst), (parent_block, par)];
    order.sort_by_key(|(b, _)| *b);
    let _locked = order.map(|(_, b)| buffer::Locked::exclusive_pinned(b));
    let mut w = PageWrite::start(rel);
    let new = w.register(dst, true);
    let old = w.register(src, false);
    let up = w.register(par, false);
    page::bytes_mut(new).copy_from_slice(page::bytes(old));
    // the old block is an empty FREE page from now on (a fresh image: a
    // compressed run page's special space is larger than a FREE page's)
    page::copy_image(old, PageImage::new(PageKind::Free, 0, 0).bytes());
    match parent {
        Parent::RunRoot(i) => {
            let mut meta = Meta::decode(page::bytes(up)).expect("metapage decoded before");
            meta.runs[i].root = to;
            meta.encode(page::bytes_mut(up));
            page::set_lower(up, format::META_END);
        }
        Parent::Fence { entry, .. } => {
            format::put_u32(
                page::bytes_mut(up),
                PAGE_HEADER_SIZE + entry * FENCE_SIZE + 8,
                to,
            );
        }
        Parent::Filter { entry, .. } => {
            let at = page_image::root_filter_entry_at(page::bytes(up), entry);
            format::put_u32(page::bytes_mut(up), at, to);
        }
        Parent::Payload { .. } => {
            let at = super::compact_page::payload_block_at(page::bytes(up));
            format::put_u32(page::bytes_mut(up), at, to);
        }
        Parent::Fixed => unreachable!(),
    }
    w.commit();
}

/// Packs the file when more than a third of it is free, and truncates it
/// after the last page in use.
/// Returns (pages moved, blocks truncated). The caller holds ACCESS
/// EXCLUSIVE and L0 has just been flushed; `quiet`: there was nothing to
/// flush or merge.
pub fn shrink(rel: Rel, quiet: bool) -> (u64, u64) {
    let Some(mut meta) = manifest::read(rel) else {
        return (0, 0);
    };
    if !meta.pending.is_empty() {
        // Nobody reads the table now (and hot standbys replay the lock), so
        // nothing freed earlier is needed any more.
        super::run_writer::switch(rel, None, |m| m.pending.clear());
        meta.pending.clear();
    }
    let nblocks = buffer::nblocks(rel);
    let mut used = pages_in_use(rel, &meta);
    // moving costs a page write (a full image in the WAL) per page moved.
    // While the table is written to, only when more than two thirds of the
    // file are free: below that the next flushes and merges fill the holes
    // (they write into free blocks and free their inputs, which the
    // truncation of trailing free pages, run every time, then cuts). When
    // this VACUUM had nothing to flush or merge, nothing will fill them
    // soon: from one third on.
    let pack = if quiet {
        (used.len() as u64) * 3 < (nblocks as u64) * 2
    } else {
        (used.len() as u64) * 3 < nblocks as u64
    };
    // a table with a BRIN index keeps every virtual block inside the file
    let floor = if manifest::keeps_dense(rel) {
        meta.header.next_vblock
    } else {
        1
    };
    if floor >= nblocks {
        return (0, 0);
    }
    let (moves, end) = if pack {
        plan(nblocks, &used)
    } else {
        (Vec::new(), used.keys().max().map_or(1, |b| b + 1))
    };
    let end = end.max(floor);
    for &(from, to) in &moves {
        pgrx::check_for_interrupts!();
        let parent = used.remove(&from).expect("planned from the pages in use");
        move_page(rel, from, to, parent);
        used.insert(to, parent);
        // children of a moved index page now hang off its new block
        for p in used.values_mut() {
            if let Parent::Fence { block, .. }
            | Parent::Filter { block, .. }
            | Parent::Payload { block } = p
            {
                if *block == from {
                    *block = to;
                }
            }
        }
    }
    if !moves.is_empty() || end < nblocks {
        // backends' manifest copies name the old blocks of moved pages
        super::manifest_cache::invalidate(rel);
    }
    if end < nblocks {
        // ACCESS EXCLUSIVE is held; no page at or past `end` is in use
        crate::pg::storage::truncate(rel, end);
    }
    (moves.len() as u64, nblocks.saturating_sub(end) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_pack_into_the_lowest_free_blocks() {
        // blocks 0 (meta), 1-3 free, 4 root, 5 leaf, 6-7 data, 8 free, 9 data
        let mut used = HashMap::new();
        used.insert(0, Parent::Fixed);
        used.insert(4, Parent::RunRoot(0));
        used.insert(5, Parent::Fence { block: 4, entry: 0 });
        for (k, b) in [6u32, 7, 9].iter().enumerate() {
            used.insert(*b, Parent::Fence { block: 5, entry: k });
        }
        let (moves, end) = plan(10, &used);
        assert_eq!(moves, vec![(9, 1), (7, 2), (6, 3)]);
        assert_eq!(end, 6);
    }

    #[test]
    fn fixed_pages_stop_the_packing() {
        let mut used = HashMap::new();
        used.insert(0, Parent::Fixed);
        used.insert(2, Parent::RunRoot(0));
        used.insert(7, Parent::Fixed); // an L0 page at the end
        let (moves, end) = plan(8, &used);
        assert_eq!((moves, end), (vec![], 8));
        // nothing free below the last page: nothing to do
        let used: HashMap<u32, Parent> = [(0, Parent::Fixed), (1, Parent::RunRoot(0))].into();
        assert_eq!(plan(2, &used), (vec![], 2));
        // trailing free pages are truncated without moves
        assert_eq!(plan(6, &used), (vec![], 2));
    }
}
