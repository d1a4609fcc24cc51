//! Where a chain walk may start: a shared table of *chain hints*, root TID
//! → a later member of its chain, so that an index fetch reaches the
//! version its snapshot sees without walking every member from the root.
//!
//! ```text
//!  index entry ──> root ──> v2 ──> v3 ──> v4        (walk: 4 pages)
//!                  hint[root] ─────────────^         (walk: 1 page)
//! ```
//!
//! A hint is only a place to start, checked before use: the member must
//! still be found at its TID (TIDs are never reused within a relation
//! file), be a heap-only version with the xmin the hint recorded, and that
//! xmin must be committed and visible to the walker's MVCC snapshot. Then
//! every earlier member is invisible to the snapshot: an update of a member
//! waits for the member's inserter to commit, so the chain's updaters
//! commit in chain order and a snapshot that sees one sees all before it.
//! A walk from a checked hint therefore finds what a walk from the root
//! finds; one that finds nothing starts again from the root (deleted rows,
//! `all_dead`, pruning). Other snapshot kinds always walk from the root.
//!
//! A hint set by an UPDATE also names the member it replaced (`pred`, with
//! its inserter, which had committed). Two more starts follow from it:
//! * the newest member's updater has not committed (or the snapshot does
//!   not see it yet) — a hot row while its updater runs: the walk starts at
//!   `pred`, checked like any hinted member;
//! * the newest member is the walker's own transaction's (a row read back
//!   after its UPDATE): it is trusted when the snapshot sees it (its
//!   command came before the snapshot's) and everything before `pred` is
//!   invisible (`pred` is the root, or its committed inserter is visible) —
//!   `pred` itself was deleted by that same earlier command, so the snapshot
//!   sees neither it nor anything before it.
//!
//! Hints are set by walks that passed members to reach a visible one
//! (`note_found`) and by an index-stable UPDATE of the version the
//! backend's last walk returned (`note_updated`: the new version and the
//! replaced one). A relation file's new storage clears its hints
//! ([`forget_relation`]).
//!
//! The table: `SLOTS` slots of [`hint_table`]'s layout (a sequence lock
//! per slot; a colliding key overwrites) in shared memory, 3 MiB, only when
//! Strata is preloaded — otherwise every walk starts at the root.

use crate::pg::snapshot::Snap;
use crate::pg::relation::Rel;
use super::hint_table::{self, Hint, Member, Root, WORDS};
use crate::pg::htup;
use crate::pg::xact;
use crate::pg::shmem;
use pgrx::pg_sys;
use std::cell::Cell;
use std::sync::atomic::AtomicU32;

const SLOTS: usize = 1 << 16;
const NAME: &std::ffi::CStr = c"strata chain hints";

static mut TABLE: *const AtomicU32 = std::ptr::null();

/// Sets the table up when preloading (`_PG_init`).
pub fn register() {
    if shmem::preloading() {
        shmem::install(request, startup);
    }
}

fn request() {
    shmem::request_space(SLOTS * WORDS * 4);
}

fn startup() {
    // zeroed slots are empty
    let base = shmem::init_zeroed(NAME, SLOTS * WORDS * 4);
    // SAFETY: the postmaster's single thread, before backends fork.
    unsafe { TABLE = base as *const AtomicU32 };
}

fn table() -> Option<&'static [AtomicU32]> {
    // SAFETY: written once by the startup hook before any backend exists;
    // SLOTS * WORDS words of shared memory that live as long as the server.
    unsafe {
        let t = TABLE;
        (!t.is_null()).then(|| std::slice::from_raw_parts(t, SLOTS * WORDS))
    }
}

/// The table, when hints are on (`strata.lsm_chain_hints`).
fn in_use() -> Option<&'static [AtomicU32]> {
    table().filter(|_| super::gucs::chain_hints())
}

/// The key of a relation's file: (database, relfilenumber).
fn file_key(rel: Rel) -> (u32, u32) {
    let (_, db, num) = crate::pg::rel::file_locator(rel);
    (db, num)
}

fn root_of(key: (u32, u32), root: &pg_sys::ItemPointerData) -> Root {
    Root {
        db: key.0,
        rel: key.1,
        block: htup::tid_block(root),
        offset: htup::tid_offset(root),
    }
}

/// Where a walk of the chain rooted at `root` may start: a member, the
/// xmin the hint recorded for it, and whether it may be trusted as the
/// walker's own transaction's version (see the module comment).
#[derive(Clone, Copy)]
pub struct Start {
    pub member: pg_sys::ItemPointerData,
    pub xmin: pg_sys::TransactionId,
    pub own: bool,
}

