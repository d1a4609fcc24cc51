-- Bitmap heap scans (exact, lossy, BitmapAnd/Or) and GIN / GiST indexes on
-- lsm tables. Every answer is compared with a heap copy of the same rows.
-- rows go through L0 here (the TIDs and page counts below assume it)
SET strata.lsm_bulk_load = off;
\set VERBOSITY sqlstate
CREATE TABLE bs (id int PRIMARY KEY, tags text[], pos point, r int4range, body text) USING lsm;
INSERT INTO bs SELECT g, ARRAY['t' || (g % 10), 'u' || (g % 7)], point(g % 100, g / 100),
       int4range(g, g + 10), 'word' || (g % 50) || ' other' FROM generate_series(1, 20000) g;
UPDATE bs SET tags = tags || ARRAY['updated'] WHERE id % 13 = 0;
DELETE FROM bs WHERE id % 17 = 0;
CREATE TABLE bs_heap USING heap AS SELECT * FROM bs;
CREATE INDEX bs_tags ON bs USING gin (tags);
CREATE INDEX bs_fts ON bs USING gin (to_tsvector('simple', body));
CREATE INDEX bs_pos ON bs USING gist (pos);
CREATE INDEX bs_r ON bs USING gist (r);
ANALYZE bs;

-- the same query on lsm (through the plan shown) and on heap (seq scan)
CREATE FUNCTION same_as_heap(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE a bigint; b bigint; diff bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM (%s) s', q) INTO a;
  EXECUTE format('SELECT count(*) FROM (%s) s', replace(q, 'FROM bs ', 'FROM bs_heap ')) INTO b;
  EXECUTE format('SELECT count(*) FROM ((%s) EXCEPT ALL (%s)) d', q,
                 replace(q, 'FROM bs ', 'FROM bs_heap ')) INTO diff;
  RETURN format('%s rows, heap %s, differing %s', a, b, diff);
END $$;

SET enable_seqscan = off;
SET enable_indexscan = off;
SET enable_indexonlyscan = off;
-- exact bitmap from a btree range
EXPLAIN (COSTS OFF) SELECT id FROM bs WHERE id BETWEEN 100 AND 5000;
SELECT same_as_heap('SELECT id, tags FROM bs WHERE id BETWEEN 100 AND 5000');
-- BitmapOr and BitmapAnd
EXPLAIN (COSTS OFF) SELECT id FROM bs WHERE id < 300 OR id > 19700;
SELECT same_as_heap('SELECT id FROM bs WHERE id < 300 OR id > 19700');
EXPLAIN (COSTS OFF) SELECT id FROM bs WHERE id < 3000 AND tags @> ARRAY['t3'];
SELECT same_as_heap('SELECT id FROM bs WHERE id < 3000 AND tags @> ARRAY[''t3'']');
-- GIN: array containment and full text search
EXPLAIN (COSTS OFF) SELECT id FROM bs WHERE tags @> ARRAY['t3', 'u2'];
SELECT same_as_heap('SELECT id FROM bs WHERE tags @> ARRAY[''t3'', ''u2'']');
SELECT same_as_heap('SELECT id FROM bs WHERE tags @> ARRAY[''updated'']');
EXPLAIN (COSTS OFF) SELECT id FROM bs WHERE to_tsvector('simple', body) @@ 'word7'::tsquery;
SELECT same_as_heap('SELECT id FROM bs WHERE to_tsvector(''simple'', body) @@ ''word7''::tsquery');
-- GiST: points in a box, overlapping ranges
EXPLAIN (COSTS OFF) SELECT id FROM bs WHERE pos <@ box '((10,10),(20,20))';
SELECT same_as_heap('SELECT id FROM bs WHERE pos <@ box ''((10,10),(20,20))''');
SELECT same_as_heap('SELECT id FROM bs WHERE r && int4range(500, 520)');

-- lossy pages: a bitmap too big for work_mem degrades to whole pages, rechecked
CREATE TABLE lossy (id int, pad text) USING lsm;
INSERT INTO lossy SELECT g, repeat('p', 200) FROM generate_series(1, 60000) g;
CREATE INDEX lossy_id ON lossy (id);
ANALYZE lossy;
CREATE FUNCTION bitmap_pages(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF, SUMMARY OFF) ' || q INTO plan;
  RETURN format('%s: exact pages %s, lossy pages %s', plan->0->'Plan'->'Plans'->0->>'Node Type',
    CASE WHEN (plan->0->'Plan'->'Plans'->0->>'Exact Heap Blocks')::int > 0 THEN 'some' ELSE 'none' END,
    CASE WHEN (plan->0->'Plan'->'Plans'->0->>'Lossy Heap Blocks')::int > 0 THEN 'some' ELSE 'none' END);
END $$;
SET work_mem = '64kB';
SELECT bitmap_pages('SELECT count(*) FROM lossy WHERE id > 10 AND id % 3 = 0');
SELECT count(*), sum(id) FROM lossy WHERE id > 10 AND id % 3 = 0;
RESET work_mem;
SELECT bitmap_pages('SELECT count(*) FROM lossy WHERE id > 10 AND id % 3 = 0');
SELECT count(*), sum(id) FROM lossy WHERE id > 10 AND id % 3 = 0;
DROP TABLE lossy;

-- bitmap scans see this transaction's own new rows, and not deleted ones
BEGIN;
INSERT INTO bs SELECT g, ARRAY['t3', 'u2', 'new'], point(0, 0), int4range(1, 2), 'new'
FROM generate_series(30001, 30100) g;
DELETE FROM bs WHERE id BETWEEN 100 AND 199;
SELECT count(*) FROM bs WHERE tags @> ARRAY['new'];
SELECT count(*) FROM bs WHERE id BETWEEN 100 AND 5000;
ROLLBACK;
SELECT count(*) FROM bs WHERE tags @> ARRAY['new'];

-- KNN ordering through GiST is an index scan
RESET enable_indexscan;
EXPLAIN (COSTS OFF) SELECT id FROM bs ORDER BY pos <-> point(50, 50) LIMIT 3;
SELECT id, pos FROM bs ORDER BY pos <-> point(50, 50), id LIMIT 3;
RESET enable_seqscan;
RESET enable_indexonlyscan;
DROP TABLE bs, bs_heap;
DROP FUNCTION same_as_heap(text), bitmap_pages(text);

-- Sequential scans return rows in TID (rowid) order, runs first, then L0,
-- wherever their pages lie: here VACUUM's packing moves run 4's pages in
-- front of run 3's, and an append-only table still reads in insertion order,
-- as on heap. Backward (SCROLL cursor) scans read the reverse.
CREATE EXTENSION pageinspect;
CREATE TABLE so (id int, pad text) USING lsm;
INSERT INTO so SELECT g, repeat('x', 100) FROM generate_series(1, 3000) g;
VACUUM so;
INSERT INTO so SELECT g, repeat('x', 100) FROM generate_series(3001, 6000) g;
VACUUM so;
INSERT INTO so SELECT g, repeat('x', 100) FROM generate_series(6001, 9000) g;
VACUUM so;
INSERT INTO so SELECT g, repeat('x', 100) FROM generate_series(9001, 9500) g;
DELETE FROM so WHERE id <= 4000;
VACUUM so;
VACUUM so;
VACUUM so;
-- the run holding the highest rowids sits at lower blocks than another run
-- (the tag's kind and owner: the last 16 bytes of a page)
WITH pages AS (
  SELECT b, get_byte(p, 8182) + 256 * get_byte(p, 8183) AS kind,
         get_byte(p, 8184) + 256 * get_byte(p, 8185) AS run
  FROM generate_series(1, (pg_relation_size('so') / 8192)::int - 1) b,
       LATERAL (SELECT get_raw_page('so', b) p) x)
SELECT count(DISTINCT run) AS runs,
       (SELECT min(b) FROM pages WHERE kind = 3 AND run = (SELECT max(run) FROM pages WHERE kind = 3))
       < (SELECT max(b) FROM pages WHERE kind = 3) AS newest_run_not_last
FROM pages WHERE kind = 3;
SELECT count(*) FILTER (WHERE id < prev) AS out_of_order, count(*), min(id), max(id)
FROM (SELECT id, lag(id) OVER () AS prev FROM so) s;
INSERT INTO so SELECT g, 'l0' FROM generate_series(9501, 9600) g;
SELECT count(*) FILTER (WHERE id < prev) AS out_of_order, count(*)
FROM (SELECT id, lag(id) OVER () AS prev FROM so) s;
BEGIN;
DECLARE c SCROLL CURSOR FOR SELECT id FROM so;
FETCH 2 FROM c;
FETCH LAST FROM c;
FETCH BACKWARD 2 FROM c;
MOVE ABSOLUTE 5000 IN c;
FETCH 2 FROM c;
FETCH ABSOLUTE 1 FROM c;
COMMIT;
-- TID range scans read only the pages of their range, in TID order
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT ctid, id FROM so WHERE ctid >= '(122,14)' AND ctid <= '(123,56)';
-- ids 7000 to 7100
SELECT count(*) FILTER (WHERE ctid < prev) AS out_of_order, count(*), min(id), max(id)
FROM (SELECT ctid, id, lag(ctid) OVER () AS prev FROM so WHERE ctid >= '(122,14)' AND ctid <= '(123,56)') s;
RESET enable_seqscan;
DROP TABLE so;
DROP EXTENSION pageinspect;
-- scans count in pg_stat_user_tables as heap's do: the same statements on a
-- heap and an lsm table give the same seq_scan, seq_tup_read (sequential,
-- TID range and sample scans) and idx_tup_fetch (bitmap scans' rows)
CREATE TABLE stat_heap (id int PRIMARY KEY, v text) USING heap;
CREATE TABLE stat_lsm (id int PRIMARY KEY, v text) USING lsm;
INSERT INTO stat_heap SELECT g, 'v' || g FROM generate_series(1, 300) g;
INSERT INTO stat_lsm SELECT g, 'v' || g FROM generate_series(1, 300) g;
SELECT count(*) FROM stat_heap;
SELECT count(*) FROM stat_lsm;
CREATE INDEX ON stat_heap (v);
CREATE INDEX ON stat_lsm (v);
SELECT count(*) FROM stat_heap TABLESAMPLE BERNOULLI (100);
SELECT count(*) FROM stat_lsm TABLESAMPLE BERNOULLI (100);
SET enable_seqscan = off;
SELECT count(*) FROM stat_heap WHERE ctid >= '(0,1)';
SELECT count(*) FROM stat_lsm WHERE ctid >= '(0,1)';
SET enable_indexscan = off;
SELECT count(*) FROM stat_heap WHERE id <= 40;
SELECT count(*) FROM stat_lsm WHERE id <= 40;
RESET enable_indexscan;
RESET enable_seqscan;
SELECT pg_stat_force_next_flush();
SELECT relname, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch
FROM pg_stat_user_tables WHERE relname IN ('stat_heap', 'stat_lsm') ORDER BY relname;
DROP TABLE stat_heap, stat_lsm;
