"""The L0 flush and the merges of `lsm` runs do not block DML: while VACUUM
flushes L0 and then merges four level-1 runs (slowed down with
vacuum_cost_delay so that each takes seconds), another session inserts
rows and updates, deletes and locks rows of L0 and of those runs without
waiting for it, beyond the brief seal and switches. The headers those
statements stamp on versions being copied must reach the new runs, and the
rows inserted during the flush must stay in L0: afterwards every row is
there once, with the value the client committed, deleted rows are gone,
and lsm_verify finds nothing.

Usage: test_merge_dml.py PG_HOME
"""

import random
import sys
import threading
import time

from pgcluster import Cluster, log, test_servers

ROWS_PER_RUN = 50000
CONF = {"autovacuum": "off"}


def scenario(cluster, table, vac_settings):
    """One VACUUM (flush, then the merge of four level-1 runs) of a fresh
    table with DML alongside; `vac_settings` for the VACUUM's session."""
    conn = cluster.connect()
    conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v bigint, pad text) USING lsm")
    for r in range(4):
        lo = r * ROWS_PER_RUN + 1
        conn.execute(f"INSERT INTO {table} SELECT g, 0, repeat('m', 60) || g "
                     "FROM generate_series(%s, %s) g", (lo, lo + ROWS_PER_RUN - 1))
        if r < 3:
            conn.execute(f"VACUUM {table}")  # one level-1 run each
    total = 4 * ROWS_PER_RUN
    runs = conn.execute(f"SELECT runs FROM strata.lsm_levels('{table}') WHERE level = 1").fetchone()[0]
    assert runs == 3, f"{runs} level-1 runs before the merge"

    vac = cluster.connect()
    notices = []
    vac.add_notice_handler(lambda d: notices.append(d.message_primary))
    vac.execute("SET vacuum_cost_delay = 2")
    vac.execute("SET vacuum_cost_limit = 5")
    for setting in vac_settings:
        vac.execute(setting)
    vac_pid = vac.execute("SELECT pg_backend_pid()").fetchone()[0]
    result = {}

    def vacuum():
        t0 = time.time()
        vac.execute(f"VACUUM (VERBOSE) {table}")  # flush, then merge the 4 level-1 runs
        result["seconds"] = time.time() - t0

    t = threading.Thread(target=vacuum)
    t.start()
    rng = random.Random(7)
    dml = cluster.connect()
    dml.execute("SET lock_timeout = '3s'")
    increments = {}
    deleted = set()
    inserted = 0
    # statements while the flush ran (level 1 still has 3 runs) and after
    during, during_flush, slowest = 0, 0, 0.0
    flushing = True
    while t.is_alive():
        i = rng.randrange(1, total + 1)
        t0 = time.time()
        kind = rng.random()
        if kind < 0.15:
            inserted += 1
            dml.execute(f"INSERT INTO {table} VALUES (%s, 0, repeat('n', 60))", (total + inserted,))
        elif kind < 0.8 and i not in deleted:
            dml.execute(f"UPDATE {table} SET v = v + 1 WHERE id = %s", (i,))
            increments[i] = increments.get(i, 0) + 1
        elif kind < 0.9 and i not in deleted:
            dml.execute(f"DELETE FROM {table} WHERE id = %s", (i,))
            deleted.add(i)
        else:
            with dml.transaction():
                dml.execute(f"SELECT v FROM {table} WHERE id = %s FOR SHARE", (i,))
        slowest = max(slowest, time.time() - t0)
        if t.is_alive():
            during += 1
            if flushing and during % 20 == 0:
                level1 = conn.execute(f"SELECT runs FROM strata.lsm_levels('{table}') WHERE level = 1").fetchone()
                flushing = bool(level1) and level1[0] == 3
            during_flush += flushing
        time.sleep(0.002)
    t.join()
    log(f"VACUUM took {result['seconds']:.1f} s; {during} statements ran during it, "
        f"{during_flush} of them during the flush (slowest {slowest * 1000:.0f} ms)")
    for n in notices:
        if "merge" in n or "flush" in n:
            log(f"  {n}")
    assert any("merged 4 run(s)" in n for n in notices), notices
    # the flush saw inserts add L0 pages, or DML change headers it copied
    assert any("L0 flush of" in n and "copied again" in n for n in notices), notices
    assert during_flush >= 50, f"only {during_flush} statements ran during the flush"
    assert during - during_flush >= 100, f"only {during - during_flush} statements ran during the merge"
    assert slowest < max(2.0, result["seconds"] / 3), "DML waited for the flush or merge"

    count, distinct, vsum = conn.execute(f"SELECT count(*), count(DISTINCT id), sum(v) FROM {table}").fetchone()
    assert count == distinct, f"{count - distinct} rows appear twice"
    assert count == total + inserted - len(deleted), f"{count} rows, expected {total + inserted - len(deleted)}"
    expected = sum(c for i, c in increments.items() if i not in deleted)
    assert vsum == expected, f"sum(v) = {vsum}, clients committed {expected}"
    gone = conn.execute(f"SELECT count(*) FROM {table} WHERE id = ANY(%s)", (list(deleted),)).fetchone()[0]
    assert gone == 0, f"{gone} deleted rows are back"
    # the same through the primary key
    conn.execute("SET enable_seqscan = off")
    by_index = conn.execute(f"SELECT count(*), sum(v) FROM {table} WHERE id > 0").fetchone()
    assert by_index == (count, vsum), by_index
    problems = conn.execute(f"SELECT count(*) FROM strata.lsm_verify('{table}')").fetchone()[0]
    assert problems == 0, f"lsm_verify: {problems} problems"
    levels = conn.execute(f"SELECT level, runs FROM strata.lsm_levels('{table}') WHERE level > 0").fetchall()
    l0 = conn.execute(f"SELECT pages FROM strata.lsm_levels('{table}') WHERE level = 0").fetchone()[0]
    log(f"rows {count} ({inserted} inserted, {len(deleted)} deleted, {sum(increments.values())} updates), "
        f"levels {levels}, L0 {l0} pages")
    log(f"{table}: passed")


def main():
    pg_home = sys.argv[1]
    tag = pg_home.strip("/").replace("/", "_")
    cluster = Cluster(pg_home, f"mergedml-{tag}").initdb(CONF).start()
    with test_servers(cluster, name="flush+merge/DML test"):
        conn = cluster.connect()
        conn.execute("CREATE EXTENSION strata")
        # the new runs compact like their sources
        scenario(cluster, "m", [])
        # the new runs uncompressed, their sources compact: a header a
        # source page shares must reach the new page as the version's own
        scenario(cluster, "mu", ["SET strata.lsm_compression_level = 0"])
        log("flush+merge/DML test passed")


if __name__ == "__main__":
    main()
