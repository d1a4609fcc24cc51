-- sparsevec, pgvector's sparse vector: text and binary forms (1-based
-- indices, zeros dropped, any order in), typmods, casts to and from vector,
-- halfvec and arrays, distances, norms, ordering, errors with their
-- messages. Every value here was checked against pgvector 0.8.6 on the
-- same server.

-- input: whitespace, order, zeros, exponents
SELECT '{1:1.5,3:-2}/5'::sparsevec, ' { 4 : 0.25 , 2:1e2 } / 4 '::sparsevec, '{}/3'::sparsevec;
SELECT '{2:0,3:7}/3'::sparsevec, '{1:-0}/1'::sparsevec, '{+2:3}/2'::sparsevec;
SELECT '{1:1e-40}/1'::sparsevec;
-- errors: indices, values, dimensions, syntax
SELECT '{1:1,1:2}/2'::sparsevec;
SELECT '{3:1}/2'::sparsevec;
SELECT '{0:1}/2'::sparsevec;
SELECT '{-1:1}/2'::sparsevec;
SELECT '{99999999999:1}/2'::sparsevec;
SELECT '{1:1e-50}/2'::sparsevec;
SELECT '{1:5e38}/2'::sparsevec;
SELECT '{1:NaN}/2'::sparsevec;
SELECT '{1:-inf}/2'::sparsevec;
SELECT '{1:1}/0'::sparsevec;
SELECT '{1:1}/1000000001'::sparsevec;
SELECT '{}/1000000000'::sparsevec;
SELECT '[1,2]'::sparsevec;
SELECT '{1:1}'::sparsevec;
SELECT '{1:1}/2/'::sparsevec;
SELECT '{1 1}/2'::sparsevec;
SELECT '{1:}/2'::sparsevec;
SELECT '{:1}/2'::sparsevec;
SELECT '{1:1,}/2'::sparsevec;
SELECT '{1:1}/x'::sparsevec;
SELECT ''::sparsevec;

-- typmods
SELECT '{1:1}/3'::sparsevec(3), '{}/2'::sparsevec(2)::sparsevec(2);
SELECT '{1:1}/3'::sparsevec(2);
SELECT '{1:1}/3'::sparsevec(3, 1);
SELECT '{1:1}/3'::sparsevec(0);
SELECT '{1:1}/3'::sparsevec(1000000001);
CREATE TABLE s_typmod (v sparsevec(4));
INSERT INTO s_typmod VALUES ('{4:1}/4');
INSERT INTO s_typmod VALUES ('{4:1}/5');
SELECT * FROM s_typmod;
DROP TABLE s_typmod;

-- casts: vector and halfvec (implicit towards sparsevec), arrays
SELECT '[0,1.5,0,-2]'::vector::sparsevec, '{2:1.5,4:-2}/4'::sparsevec::vector;
SELECT '[0,2.1,0]'::halfvec::sparsevec, '{2:2.1}/3'::sparsevec::halfvec;
SELECT '[1,2]'::vector::sparsevec(2), '{1:1}/2'::sparsevec::vector(2);
SELECT '[1,2]'::vector::sparsevec(3);
SELECT '{1:1}/2'::sparsevec::vector(3);
SELECT '{1:1}/16001'::sparsevec::vector;
SELECT '{1:1}/16001'::sparsevec::halfvec;
SELECT '{1:70000}/2'::sparsevec::halfvec;
SELECT '[0,0,0]'::vector::sparsevec;
SELECT ARRAY[0,3,0]::sparsevec, ARRAY[1.5,0]::real[]::sparsevec, ARRAY[0,2.5]::float8[]::sparsevec,
       ARRAY[0.5,0]::numeric[]::sparsevec;
SELECT ARRAY[1,0,2]::sparsevec(3);
SELECT ARRAY[1,0,2]::sparsevec(2);
SELECT '{NaN,1}'::real[]::sparsevec;
SELECT '{1e39}'::float8[]::sparsevec;
SELECT '{1,NULL}'::real[]::sparsevec;
SELECT '{{1,2}}'::real[]::sparsevec;
SELECT '{}'::real[]::sparsevec;
SELECT array_fill(1, ARRAY[16001])::sparsevec;
SELECT array_fill(0, ARRAY[20000])::sparsevec = '{}/20000';

-- binary form: int32 dim, nnz, unused, 0-based indices, values
SELECT sparsevec_send('{2:1.5,5:-2}/6');
CREATE TABLE s_copy (i int, v sparsevec);
INSERT INTO s_copy VALUES (1, '{1:1,1000000:-2.5}/1000000'), (2, '{}/7'), (3, NULL);
COPY s_copy TO '/tmp/strata_sparsevec.bin' WITH (FORMAT binary);
CREATE TABLE s_copy2 (LIKE s_copy);
COPY s_copy2 FROM '/tmp/strata_sparsevec.bin' WITH (FORMAT binary);
SELECT a.i, a.v, a.v = b.v AS same FROM s_copy a JOIN s_copy2 b USING (i) ORDER BY a.i;
DROP TABLE s_copy, s_copy2;

