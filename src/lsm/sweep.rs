//! VACUUM's pass over every live data page of an `lsm` table (L0 and every
//! run), under VACUUM's SHARE UPDATE EXCLUSIVE lock, so DML runs alongside:
//!
//! * **freezing**: each version that some snapshot may still see is frozen
//!   in place where VACUUM's cutoffs say (`heap_freeze_tuple`: xmin before
//!   FreezeLimit becomes frozen; old, aborted or lock-only xmax values and
//!   MultiXacts are cleared or replaced), under the page's exclusive lock —
//!   the same lock writers take to stamp xmax — in one GenericXLog record
//!   per changed page;
//! * **counting the dead**: versions dead to every snapshot are counted per
//!   component (the compaction policy rewrites runs with many of them);
//! * **the oldest ids left**: the oldest xid and MultiXact that versions
//!   still carry after freezing — of live ones, and per component of dead
//!   ones (those go with their component when it is flushed or merged) —
//!   bound the new relfrozenxid / relminmxid, as heap's NewRelfrozenXid does.
//!
//! The pass visits the components the manifest lists when it starts.
//! Nothing else changes the manifest meanwhile except new L0 pages, which
//! only hold versions of transactions younger than the cutoffs.

use crate::pg::relation::Rel;
use super::chain;
use super::format::PageKind;
use super::manifest;
use super::storage;
use super::wal_record::{self, Headers};
use crate::pg::buffer::{self, Locked};
use crate::pg::htup;
use crate::pg::page;
use crate::pg::vacuum::{self as pgvac, Cutoffs};
use crate::pg::wal::PageChange;
use pgrx::pg_sys;
use std::collections::{HashMap, HashSet};

/// Component key of L0 (run ids start at 1).
pub const L0: u32 = 0;

/// The oldest xid and MultiXact a set of versions still carries (what
/// relfrozenxid / relminmxid may not pass).
#[derive(Clone, Copy, Debug, Default)]
pub struct Oldest {
    pub xid: Option<pg_sys::TransactionId>,
    pub multi: Option<pg_sys::MultiXactId>,
}

impl Oldest {
    /// Notes the ids of tuple header `t`: an unfrozen xmin, an xmax xid, or
    /// an xmax MultiXact and its members' xids.
    pub fn note(&mut self, t: *mut htup::Header) {
        let mask = htup::infomask(t);
        if mask & pg_sys::HEAP_XMIN_FROZEN != pg_sys::HEAP_XMIN_FROZEN {
            self.note_xid(htup::xmin(t));
        }
        if mask & pg_sys::HEAP_XMAX_INVALID == 0 {
            let xmax = htup::raw_xmax(t);
            if htup::xmax_is_multi(t) {
                if xmax.into_inner() != 0
                    && self.multi.is_none_or(|o| pgvac::multi_precedes(xmax, o))
                {
                    self.multi = Some(xmax);
                }
                for (xid, _) in crate::pg::multixact::members(xmax, false) {
                    self.note_xid(pg_sys::TransactionId::from(xid));
                }
            } else {
                self.note_xid(xmax);
            }
        }
    }

    fn note_xid(&mut self, x: pg_sys::TransactionId) {
        if x.into_inner() >= pg_sys::FirstNormalTransactionId.into_inner()
            && self.xid.is_none_or(|o| pgvac::xid_precedes(x, o))
        {
            self.xid = Some(x);
        }
    }

    pub fn merge(&mut self, other: &Oldest) {
        if let Some(x) = other.xid {
            self.note_xid(x);
        }
        if let Some(m) = other
            .multi
            .filter(|m| self.multi.is_none_or(|o| pgvac::multi_precedes(*m, o)))
        {
            self.multi = Some(m);
        }
    }
}

/// Dead versions of one component and the oldest ids they carry.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dead {
    pub versions: u64,
    pub oldest: Oldest,
    /// Redirects that still carry their version's body (garbage a rewrite
    /// drops, keeping the 24-byte header; see `policy`).
    pub bodies: u64,
}

