-- Cases found by running PostgreSQL's own regression suite with
-- default_table_access_method = lsm; each must behave exactly as on heap.
\set VERBOSITY terse
SET default_table_access_method = lsm;

-- a BEFORE UPDATE trigger whose side effects update the same row: UPDATE
-- and MERGE both refuse (27000); MERGE used to retry forever
CREATE TABLE parent (aid int PRIMARY KEY, val1 text, bcnt int NOT NULL DEFAULT 0);
CREATE TABLE child (bid int PRIMARY KEY, aid int NOT NULL, val1 text);
CREATE FUNCTION parent_upd_func() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF old.val1 <> new.val1 THEN
    DELETE FROM child WHERE child.aid = new.aid AND child.val1 = new.val1;
  END IF;
  RETURN new;
END $$;
CREATE TRIGGER parent_upd_trig BEFORE UPDATE ON parent FOR EACH ROW EXECUTE PROCEDURE parent_upd_func();
CREATE FUNCTION child_del_func() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE parent SET bcnt = bcnt - 1 WHERE aid = old.aid;
  RETURN old;
END $$;
CREATE TRIGGER child_del_trig AFTER DELETE ON child FOR EACH ROW EXECUTE PROCEDURE child_del_func();
INSERT INTO parent VALUES (1, 'a', 1);
INSERT INTO child VALUES (10, 1, 'b');
UPDATE parent SET val1 = 'b' WHERE aid = 1;
MERGE INTO parent p USING (VALUES (1)) AS v(id) ON p.aid = v.id
  WHEN MATCHED THEN UPDATE SET val1 = 'b';
SELECT * FROM parent;
SELECT * FROM child;
DROP TABLE parent, child;
DROP FUNCTION parent_upd_func(), child_del_func();

-- ON CONFLICT DO UPDATE meeting a row the same command inserted: 21000,
-- in every isolation level (the lock failure must still show the row)
CREATE TABLE selfconflict (f1 int PRIMARY KEY, f2 int);
INSERT INTO selfconflict VALUES (1, 1), (1, 2) ON CONFLICT (f1) DO UPDATE SET f2 = 0;
BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO selfconflict VALUES (2, 1), (2, 2) ON CONFLICT (f1) DO UPDATE SET f2 = 0;
COMMIT;
INSERT INTO selfconflict VALUES (3, 1) ON CONFLICT (f1) DO UPDATE SET f2 = 0;
INSERT INTO selfconflict VALUES (3, 1) ON CONFLICT (f1) DO UPDATE SET f2 = 5;
SELECT * FROM selfconflict;
DROP TABLE selfconflict;

-- a BRIN index on an empty table (no metapage yet), then rows
CREATE TABLE brin_empty (n int);
CREATE INDEX brin_empty_idx ON brin_empty USING brin (n);
INSERT INTO brin_empty SELECT generate_series(1, 1000);
SET enable_seqscan = off;
SELECT count(*) FROM brin_empty WHERE n BETWEEN 10 AND 19;
RESET enable_seqscan;
DROP TABLE brin_empty;

-- parallel builds end the scan they were given (a concurrent build's scan
-- holds a registered snapshot: leaking it warned "resource was not closed")
CREATE TABLE pcic (id int, j jsonb) WITH (parallel_workers = 2);
INSERT INTO pcic SELECT g, jsonb_build_object('b', g % 10) FROM generate_series(1, 20000) g;
SET min_parallel_table_scan_size = 0;
SET max_parallel_maintenance_workers = 2;
CREATE INDEX CONCURRENTLY pcic_id ON pcic (id);
CREATE INDEX CONCURRENTLY pcic_j ON pcic USING gin (j jsonb_path_ops);
RESET min_parallel_table_scan_size;
RESET max_parallel_maintenance_workers;
SET enable_seqscan = off;
SELECT count(*) FROM pcic WHERE id BETWEEN 100 AND 199;
SELECT count(*) FROM pcic WHERE j @> '{"b": 3}';
RESET enable_seqscan;
DROP TABLE pcic;

-- index scans report versions dead to everyone (here: rolled-back inserts)
-- so btree kills their entries and reuses the space instead of growing
BEGIN;
SET LOCAL enable_seqscan = false;
SET LOCAL enable_indexonlyscan = false;
SET LOCAL enable_bitmapscan = false;
CREATE TABLE clean_aborted_self (key int, data text);
CREATE INDEX clean_aborted_self_key ON clean_aborted_self (key);
INSERT INTO clean_aborted_self (key, data) VALUES (-1, 'just to allocate metapage');
SELECT pg_relation_size('clean_aborted_self_key') AS size_before \gset
DO $$
BEGIN
  FOR i IN 1..100 LOOP
    BEGIN
      IF EXISTS (SELECT * FROM clean_aborted_self WHERE key > 0 AND key < 100) THEN
        RAISE data_corrupted USING MESSAGE = 'these rows should not exist';
      END IF;
      INSERT INTO clean_aborted_self SELECT g.i, 'rolling back in a sec' FROM generate_series(1, 100) g(i);
      RAISE reading_sql_data_not_permitted USING MESSAGE = 'round and round again';
    EXCEPTION WHEN reading_sql_data_not_permitted THEN END;
  END LOOP;
END $$;
SELECT :size_before = pg_relation_size('clean_aborted_self_key') AS index_did_not_grow;
ROLLBACK;
-- a TOAST table exactly when heap would have one: some column toastable
-- (not PLAIN) and a row able to pass the TOAST threshold
DO $$
DECLARE
  d text[];
  am text;
  p text;
  i int := 0;
BEGIN
  -- columns, then the columns made PLAIN
  FOREACH d SLICE 1 IN ARRAY ARRAY[['a int, b varchar(10)', ''], ['a int, b text', ''],
                                   ['a int, b text', 'b'], ['a int, b varchar(200), c varchar(200)', ''],
                                   ['a int, b varchar(600), c varchar(600)', ''],
                                   ['a int, b int8[], c text', 'b,c']] LOOP
    i := i + 1;
    FOREACH am IN ARRAY ARRAY['lsm', 'heap'] LOOP
      EXECUTE format('CREATE TABLE toast_%s_%s (%s) USING %s', i, am, d[1], am);
      FOREACH p IN ARRAY string_to_array(d[2], ',') LOOP
        EXECUTE format('ALTER TABLE toast_%s_%s ALTER %s SET STORAGE PLAIN', i, am, p);
      END LOOP;
    END LOOP;
  END LOOP;
END $$;
SELECT l.relname, l.reltoastrelid <> 0 AS lsm_toast, h.reltoastrelid <> 0 AS heap_toast
FROM pg_class l JOIN pg_class h ON h.relname = replace(l.relname, '_lsm', '_heap')
WHERE l.relname LIKE 'toast\_%\_lsm' ORDER BY 1;
-- a rewrite that leaves no toastable column drops it, like heap's
ALTER TABLE toast_2_lsm ALTER b SET STORAGE PLAIN;
ALTER TABLE toast_2_lsm ADD x int DEFAULT random()::int;
SELECT reltoastrelid <> 0 AS has_toast FROM pg_class WHERE relname = 'toast_2_lsm';
DO $$
BEGIN
  FOR i IN 1..6 LOOP
    EXECUTE format('DROP TABLE toast_%s_lsm, toast_%s_heap', i, i);
  END LOOP;
END $$;
