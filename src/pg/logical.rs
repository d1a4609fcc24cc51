//! Logical decoding's side of Postgres for an access method that logs its
//! own row records: whether a relation's changes must carry row data
//! (`RelationIsLogicallyLogged`), the old row's replica identity (heap's
//! `ExtractReplicaIdentity`), writing a main-data-only record, and the
//! `rm_decode` end — the checks `heap_decode` makes before a change is
//! queued, and queueing a change with its tuples into the reorder buffer
//! (a `ReorderBufferTupleBuf` on PG15, a plain `HeapTuple` since PG17).

// #[pg_guard] extern blocks: the guarded wrappers keep PostgreSQL's C names
#![allow(non_snake_case)]

use crate::pg::relation::Rel;
use super::locator::Locator;
use pgrx::pg_sys;

/// `replication/decode.h`: what `LogicalDecodingProcessRecord` hands an
/// `rm_decode` callback (pgrx leaves the struct opaque). Unchanged 15–18.
#[repr(C)]
struct XLogRecordBuffer {
    origptr: pg_sys::XLogRecPtr,
    endptr: pg_sys::XLogRecPtr,
    record: *mut pg_sys::XLogReaderState,
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" {
    /// replication/snapbuild.h (returns `SnapBuildState`, an int enum)
    fn SnapBuildCurrentState(builder: *mut pg_sys::SnapBuild) -> i32;
    /// replication/snapbuild.h
    fn SnapBuildProcessChange(
        builder: *mut pg_sys::SnapBuild,
        xid: pg_sys::TransactionId,
        lsn: pg_sys::XLogRecPtr,
    ) -> bool;
}

/// `SNAPBUILD_FULL_SNAPSHOT` of `SnapBuildState`.
const SNAPBUILD_FULL_SNAPSHOT: i32 = 1;

/// `XLogLogicalInfoActive()`.
pub fn wal_is_logical() -> bool {
    // SAFETY: a plain GUC variable.
    unsafe { pg_sys::wal_level >= pg_sys::WalLevel::WAL_LEVEL_LOGICAL as i32 }
}

/// `RelationIsLogicallyLogged`: logical WAL, a relation that needs WAL and
/// is no catalog.
pub fn is_logically_logged(rel: Rel) -> bool {
    // SAFETY: an open relation.
    wal_is_logical() && super::wal::relation_needs_wal(rel) && !unsafe { pg_sys::IsCatalogRelation(rel.raw()) }
}

/// Writes a record of resource manager `rmid` with `data` as its main data
/// and the replication origin, as heap's row records do; returns its LSN.
pub fn insert_record(rmid: u8, info: u8, data: &[u8]) -> pg_sys::XLogRecPtr {
    // SAFETY: outside any critical section; `data` outlives XLogInsert,
    // which copies it into the WAL.
    unsafe {
        pg_sys::XLogBeginInsert();
        pg_sys::XLogSetRecordFlags(pg_sys::XLOG_INCLUDE_ORIGIN as u8);
        pg_sys::XLogRegisterData(data.as_ptr() as _, data.len() as _);
        pg_sys::XLogInsert(rmid, info)
    }
}

