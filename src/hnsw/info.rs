//! `strata.hnsw_info(regclass)`: one row per graph layer.

use crate::pg::relation::Rel;
use super::pages;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgRelation;

fn open_hnsw(relation: &PgRelation) -> Rel {
    // SAFETY: the caller's PgRelation keeps the index open while it is used.
    let rel = unsafe { Rel::from_raw(relation.as_ptr()) };
    let r = rel.raw();
    // SAFETY: an open relation; rd_indam is set for indexes only.
    let ours = unsafe {
        (*(*r).rd_rel).relkind == pg_sys::RELKIND_INDEX as std::ffi::c_char
            && !(*r).rd_indam.is_null()
            && (*(*r).rd_indam).ambuild.is_some()
            && (*(*r).rd_indam).amcanorderbyop
            && (*(*r).rd_indam).amsupport == 1
            && (*(*r).rd_indam).amstrategies == 0
    };
    if !ours {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{}\" is not a strata_hnsw index", relation.name())
        );
    }
    rel
}

#[pgrx::pg_schema]
mod strata {
    use super::*;

    /// The graph of a strata_hnsw index: per layer, its elements (deleted
    /// ones counted apart), with the index's pages, the entry point and the
    /// build parameters repeated on every row.
    #[pg_extern(strict)]
    #[allow(clippy::type_complexity)]
    fn hnsw_info(
        index: PgRelation,
    ) -> TableIterator<
        'static,
        (
            name!(layer, i32),
            name!(elements, i64),
            name!(deleted, i64),
            name!(pages, i64),
            name!(entry_point, String),
            name!(m, i32),
            name!(ef_construction, i32),
            name!(dims, i32),
            name!(format_version, i32),
            name!(code_bits, i32),
            name!(code_scale, i32),
        ),
    > {
        let r = open_hnsw(&index);
        crate::pg::rel::require_select_on_index(r);
        let meta = pages::read_meta(r);
        let mut per_layer: Vec<(i64, i64)> = vec![(0, 0); meta.entry_level.max(0) as usize + 1];
        pages::for_each_element(r, &pages::Params::of(r, &meta), |_, e, _| {
            if e.is_free() {
                return;
            }
            for l in 0..=e.level as usize {
                if per_layer.len() <= l {
                    per_layer.resize(l + 1, (0, 0));
                }
                if e.deleted() {
                    per_layer[l].1 += 1;
                } else {
                    per_layer[l].0 += 1;
                }
            }
        });
        let npages = crate::pg::buffer::nblocks(r) as i64;
        let entry = if meta.entry_level < 0 {
            "none".to_string()
        } else {
            format!(
                "({},{}) at layer {}",
                meta.entry.block, meta.entry.offset, meta.entry_level
            )
        };
        TableIterator::new(per_layer.into_iter().enumerate().map(move |(l, (n, d))| {
            (
                l as i32,
                n,
                d,
                npages,
                entry.clone(),
                meta.m as i32,
                meta.ef_construction as i32,
                meta.dims as i32,
                meta.version as i32,
                meta.code_bits as i32,
                meta.code_scale as i32,
            )
        }))
    }
}
