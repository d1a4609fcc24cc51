-- strata_hnsw format versions 4 and 5: codes of each element's level-0 neighbors
-- guide scans (64 dimensions here: codes start at 32). Answers are exact-
-- distance ordered and equal an exact search's; inserts, deletes, VACUUM,
-- iterative scans and lsm tables work on coded indexes; L1 and older formats
-- have no codes. strata.hnsw_codes = on keeps the codes whatever the
-- build's calibration measures (auto, the default, drops them where they do
-- not pay; the graph is random, so that choice could differ run to run).
-- An HNSW search is approximate: the counts are of queries (of 40) whose
-- ten answers are exactly the true ten.
\set VERBOSITY terse
SET strata.hnsw_codes = on;
CREATE TABLE hc (id int PRIMARY KEY, cat int, v vector(64));
-- 40 clusters of points around sin patterns, seeded noise; 40 queries
-- drawn the same way
SELECT setseed(0.25);
CREATE FUNCTION point(g int, noise float8) RETURNS vector LANGUAGE sql AS $$
  SELECT (SELECT array_agg(sin((g % 40) * 1.7 + k * 0.31) * 3 + noise * (random() - 0.5) ORDER BY k)
          FROM generate_series(1, 64) k)::real[]::vector $$;
INSERT INTO hc SELECT g, g % 7, point(g, 1.0) FROM generate_series(1, 2000) g;
CREATE TABLE hq (g int PRIMARY KEY, q vector(64));
INSERT INTO hq SELECT g, point(g, 1.0) FROM generate_series(1, 40) g;
CREATE INDEX hc_l2 ON hc USING strata_hnsw (v vector_l2_ops);
CREATE INDEX hc_ip ON hc USING strata_hnsw (v vector_ip_ops);
CREATE INDEX hc_cos ON hc USING strata_hnsw (v vector_cosine_ops);
CREATE INDEX hc_l1 ON hc USING strata_hnsw (v vector_l1_ops);
SET strata.hnsw_format_version = 3;
CREATE INDEX hc_v3 ON hc USING strata_hnsw (v vector_l2_ops);
RESET strata.hnsw_format_version;
SELECT x.indexrelid::regclass::text AS index, format_version, code_bits, code_scale BETWEEN 1 AND 4 AS scaled
FROM pg_index x, LATERAL strata.hnsw_info(x.indexrelid) i
WHERE x.indrelid = 'hc'::regclass AND x.indexrelid::regclass::text <> 'hc_pkey' AND i.layer = 0
ORDER BY 1;

-- the index's answers equal an exact search's (the same ten distances, so
-- ties may differ in which row), in exact distance order
CREATE FUNCTION codes_match(q vector, op text, filter text DEFAULT 'true') RETURNS bool
LANGUAGE plpgsql AS $$
DECLARE a float8[]; b float8[];
BEGIN
  SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
  EXECUTE format('SELECT array_agg(v %s $1) FROM (SELECT v FROM hc WHERE %s ORDER BY v %s $1 LIMIT 10) s', op, filter, op)
    INTO a USING q;
  SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;
  EXECUTE format('SELECT array_agg(v %s $1) FROM (SELECT v FROM hc WHERE %s ORDER BY v %s $1 LIMIT 10) s', op, filter, op)
    INTO b USING q;
  RETURN a = b;
END $$;
CREATE FUNCTION query(i int) RETURNS vector LANGUAGE sql AS $$ SELECT q FROM hq WHERE g = i $$;
SELECT count(*) FILTER (WHERE codes_match(query(g), '<->')) >= 38 AS l2,
       count(*) FILTER (WHERE codes_match(query(g), '<#>')) >= 38 AS ip,
       count(*) FILTER (WHERE codes_match(query(g), '<=>')) >= 38 AS cos,
       count(*) FILTER (WHERE codes_match(query(g), '<+>')) >= 38 AS l1
FROM generate_series(1, 40) g;
-- the version-3 index (no codes) gives the same answers (at a wider
-- ef_search: without codes a search reads fewer elements per candidate
-- kept; at 40, one of nine builds of this random graph fell short)
DROP INDEX hc_l2;
SET strata.hnsw_ef_search = 80;
SELECT count(*) FILTER (WHERE codes_match(query(g), '<->')) >= 38 AS v3
FROM generate_series(1, 40) g;
RESET strata.hnsw_ef_search;
DROP INDEX hc_v3;
-- a version-4 index (8-byte ids, ten row slots per element) is maintained
-- alongside the next index through inserts, deletes and VACUUM
SET strata.hnsw_format_version = 4;
CREATE INDEX hc_v4 ON hc USING strata_hnsw (v vector_l2_ops);
RESET strata.hnsw_format_version;
CREATE INDEX hc_l2 ON hc USING strata_hnsw (v vector_l2_ops);

