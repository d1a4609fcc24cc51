//! The `lsm` table access method's routine table. Callbacks are thin: each
//! converts arguments and delegates to scan / fetch / modify / ddl /
//! index_build. PG15 and PG18 differ in a few signatures (cfg-gated here).

use crate::pg::tuple_slot::Slot;
use crate::pg::relation::Rel;
use crate::pg::snapshot::Snap;
use super::{cluster, ddl, fetch, index_build, manifest, modify, scan, vacuum};
use crate::pg::error_catch::rethrowing;
use crate::pg::htup;
use pgrx::datum::Internal;
use pgrx::pg_sys;
use pgrx::prelude::*;

#[pg_extern(sql = "
CREATE FUNCTION lsm_tableam_handler(internal) RETURNS table_am_handler
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
CREATE ACCESS METHOD lsm TYPE TABLE HANDLER lsm_tableam_handler;
COMMENT ON ACCESS METHOD lsm IS 'log-structured merge-tree table access method (Strata)';
")]
fn lsm_tableam_handler(_fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    Internal::from(Some(pg_sys::Datum::from(
        &ROUTINE as *const pg_sys::TableAmRoutine,
    )))
}

/// Whether `rel` is a table of the `lsm` access method.
pub fn is_lsm(rel: Rel) -> bool {
    std::ptr::eq(rel.data().rd_tableam, &ROUTINE)
}

fn scan_of<'a>(s: pg_sys::TableScanDesc) -> &'a mut scan::LsmScan {
    // SAFETY: every TableScanDesc handed to our callbacks was made by scan::begin.
    unsafe { &mut *(s as *mut scan::LsmScan) }
}

#[pg_guard]
unsafe extern "C-unwind" fn slot_callbacks(
    _rel: pg_sys::Relation,
) -> *const pg_sys::TupleTableSlotOps {
    &super::slot::LSM_SLOT_OPS
}

#[pg_guard]
unsafe extern "C-unwind" fn scan_begin(
    rel: pg_sys::Relation,
    snapshot: pg_sys::Snapshot,
    nkeys: i32,
    _key: *mut pg_sys::ScanKeyData,
    pscan: pg_sys::ParallelTableScanDesc,
    flags: u32,
) -> pg_sys::TableScanDesc {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::finish_open(rel);
    // SAFETY: the scan's snapshot, registered by the executor until the scan ends.
    let snapshot = unsafe { Snap::from_raw(snapshot) };
    scan::begin(rel, snapshot, nkeys, pscan, flags) as pg_sys::TableScanDesc
}

#[pg_guard]
unsafe extern "C-unwind" fn scan_end(s: pg_sys::TableScanDesc) {
    // SAFETY: the scan_end callback's scan, begun by scan_begin.
    unsafe { scan::end(s as *mut scan::LsmScan) }
}

#[pg_guard]
unsafe extern "C-unwind" fn scan_rescan(
    s: pg_sys::TableScanDesc,
    _key: *mut pg_sys::ScanKeyData,
    _set_params: bool,
    _allow_strat: bool,
    _allow_sync: bool,
    _allow_pagemode: bool,
) {
    scan::rescan(scan_of(s))
}

/// Unguarded: the next row of a column-wise page is a few stores into the
/// slot (`scan::next_in_batch`, no Postgres call); everything else takes
/// the guarded path.
unsafe extern "C-unwind" fn scan_getnextslot(
    s: pg_sys::TableScanDesc,
    direction: pg_sys::ScanDirection::Type,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    let forward = direction != pg_sys::ScanDirection::BackwardScanDirection;
    // SAFETY: same arguments, guarded.
    let found = scan::next_in_batch(scan_of(s), forward, slot)
        || unsafe { scan_getnextslot_guarded(s, direction, slot.raw()) };
    if found {
        // seq_tup_read: a counter in backend memory (no Postgres call)
        // SAFETY: the scan's relation, open while the scan is.
        crate::pg::stats::count_returned(unsafe { Rel::from_raw((*s).rs_rd) });
    }
    found
}

#[pg_guard]
unsafe extern "C-unwind" fn scan_getnextslot_guarded(
    s: pg_sys::TableScanDesc,
    direction: pg_sys::ScanDirection::Type,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    scan::next(
        scan_of(s),
        direction != pg_sys::ScanDirection::BackwardScanDirection,
        slot,
    )
}

