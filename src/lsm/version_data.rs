//! Row data of versions on compressed run pages. On those pages only a
//! version's fixed header is in the page (where visibility checks and stamps
//! work on it); the rest is in the page's zstd frame
//! ([`super::compressed_page`]). Whoever needs a version's columns asks
//! here: [`full_bytes`], [`palloc_full`] and [`full_tuple`] materialize it, and
//! [`super::storage::store_in_slot`] stores a materialized copy.
//!
//! Decompressed payloads are kept in a small per-backend cache keyed by the
//! relation, its file, the block and the payload's identity (see `Key`), so
//! a scan emitting a page's rows, or fetches hitting the same page,
//! decompress it once; a point lookup keeps the blob it decompressed and the
//! row it rebuilt (`Lone`) for the executor's next asks for that row, and
//! with the server's cache of decoded pages ([`super::shared_cache`]) reads
//! the row from there when the page is cached, storing the page's decoded
//! rows on its second miss. Every decompression verifies the page's crc; a
//! mismatch, or a frame that does not decode, raises XX001 naming the
//! relation and block.

use crate::pg::page::Page;
use crate::pg::relation::Rel;
use super::block_cache;
use super::columnar::Attr;
use super::compact_page;
use super::compressed_page::{self, Opened, Payload, Sections};
use super::format;
use super::page_image;
use super::shared_cache;
use super::page_id;
use crate::pg::buffer;
use crate::pg::htup;
use crate::pg::page;
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode;
use std::cell::RefCell;
use std::rc::Rc;

/// Cache key of a compressed page's payload: relation, file, block, then
/// what identifies the payload, and whether the page is compact. A compact
/// page's blob never changes while the page belongs to its run — stamps and
/// expansion (which may move the blob to a payload page) leave it as it is,
/// and run ids are never reused — so its identity is its run (the page's
/// owner) and first rowid, the same before and after the first stamp. A
/// version 3 page's is its LSN and stored crc.
type Key = (pg_sys::Oid, pg_sys::Oid, pg_sys::BlockNumber, u64, u32, bool);

const CACHED_PAGES: usize = 4;

thread_local! {
    static CACHE: RefCell<Vec<(Key, Rc<Payload>)>> = const { RefCell::new(Vec::new()) };
}

/// The column layout of `rel` (column-wise payloads are split by it).
pub fn columns(rel: Rel) -> Vec<Attr> {
    crate::pg::rel::attr_layouts(rel)
        .into_iter()
        .map(Attr::from_layout)
        .collect()
}

/// Whether a (pinned) page is a compressed run page.
pub fn is_compressed(p: Page) -> bool {
    compressed_page::is_compressed(page::bytes(p))
}

/// The cache key of compressed page `p` (block `blkno`).
fn key_of(rel: Rel, blkno: pg_sys::BlockNumber, bytes: &[u8]) -> Key {
    let (relid, file) = (rel.data().rd_id, rel.form().relfilenode);
    if compact_page::is_compact(bytes) {
        let run = page_image::tag_of(bytes).map_or(0, |t| t.vblock);
        return (relid, file, blkno, compact_page::head(bytes).first_rowid, run, true);
    }
    let lsn = format::u64_at(bytes, 0);
    (relid, file, blkno, lsn, compressed_page::stored_crc(bytes), false)
}

fn cached(key: &Key) -> Option<Rc<Payload>> {
    CACHE.with(|c| {
        c.borrow()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    })
}

/// Checks and decompresses the blob of compact page `bytes` (block
/// `blkno`) — in the page or on its payload page; XX001 naming the relation
/// and block when it fails.
fn open_blob(rel: Rel, blkno: pg_sys::BlockNumber, bytes: &[u8]) -> Opened {
    with_blob(rel, bytes, compact_page::open).unwrap_or_else(|e| corrupted(rel, blkno, e))
}

