-- Indexes on lsm tables: CREATE INDEX CONCURRENTLY, REINDEX (CONCURRENTLY),
-- partial and expression indexes, unique builds, checked with amcheck's
-- heapallindexed (every visible row version has its index entry).
\set VERBOSITY sqlstate
CREATE EXTENSION amcheck;
CREATE TABLE ix (id int, k int, v text) USING lsm;
INSERT INTO ix SELECT g, g % 100, 'v' || g FROM generate_series(1, 5000) g;
UPDATE ix SET v = v || '!' WHERE id % 10 = 0;
DELETE FROM ix WHERE id % 9 = 0;

CREATE UNIQUE INDEX CONCURRENTLY ix_id ON ix (id);
CREATE INDEX CONCURRENTLY ix_k ON ix (k);
CREATE INDEX CONCURRENTLY ix_upper ON ix (upper(v)) WHERE k < 10;
SELECT indexrelid::regclass, indisvalid, indisready FROM pg_index
WHERE indrelid = 'ix'::regclass ORDER BY indexrelid::regclass::text;
SELECT bt_index_check(i, true) FROM unnest(ARRAY['ix_id', 'ix_k', 'ix_upper']::regclass[]) i;

SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM ix WHERE upper(v) = 'V5!' AND k < 10;
SELECT id, v FROM ix WHERE upper(v) = 'V100!' AND k < 10;
SELECT count(*) FROM ix WHERE k = 7;
RESET enable_bitmapscan;
RESET enable_seqscan;
SELECT count(*) FROM ix WHERE k = 7;

-- a unique CIC that meets a duplicate fails and leaves an invalid index
CREATE UNIQUE INDEX CONCURRENTLY ix_k_unique ON ix (k);
SELECT indexrelid::regclass, indisvalid FROM pg_index WHERE indexrelid = 'ix_k_unique'::regclass;
DROP INDEX ix_k_unique;
-- and the unique index rejects a duplicate
INSERT INTO ix VALUES (1, 1, 'duplicate of 1');

-- REINDEX, plain and concurrent
REINDEX INDEX ix_k;
REINDEX TABLE CONCURRENTLY ix;
SELECT bt_index_check(i, true) FROM unnest(ARRAY['ix_id', 'ix_k', 'ix_upper']::regclass[]) i;
SELECT count(*) FROM pg_index WHERE indrelid = 'ix'::regclass AND indisvalid;

-- rows written after the builds are indexed too
INSERT INTO ix SELECT g, 7, 'late' FROM generate_series(6001, 6100) g;
UPDATE ix SET k = 8 WHERE id BETWEEN 6001 AND 6050;
SELECT bt_index_check(i, true) FROM unnest(ARRAY['ix_id', 'ix_k', 'ix_upper']::regclass[]) i;
SET enable_seqscan = off;
SELECT count(*) FROM ix WHERE k = 7;
SELECT count(*) FROM ix WHERE k = 8;
RESET enable_seqscan;
SELECT count(*) FILTER (WHERE k = 7), count(*) FILTER (WHERE k = 8) FROM ix;
DROP TABLE ix;

-- parallel index builds: each participant indexes the blocks the shared
-- scan state hands it, so no row is indexed twice (in L0 and after a flush)
CREATE TABLE px (id int, filler char(200)) USING lsm WITH (parallel_workers = 2);
INSERT INTO px SELECT g, '' FROM generate_series(1, 20000) g;
SET max_parallel_maintenance_workers = 2;
SET min_parallel_table_scan_size = 0;
SET maintenance_work_mem = '64MB';
CREATE UNIQUE INDEX px_id ON px (id);
SELECT bt_index_check('px_id', true);
VACUUM px;
SELECT component, row_versions FROM strata.lsm_info('px') WHERE component LIKE 'run%';
REINDEX INDEX px_id;
SELECT bt_index_check('px_id', true);
CREATE INDEX px_brin ON px USING brin (id);
SET enable_seqscan = off;
SELECT count(*) FROM px WHERE id > 0;
SELECT count(*) FROM px WHERE id BETWEEN 100 AND 199;
RESET enable_seqscan;
RESET max_parallel_maintenance_workers;
RESET min_parallel_table_scan_size;
RESET maintenance_work_mem;
DROP TABLE px;

-- An error raised while an index expression or predicate is evaluated
-- keeps its CONTEXT lines, as on heap: the PL/pgSQL function and line
-- (pg::error_catch raises it again whole where the callback returns)
\set VERBOSITY default
CREATE FUNCTION ix_check(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS $$
BEGIN
  IF $1 = 7 AND current_setting('strata_test.fail', true) = 'on' THEN
    RAISE EXCEPTION 'no index entry for %', $1 USING HINT = 'drop row 7';
  END IF;
  RETURN $1;
END $$;
CREATE TABLE ex (a int) USING lsm;
INSERT INTO ex SELECT g FROM generate_series(1, 10) g;
CREATE INDEX ex_expr ON ex (ix_check(a));
SET strata_test.fail = on;
CREATE INDEX ex_expr2 ON ex (ix_check(a));
CREATE INDEX ex_part ON ex (a) WHERE ix_check(a) > 0;
VACUUM ex;
SELECT component, row_versions FROM strata.lsm_info('ex') WHERE component LIKE 'run%';
CREATE INDEX ex_expr2 ON ex (ix_check(a));
REINDEX INDEX ex_expr;
VACUUM FULL ex;
CREATE INDEX ex_part ON ex (a) WHERE a <> 7 AND ix_check(a) > 0;
DO $$
DECLARE ctx text;
BEGIN
  CREATE INDEX ex_expr3 ON ex (ix_check(a));
EXCEPTION WHEN raise_exception THEN
  GET STACKED DIAGNOSTICS ctx = PG_EXCEPTION_CONTEXT;
  RAISE NOTICE 'caught: %', ctx;
END $$;
BEGIN;
SAVEPOINT s;
CREATE INDEX ex_expr3 ON ex (ix_check(a));
ROLLBACK TO s;
CREATE INDEX ex_expr3 ON ex (ix_check(a)) WHERE a < 5;
COMMIT;
RESET strata_test.fail;
SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'ex'::regclass ORDER BY 1;
SELECT count(*) FROM ex WHERE ix_check(a) = 7;
DROP TABLE ex;
DROP FUNCTION ix_check(int);
\set VERBOSITY sqlstate
DROP EXTENSION amcheck;
