//! The conflict protocol of every modification: `acquire` locks the old
//! version's page and runs `HeapTupleSatisfiesUpdate`, then waits, fails or
//! proceeds per heap's rules (`row_lock`); what a failure reports
//! (`TM_FailureData`).

use crate::pg::snapshot::Snap;
use crate::pg::relation::Rel;
use super::*;

pub(super) const HEAP_MOVED: u32 = pg_sys::HEAP_MOVED_OFF | pg_sys::HEAP_MOVED_IN;
pub(super) const MOVED_PARTITIONS_OFFSET: u16 = 0xfffd;

/// How to treat a row another transaction is modifying.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Block,
    ReturnBeingModified,
    Skip,
    Error,
}

/// A row version this transaction may now modify or lock; its page is
/// exclusively locked.
pub(super) struct Acquired {
    pub(super) loc: Located,
    /// The old version's page (`loc.buf`), pinned and exclusively locked.
    pub(super) page: Locked,
    /// Running lockers that stay recorded next to the new xmax.
    pub(super) keep: Vec<Member>,
    /// A lock request the transaction already holds (nothing to write).
    pub(super) held: bool,
    /// The heavyweight tuple lock taken to queue behind other waiters.
    pub(super) tuplock: Option<Mode>,
}

pub(super) enum Outcome {
    Ok(Acquired),
    Failed(pg_sys::TM_Result::Type),
}

pub(super) fn current_xid() -> pg_sys::TransactionId {
    // SAFETY: assigns an xid if needed; raises on failure.
    unsafe { pg_sys::GetCurrentTransactionId() }
}

pub(super) fn fill_failure(tmfd: Option<&mut pg_sys::TM_FailureData>, loc: &Located, result: pg_sys::TM_Result::Type) {
    let Some(tmfd) = tmfd else {
        return;
    };
    let t = loc.header;
    // a shared header's t_ctid (0,0) means the version's own TID
    let ctid = htup::ctid(t);
    let ctid = if htup::tid_offset(&ctid) == 0 { loc.tid } else { ctid };
    tmfd.ctid = ctid;
    tmfd.xmax = htup::update_xid(t);
    tmfd.cmax = if result == pg_sys::TM_Result::TM_SelfModified {
        // SAFETY: `t` is a valid header on the locked page.
        unsafe { pg_sys::HeapTupleHeaderGetCmax(t) }
    } else {
        pg_sys::InvalidCommandId
    };
    tmfd.traversed = false;
}

pub(super) fn not_found(rel: Rel, what: &str) -> ! {
    crate::pg::error::error(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!(
            "attempted to {what} a row version that does not exist in \"{}\"",
            crate::pg::rel::relname(rel)
        ),
    )
}

/// The transactions recorded in a version's xmax with their lock or update
/// status: one xid with infomask lock bits, or a MultiXact's members.
pub(super) fn xmax_members(t: *mut Header) -> Vec<Member> {
    let mask = htup::infomask(t);
    if mask & pg_sys::HEAP_XMAX_INVALID != 0 {
        return Vec::new();
    }
    let xmax = htup::raw_xmax(t);
    let lock_only = mask & pg_sys::HEAP_XMAX_LOCK_ONLY != 0;
    if htup::xmax_is_multi(t) {
        return multixact::members(xmax, lock_only)
            .into_iter()
            .map(|(xid, status)| Member {
                xid,
                status: Status::from_raw(status),
            })
            .collect();
    }
    let keys = htup::infomask2(t) & pg_sys::HEAP_KEYS_UPDATED != 0;
    let status = if !lock_only {
        Status::update(keys)
    } else {
        match mask & pg_sys::HEAP_XMAX_SHR_LOCK {
            x if x == pg_sys::HEAP_XMAX_SHR_LOCK => Status::ForShare,
            x if x == pg_sys::HEAP_XMAX_EXCL_LOCK => Status::lock(if keys {
                Mode::Exclusive
            } else {
                Mode::NoKeyExclusive
            }),
            _ => Status::ForKeyShare,
        }
    };
    vec![Member {
        xid: xmax.into_inner(),
        status,
    }]
}

