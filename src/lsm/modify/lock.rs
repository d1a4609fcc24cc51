//! Row locks (`SELECT ... FOR UPDATE/SHARE`): the version itself, then every
//! newer version along its update chain (`heap_lock_updated_tuple_rec`).

use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use super::*;

/// Records a row lock of `mode` on every newer version of an update chain
/// that starts at `start` (made by `prior_xmax`), waiting for conflicting
/// transactions (`heap_lock_updated_tuple_rec`). Ends where the chain ends
/// or breaks; TM_Updated/TM_Deleted when a committed update or delete there
/// conflicts with the lock.
pub(super) fn lock_chain(
    rel: Rel,
    start: pg_sys::ItemPointerData,
    prior_xmax: u32,
    mode: Mode,
) -> pg_sys::TM_Result::Type {
    let xid = current_xid();
    let aborted = |x: u32| {
        !multixact::is_current(x) && !multixact::in_progress(x) && !multixact::did_commit(x)
    };
    let mut tid = start;
    let mut prior = prior_xmax;
    loop {
        if htup::tid_offset(&tid) == MOVED_PARTITIONS_OFFSET {
            return pg_sys::TM_Result::TM_Ok;
        }
        let Some(page) = storage::pin_tid(rel, tid).map(Locked::exclusive_pinned) else {
            return pg_sys::TM_Result::TM_Ok;
        };
        let Some(mut loc) = storage::find_on_page(rel, page.buffer(), tid) else {
            return pg_sys::TM_Result::TM_Ok;
        };
        storage::make_stampable(rel, &mut loc);
        let xmin = htup::xmin(loc.header).into_inner();
        if xmin != prior || aborted(xmin) {
            return pg_sys::TM_Result::TM_Ok; // the chain broke here
        }
        match chain_step_on(loc.header, mode) {
            ChainStep::Skip => {}
            ChainStep::Wait(x) => {
                drop(page);
                multixact::wait_for(x, rel, tid, pg_sys::XLTW_Oper::XLTW_LockUpdated);
                continue;
            }
            ChainStep::Updated => return updated_or_deleted(loc.header, &tid),
            ChainStep::Lock(keep) => stamp(rel, &loc, xid, Stamp::Lock(mode), &keep),
        }
        let mask = htup::infomask(loc.header);
        let next = htup::ctid(loc.header);
        let upd = if mask & (pg_sys::HEAP_XMAX_INVALID | pg_sys::HEAP_XMAX_LOCK_ONLY) != 0 {
            0
        } else {
            htup::update_xid(loc.header).into_inner()
        };
        drop(page);
        if upd == 0 || aborted(upd) || htup::tid_eq(&next, &tid) {
            return pg_sys::TM_Result::TM_Ok;
        }
        prior = upd;
        tid = next;
    }
}

