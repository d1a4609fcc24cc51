//! Summarizing indexes (BRIN) under index-stable updates, PostgreSQL 16 and
//! later.
//!
//! Heap keeps an UPDATE that changes only columns of summarizing indexes
//! HOT (`TU_Summarizing`): the executor then inserts the new version into
//! those indexes alone, under the new version's TID — on heap a TID on the
//! old version's page, so the same block range. An lsm chain spans pages,
//! and a bitmap scan reaches a chain only through its root (a lossy BRIN
//! block means every chain *rooted* in it, see `chain`), so the summary
//! that must take the new values is the one covering the root:
//!
//! ```text
//!  btree entry ──> root (7,3) ──> (40,2) ──> (81,5)   new version, status = 'b'
//!  BRIN range of blocks 4..7: summarizes (7,3), widened by 'b' under (7,3)
//! ```
//!
//! Such an update reports `TU_None` to the executor and inserts the new row
//! into each summarizing index itself, under the root's TID. The update
//! knows the root when the old version is one (not heap-only) or when the
//! backend's last chain walk returned the old version (an index or bitmap
//! scan found it; `chain_hint::walked_root`); otherwise — a sequential scan
//! reached a heap-only version — the update is not index-stable, as before.

use crate::lsm::index_datums::IndexDatums;
use crate::pg::relation::Rel;
use crate::pg::tuple_slot::Slot;
use pgrx::pg_sys;
use pgrx::PgMemoryContexts;

/// Inserts the row in `slot` (the new version of an index-stable update
/// that changed summarized columns) into every summarizing index of
/// `table` that takes inserts, under the chain root's TID `root`.
pub fn insert(table: Rel, slot: Slot, root: pg_sys::ItemPointerData) {
    let oids = crate::pg::rel::index_oids(table);
    let mut scratch = PgMemoryContexts::new("strata summarizing insert");
    // SAFETY: the executor holds RowExclusiveLock on the table (and opened
    // its indexes); each index is opened, used and closed here, keeping its
    // lock to the end of the transaction like the executor's. Everything
    // allocated (IndexInfo, BRIN's insert state, datums) lives in the
    // scratch context, deleted on return.
    unsafe {
        scratch.switch_to(|_| {
            for oid in oids {
                let index = pg_sys::index_open(oid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
                if !(*(*index).rd_indam).amsummarizing {
                    pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
                    continue;
                }
                let info = pg_sys::BuildIndexInfo(index);
                if (*info).ii_ReadyForInserts {
                    let mut datums = IndexDatums::over(info, slot);
                    if datums.form() {
                        let mut tid = root;
                        pg_sys::index_insert(
                            index,
                            datums.values.as_mut_ptr(),
                            datums.isnull.as_mut_ptr(),
                            &mut tid,
                            table.raw(),
                            pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO,
                            false,
                            info,
                        );
                    }
                    datums.finish();
                    // BRIN keeps its revmap pinned in the insert state
                    pg_sys::index_insert_cleanup(index, info);
                }
                pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
            }
        });
    }
}
