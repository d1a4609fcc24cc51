//! CREATE INDEX for `strata_hnsw`: the table's vectors are gathered with
//! `table_index_build_scan`, the graph is built in memory by
//! `graph::parallel_build` — pgvector's insert algorithm, run at once by this
//! thread and a private pool of worker threads (which never call Postgres;
//! they block all signals) — elements no search would reach are linked in,
//! then the graph is written page by page. No change of the build writes a
//! WAL record; every page is logged once, as a full image, at the end
//! (`pg::wal::build_unlogged`).
//!
//! Rows whose vectors are bit-for-bit equal share one element (up to ten heap
//! TIDs in format version 2, like pgvector): a graph of many identical points
//! cannot link them all, and would leave some unreachable.
//!
//! Memory: vectors and graph are kept within `maintenance_work_mem`
//! (`bytes_per_element` says what is counted; a bit
//! index's strings packed, as the column stores them, and measured by
//! popcounts: `Metric::bits_comparable`). When the
//! next vector would not fit, the graph built so far is written out (NOTICE
//! with a hint) and the remaining rows are inserted into the on-disk graph one
//! by one — slower, never a failure.

use crate::pg::page::Page;
use crate::pg::relation::Rel;
use super::calibrate::{calibrate, BuiltGraph};
use super::codes::{self, Coder};
use super::format::{self, ElemId, Element, HeapTid, Layout, Meta, Scalar, KIND_META};
use super::graph::{self, links::Links, parallel_build::{build_parallel, build_vectors, Spec, Vectors}};
use super::insert;
use super::metric::Metric;
use super::options;
use super::pages::{self, Params};
use super::wal::IndexWrite;
use crate::pg::buffer::{self, Locked};
use crate::pg::page;
use crate::vector::bits;
use crate::vector::datum::floats_of;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Build phases shown in pg_stat_progress_create_index.
pub const PHASE_LOAD: i64 = 2;
pub const PHASE_GRAPH: i64 = 3;
pub const PHASE_WRITE: i64 = 4;

pub fn phase_name(phase: i64) -> Option<&'static std::ffi::CStr> {
    match phase {
        PHASE_LOAD => Some(c"loading tuples"),
        PHASE_GRAPH => Some(c"building graph"),
        PHASE_WRITE => Some(c"writing graph pages"),
        _ => None,
    }
}

fn progress(param: u32, value: i64) {
    // SAFETY: progress reporting for the current command.
    unsafe { pg_sys::pgstat_progress_update_param(param as i32, value) };
}

/// The metric of the index's operator class (from its distance function).
pub fn index_metric(index: Rel) -> Metric {
    // SAFETY: an open index; support function 1 of column 1 exists for our opclasses.
    let name = unsafe {
        let proc = pg_sys::index_getprocid(index.raw(), 1, 1);
        let p = pg_sys::get_func_name(proc);
        if p.is_null() {
            String::new()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Metric::from_function_name(&name).unwrap_or_else(|| {
        crate::pg::error::error(
            PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
            format!("strata_hnsw operator class has an unknown distance function \"{name}\""),
        )
    })
}

/// The indexed column's type and typmod.
fn index_column(index: Rel) -> (pg_sys::Oid, i32) {
    // SAFETY: an open index has a tuple descriptor with one attribute; the
    // wrapper does not free it.
    unsafe {
        let desc = pgrx::PgTupleDesc::from_pg_unchecked(index.data().rd_att);
        let t = desc
            .get(0)
            .map(|a| (a.atttypid, a.atttypmod))
            .unwrap_or((pg_sys::InvalidOid, -1));
        std::mem::forget(desc);
        t
    }
}

/// What the indexed column's values are stored as: told by its type's
/// input function (`halfvec_in`, `bit_in`, `sparsevec_in`, else a
/// `vector`), not by a name
/// lookup (CREATE INDEX runs with a search_path of `pg_catalog, pg_temp`
/// since PostgreSQL 17). A `varbit` column is refused as pgvector does: its
/// values have no fixed length.
fn index_scalar(index: Rel) -> Scalar {
    let typid = index_column(index).0;
    if typid == pg_sys::VARBITOID {
        crate::pg::error::error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "type not supported for strata_hnsw index",
        );
    }
    let (mut input, mut ioparam) = (pg_sys::InvalidOid, pg_sys::InvalidOid);
    // SAFETY: catalog lookups of an existing type and function; the name
    // is palloc'd (or NULL).
    unsafe {
        pg_sys::getTypeInputInfo(typid, &mut input, &mut ioparam);
        let name = pg_sys::get_func_name(input);
        match (!name.is_null()).then(|| std::ffi::CStr::from_ptr(name).to_bytes()) {
            Some(b"halfvec_in") => Scalar::Binary16,
            Some(b"bit_in") => Scalar::Bit,
            Some(b"sparsevec_in") => Scalar::Sparse,
            _ => Scalar::Float4,
        }
    }
}

/// Dimensions declared by the indexed column (`vector(n)`, `halfvec(n)`,
/// `bit(n)`).
fn index_dims(index: Rel, scalar: Scalar) -> usize {
    let typmod = index_column(index).1;
    if typmod < 1 {
        crate::pg::error::raise(&options::OptionsError::NoDims);
    }
    let dims = typmod as usize;
    if let Err(e) = options::check_dims(dims, scalar) {
        crate::pg::error::raise(&e);
    }
    dims
}

/// The index's parameters from its column, operator class and options.
pub fn params_for_new_index(index: Rel) -> Params {
    let opts = super::reloptions::options_of(index);
    if let Err(e) = opts.validate() {
        crate::pg::error::raise(&e);
    }
    let scalar = index_scalar(index);
    let (dims, m, mut metric) = (index_dims(index, scalar), opts.m as usize, index_metric(index));
    if scalar == Scalar::Sparse {
        // the distance over the graph's sparse slots
        metric = metric.for_sparse().unwrap_or_else(|| {
            crate::pg::error::error(
                PgSqlErrorCode::ERRCODE_INVALID_OBJECT_DEFINITION,
                "strata_hnsw operator class has no sparse form of its distance",
            )
        });
    }
    let layout = Layout::of(super::gucs::FORMAT_VERSION.get() as u16).unwrap_or(Layout::CURRENT);
    if !layout.stores(scalar) {
        crate::pg::error::error(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "strata_hnsw indexes {} columns in format version {} and later, not {}",
                scalar.type_name(),
                scalar.since_version(),
                layout.version
            ),
        );
    }
    let layout = layout.for_column(scalar);
    // Below 32 dimensions a code (64 bits at least) costs about as much
    // as the vector, whose exact distance is then cheap anyway.
    let wanted = super::gucs::CODES.get() != super::gucs::Codes::Off;
    let code_bits = if wanted && layout.codes() && metric.has_codes() && dims >= codes::MIN_DIMS {
        format::code_bits_for(dims, m, codes::DEFAULT_BITS)
    } else {
        0
    };
    Params {
        dims,
        m,
        ef_construction: opts.ef_construction as usize,
        metric,
        layout,
        code_bits,
        code_seed: if code_bits > 0 { codes::DEFAULT_SEED } else { 0 },
        code_scale: 0,
    }
}

