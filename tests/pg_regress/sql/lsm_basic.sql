-- lsm table access method, first slice: storage, DML, MVCC, scans, indexes.
\set VERBOSITY sqlstate
SELECT amname, amtype FROM pg_am WHERE amname = 'lsm';

CREATE TABLE t (id int PRIMARY KEY, v text, n numeric) USING lsm;
INSERT INTO t SELECT g, 'row ' || g, g * 1.5 FROM generate_series(1, 3000) g;
SELECT count(*), sum(id), sum(n) FROM t;
-- logical TIDs: rowid = vblock * 256 + offset - 1, vblock 0 is the metapage
SELECT ctid, id FROM t WHERE id IN (1, 2) ORDER BY id;

-- index scans through btree and hash; brin build; unique violations
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT v FROM t WHERE id = 1234;
SELECT v FROM t WHERE id = 1234;
CREATE INDEX t_v_hash ON t USING hash (v);
EXPLAIN (COSTS OFF) SELECT id FROM t WHERE v = 'row 77';
SELECT id FROM t WHERE v = 'row 77';
CREATE INDEX t_brin ON t USING brin (id);
RESET enable_seqscan;
RESET enable_bitmapscan;
INSERT INTO t VALUES (10, 'dup', 0);

-- UPDATE gives a new version and TID; the old one stays for older snapshots
SELECT ctid AS old_ctid FROM t WHERE id = 10 \gset
UPDATE t SET v = 'ten' WHERE id = 10 RETURNING id, v;
SELECT ctid <> :'old_ctid' AS moved, v FROM t WHERE id = 10;
WITH d AS (DELETE FROM t WHERE id > 2900 RETURNING id) SELECT count(*), min(id), max(id) FROM d;
SELECT count(*) FROM t;

-- transactions, savepoints, own-row updates, rollback
BEGIN;
UPDATE t SET v = 'a' WHERE id = 1;
SAVEPOINT s1;
UPDATE t SET v = 'b' WHERE id = 1;
DELETE FROM t WHERE id = 2;
ROLLBACK TO s1;
UPDATE t SET v = v || 'c' WHERE id = 1;
SELECT id, v FROM t WHERE id IN (1, 2) ORDER BY id;
COMMIT;
SELECT id, v FROM t WHERE id IN (1, 2) ORDER BY id;
BEGIN; DELETE FROM t; SELECT count(*) FROM t; ROLLBACK;
SELECT count(*) FROM t;

-- ON CONFLICT (speculative insertion), MERGE, triggers, generated columns
INSERT INTO t VALUES (5, 'five') ON CONFLICT (id) DO UPDATE SET v = 'upserted ' || EXCLUDED.v;
INSERT INTO t VALUES (5, 'again'), (9000, 'new') ON CONFLICT DO NOTHING;
SELECT id, v FROM t WHERE id IN (5, 9000) ORDER BY id;
MERGE INTO t USING (VALUES (6, 'm6'), (9001, 'm9001')) AS s(id, v) ON t.id = s.id
  WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v, 0);
SELECT id, v FROM t WHERE id IN (6, 9001) ORDER BY id;
CREATE TABLE audit (op text, id int);
CREATE FUNCTION t_audit() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO audit VALUES (TG_OP, COALESCE(NEW.id, OLD.id)); RETURN COALESCE(NEW, OLD); END $$;
CREATE TRIGGER t_audit AFTER INSERT OR UPDATE OR DELETE ON t FOR EACH ROW EXECUTE FUNCTION t_audit();
INSERT INTO t VALUES (9100, 'trig', 1); UPDATE t SET v = 'trig2' WHERE id = 9100; DELETE FROM t WHERE id = 9100;
SELECT * FROM audit ORDER BY op;
CREATE TABLE g (a int, b int GENERATED ALWAYS AS (a * 2) STORED) USING lsm;
INSERT INTO g (a) VALUES (1), (2); UPDATE g SET a = 10 WHERE a = 2;
SELECT * FROM g ORDER BY a;

