-- strata_hnsw on bit(n) columns (one bit per dimension in the index,
-- format version 7): bit_hamming_ops and bit_jaccard_ops on heap and lsm
-- tables, inserts after the build, NULLs and all-zero strings, VACUUM, up
-- to 64,000 bits, the binary-quantize-and-rerank query pgvector documents,
-- iterative scans, and the answers of exact search. The small cases'
-- distances and errors are pgvector 0.8.6's (its hnsw on the same data).
SET enable_seqscan = off;

CREATE TABLE hb (i int, b bit(6));
INSERT INTO hb VALUES (1, '000000'), (2, '100000'), (3, '111000'), (4, NULL), (5, '110011'),
    (6, '001100'), (7, '111111'), (8, '100000');

-- Hamming: every indexed row in distance order (NULL is not indexed; the
-- index scan under LIMIT, ties then ordered by i)
CREATE INDEX hb_idx ON hb USING strata_hnsw (b bit_hamming_ops);
EXPLAIN (COSTS OFF) SELECT i FROM hb ORDER BY b <~> '101000' LIMIT 3;
SELECT i, b, d FROM (SELECT i, b, b <~> '101000' AS d FROM hb ORDER BY b <~> '101000' LIMIT 10) s ORDER BY d, i;
-- a row inserted after the build; a filtered query; a query of another length
INSERT INTO hb VALUES (9, '101001');
SELECT i, b FROM hb ORDER BY b <~> '101001' LIMIT 1;
SELECT i FROM hb WHERE i % 2 = 1 ORDER BY b <~> '111111' LIMIT 2;
SELECT i FROM hb ORDER BY b <~> '1010' LIMIT 1;
INSERT INTO hb VALUES (10, '1010');
DROP INDEX hb_idx;

-- Jaccard (all-zero strings are indexed: at distance 1 from everything)
CREATE INDEX hb_idx ON hb USING strata_hnsw (b bit_jaccard_ops);
SELECT i, round(d::numeric, 4) AS d
FROM (SELECT i, b <%> '111000' AS d FROM hb ORDER BY b <%> '111000' LIMIT 10) s ORDER BY d, i;
-- no default operator class for bit (as pgvector)
CREATE INDEX ON hb USING strata_hnsw (b);
-- VACUUM drops deleted rows' entries
DELETE FROM hb WHERE i IN (3, 7);
VACUUM hb;
SELECT i FROM hb ORDER BY b <%> '111000' LIMIT 2;
SELECT sum(elements) AS elements FROM strata.hnsw_info('hb_idx') WHERE layer = 0;
DROP TABLE hb;

-- 600 rows of bit(128) on an lsm table: Hamming and Jaccard indexes find
-- what exact search finds (parallel builds differ run to run: recall, not
-- equality); then an iterative scan under a selective filter
CREATE TABLE hl (i int PRIMARY KEY, b bit(128)) USING lsm;
INSERT INTO hl SELECT g, (SELECT string_agg(CASE WHEN sin(g * 13 + k * 7) > 0.2 THEN '1' ELSE '0' END, '')
    FROM generate_series(1, 128) k)::bit(128)
FROM generate_series(1, 600) g;
CREATE INDEX hl_ham ON hl USING strata_hnsw (b bit_hamming_ops);
CREATE TEMP TABLE q AS SELECT g AS qi, (SELECT string_agg(CASE WHEN cos(g * 17 + k * 3) > 0.1 THEN '1' ELSE '0' END, '')
    FROM generate_series(1, 128) k)::bit(128) AS qb
FROM generate_series(1, 10) g;
SET strata.hnsw_ef_search = 100;
CREATE TEMP TABLE approx AS
SELECT qi, (SELECT array_agg(d ORDER BY d) FROM (SELECT b <~> qb AS d FROM hl ORDER BY b <~> qb LIMIT 5) s) AS ds
FROM q;
DROP INDEX hl_ham;
CREATE INDEX hl_jac ON hl USING strata_hnsw (b bit_jaccard_ops);
CREATE TEMP TABLE approx_j AS
SELECT qi, (SELECT array_agg(d ORDER BY d) FROM (SELECT b <%> qb AS d FROM hl ORDER BY b <%> qb LIMIT 5) s) AS ds
FROM q;
SET strata.hnsw_iterative_scan = relaxed_order;
CREATE TEMP TABLE filtered AS
SELECT qi, (SELECT count(*) FROM (SELECT i FROM hl WHERE i % 10 = 3 ORDER BY b <%> qb LIMIT 5) s) AS n
FROM q;
RESET strata.hnsw_iterative_scan;
RESET strata.hnsw_ef_search;
SET enable_seqscan = on;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
-- distances, not ids: ties at equal Hamming distance are common
CREATE TEMP TABLE exact AS
SELECT qi, (SELECT array_agg(d ORDER BY d) FROM (SELECT b <~> qb AS d FROM hl ORDER BY b <~> qb LIMIT 5) s) AS ds,
    (SELECT array_agg(d ORDER BY d) FROM (SELECT b <%> qb AS d FROM hl ORDER BY b <%> qb LIMIT 5) s) AS js