/// What the in-memory build holds per element at its peak, the larger of
/// its two phases (a GloVe 100k × 50 cosine build at 64 MB peaked at 64–71
/// MB of anonymous memory, sampled; see `docs/hnsw-format.md`, "Build
/// memory"):
/// * the graph: the vector (a bit string packed), cosine's inverse norm,
///   `parallel_build`'s slots (an id and a distance + verdict per slot,
///   `2m` at level 0, `m` per upper level: `1/(m-1)` upper levels on
///   average), a lock, an incoming count, two threads' visited marks;
/// * the pages: the vector, its rotated copy for codes (padded dimensions),
///   the lists as `Links` (4 bytes a slot), the calibration's code slot and
///   the item positions;
/// * throughout: the element's level, its first row (more rows of one
///   vector are rare: kept aside) and its entry in the duplicate map.
fn bytes_per_element(params: &Params) -> usize {
    let (m, dims) = (params.m, params.dims);
    let cap0 = format::capacity(m, 0);
    let stored = match params.layout.scalar {
        Scalar::Bit => bits::bytes_for(dims),
        // a sparse vector's slots are counted as each arrives (BuildState::fits)
        Scalar::Sparse => 8,
        _ => 4 * dims,
    };
    let upper_slots = m.div_ceil(m.saturating_sub(1).max(1));
    let graph = stored + 4 + 12 * (cap0 + upper_slots) + 8 + 8 + 4 + 4;
    let padded = params.coder().map_or(0, |c| c.padded());
    let pages = stored + 4 * padded + 4 * (cap0 + upper_slots) + 8 + 24 + 40;
    1 + std::mem::size_of::<HeapTid>() + 40 + graph.max(pages)
}

/// The calibration's code cache out of a build's `limit` bytes: an eighth,
/// at most `calibrate::MAX_CODE_CACHE_BYTES`. (Its many small buffers,
/// once freed, stay with the process for small allocations only.)
fn code_cache_bytes(limit: usize) -> usize {
    (limit / 8).min(super::calibrate::MAX_CODE_CACHE_BYTES)
}

/// Elements whose level-0 codes are computed together out of a build's
/// `limit` bytes: a chunk's codes take at most a sixteenth (two are in
/// flight while pages are written: the one written and the one the pool
/// computes), 64 to 8,192 elements (a 1,536-d chunk of 8,192 took 51 MB).
fn code_chunk(params: &Params, limit: usize) -> usize {
    match format::capacity(params.m, 0) * params.code_len() {
        0 => MAX_CODE_CHUNK,
        per => (limit / 16 / per).clamp(64, MAX_CODE_CHUNK),
    }
}

