-- Bulk loads straight into runs: COPY, CREATE TABLE AS, INSERT ... SELECT
-- into tables without indexes or triggers write sorted runs, not L0.
CREATE TABLE bulk_src AS
SELECT g AS id, g % 100 AS grp, (g * 7919) % 1000003 AS v,
       'user' || g || '@example' || (g % 37) || '.com' AS email,
       '2026-01-01'::timestamptz + g * interval '1 second' AS ts,
       (ARRAY['new','open','closed','hold'])[1 + g % 4] AS status
FROM generate_series(1, 20000) g;
COPY bulk_src TO '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);

-- COPY: every row lands in runs below level 1 (level 2 holds a load of this
-- size), none in L0
CREATE TABLE bulk_copy (id int, grp int, v int, email text, ts timestamptz, status text) USING lsm;
COPY bulk_copy FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
SELECT count(*), sum(id), sum(v), count(DISTINCT email) FROM bulk_copy;
SELECT level, row_versions FROM strata.lsm_levels('bulk_copy') ORDER BY level;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_copy');
-- rows keep TID order, and TIDs reach them
SELECT count(*) FROM (SELECT ctid, lag(ctid) OVER () AS prev FROM bulk_copy) s WHERE prev >= ctid;
SELECT b.id FROM bulk_copy b WHERE b.ctid = (SELECT ctid FROM bulk_copy WHERE id = 12345);
SELECT (SELECT count(*) FROM bulk_copy a JOIN bulk_src s USING (id, grp, v, email, ts, status)) AS same_rows;

-- scans hand out the rows of a compressed page decoded once, side by side:
-- a scroll cursor going back and forth, and values kept across rows, match
SELECT compression_ratio > 1 AS compressed FROM strata.lsm_levels('bulk_copy') WHERE level > 0;
BEGIN;
DECLARE c SCROLL CURSOR FOR SELECT id, email FROM bulk_copy;
MOVE FORWARD 5000 IN c;
FETCH BACKWARD 3 FROM c;
FETCH RELATIVE 300 FROM c;
FETCH LAST FROM c;
FETCH PRIOR FROM c;
FETCH ABSOLUTE 1 FROM c;
COMMIT;
SELECT (SELECT md5(string_agg(email || ts, ',' ORDER BY id)) FROM bulk_copy)
     = (SELECT md5(string_agg(email || ts, ',' ORDER BY id)) FROM bulk_src) AS same_text;
SELECT count(*) FROM (SELECT id, lag(id) OVER w AS pid, lag(email) OVER w AS prev
                      FROM bulk_copy WINDOW w AS (ORDER BY ctid)) s
WHERE prev <> 'user' || pid || '@example' || (pid % 37) || '.com';
SELECT count(*) FROM (SELECT DISTINCT email FROM bulk_copy) s;
SELECT ctid, id FROM bulk_copy WHERE ctid >= '(10,250)' AND ctid < '(11,3)' ORDER BY ctid;

-- a second COPY adds runs after the first; a rolled-back one is invisible
COPY bulk_copy FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
BEGIN;
COPY bulk_copy FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
SELECT count(*) FROM bulk_copy;
ROLLBACK;
SELECT count(*), sum(id) FROM bulk_copy;
SELECT level, row_versions FROM strata.lsm_levels('bulk_copy') ORDER BY level;
-- VACUUM drops the aborted load's rows (its runs are merged away)
VACUUM bulk_copy;
SELECT sum(row_versions) FROM strata.lsm_levels('bulk_copy');
SELECT count(*), sum(id) FROM bulk_copy;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_copy');

-- rows written to L0 before the load are flushed first; the table mixes
-- L0, flushed and loaded rows, all found
CREATE TABLE bulk_mixed (id int, grp int, v int, email text, ts timestamptz, status text) USING lsm;
INSERT INTO bulk_mixed VALUES (-1, 0, 0, 'first', now(), 'x');
COPY bulk_mixed FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
INSERT INTO bulk_mixed VALUES (-2, 0, 0, 'last', now(), 'x');
SELECT level, row_versions FROM strata.lsm_levels('bulk_mixed') ORDER BY level;
SELECT count(*), sum(id) FROM bulk_mixed;
SELECT id FROM bulk_mixed WHERE id < 0 ORDER BY id;
UPDATE bulk_mixed SET status = 'touched' WHERE id % 1000 = 0;
DELETE FROM bulk_mixed WHERE id % 1000 = 1;
SELECT status, count(*) FROM bulk_mixed GROUP BY status ORDER BY status;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_mixed');