/// The blob of compact page `bytes` (block `blkno`, pinned and at least
/// share-locked) checked, with only its rows section decompressed (a
/// sequential scan decompresses the columns its query reads); None when
/// the payload is row by row. XX001 when it fails.
pub fn open_sections(rel: Rel, blkno: pg_sys::BlockNumber, bytes: &[u8]) -> Option<Sections> {
    with_blob(rel, bytes, compact_page::open_sections).unwrap_or_else(|e| corrupted(rel, blkno, e))
}

/// `f(page, blob)` of compact page `bytes` with its blob, in the page or
/// on its payload page.
fn with_blob<T>(
    rel: Rel,
    bytes: &[u8],
    f: impl FnOnce(&[u8], &[u8]) -> Result<T, compressed_page::CodecError>,
) -> Result<T, compressed_page::CodecError> {
    let h = compact_page::head(bytes);
    if h.payload_block == 0 {
        return f(bytes, compact_page::inline_blob(bytes).unwrap_or(&[]));
    }
    super::manifest::read_page(rel, h.payload_block, |pp| {
        let theirs = page_image::tag_of(pp).is_some_and(|t| {
            t.kind == format::PageKind::RunPayload as u16
                && Some(t.vblock) == page_image::tag_of(bytes).map(|d| d.vblock)
        });
        if theirs {
            f(bytes, compact_page::payload_page_blob(pp))
        } else {
            Err(compressed_page::CodecError::Layout(format!(
                "block {} is not its payload page",
                h.payload_block
            )))
        }
    })
}

/// XX001 "invalid compressed block N of relation r: e".
pub fn corrupted(rel: Rel, blkno: pg_sys::BlockNumber, e: impl std::fmt::Display) -> ! {
    crate::pg::error::error(
        PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
        format!(
            "invalid compressed block {blkno} of relation \"{}\": {e}",
            crate::pg::rel::relname(rel)
        ),
    )
}

/// The checked, decompressed payload of compressed page `p` (block `blkno`,
/// pinned and at least share-locked).
pub fn payload(rel: Rel, blkno: pg_sys::BlockNumber, p: Page) -> Rc<Payload> {
    let key = key_of(rel, blkno, page::bytes(p));
    cached(&key).unwrap_or_else(|| decode_page(rel, blkno, p, key))
}

/// Decodes compressed page `p` and caches its payload under `key` (from
/// the blob a point lookup opened, when it was this page's).
fn decode_page(rel: Rel, blkno: pg_sys::BlockNumber, p: Page, key: Key) -> Rc<Payload> {
    let bytes = page::bytes(p);
    let decoded = if compact_page::is_compact(bytes) {
        let attrs = columns(rel);
        let built = match lone_for(&key, |l| l.opened.clone()).flatten() {
            Some(opened) => opened.payload(&attrs),
            None => open_blob(rel, blkno, bytes).into_payload(&attrs),
        };
        built.unwrap_or_else(|e| corrupted(rel, blkno, e))
    } else {
        compressed_page::decode(bytes).unwrap_or_else(|e| corrupted(rel, blkno, e))
    };
    let decoded = Rc::new(decoded);
    keep_page(key, decoded.clone());
    decoded
}

/// Keeps a decoded payload in the backend's small cache of pages.
fn keep_page(key: Key, decoded: Rc<Payload>) {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() == CACHED_PAGES {
            c.remove(0);
        }
        c.push((key, decoded));
    });
}

/// What the last point lookup on a compact page decompressed: the page's
/// blob, and the version it rebuilt from it. The executor asks for an
/// updated row up to three times (the index fetch, `tuple_fetch_row_version`
/// for the new row's unchanged columns, `tuple_update`), the first stamp
/// expanding the page in between (the key stays): they share one
/// decompression and one rebuild.
struct Lone {
    key: Key,
    /// None when the row came from the shared cache.
    opened: Option<Rc<Opened>>,
    item: usize,
    rest: Rc<[u8]>,
}

