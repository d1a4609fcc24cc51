-- strata_hnsw format version 9: `vector` columns are stored at half
-- precision (scaled by a power of two) with a bound on the rounding; scans
-- hand the executor that bound and it rechecks the order on the rows' own
-- vectors, so results stay in exact distance order. Vectors binary16 holds
-- exactly (integers of up to 11 significant bits, say) are not rechecked.
\set VERBOSITY terse
SET enable_seqscan = off;

-- rows whose vectors differ below binary16's resolution around 1.0 (about
-- 0.001): stored alike, returned in their exact order for every operator
CREATE TABLE rn (id int PRIMARY KEY, v vector(3));
INSERT INTO rn SELECT g, ARRAY[1 + g * 0.0001, 0.5, -0.25]::real[]::vector
FROM generate_series(1, 9) g;
INSERT INTO rn SELECT 100 + g, ARRAY[g, g % 7, -g]::real[]::vector FROM generate_series(1, 200) g;
CREATE INDEX rn_l2 ON rn USING strata_hnsw (v vector_l2_ops);
SELECT format_version FROM strata.hnsw_info('rn_l2') WHERE layer = 0;
-- the build gives each distinct vector its element
SELECT elements FROM strata.hnsw_info('rn_l2') WHERE layer = 0;
SELECT array_agg(id) FROM (SELECT id FROM rn ORDER BY v <-> '[2,0.5,-0.25]' LIMIT 9) s;
SELECT array_agg(id) FROM (SELECT id FROM rn ORDER BY v <-> '[0,0.5,-0.25]' LIMIT 9) s;
-- inserted rows that round alike share an element when the bound it
-- records covers them (a copy of a row always does)
INSERT INTO rn SELECT 400 + id, v FROM rn WHERE id < 10;
INSERT INTO rn VALUES (500, '[1.00055,0.5,-0.25]');
SELECT elements FROM strata.hnsw_info('rn_l2') WHERE layer = 0;
SELECT array_agg(id) FROM (SELECT id FROM rn ORDER BY v <-> '[2,0.5,-0.25]', id LIMIT 6) s;
EXPLAIN (COSTS OFF) SELECT id FROM rn ORDER BY v <-> '[2,0.5,-0.25]' LIMIT 9;
DROP INDEX rn_l2;
CREATE INDEX rn_ip ON rn USING strata_hnsw (v vector_ip_ops);
SELECT array_agg(id) FROM (SELECT id FROM rn WHERE id < 100 ORDER BY v <#> '[1,0,0]' LIMIT 9) s;
DROP INDEX rn_ip;
CREATE INDEX rn_cos ON rn USING strata_hnsw (v vector_cosine_ops);
SELECT array_agg(id) FROM (SELECT id FROM rn WHERE id < 100 ORDER BY v <=> '[1,0,0]' LIMIT 9) s;
DROP INDEX rn_cos;
CREATE INDEX rn_l1 ON rn USING strata_hnsw (v vector_l1_ops);
SELECT array_agg(id) FROM (SELECT id FROM rn ORDER BY v <+> '[2,0.5,-0.25]' LIMIT 9) s;
DROP TABLE rn;

-- every operator returns what an exact search returns, in its order, on
-- vectors binary16 cannot hold (small data, ef_search past its size)
CREATE TABLE rr (id int PRIMARY KEY, v vector(16));
INSERT INTO rr SELECT g, (SELECT array_agg(sin(g * 12.9898 + i * 78.233) * 437.5453)
  FROM generate_series(1, 16) i)::real[]::vector FROM generate_series(1, 600) g;
CREATE TABLE rq (qid int, v vector(16));
INSERT INTO rq SELECT g, (SELECT array_agg(cos(g * 3.7 + i * 1.3) * 300)
  FROM generate_series(1, 16) i)::real[]::vector FROM generate_series(1, 20) g;
CREATE INDEX rr_l2 ON rr USING strata_hnsw (v vector_l2_ops);
CREATE INDEX rr_ip ON rr USING strata_hnsw (v vector_ip_ops);
CREATE INDEX rr_cos ON rr USING strata_hnsw (v vector_cosine_ops);
CREATE INDEX rr_l1 ON rr USING strata_hnsw (v vector_l1_ops);
SET strata.hnsw_ef_search = 1000;
-- per operator: queries whose rows come back in nondecreasing exact
-- distance (all of them: the executor rechecks the rounded ones), and how
-- many of the exact top 10s the index finds (a graph may miss a row: at
-- least 190 of 200)
CREATE FUNCTION exact_order(op text, OUT ordered int, OUT found_190 bool) LANGUAGE plpgsql AS $$
DECLARE q record; d float8[]; a int[]; b int[]; hits int := 0;
BEGIN
  ordered := 0;
  FOR q IN SELECT * FROM rq LOOP
    SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
    EXECUTE format('SELECT array_agg(id), array_agg(d) FROM (SELECT id, v %s $1 AS d FROM rr ORDER BY v %s $1 LIMIT 10) s', op, op)
      INTO a, d USING q.v;
    SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
    EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM rr ORDER BY v %s $1, id LIMIT 10) s', op) INTO b USING q.v;
    IF d = (SELECT array_agg(x ORDER BY x) FROM unnest(d) x) THEN ordered := ordered + 1; END IF;
    hits := hits + (SELECT count(*) FROM unnest(a) x WHERE x = ANY (b));
  END LOOP;
  found_190 := hits >= 190;
