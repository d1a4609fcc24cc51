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
