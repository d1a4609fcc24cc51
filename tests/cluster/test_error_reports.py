"""Errors raised while an `lsm` row change waits read as heap's: a lock
timeout and a deadlock during UPDATE, DELETE and SELECT ... FOR UPDATE of a
row another transaction holds carry the same SQLSTATE, message, detail and
CONTEXT ("while updating tuple (…) in relation …", from the lock wait
itself) as on a heap table — inside a PL/pgSQL function too, whose line
follows — with only the tuple's position and the table's name differing.
(Index expressions' errors are checked by regress `lsm_indexes`.)

Usage: test_error_reports.py PG_HOME
"""

import re
import sys
import threading
import time

import psycopg

from pgcluster import Cluster, log, test_servers

STATEMENTS = {
    "update": "UPDATE {t} SET v = v + 1 WHERE id = 1",
    "delete": "DELETE FROM {t} WHERE id = 1",
    "lock": "SELECT * FROM {t} WHERE id = 1 FOR UPDATE",
    "plpgsql": "SELECT bump_{t}()",
}


def report(e):
    """What a client sees of an error, with positions and names made equal."""
    d = e.diag
    text = "\n".join(str(x) for x in (d.sqlstate, d.message_primary, d.message_detail, d.context))
    text = re.sub(r"tuple \(\d+,\d+\)", "tuple (B,O)", text)
    text = re.sub(r"transaction \d+", "transaction X", text)
    text = re.sub(r"[Pp]rocess \d+", "process P", text)
    return re.sub(r"t_(heap|lsm)\b", "t_AM", text)


def fails(conn, table, kind, error):
    """Runs statement `kind` on `table`, which must fail with `error`: its report."""
    try:
        conn.execute(STATEMENTS[kind].format(t=table))
    except error as e:
        return report(e)
    raise AssertionError(f"{table} {kind}: no {error.__name__}")


def lock_timeout(cluster, table, kind):
    holder = cluster.connect(autocommit=False)
    holder.execute(f"UPDATE {table} SET v = v WHERE id = 1")
    waiter = cluster.connect()
    waiter.execute("SET lock_timeout = '200ms'")
    out = fails(waiter, table, kind, psycopg.errors.LockNotAvailable)
    holder.rollback()
    holder.close()
    waiter.close()
    return out


def deadlock(cluster, table, kind):
    """B holds row 1 and waits for row 2, which A holds; then A asks for row
    1 and closes the cycle. A's deadlock_timeout is short and B's long, so
    A's check finds the deadlock and A is the one that fails."""
    a = cluster.connect(autocommit=False)
    b = cluster.connect(autocommit=False)
    a.execute("SET deadlock_timeout = '100ms'")
    b.execute("SET deadlock_timeout = '10s'")
    b.execute(f"UPDATE {table} SET v = v WHERE id = 1")
    a.execute(f"UPDATE {table} SET v = v WHERE id = 2")
    t = threading.Thread(target=lambda: b.execute(f"UPDATE {table} SET v = v WHERE id = 2"))
    t.start()
    time.sleep(0.3)  # B is waiting for A
    out = fails(a, table, kind, psycopg.errors.DeadlockDetected)
    a.rollback()
    t.join()
    b.rollback()
    a.close()
    b.close()
    return out


def main():
    pg_home = sys.argv[1]
    tag = pg_home.strip("/").replace("/", "_")
    cluster = Cluster(pg_home, f"errors-{tag}").initdb({"autovacuum": "off"}).start()
    with test_servers(cluster, name="error report test"):
        conn = cluster.connect()
        conn.execute("CREATE EXTENSION strata")
        for am in ("heap", "lsm"):
            conn.execute(f"CREATE TABLE t_{am} (id int PRIMARY KEY, v int) USING {am}")
            conn.execute(f"INSERT INTO t_{am} SELECT g, 0 FROM generate_series(1, 3) g")
            conn.execute(f"CREATE FUNCTION bump_t_{am}() RETURNS void LANGUAGE plpgsql AS $$ "
                         f"BEGIN UPDATE t_{am} SET v = v + 1 WHERE id = 1; END $$")
        # the lsm rows in a run (their updates' new versions go to L0)
        conn.execute("VACUUM t_lsm")
        for check in (lock_timeout, deadlock):
            for kind in STATEMENTS:
                heap = check(cluster, "t_heap", kind)
                lsm = check(cluster, "t_lsm", kind)
                assert lsm == heap, f"{check.__name__} {kind}:\nheap: {heap!r}\nlsm:  {lsm!r}"
                assert "while " in heap and "tuple (B,O)" in heap, heap
                log(f"{check.__name__} {kind}: {lsm.splitlines()[1]} / {lsm.splitlines()[-1]!r}")
        log("error report test passed")


if __name__ == "__main__":
    main()
