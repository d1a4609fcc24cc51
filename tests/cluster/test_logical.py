"""Logical replication of `lsm` tables: two servers on loopback.

1. Without `strata` in shared_preload_libraries, lsm changes are GenericXLog
   records that logical decoding cannot read: CREATE PUBLICATION naming an
   lsm table is refused (0A000) with a hint to preload.
2. Preloaded (the same server restarted), a publication of lsm tables feeds
   two subscriptions on a second server — one into heap tables, one into lsm
   tables (two-phase enabled there; the heap one streams large transactions
   in progress) — and a third with a row filter and a column list into an
   lsm table — through the initial table sync and
   then COPY of 100,000 rows, UPDATEs (with and without a key change),
   DELETEs, TRUNCATE, a 1 MB TOASTed value, a transaction with savepoints
   rolled back in part, an aborted transaction and a two-phase commit
   (prepared, then committed; another prepared, then rolled back). Both
   subscribers end with the publisher's count(*) and checksum of every row,
   and a strata_hnsw index on the lsm subscriber returns the publisher's
   exact neighbours.
3. `pg_recvlogical` with test_decoding prints the expected change stream of
   a scripted transaction on an lsm table.
4. `kill -9` of the publisher in the middle of a large transaction: after
   the restart the subscribers hold exactly the committed transactions.

Usage: test_logical.py PG_HOME
"""

import os
import random
import subprocess
import sys
import threading
import time

import psycopg

from pgcluster import Cluster, as_postgres, log, test_servers

DIM = 8
CHECKSUM = {
    "docs": "SELECT count(*), coalesce(md5(string_agg(d::text, '|' ORDER BY id)), '') FROM docs d",
    "events": "SELECT count(*), coalesce(md5(string_agg(e::text, '|' ORDER BY id)), '') FROM events e",
}
# what the row-filtered, column-listed publication carries
FILTERED = ("SELECT count(*), coalesce(md5(string_agg(id || ':' || grp, '|' ORDER BY id)), '') "
            "FROM docs WHERE id % 3 = 0")


def vec(rng):
    return "[" + ",".join(f"{rng.uniform(-1, 1):.4f}" for _ in range(DIM)) + "]"


def schema(am):
    using = f"USING {am}"
    return [
        "CREATE EXTENSION IF NOT EXISTS strata",
        f"CREATE TABLE docs (id bigint PRIMARY KEY, grp int NOT NULL, body text, emb vector({DIM})) {using}",
        f"CREATE TABLE events (id bigint PRIMARY KEY, what text) {using}",
    ]


def expect_refusal(pub):
    with pub.connect("pubdb") as conn:
        for q in schema("lsm"):
            conn.execute(q)
        assert conn.execute("SELECT strata.lsm_logical_decoding()").fetchone()[0] is False
        try:
            conn.execute("CREATE PUBLICATION p FOR TABLE docs")
        except psycopg.errors.FeatureNotSupported as e:
            hint = e.diag.message_hint or ""
            assert "shared_preload_libraries" in hint, hint
            log(f"refused without the preload: {e.diag.message_primary}")
        else:
            raise AssertionError("an lsm table was published without strata preloaded")


def wait_same(pub, subs, what, timeout=300):
    """Waits until every subscriber database has the publisher's checksums."""
    want = {t: pub.sql(q, "pubdb") for t, q in CHECKSUM.items()}
    deadline = time.time() + timeout
    for cluster, db in subs:
        while True:
            got = {t: cluster.sql(q, db) for t, q in CHECKSUM.items()}
            if got == want:
                break
            if time.time() > deadline:
                raise AssertionError(f"{what}: {db} has {got}, publisher {want}\n{cluster.tail_log()}")
            time.sleep(0.5)
    filtered = pub.sql(FILTERED, "pubdb")
    while (got := subs[0][0].sql(FILTERED, "sub_filtered")) != filtered:
        if time.time() > deadline:
            raise AssertionError(f"{what}: sub_filtered has {got}, publisher {filtered}")
        time.sleep(0.5)
    log(f"{what}: subscribers match the publisher: {want['docs'][0][0]} docs, "
        f"{want['events'][0][0]} events, {filtered[0][0]} rows through the row filter")
    return want


