-- Flushing L0 into sorted runs: every access path keeps working on rows that
-- live in runs, dead versions are dropped, freed pages are reused, and
-- strata.lsm_verify finds nothing at every step.
\set VERBOSITY sqlstate
CREATE TABLE f (id int PRIMARY KEY, grp int, v text) USING lsm;
CREATE INDEX f_grp ON f (grp);
INSERT INTO f SELECT g, g % 10, 'v' || g FROM generate_series(1, 10000) g;
UPDATE f SET v = v || '!' WHERE id % 3 = 0;
DELETE FROM f WHERE id % 5 = 0;
INSERT INTO f VALUES (20001, 1, repeat('toast ', 200000));
CREATE VIEW f_state AS
  SELECT count(*) AS n, sum(id) AS ids, count(*) FILTER (WHERE v LIKE '%!') AS bang,
         sum(length(v)) AS len FROM f;
SELECT * FROM f_state;
-- 13334 versions: 10001 inserted, 3333 updated (2000 of them deleted later)
SELECT component, pages > 0 AS has_pages, row_versions FROM strata.lsm_info('f')
WHERE component IN ('L0', 'run 1');

-- the flush, from a session with an open cursor on the table: superseded
-- and deleted versions are dead to every snapshot here (v is in no index, so
-- the updates were index-stable: the 2667 superseded versions of rows still
-- alive stay as redirects for the indexes, see docs/lsm-format.md); the cursor goes on
-- reading the old L0 pages (kept until no snapshot that old can exist). A
-- flush changes pages, not rows: rolling the transaction back keeps it.
BEGIN;
DECLARE c CURSOR FOR SELECT * FROM f;
FETCH 1 FROM c;
SELECT * FROM strata.lsm_flush('f');
FETCH 2 FROM c;
SELECT count(*) FROM f;
ROLLBACK;
SELECT component, level, row_versions FROM strata.lsm_info('f') WHERE row_versions > 0 OR component = 'L0';
SELECT * FROM strata.lsm_verify('f');
SELECT * FROM f_state;
-- nothing left to flush
SELECT * FROM strata.lsm_flush('f');

-- every access path on rows in a run
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT v FROM f WHERE id = 9;
SELECT v FROM f WHERE id = 9;
SELECT count(*), sum(id) FROM f WHERE id BETWEEN 100 AND 2000;
RESET enable_bitmapscan;
SET enable_indexscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM f WHERE grp = 3;
SELECT count(*) FROM f WHERE grp = 3;
RESET enable_indexscan;
RESET enable_seqscan;
SELECT ctid AS run_tid FROM f WHERE id = 1 \gset
EXPLAIN (COSTS OFF) SELECT id FROM f WHERE ctid = :'run_tid';
SELECT id FROM f WHERE ctid = :'run_tid';
SELECT count(*) FROM f WHERE ctid BETWEEN '(1,1)' AND '(3,256)';
SELECT count(*) FROM f TABLESAMPLE SYSTEM (100);
SELECT count(*) FROM f TABLESAMPLE BERNOULLI (100) REPEATABLE (1);
ANALYZE f;
SELECT reltuples FROM pg_class WHERE relname = 'f';
SELECT length(v) FROM f WHERE id = 20001;

-- DML on rows in the run: xmax stamps in place, new versions in L0
UPDATE f SET v = 'updated in run' WHERE id = 7 RETURNING id, v;
DELETE FROM f WHERE id = 8 RETURNING id;
INSERT INTO f VALUES (9, 0, 'conflict') ON CONFLICT (id) DO UPDATE SET v = f.v || '+upsert' RETURNING v;
MERGE INTO f USING (VALUES (11), (20002)) s(id) ON f.id = s.id
  WHEN MATCHED THEN UPDATE SET v = 'merged'
  WHEN NOT MATCHED THEN INSERT VALUES (s.id, 2, 'merged new');
BEGIN;
SELECT id FROM f WHERE id = 13 FOR UPDATE;
UPDATE f SET grp = 99 WHERE id = 13;
COMMIT;
UPDATE f SET v = v || '.' WHERE id = 20001;
SELECT id, grp, left(v, 20) AS v FROM f WHERE id IN (7, 8, 9, 11, 13, 20002) ORDER BY id;
SELECT * FROM strata.lsm_verify('f');

-- a backward cursor crosses from L0 into the run
BEGIN;
DECLARE back SCROLL CURSOR FOR SELECT id FROM f WHERE id IN (1, 2, 3, 20002);
FETCH ALL FROM back;
FETCH BACKWARD ALL FROM back;
COMMIT;

-- parallel seq scan over run and L0 pages
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT count(*) FROM f WHERE v <> '';
SELECT count(*) FROM f WHERE v <> '';
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- a second flush adds run 2; the updated versions of run 1's rows move along
SELECT versions_moved, versions_dropped, runs_written FROM strata.lsm_flush('f');
SELECT component FROM strata.lsm_info('f') WHERE component LIKE 'run%' ORDER BY 1;
SELECT * FROM f_state;
SELECT * FROM strata.lsm_verify('f');

