-- lsm compaction: the leveled policy merges runs, VACUUM rewrites runs full
-- of dead versions (and removes their index entries), freezes old xids so
-- relfrozenxid advances, and counts its work in strata.lsm_stats.
\set VERBOSITY terse
CREATE EXTENSION amcheck;
LOAD 'strata';

-- the policy's settings and their limits
SHOW strata.lsm_size_ratio;
SHOW strata.lsm_level1_runs;
SHOW strata.lsm_level_base;
SHOW strata.lsm_gc_ratio;
SET strata.lsm_size_ratio = 1;
SET strata.lsm_level1_runs = 0;
SET strata.lsm_gc_ratio = -0.5;
SET strata.lsm_size_ratio = 4;
SET strata.lsm_level1_runs = 3;
SET strata.lsm_level_base = '1MB';
SET strata.lsm_gc_ratio = 0.3;
-- page counts below are of uncompressed run pages (lsm_compression covers
-- compressed ones)
SET strata.lsm_compression_level = 0;

CREATE TABLE c (id int PRIMARY KEY, v int, pad text) USING lsm;
CREATE INDEX c_v ON c (v);
-- each VACUUM flushes L0 into a new level-1 run
INSERT INTO c SELECT g, g, repeat('p', 40) FROM generate_series(1, 2000) g;
VACUUM (VERBOSE, PROCESS_TOAST false) c;
INSERT INTO c SELECT g, g, repeat('p', 40) FROM generate_series(2001, 4000) g;
VACUUM (VERBOSE, PROCESS_TOAST false) c;
SELECT * FROM strata.lsm_levels('c');
-- the third level-1 run triggers their merge into level 2
INSERT INTO c SELECT g, g, repeat('p', 40) FROM generate_series(4001, 6000) g;
VACUUM (VERBOSE, PROCESS_TOAST false) c;
SELECT * FROM strata.lsm_levels('c');
SELECT count(*), sum(v) FROM c;
-- the pages the flush and the merge freed were given back: the file holds
-- the metapage and the run (data, leaf and root pages), nothing free
SELECT component, pages FROM strata.lsm_info('c') WHERE pages > 0 ORDER BY 1;
SELECT pg_relation_size('c') / current_setting('block_size')::int AS blocks;

-- 40% of the level-2 run's rows are updated: after the flush, the run is
-- rewritten without its dead versions, and their index entries go too
UPDATE c SET v = -v WHERE id % 5 < 2;
VACUUM (VERBOSE, PROCESS_TOAST false) c;
SELECT level, runs, row_versions FROM strata.lsm_levels('c');
SELECT count(*), sum(v), sum(length(pad)) FROM c;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM c WHERE v < 0;
SELECT count(*), sum(v) FROM c WHERE v < 0;
SELECT count(*), sum(v) FROM c WHERE id BETWEEN 100 AND 5000;
SELECT v FROM c WHERE id = 4242;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT bt_index_check('c_pkey', true), bt_index_check('c_v', true);
SELECT * FROM strata.lsm_verify('c');

-- two more flushes: level 1 is full again; merged into level 2, which
-- outgrows lsm_level_base (1MB) and is merged into level 3
INSERT INTO c SELECT g, g, repeat('q', 200) FROM generate_series(6001, 10000) g;
VACUUM (VERBOSE, PROCESS_TOAST false) c;
SELECT level, runs, row_versions FROM strata.lsm_levels('c');
INSERT INTO c SELECT g, g, 'r' FROM generate_series(10001, 10100) g;
VACUUM (VERBOSE, PROCESS_TOAST false) c;
SELECT level, runs, row_versions FROM strata.lsm_levels('c');
SELECT count(*), sum(v), sum(length(pad)) FROM c;
SELECT flushes, merges, write_amplification > 1 AS amplified, dropped_versions
FROM strata.lsm_stats('c');
-- lsm_info's total row carries the same write amplification
SELECT i.write_amplification = s.write_amplification AS same_amplification
FROM strata.lsm_info('c') i, strata.lsm_stats('c') s WHERE i.component = 'total';
SELECT * FROM strata.lsm_verify('c');

-- deleting everything: the runs are rewritten into nothing
DELETE FROM c;
VACUUM (VERBOSE, PROCESS_TOAST false) c;
SELECT * FROM strata.lsm_levels('c');
SELECT count(*) FROM c;
SELECT bt_index_check('c_pkey', true);
INSERT INTO c VALUES (1, 1, 'again');
SELECT * FROM c;
DROP TABLE c;

-- Freezing. burn(n) consumes n transaction ids.
CREATE PROCEDURE burn(n int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..n LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP;
END $$;
CREATE TABLE f (id int, t text) USING lsm;
CREATE TABLE fh (id int, t text) USING heap;
INSERT INTO f SELECT g, 'row ' || g FROM generate_series(1, 3000) g;
INSERT INTO fh SELECT g, 'row ' || g FROM generate_series(1, 3000) g;
CALL burn(100);
-- a plain VACUUM leaves young xids alone (vacuum_freeze_min_age); like heap,
-- relfrozenxid still moves up to the oldest xid left in the table
VACUUM f;
VACUUM fh;
SELECT relname, age(relfrozenxid) BETWEEN 100 AND 110 AS old_rows_left
FROM pg_class WHERE relname IN ('f', 'fh') ORDER BY 1;
SELECT frozen_versions FROM strata.lsm_stats('f');
-- VACUUM (FREEZE) freezes everything: age(relfrozenxid) drops like heap's
UPDATE f SET t = t || '!' WHERE id <= 10;
VACUUM (FREEZE) f;
VACUUM (FREEZE) fh;
SELECT relname, age(relfrozenxid) <= 2 AS frozen FROM pg_class WHERE relname IN ('f', 'fh') ORDER BY 1;
SELECT frozen_versions FROM strata.lsm_stats('f');
SELECT count(*), sum(id), count(*) FILTER (WHERE t LIKE '%!') FROM f;
SELECT * FROM strata.lsm_verify('f');
-- vacuum_freeze_min_age is honoured: only xids older than it are frozen
INSERT INTO f SELECT g, 'new ' || g FROM generate_series(3001, 3500) g;
CALL burn(30);
INSERT INTO f SELECT g, 'newer ' || g FROM generate_series(3501, 3600) g;
CALL burn(5);
SET vacuum_freeze_min_age = 20;
VACUUM f;
RESET vacuum_freeze_min_age;
-- the 500 'new' rows were frozen, the 100 'newer' ones were not
SELECT frozen_versions FROM strata.lsm_stats('f');
SELECT age(relfrozenxid) BETWEEN 5 AND 8 AS newer_rows_left FROM pg_class WHERE relname = 'f';
SELECT count(*) FROM f;
SELECT * FROM strata.lsm_verify('f');
DROP TABLE f, fh;
DROP PROCEDURE burn(int);
DROP EXTENSION amcheck;
