-- Sequential scans of column-wise compressed pages hand rows to the executor
-- column by column (an lsm slot in column mode, src/lsm/slot.rs): values of
-- every storage kind (by value, 1- and 4-byte varlena headers, aligned
-- fixed-length types), NULLs, dropped and added columns, system columns,
-- and everything that turns such a row into a tuple — whole-row values,
-- sorts, hashes, materialized CTEs, cursors moving backwards, parallel
-- workers, inserts into heap and lsm tables. Every result is compared with
-- a heap copy of the same rows.
\set VERBOSITY terse
LOAD 'strata';
CREATE TABLE src (
    id int, i2 int2, i8 bigint, b bool, c "char", f float8, n numeric,
    t text, lt text, u uuid, iv interval, nm name, pt point, mac macaddr,
    ts timestamptz, d date, gone int);
INSERT INTO src
SELECT g, (g % 300 - 150)::int2, g::bigint * 1000003 - 5000000000, g % 3 = 0,
       chr(65 + g % 26)::"char", g / 7.0, (g * 1.5)::numeric,
       CASE WHEN g % 11 = 0 THEN NULL ELSE 'row ' || g END,
       CASE WHEN g % 5 = 0 THEN repeat(md5(g::text), 6) END,
       md5(g::text)::uuid, make_interval(days => g % 40, secs => g), 'name' || g,
       point(g, -g), ('08:00:2b:01:02:' || lpad(to_hex(g % 256), 2, '0'))::macaddr,
       '2026-01-01 00:00:00+00'::timestamptz + g * interval '1 minute',
       '2026-01-01'::date + g % 1000, g
FROM generate_series(1, 5000) g;
CREATE TABLE h USING heap AS SELECT * FROM src;
CREATE TABLE z USING lsm AS SELECT * FROM src;
-- a column dropped and one added: rows of both shapes in L0, flushed onto
-- the same pages
ALTER TABLE h DROP COLUMN gone;
ALTER TABLE z DROP COLUMN gone;
INSERT INTO h SELECT id + 20000, i2, i8, b, c, f, n, t, lt, u, iv, nm, pt, mac, ts, d
FROM src WHERE id <= 500;
INSERT INTO z SELECT id + 20000, i2, i8, b, c, f, n, t, lt, u, iv, nm, pt, mac, ts, d
FROM src WHERE id <= 500;
ALTER TABLE h ADD COLUMN late text DEFAULT 'early';
ALTER TABLE z ADD COLUMN late text DEFAULT 'early';
INSERT INTO h SELECT id + 10000, i2, i8, b, c, f, n, t, lt, u, iv, nm, pt, mac, ts, d, 'late ' || id
FROM src WHERE id <= 1000;
INSERT INTO z SELECT id + 10000, i2, i8, b, c, f, n, t, lt, u, iv, nm, pt, mac, ts, d, 'late ' || id
FROM src WHERE id <= 1000;
VACUUM z;
SELECT layout, bool_and(codec LIKE '%by column%') AS column_wise, sum(row_versions) > 6400 AS nearly_all_rows
FROM strata.lsm_page_layouts('z') WHERE layout LIKE 'compact%' GROUP BY 1;

-- the same rows, read whole (row values made from the slot)
SELECT (SELECT md5(string_agg(z::text, ',' ORDER BY id)) FROM z)
     = (SELECT md5(string_agg(h::text, ',' ORDER BY id)) FROM h) AS whole_rows_match;
-- a few columns at a time (the slot decodes only the columns asked for)
SELECT count(*), sum(i2), sum(i8), count(t), sum(length(lt)), max(iv), min(nm),
       sum(pt[0]), max(mac::text), max(ts), min(d), count(late), max(late), sum(n), sum(f)::numeric(20, 6)
FROM z;
SELECT count(*), sum(i2), sum(i8), count(t), sum(length(lt)), max(iv), min(nm),
       sum(pt[0]), max(mac::text), max(ts), min(d), count(late), max(late), sum(n), sum(f)::numeric(20, 6)
FROM h;
SELECT late, count(*) FROM z GROUP BY late ORDER BY count(*) DESC, late LIMIT 2;
SELECT b, c, count(*), sum(id) FROM z WHERE id % 4 = 1 GROUP BY b, c ORDER BY b, c LIMIT 4;
SELECT b, c, count(*), sum(id) FROM h WHERE id % 4 = 1 GROUP BY b, c ORDER BY b, c LIMIT 4;
SELECT id, lt IS NULL AS no_lt, length(lt), iv, pt, late FROM z WHERE id IN (5, 55, 10005) ORDER BY id;

