//! Page-level storage of `lsm` tables: page tags, the L0 append path, and row
//! versions on L0 and run pages. Page changes are [`PageChange`]s: records
//! of Strata's WAL resource manager ([`super::wal_record`]) when `strata` is
//! preloaded, GenericXLog records otherwise.
//! Where pages are (metapage, L0 directory, runs) is [`super::manifest`]'s job.
//!
//! Locking: appends take the target L0 page's exclusive content lock; a new
//! L0 page is allocated under the metapage's lock (see manifest).

use crate::pg::page::Page;
use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use super::compact_page;
use super::format::{self, PageKind, ROWS_PER_VBLOCK};
use super::manifest;
use super::manifest_cache;
use super::page_image;
use super::logical_record;
use super::wal_record::{self, Headers};
use crate::pg::buffer::{self, Locked};
use crate::pg::htup;
use crate::pg::page;
use crate::pg::wal::{PageChange, Record};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::collections::HashSet;

pub use super::page_id::{page_kind, rowid_of, tag, META_BLOCK};

// The pure page code's infomask bits are Postgres's.
const _: () = {
    use super::format::infomask as m;
    assert!(m::HEAP_HASNULL as u32 == pg_sys::HEAP_HASNULL);
    assert!(m::HEAP_COMBOCID as u32 == pg_sys::HEAP_COMBOCID);
    assert!(m::HEAP_XMIN_COMMITTED as u32 == pg_sys::HEAP_XMIN_COMMITTED);
    assert!(m::HEAP_XMIN_INVALID as u32 == pg_sys::HEAP_XMIN_INVALID);
    assert!(m::HEAP_XMAX_COMMITTED as u32 == pg_sys::HEAP_XMAX_COMMITTED);
    assert!(m::HEAP_XMAX_INVALID as u32 == pg_sys::HEAP_XMAX_INVALID);
    assert!(m::HEAP_XMAX_IS_MULTI as u32 == pg_sys::HEAP_XMAX_IS_MULTI);
    assert!(m::HEAP_NATTS_MASK as u32 == pg_sys::HEAP_NATTS_MASK);
    assert!(m::HEAP_HOT_UPDATED as u32 == pg_sys::HEAP_HOT_UPDATED);
    assert!(m::HEAP_ONLY_TUPLE as u32 == pg_sys::HEAP_ONLY_TUPLE);
};

pub use super::format::MAX_TUPLE_SIZE;

use crate::page_layout::maxalign;

fn fits(p: Page, len: usize) -> bool {
    page::max_offset(p) < ROWS_PER_VBLOCK && page::free_space_for_new_item(p) >= maxalign(len)
}

/// An exclusively locked, live L0 page with room for `len` bytes. The
/// backend's last L0 page (the smgr target block) is tried first, so
/// concurrent writers append to different pages ("lanes"); a backend
/// without one (its first insert into the table) takes the newest L0 page
/// when that has room and nobody holds it locked — else a session per
/// insert would leave a page per row — and only then a new page.
fn target_page(rel: Rel, len: usize) -> Locked {
    let target = buffer::target_block(rel);
    // The smgr target block is reset when the relation is truncated, so it names
    // an existing block (and the metapage exists).
    if target != buffer::INVALID_BLOCK {
        let floor = manifest_cache::append_floor(rel);
        let buf = Locked::exclusive(rel, target);
        if appendable(rel, buf.buffer(), len, floor) {
            return buf;
        }
    } else if buffer::nblocks(rel) > 0 {
        if let Some((_, block)) = manifest::newest_l0_page(rel) {
            let floor = manifest_cache::append_floor(rel);
            let buf = buffer::read(rel, block);
            if buffer::try_lock_exclusive(buf) {
                let buf = Locked::adopt(buf);
                if appendable(rel, buf.buffer(), len, floor) {
                    buffer::set_target_block(rel, block);
                    return buf;
                }
            } else {
                buffer::release(buf);
            }
        }
    }
    let buf = Locked::adopt(manifest::allocate_l0_page(rel));
    buffer::set_target_block(rel, buf.block());
    buf
}

