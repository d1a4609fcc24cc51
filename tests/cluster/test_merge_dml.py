"""A merge of `lsm` runs does not block DML: while VACUUM merges four
level-1 runs (slowed down with vacuum_cost_delay so that it takes seconds),
other sessions update, delete and lock rows of those runs without waiting
for it, beyond its brief switch. The headers those statements stamp on the
old runs' versions during the merge must reach the new run: afterwards every
row is there once, with the value the clients committed, deleted rows are
gone, and lsm_verify finds nothing.

Usage: test_merge_dml.py PG_HOME
"""

import random
import sys
import threading
import time

from pgcluster import Cluster, log, test_servers

ROWS_PER_RUN = 50000
CONF = {"autovacuum": "off"}


def main():
    pg_home = sys.argv[1]
    tag = pg_home.strip("/").replace("/", "_")
    cluster = Cluster(pg_home, f"mergedml-{tag}").initdb(CONF).start()
    with test_servers(cluster, name="merge/DML test"):
        conn = cluster.connect()
        conn.execute("CREATE EXTENSION strata")
        conn.execute("CREATE TABLE m (id int PRIMARY KEY, v bigint, pad text) USING lsm")
        for r in range(4):
            lo = r * ROWS_PER_RUN + 1
            conn.execute("INSERT INTO m SELECT g, 0, repeat('m', 60) || g "
                         "FROM generate_series(%s, %s) g", (lo, lo + ROWS_PER_RUN - 1))
            if r < 3:
                conn.execute("VACUUM m")  # one level-1 run each
        total = 4 * ROWS_PER_RUN
        runs = conn.execute("SELECT runs FROM strata.lsm_levels('m') WHERE level = 1").fetchone()[0]
        assert runs == 3, f"{runs} level-1 runs before the merge"

        vac = cluster.connect()
        notices = []
        vac.add_notice_handler(lambda d: notices.append(d.message_primary))
        vac.execute("SET vacuum_cost_delay = 2")
        vac.execute("SET vacuum_cost_limit = 5")
        vac_pid = vac.execute("SELECT pg_backend_pid()").fetchone()[0]
        result = {}

        def vacuum():
            t0 = time.time()
            vac.execute("VACUUM (VERBOSE) m")  # flush, then merge the 4 level-1 runs
            result["seconds"] = time.time() - t0

        t = threading.Thread(target=vacuum)
        t.start()
        # wait until the flush is done: VACUUM no longer holds EXCLUSIVE
        while t.is_alive():
            held = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = 'm'::regclass "
                "AND mode = 'ExclusiveLock' AND granted", (vac_pid,)).fetchone()[0]
            flushed = conn.execute("SELECT runs FROM strata.lsm_levels('m') WHERE level = 1").fetchone()
            if not held and flushed and flushed[0] == 4:
                break
            time.sleep(0.01)

        rng = random.Random(7)
        dml = cluster.connect()
        dml.execute("SET lock_timeout = '3s'")
        increments = {}
        deleted = set()
        during, slowest = 0, 0.0
        while t.is_alive():
            i = rng.randrange(1, total + 1)
            t0 = time.time()
            kind = rng.random()
            if kind < 0.8 and i not in deleted:
                dml.execute("UPDATE m SET v = v + 1 WHERE id = %s", (i,))
                increments[i] = increments.get(i, 0) + 1
            elif kind < 0.9 and i not in deleted:
                dml.execute("DELETE FROM m WHERE id = %s", (i,))
                deleted.add(i)
            else:
                with dml.transaction():
                    dml.execute("SELECT v FROM m WHERE id = %s FOR SHARE", (i,))
            slowest = max(slowest, time.time() - t0)
            if t.is_alive():
                during += 1
            time.sleep(0.002)
        t.join()
        log(f"VACUUM took {result['seconds']:.1f} s; {during} statements ran during it "
            f"(slowest {slowest * 1000:.0f} ms)")
        for n in notices:
            if "merge" in n or "flush" in n:
                log(f"  {n}")
        assert any("merged 4 run(s)" in n for n in notices), notices
        assert during >= 100, f"only {during} statements ran during the merge"
        assert slowest < max(2.0, result["seconds"] / 3), "DML waited for the merge"

        count, distinct, vsum = conn.execute("SELECT count(*), count(DISTINCT id), sum(v) FROM m").fetchone()
        assert count == distinct, f"{count - distinct} rows appear twice"
        assert count == total - len(deleted), f"{count} rows, expected {total - len(deleted)}"
        expected = sum(c for i, c in increments.items() if i not in deleted)
        assert vsum == expected, f"sum(v) = {vsum}, clients committed {expected}"
        gone = conn.execute("SELECT count(*) FROM m WHERE id = ANY(%s)", (list(deleted),)).fetchone()[0]
        assert gone == 0, f"{gone} deleted rows are back"
        # the same through the primary key
        conn.execute("SET enable_seqscan = off")
        by_index = conn.execute("SELECT count(*), sum(v) FROM m WHERE id > 0").fetchone()
        assert by_index == (count, vsum), by_index
        problems = conn.execute("SELECT count(*) FROM strata.lsm_verify('m')").fetchone()[0]
        assert problems == 0, f"lsm_verify: {problems} problems"
        levels = conn.execute("SELECT level, runs FROM strata.lsm_levels('m') WHERE level > 0").fetchall()
        log(f"rows {count} ({len(deleted)} deleted, {sum(increments.values())} updates), levels {levels}")
        log("merge/DML test passed")


if __name__ == "__main__":
    main()
