//! The tuple table slot of `lsm` tables (`slot_callbacks`).
//!
//! An lsm slot is heap's buffer-heap-tuple slot with one more mode. In
//! *tuple mode* it holds a `HeapTuple` — on a pinned page, in a scan's
//! decoded copy, or its own palloc'd copy — and every callback is heap's
//! (`TTSOpsBufferHeapTuple`'s, called through its table). In *column mode*
//! it holds row `pos` of a [`Batch`]: the visible versions of one
//! column-wise compressed page, decompressed but not rebuilt into tuples.
//! `getsomeattrs(k)` then reads the first k columns straight from the
//! batch, decoding a column for the whole page the first time any row asks
//! for it ([`super::columnar_read`]); a `count(*), sum(b)` decodes one
//! column of six and forms no tuple at all.
//!
//! In column mode the slot's `HeapTupleData` points at a copy of the
//! version's header (with `t_ctid` its own TID), so system columns and
//! `is_current_xact_tuple` are heap's callbacks reading that header.
//! Whatever needs a tuple (materialize, `get_heap_tuple`, copies, a copy
//! into another lsm slot) forms one from the values with `heap_form_tuple`
//! and the header's transaction fields, and the slot turns into a tuple
//! mode slot owning it — as heap's slot owns its tuple once materialized.
//!
//! A column-mode slot points into the scan's batch, which the scan reuses
//! for its next page: like a heap slot whose page the scan moved away from,
//! it is valid until the scan stores its next row into it (the executor
//! never reads a scan slot's previous row), and it holds no buffer pin.

use crate::pg::page::Page;
use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use super::columnar::{self, Attr};
use super::columnar_read::{Column, Layout, TAG_RAW, TAG_SIDE, TAG_VALUE};
use super::compact_page;
use super::compressed_page::{Sections, TUPLE_HEADER_SIZE};
use super::page_image;
use super::version_data;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// An lsm slot: heap's buffer slot, then the column-mode fields.
#[repr(C)]
pub struct LsmSlot {
    base: pg_sys::BufferHeapTupleTableSlot,
    /// Column mode: the batch holding the slot's row (null in tuple mode).
    batch: *mut Batch,
    /// Column mode: the row's position among the batch's visible versions.
    pos: u32,
}

/// A version's fixed header, aligned as a header on a page is.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct HeaderCopy([u8; 24]);

/// The visible versions of one column-wise compressed page, for slots in
/// column mode. A scan keeps one and reloads it page after page.
pub struct Batch {
    rel: Rel,
    block: pg_sys::BlockNumber,
    /// The column layout the payload is read by, from `desc` (the
    /// relation's, then that of the slot the rows go to).
    attrs: Vec<Attr>,
    desc: pg_sys::TupleDesc,
    /// The page's payload, its sections decompressed as they are read.
    sections: Option<Sections>,
    /// Number of versions on the page.
    nitems: usize,
    layout: Layout,
    columns: Vec<Column>,
    /// Whether `columns[c]` holds this page's column c.
    ready: Vec<bool>,
    /// Start of the decompressed payload (`sections`', never moved).
    raw: *const u8,
    /// Per visible version: its index among the page's versions.
    rows: Vec<u16>,
    /// The headers of the visible versions, copied once each (versions
    /// that share a header share its copy); a shared header's `t_ctid` is
    /// (0,0), read as the version's own TID.
    headers: Vec<HeaderCopy>,
    /// Per visible version: its header in `headers`.
    header_of: Vec<u16>,
}

impl Batch {
    pub fn new(rel: Rel) -> Batch {
        let attrs = version_data::columns(rel);
        let n = attrs.len();
        Batch {
            rel,
            block: pg_sys::InvalidBlockNumber,
            attrs,
            desc: rel.tupdesc(),
            sections: None,
            nitems: 0,
            layout: Layout::default(),
            columns: (0..n).map(|_| Column::default()).collect(),
            ready: vec![false; n],
            raw: std::ptr::null(),
            rows: Vec::new(),
            headers: Vec::new(),
            header_of: Vec::new(),
        }
    }

