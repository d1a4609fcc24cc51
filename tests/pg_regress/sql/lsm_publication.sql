-- lsm tables cannot be published for logical replication (generic WAL is not
-- decoded): naming one is refused (0A000), a publication that covers one
-- through FOR ALL TABLES / TABLES IN SCHEMA gets a warning. Heap tables are
-- unaffected.
\set VERBOSITY default
CREATE SCHEMA pubs;
CREATE TABLE pubs.l (a int PRIMARY KEY) USING lsm;
CREATE TABLE pubs.h (a int PRIMARY KEY);
CREATE PUBLICATION pub_h FOR TABLE pubs.h;
CREATE PUBLICATION pub_l FOR TABLE pubs.l;
ALTER PUBLICATION pub_h ADD TABLE pubs.l;
CREATE PUBLICATION pub_schema FOR TABLES IN SCHEMA pubs;
CREATE PUBLICATION pub_all FOR ALL TABLES;
SELECT pubname FROM pg_publication ORDER BY 1;
SELECT count(*) AS lsm_published FROM pg_publication_rel WHERE prrelid = 'pubs.l'::regclass;
DROP PUBLICATION pub_h, pub_schema, pub_all;
DROP SCHEMA pubs CASCADE;
