"""Crash test: `kill -9` the postmaster during concurrent COPY, UPDATE and DELETE
load on an `lsm` table while L0 is repeatedly flushed into runs, and during
COPY bulk loads straight into runs (on a table without indexes, and on one
with a primary key, whose loads publish their open run batch by batch),
restart, and check that exactly the committed work survived.

Each writer thread owns a disjoint id range, so writers never wait on each
other, and keeps the client's view of its committed rows (id -> value, pad
length). The one transaction a writer had in flight when the server died may
or may not have committed; the test accepts either outcome but only as a
whole (atomicity). A separate thread holds an open, never-committed
transaction with its own rows in a second lsm table (it holds a lock there,
so it cannot keep the flushes of the main table waiting): none of them may be
visible after restart. Checkpoints run during the load so that recovery
starts from mid-load redo points, and a flusher calls strata.lsm_flush or
VACUUM (which sweeps, flushes, merges runs and packs the file) every couple
of seconds; in even cycles the kill is timed to land while one of them is
running.

After each restart the table is compared row by row with the client's record
(seq scan), and count and checksum are compared through btree index scans;
then the load resumes on the recovered table for the next cycle.

Usage: test_crash.py PG_HOME [--cycles N] [--seconds S]
"""

import argparse
import hashlib
import random
import sys
import threading
import time

import psycopg

from pgcluster import Cluster, log, test_servers

WORKERS = 4
ID_SPAN = 1_000_000_000


def pad_of(row_id, n):
    return hashlib.md5(str(row_id).encode()).hexdigest() * n


class Writer(threading.Thread):
    """One loader: COPY batches, UPDATEs and DELETEs of its own rows."""

    def __init__(self, cluster, wid, committed, seed):
        super().__init__(daemon=True)
        self.cluster, self.wid = cluster, wid
        self.committed = committed            # id -> (val, padlen), committed state
        self.pending = None                   # {id: (val, padlen) | None} of the in-flight txn
        self.next_id = wid * ID_SPAN + max([i - wid * ID_SPAN for i in committed] + [0]) + 1
        self.rng = random.Random(seed)
        self.commits = 0

    def run(self):
        try:
            conn = self.cluster.connect(autocommit=False)
        except psycopg.Error:
            return
        try:
            while True:
                self.one_transaction(conn)
        except psycopg.Error:
            pass  # the server died; self.pending is the in-doubt transaction

    def one_transaction(self, conn):
        rng, live = self.rng, self.committed
        kind = rng.random()
        if kind < 0.5 or len(live) < 50:
            rows = {}
            for _ in range(rng.randint(50, 300)):
                n = 100 if rng.random() < 0.03 else rng.randint(0, 4)
                rows[self.next_id] = (rng.randint(0, 1000), n)
                self.next_id += 1
            self.pending = rows
            with conn.cursor() as cur:
                with cur.copy("COPY crash_t (id, worker, val, pad) FROM STDIN") as cp:
                    for i, (v, n) in rows.items():
                        cp.write_row((i, self.wid, v, pad_of(i, n)))
        elif kind < 0.7:
            ids = rng.sample(sorted(live), 20)
            self.pending = {i: (live[i][0] + 1, live[i][1]) for i in ids}
            conn.execute("UPDATE crash_t SET val = val + 1 WHERE id = ANY(%s)", (ids,))
        elif kind < 0.85:
            # pad is in no index: index-stable updates (update chains)
            ids = rng.sample(sorted(live), 20)
            self.pending = {i: (live[i][0], (live[i][1] + 1) % 5) for i in ids}
            for i in ids:
                conn.execute("UPDATE crash_t SET pad = %s WHERE id = %s",
                             (pad_of(i, self.pending[i][1]), i))
        else:
            ids = rng.sample(sorted(live), 5)
            self.pending = {i: None for i in ids}
            conn.execute("DELETE FROM crash_t WHERE id = ANY(%s)", (ids,))
        conn.commit()
        self.apply(self.pending)
        self.pending = None
        self.commits += 1

    def apply(self, change):
        for i, v in change.items():
            if v is None:
                self.committed.pop(i, None)
            else:
                self.committed[i] = v


