-- The shared cache of decoded compressed pages (strata.lsm_block_cache):
-- point lookups on compressed run pages read rows from it once a page has
-- missed twice; every answer equals a heap copy's, also after updates,
-- deletes, merges (new pages, new keys) and for rows with NULLs, wide and
-- TOASTed values, and columns added later.
\set VERBOSITY terse
LOAD 'strata';
SHOW strata.lsm_block_cache;
-- -1: an eighth of shared_buffers (at least 8MB)
SELECT size_bytes = greatest(pg_size_bytes(current_setting('shared_buffers')) / 8, 8 * 1024 * 1024) AS eighth_of_shared_buffers
FROM strata.lsm_block_cache();
SET strata.lsm_block_cache = '1MB';

CREATE TABLE h (id int PRIMARY KEY, grp int, name text, note text);
INSERT INTO h SELECT g, g % 50, md5(g::text), CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('note ', g % 20) END
FROM generate_series(1, 20000) g;
INSERT INTO h VALUES (20001, 1, repeat('x', 5000), NULL), (20002, 2, 'short', repeat(md5('t'), 400));
CREATE TABLE z (LIKE h INCLUDING INDEXES) USING lsm;
INSERT INTO z SELECT * FROM h;
VACUUM z;
SELECT level, compression_ratio > 1.5 AS compressed FROM strata.lsm_levels('z') WHERE level > 0;

-- every row through the primary key, in an order that jumps between pages
-- (a backend keeps the last few pages it decoded), three times: miss,
-- admitted miss, hit
SET enable_seqscan = off;
SET enable_bitmapscan = off;
CREATE TEMP TABLE before AS SELECT * FROM strata.lsm_block_cache();
CREATE FUNCTION lookups(t regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; acc text := '';
BEGIN
  FOR i IN 1..20002 LOOP
    EXECUTE format('SELECT id, grp, name, note FROM %s WHERE id = $1', t) INTO r USING i * 7919 % 20002 + 1;
    acc := md5(acc || format('%s|%s|%s|%s', r.id, r.grp, r.name, r.note));
  END LOOP;
  RETURN acc;
END $$;
SELECT lookups('z') = lookups('h') AS first_pass_matches;
SELECT lookups('z') = lookups('h') AS second_pass_matches;
SELECT lookups('z') = lookups('h') AS third_pass_matches;
SELECT c.hits - b.hits > 10000 AS hits, c.stored_pages > b.stored_pages AS pages_stored
FROM strata.lsm_block_cache() c, before b;

-- changes: the new versions are elsewhere, the cached rows of the old ones
-- are never wrong for a snapshot that sees them
UPDATE z SET note = 'changed ' || id WHERE id % 10 = 3;
UPDATE h SET note = 'changed ' || id WHERE id % 10 = 3;
DELETE FROM z WHERE id % 100 = 5;
DELETE FROM h WHERE id % 100 = 5;
ALTER TABLE z ADD COLUMN extra int DEFAULT 42;
ALTER TABLE h ADD COLUMN extra int DEFAULT 42;
SELECT count(*), sum(extra) FROM z WHERE id BETWEEN 1 AND 500;
CREATE FUNCTION lookups2(t regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE r record; acc text := '';
BEGIN
  FOR i IN 1..20002 LOOP
    EXECUTE format('SELECT id, note, extra FROM %s WHERE id = $1', t) INTO r USING i * 7919 % 20002 + 1;
    acc := md5(acc || format('%s|%s|%s', r.id, r.note, r.extra));
  END LOOP;
  RETURN acc;
END $$;
SELECT lookups2('z') = lookups2('h') AS after_changes;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT note FROM z WHERE id = 13;
UPDATE z SET note = 'rewritten' WHERE id = 13;
SELECT note FROM z WHERE id = 13;
ROLLBACK;
SELECT note FROM z WHERE id = 13;

-- merges write new pages: new keys, same answers
VACUUM z;
SELECT strata.lsm_flush('z') IS NOT NULL AS flushed;
VACUUM z;
SELECT lookups2('z') = lookups2('h') AS after_vacuum;
SELECT lookups2('z') = lookups2('h') AS after_vacuum_cached;
SELECT count(*) FROM strata.lsm_verify('z');
DROP TABLE z, h;
DROP FUNCTION lookups, lookups2;
