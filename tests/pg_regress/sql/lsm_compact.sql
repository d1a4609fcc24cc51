-- lsm compaction: the tiered policy merges runs of one level into one run of
-- the next, VACUUM rewrites runs full of dead versions (and removes their
-- index entries), freezes old xids so
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
-- the pages the flushes and the merge freed stay for the next writes (moving
-- pages costs a page image of WAL each): a table being written to is packed
-- only when more than two thirds of its file are free
SELECT component, pages FROM strata.lsm_info('c') WHERE pages > 0 ORDER BY 1;
-- a VACUUM with nothing to flush or merge packs from one third on: the file
-- holds the metapage and the run (data, leaf and root pages), nothing free
VACUUM (VERBOSE, PROCESS_TOAST false) c;
SELECT component, pages FROM strata.lsm_info('c') WHERE pages > 0 ORDER BY 1;
SELECT pg_relation_size('c') / current_setting('block_size')::int AS blocks;
SELECT count(*), sum(v) FROM c;

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

-- two more flushes: level 1 is full again, and its runs alone become one
-- level-2 run (the older level-2 run is not rewritten for them); level 2 then
-- outgrows lsm_level_base (1MB), and its two runs become one of level 3
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

-- Index-stable updates turn each updated row's first version into a redirect
-- (VACUUM's sweep), whose body stays in its run: garbage like a dead version.
-- Young runs never make the old run be rewritten; its garbage does, once it
-- is half of its versions (lsm_gc_ratio), and the rewrite keeps the
-- redirects as bare headers that no later VACUUM counts again.
RESET strata.lsm_gc_ratio;
RESET strata.lsm_compression_level;
SET strata.lsm_level1_runs = 8;
CREATE TABLE hr (id int PRIMARY KEY, x int, pad text) USING lsm;
INSERT INTO hr SELECT g, 0, md5(g::text) FROM generate_series(1, 2000) g;
VACUUM (VERBOSE, PROCESS_TOAST false) hr;
UPDATE hr SET x = 1 WHERE id % 10 < 3;
VACUUM (VERBOSE, PROCESS_TOAST false) hr;
-- now 1000 of the first run's 2000 versions are redirects holding a body:
-- that run alone is rewritten
UPDATE hr SET x = 2 WHERE id % 10 BETWEEN 3 AND 4;
VACUUM (VERBOSE, PROCESS_TOAST false) hr;
SELECT level, runs, row_versions FROM strata.lsm_levels('hr') WHERE runs > 0;
-- only the redirects made since are counted; an idle table's VACUUM packs it
UPDATE hr SET x = 3 WHERE id % 10 = 5;
VACUUM (VERBOSE, PROCESS_TOAST false) hr;
VACUUM (VERBOSE, PROCESS_TOAST false) hr;
SELECT redirects FROM strata.lsm_stats('hr');
SELECT x, count(*) FROM hr GROUP BY x ORDER BY x;
SET enable_seqscan = off;
SELECT id, x FROM hr WHERE id IN (1, 3, 4, 5, 6, 10) ORDER BY id;
RESET enable_seqscan;
SELECT count(*) AS problems FROM strata.lsm_verify('hr');
DROP TABLE hr;
RESET strata.lsm_level1_runs;

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
