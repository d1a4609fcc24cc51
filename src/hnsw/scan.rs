//! Index scans: `ORDER BY col <op> $1 [LIMIT k]` returns rows nearest first.
//!
//! The first batch is a greedy descent to layer 0 and a best-first search
//! with `strata.hnsw_ef_search` candidates. On an index with neighbor codes
//! (format version 4) that search is code-guided (`graph::guided`): one
//! page read per element expanded scores its whole neighborhood, and exact
//! distances of the expanded elements decide what is returned; older
//! formats and L1 indexes compute every neighbor's exact distance. Unless `strata.hnsw_iterative_scan`
//! is `off`, the same search is widened (twice the candidates each time) when
//! the executor wants more rows — because a WHERE clause rejected many, or
//! the LIMIT is above ef_search — until it has examined
//! `strata.hnsw_max_scan_tuples` elements, its lists outgrow `work_mem ×
//! strata.hnsw_scan_mem_multiplier`, or the graph is exhausted; at either
//! limit the elements already scored are returned too, nearest first, before
//! the scan ends (as pgvector does). `relaxed_order` (the default) returns
//! each batch's new rows in distance order; `strict_order` also never returns
//! a row nearer than one already returned (such late finds are skipped).
//!
//! The default differs from pgvector's (`off`) on purpose: with `off` a
//! filtered query returns only the rows that pass the filter among the first
//! ef_search candidates, often fewer than its LIMIT or none; `relaxed_order`
//! costs nothing for queries the first batch satisfies, since a scan widens
//! only when the executor asks for more rows than that batch held.
//!
//! An element holds every row with its vector (up to ten, format version
//! 2): once an element is chosen, all its heap TIDs are returned in turn,
//! read from its page at that moment.
//!
//! The scan's Rust state is owned through the scan's memory context: a
//! reset callback frees it even when the query ends in an error.

use crate::pg::relation::Rel;
use super::format::{ElemId, HeapTid, IdSet, Scalar};
use super::graph::guided::GuidedSearch;
use super::graph::{self, LayerSearch, Scored};
use super::gucs::{self, IterativeScan};
use super::pages::{self, DiskGraph, Params};
use super::rounded;
use super::rows::Rounding;
use crate::vector::datum::floats_of;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The layer-0 search of a scan: guided by the neighbor codes when the
/// index has them (format version 4), exact otherwise.
enum Search {
    Exact(LayerSearch),
    Guided(GuidedSearch),
}

impl Search {
    fn start(g: &mut DiskGraph, q: &[f32], entry: ElemId) -> Search {
        if g.coded() {
            Search::Guided(GuidedSearch::start(&[entry]))
        } else {
            Search::Exact(LayerSearch::start(g, q, &[entry]))
        }
    }

    fn run(&mut self, g: &mut DiskGraph, q: &[f32], ef: usize, budget: u64) {
        match self {
            Search::Exact(s) => s.run(g, q, 0, ef, budget),
            Search::Guided(s) => {
                let scale = g.params.guided_scale();
                s.run(g, q, ef.saturating_mul(scale), budget)
            }
        }
    }

    fn results(&self) -> Vec<Scored> {
        match self {
            Search::Exact(s) => s.results(),
            Search::Guided(s) => s.results(),
        }
    }

    fn all_scored(&self) -> Vec<Scored> {
        match self {
            Search::Exact(s) => s.all_scored(),
            Search::Guided(s) => s.all_scored(),
        }
    }

    fn exhausted(&self) -> bool {
        match self {
            Search::Exact(s) => s.exhausted(),
            Search::Guided(s) => s.exhausted(),
        }
    }

    fn evaluated(&self) -> u64 {
        match self {
            Search::Exact(s) => s.evaluated,
            Search::Guided(s) => s.evaluated,
        }
    }

    fn memory_bytes(&mut self) -> usize {
        match self {
            Search::Exact(s) => s.memory_bytes(),
            Search::Guided(s) => s.memory_bytes(),
        }
    }
}