-- system columns of rows read column by column
SELECT count(*) FROM z WHERE xmin = (SELECT xmin FROM z WHERE id = 1);
SELECT ctid, id, tableoid::regclass FROM z WHERE id IN (1, 256, 257, 5000) ORDER BY id;
SELECT count(*) FROM z WHERE ctid = (SELECT ctid FROM z WHERE id = 4321);

-- sorts, hashes and materializations copy rows out of the slot
SELECT id, t, length(lt) FROM z ORDER BY t DESC NULLS LAST, id LIMIT 4;
SELECT count(*) FROM z JOIN h USING (id) WHERE z.u <> h.u OR z.iv <> h.iv OR z.late <> h.late;
SELECT count(*) FROM (SELECT DISTINCT nm, late FROM z) s;
WITH m AS MATERIALIZED (SELECT * FROM z WHERE id % 100 = 0)
SELECT count(*), sum(length(m::text)) FROM m;
WITH m AS MATERIALIZED (SELECT * FROM h WHERE id % 100 = 0)
SELECT count(*), sum(length(m::text)) FROM m;
SELECT row_to_json(z) FROM z WHERE id = 10007;

-- a scroll cursor moving both ways over the pages
BEGIN;
DECLARE cur SCROLL CURSOR FOR SELECT id, t, late FROM z;
FETCH 3 FROM cur;
FETCH BACKWARD 2 FROM cur;
FETCH ABSOLUTE 300 FROM cur;
FETCH BACKWARD 1 FROM cur;
FETCH LAST FROM cur;
FETCH BACKWARD 1 FROM cur;
COMMIT;

-- parallel workers send their rows through tuple queues
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT count(*), sum(i8), md5(max(lt)), count(late) FROM z;
SELECT md5(string_agg(id || ':' || coalesce(t, '-'), ',' ORDER BY id)) = (SELECT md5(string_agg(id || ':' || coalesce(t, '-'), ',' ORDER BY id)) FROM h) AS gathered_rows_match
FROM z;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- rows inserted from the slot into other tables, heap and lsm
CREATE TABLE h2 (LIKE h);
INSERT INTO h2 SELECT * FROM z;
CREATE TABLE h3 USING heap AS SELECT * FROM z;
CREATE TABLE z2 USING lsm AS SELECT * FROM z;
SELECT (SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM h2 x)
     = (SELECT md5(string_agg(h::text, ',' ORDER BY id)) FROM h) AS insert_select_matches,
       (SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM h3 x)
     = (SELECT md5(string_agg(h::text, ',' ORDER BY id)) FROM h) AS create_as_heap_matches,
       (SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM z2 x)
     = (SELECT md5(string_agg(h::text, ',' ORDER BY id)) FROM h) AS create_as_lsm_matches;
SELECT count(*) FROM h3 WHERE xmin = (SELECT xmin FROM z WHERE id = 1);

-- updates and deletes found by a sequential scan, then read again
UPDATE z SET t = 'updated ' || id, late = NULL WHERE id % 500 = 0;
UPDATE h SET t = 'updated ' || id, late = NULL WHERE id % 500 = 0;
DELETE FROM z WHERE id % 700 = 0;
DELETE FROM h WHERE id % 700 = 0;
SELECT (SELECT md5(string_agg(z::text, ',' ORDER BY id)) FROM z)
     = (SELECT md5(string_agg(h::text, ',' ORDER BY id)) FROM h) AS after_writes_match;
SELECT count(*), count(late), count(t) FILTER (WHERE t LIKE 'updated%') FROM z;
SELECT * FROM strata.lsm_verify('z');

-- ALTER COLUMN TYPE rewrites the table reading the old rows by the old
-- column layout (the relation already has the new one)
ALTER TABLE z2 ALTER COLUMN i2 TYPE numeric, ALTER COLUMN i8 TYPE text, ALTER COLUMN id TYPE bigint;
ALTER TABLE h3 ALTER COLUMN i2 TYPE numeric, ALTER COLUMN i8 TYPE text, ALTER COLUMN id TYPE bigint;
SELECT (SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM z2 x)
     = (SELECT md5(string_agg(x::text, ',' ORDER BY id)) FROM h3 x) AS altered_types_match;
SELECT sum(i2), max(i8), sum(id) FROM z2;
DROP TABLE src, h, z, h2, h3, z2;
