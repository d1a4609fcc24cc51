//! Index-stable updates: heap's HOT chains without the page limit.
//!
//! An UPDATE that changes no column an index depends on
//! ([`htup::hot_blocking_columns`]) writes its new version to the old
//! version's own L0 page when it has room (as heap's HOT), else wherever
//! inserts go (L0, any page), with heap's `HEAP_ONLY_TUPLE` flag; it marks the old one
//! `HEAP_HOT_UPDATED`, and inserts no index entry: every index entry keeps
//! naming the chain's *root*, its first version. Each version keeps its own
//! TID (`ctid` means what it means on heap); `t_ctid` links the chain.
//!
//! ```text
//!  index entry ──> root (v1) ──t_ctid──> v2 (heap-only) ──t_ctid──> v3 (heap-only)
//!  after VACUUM:   root = redirect ─────────────────────────────────> v3
//! ```
//!
//! Reaching a row through an index walks the chain from the root to the
//! version the snapshot sees ([`search`], heap's `heap_hot_search_buffer`
//! across pages). Seq scans see every version and need no chains.
//!
//! Shortening: VACUUM's sweep turns a root that is dead to every snapshot
//! into a *redirect* — a header-only version (`REDIRECT` in `t_infomask2`,
//! xmin and xmax invalid, so no snapshot ever sees it) whose `t_ctid` names
//! the chain's first version that is not dead — and clears `HEAP_HOT_UPDATED`
//! on a root whose whole chain is dead, which then leaves the indexes like
//! any dead row. The flush and merges of the same VACUUM (same cutoff) then
//! drop the chain's dead members: dead versions form a prefix of a chain, and
//! every root was redirected past that prefix before. A walk that finds a
//! member missing (it read the root before the redirect was written) starts
//! over from the root once.

use crate::pg::snapshot::Snap;
use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use super::manifest_cache::{self, Trust};
use super::{chain_hint, format, storage};
use crate::pg::buffer;
use crate::pg::page;
use crate::pg::htup::{self, Header};
use crate::pg::predicate;
use pgrx::pg_sys;

/// `t_infomask2` bit of a redirect.
pub const REDIRECT: u32 = format::REDIRECT_FLAG as u32;
/// `t_infomask2` bit of a redirect stored without its version's body.
pub const BODYLESS: u32 = format::REDIRECT_BODYLESS_FLAG as u32;

pub fn is_heap_only(t: *mut Header) -> bool {
    htup::infomask2(t) & pg_sys::HEAP_ONLY_TUPLE != 0
}

pub fn is_redirect(t: *mut Header) -> bool {
    htup::infomask2(t) & REDIRECT != 0
}

/// `HeapTupleHeaderIsHotUpdated`: the version was updated by a HOT update
/// whose updater did not (yet) abort, and its inserter did not abort (a
/// frozen xmin has both xmin hint bits set: not invalid).
pub fn is_hot_updated(t: *mut Header) -> bool {
    let m = htup::infomask(t);
    let xmin_invalid =
        m & (pg_sys::HEAP_XMIN_COMMITTED | pg_sys::HEAP_XMIN_INVALID) == pg_sys::HEAP_XMIN_INVALID;
    htup::infomask2(t) & pg_sys::HEAP_HOT_UPDATED != 0
        && m & pg_sys::HEAP_XMAX_INVALID == 0
        && !xmin_invalid
}

/// Whether a root leads to more versions (a chain to walk).
pub fn has_chain(t: *mut Header) -> bool {
    is_redirect(t) || is_hot_updated(t)
}

/// Turns a header into a redirect to `target` (on a page copy or under an
/// exclusive lock).
pub fn make_redirect(t: *mut Header, target: pg_sys::ItemPointerData) {
    htup::set_xmin(t, pg_sys::InvalidTransactionId);
    htup::set_xmax(t, pg_sys::InvalidTransactionId);
    htup::set_infomask(t, pg_sys::HEAP_XMIN_INVALID | pg_sys::HEAP_XMAX_INVALID);
    htup::set_infomask2(t, REDIRECT | (htup::infomask2(t) & BODYLESS));
    htup::set_ctid(t, target);
}