struct ScanState {
    query: Option<Vec<f32>>,
    graph: DiskGraph,
    search: Option<Search>,
    batch: Vec<Scored>,
    pos: usize,
    returned: IdSet,
    /// Heap rows of the last returned element still to return, last first.
    pending: Vec<HeapTid>,
    /// The ORDER BY value handed out with the last element's rows.
    order: Order,
    /// |query| (inner product and cosine bounds of rounded elements).
    query_norm: f64,
    last: f64,
    ef: usize,
    /// The first batch was searched (the search itself is dropped once it
    /// has given its last batch).
    started: bool,
    finished: bool,
}

#[pg_guard]
unsafe extern "C-unwind" fn free_state(arg: *mut std::ffi::c_void) {
    if !arg.is_null() {
        // SAFETY: `arg` is the Box leaked in `begin`, freed once.
        drop(unsafe { Box::from_raw(arg as *mut ScanState) });
    }
}

fn state<'a>(scan: pg_sys::IndexScanDesc) -> &'a mut ScanState {
    // SAFETY: opaque holds the callback whose arg is our ScanState.
    unsafe {
        let cb = (*scan).opaque as *mut pg_sys::MemoryContextCallback;
        &mut *((*cb).arg as *mut ScanState)
    }
}

pub fn begin(index: Rel, nkeys: i32, norderbys: i32) -> pg_sys::IndexScanDesc {
    // SAFETY: standard scan descriptor allocation.
    let scan = unsafe { pg_sys::RelationGetIndexScan(index.raw(), nkeys, norderbys) };
    let meta = pages::read_meta(index);
    let st = Box::new(ScanState {
        query: None,
        graph: DiskGraph::new(index, Params::of(index, &meta)),
        search: None,
        batch: Vec::new(),
        pos: 0,
        returned: IdSet::default(),
        pending: Vec::new(),
        order: Order::default(),
        query_norm: 0.0,
        last: f64::NEG_INFINITY,
        ef: 0,
        started: false,
        finished: false,
    });
    // SAFETY: the callback lives in the current (scan) memory context and
    // frees the state when that context goes away; the ORDER BY value
    // arrays (one per ORDER BY key) live there too, as the executor expects.
    unsafe {
        if norderbys > 0 {
            let n = norderbys as usize;
            (*scan).xs_orderbyvals = pg_sys::palloc0(n * std::mem::size_of::<pg_sys::Datum>()) as *mut pg_sys::Datum;
            let nulls = pg_sys::palloc(n * std::mem::size_of::<bool>()) as *mut bool;
            std::ptr::write_bytes(nulls, 1, n);
            (*scan).xs_orderbynulls = nulls;
        }
        let cb = pg_sys::palloc0(std::mem::size_of::<pg_sys::MemoryContextCallback>())
            as *mut pg_sys::MemoryContextCallback;
        (*cb).func = Some(free_state);
        (*cb).arg = Box::into_raw(st) as *mut std::ffi::c_void;
        pg_sys::MemoryContextRegisterResetCallback(pg_sys::CurrentMemoryContext, cb);
        (*scan).opaque = cb as *mut std::ffi::c_void;
    }
    scan
}