-- a table with indexes: each COPY batch's rows reach run pages, published
-- as the load's open run, before their index entries exist; every index is
-- complete, and unique checks find the load's own earlier rows
CREATE TABLE bulk_indexed (id int PRIMARY KEY, grp int, v int, email text, ts timestamptz, status text) USING lsm;
CREATE INDEX ON bulk_indexed (grp);
COPY bulk_indexed FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
SELECT level, row_versions FROM strata.lsm_levels('bulk_indexed') ORDER BY level;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_indexed');
CREATE EXTENSION amcheck;
CREATE EXTENSION pageinspect;
SELECT bt_index_check('bulk_indexed_pkey', true), bt_index_check('bulk_indexed_grp_idx', true);
-- index tuples on the leaf pages of a btree, live or killed (high keys not counted)
CREATE FUNCTION leaf_entries(idx regclass) RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(live_items + dead_items - CASE WHEN btpo_next <> 0 THEN 1 ELSE 0 END), 0)
  FROM generate_series(1, (pg_relation_size(idx) / current_setting('block_size')::int)::int - 1) b,
       bt_page_stats(idx::text, b) WHERE type = 'l' $$;
SET enable_seqscan = off;
SELECT count(*) FROM bulk_indexed WHERE grp = 7;
SELECT count(*) FROM bulk_indexed WHERE id BETWEEN 100 AND 199;
SELECT id, grp, email FROM bulk_indexed WHERE id = 12345;
RESET enable_seqscan;
SELECT count(*) FROM bulk_indexed WHERE grp = 7;
-- a key repeated within one load (and its batch) is refused
CREATE TABLE bulk_dup (id int PRIMARY KEY) USING lsm;
COPY bulk_dup FROM PROGRAM 'seq 1 3000' WITH (FORMAT csv);
COPY bulk_dup FROM PROGRAM 'seq 3001 6000; echo 4500' WITH (FORMAT csv);
COPY bulk_dup FROM PROGRAM 'seq 6001 9000 | sed -n "1,2999p;2500p"' WITH (FORMAT csv);
COPY bulk_dup FROM PROGRAM 'seq 9001 12000; echo 17' WITH (FORMAT csv);
SELECT count(*), sum(id::bigint) FROM bulk_dup;
VACUUM bulk_dup;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_dup');
SET enable_seqscan = off;
SELECT count(*) FROM bulk_dup WHERE id > 3000;
RESET enable_seqscan;
-- a load rolled back after its index entries were made: invisible through
-- every index; VACUUM drops its open run and its index entries
BEGIN;
COPY bulk_indexed FROM PROGRAM 'seq 100001 104000 | sed "s/.*/&,1,1,rolled back,2026-01-01,x/"' WITH (FORMAT csv);
SELECT count(*) FROM bulk_indexed WHERE id > 100000;
ROLLBACK;
SET enable_seqscan = off;
SELECT count(*) FROM bulk_indexed WHERE id > 100000;
SELECT count(*) FROM bulk_indexed WHERE grp = 1;
RESET enable_seqscan;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_indexed');
SELECT leaf_entries('bulk_indexed_pkey') AS pkey_entries;
VACUUM bulk_indexed;
SELECT leaf_entries('bulk_indexed_pkey') AS pkey_entries;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_indexed');
SELECT count(*) FROM bulk_indexed WHERE id > 100000;
-- the next load into the table is published again, and found
COPY bulk_indexed FROM PROGRAM 'seq 100001 103000 | sed "s/.*/&,1,1,reloaded,2026-01-01,x/"' WITH (FORMAT csv);
SET enable_seqscan = off;
SELECT count(*), min(id), max(id) FROM bulk_indexed WHERE id > 100000;
RESET enable_seqscan;
SELECT level, row_versions FROM strata.lsm_levels('bulk_indexed') ORDER BY level;
SELECT bt_index_check('bulk_indexed_pkey', true), bt_index_check('bulk_indexed_grp_idx', true);
DROP FUNCTION leaf_entries;
DROP EXTENSION pageinspect;
DROP EXTENSION amcheck;
-- an exclusion constraint checks each row against the load's earlier ones
CREATE TABLE bulk_excl (id int, r int4range, EXCLUDE USING gist (r WITH &&)) USING lsm;
COPY bulk_excl FROM PROGRAM 'seq 1 3000 | sed "s/.*/&,\"[&0,&5)\"/"' WITH (FORMAT csv);
COPY bulk_excl FROM PROGRAM 'seq 4001 7000 | sed "s/.*/&,\"[&0,&5)\"/"; echo "9,\"[40012,40013)\""' WITH (FORMAT csv);
SELECT count(*) FROM bulk_excl;
DROP TABLE bulk_dup, bulk_excl;