END $$;
SELECT 'l2' AS op, * FROM exact_order('<->') UNION ALL SELECT 'ip', * FROM exact_order('<#>')
UNION ALL SELECT 'cos', * FROM exact_order('<=>') UNION ALL SELECT 'l1', * FROM exact_order('<+>');
-- a query's own row is found first, at distance 0
SELECT count(*) FROM rr WHERE id = (SELECT id FROM rr r2 ORDER BY r2.v <-> rr.v LIMIT 1) AND id <= 50;
RESET strata.hnsw_ef_search;

-- half the vector bytes: at 128 dimensions 7 elements a page where
-- version 8 fits 6
CREATE TABLE rw (id int PRIMARY KEY, v vector(128));
INSERT INTO rw SELECT g, (SELECT array_agg(sin(g * 1.1 + i * 0.37)) FROM generate_series(1, 128) i)::real[]::vector
FROM generate_series(1, 1400) g;
CREATE INDEX rw_9 ON rw USING strata_hnsw (v vector_l2_ops);
SET strata.hnsw_format_version = 8;
CREATE INDEX rw_8 ON rw USING strata_hnsw (v vector_l2_ops);
RESET strata.hnsw_format_version;
SELECT format_version FROM strata.hnsw_info('rw_9') WHERE layer = 0
UNION ALL SELECT format_version FROM strata.hnsw_info('rw_8') WHERE layer = 0;
SELECT pg_relation_size('rw_9') < 0.9 * pg_relation_size('rw_8') AS smaller;
-- both find the same rows (a version-8 index stays readable and writable)
INSERT INTO rw SELECT 2000 + g, (SELECT array_agg(cos(g * 0.9 + i * 0.41)) FROM generate_series(1, 128) i)::real[]::vector
FROM generate_series(1, 50) g;
SET strata.hnsw_ef_search = 200;
SELECT count(*) FROM rw a WHERE a.id > 2000 AND a.id = (SELECT b.id FROM rw b ORDER BY b.v <-> a.v LIMIT 1);
DROP INDEX rw_9;
SELECT count(*) FROM rw a WHERE a.id > 2000 AND a.id = (SELECT b.id FROM rw b ORDER BY b.v <-> a.v LIMIT 1);
RESET strata.hnsw_ef_search;
DROP TABLE rw;

-- any finite float4 fits: vectors far past binary16's range or below its
-- smallest values are scaled, and still found in exact order
CREATE TABLE rx (id int PRIMARY KEY, v vector(4));
INSERT INTO rx VALUES (1, '[1e15,2e15,3e15,4e15]'), (2, '[1.000001e15,2e15,3e15,4e15]'),
  (3, '[1e-15,2e-15,3e-15,4e-15]'), (4, '[1.000001e-15,2e-15,3e-15,4e-15]'),
  (5, '[70000,-70000,1,0]'), (6, '[0,0,0,0]');
CREATE INDEX rx_l2 ON rx USING strata_hnsw (v vector_l2_ops);
SELECT array_agg(id) FROM (SELECT id FROM rx ORDER BY v <-> '[1e15,2e15,3e15,4e15]' LIMIT 2) s;
SELECT array_agg(id) FROM (SELECT id FROM rx ORDER BY v <-> '[1e-15,2e-15,3e-15,4e-15]' LIMIT 3) s;
SELECT array_agg(id) FROM (SELECT id FROM rx ORDER BY v <-> '[70000,-70000,1,0]' LIMIT 2) s;
-- where float4 overflows (the operator says Infinity) the graph measures
-- in float8: the row at distance 0 still comes first
INSERT INTO rx VALUES (7, '[1e30,2e30,3e30,4e30]'), (8, '[1.000001e30,2e30,3e30,4e30]');
SELECT id, v <-> '[1e30,2e30,3e30,4e30]' AS d FROM rx ORDER BY v <-> '[1e30,2e30,3e30,4e30]' LIMIT 3;
DROP TABLE rx;
RESET enable_seqscan;
