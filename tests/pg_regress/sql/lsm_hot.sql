-- Index-stable updates ("HOT without the page limit"): an UPDATE that
-- changes no indexed column inserts no index entries, wherever its new
-- version lands; every index keeps naming the chain's first version and
-- reaches the newest one through the chain. A heap copy of the same table
-- is the reference: its indexes grow, lsm's keep their size.
\set VERBOSITY sqlstate
CREATE EXTENSION amcheck;
CREATE TABLE hot (id int PRIMARY KEY, grp int, tags int[], pos point, v vector(3),
                  note text, n int) USING lsm;
INSERT INTO hot SELECT g, g % 10, ARRAY[g % 7, g % 11], point(g % 50, g / 50),
       ARRAY[g % 13, g % 17, g % 19]::vector, 'note ' || g, 0
FROM generate_series(1, 3000) g;
CREATE INDEX hot_grp ON hot (grp);
CREATE INDEX hot_tags ON hot USING gin (tags);
CREATE INDEX hot_pos ON hot USING gist (pos);
CREATE INDEX hot_v ON hot USING strata_hnsw (v vector_l2_ops);
CREATE INDEX hot_expr ON hot ((grp * 2)) WHERE n >= 0;
CREATE TABLE hot_heap (LIKE hot INCLUDING INDEXES) USING heap;
INSERT INTO hot_heap SELECT * FROM hot;

CREATE TABLE sizes AS
SELECT c.relname, pg_relation_size(c.oid) AS before FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid IN ('hot'::regclass, 'hot_heap'::regclass);

-- five rounds over every row, changing only a column no index uses
SELECT pg_stat_force_next_flush();
DO $$ BEGIN
  FOR r IN 1..5 LOOP
    UPDATE hot SET note = 'round ' || r || ' of ' || id;
    UPDATE hot_heap SET note = 'round ' || r || ' of ' || id;
  END LOOP;
END $$;
SELECT pg_stat_force_next_flush();
SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables
WHERE relname = 'hot';
SELECT index_stable_updates, redirects FROM strata.lsm_stats('hot');
-- lsm's indexes keep their size; the heap copy's grow (full pages: no HOT),
-- its strata_hnsw index too, whose elements take the new TIDs of rows with an
-- unchanged vector: three in an element, the rest in a row list (format 5)
SELECT s.relname, pg_relation_size(s.relname::regclass) = s.before AS same_size
FROM sizes s ORDER BY 1;

-- every index finds every row, at its newest version
SET enable_seqscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT note FROM hot WHERE id = 77;
SELECT note FROM hot WHERE id = 77;
SELECT count(*), count(*) FILTER (WHERE note LIKE 'round 5 %') FROM hot WHERE grp >= 0;
SELECT count(*), count(*) FILTER (WHERE note LIKE 'round 5 %') FROM hot WHERE grp * 2 >= 0 AND n >= 0;
SET enable_indexscan = off;
SET enable_bitmapscan = on;
SELECT count(*) FILTER (WHERE note LIKE 'round 5 %') FROM hot WHERE tags @> ARRAY[3];
SELECT count(*) FROM hot_heap WHERE tags @> ARRAY[3];
SELECT count(*) FILTER (WHERE note LIKE 'round 5 %') FROM hot WHERE pos <@ box '((0,0),(49,59))';
RESET enable_indexscan;
SET enable_bitmapscan = off;
SET strata.hnsw_ef_search = 1000;
SELECT count(*), count(DISTINCT id), count(*) FILTER (WHERE note LIKE 'round 5 %')
FROM (SELECT id, note FROM hot ORDER BY v <-> '[6,8,9]' LIMIT 3000) s;
RESET strata.hnsw_ef_search;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT bt_index_check(i, true) FROM unnest(ARRAY['hot_pkey', 'hot_grp', 'hot_expr']::regclass[]) i;

-- an update of an indexed column is not index-stable: it takes new entries
UPDATE hot SET grp = grp + 100 WHERE id <= 10;
SET enable_seqscan = off;
SELECT count(*) FROM hot WHERE grp >= 100;
SELECT count(*) FROM hot WHERE grp < 100;
RESET enable_seqscan;
-- so is one that changes a partial index's predicate column or an expression's
UPDATE hot SET n = -1 WHERE id = 20;
SET enable_seqscan = off;
SELECT count(*) FROM hot WHERE grp * 2 >= 0 AND n >= 0;
RESET enable_seqscan;
SELECT pg_stat_force_next_flush();
SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'hot';

-- ctid keeps heap's meaning: each version has its own
SELECT ctid AS old_ctid FROM hot WHERE id = 5 \gset
UPDATE hot SET note = 'moved' WHERE id = 5;
SELECT ctid = :'old_ctid' AS same_ctid, note FROM hot WHERE id = 5;
SELECT count(*) FROM hot WHERE ctid = :'old_ctid';

