//! Page-level storage of `lsm` tables: the metapage, L0 page allocation, the
//! append path and TID → page location. All page changes go through GenericXLog
//! ([`PageWrite`]), so recovery and replicas need nothing extension-specific.
//!
//! Locking: appends take the target L0 page's exclusive content lock; creating
//! the metapage or a new L0 page happens under the relation extension lock.

use super::format::{self, Meta, PageKind, PageTag, ROWS_PER_VBLOCK, TAG_SIZE};
use crate::pg::buffer::{self, PageWrite};
use crate::pg::htup;
use crate::pg::page;
use pgrx::pg_sys;
use pgrx::prelude::*;

pub const META_BLOCK: pg_sys::BlockNumber = 0;

/// Largest tuple an L0 page can hold.
pub const MAX_TUPLE_SIZE: usize =
    (page::BLCKSZ - page::PAGE_HEADER_SIZE - TAG_SIZE - page::ITEM_ID_SIZE) & !7;

fn maxalign(len: usize) -> usize {
    (len + 7) & !7
}

/// Reads the special-space tag of a page, if it has one of the right size.
pub fn tag(p: pg_sys::Page) -> Option<PageTag> {
    if page::is_new(p) || page::special_size(p) != TAG_SIZE {
        return None;
    }
    // SAFETY: the special space is TAG_SIZE bytes inside the page.
    Some(unsafe { (page::special(p) as *const PageTag).read_unaligned() })
}

fn write_tag(p: pg_sys::Page, t: PageTag) {
    // SAFETY: the page was initialised with TAG_SIZE bytes of special space.
    unsafe { (page::special(p) as *mut PageTag).write_unaligned(t) }
}

