-- Logical decoding of lsm tables (strata preloaded, wal_level = logical):
-- every statement runs on a heap table and on an lsm table, and
-- test_decoding's stream for the lsm table is heap's, table name aside —
-- inserts, COPY, updates with and without a key change, deletes, ON
-- CONFLICT (both arms), TOASTed values (new, unchanged, in the old row),
-- replica identity DEFAULT / FULL / USING INDEX / NOTHING, subtransactions
-- rolled back in part, aborted transactions, two-phase commit, TRUNCATE.
CREATE TABLE dec_h (a int PRIMARY KEY, b text, c int, u int NOT NULL);
CREATE TABLE dec_l (a int PRIMARY KEY, b text, c int, u int NOT NULL) USING lsm;
CREATE UNIQUE INDEX ON dec_h (u);
CREATE UNIQUE INDEX ON dec_l (u);
ALTER TABLE dec_h ALTER COLUMN b SET STORAGE EXTERNAL;
ALTER TABLE dec_l ALTER COLUMN b SET STORAGE EXTERNAL;
-- an incompressible value stored out of line (4,096 bytes)
CREATE FUNCTION big(seed int) RETURNS text LANGUAGE sql AS
  $$ SELECT string_agg(md5((seed * 1000 + g)::text), '') FROM generate_series(1, 128) g $$;
SELECT 'init' FROM pg_create_logical_replication_slot('strata_dec', 'test_decoding');
INSERT INTO dec_h VALUES (1, 'one', 10, 1), (2, 'two', 20, 2);
INSERT INTO dec_l VALUES (1, 'one', 10, 1), (2, 'two', 20, 2);
COPY dec_h FROM STDIN;
3	three	30	3
4	four	40	4
\.
COPY dec_l FROM STDIN;
3	three	30	3
4	four	40	4
\.
-- the updates and deletes below find these rows in a run
SELECT count(*) > 0 AS flushed FROM strata.lsm_flush('dec_l');
UPDATE dec_h SET c = c + 1 WHERE a = 1;
UPDATE dec_l SET c = c + 1 WHERE a = 1;
UPDATE dec_h SET a = 12 WHERE a = 2;
UPDATE dec_l SET a = 12 WHERE a = 2;
DELETE FROM dec_h WHERE a = 1;
DELETE FROM dec_l WHERE a = 1;
-- after a checkpoint the next change of each page logs its image: the
-- inserted rows are still decoded (their record keeps its data)
CHECKPOINT;
BEGIN;
INSERT INTO dec_h VALUES (7, 'x', 7, 7);
SAVEPOINT s;
INSERT INTO dec_h VALUES (8, 'y', 8, 8);
ROLLBACK TO s;
INSERT INTO dec_h VALUES (9, 'z', 9, 9);
COMMIT;
BEGIN;
INSERT INTO dec_l VALUES (7, 'x', 7, 7);
SAVEPOINT s;
INSERT INTO dec_l VALUES (8, 'y', 8, 8);
ROLLBACK TO s;
INSERT INTO dec_l VALUES (9, 'z', 9, 9);
COMMIT;
BEGIN;
INSERT INTO dec_h VALUES (100, 'gone', 1, 100);
ROLLBACK;
BEGIN;
INSERT INTO dec_l VALUES (100, 'gone', 1, 100);
ROLLBACK;
INSERT INTO dec_h VALUES (3, 'dup', 0, 3) ON CONFLICT (a) DO UPDATE SET b = excluded.b;
INSERT INTO dec_l VALUES (3, 'dup', 0, 3) ON CONFLICT (a) DO UPDATE SET b = excluded.b;
INSERT INTO dec_h VALUES (5, 'new', 0, 5) ON CONFLICT (a) DO UPDATE SET b = excluded.b;
INSERT INTO dec_l VALUES (5, 'new', 0, 5) ON CONFLICT (a) DO UPDATE SET b = excluded.b;
INSERT INTO dec_h VALUES (6, 'skip', 0, 5) ON CONFLICT DO NOTHING;
INSERT INTO dec_l VALUES (6, 'skip', 0, 5) ON CONFLICT DO NOTHING;
INSERT INTO dec_h SELECT g, big(g), g, g FROM generate_series(20, 21) g;
INSERT INTO dec_l SELECT g, big(g), g, g FROM generate_series(20, 21) g;
UPDATE dec_h SET c = 5 WHERE a = 20;
UPDATE dec_l SET c = 5 WHERE a = 20;
UPDATE dec_h SET a = 22 WHERE a = 21;
UPDATE dec_l SET a = 22 WHERE a = 21;
ALTER TABLE dec_h REPLICA IDENTITY FULL;
ALTER TABLE dec_l REPLICA IDENTITY FULL;
UPDATE dec_h SET c = 6 WHERE a = 3;
UPDATE dec_l SET c = 6 WHERE a = 3;
DELETE FROM dec_h WHERE a = 20;
DELETE FROM dec_l WHERE a = 20;
ALTER TABLE dec_h REPLICA IDENTITY USING INDEX dec_h_u_idx;
ALTER TABLE dec_l REPLICA IDENTITY USING INDEX dec_l_u_idx;
UPDATE dec_h SET u = 33 WHERE a = 3;
UPDATE dec_l SET u = 33 WHERE a = 3;
DELETE FROM dec_h WHERE a = 4;
DELETE FROM dec_l WHERE a = 4;
ALTER TABLE dec_h REPLICA IDENTITY NOTHING;
ALTER TABLE dec_l REPLICA IDENTITY NOTHING;
DELETE FROM dec_h WHERE a = 5;
DELETE FROM dec_l WHERE a = 5;
BEGIN;
INSERT INTO dec_h VALUES (40, 'prepared', 40, 40);
PREPARE TRANSACTION 'dec_h';
COMMIT PREPARED 'dec_h';
BEGIN;
INSERT INTO dec_l VALUES (40, 'prepared', 40, 40);
PREPARE TRANSACTION 'dec_l';
COMMIT PREPARED 'dec_l';
BEGIN;
INSERT INTO dec_l VALUES (41, 'prepared, then rolled back', 41, 41);
PREPARE TRANSACTION 'dec_l2';
ROLLBACK PREPARED 'dec_l2';
-- a COPY whose rows (values TOASTed out of line) fill more than one L0
-- page: a batch that does not fit the page it starts on takes two INSERT
-- records, all the batch's TOAST chunks are logged before the first, and
-- decoding keeps them to the batch's last row, as for heap's multi-insert
CREATE TABLE dec_hc (a int PRIMARY KEY, b text);
CREATE TABLE dec_lc (a int PRIMARY KEY, b text) USING lsm;
ALTER TABLE dec_hc ALTER COLUMN b SET STORAGE EXTERNAL;
ALTER TABLE dec_lc ALTER COLUMN b SET STORAGE EXTERNAL;
COPY (SELECT g, big(g) FROM generate_series(1, 300) g) TO '/tmp/strata_dec_copy.csv' WITH (FORMAT csv);
COPY dec_hc FROM '/tmp/strata_dec_copy.csv' WITH (FORMAT csv);
COPY dec_lc FROM '/tmp/strata_dec_copy.csv' WITH (FORMAT csv);
SELECT pages > 1 AS several_l0_pages FROM strata.lsm_info('dec_lc') WHERE component = 'L0';
TRUNCATE dec_h;
TRUNCATE dec_l;
CREATE TEMP TABLE changes AS
SELECT n, data FROM pg_logical_slot_get_changes('strata_dec', NULL, NULL,
    'include-xids', '0', 'skip-empty-xacts', '1') WITH ORDINALITY AS c(lsn, xid, data, n);
