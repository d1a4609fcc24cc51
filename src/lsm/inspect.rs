//! `strata.lsm_info(regclass)` and `strata.lsm_verify(regclass)`: what an
//! `lsm` table holds per component, and every structural problem
//! [`page_check`] finds. Both read each page once through the buffer manager
//! (a private copy per page); the checks themselves are pure.
//!
//! `lsm_verify` takes a SHARE lock (like CREATE INDEX), so writers wait and
//! cross-page links are checked against a stable table (on a hot standby,
//! where SHARE cannot be taken, it runs under ACCESS SHARE); `lsm_info` only
//! needs ACCESS SHARE and may see a table that is changing under it.
//! `lsm_flush` takes EXCLUSIVE: writers wait, readers run on.

use crate::pg::relation::Rel;
use super::format::PageKind;
use super::handler;
use super::columnar::Attr;
use super::page_check::{self, Context, Summary};
use super::run_writer::{Readers, SwitchLock};
use crate::pg::{page, rel};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgRelation;

fn open_lsm(relation: &PgRelation) -> Rel {
    // SAFETY: the caller's PgRelation keeps the table open while it is used.
    let r = unsafe { Rel::from_raw(relation.as_ptr()) };
    if !handler::is_lsm(r) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{}\" is not an lsm table", relation.name()),
            "strata.lsm_info and strata.lsm_verify accept tables created USING lsm."
        );
    }
    rel::require_select(r);
    // a bulk load this transaction left open is listed first
    super::bulk::finish_open(r);
    r
}

fn summarize(r: Rel, problems: &mut Vec<page_check::Problem>) -> (Vec<Summary>, u32) {
    let attrs: Vec<Attr> = rel::attr_layouts(r).into_iter().map(Attr::from_layout).collect();
    let ctx = Context {
        block_size: page::BLCKSZ,
        attrs: &attrs,
        natts: rel::natts(r),
        next_xid: rel::next_xid().into_inner(),
        frozen_xid: rel::frozen_xid(r).into_inner(),
    };
    let mut pages = Vec::new();
    let nblocks = crate::pg::buffer::nblocks(r);
    let blob_of = |b: u32| {
        (b < nblocks).then(|| {
            super::manifest::read_page(r, b, |p| {
                super::page_image::tag_of(p)
                    .filter(|t| t.kind == super::format::PageKind::RunPayload as u16)
                    .map(|t| (t.vblock, super::compact_page::payload_page_blob(p).to_vec()))
            })
        })?
    };
    rel::for_each_page_copy(r, |blkno, bytes| {
        pages.push(page_check::check_page(blkno, bytes, &ctx, &blob_of, problems));
    });
    (pages, ctx.frozen_xid)
}

/// Row bytes per byte of `data_pages` data pages, to two decimals (below 1
/// for uncompressed pages: headers, line pointers, free space).
fn compression_ratio(bytes: i64, data_pages: i64) -> f64 {
    ((bytes as f64 / (data_pages as f64 * page::BLCKSZ as f64)) * 100.0).round() / 100.0
}

#[pgrx::pg_schema]
mod strata {
    use super::*;