/// What the pass found and did.
#[derive(Debug, Default)]
pub struct Sweep {
    /// Per component ([`L0`] or a run id).
    pub dead: HashMap<u32, Dead>,
    /// Oldest ids of the versions that are not dead, after freezing.
    pub live: Oldest,
    pub pages: u64,
    pub versions: u64,
    /// Versions heap's VACUUM would count as live rows: visible to every
    /// snapshot, or deleted by a transaction still running.
    pub live_rows: u64,
    pub frozen: u64,
    /// Roots dead to every snapshot whose chains go on (see `chain`):
    /// shortened after the pass.
    /// With each, its component ([`L0`] or a run id).
    pub dead_roots: Vec<(pg_sys::ItemPointerData, u32)>,
    /// Redirects found (kept while their chains live).
    pub redirects: u64,
    /// Every redirect with the member it names and its component: one is
    /// re-pointed only when that member died (see [`sweep`]).
    pub redirect_roots: Vec<(pg_sys::ItemPointerData, pg_sys::ItemPointerData, u32)>,
    /// The heap-only versions dead to every snapshot, as (block, offset).
    pub dead_members: HashSet<(u32, u16)>,
    /// Roots turned into redirects or re-pointed by this pass.
    pub redirected: u64,
}

/// Freezes one page in place and counts its dead versions.
fn sweep_page(
    rel: Rel,
    block: pg_sys::BlockNumber,
    c: &Cutoffs,
    key: u32,
    out: &mut Sweep,
) {
    let locked = Locked::exclusive(rel, block);
    let (buf, p) = (locked.buffer(), locked.page());
    if !matches!(
        storage::page_kind(rel, block, p),
        Some(PageKind::L0 | PageKind::RunData)
    ) {
        return;
    }
    out.pages += 1;
    // (item, frozen header) of the versions whose header freezing changes
    let mut changed: Vec<(u16, [u64; 3])> = Vec::new();
    let Some(view) = storage::PageView::of(rel, p) else {
        return;
    };
    let compact = view.compact().is_some();
    for item in 1..=page::max_offset(p) {
        let Some(mut t) = view.version(item) else {
            continue;
        };
        out.versions += 1;
        if chain::is_redirect(t.t_data) {
            out.redirects += 1;
            if chain::holds_body(t.t_data, t.t_len as usize, compact) {
                out.dead.entry(key).or_default().bodies += 1;
            }
            // its target may have died since: decided after the pass
            out.redirect_roots.push((t.t_self, htup::ctid(t.t_data), key));
            continue;
        }
        // SAFETY: exclusively locked page; HTSV may set hint bits.
        let status = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, c.oldest_xmin, buf) };
        if status == pg_sys::HTSV_Result::HEAPTUPLE_DEAD {
            if !chain::is_heap_only(t.t_data) && chain::is_hot_updated(t.t_data) {
                // becomes a redirect (kept, no xids), or plain dead if its
                // chain is (counted then)
                out.dead_roots.push((t.t_self, key));
            } else {
                if chain::is_heap_only(t.t_data) {
                    out.dead_members.insert((htup::tid_block(&t.t_self), htup::tid_offset(&t.t_self)));
                }
                let d = out.dead.entry(key).or_default();
                d.oldest.note(t.t_data);
                d.versions += 1;
            }
            continue;
        }
        if matches!(
            status,
            pg_sys::HTSV_Result::HEAPTUPLE_LIVE | pg_sys::HTSV_Result::HEAPTUPLE_DELETE_IN_PROGRESS
        ) {
            out.live_rows += 1;
        }
        // Freeze a private copy of the fixed header (all heap_freeze_tuple
        // reads or writes) first: most versions need nothing.
        let mut copy = [0u64; 3];
        // SAFETY: the fixed header (23 bytes) lies inside the item; `copy` is
        // 24 aligned bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                t.t_data as *const u8,
                copy.as_mut_ptr() as *mut u8,
                HEADER_FIXED,
            );
        }
        let header = copy.as_mut_ptr() as pg_sys::HeapTupleHeader;
        if pgvac::freeze_header(header, c) {
            changed.push((item, copy));
        }
        out.live.note(header);
    }
    if !changed.is_empty() {
        let mut w = PageChange::start(rel);
        let wp = w.register(buf, false);
        let mut rec = Headers::default();
        for (item, copy) in &changed {
            let t = storage::version_at(rel, wp, *item).expect("version seen on the page");
            // SAFETY: the working copy holds the same item; header-sized write.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    copy.as_ptr() as *const u8,
                    t.t_data as *mut u8,
                    HEADER_FIXED,
                );
            }
            rec.written_at(page::bytes(wp), t.t_data as usize - wp.ptr() as usize);
        }
        w.commit(wal_record::RMGR_ID, || storage::headers_record(&rec));
        out.frozen += changed.len() as u64;
    }
}