/// # Safety
/// `scan` is a scan begun by this access method; `orderbys` holds
/// `norderbys` valid scan keys (or is null when there are none).
pub unsafe fn rescan(scan: pg_sys::IndexScanDesc, orderbys: pg_sys::ScanKey, norderbys: i32) {
    // SAFETY: the executor passes `norderbys` keys; orderByData has room.
    unsafe {
        if !orderbys.is_null() && norderbys > 0 {
            std::ptr::copy(orderbys, (*scan).orderByData, norderbys as usize);
        }
    }
    let st = state(scan);
    st.search = None;
    st.batch.clear();
    st.pos = 0;
    st.returned.clear();
    st.pending.clear();
    st.order = Order::default();
    st.last = f64::NEG_INFINITY;
    st.started = false;
    st.finished = false;
    // SAFETY: orderByData has numberOfOrderBys keys.
    st.query = unsafe {
        if (*scan).numberOfOrderBys < 1 {
            // the cost model prices such paths out; should one be forced on
            // us anyway (all other plans disabled), say so rather than
            // return no rows
            ereport!(
                ERROR,
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "a strata_hnsw index can only be scanned in ORDER BY distance order",
                "It returns rows only by distance to a query vector: ORDER BY column <-> vector (or <#>, <=>, <+>)."
            );
        } else {
            let key = &*(*scan).orderByData;
            let (scalar, dims) = (st.graph.params.layout.scalar, st.graph.params.dims);
            if key.sk_flags & pg_sys::SK_ISNULL as i32 != 0 {
                // ORDER BY distance to NULL puts every row at a NULL distance,
                // in no particular order: return the indexed rows in the
                // order of a search from the origin rather than none
                Some(match scalar {
                    // no non-zero element
                    Scalar::Sparse => crate::vector::sparse::Slots::encode(crate::vector::sparse::View {
                        dim: dims as i32,
                        indices: &[],
                        values: &[],
                    }),
                    _ => vec![0.0; dims],
                })
            } else {
                let q = floats_of(key.sk_argument, scalar).into_owned();
                // a sparse query's dimension count is its own, not its slots'
                let qdims = match scalar {
                    Scalar::Sparse => crate::vector::sparse_datum::SparseVec::from_raw_datum(key.sk_argument)
                        .view()
                        .dim as usize,
                    _ => q.len(),
                };
                check_query_dims(scalar, qdims, dims);
                st.query_norm = crate::vector::ops::norm(&q);
                Some(q)
            }
        }
    };
}

/// Raises pgvector's 22000 for a query whose dimension count is not the
/// column's.
fn check_query_dims(scalar: Scalar, query: usize, column: usize) {
    if query != column {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
            match scalar {
                Scalar::Bit => format!("different bit lengths {query} and {column}"),
                s => format!("different {} dimensions {query} and {column}", s.type_name()),
            }
        );
    }
}

fn first_batch(scan: pg_sys::IndexScanDesc, st: &mut ScanState, q: &[f32]) {
    // SAFETY: the scan this callback was handed.
    unsafe { crate::pg::stats::count_index_search(scan) };
    let meta = pages::read_meta(st.graph.index);
    if meta.entry_level < 0 {
        st.finished = true;
        return;
    }
    // prepared first: the upper layers' distances of a bit index are
    // popcounts too
    st.graph.prepare(q);
    let ep = graph::descend(&mut st.graph, q, meta.entry, meta.entry_level as usize, 0);
    let mut search = Search::start(&mut st.graph, q, ep);
    st.ef = gucs::EF_SEARCH.get().max(1) as usize;
    search.run(&mut st.graph, q, st.ef, u64::MAX);
    st.batch = search.results();
    st.pos = 0;
    st.search = Some(search);
}

/// Bytes an iterative scan may hold: `work_mem × strata.hnsw_scan_mem_multiplier`.
fn memory_limit() -> usize {
    // SAFETY: reading the work_mem GUC (kilobytes) of this backend.
    let work_mem_kb = unsafe { pg_sys::work_mem }.max(64) as f64;
    (work_mem_kb * 1024.0 * gucs::SCAN_MEM_MULTIPLIER.get()) as usize
}

fn scan_memory(st: &ScanState, search: &mut Search) -> usize {
    search.memory_bytes()
        + st.graph.cache_bytes()
        + st.returned.capacity() * (std::mem::size_of::<ElemId>() + 1)
}

/// Widens the search for the next batch; false when nothing more can come.
/// At the tuple budget or the memory limit the last batch is every element
/// scored and not yet returned.
fn next_batch(st: &mut ScanState, q: &[f32]) -> bool {
    let mode = gucs::ITERATIVE_SCAN.get();
    let budget = gucs::MAX_SCAN_TUPLES.get().max(1) as u64;
    let Some(mut search) = st.search.take() else {
        return false;
    };
    if mode == IterativeScan::Off || search.exhausted() {
        return false;
    }
    let stopped = search.evaluated() >= budget || scan_memory(st, &mut search) > memory_limit();
    let next = if stopped {
        search.all_scored()
    } else {
        st.ef = st.ef.saturating_mul(2);
        search.run(&mut st.graph, q, st.ef, budget);
        search.results()
    };
    let returned = &st.returned;
    st.batch = next
        .into_iter()
        .filter(|s| !returned.contains(&s.id))
        .collect();
    st.pos = 0;
    // a stopped search gives its last batch and no more
    if !stopped {
        st.search = Some(search);
    }
    !st.batch.is_empty() || st.search.is_some()
}

