//! Heap tuple header accessors (`htup_details.h` macros written out once for
//! PG15 and PG18) and the heap TOAST entry points pgrx does not bind.

// #[pg_guard] extern blocks: the guarded wrappers keep PostgreSQL's C names
#![allow(non_snake_case)]

use crate::pg::relation::Rel;
use pgrx::pg_sys;

pub type Header = pg_sys::HeapTupleHeaderData;

/// The bytes of a formed tuple (`t_data`, `t_len` long).
///
/// # Safety
/// `t` is a formed tuple whose data outlives the returned slice.
pub unsafe fn tuple_bytes(t: &pg_sys::HeapTupleData) -> &[u8] {
    // SAFETY: as the caller guarantees.
    unsafe { std::slice::from_raw_parts(t.t_data as *const u8, t.t_len as usize) }
}

unsafe extern "C-unwind" {
    /// access/heaptoast.h — the `relation_fetch_toast_slice` callback
    /// itself (PostgreSQL calls it; no Rust frame is in between, so it
    /// needs no guard).
    pub fn heap_fetch_toast_slice(
        toastrel: pg_sys::Relation,
        valueid: pg_sys::Oid,
        attrsize: i32,
        sliceoffset: i32,
        slicelength: i32,
        result: *mut pg_sys::varlena,
    );
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" {
    /// access/heaptoast.h
    pub fn heap_toast_insert_or_update(
        rel: pg_sys::Relation,
        newtup: pg_sys::HeapTuple,
        oldtup: pg_sys::HeapTuple,
        options: i32,
    ) -> pg_sys::HeapTuple;
    /// access/heaptoast.h
    pub fn heap_toast_delete(
        rel: pg_sys::Relation,
        oldtup: pg_sys::HeapTuple,
        is_speculative: bool,
    );
    /// catalog/storage_xlog.h (argument is a RelFileNode / RelFileLocator).
    pub fn log_smgrcreate(rlocator: *const std::ffi::c_void, fork: pg_sys::ForkNumber::Type);
}

/// `TOAST_TUPLE_THRESHOLD` for 8 kB pages.
pub const TOAST_TUPLE_THRESHOLD: usize = 2032;

/// Every function below takes a pointer to a valid tuple header that the
/// caller may read (and, for setters, write: exclusive buffer lock or a
/// private copy).
fn h<'a>(t: *mut Header) -> &'a mut Header {
    // SAFETY: see the note above; callers pass valid headers.
    unsafe { &mut *t }
}

pub fn infomask(t: *mut Header) -> u32 {
    h(t).t_infomask as u32
}
pub fn infomask2(t: *mut Header) -> u32 {
    h(t).t_infomask2 as u32
}
pub fn set_infomask(t: *mut Header, mask: u32) {
    h(t).t_infomask = mask as u16;
}
pub fn set_infomask2(t: *mut Header, mask: u32) {
    h(t).t_infomask2 = mask as u16;
}
pub fn xmin(t: *mut Header) -> pg_sys::TransactionId {
    // SAFETY: union field of a valid heap tuple header.
    unsafe { h(t).t_choice.t_heap.t_xmin }
}
pub fn set_xmin(t: *mut Header, xid: pg_sys::TransactionId) {
    h(t).t_choice.t_heap.t_xmin = xid;
}
pub fn raw_xmax(t: *mut Header) -> pg_sys::TransactionId {
    // SAFETY: union field of a valid heap tuple header.
    unsafe { h(t).t_choice.t_heap.t_xmax }
}
pub fn set_xmax(t: *mut Header, xid: pg_sys::TransactionId) {
    h(t).t_choice.t_heap.t_xmax = xid;
}
pub fn set_cid(t: *mut Header, cid: pg_sys::CommandId, combo: bool) {
    h(t).t_choice.t_heap.t_field3.t_cid = cid;
    let m = infomask(t);
    set_infomask(
        t,
        if combo {
            m | pg_sys::HEAP_COMBOCID
        } else {
            m & !pg_sys::HEAP_COMBOCID
        },
    );
}
pub fn ctid(t: *mut Header) -> pg_sys::ItemPointerData {
    h(t).t_ctid
}
pub fn set_ctid(t: *mut Header, tid: pg_sys::ItemPointerData) {
    h(t).t_ctid = tid;
}
pub fn has_external(t: *mut Header) -> bool {
    infomask(t) & pg_sys::HEAP_HASEXTERNAL != 0
}
/// Whether the hint bits alone say the version is live to every snapshot
/// that sees its inserter: inserter committed (or frozen), no deleter or
/// locker. Such a version is not dead, so `HeapTupleIsSurelyDead` need not
/// be asked (heap asks it only of versions the snapshot does not see).
pub fn hinted_live(t: *mut Header) -> bool {
    let mask = infomask(t);
    mask & pg_sys::HEAP_XMIN_COMMITTED != 0 && mask & pg_sys::HEAP_XMAX_INVALID != 0
}

