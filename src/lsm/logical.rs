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

use crate::pg::relation::Rel;
use super::logical_record::{self as lrec, Change, OldRow, Row, RowRecord};
use super::storage::RowInsert;
use super::wal_record::{self, RMGR_ID};
use crate::pg::logical::{self as pglog, ChangeKind, Decoding};
use crate::pg::locator::{self, Locator};
use crate::pg::{htup, wal};
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Whether `rel`'s changes write row records.
pub fn logs_rows(rel: Rel) -> bool {
    wal::registered() && pglog::is_logically_logged(rel)
}

fn locator_of(rel: Rel) -> lrec::Locator {
    let (spc, db, rel) = locator::parts(&locator::of(rel));
    lrec::Locator { spc, db, rel }
}

fn row_of<'a>(t: pg_sys::HeapTuple) -> Row<'a> {
    // SAFETY: a formed tuple that outlives the record built from it.
    Row::of_tuple(unsafe { htup::tuple_bytes(&*t) }).expect("a formed tuple has its header")
}

fn write(rel: Rel, change: Change) {
    let (info, data) = RowRecord {
        locator: locator_of(rel),
        change,
    }
    .encode();
    pglog::insert_record(RMGR_ID, info, &data);
}

/// Whether rows inserted with `options` are decoded (heap's
/// `HEAP_INSERT_NO_LOGICAL` option says not).
fn logs_inserts(rel: Rel, options: i32) -> bool {
    options & pg_sys::HEAP_INSERT_NO_LOGICAL as i32 == 0 && logs_rows(rel)
}

/// How an insert's L0 append marks its INSERT record for decoding: rows
/// appended to L0 are decoded from that record ([`logical_record::insert_mark`]).
pub fn row_insert(rel: Rel, options: i32, speculative: bool) -> RowInsert {
    if logs_inserts(rel, options) {
        RowInsert::Rows { speculative, more: false }
    } else {
        RowInsert::No
    }
}

/// After new versions were stored in runs, not L0 (a bulk load: `tuples`
/// as stored, TOASTed values as pointers): one ROW_INSERT; `more`: the
/// batch's other rows follow in L0 records.
pub fn inserted_into_runs(rel: Rel, tuples: &[pg_sys::HeapTuple], options: i32, more: bool) {
    if tuples.is_empty() || !logs_inserts(rel, options) {
        return;
    }
    write(
        rel,
        Change::Insert {
            speculative: false,
            more,
            rows: tuples.iter().map(|&t| row_of(t)).collect(),
        },
    );
}

