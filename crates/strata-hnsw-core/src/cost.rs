//! The scan cost model's arithmetic, pgvector 0.8.6's formula so that the
//! planner makes the same choices for the same queries. Pure.
//!
//! The index path is costed by `genericcostestimate` as a scan of every
//! index tuple (no index quals, selectivity 1). Only the first part of that
//! is spent before the first row comes out: a search visits about
//!
//! ```text
//!  entry_level · m  +  2m · ef_search · 0.55 · ln N / (ln m · (1 + ln ef_search))
//! ```
//!
//! tuples, so the startup cost is that fraction of the total. The rest is
//! run cost, of which a `LIMIT k` pays `k / rows`: when other quals (a
//! `WHERE` filter) make the path's row estimate small, the LIMIT pays most
//! of it and a sequential scan, or a btree on the filter, wins — as with
//! pgvector. The page costs of a startup that would read more pages than the
//! table has are charged as sequential reads of the table's size (pgvector's
//! "TOAST not included in seq scan cost" correction).

/// Fraction of the index a search reads before its first row, in (0, 1].
pub fn startup_ratio(tuples: f64, m: usize, ef_search: usize) -> f64 {
    if tuples <= 0.0 {
        return 1.0;
    }
    let m = m.max(2) as f64;
    let ef = ef_search.max(1) as f64;
    let ml = 1.0 / m.ln();
    let entry_level = (tuples.ln() * ml).trunc().max(0.0);
    let layer0_max = 2.0 * m * ef;
    let layer0_selectivity = 0.55 * tuples.ln() / (m.ln() * (1.0 + ef.ln()));
    ((entry_level * m + layer0_max * layer0_selectivity) / tuples).min(1.0)
}

/// The startup cost from `genericcostestimate`'s total: `ratio` of it, with
/// pages beyond the table's own count charged as sequential reads of the
/// table (when the ratio is below one half).
pub fn startup_cost(
    total: f64,
    ratio: f64,
    index_pages: f64,
    table_pages: f64,
    random_page_cost: f64,
    seq_page_cost: f64,
) -> f64 {
    let mut startup = total * ratio;
    let startup_pages = index_pages * ratio;
    if startup_pages > table_pages && ratio < 0.5 {
        startup -= startup_pages * (random_page_cost - seq_page_cost);
        startup -= (startup_pages - table_pages) * seq_page_cost;
    }
    startup
}

/// The factor by which an index with level-0 neighbor codes is costed: as
/// the same index without them (`plain` bytes per element: its element and
/// level-0 neighbor items; `codes`: the codes' bytes). Codes make pages
/// hold fewer elements, which `genericcostestimate` sees as a larger index
/// to read, while a guided scan reads fewer elements than an exact one
/// (1.8–4.7× fewer measured, docs/hnsw-profile.md) and so fewer pages.
pub fn codes_discount(plain: usize, codes: usize) -> f64 {
    plain as f64 / (plain + codes) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_follows_pgvector() {
        // pgvector 0.8.6 with m 16, ef_search 40 on 10k tuples:
        // entryLevel = (int)(ln 10000 / ln 16) = 3; layer0 = 32 · 40 = 1280;
        // selectivity = 0.55 · 9.2103 / (2.7726 · 4.6889) = 0.38966
        let r = startup_ratio(10_000.0, 16, 40);
        let want = (3.0 * 16.0
            + 1280.0 * (0.55 * 10_000f64.ln() / (16f64.ln() * (1.0 + 40f64.ln()))))
            / 10_000.0;
        assert!((r - want).abs() < 1e-12, "{r} vs {want}");
        assert!((r - 0.0547).abs() < 1e-3, "{r}");
        // small tables are read whole before the first row
        assert_eq!(startup_ratio(100.0, 16, 40), 1.0);
        assert_eq!(startup_ratio(0.0, 16, 40), 1.0);
        // a wider search reads more
        assert!(startup_ratio(1e6, 16, 200) > startup_ratio(1e6, 16, 40));
    }

    #[test]
    fn coded_indexes_cost_as_without_codes() {
        assert_eq!(codes_discount(800, 0), 1.0);
        assert_eq!(codes_discount(800, 800), 0.5);
    }

    #[test]
    fn startup_pages_beyond_the_table_cost_like_reading_it() {
        // 1000 index pages, ratio 0.1: 100 startup pages against a 40-page table
        let s = startup_cost(5000.0, 0.1, 1000.0, 40.0, 4.0, 1.0);
        assert_eq!(s, 500.0 - 100.0 * 3.0 - 60.0 * 1.0);
        // no correction when the startup reads fewer pages than the table has
        assert_eq!(startup_cost(5000.0, 0.1, 1000.0, 400.0, 4.0, 1.0), 500.0);
        assert_eq!(startup_cost(5000.0, 0.6, 1000.0, 40.0, 4.0, 1.0), 3000.0);
    }
}
