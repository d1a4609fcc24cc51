-- The vector type: I/O, typmod, casts, operators, functions, aggregates, errors.

-- text input and shortest round-trip output
SELECT '[1,2,3]'::vector;
SELECT '[1, 2.5,-3e-2]'::vector;
SELECT '  [ 1 , 2 ]  '::vector;
SELECT '[0.1,0.00001,1234567,123456,-0,3.4028235e38]'::vector;
SELECT '[1.0000001]'::vector::text = '[1.0000001]';

-- malformed text: 22P02
\set VERBOSITY sqlstate
SELECT '[1,,2]'::vector;
SELECT '1,2'::vector;
SELECT '[1,2] junk'::vector;
SELECT '[1,2'::vector;
SELECT '[a]'::vector;
SELECT ''::vector;
-- no dimensions, non-finite values: 22000 (as pgvector); out of range: 22003
SELECT '[]'::vector;
SELECT '[ ]'::vector;
SELECT '[NaN]'::vector;
SELECT '[1,Infinity]'::vector;
SELECT '[-inf]'::vector;
SELECT '[1e39]'::vector;
-- too many dimensions: 54000
SELECT ('[' || array_to_string(array_fill(1, ARRAY[16001]), ',') || ']')::vector;
SELECT vector_dims(('[' || array_to_string(array_fill(1, ARRAY[16000]), ',') || ']')::vector);
\set VERBOSITY default
SELECT '[1,2] junk'::vector;
SELECT '[1,2]'::vector(3);
\set VERBOSITY sqlstate

-- typmod enforced on insert, update and cast
CREATE TABLE items (id int, v vector(3));
INSERT INTO items VALUES (1, '[1,2,3]'), (2, '[4,5,6]'), (3, NULL);
INSERT INTO items VALUES (4, '[1,2]');
UPDATE items SET v = '[1,2,3,4]' WHERE id = 1;
SELECT '[1,2]'::vector(2), '[1,2]'::vector(3);
SELECT '[1,2,3]'::vector::vector(2);
SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'v';
CREATE TABLE bad_typmod (v vector(0));
CREATE TABLE bad_typmod (v vector(16001));
CREATE TABLE bad_typmod (v vector(3, 4));
SELECT * FROM items ORDER BY id;

-- NULL handling: strict functions return NULL, aggregates skip NULLs
SELECT NULL::vector <-> '[1,2,3]', vector_dims(NULL::vector), l2_normalize(NULL::vector);
SELECT count(v), avg(v), sum(v) FROM items;
SELECT avg(v) FROM items WHERE false;
SELECT sum(v) FROM items WHERE false;

-- distance operators and functions
SELECT '[1,2,3]'::vector <-> '[4,5,6]';
SELECT l2_distance('[1,2,3]'::vector, '[4,5,6]');
SELECT '[1,2,3]'::vector <#> '[4,5,6]', inner_product('[1,2,3]'::vector, '[4,5,6]');
SELECT '[1,2]'::vector <=> '[2,4]', cosine_distance('[1,0]'::vector, '[0,1]'), '[1,1]'::vector <=> '[-1,-1]';
SELECT '[1,2,3]'::vector <=> '[4,5,6]';
SELECT '[0,0]'::vector <=> '[1,1]';
SELECT '[1,2,3]'::vector <+> '[4,0,6]', l1_distance('[1,2,3]'::vector, '[4,0,6]');
SELECT vector_l2_squared_distance('[1,2,3]', '[4,5,6]');
-- dimension mismatch: 22000
SELECT '[1,2]'::vector <-> '[1,2,3]';
SELECT '[1,2]'::vector <#> '[1,2,3]';
SELECT '[1,2]'::vector <=> '[1,2,3]';
SELECT '[1,2]'::vector <+> '[1,2,3]';
SELECT '[1,2]'::vector + '[1,2,3]';
\set VERBOSITY default
SELECT '[1,2]'::vector <-> '[1,2,3]';
\set VERBOSITY sqlstate

-- element-wise arithmetic and concatenation
SELECT '[1,2,3]'::vector + '[4,5,6]', '[1,2,3]'::vector - '[4,5,6]', '[1,2,3]'::vector * '[4,5,6]';
SELECT '[1,2]'::vector || '[3]';
SELECT '[3e38]'::vector + '[3e38]';
SELECT '[1e-30]'::vector * '[1e-30]';

