-- halfvec, pgvector's half-precision vector: text and binary forms,
-- rounding to binary16 and its range, typmods, casts, arithmetic,
-- distances, functions, ordering and aggregates, errors with their
-- messages. Every value here was checked against pgvector 0.8.6 on the
-- same server.

-- input: whitespace, signs, exponents; values print as the float4 of
-- their binary16 (2.1 is stored as 2.0996094)
SELECT '[4,-5.5,6e-1]'::halfvec, '  [ 0.25 ,  -0 ]  '::halfvec, '[2.1,3.3333]'::halfvec;
SELECT '[+7.,.5,1E2]'::halfvec;
-- rounding: 65504 is the largest finite value; past 65519.99 it overflows
SELECT '[65504,-65504,65519.99]'::halfvec;
SELECT '[0.00001,6e-8,1e-9,-2e-8]'::halfvec;
SELECT '[65520]'::halfvec;
SELECT '[-70000,1]'::halfvec;
SELECT '[1,5e38]'::halfvec;
SELECT '[1e-50]'::halfvec;
SELECT '[nan]'::halfvec;
SELECT '[1,-inf]'::halfvec;
-- syntax
SELECT '[1 2]'::halfvec;
SELECT '(1,2)'::halfvec;
SELECT '[1,2]]'::halfvec;
SELECT '[1;2]'::halfvec;
SELECT '[ ]'::halfvec;
SELECT '[1,'::halfvec;
SELECT '[x]'::halfvec;
SELECT ''::halfvec;

-- typmods
SELECT '[1,2]'::halfvec(2), '[1,2]'::halfvec(2)::halfvec(2);
SELECT '[1,2]'::halfvec(3);
SELECT '[1]'::halfvec(1, 1);
SELECT '[1]'::halfvec(-1);
SELECT '[1]'::halfvec(16001);
SELECT '{"[1,2]","[3,4]"}'::halfvec(2)[];
SELECT '{"[1,2]","[3]"}'::halfvec(2)[];
CREATE TABLE h_typmod (v halfvec(3));
INSERT INTO h_typmod VALUES ('[1,2,3]');
INSERT INTO h_typmod VALUES ('[1,2]');
SELECT * FROM h_typmod;
DROP TABLE h_typmod;

-- casts from arrays: int, real, double precision, numeric
SELECT ARRAY[3,-4]::halfvec, ARRAY[0.5,1.25]::real[]::halfvec, ARRAY[1e-3,7]::float8[]::halfvec,
       ARRAY[2.5,100]::numeric[]::halfvec;
SELECT ARRAY[1,2,3]::halfvec(3), '{5,6}'::real[]::halfvec(2);
SELECT ARRAY[1,2,3]::halfvec(2);
SELECT ARRAY[70000]::halfvec;
SELECT '{100000}'::real[]::halfvec;
SELECT '{1e39}'::float8[]::halfvec;
SELECT '{1e-30,-1e-30}'::float8[]::halfvec;
SELECT '{NaN}'::float8[]::halfvec;
SELECT '{-Infinity}'::real[]::halfvec;
SELECT '{1,NULL}'::real[]::halfvec;
SELECT '{{1,2},{3,4}}'::real[]::halfvec;
SELECT '{}'::int[]::halfvec;
SELECT array_fill(1, ARRAY[16001])::halfvec;
-- to real[] and between vector and halfvec
SELECT '[1.5,-2.1]'::halfvec::real[];
SELECT '[0.1,0.2]'::vector::halfvec, '[0.1,0.2]'::halfvec::vector;
SELECT '[1,2]'::vector::halfvec(2), '[1,2]'::halfvec::vector(2);
SELECT '[1,2]'::vector::halfvec(3);
SELECT '[1,2]'::halfvec::vector(1);
SELECT '[1,99999]'::vector::halfvec;
SELECT '[5e-9]'::vector::halfvec;
-- vector converts to halfvec implicitly (halfvec to vector on assignment)
SELECT '[1,2]'::halfvec <-> '[3,4]'::vector, inner_product('[1,2]'::halfvec, '[3,4]'::vector);

