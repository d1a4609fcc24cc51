-- lsm run pages compressed (lz4 by default, or zstd): what flushes and merges write when
-- strata.lsm_compression_level > 0 (the default is 1), read back by every
-- scan type, modified in place (row headers stay uncompressed), and checked
-- by lsm_verify. Every result is compared with a heap copy of the same rows.
\set VERBOSITY terse
LOAD 'strata';
SHOW strata.lsm_compression_level;
SET strata.lsm_compression_level = 20;
SET strata.lsm_compression_level = -1;

CREATE TABLE h (id int PRIMARY KEY, grp int, name text, note text);
INSERT INTO h SELECT g, g % 50, 'customer ' || g, repeat('note ', g % 20)
FROM generate_series(1, 20000) g;
UPDATE h SET note = NULL WHERE id % 7 = 0;
CREATE TABLE z (LIKE h INCLUDING INDEXES) USING lsm;
CREATE INDEX z_grp ON z (grp);
INSERT INTO z SELECT * FROM h;
SELECT strata.lsm_flush('z') IS NOT NULL AS flushed;

-- level 1 holds more row bytes than page bytes: compressed
SELECT level, runs, row_versions, compression_ratio > 1.5 AS compressed
FROM strata.lsm_levels('z') WHERE level > 0;
VACUUM z;
SELECT pg_relation_size('z') < pg_relation_size('h') / 2 AS smaller_than_half_of_heap;

-- every way of reading returns the heap copy's rows
SELECT (SELECT md5(string_agg(format('%s|%s|%s|%s', id, grp, name, note), ',' ORDER BY id)) FROM z)
     = (SELECT md5(string_agg(format('%s|%s|%s|%s', id, grp, name, note), ',' ORDER BY id)) FROM h)
       AS seq_scan_matches;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM z WHERE id BETWEEN 100 AND 120;
SELECT count(*), sum(length(name)), count(note) FROM z WHERE id BETWEEN 100 AND 120;
SELECT count(*), sum(length(name)), count(note) FROM h WHERE id BETWEEN 100 AND 120;
SET enable_indexscan = off;
SET enable_bitmapscan = on;
EXPLAIN (COSTS OFF) SELECT * FROM z WHERE grp = 7;
SELECT count(*), sum(id), sum(length(note)) FROM z WHERE grp = 7;
SELECT count(*), sum(id), sum(length(note)) FROM h WHERE grp = 7;
RESET enable_seqscan;
RESET enable_indexscan;
RESET enable_bitmapscan;
SELECT name FROM z WHERE ctid = (SELECT ctid FROM z WHERE id = 5000);
SELECT count(*) FROM z WHERE ctid >= '(30,1)' AND ctid < '(40,1)';
ANALYZE z;
SELECT attname, n_distinct FROM pg_stats WHERE tablename = 'z' AND attname = 'grp';

-- writes to compressed rows: update, delete, row locks, foreign keys
UPDATE z SET name = 'renamed ' || id WHERE id % 100 = 0;
UPDATE h SET name = 'renamed ' || id WHERE id % 100 = 0;
DELETE FROM z WHERE id % 100 = 1;
DELETE FROM h WHERE id % 100 = 1;
SELECT id, name FROM z WHERE id = 300 FOR UPDATE;
CREATE TABLE child (id int PRIMARY KEY, zid int REFERENCES z (id)) USING lsm;
INSERT INTO child VALUES (1, 400), (2, 402);
INSERT INTO child VALUES (3, 401);
DELETE FROM z WHERE id = 400;
UPDATE z SET grp = -1 WHERE id = 402;
SELECT (SELECT md5(string_agg(format('%s|%s|%s', id, name, note), ',' ORDER BY id)) FROM z WHERE grp >= 0)
     = (SELECT md5(string_agg(format('%s|%s|%s', id, name, note), ',' ORDER BY id)) FROM h WHERE id <> 402)
       AS rows_match_after_writes;
SELECT * FROM strata.lsm_verify('z');

-- TOASTed values in compressed rows are deleted with their rows
CREATE TABLE t (id int, big text) USING lsm;
ALTER TABLE t ALTER COLUMN big SET STORAGE external;
INSERT INTO t SELECT g, repeat(md5(g::text), 100) FROM generate_series(1, 40) g;
INSERT INTO t SELECT g, 'small ' || g || repeat(' filler', 10) FROM generate_series(41, 2000) g;
SELECT strata.lsm_flush('t') IS NOT NULL AS flushed;
SELECT compression_ratio > 1 AS compressed FROM strata.lsm_levels('t') WHERE level = 1;
SELECT sum(length(big)) FROM t;
DELETE FROM t WHERE id <= 20;
UPDATE t SET big = 'replaced' WHERE id BETWEEN 21 AND 30;
SELECT count(*), sum(length(big)) FROM t;
-- 40 values of 2 chunks each; those of 30 rows were deleted with them
DO $$
DECLARE n int;
BEGIN
  EXECUTE format('SELECT count(*) FROM %s', (SELECT reltoastrelid::regclass FROM pg_class WHERE relname = 't')) INTO n;
  RAISE NOTICE 'toast chunks left: %', n;
END $$;
VACUUM t;
SELECT count(*), sum(length(big)) FROM t;

-- merges read compressed runs and write them again; VACUUM FULL copies rows out
SET strata.lsm_level1_runs = 2;
INSERT INTO z SELECT g, g % 50, 'customer ' || g, 'late' FROM generate_series(20001, 22000) g;
INSERT INTO h SELECT g, g % 50, 'customer ' || g, 'late' FROM generate_series(20001, 22000) g;
VACUUM z;
SELECT level, runs, row_versions, compression_ratio > 1.5 AS compressed
FROM strata.lsm_levels('z') WHERE level > 0;
VACUUM FULL z;
SELECT count(*), sum(id), count(note) FROM z;
SELECT count(*), sum(id), count(note) FROM h;
SELECT * FROM strata.lsm_verify('z');

-- level 0 writes uncompressed pages; incompressible rows stay uncompressed
SET strata.lsm_compression_level = 0;
CREATE TABLE u (id int, v text) USING lsm;
INSERT INTO u SELECT g, 'value ' || g FROM generate_series(1, 3000) g;
SELECT strata.lsm_flush('u') IS NOT NULL AS flushed;
SELECT compression_ratio < 1 AS uncompressed FROM strata.lsm_levels('u') WHERE level = 1;
RESET strata.lsm_compression_level;
CREATE TABLE r (id int, v bytea) USING lsm;
-- (128 random bytes a row: a compact page would hold only ~1.3x the rows)
INSERT INTO r SELECT g, decode(md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text)
  || md5((g * 17)::text) || md5((g * 19)::text) || md5((g * 23)::text)
  || md5((g * 29)::text) || md5((g * 31)::text), 'hex')
FROM generate_series(1, 3000) g;
SELECT strata.lsm_flush('r') IS NOT NULL AS flushed;
SELECT compression_ratio < 1 AS uncompressed FROM strata.lsm_levels('r') WHERE level = 1;
SELECT count(*), count(DISTINCT v) FROM r;
SELECT * FROM strata.lsm_verify('r');
DROP TABLE child, t, u, r, z, h;