/// The bytes of the two code chunks in flight.
fn code_chunk_bytes(params: &Params, limit: usize) -> usize {
    2 * code_chunk(params, limit) * format::capacity(params.m, 0) * params.code_len()
}

/// Writes an empty metapage into block 0 of `fork`.
pub fn write_metapage(index: Rel, params: &Params, fork: pg_sys::ForkNumber::Type) {
    let buf = buffer::extend_fork_locked(index, fork);
    let mut w = IndexWrite::start(index);
    let p = w.register(buf.buffer(), true);
    pages::init_page(p, KIND_META, params.layout.version);
    let meta = Meta {
        version: params.layout.version,
        dims: params.dims as u32,
        m: params.m as u16,
        ef_construction: params.ef_construction as u16,
        metric: params.metric as u16,
        entry: ElemId::NONE,
        entry_level: -1,
        elements: 0,
        insert_block: 0,
        code_bits: params.code_bits,
        code_seed: params.code_seed,
        code_scale: params.code_scale,
        scalar: params.layout.scalar,
    };
    pages::write_meta(p, &meta);
    w.commit();
}

impl BuildState {
    /// Bytes of one packed bit string (a bit index's; see `bits`).
    fn bit_stride(&self) -> usize {
        bits::bytes_for(self.params.dims)
    }

    /// How many elements the in-memory graph holds.
    fn count(&self) -> usize {
        match self.params.layout.scalar {
            Scalar::Bit => self.bits.len() / self.bit_stride(),
            Scalar::Sparse => self.ends.len(),
            _ => self.vectors.len() / self.params.dims,
        }
    }

    /// The elements' vectors as the graph build reads them.
    fn vector_set(&self) -> Vectors<'_, f32> {
        match self.params.layout.scalar {
            Scalar::Sparse => Vectors::ragged(&self.vectors, &self.ends),
            _ => Vectors::fixed(&self.vectors, self.params.dims),
        }
    }

    /// Element `i`'s vector as it is stored.
    fn stored(&self, i: usize) -> Stored<'_> {
        if self.params.layout.scalar == Scalar::Bit {
            let n = self.bit_stride();
            Stored::Bits(&self.bits[i * n..(i + 1) * n])
        } else {
            Stored::Floats(self.vector_set().get(i))
        }
    }

    /// Whether one more element of `len` vector slots stays within the
    /// memory limit (a sparse vector's slots counted as they are).
    fn fits(&self, len: usize) -> bool {
        let sparse = match self.params.layout.scalar {
            Scalar::Sparse => 4 * (self.vectors.len() + len),
            _ => 0,
        };
        (self.count() + 1) * self.per_element + sparse <= self.memory_limit
    }
}

