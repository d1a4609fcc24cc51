//! The `strata_hnsw` index access method: approximate nearest neighbor
//! search over `vector` columns with a hierarchical navigable small world
//! graph stored in the index's own pages (layout in [`format`]).
//!
//! * [`format`]  — page and item layouts, version 3 (versions 1, 2 read) (pure)
//! * [`metric`]  — the four distances, equal to the SQL operators (pure)
//! * [`graph`]   — layer search, neighbor heuristic, levels (pure)
//! * [`cost`]    — the scan cost model's arithmetic, pgvector's (pure)
//! * `recall_bound` — test only: the recall ceiling on uniform data (pure)
//! * [`options`] — `m` / `ef_construction` rules (pure)
//! * [`pages`]   — metapage, items, the on-disk graph
//! * [`rows`]    — an element's heap rows and row lists
//! * [`build`]   — CREATE INDEX (in-memory build with `hnsw_rs`)
//! * [`insert`]  — inserts into the on-disk graph
//! * [`scan`]    — ordered scans, iterative scans
//! * [`vacuum`]  — delete, repair, free
//! * [`wal_record`] — the `strata_hnsw` WAL record: page deltas (pure)
//! * [`wal`]     — page changes and their WAL, the resource manager's callbacks
//! * [`handler`] — the IndexAmRoutine, options, costs
//! * [`gucs`]    — `strata.hnsw_*` settings
//! * [`info`]    — `strata.hnsw_info`

pub mod build;
pub mod gucs;
pub mod handler;
pub mod info;
pub mod insert;
pub mod pages;
pub mod reloptions;
pub mod rows;
pub mod scan;
pub mod vacuum;
pub mod wal;

// The pure modules live in the pgrx-free core crate.
pub use strata_hnsw_core::{calibrate, codes, cost, format, graph, metric, options, rounded, wal_record};