thread_local! {
    static LONE: RefCell<Option<Lone>> = const { RefCell::new(None) };
}

/// `f` of the kept point lookup when it was on the page of `key`.
fn lone_for<T>(key: &Key, f: impl FnOnce(&Lone) -> T) -> Option<T> {
    LONE.with(|l| l.borrow().as_ref().filter(|l| l.key == *key).map(f))
}

/// `f` of the rest of version `item` of compact page `p` (the caller checked
/// it is one) rebuilt alone — a point lookup rebuilds one row, not the
/// page's — when the page's payload is not cached and no other version of
/// it was asked for last; None otherwise (decode the page: a reader going
/// through its rows). A row in the shared cache goes to `f` straight from it.
fn lone_rest<T>(
    rel: Rel,
    blkno: pg_sys::BlockNumber,
    p: Page,
    key: Key,
    item: usize,
    f: impl FnOnce(&[u8]) -> T,
) -> Option<T> {
    let bytes = page::bytes(p);
    let seen = lone_for(&key, |l| (l.item, l.rest.clone()));
    match seen {
        Some((last, rest)) if last == item => Some(f(&rest)),
        Some(_) => None,
        None => {
            let mut f = Some(f);
            let admit = match shared_key(rel, blkno, bytes, &key) {
                Some(k) => match shared_cache::with_rest(&k, item, |r| f.take().map(|f| f(r))) {
                    Ok(done) => return done,
                    Err(admit) => admit.then_some(k),
                },
                None => None,
            };
            let f = f.take().expect("f has not run");
            Some(decode_lone(rel, blkno, bytes, key, item, admit, f))
        }
    }
}

/// `f` of version `item`'s rest decoded from compact page `bytes`: the
/// whole page when `admit` names its shared-cache key (stored there and in
/// this backend's cache), otherwise that one row; kept as the last lookup.
fn decode_lone<T>(
    rel: Rel,
    blkno: pg_sys::BlockNumber,
    bytes: &[u8],
    key: Key,
    item: usize,
    admit: Option<block_cache::Key>,
    f: impl FnOnce(&[u8]) -> T,
) -> T {
    let opened = Rc::new(open_blob(rel, blkno, bytes));
    let attrs = columns(rel);
    let rest: Rc<[u8]> = match admit {
        // decode every row once, for the shared cache (and this backend's)
        Some(k) => {
            let payload = opened.payload(&attrs).unwrap_or_else(|e| corrupted(rel, blkno, e));
            shared_cache::put(&k, &payload.rests());
            let rest: Rc<[u8]> = payload
                .rest(item)
                .unwrap_or_else(|| corrupted(rel, blkno, format!("no version {item}")))
                .into();
            keep_page(key, Rc::new(payload));
            rest
        }
        None => opened.one(&attrs, item).unwrap_or_else(|e| corrupted(rel, blkno, e)).into(),
    };
    let out = f(&rest);
    keep_lone(Lone { key, opened: Some(opened), item, rest });
    out
}

fn keep_lone(l: Lone) {
    LONE.with(|cell| *cell.borrow_mut() = Some(l));
}

/// The shared cache's key of compact page `bytes` (block `blkno`, backend
/// cache key `key`): its file, block, run and first rowid (from `key`) and
/// its blob header (see [`shared_cache`]); None without a shared cache.
fn shared_key(
    rel: Rel,
    blkno: pg_sys::BlockNumber,
    bytes: &[u8],
    key: &Key,
) -> Option<block_cache::Key> {
    if !shared_cache::enabled() {
        return None;
    }
    let header: [u8; compressed_page::BLOB_HEADER] = with_blob(rel, bytes, |_, blob| {
        blob.get(..compressed_page::BLOB_HEADER)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| compressed_page::CodecError::Layout("no blob header".into()))
    })
    .unwrap_or_else(|e| corrupted(rel, blkno, e));
    let [place_db, place_block] = place_words(rel, blkno);
    let &(_, _, _, first_rowid, run, _) = key;
    Some([
        place_db,
        place_block,
        first_rowid,
        run as u64,
        format::u64_at(&header, 0),
        format::u64_at(&header, 8),
    ])
}

