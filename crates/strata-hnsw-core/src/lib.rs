//! The pure half of `strata_hnsw`: page and item formats, the four metrics,
//! the graph (layer search, neighbor heuristic, the parallel in-memory
//! build, the code-guided search), RaBitQ neighbor codes, calibration, the
//! cost model's arithmetic and the WAL record layout. The extension's `hnsw`
//! module re-exports each one.
//!
//! No pgrx, no `pg_sys`: `unsafe` only in the modules marked below, each
//! saying why.

#![deny(unsafe_code)]

pub mod calibrate;
#[allow(unsafe_code)] // SIMD scoring of codes
pub mod codes;
pub mod cost;
#[allow(unsafe_code)] // a vector read in place from an aligned item
pub mod format;
pub mod graph;
pub mod metric;
pub mod options;
pub mod rounded;
#[cfg(test)]
mod recall_bound;
pub mod wal_record;