/// Whether a redirect (`t_len` bytes long; on a compact page, whose items
/// are headers, the body is in the blob) still holds the body of the version
/// it was: garbage that a rewrite of its run drops.
pub fn holds_body(t: *mut Header, t_len: usize, compact: bool) -> bool {
    htup::infomask2(t) & BODYLESS == 0 && (compact || t_len > REDIRECT_LEN)
}

/// Bytes a redirect keeps in a run: its fixed header, padded.
pub const REDIRECT_LEN: usize = 24;

/// The bytes a redirect keeps in a run: its fixed header, padded to 24.
pub fn redirect_bytes(t: *mut Header) -> Vec<u8> {
    let mut out = vec![0u8; REDIRECT_LEN];
    // SAFETY: a version's header has at least 23 readable bytes.
    unsafe { std::ptr::copy_nonoverlapping(t as *const u8, out.as_mut_ptr(), 23) };
    out[22] = REDIRECT_LEN as u8; // t_hoff: no null bitmap, no data
    let mask2 = format::u16_at(&out, 18) | format::REDIRECT_BODYLESS_FLAG;
    format::put_u16(&mut out, 18, mask2);
    out
}

/// One pinned page at a time for chain walks.
pub struct Walker {
    rel: Rel,
    pub buf: pg_sys::Buffer,
}

impl Walker {
    pub fn new(rel: Rel, buf: pg_sys::Buffer) -> Walker {
        Walker { rel, buf }
    }

    pub fn rel(&self) -> Rel {
        self.rel
    }

    /// Pins the page holding `tid` (reusing the pinned one) and share-locks
    /// it; None (nothing locked) when the manifest has no such version.
    pub fn lock(&mut self, tid: pg_sys::ItemPointerData) -> Option<storage::Located> {
        self.lock_as(tid, Trust::Validate)
    }

    /// [`Walker::lock`] for a reader with MVCC snapshot `snapshot`, which may
    /// find the page through the backend's manifest copy unchecked (see
    /// [`manifest_cache`]); a page that turns out not to hold `tid` is
    /// looked up again, checked.
    pub fn lock_seen_by(
        &mut self,
        tid: pg_sys::ItemPointerData,
        snapshot: Snap,
    ) -> Option<storage::Located> {
        self.lock_as(tid, Trust::Snapshot(snapshot))
            .or_else(|| self.lock_as(tid, Trust::Validate))
    }

    fn lock_as(&mut self, tid: pg_sys::ItemPointerData, trust: Trust) -> Option<storage::Located> {
        let (block, in_run) = manifest_cache::locate_page(self.rel, &tid, trust)?;
        if self.buf == 0 || buffer::block_number(self.buf) != block {
            if in_run {
                // a compressed run page's row comes from the shared cache:
                // its slots load while the buffer is found and pinned
                super::version_data::prefetch_cached(self.rel, block);
            }
            self.release();
            self.buf = buffer::read(self.rel, block);
            page::prefetch_ends(buffer::page(self.buf));
        }
        buffer::lock_share(self.buf);
        let loc = storage::find_on_page(self.rel, self.buf, tid);
        if loc.is_none() {
            buffer::unlock(self.buf);
        }
        loc
    }

    pub fn unlock(&self) {
        buffer::unlock(self.buf);
    }

    pub fn release(&mut self) {
        if self.buf != 0 {
            buffer::release(self.buf);
            self.buf = 0;
        }
    }
}