/// Applies [`row_lock::decide`] to a version whose xmax is still running.
pub(super) fn decide_on(t: *mut Header, mode: Mode, update: bool) -> Decision {
    row_lock::decide(
        &xmax_members(t),
        mode,
        update,
        multixact::is_current,
        multixact::in_progress,
        multixact::did_commit,
    )
}

/// Applies [`row_lock::chain_step`] to a version's xmax.
pub(super) fn chain_step_on(t: *mut Header, mode: Mode) -> ChainStep {
    row_lock::chain_step(
        &xmax_members(t),
        mode,
        multixact::is_current,
        multixact::in_progress,
        multixact::did_commit,
    )
}

/// What a committed updater of version `tid` made of it (`t_ctid` pointing
/// to itself: a delete).
pub(super) fn updated_or_deleted(t: *mut Header, tid: &pg_sys::ItemPointerData) -> pg_sys::TM_Result::Type {
    if htup::tid_eq(&htup::ctid(t), tid) {
        pg_sys::TM_Result::TM_Deleted
    } else {
        pg_sys::TM_Result::TM_Updated
    }
}

/// A version's raw xmax and xmax infomask bits: compared before and after a
/// page lock is given up, to see whether another transaction changed them.
pub(super) fn xmax_state(t: *mut Header) -> (pg_sys::TransactionId, u32) {
    (
        htup::raw_xmax(t),
        htup::infomask(t) & pg_sys::HEAP_XMAX_BITS,
    )
}

pub(super) fn release_tuplock(rel: Rel, tid: pg_sys::ItemPointerData, tuplock: Option<Mode>) {
    if let Some(m) = tuplock {
        multixact::unlock_tuple(rel, tid, m as u32);
    }
}

/// The row-lock strength a request needs. An update's depends on whether it
/// changes a key column, which is decided on the old version under its page
/// lock the first time `acquire` sees it (as in `heap_update`).
#[derive(Clone, Copy)]
pub(super) enum Strength<'a> {
    Known(Mode),
    /// An update to `new`, compared over `cols` (the answer stays in
    /// `cols` for the rest of the UPDATE).
    UpdateTo {
        new: pg_sys::HeapTuple,
        cols: &'a htup::UpdateColumns,
    },
}

impl Strength<'_> {
    /// `old` gives the old version with its data (materialized only when needed).
    pub(super) fn resolve(
        &mut self,
        rel: Rel,
        old: impl FnOnce() -> pg_sys::HeapTupleData,
    ) -> Mode {
        if let Strength::UpdateTo { new, cols } = *self {
            let mut old = old();
            let changed = cols.changed(rel, &mut old, new);
            *self = Strength::Known(if changed.key {
                Mode::Exclusive
            } else {
                Mode::NoKeyExclusive
            });
        }
        match *self {
            Strength::Known(m) => m,
            Strength::UpdateTo { .. } => unreachable!("resolved above"),
        }
    }
}

/// What a request does to a row version.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Update,
    Delete,
    Lock,
}

impl Op {
    /// The verb errors name it by.
    fn name(self) -> &'static str {
        match self {
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Lock => "lock",
        }
    }

    /// Whether it modifies the row (sets an updater's xmax), not only locks it.
    fn modifies(self) -> bool {
        self != Op::Lock
    }

    /// What a lock wait's error context says ("while deleting tuple ...").
    fn wait_oper(self) -> pg_sys::XLTW_Oper::Type {
        match self {
            Op::Update => pg_sys::XLTW_Oper::XLTW_Update,
            Op::Delete => pg_sys::XLTW_Oper::XLTW_Delete,
            Op::Lock => pg_sys::XLTW_Oper::XLTW_Lock,
        }
    }
}

