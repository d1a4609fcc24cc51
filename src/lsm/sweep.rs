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

use super::format::PageKind;
use super::manifest;
use super::storage;
use crate::pg::buffer::{self, PageWrite};
use crate::pg::htup;
use crate::pg::page;
use crate::pg::vacuum::{self as pgvac, Cutoffs};
use pgrx::pg_sys;
use std::collections::HashMap;

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
}

/// Freezes one page in place and counts its dead versions.
fn sweep_page(
    rel: pg_sys::Relation,
    block: pg_sys::BlockNumber,
    c: &Cutoffs,
    key: u32,
    out: &mut Sweep,
) {
    let buf = buffer::read(rel, block);
    buffer::lock_exclusive(buf);
    let p = buffer::page(buf);
    if !matches!(
        storage::page_kind(rel, block, p),
        Some(PageKind::L0 | PageKind::RunData)
    ) {
        buffer::unlock_release(buf);
        return;
    }
    out.pages += 1;
    // (item, frozen header) of the versions whose header freezing changes
    let mut changed: Vec<(u16, [u64; 3])> = Vec::new();
    for item in 1..=page::max_offset(p) {
        let Some(mut t) = storage::version_at(rel, p, item) else {
            continue;
        };
        out.versions += 1;
        // SAFETY: exclusively locked page; HTSV may set hint bits.
        let status = unsafe { pg_sys::HeapTupleSatisfiesVacuum(&mut t, c.oldest_xmin, buf) };
        if status == pg_sys::HTSV_Result::HEAPTUPLE_DEAD {
            let d = out.dead.entry(key).or_default();
            d.versions += 1;
            d.oldest.note(t.t_data);
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
        let mut w = PageWrite::start(rel);
        let wp = w.register(buf, false);
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
        }
        w.commit();
        out.frozen += changed.len() as u64;
    }
    buffer::unlock_release(buf);
}

/// Bytes of `HeapTupleHeaderData` before `t_bits`.
const HEADER_FIXED: usize = std::mem::offset_of!(pg_sys::HeapTupleHeaderData, t_bits);
const _: () = assert!(HEADER_FIXED == 23);

/// The pass over L0 and every run the manifest lists now.
pub fn sweep(rel: pg_sys::Relation, c: &Cutoffs) -> Sweep {
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
    out
}
