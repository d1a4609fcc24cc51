//! What a modification writes into the old version: the xmax, infomask and
//! `t_ctid` a delete, update or row lock leaves (`Stamp`, `StampPlan`), and
//! an update's old and new version changed in one step (`Together`).

use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use super::*;

/// What to write into the old version's xmax.
#[derive(Clone, Copy)]
pub(super) enum Stamp {
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
pub(super) fn lock_bits(mode: Mode) -> u32 {
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
pub(super) fn xmax_bits(members: &[Member], multi: bool) -> (u32, u32) {
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
pub(super) fn stamp(
    rel: Rel,
    loc: &Located,
    xid: pg_sys::TransactionId,
    what: Stamp,
    keep: &[Member],
) {
    stamp_decoded(rel, loc, xid, what, keep, Vec::new())
}

/// [`stamp`] whose record is also a row change's decoding (a DELETE's:
/// `decoded` is its main data).
pub(super) fn stamp_decoded(
    rel: Rel,
    loc: &Located,
    xid: pg_sys::TransactionId,
    what: Stamp,
    keep: &[Member],
    decoded: Vec<u8>,
) {
    let plan = StampPlan::of(loc, xid, what, keep);
    storage::change_header_decoded(rel, loc, |t| plan.apply(t, None), decoded);
}

/// A stamp worked out before its page change: the xmax (a MultiXact made
/// first and WAL-logged by multixact.c, as heap does, so the page's record
/// can name it), its infomask bits and cmax (a combo CID is allocated here,
/// outside the change's critical section).
pub(super) struct StampPlan {
    pub(super) what: Stamp,
    pub(super) xmax: pg_sys::TransactionId,
    pub(super) bits: u32,
    pub(super) bits2: u32,
    pub(super) cmax: Option<(pg_sys::CommandId, bool)>,
}

impl StampPlan {
    pub(super) fn of(loc: &Located, xid: pg_sys::TransactionId, what: Stamp, keep: &[Member]) -> StampPlan {
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
    pub(super) fn apply(&self, t: *mut htup::Header, ctid: Option<pg_sys::ItemPointerData>) {
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
pub(super) struct Together<'a> {
    pub(super) xid: pg_sys::TransactionId,
    pub(super) cid: pg_sys::CommandId,
    pub(super) cols: &'a htup::UpdateColumns,
    pub(super) keys_updated: bool,
    pub(super) floor: Option<u32>,
    /// Whether the old version's chain root is known (see `summarizing`).
    pub(super) root_known: bool,
}

impl Together<'_> {
    /// The new version's TID and whether it is heap-only; None (nothing
    /// changed, the old page still locked) when the general path must run.
    pub(super) fn update(
        &self,
        rel: Rel,
        loc: &Located,
        old: &mut pg_sys::HeapTupleData,
        slot: Slot,
    ) -> Option<(pg_sys::ItemPointerData, bool)> {
        let (tuple, should_free) = slot_tuple(rel, slot);
        // SAFETY: formed heap tuple.
        let len = unsafe { (*tuple).t_len as usize };
        let target = (!needs_toaster(Some(old), tuple) && len <= crate::lsm::format::MAX_TUPLE_SIZE)
            .then(|| storage::lane_page_now(rel, len, self.floor, loc.buf))
            .flatten();
        let Some(target) = target else {
            free_if(tuple, should_free);
            return None;
        };
        let index_stable = self.cols.changed(rel, old, tuple).index_stable(self.root_known);
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
        // (built before the record's critical section: it may read TOAST)
        let decoded = crate::lsm::logical::update_mark(rel, old, stored);
        let new_tid = storage::append_and_stamp(
            rel,
            target,
            // SAFETY: the formed new version prepared above, ours to write.
            unsafe { &mut *stored },
            loc,
            |h, tid| plan.apply(h, Some(tid)),
            decoded,
        );
        if target != loc.buf {
            drop(Locked::adopt(target));
        }
        free_if(tuple, should_free);
        Some((new_tid, index_stable))
    }
}

/// Marks a new version heap-only (an index-stable update) or not, with no
/// HOT-updated flag of its own yet.
pub(super) fn mark_heap_only(t: *mut htup::Header, index_stable: bool) {
    let flags2 = htup::infomask2(t) & !(pg_sys::HEAP_ONLY_TUPLE | pg_sys::HEAP_HOT_UPDATED);
    let only = if index_stable { pg_sys::HEAP_ONLY_TUPLE } else { 0 };
    htup::set_infomask2(t, flags2 | only);
}

/// After a successful update: the old page (`page`) unlocked and released,
/// the tuple lock dropped, the slot naming the new version, pgstat told;
/// with `summaries`, an index-stable update's chain root, the summarizing
/// indexes widened by the new row under it.
#[allow(clippy::too_many_arguments)]
pub(super) fn updated(
    rel: Rel,
    page: Locked,
    otid: pg_sys::ItemPointerData,
    tuplock: Option<Mode>,
    slot: Slot,
    new_tid: pg_sys::ItemPointerData,
    index_stable: bool,
    summaries: Option<pg_sys::ItemPointerData>,
) {
    drop(page);
    release_tuplock(rel, otid, tuplock);
    if index_stable {
        crate::lsm::chain_hint::note_updated(rel, &otid, &new_tid, current_xid());
    }
    // SAFETY: valid slot.
    unsafe { (*slot.raw()).tts_tid = new_tid };
    crate::pg::stats::count_update(rel, index_stable);
    #[cfg(not(feature = "pg15"))]
    if let Some(root) = summaries {
        crate::lsm::summarizing::insert(rel, slot, root);
    }
    #[cfg(feature = "pg15")]
    debug_assert!(summaries.is_none(), "no summarized columns before PostgreSQL 16");
}
