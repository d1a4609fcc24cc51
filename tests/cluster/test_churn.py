"""Update churn on an `lsm` table with autovacuum on and no manual VACUUM:
every row is updated 20 times while autovacuum flushes, merges and
garbage-collects on its own. At the end the table must hold exactly the
expected rows, verify clean, have been vacuumed and compacted by autovacuum
(pgstat counts, strata.lsm_stats), have advanced relfrozenxid, and take at
most twice the space of its live data (a heap copy of the same rows).

Usage: test_churn.py PG_HOME
"""

import sys
import time

from pgcluster import Cluster, log, test_servers

ROWS = 20000
ROUNDS = 20
BATCH = 1000

CONF = {
    "autovacuum": "on",
    "autovacuum_naptime": "1s",
    "autovacuum_vacuum_threshold": "500",
    "autovacuum_vacuum_scale_factor": "0.05",
    "autovacuum_vacuum_cost_delay": "0",
    "log_autovacuum_min_duration": "0",
    # the fallback: strata not preloaded, lsm changes as GenericXLog records
    "shared_preload_libraries": "''",
}


def stats(conn):
    return conn.execute(
        "SELECT s.autovacuum_count, s.n_dead_tup, pg_relation_size('churn'), "
        "       age(c.relfrozenxid), l.flushes, l.merges, l.dropped_versions, l.write_amplification "
        "FROM pg_stat_user_tables s, pg_class c, strata.lsm_stats('churn') l "
        "WHERE s.relname = 'churn' AND c.relname = 'churn'").fetchone()


def main():
    pg_home = sys.argv[1]
    tag = pg_home.strip("/").replace("/", "_")
    cluster = Cluster(pg_home, f"churn-{tag}").initdb(CONF).start()
    with test_servers(cluster, name="churn test"):
        conn = cluster.connect()
        conn.execute("CREATE EXTENSION strata")
        conn.execute("CREATE TABLE churn (id int PRIMARY KEY, v bigint, pad text) USING lsm")
        conn.execute(f"INSERT INTO churn SELECT g, 0, repeat('x', 100) FROM generate_series(1, {ROWS}) g")
        start_frozen = conn.execute("SELECT relfrozenxid::text::bigint FROM pg_class WHERE relname = 'churn'").fetchone()[0]
        peak = 0
        for r in range(ROUNDS):
            for lo in range(1, ROWS + 1, BATCH):
                conn.execute("UPDATE churn SET v = v + 1 WHERE id BETWEEN %s AND %s", (lo, lo + BATCH - 1))
                time.sleep(0.02)
            av, dead, size, age, flushes, merges, dropped, wa = stats(conn)
            peak = max(peak, size)
            log(f"round {r + 1}: autovacuums {av}, n_dead_tup {dead}, size {size // 8192} pages, "
                f"flushes {flushes}, merges {merges}, dropped {dropped}, write amplification {wa}")
            time.sleep(0.5)
        # let autovacuum catch up with the last rounds (no manual VACUUM)
        deadline = time.time() + 90
        while time.time() < deadline:
            av, dead, size, age, flushes, merges, dropped, wa = stats(conn)
            l0, versions = conn.execute(
                "SELECT sum(pages) FILTER (WHERE level = 0), coalesce(sum(row_versions), 0) "
                "FROM strata.lsm_levels('churn')").fetchone()
            if l0 == 0 and versions == ROWS:  # flushed, and no dead version left in runs
                break
            time.sleep(1)
        av, dead, size, age, flushes, merges, dropped, wa = stats(conn)
        levels = conn.execute("SELECT level, runs, pages, row_versions FROM strata.lsm_levels('churn') "
                              "ORDER BY level").fetchall()
        log(f"after churn: autovacuums {av}, n_dead_tup {dead}, flushes {flushes}, merges {merges}, "
            f"dropped {dropped}, write amplification {wa}, levels {levels}")

        count, total = conn.execute("SELECT count(*), sum(v) FROM churn").fetchone()
        assert (count, total) == (ROWS, ROWS * ROUNDS), (count, total)
        conn.execute("SET enable_seqscan = off")
        assert conn.execute("SELECT count(*), sum(v) FROM churn WHERE id > 0").fetchone() == (ROWS, ROWS * ROUNDS)
        conn.execute("RESET enable_seqscan")
        problems = conn.execute("SELECT * FROM strata.lsm_verify('churn')").fetchall()
        assert problems == [], problems[:10]

        conn.execute("CREATE TABLE live_copy AS SELECT * FROM churn")  # heap: the live data's size
        live = conn.execute("SELECT pg_relation_size('live_copy')").fetchone()[0]
        log(f"size: lsm {size // 8192} pages (peak {peak // 8192}), live data (heap copy) {live // 8192} pages, "
            f"ratio {size / live:.2f}")
        assert av >= 3, f"autovacuum ran {av} times"
        assert merges >= 1 and dropped >= ROWS * (ROUNDS - 2), (merges, dropped)
        frozen = conn.execute("SELECT relfrozenxid::text::bigint FROM pg_class WHERE relname = 'churn'").fetchone()[0]
        assert frozen != start_frozen, "relfrozenxid did not advance"
        assert size <= 2 * live, f"lsm table takes {size / live:.2f}x its live data"
        conn.close()
    log("churn test passed")


if __name__ == "__main__":
    main()
