-- With strata preloaded (as here: regress.conf), lsm changes are decoded
-- from Strata's row records, so publications take lsm tables like heap
-- tables: by name, with row filters and column lists, FOR TABLES IN SCHEMA
-- and FOR ALL TABLES. (Without the preload they are refused, 0A000: the
-- cluster test test_logical checks that.)
\set VERBOSITY default
SELECT strata.lsm_logical_decoding();
CREATE SCHEMA pubs;
CREATE TABLE pubs.l (a int PRIMARY KEY, b text, c int) USING lsm;
CREATE TABLE pubs.h (a int PRIMARY KEY);
CREATE PUBLICATION pub_h FOR TABLE pubs.h;
CREATE PUBLICATION pub_l FOR TABLE pubs.l;
ALTER PUBLICATION pub_h ADD TABLE pubs.l;
CREATE PUBLICATION pub_filtered FOR TABLE pubs.l (a, b) WHERE (a > 10);
CREATE PUBLICATION pub_schema FOR TABLES IN SCHEMA pubs;
CREATE PUBLICATION pub_all FOR ALL TABLES;
SELECT pubname, tablename, attnames, rowfilter
FROM pg_publication_tables WHERE schemaname = 'pubs' ORDER BY 1, 2;
-- UPDATE and DELETE need a replica identity, as for heap
CREATE TABLE pubs.nokey (a int) USING lsm;
INSERT INTO pubs.nokey VALUES (1);
UPDATE pubs.nokey SET a = 2;
ALTER TABLE pubs.nokey REPLICA IDENTITY FULL;
UPDATE pubs.nokey SET a = 2;
DELETE FROM pubs.nokey;
DROP PUBLICATION pub_h, pub_l, pub_filtered, pub_schema, pub_all;
DROP SCHEMA pubs CASCADE;
