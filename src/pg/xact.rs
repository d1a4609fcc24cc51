//! Transaction-end hooks: one backend-wide callback told when the top
//! transaction is about to commit (or prepare), when it aborts, and when a
//! subtransaction aborts — for backend-local state that must not outlive
//! the (sub)transaction that made it.

use pgrx::pg_sys;
use std::cell::Cell;
use super::relation::Rel;
use super::snapshot::Snap;

/// What is ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XactEnd {
    /// Before the commit (or PREPARE) record: work may still be done, and
    /// an error aborts the transaction.
    PreCommit,
    /// The transaction aborted: drop state, touch no shared resources.
    Abort,
    /// The subtransaction with this id aborted.
    SubAbort(pg_sys::SubTransactionId),
}

thread_local! {
    static HOOK: Cell<Option<fn(XactEnd)>> = const { Cell::new(None) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn xact_callback(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    let end = match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PARALLEL_PRE_COMMIT
        | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => XactEnd::PreCommit,
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => {
            XactEnd::Abort
        }
        _ => return,
    };
    if let Some(f) = HOOK.with(|h| h.get()) {
        f(end);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        if let Some(f) = HOOK.with(|h| h.get()) {
            f(XactEnd::SubAbort(my_subid));
        }
    }
}

/// Calls `f` at every transaction end from now on (once per backend; a
/// second call replaces the function).
pub fn on_xact_end(f: fn(XactEnd)) {
    let first = HOOK.with(|h| h.replace(Some(f))).is_none();
    if first {
        // SAFETY: registers backend-lifetime callbacks with no argument.
        unsafe {
            pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
        }
    }
}

/// The current subtransaction's id.
pub fn current_subxact() -> pg_sys::SubTransactionId {
    // SAFETY: plain read of transaction state.
    unsafe { pg_sys::GetCurrentSubTransactionId() }
}

/// What makes two MVCC snapshots see the same data: equal tokens mean no
/// transaction with an xid finished between them and the same command of
/// this transaction. A snapshot's `xip` holds the running xids below its
/// `xmax` (one past the latest finished xid), so while `xmax` stays, the set
/// can only shrink, as its members finish: the same `xmin`, `xmax` and
/// counts mean the same sets (`snapXactCompletionCount` would say it more
/// directly, but copies of snapshots — the executor's, the active one —
/// have it zeroed). None for any other kind of snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotToken {
    xmin: u32,
    xmax: u32,
    xcnt: u32,
    subxcnt: i32,
    flags: u8,
    curcid: u32,
}

pub fn snapshot_token(snapshot: Snap) -> Option<SnapshotToken> {
    let s = snapshot.data().filter(|_| snapshot.is_mvcc())?;
    Some(SnapshotToken {
        xmin: s.xmin.into_inner(),
        xmax: s.xmax.into_inner(),
        xcnt: s.xcnt,
        subxcnt: s.subxcnt,
        flags: u8::from(s.suboverflowed) | (u8::from(s.takenDuringRecovery) << 1),
        curcid: s.curcid,
    })
}

/// A new relation file's (relfrozenxid, relminmxid): no xid or multixact
/// older than these can be in it (heap's `relation_set_new_filelocator`).
pub fn new_relation_horizons() -> (pg_sys::TransactionId, pg_sys::MultiXactId) {
    // SAFETY: reads this backend's RecentXmin and the multixact horizon.
    unsafe { (pg_sys::RecentXmin, pg_sys::GetOldestMultiXactId()) }
}

/// The active snapshot, or none when none is set.
pub fn active_snapshot() -> Snap {
    // SAFETY: reads the snapshot manager's stack; the active snapshot stays
    // valid while it is pushed, for the statement the caller runs in.
    unsafe {
        if ActiveSnapshotSet() {
            Snap::from_raw(GetActiveSnapshot())
        } else {
            Snap::none()
        }
    }
}

/// The backend's local transaction id (`MyProc`'s virtual xid counter):
/// different in every top-level transaction of the backend.
pub fn local_xact_id() -> pg_sys::LocalTransactionId {
    // SAFETY: MyProc is the backend's own PGPROC, set before any query runs;
    // only this backend writes its lxid.
    unsafe {
        #[cfg(feature = "pg15")]
        {
            (*pg_sys::MyProc).lxid
        }
        #[cfg(not(feature = "pg15"))]
        {
            (*pg_sys::MyProc).vxid.lxid
        }
    }
}

/// The current (sub)transaction's xid, or InvalidTransactionId when it
/// has none yet (`GetCurrentTransactionIdIfAny`).
pub fn current_xid_if_any() -> pg_sys::TransactionId {
    // SAFETY: reads the backend's transaction state.
    unsafe { GetCurrentTransactionIdIfAny() }
}

// Not guarded: each only reads backend-local state (snapmgr.c's active
// snapshot stack, xact.c's transaction state stack and parallel xids; their
// bodies hold Asserts and no ereport in PG15 and PG18), so no ERROR can jump
// over Rust frames; the planner's size estimate, every row change and every
// visibility decision of a chain walk call them (pgrx's guard costs a
// sigsetjmp per call).
unsafe extern "C-unwind" {
    /// utils/snapmgr.h
    fn ActiveSnapshotSet() -> bool;
    /// utils/snapmgr.h
    fn GetActiveSnapshot() -> pg_sys::Snapshot;
    /// access/xact.h
    fn GetCurrentTransactionIdIfAny() -> pg_sys::TransactionId;
    /// access/xact.h (also reads the parallel-worker xid array)
    fn TransactionIdIsCurrentTransactionId(xid: pg_sys::TransactionId) -> bool;
}

/// Whether `xid` is this backend's (sub)transaction's, or a parent's
/// (`TransactionIdIsCurrentTransactionId`).
pub fn is_current_xid(xid: pg_sys::TransactionId) -> bool {
    // SAFETY: reads the backend's transaction state.
    unsafe { TransactionIdIsCurrentTransactionId(xid) }
}

/// Whether MVCC snapshot `snapshot` counts `xid` as running when it was
/// taken (so it does not see its effects). Reads no commit log: safe for
/// any xid, however old.
pub fn in_snapshot(xid: pg_sys::TransactionId, snapshot: Snap) -> bool {
    debug_assert!(snapshot.is_mvcc(), "in_snapshot needs an MVCC snapshot");
    // SAFETY: a valid MVCC snapshot (callers test is_mvcc first); subtransaction lookups only
    // for xids at or above its xmin.
    unsafe { pg_sys::XidInMVCCSnapshot(xid, snapshot.raw()) }
}

/// The oldest xid whose effects may still be seen by someone, for
/// removing versions of `rel` (`GetOldestNonRemovableTransactionId`).
pub fn oldest_nonremovable_xid(rel: Rel) -> pg_sys::TransactionId {
    // SAFETY: an open relation; reads the shared horizons.
    unsafe { pg_sys::GetOldestNonRemovableTransactionId(rel.raw()) }
}

/// Whether this server is replaying WAL (a standby, or crash recovery).
pub fn in_recovery() -> bool {
    // once over, recovery does not start again in this process: no call
    // (guarded, and PostgreSQL's own check is a shared read) from then on
    if RECOVERY_OVER.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    // SAFETY: reads shared recovery state.
    let during = unsafe { pg_sys::RecoveryInProgress() };
    if !during {
        RECOVERY_OVER.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    during
}

/// Recovery was seen over by this process. Process-wide, not a
/// thread-local: a shared library's thread-locals cost a `__tls_get_addr`
/// call per access.
static RECOVERY_OVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
