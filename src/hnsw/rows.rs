//! The heap rows of an element: read, added, taken out. An element holds
//! its first rows in its own slots; in format version 3 the rest go into row
//! list items chained from its last slot (layout in `format`), so every row
//! of a vector repeated any number of times is one element's and a scan that
//! reaches the element returns them all.
//!
//! Locking: an element's rows, in its slots and its lists, change only under
//! the exclusive lock of the element's page, and are read under its share
//! lock, so a reader sees them whole. Row lists lie on the element's page or
//! a later block; the list pages are locked one at a time while the
//! element's page is held, so locks are always taken in ascending block
//! order and two backends cannot wait on each other.

use crate::pg::page::Page;
use crate::pg::relation::Rel;
use super::format::{self, ElemId, Element, HeapTid, KIND_GRAPH};
use super::metric::Metric;
use super::pages::{self, Params};
use super::wal::IndexWrite;
use crate::pg::buffer::{self, Locked};
use crate::pg::page;
use pgrx::pg_sys;
use std::collections::HashSet;

/// The item at `offset` of a locked page, as bytes.
fn item_mut<'a>(p: Page, offset: u16) -> Option<&'a mut [u8]> {
    // SAFETY: a normal item of a page the caller holds locked (or a working
    // copy of one); the slice lives no longer than that lock.
    page::item(p, offset).map(|(ptr, len)| unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// The element item `id` on its locked page `p`, when it is one of this
/// index's elements.
fn element_on<'a>(p: Page, params: &Params, id: ElemId) -> Option<&'a mut [u8]> {
    if pages::page_kind(p) != Some(KIND_GRAPH) {
        return None;
    }
    item_mut(p, id.offset).filter(|i| format::is_element_of(i, params.layout, params.dims))
}

/// The row list item `id` on its locked page `p`; an element's link to
/// anything else is corruption.
fn row_list_on<'a>(index: Rel, p: Page, id: ElemId) -> &'a mut [u8] {
    match item_mut(p, id.offset) {
        Some(i) if pages::page_kind(p) == Some(KIND_GRAPH) && format::is_row_list_item(i) => i,
        _ => pages::corrupted(
            index,
            format!("element links to ({},{}), which is no row list", id.block, id.offset),
        ),
    }
}

/// Walks the row lists of the element whose page `ebuf` the caller holds
/// locked (share or exclusive, `exclusive` says which to take on list pages),
/// from `first`; `f` gets each list's id, the page holding it (locked) and
/// its bytes, and returns false to stop. A list on the element's page is
/// read through `ebuf`; other pages are locked one at a time.
fn walk_lists(
    index: Rel,
    ebuf: pg_sys::Buffer,
    first: Option<ElemId>,
    exclusive: bool,
    mut f: impl FnMut(ElemId, pg_sys::Buffer, &mut [u8]) -> bool,
) {
    let eblock = buffer::block_number(ebuf);
    let mut next = first.filter(|l| !l.is_none());
    // a chain cannot hold more lists than the index has room for
    let mut budget = buffer::nblocks(index) as u64 * (format::BLOCK_SIZE / format::row_list_size(1)) as u64;
    while let Some(l) = next {
        if budget == 0 || l.block < eblock {
            pages::corrupted(index, format!("row list chain through ({},{}) loops or goes back", l.block, l.offset));
        }
        budget -= 1;
        let own = (l.block != eblock).then(|| match exclusive {
            true => Locked::exclusive(index, l.block),
            false => Locked::share(index, l.block),
        });
        let buf = own.as_ref().map_or(ebuf, Locked::buffer);
        let item = row_list_on(index, buffer::page(buf), l);
        next = Some(format::decode_row_list(item).0).filter(|n| !n.is_none());
        let go_on = f(l, buf, item);
        drop(own);
        if !go_on {
            return;
        }
    }
}

/// Runs `f` with element `id`'s page read and exclusively locked, then
/// unlocks and releases it.
fn with_page_exclusive<T>(
    index: Rel,
    id: ElemId,
    f: impl FnOnce(pg_sys::Buffer) -> T,
) -> T {
    let buf = Locked::exclusive(index, id.block);
    f(buf.buffer())
}

/// Every heap row of live element `id` whose item a page pass copied out
/// (`item`): its slots alone when it has no row lists, else slots and lists
/// read again, whole, under the element page's lock. None when `id` no
/// longer names an element item.
pub fn rows_of_copied(
    index: Rel,
    params: &Params,
    id: ElemId,
    item: &[u8],
) -> Option<Vec<HeapTid>> {
    if format::row_list_of(item, params.layout).is_none() {
        return Some(format::element_tids(item, params.layout));
    }
    element_rows(index, params, id, |e| !e.deleted() && !e.is_free()).map(|(_, tids)| tids)
}

/// Element `id`'s header and every heap row it holds (its slots, then its
/// row lists), read whole under its page's share lock; the rows only when
/// `rows(header)` says so. None when `id` names no element item.
pub fn element_rows(
    index: Rel,
    params: &Params,
    id: ElemId,
    rows: impl FnOnce(&Element) -> bool,
) -> Option<(Element, Vec<HeapTid>)> {
    element_rows_and(index, params, id, rows, |_| ()).map(|(e, tids, ())| (e, tids))
}

/// [`element_rows`], with what `also` reads from the element item under
/// the same lock.
fn element_rows_and<T>(
    index: Rel,
    params: &Params,
    id: ElemId,
    rows: impl FnOnce(&Element) -> bool,
    also: impl FnOnce(&[u8]) -> T,
) -> Option<(Element, Vec<HeapTid>, T)> {
    if id.is_none() || id.block == pages::META_BLOCK {
        return None;
    }
    let layout = params.layout;
    let buf = Locked::share(index, id.block);
    let item = element_on(buf.page(), params, id)?;
    let e = Element::decode(item, layout);
    let mut tids = Vec::new();
    if rows(&e) {
        tids = format::element_tids(item, layout);
        walk_lists(index, buf.buffer(), format::row_list_of(item, layout), false, |_, _, list| {
            tids.extend(format::decode_row_list(list).1);
            true
        });
    }
    Some((e, tids, also(item)))
}

/// Adds heap row `tid` to element `id` when the element holds exactly
/// `vector` (bit for bit) and is live — checked under the page's exclusive
/// lock, since VACUUM may have freed and an insert reused the slot since it
/// was found. Into a free slot of the element, else (version 3) the first
/// row list with room, else a new row list, placed on the element's page,
/// the index's last page or a new one. Returns whether the row was added
/// (false in versions 1 and 2 when the element is full).
pub fn add_heap_tid(
    index: Rel,
    params: &Params,
    id: ElemId,
    vector: &[f32],
    tid: HeapTid,
) -> bool {
    let layout = params.layout;
    with_page_exclusive(index, id, |buf| {
        let Some(item) = element_on(buffer::page(buf), params, id) else {
            return false;
        };
        let e = Element::decode(item, layout);
        if e.is_free() || e.deleted() || !format::element_holds(item, layout, vector) {
            return false;
        }
        let mut tids = format::element_tids(item, layout);
        if tids.contains(&tid) {
            return false;
        }
        if tids.len() < format::inline_slots(item, layout) {
            tids.push(tid);
            let mut w = IndexWrite::start(index);
            let wp = w.register(buf, false);
            let item = element_on(wp, params, id).expect("element checked above");
            format::set_element_tids(item, layout, &tids);
            w.commit();
            return true;
        }
        if !layout.row_lists() {
            return false;
        }
        // the first row list with room
        let head = format::row_list_of(item, layout);
        let mut added = false;
        walk_lists(index, buf, head, true, |l, lbuf, list| {
            let mut rows = format::decode_row_list(list).1;
            if rows.len() >= format::row_list_capacity(list) {
                return true;
            }
            rows.push(tid);
            let mut w = IndexWrite::start(index);
            let wp = w.register(lbuf, false);
            format::set_row_list_tids(row_list_on(index, wp, l), &rows);
            w.commit();
            added = true;
            false
        });
        if !added {
            add_row_list(index, params, buf, id, &tids, head, tid);
        }
        true
    })
}

/// Puts a new row list holding `tid` in front of element `id`'s lists
/// (`head`, if any). With no list yet, the heap row in the element's last
/// slot moves into the new list, whose link takes that slot. The list goes
/// on the element's page (`ebuf`, exclusively locked), else the index's last
/// page, else a new page: never before the element's block.
fn add_row_list(
    index: Rel,
    params: &Params,
    ebuf: pg_sys::Buffer,
    id: ElemId,
    inline: &[HeapTid],
    head: Option<ElemId>,
    tid: HeapTid,
) {
    let layout = params.layout;
    let slots = layout.tid_slots();
    let mut rows = Vec::with_capacity(2);
    let keep = if head.is_none() {
        rows.push(inline[slots - 1]);
        &inline[..slots - 1]
    } else {
        inline
    };
    rows.push(tid);
    let capacity = format::new_row_list_capacity(layout, usize::from(head.is_some()));
    let list = format::encode_row_list(head.unwrap_or(ElemId::NONE), capacity, &rows);
    // released after the record is committed (or abandoned): declared first
    let mut other: Option<Locked> = None;
    let mut w = IndexWrite::start(index);
    let wp = w.register(ebuf, false);
    let target = if pages::room_for(wp, layout, &[list.len()]) {
        (id.block, wp)
    } else {
        let last = buffer::nblocks(index) - 1;
        let mut found = None;
        if last > id.block {
            let b = Locked::exclusive(index, last);
            if pages::page_kind(b.page()) == Some(KIND_GRAPH) && pages::room_for(b.page(), layout, &[list.len()]) {
                found = Some((last, w.register(b.buffer(), false)));
                other = Some(b);
            }
        }
        found.unwrap_or_else(|| {
            let b = Locked::adopt(pages::extend(index, layout));
            let p = w.register(b.buffer(), true);
            pages::init_page(p, KIND_GRAPH, layout.version);
            let block = b.block();
            other = Some(b);
            (block, p)
        })
    };
    let offset = page::add_item(target.1, &list)
        .unwrap_or_else(|| pages::corrupted(index, "no room for a row list".into()));
    let item = element_on(wp, params, id).expect("element checked by the caller");
    format::set_row_list(item, layout, ElemId {
        block: target.0,
        offset,
    });
    format::set_element_tids(item, layout, keep);
    w.commit();
}

/// Takes the heap rows in `dead` out of element `id`, under its page's
/// exclusive lock: from its row lists first (one WAL record per list), then
/// from its own slots, which are refilled from a row list when they would
/// be left empty while rows remain (one record with that list's page: TID 0
/// stays filled while any row lives). With no row left the element is
/// marked deleted. Rows an insert added since VACUUM read the element are
/// not in `dead` and stay. Returns whether the element is now deleted.
pub fn remove_heap_tids(
    index: Rel,
    params: &Params,
    id: ElemId,
    dead: &HashSet<HeapTid>,
) -> bool {
    let layout = params.layout;
    with_page_exclusive(index, id, |buf| {
        let Some(item) = element_on(buffer::page(buf), params, id) else {
            return false;
        };
        if Element::decode(item, layout).deleted() {
            return true;
        }
        let head = format::row_list_of(item, layout);
        // the first list left with rows, to refill the element's slots from
        let mut refill: Option<ElemId> = None;
        walk_lists(index, buf, head, true, |l, lbuf, list| {
            let rows = format::decode_row_list(list).1;
            let kept: Vec<HeapTid> = rows.iter().copied().filter(|t| !dead.contains(t)).collect();
            if kept.len() < rows.len() {
                let mut w = IndexWrite::start(index);
                let wp = w.register(lbuf, false);
                format::set_row_list_tids(row_list_on(index, wp, l), &kept);
                w.commit();
            }
            if !kept.is_empty() && refill.is_none() {
                refill = Some(l);
            }
            true
        });
        let item = element_on(buffer::page(buf), params, id).expect("element checked above");
        let rows = format::element_tids(item, layout);
        let kept: Vec<HeapTid> = rows.iter().copied().filter(|t| !dead.contains(t)).collect();
        if !kept.is_empty() || refill.is_none() {
            if kept.len() == rows.len() {
                return false;
            }
            let mut w = IndexWrite::start(index);
            let wp = w.register(buf, false);
            let item = element_on(wp, params, id).expect("element checked above");
            if kept.is_empty() {
                item[7] |= format::FLAG_DELETED;
            }
            format::set_element_tids(item, layout, &kept);
            w.commit();
            return kept.is_empty();
        }
        // the element's own rows are all dead, rows remain in list `l`:
        // move as many as its slots take, in one record with the list's page
        let l = refill.expect("checked above");
        // released after the record is committed (or abandoned): declared first
        let lbuf = (l.block != id.block).then(|| Locked::exclusive(index, l.block));
        let mut w = IndexWrite::start(index);
        let wp = w.register(buf, false);
        let lp = match &lbuf {
            Some(b) => w.register(b.buffer(), false),
            None => wp,
        };
        let list = row_list_on(index, lp, l);
        let mut moving = format::decode_row_list(list).1;
        let item = element_on(wp, params, id).expect("element checked above");
        let rest = moving.split_off(moving.len().min(format::inline_slots(item, layout)));
        format::set_row_list_tids(list, &rest);
        format::set_element_tids(item, layout, &moving);
        w.commit();
        false
    })
}

/// The heap TIDs of element `id` of graph `g` (with its row lists), read
/// now from its pages (not from the graph's cache); empty for a deleted
/// element, a free slot or an item that is not an element.
pub fn live_heap_tids(g: &pages::DiskGraph, id: ElemId) -> Vec<HeapTid> {
    element_rows(g.index, &g.params, id, |e| !e.deleted())
        .map(|(_, tids)| tids)
        .unwrap_or_default()
}

/// How far the rows' vectors of a returned element may lie from the one
/// it stores ([`format::element_slack`]) and that vector's norm (read only
/// where the metric's bound needs it: inner product and cosine).
#[derive(Clone, Copy, Default)]
pub struct Rounding {
    pub slack: f32,
    pub norm: f64,
}

/// [`live_heap_tids`] with the element's [`Rounding`] (a version-9
/// `vector` element's; zero for elements stored exactly).
pub fn live_heap_tids_rounded(g: &pages::DiskGraph, id: ElemId) -> (Vec<HeapTid>, Rounding) {
    let (layout, dims) = (g.params.layout, g.params.dims);
    let needs_norm = matches!(g.params.metric, Metric::InnerProduct | Metric::Cosine);
    let read = |item: &[u8]| {
        let slack = format::element_slack(item, layout, dims);
        if slack == 0.0 {
            return Rounding::default();
        }
        let norm = match needs_norm {
            true => crate::vector::ops::norm(&format::element_vector(item, layout, dims)),
            false => 0.0,
        };
        Rounding { slack, norm }
    };
    element_rows_and(g.index, &g.params, id, |e| !e.deleted(), read)
        .map(|(_, tids, r)| (tids, r))
        .unwrap_or_default()
}
