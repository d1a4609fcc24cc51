//! What a page of an `lsm` relation is, read from the page alone: its tag
//! and kind (a foreign or damaged page raises XX001), the metapage's block,
//! and the rowid a logical TID names. The lowest layer of the Postgres-side
//! lsm code: the manifest, its backend copy and the row storage all read
//! pages through it.

use crate::pg::page::Page;
use crate::pg::relation::Rel;
use super::format::{self, PageKind, PageTag, TAG_SIZE};
use crate::pg::htup;
use crate::pg::page;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// The metapage's block.
pub const META_BLOCK: pg_sys::BlockNumber = 0;

/// Reads the tag in the last 16 bytes of a page, if its special space has
/// room for one (compressed run pages keep their blob in front of it).
pub fn tag(p: Page) -> Option<PageTag> {
    if page::is_new(p) || page::special_size(p) < TAG_SIZE {
        return None;
    }
    let bytes = page::bytes(p);
    Some(PageTag::read(bytes, bytes.len() - TAG_SIZE))
}

/// Kind of a page that must be a valid lsm page; a foreign or damaged page
/// raises XX001 naming the relation and block.
pub fn page_kind(
    rel: Rel,
    blkno: pg_sys::BlockNumber,
    p: Page,
) -> Option<PageKind> {
    if page::is_new(p) {
        return None; // extended but not yet initialised (crash between extend and WAL)
    }
    let validated = tag(p)
        .ok_or(format::FormatError::BadMagic(0))
        .and_then(|t| t.validate());
    match validated {
        Ok(kind) => Some(kind),
        Err(e) => crate::pg::error::error(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!(
                "invalid page in block {blkno} of relation \"{}\": {e}",
                crate::pg::rel::relname(rel)
            ),
        ),
    }
}

/// The rowid of logical TID `tid` (see [`format::rowid`]).
pub fn rowid_of(tid: &pg_sys::ItemPointerData) -> u64 {
    format::rowid(htup::tid_block(tid), htup::tid_offset(tid))
}