/// The old row an UPDATE or DELETE logs for logical decoding: heap's
/// `ExtractReplicaIdentity`. None: nothing to log (`REPLICA IDENTITY
/// NOTHING`, no identity columns, or — for an UPDATE (`new` given) — an
/// identity whose columns the update leaves alone, none of them TOASTed
/// out of line). Otherwise a palloc'd tuple with no TOAST pointers and
/// whether it holds only the identity's columns (false: the whole row,
/// `REPLICA IDENTITY FULL`).
pub fn replica_identity(
    rel: Rel,
    old: &mut pg_sys::HeapTupleData,
    new: Option<pg_sys::HeapTuple>,
) -> Option<(pg_sys::HeapTuple, bool)> {
    let (replident, desc) = (rel.form().relreplident as u8, rel.tupdesc());
    if replident == pg_sys::REPLICA_IDENTITY_NOTHING {
        return None;
    }
    if replident == pg_sys::REPLICA_IDENTITY_FULL {
        return Some((flattened(desc, old, None), false));
    }
    // SAFETY: open relation; the bitmap is a copy we free.
    let ids = unsafe {
        pg_sys::RelationGetIndexAttrBitmap(rel.raw(), pg_sys::IndexAttrBitmapKind::INDEX_ATTR_BITMAP_IDENTITY_KEY)
    };
    let key = (!ids.is_null())
        .then(|| {
            let required = match new {
                None => true,
                Some(n) => super::htup::columns_changed(rel, ids, old, n) || any_external(desc, old, ids),
            };
            required.then(|| (flattened(desc, old, Some(ids)), true))
        })
        .flatten();
    // SAFETY: ours (bms_free takes NULL).
    unsafe { pg_sys::bms_free(ids) };
    key
}

/// The attribute number of bitmap member `x` (offset by
/// `FirstLowInvalidHeapAttributeNumber`).
fn attnum_of(x: i32) -> i32 {
    x + pg_sys::FirstLowInvalidHeapAttributeNumber
}

/// Whether column `i` (from 0) of `desc` is a varlena.
fn is_varlena(desc: pg_sys::TupleDesc, i: usize) -> bool {
    // SAFETY: a valid descriptor that outlives this call.
    let atts = unsafe { pgrx::PgTupleDesc::from_pg_unchecked(desc) };
    atts.get(i).is_some_and(|a| a.attlen == -1)
}

/// Whether any user column of `cols` is an out-of-line TOAST pointer in `t`.
fn any_external(desc: pg_sys::TupleDesc, t: &mut pg_sys::HeapTupleData, cols: *const pg_sys::Bitmapset) -> bool {
    let mut x = -1;
    loop {
        // SAFETY: a valid bitmapset.
        x = unsafe { pg_sys::bms_next_member(cols, x) };
        if x < 0 {
            return false;
        }
        let Some(n) = usize::try_from(attnum_of(x)).ok().and_then(std::num::NonZeroUsize::new) else {
            continue;
        };
        // SAFETY: a formed tuple of `desc`; varlena attributes point into it.
        unsafe {
            if is_varlena(desc, n.get() - 1) {
                if let Some(d) = pgrx::heap_getattr_raw(t, n, desc) {
                    if pgrx::varatt_is_1b_e(d.cast_mut_ptr::<pg_sys::varlena>()) {
                        return true;
                    }
                }
            }
        }
    }
}

/// A palloc'd copy of `t` with every out-of-line TOAST value inlined
/// (`toast_flatten_tuple`), and — when `keep` is given — every column
/// outside it set to NULL.
fn flattened(
    desc: pg_sys::TupleDesc,
    t: &mut pg_sys::HeapTupleData,
    keep: Option<*const pg_sys::Bitmapset>,
) -> pg_sys::HeapTuple {
    // SAFETY: a formed tuple of `desc`; the arrays have natts entries;
    // detoasted copies are palloc'd and outlive heap_form_tuple, which copies
    // them.
    unsafe {
        let natts = (*desc).natts as usize;
        let mut values = vec![pg_sys::Datum::from(0usize); natts];
        let mut nulls = vec![false; natts];
        pg_sys::heap_deform_tuple(t, desc, values.as_mut_ptr(), nulls.as_mut_ptr());
        for i in 0..natts {
            if let Some(cols) = keep {
                let x = i as i32 + 1 - pg_sys::FirstLowInvalidHeapAttributeNumber;
                if !pg_sys::bms_is_member(x, cols) {
                    nulls[i] = true;
                    continue;
                }
            }
            if !nulls[i] && is_varlena(desc, i) {
                let v = values[i].cast_mut_ptr::<pg_sys::varlena>();
                if pgrx::varatt_is_1b_e(v) {
                    values[i] = pg_sys::Datum::from(pg_sys::detoast_external_attr(v));
                }
            }
        }
        pg_sys::heap_form_tuple(desc, values.as_mut_ptr(), nulls.as_mut_ptr())
    }
}