/// Whether exclusively locked `buf` is a live L0 page with room for `len`
/// bytes. L0 pages below the append `floor` are gone or being flushed. The
/// floor only rises under EXCLUSIVE (no insert in flight), so reading it
/// before locking the page is enough (and the metapage is never locked
/// while an L0 page is).
fn appendable(rel: Rel, buf: pg_sys::Buffer, len: usize, floor: Option<u32>) -> bool {
    let p = buffer::page(buf);
    page_kind(rel, buffer::block_number(buf), p) == Some(PageKind::L0)
        && floor.is_some_and(|first| tag(p).is_some_and(|t| t.vblock >= first))
        && fits(p, len)
}

/// Length of a tuple to store; 54000 when it cannot fit a page.
fn checked_len(tuple: pg_sys::HeapTuple) -> usize {
    // SAFETY: caller passes a formed heap tuple.
    let len = unsafe { (*tuple).t_len as usize };
    check_tuple_len(len);
    len
}

/// Raises 54000 when a tuple of `len` bytes cannot fit a page.
pub fn check_tuple_len(len: usize) {
    if len > MAX_TUPLE_SIZE {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("row is too big: size {len}, maximum size {MAX_TUPLE_SIZE}")
        );
    }
}

/// An append the caller checked the room for did not fit: the record
/// under construction is abandoned and the statement fails.
fn l0_add_failed(w: PageChange) -> ! {
    drop(w);
    ereport!(
        ERROR,
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        "failed to add tuple to lsm L0 page"
    );
}

/// Appends a prepared tuple to L0 and returns its logical TID (also stored in
/// `t_self`; the caller's tuple data is only read). With
/// `ctid_self` the stored header's `t_ctid` points at the new TID (otherwise it
/// keeps what the caller put there, e.g. a speculative-insertion token).
pub fn append(
    rel: Rel,
    tuple: &mut pg_sys::HeapTupleData,
    ctid_self: bool,
    rows: RowInsert,
) -> pg_sys::ItemPointerData {
    let len = checked_len(tuple);
    let buf = target_page(rel, len);
    let mut w = PageChange::start(rel);
    // target_page checked the room: the append cannot fail
    let p = w.in_place(buf.buffer());
    let vblock = tag(p).map(|t| t.vblock).unwrap_or(0);
    // SAFETY: the caller's formed tuple, alive for this append.
    let Some(offset) = page::add_item(p, unsafe { htup::tuple_bytes(tuple) }) else {
        l0_add_failed(w)
    };
    let tid = htup::make_tid(vblock, offset);
    if ctid_self {
        let (item, _) = page::item(p, offset).expect("item just added");
        htup::set_ctid(item as *mut htup::Header, tid);
    }
    w.commit(wal_record::RMGR_ID, || insert_record(p, &[offset], rows));
    drop(buf);
    tuple.t_self = tid;
    tid
}

/// The L0 page for the new version of an UPDATE that holds the old
/// version's page `holding` exclusively locked, exclusively locked: `holding`
/// itself when it is an L0 page with room for `len` bytes (heap's HOT), else
/// the backend's lane page when it has room and can be locked at once
/// (waiting for a second page lock while holding one could deadlock). The
/// append `floor` was read before any page was locked (see [`appendable`]).
/// None: nothing more locked.
pub fn lane_page_now(
    rel: Rel,
    len: usize,
    floor: Option<u32>,
    holding: pg_sys::Buffer,
) -> Option<pg_sys::Buffer> {
    // heap's HOT: the old version's own L0 page first (already locked, one
    // page changed, and the chain's members stay together for its walks)
    if appendable(rel, holding, len, floor) {
        return Some(holding);
    }
    let target = buffer::target_block(rel);
    if target == buffer::INVALID_BLOCK || target == buffer::block_number(holding) {
        return None;
    }
    let buf = buffer::read(rel, target);
    if !buffer::try_lock_exclusive(buf) {
        buffer::release(buf);
        return None;
    }
    let page = Locked::adopt(buf);
    appendable(rel, buf, len, floor).then(|| page.into_buffer())
}