/// Name of a relation, for error messages.
pub fn relname(rel: pg_sys::Relation) -> String {
    // SAFETY: an open relation has a valid rd_rel with a NUL-terminated name.
    unsafe { std::ffi::CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Kind of a page that must be a valid lsm page; a foreign or damaged page
/// raises XX001 naming the relation and block.
pub fn page_kind(
    rel: pg_sys::Relation,
    blkno: pg_sys::BlockNumber,
    p: pg_sys::Page,
) -> Option<PageKind> {
    if page::is_new(p) {
        return None; // extended but not yet initialised (crash between extend and WAL)
    }
    let validated = tag(p)
        .ok_or(format::FormatError::BadMagic(0))
        .and_then(|t| t.validate());
    match validated {
        Ok(kind) => Some(kind),
        Err(e) => crate::pg::error::error(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!(
                "invalid page in block {blkno} of relation \"{}\": {e}",
                relname(rel)
            ),
        ),
    }
}

/// Creates the metapage if the relation has no blocks yet.
pub fn ensure_metapage(rel: pg_sys::Relation) {
    if buffer::nblocks(rel) > 0 {
        return;
    }
    // SAFETY: the extension lock makes check-and-extend atomic among backends.
    unsafe { pg_sys::LockRelationForExtension(rel, pg_sys::ExclusiveLock as i32) };
    if buffer::nblocks(rel) == 0 {
        let buf = buffer::extend_locked(rel);
        debug_assert_eq!(buffer::block_number(buf), META_BLOCK);
        let mut w = PageWrite::start(rel);
        let p = w.register(buf, true);
        page::init(p, TAG_SIZE);
        write_tag(p, PageTag::new(PageKind::Meta, 0));
        // SAFETY: Meta fits between the page header and the special space.
        unsafe {
            ((p as *mut u8).add(page::PAGE_HEADER_SIZE) as *mut Meta).write_unaligned(Meta::new())
        };
        page::set_lower(p, page::PAGE_HEADER_SIZE + std::mem::size_of::<Meta>());
        w.commit();
        buffer::unlock_release(buf);
    }
    // SAFETY: taken above.
    unsafe { pg_sys::UnlockRelationForExtension(rel, pg_sys::ExclusiveLock as i32) };
}

/// Reads the metapage struct (None for a relation without blocks).
pub fn read_meta(rel: pg_sys::Relation) -> Option<Meta> {
    if buffer::nblocks(rel) == 0 {
        return None;
    }
    let buf = buffer::read(rel, META_BLOCK);
    buffer::lock_share(buf);
    let p = buffer::page(buf);
    let kind = page_kind(rel, META_BLOCK, p);
    // SAFETY: a metapage holds Meta right after its header.
    let meta =
        unsafe { ((p as *const u8).add(page::PAGE_HEADER_SIZE) as *const Meta).read_unaligned() };
    buffer::unlock_release(buf);
    if kind != Some(PageKind::Meta) || meta.magic != format::MAGIC {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!("invalid metapage in relation \"{}\"", relname(rel))
        );
    }
    Some(meta)
}

fn relid(rel: pg_sys::Relation) -> pg_sys::Oid {
    // SAFETY: open relation.
    unsafe { (*rel).rd_id }
}

fn fits(p: pg_sys::Page, len: usize) -> bool {
    page::max_offset(p) < ROWS_PER_VBLOCK && page::free_space_for_new_item(p) >= maxalign(len)
}

/// An exclusively locked L0 page with room for `len` bytes, and whether it is
/// brand new (uninitialised). The backend's last L0 page (the smgr target
/// block) is tried first, so concurrent writers append to different pages.
fn target_page(rel: pg_sys::Relation, len: usize) -> (pg_sys::Buffer, bool) {
    let target = buffer::target_block(rel);
    if target != buffer::INVALID_BLOCK {
        let buf = buffer::read(rel, target);
        buffer::lock_exclusive(buf);
        let p = buffer::page(buf);
        if page_kind(rel, target, p) == Some(PageKind::L0) && fits(p, len) {
            return (buf, false);
        }
        buffer::unlock_release(buf);
    }
    ensure_metapage(rel);
    let buf = buffer::extend_locked(rel);
    buffer::set_target_block(rel, buffer::block_number(buf));
    (buf, true)
}

/// Appends a prepared tuple to L0 and returns its logical TID (also stored in
/// `t_self`; the caller's tuple data is only read). With
/// `ctid_self` the stored header's `t_ctid` points at the new TID (otherwise it
/// keeps what the caller put there, e.g. a speculative-insertion token).
pub fn append(
    rel: pg_sys::Relation,
    tuple: pg_sys::HeapTuple,
    ctid_self: bool,
) -> pg_sys::ItemPointerData {
    // SAFETY: caller passes a formed heap tuple.
    let (data, len) = unsafe { ((*tuple).t_data as *const u8, (*tuple).t_len as usize) };
    if len > MAX_TUPLE_SIZE {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("row is too big: size {len}, maximum size {MAX_TUPLE_SIZE}")
        );
    }
    let (buf, fresh) = target_page(rel, len);
    let blkno = buffer::block_number(buf);
    let mut w = PageWrite::start(rel);
    let p = w.register(buf, fresh);
    if fresh {
        page::init(p, TAG_SIZE);
        write_tag(p, PageTag::new(PageKind::L0, blkno));
    }
    let vblock = vblock_of(p, blkno);
    let Some(offset) = page::add_item(p, data, len) else {
        drop(w);
        buffer::unlock_release(buf);
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            "failed to add tuple to lsm L0 page"
        );
    };
    let tid = htup::make_tid(vblock, offset);
    if ctid_self {
        let (item, _) = page::item(p, offset).expect("item just added");
        htup::set_ctid(item as *mut htup::Header, tid);
    }
    w.commit();
    buffer::unlock_release(buf);
    // SAFETY: caller's tuple struct is writable.
    unsafe { (*tuple).t_self = tid };
    tid
}

