//! Strata: an LSM-tree table access method (`lsm`), an HNSW index access method
//! (`strata_hnsw`) and a pgvector-compatible `vector` type for PostgreSQL.
//!
//! Module map (see docs/architecture.md):
//! * [`pg`]     — thin safe wrappers over `pg_sys`; the only home of raw FFI helpers.
//! * [`vector`] — the `vector` type, its operators and SIMD distance kernels.
//! * [`lsm`]    — the `lsm` table access method.
//! * [`hnsw`]   — the `strata_hnsw` index access method.
//! * [`error`]  — the error contract between pure code and `ereport`.

::pgrx::pg_module_magic!(name, version);

/// Library load: settings and index options.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    lsm::gucs::init();
    pg::wal::register::<lsm::redo::LsmRecords>();
    pg::wal::register::<hnsw::wal::HnswRecords>();
    lsm::manifest_cache::init();
    lsm::shared_cache::register();
    lsm::chain_hint::register();
    pg::meta_epoch::register();
    hnsw::gucs::init();
    hnsw::reloptions::register();
}

pub mod hnsw;
pub mod lsm;
pub mod pg;
/// What `#[pg_guard]` on an `extern` block expands to: every PostgreSQL
/// function Strata declares itself (those pgrx does not bind, in `src/pg`)
/// is called through pgrx's FFI guard, so an ERROR it raises unwinds
/// through Rust frames (and their guards' drops) instead of jumping over them.
mod ffi {
    pub use pgrx::pg_sys::ffi::pg_guard_ffi_boundary;
}
pub mod vector;

// The pgrx-free core (crates/strata-core), under the paths the glue uses.
pub use strata_base::{error, page_layout};

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn vector_round_trips_through_sql() {
        let out = Spi::get_one::<String>("SELECT '[1, 2.5,-3e-2]'::vector::text").unwrap();
        assert_eq!(out.as_deref(), Some("[1,2.5,-0.03]"));
        let d = Spi::get_one::<f64>("SELECT '[1,2,3]'::vector <-> '[4,5,6]'").unwrap();
        assert_eq!(d, Some(5.196152422706632));
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
