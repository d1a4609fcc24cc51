"""Replica test: a streaming standby made by `pg_basebackup -R` on loopback
returns the same answers as the primary for `lsm` tables.

Data is written before the base backup (so it arrives as copied pages) and
after it (so it arrives only as WAL replayed on the standby): COPY, INSERT,
UPDATE, DELETE, a TOASTed value, a new index, TRUNCATE, and a table rewrite
(VACUUM FULL), and L0 flushes into runs (strata.lsm_flush) followed by
changes to rows that live in runs. The same queries — a seq scan, btree index scans, aggregates
and a TOAST fetch — run on both servers, and the test checks on the standby
that each query really used the planned scan type.

Usage: test_replica.py PG_HOME
"""

import sys

from pgcluster import Cluster, log, test_servers

QUERIES = [
    # (label, settings, query, plan fragment that must appear on the standby)
    ("seq scan", ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"),
     "SELECT id, grp, val, md5(coalesce(note, '')) FROM rep_t ORDER BY id", "Seq Scan on rep_t"),
    ("index scan", ("enable_seqscan", "enable_bitmapscan"),
     "SELECT id, val FROM rep_t WHERE id BETWEEN 1000 AND 60000 ORDER BY id",
     "Index Scan using rep_t_pkey"),
    ("secondary index", ("enable_seqscan", "enable_bitmapscan"),
     "SELECT id FROM rep_t WHERE grp = 7 ORDER BY id", "rep_t_grp"),
    ("aggregates", (),
     "SELECT grp, count(*), sum(val), min(id), max(id) FROM rep_t GROUP BY grp ORDER BY grp",
     "rep_t"),
    ("toast", (), "SELECT id, length(note), md5(note) FROM rep_t WHERE length(note) > 10000 "
     "ORDER BY id", "rep_t"),
    ("rewritten table", (), "SELECT count(*), sum(v) FROM rep_rewritten", "rep_rewritten"),
    ("truncated table", (), "SELECT count(*), sum(v) FROM rep_truncated", "rep_truncated"),
    ("bulk-loaded table", (), "SELECT count(*), sum(i), md5(string_agg(pad, ',' ORDER BY i)), "
     "min(ctid::text), max(ctid::text) FROM rep_bulk", "rep_bulk"),
]


def run_queries(cluster, check_plans):
    out = {}
    with cluster.connect() as conn:
        for label, knobs, q, fragment in QUERIES:
            for k in knobs:
                conn.execute(f"SET {k} = off")
            if check_plans:
                plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + q))
                assert fragment in plan, f"{label}: expected '{fragment}' in plan:\n{plan}"
            out[label] = conn.execute(q).fetchall()
            for k in knobs:
                conn.execute(f"RESET {k}")
    return out


def compare(primary, standby, stage):
    primary.wait_replayed(standby)
    want = run_queries(primary, check_plans=False)
    got = run_queries(standby, check_plans=True)
    for label, rows in want.items():
        assert rows, f"{stage}/{label}: primary returned nothing"
        assert got[label] == rows, (f"{stage}/{label}: standby differs from primary "
                                    f"({len(got[label])} vs {len(rows)} rows)")
    log(f"{stage}: standby matches primary on {len(want)} queries "
        f"({len(want['seq scan'])} rows in rep_t)")


