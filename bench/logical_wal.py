"""WAL bytes per changed row, heap against lsm, at wal_level = replica and
logical: what logical decoding of lsm tables costs in WAL (issue 24).

For each level a throwaway server (strata preloaded, loopback, its own
port) runs the same statements on a heap and an lsm table of the shape a
documents table has (bigint key, int, text of about 60 bytes, a second
btree index): single-row INSERTs, COPY, an UPDATE of a non-key column, an
UPDATE of the key, a DELETE — 20,000 rows each — and reports
pg_current_wal_insert_lsn() differences per row, plus `pg_waldump
--stats=record` of the lsm statements (record counts by type: at replica
no ROW_* record may appear).

Usage: python3 bench/logical_wal.py PG_HOME [--rows N] [--out FILE.md]
Run it on an idle machine; it prints a markdown table.
"""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
from pgcluster import Cluster, as_postgres, log  # noqa: E402

STEPS = [
    ("INSERT (one row per statement)", None),
    ("COPY", None),
    ("UPDATE of a non-key column", "UPDATE {t} SET grp = grp + 1"),
    ("UPDATE of the key", "UPDATE {t} SET id = id + 10000000"),
    ("DELETE", "DELETE FROM {t}"),
]


def run_level(pg_home, level, rows):
    c = Cluster(pg_home, f"bench_logical_wal_{level}").initdb(
        {"wal_level": level, "wal_keep_size": "'4GB'", "max_wal_size": "'4GB'"})
    c.start()
    out = {}
    waldump = {}
    try:
        with c.connect() as conn:
            conn.execute("CREATE EXTENSION strata")
            for am in ("heap", "lsm"):
                t = f"docs_{am}"
                conn.execute(f"CREATE TABLE {t} (id bigint PRIMARY KEY, grp int, body text) USING {am}")
                conn.execute(f"CREATE INDEX ON {t} (grp)")
                first = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                for label, sql in STEPS:
                    conn.execute("CHECKPOINT")  # every step starts with full-page images due
                    before = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                    if label.startswith("INSERT"):
                        with conn.transaction():
                            for i in range(rows):
                                conn.execute(f"INSERT INTO {t} VALUES (%s, %s, %s)",
                                             (i, i % 100, f"document {i:08d} " + "x" * 40))
                    elif label == "COPY":
                        with conn.cursor() as cur, cur.copy(f"COPY {t} FROM STDIN") as cp:
                            for i in range(rows, 2 * rows):
                                cp.write_row((i, i % 100, f"document {i:08d} " + "x" * 40))
                    else:
                        conn.execute(sql.format(t=t))
                    after = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                    n = rows if label.startswith("INSERT") or label == "COPY" else 2 * rows
                    b = conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", (after, before)).fetchone()[0]
                    out[(am, label)] = float(b) / n
                last = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                if am == "lsm":
                    conn.execute("SELECT pg_switch_wal()")
                    waldump = stats(c, first, last)
    finally:
        c.destroy()
    return out, waldump


def stats(c, start, end):
    """Record counts and bytes by type (pg_waldump --stats=record) of strata_lsm records."""
    r = subprocess.run(as_postgres([f"{c.bindir}/pg_waldump", "-p", os.path.join(c.datadir, "pg_wal"),
                                    "-s", str(start), "-e", str(end), "--stats=record"]),
                       capture_output=True, text=True)
    got = {}
    if r.returncode != 0:
        log(f"pg_waldump: {r.stderr.strip()}")
    # pg_waldump has no names for a custom resource manager's records:
    # "custom171/UNKNOWN (60)   N (%)   record size ..."
    names = {"10": "INSERT", "20": "HEADERS", "30": "UPDATE", "50": "UPDATE_SHORT",
             "60": "ROW_INSERT", "70": "ROW_UPDATE", "80": "ROW_DELETE", "90": "ROW_CONFIRM"}
    for line in r.stdout.splitlines():
        m = re.match(r"custom171/UNKNOWN \((\w+)\)\s+(\d+)\s+\(\s*[\d.]+\)\s+(\d+)", line)
        if m:
            got[names.get(m.group(1), m.group(1))] = (int(m.group(2)), int(m.group(3)))
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pg_home")
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--out")
    a = ap.parse_args()
    results = {}
    dumps = {}
    for level in ("replica", "logical"):
        log(f"wal_level = {level}")
        results[level], dumps[level] = run_level(a.pg_home, level, a.rows)
    lines = [
        f"WAL bytes per changed row (INSERT and COPY add {a.rows} rows each; the UPDATEs and the DELETE change all {2 * a.rows})",
        "",
        "| step | heap replica | heap logical | lsm replica | lsm logical | lsm extra at logical | heap extra at logical |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, _ in STEPS:
        hr, hl = results["replica"][("heap", label)], results["logical"][("heap", label)]
        lr, ll = results["replica"][("lsm", label)], results["logical"][("lsm", label)]
        lines.append(f"| {label} | {hr:.1f} | {hl:.1f} | {lr:.1f} | {ll:.1f} | {ll - lr:+.1f} | {hl - hr:+.1f} |")
    lines += ["", "strata_lsm records of the lsm statements (pg_waldump --stats=record: count, bytes):", ""]
    for level in ("replica", "logical"):
        kinds = ", ".join(f"{k} {n} ({b:,} B)" for k, (n, b) in sorted(dumps[level].items()))
        lines.append(f"* {level}: {kinds or 'none'}")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
