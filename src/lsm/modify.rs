//! Row-version changes: insert (single, multi, speculative), delete, update and
//! row locks, with heap's MVCC conventions (xmin/xmax, combo CIDs, infomask,
//! `t_ctid` update chains over logical TIDs).
//!
//! Each modification is a short list of passes: `acquire` (lock the page, run
//! `HeapTupleSatisfiesUpdate`, wait or fail per policy) → new version appended
//! to L0 → `stamp` the old version's xmax under GenericXLog. New versions are
//! appended before the old one is stamped, without holding the old page's lock,
//! and the old version is re-checked afterwards; a lost race invalidates the
//! unused new version and retries.

use super::storage::{self, Located};
use crate::pg::buffer::{self, PageWrite};
use crate::pg::htup::{self, Header};
use pgrx::pg_sys;
use pgrx::prelude::*;

const HEAP_MOVED: u32 = pg_sys::HEAP_MOVED_OFF | pg_sys::HEAP_MOVED_IN;
const MOVED_PARTITIONS_OFFSET: u16 = 0xfffd;

/// How to treat a row another transaction is modifying.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Block,
    ReturnBeingModified,
    Skip,
    Error,
}

enum Acquired {
    Ok(Located),
    Failed(pg_sys::TM_Result::Type),
}

fn current_xid() -> pg_sys::TransactionId {
    // SAFETY: assigns an xid if needed; raises on failure.
    unsafe { pg_sys::GetCurrentTransactionId() }
}

fn is_current_xact(xid: pg_sys::TransactionId) -> bool {
    // SAFETY: pure lookup in the backend's transaction state.
    unsafe { pg_sys::TransactionIdIsCurrentTransactionId(xid) }
}

fn fill_failure(
    tmfd: *mut pg_sys::TM_FailureData,
    t: *mut Header,
    result: pg_sys::TM_Result::Type,
) {
    if tmfd.is_null() {
        return;
    }
    // SAFETY: tmfd is caller-provided storage; `t` is a valid header.
    unsafe {
        (*tmfd).ctid = htup::ctid(t);
        (*tmfd).xmax = htup::update_xid(t);
        (*tmfd).cmax = if result == pg_sys::TM_Result::TM_SelfModified {
            pg_sys::HeapTupleHeaderGetCmax(t)
        } else {
            pg_sys::InvalidCommandId
        };
        (*tmfd).traversed = false;
    }
}

fn not_found(rel: pg_sys::Relation, what: &str) -> ! {
    crate::pg::error::error(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!(
            "attempted to {what} a row version that does not exist in \"{}\"",
            storage::relname(rel)
        ),
    )
}