/// The words of a page's shared-cache key known before the page is read
/// (its database and file, its block: see [`shared_cache::PLACE_WORDS`]).
fn place_words(rel: Rel, blkno: pg_sys::BlockNumber) -> [u64; shared_cache::PLACE_WORDS] {
    let (spc, db, file) = crate::pg::rel::file_locator(rel);
    [(spc as u64) << 32 | db as u64, (file as u64) << 32 | blkno as u64]
}

/// Starts loading the shared cache's index slots for block `blkno` of
/// `rel` before the block is read (a point lookup that may end there; see
/// [`shared_cache::prefetch`]).
pub fn prefetch_cached(rel: Rel, blkno: pg_sys::BlockNumber) {
    if shared_cache::enabled() {
        shared_cache::prefetch(place_words(rel, blkno));
    }
}

thread_local! {
    /// The item [`item_of`] found last, or that [`note_item`] was told of.
    static LAST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Tells [`item_of`] where the next version it is asked for probably is:
/// a point lookup found its item before it asks for the version's bytes
/// (so that it does not binary-search the page's rowid map twice).
pub fn note_item(item: usize) {
    LAST.set(item.wrapping_sub(1));
}

/// Item number of version `t` (from `storage::version_at`) on run page `p`.
/// Scans ask for a page's items in order, so the item after the one found
/// last is tried before the binary search (checked by its rowid).
fn item_of(p: Page, t: &pg_sys::HeapTupleData) -> Option<usize> {
    let rowid = page_id::rowid_of(&t.t_self);
    let bytes = page::bytes(p);
    let next = LAST.get().wrapping_add(1);
    let found = if super::run_page::run_item_rowid(bytes, next) == Some(rowid) {
        Some(next)
    } else {
        super::run_page::find_run_item(bytes, rowid)
    };
    LAST.set(found.unwrap_or(0));
    found
}

/// The full bytes of version `t` on the pinned, locked page of `buf` when
/// that page is compressed; None when the tuple is in the page as it is.
pub fn full_bytes(
    rel: Rel,
    buf: pg_sys::Buffer,
    t: &pg_sys::HeapTupleData,
) -> Option<Vec<u8>> {
    with_parts(rel, buf, t, |parts| parts.concat())
}

/// [`full_bytes`] as a palloc'd tuple (current memory context), copied
/// once from the page's stub and the decompressed payload.
pub fn palloc_full(
    rel: Rel,
    buf: pg_sys::Buffer,
    t: &pg_sys::HeapTupleData,
) -> Option<pg_sys::HeapTuple> {
    with_parts(rel, buf, t, |parts| {
        htup::palloc_tuple(parts, t.t_self, t.t_tableOid)
    })
}

/// Runs `f` over the two parts of version `t` (header, rest) when its page
/// is compressed; XX001 when the page has no stub for it.
fn with_parts<T>(
    rel: Rel,
    buf: pg_sys::Buffer,
    t: &pg_sys::HeapTupleData,
    f: impl FnOnce(&[&[u8]]) -> T,
) -> Option<T> {
    let p = buffer::page(buf);
    if !is_compressed(p) {
        return None;
    }
    let mut f = Some(f);
    let blkno = buffer::block_number(buf);
    let item = item_of(p, t);
    let key = key_of(rel, blkno, page::bytes(p));
    let hit = cached(&key);
    let compact = key.5; // key_of's layout flag
    if let (None, Some(item)) = (&hit, item) {
        if compact {
            let h = compact_page::header(page::bytes(p), item)
                .unwrap_or_else(|| corrupted(rel, blkno, format!("item {item} is not a header")));
            let f = &mut f;
            let done = lone_rest(rel, blkno, p, key, item, |rest| f.take().map(|f| f(&[&h[..], rest])));
            if let Some(out) = done.flatten() {
                return Some(out);
            }
        }
    }
    let f = f.take().expect("f has not run");
    let payload = hit.unwrap_or_else(|| decode_page(rel, blkno, p, key));
    let found = item.and_then(|item| parts_of(page::bytes(p), &payload, item));
    match found {
        Some((h, rest)) => Some(f(&[&h[..], rest])),
        None => crate::pg::error::error(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            format!(
                "invalid compressed block {blkno} of relation \"{}\": no stub for ({}, {})",
                crate::pg::rel::relname(rel),
                htup::tid_block(&t.t_self),
                htup::tid_offset(&t.t_self)
            ),
        ),
    }
}

/// Runs `f(i, header, own_tid, rest)` for the versions in line pointers
/// `items` of compressed page `p` (block `blkno`, pinned and locked),
/// decompressing the page once: `header` is the stored fixed header, and
/// `own_tid` is set when it is a shared one whose copy needs the version's
/// own TID in `t_ctid` (see `compact_page`). XX001 when the page has no
/// header for one of them.
pub fn for_each_full(
    rel: Rel,
    blkno: pg_sys::BlockNumber,
    p: Page,
    items: &[u16],
    mut f: impl FnMut(usize, &[u8], Option<(u32, u16)>, &[u8]),
) {
    let payload = payload(rel, blkno, p);
    let bytes = page::bytes(p);
    let compact = compact_page::is_compact(bytes).then(|| compact_page::View::of(bytes));
    for (i, &item) in items.iter().enumerate() {
        let parts = match &compact {
            Some(view) => view
                .stored_header(item as usize)
                .zip(payload.rest(item as usize))
                .map(|((h, own), rest)| (h, own, rest)),
            None => compressed_page::tuple_parts(bytes, &payload, item as usize)
                .map(|[h, rest]| (h, None, rest)),
        };
        match parts {
            Some((h, own, rest)) => f(i, h, own, rest),
            None => crate::pg::error::error(
                PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!(
                    "invalid compressed block {blkno} of relation \"{}\": no stub in item {item}",
                    crate::pg::rel::relname(rel)
                ),
            ),
        }
    }
}

/// Header and rest of version `item` of a compressed page, either layout.
fn parts_of<'a>(
    page: &'a [u8],
    payload: &'a Payload,
    item: usize,
) -> Option<([u8; compressed_page::TUPLE_HEADER_SIZE], &'a [u8])> {
    if compact_page::is_compact(page) {
        return compact_page::tuple_parts(page, payload, item);
    }
    let [h, rest] = compressed_page::tuple_parts(page, payload, item)?;
    Some((h.try_into().ok()?, rest))
}

