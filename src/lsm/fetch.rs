//! Point access by logical TID: index fetches, row-version fetches, TID
//! validity, latest-version lookup along `t_ctid` chains, and snapshot checks
//! of a slot's tuple.

use crate::pg::snapshot::Snap;
use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use super::chain;
use super::format;
use super::manifest;
use super::storage;
use crate::pg::buffer::{self, Locked};
use crate::pg::htup;
use crate::pg::predicate;
use pgrx::pg_sys;

#[repr(C)]
pub struct LsmIndexFetch {
    pub base: pg_sys::IndexFetchTableData,
    buf: pg_sys::Buffer,
}

pub fn begin(rel: Rel) -> *mut LsmIndexFetch {
    // SAFETY: zeroed palloc memory is a valid initial state.
    let f = unsafe { pg_sys::palloc0(std::mem::size_of::<LsmIndexFetch>()) } as *mut LsmIndexFetch;
    // SAFETY: fresh allocation.
    unsafe { (*f).base.rel = rel.raw() };
    f
}

pub fn reset(f: &mut LsmIndexFetch) {
    if f.buf != 0 {
        buffer::release(f.buf);
        f.buf = 0;
    }
}

/// # Safety
/// `f` was made by [`begin`] and is not used afterwards.
pub unsafe fn end(f: *mut LsmIndexFetch) {
    // SAFETY: pointer from `begin`.
    reset(unsafe { &mut *f });
    // SAFETY: allocated in `begin`, unused afterwards.
    unsafe { pg_sys::pfree(f as *mut std::ffi::c_void) };
}

/// Checks version `tid` (its own, not its chain's) against `snapshot` on a
/// pinned buffer and stores it into `slot` when visible, like `heap_fetch`.
/// Takes and releases the share lock. A redirect is never visible.
fn check_and_store(
    rel: Rel,
    buf: pg_sys::Buffer,
    tid: pg_sys::ItemPointerData,
    snapshot: Snap,
    slot: Slot,
) -> bool {
    buffer::lock_share(buf);
    let found = storage::find_on_page(rel, buf, tid).filter(|l| !chain::is_redirect(l.header));
    let visible = found.is_some_and(|loc| {
        let mut t = loc.heap_tuple(rel);
        // SAFETY: share-locked page, valid snapshot.
        let v = unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut t, snapshot.raw(), buf) };
        // like heap_fetch: SIREAD lock on what the snapshot sees, rw-conflict
        // check on what it does not
        if v {
            predicate::lock_tid(rel, &t, snapshot);
        }
        predicate::check_conflict_out(v, rel, &mut t, buf, snapshot);
        if v {
            storage::store_in_slot(rel, slot, t, buf);
        }
        v
    });
    buffer::unlock(buf);
    visible
}

/// Fetches index entry `tid`: the version of its chain (see `chain`) that
/// `snapshot` sees, with `tid` set to that version's own TID. `call_again`
/// in: continue after the version returned last; out: a non-MVCC snapshot
/// may see another version of the chain. `all_dead` (when asked) says
/// whether no snapshot can ever see any version of the chain — dead to all,
/// or already dropped by a flush or merge — so the index may kill its entry
/// (`kill_prior_tuple`).
pub fn index_fetch(
    f: &mut LsmIndexFetch,
    tid: &mut pg_sys::ItemPointerData,
    snapshot: Snap,
    slot: Slot,
    call_again: &mut bool,
    all_dead: Option<&mut bool>,
) -> bool {
    // SAFETY: set from the open relation in `begin`, open until `end`.
    let rel = unsafe { Rel::from_raw(f.base.rel) };
    let first_call = !*call_again;
    let mut w = chain::Walker::new(rel, f.buf);
    let found = chain::search(&mut w, tid, snapshot, Some(slot), all_dead, first_call);
    f.buf = w.buf;
    let mvcc = matches!(
        snapshot.kind(),
        Some(pg_sys::SnapshotType::SNAPSHOT_MVCC | pg_sys::SnapshotType::SNAPSHOT_HISTORIC_MVCC)
    );
    *call_again = found && !mvcc;
    found
}

pub fn fetch_row_version(
    rel: Rel,
    tid: pg_sys::ItemPointerData,
    snapshot: Snap,
    slot: Slot,
) -> bool {
    let Some(buf) = storage::pin_tid(rel, tid) else {
        return false;
    };
    let found = check_and_store(rel, buf, tid, snapshot, slot);
    buffer::release(buf);
    found
}

pub fn tid_valid(rel: Rel, tid: pg_sys::ItemPointerData) -> bool {
    let nblocks = buffer::nblocks(rel);
    nblocks > 0 && manifest::locate(rel, &tid).is_some_and(|b| b < nblocks)
}

/// Follows the update chain from `tid`; leaves in `tid` the newest version
/// visible to `snapshot`.
pub fn latest_tid(
    rel: Rel,
    snapshot: Snap,
    tid: &mut pg_sys::ItemPointerData,
) {
    let mut cur = *tid;
    let mut prior_xmax = pg_sys::InvalidTransactionId;
    loop {
        let Some(buf) = storage::pin_tid(rel, cur) else {
            return;
        };
        let locked = Locked::share_pinned(buf);
        let Some(loc) = storage::find_on_page(rel, buf, cur) else {
            return;
        };
        let xmin = htup::xmin(loc.header);
        if prior_xmax != pg_sys::InvalidTransactionId && xmin != prior_xmax {
            return; // chain broken (aborted updater's version)
        }
        let mut t = loc.heap_tuple(rel);
        // SAFETY: share-locked page.
        if unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut t, snapshot.raw(), buf) } {
            *tid = cur;
        }
        let mask = htup::infomask(loc.header);
        let next = htup::ctid(loc.header);
        let ends = mask & pg_sys::HEAP_XMAX_INVALID != 0
            || mask & pg_sys::HEAP_XMAX_LOCK_ONLY != 0
            || htup::tid_eq(&next, &cur)
            || !format::offset_in_range(htup::tid_offset(&next));
        prior_xmax = htup::update_xid(loc.header);
        drop(locked);
        if ends {
            return;
        }
        cur = next;
    }
}

/// `tuple_satisfies_snapshot`: checks the version in `slot` against `snapshot`.
/// A slot holding a page's tuple is checked on that page; a materialized one
/// (from a compressed run page) on its version's header, found by TID.
pub fn satisfies_snapshot(
    rel: Rel,
    slot: Slot,
    snapshot: Snap,
) -> bool {
    let bslot = slot.raw() as *mut pg_sys::BufferHeapTupleTableSlot;
    // SAFETY: lsm slots are BufferHeapTupleTableSlots.
    if unsafe { (*bslot).buffer } == 0 {
        // SAFETY: a filled slot.
        let tid = unsafe { (*slot.raw()).tts_tid };
        let Some(buf) = storage::pin_tid(rel, tid) else {
            return false;
        };
        let _locked = Locked::share_pinned(buf);
        return storage::find_on_page(rel, buf, tid).is_some_and(|loc| {
            if chain::is_redirect(loc.header) {
                return false;
            }
            let mut t = loc.heap_tuple(rel);
            // SAFETY: share-locked page, valid snapshot.
            unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut t, snapshot.raw(), buf) }
        });
    }
    // SAFETY: lsm slots are BufferHeapTupleTableSlots holding a pinned buffer.
    unsafe {
        let buf = (*bslot).buffer;
        buffer::lock_share(buf);
        let r = pg_sys::HeapTupleSatisfiesVisibility((*bslot).base.tuple, snapshot.raw(), buf);
        buffer::unlock(buf);
        r
    }
}
