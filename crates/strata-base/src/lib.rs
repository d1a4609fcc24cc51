//! What Strata's pure core crates share — no pgrx, no `pg_sys`, `unsafe`
//! only where an item says why:
//!
//! * [`page_layout`] — the standard page layout's constants and helpers
//!   (one owner; the extension asserts them against `pg_sys` in `pg::page`)
//! * [`error`] — the error contract with the SQL boundary (SQLSTATEs)
//! * [`prefetch`] — cache-line prefetch hints
//! * [`huge_pages`] — transparent huge pages for large arrays read at random
//!
//! The pure core is four crates with no PostgreSQL in them, each built and
//! tested by plain `cargo test -p <crate>`:
//!
//! ```text
//!   strata-base  <-  strata-lsm-core
//!        ^      <-  strata-vector-core  <-  strata-hnsw-core
//!        '-----------------------------------------'
//! ```
//!
//! The extension crate (`strata`) is the glue: it re-exports their modules
//! under its own paths (`strata::lsm::format`, …) and adds the Postgres side.

#![deny(unsafe_code)]

pub mod error;
#[allow(unsafe_code)] // madvise
pub mod huge_pages;
pub mod page_layout;
#[allow(unsafe_code)] // the prefetch instruction
pub mod prefetch;