-- the lsm table's changes (long values cut)
SELECT regexp_replace(data, '''[0-9a-f]{200}[0-9a-f]*''', '<long value>', 'g') AS lsm_change
FROM changes WHERE data LIKE 'table public.dec_l:%' ORDER BY n;
-- heap's, with the table name replaced, are the same
SELECT (SELECT array_agg(replace(data, 'public.dec_h:', 'public.dec_l:') ORDER BY n)
        FROM changes WHERE data LIKE 'table public.dec_h:%')
     = (SELECT array_agg(data ORDER BY n) FROM changes WHERE data LIKE 'table public.dec_l:%')
  AS same_as_heap;
-- the COPY's rows: every value decoded (none "unchanged-toast-datum"), as heap's
SELECT count(*) AS copied_rows,
       count(*) FILTER (WHERE data LIKE '%unchanged-toast-datum%') AS values_lost
FROM changes WHERE data LIKE 'table public.dec_lc:%';
SELECT (SELECT array_agg(replace(data, 'public.dec_hc:', 'public.dec_lc:') ORDER BY n)
        FROM changes WHERE data LIKE 'table public.dec_hc:%')
     = (SELECT array_agg(data ORDER BY n) FROM changes WHERE data LIKE 'table public.dec_lc:%')
  AS copy_same_as_heap;
SELECT count(*) AS transactions FROM changes WHERE data = 'COMMIT';
SELECT pg_drop_replication_slot('strata_dec');
DROP TABLE dec_h, dec_l, dec_hc, dec_lc;
DROP FUNCTION big(int);
