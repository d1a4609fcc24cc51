-- strata_hnsw on halfvec columns (elements stored as binary16, format
-- version 6): the four operator classes on heap and lsm tables, inserts
-- after the build, duplicates, NULLs and zero vectors, VACUUM, up to 4,000
-- dimensions, and the answers of exact search. The small cases' answers
-- are pgvector 0.8.6's (its hnsw on the same data and queries).
SET enable_seqscan = off;

CREATE TABLE hv (i int, v halfvec(3));
INSERT INTO hv VALUES (1, '[1,2,3]'), (2, '[1,1,1]'), (3, '[0,0,0]'), (4, '[-1,2,0.5]'),
    (5, NULL), (6, '[1,2,3]'), (7, '[2.1,0,-3]');

-- L2: every indexed row in distance order (NULL is not indexed; the index
-- scan under LIMIT, ties then ordered by i)
CREATE INDEX hv_idx ON hv USING strata_hnsw (v halfvec_l2_ops);
EXPLAIN (COSTS OFF) SELECT i FROM hv ORDER BY v <-> '[1,2,3.5]' LIMIT 3;
SELECT i, v, round(d::numeric, 4) AS d
FROM (SELECT i, v, v <-> '[1,2,3.5]' AS d FROM hv ORDER BY v <-> '[1,2,3.5]' LIMIT 10) s ORDER BY d, i;
-- a row inserted after the build; the query's binary16 rounding is the column's
INSERT INTO hv VALUES (8, '[1,2,3.4]');
SELECT i, v FROM hv ORDER BY v <-> '[1,2,3.41]' LIMIT 1;
-- a filtered query at default settings; a query of other dimensions; bad input
SELECT i FROM hv WHERE i % 2 = 0 ORDER BY v <-> '[1,2,3]' LIMIT 3;
SELECT i FROM hv ORDER BY v <-> '[1,2]' LIMIT 1;
SELECT i FROM hv ORDER BY v <-> '[1,2,70000]' LIMIT 1;
INSERT INTO hv VALUES (9, '[1,2]');
DROP INDEX hv_idx;

-- inner product, cosine (the zero vector is not indexed), L1
CREATE INDEX hv_idx ON hv USING strata_hnsw (v halfvec_ip_ops);
SELECT i, d FROM (SELECT i, v <#> '[1,-1,2]' AS d FROM hv ORDER BY v <#> '[1,-1,2]' LIMIT 10) s ORDER BY d, i;
DROP INDEX hv_idx;
CREATE INDEX hv_idx ON hv USING strata_hnsw (v halfvec_cosine_ops);
SELECT i, round(d::numeric, 4) AS d
FROM (SELECT i, v <=> '[2,4,6]' AS d FROM hv ORDER BY v <=> '[2,4,6]' LIMIT 10) s ORDER BY d, i;
DROP INDEX hv_idx;
CREATE INDEX hv_idx ON hv USING strata_hnsw (v halfvec_l1_ops);
SELECT i, d FROM (SELECT i, v <+> '[1,1,1]' AS d FROM hv ORDER BY v <+> '[1,1,1]' LIMIT 10) s ORDER BY d, i;
DROP INDEX hv_idx;

-- halfvec_l2_ops is the default (as vector_l2_ops is for vector; pgvector
-- names no default); VACUUM drops deleted rows' entries
CREATE INDEX hv_idx ON hv USING strata_hnsw (v);
DELETE FROM hv WHERE i IN (1, 6);
VACUUM hv;
SELECT i FROM hv ORDER BY v <-> '[1,2,3]' LIMIT 2;
SELECT sum(elements) AS elements FROM strata.hnsw_info('hv_idx') WHERE layer = 0;
DROP TABLE hv;

-- 450 rows on an lsm table: the index finds what exact search finds (the
-- build runs on several threads, so the graph differs from run to run:
-- recall, not equality)
CREATE TABLE hl (i int PRIMARY KEY, v halfvec(16)) USING lsm;
INSERT INTO hl SELECT g, ARRAY(SELECT sin(g * 7 + k) * 3 FROM generate_series(1, 16) k)::halfvec
FROM generate_series(1, 400) g;
CREATE INDEX ON hl USING strata_hnsw (v halfvec_l2_ops);
SET strata.hnsw_ef_search = 100;
INSERT INTO hl SELECT g, ARRAY(SELECT cos(g * 5 + k) * 3 FROM generate_series(1, 16) k)::halfvec
FROM generate_series(401, 450) g;
CREATE TEMP TABLE q AS SELECT g AS qi, ARRAY(SELECT sin(g * 11 + k) * 3 FROM generate_series(1, 16) k)::halfvec AS qv
FROM generate_series(1, 10) g;
CREATE TEMP TABLE approx AS
SELECT qi, (SELECT array_agg(i ORDER BY d, i) FROM (SELECT i, v <-> qv AS d FROM hl ORDER BY v <-> qv LIMIT 5) s) AS ids
FROM q;
SET enable_seqscan = on;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
CREATE TEMP TABLE exact AS
SELECT qi, (SELECT array_agg(i ORDER BY d, i) FROM (SELECT i, v <-> qv AS d FROM hl ORDER BY v <-> qv, i LIMIT 5) s) AS ids
FROM q;
RESET enable_indexscan;
RESET enable_bitmapscan;
RESET strata.hnsw_ef_search;
SELECT count(*) AS queries, sum((SELECT count(*) FROM unnest(a.ids) x WHERE x = ANY (e.ids))) >= 48 AS recall_at_least_096
FROM approx a JOIN exact e USING (qi);
DROP TABLE hl;

-- dimensions: halfvec indexes take up to 4,000 (vector ones 2,000)
SET enable_seqscan = off;
CREATE TABLE hw (i int, v halfvec(4000));
INSERT INTO hw SELECT g, array_fill(g::real / 10, ARRAY[4000])::halfvec FROM generate_series(1, 5) g;
CREATE INDEX ON hw USING strata_hnsw (v halfvec_l1_ops);
SELECT i FROM hw ORDER BY v <+> array_fill(0.32::real, ARRAY[4000])::halfvec LIMIT 2;
DROP TABLE hw;
CREATE TABLE hw (v halfvec(4001));
CREATE INDEX ON hw USING strata_hnsw (v halfvec_l2_ops);
DROP TABLE hw;
CREATE TABLE hw (v halfvec);
CREATE INDEX ON hw USING strata_hnsw (v halfvec_l2_ops);
DROP TABLE hw;
-- formats before 6 store float4 only
CREATE TABLE hw (v halfvec(2));
SET strata.hnsw_format_version = 5;
CREATE INDEX ON hw USING strata_hnsw (v halfvec_l2_ops);
RESET strata.hnsw_format_version;
CREATE INDEX hw_idx ON hw USING strata_hnsw (v halfvec_l2_ops);
SELECT format_version FROM strata.hnsw_info('hw_idx') WHERE layer = 0;
DROP TABLE hw;
RESET enable_seqscan;