/// Locks the page of `tid` exclusively and checks that this transaction may
/// modify the row version, waiting on other writers per `wait`.
fn acquire(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointerData,
    cid: pg_sys::CommandId,
    crosscheck: pg_sys::Snapshot,
    wait: Wait,
    tmfd: *mut pg_sys::TM_FailureData,
    what: &str,
) -> Acquired {
    loop {
        let buf = storage::pin_tid(rel, tid).unwrap_or_else(|| not_found(rel, what));
        buffer::lock_exclusive(buf);
        let Some(loc) = storage::find_on_page(rel, buf, tid) else {
            buffer::unlock_release(buf);
            not_found(rel, what)
        };
        let mut tuple = loc.heap_tuple(rel);
        // SAFETY: tuple points into the exclusively locked page.
        let mut result = unsafe { pg_sys::HeapTupleSatisfiesUpdate(&mut tuple, cid, buf) };
        if result == pg_sys::TM_Result::TM_BeingModified {
            let xwait = htup::raw_xmax(loc.header);
            let locked_only = htup::infomask(loc.header) & pg_sys::HEAP_XMAX_LOCK_ONLY != 0;
            if htup::xmax_is_multi(loc.header) {
                buffer::unlock_release(buf);
                ereport!(
                    ERROR,
                    PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                    "lsm tables do not support MultiXact row locks yet"
                );
            }
            if locked_only && is_current_xact(xwait) {
                result = pg_sys::TM_Result::TM_Ok; // our own row lock
            } else {
                match wait {
                    Wait::Block => {
                        buffer::unlock_release(buf);
                        let mut t = tid;
                        // SAFETY: waits on a heavyweight xact lock; raises on cancel/deadlock.
                        unsafe {
                            pg_sys::XactLockTableWait(
                                xwait,
                                rel,
                                &mut t,
                                pg_sys::XLTW_Oper::XLTW_Update,
                            )
                        };
                        continue;
                    }
                    Wait::ReturnBeingModified => {
                        fill_failure(tmfd, loc.header, result);
                        buffer::unlock_release(buf);
                        return Acquired::Failed(result);
                    }
                    Wait::Skip => {
                        buffer::unlock_release(buf);
                        return Acquired::Failed(pg_sys::TM_Result::TM_WouldBlock);
                    }
                    Wait::Error => {
                        buffer::unlock_release(buf);
                        ereport!(
                            ERROR,
                            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
                            format!(
                                "could not obtain lock on row in relation \"{}\"",
                                storage::relname(rel)
                            )
                        );
                    }
                }
            }
        }
        if result == pg_sys::TM_Result::TM_Ok && !crosscheck.is_null() {
            // SAFETY: valid tuple, snapshot and locked buffer.
            if !unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut tuple, crosscheck, buf) } {
                result = pg_sys::TM_Result::TM_Updated;
            }
        }
        if result == pg_sys::TM_Result::TM_Ok {
            return Acquired::Ok(loc);
        }
        fill_failure(tmfd, loc.header, result);
        buffer::unlock_release(buf);
        return Acquired::Failed(result);
    }
}

/// What to write into the old version's xmax.
enum Stamp {
    /// Deleted or updated; `ctid` = newer version (or self for delete).
    Modified {
        cid: pg_sys::CommandId,
        ctid: pg_sys::ItemPointerData,
        keys_updated: bool,
    },
    /// Row lock of the given mode.
    Lock(pg_sys::LockTupleMode::Type),
}

fn lock_bits(mode: pg_sys::LockTupleMode::Type) -> (u32, u32) {
    use pg_sys::LockTupleMode as M;
    match mode {
        M::LockTupleKeyShare => (pg_sys::HEAP_XMAX_KEYSHR_LOCK, 0),
        M::LockTupleShare => (pg_sys::HEAP_XMAX_SHR_LOCK, 0),
        M::LockTupleNoKeyExclusive => (pg_sys::HEAP_XMAX_EXCL_LOCK, 0),
        _ => (pg_sys::HEAP_XMAX_EXCL_LOCK, pg_sys::HEAP_KEYS_UPDATED),
    }
}

/// Registers the located version's page in `w` and returns the version's
/// header inside the working copy.
fn header_in_copy(w: &mut PageWrite, loc: &Located) -> *mut Header {
    let copy = w.register(loc.buf, false);
    let offset = loc.header as usize - buffer::page(loc.buf) as usize;
    // SAFETY: the working copy is a full image of the same page, so the
    // header sits at the same offset.
    unsafe { (copy as *mut u8).add(offset) as *mut Header }
}

/// Writes xmax (and cmax/ctid) into a located version; page stays locked.
fn stamp(rel: pg_sys::Relation, loc: &Located, xid: pg_sys::TransactionId, what: Stamp) {
    let mut w = PageWrite::start(rel);
    let t = header_in_copy(&mut w, loc);
    let mut mask = htup::infomask(t) & !(pg_sys::HEAP_XMAX_BITS | HEAP_MOVED);
    let mut mask2 = htup::infomask2(t) & !pg_sys::HEAP_KEYS_UPDATED;
    match what {
        Stamp::Modified {
            cid,
            ctid,
            keys_updated,
        } => {
            if keys_updated {
                mask2 |= pg_sys::HEAP_KEYS_UPDATED;
            }
            htup::set_infomask(t, mask);
            htup::set_infomask2(t, mask2);
            htup::set_xmax(t, xid);
            let (cmax, combo) = htup::adjust_cmax(t, cid);
            htup::set_cid(t, cmax, combo);
            htup::set_ctid(t, ctid);
        }
        Stamp::Lock(mode) => {
            let (bits, bits2) = lock_bits(mode);
            mask |= pg_sys::HEAP_XMAX_LOCK_ONLY | bits;
            mask2 |= bits2;
            htup::set_infomask(t, mask);
            htup::set_infomask2(t, mask2);
            htup::set_xmax(t, xid);
        }
    }
    w.commit();
}

