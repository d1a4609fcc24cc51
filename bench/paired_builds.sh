#!/usr/bin/env bash
# Paired builds: pgbench tpcb-like, lsm against heap, for two commits of
# Strata on one fresh PostgreSQL 18 server each, one after the other — a
# code change's effect on lsm's ratio with less of the host's drift than
# two runs of the whole suite (bench/run.sh --only updates) half an hour apart.
#
#   bench/paired_builds.sh COMMIT_A COMMIT_B [ROUNDS] [SECONDS]
#
# Per commit: a detached worktree under /tmp, built and installed into
# PostgreSQL 18 (release; the last commit stays installed), a new cluster
# (port 54399, shared_preload_libraries = strata, the suite's settings),
# `pgbench -i -s 10` into one database per access method, then ROUNDS
# rounds (default 3) of heap, lsm, lsm, heap — 8 clients, SECONDS (default
# 20) each, a CHECKPOINT before each run. Prints each run's TPS and, per
# commit, the ratio of lsm's mean to heap's. Run it on an idle machine.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

[ $# -ge 2 ] || die "usage: bench/paired_builds.sh COMMIT_A COMMIT_B [ROUNDS] [SECONDS]"
ROUNDS="${3:-3}"
SECONDS_PER_RUN="${4:-20}"
PORT=54399
BIN="$(pg_home 18)/bin"
# the main tree's target directory: dependencies built once, only strata again
export CARGO_TARGET_DIR="$STRATA_ROOT/target"

psql_pg() { as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -X -q -At "$@"; }

run_commit() {
    local commit tree data
    commit="$(git -C "$STRATA_ROOT" rev-parse --short "$1")"
    tree="$(mktemp -d /tmp/strata-paired-src.XXXXXX)"
    data="$(mktemp -d /tmp/strata-paired-data.XXXXXX)"
    git -C "$STRATA_ROOT" worktree add -f --detach "$tree" "$commit" >/dev/null 2>&1
    log "building $commit"
    (cd "$tree" && cargo pgrx install --release --no-default-features --features pg18 \
        --pg-config "$(pg_config_of 18)" >"$tree.build.log" 2>&1) \
        || { tail -30 "$tree.build.log"; die "build of $commit failed"; }
    rm -f "$tree.build.log"
    as_root chmod -R a+rX "$(pg_home 18)/" 2>/dev/null || true
    chown postgres "$data"
    as_pg "$BIN/initdb" -D "$data" -U postgres --auth=trust >/dev/null
    as_pg "$BIN/pg_ctl" -D "$data" -l "$data/log" -w start -o "-p $PORT -c listen_addresses=127.0.0.1 \
        -c shared_preload_libraries=strata -c shared_buffers=2GB -c max_wal_size=16GB \
        -c checkpoint_timeout=30min -c max_connections=50" >/dev/null
    for am in heap lsm; do
        psql_pg -d postgres -c "CREATE DATABASE tpcb_$am"
        psql_pg -d "tpcb_$am" -c "CREATE EXTENSION strata" -c "ALTER DATABASE tpcb_$am SET default_table_access_method = $am"
        as_pg "$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -i -q -s 10 "tpcb_$am" >/dev/null 2>&1
    done
    local -A sum=([heap]=0 [lsm]=0)
    for _ in $(seq "$ROUNDS"); do
        for am in heap lsm lsm heap; do
            psql_pg -d "tpcb_$am" -c "CHECKPOINT"
            local tps
            tps=$(as_pg "$BIN/pgbench" -h 127.0.0.1 -p "$PORT" -U postgres -c 8 -j 4 -T "$SECONDS_PER_RUN" "tpcb_$am" 2>&1 \
                | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
            echo "$commit $am $tps"
            sum[$am]=$(python3 -c "print(${sum[$am]} + $tps)")
        done
    done
    python3 -c "print(f'$commit: heap {${sum[heap]}/(2*$ROUNDS):.0f} TPS, lsm {${sum[lsm]}/(2*$ROUNDS):.0f} TPS, lsm / heap {${sum[lsm]}/${sum[heap]}:.3f}')"
    as_pg "$BIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    rm -rf "$data"
    git -C "$STRATA_ROOT" worktree remove --force "$tree"
}

run_commit "$1"
run_commit "$2"