FROM q;
RESET enable_indexscan;
RESET enable_bitmapscan;
SELECT count(*) AS queries,
    sum((a.ds = e.ds)::int) >= 9 AS hamming_exact_in_9_of_10,
    sum((j.ds = e.js)::int) >= 9 AS jaccard_exact_in_9_of_10
FROM approx a JOIN approx_j j USING (qi) JOIN exact e USING (qi);
SELECT count(*) AS queries, min(n) AS fewest_rows FROM filtered;
DROP TABLE hl;

-- binary quantization and rerank, as pgvector documents: an expression
-- index on binary_quantize(v)::bit(n), a wide first pass, then exact
-- distances on the vectors (the query is row 77's vector moved a little:
-- same signs, so its code is row 77's)
CREATE TABLE hq (i int, v vector(32));
INSERT INTO hq SELECT g, ARRAY(SELECT sin(g * 3 + k * 1.7) FROM generate_series(1, 32) k)::vector
FROM generate_series(1, 200) g;
SELECT v + ARRAY(SELECT 0.01 * sign(x) FROM unnest(v::real[]) x)::vector AS qv FROM hq WHERE i = 77 \gset
SET enable_seqscan = off;
CREATE INDEX ON hq USING strata_hnsw ((binary_quantize(v)::bit(32)) bit_hamming_ops);
EXPLAIN (COSTS OFF)
SELECT i FROM hq ORDER BY binary_quantize(v)::bit(32) <~> binary_quantize(:'qv'::vector) LIMIT 20;
SELECT count(*) AS first_pass, (array_agg(i ORDER BY v <-> :'qv'))[1] AS reranked_best,
    round(min(v <-> :'qv')::numeric, 4) AS d
FROM (SELECT i, v FROM hq ORDER BY binary_quantize(v)::bit(32) <~> binary_quantize(:'qv'::vector) LIMIT 20) s;
RESET enable_seqscan;
SELECT i, round((v <-> :'qv')::numeric, 4) AS d FROM hq ORDER BY v <-> :'qv' LIMIT 1;
DROP TABLE hq;

-- lengths: up to 64,000 bits; varbit and unsized columns are refused
SET enable_seqscan = off;
CREATE TABLE hw (i int, b bit(64000));
INSERT INTO hw SELECT g, (repeat('1', g * 1000) || repeat('0', 64000 - g * 1000))::bit(64000)
FROM generate_series(1, 5) g;
CREATE INDEX ON hw USING strata_hnsw (b bit_hamming_ops);
SELECT i, b <~> (repeat('1', 3200) || repeat('0', 60800))::bit(64000) AS d
FROM hw ORDER BY b <~> (repeat('1', 3200) || repeat('0', 60800))::bit(64000) LIMIT 2;
DROP TABLE hw;
CREATE TABLE hw (b bit(64001));
CREATE INDEX ON hw USING strata_hnsw (b bit_hamming_ops);
DROP TABLE hw;
CREATE TABLE hw (b varbit(8));
CREATE INDEX ON hw USING strata_hnsw (b bit_hamming_ops);
DROP TABLE hw;
-- formats before 7 do not store bits
CREATE TABLE hw (b bit(4));
SET strata.hnsw_format_version = 6;
CREATE INDEX ON hw USING strata_hnsw (b bit_jaccard_ops);
RESET strata.hnsw_format_version;
CREATE INDEX hw_idx ON hw USING strata_hnsw (b bit_jaccard_ops);
SELECT format_version, dims, code_bits FROM strata.hnsw_info('hw_idx') WHERE layer = 0;
DROP TABLE hw;
RESET enable_seqscan;

-- a build holds bit strings packed (64 to a word): 800 rows of bit(1024)
-- fit in 1 MB of maintenance_work_mem (widened to floats, 8 KB a row, about
-- a hundred would), and every row's own string is its nearest neighbour
CREATE TABLE hm (i int, b bit(1024));
INSERT INTO hm SELECT g, (SELECT string_agg(CASE WHEN hashint4(g * 1031 + k) % 3 = 0 THEN '1' ELSE '0' END, '')
                          FROM generate_series(1, 1024) k)::bit(1024)
FROM generate_series(1, 800) g;
SET maintenance_work_mem = '1MB';
CREATE INDEX hm_idx ON hm USING strata_hnsw (b bit_hamming_ops);
CREATE INDEX hm_jidx ON hm USING strata_hnsw (b bit_jaccard_ops);
RESET maintenance_work_mem;
SET enable_seqscan = off;
SET strata.hnsw_ef_search = 100;
SELECT count(*) FILTER (WHERE (SELECT h.i FROM hm h ORDER BY h.b <~> hm.b LIMIT 1) = hm.i) AS hamming_self,
       count(*) FILTER (WHERE (SELECT h.i FROM hm h ORDER BY h.b <%> hm.b LIMIT 1) = hm.i) AS jaccard_self
FROM hm WHERE i % 10 = 0;
RESET strata.hnsw_ef_search;
RESET enable_seqscan;
DROP TABLE hm;

-- single-row inserts keep the strings packed too (an insert measures the
-- packed strings it reads against its own, packed once): indexes created
-- empty and filled row by row, on heap and on lsm, find each row's own
-- string first and give exact search's ten nearest distances
CREATE TABLE hi (i int, b bit(256));
CREATE TABLE hi_lsm (i int, b bit(256)) USING lsm;
CREATE INDEX hi_ham ON hi USING strata_hnsw (b bit_hamming_ops);
CREATE INDEX hi_jac ON hi USING strata_hnsw (b bit_jaccard_ops);
CREATE INDEX hi_lsm_ham ON hi_lsm USING strata_hnsw (b bit_hamming_ops);
INSERT INTO hi SELECT g, (SELECT string_agg(CASE WHEN hashint4(g * 7919 + k) % 3 = 0 THEN '1' ELSE '0' END, '')
                          FROM generate_series(1, 256) k)::bit(256)
FROM generate_series(1, 600) g;
INSERT INTO hi_lsm SELECT * FROM hi;
SET enable_seqscan = off;
SET strata.hnsw_ef_search = 100;
SELECT count(*) FILTER (WHERE (SELECT h.i FROM hi h ORDER BY h.b <~> hi.b LIMIT 1) = hi.i) AS hamming_self,
       count(*) FILTER (WHERE (SELECT h.i FROM hi h ORDER BY h.b <%> hi.b LIMIT 1) = hi.i) AS jaccard_self,
       count(*) FILTER (WHERE (SELECT h.i FROM hi_lsm h ORDER BY h.b <~> hi.b LIMIT 1) = hi.i) AS lsm_hamming_self
FROM hi WHERE i % 10 = 0;
CREATE TEMP TABLE hi_near AS
SELECT q.i, ARRAY(SELECT h.b <~> q.b FROM hi h ORDER BY h.b <~> q.b LIMIT 10) AS by_index
FROM hi q WHERE q.i % 20 = 0;
RESET enable_seqscan;
SET enable_indexscan = off;
SELECT count(*) AS queries,
       count(*) FILTER (WHERE by_index = ARRAY(SELECT h.b <~> q.b FROM hi h ORDER BY h.b <~> q.b LIMIT 10)) AS exact_top10
FROM hi_near n JOIN hi q USING (i);
RESET enable_indexscan;
-- VACUUM's repairs of the lists that named deleted rows measure packed
-- strings as well: every remaining row is still found first
DELETE FROM hi WHERE i % 3 = 0;
DELETE FROM hi_lsm WHERE i % 3 = 0;
VACUUM hi;
VACUUM hi_lsm;
SET enable_seqscan = off;
SELECT count(*) AS rows_left,
       count(*) FILTER (WHERE (SELECT h.i FROM hi h ORDER BY h.b <~> hi.b LIMIT 1) = hi.i) AS hamming_self,
       count(*) FILTER (WHERE (SELECT h.i FROM hi h ORDER BY h.b <%> hi.b LIMIT 1) = hi.i) AS jaccard_self,
       count(*) FILTER (WHERE (SELECT h.i FROM hi_lsm h ORDER BY h.b <~> hi.b LIMIT 1) = hi.i) AS lsm_hamming_self
FROM hi;
RESET enable_seqscan;
RESET strata.hnsw_ef_search;
DROP TABLE hi, hi_lsm, hi_near;
