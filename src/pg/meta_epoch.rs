//! A shared change counter per relation file for its block 0 (the lsm
//! metapage), so that a backend's copy of what block 0 says can be checked
//! with one atomic load instead of pinning the buffer every backend shares
//! (a pin and an unpin are atomic read-modify-writes on one buffer header:
//! under eight writing clients the metapage's header line moves between
//! cores on every statement).
//!
//! Rule: every change of a relation's block 0 made through
//! [`PageWrite`](super::buffer::PageWrite) bumps its file's counter after
//! the change is applied and logged and before the caller releases the
//! block's exclusive lock (the lsm metapage is written only that way). A
//! reader loads the counter before it checks the page and remembers it with
//! its copy; the same counter later means no change finished since (a
//! change under way may be missed, as an LSN read without the content lock
//! would miss it too).
//!
//! Counters live in 4,096 slots by hash of (tablespace, database,
//! relfilenumber): files sharing a slot only make each other's copies
//! check the page again. [`current`] is None — check the page — unless
//! Strata is preloaded, and during recovery: redo (PostgreSQL's generic
//! WAL redo among it) changes block 0 without bumping; a standby's
//! backends keep checking the page until they see recovery over, and
//! remember counters only from then on.

use super::relation::Rel;
use super::shmem;
use std::sync::atomic::{AtomicU64, Ordering};

const SLOTS: usize = 4096;
const NAME: &std::ffi::CStr = c"strata block 0 epochs";

static mut TABLE: *const AtomicU64 = std::ptr::null();

/// Sets the counters up when preloading (`_PG_init`).
pub fn register() {
    if shmem::preloading() {
        shmem::install(request, startup);
    }
}

fn request() {
    shmem::request_space(SLOTS * 8);
}

fn startup() {
    let base = shmem::init_zeroed(NAME, SLOTS * 8);
    // SAFETY: the postmaster's single thread, before backends fork.
    unsafe { TABLE = base as *const AtomicU64 };
}

fn table() -> Option<&'static [AtomicU64]> {
    // SAFETY: written once by the startup hook before any backend exists;
    // SLOTS counters of shared memory that live as long as the server.
    unsafe {
        let t = TABLE;
        (!t.is_null()).then(|| std::slice::from_raw_parts(t, SLOTS))
    }
}

fn file_of(rel: Rel) -> (u32, u32, u32) {
    super::locator::parts(&super::locator::of(rel))
}

fn slot_of(file: (u32, u32, u32)) -> usize {
    let (spc, db, num) = file;
    let h = (spc as u64) << 42 ^ (db as u64) << 21 ^ num as u64;
    (h.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) as usize % SLOTS
}

/// The counter of `rel`'s file, to remember with a copy of its block 0
/// (None: there is none to trust; check the page).
pub fn current(rel: Rel) -> Option<u64> {
    let t = table()?;
    if super::xact::in_recovery() {
        return None;
    }
    Some(t[slot_of(file_of(rel))].load(Ordering::Acquire))
}

/// Marks a change of `rel`'s block 0 (see the rule above).
pub fn bump(rel: Rel) {
    if let Some(t) = table() {
        t[slot_of(file_of(rel))].fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stay_in_range_and_spread() {
        let mut seen = std::collections::HashSet::new();
        for num in 16384..16384 + 1000 {
            let s = slot_of((1663, 5, num));
            assert!(s < SLOTS);
            seen.insert(s);
        }
        // consecutive relfilenumbers (one database) land in distinct slots
        assert!(seen.len() > 900, "{} distinct slots", seen.len());
    }
}
