//! The free space map of a relation whose pages are whole-page units (an
//! index's, or an `lsm` table's): PostgreSQL's `indexfsm.c` calls. A page
//! is either free or not; what the map says is a hint, re-checked by the
//! caller before a page is reused (the map is not WAL-logged).

use super::relation::Rel;
use pgrx::pg_sys;

/// A page the map lists as free, marked used in the map (`GetFreeIndexPage`);
/// None when it lists none.
pub fn take_free_page(rel: Rel) -> Option<pg_sys::BlockNumber> {
    // SAFETY: an open relation; the lookup only reads and updates its FSM fork.
    let block = unsafe { pg_sys::GetFreeIndexPage(rel.raw()) };
    (block != pg_sys::InvalidBlockNumber).then_some(block)
}

/// Lists page `block` as free (`RecordFreeIndexPage`); the upper levels of
/// the map learn it with [`vacuum`] or [`vacuum_range`].
pub fn record_free(rel: Rel, block: pg_sys::BlockNumber) {
    // SAFETY: an open relation; an FSM update.
    unsafe { pg_sys::RecordFreeIndexPage(rel.raw(), block) };
}

/// Propagates the map's leaf updates to its upper levels (`IndexFreeSpaceMapVacuum`).
pub fn vacuum(rel: Rel) {
    // SAFETY: an open relation; FSM upkeep.
    unsafe { pg_sys::IndexFreeSpaceMapVacuum(rel.raw()) };
}

/// [`vacuum`] for blocks `start..end` only (`FreeSpaceMapVacuumRange`).
pub fn vacuum_range(rel: Rel, start: pg_sys::BlockNumber, end: pg_sys::BlockNumber) {
    // SAFETY: an open relation; FSM upkeep.
    unsafe { pg_sys::FreeSpaceMapVacuumRange(rel.raw(), start, end) };
}
