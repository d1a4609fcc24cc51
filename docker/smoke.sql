-- SQL smoke test for a packaged Strata: run by docker/smoke.sh against the
-- Docker image and by tests/package_smoke.sh against the `cargo pgrx package`
-- output installed into PostgreSQL 18. Output must equal docker/smoke.expected.
CREATE EXTENSION IF NOT EXISTS strata;
SELECT extversion FROM pg_extension WHERE extname = 'strata';
SELECT '[1,2,3]'::vector <-> '[4,5,6]';
DROP TABLE IF EXISTS smoke_items;
CREATE TABLE smoke_items (id int PRIMARY KEY, embedding vector(3));
INSERT INTO smoke_items VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]');
SELECT id FROM smoke_items ORDER BY embedding <-> '[1,0,0]' LIMIT 2;
SELECT avg(embedding) FROM smoke_items;
DROP TABLE smoke_items;