/// Version `t` with all its data: `t` itself when it is in the page, else a
/// palloc'd copy (current memory context) of its header and decompressed rest.
/// The copy is for reading columns (TOAST, key comparison); stamps and
/// visibility checks go to the page's header.
pub fn full_tuple(
    rel: Rel,
    buf: pg_sys::Buffer,
    t: &pg_sys::HeapTupleData,
) -> pg_sys::HeapTupleData {
    match palloc_full(rel, buf, t) {
        None => *t,
        // SAFETY: a fresh palloc'd tuple.
        Some(copy) => unsafe { *copy },
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::is_compressed;
    use crate::lsm::compressed_page::BLOB_HEADER;
    use crate::pg::{buffer, page};
    use pgrx::prelude::*;
    use pgrx::PgRelation;

    /// Flushes 2000 compressible rows of table `z` into a compressed run and
    /// flips one bit of the zstd frame of its first data page, in the buffer
    /// (not WAL-logged: only this backend has to see it). Returns that block.
    fn smash_first_compressed_block() -> u32 {
        // through L0 and a flush (a bulk load would write the run directly)
        Spi::run("SET strata.lsm_bulk_load = off").unwrap();
        Spi::run("CREATE TABLE z (a int, t text) USING lsm").unwrap();
        Spi::run(
            "INSERT INTO z SELECT g, repeat('strata ', 10) || g FROM generate_series(1, 2000) g",
        )
        .unwrap();
        Spi::run("SELECT strata.lsm_flush('z')").unwrap();
        let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'z'::regclass::oid")
            .unwrap()
            .unwrap();
        // SAFETY: `oid` names the table just created in this transaction.
        let rel = unsafe { PgRelation::with_lock(oid, pg_sys::AccessExclusiveLock as _) };
        // SAFETY: open (and locked) until the test ends.
        let rel = unsafe { crate::pg::relation::Rel::from_raw(rel.as_ptr()) };
        for block in 1..buffer::nblocks(rel) {
            let locked = buffer::Locked::exclusive(rel, block);
            let (buf, p) = (locked.buffer(), locked.page());
            if is_compressed(p) {
                // a byte of the frame, inside the blob in front of the tag
                let blob_at = {
                    let bytes = page::bytes(p);
                    let blob = crate::lsm::compact_page::inline_blob(bytes).expect("a compact page");
                    blob.as_ptr() as usize - bytes.as_ptr() as usize
                };
                page::bytes_mut(p)[blob_at + BLOB_HEADER + 10] ^= 0x04;
                crate::pg::buffer::mark_dirty_unlogged(buf);
                return block;
            }
        }
        panic!("no compressed page after the flush");
    }

    #[pg_test]
    fn compressed_rows_round_trip() {
        Spi::run("SET strata.lsm_bulk_load = off").unwrap();
        Spi::run("CREATE TABLE y (a int, t text) USING lsm").unwrap();
        Spi::run(
            "INSERT INTO y SELECT g, repeat('strata ', 10) || g FROM generate_series(1, 5000) g",
        )
        .unwrap();
        let before =
            Spi::get_one::<String>("SELECT md5(string_agg(a || t, ',' ORDER BY a)) FROM y")
                .unwrap();
        Spi::run("SELECT strata.lsm_flush('y')").unwrap();
        let after = Spi::get_one::<String>("SELECT md5(string_agg(a || t, ',' ORDER BY a)) FROM y")
            .unwrap();
        assert_eq!(before, after);
        // 5000 rows of ~80 bytes take ~60 uncompressed run pages
        let pages = Spi::get_one::<i64>("SELECT pages FROM strata.lsm_levels('y') WHERE level = 1")
            .unwrap();
        assert!(pages.unwrap() <= 30, "{pages:?} run pages");
        Spi::run("UPDATE y SET t = 'changed' WHERE a % 10 = 0").unwrap();
        let changed = Spi::get_one::<i64>("SELECT count(*) FROM y WHERE t = 'changed'").unwrap();
        assert_eq!(changed, Some(500));
        let problems = Spi::get_one::<i64>("SELECT count(*) FROM strata.lsm_verify('y')").unwrap();
        assert_eq!(problems, Some(0));
    }

    #[pg_test]
    fn verify_reports_a_corrupted_compressed_block() {
        let block = smash_first_compressed_block();
        let found =
            Spi::get_two::<i64, String>("SELECT block, problem FROM strata.lsm_verify('z')")
                .unwrap();
        assert_eq!(found.0, Some(block as i64));
        assert!(found.1.unwrap().starts_with("checksum mismatch"));
    }

    #[pg_test(error = "invalid compressed block 29 of relation \"z\": checksum mismatch")]
    fn reading_a_corrupted_compressed_block_raises_xx001() {
        // the block number is fixed by the allocation order (asserted)
        assert_eq!(smash_first_compressed_block(), 29);
        Spi::get_one::<i64>("SELECT sum(length(t)) FROM z").unwrap();
    }
}
