//! Strata's WAL resource manager for `lsm` (`strata_lsm`): registration and
//! the callbacks recovery, replicas, `pg_waldump` and
//! `wal_consistency_checking` call. Record layouts and their page changes
//! are [`super::wal_record`]'s; this is the glue that reads a record and
//! hands page bytes to them.

use crate::pg::page::Page;
use super::{logical_record, page_image};
use super::wal_record::{self as rec, RMGR_ID, RMGR_NAME};
use crate::pg::wal::{self, Redo};
use crate::pg::page;
use pgrx::pg_sys;
use pgrx::prelude::*;

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
        decode: Some(super::logical::decode),
    });
}

fn broken(what: impl std::fmt::Display) -> ! {
    wal::unreplayable(RMGR_NAME, what)
}

#[pg_guard]
unsafe extern "C-unwind" fn redo(record: *mut pg_sys::XLogReaderState) {
    // SAFETY: the record recovery hands us.
    let r = unsafe { Redo::of(record) };
    match r.info() {
        rec::INSERT => {
            r.block(0, |bytes| {
                let inserts = rec::inserts(r.block_data(0)).unwrap_or_else(|e| broken(e));
                add_items(bytes, &inserts);
            });
        }
        rec::UPDATE => {
            for id in (0..2).filter(|&id| r.has_block(id)) {
                r.block(id, |bytes| {
                    let (inserts, headers) =
                        rec::decode_update(r.block_data(id)).unwrap_or_else(|e| broken(e));
                    add_items(bytes, &inserts);
                    if let Some(h) = headers {
                        h.apply(bytes, None).unwrap_or_else(|e| broken(e));
                    }
                });
            }
        }
        rec::UPDATE_SHORT => {
            let xid = r.xid();
            r.block(0, |bytes| {
                let u = rec::ShortUpdate::decode(r.block_data(0)).unwrap_or_else(|e| broken(e));
                let vblock = page_image::tag_of(bytes)
                    .map(|t| t.vblock)
                    .unwrap_or_else(|| broken("an UPDATE_SHORT's block 0 is not an L0 page"));
                let cx = rec::DeltaContext {
                    xid,
                    new_tid: Some((vblock, u.item)),
                };
                let tuple = u.tuple(&cx).unwrap_or_else(|e| broken(e));
                add_items(bytes, &[(u.item, &tuple)]);
                if let Some(s) = &u.stamp {
                    s.apply(bytes, &cx).unwrap_or_else(|e| broken(e));
                }
            });
            if r.has_block(1) {
                r.block(1, |bytes| {
                    let s = rec::Stamp::decode(r.block_data(1)).unwrap_or_else(|e| broken(e));
                    let cx = rec::DeltaContext { xid, new_tid: None };
                    s.apply(bytes, &cx).unwrap_or_else(|e| broken(e));
                });
            }
        }
        rec::HEADERS => {
            // (decoded only for a redo: block data is left out of the WAL
            // when the block has an image)
            let payload = r.has_block(1).then(|| r.block_number(1));
            r.block(0, |bytes| {
                let h = rec::Headers::decode(r.block_data(0)).unwrap_or_else(|e| broken(e));
                h.apply(bytes, payload).unwrap_or_else(|e| broken(e))
            });
            if payload.is_some() {
                r.block(1, |_| broken("the payload page came without its image"));
            }
        }
        // rows for logical decoding: no page changes
        info if logical_record::is_row_record(info) => {}
        other => broken(format!("unknown record type {other:#x}")),
    }
}

/// Replays INSERT entries on an L0 page.
fn add_items(bytes: &mut [u8], inserts: &[(u16, &[u8])]) {
    // SAFETY: a BLCKSZ page image owned here.
    let p = unsafe { Page::from_raw(bytes.as_mut_ptr() as pg_sys::Page) };
    for &(item, tuple) in inserts {
        if page::add_item_at(p, tuple, item) != Some(item) {
            broken(format!("item {item} cannot be added to its L0 page"));
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn desc(out: pg_sys::StringInfo, record: *mut pg_sys::XLogReaderState) {
    // SAFETY: the record being described.
    let r = unsafe { Redo::of(record) };
    let data = r.block_data(0);
    let text = match r.info() {
        rec::INSERT => match rec::inserts(data) {
            Ok(v) if !r.main_data().is_empty() => format!("versions {}, new rows (decoded)", v.len()),
            Ok(v) => format!("versions {}", v.len()),
            Err(_) if data.is_empty() => "full page image".into(),
            Err(e) => e.to_string(),
        },
        rec::HEADERS => match rec::Headers::decode(data) {
            Ok(h) => format!(
                "detached {}, written {}{}{}",
                h.detached.len(),
                h.written.len(),
                if r.has_block(1) { ", blob moved" } else { "" },
                if r.main_data().is_empty() { "" } else { ", a delete (decoded)" }
            ),
            Err(_) if data.is_empty() => "full page image".into(),
            Err(e) => e.to_string(),
        },
        rec::UPDATE => match rec::decode_update(data) {
            Ok((ins, h)) => format!(
                "versions {}, detached {}, written {}{}",
                ins.len(),
                h.as_ref().map_or(0, |h| h.detached.len()),
                h.as_ref().map_or(0, |h| h.written.len()),
                if r.has_block(1) {
                    ", old version on block 1"
                } else {
                    ""
                }
            ),
            Err(_) if data.is_empty() => "full page image".into(),
            Err(e) => e.to_string(),
        },
        rec::UPDATE_SHORT => {
            let other_page = r.has_block(1);
            match rec::ShortUpdate::decode(data) {
                Ok(u) => {
                    let stamp = if other_page {
                        rec::Stamp::decode(r.block_data(1)).ok()
                    } else {
                        u.stamp
                    };
                    format!(
                        "new version at item {}, old version on block {}, detached {}{}",
                        u.item,
                        other_page as u8,
                        stamp.map_or(0, |s| s.detached.len()),
                        if r.main_data().is_empty() { "" } else { ", decoded" }
                    )
                }
                Err(_) if data.is_empty() => "full page image".into(),
                Err(e) => e.to_string(),
            }
        }
        info if logical_record::is_row_record(info) => match logical_record::RowRecord::decode(info, r.main_data()) {
            Ok(rec) => rec.describe(),
            Err(e) => e.to_string(),
        },
        _ => String::new(),
    };
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
    rec::mask(page::bytes_mut(unsafe { Page::from_raw(pagedata as pg_sys::Page) }));
}
