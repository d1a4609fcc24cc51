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

use super::row_lock::{self, ChainStep, Decision, Member, Mode, Status};
use super::bulk;
use super::storage::{self, Located};
use super::version_data;
use crate::pg::buffer;
use crate::pg::htup::{self, Header};
use crate::pg::{multixact, predicate};
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

/// A row version this transaction may now modify or lock; its page is
/// exclusively locked.
struct Acquired {
    loc: Located,
    /// Running lockers that stay recorded next to the new xmax.
    keep: Vec<Member>,
    /// A lock request the transaction already holds (nothing to write).
    held: bool,
    /// The heavyweight tuple lock taken to queue behind other waiters.
    tuplock: Option<Mode>,
}

enum Outcome {
    Ok(Acquired),
    Failed(pg_sys::TM_Result::Type),
}

fn current_xid() -> pg_sys::TransactionId {
    // SAFETY: assigns an xid if needed; raises on failure.
    unsafe { pg_sys::GetCurrentTransactionId() }
}

fn fill_failure(tmfd: *mut pg_sys::TM_FailureData, loc: &Located, result: pg_sys::TM_Result::Type) {
    if tmfd.is_null() {
        return;
    }
    let t = loc.header;
    // a shared header's t_ctid (0,0) means the version's own TID
    let ctid = htup::ctid(t);
    let ctid = if htup::tid_offset(&ctid) == 0 { loc.tid } else { ctid };
    // SAFETY: tmfd is caller-provided storage; `t` is a valid header.
    unsafe {
        (*tmfd).ctid = ctid;
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
            crate::pg::rel::relname(rel)
        ),
    )
}