    /// One row per storage component of an lsm table: the metapage, L0 and
    /// its directory, each run (level 1 and up), and free pages, with pages,
    /// row versions, tuple bytes and free bytes; for runs also the pages of
    /// their bloom filter and their compression ratio (row bytes per
    /// data-page byte). A last row, `total`, sums them and carries the
    /// table's write amplification (bytes written into runs per byte flushed
    /// out of L0). Per-level totals: `lsm_levels`; all work counters:
    /// `lsm_stats`.
    #[pg_extern(strict)]
    #[allow(clippy::type_complexity)]
    fn lsm_info(
        relation: PgRelation,
    ) -> TableIterator<
        'static,
        (
            name!(component, String),
            name!(level, i32),
            name!(pages, i64),
            name!(row_versions, i64),
            name!(tuple_bytes, i64),
            name!(free_bytes, i64),
            name!(filter_pages, Option<i64>),
            name!(compression_ratio, Option<f64>),
            name!(write_amplification, Option<f64>),
        ),
    > {
        let r = open_lsm(&relation);
        let mut ignored = Vec::new();
        let (pages, frozen) = summarize(r, &mut ignored);
        let used = page_check::check_manifest(&pages, frozen, &mut ignored);
        // component -> (level, pages, versions, tuple bytes, free bytes,
        // data pages, filter pages)
        let mut rows: Vec<(String, i32, [i64; 6])> = vec![
            ("metapage".into(), -1, [0; 6]),
            ("L0".into(), 0, [0; 6]),
            ("L0 directory".into(), 0, [0; 6]),
        ];
        if let Some(meta) = pages.first().and_then(|s| s.meta.as_ref()) {
            for run in &meta.runs {
                rows.push((format!("run {}", run.run_id), run.level as i32, [0; 6]));
            }
        }
        rows.push(("free".into(), -1, [0; 6]));
        let free = rows.len() - 1;
        for (s, in_use) in pages.iter().zip(&used) {
            let row = match (s.kind, in_use) {
                (_, false) => free,
                (Some(PageKind::Meta), _) => 0,
                (Some(PageKind::L0), _) => 1,
                (Some(PageKind::L0Dir), _) => 2,
                (Some(PageKind::RunData | PageKind::RunIndex | PageKind::RunPayload), _) => rows
                    .iter()
                    .position(|(name, _, _)| *name == format!("run {}", s.owner))
                    .unwrap_or(free),
                _ => free,
            };
            let counts = &mut rows[row].2;
            counts[0] += 1;
            if row == free {
                counts[3] += page::BLCKSZ as i64;
                continue;
            }
            counts[1] += s.versions as i64;
            counts[2] += s.tuple_bytes as i64;
            counts[3] += s.free_bytes as i64;
            counts[4] += (s.kind == Some(PageKind::RunData)) as i64;
            counts[5] += s.bloom.is_some() as i64;
        }
        let mut total = [0i64; 6];
        let (mut run_bytes, mut run_data) = (0, 0);
        for (name, _, counts) in &rows {
            total.iter_mut().zip(counts).for_each(|(t, c)| *t += c);
            if name.starts_with("run ") {
                (run_bytes, run_data) = (run_bytes + counts[2], run_data + counts[4]);
            }
        }
        let meta = pages.first().and_then(|s| s.meta.as_ref());
        let amplification = meta.map(|m| (m.stats.write_amplification() * 1000.0).round() / 1000.0);
        let mut out: Vec<_> = rows
            .into_iter()
            .map(|(name, level, [p, v, t, f, data, filter])| {
                let run = name.starts_with("run ");
                let r = (run && data > 0).then(|| compression_ratio(t, data));
                (name, level, p, v, t, f, run.then_some(filter), r, None)
            })
            .collect();
        if let Some(wa) = amplification {
            let [p, v, t, f, _, filter] = total;
            let r = (run_data > 0).then(|| compression_ratio(run_bytes, run_data));
            out.push(("total".into(), -1, p, v, t, f, Some(filter), r, Some(wa)));
        }
        TableIterator::new(out)
    }

    /// How the table's pages in use store row versions: per page layout
    /// (L0, uncompressed run pages, version 3 pages with a stub per row,
    /// compact pages with shared or own headers, payload pages) and codec,
    /// the pages and the row versions they hold.
    #[pg_extern(strict)]
    fn lsm_page_layouts(
        relation: PgRelation,
    ) -> TableIterator<
        'static,
        (
            name!(layout, String),
            name!(codec, Option<String>),
            name!(pages, i64),
            name!(row_versions, i64),
        ),
    > {
        let r = open_lsm(&relation);
        let mut ignored = Vec::new();
        let (pages, frozen) = summarize(r, &mut ignored);
        let used = page_check::check_manifest(&pages, frozen, &mut ignored);
        let mut rows: Vec<(String, Option<String>, i64, i64)> = Vec::new();
        for (s, _) in pages.iter().zip(&used).filter(|(_, u)| **u) {
            let layout = match s.kind {
                Some(PageKind::L0) => "L0",
                Some(PageKind::RunData) => s.layout.unwrap_or("uncompressed"),
                Some(PageKind::RunPayload) => "payload",
                _ => continue,
            };
            let codec = s.codec.map(str::to_string);
            match rows.iter_mut().find(|(l, c, _, _)| l == layout && *c == codec) {
                Some(row) => (row.2, row.3) = (row.2 + 1, row.3 + s.versions as i64),
                None => rows.push((layout.to_string(), codec, 1, s.versions as i64)),
            }
        }
        rows.sort();
        TableIterator::new(rows)
    }

