//! Thin, safe wrappers over `pg_sys`. This is the only module that holds raw FFI
//! helpers; access-method glue builds on it.

pub mod array;
pub mod buffer;
pub mod error;
pub mod error_catch;
pub mod fsm;
pub mod htup;
pub mod index_scan;
pub mod locator;
pub mod logical;
pub mod meta_epoch;
pub mod multixact;
pub mod page;
pub mod predicate;
pub mod rel;
pub mod relation;
pub mod shmem;
pub mod snapshot;
pub mod standby;
pub mod stats;
pub mod storage;
pub mod tuple_slot;
pub mod tuplesort;
pub mod vacuum;
pub mod varlena;
pub mod wal;
pub mod xact;