/// Whether a row version no snapshot can see any more is removable: heap's
/// pruning test (`HeapTupleSatisfiesVacuumHorizon`, then the horizon for
/// a recently dead one). Unlike `HeapTupleIsSurelyDead` it asks the commit
/// log when hint bits are missing, so versions of transactions whose commit
/// record is not yet flushed (`synchronous_commit = off`) count too. `t`
/// points into share-locked `buf` (hint bits may be set).
#[allow(clippy::not_unsafe_ptr_arg_deref)] // the module's contract: pointers to valid tuple headers (see the note above `h`)
pub fn removable(
    t: &mut pg_sys::HeapTupleData,
    buf: pg_sys::Buffer,
    vistest: *mut pg_sys::GlobalVisState,
) -> bool {
    let mut dead_after = pg_sys::InvalidTransactionId;
    // SAFETY: `t` points into the share-locked page of `buf`; `vistest` is
    // the relation's horizon state.
    unsafe {
        match pg_sys::HeapTupleSatisfiesVacuumHorizon(t, buf, &mut dead_after) {
            pg_sys::HTSV_Result::HEAPTUPLE_DEAD => true,
            pg_sys::HTSV_Result::HEAPTUPLE_RECENTLY_DEAD => {
                pg_sys::GlobalVisTestIsRemovableXid(vistest, dead_after)
            }
            _ => false,
        }
    }
}

pub fn xmax_is_multi(t: *mut Header) -> bool {
    infomask(t) & pg_sys::HEAP_XMAX_IS_MULTI != 0
}

/// Cmax to store for `cid`, combining with cmin when this transaction also
/// inserted the tuple (`HeapTupleHeaderAdjustCmax`).
#[allow(clippy::not_unsafe_ptr_arg_deref)] // the module's contract: pointers to valid tuple headers (see the note above `h`)
pub fn adjust_cmax(t: *mut Header, cid: pg_sys::CommandId) -> (pg_sys::CommandId, bool) {
    let mut cid = cid;
    let mut combo = false;
    // SAFETY: valid header; the function may allocate a combo CID.
    unsafe { pg_sys::HeapTupleHeaderAdjustCmax(t, &mut cid, &mut combo) };
    (cid, combo)
}

/// The updating (not merely locking) xid of xmax (`HeapTupleHeaderGetUpdateXid`).
#[allow(clippy::not_unsafe_ptr_arg_deref)] // the module's contract: pointers to valid tuple headers (see the note above `h`)
pub fn update_xid(t: *mut Header) -> pg_sys::TransactionId {
    if xmax_is_multi(t) && infomask(t) & pg_sys::HEAP_XMAX_INVALID == 0 {
        // SAFETY: valid header with a multixact xmax.
        unsafe { pg_sys::HeapTupleGetUpdateXid(t) }
    } else {
        raw_xmax(t)
    }
}

pub fn make_tid(block: pg_sys::BlockNumber, offset: u16) -> pg_sys::ItemPointerData {
    pg_sys::ItemPointerData {
        ip_blkid: pg_sys::BlockIdData {
            bi_hi: (block >> 16) as u16,
            bi_lo: (block & 0xffff) as u16,
        },
        ip_posid: offset,
    }
}