    /// Flushes L0 into a new run now (VACUUM does it too), alongside DML:
    /// it copies under SHARE UPDATE EXCLUSIVE and takes EXCLUSIVE (waiting
    /// for it) only to seal L0 and to switch; requires ownership.
    #[pg_extern(strict)]
    #[allow(clippy::type_complexity)]
    fn lsm_flush(
        relation: PgRelation,
    ) -> TableIterator<
        'static,
        (
            name!(l0_pages, i64),
            name!(versions_moved, i64),
            name!(versions_dropped, i64),
            name!(runs_written, i64),
        ),
    > {
        let r = open_lsm(&relation);
        rel::require_owner(r);
        // no VACUUM or other flush meanwhile; DML and readers run on (the
        // freed pages stay pending)
        rel::lock(r, pg_sys::ShareUpdateExclusiveLock);
        let lock = SwitchLock {
            acquire: &|| {
                rel::lock(r, pg_sys::ExclusiveLock);
                true
            },
            release: &|| rel::unlock(r, pg_sys::ExclusiveLock),
        };
        // update chains are shortened first (as VACUUM's sweep does), by the
        // flush's own horizon, so the flush drops their dead members too
        let horizon = crate::pg::xact::oldest_nonremovable_xid(r);
        super::super::sweep::shorten_chains_only(r, horizon);
        let st = super::super::flush::flush(r, Some(horizon), Readers::Allowed, &lock);
        if st.skipped {
            ereport!(
                NOTICE,
                PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
                "L0 was not flushed: the pages earlier flushes freed are still pending",
                "Snapshots older than those flushes still exist; try again when they are gone."
            );
        }
        TableIterator::once((
            st.l0_pages as i64,
            st.versions_moved as i64,
            st.versions_dropped as i64,
            st.runs_written as i64,
        ))
    }

    /// One row per level of an lsm table (level 0 is L0, with its pages):
    /// runs, data pages, row versions, their bytes and the compression ratio
    /// (row bytes per data-page byte), from the metapage.
    #[pg_extern(strict)]
    #[allow(clippy::type_complexity)]
    fn lsm_levels(
        relation: PgRelation,
    ) -> TableIterator<
        'static,
        (
            name!(level, i32),
            name!(runs, i32),
            name!(pages, i64),
            name!(row_versions, Option<i64>),
            name!(tuple_bytes, Option<i64>),
            name!(compression_ratio, Option<f64>),
        ),
    > {
        let r = open_lsm(&relation);
        let mut rows: Vec<(i32, i32, i64, i64, i64)> = Vec::new();
        if let Some(meta) = super::super::manifest::read(r) {
            rows.push((0, 0, meta.l0_pages() as i64, -1, -1));
            for run in &meta.runs {
                let level = run.level as i32;
                let at = match rows.iter().position(|row| row.0 == level) {
                    Some(i) => i,
                    None => {
                        rows.push((level, 0, 0, 0, 0));
                        rows.len() - 1
                    }
                };
                let row = &mut rows[at];
                row.1 += 1;
                row.2 += run.data_pages as i64;
                row.3 += run.versions as i64;
                row.4 += run.tuple_bytes as i64;
            }
        }
        rows.sort_by_key(|row| row.0);
        // L0's versions are not in the metapage: NULL rather than a guess.
        // The ratio is row bytes per byte of data page: below 1 for
        // uncompressed pages (headers, line pointers, free space), above 1
        // where zstd packs more rows into a page.
        TableIterator::new(rows.into_iter().map(|(l, n, p, v, b)| {
            let ratio = (l > 0 && p > 0).then(|| compression_ratio(b, p));
            (l, n, p, (l > 0).then_some(v), (l > 0).then_some(b), ratio)
        }))
    }

