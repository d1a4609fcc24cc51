//! Strata's WAL resource manager for `lsm` (`strata_lsm`): what recovery,
//! replicas, `pg_waldump` and `wal_consistency_checking` ask of its records
//! (replay, description, masking), as safe functions over a record;
//! [`crate::pg::wal`] owns the C callbacks that call them. Record layouts
//! and their page changes are [`super::wal_record`]'s; this is the glue that
//! reads a record and hands page bytes to them.

use crate::pg::page::Page;
use super::{logical_record, page_image};
use super::wal_record::{self as rec, RMGR_ID, RMGR_NAME};
use crate::pg::wal::{self, Redo, ResourceManager};
use crate::pg::page;
use pgrx::pg_sys;

/// The `strata_lsm` resource manager (registered by `_PG_init` while
/// `shared_preload_libraries` is processed; see [`crate::pg::wal`]).
pub struct LsmRecords;

impl wal::ResourceManager for LsmRecords {
    const ID: u8 = RMGR_ID;
    const NAME: &'static std::ffi::CStr = RMGR_NAME;
    const DECODE: Option<unsafe extern "C-unwind" fn(*mut pg_sys::LogicalDecodingContext, *mut pg_sys::XLogRecordBuffer)> =
        Some(super::logical::decode);

    fn redo(r: &Redo) {
        match r.info() {
            rec::INSERT => {
                r.block(0, |bytes| {
                    let inserts = rec::inserts(r.block_data(0)).unwrap_or_else(|e| Self::broken(e));
                    add_items(bytes, &inserts);
                });
            }
            rec::UPDATE => {
                for id in (0..2).filter(|&id| r.has_block(id)) {
                    r.block(id, |bytes| {
                        let (inserts, headers) =
                            rec::decode_update(r.block_data(id)).unwrap_or_else(|e| Self::broken(e));
                        add_items(bytes, &inserts);
                        if let Some(h) = headers {
                            h.apply(bytes, None).unwrap_or_else(|e| Self::broken(e));
                        }
                    });
                }
            }
            rec::UPDATE_SHORT => {
                let xid = r.xid();
                r.block(0, |bytes| {
                    let u = rec::ShortUpdate::decode(r.block_data(0)).unwrap_or_else(|e| Self::broken(e));
                    let vblock = page_image::tag_of(bytes)
                        .map(|t| t.vblock)
                        .unwrap_or_else(|| Self::broken("an UPDATE_SHORT's block 0 is not an L0 page"));
                    let cx = rec::DeltaContext {
                        xid,
                        new_tid: Some((vblock, u.item)),
                    };
                    let tuple = u.tuple(&cx).unwrap_or_else(|e| Self::broken(e));
                    add_items(bytes, &[(u.item, &tuple)]);
                    if let Some(s) = &u.stamp {
                        s.apply(bytes, &cx).unwrap_or_else(|e| Self::broken(e));
                    }
                });
                if r.has_block(1) {
                    r.block(1, |bytes| {
                        let s = rec::Stamp::decode(r.block_data(1)).unwrap_or_else(|e| Self::broken(e));
                        let cx = rec::DeltaContext { xid, new_tid: None };
                        s.apply(bytes, &cx).unwrap_or_else(|e| Self::broken(e));
                    });
                }
            }
            rec::HEADERS => {
                // (decoded only for a redo: block data is left out of the WAL
                // when the block has an image)
                let payload = r.has_block(1).then(|| r.block_number(1));
                r.block(0, |bytes| {
                    let h = rec::Headers::decode(r.block_data(0)).unwrap_or_else(|e| Self::broken(e));
                    h.apply(bytes, payload).unwrap_or_else(|e| Self::broken(e))
                });
                if payload.is_some() {
                    r.block(1, |_| Self::broken("the payload page came without its image"));
                }
            }
            // rows for logical decoding: no page changes
            info if logical_record::is_row_record(info) => {}
            other => Self::broken(format!("unknown record type {other:#x}")),
        }
    }

    fn describe(r: &Redo) -> String {
        let data = r.block_data(0);
        match r.info() {
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
        }
    }

    fn name_of(kind: u8) -> Option<&'static std::ffi::CStr> {
        rec::identify(kind)
    }

    fn mask(page: &mut [u8]) {
        rec::mask(page)
    }
}


/// Replays INSERT entries on an L0 page.
fn add_items(bytes: &mut [u8], inserts: &[(u16, &[u8])]) {
    // SAFETY: a BLCKSZ page image owned here.
    let p = unsafe { Page::from_raw(bytes.as_mut_ptr() as pg_sys::Page) };
    for &(item, tuple) in inserts {
        if page::add_item_at(p, tuple, item) != Some(item) {
            LsmRecords::broken(format!("item {item} cannot be added to its L0 page"));
        }
    }
}

