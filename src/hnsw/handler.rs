//! The `strata_hnsw` index access method's routine and its callbacks (options in [`super::reloptions`]).

use crate::pg::relation::Rel;
use super::{build, cost, gucs, insert, scan, vacuum};
use pgrx::datum::Internal;
use pgrx::pg_sys;
use pgrx::prelude::*;

#[pg_extern(sql = "
CREATE FUNCTION strata_hnsw_handler(internal) RETURNS index_am_handler
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', '@FUNCTION_NAME@';
CREATE ACCESS METHOD strata_hnsw TYPE INDEX HANDLER strata_hnsw_handler;
COMMENT ON ACCESS METHOD strata_hnsw IS 'HNSW approximate nearest neighbor index access method (Strata)';
")]
fn strata_hnsw_handler(_fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    // SAFETY: a zeroed node; every field not set below is false / None.
    let am = unsafe { pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexAmRoutine>()) }
        as *mut pg_sys::IndexAmRoutine;
    // SAFETY: fresh allocation.
    let r = unsafe { &mut *am };
    r.type_ = pg_sys::NodeTag::T_IndexAmRoutine;
    r.amstrategies = 0;
    r.amsupport = 1;
    r.amcanorderbyop = true;
    r.amoptionalkey = true;
    r.amkeytype = pg_sys::InvalidOid;
    r.ambuild = Some(ambuild);
    r.ambuildempty = Some(ambuildempty);
    r.aminsert = Some(aminsert);
    r.ambulkdelete = Some(ambulkdelete);
    r.amvacuumcleanup = Some(amvacuumcleanup);
    r.amcostestimate = Some(amcostestimate);
    r.amoptions = Some(super::reloptions::amoptions);
    r.ambuildphasename = Some(ambuildphasename);
    r.amvalidate = Some(amvalidate);
    r.ambeginscan = Some(ambeginscan);
    r.amrescan = Some(amrescan);
    r.amgettuple = Some(amgettuple);
    r.amendscan = Some(amendscan);
    Internal::from(Some(pg_sys::Datum::from(am)))
}

// ------------------------------------------------------------------ build

#[pg_guard]
unsafe extern "C-unwind" fn ambuild(
    heap: pg_sys::Relation,
    index: pg_sys::Relation,
    info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let heap = unsafe { Rel::from_raw(heap) };
    // SAFETY: PostgreSQL hands the callback an open relation.
    let index = unsafe { Rel::from_raw(index) };
    // SAFETY: the ambuild callback's own arguments.
    unsafe { build::build(heap, index, info) }
}

#[pg_guard]
unsafe extern "C-unwind" fn ambuildempty(index: pg_sys::Relation) {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let index = unsafe { Rel::from_raw(index) };
    build::build_empty(index)
}

#[pg_guard]
unsafe extern "C-unwind" fn ambuildphasename(phase: i64) -> *mut std::ffi::c_char {
    build::phase_name(phase).map_or(std::ptr::null_mut(), |s| s.as_ptr() as *mut _)
}

#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn aminsert(
    index: pg_sys::Relation,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    heap_tid: pg_sys::ItemPointer,
    _heap: pg_sys::Relation,
    _unique: pg_sys::IndexUniqueCheck::Type,
    _unchanged: bool,
    _info: *mut pg_sys::IndexInfo,
) -> bool {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let index = unsafe { Rel::from_raw(index) };
    // SAFETY: the aminsert callback's own arguments.
    unsafe { insert::insert(index, values, isnull, heap_tid) }
}

#[pg_guard]
unsafe extern "C-unwind" fn ambulkdelete(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
    callback: pg_sys::IndexBulkDeleteCallback,
    state: *mut std::ffi::c_void,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: the ambulkdelete callback's own arguments.
    unsafe { vacuum::bulk_delete(info, stats, callback, state) }
}

#[pg_guard]
unsafe extern "C-unwind" fn amvacuumcleanup(
    info: *mut pg_sys::IndexVacuumInfo,
    stats: *mut pg_sys::IndexBulkDeleteResult,
) -> *mut pg_sys::IndexBulkDeleteResult {
    // SAFETY: the amvacuumcleanup callback's own arguments.
    unsafe { vacuum::cleanup(info, stats) }
}

#[pg_guard]
unsafe extern "C-unwind" fn amvalidate(_opclass: pg_sys::Oid) -> bool {
    true
}

