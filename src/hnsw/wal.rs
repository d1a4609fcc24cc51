//! WAL for `strata_hnsw` pages: [`IndexWrite`], the one way index pages
//! change, and the callbacks of the `strata_hnsw` resource manager that
//! replays its records ([`super::wal_record`] has the layout).
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
use crate::pg::page;
use pgrx::pg_sys;
use pgrx::prelude::*;

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

/// Registers the resource manager (only while `shared_preload_libraries`
/// is being processed; see [`crate::pg::wal`]).
pub fn register() {
    wal::register(&wal::Rmgr {
        id: RMGR_ID,
        name: RMGR_NAME,
        redo,
        desc,
        identify,
        mask,
        decode: None,
    });
}

fn broken(what: impl std::fmt::Display) -> ! {
    wal::unreplayable(RMGR_NAME, what)
}

#[pg_guard]
unsafe extern "C-unwind" fn redo(record: *mut pg_sys::XLogReaderState) {
    // SAFETY: the record recovery hands us.
    let r = unsafe { Redo::of(record) };
    if r.info() != rec::DELTA {
        broken(format!("unknown record type {:#x}", r.info()));
    }
    for id in (0..4).filter(|&id| r.has_block(id)) {
        r.block(id, |bytes| {
            rec::apply_delta(bytes, r.block_data(id)).unwrap_or_else(|e| broken(e));
        });
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn desc(out: pg_sys::StringInfo, record: *mut pg_sys::XLogReaderState) {
    // SAFETY: the record being described.
    let r = unsafe { Redo::of(record) };
    let text = (0..4)
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
        .join("; ");
    // SAFETY: the rm_desc callback's StringInfo.
    unsafe { wal::append_desc(out, &text) };
}

#[pg_guard]
unsafe extern "C-unwind" fn identify(info: u8) -> *const std::ffi::c_char {
    wal::identify(info, rec::identify)
}

#[pg_guard]
unsafe extern "C-unwind" fn mask(pagedata: *mut std::ffi::c_char, _blkno: pg_sys::BlockNumber) {
    // SAFETY: the rm_mask callback's BLCKSZ page image.
    page::mask_header_and_hole(page::bytes_mut(unsafe { Page::from_raw(pagedata as pg_sys::Page) }));
}