    /// Loads the versions `items` (1-based, visible to the scan) of compact
    /// page `p` (block `block`, pinned and share-locked). False when the
    /// page's payload is not column-wise (the caller rebuilds rows instead).
    pub fn load(&mut self, block: pg_sys::BlockNumber, p: Page, items: &[u16]) -> bool {
        let bytes = crate::pg::page::bytes(p);
        if !compact_page::is_compact(bytes) {
            return false;
        }
        let Some(sections) = version_data::open_sections(self.rel, block, bytes) else {
            return false;
        };
        if !(sections.raw().as_ptr() as usize).is_multiple_of(8) {
            return false; // cell offsets assume an 8-aligned payload
        }
        self.block = block;
        self.nitems = compact_page::head(bytes).nrows as usize;
        self.raw = sections.raw().as_ptr();
        self.sections = Some(sections);
        self.parse();
        self.rows.clear();
        self.headers.clear();
        self.header_of.clear();
        let mut last = usize::MAX;
        for &item in items {
            let extent = page_image::item_extent(bytes, item as usize);
            let Some((off, TUPLE_HEADER_SIZE)) = extent else {
                version_data::corrupted(self.rel, block, format!("item {item} is not a header"));
            };
            if item as usize > self.layout.len() {
                version_data::corrupted(self.rel, block, format!("no row data for item {item}"));
            }
            if off != last {
                let mut copy = HeaderCopy([0; 24]);
                copy.0[..TUPLE_HEADER_SIZE].copy_from_slice(&bytes[off..off + TUPLE_HEADER_SIZE]);
                self.headers.push(copy);
                last = off;
            }
            self.rows.push(item - 1);
            self.header_of.push((self.headers.len() - 1) as u16);
        }
        self.ready.iter_mut().for_each(|r| *r = false);
        true
    }

    /// Reads the rows section (and, for a payload decompressed whole, finds
    /// every column section).
    fn parse(&mut self) {
        let Some(sections) = &self.sections else {
            return;
        };
        let raw = sections.raw();
        let parsed = if sections.len() == 1 {
            self.layout.parse(&self.attrs, raw, self.nitems)
        } else {
            let end = sections.span(0).map_or(0, |(_, len)| len);
            self.layout
                .parse_prefix(&self.attrs, raw, self.nitems, end)
                .and_then(|most| {
                    if most + 1 == sections.len() {
                        Ok(())
                    } else {
                        Err(format!("{} sections for {most} columns", sections.len()))
                    }
                })
        };
        if let Err(e) = parsed {
            version_data::corrupted(self.rel, self.block, e);
        }
    }

    /// Decodes column `c` of the page, decompressing its section first.
    fn decode(&mut self, c: usize) -> Result<(), String> {
        let Some(sections) = &mut self.sections else {
            return Err("no page loaded".into());
        };
        if c < self.layout.columns() && !self.layout.is_located(c) {
            sections.ensure(c + 1).map_err(|e| e.to_string())?;
            let (at, len) = sections.span(c + 1).unwrap_or_default();
            self.layout.locate(c, sections.raw(), at, len)?;
        }
        self.layout
            .decode_column(&self.attrs, sections.raw(), c, &mut self.columns[c])?;
        self.ready[c] = true;
        Ok(())
    }

    /// Reads the page by the layout of `desc`: the descriptor of the slot
    /// the rows go to describes them (ALTER COLUMN TYPE rewrites a table
    /// by reading its old rows into slots of the old descriptor while the
    /// relation already has the new one).
    fn use_desc(&mut self, desc: pg_sys::TupleDesc) {
        // SAFETY: the slot's tuple descriptor.
        self.attrs = unsafe { crate::pg::rel::desc_layouts(desc) }
            .into_iter()
            .map(Attr::from_layout)
            .collect();
        self.desc = desc;
        let n = self.attrs.len();
        self.columns.resize_with(n, Column::default);
        self.ready = vec![false; n];
        self.parse();
    }