#[pg_guard]
unsafe extern "C-unwind" fn scan_set_tidrange(
    s: pg_sys::TableScanDesc,
    mintid: pg_sys::ItemPointer,
    maxtid: pg_sys::ItemPointer,
) {
    // SAFETY: the executor passes valid item pointers.
    scan::set_tid_range(scan_of(s), unsafe { *mintid }, unsafe { *maxtid })
}

#[pg_guard]
unsafe extern "C-unwind" fn parallelscan_estimate(_rel: pg_sys::Relation) -> pg_sys::Size {
    // block-based parallel scan state, as heap uses, then the shared Live
    manifest::Live::parallel_size()
}

#[pg_guard]
unsafe extern "C-unwind" fn parallelscan_initialize(
    rel: pg_sys::Relation,
    pscan: pg_sys::ParallelTableScanDesc,
) -> pg_sys::Size {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    // this transaction's load ends before the workers' components are
    // read (scan_begin would end it only after they were copied)
    super::bulk::finish_open(rel);
    // SAFETY: shared memory area sized by parallelscan_estimate; the block
    // state comes first, the leader's Live after it.
    unsafe {
        pg_sys::table_block_parallelscan_initialize(rel.raw(), pscan);
        *manifest::Live::shared(pscan) = manifest::Live::of(rel);
    }
    manifest::Live::parallel_size()
}