/// An UPDATE's two page changes in one UPDATE record: prepared tuple
/// `tuple` appended to L0 page `target` (exclusively locked, with room: see
/// [`lane_page_now`]) and `stamp` run on the old version's header (its page
/// exclusively locked, the header its own: [`make_stampable`]) with the new
/// TID, which is returned (and stored in `t_self` and the new `t_ctid`).
/// `stamp` must not fail: it runs inside the critical section. `decoded`:
/// the record's main data for logical decoding (empty: none; see
/// `logical_record::update_mark`).
pub fn append_and_stamp(
    rel: Rel,
    target: pg_sys::Buffer,
    tuple: &mut pg_sys::HeapTupleData,
    old: &Located,
    stamp: impl FnOnce(*mut htup::Header, pg_sys::ItemPointerData),
    decoded: Vec<u8>,
) -> pg_sys::ItemPointerData {
    let same = target == old.buf;
    // an old version sharing its header is detached in this record (the
    // caller checked that its page has a free header slot: detach_fits)
    let detach = shares_header(old).then(|| {
        super::run_page::find_run_item(page::bytes(buffer::page(old.buf)), rowid_of(&old.tid))
            .unwrap_or_else(|| lost_version(rel, old.buf))
    });
    let mut w = PageChange::start(rel);
    let p = w.in_place(target);
    let op = if same { p } else { w.in_place(old.buf) };
    let vblock = tag(p).map(|t| t.vblock).unwrap_or(0);
    // checked by lane_page_now: a failure here is a PANIC, as on heap
    // SAFETY: the caller's formed tuple, alive for this append.
    let offset = page::add_item(p, unsafe { htup::tuple_bytes(tuple) }).expect("room checked before the update");
    let tid = htup::make_tid(vblock, offset);
    let (item, item_len) = page::item(p, offset).expect("item just added");
    htup::set_ctid(item as *mut htup::Header, tid);
    let header_at = match detach {
        Some(i) => {
            let done = compact_page::detach(page::bytes_mut(op), i);
            assert!(matches!(done, Ok(true)), "a free header slot was checked before the update");
            page_image::item_extent(page::bytes(op), i).expect("a detached version").0
        }
        None => old.offset(),
    };
    let fixed = header_at..header_at + wal_record::FIXED_HEADER;
    let before: [u8; wal_record::FIXED_HEADER] =
        page::bytes(op)[fixed.clone()].try_into().expect("a fixed header");
    // SAFETY: a header of the working copy of the old version's page.
    stamp(unsafe { op.ptr().add(header_at) } as *mut htup::Header, tid);
    w.commit(wal_record::RMGR_ID, || {
        // SAFETY: item() bounds-checked the item inside the page.
        let tuple = unsafe { std::slice::from_raw_parts(item, item_len) };
        // this (sub)transaction's xid, the record's xl_xid
        let xid = crate::pg::xact::current_xid_if_any().into_inner();
        // block 0's data names the new TID; block 1's cannot (a full image
        // of block 0 leaves block 0's data out)
        let on_block0 = wal_record::DeltaContext {
            xid,
            new_tid: Some((vblock, offset)),
        };
        let stamp_cx = if same {
            on_block0
        } else {
            wal_record::DeltaContext { xid, new_tid: None }
        };
        let stamp = wal_record::Stamp {
            detached: detach.map(|i| i as u16).into_iter().collect(),
            offset: header_at as u16,
            delta: wal_record::encode_header_delta(&before, &page::bytes(op)[fixed], &stamp_cx),
        };
        let blocks = if same {
            vec![wal_record::encode_short_update(offset, tuple, &on_block0, Some(&stamp))]
        } else {
            let mut old_page = Vec::with_capacity(32);
            stamp.encode(&mut old_page);
            vec![
                wal_record::encode_short_update(offset, tuple, &on_block0, None),
                old_page,
            ]
        };
        Record {
            info: wal_record::UPDATE_SHORT,
            blocks,
            main: decoded,
        }
    });
    tuple.t_self = tid;
    tid
}

/// Appends prepared tuples to L0 as COPY's `multi_insert` does: as many as
/// fit go onto one page in one WAL record (not one record, and one delta of
/// the whole page, per row). Each stored header's `t_ctid` and each tuple's
/// `t_self` get its new TID.
pub fn append_batch(rel: Rel, tuples: &[pg_sys::HeapTuple], rows: RowInsert) {
    let mut i = 0;
    while i < tuples.len() {
        let buf = target_page(rel, checked_len(tuples[i]));
        let mut w = PageChange::start(rel);
        let p = w.register(buf.buffer(), false);
        let vblock = tag(p).map(|t| t.vblock).unwrap_or(0);
        let first = i;
        let mut offsets = Vec::new();
        while i < tuples.len() && (i == first || fits(p, checked_len(tuples[i]))) {
            // SAFETY: the caller's formed tuple, alive for this append.
            let Some(offset) = page::add_item(p, unsafe { htup::tuple_bytes(&*tuples[i]) }) else {
                l0_add_failed(w)
            };
            let tid = htup::make_tid(vblock, offset);
            let (item, _) = page::item(p, offset).expect("item just added");
            htup::set_ctid(item as *mut htup::Header, tid);
            // SAFETY: caller's tuple struct is writable.
            unsafe { (*tuples[i]).t_self = tid };
            offsets.push(offset);
            i += 1;
        }
        // rows of the batch still to come go to later records: decoding
        // keeps the batch's TOAST chunks until its last one
        let rows = rows.with_more(i < tuples.len());
        w.commit(wal_record::RMGR_ID, || insert_record(p, &offsets, rows));
    }
}