/// The next member after a version: its TID and the xid its xmin must be.
fn successor(
    t: *mut Header,
    at: &pg_sys::ItemPointerData,
) -> Option<(pg_sys::ItemPointerData, pg_sys::TransactionId)> {
    if !is_hot_updated(t) {
        return None;
    }
    let next = htup::ctid(t);
    (!htup::tid_eq(&next, at) && format::offset_in_range(htup::tid_offset(&next)))
        .then(|| (next, htup::update_xid(t)))
}

/// Heap's `heap_hot_search_buffer` over a chain that may span pages: from
/// `tid` (an index entry's root, or with `first_call` false the member a
/// previous call returned, which is skipped) to the first version `snapshot`
/// sees, stored into `slot` (when given) with `tid` set to its own TID.
/// `all_dead` (first call only) says whether every member is surely dead.
/// A first call with an MVCC snapshot starts at the chain's hint when
/// there is one that checks out ([`chain_hint`]), else at the root.
pub fn search(
    w: &mut Walker,
    tid: &mut pg_sys::ItemPointerData,
    snapshot: Snap,
    slot: Option<Slot>,
    all_dead: Option<&mut bool>,
    first_call: bool,
) -> bool {
    if first_call && snapshot.is_mvcc() {
        for hint in chain_hint::starts(w.rel, tid, snapshot).into_iter().flatten() {
            let mut at = *tid;
            if walk(w, &mut at, snapshot, slot, None, Start::Hint(hint)) {
                *tid = at;
                if let Some(d) = all_dead {
                    *d = false;
                }
                return true;
            }
        }
    }
    let start = if first_call { Start::Root } else { Start::After };
    walk(w, tid, snapshot, slot, all_dead, start)
}

/// Where a [`walk`] starts.
#[derive(Clone, Copy)]
enum Start {
    /// At the root `tid` names.
    Root,
    /// After the member `tid` names (a previous call returned it).
    After,
    /// At a hinted member of the chain rooted at `tid`; checked before it
    /// is trusted (see [`chain_hint`]).
    Hint(chain_hint::Start),
}

