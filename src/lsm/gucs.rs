//! Settings of `lsm` compaction (`strata.lsm_*` GUCs): the knobs of the
//! tiered policy in [`super::policy`] and the compression of run pages. Any user may set them; VACUUM and
//! autovacuum read them when they compact (autovacuum workers see the
//! server's configuration, e.g. `ALTER SYSTEM SET strata.lsm_size_ratio`).

use super::compressed_page::Codec;
use super::policy::Policy;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::PostgresGucEnum;

/// `strata.lsm_compression`: the codec of compressed run pages.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Compression {
    #[name = c"lz4"]
    Lz4,
    #[name = c"zstd"]
    Zstd,
}

/// Growth factor between consecutive levels.
pub static SIZE_RATIO: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Level-1 runs that trigger a merge into level 2.
pub static LEVEL1_RUNS: GucSetting<i32> = GucSetting::<i32>::new(4);
/// Size level 2 may reach before it is merged into level 3, in kB.
pub static LEVEL_BASE_KB: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);
/// Dead fraction that makes a run be rewritten.
pub static GC_RATIO: GucSetting<f64> = GucSetting::<f64>::new(0.5);
/// zstd level of run pages written by flushes and merges; 0 = uncompressed.
pub static COMPRESSION_LEVEL: GucSetting<i32> = GucSetting::<i32>::new(1);
/// Codec of compressed run pages.
pub static COMPRESSION: GucSetting<Compression> = GucSetting::<Compression>::new(Compression::Lz4);
/// `strata.lsm_columnar`: compact pages store their rows column by column.
pub static COLUMNAR: GucSetting<bool> = GucSetting::<bool>::new(true);
/// `strata.lsm_pack_thread`: run pages are packed on a second thread.
pub static PACK_THREAD: GucSetting<bool> = GucSetting::<bool>::new(true);
/// Layout of compressed run pages written: 7 (compact, a compressed frame
/// per column), 6 (compact, one frame) or 5 (a stub per row).
pub static PAGE_FORMAT: GucSetting<i32> = GucSetting::<i32>::new(10);
/// Bloom filter bits per row version of new runs; 0 = no filters.
pub static BLOOM_BITS_PER_KEY: GucSetting<i32> = GucSetting::<i32>::new(10);
/// `strata.lsm_block_cache` (MB; -1: an eighth of shared_buffers)
pub static BLOCK_CACHE_MB: GucSetting<i32> = GucSetting::<i32>::new(-1);
/// `strata.lsm_bulk_load`
pub static BULK_LOAD: GucSetting<bool> = GucSetting::<bool>::new(true);
/// `strata.lsm_chain_hints`
pub static CHAIN_HINTS: GucSetting<bool> = GucSetting::<bool>::new(true);