-- distances: in index order, as dense vectors would give
SELECT l2_distance('{1:1,3:2}/4'::sparsevec, '{2:2,3:4}/4'), '{1:1,3:2}/4'::sparsevec <-> '{2:2,3:4}/4',
       sparsevec_l2_squared_distance('{1:1,3:2}/4', '{2:2,3:4}/4');
SELECT inner_product('{1:1,3:2}/4'::sparsevec, '{2:2,3:4}/4'), '{1:1,3:2}/4'::sparsevec <#> '{2:2,3:4}/4',
       sparsevec_negative_inner_product('{1:3}/4', '{2:2}/4');
SELECT cosine_distance('{1:1,2:1}/2'::sparsevec, '{1:2,2:2}/2'), '{1:1}/2'::sparsevec <=> '{2:3}/2',
       '{1:1,2:1}/2'::sparsevec <=> '{1:-1,2:-1}/2';
SELECT cosine_distance('{}/2'::sparsevec, '{1:1}/2');
SELECT round(cosine_distance('{1:1,2:2,3:3}/9'::sparsevec, '{7:1,8:2,9:3,3:1}/9')::numeric, 6);
SELECT l1_distance('{1:1,3:-2}/4'::sparsevec, '{2:2,3:4}/4'), '{1:1,3:-2}/4'::sparsevec <+> '{2:2,3:4}/4';
SELECT l2_distance('{1:0.1,2:0.2,5:0.3,9:0.4}/10'::sparsevec, '{2:0.7,3:0.1,9:-0.4,10:1}/10'),
       l1_distance('{1:0.1,2:0.2,5:0.3,9:0.4}/10'::sparsevec, '{2:0.7,3:0.1,9:-0.4,10:1}/10'),
       inner_product('{1:0.1,2:0.2,5:0.3,9:0.4}/10'::sparsevec, '{2:0.7,3:0.1,9:-0.4,10:1}/10');
SELECT l2_distance('{1:1}/2'::sparsevec, '{1:1}/3');
SELECT '{1:1}/2'::sparsevec <#> '{1:1}/3';
SELECT cosine_distance('{1:1}/2'::sparsevec, '{1:1}/3');
SELECT '{1:1}/2'::sparsevec <+> '{1:1}/3';

-- norms
SELECT l2_norm('{1:3,5:4}/5'::sparsevec), l2_norm('{}/5'::sparsevec), round(l2_norm('{1:1,2:1}/2'::sparsevec)::numeric, 5);
SELECT l2_normalize('{1:3,5:4}/5'::sparsevec), l2_normalize('{}/5'::sparsevec), l2_normalize('{2:-0.5}/3'::sparsevec);
SELECT l2_normalize('{1:1e-30,2:1}/2'::sparsevec);

-- ordering: as the dense vectors, then by dimensions; a btree index
SELECT '{1:1}/3'::sparsevec < '{2:1}/3', '{1:-1}/3'::sparsevec < '{2:1}/3', '{1:1}/3'::sparsevec = '{1:1}/3',
       '{1:1}/3'::sparsevec < '{1:1}/4', '{1:1,2:-1}/3'::sparsevec < '{1:1}/3', '{}/3'::sparsevec > '{3:-1}/3',
       '{1:1}/3'::sparsevec <> '{1:1.5}/3', '{1:2}/2'::sparsevec >= '{1:1,2:9}/2', '{1:2}/2'::sparsevec <= '{1:2}/2';
SELECT sparsevec_cmp('{1:1}/2', '{1:1}/2'), sparsevec_cmp('{2:1}/2', '{1:1}/2'), sparsevec_cmp('{}/2', '{2:-1}/2'),
       sparsevec_cmp('{1:1}/2', '{1:1}/1');
CREATE TABLE s_order (i int, v sparsevec);
INSERT INTO s_order VALUES (1, '{1:1}/3'), (2, '{2:1}/3'), (3, '{}/3'), (4, '{3:-1}/3'), (5, '{1:1}/4'),
    (6, '{1:-2,3:1}/3'), (7, '{1:1,2:0.5}/3');
CREATE INDEX ON s_order (v);
SET enable_seqscan = off;
SELECT i, v FROM s_order ORDER BY v;
SELECT i FROM s_order WHERE v = '{2:1}/3';
RESET enable_seqscan;
DROP TABLE s_order;

-- stored in tables of either access method, compared with the dense form
CREATE TABLE s_heap (i int, v sparsevec(30000));
CREATE TABLE s_lsm (i int, v sparsevec(30000)) USING lsm;
INSERT INTO s_heap SELECT g, ('{' || string_agg((g * 37 + k * 101) % 30000 + 1 || ':' || k * 0.5, ',') || '}/30000')::sparsevec
FROM generate_series(1, 20) g, generate_series(1, 100) k GROUP BY g;
INSERT INTO s_lsm SELECT * FROM s_heap;
SELECT count(*), sum(l2_norm(v))::numeric(12, 4) FROM s_lsm;
SELECT count(*) FROM s_heap h JOIN s_lsm l USING (i) WHERE h.v = l.v;
SELECT i FROM s_lsm ORDER BY v <-> (SELECT v FROM s_heap WHERE i = 7), i LIMIT 3;
SELECT i FROM s_lsm ORDER BY v <#> (SELECT v FROM s_heap WHERE i = 7), i LIMIT 3;
DROP TABLE s_heap, s_lsm;