/// Physical block holding logical block `vblock`. TIDs reaching this come
/// from indexes, update chains or the executor and name existing blocks; a
/// user-supplied TID is checked first by `fetch::tid_valid`.
pub fn locate(_rel: pg_sys::Relation, vblock: pg_sys::BlockNumber) -> Option<pg_sys::BlockNumber> {
    // Format 1: L0 pages are addressed by their physical block number.
    (vblock != META_BLOCK).then_some(vblock)
}

/// The row version in line pointer `offset` of an L0 page with virtual block
/// `vblock`, as a `HeapTupleData` pointing into the (pinned) page.
pub fn version_at(
    rel: pg_sys::Relation,
    p: pg_sys::Page,
    vblock: pg_sys::BlockNumber,
    offset: u16,
) -> Option<pg_sys::HeapTupleData> {
    let (item, len) = page::item(p, offset)?;
    Some(pg_sys::HeapTupleData {
        t_len: len as u32,
        t_self: htup::make_tid(vblock, offset),
        t_tableOid: relid(rel),
        t_data: item as *mut htup::Header,
    })
}

/// Virtual block of a page (its tag's, or `block` for untagged pages).
pub fn vblock_of(p: pg_sys::Page, block: pg_sys::BlockNumber) -> pg_sys::BlockNumber {
    tag(p).map(|t| t.vblock).unwrap_or(block)
}

/// A row version located on a pinned page: header pointer, length and TID.
pub struct Located {
    pub buf: pg_sys::Buffer,
    pub header: *mut htup::Header,
    pub len: usize,
    pub tid: pg_sys::ItemPointerData,
}

impl Located {
    /// A `HeapTupleData` describing this version (points into the page).
    pub fn heap_tuple(&self, rel: pg_sys::Relation) -> pg_sys::HeapTupleData {
        pg_sys::HeapTupleData {
            t_len: self.len as u32,
            t_self: self.tid,
            t_tableOid: relid(rel),
            t_data: self.header,
        }
    }
}

/// Stores a row version on a pinned buffer into a buffer-heap-tuple slot. The
/// slot keeps a pointer to its HeapTupleData, so the struct is copied into the
/// slot's own `tupdata` (as heap does); the slot takes its own buffer pin.
pub fn store_in_slot(
    slot: *mut pg_sys::TupleTableSlot,
    tuple: pg_sys::HeapTupleData,
    buf: pg_sys::Buffer,
) {
    let bslot = slot as *mut pg_sys::BufferHeapTupleTableSlot;
    // SAFETY: lsm slots use TTSOpsBufferHeapTuple, so `slot` is a
    // BufferHeapTupleTableSlot; `buf` is pinned by the caller.
    unsafe {
        (*bslot).base.tupdata = tuple;
        pg_sys::ExecStoreBufferHeapTuple(&mut (*bslot).base.tupdata, slot, buf);
    }
}

/// Finds the row version `tid` on `buf`'s page (pinned and locked by the caller).
pub fn find_on_page(
    rel: pg_sys::Relation,
    buf: pg_sys::Buffer,
    tid: pg_sys::ItemPointerData,
) -> Option<Located> {
    let p = buffer::page(buf);
    let blkno = buffer::block_number(buf);
    if page_kind(rel, blkno, p) != Some(PageKind::L0) {
        return None;
    }
    if tag(p).map(|t| t.vblock) != Some(htup::tid_block(&tid)) {
        return None;
    }
    let (item, len) = page::item(p, htup::tid_offset(&tid))?;
    Some(Located {
        buf,
        header: item as *mut htup::Header,
        len,
        tid,
    })
}

/// Pins the page of `tid` (no lock); None when the TID cannot exist.
pub fn pin_tid(rel: pg_sys::Relation, tid: pg_sys::ItemPointerData) -> Option<pg_sys::Buffer> {
    if !format::offset_in_range(htup::tid_offset(&tid)) {
        return None;
    }
    locate(rel, htup::tid_block(&tid)).map(|blk| buffer::read(rel, blk))
}
