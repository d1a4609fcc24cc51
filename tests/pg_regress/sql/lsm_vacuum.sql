-- VACUUM on lsm tables: L0 is flushed into a run, dead versions are dropped
-- and their index entries removed, relpages is updated.
\set VERBOSITY terse
CREATE EXTENSION pageinspect;
CREATE EXTENSION amcheck;
-- index tuples on the leaf pages of a btree (high keys not counted)
CREATE FUNCTION leaf_tuples(idx regclass) RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(live_items - CASE WHEN btpo_next <> 0 THEN 1 ELSE 0 END), 0)
  FROM generate_series(1, (pg_relation_size(idx) / current_setting('block_size')::int)::int - 1) b,
       bt_page_stats(idx::text, b) WHERE type = 'l' $$;

CREATE TABLE v (id int PRIMARY KEY, k int) USING lsm;
CREATE INDEX v_k ON v (k);
INSERT INTO v SELECT g, g FROM generate_series(1, 20000) g;
DELETE FROM v WHERE id % 2 = 0;
UPDATE v SET k = k + 1 WHERE id % 5 = 1;
-- 20000 inserted versions + 2000 updated ones, each indexed
SELECT leaf_tuples('v_pkey') AS pkey, leaf_tuples('v_k') AS k;
VACUUM (VERBOSE) v;
-- 10000 deleted and 2000 superseded versions are gone, with their index entries
SELECT leaf_tuples('v_pkey') AS pkey, leaf_tuples('v_k') AS k;
SELECT component, row_versions FROM strata.lsm_info('v') WHERE row_versions > 0;
SELECT bt_index_check('v_pkey', true), bt_index_check('v_k', true);
SELECT relpages = pg_relation_size('v') / current_setting('block_size')::int AS relpages_set
FROM pg_class WHERE relname = 'v';
-- plain VACUUM counts the live rows into reltuples, like heap's
SELECT reltuples FROM pg_class WHERE relname = 'v';
SELECT count(*), sum(k) FROM v;
SET enable_seqscan = off;
SELECT count(*), sum(k) FROM v WHERE k > 0;
RESET enable_seqscan;

-- a second round: changes to rows in the run, new rows, VACUUM again
UPDATE v SET k = -k WHERE id < 1000;
INSERT INTO v SELECT g, g FROM generate_series(30001, 31000) g;
DELETE FROM v WHERE id > 30500;
VACUUM (VERBOSE) v;
SELECT component, row_versions FROM strata.lsm_info('v') WHERE row_versions > 0 ORDER BY 1;
SELECT leaf_tuples('v_pkey') AS pkey, leaf_tuples('v_k') AS k;
SELECT count(*), sum(k) FROM v;
SELECT * FROM strata.lsm_verify('v');
-- nothing to flush: VACUUM still runs index cleanup and keeps everything
VACUUM v;
SELECT count(*) FROM v;

-- The planner costs a scan by the pages it reads (L0 and run data pages),
-- not by the metapage, directory, fence and filter pages: after VACUUM a
-- five-row table is estimated like heap's, one page and five rows.
CREATE TABLE v_small (f1 int4) USING lsm;
CREATE TABLE v_small_heap (f1 int4) USING heap;
INSERT INTO v_small VALUES (0), (123456), (-123456), (2147483647), (-2147483647);
INSERT INTO v_small_heap SELECT * FROM v_small;
VACUUM v_small;
VACUUM v_small_heap;
SELECT relname, reltuples, relpages > 1 AS lsm_file_larger
FROM pg_class WHERE relname IN ('v_small', 'v_small_heap') ORDER BY 1;
EXPLAIN SELECT * FROM v_small;
EXPLAIN SELECT * FROM v_small_heap;
-- before any VACUUM or ANALYZE, at least 10 pages are assumed, as for heap
CREATE TABLE v_new (f1 int4) USING lsm;
INSERT INTO v_new VALUES (1);
EXPLAIN SELECT * FROM v_new;
DROP TABLE v_small, v_small_heap, v_new;

-- VACUUM of a whole database includes lsm tables; empty ones are fine
CREATE TABLE v_empty (a int) USING lsm;
VACUUM v_empty;
VACUUM (ANALYZE) v;
SELECT reltuples FROM pg_class WHERE relname = 'v';

-- VACUUM reports to the cumulative statistics like heap: dead rows (what
-- autovacuum triggers on) go back to zero and the vacuum is counted
UPDATE v SET k = k + 1 WHERE id <= 2000;
SELECT pg_stat_force_next_flush();
SELECT n_dead_tup >= 2000 AS dead_counted FROM pg_stat_user_tables WHERE relname = 'v';
VACUUM v;
SELECT pg_stat_force_next_flush();
SELECT pg_stat_clear_snapshot();
SELECT n_dead_tup, n_live_tup, vacuum_count > 0 AS vacuumed, last_vacuum IS NOT NULL AS has_last
FROM pg_stat_user_tables WHERE relname = 'v';
-- VACUUM (TRUNCATE false) and the vacuum_truncate reloption keep the file
-- as it is, as on heap (no ACCESS EXCLUSIVE, which a standby would replay);
-- by default VACUUM gives the freed pages back
CREATE TABLE vt (id int PRIMARY KEY, pad text) USING lsm WITH (autovacuum_enabled = off);
INSERT INTO vt SELECT g, repeat('x', 100) FROM generate_series(1, 20000) g;
VACUUM vt;
SELECT pg_relation_size('vt') AS loaded \gset
DELETE FROM vt WHERE id > 2000;
VACUUM (TRUNCATE false) vt;
SELECT pg_relation_size('vt') >= :loaded AS kept;
ALTER TABLE vt SET (vacuum_truncate = false);
VACUUM vt;
SELECT pg_relation_size('vt') >= :loaded AS kept_by_reloption;
ALTER TABLE vt RESET (vacuum_truncate);
VACUUM vt;
SELECT pg_relation_size('vt') < :loaded / 4 AS truncated;
SELECT count(*), sum(id) FROM vt;
SELECT count(*) AS problems FROM strata.lsm_verify('vt');
DROP TABLE vt;
-- PARALLEL on a temporary table with two indexes: heap's warning
CREATE TEMP TABLE vtemp (a int PRIMARY KEY, b int) USING lsm;
CREATE INDEX ON vtemp (b);
INSERT INTO vtemp SELECT g, g FROM generate_series(1, 100) g;
VACUUM (PARALLEL 1) vtemp;
VACUUM (PARALLEL 1, INDEX_CLEANUP off) vtemp;
VACUUM (PARALLEL 0) vtemp;
SELECT count(*) FROM vtemp WHERE b > 50;
DROP TABLE vtemp;
DROP TABLE v, v_empty;
DROP FUNCTION leaf_tuples(regclass);
DROP EXTENSION amcheck;
DROP EXTENSION pageinspect;