def copy_docs(conn, rng, ids):
    with conn.cursor() as cur:
        with cur.copy("COPY docs (id, grp, body, emb) FROM STDIN") as cp:
            for i in ids:
                cp.write_row((i, i % 97, f"doc {i}", vec(rng)))


def changes(pub, rng):
    """The publisher's workload after the initial sync."""
    with pub.connect("pubdb") as conn:
        copy_docs(conn, rng, range(20_001, 120_001))
        conn.execute("UPDATE docs SET body = body || ' (edited)' WHERE id % 3 = 0")
        conn.execute("UPDATE docs SET id = id + 1000000 WHERE id % 1000 = 7")
        conn.execute("DELETE FROM docs WHERE id % 10 = 5")
        conn.execute("SELECT strata.lsm_flush('docs')")
        conn.execute("UPDATE docs SET grp = -grp WHERE id % 17 = 0")  # rows in runs now
        conn.execute("INSERT INTO events SELECT g, 'before truncate' FROM generate_series(101, 600) g")
        conn.execute("TRUNCATE events")
        conn.execute("INSERT INTO events SELECT g, 'after truncate' FROM generate_series(1, 300) g")
        # an incompressible 1 MB value, stored out of line
        conn.execute("INSERT INTO docs VALUES (5000000, 1, (SELECT string_agg(md5(g::text), '') "
                     "FROM generate_series(1, 32768) g), NULL)")
        conn.execute("UPDATE docs SET grp = 2 WHERE id = 5000000")  # TOAST value unchanged
    with pub.connect("pubdb", autocommit=False) as conn:
        conn.execute("INSERT INTO events VALUES (1001, 'kept')")
        conn.execute("SAVEPOINT a")
        conn.execute("INSERT INTO events VALUES (1002, 'rolled back')")
        conn.execute("UPDATE docs SET body = 'rolled back' WHERE id = 30")
        conn.execute("ROLLBACK TO SAVEPOINT a")
        conn.execute("SAVEPOINT b")
        conn.execute("INSERT INTO events VALUES (1003, 'kept too')")
        conn.execute("DELETE FROM docs WHERE id = 31")
        conn.execute("RELEASE SAVEPOINT b")
        conn.commit()
        conn.execute("INSERT INTO events VALUES (1004, 'aborted')")
        conn.execute("DELETE FROM docs WHERE id < 1000")
        conn.rollback()
    with pub.connect("pubdb") as conn:
        conn.execute("BEGIN")
        conn.execute("INSERT INTO events VALUES (1005, 'prepared')")
        conn.execute("UPDATE docs SET body = 'prepared' WHERE id = 40")
        conn.execute("PREPARE TRANSACTION 'logical_2pc'")
        conn.execute("COMMIT PREPARED 'logical_2pc'")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO events VALUES (1006, 'prepared, rolled back')")
        conn.execute("PREPARE TRANSACTION 'logical_2pc_rb'")
        conn.execute("ROLLBACK PREPARED 'logical_2pc_rb'")


def check_special_rows(pub, subs):
    for cluster, db in [(pub, "pubdb")] + subs:
        got = cluster.sql("SELECT id, what FROM events WHERE id > 1000 ORDER BY id", db)
        assert got == [(1001, "kept"), (1003, "kept too"), (1005, "prepared")], (db, got)
        big = cluster.sql("SELECT length(body), grp FROM docs WHERE id = 5000000", db)
        assert big == [(1048576, 2)], (db, big)