    /// Cumulative work of an lsm table: flushes and merges, tuple bytes they
    /// wrote, write amplification (bytes written into runs per byte flushed
    /// out of L0), dead versions dropped and versions frozen; updates that
    /// were index-stable (no index entries, see `chain`; the cumulative
    /// statistics' `n_tup_hot_upd`) and the redirects the table holds now
    /// (counted over its pages).
    /// The server's cache of decoded compressed pages
    /// (`strata.lsm_block_cache`, see `shared_cache`): its size, and the
    /// lookups it answered (hits), the ones it did not (misses) and the
    /// pages stored since the server started. No row without a cache.
    #[pg_extern]
    fn lsm_block_cache() -> TableIterator<
        'static,
        (name!(size_bytes, i64), name!(hits, i64), name!(misses, i64), name!(stored_pages, i64)),
    > {
        let row = super::super::shared_cache::stats()
            .map(|(bytes, hits, misses, stored)| (bytes as i64, hits as i64, misses as i64, stored as i64));
        TableIterator::new(row)
    }

    #[pg_extern(strict)]
    #[allow(clippy::type_complexity)]
    fn lsm_stats(
        relation: PgRelation,
    ) -> TableIterator<
        'static,
        (
            name!(flushes, i64),
            name!(merges, i64),
            name!(flushed_bytes, i64),
            name!(merged_bytes, i64),
            name!(write_amplification, f64),
            name!(dropped_versions, i64),
            name!(frozen_versions, i64),
            name!(index_stable_updates, i64),
            name!(redirects, i64),
        ),
    > {
        let r = open_lsm(&relation);
        let meta = super::super::manifest::read(r).unwrap_or_default();
        let s = meta.stats;
        let mut ignored = Vec::new();
        let (pages, frozen) = summarize(r, &mut ignored);
        let used = page_check::check_manifest(&pages, frozen, &mut ignored);
        let redirects: u64 = pages
            .iter()
            .zip(&used)
            .filter(|(_, u)| **u)
            .map(|(p, _)| p.redirects as u64)
            .sum();
        let hot = Spi::get_one_with_args::<i64>(
            "SELECT pg_stat_get_tuples_hot_updated($1)",
            &[relation.oid().into()],
        )
        .ok()
        .flatten()
        .unwrap_or(0);
        TableIterator::once((
            meta.header.flushes as i64,
            meta.header.compactions as i64,
            s.flushed_bytes as i64,
            s.compacted_bytes as i64,
            (s.write_amplification() * 1000.0).round() / 1000.0,
            s.dropped_versions as i64,
            s.frozen_versions as i64,
            hot,
            redirects as i64,
        ))
    }

    /// The update chain from `tid` (an index entry's root, usually): one row
    /// per version reached along `t_ctid` while a version is HOT-updated or
    /// a redirect (at most 1000), with its header fields — what index scans
    /// walk (see docs/lsm-format.md, update chains).
    #[pg_extern(strict)]
    #[allow(clippy::type_complexity)]
    fn lsm_chain(
        relation: PgRelation,
        tid: pg_sys::ItemPointerData,
    ) -> TableIterator<
        'static,
        (
            name!(ctid, pg_sys::ItemPointerData),
            name!(xmin, i64),
            name!(xmax, i64),
            name!(flags, String),
        ),
    > {
        let r = open_lsm(&relation);
        let mut out = Vec::new();
        let mut w = super::super::chain::Walker::new(r, 0);
        let mut at = tid;
        for _ in 0..1000 {
            let Some(loc) = w.lock(at) else { break };
            let h = loc.header;
            let (m, m2) = (crate::pg::htup::infomask(h), crate::pg::htup::infomask2(h));
            let mut flags = Vec::new();
            for (bit, name) in [
                (m2 & super::super::chain::REDIRECT, "redirect"),
                (m2 & pg_sys::HEAP_ONLY_TUPLE, "heap_only"),
                (m2 & pg_sys::HEAP_HOT_UPDATED, "hot_updated"),
                (m2 & pg_sys::HEAP_KEYS_UPDATED, "keys_updated"),
                (m & pg_sys::HEAP_XMIN_COMMITTED, "xmin_committed"),
                (m & pg_sys::HEAP_XMIN_INVALID, "xmin_invalid"),
                (m & pg_sys::HEAP_XMAX_COMMITTED, "xmax_committed"),
                (m & pg_sys::HEAP_XMAX_INVALID, "xmax_invalid"),
                (m & pg_sys::HEAP_XMAX_IS_MULTI, "xmax_multi"),
                (m & pg_sys::HEAP_XMAX_LOCK_ONLY, "lock_only"),
            ] {
                if bit != 0 {
                    flags.push(name);
                }
            }
            let next = crate::pg::htup::ctid(h);
            out.push((
                at,
                crate::pg::htup::xmin(h).into_inner() as i64,
                crate::pg::htup::raw_xmax(h).into_inner() as i64,
                flags.join(" "),
            ));
            let follow = m2 & (super::super::chain::REDIRECT | pg_sys::HEAP_HOT_UPDATED) != 0;
            w.unlock();
            if !follow || crate::pg::htup::tid_eq(&next, &at) {
                break;
            }
            at = next;
        }
        w.release();
        TableIterator::new(out)
    }