/// The INSERT record of items `items` just added to L0 page `p`; `rows`
/// marks it as new rows for logical decoding ([`RowInsert`]).
fn insert_record(p: Page, items: &[u16], rows: RowInsert) -> Record {
    let mut data = Vec::new();
    for &n in items {
        let (at, len) = page::item(p, n).expect("item just added");
        // SAFETY: item() bounds-checked the item inside the page.
        wal_record::push_insert(&mut data, n, unsafe { std::slice::from_raw_parts(at, len) });
    }
    Record {
        info: wal_record::INSERT,
        blocks: vec![data],
        main: match rows {
            RowInsert::No => Vec::new(),
            RowInsert::Rows { speculative, more } => {
                logical_record::insert_mark(logical_record::InsertMark { speculative, more }).to_vec()
            }
        },
    }
}

/// Whether an append's INSERT record is also what logical decoding reads
/// for the rows it adds (`wal_level = logical`: see [`super::logical`]), so
/// that no row record repeats them; not for versions an UPDATE or a
/// rewrite adds (those decode from their own records, or not at all).
/// `more`: more rows of the same multi-insert follow in later records.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RowInsert {
    No,
    Rows { speculative: bool, more: bool },
}

impl RowInsert {
    /// The same marking, saying whether more rows of the insert follow.
    pub fn with_more(self, more: bool) -> RowInsert {
        match self {
            RowInsert::No => RowInsert::No,
            RowInsert::Rows { speculative, .. } => RowInsert::Rows { speculative, more },
        }
    }
}

/// Changes the header of version `loc` (its page exclusively locked by the
/// caller, and stays so) with `f`, in one HEADERS record. The version must
/// own its header ([`make_stampable`]).
pub fn change_header(rel: Rel, loc: &Located, f: impl FnOnce(*mut htup::Header)) {
    change_header_decoded(rel, loc, f, Vec::new())
}

/// [`change_header`] whose record is also a row change's decoding:
/// `decoded` is its main data (`logical_record::old_row_mark`).
pub fn change_header_decoded(
    rel: Rel,
    loc: &Located,
    f: impl FnOnce(*mut htup::Header),
    decoded: Vec<u8>,
) {
    let mut w = PageChange::start(rel);
    let copy = w.in_place(loc.buf);
    f(loc.header_in(copy));
    let mut rec = Headers::default();
    rec.written_at(page::bytes(copy), loc.offset());
    w.commit(wal_record::RMGR_ID, || Record {
        main: decoded,
        ..headers_record(&rec)
    });
}

/// The HEADERS record of `h`.
pub fn headers_record(h: &Headers) -> Record {
    Record {
        info: wal_record::HEADERS,
        blocks: vec![h.encode()],
        ..Record::default()
    }
}

/// The row version in line pointer `item` of a data page (L0 or RUN_DATA),
/// as a `HeapTupleData` pointing into the (pinned) page. Its TID is
/// `(virtual block, item)` on L0 pages and comes from the stored rowid on run
/// pages. On compressed run pages only the header is in the page
/// (`t_len` 23; see [`super::version_data`] for the rest).
pub fn version_at(
    rel: Rel,
    p: Page,
    item: u16,
) -> Option<pg_sys::HeapTupleData> {
    PageView::of(rel, p)?.version(item)
}

/// A data page read once for visits to many of its versions (the tag, and
/// a compact page's head).
pub struct PageView<'a> {
    p: Page,
    bytes: &'a [u8],
    relid: pg_sys::Oid,
    /// L0: its virtual block; None on run pages.
    l0_vblock: Option<u32>,
    compact: Option<compact_page::View<'a>>,
}

