//! `strata_hnsw`'s index options as reloptions: their registration at
//! library load, the `amoptions` parser and reading them back from an
//! index. The rules for their values are pure, in [`super::options`].

use crate::pg::relation::Rel;
use super::options::{self, Options};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

static RELOPT_KIND: AtomicU32 = AtomicU32::new(0);

/// Layout of the parsed options (`rd_options`).
#[repr(C)]
struct RelOptions {
    vl_len_: i32,
    m: i32,
    ef_construction: i32,
}

/// Registers `m` and `ef_construction` (`_PG_init`).
pub fn register() {
    // SAFETY: registration at library load, in the postmaster or a backend.
    unsafe {
        let kind = pg_sys::add_reloption_kind();
        RELOPT_KIND.store(kind as u32, Ordering::Relaxed);
        pg_sys::add_int_reloption(
            kind as _,
            c"m".as_ptr(),
            c"Max number of connections per element and layer".as_ptr(),
            options::M_DEFAULT,
            options::M_MIN,
            options::M_MAX,
            pg_sys::AccessExclusiveLock as _,
        );
        pg_sys::add_int_reloption(
            kind as _,
            c"ef_construction".as_ptr(),
            c"Size of the candidate list while building the graph".as_ptr(),
            options::EF_CONSTRUCTION_DEFAULT,
            options::EF_CONSTRUCTION_MIN,
            options::EF_CONSTRUCTION_MAX,
            pg_sys::AccessExclusiveLock as _,
        );
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn amoptions(
    reloptions: pg_sys::Datum,
    validate: bool,
) -> *mut pg_sys::bytea {
    let elt = |name: &'static std::ffi::CStr, offset: usize| pg_sys::relopt_parse_elt {
        optname: name.as_ptr(),
        opttype: pg_sys::relopt_type::RELOPT_TYPE_INT,
        offset: offset as i32,
        #[cfg(not(feature = "pg15"))]
        isset_offset: 0,
    };
    let table = [
        elt(c"m", std::mem::offset_of!(RelOptions, m)),
        elt(
            c"ef_construction",
            std::mem::offset_of!(RelOptions, ef_construction),
        ),
    ];
    // SAFETY: standard reloptions parsing into a RelOptions-sized struct.
    unsafe {
        pg_sys::build_reloptions(
            reloptions,
            validate,
            RELOPT_KIND.load(Ordering::Relaxed) as _,
            std::mem::size_of::<RelOptions>(),
            table.as_ptr(),
            table.len() as i32,
        ) as *mut pg_sys::bytea
    }
}

/// The options of an index (defaults when none were given).
pub fn options_of(index: Rel) -> Options {
    // SAFETY: rd_options is null or our parsed struct.
    unsafe {
        let o = index.data().rd_options as *const RelOptions;
        if o.is_null() {
            Options::default()
        } else {
            Options {
                m: (*o).m,
                ef_construction: (*o).ef_construction,
            }
        }
    }
}
