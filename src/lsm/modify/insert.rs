//! Inserts: single rows, COPY's batches (`multi_insert`), speculative
//! insertion for `ON CONFLICT`, and taking back a version nobody may see.

use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use super::*;
use crate::pg::buffer::Locked;

/// Whether storing `tuple` (replacing `old`) goes through the toaster:
/// heap_update's test.
pub(super) fn needs_toaster(old: Option<&pg_sys::HeapTupleData>, tuple: pg_sys::HeapTuple) -> bool {
    let old_external = old.is_some_and(|o| htup::has_external(o.t_data));
    // SAFETY: formed heap tuple.
    old_external
        || unsafe { htup::has_external((*tuple).t_data) || (*tuple).t_len as usize > htup::TOAST_TUPLE_THRESHOLD }
}

/// Sets the header fields of a version about to be inserted, and TOASTs it if
/// needed. Returns the tuple to store (the input or a toasted copy).
pub(super) fn prepare_insert(
    rel: Rel,
    tuple: pg_sys::HeapTuple,
    xid: pg_sys::TransactionId,
    cid: pg_sys::CommandId,
    options: i32,
    old: Option<&mut pg_sys::HeapTupleData>,
) -> pg_sys::HeapTuple {
    // SAFETY: `tuple` is a formed, writable heap tuple owned by the slot.
    let t = unsafe { (*tuple).t_data };
    htup::set_infomask(
        t,
        (htup::infomask(t) & !pg_sys::HEAP_XACT_MASK) | pg_sys::HEAP_XMAX_INVALID,
    );
    htup::set_infomask2(t, htup::infomask2(t) & !pg_sys::HEAP2_XACT_MASK);
    if old.is_some() {
        htup::set_infomask(t, htup::infomask(t) | pg_sys::HEAP_UPDATED);
    }
    htup::set_xmin(t, xid);
    if options & pg_sys::HEAP_INSERT_FROZEN as i32 != 0 {
        htup::set_infomask(t, htup::infomask(t) | pg_sys::HEAP_XMIN_FROZEN);
    }
    htup::set_cid(t, cid, false);
    htup::set_xmax(t, pg_sys::InvalidTransactionId);
    // like heap_update: an old version with TOASTed values goes through the
    // toaster too, which deletes the values the new version no longer uses
    // SAFETY: open relation and formed tuple.
    unsafe {
        (*tuple).t_tableOid = rel.data().rd_id;
        if needs_toaster(old.as_deref(), tuple) {
            let oldp = old.map_or(std::ptr::null_mut(), |o| o as *mut _);
            return htup::heap_toast_insert_or_update(rel.raw(), tuple, oldp, options);
        }
    }
    tuple
}

/// Materialises the slot's heap tuple (owned by the slot).
pub(super) fn slot_tuple(
    rel: Rel,
    slot: Slot,
) -> (pg_sys::HeapTuple, bool) {
    let mut should_free = false;
    // SAFETY: a valid slot of this relation.
    let tuple = unsafe { pg_sys::ExecFetchSlotHeapTuple(slot.raw(), true, &mut should_free) };
    // SAFETY: as above.
    unsafe {
        (*slot.raw()).tts_tableOid = rel.data().rd_id;
        (*tuple).t_tableOid = rel.data().rd_id;
    }
    (tuple, should_free)
}

pub(super) fn free_if(tuple: pg_sys::HeapTuple, cond: bool) {
    if cond {
        // SAFETY: palloc'd tuple we own.
        unsafe { pg_sys::heap_freetuple(tuple) }
    }
}

/// Inserts the slot's row; `spec_token` makes it a speculative insertion.
pub fn insert(
    rel: Rel,
    slot: Slot,
    cid: pg_sys::CommandId,
    options: i32,
    spec_token: Option<u32>,
    bulk_state: bool,
) {
    // like heap: an insert only meets relation-level SIREAD locks
    predicate::check_conflict_in(rel, None);
    let xid = current_xid();
    let (tuple, should_free) = slot_tuple(rel, slot);
    let stored = prepare_insert(rel, tuple, xid, cid, options, None);
    if let Some(token) = spec_token {
        // SAFETY: writable header of the tuple to store.
        unsafe {
            htup::set_ctid(
                (*stored).t_data,
                htup::make_tid(token, pg_sys::SpecTokenOffsetNumber as u16),
            )
        };
    }
    let entry = if bulk_state {
        bulk::Entry::BulkState
    } else {
        bulk::Entry::Single { cid }
    };
    let in_bulk = spec_token.is_none() && bulk::take(rel, &[stored], entry) == 1;
    let tid = if in_bulk {
        logical::inserted_into_runs(rel, &[stored], options, false);
        // SAFETY: the bulk load set the stored tuple's TID.
        unsafe { (*stored).t_self }
    } else {
        let rows = logical::row_insert(rel, options, spec_token.is_some());
        // SAFETY: the formed tuple prepared above, ours to write.
        storage::append(rel, unsafe { &mut *stored }, spec_token.is_none(), rows)
    };
    // SAFETY: slot and tuple are valid.
    unsafe {
        (*slot.raw()).tts_tid = tid;
        (*tuple).t_self = tid;
    }
    free_if(stored, stored != tuple);
    free_if(tuple, should_free);
    crate::pg::stats::count_insert(rel, 1);
}