/// After a speculative insertion was confirmed (`true`) or taken back.
pub fn speculation_ended(rel: Rel, confirmed: bool) {
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
    rel: Rel,
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
pub fn updated(rel: Rel, old: &mut pg_sys::HeapTupleData, new: pg_sys::HeapTuple) {
    if !logs_rows(rel) {
        return;
    }
    with_identity(rel, old, Some(new), |o| {
        write(rel, Change::Update { new: row_of(new), old: o })
    });
}

/// The main data of an UPDATE_SHORT record that is also the update's
/// decoding (its new version is in the record): the old row per replica
/// identity. Empty below `wal_level = logical`.
pub fn update_mark(rel: Rel, old: &mut pg_sys::HeapTupleData, new: pg_sys::HeapTuple) -> Vec<u8> {
    if !logs_rows(rel) {
        return Vec::new();
    }
    with_identity(rel, old, Some(new), lrec::old_row_mark)
}

/// The main data of a DELETE's HEADERS record, which is also its
/// decoding: the old row (`old`, the version's full row) per replica
/// identity. Empty below `wal_level = logical`.
pub fn delete_mark(rel: Rel, old: &mut pg_sys::HeapTupleData) -> Vec<u8> {
    if !logs_rows(rel) {
        return Vec::new();
    }
    with_identity(rel, old, None, lrec::old_row_mark)
}

/// A page record's mark read by `read` and the relation of its block 0,
/// when the record is marked and its change is to be queued.
fn marked<'a, T>(
    d: &'a Decoding,
    read: impl FnOnce(&'a [u8]) -> Result<Option<T>, super::compressed_page::CodecError>,
) -> Option<(Locator, T)> {
    let mark = read(d.data()).unwrap_or_else(|e| corrupted(e))?;
    let (l, db) = d.block_locator(0);
    d.wants_changes(db).then_some((l, mark))
}

/// Queues an UPDATE or DELETE with its new row (if any) and old row (if
/// the replica identity logged one).
fn queue_change(d: &Decoding, kind: ChangeKind, l: Locator, new: Option<Row>, old: Option<lrec::OldRow>) {
    let n = new.map(tuple);
    let o = old.map(|o| tuple(o.row));
    d.queue(kind, l, n.as_ref().map(as_dyn), o.as_ref().map(as_dyn), true);
}

fn as_dyn<F: Fn(&mut [u8])>(t: &(usize, F)) -> (usize, &dyn Fn(&mut [u8])) {
    (t.0, &t.1)
}

/// An L0 INSERT page record marked as new rows: one insert change per
/// version in its block data (kept under a full-page image), the versions
/// as stored — their headers' xmin, cid and ctid are left out, as
/// `DecodeXLogTuple` leaves them out.
fn decode_l0_insert(d: &Decoding) {
    let Some((l, mark)) = marked(d, lrec::read_insert_mark) else {
        return;
    };
    let versions = wal_record::inserts(d.block_data(0)).unwrap_or_else(|e| corrupted(e));
    let kind = if mark.speculative {
        ChangeKind::SpeculativeInsert
    } else {
        ChangeKind::Insert
    };
    let last = versions.len().saturating_sub(1);
    for (i, (_, bytes)) in versions.into_iter().enumerate() {
        let (len, w) = tuple(Row::of_tuple(bytes).unwrap_or_else(|e| corrupted(e)));
        // a multi-insert's TOAST chunks are all logged before its first
        // record: kept until its last row, as DecodeMultiInsert does
        d.queue(kind, l, Some((len, &w)), None, i == last && !mark.more);
    }
}

/// An UPDATE_SHORT page record marked for decoding: its new version
/// (rebuilt from block 0's data, kept under a full-page image) and the old
/// row its mark carries.
fn decode_short_update(d: &Decoding) {
    let Some((l, old)) = marked(d, lrec::read_old_row_mark) else {
        return;
    };
    let u = wal_record::ShortUpdate::decode(d.block_data(0)).unwrap_or_else(|e| corrupted(e));
    // the new TID's block only reaches t_ctid, which decoding leaves out
    let cx = wal_record::DeltaContext {
        xid: d.xid(),
        new_tid: Some((0, u.item)),
    };
    let bytes = u.tuple(&cx).unwrap_or_else(|e| corrupted(e));
    let new = Row::of_tuple(&bytes).unwrap_or_else(|e| corrupted(e));
    queue_change(d, ChangeKind::Update, l, Some(new), old);
}

/// A HEADERS record marked for decoding: a DELETE's stamp, with the old
/// row its mark carries (unmarked ones — locks, other stamps — carry no
/// row change).
fn decode_delete(d: &Decoding) {
    if let Some((l, old)) = marked(d, lrec::read_old_row_mark) {
        queue_change(d, ChangeKind::Delete, l, None, old);
    }
}

fn corrupted(e: impl std::fmt::Display) -> ! {
    crate::pg::error::error(pgrx::PgSqlErrorCode::ERRCODE_DATA_CORRUPTED, e.to_string())
}

/// A row's tuple length and the writer of its bytes, for [`Decoding::queue`].
fn tuple(r: Row<'_>) -> (usize, impl Fn(&mut [u8]) + '_) {
    (r.tuple_len(), move |out: &mut [u8]| r.write_tuple(out))
}

/// The resource manager's `rm_decode`: a marked L0 INSERT record becomes an
/// insert per version; each row record becomes one change per row, as heap's
/// `DecodeInsert` / `DecodeMultiInsert` / `DecodeUpdate` / `DecodeDelete` /
/// `DecodeSpecConfirm` queue them.
#[pg_guard]
pub unsafe extern "C-unwind" fn decode(ctx: *mut pg_sys::LogicalDecodingContext, buf: *mut pg_sys::XLogRecordBuffer) {
    // SAFETY: the arguments of this rm_decode call.
    let d = unsafe { Decoding::of(ctx, buf) };
    let info = d.info();
    if info == wal_record::INSERT {
        return decode_l0_insert(&d);
    }
    if info == wal_record::UPDATE_SHORT {
        return decode_short_update(&d);
    }
    if info == wal_record::HEADERS {
        return decode_delete(&d);
    }
    if !lrec::is_row_record(info) {
        return;
    }
    let rec = RowRecord::decode(info, d.data()).unwrap_or_else(|e| corrupted(e));
    if !d.wants_changes(rec.locator.db) {
        return;
    }
    let l = locator::from_parts(rec.locator.spc, rec.locator.db, rec.locator.rel);
    match rec.change {
        Change::Insert { speculative, more, rows } => {
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
                d.queue(kind, l, Some((len, &w)), None, i == last && !more);
            }
        }
        Change::Update { new, old } => queue_change(&d, ChangeKind::Update, l, Some(new), old),
        Change::Delete { old, super_delete } => {
            let kind = if super_delete {
                ChangeKind::SpeculativeAbort
            } else {
                ChangeKind::Delete
            };
            queue_change(&d, kind, l, None, old);
        }
        Change::Confirm => d.queue(ChangeKind::SpeculativeConfirm, l, None, None, true),
    }
}
