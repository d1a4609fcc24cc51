//! Serializable snapshot isolation hooks (`storage/predicate.h`, not bound by
//! pgrx): SIREAD locks taken by readers and rw-conflict checks by readers
//! (conflict out) and writers (conflict in), called where heap calls them.
//! Each function returns at once unless the transaction is SERIALIZABLE —
//! checked here first, as heap's inline `SerializationNeededForRead` does,
//! so other isolation levels pay no call into predicate.c.

// #[pg_guard] extern blocks: the guarded wrappers keep PostgreSQL's C names
#![allow(non_snake_case)]

use crate::pg::relation::Rel;
use crate::pg::snapshot::Snap;
use pgrx::pg_sys;

#[pgrx::pg_guard]
unsafe extern "C-unwind" {
    fn PredicateLockRelation(relation: pg_sys::Relation, snapshot: pg_sys::Snapshot);
    fn PredicateLockTID(
        relation: pg_sys::Relation,
        tid: pg_sys::ItemPointer,
        snapshot: pg_sys::Snapshot,
        tuple_xid: pg_sys::TransactionId,
    );
    fn CheckForSerializableConflictOutNeeded(
        relation: pg_sys::Relation,
        snapshot: pg_sys::Snapshot,
    ) -> bool;
    fn CheckForSerializableConflictIn(
        relation: pg_sys::Relation,
        tid: pg_sys::ItemPointer,
        blkno: pg_sys::BlockNumber,
    );
}

/// Whether this transaction is SERIALIZABLE (`IsolationIsSerializable`):
/// otherwise it has no SERIALIZABLEXACT and predicate.c does nothing.
fn serializable() -> bool {
    // SAFETY: a backend-local global set at transaction start.
    unsafe { pg_sys::XactIsoLevel == pg_sys::XACT_SERIALIZABLE as i32 }
}

/// A relation-level SIREAD lock: sequential and sample scans read everything.
pub fn lock_relation(rel: Rel, snapshot: Snap) {
    if !serializable() {
        return;
    }
    // SAFETY: open relation and the scan's snapshot.
    unsafe { PredicateLockRelation(rel.raw(), snapshot.raw()) }
}

/// A tuple-level SIREAD lock on a version the snapshot sees.
pub fn lock_tid(rel: Rel, tuple: &pg_sys::HeapTupleData, snapshot: Snap) {
    if !serializable() {
        return;
    }
    let mut tid = tuple.t_self;
    // SAFETY: valid tuple header on a locked page; open relation.
    unsafe {
        let xmin = (*tuple.t_data).t_choice.t_heap.t_xmin;
        PredicateLockTID(rel.raw(), &mut tid, snapshot.raw(), xmin)
    }
}

/// Whether reads under `snapshot` need [`check_conflict_out`] at all: asked
/// once per page, like heap's page-at-a-time scans (false unless the
/// transaction is SERIALIZABLE; raises 40001 if it is already doomed).
pub fn conflict_out_needed(rel: Rel, snapshot: Snap) -> bool {
    if !serializable() {
        return false;
    }
    // SAFETY: open relation and a valid snapshot.
    unsafe { CheckForSerializableConflictOutNeeded(rel.raw(), snapshot.raw()) }
}

/// Reader side: records an rw-conflict when `tuple`'s visibility (`visible`)
/// depends on a concurrent serializable transaction's write.
pub fn check_conflict_out(
    visible: bool,
    rel: Rel,
    tuple: &mut pg_sys::HeapTupleData,
    buf: pg_sys::Buffer,
    snapshot: Snap,
) {
    if !serializable() {
        return;
    }
    // SAFETY: tuple on the (at least share-) locked buffer `buf`.
    unsafe { pg_sys::HeapCheckForSerializableConflictOut(visible, rel.raw(), tuple, buf, snapshot.raw()) }
}

/// Writer side: checks the SIREAD locks a write to `tid` (or, with None, an
/// insert: relation-level locks only) conflicts with; raises 40001 when the
/// transaction must be rolled back.
pub fn check_conflict_in(rel: Rel, tid: Option<pg_sys::ItemPointerData>) {
    if !serializable() {
        return;
    }
    match tid {
        Some(mut t) => {
            let block = super::htup::tid_block(&t);
            // SAFETY: open relation, valid logical TID.
            unsafe { CheckForSerializableConflictIn(rel.raw(), &mut t, block) }
        }
        // SAFETY: as above; no tuple or page target.
        None => unsafe {
            CheckForSerializableConflictIn(rel.raw(), std::ptr::null_mut(), pg_sys::InvalidBlockNumber)
        },
    }
}