-- COPY FREEZE into a table truncated in the same transaction
BEGIN;
TRUNCATE bulk_copy;
COPY bulk_copy FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv, FREEZE);
COMMIT;
SELECT count(*), sum(id) FROM bulk_copy;
SELECT level, row_versions FROM strata.lsm_levels('bulk_copy') ORDER BY level;

-- a load in a subtransaction that rolls back leaves nothing; the next one does
BEGIN;
SAVEPOINT s1;
COPY bulk_copy FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
ROLLBACK TO s1;
COPY bulk_copy FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
COMMIT;
SELECT count(*), sum(id) FROM bulk_copy;

-- CREATE TABLE AS, materialized views and rewrites load into runs
CREATE TABLE bulk_ctas USING lsm AS SELECT * FROM bulk_src;
SELECT level, row_versions FROM strata.lsm_levels('bulk_ctas') ORDER BY level;
SELECT count(*), sum(v) FROM bulk_ctas;
CREATE MATERIALIZED VIEW bulk_mv USING lsm AS SELECT grp, count(*) AS n FROM bulk_src GROUP BY grp;
REFRESH MATERIALIZED VIEW bulk_mv;
SELECT count(*), sum(n) FROM bulk_mv;
CREATE TABLE bulk_rewrite AS SELECT * FROM bulk_src;
ALTER TABLE bulk_rewrite SET ACCESS METHOD lsm;
SELECT level, row_versions FROM strata.lsm_levels('bulk_rewrite') ORDER BY level;
SELECT count(*), sum(v) FROM bulk_rewrite;

-- INSERT ... SELECT: the first 1000 rows go to L0, the rest to a load that
-- ends before the transaction reads the table again
CREATE TABLE bulk_ins (LIKE bulk_src) USING lsm;
BEGIN;
INSERT INTO bulk_ins SELECT * FROM bulk_src;
SELECT count(*), sum(id) FROM bulk_ins;
UPDATE bulk_ins SET status = 'seen' WHERE id <= 3000 AND id % 2 = 0;
SELECT status = 'seen' AS seen, count(*) FROM bulk_ins WHERE id <= 3000 GROUP BY 1 ORDER BY 1;
COMMIT;
SELECT level, row_versions FROM strata.lsm_levels('bulk_ins') ORDER BY level;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_ins');
-- parallel plans in the loading transaction: the leader ends the load
-- before its workers are handed the table's runs (PostgreSQL's own
-- select_parallel suite once counted only the rows listed before the load),
-- for a parallel scan, a parallel index build and a parallel bitmap scan
CREATE TABLE bulk_par (LIKE bulk_src) USING lsm;
BEGIN;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL max_parallel_maintenance_workers = 2;
SET LOCAL parallel_leader_participation = off;
INSERT INTO bulk_par SELECT * FROM bulk_src;
EXPLAIN (COSTS OFF) SELECT count(*), sum(id) FROM bulk_par;
SELECT count(*), sum(id) FROM bulk_par;
INSERT INTO bulk_par SELECT * FROM bulk_src;
CREATE INDEX bulk_par_id ON bulk_par (id);
SET LOCAL enable_seqscan = off;
SET LOCAL enable_indexscan = off;
EXPLAIN (COSTS OFF) SELECT count(*), sum(id) FROM bulk_par WHERE id > 1;
SELECT count(*), sum(id) FROM bulk_par WHERE id > 1;
COMMIT;
SELECT count(*), sum(id) FROM bulk_par;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_par');
DROP TABLE bulk_par;
-- RETURNING sees each loaded row's own TID
WITH r AS (INSERT INTO bulk_ins SELECT * FROM bulk_src RETURNING ctid, id)
SELECT count(*), count(DISTINCT ctid), sum(id) FROM r;
SELECT count(*) FROM bulk_ins;
SELECT count(*) FROM bulk_ins a JOIN bulk_ins b ON a.ctid = b.ctid;
-- single-row inserts of many transactions stay single-row inserts (each
-- transaction's command ids start over; only one command's rows count)
CREATE TABLE bulk_singles (id int, v text) USING lsm;
DO $$ BEGIN
  FOR i IN 1..1500 LOOP
    INSERT INTO bulk_singles VALUES (i, 'one');
    COMMIT;
  END LOOP;