-- this transaction's own uncommitted rows flush too; after ROLLBACK they are
-- invisible, and the next flush drops them
BEGIN;
INSERT INTO f SELECT g, 5, 'rolled back' FROM generate_series(30001, 30500) g;
SELECT versions_moved, versions_dropped FROM strata.lsm_flush('f');
SELECT count(*) FROM f WHERE id > 30000;
ROLLBACK;
SELECT count(*) FROM f WHERE id > 30000;
INSERT INTO f VALUES (40001, 1, 'after rollback');
SELECT versions_moved, versions_dropped FROM strata.lsm_flush('f');
SELECT * FROM strata.lsm_verify('f');

-- dead L0 versions are dropped; freed pages are reused, so the file does not grow
-- (rows already in runs keep their deleted versions until compaction, issue #7)
SELECT pg_relation_size('f') AS size_before \gset
INSERT INTO f SELECT g, g % 10, 'churn ' || g FROM generate_series(50001, 53000) g;
DELETE FROM f WHERE id BETWEEN 50001 AND 52000;
UPDATE f SET v = v || '!' WHERE id > 52500 AND id <= 53000;
SELECT l0_pages, versions_moved, versions_dropped FROM strata.lsm_flush('f');
SELECT pg_relation_size('f') = :size_before AS no_growth;
SELECT * FROM strata.lsm_verify('f');

-- more flushes than the runs list holds: the newest run absorbs the overflow
DO $$
BEGIN
  FOR i IN 1..35 LOOP
    INSERT INTO f VALUES (60000 + i, i, 'flush ' || i);
    PERFORM strata.lsm_flush('f');
  END LOOP;
END $$;
SELECT count(*) AS runs FROM strata.lsm_info('f') WHERE component LIKE 'run%';
SELECT count(*), min(id), max(id) FROM f WHERE id > 60000;
SELECT * FROM f_state;
SELECT * FROM strata.lsm_verify('f');

-- indexes built over runs, plain and concurrently
CREATE INDEX f_v ON f (left(v, 20));
CREATE INDEX CONCURRENTLY f_len ON f (length(v));
SET enable_seqscan = off;
SELECT id FROM f WHERE left(v, 20) = 'flush 17';
SELECT count(*) FROM f WHERE length(v) = 8;
RESET enable_seqscan;

-- a table rewrite writes runs directly (as a bulk load); truncation starts over
VACUUM FULL f;
SELECT * FROM f_state;
SELECT component, row_versions FROM strata.lsm_info('f') WHERE row_versions > 0;
TRUNCATE f;
SELECT count(*) FROM f;
INSERT INTO f VALUES (1, 1, 'again');
SELECT * FROM strata.lsm_flush('f');
SELECT * FROM f;
SELECT * FROM strata.lsm_verify('f');

-- every run has a bloom filter over its rowids: an index entry whose version
-- a flush dropped stops at the filter (the leaf and data page stay unread)
-- (v is indexed too, so the updates are not index-stable: their old versions
-- are dropped, not kept as redirects)
CREATE TABLE fb (id int PRIMARY KEY, v text) USING lsm;
CREATE INDEX fb_v ON fb (v);
INSERT INTO fb SELECT g, 'v' || g FROM generate_series(1, 3000) g;
UPDATE fb SET v = v || '+' WHERE id % 2 = 0;
SELECT versions_moved, versions_dropped FROM strata.lsm_flush('fb');
SELECT component, row_versions, filter_pages FROM strata.lsm_info('fb') WHERE component LIKE 'run%';
-- the index still names the 1500 dropped versions: each lookup finds
-- nothing where they were and takes the new version
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*), sum(id), count(*) FILTER (WHERE v LIKE '%+') AS updated FROM fb WHERE id BETWEEN 1 AND 3000;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT * FROM strata.lsm_verify('fb');
-- strata.lsm_bloom_bits_per_key = 0 writes runs without one
SET strata.lsm_bloom_bits_per_key = 0;
UPDATE fb SET v = v || '+' WHERE id % 3 = 0;
SELECT versions_moved FROM strata.lsm_flush('fb');
SELECT component, row_versions, filter_pages FROM strata.lsm_info('fb') WHERE component LIKE 'run%' ORDER BY 1;
SELECT count(*) FILTER (WHERE v LIKE '%++') AS twice FROM fb;
RESET strata.lsm_bloom_bits_per_key;
DROP TABLE fb;

-- errors
CREATE TABLE fh (a int);
SELECT * FROM strata.lsm_flush('fh');
CREATE ROLE lsm_flusher;
GRANT SELECT ON f TO lsm_flusher;
SET ROLE lsm_flusher;
SELECT * FROM strata.lsm_flush('f');
RESET ROLE;
REVOKE SELECT ON f FROM lsm_flusher;
DROP ROLE lsm_flusher;
DROP VIEW f_state;
DROP TABLE f, fh;
