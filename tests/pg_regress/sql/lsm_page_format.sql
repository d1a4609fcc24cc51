-- Compact run pages (format versions 6 to 10): versions a load or flush writes
-- together share one header per page and keep their rowids in a map; a
-- stamp (DELETE, UPDATE, row lock) gives the version it stamps a header of
-- its own in a free slot of the page (format 8; earlier versions gave every
-- version of the page its own), and when the slots run out the compressed
-- rows move to a payload page; pages in the version 5 layout (a stub per row) and version 6
-- pages (one compressed frame, where version 7 compresses each column on its
-- own) stay readable next to them, as do version 7 and 8 pages next to
-- version 9 ones (columns of few values as dictionaries), and version 9
-- pages next to version 10 ones (zstd sections where lz4 barely shrinks a
-- column). Every result is compared with a heap copy.
\set VERBOSITY terse
LOAD 'strata';
SHOW strata.lsm_compression;
SHOW strata.lsm_page_format;
SET strata.lsm_page_format = 11;
SET strata.lsm_compression = 'snappy';

CREATE TABLE h (id bigint, grp int, email text, status text);
INSERT INTO h SELECT g, g % 100, 'user' || g || '@example.com',
  (ARRAY['new', 'open', 'done'])[1 + g % 3]
FROM generate_series(1, 20000) g;
-- no indexes: INSERT ... SELECT writes runs directly
CREATE TABLE c (LIKE h) USING lsm;
INSERT INTO c SELECT * FROM h;
SELECT layout, codec, pages BETWEEN 70 AND 100 AS about_80_pages, row_versions
FROM strata.lsm_page_layouts('c');
SELECT * FROM strata.lsm_verify('c');
SELECT count(*), sum(id), sum(grp), sum(length(email)), count(DISTINCT status) FROM c;
(SELECT * FROM c EXCEPT ALL SELECT * FROM h) UNION ALL (SELECT * FROM h EXCEPT ALL SELECT * FROM c);
-- each version has its own TID (a shared header's t_ctid means "mine")
SELECT ctid, id FROM c WHERE id IN (1, 2, 256, 257, 20000) ORDER BY id;
SELECT id FROM c WHERE ctid = (SELECT ctid FROM c WHERE id = 777);
SELECT count(*), min(id), max(id) FROM c WHERE ctid >= '(10,1)' AND ctid < '(20,1)';

-- a stamp gives its version a header of its own; the others keep sharing
DELETE FROM c WHERE id % 1000 = 0;
UPDATE c SET status = 'archived' WHERE id % 1000 = 1;
DELETE FROM h WHERE id % 1000 = 0;
UPDATE h SET status = 'archived' WHERE id % 1000 = 1;
SELECT layout, codec, pages > 0 AS some FROM strata.lsm_page_layouts('c');
SELECT * FROM strata.lsm_verify('c');
(SELECT * FROM c EXCEPT ALL SELECT * FROM h) UNION ALL (SELECT * FROM h EXCEPT ALL SELECT * FROM c);
SELECT status, count(*) FROM c GROUP BY status ORDER BY status;
-- row locks stamp too; a rolled back delete leaves the row
BEGIN;
SELECT id, status FROM c WHERE id = 5555 FOR UPDATE;
SELECT id, status FROM c WHERE id = 6666 FOR KEY SHARE;
DELETE FROM c WHERE id = 7777;
ROLLBACK;
SELECT id, status FROM c WHERE id IN (5555, 6666, 7777) ORDER BY id;
SELECT * FROM strata.lsm_verify('c');
-- most rows of every page stamped: more than the free slots hold, so the
-- compressed rows of those pages move to payload pages and the pages keep
-- the headers (shared by the rest, their own for the stamped)
CREATE TABLE s (LIKE h) USING lsm;
INSERT INTO s SELECT * FROM h;
CREATE TABLE hs AS SELECT * FROM h;
UPDATE s SET grp = grp + 1 WHERE id % 8 <> 0;
UPDATE hs SET grp = grp + 1 WHERE id % 8 <> 0;
SELECT layout, codec, pages > 0 AS some FROM strata.lsm_page_layouts('s') ORDER BY 1, 2;
SELECT * FROM strata.lsm_verify('s');
(SELECT * FROM s EXCEPT ALL SELECT * FROM hs) UNION ALL (SELECT * FROM hs EXCEPT ALL SELECT * FROM s);
-- and stamps after the move take the slots the compressed rows left
DELETE FROM s WHERE id % 8 = 0;
DELETE FROM hs WHERE id % 8 = 0;
SELECT * FROM strata.lsm_verify('s');
(SELECT * FROM s EXCEPT ALL SELECT * FROM hs) UNION ALL (SELECT * FROM hs EXCEPT ALL SELECT * FROM s);
SELECT count(*), sum(grp) FROM s;
DROP TABLE s, hs;

-- VACUUM flushes the new versions and merges: pages are compact again
SET strata.lsm_level1_runs = 1;
VACUUM c;
SELECT layout, codec, pages > 0 AS some FROM strata.lsm_page_layouts('c');
SELECT * FROM strata.lsm_verify('c');
(SELECT * FROM c EXCEPT ALL SELECT * FROM h) UNION ALL (SELECT * FROM h EXCEPT ALL SELECT * FROM c);
RESET strata.lsm_level1_runs;

-- few wide rows: a stamp takes a free slot, nothing moves
CREATE TABLE w (id int, doc text) USING lsm;
INSERT INTO w SELECT g, repeat('lorem ipsum dolor sit amet ', 40) || g FROM generate_series(1, 2000) g;
SELECT layout, pages > 0 AS some FROM strata.lsm_page_layouts('w');
UPDATE w SET doc = 'short ' || id WHERE id % 100 = 0;
SELECT layout, pages > 0 AS some FROM strata.lsm_page_layouts('w');
SELECT count(*), sum(length(doc)), sum(id) FROM w;
SELECT * FROM strata.lsm_verify('w');

-- packed on the backend's own thread: the same pages
SET strata.lsm_pack_thread = off;
CREATE TABLE ct USING lsm AS SELECT * FROM h;
RESET strata.lsm_pack_thread;
CREATE TABLE ct2 USING lsm AS SELECT * FROM h;
SELECT (SELECT array_agg(l ORDER BY l) FROM strata.lsm_page_layouts('ct') l)
     = (SELECT array_agg(l ORDER BY l) FROM strata.lsm_page_layouts('ct2') l) AS same_pages;
(SELECT * FROM ct EXCEPT ALL SELECT * FROM h) UNION ALL (SELECT * FROM h EXCEPT ALL SELECT * FROM ct);
DROP TABLE ct, ct2;

-- row by row instead of column by column
SET strata.lsm_columnar = off;
CREATE TABLE cr USING lsm AS SELECT * FROM h;
SELECT layout, codec, row_versions FROM strata.lsm_page_layouts('cr');
(SELECT * FROM cr EXCEPT ALL SELECT * FROM h) UNION ALL (SELECT * FROM h EXCEPT ALL SELECT * FROM cr);
RESET strata.lsm_columnar;
-- a column dropped and one added: rows of both shapes in L0, flushed onto
-- the same pages
ALTER TABLE cr DROP COLUMN grp;
INSERT INTO cr SELECT id + 200000, email, status FROM h WHERE id <= 1000;
ALTER TABLE cr ADD COLUMN note text;
INSERT INTO cr SELECT id + 100000, email, status, 'late ' || id FROM h WHERE id <= 3000;
VACUUM cr;
SELECT layout, codec, sum(row_versions) FROM strata.lsm_page_layouts('cr') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT count(*), count(note), sum(id), sum(length(email)) FROM cr;
SELECT * FROM strata.lsm_verify('cr');

-- zstd, through CREATE TABLE AS
SET strata.lsm_compression = zstd;
CREATE TABLE cz USING lsm AS SELECT * FROM h;
SELECT layout, codec, pages BETWEEN 50 AND 100 AS about_75_pages, row_versions
FROM strata.lsm_page_layouts('cz');
(SELECT * FROM cz EXCEPT ALL SELECT * FROM h) UNION ALL (SELECT * FROM h EXCEPT ALL SELECT * FROM cz);
DELETE FROM cz WHERE id % 7 = 0;
SELECT count(*) = (SELECT count(*) FROM h WHERE id % 7 <> 0) AS same FROM cz;
SELECT * FROM strata.lsm_verify('cz');
RESET strata.lsm_compression;

-- one table, both layouts: version 5 pages (as older versions wrote them)
-- and version 6 pages, read, changed and merged together
-- (rows long enough that the version 5 layout compresses them too)
CREATE TABLE h2 AS SELECT id, grp, email || repeat(' and more', 10) AS email, status FROM h;
SET strata.lsm_page_format = 5;
CREATE TABLE m (LIKE h) USING lsm;
INSERT INTO m SELECT * FROM h2 WHERE id <= 10000;
RESET strata.lsm_page_format;
INSERT INTO m SELECT * FROM h2 WHERE id > 10000;
SELECT layout, codec, pages > 0 AS some FROM strata.lsm_page_layouts('m');
UPDATE m SET grp = grp + 1000 WHERE id % 500 = 3;
UPDATE h2 SET grp = grp + 1000 WHERE id % 500 = 3;
DELETE FROM m WHERE id % 500 = 4;
DELETE FROM h2 WHERE id % 500 = 4;
(SELECT * FROM m EXCEPT ALL SELECT * FROM h2) UNION ALL (SELECT * FROM h2 EXCEPT ALL SELECT * FROM m);
SELECT * FROM strata.lsm_verify('m');
-- an index built over both layouts finds every row
CREATE INDEX m_grp ON m (grp);
SET enable_seqscan = off;
SELECT count(*), sum(id) FROM m WHERE grp >= 1000;
SELECT count(*), sum(id) FROM h2 WHERE grp >= 1000;
RESET enable_seqscan;
SET strata.lsm_level1_runs = 1;
VACUUM m;
RESET strata.lsm_level1_runs;
SELECT layout, codec, pages > 0 AS some FROM strata.lsm_page_layouts('m');
(SELECT * FROM m EXCEPT ALL SELECT * FROM h2) UNION ALL (SELECT * FROM h2 EXCEPT ALL SELECT * FROM m);
SELECT * FROM strata.lsm_verify('m');
-- and so does the index after the merge
SET enable_seqscan = off;
SELECT count(*), sum(id) FROM m WHERE grp >= 1000;
RESET enable_seqscan;

-- one table, version 6 pages (one compressed frame per page) and version 7
-- pages (a frame per column), read column by column, changed and merged
SET strata.lsm_page_format = 6;
CREATE TABLE v7 (LIKE h) USING lsm;
INSERT INTO v7 SELECT * FROM h WHERE id <= 10000;
RESET strata.lsm_page_format;
INSERT INTO v7 SELECT * FROM h WHERE id > 10000;
SELECT layout, codec, pages > 0 AS some FROM strata.lsm_page_layouts('v7') ORDER BY 1, 2;
SELECT count(*), sum(grp), sum(length(email)), min(status) FROM v7;
SELECT count(*), sum(grp), sum(length(email)), min(status) FROM h;
(SELECT * FROM v7 EXCEPT ALL SELECT * FROM h) UNION ALL (SELECT * FROM h EXCEPT ALL SELECT * FROM v7);
DELETE FROM v7 WHERE id % 777 = 0;
UPDATE v7 SET email = upper(email) WHERE id % 555 = 0;
SET strata.lsm_level1_runs = 1;
VACUUM v7;
RESET strata.lsm_level1_runs;
SELECT layout, codec, pages > 0 AS some FROM strata.lsm_page_layouts('v7') ORDER BY 1, 2;
SELECT count(*), sum(grp), sum(length(email)) FILTER (WHERE email = upper(email)) FROM v7;
SELECT count(*), sum(grp), sum(length(email)) FILTER (WHERE id % 555 = 0) FROM h WHERE id % 777 <> 0;
SELECT * FROM strata.lsm_verify('v7');

-- one table, version 7 pages (no dictionaries) and version 9 pages (status,
-- three values, as a dictionary; the padding column, one value): read by
-- scans column by column, by index lookups row by row, changed and merged
CREATE TABLE hp AS SELECT *, 'x'::char(40) AS pad FROM h;
SET strata.lsm_page_format = 7;
CREATE TABLE v9 (LIKE hp) USING lsm;
INSERT INTO v9 SELECT * FROM hp WHERE id <= 10000;
RESET strata.lsm_page_format;
INSERT INTO v9 SELECT * FROM hp WHERE id > 10000;
SELECT layout, codec, sum(row_versions) FROM strata.lsm_page_layouts('v9') GROUP BY 1, 2 ORDER BY 1, 2;
SELECT status, count(*), count(DISTINCT pad), sum(grp) FROM v9 GROUP BY status ORDER BY status;
SELECT status, count(*), count(DISTINCT pad), sum(grp) FROM hp GROUP BY status ORDER BY status;
(SELECT * FROM v9 EXCEPT ALL SELECT * FROM hp) UNION ALL (SELECT * FROM hp EXCEPT ALL SELECT * FROM v9);
CREATE INDEX v9_id ON v9 (id);
SET enable_seqscan = off;
SELECT id, status, pad = 'x' AS pad FROM v9 WHERE id IN (1, 2, 3, 9999, 10001, 15001, 19999) ORDER BY id;
-- one row by the index: the lookup rebuilds that row alone (dictionary columns too)
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT status, pad FROM v9 WHERE id = 15002;
SELECT status, length(pad), email FROM v9 WHERE id = 15002;
SELECT status, length(pad), email FROM v9 WHERE id = 3;
RESET enable_bitmapscan;
RESET enable_seqscan;
UPDATE v9 SET status = 'late' WHERE id % 1000 = 7;
UPDATE hp SET status = 'late' WHERE id % 1000 = 7;
DELETE FROM v9 WHERE id % 1000 = 8;
DELETE FROM hp WHERE id % 1000 = 8;
-- every run holding a deleted or updated row is rewritten
SET strata.lsm_gc_ratio = 0.0001;
VACUUM v9;
RESET strata.lsm_gc_ratio;
SELECT layout, codec, sum(row_versions) FROM strata.lsm_page_layouts('v9') GROUP BY 1, 2 ORDER BY 1, 2;
(SELECT * FROM v9 EXCEPT ALL SELECT * FROM hp) UNION ALL (SELECT * FROM hp EXCEPT ALL SELECT * FROM v9);
SELECT status, count(*) FROM v9 GROUP BY status ORDER BY status;
SELECT * FROM strata.lsm_verify('v9');
-- the same rows written both ways read back the same
SET strata.lsm_page_format = 8;
CREATE TABLE v8 USING lsm AS SELECT * FROM hp;
RESET strata.lsm_page_format;
CREATE TABLE v9b USING lsm AS SELECT * FROM hp;
SELECT 'v8' AS t, codec, sum(row_versions) FROM strata.lsm_page_layouts('v8') WHERE codec <> '' GROUP BY 2
UNION ALL
SELECT 'v9b', codec, sum(row_versions) FROM strata.lsm_page_layouts('v9b') WHERE codec <> '' GROUP BY 2;
SELECT (SELECT sum(hashtext(t::text)) FROM v8 t) = (SELECT sum(hashtext(t::text)) FROM v9b t) AS same_rows,
       (SELECT sum(hashtext(t::text)) FROM hp t) = (SELECT sum(hashtext(t::text)) FROM v9b t) AS as_heap;


-- version 10: a section lz4 barely shrinks (hex digests) is stored with
-- zstd, the others stay lz4; one table with version 9 and 10 pages
CREATE TABLE hd AS SELECT id, status, md5(id::text) AS digest FROM h;
SET strata.lsm_page_format = 9;
CREATE TABLE v10 (LIKE hd) USING lsm;
INSERT INTO v10 SELECT * FROM hd WHERE id <= 10000;
RESET strata.lsm_page_format;
INSERT INTO v10 SELECT * FROM hd WHERE id > 10000;
SELECT layout, codec, sum(row_versions), sum(pages) FROM strata.lsm_page_layouts('v10')
GROUP BY 1, 2 ORDER BY 1, 2;
(SELECT * FROM v10 EXCEPT ALL SELECT * FROM hd) UNION ALL (SELECT * FROM hd EXCEPT ALL SELECT * FROM v10);
CREATE INDEX v10_id ON v10 (id);
SET enable_seqscan = off;
SET enable_bitmapscan = off;
SELECT id, digest = md5(id::text) AS digest_ok, status FROM v10 WHERE id IN (3, 9999, 10001, 19999) ORDER BY id;
RESET enable_bitmapscan;
RESET enable_seqscan;
SELECT count(*), count(DISTINCT digest), sum(length(digest)) FROM v10 WHERE status = 'open';
UPDATE v10 SET status = 'late' WHERE id % 1000 = 7;
UPDATE hd SET status = 'late' WHERE id % 1000 = 7;
DELETE FROM v10 WHERE id % 1000 = 8;
DELETE FROM hd WHERE id % 1000 = 8;
SET strata.lsm_gc_ratio = 0.0001;
VACUUM v10;
RESET strata.lsm_gc_ratio;
SELECT layout, codec, sum(row_versions) FROM strata.lsm_page_layouts('v10') GROUP BY 1, 2 ORDER BY 1, 2;
(SELECT * FROM v10 EXCEPT ALL SELECT * FROM hd) UNION ALL (SELECT * FROM hd EXCEPT ALL SELECT * FROM v10);
SELECT * FROM strata.lsm_verify('v10');

DROP TABLE c, h, h2, w, cz, cr, m, v7, v8, v9, v9b, hp, hd, v10;