fn walk(
    w: &mut Walker,
    tid: &mut pg_sys::ItemPointerData,
    snapshot: Snap,
    slot: Option<Slot>,
    all_dead: Option<&mut bool>,
    start: Start,
) -> bool {
    let rel = w.rel;
    let root = *tid;
    let first_call = matches!(start, Start::Root);
    let (mut at, mut checking) = match start {
        Start::Hint(hint) => (hint.member, Some(hint)),
        _ => (*tid, None),
    };
    let from_hint = checking.is_some();
    let mut prior_xmax = pg_sys::InvalidTransactionId;
    let mut at_root = first_call;
    let mut skip = matches!(start, Start::After);
    let mut restarted = false;
    let mut dead = first_call;
    let mut steps = 0u32;
    let mut vistest: *mut pg_sys::GlobalVisState = std::ptr::null_mut();
    // Opportunistic pruning (heap_page_prune_opt's role): the members from
    // the root on that are dead to every snapshot, the newest updater among
    // them, the root's t_ctid as read, and the first member after them.
    let mut prune = Prune {
        active: first_call,
        dead_members: 0,
        newest_xmax: pg_sys::InvalidTransactionId,
        root_ctid: None,
        first_live: None,
    };
    let found = loop {
        steps += 1;
        let Some(loc) = w.lock_seen_by(at, snapshot) else {
            if !at_root && first_call && !restarted {
                // a member a concurrent VACUUM dropped after redirecting the root
                restarted = true;
                (at, prior_xmax, at_root) = (root, pg_sys::InvalidTransactionId, true);
                continue;
            }
            break false;
        };
        let h = loc.header;
        // set when a start's check already found the member visible
        let mut seen = false;
        if let Some(hint) = checking.take() {
            let trusted = !is_redirect(h)
                && is_heap_only(h)
                && htup::xmin(h) == hint.xmin
                && (chain_hint::xmin_visible(h, snapshot)
                    // the backend's own version, which the snapshot must see
                    || (hint.own && {
                        let mut t = loc.heap_tuple(rel);
                        // SAFETY: share-locked page, valid snapshot.
                        seen = unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut t, snapshot.raw(), w.buf) };
                        seen
                    }));
            if !trusted {
                w.unlock();
                break false;
            }
        }
        if is_redirect(h) {
            if !at_root {
                w.unlock();
                break false;
            }
            at = htup::ctid(h);
            prune.root_ctid = Some(at);
            (prior_xmax, at_root) = (pg_sys::InvalidTransactionId, false);
            w.unlock();
            continue;
        }
        // as heap_hot_search_buffer: an index entry names no heap-only
        // version, and a member's xmin is its predecessor's updater (else
        // the link is stale: an aborted updater's version)
        if (at_root && is_heap_only(h))
            || (prior_xmax != pg_sys::InvalidTransactionId && htup::xmin(h) != prior_xmax)
        {
            w.unlock();
            break false;
        }
        let mut t = loc.heap_tuple(rel);
        if prune.active {
            // a version whose hints say it is live is not dead: no horizon
            // lookup for the common point lookup of a settled row
            let surely_dead = !htup::hinted_live(h) && {
                if vistest.is_null() {
                    // SAFETY: horizon state for this relation.
                    vistest = unsafe { pg_sys::GlobalVisTestFor(rel.raw()) };
                }
                htup::removable(&mut t, w.buf, vistest)
            };
            if surely_dead {
                if at_root {
                    prune.root_ctid = Some(htup::ctid(h));
                }
                prune.note_dead(htup::update_xid(h));
            } else {
                if !at_root {
                    prune.first_live = Some(at);
                }
                prune.active = false;
            }
        }
        if !skip {
            // SAFETY: share-locked page, valid snapshot.
            let visible = seen || unsafe { pg_sys::HeapTupleSatisfiesVisibility(&mut t, snapshot.raw(), w.buf) };
            predicate::check_conflict_out(visible, rel, &mut t, w.buf, snapshot);
            if visible {
                predicate::lock_tid(rel, &t, snapshot);
                if let Some(slot) = slot {
                    storage::store_in_slot(rel, slot, t, w.buf);
                }
                if first_call || from_hint {
                    chain_hint::note_found(rel, &root, &at, h, steps > 1);
                }
                *tid = at;
                w.unlock();
                dead = false;
                break true;
            }
        }
        skip = false;
        if dead {
            if vistest.is_null() {
                // SAFETY: horizon state for this relation.
                vistest = unsafe { pg_sys::GlobalVisTestFor(rel.raw()) };
            }
            // SAFETY: share-locked page.
            dead = unsafe { pg_sys::HeapTupleIsSurelyDead(&mut t, vistest) };
        }
        let next = successor(h, &at);
        w.unlock();
        match next {
            Some((n, x)) => (at, prior_xmax, at_root) = (n, x, false),
            None => break false,
        }
    };
    if let Some(d) = all_dead {
        *d = !found && dead;
    }
    if prune.worth_it() {
        redirect_past_dead(w, root, &prune);
    }
    found
}

/// What a walk learnt for opportunistic pruning (see [`search`]).
struct Prune {
    active: bool,
    dead_members: u32,
    newest_xmax: pg_sys::TransactionId,
    root_ctid: Option<pg_sys::ItemPointerData>,
    first_live: Option<pg_sys::ItemPointerData>,
}

/// Dead members a walk passes before it redirects the root past them.
const PRUNE_AFTER: u32 = 4;

impl Prune {
    fn note_dead(&mut self, xmax: pg_sys::TransactionId) {
        self.dead_members += 1;
        if xmax != pg_sys::InvalidTransactionId
            && (self.newest_xmax == pg_sys::InvalidTransactionId
                || crate::pg::vacuum::xid_precedes(self.newest_xmax, xmax))
        {
            self.newest_xmax = xmax;
        }
    }