pub fn tid_block(tid: &pg_sys::ItemPointerData) -> pg_sys::BlockNumber {
    ((tid.ip_blkid.bi_hi as u32) << 16) | tid.ip_blkid.bi_lo as u32
}

pub fn tid_offset(tid: &pg_sys::ItemPointerData) -> u16 {
    tid.ip_posid
}

pub fn tid_eq(a: &pg_sys::ItemPointerData, b: &pg_sys::ItemPointerData) -> bool {
    tid_block(a) == tid_block(b) && a.ip_posid == b.ip_posid
}

// Not guarded: `columns_changed` calls it for every column of every UPDATE,
// and it raises no error for a type length taken from the catalog (it
// compares bytes), so no ERROR can jump over Rust frames here.
unsafe extern "C-unwind" {
    /// utils/datum.h
    fn datumIsEqual(
        value1: pg_sys::Datum,
        value2: pg_sys::Datum,
        typ_by_val: bool,
        typ_len: i32,
    ) -> bool;
}

/// The columns a unique index usable by a foreign key covers
/// (`RelationGetIndexAttrBitmap(INDEX_ATTR_BITMAP_KEY)`), fetched before any
/// buffer lock is taken, as heap does (it may read the catalogs). The
/// bitmap is palloc'd in the current memory context.
pub fn key_columns(rel: Rel) -> *mut pg_sys::Bitmapset {
    // SAFETY: open relation; the bitmap is a copy the caller owns.
    unsafe {
        pg_sys::RelationGetIndexAttrBitmap(rel.raw(), pg_sys::IndexAttrBitmapKind::INDEX_ATTR_BITMAP_KEY)
    }
}

/// The columns an update must leave alone to need no new index entries
/// (heap's HOT-blocking set: key, expression and partial-predicate columns
/// of every index that is not summarizing). On PostgreSQL 15, as heap's
/// there, the columns of BRIN indexes too. Fetched before any buffer lock,
/// palloc'd in the current context.
pub fn hot_blocking_columns(rel: Rel) -> *mut pg_sys::Bitmapset {
    // SAFETY: open relation; the bitmap is a copy the caller owns.
    unsafe {
        #[cfg(feature = "pg15")]
        let kind = pg_sys::IndexAttrBitmapKind::INDEX_ATTR_BITMAP_ALL;
        #[cfg(not(feature = "pg15"))]
        let kind = pg_sys::IndexAttrBitmapKind::INDEX_ATTR_BITMAP_HOT_BLOCKING;
        pg_sys::RelationGetIndexAttrBitmap(rel.raw(), kind)
    }
}

/// The columns of summarizing indexes (BRIN) that no other index uses
/// (PostgreSQL 16 and later; none on 15, where they block HOT): an update
/// changing them stays index-stable, but must widen the summaries that
/// cover its chain's root (see `lsm::summarizing`). Palloc'd in the
/// current context.
pub fn summarized_columns(rel: Rel) -> *mut pg_sys::Bitmapset {
    #[cfg(feature = "pg15")]
    {
        let _ = rel;
        std::ptr::null_mut()
    }
    // SAFETY: open relation; the bitmap is a copy the caller owns.
    #[cfg(not(feature = "pg15"))]
    unsafe {
        pg_sys::RelationGetIndexAttrBitmap(rel.raw(), pg_sys::IndexAttrBitmapKind::INDEX_ATTR_BITMAP_SUMMARIZED)
    }
}

/// `HEAP_XMAX_IS_LOCKED_ONLY` of an infomask.
pub fn xmax_locked_only(mask: u32) -> bool {
    mask & pg_sys::HEAP_XMAX_LOCK_ONLY != 0
        || mask & (pg_sys::HEAP_XMAX_IS_MULTI | pg_sys::HEAP_LOCK_MASK) == pg_sys::HEAP_XMAX_EXCL_LOCK
}

/// The words of a bitmapset (null: none), read in place: `bms_next_member`
/// per member would be a guarded call each.
fn words<'a>(set: *const pg_sys::Bitmapset) -> &'a [u64] {
    if set.is_null() {
        return &[];
    }
    // SAFETY: a valid bitmapset, not changed while the caller reads it:
    // `nwords` words follow its header.
    unsafe { (*set).words.as_slice((*set).nwords as usize) }
}