/// Locks the page of `tid` exclusively and checks that this transaction may
/// modify (`op` an update or delete) or lock the row version with `strength`, waiting
/// on conflicting transactions per `wait` like heap: first the tuple's
/// heavyweight lock (queue order), then each conflicting transaction.
#[allow(clippy::too_many_arguments)]
pub(super) fn acquire(
    rel: Rel,
    tid: pg_sys::ItemPointerData,
    cid: pg_sys::CommandId,
    crosscheck: Snap,
    wait: Wait,
    mut tmfd: Option<&mut pg_sys::TM_FailureData>,
    op: Op,
    strength: &mut Strength<'_>,
) -> Outcome {
    multixact::set_oldest_member();
    let (what, update, oper) = (op.name(), op.modifies(), op.wait_oper());
    let mut tuplock: Option<Mode> = None;
    let fail = |tuplock: Option<Mode>, r| {
        release_tuplock(rel, tid, tuplock);
        Outcome::Failed(r)
    };
    loop {
        let page = Locked::exclusive_pinned(storage::pin_tid(rel, tid).unwrap_or_else(|| not_found(rel, what)));
        let buf = page.buffer();
        let Some(loc) = storage::find_on_page(rel, buf, tid) else {
            drop(page);
            not_found(rel, what)
        };
        // (a version sharing its header keeps sharing it here: checks read
        // and hint a shared header as its own; callers detach it before a
        // stamp or an unlock — an UPDATE inside its own record)
        let mut tuple = loc.heap_tuple(rel);
        let mode = strength.resolve(rel, || version_data::full_tuple(rel, buf, &tuple));
        // SAFETY: tuple points into the exclusively locked page.
        let mut result = unsafe { pg_sys::HeapTupleSatisfiesUpdate(&mut tuple, cid, buf) };
        let mut keep = Vec::new();
        if result == pg_sys::TM_Result::TM_BeingModified {
            match decide_on(loc.header, mode, update) {
                Decision::AlreadyHeld => {
                    return Outcome::Ok(Acquired { loc, page, keep, held: true, tuplock })
                }
                Decision::Proceed(k) => {
                    keep = k;
                    result = pg_sys::TM_Result::TM_Ok;
                }
                Decision::Updated => result = updated_or_deleted(loc.header, &tid),
                Decision::Wait(xids) => match wait {
                    Wait::Block => {
                        // Like heap: a transaction that already holds a
                        // weaker lock on the row does not queue for the
                        // tuple lock — a stronger locker queued there waits
                        // for this transaction, a deadlock
                        let member = xmax_members(loc.header)
                            .iter()
                            .any(|m| multixact::is_current(m.xid));
                        drop(page);
                        if tuplock.is_none() && !member {
                            multixact::lock_tuple(rel, tid, mode as u32, false);
                            tuplock = Some(mode);
                        }
                        for x in xids {
                            multixact::wait_for(x, rel, tid, oper);
                        }
                        continue;
                    }
                    Wait::ReturnBeingModified => {
                        fill_failure(tmfd.as_deref_mut(), &loc, result);
                        drop(page);
                        return fail(tuplock, result);
                    }
                    Wait::Skip => {
                        drop(page);
                        return fail(tuplock, pg_sys::TM_Result::TM_WouldBlock);
                    }
                    Wait::Error => {
                        drop(page);
                        release_tuplock(rel, tid, tuplock);
                        ereport!(
                            ERROR,
                            PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
                            format!(
                                "could not obtain lock on row in relation \"{}\"",
                                crate::pg::rel::relname(rel)
                            )
                        );
                    }
                },
            }
        }
        if result == pg_sys::TM_Result::TM_Updated && !update && mode == Mode::KeyShare {
            // Like heap: a committed non-key update leaves the key in place, so
            // FOR KEY SHARE is granted on this version (the caller also locks
            // the newer ones); the committed updater stays recorded in xmax.
            match chain_step_on(loc.header, mode) {
                ChainStep::Lock(k) => {
                    keep = k;
                    result = pg_sys::TM_Result::TM_Ok;
                }
                ChainStep::Skip => {
                    return Outcome::Ok(Acquired { loc, page, keep, held: true, tuplock })
                }
                ChainStep::Wait(_) | ChainStep::Updated => {}
            }
        }
        if result == pg_sys::TM_Result::TM_Ok && !crosscheck.is_none() {
            // SAFETY: valid tuple, snapshot and locked buffer.
            if !unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut tuple, crosscheck.raw(), buf) } {
                result = pg_sys::TM_Result::TM_Updated;
            }
        }
        if result == pg_sys::TM_Result::TM_Ok {
            return Outcome::Ok(Acquired { loc, page, keep, held: false, tuplock });
        }
        fill_failure(tmfd.as_deref_mut(), &loc, result);
        drop(page);
        return fail(tuplock, result);
    }
}
