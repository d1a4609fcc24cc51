//! MultiXacts, transaction liveness and heavyweight tuple locks: what row
//! locking needs from `multixact.c`, `procarray.c` and `lmgr.c`.

use crate::pg::relation::Rel;
use pgrx::pg_sys;

/// (xid, `MultiXactStatus`) pairs of a MultiXact; empty when none is running
/// or it is too old to matter (`GetMultiXactIdMembers`).
pub fn members(multi: pg_sys::TransactionId, lock_only: bool) -> Vec<(u32, u32)> {
    let mut arr: *mut pg_sys::MultiXactMember = std::ptr::null_mut();
    // SAFETY: valid multixact id from a tuple header; the array is palloc'd
    // by the callee (or left null when there are no members).
    let n = unsafe {
        pg_sys::GetMultiXactIdMembers(
            pg_sys::MultiXactId::from(multi.into_inner()),
            &mut arr,
            false,
            lock_only,
        )
    };
    if n <= 0 || arr.is_null() {
        return Vec::new();
    }
    // SAFETY: the callee returned `n` members at `arr`.
    let out = unsafe { std::slice::from_raw_parts(arr, n as usize) }
        .iter()
        .map(|m| (m.xid.into_inner(), m.status))
        .collect();
    // SAFETY: palloc'd by GetMultiXactIdMembers, not used afterwards.
    unsafe { pg_sys::pfree(arr as *mut std::ffi::c_void) };
    out
}

/// A new MultiXact of (xid, status) members (`MultiXactIdCreateFromMembers`).
pub fn create(members: &[(u32, u32)]) -> pg_sys::TransactionId {
    let mut arr: Vec<pg_sys::MultiXactMember> = members
        .iter()
        .map(|&(xid, status)| pg_sys::MultiXactMember {
            xid: pg_sys::TransactionId::from(xid),
            status,
        })
        .collect();
    // SAFETY: announce our oldest visible multi first (multixact.c requires
    // it of every backend creating or joining one); then create it from a
    // valid member array.
    let multi = unsafe {
        pg_sys::MultiXactIdSetOldestMember();
        pg_sys::MultiXactIdCreateFromMembers(arr.len() as i32, arr.as_mut_ptr())
    };
    pg_sys::TransactionId::from(multi.into_inner())
}

/// Must precede any row lock or update that may later become a MultiXact
/// member (`MultiXactIdSetOldestMember`).
pub fn set_oldest_member() {
    // SAFETY: sets this backend's slot once per transaction.
    unsafe { pg_sys::MultiXactIdSetOldestMember() }
}

/// `TransactionIdIsInProgress`.
pub fn in_progress(xid: u32) -> bool {
    // SAFETY: procarray lookup.
    unsafe { pg_sys::TransactionIdIsInProgress(pg_sys::TransactionId::from(xid)) }
}

/// `TransactionIdDidCommit` (for a transaction known not to be running).
pub fn did_commit(xid: u32) -> bool {
    // SAFETY: clog lookup.
    unsafe { pg_sys::TransactionIdDidCommit(pg_sys::TransactionId::from(xid)) }
}

/// `TransactionIdIsCurrentTransactionId`.
pub fn is_current(xid: u32) -> bool {
    super::xact::is_current_xid(pg_sys::TransactionId::from(xid))
}

/// Waits for `xid` to end (`XactLockTableWait`); raises on cancel or
/// deadlock, with heap's "while updating tuple ..." context (the callback
/// raises it whole: see `error_catch`).
pub fn wait_for(
    xid: u32,
    rel: Rel,
    tid: pg_sys::ItemPointerData,
    oper: pg_sys::XLTW_Oper::Type,
) {
    super::error_catch::xact_lock_table_wait(pg_sys::TransactionId::from(xid), rel, tid, oper)
}

/// The heavyweight lock heap takes on a tuple to queue lockers of `mode`
/// (`LockTupleMode`) fairly.
fn hwlock(mode: u32) -> pg_sys::LOCKMODE {
    match mode {
        0 => pg_sys::AccessShareLock as _,
        1 => pg_sys::RowShareLock as _,
        2 => pg_sys::ExclusiveLock as _,
        _ => pg_sys::AccessExclusiveLock as _,
    }
}

/// Takes the tuple's heavyweight lock (`heap_acquire_tuplock`): waits, or
/// with `conditional` returns false when it is taken.
pub fn lock_tuple(
    rel: Rel,
    tid: pg_sys::ItemPointerData,
    mode: u32,
    conditional: bool,
) -> bool {
    let mut t = tid;
    if !conditional {
        // SAFETY: open relation; waits in the lock manager.
        unsafe { pg_sys::LockTuple(rel.raw(), &mut t, hwlock(mode)) };
        return true;
    }
    #[cfg(feature = "pg15")]
    // SAFETY: as above, without waiting.
    let ok = unsafe { pg_sys::ConditionalLockTuple(rel.raw(), &mut t, hwlock(mode)) };
    #[cfg(not(feature = "pg15"))]
    // SAFETY: as above, without waiting.
    let ok = unsafe {
        pg_sys::ConditionalLockTuple(rel.raw(), &mut t, hwlock(mode), pg_sys::log_lock_failures)
    };
    ok
}

pub fn unlock_tuple(rel: Rel, tid: pg_sys::ItemPointerData, mode: u32) {
    let mut t = tid;
    // SAFETY: releases a lock taken by `lock_tuple`.
    unsafe { pg_sys::UnlockTuple(rel.raw(), &mut t, hwlock(mode)) }
}