/// A vector as the build holds it: floats, or a bit index's packed string.
#[derive(Clone, Copy)]
enum Stored<'a> {
    Floats(&'a [f32]),
    Bits(&'a [u8]),
}

impl<'a> Stored<'a> {
    /// Values held (bytes of a bit string, floats otherwise).
    fn len(self) -> usize {
        match self {
            Stored::Floats(f) => f.len(),
            Stored::Bits(b) => b.len(),
        }
    }

    /// The coordinates (a bit string's widened to 0.0 / 1.0).
    fn floats(self, dims: usize) -> std::borrow::Cow<'a, [f32]> {
        match self {
            Stored::Floats(f) => std::borrow::Cow::Borrowed(f),
            Stored::Bits(b) => std::borrow::Cow::Owned(bits::widen(b, dims)),
        }
    }

    /// Bit-for-bit equality (what makes two rows share an element, as
    /// pgvector's memcmp does).
    fn same(self, other: Stored<'_>) -> bool {
        match (self, other) {
            (Stored::Floats(a), Stored::Floats(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (Stored::Bits(a), Stored::Bits(b)) => a == b,
            _ => false,
        }
    }
}

/// The heap rows of the elements gathered: each element's first row, and
/// the rest of the rows of the few elements that have more (a vector per
/// element cost 56 bytes each, 7% of a 50-d element).
#[derive(Default)]
struct Rows {
    first: Vec<HeapTid>,
    more: std::collections::HashMap<usize, Vec<HeapTid>>,
}

impl Rows {
    /// A new element with its first row.
    fn push(&mut self, tid: HeapTid) {
        self.first.push(tid);
    }

    /// Another row of element `i`.
    fn add(&mut self, i: usize, tid: HeapTid) {
        self.more.entry(i).or_default().push(tid);
    }

    fn count(&self, i: usize) -> usize {
        1 + self.more.get(&i).map_or(0, Vec::len)
    }

    /// Element `i`'s rows, the first first.
    fn of(&self, i: usize) -> std::borrow::Cow<'_, [HeapTid]> {
        match self.more.get(&i) {
            None => std::borrow::Cow::Borrowed(std::slice::from_ref(&self.first[i])),
            Some(more) => std::borrow::Cow::Owned([&[self.first[i]][..], more].concat()),
        }
    }

    /// Rows of all elements.
    fn total(&self) -> usize {
        self.first.len() + self.more.values().map(Vec::len).sum::<usize>()
    }
}

struct BuildState {
    index: Rel,
    params: Params,
    /// The heap rows of each element: most hold one, duplicates of a vector
    /// share an element (all of them in version 3, with row lists; up to the
    /// element's TID slots before).
    tids: Rows,
    /// The elements' vectors, one after the other (`params.dims` each; a
    /// sparse index's slots, element `i`'s ending at `ends[i]`).
    vectors: Vec<f32>,
    ends: Vec<usize>,
    /// A bit index's strings instead, packed as the column stores them
    /// ([`BuildState::bit_stride`] bytes each): a 32nd of their widened
    /// floats, so a build of `bit(1024)` rows holds 128 bytes per row, as
    /// pgvector's does.
    bits: Vec<u8>,
    /// A hash of each distinct vector's bits → the newest element holding it.
    by_vector: std::collections::HashMap<u64, usize>,
    /// Bytes for the elements (`maintenance_work_mem` less `cache_bytes`
    /// and the code chunks in flight).
    memory_limit: usize,
    per_element: usize,
    /// Bytes for the calibration's code cache.
    cache_bytes: usize,
    /// Elements per chunk of level-0 codes written ([`code_chunk`]).
    code_chunk: usize,
    on_disk: bool,
    indexed: u64,
    seen: u64,
}

#[pg_guard]
unsafe extern "C-unwind" fn build_callback(
    _index: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    values: *mut pg_sys::Datum,
    isnull: *mut bool,
    _alive: bool,
    state: *mut std::ffi::c_void,
) {
    // SAFETY: `state` is the BuildState passed to table_index_build_scan.
    let st = unsafe { &mut *(state as *mut BuildState) };
    st.seen += 1;
    // SAFETY: one key column.
    if unsafe { *isnull } {
        return;
    }
    let scalar = st.params.layout.scalar;
    let floats;
    let stored = if scalar == Scalar::Bit {
        // a bit string is kept as the datum packs it (unused low bits zero)
        // SAFETY: a non-null `bit` datum of the indexed column.
        let b = unsafe { crate::vector::bit_datum::Bits::from_raw_datum(*values) };
        st.params.check_len(b.bit_len() as usize);
        Stored::Bits(b.bytes())
    } else {
        // SAFETY: a non-null datum of the indexed column, of its type.
        floats = unsafe { floats_of(*values, scalar) };
        st.params.check_vector(&floats);
        if !st.params.metric.indexable(&floats) {
            return;
        }
        Stored::Floats(&floats)
    };
    // SAFETY: valid TID from the scan.
    let tid = unsafe { *tid };
    if st.on_disk {
        insert::insert_vector(st.index, tid, &stored.floats(st.params.dims));
        st.indexed += 1;
        progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE, st.indexed as i64);
        return;
    }
    let heap_tid = HeapTid {
        block: crate::pg::htup::tid_block(&tid),
        offset: crate::pg::htup::tid_offset(&tid),
    };
    let key = vector_hash(stored);
    if let Some(&i) = st.by_vector.get(&key) {
        let layout = st.params.layout;
        if (layout.row_lists() || st.tids.count(i) < layout.tid_slots()) && st.stored(i).same(stored) {
            st.tids.add(i, heap_tid);
            return;
        }
    }
    if !st.fits(stored.len()) {
        crate::pg::error::notice(
            format!(
                "strata_hnsw graph no longer fits into maintenance_work_mem after {} tuples",
                st.count()
            ),
            "Building will take significantly more time.",
            "Increase maintenance_work_mem to speed up builds.",
        );
        write_graph(st);
        st.on_disk = true;
        insert::insert_vector(st.index, tid, &stored.floats(st.params.dims));
        st.indexed += 1;
        return;
    }
    st.by_vector.insert(key, st.count());
    st.tids.push(heap_tid);
    match stored {
        Stored::Bits(b) => st.bits.extend_from_slice(b),
        Stored::Floats(f) => st.vectors.extend_from_slice(f),
    }
    if scalar == Scalar::Sparse {
        st.ends.push(st.vectors.len());
    }
    if st.count() % 1000 == 0 {
        progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE, st.count() as i64);
    }
}

/// Hash of a vector's bits (duplicates are found by it, then compared).
fn vector_hash(v: Stored<'_>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match v {
        Stored::Floats(f) => f.iter().for_each(|x| x.to_bits().hash(&mut h)),
        Stored::Bits(b) => b.hash(&mut h),
    }
    h.finish()
}