def check_neighbours(pub, sub, db, rng):
    """strata_hnsw on the subscriber finds the publisher's exact neighbours."""
    sub.sql("CREATE INDEX docs_emb ON docs USING strata_hnsw (emb vector_l2_ops)", db)
    hits = total = 0
    with pub.connect("pubdb") as p, sub.connect(db) as s:
        s.execute("SET strata.hnsw_ef_search = 200")
        s.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in s.execute(
            "EXPLAIN SELECT id FROM docs ORDER BY emb <-> %s::vector LIMIT 10", (vec(rng),)))
        assert "docs_emb" in plan, plan
        for _ in range(20):
            q = vec(rng)
            exact = [r[0] for r in p.execute(
                "SELECT id FROM docs WHERE emb IS NOT NULL ORDER BY emb <-> %s::vector, id LIMIT 10", (q,))]
            got = [r[0] for r in s.execute(
                "SELECT id FROM docs ORDER BY emb <-> %s::vector LIMIT 10", (q,))]
            hits += len(set(exact) & set(got))
            total += 10
    log(f"{db}: strata_hnsw finds {hits}/{total} of the publisher's exact neighbours")
    assert hits >= 0.95 * total, f"{hits}/{total}"


def recvlogical(pub):
    """pg_recvlogical + test_decoding on a scripted transaction."""
    bindir = pub.bindir
    base = [f"{bindir}/pg_recvlogical", "-h", "127.0.0.1", "-p", str(pub.port), "-U", "postgres",
            "-d", "pubdb", "-S", "strata_recv"]
    subprocess.run(as_postgres(base + ["-P", "test_decoding", "--create-slot"]), check=True,
                   capture_output=True)
    with pub.connect("pubdb") as conn:
        conn.execute("CREATE TABLE script (k int PRIMARY KEY, v text) USING lsm")
        conn.execute("BEGIN")
        conn.execute("INSERT INTO script VALUES (1, 'a'), (2, 'b')")
        conn.execute("UPDATE script SET v = 'c' WHERE k = 1")
        conn.execute("UPDATE script SET k = 3 WHERE k = 2")
        conn.execute("DELETE FROM script WHERE k = 1")
        conn.execute("COMMIT")
        end = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    out = subprocess.run(as_postgres(base + ["--start", "--no-loop", "-E", str(end), "-f", "-",
                                             "-o", "include-xids=0", "-o", "skip-empty-xacts=1"]),
                         check=True, capture_output=True, text=True).stdout
    want = [
        "BEGIN",
        "table public.script: INSERT: k[integer]:1 v[text]:'a'",
        "table public.script: INSERT: k[integer]:2 v[text]:'b'",
        "table public.script: UPDATE: k[integer]:1 v[text]:'c'",
        "table public.script: UPDATE: old-key: k[integer]:2 new-tuple: k[integer]:3 v[text]:'b'",
        "table public.script: DELETE: k[integer]:1",
        "COMMIT",
    ]
    got = [line for line in out.splitlines() if line]
    assert got == want, "pg_recvlogical printed:\n" + out
    subprocess.run(as_postgres(base + ["--drop-slot"]), check=True, capture_output=True)
    log("pg_recvlogical: test_decoding printed the scripted transaction")


def crash_mid_transaction(pub, subs, rng):
    """kill -9 while a large transaction runs: only committed work arrives."""
    copied = threading.Event()

    def big():
        try:
            with pub.connect("pubdb", autocommit=False) as conn:
                conn.execute("INSERT INTO events VALUES (2000, 'uncommitted')")
                copy_docs(conn, random.Random(7), range(6_000_000, 6_200_000))
                copied.set()
                conn.execute("SELECT pg_sleep(600)")  # killed here, before COMMIT
                conn.commit()
        except psycopg.Error:
            pass  # the server went away

    with pub.connect("pubdb") as conn:
        conn.execute("INSERT INTO events VALUES (1500, 'committed before the crash')")
    t = threading.Thread(target=big)
    t.start()
    assert copied.wait(300), "the large transaction did not get going"
    time.sleep(1)
    pub.kill9()
    t.join(60)
    pub.start()
    with pub.connect("pubdb") as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE id = 2000").fetchone()[0] == 0
        conn.execute("INSERT INTO events VALUES (1501, 'after the restart')")
    wait_same(pub, subs, "after kill -9 mid-transaction")
    for cluster, db in subs:
        got = cluster.sql("SELECT count(*) FROM docs WHERE id >= 6000000", db)[0][0]
        assert got == 0, f"{db}: {got} rows of the crashed transaction arrived"