-- inserts write codes into the new lists and the back links
INSERT INTO hc SELECT g, g % 7, point(g, 1.0) FROM generate_series(2001, 2600) g;
SELECT count(*) FILTER (WHERE codes_match(query(g), '<->')) >= 38 AS after_inserts
FROM generate_series(1, 40) g;
-- deletes and VACUUM (repairs write codes too)
DELETE FROM hc WHERE id % 3 = 0;
VACUUM hc;
SELECT count(*) FILTER (WHERE codes_match(query(g), '<->')) >= 38 AS after_vacuum,
       count(*) FILTER (WHERE codes_match(query(g), '<=>')) >= 38 AS after_vacuum_cos
FROM generate_series(1, 40) g;
-- and answers the same on its own
DROP INDEX hc_l2;
SELECT format_version, code_bits FROM strata.hnsw_info('hc_v4') WHERE layer = 0;
SELECT count(*) FILTER (WHERE codes_match(query(g), '<->')) >= 38 AS v4_after_vacuum
FROM generate_series(1, 40) g;
DROP INDEX hc_v4;
CREATE INDEX hc_l2 ON hc USING strata_hnsw (v vector_l2_ops);
-- a filtered query gets full LIMITs (iterative scan over the guided search),
-- exact at ef_search 100 (at the default 40 a random graph misses one of the
-- ten true rows in some of these 40 queries: all 40 exact in 7 of 8 builds,
-- 38 in one, and this check at >= 38 failed about once in 16 runs)
SET strata.hnsw_ef_search = 100;
SELECT count(*) FILTER (WHERE codes_match(query(g), '<->', 'cat = 3')) >= 38 AS filtered
FROM generate_series(1, 40) g;
RESET strata.hnsw_ef_search;
SET enable_seqscan = off;
SET strata.hnsw_ef_search = 10;
SELECT count(*) AS full_limit FROM (SELECT id FROM hc WHERE cat = 3 ORDER BY v <-> query(5) LIMIT 50) s;
-- every row once when the whole index is walked
SELECT count(*) = (SELECT count(*) FROM hc) AS every_row, count(DISTINCT id) = count(*) AS once
FROM (SELECT id FROM hc ORDER BY v <-> query(7)) s;
RESET strata.hnsw_ef_search;
RESET enable_seqscan;

-- an lsm table
CREATE TABLE hcl (id int PRIMARY KEY, cat int, v vector(64)) USING lsm;
INSERT INTO hcl SELECT * FROM hc;
CREATE INDEX hcl_v ON hcl USING strata_hnsw (v vector_l2_ops);
SET enable_seqscan = off;
SELECT array_agg(id ORDER BY id) = (SELECT array_agg(id ORDER BY id) FROM
         (SELECT id FROM hc ORDER BY v <-> query(11) LIMIT 10) s2) AS lsm_same
FROM (SELECT id FROM hcl ORDER BY v <-> query(11) LIMIT 10) s;
RESET enable_seqscan;

-- below 32 dimensions an index has no codes
CREATE TABLE hs (v vector(16));
INSERT INTO hs SELECT ARRAY(SELECT sin(g * k) FROM generate_series(1, 16) k)::real[]::vector
FROM generate_series(1, 100) g;
CREATE INDEX hs_v ON hs USING strata_hnsw (v);
SELECT format_version, code_bits FROM strata.hnsw_info('hs_v') WHERE layer = 0;
-- off: none; auto: the build decides (the calibration's unit tests show
-- both outcomes)
SET strata.hnsw_codes = off;
CREATE INDEX hcl_off ON hcl USING strata_hnsw (v vector_l2_ops);
SELECT code_bits FROM strata.hnsw_info('hcl_off') WHERE layer = 0;
RESET strata.hnsw_codes;
DROP TABLE hc, hq, hcl, hs;
DROP FUNCTION codes_match(vector, text, text);
DROP FUNCTION query(int);
DROP FUNCTION point(int, float8);
