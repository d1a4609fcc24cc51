"""`lsm` against heap, side by side in one server: COPY, size, WAL, scans,
point lookups, single-row inserts, pgbench tpcb-like, the metadata-update
workloads and update churn. A mixin of `run.Bench`."""

import os
import random
import re
import subprocess
import time

from pgcluster import as_postgres



def alternating(pairs):
    """heap, lsm, lsm, heap, heap, lsm, …: `pairs` runs of each access
    method, the first of each pair alternating."""
    return [am for i in range(pairs) for am in (("heap", "lsm") if i % 2 == 0 else ("lsm", "heap"))]


def ratio_range(heap, lsm):
    """min–max of lsm / heap over the adjacent pairs of alternating runs."""
    ratios = [l / h for h, l in zip(heap, lsm) if h]
    return f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "-"

class LsmBench:
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
                dt, wal, size = self.timed_copy(t, am, csv, "id bigint")
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

        self.indexed_copy(csv, s["copy_rows"][-1])

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

    def timed_copy(self, t, am, csv, id_column, *after_create):
        """A fresh `t` (issue #17's columns, `id_column` first; then the
        `after_create` statements) loaded from `csv` by COPY after a
        checkpoint: (seconds, WAL bytes, table size)."""
        self.sql(f"DROP TABLE IF EXISTS {t}")
        self.sql(f"CREATE TABLE {t} ({id_column}, grp int, v bigint, email text, "
                 f"ts timestamptz, status text) USING {am}")
        for q in after_create:
            self.sql(q)
        self.sql("CHECKPOINT")
        lsn = self.wal_lsn()
        t0 = time.perf_counter()
        self.sql(f"COPY {t} FROM '{csv}' WITH (FORMAT csv)")
        dt = time.perf_counter() - t0
        return dt, self.wal_since(lsn), self.one(f"SELECT pg_table_size('{t}')")

    def indexed_copy(self, csv, n):
        """COPY of the same rows into a table with a primary key and a
        second btree (lsm: a bulk load that publishes its run batch by batch),
        two rounds alternating between the tables, the faster of each; WAL
        includes the indexes'."""
        best = {}
        for _ in range(2):
            for am in ("heap", "lsm"):
                t = f"copyidx_{am}"
                dt, wal, size = self.timed_copy(t, am, csv, "id bigint PRIMARY KEY", f"CREATE INDEX ON {t} (grp)")
                idx = self.one(f"SELECT pg_indexes_size('{t}')")
                if am not in best or n / dt > best[am][0]:
                    best[am] = (n / dt, wal / n, size, idx)
        h, l = best["heap"], best["lsm"]
        self.table(f"COPY of the same {n:,} rows into a table with a primary key and an index on grp "
                   "(lsm: a bulk load publishing its run batch by batch; WAL includes the indexes'; "
                   "faster of two alternating rounds)",
                   ["heap rows/s", "lsm rows/s", "ratio", "heap WAL B/row", "lsm WAL B/row", "ratio",
                    "heap table MB", "lsm table MB", "size ratio", "heap index MB", "lsm index MB"],
                   [(f"{h[0]:,.0f}", f"{l[0]:,.0f}", f"{l[0] / h[0]:.2f}", f"{h[1]:.0f}", f"{l[1]:.0f}",
                     f"{l[1] / h[1]:.2f}", f"{h[2] / 2**20:.1f}", f"{l[2] / 2**20:.1f}", f"{l[2] / h[2]:.2f}",
                     f"{h[3] / 2**20:.1f}", f"{l[3] / 2**20:.1f}")])
        for am in ("heap", "lsm"):
            self.sql(f"DROP TABLE IF EXISTS copyidx_{am}")

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
        # ab_pairs runs each, alternating (heap, lsm, lsm, heap, heap, lsm, …):
        # the mean TPS, and the spread of the per-pair ratios
        clients = max(s["clients"])
        runs = {"heap": [], "lsm": []}
        wal = {"heap": [0, 0], "lsm": [0, 0]}
        for am in alternating(s["ab_pairs"]):
            db = f"tpcb_{am}"
            self.sql("CHECKPOINT", db=db)
            self.quiesce()
            lsn = self.wal_lsn()
            out = subprocess.run(as_postgres([f"{self.cluster.bindir}/pgbench", "-h", "127.0.0.1", "-p",
                                              str(self.cluster.port), "-U", "postgres", "-c", str(clients),
                                              "-j", str(min(clients, 4)), "-T", str(s["seconds"]), db]),
                                 capture_output=True, text=True)
            m = re.search(r"tps = ([0-9.]+)", out.stdout)
            runs[am].append(float(m.group(1)) if m else 0.0)
            done = re.search(r"number of transactions actually processed: (\d+)", out.stdout)
            if done:
                wal[am][0] += self.wal_since(lsn)
                wal[am][1] += int(done.group(1))
            if not m:
                self.report.append(f"\ntpcb-like on {am} failed: `{out.stderr.strip()[:300]}`\n")
        for am in ("heap", "lsm"):
            db = f"tpcb_{am}"
            tpcb.append(sum(runs[am]) / len(runs[am]))
            wal_per_txn.append(wal[am][0] / wal[am][1] if wal[am][1] else 0.0)
            self.sql("VACUUM pgbench_accounts", db=db)
            accounts.append((self.one("SELECT pg_table_size('pgbench_accounts')", db=db) / 2**20,
                             self.compression("pgbench_accounts", db) if am == "lsm" else ""))
        self.table(f"pgbench tpcb-like, scale {s['tpcb_scale']}, {max(s['clients'])} clients, "
                   f"{s['seconds']} s, mean of {s['ab_pairs']} runs each in alternating order "
                   "(heap, lsm, lsm, heap, …; ratio range: lsm / heap within each adjacent pair) "
                   "(pgbench_accounts size right after pgbench -i's load, and after the runs and a VACUUM)",
                   ["heap TPS", "lsm TPS", "ratio", "ratio range", "heap WAL B/txn", "lsm WAL B/txn",
                    "heap accounts MB loaded", "lsm accounts MB loaded",
                    "size ratio", "heap accounts MB", "lsm accounts MB", "lsm run compression"],
                   [(f"{tpcb[0]:,.0f}", f"{tpcb[1]:,.0f}", f"{tpcb[1] / tpcb[0]:.2f}" if tpcb[0] else "-",
                     ratio_range(runs["heap"], runs["lsm"]),
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
        (heap can then neither prune nor place updates in-page); TPS is the
        mean of two runs in alternating order. Index sizes before and after
        the first round's runs. The floor is what any table pays for such
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
            runs = {"heap": [], "lsm": []}
            # ab_pairs rounds in alternating order, each on fresh tables after
            # a checkpoint: on this host whichever runs second inherits the
            # first one's dirty buffers and WAL, and the disk's flush time
            # drifts by a fifth from minute to minute
            order = alternating(s["ab_pairs"])
            for i, am in enumerate(order):
                t = f"docs_{am}"
                self.docs_table(t, am, n, dims)
                size_q = (f"SELECT sum(pg_relation_size(indexrelid)) FROM pg_index "
                          f"WHERE indrelid = '{t}'::regclass")
                before = self.one(size_q)
                self.sql("CHECKPOINT")
                holder = None
                if held:
                    holder = self.cluster.connect("bench")
                    holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                    holder.execute(f"SELECT count(*) FROM {t}").fetchone()
                try:
                    tps, _ = self.pgbench("bench", script.replace("{am}", am), clients,
                                          s["docs_seconds"])
                finally:
                    if holder is not None:
                        holder.execute("ROLLBACK")
                        holder.close()
                runs[am].append(tps)
                if i < 2:
                    sizes.append((held, am, before / 2**20, self.one(size_q) / 2**20))
            tps = {am: sum(r) / len(r) for am, r in runs.items()}
            floor, _ = self.pgbench("bench", floor_script, clients, s["docs_seconds"])
            rows.append(("open REPEATABLE READ snapshot" if held else "none",
                         f"{tps['heap']:,.0f}", f"{tps['lsm']:,.0f}", f"{tps['lsm'] / tps['heap']:.2f}",
                         ratio_range(runs["heap"], runs["lsm"]),
                         f"{floor:,.0f}", f"{tps['heap'] / floor:.2f}", f"{tps['lsm'] / floor:.2f}"))
        self.table(f"metadata updates: {n:,} documents, btree x2 + GIN + strata_hnsw({dims}), "
                   f"UPDATE status WHERE id = random, {clients} clients, {s['docs_seconds']} s; "
                   f"TPS: mean of {s['ab_pairs']} runs each on fresh tables in alternating order "
                   "(ratio range: lsm / heap within each adjacent pair); "
                   "floor: the row fetched by primary key, one minimal WAL record, the commit",
                   ["other session", "heap TPS", "lsm TPS", "ratio", "ratio range", "floor TPS", "heap / floor",
                    "lsm / floor"], rows)
        self.table("metadata updates: index sizes (MB, all indexes of the table)",
                   ["other session", "table", "before", "after"],
                   [("open REPEATABLE READ snapshot" if h else "none", am, f"{b:.2f}", f"{a:.2f}")
                    for h, am, b, a in sizes])

    def docs_table(self, t, am, n, dims):
        """The metadata-update workload's documents table `t`, freshly
        loaded with `n` rows, its four indexes built, vacuumed."""
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

    def compression(self, table, db="bench"):
        """Row bytes per data-page byte of an lsm table's runs (strata.lsm_levels)."""
        r = self.one(f"SELECT sum(tuple_bytes)::float8 / nullif(sum(pages), 0) / 8192 "
                     f"FROM strata.lsm_levels('{table}') WHERE level > 0", db=db)
        return f"{r:.2f}" if r is not None else "-"

    def timed(self, q, db="bench"):
        t0 = time.perf_counter()
        self.sql(q, db)
        return time.perf_counter() - t0