-- binary form: int16 dim, int16 unused, big-endian binary16 values
SELECT halfvec_send('[1.5,-2,65504]'), halfvec_send('[0.1]');
CREATE TABLE h_copy (i int, v halfvec);
INSERT INTO h_copy VALUES (1, '[1,-2.5,0.125]'), (2, '[65504,6e-8]'), (3, NULL);
COPY h_copy TO '/tmp/strata_halfvec.bin' WITH (FORMAT binary);
CREATE TABLE h_copy2 (LIKE h_copy);
COPY h_copy2 FROM '/tmp/strata_halfvec.bin' WITH (FORMAT binary);
SELECT a.i, a.v, a.v = b.v AS same FROM h_copy a JOIN h_copy2 b USING (i) ORDER BY a.i;
DROP TABLE h_copy, h_copy2;

-- arithmetic: element-wise, rounded to binary16, overflow and underflow
SELECT '[1,2.5,-3]'::halfvec + '[0.5,0.5,3]', '[1,2.5,-3]'::halfvec - '[0.5,0.5,3]',
       '[1,2.5,-3]'::halfvec * '[0.5,0.5,3]';
SELECT '[0.1]'::halfvec + '[0.2]';
SELECT '[60000]'::halfvec + '[10000]';
SELECT '[-60000]'::halfvec - '[10000]';
SELECT '[300]'::halfvec * '[300]';
SELECT '[0.0001]'::halfvec * '[0.001]';
SELECT '[0]'::halfvec * '[0.001]';
SELECT '[1,2]'::halfvec + '[1,2,3]';
SELECT '[1]'::halfvec - '[1,2]';
SELECT '[1,2]'::halfvec * '[1]';
SELECT '[1,2]'::halfvec || '[3]', '[0.5]'::halfvec || '[0.25,0.125]';
SELECT vector_dims(array_fill(1, ARRAY[15999])::halfvec || '[1]');
SELECT array_fill(1, ARRAY[15999])::halfvec || '[1,2]';

-- distances
SELECT l2_distance('[1,1]'::halfvec, '[4,5]'), '[1,1]'::halfvec <-> '[4,5]',
       halfvec_l2_squared_distance('[1,1]', '[4,5]');
SELECT l2_distance('[1,2,3,4,5,6,7,8,9,10]'::halfvec, '[10,9,8,7,6,5,4,3,2,1]');
SELECT inner_product('[1,2,3]'::halfvec, '[4,-5,6]'), '[1,2,3]'::halfvec <#> '[4,-5,6]',
       halfvec_negative_inner_product('[1,2,3]', '[4,-5,6]');
SELECT inner_product('[60000,60000]'::halfvec, '[60000,60000]');
SELECT cosine_distance('[1,0]'::halfvec, '[0,3]'), cosine_distance('[2,2]'::halfvec, '[3,3]'),
       cosine_distance('[1,1]'::halfvec, '[-2,-2]'), '[3,4]'::halfvec <=> '[4,3]';
SELECT cosine_distance('[0,0]'::halfvec, '[1,1]');
SELECT round(cosine_distance('[1,2,3,4,5,6,7,8,9]'::halfvec, '[9,8,7,6,5,4,3,2,1]')::numeric, 6);
SELECT l1_distance('[1,-1,2]'::halfvec, '[-1,1,5]'), '[1,-1,2]'::halfvec <+> '[-1,1,5]';
SELECT l1_distance('[0.5,1,2,3,4,5,6,7,8,9,10,11]'::halfvec, '[0,0,0,0,0,0,0,0,0,0,0,0]');
SELECT l2_distance('[1,2]'::halfvec, '[1,2,3]');
SELECT '[1,2]'::halfvec <#> '[1]';
SELECT cosine_distance('[1]'::halfvec, '[1,2]');
SELECT '[1]'::halfvec <+> '[1,2]';

-- functions
SELECT vector_dims('[1,2,3,4]'::halfvec), l2_norm('[6,8]'::halfvec), l2_norm('[0,0,0]'::halfvec),
       round(l2_norm('[1,2,3]'::halfvec)::numeric, 5);
SELECT l2_normalize('[6,8]'::halfvec), l2_normalize('[0,-2]'::halfvec), l2_normalize('[0,0]'::halfvec);
SELECT l2_normalize('[0.001,0.001,0.001]'::halfvec);
SELECT binary_quantize('[0.5,-0.5,0,1,-0,2,-3,4,5]'::halfvec);
SELECT binary_quantize('[-1,-2]'::halfvec), binary_quantize(l2_normalize('[3,-4]'::halfvec));
SELECT subvector('[1,2,3,4,5,6]'::halfvec, 2, 3), subvector('[1,2,3,4,5,6]'::halfvec, 5, 10),
       subvector('[1,2,3,4,5,6]'::halfvec, -2, 4);
