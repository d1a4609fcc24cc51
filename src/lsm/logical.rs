//! Logical decoding of `lsm` tables: the row records each change writes
//! when `wal_level = logical`, and the resource manager's `rm_decode`,
//! which turns them into reorder-buffer changes — so publications,
//! `pg_recvlogical` and every output plugin see `lsm` rows as they see heap
//! rows. Layouts: [`logical_record`]; why a second record: there.
//!
//! Written only when Strata's resource manager is registered (`strata` in
//! `shared_preload_libraries`): a server that loaded the library with
//! `CREATE EXTENSION` alone must be able to replay its WAL without it, and
//! logs GenericXLog records whose rows cannot be decoded (publications
//! then refuse `lsm` tables, [`super::publication`]). Below `wal_level =
//! logical` nothing is written. TRUNCATE needs nothing of ours: Postgres
//! logs it for every logically logged table, whatever its access method.

use super::logical_record::{self as lrec, Change, OldRow, Row, RowRecord};
use super::wal_record::RMGR_ID;
use crate::pg::logical::{self as pglog, ChangeKind, Decoding};
use crate::pg::{locator, wal};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Whether `rel`'s changes write row records.
pub fn logs_rows(rel: pg_sys::Relation) -> bool {
    wal::registered() && pglog::is_logically_logged(rel)
}

fn locator_of(rel: pg_sys::Relation) -> lrec::Locator {
    let (spc, db, rel) = locator::parts(&locator::of(rel));
    lrec::Locator { spc, db, rel }
}

fn row_of<'a>(t: pg_sys::HeapTuple) -> Row<'a> {
    Row::of_tuple(pglog::tuple_bytes(t)).expect("a formed tuple has its header")
}

fn write(rel: pg_sys::Relation, change: Change) {
    let (info, data) = RowRecord {
        locator: locator_of(rel),
        change,
    }
    .encode();
    pglog::insert_record(RMGR_ID, info, &data);
}

/// After new versions were stored (`tuples` as stored: TOASTed values as
/// pointers; a speculative insertion is one tuple). Heap's
/// `HEAP_INSERT_NO_LOGICAL` option writes nothing.
pub fn inserted(rel: pg_sys::Relation, tuples: &[pg_sys::HeapTuple], options: i32, speculative: bool) {
    if tuples.is_empty() || options & pg_sys::HEAP_INSERT_NO_LOGICAL as i32 != 0 || !logs_rows(rel) {
        return;
    }
    write(
        rel,
        Change::Insert {
            speculative,
            rows: tuples.iter().map(|&t| row_of(t)).collect(),
        },
    );
}

/// After a speculative insertion was confirmed (`true`) or taken back.
pub fn speculation_ended(rel: pg_sys::Relation, confirmed: bool) {
    if !logs_rows(rel) {
        return;
    }
    write(
        rel,
        if confirmed {
            Change::Confirm
        } else {
            Change::Delete {
                old: None,
                super_delete: true,
            }
        },
    );
}

/// Runs `with` on the old row's replica identity (see
/// [`pglog::replica_identity`]) and frees it after.
fn with_identity<T>(
    rel: pg_sys::Relation,
    old: &mut pg_sys::HeapTupleData,
    new: Option<pg_sys::HeapTuple>,
    with: impl FnOnce(Option<OldRow>) -> T,
) -> T {
    let id = pglog::replica_identity(rel, old, new);
    let out = with(id.map(|(t, key_only)| OldRow {
        key_only,
        row: row_of(t),
    }));
    if let Some((t, _)) = id {
        // SAFETY: the palloc'd tuple replica_identity formed, unused now.
        unsafe { pg_sys::heap_freetuple(t) };
    }
    out
}

/// After an UPDATE stored `new` (as stored) in place of `old` (the old
/// version's full row).
pub fn updated(rel: pg_sys::Relation, old: &mut pg_sys::HeapTupleData, new: pg_sys::HeapTuple) {
    if !logs_rows(rel) {
        return;
    }
    with_identity(rel, old, Some(new), |o| {
        write(rel, Change::Update { new: row_of(new), old: o })
    });
}

/// After a DELETE of the version whose full row is `old`.
pub fn deleted(rel: pg_sys::Relation, old: &mut pg_sys::HeapTupleData) {
    if !logs_rows(rel) {
        return;
    }
    with_identity(rel, old, None, |o| {
        write(
            rel,
            Change::Delete {
                old: o,
                super_delete: false,
            },
        )
    });
}

/// A row's tuple length and the writer of its bytes, for [`Decoding::queue`].
fn tuple(r: Row<'_>) -> (usize, impl Fn(&mut [u8]) + '_) {
    (r.tuple_len(), move |out: &mut [u8]| r.write_tuple(out))
}

/// The resource manager's `rm_decode`: page records carry nothing for
/// logical decoding; each row record becomes one change per row, as heap's
/// `DecodeInsert` / `DecodeMultiInsert` / `DecodeUpdate` / `DecodeDelete` /
/// `DecodeSpecConfirm` queue them.
#[pg_guard]
pub unsafe extern "C-unwind" fn decode(ctx: *mut pg_sys::LogicalDecodingContext, buf: *mut pg_sys::XLogRecordBuffer) {
    // SAFETY: the arguments of this rm_decode call.
    let d = unsafe { Decoding::of(ctx, buf) };
    let info = d.info();
    if !lrec::is_row_record(info) {
        return;
    }
    let rec = RowRecord::decode(info, d.data()).unwrap_or_else(|e| {
        crate::pg::error::error(pgrx::PgSqlErrorCode::ERRCODE_DATA_CORRUPTED, e.to_string())
    });
    if !d.wants_changes(rec.locator.db) {
        return;
    }
    let l = locator::from_parts(rec.locator.spc, rec.locator.db, rec.locator.rel);
    match rec.change {
        Change::Insert { speculative, rows } => {
            let kind = if speculative {
                ChangeKind::SpeculativeInsert
            } else {
                ChangeKind::Insert
            };
            let last = rows.len().saturating_sub(1);
            for (i, r) in rows.into_iter().enumerate() {
                let (len, w) = tuple(r);
                // TOAST chunks of a batch are all logged before it: keep
                // them until its last row, as DecodeMultiInsert does
                d.queue(kind, l, Some((len, &w)), None, i == last);
            }
        }
        Change::Update { new, old } => {
            let (nl, nw) = tuple(new);
            let o = old.map(|o| tuple(o.row));
            let old = o.as_ref().map(|(len, w)| (*len, w as &dyn Fn(&mut [u8])));
            d.queue(ChangeKind::Update, l, Some((nl, &nw)), old, true);
        }
        Change::Delete { old, super_delete } => {
            let kind = if super_delete {
                ChangeKind::SpeculativeAbort
            } else {
                ChangeKind::Delete
            };
            let o = old.map(|o| tuple(o.row));
            let old = o.as_ref().map(|(len, w)| (*len, w as &dyn Fn(&mut [u8])));
            d.queue(kind, l, None, old, true);
        }
        Change::Confirm => d.queue(ChangeKind::SpeculativeConfirm, l, None, None, true),
    }
}