/// Builds the in-memory graph over `st.vectors` and writes it.
fn write_graph(st: &mut BuildState) {
    let n = st.count();
    if n == 0 {
        return;
    }
    let p = st.params;
    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_GRAPH);
    let levels: Vec<u8> = (0..n)
        .map(|_| graph::random_level(insert::random_unit(), p.m, format::max_level(p.m)))
        .collect();
    fn spec<'a, D>(levels: &'a [u8], p: &Params, dist: D, scale: Option<&'a [f32]>) -> Spec<'a, D> {
        Spec {
            levels,
            ef_construction: p.ef_construction,
            cap0: format::capacity(p.m, 0),
            cap: format::capacity(p.m, 1),
            dist,
            scale,
            spare_last_links: !p.metric.is_inner_product(),
        }
    }
    let pool = worker_pool();
    let helpers = pool.current_num_threads().saturating_sub(1);
    let tick = |done: usize| {
        check_for_interrupts!();
        progress(pg_sys::PROGRESS_CREATEIDX_TUPLES_DONE, done as i64);
    };
    let (vectors, dims, set) = (&st.vectors[..], p.dims, st.vector_set());
    let packed = (p.layout.scalar == Scalar::Bit).then(|| p.metric.bits_comparable()).flatten();
    let stride = st.bit_stride();
    let mut links = if let Some(dist) = packed {
        let started = std::time::Instant::now();
        let links = build_parallel(&st.bits[..], stride, &spec(&levels, &p, dist, None), &pool, helpers, tick);
        debug1!(
            "strata_hnsw build: graph of {n} packed bit strings built in {:.2} s on {} threads",
            started.elapsed().as_secs_f64(),
            helpers + 1
        );
        links
    } else {
        // the metric's order on the vectors as stored (cosine: scaled by
        // inverse norms, no unit copies)
        let scale = p.metric.build_scale(vectors, dims);
        let spec = spec(&levels, &p, p.metric.build_distance(), scale.as_deref());
        let started = std::time::Instant::now();
        let links = build_vectors(set, &spec, &pool, helpers, tick);
        debug1!(
            "strata_hnsw build: graph of {n} elements built in {:.2} s on {} threads",
            started.elapsed().as_secs_f64(),
            helpers + 1
        );
        links
    };
    // Elements that no search can reach get an incoming link (not done for
    // inner product: an element inside the data's hull is nobody's nearest
    // neighbour there, and links to it would displace the links to the
    // large-norm elements IP searches need).
    if !p.metric.is_inner_product() {
        let metric = p.metric;
        let top = (0..n).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).expect("n > 0");
        match packed {
            Some(dist) => graph::link_unreachable(&mut links, top, format::capacity(p.m, 0), |a, b| {
                dist(&st.bits[a * stride..][..stride], &st.bits[b * stride..][..stride]) as f64
            }),
            None => graph::link_unreachable(&mut links, top, format::capacity(p.m, 0), |a, b| {
                metric.distance(set.get(a), set.get(b))
            }),
        };
    }
    finish_graph(st, &levels, &links, &pool);
}

/// Writes a built graph's pages and empties the build state.
fn finish_graph(st: &mut BuildState, levels: &[u8], links: &Links, pool: &rayon::ThreadPool) {
    progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_WRITE);
    let mut coder = st.params.coder();
    let started = std::time::Instant::now();
    let rotated = coder.as_ref().map(|c| rotate_all(c, &st.vectors, st.params.dims, pool));
    debug1!("strata_hnsw build: vectors rotated in {:.2} s", started.elapsed().as_secs_f64());
    if let (Some(c), Some(r)) = (&coder, &rotated) {
        // whether the codes pay on this data, and the guided search's scale
        let ef = super::gucs::EF_SEARCH.get().max(1) as usize;
        let top = (0..levels.len()).max_by_key(|&i| (levels[i], std::cmp::Reverse(i))).expect("non-empty");
        let p = st.params;
        let g = BuiltGraph {
            data: &st.vectors,
            rotated: r,
            dims: p.dims,
            links,
            top,
            metric: p.metric,
            coder: c,
            cache_bytes: st.cache_bytes,
        };
        let started = std::time::Instant::now();
        // up to ten times ef_search: a scale measured at four times it left
        // uniform 10k × 128 at 0.944–0.966 at ef_search 400 (the exact
        // search's floor there is 0.95); measured at ten times, 0.983–0.997
        let found = calibrate(&g, &[ef, (ef / 2).max(10), (10 * ef).min(1000)], pool);
        debug1!(
            "strata_hnsw codes: pay {}, scale {} (measured in {:.2} s); recall@10 and reads per query at ef_search {ef}: exact {:.3} / {:.0}, guided {:.3} / {:.0}",
            found.pays,
            found.scale,
            started.elapsed().as_secs_f64(),
            found.exact.0,
            found.exact.1,
            found.guided.0,
            found.guided.1
        );
        if found.pays || super::gucs::CODES.get() == super::gucs::Codes::On {
            st.params.code_scale = found.scale;
        } else {
            st.params.code_bits = 0;
            coder = None;
        }
    }
    let codes = coder.as_ref().zip(rotated.as_deref()).map(|(c, r)| LevelZeroCodes {
        coder: c,
        rotated: r,
        pool,
        chunk: st.code_chunk,
    });
    let started = std::time::Instant::now();
    write_pages(st, levels, links, codes.as_ref());
    debug1!("strata_hnsw build: pages written in {:.2} s", started.elapsed().as_secs_f64());
    st.indexed += st.tids.total() as u64;
    st.vectors = Vec::new();
    st.bits = Vec::new();
    st.tids = Rows::default();
    st.by_vector = std::collections::HashMap::new();
}

