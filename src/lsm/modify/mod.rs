//! Row-version changes: insert (single, multi, speculative), delete, update and
//! row locks, with heap's MVCC conventions (xmin/xmax, combo CIDs, infomask,
//! `t_ctid` update chains over logical TIDs).
//!
//! Each modification is a short list of passes: `acquire` (lock the page, run
//! `HeapTupleSatisfiesUpdate`, wait or fail per policy) → new version appended
//! to L0 → `stamp` the old version's xmax (one small WAL record). New versions are
//! appended before the old one is stamped, without holding the old page's lock,
//! and the old version is re-checked afterwards; a lost race invalidates the
//! unused new version and retries.
//!
//! Here: delete and update. [`conflict`]: `acquire` and what a failure
//! reports; [`stamp`]: what a change writes into the old version;
//! [`insert`]: the insert paths; [`lock`]: row locks and their chain walk.

use crate::pg::snapshot::Snap;
use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use super::row_lock::{self, ChainStep, Decision, Member, Mode, Status};
use super::{bulk, chain, chain_hint, logical};
use super::storage::{self, Located};
use super::version_data;
use crate::pg::buffer::Locked;
use crate::pg::htup::{self, Header};
use crate::pg::{multixact, predicate};
use pgrx::pg_sys;
use pgrx::prelude::*;

mod conflict;
mod insert;
mod lock;
mod stamp;

use conflict::*;
use insert::*;
use stamp::*;
pub use insert::{complete_speculative, insert, multi_insert};
pub use lock::lock;
pub use conflict::Wait;

#[allow(clippy::too_many_arguments)]
pub fn delete(
    rel: Rel,
    tid: pg_sys::ItemPointerData,
    cid: pg_sys::CommandId,
    crosscheck: Snap,
    wait: bool,
    tmfd: Option<&mut pg_sys::TM_FailureData>,
    changing_part: bool,
) -> pg_sys::TM_Result::Type {
    let policy = if wait {
        Wait::Block
    } else {
        Wait::ReturnBeingModified
    };
    let mut acq = match acquire(
        rel,
        tid,
        cid,
        crosscheck,
        policy,
        tmfd,
        Op::Delete,
        &mut Strength::Known(Mode::Exclusive),
    ) {
        Outcome::Ok(a) => a,
        Outcome::Failed(r) => return r,
    };
    storage::make_stampable(rel, &mut acq.loc);
    let loc = &acq.loc;
    // like heap: check for SSI conflicts before changing anything
    predicate::check_conflict_in(rel, Some(tid));
    let xid = current_xid();
    let ctid = if changing_part {
        htup::make_tid(pg_sys::InvalidBlockNumber, MOVED_PARTITIONS_OFFSET)
    } else {
        tid
    };
    // the row as it is before the stamp (only the header changes): its
    // replica identity goes into the stamp's record for logical decoding
    let mut tuple = version_data::full_tuple(rel, loc.buf, &loc.heap_tuple(rel));
    let decoded = logical::delete_mark(rel, &mut tuple);
    stamp_decoded(
        rel,
        loc,
        xid,
        Stamp::Modified {
            cid,
            ctid,
            keys_updated: true,
            hot: false,
        },
        &acq.keep,
        decoded,
    );
    release_tuplock(rel, tid, acq.tuplock);
    let external = htup::has_external(loc.header);
    acq.page.unlock();
    if external {
        // SAFETY: pinned page; the deleted version's TOAST values get our xmax.
        unsafe { htup::heap_toast_delete(rel.raw(), &mut tuple, false) };
    }
    drop(acq.page);
    crate::pg::stats::count_delete(rel);
    pg_sys::TM_Result::TM_Ok
}

/// The xmax a new version inherits from the old one when running lockers
/// (necessarily KEY SHARE, or this transaction's own) stay on the old one,
/// as in heap: the old raw xmax, with the lock bits of all its members, so
/// the key those lockers protect cannot be deleted through the new version.
pub(super) fn carried_locks(old: *mut Header) -> (pg_sys::TransactionId, u32) {
    let xmax = htup::raw_xmax(old);
    if !htup::xmax_is_multi(old) {
        return (
            xmax,
            pg_sys::HEAP_XMAX_KEYSHR_LOCK | pg_sys::HEAP_XMAX_LOCK_ONLY,
        );
    }
    (xmax, xmax_bits(&xmax_members(old), true).0)
}

