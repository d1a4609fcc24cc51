-- PostgreSQL's bit type as pgvector extends it: Hamming and Jaccard
-- distance (functions and operators), binary_quantize(vector), errors.
-- Every value here was checked against pgvector 0.8.6 on the same server.

-- Hamming distance: bits that differ
SELECT hamming_distance(B'111', B'001');
SELECT hamming_distance(B'1111000011110000101', B'0000111111110000111');
SELECT B'101' <~> B'010', B'101' <~> B'101';
-- across the 64-bit words and a tail
SELECT hamming_distance(repeat('10', 100)::bit(200), repeat('01', 100)::bit(200)),
       hamming_distance(repeat('1', 130)::bit(130), (repeat('1', 65) || repeat('0', 65))::bit(130));
-- bit varying arguments
SELECT hamming_distance(B'1101'::varbit, B'0111'::varbit);

-- Jaccard distance: 1 - |a and b| / |a or b|; 1 when no bit is shared
SELECT jaccard_distance(B'1111', B'1010');
SELECT jaccard_distance(B'1111', B'0000'), jaccard_distance(B'0000', B'0000'), jaccard_distance(B'1100', B'1100');
SELECT round((B'110' <%> B'011')::numeric, 12);
SELECT round(jaccard_distance(repeat('1', 100)::bit(100), (repeat('1', 30) || repeat('0', 70))::bit(100))::numeric, 12);

-- lengths must match: 22000, pgvector's message
\set VERBOSITY sqlstate
SELECT hamming_distance(B'111', B'11');
SELECT jaccard_distance(B'1', B'10');
\set VERBOSITY default
SELECT B'111' <~> B'11';
SELECT B'1' <%> B'10';

-- binary_quantize: one bit per dimension, set when the element is positive
SELECT binary_quantize('[1,-2,0,3]'::vector);
SELECT binary_quantize('[0.5,-0.5,0.5,-0.5,0.5,-0.5,0.5,-0.5,1,1,1]'::vector);
SELECT binary_quantize('[-0,1e-30,-1e-30]'::vector);
SELECT length(binary_quantize(array_fill(1, ARRAY[1536])::vector)),
       bit_count(binary_quantize(array_fill(1, ARRAY[1536])::vector));
SELECT pg_typeof(binary_quantize('[1]'::vector));
SELECT binary_quantize('[1,-1,1]'::vector) <~> binary_quantize('[1,1,-1]'::vector);
SELECT NULL::bit <~> B'1', hamming_distance(NULL, B'1'), binary_quantize(NULL::vector);

-- first pass by Hamming distance of quantized vectors, then rerank by the
-- exact distance, on heap and lsm tables
CREATE TABLE bq_heap (id int PRIMARY KEY, v vector(8));
CREATE TABLE bq_lsm (id int PRIMARY KEY, v vector(8)) USING lsm;
INSERT INTO bq_heap
SELECT i, ARRAY[sin(i), cos(i), sin(2 * i), cos(2 * i), sin(3 * i), cos(3 * i), sin(5 * i), cos(5 * i)]::vector
FROM generate_series(1, 500) i;
INSERT INTO bq_lsm SELECT * FROM bq_heap;
SELECT id, binary_quantize(v) FROM bq_lsm WHERE id <= 5 ORDER BY id;
SELECT count(*) FROM bq_heap h JOIN bq_lsm l USING (id)
WHERE binary_quantize(h.v) <~> binary_quantize(l.v) <> 0;
SELECT id FROM (
    SELECT id, v FROM bq_lsm
    ORDER BY binary_quantize(v)::bit(8) <~> binary_quantize('[1,1,0,1,0.5,0.5,-1,0]'::vector), id
    LIMIT 40
) first_pass
ORDER BY v <-> '[1,1,0,1,0.5,0.5,-1,0]'::vector
LIMIT 5;
SELECT id FROM bq_heap ORDER BY v <-> '[1,1,0,1,0.5,0.5,-1,0]'::vector LIMIT 5;
SELECT id, binary_quantize(v) <%> B'11010100' AS jaccard FROM bq_heap
ORDER BY binary_quantize(v) <%> B'11010100', id LIMIT 4;
DROP TABLE bq_heap, bq_lsm;