/// The members of bitmap words, ascending.
fn members_of(words: impl Iterator<Item = u64>) -> impl Iterator<Item = i32> {
    words.enumerate().flat_map(|(i, w)| {
        let mut rest = w;
        std::iter::from_fn(move || {
            (rest != 0).then(|| {
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                (i * 64) as i32 + bit as i32
            })
        })
    })
}

/// Whether a member of an index-attribute bitmap (offset by
/// `FirstLowInvalidHeapAttributeNumber`) differs between two formed tuples
/// of `desc` (`HeapDetermineColumnsInfo`: datums compared bit for bit;
/// whole-row and system column references count as changed, like heap's).
fn column_changed(
    desc: &pgrx::PgTupleDesc,
    member: i32,
    old: *mut pg_sys::HeapTupleData,
    new: *mut pg_sys::HeapTupleData,
) -> bool {
    let attnum = member + pg_sys::FirstLowInvalidHeapAttributeNumber;
    if attnum <= 0 {
        return attnum != pg_sys::TableOidAttributeNumber;
    }
    let n = std::num::NonZeroUsize::new(attnum as usize).expect("positive attnum");
    // SAFETY: both tuples are formed tuples of `desc`; attnum is a user
    // column of it.
    unsafe {
        match (
            pgrx::heap_getattr_raw(old, n, desc.as_ptr()),
            pgrx::heap_getattr_raw(new, n, desc.as_ptr()),
        ) {
            (None, None) => false,
            (Some(a), Some(b)) => {
                let att = desc.get(attnum as usize - 1).expect("attribute in descriptor");
                !datumIsEqual(a, b, att.attbyval, att.attlen as i32)
            }
            _ => true,
        }
    }
}

/// `rel`'s tuple descriptor, for [`column_changed`].
fn descriptor(rel: Rel) -> pgrx::PgTupleDesc<'static> {
    // SAFETY: an open relation, whose descriptor outlives the comparison.
    unsafe { pgrx::PgTupleDesc::from_pg_unchecked(rel.tupdesc()) }
}

/// Whether an update from `old` to `new` changes one of the `cols` columns
/// (an index-attribute bitmap such as `RelationGetIndexAttrBitmap` returns).
#[allow(clippy::not_unsafe_ptr_arg_deref)] // the module's contract: pointers to valid tuple headers (see the note above `h`)
pub fn columns_changed(
    rel: Rel,
    cols: *const pg_sys::Bitmapset,
    old: *mut pg_sys::HeapTupleData,
    new: *mut pg_sys::HeapTupleData,
) -> bool {
    let desc = descriptor(rel);
    members_of(words(cols).iter().copied()).any(|m| column_changed(&desc, m, old, new))
}

/// What an UPDATE changes among the columns its checks look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changed {
    /// A key column (`INDEX_ATTR_BITMAP_KEY`): the update takes the
    /// exclusive row lock (a non-key update does not conflict with
    /// `FOR KEY SHARE`).
    pub key: bool,
    /// A HOT-blocking column: the new version needs index entries.
    pub indexed: bool,
    /// A column only summarizing indexes use: their summaries must take
    /// the new values.
    pub summarized: bool,
}

impl Changed {
    /// Whether the update may leave the indexes alone: it changes no
    /// HOT-blocking column, and a change of summarized columns only when
    /// the chain's root is known (the summaries to widen are the root's).
    pub fn index_stable(&self, root_known: bool) -> bool {
        !self.indexed && (!self.summarized || root_known)
    }
}

/// The column sets one UPDATE checks ([`key_columns`],
/// [`hot_blocking_columns`], [`summarized_columns`]), fetched once before
/// any buffer lock, and the comparison of the old version with the new row
/// over them, done once per UPDATE however many times the lock and the
/// storage ask (each column of any set compared once, as heap's
/// `HeapDetermineColumnsInfo`).
pub struct UpdateColumns {
    /// key, HOT-blocking and summarized columns, in [`Changed`]'s order
    sets: [*mut pg_sys::Bitmapset; 3],
    known: std::cell::Cell<Option<Changed>>,
}