impl PageView<'_> {
    /// The view of a pinned, locked L0 or RUN_DATA page (None otherwise).
    pub fn of(rel: Rel, p: Page) -> Option<PageView<'static>> {
        let t = tag(p)?;
        let bytes = page::bytes(p);
        let (l0_vblock, compact) = match PageKind::from_u16(t.kind)? {
            PageKind::L0 => (Some(t.vblock), None),
            PageKind::RunData => (
                None,
                compact_page::is_compact(bytes).then(|| compact_page::View::of(bytes)),
            ),
            _ => return None,
        };
        Some(PageView {
            p,
            bytes,
            relid: crate::pg::rel::oid(rel),
            l0_vblock,
            compact,
        })
    }

    /// The compact page view, on a version 6+ compact run page.
    pub fn compact(&self) -> Option<&compact_page::View<'_>> {
        self.compact.as_ref()
    }

    /// See [`version_at`]. (Always inlined: returned through memory, its
    /// result stalled the scan loop's loads.)
    #[inline(always)]
    pub fn version(&self, item: u16) -> Option<pg_sys::HeapTupleData> {
        let (tid, off, len) = if let Some(v) = self.l0_vblock {
            let (off, len) = page_image::item_extent(self.bytes, item as usize)?;
            (htup::make_tid(v, item), off, len)
        } else if let Some(c) = &self.compact {
            let (off, len) = page_image::item_extent(self.bytes, item as usize)?;
            if len != compact_page::TUPLE_HEADER_LEN {
                return None;
            }
            let (v, o) = format::tid_of_rowid(c.rowid_of(item as usize)?);
            (htup::make_tid(v, o), off, len)
        } else {
            let (off, len) = super::run_page::run_item_tuple(self.bytes, item as usize)?;
            let rowid = super::run_page::run_item_rowid(self.bytes, item as usize)?;
            let (v, o) = format::tid_of_rowid(rowid);
            (htup::make_tid(v, o), off, len)
        };
        Some(pg_sys::HeapTupleData {
            t_len: len as u32,
            t_self: tid,
            t_tableOid: self.relid,
            // SAFETY: item_extent bounds-checked `off + len` inside the page.
            t_data: unsafe { self.p.ptr().add(off) } as *mut htup::Header,
        })
    }
}

/// A row version located on a pinned page: header pointer, length and TID.
pub struct Located {
    pub buf: pg_sys::Buffer,
    pub header: *mut htup::Header,
    pub len: usize,
    pub tid: pg_sys::ItemPointerData,
}

impl Located {
    /// Byte offset of this version's header in its page.
    pub fn offset(&self) -> usize {
        self.header as usize - buffer::page(self.buf).ptr() as usize
    }

    /// This version's header inside `copy`, a working copy (see
    /// [`PageChange`]) of its page: the same offset as on the page itself.
    pub fn header_in(&self, copy: Page) -> *mut htup::Header {
        // SAFETY: the working copy is a full image of the same page, so the
        // header sits at the same offset.
        unsafe { copy.ptr().add(self.offset()) as *mut htup::Header }
    }

    /// A `HeapTupleData` describing this version (points into the page).
    pub fn heap_tuple(&self, rel: Rel) -> pg_sys::HeapTupleData {
        pg_sys::HeapTupleData {
            t_len: self.len as u32,
            t_self: self.tid,
            t_tableOid: crate::pg::rel::oid(rel),
            t_data: self.header,
        }
    }
}

/// Stores a row version on a pinned buffer into a buffer-heap-tuple slot. The
/// slot keeps a pointer to its HeapTupleData, so the struct is copied into the
/// slot's own `tupdata` (as heap does); the slot takes its own buffer pin.
/// A version of a compressed run page is materialized instead: the slot
/// gets its own copy and no buffer.
pub fn store_in_slot(
    rel: Rel,
    slot: Slot,
    tuple: pg_sys::HeapTupleData,
    buf: pg_sys::Buffer,
) {
    let copy = super::slot::in_slot_context(slot, || super::version_data::palloc_full(rel, buf, &tuple));
    if let Some(copy) = copy {
        // SAFETY: palloc'd in the slot's context just now, handed over.
        unsafe { super::slot::store_owned_here(slot, copy) };
        return;
    }
    super::slot::store_buffer_tuple(slot, tuple, buf);
}