def main():
    pg_home = sys.argv[1]
    tag = pg_home.strip("/").replace("/", "_")
    # the standby checks each replayed strata_lsm record against the
    # primary's image of the page (the record carries one for the check)
    primary = Cluster(pg_home, f"replica-primary-{tag}").initdb(
        {"wal_consistency_checking": "'strata_lsm'",
         # that makes far more WAL: keep it until a slow standby has it
         "wal_keep_size": "'4GB'"}).start()
    standby = Cluster(pg_home, f"replica-standby-{tag}")
    with test_servers(primary, standby, name="replica test"):
        p = primary.sql
        p("CREATE EXTENSION strata")
        p("CREATE TABLE rep_t (id int PRIMARY KEY, grp int NOT NULL, val bigint, note text) USING lsm")
        p("INSERT INTO rep_t SELECT g, g % 13, g * 3, 'n' || g FROM generate_series(1, 50000) g")
        p("INSERT INTO rep_t VALUES (100000, 2, 2, repeat('before backup ', 100000))")
        p("CREATE TABLE rep_rewritten (v int) USING lsm")
        p("INSERT INTO rep_rewritten SELECT generate_series(1, 1000)")
        p("CREATE TABLE rep_truncated (v int) USING lsm")
        p("INSERT INTO rep_truncated SELECT generate_series(1, 1000)")
        p("CREATE TABLE rep_bulk (i int, pad text) USING lsm")
        p("INSERT INTO rep_bulk SELECT g, 'before ' || g FROM generate_series(1, 5000) g")

        standby.base_backup_of(primary).start()
        assert standby.sql("SELECT pg_is_in_recovery()")[0][0], "standby is not in recovery"
        p("CREATE INDEX rep_t_grp ON rep_t (grp)")
        compare(primary, standby, "after base backup")

        # Changes that reach the standby only through WAL.
        with primary.connect() as conn:
            with conn.cursor() as cur:
                with cur.copy("COPY rep_t (id, grp, val, note) FROM STDIN") as cp:
                    for i in range(50001, 90001):
                        cp.write_row((i, i % 13, i * 3, None))
        p("UPDATE rep_t SET val = val + 1, note = 'u' WHERE id % 7 = 0")
        p("DELETE FROM rep_t WHERE id % 11 = 0")
        p("INSERT INTO rep_t VALUES (100001, 1, 1, repeat('toast me ', 200000))")
        p("UPDATE rep_t SET note = note || '!' WHERE id = 100001")
        p("DELETE FROM rep_rewritten WHERE v % 2 = 0")
        p("VACUUM FULL rep_rewritten")
        p("TRUNCATE rep_truncated")
        p("INSERT INTO rep_truncated SELECT generate_series(1, 77)")
        # a table without indexes: COPY loads straight into runs
        with primary.connect() as conn:
            with conn.cursor() as cur:
                with cur.copy("COPY rep_bulk (i, pad) FROM STDIN") as cp:
                    for i in range(5001, 45001):
                        cp.write_row((i, f"copied {i}"))
        p("CHECKPOINT")
        compare(primary, standby, "after streamed changes")
        loaded = standby.sql("SELECT sum(row_versions) FROM strata.lsm_levels('rep_bulk') WHERE level > 0")
        assert loaded[0][0] == 45000, f"standby sees {loaded[0][0]} rows of rep_bulk in runs, expected 45000"
        assert standby.sql("SELECT count(*) FROM strata.lsm_verify('rep_bulk')")[0][0] == 0
        # rep_t has indexes: its COPY loaded into a run published batch by batch
        in_runs = standby.sql("SELECT sum(row_versions) FROM strata.lsm_levels('rep_t') WHERE level > 0")
        assert in_runs[0][0] >= 40000, f"standby sees {in_runs[0][0]} rows of rep_t in runs, expected the 40000 copied"
        assert standby.sql("SELECT count(*) FROM strata.lsm_verify('rep_t')")[0][0] == 0

        # Flushes into runs replay on the standby too; then rows in runs change.
        p("SELECT strata.lsm_flush('rep_t')")
        compare(primary, standby, "after a flush into a run")
        p("UPDATE rep_t SET val = val * 2 WHERE id % 10 = 1")
        p("DELETE FROM rep_t WHERE id BETWEEN 40000 AND 41000")
        p("INSERT INTO rep_t SELECT g, g % 13, g, 'late' FROM generate_series(200001, 210000) g")
        p("SELECT strata.lsm_flush('rep_t')")
        p("UPDATE rep_t SET note = 'after second flush' WHERE id % 1000 = 3")
        compare(primary, standby, "after a second flush and changes to run rows")
        assert standby.sql("SELECT count(*) FROM strata.lsm_verify('rep_t')")[0][0] == 0
        # the rows before the COPY (flushed when its load began), the load's
        # run, and the two flushes
        runs = standby.sql("SELECT count(*) FROM strata.lsm_info('rep_t') WHERE component LIKE 'run%'")
        assert runs[0][0] == 4, f"standby sees {runs[0][0]} runs, expected 4"

        # A restart of the standby replays from its last restartpoint.
        standby.stop()
        p("UPDATE rep_t SET grp = grp + 1 WHERE id BETWEEN 20000 AND 30000")
        standby.start()
        compare(primary, standby, "after standby restart")


if __name__ == "__main__":
    main()
