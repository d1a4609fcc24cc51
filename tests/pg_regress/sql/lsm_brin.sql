-- BRIN on lsm tables. Block ranges are ranges of virtual blocks (the block
-- part of logical TIDs): the serial build and range summarization read rows
-- in TID order, and a table with a BRIN index keeps its file at least as long
-- as its virtual blocks reach (BRIN scans look below the physical size), so
-- every row is found after VACUUM reused and packed pages.
\set VERBOSITY terse
CREATE TABLE br (id int, v int, pad text) USING lsm;
INSERT INTO br SELECT g, g, repeat('b', 60) FROM generate_series(1, 10000) g;
-- churn: every row moves to new virtual blocks three times while VACUUM
-- reuses, packs and truncates pages
UPDATE br SET v = v + 1;
VACUUM br;
UPDATE br SET v = v + 1;
VACUUM br;
UPDATE br SET v = v + 1;
VACUUM br;
-- the virtual blocks now reach past the end of the file
SELECT max((ctid::text::point)[0]) >= pg_relation_size('br') / current_setting('block_size')::int AS outgrown
FROM br;
CREATE INDEX br_brin ON br USING brin (id) WITH (pages_per_range = 4);
SELECT max((ctid::text::point)[0]) < pg_relation_size('br') / current_setting('block_size')::int AS covered
FROM br;
SET enable_seqscan = off;
SET enable_indexscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM br WHERE id BETWEEN 100 AND 300;
SELECT count(*), sum(v) FROM br WHERE id BETWEEN 100 AND 300;
SELECT count(*), sum(v) FROM br WHERE id > 9000;
SELECT count(*), sum(v) FROM br WHERE id > 0;
-- more churn and new rows with the index in place; VACUUM summarizes the
-- new ranges (brin's cleanup calls the range build) and packs pages, but
-- never truncates below the virtual blocks
UPDATE br SET v = v + 1 WHERE id % 2 = 0;
INSERT INTO br SELECT g, g, 'new' FROM generate_series(10001, 11000) g;
VACUUM br;
SELECT max((ctid::text::point)[0]) < pg_relation_size('br') / current_setting('block_size')::int AS covered
FROM br;
SELECT count(*), sum(v) FROM br WHERE id BETWEEN 100 AND 300;
SELECT count(*), sum(v) FROM br WHERE id > 9000;
SELECT count(*), sum(v) FROM br WHERE id > 0;
SELECT brin_summarize_new_values('br_brin') >= 0 AS summarized;
DELETE FROM br WHERE id BETWEEN 5000 AND 5999;
SELECT count(*) FROM br WHERE id BETWEEN 4990 AND 6010;
RESET enable_seqscan;
RESET enable_indexscan;
SELECT count(*) FROM br WHERE id BETWEEN 4990 AND 6010;
SELECT * FROM strata.lsm_verify('br');
DROP TABLE br;

-- Updates that change only columns of BRIN indexes (heap's TU_Summarizing,
-- PostgreSQL 16 and later; on 15 such columns block HOT, as on heap). They
-- are index-stable: no btree entry, and the BRIN summary covering the chain's
-- root takes the new value, so a BRIN bitmap scan (which reaches chains
-- through their roots) still finds the row. `summarizing` says whether the
-- server follows TU_Summarizing.
SELECT current_setting('server_version_num')::int >= 160000 AS summarizing \gset
CREATE TABLE bs (id int PRIMARY KEY, status int, tag int, note text) USING lsm;
INSERT INTO bs SELECT g, g % 5, g % 7, 'n' FROM generate_series(1, 2000) g;
CREATE INDEX bs_status ON bs USING brin (status) WITH (pages_per_range = 1);
CREATE INDEX bs_tag ON bs USING brin (tag) WITH (pages_per_range = 2) WHERE id > 1000;
CREATE TABLE bs_sizes AS SELECT pg_relation_size('bs_pkey') AS pkey;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
-- round 1 from the roots, round 2 from heap-only versions an index walk found
UPDATE bs SET status = 100 + id % 3 WHERE id > 0;
UPDATE bs SET status = status + 10, tag = tag + 50 WHERE id > 0;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT pg_stat_force_next_flush();
SELECT index_stable_updates = CASE WHEN :'summarizing'::bool THEN 4000 ELSE 0 END AS index_stable
FROM strata.lsm_stats('bs');
SELECT (pg_relation_size('bs_pkey') = pkey) = :'summarizing'::bool AS pkey_kept_its_size FROM bs_sizes;
-- every row found through both BRIN indexes (partial one included), as a
-- sequential scan finds it
CREATE TABLE bs_expected AS SELECT status, count(*) AS n FROM bs GROUP BY status;
SET enable_seqscan = off;
SET enable_indexscan = off;
EXPLAIN (COSTS OFF) SELECT count(*) FROM bs WHERE status = 111;
SELECT e.status, e.n, (SELECT count(*) FROM bs WHERE bs.status = e.status) AS via_brin
FROM bs_expected e ORDER BY 1;
SELECT count(*) FROM bs WHERE tag >= 50 AND id > 1000;
RESET enable_seqscan;
RESET enable_indexscan;
-- round 3 reached by a sequential scan: the heap-only versions' roots are
-- unknown there, so the updates take new index entries (not index-stable)
SET enable_indexscan = off;
SET enable_bitmapscan = off;
UPDATE bs SET status = status + 10 WHERE id % 4 = 0;
RESET enable_indexscan;
RESET enable_bitmapscan;
SELECT pg_stat_force_next_flush();
-- (all but at most the one whose version the last walk returned)
SELECT index_stable_updates <= CASE WHEN :'summarizing'::bool THEN 4001 ELSE 0 END AS took_entries
FROM strata.lsm_stats('bs');
-- and a VACUUM that shortens every chain to redirects keeps them reachable
VACUUM bs;
SET enable_seqscan = off;
SET enable_indexscan = off;
SELECT status, count(*) FROM bs WHERE status >= 100 GROUP BY status ORDER BY 1;
SELECT count(*) FROM bs WHERE tag >= 50 AND id > 1000;
RESET enable_seqscan;
RESET enable_indexscan;
SELECT status, count(*) FROM bs WHERE status >= 100 GROUP BY status ORDER BY 1;
SELECT * FROM strata.lsm_verify('bs');
DROP TABLE bs, bs_sizes, bs_expected;