/// One record being decoded by an `rm_decode` callback.
pub struct Decoding {
    ctx: *mut pg_sys::LogicalDecodingContext,
    buf: *mut XLogRecordBuffer,
    /// The record's contents, read as redo reads them.
    reader: super::wal::Redo,
}

/// The reorder buffer change kinds a row record becomes.
#[derive(Clone, Copy)]
pub enum ChangeKind {
    Insert,
    SpeculativeInsert,
    Update,
    Delete,
    SpeculativeConfirm,
    SpeculativeAbort,
}

impl Decoding {
    /// # Safety
    /// The arguments an `rm_decode` callback was given.
    pub unsafe fn of(ctx: *mut pg_sys::LogicalDecodingContext, buf: *mut pg_sys::XLogRecordBuffer) -> Decoding {
        let buf = buf as *mut XLogRecordBuffer;
        Decoding {
            ctx,
            buf,
            // SAFETY: (caller) the reader holding the record being decoded.
            reader: unsafe { super::wal::Redo::of((*buf).record) },
        }
    }

    fn decoded(&self) -> &pg_sys::DecodedXLogRecord {
        // SAFETY: the record being decoded is attached to the reader.
        unsafe { &*(*(*self.buf).record).record }
    }

    /// The record's rmgr-specific info bits.
    pub fn info(&self) -> u8 {
        self.reader.info()
    }

    /// The record's main data.
    pub fn data(&self) -> &[u8] {
        self.reader.main_data()
    }