-- cursors: backward and scroll
BEGIN;
DECLARE c SCROLL CURSOR FOR SELECT id FROM t WHERE id <= 5 ORDER BY id;
FETCH LAST FROM c; FETCH BACKWARD 2 FROM c; FETCH FIRST FROM c;
CLOSE c;
DECLARE s SCROLL CURSOR FOR SELECT id FROM t;
MOVE FORWARD ALL IN s; FETCH BACKWARD 1 FROM s;
COMMIT;

-- TID and TID-range scans
EXPLAIN (COSTS OFF) SELECT id FROM t WHERE ctid = '(1,3)';
SELECT id FROM t WHERE ctid = '(1,3)';
EXPLAIN (COSTS OFF) SELECT count(*) FROM t WHERE ctid < '(2,1)';
SELECT count(*) FROM t WHERE ctid >= '(1,1)' AND ctid < '(2,1)';

-- TABLESAMPLE, ANALYZE statistics
SELECT count(*) > 0 AND count(*) < 2900 AS sampled FROM t TABLESAMPLE SYSTEM (50) REPEATABLE (7);
SELECT count(*) FROM t TABLESAMPLE BERNOULLI (100);
ANALYZE t;
SELECT reltuples BETWEEN 2700 AND 3200 AS reltuples_ok FROM pg_class WHERE relname = 't';
SELECT attname, n_distinct FROM pg_stats WHERE tablename = 't' AND attname = 'id';

-- parallel sequential scan
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT count(*) FROM t;
SELECT count(*), sum(id) FROM t;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- TOAST: a 1 MB value round trip; COPY (multi_insert)
CREATE TABLE big (id int, body text) USING lsm;
INSERT INTO big VALUES (1, repeat('abcdefghij', 100000));
SELECT length(body), md5(body) = md5(repeat('abcdefghij', 100000)) FROM big;
UPDATE big SET body = body || 'z'; SELECT length(body) FROM big;
COPY (SELECT g, 'copied ' || g FROM generate_series(1, 500) g) TO '/tmp/strata_lsm_copy.txt';
CREATE TABLE c (id int, v text) USING lsm;
COPY c FROM '/tmp/strata_lsm_copy.txt';
SELECT count(*), min(v), max(id) FROM c;

