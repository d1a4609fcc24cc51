//! Settings of `strata_hnsw` scans (`strata.*` GUCs) and the index options
//! registration, done once when the library is loaded.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting, PostgresGucEnum};
use pgrx::pg_sys;

/// Candidate list size of an index scan (`strata.hnsw_ef_search`).
pub static EF_SEARCH: GucSetting<i32> = GucSetting::<i32>::new(40);
/// Whether a scan keeps searching after its first `ef_search` candidates.
/// `relaxed_order` by default (pgvector's default is `off`): see `scan`.
pub static ITERATIVE_SCAN: GucSetting<IterativeScan> =
    GucSetting::<IterativeScan>::new(IterativeScan::RelaxedOrder);
/// Most elements an iterative scan examines (`strata.hnsw_max_scan_tuples`).
pub static MAX_SCAN_TUPLES: GucSetting<i32> = GucSetting::<i32>::new(20000);
/// Multiple of `work_mem` an iterative scan may hold
/// (`strata.hnsw_scan_mem_multiplier`, like pgvector's).
pub static SCAN_MEM_MULTIPLIER: GucSetting<f64> = GucSetting::<f64>::new(1.0);

/// Format version new indexes are written in (`strata.hnsw_format_version`):
/// the current one by default; 1–8 write indexes an older Strata reads
/// (one heap row per element; ten at most; no neighbor codes; 8-byte ids;
/// no binary16, bit or sparse elements; float4 elements of vector columns)
/// and are how the tests cover those versions.
pub static FORMAT_VERSION: GucSetting<i32> =
    GucSetting::<i32>::new(super::format::FORMAT_VERSION as i32);

/// Seed of the level draws of graph elements (`strata.hnsw_random_seed`):
/// -1 (the default) draws from PostgreSQL's global random state; a seed
/// makes a session's builds and inserts draw the same levels every run, so
/// a single-process build of the same rows gives the same graph (tests).
pub static RANDOM_SEED: GucSetting<i32> = GucSetting::<i32>::new(-1);

/// Whether new indexes get neighbor codes (`strata.hnsw_codes`).
pub static CODES: GucSetting<Codes> = GucSetting::<Codes>::new(Codes::Auto);

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Codes {
    /// Where the build measures that they pay (`calibrate.rs`).
    #[name = c"auto"]
    Auto,
    /// Always (where the metric and dimensions allow).
    #[name = c"on"]
    On,
    /// Never: every neighbor's exact distance is computed.
    #[name = c"off"]
    Off,
}

#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum IterativeScan {
    #[name = c"off"]
    Off,
    #[name = c"relaxed_order"]
    RelaxedOrder,
    #[name = c"strict_order"]
    StrictOrder,
}

pub fn init() {
    GucRegistry::define_int_guc(
        c"strata.hnsw_ef_search",
        c"Size of the candidate list of strata_hnsw index scans.",
        c"Larger values find more of the true nearest neighbors, more slowly.",
        &EF_SEARCH,
        1,
        1000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"strata.hnsw_iterative_scan",
        c"Whether strata_hnsw scans continue past ef_search candidates.",
        c"relaxed_order (default): keep searching while the executor wants rows, later batches may be slightly out of order; strict_order: keep searching, never return a row out of distance order; off: stop after ef_search candidates (pgvector's default).",
        &ITERATIVE_SCAN,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"strata.hnsw_codes",
        c"Whether new strata_hnsw indexes store codes of each element's neighbors.",
        c"auto (default): where CREATE INDEX measures that scans guided by them read fewer elements for the same recall; on: always (32 dimensions or more, not L1); off: never. Codes take about one bit per dimension and four bytes per level-0 neighbor.",
        &CODES,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"strata.hnsw_max_scan_tuples",
        c"Most index elements an iterative strata_hnsw scan examines.",
        c"At this limit the scan returns the elements it already scored, then ends.",
        &MAX_SCAN_TUPLES,
        1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"strata.hnsw_scan_mem_multiplier",
        c"Multiple of work_mem an iterative strata_hnsw scan may use.",
        c"At this limit the scan returns the elements it already scored, then ends.",
        &SCAN_MEM_MULTIPLIER,
        1.0,
        1000.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"strata.hnsw_format_version",
        c"On-disk format version of new strata_hnsw indexes.",
        c"9 (the default) is 8 with vector columns stored at half precision and rechecked by the executor, about a sixth smaller; 8 is 7 that can also store sparsevec columns; 7 is 6 that can also store bit columns, one bit per dimension; 6 is 5 that can also store halfvec columns as binary16; 5 is 4 with 4-byte element ids in neighbor lists and three row slots per element (more rows go to row lists), about a fifth smaller; 4 stores codes of each element's level-0 neighbors with its list, so a scan reads fewer elements; 3 has no codes; 2 shares an element among ten rows at most; 1 keeps one row per element. Older versions are what older Strata builds read.",
        &FORMAT_VERSION,
        super::format::OLDEST_VERSION as i32,
        super::format::FORMAT_VERSION as i32,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"strata.hnsw_random_seed",
        c"Seed of the random levels of strata_hnsw graph elements in this session.",
        c"-1 (the default): PostgreSQL's global random state. Setting another seed restarts the session's draws from it, so the same single-process build of the same rows gives the same graph (reproducible tests).",
        &RANDOM_SEED,
        -1,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
    // SAFETY: reserves the prefix so typos in strata.* settings are errors.
    unsafe { pg_sys::MarkGUCPrefixReserved(c"strata".as_ptr()) };
}
