#!/usr/bin/env bash
# Runs the benchmark suite (bench/run.py) against a private PostgreSQL server.
#   bench/run.sh                 full run on PostgreSQL 18 with a release build;
#                                writes bench/results/<date>.md and PNG plots
#   bench/run.sh --mode smoke    seconds-scale run of the whole suite (tests use it)
# Options: --mode smoke|full, --pg 15|18, --out DIR, --no-install (use what is installed).
source "$(dirname "$0")/../scripts/lib.sh"
MODE=full; VER=18; OUT=""; INSTALL=1
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE="$2"; shift 2 ;;
        --pg) VER="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        *) die "unknown option $1" ;;
    esac
done
ensure_all
ensure_python_tools
[ "$INSTALL" = 1 ] && install_strata "$VER" "$([ "$MODE" = full ] && echo release || echo debug)"
args=(--mode "$MODE" --pg-home "$(pg_home "$VER")")
[ -n "$OUT" ] && args+=(--out "$OUT")
PYTHONPATH="$PY_TOOLS" python3 "$STRATA_ROOT/bench/run.py" "${args[@]}"