pub fn init() {
    GucRegistry::define_int_guc(
        c"strata.lsm_size_ratio",
        c"Size ratio between consecutive levels of lsm tables.",
        c"Level k+1 holds this many times the bytes of level k; larger values mean fewer levels and more rewriting per merge.",
        &SIZE_RATIO,
        2,
        100,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"strata.lsm_level1_runs",
        c"Number of level-1 runs of an lsm table that triggers their merge into one level-2 run.",
        c"Each L0 flush adds one level-1 run.",
        &LEVEL1_RUNS,
        1,
        16,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"strata.lsm_level_base",
        c"Size that level 2 of an lsm table may reach before it is merged into level 3.",
        c"Level k may hold lsm_level_base * lsm_size_ratio^(k-2).",
        &LEVEL_BASE_KB,
        8,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
    GucRegistry::define_float_guc(
        c"strata.lsm_gc_ratio",
        c"Fraction of garbage that makes VACUUM rewrite an lsm run.",
        c"Garbage is dead row versions and redirects still holding their version's body. Values above 1 turn garbage-driven rewrites off.",
        &GC_RATIO,
        0.0,
        2.0,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"strata.lsm_compression_level",
        c"zstd compression level of the run pages lsm flushes and merges write (0 = no compression, with either codec).",
        c"A run page is compressed only when that packs more row versions into it; row headers stay uncompressed. Pages already written keep their form until a merge rewrites them.",
        &COMPRESSION_LEVEL,
        0,
        19,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_enum_guc(
        c"strata.lsm_compression",
        c"Codec of the compressed run pages lsm flushes, merges and bulk loads write: lz4 or zstd.",
        c"lz4 decodes several times faster (sequential scans); zstd packs about a quarter more rows into a page. strata.lsm_compression_level is zstd's level; 0 there turns compression off for both.",
        &COMPRESSION,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"strata.lsm_chain_hints",
        c"Whether index fetches on lsm tables start a chain walk at its shared hint.",
        c"A hint names a recent member of an update chain, checked before use; off, every walk starts at the chain's first version (and prunes the dead members it passes). Needs strata in shared_preload_libraries.",
        &CHAIN_HINTS,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"strata.lsm_columnar",
        c"Whether compressed lsm run pages store their rows column by column.",
        c"Column by column (with counting integers as deltas) pages hold about a third more rows and write less WAL; row by row, sequential scans decode pages faster.",
        &COLUMNAR,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"strata.lsm_pack_thread",
        c"Whether lsm bulk loads, flushes and merges pack and compress run pages on a second thread.",
        c"The thread never calls PostgreSQL: the backend keeps reading rows while another core compresses; used only on machines with more than one core.",
        &PACK_THREAD,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"strata.lsm_page_format",
        c"Layout of the compressed run pages lsm writes: 10 (compact, each column compressed on its own, columns of few distinct values as dictionaries, lz4 sections that zstd makes a quarter smaller stored with zstd; current), 9 (the same, lz4 only), 7 or 8 (the same without dictionaries), 6 (compact, one compressed frame per page) or 5 (a rowid and header stub per row).",
        c"For testing that tables written by older versions stay readable.",
        &PAGE_FORMAT,
        5,
        10,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"strata.lsm_bloom_bits_per_key",
        c"Bloom filter bits per row version of the runs lsm flushes and merges write (0 = no filter).",
        c"A point lookup of a row version a flush or merge dropped stops at the run's filter instead of reading the run's leaf and data page. About 1% false positives at 10 bits.",
        &BLOOM_BITS_PER_KEY,
        0,
        32,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"strata.lsm_bulk_load",
        c"Whether COPY, CREATE TABLE AS and INSERT ... SELECT into lsm tables without indexes or triggers write runs directly.",
        c"Off: every row goes to L0 first and into a run at the next flush, as with indexes.",
        &BULK_LOAD,
        GucContext::Userset,
        GucFlags::default(),
    );
    // a server-start setting can only be defined while preloading (a later
    // definition is FATAL); without preloading there is no cache to size
    if !crate::pg::shmem::preloading() {
        return;
    }
    GucRegistry::define_int_guc(
        c"strata.lsm_block_cache",
        c"Shared memory for decoded compressed lsm pages, which point lookups read instead of decompressing the page (0 = none, -1 = an eighth of shared_buffers).",
        c"Set at server start; needs strata in shared_preload_libraries. Entries are a page's rows as the executor reads them; the oldest are overwritten first.",
        &BLOCK_CACHE_MB,
        -1,
        1 << 20,
        GucContext::Postmaster,
        GucFlags::UNIT_MB,
    );
}

/// Bytes of shared memory for decoded pages (`strata.lsm_block_cache`;
/// -1: an eighth of shared_buffers, at least 8 MB).
pub fn block_cache_bytes() -> usize {
    match BLOCK_CACHE_MB.get() {
        -1 => (crate::pg::buffer::shared_buffers_bytes() / 8).max(8 << 20),
        mb => mb.max(0) as usize * 1024 * 1024,
    }
}

/// Whether bulk loads may write runs directly.
pub fn bulk_load() -> bool {
    BULK_LOAD.get()
}

/// How new run pages are compressed, None for uncompressed pages.
pub fn compression() -> Option<Codec> {
    let level = COMPRESSION_LEVEL.get();
    (level > 0).then(|| match COMPRESSION.get() {
        Compression::Lz4 => Codec::Lz4,
        Compression::Zstd => Codec::Zstd(level),
    })
}

/// Whether run pages may be packed on a second thread.
pub fn pack_thread() -> bool {
    PACK_THREAD.get()
}

/// Whether compact run pages store their rows column-wise.
pub fn columnar() -> bool {
    COLUMNAR.get()
}

/// Whether new compressed run pages get the compact (version 6) layout.
pub fn compact_pages() -> bool {
    PAGE_FORMAT.get() >= 6
}

/// Whether column-wise pages compress each column on its own (version 7).
pub fn sectioned_pages() -> bool {
    PAGE_FORMAT.get() >= 7
}

/// Whether sectioned pages may store columns as dictionaries (version 9).
pub fn dictionary_pages() -> bool {
    PAGE_FORMAT.get() >= 9
}

/// The zstd level of the sections of lz4 pages that zstd compresses
/// better (version 10; None before, or with zstd or no compression).
pub fn zstd_sections() -> Option<i32> {
    (PAGE_FORMAT.get() >= 10 && COMPRESSION.get() == Compression::Lz4)
        .then(|| COMPRESSION_LEVEL.get())
        .filter(|l| *l > 0)
}

/// Bloom filter bits per row version for new runs (0: no filter).
pub fn bloom_bits_per_key() -> u32 {
    BLOOM_BITS_PER_KEY.get().max(0) as u32
}

/// The policy the current settings describe.
pub fn policy() -> Policy {
    Policy {
        size_ratio: SIZE_RATIO.get() as u64,
        level1_runs: LEVEL1_RUNS.get() as usize,
        level_base: LEVEL_BASE_KB.get() as u64 * 1024,
        gc_ratio: GC_RATIO.get(),
    }
}

pub fn chain_hints() -> bool {
    CHAIN_HINTS.get()
}
