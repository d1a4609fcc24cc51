//! `strata.lsm_info(regclass)` and `strata.lsm_verify(regclass)`: what an
//! `lsm` table holds per component, and every structural problem
//! [`page_check`] finds. Both read each page once through the buffer manager
//! (a private copy per page); the checks themselves are pure.
//!
//! `lsm_verify` takes a SHARE lock (like CREATE INDEX), so writers wait and
//! cross-page links are checked against a stable table; `lsm_info` only
//! needs ACCESS SHARE and may see a table that is changing under it.

use super::format::PageKind;
use super::handler;
use super::page_check::{self, Context, Summary};
use crate::pg::{page, rel};
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgRelation;

fn open_lsm(relation: &PgRelation) -> pg_sys::Relation {
    let r = relation.as_ptr();
    if !handler::is_lsm(r) {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{}\" is not an lsm table", relation.name()),
            "strata.lsm_info and strata.lsm_verify accept tables created USING lsm."
        );
    }
    rel::require_select(r);
    r
}

fn summarize(r: pg_sys::Relation, problems: &mut Vec<page_check::Problem>) -> Vec<Summary> {
    let ctx = Context {
        block_size: page::BLCKSZ,
        natts: rel::natts(r),
        next_xid: rel::next_xid().into_inner(),
        frozen_xid: rel::frozen_xid(r).into_inner(),
    };
    let mut pages = Vec::new();
    rel::for_each_page_copy(r, |blkno, bytes| {
        pages.push(page_check::check_page(blkno, bytes, &ctx, problems));
    });
    pages
}

#[pgrx::pg_schema]
mod strata {
    use super::*;

    /// One row per storage component of an lsm table: the metapage, L0, and
    /// (once flushed) each run, with its level, pages, row versions and bytes.
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
        ),
    > {
        let r = open_lsm(&relation);
        let mut ignored = Vec::new();
        let pages = summarize(r, &mut ignored);
        let mut meta = (0i64, 0i64);
        let mut l0 = (0i64, 0i64, 0i64, 0i64);
        let mut unused = 0i64;
        for s in &pages {
            match s.kind {
                Some(PageKind::Meta) => meta = (1, s.free_bytes as i64),
                Some(PageKind::L0) => {
                    l0.0 += 1;
                    l0.1 += s.versions as i64;
                    l0.2 += s.tuple_bytes as i64;
                    l0.3 += s.free_bytes as i64;
                }
                _ => unused += 1,
            }
        }
        let mut rows = vec![("metapage".to_string(), -1, meta.0, 0, 0, meta.1)];
        rows.push(("L0".to_string(), 0, l0.0, l0.1, l0.2, l0.3));
        if unused > 0 {
            rows.push(("unused".to_string(), -1, unused, 0, 0, unused * page::BLCKSZ as i64));
        }
        TableIterator::new(rows)
    }

    /// Every problem found in an lsm table's pages (none: zero rows).
    #[pg_extern(strict)]
    fn lsm_verify(
        relation: PgRelation,
    ) -> TableIterator<'static, (name!(block, i64), name!(item, i32), name!(problem, String))> {
        let r = open_lsm(&relation);
        rel::lock(r, pg_sys::ShareLock);
        let mut problems = Vec::new();
        let pages = summarize(r, &mut problems);
        if pages.first().is_some_and(|s| s.kind != Some(PageKind::Meta)) {
            problems.push(page_check::Problem {
                block: 0,
                offset: 0,
                message: "block 0 is not a metapage".into(),
            });
        }
        page_check::check_links(&pages, &mut problems);
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
    requires = [strata::lsm_info, strata::lsm_verify]
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
        let oid = Spi::get_one::<pg_sys::Oid>("SELECT 'c'::regclass::oid").unwrap().unwrap();
        // SAFETY: `oid` names the table just created in this transaction.
        let rel = unsafe { PgRelation::with_lock(oid, pg_sys::AccessExclusiveLock as _) };
        let buf = buffer::read(rel.as_ptr(), 1);
        buffer::lock_exclusive(buf);
        let special = page::special(buffer::page(buf));
        // SAFETY: the special space holds the 16-byte tag; the buffer is
        // pinned and exclusively locked.
        unsafe {
            (special as *mut u32).write_unaligned(0xDEAD_BEEF);
            pg_sys::MarkBufferDirty(buf);
        }
        buffer::unlock_release(buf);
    }

    #[pg_test]
    fn verify_reports_a_damaged_page() {
        smash_block_1_magic();
        let found = Spi::get_two::<i64, String>("SELECT block, problem FROM strata.lsm_verify('c')")
            .unwrap();
        assert_eq!(found, (Some(1), Some("bad page tag: bad page magic 0xdeadbeef".into())));
    }

    #[pg_test(error = "invalid page in block 1 of relation \"c\": bad page magic 0xdeadbeef")]
    fn scan_of_a_damaged_page_raises_xx001() {
        smash_block_1_magic();
        Spi::get_one::<i64>("SELECT count(*) FROM c").unwrap();
    }
}