/// Every element's vector made ready for codes and rotated
/// ([`Coder::rotate`]), one after the other, computed by the pool.
fn rotate_all(coder: &Coder, vectors: &[f32], dims: usize, pool: &rayon::ThreadPool) -> Vec<f32> {
    use rayon::prelude::*;
    let padded = coder.padded();
    let mut out = vec![0.0f32; vectors.len() / dims * padded];
    pool.install(|| {
        out.par_chunks_mut(padded * 1024)
            .zip(vectors.par_chunks(dims * 1024))
            .for_each(|(out, vectors)| {
                let mut r = Vec::with_capacity(padded);
                for (o, v) in out.chunks_exact_mut(padded).zip(vectors.chunks_exact(dims)) {
                    coder.rotate(v, &mut r);
                    o.copy_from_slice(&r);
                }
            })
    });
    out
}

/// Most elements whose level-0 codes are computed together.
const MAX_CODE_CHUNK: usize = 8192;

/// What the build needs to write level-0 codes.
struct LevelZeroCodes<'a> {
    coder: &'a Coder,
    rotated: &'a [f32],
    pool: &'a rayon::ThreadPool,
    /// Elements per chunk ([`code_chunk`]).
    chunk: usize,
}

impl LevelZeroCodes<'_> {
    /// The codes of the level-0 lists of elements `range`, `capacity(m, 0)`
    /// codes per element (zeros past the list's end), computed by the pool.
    fn chunk(&self, range: std::ops::Range<usize>, links: &Links, cap0: usize) -> Vec<u8> {
        use rayon::prelude::*;
        let len = self.coder.code_len();
        let start = range.start;
        let mut out = vec![0u8; range.len() * cap0 * len];
        self.pool.install(|| {
            out.par_chunks_mut(cap0 * len).enumerate().for_each(|(k, codes)| {
                let i = start + k;
                self.coder.encode_list(self.rotated, i, links.list(i, 0), codes);
            })
        });
        out
    }
}

/// A pool of graph-building threads that never run Postgres code and
/// block every signal (signals stay with the backend's main thread).
fn worker_pool() -> rayon::ThreadPool {
    // SAFETY: reads a GUC.
    let workers = unsafe { pg_sys::max_parallel_maintenance_workers }.max(0) as usize + 1;
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers.min(cpus).max(1))
        .start_handler(|_| {
            // SAFETY: blocks all signals in this worker thread only.
            unsafe {
                let mut all: libc::sigset_t = std::mem::zeroed();
                libc::sigfillset(&mut all);
                libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
            }
        })
        .build()
        .unwrap_or_else(|e| {
            crate::pg::error::error(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_RESOURCES,
                format!("could not start strata_hnsw build threads: {e}"),
            )
        })
}