SELECT subvector('[1,2,3]'::halfvec, 4, 1);
SELECT subvector('[1,2,3]'::halfvec, 1, 0);
SELECT subvector('[1,2,3]'::halfvec, -3, 3);
SELECT subvector('[1,2,3]'::halfvec, 2, 2147483647);

-- ordering: by value element by element, then by length; a btree index
SELECT '[1,2]'::halfvec < '[1,3]', '[1,2]'::halfvec < '[1,2,0]', '[2]'::halfvec > '[1,9]',
       '[1,2]'::halfvec = '[1,2]', '[1,2]'::halfvec <> '[1,2.001]', '[-0]'::halfvec = '[0]',
       '[1,2]'::halfvec <= '[1,2]', '[1,2]'::halfvec >= '[1,1,1]';
-- 1.0001 rounds to 1 in binary16
SELECT '[1.0001]'::halfvec = '[1]';
SELECT halfvec_cmp('[1,2]', '[1,2]'), halfvec_cmp('[-1]', '[1]'), halfvec_cmp('[1,2]', '[1]'),
       halfvec_cmp('[0,5]', '[1]');
CREATE TABLE h_order (i int, v halfvec);
INSERT INTO h_order VALUES (1, '[3,1]'), (2, '[-1,5]'), (3, '[3]'), (4, '[3,1,0]'), (5, '[-2]'), (6, '[3,0.5]');
CREATE INDEX ON h_order (v);
SET enable_seqscan = off;
SELECT i, v FROM h_order ORDER BY v;
SELECT i FROM h_order WHERE v = '[3,1]';
RESET enable_seqscan;
SELECT i, v FROM h_order ORDER BY v DESC LIMIT 2;
DROP TABLE h_order;

-- aggregates: avg and sum in double precision, the result rounded
SELECT avg(v), sum(v) FROM (VALUES ('[1,2,3]'::halfvec), ('[2,4,7]'), (NULL)) t(v);
SELECT avg(v), sum(v) FROM (VALUES ('[0.1,0.3]'::halfvec), ('[0.2,0.4]')) t(v);
SELECT avg(v) IS NULL, sum(v) IS NULL FROM (SELECT NULL::halfvec WHERE false) t(v);
SELECT avg(v) FROM (VALUES ('[1,2]'::halfvec), ('[1]')) t(v);
SELECT sum(v) FROM (VALUES ('[1,2]'::halfvec), ('[1]')) t(v);
SELECT sum(v) FROM (VALUES ('[40000]'::halfvec), ('[40000]')) t(v);
SELECT avg(v) FROM (VALUES ('[40000]'::halfvec), ('[40000]')) t(v);
SELECT halfvec_accum('{0}', '[1,2]'), halfvec_accum('{2,4,6}', '[1,2]');
SELECT halfvec_accum('{1,2,3}', '[1]');
SELECT halfvec_accum('{NULL,1}', '[1]');
SELECT halfvec_avg('{4,8,-12}'), halfvec_avg('{0}') IS NULL;
SELECT halfvec_avg('{1,300000}');
SELECT halfvec_avg('{{1,2}}');
SELECT halfvec_combine('{1,2}', '{2,6}'), halfvec_combine('{0}', '{3,1}');
SELECT halfvec_combine('{1,2}', '{1,2,3}');

-- stored in tables of either access method, with TOAST-sized values
CREATE TABLE h_heap (i int, v halfvec);
CREATE TABLE h_lsm (i int, v halfvec) USING lsm;
INSERT INTO h_heap SELECT g, ARRAY[g, -g, g * 0.5]::halfvec FROM generate_series(1, 5) g;
INSERT INTO h_heap SELECT 100, array_fill(0.5::real, ARRAY[3000])::halfvec;
INSERT INTO h_lsm SELECT * FROM h_heap;
SELECT i, v FROM h_lsm WHERE i < 100 ORDER BY v <-> '[2,-2,1]' LIMIT 3;
SELECT i, vector_dims(v), l2_norm(v) FROM h_lsm WHERE i = 100;
SELECT count(*) FROM h_heap h JOIN h_lsm l USING (i) WHERE h.v = l.v;
UPDATE h_lsm SET v = v * '[2,2,2]' WHERE i = 2;
SELECT v FROM h_lsm WHERE i = 2;
DROP TABLE h_heap, h_lsm;