/// The starts the hint for `root` offers a walk with MVCC snapshot
/// `snapshot`, best first (each still checked by the walk).
pub fn starts(rel: Rel, root: &pg_sys::ItemPointerData, snapshot: Snap) -> [Option<Start>; 2] {
    let Some(Hint { member, pred }) = in_use().and_then(|t| hint_table::get(t, &root_of(file_key(rel), root))) else {
        return [None, None];
    };
    let tid = |m: &Member| htup::make_tid(m.block, m.offset);
    let xmin: pg_sys::TransactionId = member.xmin.into();
    // the predecessor, whether it is the root, whether the snapshot sees its
    // committed inserter
    let pred = pred.map(|p| {
        let x = pg_sys::TransactionId::from(p.xmin);
        (tid(&p), x, htup::tid_eq(&tid(&p), root), committed_xid_visible(x, snapshot))
    });
    // the predecessor as a start of its own: not the root (a walk from the
    // root does that), its committed inserter seen by the snapshot
    let pred_start = pred
        .filter(|&(_, _, is_root, seen)| !is_root && seen)
        .map(|(member, xmin, _, _)| Start { member, xmin, own: false });
    let own = is_own(xmin);
    let unseen = !own && xact::in_snapshot(xmin, snapshot);
    if unseen {
        return [pred_start, None];
    }
    let own = own && pred.is_some_and(|(_, _, is_root, seen)| is_root || seen);
    [Some(Start { member: tid(&member), xmin, own }), pred_start]
}

/// Whether `xid`, an inserter known to have committed, is visible to MVCC
/// snapshot `snapshot` (not the backend's own transaction).
fn committed_xid_visible(xid: pg_sys::TransactionId, snapshot: Snap) -> bool {
    xid != pg_sys::InvalidTransactionId && !is_own(xid) && !xact::in_snapshot(xid, snapshot)
}

fn is_own(xid: pg_sys::TransactionId) -> bool {
    crate::pg::multixact::is_current(xid.into_inner())
}

/// The inserter of a version this backend found visible or locked, as
/// [`Last`] keeps it: committed, or `InvalidTransactionId` when it is the
/// backend's own transaction.
fn committed_inserter(xmin: pg_sys::TransactionId) -> pg_sys::TransactionId {
    if is_own(xmin) {
        pg_sys::InvalidTransactionId
    } else {
        xmin
    }
}

fn set(rel: Rel, root: &pg_sys::ItemPointerData, hint: Hint) {
    if let Some(t) = in_use() {
        hint_table::set(t, &root_of(file_key(rel), root), &hint);
    }
}

fn member(tid: &pg_sys::ItemPointerData, xmin: pg_sys::TransactionId) -> Member {
    Member {
        block: htup::tid_block(tid),
        offset: htup::tid_offset(tid),
        xmin: xmin.into_inner(),
    }
}

/// Clears the hints of relation file (`db`, `relnumber`): its storage is
/// new (a table created or rewritten: its relfilenumber may be one an old
/// file had) or truncated in place (its TIDs start over).
pub fn forget_file(db: u32, relnumber: u32) {
    if let Some(t) = table() {
        hint_table::forget_file(t, db, relnumber);
    }
    // only this backend can have walked a file truncated in place (its
    // table is new in this transaction)
    if LAST.with(|l| l.get()).is_some_and(|(key, ..)| key == (db, relnumber)) {
        LAST.with(|l| l.set(None));
    }
}

/// [`forget_file`] for the file `rel` uses now.
pub fn forget_relation(rel: Rel) {
    let (db, num) = file_key(rel);
    forget_file(db, num);
}

/// Whether a hinted member's xmin is committed and visible to MVCC
/// snapshot `snapshot` (so every earlier member of its chain is not).
pub fn xmin_visible(t: *mut htup::Header, snapshot: Snap) -> bool {
    let xmin = htup::xmin(t);
    let mask = htup::infomask(t);
    if mask & pg_sys::HEAP_XMIN_INVALID != 0 && mask & pg_sys::HEAP_XMIN_COMMITTED == 0 {
        return false; // aborted
    }
    if mask & pg_sys::HEAP_XMIN_COMMITTED != 0 && mask & pg_sys::HEAP_XMIN_INVALID != 0 {
        return true; // frozen
    }
    // a version's xmin that is neither running nor aborted by its hints: the
    // commit log answers for it (its page holds it, so it is not truncated)
    !is_own(xmin)
        && !xact::in_snapshot(xmin, snapshot)
        && (mask & pg_sys::HEAP_XMIN_COMMITTED != 0 || crate::pg::multixact::did_commit(xmin.into_inner()))
}