    /// The header of visible version `pos`.
    fn header(&mut self, pos: usize) -> *mut pg_sys::HeapTupleHeaderData {
        let h = self.header_of[pos] as usize;
        &mut self.headers[h] as *mut HeaderCopy as *mut pg_sys::HeapTupleHeaderData
    }

    /// The full tuple bytes (header, then the rest) of visible version
    /// `pos`, rebuilt alone (a slot that is not an lsm slot).
    fn tuple_bytes(&mut self, pos: usize, tid: pg_sys::ItemPointerData) -> Vec<u8> {
        let row = self.rows[pos] as usize;
        let rest = match &mut self.sections {
            Some(sections) => (0..sections.len())
                .try_for_each(|i| sections.ensure(i).map_err(|e| e.to_string()))
                .and_then(|()| columnar::decode_one(&self.attrs, sections.raw(), self.nitems, row)),
            None => Err("no page loaded".into()),
        };
        let rest = rest.unwrap_or_else(|e| version_data::corrupted(self.rel, self.block, e));
        let mut h = self.headers[self.header_of[pos] as usize].0;
        if h[12..18].iter().all(|b| *b == 0) {
            let (v, o) = (
                crate::pg::htup::tid_block(&tid),
                crate::pg::htup::tid_offset(&tid),
            );
            compact_page::put_ctid(&mut h, v, o);
        }
        [&h[..TUPLE_HEADER_SIZE], &rest[..]].concat()
    }
}

/// Decodes column `c` of `batch`'s page (the first time a row of the page
/// is asked for it). Guarded: a damaged column raises XX001 from inside a
/// slot callback.
#[pg_guard]
unsafe extern "C-unwind" fn decode_column(batch: *mut Batch, c: usize) {
    // SAFETY: the batch of a column-mode slot, alive while the slot holds its row.
    let b = unsafe { &mut *batch };
    if let Err(e) = b.decode(c) {
        version_data::corrupted(b.rel, b.block, e);
    }
}

/// Heap's buffer slot callbacks.
fn heap_ops() -> &'static pg_sys::TupleTableSlotOps {
    // SAFETY: a constant table exported by the server.
    unsafe { &pg_sys::TTSOpsBufferHeapTuple }
}

/// The batch of a slot in column mode.
#[inline]
fn batch_of(slot: Slot) -> *mut Batch {
    // SAFETY: called only on lsm slots (our callbacks, or after `is_lsm`).
    unsafe { (*(slot.raw() as *mut LsmSlot)).batch }
}