#[pg_guard]
unsafe extern "C-unwind" fn parallelscan_reinitialize(
    rel: pg_sys::Relation,
    pscan: pg_sys::ParallelTableScanDesc,
) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::finish_open(rel);
    // SAFETY: as above; a rescan reads the components anew.
    unsafe {
        pg_sys::table_block_parallelscan_reinitialize(rel.raw(), pscan);
        *manifest::Live::shared(pscan) = manifest::Live::of(rel);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn index_fetch_begin(
    rel: pg_sys::Relation,
) -> *mut pg_sys::IndexFetchTableData {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::finish_before_fetch(rel);
    fetch::begin(rel) as *mut pg_sys::IndexFetchTableData
}

#[pg_guard]
unsafe extern "C-unwind" fn index_fetch_reset(f: *mut pg_sys::IndexFetchTableData) {
    // SAFETY: made by fetch::begin.
    fetch::reset(unsafe { &mut *(f as *mut fetch::LsmIndexFetch) })
}

#[pg_guard]
unsafe extern "C-unwind" fn index_fetch_end(f: *mut pg_sys::IndexFetchTableData) {
    // SAFETY: the index_fetch_end callback's state, made by index_fetch_begin.
    unsafe { fetch::end(f as *mut fetch::LsmIndexFetch) }
}

#[pg_guard]
unsafe extern "C-unwind" fn index_fetch_tuple(
    f: *mut pg_sys::IndexFetchTableData,
    tid: pg_sys::ItemPointer,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
    call_again: *mut bool,
    all_dead: *mut bool,
) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: executor-provided pointers; `call_again` says whether this
    // continues along the chain from the version returned last.
    unsafe {
        fetch::index_fetch(
            &mut *(f as *mut fetch::LsmIndexFetch),
            &mut *tid,
            Snap::from_raw(snapshot),
            slot,
            &mut *call_again,
            all_dead.as_mut(),
        )
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_fetch_row_version(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::finish_open(rel);
    // SAFETY: valid item pointer.
    // SAFETY: valid item pointer; the caller's snapshot, valid for the call.
    let (tid, snapshot) = unsafe { (*tid, Snap::from_raw(snapshot)) };
    fetch::fetch_row_version(rel, tid, snapshot, slot)
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_tid_valid(
    s: pg_sys::TableScanDesc,
    tid: pg_sys::ItemPointer,
) -> bool {
    // SAFETY: valid scan (its relation open) and item pointer.
    fetch::tid_valid(unsafe { Rel::from_raw((*s).rs_rd) }, unsafe { *tid })
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_get_latest_tid(
    s: pg_sys::TableScanDesc,
    tid: pg_sys::ItemPointer,
) {
    // SAFETY: valid scan (its relation open) and writable item pointer.
    unsafe { fetch::latest_tid(Rel::from_raw((*s).rs_rd), Snap::from_raw((*s).rs_snapshot), &mut *tid) }
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_satisfies_snapshot(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    snapshot: pg_sys::Snapshot,
) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    // SAFETY: the caller's snapshot, valid for the call.
    fetch::satisfies_snapshot(rel, slot, unsafe { Snap::from_raw(snapshot) })
}

#[pg_guard]
unsafe extern "C-unwind" fn index_delete_tuples(
    rel: pg_sys::Relation,
    op: *mut pg_sys::TM_IndexDeleteOp,
) -> pg_sys::TransactionId {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    // SAFETY: the index_delete_tuples callback's own arguments.
    unsafe { index_build::delete_tuples(rel, op) }
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_insert(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    options: i32,
    bistate: *mut pg_sys::BulkInsertStateData,
) {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    modify::insert(rel, slot, cid, options, None, !bistate.is_null())
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_insert_speculative(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
    token: u32,
) {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    modify::insert(rel, slot, cid, options, Some(token), false)
}

#[pg_guard]
unsafe extern "C-unwind" fn tuple_complete_speculative(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    _token: u32,
    succeeded: bool,
) {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    modify::complete_speculative(rel, slot, succeeded)
}

#[pg_guard]
unsafe extern "C-unwind" fn multi_insert(
    rel: pg_sys::Relation,
    slots: *mut *mut pg_sys::TupleTableSlot,
    nslots: i32,
    cid: pg_sys::CommandId,
    options: i32,
    _bistate: *mut pg_sys::BulkInsertStateData,
) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    // SAFETY: COPY passes nslots valid (non-null) slots; a Slot is a
    // transparent non-null slot pointer.
    let slots = unsafe { std::slice::from_raw_parts(slots as *const Slot, nslots.max(0) as usize) };
    modify::multi_insert(rel, slots, cid, options);
}

#[pg_guard]
unsafe extern "C-unwind" fn finish_bulk_insert(rel: pg_sys::Relation, _options: i32) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::finish(rel);
}

#[pg_guard]
#[allow(clippy::too_many_arguments)] // the table AM callback's signature
unsafe extern "C-unwind" fn tuple_delete(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    cid: pg_sys::CommandId,
    _snapshot: pg_sys::Snapshot,
    crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    changing_part: bool,
) -> pg_sys::TM_Result::Type {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::finish_open(rel);
    // SAFETY: a valid item pointer, the caller's crosscheck snapshot (or
    // none) and failure storage (or none), valid for the call.
    let (tid, crosscheck, tmfd) = unsafe { (*tid, Snap::from_raw(crosscheck), tmfd.as_mut()) };
    // (lock waits raise their errors whole: see pg::error_catch)
    rethrowing(|| modify::delete(rel, tid, cid, crosscheck, wait, tmfd, changing_part))
}

#[cfg(feature = "pg15")]
type UpdateIndexes = bool;
#[cfg(not(feature = "pg15"))]
type UpdateIndexes = pg_sys::TU_UpdateIndexes::Type;

#[pg_guard]
#[allow(clippy::too_many_arguments)] // the table AM callback's signature
unsafe extern "C-unwind" fn tuple_update(
    rel: pg_sys::Relation,
    otid: pg_sys::ItemPointer,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    _snapshot: pg_sys::Snapshot,
    crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    lockmode: *mut pg_sys::LockTupleMode::Type,
    update_indexes: *mut UpdateIndexes,
) -> pg_sys::TM_Result::Type {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::finish_open(rel);
    // Every update gets a new version and rowid; it needs index entries
    // unless it left every index's columns alone (an index-stable update:
    // the indexes keep naming its chain's root, see `chain`). The lock
    // strength (a key column changed or not) is reported by the update.
    let mut hot = false;
    // SAFETY: executor-provided pointers.
    let (otid, crosscheck, tmfd, lockmode) =
        unsafe { (*otid, Snap::from_raw(crosscheck), tmfd.as_mut(), &mut *lockmode) };
    // (lock waits and summarizing indexes' expressions raise their errors
    // whole: see pg::error_catch)
    let result = rethrowing(|| {
        modify::update(rel, otid, slot, cid, crosscheck, wait, tmfd, lockmode, &mut hot)
    });
    let needed = result == pg_sys::TM_Result::TM_Ok && !hot;
    // SAFETY: executor-provided output pointer.
    unsafe {
        #[cfg(feature = "pg15")]
        {
            *update_indexes = needed;
        }
        #[cfg(not(feature = "pg15"))]
        {
            *update_indexes = if needed {
                pg_sys::TU_UpdateIndexes::TU_All
            } else {
                pg_sys::TU_UpdateIndexes::TU_None
            };
        }
    }
    result
}

#[pg_guard]
#[allow(clippy::too_many_arguments)] // the table AM callback's signature
unsafe extern "C-unwind" fn tuple_lock(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    _snapshot: pg_sys::Snapshot,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    mode: pg_sys::LockTupleMode::Type,
    wait_policy: pg_sys::LockWaitPolicy::Type,
    flags: u8,
    tmfd: *mut pg_sys::TM_FailureData,
) -> pg_sys::TM_Result::Type {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::finish_open(rel);
    let follow = flags as u32 & pg_sys::TUPLE_LOCK_FLAG_FIND_LAST_VERSION != 0;
    // SAFETY: a valid, writable item pointer and failure storage (or
    // none), valid for the call.
    let (start, tmfd) = unsafe { (*tid, tmfd.as_mut()) };
    // (lock waits raise their errors whole: see pg::error_catch)
    let (result, locked) =
        rethrowing(|| modify::lock(rel, start, slot, cid, mode, wait_policy, follow, tmfd));
    if result == pg_sys::TM_Result::TM_Ok {
        // SAFETY: as above.
        unsafe { *tid = locked };
    }
    result
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_set_new_storage(
    rel: pg_sys::Relation,
    locator: *const ddl::Locator,
    persistence: std::ffi::c_char,
    freeze_xid: *mut pg_sys::TransactionId,
    min_multi: *mut pg_sys::MultiXactId,
) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::forget(rel);
    // SAFETY: the new file's locator Postgres passed to this callback.
    let locator = unsafe { &*locator };
    let (frozen, min_multi_now) = ddl::set_new_storage(locator, persistence);
    // SAFETY: the callback's output storage.
    unsafe {
        *freeze_xid = frozen;
        *min_multi = min_multi_now;
    }
    let (_, db, num) = crate::pg::locator::parts(locator);
    super::chain_hint::forget_file(db, num);
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_nontransactional_truncate(rel: pg_sys::Relation) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::forget(rel);
    // non-transactional (a table created or truncated in this transaction):
    // PostgreSQL holds ACCESS EXCLUSIVE
    crate::pg::storage::truncate(rel, 0);
    super::manifest_cache::forget_relation(rel);
    super::chain_hint::forget_relation(rel);
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_copy_data(
    rel: pg_sys::Relation,
    locator: *const ddl::Locator,
) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    super::bulk::finish_open(rel);
    // SAFETY: the new file's locator Postgres passed to this callback.
    crate::pg::storage::copy_to(rel, unsafe { &*locator })
}

#[pg_guard]
#[allow(clippy::too_many_arguments)] // the table AM callback's signature
unsafe extern "C-unwind" fn relation_copy_for_cluster(
    old: pg_sys::Relation,
    new: pg_sys::Relation,
    old_index: pg_sys::Relation,
    use_sort: bool,
    oldest_xmin: pg_sys::TransactionId,
    xid_cutoff: *mut pg_sys::TransactionId,
    multi_cutoff: *mut pg_sys::MultiXactId,
    num_tuples: *mut f64,
    tups_vacuumed: *mut f64,
    tups_recently_dead: *mut f64,
) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let old = unsafe { Rel::from_raw(old) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let new = unsafe { Rel::from_raw(new) };
    // SAFETY: PostgreSQL hands the callback an open relation, or none
    // (VACUUM FULL).
    let old_index = unsafe { Rel::from_nullable(old_index) };
    super::bulk::finish_open(old);
    let copied = cluster::copy_for_cluster(old, new, old_index, use_sort, oldest_xmin);
    // SAFETY: output pointers from the caller; `old` is open. Versions keep
    // their xids, so the old table's freeze cutoffs carry over.
    unsafe {
        *num_tuples = copied.live;
        *tups_vacuumed = copied.dead;
        *tups_recently_dead = copied.recently_dead;
        *xid_cutoff = old.form().relfrozenxid;
        *multi_cutoff = old.form().relminmxid;
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_vacuum(
    rel: pg_sys::Relation,
    params: *mut pg_sys::VacuumParams,
    strategy: pg_sys::BufferAccessStrategy,
) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    // SAFETY: the relation_vacuum callback's own arguments.
    unsafe { vacuum::vacuum(rel, params, strategy) }
}

#[cfg(feature = "pg15")]
#[pg_guard]
unsafe extern "C-unwind" fn scan_analyze_next_block(
    s: pg_sys::TableScanDesc,
    blockno: pg_sys::BlockNumber,
    strategy: pg_sys::BufferAccessStrategy,
) -> bool {
    let sc = scan_of(s);
    // SAFETY: the scan's relation, open while ANALYZE samples it.
    let rel = unsafe { Rel::from_raw(sc.base.rs_rd) };
    // SAFETY: ANALYZE's buffer access strategy.
    let buf = unsafe { crate::pg::buffer::read_with(rel, blockno, strategy) };
    scan::analyze_begin_block(sc, buf);
    true
}

#[cfg(not(feature = "pg15"))]
#[pg_guard]
unsafe extern "C-unwind" fn scan_analyze_next_block(
    s: pg_sys::TableScanDesc,
    stream: *mut pg_sys::ReadStream,
) -> bool {
    // SAFETY: ANALYZE's read stream over this relation's blocks.
    let buf = unsafe { pg_sys::read_stream_next_buffer(stream, std::ptr::null_mut()) };
    if buf == 0 {
        return false;
    }
    scan::analyze_begin_block(scan_of(s), buf);
    true
}

#[pg_guard]
unsafe extern "C-unwind" fn scan_analyze_next_tuple(
    s: pg_sys::TableScanDesc,
    oldest_xmin: pg_sys::TransactionId,
    liverows: *mut f64,
    deadrows: *mut f64,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: the callback's own counters.
    unsafe { scan::analyze_next_tuple(scan_of(s), oldest_xmin, liverows, deadrows, slot) }
}

#[pg_guard]
unsafe extern "C-unwind" fn index_validate_scan(
    table: pg_sys::Relation,
    index: pg_sys::Relation,
    info: *mut pg_sys::IndexInfo,
    snapshot: pg_sys::Snapshot,
    state: *mut pg_sys::ValidateIndexState,
) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let table = unsafe { Rel::from_raw(table) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let index = unsafe { Rel::from_raw(index) };
    // SAFETY: validate_index's registered snapshot, valid for the call.
    let snapshot = unsafe { Snap::from_raw(snapshot) };
    // (index expressions and lock waits raise their errors whole: see
    // pg::error_catch)
    // SAFETY: the index_validate_scan callback's own arguments.
    rethrowing(|| unsafe { index_build::validate_scan(table, index, info, snapshot, state) })
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_size(
    rel: pg_sys::Relation,
    fork: pg_sys::ForkNumber::Type,
) -> u64 {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    ddl::relation_size(rel, fork)
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_needs_toast_table(rel: pg_sys::Relation) -> bool {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    ddl::needs_toast_table(rel)
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_toast_am(_rel: pg_sys::Relation) -> pg_sys::Oid {
    pg_sys::HEAP_TABLE_AM_OID // TOAST tables of lsm tables are ordinary heap tables
}

#[pg_guard]
unsafe extern "C-unwind" fn relation_estimate_size(
    rel: pg_sys::Relation,
    attr_widths: *mut i32,
    pages: *mut pg_sys::BlockNumber,
    tuples: *mut f64,
    allvisfrac: *mut f64,
) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let rel = unsafe { Rel::from_raw(rel) };
    // SAFETY: the planner's width array for this relation (or null).
    let width = || unsafe { pg_sys::get_rel_data_width(rel.raw(), attr_widths) }.max(0) as usize;
    let (scan_pages, rows) = ddl::estimate_size(rel, width);
    // SAFETY: the planner's output storage. No visibility map: no
    // all-visible fraction.
    unsafe {
        *pages = scan_pages;
        *tuples = rows;
        *allvisfrac = 0.0;
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn scan_sample_next_block(
    s: pg_sys::TableScanDesc,
    state: *mut pg_sys::SampleScanState,
) -> bool {
    // SAFETY: the executor's sample scan state.
    unsafe { scan::sample_next_block(scan_of(s), state) }
}

#[pg_guard]
unsafe extern "C-unwind" fn scan_sample_next_tuple(
    s: pg_sys::TableScanDesc,
    state: *mut pg_sys::SampleScanState,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: the executor's sample scan state.
    unsafe { scan::sample_next_tuple(scan_of(s), state, slot) }
}

#[cfg(feature = "pg15")]
#[pg_guard]
unsafe extern "C-unwind" fn scan_bitmap_next_block(
    s: pg_sys::TableScanDesc,
    tbmres: *mut pg_sys::TBMIterateResult,
) -> bool {
    // SAFETY: the executor passes a valid iterate result.
    scan::bitmap_next_block(scan_of(s), unsafe { &*tbmres })
}

#[cfg(feature = "pg15")]
#[pg_guard]
unsafe extern "C-unwind" fn scan_bitmap_next_tuple(
    s: pg_sys::TableScanDesc,
    _tbmres: *mut pg_sys::TBMIterateResult,
    slot: *mut pg_sys::TupleTableSlot,
) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    scan::bitmap_next_tuple(scan_of(s), slot)
}

#[cfg(not(feature = "pg15"))]
#[pg_guard]
unsafe extern "C-unwind" fn scan_bitmap_next_tuple(
    s: pg_sys::TableScanDesc,
    slot: *mut pg_sys::TupleTableSlot,
    recheck: *mut bool,
    lossy_pages: *mut u64,
    exact_pages: *mut u64,
) -> bool {
    // SAFETY: PostgreSQL hands the callback a valid slot.
    let slot = unsafe { Slot::from_raw(slot) };
    // SAFETY: the executor passes valid out-parameters.
    let (recheck, lossy, exact) = unsafe { (&mut *recheck, &mut *lossy_pages, &mut *exact_pages) };
    scan::bitmap_next_tuple(scan_of(s), slot, recheck, lossy, exact)
}

static ROUTINE: pg_sys::TableAmRoutine = pg_sys::TableAmRoutine {
    type_: pg_sys::NodeTag::T_TableAmRoutine,
    slot_callbacks: Some(slot_callbacks),
    scan_begin: Some(scan_begin),
    scan_end: Some(scan_end),
    scan_rescan: Some(scan_rescan),
    scan_getnextslot: Some(scan_getnextslot),
    scan_set_tidrange: Some(scan_set_tidrange),
    scan_getnextslot_tidrange: Some(scan_getnextslot),
    parallelscan_estimate: Some(parallelscan_estimate),
    parallelscan_initialize: Some(parallelscan_initialize),
    parallelscan_reinitialize: Some(parallelscan_reinitialize),
    index_fetch_begin: Some(index_fetch_begin),
    index_fetch_reset: Some(index_fetch_reset),
    index_fetch_end: Some(index_fetch_end),
    index_fetch_tuple: Some(index_fetch_tuple),
    tuple_fetch_row_version: Some(tuple_fetch_row_version),
    tuple_tid_valid: Some(tuple_tid_valid),
    tuple_get_latest_tid: Some(tuple_get_latest_tid),
    tuple_satisfies_snapshot: Some(tuple_satisfies_snapshot),
    index_delete_tuples: Some(index_delete_tuples),
    tuple_insert: Some(tuple_insert),
    tuple_insert_speculative: Some(tuple_insert_speculative),
    tuple_complete_speculative: Some(tuple_complete_speculative),
    multi_insert: Some(multi_insert),
    tuple_delete: Some(tuple_delete),
    tuple_update: Some(tuple_update),
    tuple_lock: Some(tuple_lock),
    finish_bulk_insert: Some(finish_bulk_insert),
    #[cfg(feature = "pg15")]
    relation_set_new_filenode: Some(relation_set_new_storage),
    #[cfg(not(feature = "pg15"))]
    relation_set_new_filelocator: Some(relation_set_new_storage),
    relation_nontransactional_truncate: Some(relation_nontransactional_truncate),
    relation_copy_data: Some(relation_copy_data),
    relation_copy_for_cluster: Some(relation_copy_for_cluster),
    relation_vacuum: Some(relation_vacuum),
    scan_analyze_next_block: Some(scan_analyze_next_block),
    scan_analyze_next_tuple: Some(scan_analyze_next_tuple),
    index_build_range_scan: Some(index_build::index_build_range_scan),
    index_validate_scan: Some(index_validate_scan),
    relation_size: Some(relation_size),
    relation_needs_toast_table: Some(relation_needs_toast_table),
    relation_toast_am: Some(relation_toast_am),
    relation_fetch_toast_slice: Some(htup::heap_fetch_toast_slice),
    relation_estimate_size: Some(relation_estimate_size),
    #[cfg(feature = "pg15")]
    scan_bitmap_next_block: Some(scan_bitmap_next_block),
    scan_bitmap_next_tuple: Some(scan_bitmap_next_tuple),
    scan_sample_next_block: Some(scan_sample_next_block),
    scan_sample_next_tuple: Some(scan_sample_next_tuple),
};