def main(pg_home):
    rng = random.Random(42)
    pub = Cluster(pg_home, "logical_pub").initdb({
        "wal_level": "logical",
        "shared_preload_libraries": "''",
        "max_prepared_transactions": "5",
        "max_replication_slots": "10",
        "max_wal_senders": "10",
        "logical_decoding_work_mem": "'64kB'",
    })
    sub = Cluster(pg_home, "logical_sub").initdb({
        "max_prepared_transactions": "5",
        "max_logical_replication_workers": "8",
    })
    with test_servers(pub, sub, name="test_logical"):
        pub.start()
        pub.sql("CREATE DATABASE pubdb")
        expect_refusal(pub)
        pub.stop()
        with open(os.path.join(pub.datadir, "postgresql.auto.conf"), "a") as f:
            f.write("shared_preload_libraries = 'strata'\n")
        pub.start()
        sub.start()
        with pub.connect("pubdb") as conn:
            assert conn.execute("SELECT strata.lsm_logical_decoding()").fetchone()[0] is True
            copy_docs(conn, rng, range(1, 20_001))  # before the subscriptions: the initial sync
            conn.execute("INSERT INTO events SELECT g, 'initial' FROM generate_series(1, 100) g")
            conn.execute("CREATE PUBLICATION p FOR TABLE docs, events")
            # a row filter (on the key: updates need it in the replica identity) and a
            # column list: (id, grp) of rows whose id is a multiple of 3 (a key update
            # moves rows in and out)
            conn.execute("CREATE PUBLICATION p_filtered FOR TABLE docs (id, grp) WHERE (id % 3 = 0)")
        subs = []
        # the heap subscriber streams large transactions as they run (the
        # publisher's logical_decoding_work_mem is 64kB), the lsm one applies
        # two-phase transactions at PREPARE
        for am, options in (("heap", "streaming = on"), ("lsm", "two_phase = true")):
            db = f"sub_{am}"
            sub.sql(f"CREATE DATABASE {db}")
            with sub.connect(db) as conn:
                for q in schema(am):
                    conn.execute(q)
                conn.execute(f"CREATE SUBSCRIPTION s_{am} CONNECTION 'host=127.0.0.1 port={pub.port} "
                             f"user=postgres dbname=pubdb' PUBLICATION p WITH ({options})")
            subs.append((sub, db))
        sub.sql("CREATE DATABASE sub_filtered")
        with sub.connect("sub_filtered") as conn:
            conn.execute("CREATE EXTENSION strata")
            conn.execute("CREATE TABLE docs (id bigint PRIMARY KEY, grp int NOT NULL) USING lsm")
            conn.execute(f"CREATE SUBSCRIPTION s_filtered CONNECTION 'host=127.0.0.1 port={pub.port} "
                         f"user=postgres dbname=pubdb' PUBLICATION p_filtered")
        wait_same(pub, subs, "initial sync")
        changes(pub, rng)
        wait_same(pub, subs, "after the workload")
        streamed = 0
        for _ in range(100):
            streamed = pub.sql("SELECT coalesce(sum(stream_txns), 0) FROM pg_stat_replication_slots "
                               "WHERE slot_name = 's_heap'")[0][0]
            if streamed:
                break
            time.sleep(0.1)
        assert streamed > 0, "the heap subscription never received a streamed transaction"
        log(f"s_heap: {streamed} transactions streamed while in progress")
        check_special_rows(pub, subs)
        check_neighbours(pub, sub, "sub_lsm", rng)
        recvlogical(pub)
        crash_mid_transaction(pub, subs, rng)
        for cluster, db in subs:
            am = cluster.sql("SELECT amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
                             "WHERE relname = 'docs'", db)[0][0]
            assert am == db.removeprefix("sub_"), (db, am)
        problems = pub.sql("SELECT count(*) FROM strata.lsm_verify('docs')", "pubdb")[0][0]
        assert problems == 0, f"lsm_verify reports {problems} problems on the publisher"
        for db in [db for _, db in subs] + ["sub_filtered"]:
            sub.sql(f"DROP SUBSCRIPTION s_{db.removeprefix('sub_')}", db)


if __name__ == "__main__":
    main(sys.argv[1])