    fn worth_it(&self) -> bool {
        self.dead_members >= PRUNE_AFTER && self.root_ctid.is_some() && self.first_live.is_some()
    }
}

/// Makes the root a redirect to the first member a walk found alive, past
/// the dead ones it passed (every one dead to all snapshots), as heap's
/// opportunistic pruning shortens HOT chains between VACUUMs: without it a
/// row updated thousands of times between VACUUMs (a pgbench branch) would
/// be walked version by version on every lookup. Only when the root's page
/// can be locked at once, the root is still what the walk read (a dead
/// root or a redirect, naming the same next member), and not during
/// recovery; a recovery-conflict record first, as for every redirect. The
/// members it skips are dropped by the next VACUUM (they are dead by any
/// later horizon).
fn redirect_past_dead(w: &mut Walker, root: pg_sys::ItemPointerData, p: &Prune) {
    let (Some(expected), Some(target)) = (p.root_ctid, p.first_live) else {
        return;
    };
    if crate::pg::xact::in_recovery() {
        return;
    }
    let rel = w.rel;
    let Some(block) = manifest_cache::locate(rel, &root, Trust::Validate) else {
        return;
    };
    if w.buf == 0 || buffer::block_number(w.buf) != block {
        w.release();
        w.buf = buffer::read(rel, block);
    }
    if !buffer::try_lock_exclusive(w.buf) {
        return;
    }
    let still = storage::find_on_page(rel, w.buf, root).filter(|loc| {
        let h = loc.header;
        htup::tid_eq(&htup::ctid(h), &expected)
            && (is_redirect(h) || (!is_heap_only(h) && is_hot_updated(h)))
    });
    if let Some(mut loc) = still {
        storage::make_stampable(rel, &mut loc);
        if p.newest_xmax != pg_sys::InvalidTransactionId {
            crate::pg::standby::log_conflict(rel, crate::pg::standby::full_xid_of(p.newest_xmax));
        }
        storage::change_header(rel, &loc, |h| make_redirect(h, target));
    }
    buffer::unlock(w.buf);
}

/// How a walk over a chain's members ended.
#[derive(PartialEq, Eq, Debug)]
pub enum Walk {
    /// Every member was passed to the callback.
    Done,
    /// The callback stopped the walk.
    Stopped,
    /// A member the chain names is gone while its predecessor still names
    /// it: a concurrent VACUUM redirected the root and dropped it after the
    /// walk read the root. Walking again from the root sees the redirect.
    Broken,
}

/// Calls `f` on every member of the chain rooted at `root` (the root itself
/// first, a redirect skipped), each on its share-locked page, until `f`
/// returns false. A root the manifest no longer has was dropped dead: Done.
pub fn for_each_member(
    w: &mut Walker,
    root: pg_sys::ItemPointerData,
    mut f: impl FnMut(&storage::Located) -> bool,
) -> Walk {
    let mut at = root;
    let mut prior_xmax = pg_sys::InvalidTransactionId;
    let mut at_root = true;
    loop {
        let Some(loc) = w.lock(at) else {
            return if at_root { Walk::Done } else { Walk::Broken };
        };
        let h = loc.header;
        if is_redirect(h) {
            let ok = at_root;
            at = htup::ctid(h);
            at_root = false;
            w.unlock();
            if !ok {
                return Walk::Done;
            }
            continue;
        }
        if (at_root && is_heap_only(h))
            || (prior_xmax != pg_sys::InvalidTransactionId && htup::xmin(h) != prior_xmax)
        {
            w.unlock();
            return Walk::Done;
        }
        if !f(&loc) {
            w.unlock();
            return Walk::Stopped;
        }
        let next = successor(h, &at);
        w.unlock();
        match next {
            Some((n, x)) => (at, prior_xmax, at_root) = (n, x, false),
            None => return Walk::Done,
        }
    }
}