/// Lays elements out on pages (neighbor item, then element item, both on
/// one page when they fit, then the element's row lists if it has more rows
/// than its slots hold) and writes them; sets the entry point.
fn write_pages(st: &BuildState, levels: &[u8], links: &Links, codes: Option<&LevelZeroCodes>) {
    let p = st.params;
    let (code_len, cap0) = (p.code_len(), format::capacity(p.m, 0));
    let chunk = codes.map_or(MAX_CODE_CHUNK, |c| c.chunk);
    let usable = format::BLOCK_SIZE - format::PAGE_HEADER_SIZE - format::TAG_SIZE;
    let cost = crate::page_layout::item_cost;
    let first = buffer::nblocks(st.index);
    // Pass 1: positions.
    let mut elem_ids = Vec::with_capacity(levels.len());
    let mut nbr_ids = Vec::with_capacity(levels.len());
    // the row lists of each element with more rows than its slots hold,
    // after the element on its page or the next ones (format::ROW_LIST_*)
    let mut list_ids: Vec<Vec<ElemId>> = vec![Vec::new(); levels.len()];
    let (mut block, mut used, mut next_off) = (first, 0usize, 1u16);
    // version 5 pages hold at most 63 items (a compact id's offset)
    let max_items = p.layout.max_items().unwrap_or(u16::MAX);
    // an element's item size: fixed, or a sparse vector's own
    let esize_of = |i: usize| match p.layout.scalar {
        Scalar::Sparse => p.layout.element_size(st.stored(i).len()),
        _ => p.layout.element_size(p.dims),
    };
    let slots = p.layout.tid_slots();
    // the sizes of an element's row lists: its rows past the slots (all
    // but the last when there are lists) in chunks of ROW_LIST_TIDS
    let list_sizes = |rows: usize| -> Vec<usize> {
        if rows <= slots {
            return Vec::new();
        }
        let rest = rows - (slots - 1);
        (0..rest.div_ceil(format::ROW_LIST_TIDS))
            .map(|k| {
                let n = (rest - k * format::ROW_LIST_TIDS).min(format::ROW_LIST_TIDS);
                format::row_list_size(format::built_row_list_capacity(p.layout, n))
            })
            .collect()
    };
    for (i, &level) in levels.iter().enumerate() {
        let nsize = format::neighbors_size(p.layout, p.m, level as usize, code_len);
        let esize = esize_of(i);
        if (used + cost(nsize) + cost(esize) > usable || next_off + 1 > max_items) && used > 0 {
            block += 1;
            used = 0;
            next_off = 1;
        }
        if cost(nsize) + cost(esize) > usable {
            // Too large together: the neighbor item gets a page of its own.
            nbr_ids.push(ElemId { block, offset: 1 });
            block += 1;
            elem_ids.push(ElemId { block, offset: 1 });
            used = cost(esize);
            next_off = 2;
        } else {
            nbr_ids.push(ElemId {
                block,
                offset: next_off,
            });
            elem_ids.push(ElemId {
                block,
                offset: next_off + 1,
            });
            next_off += 2;
            used += cost(nsize) + cost(esize);
        }
        for size in list_sizes(st.tids.count(i)) {
            if used + cost(size) > usable || next_off > max_items {
                block += 1;
                used = 0;
                next_off = 1;
            }
            list_ids[i].push(ElemId {
                block,
                offset: next_off,
            });
            next_off += 1;
            used += cost(size);
        }
    }
    // Pass 2: items in page order, one full-page WAL record per page,
    // through shared buffers: the index is there for its first scans, as
    // pgvector's is. (Written past the buffers with bulk_write.c, scans and
    // inserts right after a build read every page from the kernel first:
    // the bench's first queries ran at half the rate.)
    // (the record, its page, the block, the buffer: fields drop in this
    // order, so an ERROR abandons the record before the buffer is released)
    let mut current: Option<(IndexWrite, Page, u32, Locked)> = None;
    let mut place = |target: ElemId, bytes: &[u8]| {
        if current.as_ref().map(|c| c.2) != Some(target.block) {
            if let Some((w, _, _, buf)) = current.take() {
                w.commit();
                drop(buf);
            }
            let buf = Locked::adopt(pages::extend(st.index, st.params.layout));
            assert_eq!(buf.block(), target.block, "build pages out of step");
            let mut w = IndexWrite::start(st.index);
            let wp = w.register(buf.buffer(), true);
            pages::init_page(wp, format::KIND_GRAPH, st.params.layout.version);
            current = Some((w, wp, target.block, buf));
        }
        let (_, wp, _, _) = current.as_ref().expect("page just set");
        let off = page::add_item(*wp, bytes);
        assert_eq!(off, Some(target.offset), "build item out of step");
    };
    // Level-0 codes come a chunk of elements at a time from `next_codes`
    // (computed by the pool while this thread writes the chunk before).
    let mut write_all = |next_codes: &mut dyn FnMut(usize) -> Vec<u8>| {
        let mut chunk_codes = Vec::new();
        for i in 0..levels.len() {
            if i % 1000 == 0 {
                check_for_interrupts!();
            }
            if code_len > 0 && i % chunk == 0 {
                chunk_codes = next_codes(i);
            }
            let lists: Vec<Vec<ElemId>> = (0..=levels[i] as usize)
                .map(|l| links.list(i, l).iter().map(|&j| elem_ids[j as usize]).collect())
                .collect();
            let mut nbr = format::encode_neighbors(p.layout, p.m, levels[i] as usize, &lists, code_len);
            if code_len > 0 && !chunk_codes.is_empty() {
                let (at, _) = format::codes_region(p.layout, &nbr, p.m);
                let k = i % chunk;
                nbr[at..].copy_from_slice(&chunk_codes[k * cap0 * code_len..(k + 1) * cap0 * code_len]);
            }
            place(nbr_ids[i], &nbr);
            let e = Element {
                heap_block: st.tids.first[i].block,
                heap_offset: st.tids.first[i].offset,
                level: levels[i],
                flags: 0,
                neighbors: nbr_ids[i],
            };
            let rows = &st.tids.of(i)[..];
            let lists = &list_ids[i];
            let inline = if lists.is_empty() { rows.len() } else { slots - 1 };
            let mut item = format::encode_element(&e, p.layout, &rows[..inline], &st.stored(i).floats(p.dims));
            if let Some(&head) = lists.first() {
                format::set_row_list(&mut item, p.layout, head);
            }
            place(elem_ids[i], &item);
            for (k, chunk) in rows[inline..].chunks(format::ROW_LIST_TIDS).enumerate() {
                let next = lists.get(k + 1).copied().unwrap_or(ElemId::NONE);
                let capacity = format::built_row_list_capacity(p.layout, chunk.len());
                place(lists[k], &format::encode_row_list(next, capacity, chunk));
            }
        }
    };
    match codes {
        None => write_all(&mut |_| Vec::new()),
        Some(c) => c.pool.in_place_scope(|scope| {
            let n = levels.len();
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
            let spawn = |start: usize| {
                let tx = tx.clone();
                scope.spawn(move |_| {
                    // the receiver is gone only when the backend's thread
                    // left with an error
                    let _ = tx.send(c.chunk(start..(start + chunk).min(n), links, cap0));
                });
            };
            spawn(0);
            write_all(&mut |start| {
                let got = rx.recv().expect("a code chunk");
                if start + chunk < n {
                    spawn(start + chunk);
                }
                got
            });
        }),
    }
    if let Some((w, _, _, buf)) = current.take() {
        w.commit();
        drop(buf);
    }
    let top = (0..levels.len())
        .max_by_key(|&i| (levels[i], std::cmp::Reverse(i)))
        .expect("non-empty");
    pages::update_meta(st.index, |m| {
        m.entry = elem_ids[top];
        m.entry_level = levels[top] as i16;
        m.elements += levels.len() as u64;
        // what the calibration decided (the codes' width as written)
        m.code_bits = p.code_bits;
        m.code_scale = p.code_scale;
        true
    });
}