unsafe extern "C-unwind" fn init(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: an lsm slot is a buffer slot followed by our fields (zeroed
    // by MakeTupleTableSlot: tuple mode).
    unsafe { heap_ops().init.expect("init")(slot.raw()) }
}

unsafe extern "C-unwind" fn release(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: as in `init`.
    unsafe { heap_ops().release.expect("release")(slot.raw()) }
}

unsafe extern "C-unwind" fn clear(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: an lsm slot; in column mode its tuple is the header copy,
    // not to be freed (SHOULDFREE is off) and it holds no buffer.
    unsafe {
        (*(slot.raw() as *mut LsmSlot)).batch = std::ptr::null_mut();
        heap_ops().clear.expect("clear")(slot.raw())
    }
}

/// Hot: the executor asks every row for its first `natts` columns.
unsafe extern "C-unwind" fn getsomeattrs(slot: *mut pg_sys::TupleTableSlot, natts: i32) {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    let batch = batch_of(slot);
    if batch.is_null() {
        // SAFETY: tuple mode: heap's callback on heap's slot layout.
        return unsafe { heap_ops().getsomeattrs.expect("getsomeattrs")(slot.raw(), natts) };
    }
    // SAFETY: column mode: the batch is alive while the slot holds its row
    // (module comment); tts_values/tts_isnull have natts entries.
    unsafe {
        let pos = (*(slot.raw() as *mut LsmSlot)).pos as usize;
        let (row, upto) = {
            let b = &*batch;
            let row = b.rows[pos] as usize;
            (row, (natts.max(0) as usize).min(b.layout.natts(row)))
        };
        let from = (*slot.raw()).tts_nvalid.max(0) as usize;
        for c in from..upto {
            let ready = {
                let b = &*batch;
                b.ready[c]
            };
            if !ready {
                decode_column(batch, c);
            }
            let b = &*batch;
            let col = &b.columns[c];
            let (tag, word) = (col.tags[row], col.words[row]);
            let (datum, null) = match tag {
                TAG_VALUE => (word as usize, false),
                TAG_RAW => (b.raw.add(word as usize) as usize, false),
                TAG_SIDE => (col.side_ptr().add(word as usize) as usize, false),
                _ => (0, true),
            };
            *(*slot.raw()).tts_values.add(c) = pg_sys::Datum::from(datum);
            *(*slot.raw()).tts_isnull.add(c) = null;
        }
        if upto > from {
            (*slot.raw()).tts_nvalid = upto as i16;
        }
    }
}

unsafe extern "C-unwind" fn getsysattr(
    slot: *mut pg_sys::TupleTableSlot,
    attnum: i32,
    isnull: *mut bool,
) -> pg_sys::Datum {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: in either mode the slot's tuple has a valid header (column
    // mode: the header copy) and t_self / t_tableOid.
    unsafe { heap_ops().getsysattr.expect("getsysattr")(slot.raw(), attnum, isnull) }
}

#[cfg(feature = "pg18")]
unsafe extern "C-unwind" fn is_current_xact_tuple(slot: *mut pg_sys::TupleTableSlot) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: as in `getsysattr` (reads xmin and infomask).
    unsafe {
        heap_ops()
            .is_current_xact_tuple
            .expect("is_current_xact_tuple")(slot.raw())
    }
}

/// The slot's values (column mode) as a palloc'd tuple in the current
/// memory context, carrying the version's header fields (xmin, xmax, cid,
/// ctid, hint bits) and TID.
fn form_tuple(slot: Slot) -> pg_sys::HeapTuple {
    // SAFETY: a column-mode lsm slot; slot_getallattrs fills every value.
    unsafe {
        pg_sys::slot_getallattrs(slot.raw());
        let t = pg_sys::heap_form_tuple(
            (*slot.raw()).tts_tupleDescriptor,
            (*slot.raw()).tts_values,
            (*slot.raw()).tts_isnull,
        );
        let header = (*(slot.raw() as *mut LsmSlot)).base.base.tupdata.t_data;
        let formed = (*t).t_data;
        let layout_bits =
            (pg_sys::HEAP_HASNULL | pg_sys::HEAP_HASVARWIDTH | pg_sys::HEAP_HASEXTERNAL) as u16;
        (*formed).t_choice = (*header).t_choice;
        // a shared header's (0,0): the version's own TID
        let own = (*header).t_ctid.ip_posid == 0;
        (*formed).t_ctid = if own {
            (*slot.raw()).tts_tid
        } else {
            (*header).t_ctid
        };
        (*formed).t_infomask =
            ((*header).t_infomask & !layout_bits) | ((*formed).t_infomask & layout_bits);
        let natts_mask = pg_sys::HEAP_NATTS_MASK as u16;
        (*formed).t_infomask2 =
            ((*header).t_infomask2 & !natts_mask) | ((*formed).t_infomask2 & natts_mask);
        (*t).t_self = (*slot.raw()).tts_tid;
        (*t).t_tableOid = (*slot.raw()).tts_tableOid;
        t
    }
}

/// Turns a column-mode slot into a tuple-mode slot owning a formed copy.
fn materialize_columns(slot: Slot) {
    // SAFETY: a column-mode lsm slot owns and pins nothing; the values
    // pointed into the batch and are deformed again from the copy.
    unsafe { hold_owned(slot, form_tuple_in(slot, (*slot.raw()).tts_mcxt)) }
}