/// Sets the header fields of a version about to be inserted, and TOASTs it if
/// needed. Returns the tuple to store (the input or a toasted copy).
fn prepare_insert(
    rel: pg_sys::Relation,
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
    // SAFETY: open relation and formed tuple.
    unsafe {
        (*tuple).t_tableOid = (*rel).rd_id;
        if htup::has_external(t) || (*tuple).t_len as usize > htup::TOAST_TUPLE_THRESHOLD {
            let oldp = old.map_or(std::ptr::null_mut(), |o| o as *mut _);
            return htup::heap_toast_insert_or_update(rel, tuple, oldp, options);
        }
    }
    tuple
}

/// Materialises the slot's heap tuple (owned by the slot).
fn slot_tuple(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
) -> (pg_sys::HeapTuple, bool) {
    let mut should_free = false;
    // SAFETY: a valid slot of this relation.
    let tuple = unsafe { pg_sys::ExecFetchSlotHeapTuple(slot, true, &mut should_free) };
    // SAFETY: as above.
    unsafe {
        (*slot).tts_tableOid = (*rel).rd_id;
        (*tuple).t_tableOid = (*rel).rd_id;
    }
    (tuple, should_free)
}

fn free_if(tuple: pg_sys::HeapTuple, cond: bool) {
    if cond {
        // SAFETY: palloc'd tuple we own.
        unsafe { pg_sys::heap_freetuple(tuple) }
    }
}

/// Inserts the slot's row; `spec_token` makes it a speculative insertion.
pub fn insert(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    options: i32,
    spec_token: Option<u32>,
) {
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
    let tid = storage::append(rel, stored, spec_token.is_none());
    // SAFETY: slot and tuple are valid.
    unsafe {
        (*slot).tts_tid = tid;
        (*tuple).t_self = tid;
    }
    free_if(stored, stored != tuple);
    free_if(tuple, should_free);
    // SAFETY: counts one insert for autovacuum/pg_stat.
    unsafe { pg_sys::pgstat_count_heap_insert(rel, 1) };
}

/// Confirms or kills a speculatively inserted version.
pub fn complete_speculative(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    succeeded: bool,
) {
    // SAFETY: the executor passes the slot it inserted from.
    let tid = unsafe { (*slot).tts_tid };
    let buf = storage::pin_tid(rel, tid).unwrap_or_else(|| not_found(rel, "complete"));
    buffer::lock_exclusive(buf);
    let Some(loc) = storage::find_on_page(rel, buf, tid) else {
        buffer::unlock_release(buf);
        not_found(rel, "complete")
    };
    if succeeded {
        let mut w = PageWrite::start(rel);
        htup::set_ctid(header_in_copy(&mut w, &loc), tid);
        w.commit();
        buffer::unlock_release(buf);
    } else {
        kill_version(rel, &loc);
        let external = htup::has_external(loc.header);
        let mut tuple = loc.heap_tuple(rel);
        buffer::unlock(buf);
        if external {
            // SAFETY: pinned page; TOAST pointers of the dead version.
            unsafe { htup::heap_toast_delete(rel, &mut tuple, true) };
        }
        buffer::release(buf);
    }
}

/// Makes a version invisible to everyone (aborted speculative insertion or a
/// new version whose update lost a race). Page must be exclusively locked.
fn kill_version(rel: pg_sys::Relation, loc: &Located) {
    let mut w = PageWrite::start(rel);
    let t = header_in_copy(&mut w, loc);
    htup::set_infomask(
        t,
        (htup::infomask(t) & !pg_sys::HEAP_XMAX_BITS) | pg_sys::HEAP_XMIN_INVALID,
    );
    htup::set_xmin(t, pg_sys::InvalidTransactionId);
    htup::set_ctid(t, loc.tid);
    w.commit();
}

