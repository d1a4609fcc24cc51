//! Catalog objects of the `vector` type: the type itself, casts, operators, the
//! btree and `strata_hnsw` operator classes and the aggregates. Function bodies live in
//! [`super::sql`]; this file only wires them into SQL.

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicU32, Ordering};

extension_sql!(
    r#"
-- The shell types let the I/O functions name `vector`, `halfvec`
-- (half_catalog.rs) and `sparsevec` (sparse_catalog.rs) before they are
-- complete.
CREATE TYPE vector;
CREATE TYPE halfvec;
CREATE TYPE sparsevec;
"#,
    name = "vector_shell_type",
    bootstrap
);

extension_sql!(
    r#"
CREATE TYPE vector (
    INPUT     = vector_in,
    OUTPUT    = vector_out,
    TYPMOD_IN = vector_typmod_in,
    RECEIVE   = vector_recv,
    SEND      = vector_send,
    STORAGE   = external
);
"#,
    name = "vector_type",
    requires = [
        vector::sql::vector_in,
        vector::sql::vector_out,
        vector::sql::vector_typmod_in,
        vector::sql::vector_recv,
        vector::sql::vector_send
    ]
);

extension_sql!(
    r#"
CREATE CAST (vector AS vector) WITH FUNCTION vector(vector, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS vector) WITH FUNCTION array_to_vector(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS vector) WITH FUNCTION array_to_vector(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS vector) WITH FUNCTION array_to_vector(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS vector) WITH FUNCTION array_to_vector(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (vector AS real[]) WITH FUNCTION vector_to_float4(vector, integer, boolean) AS IMPLICIT;

CREATE AGGREGATE avg(vector) (
    SFUNC = vector_accum, STYPE = double precision[], FINALFUNC = vector_avg,
    COMBINEFUNC = vector_combine, INITCOND = '{0}', PARALLEL = SAFE
);
CREATE AGGREGATE sum(vector) (
    SFUNC = vector_add, STYPE = vector, COMBINEFUNC = vector_add, PARALLEL = SAFE
);

CREATE OPERATOR <-> (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = l2_distance, COMMUTATOR = '<->');
CREATE OPERATOR <#> (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_negative_inner_product, COMMUTATOR = '<#>');
CREATE OPERATOR <=> (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = cosine_distance, COMMUTATOR = '<=>');
CREATE OPERATOR <+> (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = l1_distance, COMMUTATOR = '<+>');

-- PostgreSQL's own bit type, as pgvector extends it (bit_sql.rs)
CREATE OPERATOR <~> (LEFTARG = bit, RIGHTARG = bit, PROCEDURE = hamming_distance, COMMUTATOR = '<~>');
CREATE OPERATOR <%> (LEFTARG = bit, RIGHTARG = bit, PROCEDURE = jaccard_distance, COMMUTATOR = '<%>');

CREATE OPERATOR + (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_add, COMMUTATOR = +);
CREATE OPERATOR - (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_sub);
CREATE OPERATOR * (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_mul, COMMUTATOR = *);
CREATE OPERATOR || (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_concat);

CREATE OPERATOR < (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel);
CREATE OPERATOR <= (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel);
CREATE OPERATOR = (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, MERGES);
CREATE OPERATOR <> (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel);
CREATE OPERATOR >= (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel);
CREATE OPERATOR > (LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel);

CREATE OPERATOR CLASS vector_ops DEFAULT FOR TYPE vector USING btree AS
    OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >,
    FUNCTION 1 vector_cmp(vector, vector);

-- strata_hnsw: support function 1 is the distance, which names the metric.
CREATE OPERATOR CLASS vector_l2_ops DEFAULT FOR TYPE vector USING strata_hnsw AS
    OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 l2_distance(vector, vector);
CREATE OPERATOR CLASS vector_ip_ops FOR TYPE vector USING strata_hnsw AS
    OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 vector_negative_inner_product(vector, vector);
CREATE OPERATOR CLASS vector_cosine_ops FOR TYPE vector USING strata_hnsw AS
    OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 cosine_distance(vector, vector);
CREATE OPERATOR CLASS vector_l1_ops FOR TYPE vector USING strata_hnsw AS
    OPERATOR 1 <+> (vector, vector) FOR ORDER BY float_ops,
    FUNCTION 1 l1_distance(vector, vector);

-- strata_hnsw on PostgreSQL's bit(n): one bit per dimension in the index
-- (format version 7), up to 64,000 bits; no default, as pgvector.
CREATE OPERATOR CLASS bit_hamming_ops FOR TYPE bit USING strata_hnsw AS
    OPERATOR 1 <~> (bit, bit) FOR ORDER BY float_ops,
    FUNCTION 1 hamming_distance(bit, bit);
CREATE OPERATOR CLASS bit_jaccard_ops FOR TYPE bit USING strata_hnsw AS
    OPERATOR 1 <%> (bit, bit) FOR ORDER BY float_ops,
    FUNCTION 1 jaccard_distance(bit, bit);
"#,
    name = "vector_catalog",
    finalize
);

/// OID of the `vector` type in this database (cached per backend).
pub fn vector_type_oid() -> pg_sys::Oid {
    static OID: AtomicU32 = AtomicU32::new(0);
    type_oid(&OID, "vector")
}

/// OID of the `sparsevec` type in this database (cached per backend).
pub fn sparsevec_type_oid() -> pg_sys::Oid {
    static OID: AtomicU32 = AtomicU32::new(0);
    type_oid(&OID, "sparsevec")
}

/// OID of the `halfvec` type in this database (cached per backend).
pub fn halfvec_type_oid() -> pg_sys::Oid {
    static OID: AtomicU32 = AtomicU32::new(0);
    type_oid(&OID, "halfvec")
}

fn type_oid(cache: &AtomicU32, name: &str) -> pg_sys::Oid {
    let cached = cache.load(Ordering::Relaxed);
    if cached != 0 {
        return pg_sys::Oid::from(cached);
    }
    let oid = pgrx::regtypein(name);
    cache.store(oid.to_u32(), Ordering::Relaxed);
    oid
}