-- VACUUM shortens chains (the first version becomes a redirect) and drops
-- the dead versions; every index still finds every row
VACUUM hot;
SELECT * FROM strata.lsm_verify('hot');
-- one redirect per chain whose first version is dead: 3000 rows, less the
-- 11 that the updates of indexed columns gave a new first version, plus row
-- 5, whose new first version was updated again
SELECT redirects FROM strata.lsm_stats('hot');
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*), count(*) FILTER (WHERE note LIKE 'round 5 %') FROM hot WHERE grp >= 0;
SELECT note FROM hot WHERE id IN (5, 77) ORDER BY id;
RESET enable_bitmapscan;
SET enable_indexscan = off;
SELECT count(*) FROM hot WHERE tags @> ARRAY[3];
RESET enable_indexscan;
RESET enable_seqscan;
SELECT bt_index_check(i, true) FROM unnest(ARRAY['hot_pkey', 'hot_grp', 'hot_expr']::regclass[]) i;
-- more rounds after the VACUUM: redirects are re-pointed, sizes stay (from
-- here: the eleven updates above took entries in every index)
UPDATE sizes SET before = pg_relation_size(relname::regclass);
UPDATE hot SET note = 'round 6 of ' || id;
UPDATE hot SET note = 'round 7 of ' || id;
VACUUM hot;
SELECT s.relname, pg_relation_size(s.relname::regclass) = s.before AS same_size
FROM sizes s WHERE s.relname NOT LIKE 'hot_heap%' ORDER BY 1;
SELECT pg_relation_size('hot') < 4 * pg_relation_size('hot_heap') AS table_bounded;
SELECT * FROM strata.lsm_verify('hot');
SET enable_seqscan = off;
SELECT count(*), count(*) FILTER (WHERE note LIKE 'round 7 %') FROM hot WHERE id > 0;
RESET enable_seqscan;

-- unique checks follow chains: the newest version's key is taken
INSERT INTO hot (id, grp, note, n) VALUES (77, 1, 'duplicate', 0);
INSERT INTO hot (id, grp, note, n) VALUES (77, 1, 'upsert', 0)
ON CONFLICT (id) DO UPDATE SET note = excluded.note || ' of ' || hot.note;
SELECT note FROM hot WHERE id = 77;
-- a deleted chain's key is free again
DELETE FROM hot WHERE id = 78;
INSERT INTO hot (id, grp, note, n) VALUES (78, 1, 'reinserted', 0);
SELECT count(*) FROM hot WHERE id = 78;

-- indexes built over chains index each chain's visible version under its
-- first version's TID (heapallindexed checks exactly that)
CREATE INDEX hot_note ON hot (note);
CREATE INDEX CONCURRENTLY hot_note_c ON hot (note);
SELECT bt_index_check(i, true) FROM unnest(ARRAY['hot_note', 'hot_note_c']::regclass[]) i;
SET enable_seqscan = off;
SELECT count(*) FROM hot WHERE note LIKE 'round 7 %';
RESET enable_seqscan;
REINDEX TABLE hot;
SELECT bt_index_check(i, true) FROM unnest(ARRAY['hot_pkey', 'hot_grp', 'hot_note']::regclass[]) i;
-- the new index takes part: updates of note are no longer index-stable
SELECT pg_relation_size('hot_note') AS note_before \gset
UPDATE hot SET note = note || '!' WHERE id <= 1000;
SELECT pg_relation_size('hot_note') > :note_before AS note_index_grew;
DROP INDEX hot_note, hot_note_c;

-- lossy bitmap pages: every chain rooted in a page, each row once
CREATE TABLE lossy (id int PRIMARY KEY, n int, pad text) USING lsm;
INSERT INTO lossy SELECT g, 0, repeat('p', 300) FROM generate_series(1, 40000) g;
UPDATE lossy SET n = 1;
VACUUM lossy;
UPDATE lossy SET n = 2 WHERE id % 2 = 0;
ANALYZE lossy;
SET enable_seqscan = off;
SET enable_indexscan = off;
SET work_mem = '64kB';
CREATE FUNCTION lossy_pages() RETURNS text LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON, TIMING OFF, SUMMARY OFF) '
          'SELECT count(*) FROM lossy WHERE id > 5' INTO plan;
  RETURN CASE WHEN (plan->0->'Plan'->'Plans'->0->>'Lossy Heap Blocks')::int > 0
              THEN 'lossy pages' ELSE 'no lossy pages' END;
END $$;
SELECT lossy_pages();
SELECT count(*), count(DISTINCT id), sum(n) FROM lossy WHERE id > 5;
RESET work_mem;
RESET enable_indexscan;
SET enable_bitmapscan = off;
RESET enable_seqscan;
SELECT count(*), count(DISTINCT id), sum(n) FROM lossy WHERE id > 5;
RESET enable_bitmapscan;
DROP TABLE lossy;