/// Bytes of `HeapTupleHeaderData` before `t_bits`.
const HEADER_FIXED: usize = std::mem::offset_of!(pg_sys::HeapTupleHeaderData, t_bits);
const _: () = assert!(HEADER_FIXED == 23);

/// The pass over L0 and every run the manifest lists now.
pub fn sweep(rel: Rel, c: &Cutoffs) -> Sweep {
    let mut out = Sweep::default();
    let Some(meta) = manifest::read(rel) else {
        return out;
    };
    for (_, block) in manifest::l0_blocks(rel, &meta) {
        pgrx::check_for_interrupts!();
        pgvac::delay_point();
        sweep_page(rel, block, c, L0, &mut out);
    }
    for run in &meta.runs {
        out.dead.entry(run.run_id).or_default();
        let (data, _) = manifest::run_pages(rel, run);
        for (_, block) in data {
            pgrx::check_for_interrupts!();
            pgvac::delay_point();
            sweep_page(rel, block, c, run.run_id, &mut out);
        }
    }
    // A redirect names the first member that was alive when it was set; its
    // chain needs walking again only once that member is dead by this
    // horizon (then the walk finds the next live one, or none). Members die
    // in chain order and only this VACUUM's flush and merges drop dead
    // members — after this shortening — so a redirect whose member lives
    // still names the chain's first live member: the pass saw every page,
    // and re-walking every redirect was most of a VACUUM's time on
    // update-heavy tables (74% of pgbench_accounts' after 20 s of tpcb-like).
    let redirects = std::mem::take(&mut out.redirect_roots);
    for (root, target, key) in redirects {
        if out.dead_members.contains(&(htup::tid_block(&target), htup::tid_offset(&target))) {
            out.dead_roots.push((root, key));
        }
    }
    shorten_chains(rel, c.oldest_xmin, &mut out);
    out
}

/// The sweep's chain shortening alone (for `strata.lsm_flush`, which then
/// flushes by the same `horizon`): finds the dead roots with chains and the
/// redirects of L0 and every run, and shortens their chains. Returns how
/// many roots it redirected.
pub fn shorten_chains_only(rel: Rel, horizon: pg_sys::TransactionId) -> u64 {
    let mut out = Sweep::default();
    let Some(meta) = manifest::read(rel) else {
        return 0;
    };
    let mut blocks: Vec<pg_sys::BlockNumber> =
        manifest::l0_blocks(rel, &meta).into_iter().map(|(_, b)| b).collect();
    for run in &meta.runs {
        blocks.extend(manifest::run_pages(rel, run).0.into_iter().map(|(_, b)| b));
    }
    for block in blocks {
        pgrx::check_for_interrupts!();
        let locked = Locked::share(rel, block);
        let (buf, p) = (locked.buffer(), locked.page());
        if matches!(
            storage::page_kind(rel, block, p),
            Some(PageKind::L0 | PageKind::RunData)
        ) {
            for item in 1..=page::max_offset(p) {
                let Some(mut t) = storage::version_at(rel, p, item) else {
                    continue;
                };
                let h = t.t_data;
                let candidate = chain::is_redirect(h)
                    || (!chain::is_heap_only(h) && chain::is_hot_updated(h) && {
                        // SAFETY: share-locked page; HTSV may set hint bits.
                        let st = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, horizon, buf) };
                        st == pg_sys::HTSV_Result::HEAPTUPLE_DEAD
                    });
                if candidate {
                    out.dead_roots.push((t.t_self, 0));
                }
            }
        }
    }
    shorten_chains(rel, horizon, &mut out);
    out.redirected
}