/// Locks a row version (following the update chain when asked).
#[allow(clippy::too_many_arguments)]
pub fn lock(
    rel: Rel,
    tid: pg_sys::ItemPointerData,
    slot: Slot,
    cid: pg_sys::CommandId,
    mode: pg_sys::LockTupleMode::Type,
    wait_policy: pg_sys::LockWaitPolicy::Type,
    follow_updates: bool,
    mut tmfd: Option<&mut pg_sys::TM_FailureData>,
) -> (pg_sys::TM_Result::Type, pg_sys::ItemPointerData) {
    let policy = match wait_policy {
        pg_sys::LockWaitPolicy::LockWaitSkip => Wait::Skip,
        pg_sys::LockWaitPolicy::LockWaitError => Wait::Error,
        _ => Wait::Block,
    };
    let mode = Mode::from_raw(mode);
    let start = tid;
    let mut tid = tid;
    // versions followed along the chain (EvalPlanQual's `traversed`)
    let mut steps = 0u32;
    if let Some(f) = tmfd.as_deref_mut() {
        // like heapam_tuple_lock: callers pass uninitialised storage
        // (GetTupleForTrigger) and read `traversed` after TM_Ok
        f.traversed = false;
    }
    loop {
        match acquire(
            rel,
            tid,
            cid,
            Snap::none(),
            policy,
            tmfd.as_deref_mut(),
            Op::Lock,
            &mut Strength::Known(mode),
        ) {
            Outcome::Ok(mut acq) => {
                // stamped below, maybe after an unlock: its own header first
                storage::make_stampable(rel, &mut acq.loc);
                let loc = &acq.loc;
                let updater = acq
                    .keep
                    .iter()
                    .find(|m| m.status.is_update() && !multixact::is_current(m.xid))
                    .map(|m| m.xid);
                if let (false, Some(prior)) = (acq.held, updater) {
                    // A KEY SHARE lock passing a running non-key update: like
                    // heap, first lock the newer versions along the chain (page
                    // unlocked), then this one if its xmax did not move meanwhile.
                    let seen = xmax_state(loc.header);
                    let next = htup::ctid(loc.header);
                    let r = acq.page.while_unlocked(|| lock_chain(rel, next, prior, mode));
                    let now = xmax_state(loc.header);
                    if r == pg_sys::TM_Result::TM_Updated && follow_updates && tmfd.is_some() {
                        // Like heapam_tuple_lock: a committed update along
                        // the chain that conflicts with the lock sends it on
                        // from this version's successor (to the newest
                        // version, or to "moved to another partition")
                        drop(acq.page);
                        release_tuplock(rel, tid, acq.tuplock);
                        tid = next;
                        steps += 1;
                        continue;
                    }
                    if r != pg_sys::TM_Result::TM_Ok {
                        fill_failure(tmfd.as_deref_mut(), loc, r);
                        drop(acq.page);
                        release_tuplock(rel, tid, acq.tuplock);
                        return (r, tid);
                    }
                    if now != seen {
                        drop(acq.page);
                        release_tuplock(rel, tid, acq.tuplock);
                        continue;
                    }
                }
                if !acq.held {
                    stamp(rel, loc, current_xid(), Stamp::Lock(mode), &acq.keep);
                }
                release_tuplock(rel, tid, acq.tuplock);
                if steps == 1 && crate::lsm::chain::is_heap_only(loc.header) {
                    // EvalPlanQual's lock of the next version, an index-stable
                    // update's (so in the same chain): what an UPDATE of it
                    // next replaces (for the chain's hint)
                    crate::lsm::chain_hint::note_followed(rel, &start, &tid, loc.header);
                }
                storage::store_in_slot(rel, slot, loc.heap_tuple(rel), loc.buf);
                drop(acq.page);
                if let Some(f) = tmfd.as_deref_mut().filter(|_| steps > 0) {
                    f.traversed = true;
                }
                return (pg_sys::TM_Result::TM_Ok, tid);
            }
            Outcome::Failed(pg_sys::TM_Result::TM_Updated) if follow_updates && tmfd.is_some() => {
                // filled by acquire
                let next = tmfd.as_deref().map_or(tid, |f| f.ctid);
                if htup::tid_offset(&next) == MOVED_PARTITIONS_OFFSET {
                    ereport!(
                        ERROR,
                        PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
                        "tuple to be locked was already moved to another partition due to concurrent update"
                    );
                }
                tid = next;
                steps += 1;
            }
            Outcome::Failed(r)
                if steps > 0
                    && follow_updates
                    && matches!(r, pg_sys::TM_Result::TM_SelfModified | pg_sys::TM_Result::TM_Invisible) =>
            {
                // Like heapam_tuple_lock's walk with SnapshotDirty: a newer
                // version this transaction updated (by this command or an
                // earlier one) is passed by, to the version after it; one it
                // deleted ends the walk. What a later command made is judged
                // where the walk stops (below).
                match own_change(rel, tid) {
                    Some(OwnChange::Updated(next)) => {
                        tid = next;
                        steps += 1;
                        continue;
                    }
                    Some(OwnChange::Deleted) => {
                        if let Some(f) = tmfd.as_deref_mut() {
                            f.traversed = true;
                        }
                        return (pg_sys::TM_Result::TM_Deleted, tid);
                    }
                    None => return failed(rel, tid, cid, r, steps, tmfd, slot),
                }
            }
            Outcome::Failed(r) => return failed(rel, tid, cid, r, steps, tmfd, slot),
        }
    }
}