class Uncommitted(threading.Thread):
    """Inserts rows with negative ids in a transaction that never commits."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster

    def run(self):
        try:
            with self.cluster.connect(autocommit=False) as conn:
                n = 0
                while True:
                    conn.execute("INSERT INTO crash_u SELECT -g, -1, g, 'uncommitted' "
                                 "FROM generate_series(%s, %s) g", (n + 1, n + 200))
                    n += 200
                    time.sleep(0.05)
        except psycopg.Error:
            pass


class BulkLoader(threading.Thread):
    """COPYs batches of 3,000-30,000 rows into `table` (crash_b, which has no
    indexes, or crash_bi, which has a primary key), so each COPY is a bulk
    load straight into runs, one transaction each; records the committed
    batches (batch -> rows). The batch in flight at the kill may or may not
    have committed, but only as a whole."""

    def __init__(self, cluster, table, committed, seed):
        super().__init__(daemon=True)
        self.cluster, self.table = cluster, table
        self.committed, self.rng = committed, random.Random(seed)
        self.in_flight = None

    def run(self):
        try:
            with self.cluster.connect() as conn:
                while True:
                    batch = max(self.committed, default=0) + 1
                    n = self.rng.randint(3_000, 30_000)
                    self.in_flight = (batch, n)
                    with conn.cursor().copy(f"COPY {self.table} (batch, i, pad) FROM STDIN") as cp:
                        for i in range(n):
                            cp.write_row((batch, i, f"bulk-{batch}-{i}"))
                    self.committed[batch] = n
                    self.in_flight = None
        except psycopg.Error:
            pass


def verify_bulk(cluster, loader):
    """The loader's table holds exactly the committed batches, each whole
    (a table with a primary key: also through it)."""
    t = loader.table
    got = dict(cluster.sql(f"SELECT batch, count(*) FROM {t} GROUP BY batch"))
    want = dict(loader.committed)
    if loader.in_flight and loader.in_flight[0] in got:
        want[loader.in_flight[0]] = loader.in_flight[1]
        loader.committed[loader.in_flight[0]] = loader.in_flight[1]
    assert got == want, f"{t} after restart: {sorted(got.items())[-5:]} != {sorted(want.items())[-5:]}"
    distinct = cluster.sql(f"SELECT count(DISTINCT (batch, i)) FROM {t}")[0][0]
    assert distinct == sum(want.values()), f"{t} has duplicate rows"
    if cluster.sql(f"SELECT relhasindex FROM pg_class WHERE oid = '{t}'::regclass")[0][0]:
        with cluster.connect() as conn:
            conn.execute("SET enable_seqscan = off")
            conn.execute("SET enable_bitmapscan = off")
            plan = "\n".join(r[0] for r in conn.execute(
                f"EXPLAIN SELECT batch, count(*) FROM {t} GROUP BY batch"))
            assert "Index" in plan, plan
            by_index = dict(conn.execute(f"SELECT batch, count(*) FROM {t} GROUP BY batch").fetchall())
        assert by_index == want, f"{t} through its primary key: {sorted(by_index.items())[-5:]}"
    problems = cluster.sql(f"SELECT * FROM strata.lsm_verify('{t}')")
    assert not problems, f"strata.lsm_verify({t}) found problems: {problems}"
    return sum(want.values()), len(want)


class Flusher(threading.Thread):
    """Every ~2 s either flushes L0 of crash_t into a run (lock_timeout keeps
    it from queueing writers behind it for long) or VACUUMs it with a
    policy that merges runs often (sweep and freeze, flush, merges, packing
    and truncation of the file)."""

    def __init__(self, cluster, seed):
        super().__init__(daemon=True)
        self.cluster, self.rng, self.flushes, self.vacuums = cluster, random.Random(seed), 0, 0

    def run(self):
        try:
            with self.cluster.connect() as conn:
                conn.execute("SET lock_timeout = '500ms'")
                conn.execute("SET strata.lsm_level1_runs = 2")
                conn.execute("SET strata.lsm_gc_ratio = 0.02")
                conn.execute("SET strata.lsm_level_base = '512kB'")
                conn.execute("SET vacuum_freeze_min_age = 1000")
                while True:
                    time.sleep(1.0 + self.rng.random() * 2)
                    try:
                        r = self.rng.random()
                        if r < 0.4:
                            conn.execute("SELECT strata.lsm_flush('crash_t')")
                            self.flushes += 1
                        elif r < 0.55:
                            conn.execute("VACUUM crash_b, crash_bi")
                            self.vacuums += 1
                        else:
                            conn.execute("VACUUM crash_t")
                            self.vacuums += 1
                    except psycopg.errors.LockNotAvailable:
                        pass
        except psycopg.Error:
            pass


def flush_running(cluster):
    """True while a flush or VACUUM of crash_t holds its lock and works."""
    try:
        return cluster.sql(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND (query LIKE '%lsm_flush%' OR query LIKE 'VACUUM crash_t%') AND pid <> pg_backend_pid() "
            "AND coalesce(wait_event_type, '') <> 'Lock'")[0][0] > 0
    except psycopg.Error:
        return False


class Checkpointer(threading.Thread):
    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster = cluster

    def run(self):
        try:
            with self.cluster.connect() as conn:
                while True:
                    time.sleep(1.5)
                    conn.execute("CHECKPOINT")
        except psycopg.Error:
            pass


def verify(cluster, writers):
    """Compares the recovered table with the client's record; resolves in-doubt txns."""
    with cluster.connect() as conn:
        for knob in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
            conn.execute(f"SET {knob} = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT id, worker, val, pad FROM crash_t"))
        assert "Seq Scan on crash_t" in plan, plan
        db = {}
        for i, w, v, pad in conn.execute("SELECT id, worker, val, pad FROM crash_t"):
            db[i] = (w, v, pad)

    uncommitted = [i for i in db if i < 0]
    assert not uncommitted, f"{len(uncommitted)} rows of an uncommitted transaction are visible"
    with cluster.connect() as conn:
        n = conn.execute("SELECT count(*) FROM crash_u").fetchone()[0]
    assert n == 0, f"{n} rows of an uncommitted transaction are visible in crash_u"

    resolved = {"applied": 0, "absent": 0, "none": 0}
    for wr in writers:
        mine = {i: (v, pad) for i, (w, v, pad) in db.items() if w == wr.wid}
        for i in mine:
            assert wr.wid * ID_SPAN <= i < (wr.wid + 1) * ID_SPAN, f"row {i} in wrong range"

        def matches(state):
            if set(mine) != set(state):
                return False
            return all(mine[i][0] == v and mine[i][1] == pad_of(i, n) for i, (v, n) in state.items())

        if wr.pending is None:
            ok = matches(wr.committed)
            resolved["none"] += 1
        elif matches(wr.committed):
            ok = True
            resolved["absent"] += 1
        else:
            after = dict(wr.committed)
            wr.apply(wr.pending)
            ok = matches(wr.committed)
            resolved["applied"] += 1
            if not ok:
                wr.committed.clear()
                wr.committed.update(after)
        if not ok:
            missing = set(wr.committed) - set(mine)
            extra = set(mine) - set(wr.committed)
            wrong = [i for i in set(mine) & set(wr.committed)
                     if mine[i][0] != wr.committed[i][0]]
            raise AssertionError(
                f"writer {wr.wid}: table differs from committed state "
                f"(missing {len(missing)} e.g. {sorted(missing)[:5]}, extra {len(extra)} "
                f"e.g. {sorted(extra)[:5]}, wrong values {len(wrong)} e.g. {wrong[:5]}; "
                f"in-doubt txn {'none' if wr.pending is None else len(wr.pending)} rows)")
        wr.pending = None

    expected_count = sum(len(w.committed) for w in writers)
    expected_sum = sum(i * 7 + v for w in writers for i, (v, _) in w.committed.items())
    with cluster.connect() as conn:
        for knob in ("enable_seqscan", "enable_bitmapscan"):
            conn.execute(f"SET {knob} = off")
        q = "SELECT count(*), coalesce(sum(id * 7 + val), 0) FROM crash_t WHERE id >= 0"
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + q))
        assert "Index" in plan and "crash_t" in plan, plan
        count, checksum = conn.execute(q).fetchone()
        assert (count, checksum) == (expected_count, expected_sum), \
            f"index scan: count/checksum {(count, checksum)} != client's {(expected_count, expected_sum)}"
        # through the primary key, every row at its newest version (update
        # chains followed from the entries of their first versions)
        q = "SELECT id, val, length(pad) FROM crash_t WHERE id >= 0"
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + q))
        assert "Index" in plan and "crash_t" in plan, plan
        seen = {i: (v, n) for i, v, n in conn.execute(q)}
        want = {i: (v, len(pad_of(i, n))) for w in writers for i, (v, n) in w.committed.items()}
        assert seen == want, \
            f"index scan: {len(set(seen.items()) ^ set(want.items()))} rows differ from the client's"
        for wr in writers:
            q = "SELECT count(*) FROM crash_t WHERE worker = %s AND val >= 0"
            n = conn.execute(q, (wr.wid,)).fetchone()[0]
            assert n == len(wr.committed), f"(worker, val) index: {n} != {len(wr.committed)}"
        for table in ("crash_t", "crash_u"):
            problems = conn.execute("SELECT block, item, problem FROM strata.lsm_verify(%s) "
                                    "LIMIT 10", (table,)).fetchall()
            assert not problems, f"strata.lsm_verify({table}) found problems: {problems}"
    return expected_count, expected_sum, resolved


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pg_home")
    ap.add_argument("--cycles", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    cluster = Cluster(args.pg_home, f"crash-{args.pg_home.strip('/').replace('/', '_')}")
    # crash recovery checks each replayed strata_lsm record against the
    # page image the record carries for the check
    cluster.initdb({"checkpoint_timeout": "30s", "max_wal_size": "64MB",
                    "wal_consistency_checking": "'strata_lsm'"}).start()
    cluster.sql("CREATE EXTENSION strata")
    cluster.sql("CREATE TABLE crash_t (id bigint PRIMARY KEY, worker int NOT NULL, "
                "val bigint NOT NULL, pad text) USING lsm")
    cluster.sql("ALTER TABLE crash_t ALTER COLUMN pad SET STORAGE EXTERNAL")
    cluster.sql("CREATE INDEX crash_t_worker_val ON crash_t (worker, val)")
    cluster.sql("CREATE TABLE crash_u (LIKE crash_t) USING lsm")
    cluster.sql("CREATE TABLE crash_b (batch int, i int, pad text) USING lsm")
    cluster.sql("CREATE TABLE crash_bi (batch int, i int, pad text, PRIMARY KEY (batch, i)) USING lsm")
    # An unlogged lsm table is emptied by crash recovery (its init fork is empty).
    cluster.sql("CREATE UNLOGGED TABLE crash_unlogged (id int PRIMARY KEY, v text) USING lsm")

    states = [dict() for _ in range(WORKERS)]
    bulk_committed = {"crash_b": {}, "crash_bi": {}}
    writers = []
    with test_servers(cluster, name="crash test"):
        for cycle in range(1, args.cycles + 1):
            writers = [Writer(cluster, w, states[w], rng.random()) for w in range(WORKERS)]
            flusher = Flusher(cluster, rng.random())
            loaders = [BulkLoader(cluster, t, bulk_committed[t], rng.random()) for t in bulk_committed]
            threads = writers + [Uncommitted(cluster), Checkpointer(cluster), flusher] + loaders
            for t in threads:
                t.start()
            cluster.sql("INSERT INTO crash_unlogged SELECT g, 'u' FROM generate_series(1, 1000) g")
            time.sleep(args.seconds * (0.5 + rng.random()))
            during_flush = False
            if cycle % 2 == 0:
                deadline = time.time() + 20
                while not flush_running(cluster) and time.time() < deadline:
                    time.sleep(0.01)
                time.sleep(rng.random() * 0.05)
                during_flush = flush_running(cluster)
            cluster.kill9()
            for t in threads:
                t.join(timeout=30)
            cluster.start()
            count, checksum, resolved = verify(cluster, writers)
            bulk = [verify_bulk(cluster, loader) for loader in loaders]
            unlogged = cluster.sql("SELECT count(*) FROM crash_unlogged")[0][0]
            assert unlogged == 0, f"unlogged lsm table has {unlogged} rows after crash recovery"
            cluster.sql("SELECT strata.lsm_verify('crash_unlogged')")
            runs = cluster.sql("SELECT count(*) FROM strata.lsm_info('crash_t') "
                               "WHERE component LIKE 'run%'")[0][0]
            merges = cluster.sql("SELECT merges FROM strata.lsm_stats('crash_t')")[0][0]
            log(f"cycle {cycle}: {sum(w.commits for w in writers)} commits, "
                f"{flusher.flushes} flushes and {flusher.vacuums} VACUUMs before the kill"
                f"{' (which hit a running flush or VACUUM)' if during_flush else ''}; {runs} runs, "
                f"{merges} merges so far; "
                f"after restart {count} rows, checksum {checksum} match the client, "
                f"lsm_verify finds nothing, the unlogged table is empty; "
                f"bulk-loaded batches whole: {bulk[0][1]} ({bulk[0][0]} rows) into crash_b, "
                f"{bulk[1][1]} ({bulk[1][0]} rows) into crash_bi; "
                f"in-doubt transactions {resolved}")


if __name__ == "__main__":
    main()