/// `ambuild`.
///
/// # Safety
/// The `ambuild` callback's arguments: open heap and index relations and the
/// index's valid `IndexInfo`.
pub unsafe fn build(
    heap: Rel,
    index: Rel,
    info: *mut pg_sys::IndexInfo,
) -> *mut pg_sys::IndexBuildResult {
    if buffer::nblocks(index) != 0 {
        crate::pg::error::error(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!(
                "index \"{}\" already contains data",
                pages::index_name(index)
            ),
        );
    }
    let params = params_for_new_index(index);
    // every page logged once, at the end (see `wal::build_unlogged`)
    let (reltuples, indexed) = crate::pg::wal::build_unlogged(index, || {
        write_metapage(index, &params, pg_sys::ForkNumber::MAIN_FORKNUM);
        // SAFETY: reads a GUC (kB).
        let mem_kb = unsafe { pg_sys::maintenance_work_mem }.max(64) as usize;
        let per_element = bytes_per_element(&params);
        // (no codes, no calibration)
        let cache = if params.code_len() > 0 { code_cache_bytes(mem_kb * 1024) } else { 0 };
        let mut st = BuildState {
            index,
            params,
            tids: Rows::default(),
            vectors: Vec::new(),
            ends: Vec::new(),
            bits: Vec::new(),
            by_vector: std::collections::HashMap::new(),
            memory_limit: mem_kb * 1024 - (cache + code_chunk_bytes(&params, mem_kb * 1024)).min(mem_kb * 1024 / 2),
            cache_bytes: cache,
            code_chunk: code_chunk(&params, mem_kb * 1024),
            per_element,
            on_disk: false,
            indexed: 0,
            seen: 0,
        };
        progress(pg_sys::PROGRESS_CREATEIDX_SUBPHASE, PHASE_LOAD);
        // SAFETY: standard index build scan with our callback and state.
        let reltuples = unsafe {
            pg_sys::table_index_build_scan(
                heap.raw(),
                index.raw(),
                info,
                true,
                true,
                Some(build_callback),
                &mut st as *mut BuildState as *mut std::ffi::c_void,
                std::ptr::null_mut(),
            )
        };
        if !st.on_disk {
            progress(
                pg_sys::PROGRESS_CREATEIDX_TUPLES_TOTAL,
                st.count() as i64,
            );
            write_graph(&mut st);
        }
        (reltuples, st.indexed)
    });
    // SAFETY: palloc0 of the result struct.
    let result = unsafe { pg_sys::palloc0(std::mem::size_of::<pg_sys::IndexBuildResult>()) }
        as *mut pg_sys::IndexBuildResult;
    // SAFETY: fresh allocation.
    unsafe {
        (*result).heap_tuples = reltuples;
        (*result).index_tuples = indexed as f64;
    }
    result
}

/// `ambuildempty`: the init fork of an unlogged index holds an empty metapage.
pub fn build_empty(index: Rel) {
    let params = params_for_new_index(index);
    write_metapage(index, &params, pg_sys::ForkNumber::INIT_FORKNUM);
    // GenericXLog does not log unlogged relations; the init fork must survive
    // a crash, so it is logged as a full page.
    crate::pg::wal::log_full_pages(index, pg_sys::ForkNumber::INIT_FORKNUM, 1);
}
