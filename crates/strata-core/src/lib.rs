//! Strata's pure core: everything that can be built and tested without
//! PostgreSQL — no pgrx, no `pg_sys`, `unsafe` only where an item says why
//! (SIMD kernels, shared-memory views). The extension crate (`strata`) is
//! the glue: it re-exports these modules under the same paths
//! (`strata::lsm::format`, …) and adds the Postgres side.
//!
//! * [`page_layout`] — the standard page layout's constants and helpers
//! * [`prefetch`] — cache-line prefetch hints
//! * [`huge_pages`] — transparent huge pages for large arrays read at random
//! * [`error`] — the error contract with the SQL boundary (SQLSTATEs)
//! * [`lsm`] — page formats, run packing, compression, checks, compaction policy
//! * [`hnsw`] — graph, neighbor codes, page formats, calibration, costs
//! * [`vector`] — distance kernels, text/binary codecs, arithmetic, bits

#![deny(unsafe_code)]

pub mod error;
pub mod hnsw;
#[allow(unsafe_code)] // madvise
pub mod huge_pages;
pub mod lsm;
pub mod page_layout;
#[allow(unsafe_code)] // the prefetch instruction
pub mod prefetch;
pub mod vector;