/// Finds the row version `tid` on `buf`'s page (pinned and locked by the caller).
pub fn find_on_page(
    rel: Rel,
    buf: pg_sys::Buffer,
    tid: pg_sys::ItemPointerData,
) -> Option<Located> {
    let p = buffer::page(buf);
    let blkno = buffer::block_number(buf);
    let item = match page_kind(rel, blkno, p)? {
        PageKind::L0 if tag(p).map(|t| t.vblock) == Some(htup::tid_block(&tid)) => {
            htup::tid_offset(&tid)
        }
        PageKind::RunData => {
            let item = super::run_page::find_run_item(page::bytes(p), rowid_of(&tid))?;
            super::version_data::note_item(item);
            item as u16
        }
        _ => return None,
    };
    let t = version_at(rel, p, item)?;
    Some(Located {
        buf,
        header: t.t_data,
        len: t.t_len as usize,
        tid,
    })
}

/// Whether the located version shares its header with others (a compact
/// run page nobody stamped: see [`make_stampable`]).
pub fn shares_header(loc: &Located) -> bool {
    let p = buffer::page(loc.buf);
    compact_page::shares_header(page::bytes(p), loc.header as usize - p.ptr() as usize)
}

/// Whether the page of `loc` has a free header slot, so that a version
/// sharing its header can be detached in place ([`append_and_stamp`]).
pub fn detach_fits(loc: &Located) -> bool {
    compact_page::free_slots(page::bytes(buffer::page(loc.buf))) > 0
}

/// Gives the version `loc` names its own header before a stamp (xmax,
/// lock, `t_ctid`, chain flags) when it shares one on a compact run page
/// (see [`super::compact_page`]), in one small WAL record, and finds `loc`
/// again. Headers versions own never move, so a pointer kept across an
/// unlock stays valid. The page must be exclusively locked; it stays locked.
pub fn make_stampable(rel: Rel, loc: &mut Located) {
    if !shares_header(loc) {
        return;
    }
    let Some(item) =
        super::run_page::find_run_item(page::bytes(buffer::page(loc.buf)), rowid_of(&loc.tid))
    else {
        lost_version(rel, loc.buf)
    };
    let mut w = PageChange::start(rel);
    let p = w.register(loc.buf, false);
    let mut rec = Headers::default();
    let payload = detach_in(rel, &mut w, loc.buf, p, &[item], &mut rec);
    w.commit(wal_record::RMGR_ID, || headers_record(&rec));
    drop(payload);
    *loc = find_on_page(rel, loc.buf, loc.tid).unwrap_or_else(|| lost_version(rel, loc.buf));
}

fn lost_version(rel: Rel, buf: pg_sys::Buffer) -> ! {
    crate::pg::error::error(
        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        format!(
            "version lost giving it a header of its own in block {} of relation \"{}\"",
            buffer::block_number(buf),
            crate::pg::rel::relname(rel)
        ),
    )
}

/// Gives versions `items` of compact run page `buf` (exclusively locked;
/// `p` its working copy in `w`) a header of their own
/// ([`wal_record::detach_items`]), noted in `rec`; when the free slots run
/// out, the page's blob moves to a new RUN_PAYLOAD page registered in the
/// same record, whose buffer (exclusively locked) is returned, to be
/// released after the commit.
pub fn detach_in(
    rel: Rel,
    w: &mut PageChange,
    buf: pg_sys::Buffer,
    p: Page,
    items: &[usize],
    rec: &mut Headers,
) -> Option<Locked> {
    let block = buffer::block_number(buf);
    let mut payload: Option<Locked> = None;
    let moved = wal_record::detach_items(page::bytes_mut(p), items.iter().copied(), || {
        let b = Locked::adopt(manifest::allocate_block_now(rel, &HashSet::from([block])));
        let n = b.block();
        payload = Some(b);
        n
    });
    let image = moved.unwrap_or_else(|e| super::version_data::corrupted(rel, block, e));
    if let (Some(b), Some(image)) = (&payload, image) {
        page::copy_image(w.register(b.buffer(), true), image.bytes());
    }
    rec.detached.extend(items.iter().map(|&i| i as u16));
    payload
}

/// Pins the page of `tid` (no lock); None when the TID cannot exist.
pub fn pin_tid(rel: Rel, tid: pg_sys::ItemPointerData) -> Option<pg_sys::Buffer> {
    super::manifest_cache::locate(rel, &tid, super::manifest_cache::Trust::Validate)
        .map(|blk| buffer::read(rel, blk))
}