    /// Every problem found in an lsm table's pages (none: zero rows).
    #[pg_extern(strict)]
    fn lsm_verify(
        relation: PgRelation,
    ) -> TableIterator<'static, (name!(block, i64), name!(item, i32), name!(problem, String))> {
        let r = open_lsm(&relation);
        if !crate::pg::xact::in_recovery() {
            // Writers wait, so cross-page checks see a stable table. A hot
            // standby cannot take SHARE; its pages change only by replay.
            rel::lock(r, pg_sys::ShareLock);
        }
        let mut problems = Vec::new();
        let (pages, frozen) = summarize(r, &mut problems);
        page_check::check_manifest(&pages, frozen, &mut problems);
        TableIterator::new(
            problems
                .into_iter()
                .map(|p| (p.block as i64, p.offset as i32, p.message)),
        )
    }
}

// Anyone may call the inspection functions; each checks SELECT privilege on
// the table it is given.
pgrx::extension_sql!(
    "GRANT USAGE ON SCHEMA strata TO PUBLIC;",
    name = "strata_schema_usage",
    requires = [
        strata::lsm_info,
        strata::lsm_verify,
        strata::lsm_flush,
        strata::lsm_levels,
        strata::lsm_stats,
        strata::lsm_chain
    ]
);

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::pg::{buffer, page};
    use pgrx::prelude::*;
    use pgrx::PgRelation;

    /// Overwrites the tag magic of block 1 of table `c` in its buffer (not
    /// WAL-logged: the damage only has to be seen by this backend).
    fn smash_block_1_magic() {
        Spi::run("CREATE TABLE c (a int) USING lsm").unwrap();
        Spi::run("INSERT INTO c SELECT generate_series(1, 100)").unwrap();
        let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'c'::regclass::oid")
            .unwrap()
            .unwrap();
        // SAFETY: `oid` names the table just created in this transaction.
        let rel = unsafe { PgRelation::with_lock(oid, pg_sys::AccessExclusiveLock as _) };
        // SAFETY: open (and locked) until the test ends.
        let rel = unsafe { crate::pg::relation::Rel::from_raw(rel.as_ptr()) };
        let buf = buffer::Locked::exclusive(rel, 1);
        let special = page::special(buf.page());
        // SAFETY: the special space holds the 16-byte tag; the buffer is
        // pinned and exclusively locked.
        unsafe { (special as *mut u32).write_unaligned(0xDEAD_BEEF) };
        buffer::mark_dirty_unlogged(buf.buffer());
    }

    #[pg_test]
    fn verify_reports_a_damaged_page() {
        smash_block_1_magic();
        let found =
            Spi::get_two::<i64, String>("SELECT block, problem FROM strata.lsm_verify('c')")
                .unwrap();
        assert_eq!(
            found,
            (
                Some(1),
                Some("bad page tag: bad page magic 0xdeadbeef".into())
            )
        );
    }

    #[pg_test(error = "invalid page in block 1 of relation \"c\": bad page magic 0xdeadbeef")]
    fn scan_of_a_damaged_page_raises_xx001() {
        smash_block_1_magic();
        Spi::get_one::<i64>("SELECT count(*) FROM c").unwrap();
    }
}