-- a row updated 300 times between VACUUMs, each time found through its
-- index, with chain hints off: lookups redirect its first version past the
-- dead versions they walk (as heap's pruning does), so the chain stays short
INSERT INTO hot (id, grp, note, n) VALUES (6000, 1, 'hot row', 0);
SELECT ctid AS hot_root FROM hot WHERE id = 6000 \gset
CREATE PROCEDURE bump(row_id int, times int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..times LOOP
    UPDATE hot SET note = 'bump ' || i WHERE id = row_id;
    COMMIT;
  END LOOP;
END $$;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SET strata.lsm_chain_hints = off;
CALL bump(6000, 300);
SELECT note FROM hot WHERE id = 6000;
RESET strata.lsm_chain_hints;
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT count(*) < 20 AS short_chain, bool_or(flags LIKE 'redirect%') AS redirected
FROM strata.lsm_chain('hot', :'hot_root');
DELETE FROM hot WHERE id = 6000;
-- with chain hints (the default) a lookup starts at the member the last
-- update of the row left in the chain's shared hint: one page, however
-- long the chain grew since the last VACUUM; the right version is found
-- every time
INSERT INTO hot (id, grp, note, n) VALUES (6001, 1, 'hinted row', 0);
SELECT ctid AS hinted_root FROM hot WHERE id = 6001 \gset
SET enable_seqscan = off;
SET enable_bitmapscan = off;
CALL bump(6001, 300);
SELECT note FROM hot WHERE id = 6001;
SELECT count(*) > 300 AS whole_chain, bool_or(flags LIKE 'redirect%') AS redirected
FROM strata.lsm_chain('hot', :'hinted_root');
-- a lookup without hints walks from the root and prunes what it passed
SET strata.lsm_chain_hints = off;
SELECT note FROM hot WHERE id = 6001;
RESET strata.lsm_chain_hints;
SELECT count(*) < 20 AS short_chain, bool_or(flags LIKE 'redirect%') AS redirected
FROM strata.lsm_chain('hot', :'hinted_root');
-- and the hinted lookups still find the row after that
UPDATE hot SET note = 'after prune' WHERE id = 6001;
SELECT note FROM hot WHERE id = 6001;
RESET enable_seqscan;
RESET enable_bitmapscan;
DELETE FROM hot WHERE id = 6001;
DROP PROCEDURE bump;

-- a frozen first version (both xmin hint bits set) still leads to its chain,
-- also after an index scan had the chance to kill its entry
VACUUM (FREEZE) hot;
UPDATE hot SET note = 'after freeze' WHERE id BETWEEN 300 AND 309;
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT count(*) FROM hot WHERE id BETWEEN 300 AND 309 AND note = 'after freeze';
SELECT count(*) FROM hot WHERE id BETWEEN 300 AND 309 AND note = 'after freeze';
RESET enable_bitmapscan;
SET enable_indexscan = off;
SELECT count(*) FROM hot WHERE id BETWEEN 300 AND 309 AND note = 'after freeze';
RESET enable_indexscan;
RESET enable_seqscan;

-- CLUSTER through an index scan (GiST: no sort; under SnapshotAny every
-- version of each chain, one call after the other) and VACUUM FULL flatten
-- the chains
UPDATE hot SET note = note || '.' WHERE id BETWEEN 400 AND 409;
INSERT INTO hot (id, grp, note, n) SELECT g, 1, 'fresh', 0 FROM generate_series(5001, 5005) g;
UPDATE hot SET note = 'fresh, updated' WHERE id > 5000;
CLUSTER hot USING hot_pos;
SELECT * FROM strata.lsm_verify('hot');
SELECT count(*), count(*) FILTER (WHERE note LIKE 'round 7 %') FROM hot;
SELECT count(*) FROM hot WHERE id BETWEEN 300 AND 309 AND note = 'after freeze';
SELECT count(*) FROM hot WHERE id > 5000 AND note = 'fresh, updated';
VACUUM FULL hot;
SELECT * FROM strata.lsm_verify('hot');
SELECT bt_index_check(i, true) FROM unnest(ARRAY['hot_pkey', 'hot_grp']::regclass[]) i;
SELECT count(*), count(*) FILTER (WHERE note LIKE 'round 7 %') FROM hot;

-- VACUUM walks a redirect's chain again only once the member it names is
-- dead: a row updated after the first VACUUM gets its redirect re-pointed at
-- the new version, a row left alone keeps its redirect
CREATE TABLE redir (id int PRIMARY KEY, n int) USING lsm;
INSERT INTO redir VALUES (1, 0), (2, 0);
SELECT ctid AS redir_root1 FROM redir WHERE id = 1 \gset
SELECT ctid AS redir_root2 FROM redir WHERE id = 2 \gset
UPDATE redir SET n = 1;
VACUUM redir;
SELECT count(*) AS members, bool_or(flags LIKE 'redirect%') AS redirected
FROM strata.lsm_chain('redir', :'redir_root1');
UPDATE redir SET n = 2 WHERE id = 1;
VACUUM redir;
SELECT count(*) AS members, bool_or(flags LIKE 'redirect%') AS redirected
FROM strata.lsm_chain('redir', :'redir_root1');
SELECT count(*) AS members, bool_or(flags LIKE 'redirect%') AS redirected
FROM strata.lsm_chain('redir', :'redir_root2');
SET enable_seqscan = off;
SELECT id, n FROM redir WHERE id IN (1, 2) ORDER BY id;
RESET enable_seqscan;
SELECT * FROM strata.lsm_verify('redir');
DROP TABLE redir;
DROP TABLE hot, hot_heap, sizes;
DROP EXTENSION amcheck;
