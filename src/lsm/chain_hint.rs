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
//! Hints are set by walks that passed members to reach a visible one
//! (`note_found`) and by an index-stable UPDATE of the version the
//! backend's last walk returned (`note_updated`: the new version, checked
//! by readers once its updater commits). A relation file's new storage
//! clears its hints ([`forget_relation`]).
//!
//! The table: `SLOTS` slots of [`hint_table`]'s layout (a sequence lock
//! per slot; a colliding key overwrites) in shared memory, 2 MiB, only when
//! Strata is preloaded — otherwise every walk starts at the root.

use super::hint_table::{self, Member, Root, WORDS};
use crate::pg::htup;
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
    let (base, found) = shmem::init_struct(NAME, SLOTS * WORDS * 4);
    if !found {
        // SAFETY: the region was just allocated for us, SLOTS * WORDS words;
        // zeroed slots are empty.
        unsafe { std::ptr::write_bytes(base, 0, SLOTS * WORDS * 4) };
    }
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
fn file_key(rel: pg_sys::Relation) -> (u32, u32) {
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

/// The member hinted for the chain rooted at `root`, and the xmin it had.
pub fn get(
    rel: pg_sys::Relation,
    root: &pg_sys::ItemPointerData,
) -> Option<(pg_sys::ItemPointerData, pg_sys::TransactionId)> {
    let m = hint_table::get(in_use()?, &root_of(file_key(rel), root))?;
    Some((htup::make_tid(m.block, m.offset), m.xmin.into()))
}

fn set(
    rel: pg_sys::Relation,
    root: &pg_sys::ItemPointerData,
    member: &pg_sys::ItemPointerData,
    xmin: pg_sys::TransactionId,
) {
    if let Some(t) = in_use() {
        let m = Member {
            block: htup::tid_block(member),
            offset: htup::tid_offset(member),
            xmin: xmin.into_inner(),
        };
        hint_table::set(t, &root_of(file_key(rel), root), &m);
    }
}

/// Clears the hints of relation file (`db`, `relnumber`): its storage is
/// new (a table created or rewritten: its relfilenumber may be one an old
/// file had) or truncated in place (its TIDs start over).
pub fn forget_file(db: u32, relnumber: u32) {
    if let Some(t) = table() {
        hint_table::forget_file(t, db, relnumber);
    }
}

/// [`forget_file`] for the file `rel` uses now.
pub fn forget_relation(rel: pg_sys::Relation) {
    let (db, num) = file_key(rel);
    forget_file(db, num);
}

/// Whether a hinted member's xmin is committed and visible to MVCC
/// snapshot `snapshot` (so every earlier member of its chain is not).
pub fn xmin_visible(t: *mut htup::Header, snapshot: pg_sys::Snapshot) -> bool {
    let xmin = htup::xmin(t);
    let mask = htup::infomask(t);
    // SAFETY: xid tests against the clog and a valid MVCC snapshot.
    unsafe {
        if mask & pg_sys::HEAP_XMIN_INVALID != 0 && mask & pg_sys::HEAP_XMIN_COMMITTED == 0 {
            return false; // aborted
        }
        if mask & pg_sys::HEAP_XMIN_COMMITTED != 0 && mask & pg_sys::HEAP_XMIN_INVALID != 0 {
            return true; // frozen
        }
        !pg_sys::TransactionIdIsCurrentTransactionId(xmin)
            && !pg_sys::XidInMVCCSnapshot(xmin, snapshot)
            && (mask & pg_sys::HEAP_XMIN_COMMITTED != 0 || pg_sys::TransactionIdDidCommit(xmin))
    }
}

thread_local! {
    /// The backend's last walk that returned a version: (file key, root,
    /// the member returned).
    static LAST: Cell<Option<((u32, u32), pg_sys::ItemPointerData, pg_sys::ItemPointerData)>> =
        const { Cell::new(None) };
}

/// A walk from `root` returned `member` (visible to an MVCC snapshot);
/// `passed` says it read other members first, so a hint would have saved
/// reads.
pub fn note_found(
    rel: pg_sys::Relation,
    root: &pg_sys::ItemPointerData,
    member: &pg_sys::ItemPointerData,
    t: *mut htup::Header,
    passed: bool,
) {
    if in_use().is_none() {
        return;
    }
    LAST.with(|l| l.set(Some((file_key(rel), *root, *member))));
    let xmin = htup::xmin(t);
    // SAFETY: compares with this backend's transaction ids.
    if passed && !htup::tid_eq(root, member) && !unsafe { pg_sys::TransactionIdIsCurrentTransactionId(xmin) } {
        set(rel, root, member, xmin);
    }
}

/// An index-stable UPDATE replaced version `old` by `new` (inserted by
/// `xid`): when `old` is what the backend's last walk returned, its chain's
/// hint moves to `new`.
pub fn note_updated(
    rel: pg_sys::Relation,
    old: &pg_sys::ItemPointerData,
    new: &pg_sys::ItemPointerData,
    xid: pg_sys::TransactionId,
) {
    let Some((key, root, member)) = LAST.with(|l| l.get()) else {
        return;
    };
    if key == file_key(rel) && htup::tid_eq(&member, old) {
        set(rel, &root, new, xid);
        LAST.with(|l| l.set(Some((key, root, *new))));
    }
}