    /// Registered block `id`'s relation and its database.
    pub fn block_locator(&self, id: u8) -> (Locator, u32) {
        // SAFETY: a zeroed locator is a valid out-parameter; the fork and
        // block outputs are optional (NULL). A block the record lacks
        // leaves the locator zeroed (database 0: no slot's).
        let mut l: Locator = unsafe { std::mem::zeroed() };
        // SAFETY: the record being decoded.
        unsafe {
            pg_sys::XLogRecGetBlockTagExtended(
                (*self.buf).record,
                id,
                &mut l,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        let db = super::locator::parts(&l).1;
        (l, db)
    }

    /// Registered block `id`'s data (empty when it has none).
    pub fn block_data(&self, id: u8) -> &[u8] {
        self.reader.block_data(id)
    }

    /// The xid that wrote the record.
    pub fn xid(&self) -> u32 {
        self.reader.xid()
    }

    /// `heap_decode`'s gate: tells the reorder buffer about the xid, then
    /// whether a change of database `db` in this record is to be queued — a
    /// full snapshot built, the transaction not skipped, not
    /// fast-forwarding, this slot's database, an origin the plugin wants.
    pub fn wants_changes(&self, db: u32) -> bool {
        // SAFETY: the context and record of a running decoding callback;
        // every function is one heap_decode calls with the same arguments.
        unsafe {
            let ctx = &*self.ctx;
            let lsn = (*self.buf).origptr;
            pg_sys::ReorderBufferProcessXid(ctx.reorder, self.xid().into(), lsn);
            if SnapBuildCurrentState(ctx.snapshot_builder) < SNAPBUILD_FULL_SNAPSHOT {
                return false;
            }
            if !SnapBuildProcessChange(ctx.snapshot_builder, self.xid().into(), lsn) || ctx.fast_forward {
                return false;
            }
            if u32::from((*ctx.slot).data.database) != db {
                return false;
            }
            if ctx.callbacks.filter_by_origin_cb.is_some()
                && pg_sys::filter_by_origin_cb_wrapper(self.ctx, self.decoded().record_origin)
            {
                return false;
            }
        }
        true
    }

    /// Queues one change of relation `locator` with its new and old tuples
    /// (written by the closures into buffers of the given lengths).
    pub fn queue(
        &self,
        kind: ChangeKind,
        locator: Locator,
        new: Option<(usize, &dyn Fn(&mut [u8]))>,
        old: Option<(usize, &dyn Fn(&mut [u8]))>,
        clear_toast_afterwards: bool,
    ) {
        use pg_sys::ReorderBufferChangeType as T;
        let action = match kind {
            ChangeKind::Insert => T::REORDER_BUFFER_CHANGE_INSERT,
            ChangeKind::SpeculativeInsert => T::REORDER_BUFFER_CHANGE_INTERNAL_SPEC_INSERT,
            ChangeKind::Update => T::REORDER_BUFFER_CHANGE_UPDATE,
            ChangeKind::Delete => T::REORDER_BUFFER_CHANGE_DELETE,
            ChangeKind::SpeculativeConfirm => T::REORDER_BUFFER_CHANGE_INTERNAL_SPEC_CONFIRM,
            ChangeKind::SpeculativeAbort => T::REORDER_BUFFER_CHANGE_INTERNAL_SPEC_ABORT,
        };
        // SAFETY: the reorder buffer of a running decoding; the change and
        // its tuples are allocated by it and handed over by QueueChange.
        unsafe {
            let rb = (*self.ctx).reorder;
            #[cfg(feature = "pg15")]
            let change = pg_sys::ReorderBufferGetChange(rb);
            #[cfg(not(feature = "pg15"))]
            let change = pg_sys::ReorderBufferAllocChange(rb);
            (*change).action = action;
            (*change).origin_id = self.decoded().record_origin;
            let tp = &mut (*change).data.tp;
            #[cfg(feature = "pg15")]
            {
                tp.relnode = locator;
            }
            #[cfg(not(feature = "pg15"))]
            {
                tp.rlocator = locator;
            }
            if let Some((len, write)) = new {
                tp.newtuple = tuple_buf(rb, len, write);
            }
            if let Some((len, write)) = old {
                tp.oldtuple = tuple_buf(rb, len, write);
            }
            tp.clear_toast_afterwards = clear_toast_afterwards;
            pg_sys::ReorderBufferQueueChange(rb, self.xid().into(), (*self.buf).origptr, change, false);
        }
    }
}

/// A reorder-buffer tuple of `len` bytes filled by `write`, "not a disk
/// based tuple" (no TID, table unknown until the transaction is replayed).
#[cfg(feature = "pg15")]
unsafe fn tuple_buf(rb: *mut pg_sys::ReorderBuffer, len: usize, write: &dyn Fn(&mut [u8])) -> *mut pg_sys::ReorderBufferTupleBuf {
    // SAFETY: (caller) a live reorder buffer; GetTupleBuf points t_data at
    // room for at least `len` bytes.
    unsafe {
        let b = pg_sys::ReorderBufferGetTupleBuf(rb, len);
        fill(&mut (*b).tuple, len, write);
        b
    }
}

#[cfg(not(feature = "pg15"))]
unsafe fn tuple_buf(rb: *mut pg_sys::ReorderBuffer, len: usize, write: &dyn Fn(&mut [u8])) -> pg_sys::HeapTuple {
    // SAFETY: (caller) a live reorder buffer; AllocTupleBuf points t_data
    // at room for at least `len` bytes.
    unsafe {
        let t = pg_sys::ReorderBufferAllocTupleBuf(rb, len);
        fill(&mut *t, len, write);
        t
    }
}

/// # Safety
/// `t.t_data` points at `len` writable bytes.
unsafe fn fill(t: &mut pg_sys::HeapTupleData, len: usize, write: &dyn Fn(&mut [u8])) {
    // SAFETY: (caller) room for len bytes.
    write(unsafe { std::slice::from_raw_parts_mut(t.t_data as *mut u8, len) });
    t.t_len = len as u32;
    t.t_tableOid = pg_sys::InvalidOid;
    t.t_self = super::htup::make_tid(pg_sys::InvalidBlockNumber, pg_sys::InvalidOffsetNumber);
}
