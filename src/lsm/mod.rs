//! The `lsm` table access method.
//!
//! Rows live in the relation's own pages as `HeapTupleHeader` row versions, so
//! Postgres's own visibility rules (xmin/xmax, CLOG, snapshots, combo CIDs)
//! decide what each snapshot sees. Writes append to L0 pages; every page change
//! is WAL-logged with GenericXLog. Row identity is a logical TID derived from a
//! never-reused rowid (see [`format`]), so a row keeps its TID when compaction
//! moves it into an immutable run.
//!
//! * [`format`]      — on-disk layout, version 1 (pure)
//! * [`storage`]     — metapage, L0 append, TID → page
//! * [`manifest`], [`manifest_cache`] — the metapage as manifest; a backend's copy
//! * [`modify`]      — insert / delete / update / lock
//! * [`bulk`]        — COPY and CREATE TABLE AS straight into runs
//! * [`scan`]        — seq, TID-range, parallel, sample, ANALYZE
//! * [`fetch`]       — index fetch and point lookups
//! * [`ddl`]         — storage lifecycle and estimates
//! * [`cluster`]     — CLUSTER / VACUUM FULL rewrite in index or rowid order
//! * [`index_build`] — index builds and index_delete_tuples ([`index_datums`]: their datums)
//! * [`summarizing`] — BRIN summaries widened by index-stable updates (PG16+)
//! * [`handler`]     — the TableAmRoutine
//! * [`page_check`]  — pure structural checks of raw pages
//! * [`inspect`]     — strata.lsm_info / lsm_verify / lsm_levels / lsm_stats
//! * [`logical`]     — row records for logical decoding, and their decoding
//! * [`flush`], [`run_writer`], [`policy`], [`compact`], [`sweep`], [`shrink`],
//!   [`vacuum`] — L0 flush, tiered merges, freezing, file packing: VACUUM

pub mod bulk;
pub mod chain;
pub mod chain_hint;
pub mod cluster;
pub mod compact;
pub mod ddl;
pub mod fetch;
pub mod flush;
pub mod gucs;
pub mod handler;
pub mod index_build;
pub mod index_datums;
pub mod inspect;
pub mod logical;
pub mod manifest;
pub mod manifest_cache;
pub mod modify;
pub mod page_id;
pub mod publication;
pub mod redo;
pub mod run_writer;
pub mod scan;
pub mod shared_cache;
pub mod shrink;
pub mod slot;
pub mod storage;
#[cfg(not(feature = "pg15"))]
pub mod summarizing;
pub mod sweep;
pub mod vacuum;
pub mod version_data;

// The pure modules live in the pgrx-free core crate.
pub use strata_lsm_core::{block_cache, bloom, column_attr, column_dict, columnar, columnar_read, compact_page, compressed_page, format, hint_table, logical_record, lz4_block, pack_thread, page_check, page_image, policy, row_lock, run_packer, run_page, wal_record};