// ------------------------------------------------------------------ scans

#[pg_guard]
unsafe extern "C-unwind" fn ambeginscan(
    index: pg_sys::Relation,
    nkeys: i32,
    norderbys: i32,
) -> pg_sys::IndexScanDesc {
    // SAFETY: PostgreSQL hands the callback an open relation.
    let index = unsafe { Rel::from_raw(index) };
    scan::begin(index, nkeys, norderbys)
}

#[pg_guard]
unsafe extern "C-unwind" fn amrescan(
    s: pg_sys::IndexScanDesc,
    _keys: pg_sys::ScanKey,
    _nkeys: i32,
    orderbys: pg_sys::ScanKey,
    norderbys: i32,
) {
    // SAFETY: the amrescan callback's own arguments.
    unsafe { scan::rescan(s, orderbys, norderbys) }
}

#[pg_guard]
unsafe extern "C-unwind" fn amgettuple(
    s: pg_sys::IndexScanDesc,
    _dir: pg_sys::ScanDirection::Type,
) -> bool {
    scan::next(s)
}

#[pg_guard]
unsafe extern "C-unwind" fn amendscan(s: pg_sys::IndexScanDesc) {
    // SAFETY: the amendscan callback's scan, not used afterwards.
    unsafe { scan::end(s) }
}

// ------------------------------------------------------------------ costs

/// Cost of a scan, as pgvector 0.8.6 computes it (arithmetic in [`cost`]):
/// `genericcostestimate` prices a scan of the whole index with selectivity
/// 1, the startup is the fraction a search reads before its first row, and
/// the rest is run cost that a LIMIT pays in proportion to the rows it
/// takes of the path's estimate — which other quals shrink. Without an
/// ORDER BY on the index the scan cannot answer anything: priced out.
#[allow(clippy::too_many_arguments)]
#[pg_guard]
unsafe extern "C-unwind" fn amcostestimate(
    root: *mut pg_sys::PlannerInfo,
    path: *mut pg_sys::IndexPath,
    loop_count: f64,
    startup: *mut pg_sys::Cost,
    total: *mut pg_sys::Cost,
    selectivity: *mut pg_sys::Selectivity,
    correlation: *mut f64,
    pages: *mut f64,
) {
    // SAFETY: the planner passes a valid root, path and output pointers.
    unsafe {
        if (*path).indexorderbys.is_null() {
            *selectivity = 0.0;
            *correlation = 0.0;
            // Infinite cost, and on PG18 (which ranks paths by disabled nodes
            // first) more disabled nodes than a disabled sequential scan, so
            // that `enable_seqscan = off` does not pick this path either.
            *startup = f64::INFINITY;
            *total = f64::INFINITY;
            *pages = 0.0;
            #[cfg(not(feature = "pg15"))]
            {
                (*path).path.disabled_nodes = 2;
            }
            return;
        }
        let mut costs: pg_sys::GenericCosts = std::mem::zeroed();
        pg_sys::genericcostestimate(root, path, loop_count, &mut costs);
        let info = (*path).indexinfo;
        let index = Rel::from_raw(pg_sys::index_open((*info).indexoid, pg_sys::NoLock as _));
        let meta = super::pages::read_meta(index);
        let params = super::pages::Params::of(index, &meta);
        pg_sys::index_close(index.raw(), pg_sys::NoLock as _);
        let m = params.m;
        let discount = cost::codes_discount(
            params.typical_element_size() + super::format::neighbors_size(params.layout, m, 0, 0),
            super::format::capacity(m, 0) * params.code_len(),
        );
        costs.indexTotalCost *= discount;
        costs.numIndexPages *= discount;
        let ratio = cost::startup_ratio((*info).tuples, m, gucs::EF_SEARCH.get() as usize);
        let mut seq_page_cost = 0.0;
        pg_sys::get_tablespace_page_costs(
            (*info).reltablespace,
            std::ptr::null_mut(),
            &mut seq_page_cost,
        );
        *startup = cost::startup_cost(
            costs.indexTotalCost,
            ratio,
            costs.numIndexPages,
            (*(*info).rel).pages as f64,
            costs.spc_random_page_cost,
            seq_page_cost,
        );
        *total = costs.indexTotalCost;
        *selectivity = costs.indexSelectivity;
        *correlation = costs.indexCorrelation;
        *pages = costs.numIndexPages;
    }
}