impl UpdateColumns {
    pub fn of(rel: Rel) -> Self {
        UpdateColumns {
            sets: [key_columns(rel), hot_blocking_columns(rel), summarized_columns(rel)],
            known: std::cell::Cell::new(None),
        }
    }

    /// What the update from `old` to `new` changes. The first call compares;
    /// later calls of the same UPDATE return its answer (the old version's
    /// data and the new row stay the same while the UPDATE retries).
    #[allow(clippy::not_unsafe_ptr_arg_deref)] // the module's contract: pointers to valid tuple headers (see the note above `h`)
    pub fn changed(
        &self,
        rel: Rel,
        old: *mut pg_sys::HeapTupleData,
        new: *mut pg_sys::HeapTupleData,
    ) -> Changed {
        if let Some(known) = self.known.get() {
            return known;
        }
        let sets = self.sets.map(|s| words(s));
        let at = |set: &[u64], m: i32| set.get(m as usize / 64).is_some_and(|w| w >> (m % 64) & 1 == 1);
        let width = sets.iter().map(|s| s.len()).max().unwrap_or(0);
        let union = (0..width).map(|i| sets.iter().fold(0, |w, s| w | s.get(i).copied().unwrap_or(0)));
        let desc = descriptor(rel);
        // key, indexed, summarized
        let mut found = [false; 3];
        // each column of any set compared once, in ascending order
        for m in members_of(union) {
            let member = sets.map(|s| at(s, m));
            let wanted = (0..3).any(|k| member[k] && !found[k]);
            if wanted && column_changed(&desc, m, old, new) {
                for k in 0..3 {
                    found[k] |= member[k];
                }
                if (0..3).all(|k| found[k] || sets[k].is_empty()) {
                    break;
                }
            }
        }
        let changed = Changed { key: found[0], indexed: found[1], summarized: found[2] };
        self.known.set(Some(changed));
        changed
    }

    /// Whether the table has summarized columns (none on PostgreSQL 15).
    pub fn has_summarized(&self) -> bool {
        !words(self.sets[2]).is_empty()
    }

    /// Whether the comparison done ([`changed`](Self::changed)) found a
    /// summarized column changed.
    pub fn summarized_changed(&self) -> bool {
        self.known.get().is_some_and(|c| c.summarized)
    }
}

impl Drop for UpdateColumns {
    fn drop(&mut self) {
        // SAFETY: the copies the column-set functions returned, palloc'd,
        // ours (bms_free takes NULL).
        unsafe {
            for set in self.sets {
                pg_sys::bms_free(set);
            }
        }
    }
}

/// A palloc'd heap tuple (one chunk, like `heap_copytuple`, so
/// `heap_freetuple` frees it) holding the concatenation of `parts`, in the
/// current memory context.
pub fn palloc_tuple(
    parts: &[&[u8]],
    tid: pg_sys::ItemPointerData,
    table: pg_sys::Oid,
) -> pg_sys::HeapTuple {
    let head = std::mem::size_of::<pg_sys::HeapTupleData>();
    let len: usize = parts.iter().map(|p| p.len()).sum();
    // SAFETY: a fresh chunk of head + len bytes; the header struct is
    // written first and t_data points right after it (HEAPTUPLESIZE is
    // MAXALIGN(sizeof(HeapTupleData)) = 24 = head); the parts fill exactly
    // len bytes after it.
    unsafe {
        let chunk = pg_sys::palloc(head + len) as *mut u8;
        let t = chunk as pg_sys::HeapTuple;
        let data = chunk.add(head);
        let mut at = 0;
        for part in parts {
            std::ptr::copy_nonoverlapping(part.as_ptr(), data.add(at), part.len());
            at += part.len();
        }
        (*t).t_len = len as u32;
        (*t).t_self = tid;
        (*t).t_tableOid = table;
        (*t).t_data = data as *mut Header;
        t
    }
}