/// COPY's `multi_insert`: the rows of `slots` are prepared like single
/// inserts (TOAST, xmin, cid) and stored a page at a time — in L0, or in
/// the runs of a bulk load ([`bulk`]).
pub fn multi_insert(
    rel: Rel,
    slots: &[Slot],
    cid: pg_sys::CommandId,
    options: i32,
) {
    if slots.is_empty() {
        return;
    }
    predicate::check_conflict_in(rel, None);
    let xid = current_xid();
    let mut fetched = Vec::with_capacity(slots.len());
    let mut stored = Vec::with_capacity(slots.len());
    for &slot in slots {
        let (tuple, should_free) = slot_tuple(rel, slot);
        stored.push(prepare_insert(rel, tuple, xid, cid, options, None));
        fetched.push((tuple, should_free));
    }
    // SAFETY: formed tuples.
    let bytes: usize = stored.iter().map(|t| unsafe { (**t).t_len as usize }).sum();
    let taken = bulk::take(rel, &stored, bulk::Entry::Batch { bytes });
    logical::inserted_into_runs(rel, &stored[..taken], options, taken < stored.len());
    storage::append_batch(rel, &stored[taken..], logical::row_insert(rel, options, false));
    for ((&slot, (tuple, should_free)), s) in slots.iter().zip(fetched).zip(stored) {
        // SAFETY: slot and tuples are valid; `s` carries the TID.
        unsafe {
            (*slot.raw()).tts_tid = (*s).t_self;
            (*tuple).t_self = (*s).t_self;
        }
        free_if(s, s != tuple);
        free_if(tuple, should_free);
    }
    crate::pg::stats::count_insert(rel, slots.len() as i64);
}

/// Confirms or kills a speculatively inserted version.
pub fn complete_speculative(
    rel: Rel,
    slot: Slot,
    succeeded: bool,
) {
    // SAFETY: the executor passes the slot it inserted from.
    let tid = unsafe { (*slot.raw()).tts_tid };
    let locked = Locked::exclusive_pinned(
        storage::pin_tid(rel, tid).unwrap_or_else(|| not_found(rel, "complete")),
    );
    let buf = locked.buffer();
    let Some(mut loc) = storage::find_on_page(rel, buf, tid) else {
        not_found(rel, "complete")
    };
    storage::make_stampable(rel, &mut loc);
    if succeeded {
        storage::change_header(rel, &loc, |t| htup::set_ctid(t, tid));
        drop(locked);
        logical::speculation_ended(rel, true);
    } else {
        logical::speculation_ended(rel, false);
        kill_version(rel, &loc);
        let external = htup::has_external(loc.header);
        let mut tuple = version_data::full_tuple(rel, buf, &loc.heap_tuple(rel));
        // the dead version's TOAST values go with the page unlocked, pinned
        let mut locked = locked;
        locked.unlock();
        if external {
            // SAFETY: pinned page; TOAST pointers of the dead version.
            unsafe { htup::heap_toast_delete(rel.raw(), &mut tuple, true) };
        }
        drop(locked);
    }
}

/// Makes a version invisible to everyone (aborted speculative insertion or a
/// new version whose update lost a race). Page must be exclusively locked.
pub(super) fn kill_version(rel: Rel, loc: &Located) {
    storage::change_header(rel, loc, |t| {
        htup::set_infomask(
            t,
            (htup::infomask(t) & !pg_sys::HEAP_XMAX_BITS) | pg_sys::HEAP_XMIN_INVALID,
        );
        htup::set_xmin(t, pg_sys::InvalidTransactionId);
        htup::set_ctid(t, loc.tid);
    });
}

pub(super) fn kill_tid(rel: Rel, tid: pg_sys::ItemPointerData) {
    let buf = Locked::exclusive_pinned(
        storage::pin_tid(rel, tid).unwrap_or_else(|| not_found(rel, "invalidate")),
    );
    if let Some(mut loc) = storage::find_on_page(rel, buf.buffer(), tid) {
        storage::make_stampable(rel, &mut loc);
        kill_version(rel, &loc);
    }
}