END $$;
SELECT count(*), sum(id) FROM bulk_singles;
SELECT level, row_versions FROM strata.lsm_levels('bulk_singles') ORDER BY level;
SELECT component, row_versions FROM strata.lsm_info('bulk_singles') WHERE component = 'L0';
DROP TABLE bulk_singles;
-- two loads in one transaction, then TRUNCATE: nothing is left
BEGIN;
INSERT INTO bulk_ins SELECT * FROM bulk_src;
INSERT INTO bulk_ins SELECT * FROM bulk_src;
TRUNCATE bulk_ins;
INSERT INTO bulk_ins SELECT * FROM bulk_src WHERE id <= 5000;
COMMIT;
SELECT count(*), sum(id) FROM bulk_ins;
-- a table dropped in the loading transaction commits cleanly
BEGIN;
CREATE TABLE bulk_gone (LIKE bulk_src) USING lsm;
INSERT INTO bulk_gone SELECT * FROM bulk_src;
DROP TABLE bulk_gone;
COMMIT;
-- a failed load leaves nothing behind
CREATE TABLE bulk_fail (id int CHECK (id < 15000), grp int, v int, email text, ts timestamptz, status text) USING lsm;
COPY bulk_fail FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
SELECT count(*) FROM bulk_fail;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_fail');
-- the VACUUM after loads has nothing to flush or merge: each load's runs
-- went to the level that holds them, not to level 1 (where four runs would
-- be merged), and rows come back the same
CREATE TABLE bulk_vac (LIKE bulk_src) USING lsm;
COPY bulk_vac FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
COPY bulk_vac FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
COPY bulk_vac FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
COPY bulk_vac FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
COPY bulk_vac FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
SELECT string_agg(component || ':' || level, ',' ORDER BY component) AS before_vacuum
FROM strata.lsm_info('bulk_vac') WHERE component LIKE 'run%' \gset
SELECT count(*) AS runs, min(level), max(level), current_setting('strata.lsm_level1_runs') AS level1_runs
FROM strata.lsm_info('bulk_vac') WHERE component LIKE 'run%';
VACUUM bulk_vac;
SELECT string_agg(component || ':' || level, ',' ORDER BY component) = :'before_vacuum' AS vacuum_rewrote_nothing
FROM strata.lsm_info('bulk_vac') WHERE component LIKE 'run%';
SELECT count(*), sum(v), count(DISTINCT id) FROM bulk_vac;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_vac');
-- a flush's level-1 run before a load keeps the load at level 1
INSERT INTO bulk_vac VALUES (0, 0, 0, 'single', now(), 'new');
VACUUM bulk_vac;
COPY bulk_vac FROM '/tmp/strata_lsm_bulk.csv' WITH (FORMAT csv);
SELECT level, count(*) AS runs FROM strata.lsm_info('bulk_vac') WHERE component LIKE 'run%' GROUP BY level ORDER BY level;
SELECT count(*) AS problems FROM strata.lsm_verify('bulk_vac');

DROP MATERIALIZED VIEW bulk_mv;
DROP TABLE bulk_src, bulk_copy, bulk_mixed, bulk_indexed, bulk_ctas, bulk_rewrite, bulk_ins, bulk_fail, bulk_vac;
