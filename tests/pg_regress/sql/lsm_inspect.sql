-- strata.lsm_info and strata.lsm_verify
\set VERBOSITY sqlstate
CREATE TABLE li (id int PRIMARY KEY, v text) USING lsm;
-- an empty table has no blocks at all: no metapage, empty L0
SELECT component, level, pages, row_versions FROM strata.lsm_info('li');
INSERT INTO li SELECT g, repeat('x', 20) FROM generate_series(1, 1000) g;
-- 1000 versions of 49 bytes (24-byte header, int, 21-byte text)
SELECT component, level, pages, row_versions, tuple_bytes FROM strata.lsm_info('li');
UPDATE li SET v = 'y' WHERE id <= 100;
DELETE FROM li WHERE id > 900;
-- an update adds a version, a delete only stamps xmax: 1100 versions
SELECT component, row_versions FROM strata.lsm_info('li') WHERE component = 'L0';
SELECT pages * current_setting('block_size')::int = pg_relation_size('li') AS pages_add_up
FROM strata.lsm_info('li') WHERE component = 'total';
SELECT sum(pages) FILTER (WHERE component <> 'total') = sum(pages) FILTER (WHERE component = 'total') AS total_adds_up,
       sum(row_versions) FILTER (WHERE component <> 'total') = sum(row_versions) FILTER (WHERE component = 'total') AS versions_add_up
FROM strata.lsm_info('li');
SELECT * FROM strata.lsm_verify('li');
-- aborted and subtransaction rows are structurally fine too
BEGIN;
INSERT INTO li SELECT g, 'aborted' FROM generate_series(2001, 2100) g;
SAVEPOINT s;
UPDATE li SET v = 'sub' WHERE id < 50;
ROLLBACK TO s;
ROLLBACK;
SELECT count(*) FROM strata.lsm_verify('li');
SELECT count(*) FROM li;

-- only lsm tables, only for users who can read them
\set VERBOSITY terse
CREATE TABLE lh (a int);
SELECT * FROM strata.lsm_info('lh');
SELECT * FROM strata.lsm_verify('lh');
SELECT * FROM strata.lsm_info('li_pkey');
CREATE ROLE lsm_nobody;
SET ROLE lsm_nobody;
SELECT * FROM strata.lsm_verify('li');
RESET ROLE;
DROP ROLE lsm_nobody;
SELECT * FROM strata.lsm_info(NULL);
DROP TABLE li, lh;