/// A lock that failed on version `tid`, `steps` versions along the chain
/// from where it started.
fn failed(
    rel: Rel,
    tid: pg_sys::ItemPointerData,
    cid: pg_sys::CommandId,
    r: pg_sys::TM_Result::Type,
    steps: u32,
    tmfd: Option<&mut pg_sys::TM_FailureData>,
    slot: Slot,
) -> (pg_sys::TM_Result::Type, pg_sys::ItemPointerData) {
    if let Some(f) = tmfd.filter(|_| steps > 0) {
        // Like heapam_tuple_lock: a newer version that a later
        // command of this transaction inserted is "self modified"
        // (its cmin is the problematic command id), not invisible.
        if r == pg_sys::TM_Result::TM_Invisible {
            if let Some((xmin, cmin)) = inserted_by_later_command(rel, tid, cid) {
                f.xmax = xmin;
                f.cmax = cmin;
                f.traversed = true;
                return (pg_sys::TM_Result::TM_SelfModified, tid);
            }
        }
        f.traversed = true;
    }
    // Like heapam_tuple_lock, the slot holds the version also when
    // it could not be locked: ON CONFLICT reads its xmin to tell
    // "affected twice by this command" from other failures.
    // SAFETY: SnapshotAny is a static snapshot, valid forever.
    let any = unsafe { Snap::from_raw(std::ptr::addr_of_mut!(pg_sys::SnapshotAnyData)) };
    crate::lsm::fetch::fetch_row_version(rel, tid, any, slot);
    (r, tid)
}

/// What this transaction did to version `tid`, when its xmax is this
/// transaction's update or delete.
enum OwnChange {
    /// Updated: the next version.
    Updated(pg_sys::ItemPointerData),
    Deleted,
}

fn own_change(rel: Rel, tid: pg_sys::ItemPointerData) -> Option<OwnChange> {
    let page = Locked::share_pinned(storage::pin_tid(rel, tid)?);
    let loc = storage::find_on_page(rel, page.buffer(), tid)?;
    let t = loc.header;
    if htup::infomask(t) & (pg_sys::HEAP_XMAX_INVALID | pg_sys::HEAP_XMAX_LOCK_ONLY) != 0
        || !multixact::is_current(htup::update_xid(t).into_inner())
    {
        return None;
    }
    // a shared header's t_ctid (0,0) means the version's own TID
    let next = htup::ctid(t);
    if htup::tid_offset(&next) == 0 || htup::tid_eq(&next, &tid) {
        Some(OwnChange::Deleted)
    } else {
        Some(OwnChange::Updated(next))
    }
}

/// `(xmin, cmin)` of version `tid` when this transaction inserted it with a
/// command id at or after `cid`.
pub(super) fn inserted_by_later_command(
    rel: Rel,
    tid: pg_sys::ItemPointerData,
    cid: pg_sys::CommandId,
) -> Option<(pg_sys::TransactionId, pg_sys::CommandId)> {
    let page = Locked::share_pinned(storage::pin_tid(rel, tid)?);
    storage::find_on_page(rel, page.buffer(), tid).and_then(|loc| {
        let xmin = htup::xmin(loc.header);
        // SAFETY: valid header on a share-locked page.
        let cmin = unsafe { pg_sys::HeapTupleHeaderGetCmin(loc.header) };
        (multixact::is_current(xmin.into_inner()) && cmin >= cid).then_some((xmin, cmin))
    })
}
