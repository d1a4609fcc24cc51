//! WAL for `strata_hnsw` pages: [`IndexWrite`], the one way index pages
//! change, and the `strata_hnsw` resource manager that replays its records
//! ([`super::wal_record`] has the layout; [`crate::pg::wal`] owns the C
//! callbacks).
//!
//! With `strata` preloaded a change is logged as the byte ranges it made
//! (DELTA); loaded by `CREATE EXTENSION` alone, as a GenericXLog record
//! (`crate::pg::wal` makes that choice once per server). Either way the
//! change is made on working copies that reach the buffers only on
//! `commit`: dropping an `IndexWrite` leaves the pages as they were.

use crate::pg::page::Page;
use crate::pg::relation::Rel;
use super::wal_record::{self as rec, RMGR_ID, RMGR_NAME};
use crate::pg::wal::{self, PageChange, Redo};
use pgrx::pg_sys;

/// A change to up to four index pages, logged as one record.
pub struct IndexWrite(PageChange);

impl IndexWrite {
    pub fn start(index: Rel) -> IndexWrite {
        IndexWrite(PageChange::start(index))
    }

    /// Registers an exclusively locked buffer and returns its working copy;
    /// `full_image` logs the whole page (new pages).
    pub fn register(&mut self, buf: pg_sys::Buffer, full_image: bool) -> Page {
        self.0.register(buf, full_image)
    }

    /// Installs the working copies and writes the record.
    pub fn commit(self) {
        self.0.commit_delta(RMGR_ID, rec::DELTA, rec::encode_delta)
    }
}

/// The `strata_hnsw` resource manager (registered by `_PG_init` while
/// `shared_preload_libraries` is processed; see [`crate::pg::wal`]).
pub struct HnswRecords;

impl wal::ResourceManager for HnswRecords {
    const ID: u8 = RMGR_ID;
    const NAME: &'static std::ffi::CStr = RMGR_NAME;

    fn redo(r: &Redo) {
        if r.info() != rec::DELTA {
            Self::broken(format!("unknown record type {:#x}", r.info()));
        }
        for id in (0..4).filter(|&id| r.has_block(id)) {
            r.block(id, |bytes| {
                rec::apply_delta(bytes, r.block_data(id)).unwrap_or_else(|e| Self::broken(e));
            });
        }
    }

    fn describe(r: &Redo) -> String {
        (0..4)
            .filter(|&id| r.has_block(id))
            .map(|id| {
                let data = r.block_data(id);
                match rec::describe(data) {
                    _ if data.is_empty() => format!("blk {id}: full page image"),
                    Ok((ranges, bytes)) => format!("blk {id}: ranges {ranges}, bytes {bytes}"),
                    Err(e) => format!("blk {id}: {e}"),
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn name_of(kind: u8) -> Option<&'static std::ffi::CStr> {
        rec::identify(kind)
    }

    fn mask(page: &mut [u8]) {
        crate::pg::page::mask_header_and_hole(page);
    }
}