/// Updates `otid` to the slot's row; returns the result and the new TID.
/// `hot` tells whether the update left every index's columns alone: the new
/// version is then heap-only and needs no index entries (see `chain`).
#[allow(clippy::too_many_arguments)]
pub fn update(
    rel: Rel,
    otid: pg_sys::ItemPointerData,
    slot: Slot,
    cid: pg_sys::CommandId,
    crosscheck: Snap,
    wait: bool,
    mut tmfd: Option<&mut pg_sys::TM_FailureData>,
    lockmode: &mut pg_sys::LockTupleMode::Type,
    hot: &mut bool,
) -> pg_sys::TM_Result::Type {
    let policy = if wait {
        Wait::Block
    } else {
        Wait::ReturnBeingModified
    };
    let xid = current_xid();
    let cols = htup::UpdateColumns::of(rel);
    // read before any page is locked (it cannot move while this statement's
    // lock is held)
    let floor = super::manifest_cache::append_floor(rel);
    let (new, should_free) = slot_tuple(rel, slot);
    let mut strength = Strength::UpdateTo { new, cols: &cols };
    let result = loop {
        let outcome = acquire(
            rel,
            otid,
            cid,
            crosscheck,
            policy,
            tmfd.as_deref_mut(),
            Op::Update,
            &mut strength,
        );
        let Strength::Known(mode) = strength else {
            unreachable!("acquire resolves the strength on the old version")
        };
        // the executor locks the newest version with this mode before retrying (EvalPlanQual)
        *lockmode = mode as pg_sys::LockTupleMode::Type;
        let keys_updated = mode == Mode::Exclusive;
        let mut acq = match outcome {
            Outcome::Ok(a) => a,
            Outcome::Failed(r) => break r,
        };
        predicate::check_conflict_in(rel, Some(otid));
        // the old version's chain root, when known: an update changing
        // summarized columns needs it to stay index-stable (`summarizing`)
        let root = if !cols.has_summarized() {
            None
        } else if chain::is_heap_only(acq.loc.header) {
            chain_hint::walked_root(rel, &otid)
        } else {
            Some(otid)
        };
        let summaries = |index_stable: bool| root.filter(|_| index_stable && cols.summarized_changed());
        // a version sharing its header is detached inside the UPDATE record
        // when its page has a free header slot; otherwise now
        if storage::shares_header(&acq.loc) && !storage::detach_fits(&acq.loc) {
            storage::make_stampable(rel, &mut acq.loc);
        }
        let mut old = version_data::full_tuple(rel, acq.loc.buf, &acq.loc.heap_tuple(rel));
        if acq.keep.is_empty() {
            let loc = &acq.loc;
            let together = Together {
                xid,
                cid,
                cols: &cols,
                keys_updated,
                floor,
                root_known: root.is_some(),
            };
            if let Some((new_tid, index_stable)) = together.update(rel, loc, &mut old, slot) {
                *hot = index_stable;
                let summaries = summaries(index_stable);
                updated(rel, acq.page, otid, acq.tuplock, slot, new_tid, index_stable, summaries);
                break pg_sys::TM_Result::TM_Ok;
            }
        }
        // the old version's header is kept across the unlock below: its own
        storage::make_stampable(rel, &mut acq.loc);
        let loc = &acq.loc;
        let old_xmax = xmax_state(loc.header);
        let carry = (!acq.keep.is_empty()).then(|| carried_locks(loc.header));
        acq.page.unlock(); // keep the pin: the old version's bytes stay put
        let (tuple, should_free) = slot_tuple(rel, slot);
        let index_stable = cols.changed(rel, &mut old, tuple).index_stable(root.is_some());
        let stored = prepare_insert(rel, tuple, xid, cid, 0, Some(&mut old));
        // SAFETY: the tuple about to be stored is ours to write.
        let t = unsafe { (*stored).t_data };
        if let Some((xmax, bits)) = carry {
            htup::set_xmax(t, xmax);
            htup::set_infomask(t, (htup::infomask(t) & !pg_sys::HEAP_XMAX_BITS) | bits);
        }
        mark_heap_only(t, index_stable);
        // SAFETY: the formed tuple prepared above, ours to write.
        let new_tid = storage::append(rel, unsafe { &mut *stored }, true, storage::RowInsert::No);

        acq.page.relock();
        let mut recheck = loc.heap_tuple(rel);
        // SAFETY: re-checked under the exclusive lock.
        let still = unsafe { pg_sys::HeapTupleSatisfiesUpdate(&mut recheck, cid, loc.buf) };
        let unchanged = xmax_state(loc.header) == old_xmax;
        let keep = match still {
            pg_sys::TM_Result::TM_Ok if carry.is_none() || unchanged => Some(Vec::new()),
            // the lockers carried onto the new version must still be the ones recorded
            pg_sys::TM_Result::TM_BeingModified if carry.is_none() || unchanged => {
                match decide_on(loc.header, mode, true) {
                    Decision::Proceed(keep) if carry.is_some() || keep.is_empty() => Some(keep),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(keep) = keep {
            stamp(
                rel,
                loc,
                xid,
                Stamp::Modified {
                    cid,
                    ctid: new_tid,
                    keys_updated,
                    hot: index_stable,
                },
                &keep,
            );
            logical::updated(rel, &mut old, stored);
            free_if(stored, stored != tuple);
            free_if(tuple, should_free);
            *hot = index_stable;
            let summaries = summaries(index_stable);
            updated(rel, acq.page, otid, acq.tuplock, slot, new_tid, index_stable, summaries);
            break pg_sys::TM_Result::TM_Ok;
        }
        free_if(stored, stored != tuple);
        free_if(tuple, should_free);
        drop(acq.page);
        release_tuplock(rel, otid, acq.tuplock);
        kill_tid(rel, new_tid); // lost a race: retry from the top
    };
    free_if(new, should_free);
    result
}