-- lifecycle: TRUNCATE, CTAS, temp and unlogged, SET ACCESS METHOD, CLUSTER, VACUUM FULL
TRUNCATE c; SELECT count(*) FROM c; INSERT INTO c VALUES (1, 'after truncate'); SELECT * FROM c;
CREATE TABLE ctas USING lsm AS SELECT id, v FROM t WHERE id <= 10;
SELECT count(*) FROM ctas;
CREATE TEMP TABLE tmp (a int) USING lsm; INSERT INTO tmp SELECT generate_series(1, 300); SELECT sum(a) FROM tmp;
CREATE UNLOGGED TABLE ul (a int) USING lsm; INSERT INTO ul VALUES (1), (2); SELECT sum(a) FROM ul;
CREATE TABLE h (id int PRIMARY KEY, v text);
INSERT INTO h SELECT g, 'h' || g FROM generate_series(1, 400) g;
ALTER TABLE h SET ACCESS METHOD lsm;
SELECT amname FROM pg_class JOIN pg_am ON relam = pg_am.oid WHERE relname = 'h';
SELECT count(*), sum(id) FROM h;
SELECT v FROM h WHERE id = 399;
ALTER TABLE h SET ACCESS METHOD heap;
SELECT count(*), sum(id) FROM h;
ALTER TABLE ctas ADD COLUMN extra int DEFAULT 7; ALTER TABLE ctas DROP COLUMN v;
SELECT id, extra FROM ctas ORDER BY id LIMIT 2;
DELETE FROM ctas WHERE id > 5;
VACUUM FULL ctas; SELECT count(*) FROM ctas;
CLUSTER t USING t_pkey; SELECT count(*), sum(id) FROM t;
SELECT v FROM t WHERE id = 1;
-- CLUSTER orders the rows like heap's: by the index's keys (a sort for a
-- btree, an index scan for GiST), so a scan returns them in that order
CREATE TABLE cl (id int, k int, pos point) USING lsm;
INSERT INTO cl SELECT g, (g * 7919) % 1000, point(g % 100, 0) FROM generate_series(1, 1000) g;
CREATE INDEX cl_k ON cl (k);
CREATE INDEX cl_pos ON cl USING gist (pos);
CLUSTER cl USING cl_k;
SELECT count(*), count(*) FILTER (WHERE k < prev) AS out_of_order
FROM (SELECT k, lag(k) OVER () AS prev FROM cl) s;
SET enable_sort = off;  -- the planner prefers an index scan then
CLUSTER cl USING cl_k;
RESET enable_sort;
SELECT count(*), count(*) FILTER (WHERE k < prev) AS out_of_order
FROM (SELECT k, lag(k) OVER () AS prev FROM cl) s;
-- GiST returns its own order: the same rows in the same order as heap's
CREATE TABLE cl_heap (id int, k int, pos point) USING heap;
INSERT INTO cl_heap SELECT * FROM cl;  -- in cl's (k) order, so both GiST builds see the same input
CREATE INDEX cl_heap_pos ON cl_heap USING gist (pos);
CLUSTER cl USING cl_pos;
CLUSTER cl_heap USING cl_heap_pos;
SELECT (SELECT array_agg(id) FROM cl) = (SELECT array_agg(id) FROM cl_heap) AS same_order,
       (SELECT count(*) FROM cl) AS rows;
DROP TABLE cl_heap;
-- deleted rows are left behind; VACUUM FULL keeps rowid order
DELETE FROM cl WHERE id % 2 = 0;
CLUSTER cl USING cl_k;
VACUUM FULL cl;
SELECT count(*), sum(id), count(*) FILTER (WHERE k < prev) AS out_of_order
FROM (SELECT id, k, lag(k) OVER () AS prev FROM cl) s;
DROP TABLE cl;

-- partitioned table with lsm partitions
CREATE TABLE p (k int, v text) PARTITION BY RANGE (k);
CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100) USING lsm;
CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (100) TO (200) USING lsm;
INSERT INTO p SELECT g, 'p' || g FROM generate_series(0, 199) g;
UPDATE p SET k = k + 100 WHERE k = 50;
SELECT tableoid::regclass, count(*) FROM p GROUP BY 1 ORDER BY 1;

-- row locks and errors
BEGIN; SELECT id FROM t WHERE id = 3 FOR UPDATE; SELECT id FROM t WHERE id = 3 FOR SHARE; COMMIT;
CREATE TABLE wide (a text) USING lsm;
ALTER TABLE wide ALTER COLUMN a SET STORAGE plain;
INSERT INTO wide VALUES (repeat('x', 9000));
SELECT 'alive'::text;
DROP TABLE t, big, c, ctas, tmp, ul, h, g, p, audit, wide;
DROP FUNCTION t_audit();

-- a session's first insert appends to the newest L0 page when it has room:
-- one short session per row leaves one page, not a page per row
CREATE TABLE sessions (id int, v text) USING lsm;
INSERT INTO sessions VALUES (1, 'first');
\c
INSERT INTO sessions VALUES (2, 'second');
\c
INSERT INTO sessions VALUES (3, 'third');
\c
INSERT INTO sessions VALUES (4, 'fourth');
SELECT pages, row_versions FROM strata.lsm_info('sessions') WHERE component = 'L0';
SELECT ctid, * FROM sessions ORDER BY id;
DROP TABLE sessions;
