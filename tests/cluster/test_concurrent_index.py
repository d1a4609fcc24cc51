"""CREATE INDEX CONCURRENTLY and REINDEX CONCURRENTLY on an `lsm` table while
other sessions insert, update and delete rows.

CIC builds from a first snapshot, then `index_validate_scan` inserts what
that snapshot missed; rows written during either phase must end up indexed.
Afterwards amcheck's `bt_index_check(index, heapallindexed => true)` checks
that every visible row version has its index entry, and index scans agree
with a seq scan.

Usage: test_concurrent_index.py PG_HOME
"""

import random
import sys
import threading
import time

import psycopg

from pgcluster import Cluster, log, test_servers


class Churn(threading.Thread):
    def __init__(self, cluster, wid, stop):
        super().__init__(daemon=True)
        self.cluster, self.wid, self.stop, self.ops = cluster, wid, stop, 0
        self.error = None

    def run(self):
        rng = random.Random(self.wid)
        base = (self.wid + 1) * 1_000_000
        next_id = base
        try:
            with self.cluster.connect() as conn:
                while not self.stop.is_set():
                    r = rng.random()
                    if r < 0.5:
                        conn.execute("INSERT INTO cic SELECT g, g %% 97, 'w' || g FROM "
                                     "generate_series(%s, %s) g", (next_id, next_id + 49))
                        next_id += 50
                    elif r < 0.8 and next_id > base:
                        lo = rng.randrange(base, next_id)
                        conn.execute("UPDATE cic SET grp = grp + 1, note = note || 'u' "
                                     "WHERE id BETWEEN %s AND %s", (lo, lo + 20))
                    elif next_id > base:
                        lo = rng.randrange(base, next_id)
                        conn.execute("DELETE FROM cic WHERE id BETWEEN %s AND %s", (lo, lo + 5))
                    self.ops += 1
        except psycopg.Error as e:
            self.error = e


def main():
    pg_home = sys.argv[1]
    tag = pg_home.strip("/").replace("/", "_")
    cluster = Cluster(pg_home, f"cic-{tag}").initdb().start()
    with test_servers(cluster, name="concurrent index test"):
        q = cluster.sql
        q("CREATE EXTENSION strata")
        q("CREATE EXTENSION amcheck")
        q("CREATE TABLE cic (id bigint, grp int, note text) USING lsm")
        q("INSERT INTO cic SELECT g, g % 97, 'n' || g FROM generate_series(1, 50000) g")
        stop = threading.Event()
        churn = [Churn(cluster, w, stop) for w in range(3)]
        for t in churn:
            t.start()
        time.sleep(0.5)
        q("CREATE UNIQUE INDEX CONCURRENTLY cic_id ON cic (id)")
        q("CREATE INDEX CONCURRENTLY cic_grp ON cic (grp)")
        q("CREATE INDEX CONCURRENTLY cic_note ON cic (note) WHERE grp % 2 = 0")
        q("REINDEX TABLE CONCURRENTLY cic")
        time.sleep(0.5)
        stop.set()
        for t in churn:
            t.join()
            assert t.error is None, f"writer {t.wid} failed: {t.error}"
        invalid = q("SELECT count(*) FROM pg_index WHERE indrelid = 'cic'::regclass "
                    "AND NOT (indisvalid AND indisready)")[0][0]
        assert invalid == 0, f"{invalid} indexes are not valid"
        for idx in ("cic_id", "cic_grp", "cic_note"):
            q("SELECT bt_index_check(%s::regclass, true)", params=(idx,))
        with cluster.connect() as conn:
            conn.execute("SET enable_seqscan = off")
            by_index = conn.execute("SELECT count(*), sum(id) FROM cic WHERE id > 0").fetchone()
            by_grp = conn.execute("SELECT count(*) FROM cic WHERE grp = 5").fetchone()
            conn.execute("RESET enable_seqscan")
            conn.execute("SET enable_indexscan = off")
            conn.execute("SET enable_bitmapscan = off")
            by_seq = conn.execute("SELECT count(*), sum(id) FROM cic WHERE id > 0").fetchone()
            grp_seq = conn.execute("SELECT count(*) FROM cic WHERE grp = 5").fetchone()
        assert by_index == by_seq, f"index scan {by_index} != seq scan {by_seq}"
        assert by_grp == grp_seq, f"grp index {by_grp} != seq scan {grp_seq}"
        ops = sum(t.ops for t in churn)
        log(f"CIC and REINDEX CONCURRENTLY during {ops} concurrent writes: 3 indexes valid, "
            f"bt_index_check(heapallindexed) passes, {by_seq[0]} rows agree")


if __name__ == "__main__":
    main()
