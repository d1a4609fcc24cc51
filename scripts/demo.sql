-- Demo objects created by `make run`. Runs on a fresh database and on every
-- later `make run` (idempotent).
CREATE EXTENSION IF NOT EXISTS strata;
-- A demo table that lost its vector column (the extension was recreated) is
-- rebuilt. The table is named through to_regclass() only: a '...'::regclass
-- literal is resolved when the statement is parsed, so it would fail on a
-- fresh database before any IF could test that the table exists.
DO $$
DECLARE
    demo regclass := to_regclass('demo_items');
BEGIN
    IF demo IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM pg_attribute
        WHERE attrelid = demo AND attname = 'embedding' AND NOT attisdropped) THEN
        DROP TABLE demo_items;
    END IF;
END $$;
CREATE TABLE IF NOT EXISTS demo_items (
    id        bigserial PRIMARY KEY,
    name      text NOT NULL,
    embedding vector(3) NOT NULL
);
INSERT INTO demo_items (name, embedding)
SELECT v.name, v.embedding::vector
FROM (VALUES ('apple',  '[1,0.2,0]'), ('banana', '[0.9,0.4,0.1]'),
             ('carrot', '[0.1,1,0.3]'), ('potato', '[0,0.8,0.6]'),
             ('salmon', '[0.2,0.1,1]')) AS v(name, embedding)
WHERE NOT EXISTS (SELECT 1 FROM demo_items);