/// `amgettuple`: the next row, nearest first.
pub fn next(scan: pg_sys::IndexScanDesc) -> bool {
    let st = state(scan);
    let Some(q) = st.query.take() else {
        return false;
    };
    let found = next_with(scan, st, &q);
    st.query = Some(q);
    found
}

fn next_with(scan: pg_sys::IndexScanDesc, st: &mut ScanState, q: &[f32]) -> bool {
    if st.finished {
        return false;
    }
    if !st.started {
        st.started = true;
        first_batch(scan, st, q);
    }
    let strict = gucs::ITERATIVE_SCAN.get() == IterativeScan::StrictOrder;
    loop {
        // the further heap rows of the element returned last
        if let Some(t) = st.pending.pop() {
            set_heap_tid(scan, t, st.order);
            return true;
        }
        while st.pos < st.batch.len() {
            let s = st.batch[st.pos];
            st.pos += 1;
            if st.returned.contains(&s.id) || (strict && s.distance < st.last) {
                continue;
            }
            // every heap row of a live element, as its page holds them now
            let (mut tids, rounding) = match st.graph.params.layout.scalar {
                Scalar::Rounded16 => super::rows::live_heap_tids_rounded(&st.graph, s.id),
                _ => (super::rows::live_heap_tids(&st.graph, s.id), Rounding::default()),
            };
            tids.reverse();
            let Some(first) = tids.pop() else {
                continue;
            };
            st.returned.insert(s.id);
            st.last = st.last.max(s.distance);
            st.pending = tids;
            st.order = order_of(st, s.distance, rounding);
            set_heap_tid(scan, first, st.order);
            return true;
        }
        check_for_interrupts!();
        if !next_batch(st, q) {
            st.finished = true;
            return false;
        }
    }
}

/// The ORDER BY value of an element's rows found at distance `d` from the
/// query: `d` itself when the element stores its rows' vector exactly;
/// for a rounded one (format version 9) a bound no row's exact distance
/// is below, with a request that the executor recheck the order
/// (`rounded.rs`).
#[derive(Clone, Copy, Default)]
struct Order {
    value: f64,
    recheck: bool,
}

fn order_of(st: &ScanState, d: f64, r: Rounding) -> Order {
    if r.slack == 0.0 {
        return Order { value: d, recheck: false };
    }
    let p = &st.graph.params;
    Order {
        value: rounded::lower_bound(p.metric, d, r.slack, st.query_norm, r.norm, p.dims),
        recheck: true,
    }
}

fn set_heap_tid(scan: pg_sys::IndexScanDesc, t: HeapTid, order: Order) {
    // SAFETY: valid scan descriptor; the ORDER BY arrays were allocated in
    // `begin` for its one ORDER BY key (none for other scans).
    unsafe {
        (*scan).xs_heaptid = crate::pg::htup::make_tid(t.block, t.offset);
        (*scan).xs_recheck = false;
        (*scan).xs_recheckorderby = order.recheck;
        let null_query = (*scan).numberOfOrderBys > 0
            && (*(*scan).orderByData).sk_flags & pg_sys::SK_ISNULL as i32 != 0;
        if !(*scan).xs_orderbyvals.is_null() && !null_query {
            *(*scan).xs_orderbyvals = order.value.into_datum().expect("a float8 datum");
            *(*scan).xs_orderbynulls = false;
        }
    }
}

/// # Safety
/// `scan` is a scan begun by this access method, not used afterwards.
pub unsafe fn end(scan: pg_sys::IndexScanDesc) {
    // SAFETY: opaque holds our callback; the state is freed now and the
    // callback disarmed.
    unsafe {
        let cb = (*scan).opaque as *mut pg_sys::MemoryContextCallback;
        if !cb.is_null() {
            free_state((*cb).arg);
            (*cb).arg = std::ptr::null_mut();
        }
    }
}