/// [`form_tuple`] of `src` allocated in memory context `cxt`.
fn form_tuple_in(
    src: Slot,
    cxt: pg_sys::MemoryContext,
) -> pg_sys::HeapTuple {
    // SAFETY: switching to a live context and back around the allocation.
    unsafe {
        let old = pg_sys::MemoryContextSwitchTo(cxt);
        let t = form_tuple(src);
        pg_sys::MemoryContextSwitchTo(old);
        t
    }
}

/// Makes lsm slot `slot` hold `tuple` (in its context), which it frees
/// when cleared: tuple mode, no buffer, values to be deformed again.
///
/// # Safety
/// `slot` is an lsm slot that owns no tuple and pins no buffer.
unsafe fn hold_owned(slot: Slot, tuple: pg_sys::HeapTuple) {
    // SAFETY: see the function's contract.
    unsafe {
        let ls = slot.raw() as *mut LsmSlot;
        (*ls).batch = std::ptr::null_mut();
        (*ls).base.base.tuple = tuple;
        (*ls).base.base.off = 0;
        (*ls).base.buffer = pg_sys::InvalidBuffer as pg_sys::Buffer;
        (*slot.raw()).tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
        (*slot.raw()).tts_flags |= pg_sys::TTS_FLAG_SHOULDFREE as u16;
        (*slot.raw()).tts_nvalid = 0;
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn materialize(slot: *mut pg_sys::TupleTableSlot) {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    if batch_of(slot).is_null() {
        // SAFETY: tuple mode: heap's callback.
        return unsafe { heap_ops().materialize.expect("materialize")(slot.raw()) };
    }
    materialize_columns(slot);
}

#[pg_guard]
unsafe extern "C-unwind" fn copyslot(
    dst: *mut pg_sys::TupleTableSlot,
    src: *mut pg_sys::TupleTableSlot,
) {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let dst = unsafe { Slot::from_raw(dst) };
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let src = unsafe { Slot::from_raw(src) };
    if !is_lsm(src) || batch_of(src).is_null() {
        // SAFETY: heap's callback copies from any slot (a buffer reference
        // only from a tuple-mode lsm slot, whose ops equal ours).
        return unsafe { heap_ops().copyslot.expect("copyslot")(dst.raw(), src.raw()) };
    }
    // SAFETY: both lsm slots; the copy is formed in dst's context and owned by it.
    unsafe {
        pg_sys::ExecClearTuple(dst.raw());
        hold_owned(dst, form_tuple_in(src, (*dst.raw()).tts_mcxt));
        (*dst.raw()).tts_tid = (*src.raw()).tts_tid;
        (*dst.raw()).tts_tableOid = (*src.raw()).tts_tableOid;
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn get_heap_tuple(slot: *mut pg_sys::TupleTableSlot) -> pg_sys::HeapTuple {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    if !batch_of(slot).is_null() {
        materialize_columns(slot);
    }
    // SAFETY: tuple mode now: heap's callback.
    unsafe { heap_ops().get_heap_tuple.expect("get_heap_tuple")(slot.raw()) }
}

#[pg_guard]
unsafe extern "C-unwind" fn copy_heap_tuple(
    slot: *mut pg_sys::TupleTableSlot,
) -> pg_sys::HeapTuple {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    if batch_of(slot).is_null() {
        // SAFETY: tuple mode: heap's callback.
        return unsafe { heap_ops().copy_heap_tuple.expect("copy_heap_tuple")(slot.raw()) };
    }
    form_tuple(slot)
}

/// A column-mode slot's values as a minimal tuple (PG18: with `extra`
/// zeroed bytes in front).
fn form_minimal(slot: Slot, _extra: usize) -> pg_sys::MinimalTuple {
    // SAFETY: a column-mode slot: every value read, then formed.
    unsafe {
        pg_sys::slot_getallattrs(slot.raw());
        let (desc, values, nulls) = (
            (*slot.raw()).tts_tupleDescriptor,
            (*slot.raw()).tts_values,
            (*slot.raw()).tts_isnull,
        );
        #[cfg(feature = "pg18")]
        return pg_sys::heap_form_minimal_tuple(desc, values, nulls, _extra);
        #[cfg(not(feature = "pg18"))]
        return pg_sys::heap_form_minimal_tuple(desc, values, nulls);
    }
}

#[cfg(feature = "pg18")]
#[pg_guard]
unsafe extern "C-unwind" fn copy_minimal_tuple(
    slot: *mut pg_sys::TupleTableSlot,
    extra: pg_sys::Size,
) -> pg_sys::MinimalTuple {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    if batch_of(slot).is_null() {
        // SAFETY: tuple mode: heap's callback.
        return unsafe { heap_ops().copy_minimal_tuple.expect("copy_minimal_tuple")(slot.raw(), extra) };
    }
    form_minimal(slot, extra)
}

#[cfg(not(feature = "pg18"))]
#[pg_guard]
unsafe extern "C-unwind" fn copy_minimal_tuple(
    slot: *mut pg_sys::TupleTableSlot,
) -> pg_sys::MinimalTuple {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    if batch_of(slot).is_null() {
        // SAFETY: tuple mode: heap's callback.
        return unsafe { heap_ops().copy_minimal_tuple.expect("copy_minimal_tuple")(slot.raw()) };
    }
    form_minimal(slot, 0)
}

/// The slot callbacks of lsm tables.
pub static LSM_SLOT_OPS: pg_sys::TupleTableSlotOps = pg_sys::TupleTableSlotOps {
    base_slot_size: std::mem::size_of::<LsmSlot>(),
    init: Some(init),
    release: Some(release),
    clear: Some(clear),
    getsomeattrs: Some(getsomeattrs),
    getsysattr: Some(getsysattr),
    #[cfg(feature = "pg18")]
    is_current_xact_tuple: Some(is_current_xact_tuple),
    materialize: Some(materialize),
    copyslot: Some(copyslot),
    get_heap_tuple: Some(get_heap_tuple),
    get_minimal_tuple: None,
    copy_heap_tuple: Some(copy_heap_tuple),
    copy_minimal_tuple: Some(copy_minimal_tuple),
};

/// Whether `slot` is an lsm slot.
#[inline]
pub fn is_lsm(slot: Slot) -> bool {
    // SAFETY: a valid slot.
    std::ptr::eq(unsafe { (*slot.raw()).tts_ops }, &LSM_SLOT_OPS)
}

/// Frees an owned tuple and drops a buffer pin the slot holds: the start of
/// every store (heap's `tts_buffer_heap_store_tuple`), keeping the pin when
/// the new tuple is on the same buffer.
///
/// # Safety
/// `slot` is an lsm slot.
unsafe fn release_contents(slot: Slot, keep: pg_sys::Buffer) -> bool {
    // SAFETY: see the function's contract.
    unsafe {
        let ls = slot.raw() as *mut LsmSlot;
        if (*slot.raw()).tts_flags & pg_sys::TTS_FLAG_SHOULDFREE as u16 != 0 {
            pg_sys::heap_freetuple((*ls).base.base.tuple);
            (*slot.raw()).tts_flags &= !(pg_sys::TTS_FLAG_SHOULDFREE as u16);
        }
        let held = (*ls).base.buffer;
        if held == keep {
            return true;
        }
        if held != pg_sys::InvalidBuffer as pg_sys::Buffer {
            crate::pg::buffer::release(held);
        }
        (*ls).base.buffer = pg_sys::InvalidBuffer as pg_sys::Buffer;
        false
    }
}

/// Stores `tuple`, whose data stays where it is while `buf` is pinned (in
/// the pinned page, or a scan's decoded copy of it), into a slot that takes
/// its own pin on `buf` — `ExecStoreBufferHeapTuple` for lsm slots.
pub fn store_buffer_tuple(
    slot: Slot,
    tuple: pg_sys::HeapTupleData,
    buf: pg_sys::Buffer,
) {
    if !is_lsm(slot) {
        // SAFETY: a valid slot; buffer slots keep a pointer to the struct,
        // so it goes into their own `tupdata`; other kinds copy the tuple.
        unsafe {
            if std::ptr::eq((*slot.raw()).tts_ops, heap_ops()) {
                let bslot = slot.raw() as *mut pg_sys::BufferHeapTupleTableSlot;
                (*bslot).base.tupdata = tuple;
                pg_sys::ExecStoreBufferHeapTuple(&mut (*bslot).base.tupdata, slot.raw(), buf);
            } else {
                let mut t = tuple;
                pg_sys::ExecForceStoreHeapTuple(&mut t, slot.raw(), false);
                (*slot.raw()).tts_tid = tuple.t_self;
                (*slot.raw()).tts_tableOid = tuple.t_tableOid;
            }
        }
        return;
    }
    // SAFETY: an lsm slot; `buf` is pinned by the caller, the slot takes its own pin.
    unsafe {
        let ls = slot.raw() as *mut LsmSlot;
        let kept = release_contents(slot, buf);
        (*ls).batch = std::ptr::null_mut();
        (*ls).base.base.tupdata = tuple;
        (*ls).base.base.tuple = &mut (*ls).base.base.tupdata;
        (*ls).base.base.off = 0;
        if !kept {
            pg_sys::IncrBufferRefCount(buf);
            (*ls).base.buffer = buf;
        }
        (*slot.raw()).tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
        (*slot.raw()).tts_nvalid = 0;
        (*slot.raw()).tts_tid = tuple.t_self;
        (*slot.raw()).tts_tableOid = tuple.t_tableOid;
    }
}

/// [`store_owned`] for a tuple palloc'd in the slot's own memory context
/// (see [`in_slot_context`]): nothing to check or copy.
///
/// # Safety
/// `tuple` is a valid palloc'd tuple (header and data in one chunk) that
/// the caller hands over: nothing else frees or uses it afterwards.
pub unsafe fn store_owned_here(slot: Slot, tuple: pg_sys::HeapTuple) {
    if !is_lsm(slot) {
        // SAFETY: handed over by our caller.
        return unsafe { store_owned(slot, tuple) };
    }
    // SAFETY: a valid lsm slot and a tuple allocated in its context.
    unsafe {
        let (tid, table) = ((*tuple).t_self, (*tuple).t_tableOid);
        release_contents(slot, pg_sys::InvalidBuffer as pg_sys::Buffer);
        hold_owned(slot, tuple);
        (*slot.raw()).tts_tid = tid;
        (*slot.raw()).tts_tableOid = table;
    }
}

/// Runs `f` with the slot's memory context current, so that what it
/// pallocs can be handed to [`store_owned_here`].
pub fn in_slot_context<T>(slot: Slot, f: impl FnOnce() -> T) -> T {
    // SAFETY: a valid slot; switching contexts calls nothing (an ERROR in
    // `f` leaves the switch to the abort's context reset, as in C).
    let old = unsafe { pg_sys::MemoryContextSwitchTo((*slot.raw()).tts_mcxt) };
    let out = f();
    // SAFETY: restores the caller's context.
    unsafe { pg_sys::MemoryContextSwitchTo(old) };
    out
}

/// Stores a palloc'd tuple the slot takes over (copied into the slot's
/// context when it was made elsewhere) — `ExecForceStoreHeapTuple` that
/// keeps the header, for lsm slots.
///
/// # Safety
/// As for [`store_owned_here`], the tuple palloc'd in any context.
pub unsafe fn store_owned(slot: Slot, tuple: pg_sys::HeapTuple) {
    // SAFETY: a valid slot and a palloc'd tuple handed over by the caller.
    unsafe {
        if !is_lsm(slot) {
            let (tid, table) = ((*tuple).t_self, (*tuple).t_tableOid);
            pg_sys::ExecForceStoreHeapTuple(tuple, slot.raw(), true);
            (*slot.raw()).tts_tid = tid;
            (*slot.raw()).tts_tableOid = table;
            return;
        }
        let mine = std::ptr::eq(
            pg_sys::GetMemoryChunkContext(tuple as *mut std::ffi::c_void),
            (*slot.raw()).tts_mcxt,
        );
        let owned = if mine {
            tuple
        } else {
            let copy = in_slot_context(slot, || pg_sys::heap_copytuple(tuple));
            pg_sys::heap_freetuple(tuple);
            copy
        };
        store_owned_here(slot, owned);
    }
}

/// [`store_columns`] when `slot` already holds a row of `batch` in column
/// mode (the scan's next row): a few stores, no Postgres call. False when
/// the slot is in any other state.
///
/// # Safety
/// `batch` is the scan's live batch, valid until the scan ends or replaces
/// it (the slot then no longer holds a row of it).
#[inline]
pub unsafe fn restore_columns(
    slot: Slot,
    batch: *mut Batch,
    pos: usize,
    tid: pg_sys::ItemPointerData,
) -> bool {
    if !is_lsm(slot)
        || batch_of(slot) != batch
        // SAFETY: a valid slot; the batch is the scan's.
        || unsafe { (*slot.raw()).tts_tupleDescriptor != (*batch).desc }
    {
        return false;
    }
    // SAFETY: an lsm slot in column mode on the scan's live batch (so it
    // owns nothing and pins nothing); `pos` is one of its visible versions.
    unsafe {
        let ls = slot.raw() as *mut LsmSlot;
        (*ls).pos = pos as u32;
        (*ls).base.base.tupdata.t_self = tid;
        (*ls).base.base.tupdata.t_data = (*batch).header(pos);
        (*slot.raw()).tts_nvalid = 0;
        (*slot.raw()).tts_tid = tid;
    }
    true
}

/// Stores visible version `pos` of `batch` into `slot` (column mode), with
/// TID `tid` of table `table`.
///
/// # Safety
/// As for [`restore_columns`].
pub unsafe fn store_columns(
    slot: Slot,
    batch: *mut Batch,
    pos: usize,
    tid: pg_sys::ItemPointerData,
    table: pg_sys::Oid,
) {
    // SAFETY: the scan's live batch; `pos` is one of its visible versions.
    let b = unsafe { &mut *batch };
    // SAFETY: a valid slot.
    let desc = unsafe { (*slot.raw()).tts_tupleDescriptor };
    if desc != b.desc {
        b.use_desc(desc);
    }
    if !is_lsm(slot) {
        let bytes = b.tuple_bytes(pos, tid);
        // SAFETY: a fresh palloc'd tuple, handed over.
        unsafe { store_owned(slot, crate::pg::htup::palloc_tuple(&[&bytes], tid, table)) };
        return;
    }
    let header = b.header(pos);
    // SAFETY: an lsm slot; column mode holds no pin and owns nothing.
    unsafe {
        let ls = slot.raw() as *mut LsmSlot;
        release_contents(slot, pg_sys::InvalidBuffer as pg_sys::Buffer);
        (*ls).batch = batch;
        (*ls).pos = pos as u32;
        (*ls).base.base.tupdata = pg_sys::HeapTupleData {
            t_len: TUPLE_HEADER_SIZE as u32,
            t_self: tid,
            t_tableOid: table,
            t_data: header,
        };
        (*ls).base.base.tuple = &mut (*ls).base.base.tupdata;
        (*ls).base.base.off = 0;
        (*slot.raw()).tts_flags &= !(pg_sys::TTS_FLAG_EMPTY as u16);
        (*slot.raw()).tts_nvalid = 0;
        (*slot.raw()).tts_tid = tid;
        (*slot.raw()).tts_tableOid = table;
    }
}