-- functions
SELECT vector_dims('[1,2,3]'::vector), vector_norm('[3,4]'), vector_norm('[1,1,1]');
SELECT l2_normalize('[3,4]'::vector), l2_normalize('[0,0]'::vector);
SELECT subvector('[1,2,3,4,5]'::vector, 2, 3), subvector('[1,2,3,4,5]'::vector, -1, 4), subvector('[1,2,3,4,5]'::vector, 4, 100);
SELECT subvector('[1,2,3]'::vector, 4, 1);
SELECT subvector('[1,2,3]'::vector, 1, 0);

-- casts from and to arrays
SELECT ARRAY[1,2,3]::vector, ARRAY[1.5,2.5]::real[]::vector, ARRAY[1.25,2]::float8[]::vector, ARRAY[1.1,2.2]::numeric[]::vector;
SELECT '[1,2,3]'::vector::real[];
SELECT ARRAY[1,NULL]::int[]::vector;
SELECT ARRAY[[1,2],[3,4]]::int[]::vector;
SELECT ARRAY[]::int[]::vector;
SELECT ARRAY[1e300]::float8[]::vector;
SELECT ARRAY['NaN']::float8[]::vector;
SELECT ARRAY[1,2]::int[]::vector(3);
INSERT INTO items VALUES (5, ARRAY[7,8,9]);
INSERT INTO items VALUES (6, ARRAY[7,8]);
SELECT v FROM items WHERE id = 5;

-- comparison and btree ordering
SELECT '[1,2]'::vector < '[1,3]', '[1,2]'::vector <= '[1,2]', '[1,2]'::vector = '[1,2]',
       '[1,2]'::vector <> '[1,2,0]', '[2]'::vector > '[1,9]', '[1,2]'::vector >= '[1,2,3]';
SELECT vector_cmp('[1,2]', '[1,2,0]'), vector_cmp('[2]', '[1,9]'), vector_cmp('[1]', '[1]');
CREATE TABLE ordered (v vector);
INSERT INTO ordered VALUES ('[3]'), ('[1,2]'), ('[1]'), ('[1,2,0]'), ('[-1,5]'), ('[1,1.5]');
SELECT v FROM ordered ORDER BY v;
CREATE INDEX ON ordered (v);
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT v FROM ordered WHERE v = '[1,2]';
SELECT v FROM ordered WHERE v = '[1,2]';
SELECT v FROM ordered WHERE v > '[1,2]' ORDER BY v;
RESET enable_seqscan;
SELECT DISTINCT v FROM (VALUES ('[1,2]'::vector), ('[1,2]'), ('[2,1]')) t(v) ORDER BY v;

-- aggregates
SELECT avg(v), sum(v) FROM (VALUES ('[1,2]'::vector), ('[3,4]'), ('[5,9]')) t(v);
SELECT avg(v) FROM (VALUES ('[1,2]'::vector), ('[3]')) t(v);
SELECT sum(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) t(v);
-- aggregate state arrays are checked like pgvector's (XX000, "expected state array")
SELECT vector_avg('{}'::float8[]);
SELECT vector_avg('{{1,2},{3,4}}'::float8[]);
SELECT vector_avg('{1,NULL}'::float8[]);
SELECT vector_accum('{}'::float8[], '[1,2]');
SELECT vector_combine('{1,2}'::float8[], '{{1,2}}'::float8[]);
SELECT vector_avg('{2}'::float8[]);
SELECT vector_avg('{0}'::float8[]) IS NULL AS no_rows, vector_avg('{2,3,5}'::float8[]) AS avg,
       vector_accum('{0}'::float8[], '[1,2]') AS first, vector_combine('{1,2}'::float8[], '{3}'::float8[]) AS combined;
SELECT vector_combine('{1,1.7e308}'::float8[], '{1,1.7e308}'::float8[]);

-- binary COPY round trip
CREATE TABLE bin_src (id int, v vector);
INSERT INTO bin_src VALUES (1, '[1,2.5,-0.03]'), (2, '[3.4028235e38,1e-30]'), (3, NULL);
COPY bin_src TO '/tmp/strata_vector_bin.copy' WITH (FORMAT binary);
CREATE TABLE bin_dst (id int, v vector(3));
COPY bin_dst FROM '/tmp/strata_vector_bin.copy' WITH (FORMAT binary);
CREATE TABLE bin_dst2 (id int, v vector);
COPY bin_dst2 FROM '/tmp/strata_vector_bin.copy' WITH (FORMAT binary);
SELECT a.id, a.v = b.v AS same, b.v FROM bin_src a JOIN bin_dst2 b USING (id) ORDER BY id;
SELECT vector_send('[1,2]'), vector_send('[-0.5]');

-- the session survives all of the errors above
SELECT 'alive'::text;
DROP TABLE items, ordered, bin_src, bin_dst2;