/// The backend's last walk that returned a version: the file key, the
/// root, the member returned, its inserter when that had committed
/// (`InvalidTransactionId` for the backend's own version), and the local
/// transaction it was walked in.
type Last = (
    (u32, u32),
    pg_sys::ItemPointerData,
    pg_sys::ItemPointerData,
    pg_sys::TransactionId,
    pg_sys::LocalTransactionId,
);

thread_local! {
    static LAST: Cell<Option<Last>> = const { Cell::new(None) };
}

/// A walk from `root` returned `member` (visible to an MVCC snapshot);
/// `passed` says it read other members first, so a hint would have saved
/// reads. Kept as the backend's last walk also when hints are off: it is
/// how an UPDATE of `member` learns its chain's root ([`walked_root`]).
pub fn note_found(
    rel: Rel,
    root: &pg_sys::ItemPointerData,
    member: &pg_sys::ItemPointerData,
    t: *mut htup::Header,
    passed: bool,
) {
    let xmin = htup::xmin(t);
    // visible and not the backend's own: its inserter committed (only hints
    // use it)
    let hints = in_use().is_some();
    let committed = if hints {
        committed_inserter(xmin)
    } else {
        pg_sys::InvalidTransactionId
    };
    LAST.with(|l| l.set(Some((file_key(rel), *root, *member, committed, xact::local_xact_id()))));
    if hints && passed && !htup::tid_eq(root, member) && committed != pg_sys::InvalidTransactionId {
        set(rel, root, Hint { member: self::member(member, xmin), pred: None });
    }
}

/// The root of the chain holding version `member`, when it is what the
/// backend's last walk in this transaction returned (or a row lock or
/// index-stable UPDATE moved that walk's place to). A member's root never
/// changes: TIDs are never reused within a relation file, storage truncated
/// in place forgets the walk ([`forget_file`]), and a relation file number
/// is not reused before the transaction that dropped its file ends.
pub fn walked_root(rel: Rel, member: &pg_sys::ItemPointerData) -> Option<pg_sys::ItemPointerData> {
    let (key, root, last, _, lxid) = LAST.with(|l| l.get())?;
    (key == file_key(rel) && htup::tid_eq(&last, member) && lxid == xact::local_xact_id()).then_some(root)
}

/// A row lock that followed the chain from `from` locked its next version
/// `to` (header `t`; a heap-only version, so in the same chain): when
/// `from` is what the backend's last walk returned,
/// `to` takes its place, so that an UPDATE of `to` (EvalPlanQual's) moves
/// the chain's hint as an UPDATE of the walk's version would.
pub fn note_followed(
    rel: Rel,
    from: &pg_sys::ItemPointerData,
    to: &pg_sys::ItemPointerData,
    t: *mut htup::Header,
) {
    let Some((key, root, member, _, lxid)) = LAST.with(|l| l.get()) else {
        return;
    };
    if key == file_key(rel) && htup::tid_eq(&member, from) {
        // a version locked: its inserter committed or is this backend's
        // transaction
        let committed = committed_inserter(htup::xmin(t));
        LAST.with(|l| l.set(Some((key, root, *to, committed, lxid))));
    }
}

/// An index-stable UPDATE replaced version `old` by `new` (inserted by
/// `xid`): when `old` is what the backend's last walk returned, its chain's
/// hint moves to `new`, with `old` as its predecessor.
pub fn note_updated(
    rel: Rel,
    old: &pg_sys::ItemPointerData,
    new: &pg_sys::ItemPointerData,
    xid: pg_sys::TransactionId,
) {
    let Some((key, root, member, committed, lxid)) = LAST.with(|l| l.get()) else {
        return;
    };
    if key == file_key(rel) && htup::tid_eq(&member, old) {
        // a predecessor is only worth naming as the root or with a
        // committed inserter (see `starts`)
        let pred = (htup::tid_eq(old, &root) || committed != pg_sys::InvalidTransactionId)
            .then(|| self::member(old, committed));
        set(rel, &root, Hint { member: self::member(new, xid), pred });
        LAST.with(|l| l.set(Some((key, root, *new, pg_sys::InvalidTransactionId, lxid))));
    }
}