/// Points every root in `out.dead_roots` at the first member of its chain
/// that is not dead by `horizon` (making it a redirect), or, when the whole
/// chain is dead, makes it a plain dead version (no `HEAP_HOT_UPDATED`, no
/// redirect) that the flush or a merge drops and VACUUM removes from the
/// indexes. Members the redirect skips are dead, and the same VACUUM's
/// flush and merges (same horizon) drop them. One GenericXLog record per
/// changed page.
fn shorten_chains(rel: Rel, horizon: pg_sys::TransactionId, out: &mut Sweep) {
    let mut w = chain::Walker::new(rel, 0);
    // (block, root, new target: None = the chain is dead, component)
    type Change = (pg_sys::BlockNumber, pg_sys::ItemPointerData, Option<pg_sys::ItemPointerData>, u32);
    let mut changes: Vec<Change> = Vec::new();
    for &(root, key) in &out.dead_roots {
        pgrx::check_for_interrupts!();
        let mut first_live = None;
        let walk = chain::for_each_member(&mut w, root, |loc| {
            if htup::tid_eq(&loc.tid, &root) {
                return true; // the root itself: dead
            }
            let mut t = loc.heap_tuple(rel);
            // SAFETY: share-locked page; HTSV may set hint bits.
            let st = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, horizon, loc.buf) };
            if st == pg_sys::HTSV_Result::HEAPTUPLE_DEAD {
                return true;
            }
            first_live = Some(loc.tid);
            false
        });
        let target = match walk {
            chain::Walk::Stopped => first_live,
            chain::Walk::Done => None,
            chain::Walk::Broken => continue, // cannot happen under VACUUM's lock; leave it
        };
        let Some(loc) = w.lock(root) else { continue };
        let unchanged = chain::is_redirect(loc.header)
            && target.is_some_and(|t| htup::tid_eq(&htup::ctid(loc.header), &t));
        let block = buffer::block_number(loc.buf);
        w.unlock();
        if !unchanged {
            changes.push((block, root, target, key));
        }
    }
    w.release();
    if changes.is_empty() {
        return;
    }
    // A hot standby's older snapshot may still see members a redirect skips
    // (as with heap's pruning): its conflicting queries are resolved before
    // the redirects are replayed.
    crate::pg::standby::log_conflict(rel, crate::pg::standby::full_xid_of(horizon) - 1);
    changes.sort_by_key(|c| c.0);
    for group in changes.chunk_by(|a, b| a.0 == b.0) {
        pgrx::check_for_interrupts!();
        let locked = Locked::exclusive(rel, group[0].0);
        let buf = locked.buffer();
        let mut pw = PageChange::start(rel);
        let wp = pw.register(buf, false);
        let mut rec = Headers::default();
        for (_, root, target, key) in group {
            let Some(loc) = storage::find_on_page(rel, buf, *root) else {
                continue;
            };
            // a root was stamped by its update, so it has its own header;
            // a shared one (compact_page) would need an expansion first
            if storage::shares_header(&loc) {
                continue;
            }
            if target.is_none() {
                // a plain dead version from now on, dropped with its component
                let d = out.dead.entry(*key).or_default();
                d.oldest.note(loc.header);
                d.versions += 1;
            }
            let h = loc.header_in(wp);
            match target {
                Some(t) if chain::is_redirect(h) && htup::tid_eq(&htup::ctid(h), t) => continue,
                Some(t) => {
                    if !chain::is_redirect(h) {
                        // its body stays until its component is rewritten
                        out.dead.entry(*key).or_default().bodies += 1;
                    }
                    chain::make_redirect(h, *t)
                }
                None => htup::set_infomask2(
                    h,
                    htup::infomask2(h) & !(chain::REDIRECT | pg_sys::HEAP_HOT_UPDATED),
                ),
            }
            out.redirected += target.is_some() as u64;
            rec.written_at(page::bytes(wp), loc.offset());
        }
        if !rec.is_empty() {
            pw.commit(wal_record::RMGR_ID, || storage::headers_record(&rec));
        }
    }
}
