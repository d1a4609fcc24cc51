//! Thin, safe wrappers over `pg_sys`. This is the only module that holds raw FFI
//! helpers; access-method glue builds on it.

pub mod array;
pub mod buffer;
pub mod error;
pub mod htup;
pub mod page;
pub mod rel;
pub mod tuplesort;
pub mod varlena;
