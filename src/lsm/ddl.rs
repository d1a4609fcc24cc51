//! Relation lifecycle of `lsm` tables: new storage (CREATE/TRUNCATE), sizes
//! and planner estimates (in-place truncation and copying for SET TABLESPACE
//! are `pg::storage`'s; rewriting for CLUSTER/VACUUM FULL: [`super::cluster`]).

use crate::pg::relation::Rel;
use super::format::TAG_SIZE;
use crate::pg::storage;
use crate::pg::page;
use pgrx::pg_sys;

pub use crate::pg::locator::Locator;

/// Creates empty storage (the metapage is written by the first insert, so an
/// empty unlogged table's init fork is simply empty, like heap's).
/// Returns the new relation's (relfrozenxid, relminmxid), heap's choice.
pub fn set_new_storage(
    locator: &Locator,
    persistence: std::ffi::c_char,
) -> (pg_sys::TransactionId, pg_sys::MultiXactId) {
    storage::create(locator, persistence);
    crate::pg::xact::new_relation_horizons()
}

pub fn relation_size(rel: Rel, fork: pg_sys::ForkNumber::Type) -> u64 {
    // SAFETY: block-based size of an open relation (all forks when fork is -1).
    unsafe { pg_sys::table_block_relation_size(rel.raw(), fork) }
}

/// Heap's rule (`heapam_relation_needs_toast_table`), as rows are toasted
/// at heap's threshold: a TOAST table is needed when some column may be
/// toasted (variable-length, storage not PLAIN) and a row may exceed
/// `TOAST_TUPLE_THRESHOLD` — some column has no maximum size, or the
/// largest row (header, null bitmap, every column at its maximum) is over it.
pub fn needs_toast_table(rel: Rel) -> bool {
    // SAFETY: open relation with a valid tuple descriptor that outlives this call.
    let desc = unsafe { pgrx::PgTupleDesc::from_pg_unchecked(rel.data().rd_att) };
    let mut data_len = 0usize;
    let mut unbounded = false;
    let mut toastable = false;
    for att in desc.iter().filter(|a| !a.attisdropped && !is_virtual(a)) {
        // att_align_nominal
        data_len = data_len.next_multiple_of(crate::pg::rel::align_bytes(att.attalign));
        if att.attlen > 0 {
            data_len += att.attlen as usize;
            continue;
        }
        // SAFETY: a catalog lookup of the column's type.
        let max = unsafe { pg_sys::type_maximum_size(att.atttypid, att.atttypmod) };
        match usize::try_from(max) {
            Ok(max) => data_len += max,
            Err(_) => unbounded = true,
        }
        toastable |= att.attstorage as u8 != pg_sys::TYPSTORAGE_PLAIN;
    }
    if !toastable {
        return false;
    }
    let header = crate::page_layout::HEAP_TUPLE_HEADER_SIZE + desc.len().div_ceil(8);
    unbounded || page::maxalign(header) + page::maxalign(data_len) > crate::pg::htup::TOAST_TUPLE_THRESHOLD
}

/// A virtual generated column (PG18) has no storage.
fn is_virtual(att: &pg_sys::FormData_pg_attribute) -> bool {
    #[cfg(feature = "pg15")]
    {
        let _ = att;
        false
    }
    #[cfg(not(feature = "pg15"))]
    {
        att.attgenerated as u8 == pg_sys::ATTRIBUTE_GENERATED_VIRTUAL
    }
}


/// `relation_estimate_size`, heap's rules over what a scan of an `lsm` table
/// reads. The pages reported are the L0 and run data pages (a small table
/// is one page, as on heap, not its metapage, directory, fence index and
/// filter pages too). pg_class keeps VACUUM's and ANALYZE's physical size,
/// so the row count scales reltuples by the file's growth since then, as
/// heap does. A table never vacuumed or analyzed counts at least 10 pages
/// with rows as wide as its columns, like heap. No visibility map: no
/// all-visible fraction.
/// Returns (pages, tuples); `data_width` is the planner's estimate of a
/// row's data width (`get_rel_data_width`), asked only when needed.
pub fn estimate_size(rel: Rel, data_width: impl FnOnce() -> usize) -> (pg_sys::BlockNumber, f64) {
    let (physical, scan) = super::manifest_cache::sizes(rel);
    let (physical, mut scan) = (physical as f64, scan as f64);
    // SAFETY: open relation.
    let (relpages, reltuples, has_children) = unsafe {
        let c = rel.data().rd_rel;
        (
            (*c).relpages as f64,
            (*c).reltuples as f64,
            (*c).relhassubclass,
        )
    };
    if scan < 10.0 && reltuples < 0.0 && !has_children {
        scan = 10.0;
    }
    let rows = if scan == 0.0 {
        0.0
    } else if reltuples >= 0.0 && relpages > 0.0 {
        (reltuples / relpages * physical).round()
    } else {
        let overhead = 24 + page::ITEM_ID_SIZE; // MAXALIGN(SizeofHeapTupleHeader) + line pointer
        let usable = page::BLCKSZ - page::PAGE_HEADER_SIZE - TAG_SIZE;
        let width = data_width() + overhead;
        ((usable / width).max(1) as f64 * scan).round()
    };
    (scan as pg_sys::BlockNumber, rows)
}