fn kill_tid(rel: pg_sys::Relation, tid: pg_sys::ItemPointerData) {
    let buf = storage::pin_tid(rel, tid).unwrap_or_else(|| not_found(rel, "invalidate"));
    buffer::lock_exclusive(buf);
    if let Some(loc) = storage::find_on_page(rel, buf, tid) {
        kill_version(rel, &loc);
    }
    buffer::unlock_release(buf);
}

#[allow(clippy::too_many_arguments)]
pub fn delete(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointerData,
    cid: pg_sys::CommandId,
    crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    changing_part: bool,
) -> pg_sys::TM_Result::Type {
    let policy = if wait {
        Wait::Block
    } else {
        Wait::ReturnBeingModified
    };
    let loc = match acquire(rel, tid, cid, crosscheck, policy, tmfd, "delete") {
        Acquired::Ok(loc) => loc,
        Acquired::Failed(r) => return r,
    };
    let xid = current_xid();
    let ctid = if changing_part {
        htup::make_tid(pg_sys::InvalidBlockNumber, MOVED_PARTITIONS_OFFSET)
    } else {
        tid
    };
    stamp(
        rel,
        &loc,
        xid,
        Stamp::Modified {
            cid,
            ctid,
            keys_updated: true,
        },
    );
    let external = htup::has_external(loc.header);
    let mut tuple = loc.heap_tuple(rel);
    buffer::unlock(loc.buf);
    if external {
        // SAFETY: pinned page; the deleted version's TOAST values get our xmax.
        unsafe { htup::heap_toast_delete(rel, &mut tuple, false) };
    }
    buffer::release(loc.buf);
    // SAFETY: stats counter.
    unsafe { pg_sys::pgstat_count_heap_delete(rel) };
    pg_sys::TM_Result::TM_Ok
}

/// Updates `otid` to the slot's row; returns the result and the new TID.
#[allow(clippy::too_many_arguments)]
pub fn update(
    rel: pg_sys::Relation,
    otid: pg_sys::ItemPointerData,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
) -> pg_sys::TM_Result::Type {
    let policy = if wait {
        Wait::Block
    } else {
        Wait::ReturnBeingModified
    };
    let xid = current_xid();
    loop {
        let loc = match acquire(rel, otid, cid, crosscheck, policy, tmfd, "update") {
            Acquired::Ok(loc) => loc,
            Acquired::Failed(r) => return r,
        };
        let mut old = loc.heap_tuple(rel);
        buffer::unlock(loc.buf); // keep the pin: the old version's bytes stay put
        let (tuple, should_free) = slot_tuple(rel, slot);
        let stored = prepare_insert(rel, tuple, xid, cid, 0, Some(&mut old));
        let new_tid = storage::append(rel, stored, true);
        free_if(stored, stored != tuple);
        free_if(tuple, should_free);

        buffer::lock_exclusive(loc.buf);
        let mut recheck = loc.heap_tuple(rel);
        // SAFETY: re-checked under the exclusive lock.
        let still = unsafe { pg_sys::HeapTupleSatisfiesUpdate(&mut recheck, cid, loc.buf) };
        let ours = still == pg_sys::TM_Result::TM_BeingModified
            && htup::infomask(loc.header) & pg_sys::HEAP_XMAX_LOCK_ONLY != 0
            && is_current_xact(htup::raw_xmax(loc.header));
        if still == pg_sys::TM_Result::TM_Ok || ours {
            stamp(
                rel,
                &loc,
                xid,
                Stamp::Modified {
                    cid,
                    ctid: new_tid,
                    keys_updated: true,
                },
            );
            buffer::unlock_release(loc.buf);
            // SAFETY: valid slot.
            unsafe { (*slot).tts_tid = new_tid };
            #[cfg(feature = "pg15")]
            // SAFETY: stats counter.
            unsafe {
                pg_sys::pgstat_count_heap_update(rel, false)
            };
            #[cfg(not(feature = "pg15"))]
            // SAFETY: stats counter.
            unsafe {
                pg_sys::pgstat_count_heap_update(rel, false, true)
            };
            return pg_sys::TM_Result::TM_Ok;
        }
        buffer::unlock_release(loc.buf);
        kill_tid(rel, new_tid); // lost a race: retry from the top
    }
}

