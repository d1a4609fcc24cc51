"""pg_dump / pg_restore round trip of a database with `lsm` tables: plain,
partitioned, with TOAST values, indexes, constraints, rows in runs and in
L0. The restored database must return the same rows (compared by md5 of
each table's ordered contents), keep `USING lsm`, and verify clean.

Usage: test_dump.py PG_HOME
"""

import os
import subprocess
import sys

from pgcluster import Cluster, as_postgres, log, test_servers

TABLES = ["d_plain", "d_part", "d_toast", "d_child"]


def digests(cluster, db):
    out = {}
    with cluster.connect(db) as conn:
        for t in TABLES:
            out[t] = conn.execute(f"SELECT count(*), md5(string_agg(x::text, '|' ORDER BY x::text)) "
                                  f"FROM {t} x").fetchone()
    return out


def main():
    pg_home = sys.argv[1]
    tag = pg_home.strip("/").replace("/", "_")
    cluster = Cluster(pg_home, f"dump-{tag}").initdb().start()
    with test_servers(cluster, name="dump test"):
        cluster.sql("CREATE DATABASE src")
        cluster.sql("CREATE DATABASE dst")
        q = lambda sql: cluster.sql(sql, dbname="src")  # noqa: E731
        q("CREATE EXTENSION strata")
        q("CREATE TABLE d_plain (id int PRIMARY KEY, v text, n numeric, ts timestamptz DEFAULT now(), "
          "CHECK (n >= 0)) USING lsm")
        q("INSERT INTO d_plain SELECT g, 'v' || g, g * 1.5, '2026-01-01'::timestamptz + g * interval '1 min' "
          "FROM generate_series(1, 20000) g")
        q("UPDATE d_plain SET v = v || '!' WHERE id % 7 = 0")
        q("SELECT strata.lsm_flush('d_plain')")
        q("DELETE FROM d_plain WHERE id % 11 = 0")
        q("INSERT INTO d_plain SELECT g, 'l0', 0 FROM generate_series(20001, 21000) g")
        q("CREATE INDEX d_plain_v ON d_plain (v)")
        q("CREATE TABLE d_part (id int, region text, amount int) PARTITION BY LIST (region)")
        q("CREATE TABLE d_part_eu PARTITION OF d_part FOR VALUES IN ('eu') USING lsm")
        q("CREATE TABLE d_part_us PARTITION OF d_part FOR VALUES IN ('us') USING lsm")
        q("INSERT INTO d_part SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g FROM generate_series(1, 5000) g")
        q("CREATE TABLE d_toast (id int PRIMARY KEY, doc text, data bytea) USING lsm")
        q("INSERT INTO d_toast SELECT g, repeat(md5(g::text), 2000), decode(repeat('ab', 5000), 'hex') "
          "FROM generate_series(1, 50) g")
        q("CREATE TABLE d_child (id int PRIMARY KEY, plain_id int REFERENCES d_plain(id)) USING lsm")
        q("INSERT INTO d_child SELECT g, g FROM generate_series(1, 1000) g WHERE g % 11 <> 0")
        want = digests(cluster, "src")

        dump = os.path.join(cluster.base, "src.dump")
        port = str(cluster.port)
        subprocess.run(as_postgres([f"{cluster.bindir}/pg_dump", "-h", "127.0.0.1", "-p", port,
                                    "-U", "postgres", "-Fc", "-f", dump, "src"]), check=True)
        subprocess.run(as_postgres([f"{cluster.bindir}/pg_restore", "-h", "127.0.0.1", "-p", port,
                                    "-U", "postgres", "-d", "dst", "--exit-on-error", dump]), check=True)
        got = digests(cluster, "dst")
        assert got == want, f"restored contents differ:\n{got}\n{want}"
        ams = cluster.sql("SELECT c.relname, a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
                          "WHERE c.relkind = 'r' AND c.relname LIKE 'd\\_%' ORDER BY 1", dbname="dst")
        assert all(am == "lsm" for _, am in ams) and len(ams) == 5, f"access methods after restore: {ams}"
        for name, _ in ams:
            problems = cluster.sql("SELECT count(*) FROM strata.lsm_verify(%s)", dbname="dst",
                                   params=(name,))[0][0]
            assert problems == 0, f"lsm_verify({name}) found {problems} problems after restore"
        log(f"pg_dump -Fc / pg_restore: {len(TABLES)} tables ({sum(v[0] for v in want.values())} rows) "
            f"identical, all 5 relations still USING lsm")


if __name__ == "__main__":
    main()