/// The transactions recorded in a version's xmax with their lock or update
/// status: one xid with infomask lock bits, or a MultiXact's members.
fn xmax_members(t: *mut Header) -> Vec<Member> {
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
fn decide_on(t: *mut Header, mode: Mode, update: bool) -> Decision {
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
fn chain_step_on(t: *mut Header, mode: Mode) -> ChainStep {
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
fn updated_or_deleted(t: *mut Header, tid: &pg_sys::ItemPointerData) -> pg_sys::TM_Result::Type {
    if htup::tid_eq(&htup::ctid(t), tid) {
        pg_sys::TM_Result::TM_Deleted
    } else {
        pg_sys::TM_Result::TM_Updated
    }
}

/// A version's raw xmax and xmax infomask bits: compared before and after a
/// page lock is given up, to see whether another transaction changed them.
fn xmax_state(t: *mut Header) -> (pg_sys::TransactionId, u32) {
    (
        htup::raw_xmax(t),
        htup::infomask(t) & pg_sys::HEAP_XMAX_BITS,
    )
}

fn release_tuplock(rel: pg_sys::Relation, tid: pg_sys::ItemPointerData, tuplock: Option<Mode>) {
    if let Some(m) = tuplock {
        multixact::unlock_tuple(rel, tid, m as u32);
    }
}

/// The row-lock strength a request needs. An update's depends on whether it
/// changes a key column, which is decided on the old version under its page
/// lock the first time `acquire` sees it (as in `heap_update`).
#[derive(Clone, Copy)]
enum Strength {
    Known(Mode),
    /// An update to `new`; `keys` are the key columns (`htup::key_columns`).
    UpdateTo {
        new: pg_sys::HeapTuple,
        keys: *const pg_sys::Bitmapset,
    },
}

impl Strength {
    /// `old` gives the old version with its data (materialized only when needed).
    fn resolve(
        &mut self,
        rel: pg_sys::Relation,
        old: impl FnOnce() -> pg_sys::HeapTupleData,
    ) -> Mode {
        if let Strength::UpdateTo { new, keys } = *self {
            let mut old = old();
            let changed = htup::columns_changed(rel, keys, &mut old, new);
            *self = Strength::Known(if changed {
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

/// Locks the page of `tid` exclusively and checks that this transaction may
/// modify (`update`) or lock the row version with `strength`, waiting
/// on conflicting transactions per `wait` like heap: first the tuple's
/// heavyweight lock (queue order), then each conflicting transaction.
#[allow(clippy::too_many_arguments)]
fn acquire(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointerData,
    cid: pg_sys::CommandId,
    crosscheck: pg_sys::Snapshot,
    wait: Wait,
    tmfd: *mut pg_sys::TM_FailureData,
    what: &str,
    strength: &mut Strength,
    update: bool,
) -> Outcome {
    multixact::set_oldest_member();
    let oper = if update {
        pg_sys::XLTW_Oper::XLTW_Update
    } else {
        pg_sys::XLTW_Oper::XLTW_Lock
    };
    let mut tuplock: Option<Mode> = None;
    let fail = |tuplock: Option<Mode>, r| {
        release_tuplock(rel, tid, tuplock);
        Outcome::Failed(r)
    };
    loop {
        let buf = storage::pin_tid(rel, tid).unwrap_or_else(|| not_found(rel, what));
        buffer::lock_exclusive(buf);
        let Some(loc) = storage::find_on_page(rel, buf, tid) else {
            buffer::unlock_release(buf);
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
                    return Outcome::Ok(Acquired {
                        loc,
                        keep,
                        held: true,
                        tuplock,
                    })
                }
                Decision::Proceed(k) => {
                    keep = k;
                    result = pg_sys::TM_Result::TM_Ok;
                }
                Decision::Updated => result = updated_or_deleted(loc.header, &tid),
                Decision::Wait(xids) => match wait {
                    Wait::Block => {
                        buffer::unlock_release(buf);
                        if tuplock.is_none() {
                            multixact::lock_tuple(rel, tid, mode as u32, false);
                            tuplock = Some(mode);
                        }
                        for x in xids {
                            multixact::wait_for(x, rel, tid, oper);
                        }
                        continue;
                    }
                    Wait::ReturnBeingModified => {
                        fill_failure(tmfd, &loc, result);
                        buffer::unlock_release(buf);
                        return fail(tuplock, result);
                    }
                    Wait::Skip => {
                        buffer::unlock_release(buf);
                        return fail(tuplock, pg_sys::TM_Result::TM_WouldBlock);
                    }
                    Wait::Error => {
                        buffer::unlock_release(buf);
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
                    return Outcome::Ok(Acquired {
                        loc,
                        keep,
                        held: true,
                        tuplock,
                    })
                }
                ChainStep::Wait(_) | ChainStep::Updated => {}
            }
        }
        if result == pg_sys::TM_Result::TM_Ok && !crosscheck.is_null() {
            // SAFETY: valid tuple, snapshot and locked buffer.
            if !unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut tuple, crosscheck, buf) } {
                result = pg_sys::TM_Result::TM_Updated;
            }
        }
        if result == pg_sys::TM_Result::TM_Ok {
            return Outcome::Ok(Acquired {
                loc,
                keep,
                held: false,
                tuplock,
            });
        }
        fill_failure(tmfd, &loc, result);
        buffer::unlock_release(buf);
        return fail(tuplock, result);
    }
}

/// What to write into the old version's xmax.
#[derive(Clone, Copy)]
enum Stamp {
    /// Deleted or updated; `ctid` = newer version (or self for delete).
    Modified {
        cid: pg_sys::CommandId,
        ctid: pg_sys::ItemPointerData,
        keys_updated: bool,
        /// An update that needs no index entries (the new version is heap-only).
        hot: bool,
    },
    /// Row lock of the given mode.
    Lock(Mode),
}

/// Infomask lock bits of a row lock (single locker) or of a MultiXact's
/// strongest member.
fn lock_bits(mode: Mode) -> u32 {
    match mode {
        Mode::KeyShare => pg_sys::HEAP_XMAX_KEYSHR_LOCK,
        Mode::Share => pg_sys::HEAP_XMAX_SHR_LOCK,
        Mode::NoKeyExclusive | Mode::Exclusive => pg_sys::HEAP_XMAX_EXCL_LOCK,
    }
}

/// (infomask, infomask2) xmax bits for an xmax recording `members`: a
/// MultiXact (`GetMultiXactIdHintBits`), or the single member's own xid — an
/// updater (KEYS_UPDATED for a key update or delete) or a locker (lock-only,
/// its mode's bits, KEYS_UPDATED for FOR UPDATE).
fn xmax_bits(members: &[Member], multi: bool) -> (u32, u32) {
    let b = row_lock::multi_bits(members);
    let bits2 = if b.keys { pg_sys::HEAP_KEYS_UPDATED } else { 0 };
    let lock_only = if b.has_update {
        0
    } else {
        pg_sys::HEAP_XMAX_LOCK_ONLY
    };
    match members {
        [m] if !multi && m.status.is_update() => (0, bits2),
        _ if !multi => (lock_only | lock_bits(b.strongest), bits2),
        _ => (
            pg_sys::HEAP_XMAX_IS_MULTI | lock_only | lock_bits(b.strongest),
            bits2,
        ),
    }
}

/// Writes xmax (and cmax/ctid) into a located version; page stays locked.
/// `keep` are running lockers that must stay recorded: with any, the new
/// xmax is a MultiXact of them and this transaction.
fn stamp(
    rel: pg_sys::Relation,
    loc: &Located,
    xid: pg_sys::TransactionId,
    what: Stamp,
    keep: &[Member],
) {
    let plan = StampPlan::of(loc, xid, what, keep);
    storage::change_header(rel, loc, |t| plan.apply(t, None));
}

/// A stamp worked out before its page change: the xmax (a MultiXact made
/// first and WAL-logged by multixact.c, as heap does, so the page's record
/// can name it), its infomask bits and cmax (a combo CID is allocated here,
/// outside the change's critical section).
struct StampPlan {
    what: Stamp,
    xmax: pg_sys::TransactionId,
    bits: u32,
    bits2: u32,
    cmax: Option<(pg_sys::CommandId, bool)>,
}

impl StampPlan {
    fn of(loc: &Located, xid: pg_sys::TransactionId, what: Stamp, keep: &[Member]) -> StampPlan {
        let status = match what {
            Stamp::Modified { keys_updated, .. } => Status::update(keys_updated),
            Stamp::Lock(mode) => Status::lock(mode),
        };
        let members = row_lock::merged(
            keep,
            Member {
                xid: xid.into_inner(),
                status,
            },
        );
        let multi = members.len() > 1;
        let xmax = if multi {
            let pairs: Vec<(u32, u32)> =
                members.iter().map(|m| (m.xid, m.status as u32)).collect();
            multixact::create(&pairs)
        } else {
            xid
        };
        let (bits, bits2) = xmax_bits(&members, multi);
        let cmax = match what {
            Stamp::Modified { cid, .. } => Some(htup::adjust_cmax(loc.header, cid)),
            _ => None,
        };
        StampPlan {
            what,
            xmax,
            bits,
            bits2,
            cmax,
        }
    }

    /// Writes the stamp into header `t` (in a page change); `ctid`, when
    /// given, replaces the planned newer version's TID (known only once
    /// the new version has its place).
    fn apply(&self, t: *mut htup::Header, ctid: Option<pg_sys::ItemPointerData>) {
        let bits = self.bits;
        htup::set_infomask(
            t,
            (htup::infomask(t) & !(pg_sys::HEAP_XMAX_BITS | HEAP_MOVED)) | bits,
        );
        // like heap: a delete, a non-HOT update and a lock-only xmax clear
        // HEAP_HOT_UPDATED (left by an aborted HOT update); a HOT update sets it
        let hot = matches!(self.what, Stamp::Modified { hot: true, .. });
        let mask2 = htup::infomask2(t) & !(pg_sys::HEAP_KEYS_UPDATED | pg_sys::HEAP_HOT_UPDATED);
        let keep_hot = matches!(self.what, Stamp::Lock(_))
            && !htup::xmax_locked_only(bits)
            && htup::infomask2(t) & pg_sys::HEAP_HOT_UPDATED != 0;
        let hot_bit = if hot || keep_hot { pg_sys::HEAP_HOT_UPDATED } else { 0 };
        htup::set_infomask2(t, mask2 | self.bits2 | hot_bit);
        htup::set_xmax(t, self.xmax);
        if let (Stamp::Modified { ctid: planned, .. }, Some((cmax, combo))) = (self.what, self.cmax) {
            htup::set_cid(t, cmax, combo);
            htup::set_ctid(t, ctid.unwrap_or(planned));
        }
    }
}

/// An UPDATE done while the old version's page stays locked from the
/// checks to the stamp, as heap does: the new version goes to the backend's
/// lane L0 page when that can be locked at once and has room, and both
/// page changes are one WAL record ([`storage::append_and_stamp`]). Not
/// when lockers must be carried over or the toaster must run (it writes
/// another table): those take [`update`]'s general path.
struct Together {
    xid: pg_sys::TransactionId,
    cid: pg_sys::CommandId,
    hot_blocking: *mut pg_sys::Bitmapset,
    keys_updated: bool,
    floor: Option<u32>,
}

impl Together {
    /// The new version's TID and whether it is heap-only; None (nothing
    /// changed, the old page still locked) when the general path must run.
    fn update(
        &self,
        rel: pg_sys::Relation,
        loc: &Located,
        old: &mut pg_sys::HeapTupleData,
        slot: *mut pg_sys::TupleTableSlot,
    ) -> Option<(pg_sys::ItemPointerData, bool)> {
        let (tuple, should_free) = slot_tuple(rel, slot);
        // SAFETY: formed heap tuple.
        let len = unsafe { (*tuple).t_len as usize };
        let target = (!needs_toaster(Some(old), tuple) && len <= super::format::MAX_TUPLE_SIZE)
            .then(|| storage::lane_page_now(rel, len, self.floor, loc.buf))
            .flatten();
        let Some(target) = target else {
            free_if(tuple, should_free);
            return None;
        };
        let index_stable = !htup::columns_changed(rel, self.hot_blocking, old, tuple);
        let stored = prepare_insert(rel, tuple, self.xid, self.cid, 0, Some(old));
        debug_assert!(stored == tuple, "no toasting on this path");
        // SAFETY: the tuple about to be stored is ours to write.
        let t = unsafe { (*stored).t_data };
        mark_heap_only(t, index_stable);
        let what = Stamp::Modified {
            cid: self.cid,
            ctid: loc.tid,
            keys_updated: self.keys_updated,
            hot: index_stable,
        };
        let plan = StampPlan::of(loc, self.xid, what, &[]);
        let new_tid =
            storage::append_and_stamp(rel, target, stored, loc, |h, tid| plan.apply(h, Some(tid)));
        if target != loc.buf {
            buffer::unlock_release(target);
        }
        free_if(tuple, should_free);
        Some((new_tid, index_stable))
    }
}

/// Marks a new version heap-only (an index-stable update) or not, with no
/// HOT-updated flag of its own yet.
fn mark_heap_only(t: *mut htup::Header, index_stable: bool) {
    let flags2 = htup::infomask2(t) & !(pg_sys::HEAP_ONLY_TUPLE | pg_sys::HEAP_HOT_UPDATED);
    let only = if index_stable { pg_sys::HEAP_ONLY_TUPLE } else { 0 };
    htup::set_infomask2(t, flags2 | only);
}

/// After a successful update: the old page unlocked and released, the
/// tuple lock dropped, the slot naming the new version, pgstat told.
fn updated(
    rel: pg_sys::Relation,
    loc: &Located,
    otid: pg_sys::ItemPointerData,
    tuplock: Option<Mode>,
    slot: *mut pg_sys::TupleTableSlot,
    new_tid: pg_sys::ItemPointerData,
    index_stable: bool,
) {
    buffer::unlock_release(loc.buf);
    release_tuplock(rel, otid, tuplock);
    // SAFETY: valid slot.
    unsafe { (*slot).tts_tid = new_tid };
    #[cfg(feature = "pg15")]
    // SAFETY: stats counter.
    unsafe {
        pg_sys::pgstat_count_heap_update(rel, index_stable)
    };
    #[cfg(not(feature = "pg15"))]
    // SAFETY: stats counter.
    unsafe {
        pg_sys::pgstat_count_heap_update(rel, index_stable, !index_stable)
    };
}

/// Whether storing `tuple` (replacing `old`) goes through the toaster:
/// heap_update's test.
fn needs_toaster(old: Option<&pg_sys::HeapTupleData>, tuple: pg_sys::HeapTuple) -> bool {
    let old_external = old.is_some_and(|o| htup::has_external(o.t_data));
    // SAFETY: formed heap tuple.
    old_external
        || unsafe { htup::has_external((*tuple).t_data) || (*tuple).t_len as usize > htup::TOAST_TUPLE_THRESHOLD }
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
    // like heap_update: an old version with TOASTed values goes through the
    // toaster too, which deletes the values the new version no longer uses
    // SAFETY: open relation and formed tuple.
    unsafe {
        (*tuple).t_tableOid = (*rel).rd_id;
        if needs_toaster(old.as_deref(), tuple) {
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
    bulk_state: bool,
) {
    // like heap: an insert only meets relation-level SIREAD locks
    predicate::check_conflict_in(rel, None);
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
    let entry = if bulk_state {
        bulk::Entry::BulkState
    } else {
        bulk::Entry::Single { cid }
    };
    let in_bulk = spec_token.is_none() && bulk::take(rel, &[stored], entry) == 1;
    let tid = if in_bulk {
        // SAFETY: the bulk load set the stored tuple's TID.
        unsafe { (*stored).t_self }
    } else {
        storage::append(rel, stored, spec_token.is_none())
    };
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

/// COPY's `multi_insert`: the rows of `slots` are prepared like single
/// inserts (TOAST, xmin, cid) and stored a page at a time — in L0, or in
/// the runs of a bulk load ([`bulk`]).
pub fn multi_insert(
    rel: pg_sys::Relation,
    slots: &[*mut pg_sys::TupleTableSlot],
    cid: pg_sys::CommandId,
    options: i32,
) {
    if slots.is_empty() {
        return;
    }
    predicate::check_conflict_in(rel, None);
    let xid = current_xid();
    let mut fetched = Vec::with_capacity(slots.len());
    let mut stored = Vec::with_capacity(slots.len());
    for &slot in slots {
        let (tuple, should_free) = slot_tuple(rel, slot);
        stored.push(prepare_insert(rel, tuple, xid, cid, options, None));
        fetched.push((tuple, should_free));
    }
    // SAFETY: formed tuples.
    let bytes: usize = stored.iter().map(|t| unsafe { (**t).t_len as usize }).sum();
    let taken = bulk::take(rel, &stored, bulk::Entry::Batch { bytes });
    storage::append_batch(rel, &stored[taken..]);
    for ((&slot, (tuple, should_free)), s) in slots.iter().zip(fetched).zip(stored) {
        // SAFETY: slot and tuples are valid; `s` carries the TID.
        unsafe {
            (*slot).tts_tid = (*s).t_self;
            (*tuple).t_self = (*s).t_self;
        }
        free_if(s, s != tuple);
        free_if(tuple, should_free);
    }
    // SAFETY: counts the inserts for autovacuum/pg_stat.
    unsafe { pg_sys::pgstat_count_heap_insert(rel, slots.len() as i64) };
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
    let Some(mut loc) = storage::find_on_page(rel, buf, tid) else {
        buffer::unlock_release(buf);
        not_found(rel, "complete")
    };
    storage::make_stampable(rel, &mut loc);
    if succeeded {
        storage::change_header(rel, &loc, |t| htup::set_ctid(t, tid));
        buffer::unlock_release(buf);
    } else {
        kill_version(rel, &loc);
        let external = htup::has_external(loc.header);
        let mut tuple = version_data::full_tuple(rel, buf, &loc.heap_tuple(rel));
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
    storage::change_header(rel, loc, |t| {
        htup::set_infomask(
            t,
            (htup::infomask(t) & !pg_sys::HEAP_XMAX_BITS) | pg_sys::HEAP_XMIN_INVALID,
        );
        htup::set_xmin(t, pg_sys::InvalidTransactionId);
        htup::set_ctid(t, loc.tid);
    });
}

fn kill_tid(rel: pg_sys::Relation, tid: pg_sys::ItemPointerData) {
    let buf = storage::pin_tid(rel, tid).unwrap_or_else(|| not_found(rel, "invalidate"));
    buffer::lock_exclusive(buf);
    if let Some(mut loc) = storage::find_on_page(rel, buf, tid) {
        storage::make_stampable(rel, &mut loc);
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
    let mut acq = match acquire(
        rel,
        tid,
        cid,
        crosscheck,
        policy,
        tmfd,
        "delete",
        &mut Strength::Known(Mode::Exclusive),
        true,
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
    stamp(
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
    );
    release_tuplock(rel, tid, acq.tuplock);
    let external = htup::has_external(loc.header);
    let mut tuple = version_data::full_tuple(rel, loc.buf, &loc.heap_tuple(rel));
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

/// The xmax a new version inherits from the old one when running lockers
/// (necessarily KEY SHARE, or this transaction's own) stay on the old one,
/// as in heap: the old raw xmax, with the lock bits of all its members, so
/// the key those lockers protect cannot be deleted through the new version.
fn carried_locks(old: *mut Header) -> (pg_sys::TransactionId, u32) {
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
    rel: pg_sys::Relation,
    otid: pg_sys::ItemPointerData,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    lockmode: &mut pg_sys::LockTupleMode::Type,
    hot: &mut bool,
) -> pg_sys::TM_Result::Type {
    let policy = if wait {
        Wait::Block
    } else {
        Wait::ReturnBeingModified
    };
    let xid = current_xid();
    let keys = htup::key_columns(rel);
    let hot_blocking = htup::hot_blocking_columns(rel);
    // read before any page is locked (it cannot move while this statement's
    // lock is held)
    let floor = super::manifest::l0_append_floor(rel);
    let (new, should_free) = slot_tuple(rel, slot);
    let mut strength = Strength::UpdateTo { new, keys };
    let result = loop {
        let outcome = acquire(
            rel,
            otid,
            cid,
            crosscheck,
            policy,
            tmfd,
            "update",
            &mut strength,
            true,
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
                hot_blocking,
                keys_updated,
                floor,
            };
            if let Some((new_tid, index_stable)) = together.update(rel, loc, &mut old, slot) {
                *hot = index_stable;
                updated(rel, loc, otid, acq.tuplock, slot, new_tid, index_stable);
                break pg_sys::TM_Result::TM_Ok;
            }
        }
        // the old version's header is kept across the unlock below: its own
        storage::make_stampable(rel, &mut acq.loc);
        let loc = &acq.loc;
        let old_xmax = xmax_state(loc.header);
        let carry = (!acq.keep.is_empty()).then(|| carried_locks(loc.header));
        buffer::unlock(loc.buf); // keep the pin: the old version's bytes stay put
        let (tuple, should_free) = slot_tuple(rel, slot);
        let index_stable = !htup::columns_changed(rel, hot_blocking, &mut old, tuple);
        let stored = prepare_insert(rel, tuple, xid, cid, 0, Some(&mut old));
        // SAFETY: the tuple about to be stored is ours to write.
        let t = unsafe { (*stored).t_data };
        if let Some((xmax, bits)) = carry {
            htup::set_xmax(t, xmax);
            htup::set_infomask(t, (htup::infomask(t) & !pg_sys::HEAP_XMAX_BITS) | bits);
        }
        mark_heap_only(t, index_stable);
        let new_tid = storage::append(rel, stored, true);
        free_if(stored, stored != tuple);
        free_if(tuple, should_free);

        buffer::lock_exclusive(loc.buf);
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
            *hot = index_stable;
            updated(rel, loc, otid, acq.tuplock, slot, new_tid, index_stable);
            break pg_sys::TM_Result::TM_Ok;
        }
        buffer::unlock_release(loc.buf);
        release_tuplock(rel, otid, acq.tuplock);
        kill_tid(rel, new_tid); // lost a race: retry from the top
    };
    free_if(new, should_free);
    // SAFETY: the bitmaps htup returned, not used any more.
    unsafe {
        pg_sys::bms_free(keys);
        pg_sys::bms_free(hot_blocking);
    }
    result
}

/// Records a row lock of `mode` on every newer version of an update chain
/// that starts at `start` (made by `prior_xmax`), waiting for conflicting
/// transactions (`heap_lock_updated_tuple_rec`). Ends where the chain ends
/// or breaks; TM_Updated/TM_Deleted when a committed update or delete there
/// conflicts with the lock.
fn lock_chain(
    rel: pg_sys::Relation,
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
        let Some(buf) = storage::pin_tid(rel, tid) else {
            return pg_sys::TM_Result::TM_Ok;
        };
        buffer::lock_exclusive(buf);
        let Some(mut loc) = storage::find_on_page(rel, buf, tid) else {
            buffer::unlock_release(buf);
            return pg_sys::TM_Result::TM_Ok;
        };
        storage::make_stampable(rel, &mut loc);
        let xmin = htup::xmin(loc.header).into_inner();
        if xmin != prior || aborted(xmin) {
            buffer::unlock_release(buf); // the chain broke here
            return pg_sys::TM_Result::TM_Ok;
        }
        match chain_step_on(loc.header, mode) {
            ChainStep::Skip => {}
            ChainStep::Wait(x) => {
                buffer::unlock_release(buf);
                multixact::wait_for(x, rel, tid, pg_sys::XLTW_Oper::XLTW_LockUpdated);
                continue;
            }
            ChainStep::Updated => {
                let r = updated_or_deleted(loc.header, &tid);
                buffer::unlock_release(buf);
                return r;
            }
            ChainStep::Lock(keep) => stamp(rel, &loc, xid, Stamp::Lock(mode), &keep),
        }
        let mask = htup::infomask(loc.header);
        let next = htup::ctid(loc.header);
        let upd = if mask & (pg_sys::HEAP_XMAX_INVALID | pg_sys::HEAP_XMAX_LOCK_ONLY) != 0 {
            0
        } else {
            htup::update_xid(loc.header).into_inner()
        };
        buffer::unlock_release(buf);
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
    let mode = Mode::from_raw(mode);
    let mut tid = tid;
    let mut traversed = false;
    if !tmfd.is_null() {
        // like heapam_tuple_lock: callers pass uninitialised storage
        // (GetTupleForTrigger) and read `traversed` after TM_Ok
        // SAFETY: caller storage.
        unsafe { (*tmfd).traversed = false };
    }
    loop {
        match acquire(
            rel,
            tid,
            cid,
            std::ptr::null_mut(),
            policy,
            tmfd,
            "lock",
            &mut Strength::Known(mode),
            false,
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
                    buffer::unlock(loc.buf);
                    let r = lock_chain(rel, next, prior, mode);
                    buffer::lock_exclusive(loc.buf);
                    let now = xmax_state(loc.header);
                    if r != pg_sys::TM_Result::TM_Ok {
                        fill_failure(tmfd, loc, r);
                        buffer::unlock_release(loc.buf);
                        release_tuplock(rel, tid, acq.tuplock);
                        return (r, tid);
                    }
                    if now != seen {
                        buffer::unlock_release(loc.buf);
                        release_tuplock(rel, tid, acq.tuplock);
                        continue;
                    }
                }
                if !acq.held {
                    stamp(rel, loc, current_xid(), Stamp::Lock(mode), &acq.keep);
                }
                release_tuplock(rel, tid, acq.tuplock);
                storage::store_in_slot(rel, slot, loc.heap_tuple(rel), loc.buf);
                buffer::unlock_release(loc.buf);
                if traversed && !tmfd.is_null() {
                    // SAFETY: caller storage.
                    unsafe { (*tmfd).traversed = true };
                }
                return (pg_sys::TM_Result::TM_Ok, tid);
            }
            Outcome::Failed(pg_sys::TM_Result::TM_Updated) if follow_updates && !tmfd.is_null() => {
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
            Outcome::Failed(r) => {
                if traversed && !tmfd.is_null() {
                    // Like heapam_tuple_lock: a newer version that a later
                    // command of this transaction inserted is "self modified"
                    // (its cmin is the problematic command id), not invisible.
                    if r == pg_sys::TM_Result::TM_Invisible {
                        if let Some((xmin, cmin)) = inserted_by_later_command(rel, tid, cid) {
                            // SAFETY: caller storage.
                            unsafe {
                                (*tmfd).xmax = xmin;
                                (*tmfd).cmax = cmin;
                                (*tmfd).traversed = true;
                            }
                            return (pg_sys::TM_Result::TM_SelfModified, tid);
                        }
                    }
                    // SAFETY: caller storage.
                    unsafe { (*tmfd).traversed = true };
                }
                // Like heapam_tuple_lock, the slot holds the version also when
                // it could not be locked: ON CONFLICT reads its xmin to tell
                // "affected twice by this command" from other failures.
                let any = std::ptr::addr_of_mut!(pg_sys::SnapshotAnyData);
                super::fetch::fetch_row_version(rel, tid, any, slot);
                return (r, tid);
            }
        }
    }
}

/// `(xmin, cmin)` of version `tid` when this transaction inserted it with a
/// command id at or after `cid`.
fn inserted_by_later_command(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointerData,
    cid: pg_sys::CommandId,
) -> Option<(pg_sys::TransactionId, pg_sys::CommandId)> {
    let buf = storage::pin_tid(rel, tid)?;
    buffer::lock_share(buf);
    let found = storage::find_on_page(rel, buf, tid).and_then(|loc| {
        let xmin = htup::xmin(loc.header);
        // SAFETY: valid header on a share-locked page.
        let cmin = unsafe { pg_sys::HeapTupleHeaderGetCmin(loc.header) };
        (multixact::is_current(xmin.into_inner()) && cmin >= cid).then_some((xmin, cmin))
    });
    buffer::unlock_release(buf);
    found
}