/// Locks a row version (following the update chain when asked).
#[allow(clippy::too_many_arguments)]
pub fn lock(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointerData,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    mode: pg_sys::LockTupleMode::Type,
    wait_policy: pg_sys::LockWaitPolicy::Type,
    follow_updates: bool,
    tmfd: *mut pg_sys::TM_FailureData,
) -> (pg_sys::TM_Result::Type, pg_sys::ItemPointerData) {
    let policy = match wait_policy {
        pg_sys::LockWaitPolicy::LockWaitSkip => Wait::Skip,
        pg_sys::LockWaitPolicy::LockWaitError => Wait::Error,
        _ => Wait::Block,
    };
    let mut tid = tid;
    let mut traversed = false;
    loop {
        match acquire(rel, tid, cid, std::ptr::null_mut(), policy, tmfd, "lock") {
            Acquired::Ok(loc) => {
                let own = htup::infomask(loc.header) & pg_sys::HEAP_XMAX_LOCK_ONLY != 0
                    && htup::infomask(loc.header) & pg_sys::HEAP_XMAX_INVALID == 0
                    && is_current_xact(htup::raw_xmax(loc.header));
                let held = lock_bits_held(loc.header);
                if !(own && held >= lock_strength(mode)) {
                    stamp(rel, &loc, current_xid(), Stamp::Lock(mode));
                }
                storage::store_in_slot(slot, loc.heap_tuple(rel), loc.buf);
                buffer::unlock_release(loc.buf);
                if traversed && !tmfd.is_null() {
                    // SAFETY: caller storage.
                    unsafe { (*tmfd).traversed = true };
                }
                return (pg_sys::TM_Result::TM_Ok, tid);
            }
            Acquired::Failed(pg_sys::TM_Result::TM_Updated)
                if follow_updates && !tmfd.is_null() =>
            {
                // SAFETY: filled by acquire.
                let next = unsafe { (*tmfd).ctid };
                if htup::tid_offset(&next) == MOVED_PARTITIONS_OFFSET {
                    ereport!(
                        ERROR,
                        PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                        "tuple to be locked was already moved to another partition due to concurrent update"
                    );
                }
                tid = next;
                traversed = true;
            }
            Acquired::Failed(r) => {
                if traversed && !tmfd.is_null() {
                    // SAFETY: caller storage.
                    unsafe { (*tmfd).traversed = true };
                }
                return (r, tid);
            }
        }
    }
}

fn lock_strength(mode: pg_sys::LockTupleMode::Type) -> u32 {
    mode + 1
}

/// Strength of the row lock already recorded in xmax (0 = none).
fn lock_bits_held(t: *mut Header) -> u32 {
    let m = htup::infomask(t);
    if m & pg_sys::HEAP_XMAX_LOCK_ONLY == 0 {
        return 0;
    }
    let keys = htup::infomask2(t) & pg_sys::HEAP_KEYS_UPDATED != 0;
    match m & (pg_sys::HEAP_XMAX_SHR_LOCK) {
        x if x == pg_sys::HEAP_XMAX_SHR_LOCK => {
            lock_strength(pg_sys::LockTupleMode::LockTupleShare)
        }
        x if x == pg_sys::HEAP_XMAX_EXCL_LOCK && keys => {
            lock_strength(pg_sys::LockTupleMode::LockTupleExclusive)
        }
        x if x == pg_sys::HEAP_XMAX_EXCL_LOCK => {
            lock_strength(pg_sys::LockTupleMode::LockTupleNoKeyExclusive)
        }
        x if x == pg_sys::HEAP_XMAX_KEYSHR_LOCK => {
            lock_strength(pg_sys::LockTupleMode::LockTupleKeyShare)
        }
        _ => 0,
    }
}
