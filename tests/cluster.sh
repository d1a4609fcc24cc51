#!/usr/bin/env bash
# Cluster tests against PostgreSQL $1 (15|18): what a single backend cannot show.
#   test_crash.py   — kill -9 of the postmaster during concurrent COPY/UPDATE/DELETE;
#   test_replica.py — a streaming standby (pg_basebackup -R) answers like the primary;
#   test_concurrent_index.py, test_dump.py, test_hnsw.py, test_pgbench.py (tpcb-like
#   on lsm tables, balances checked), test_merge_dml.py (DML while VACUUM merges
#   runs neither waits nor gets lost), test_churn.py (20 updates per row with
#   autovacuum alone: compaction keeps the table within 2x its live data),
#   test_pgvector_parity.py (strata_hnsw answers as pgvector does), test_pgvector_python.py
#   (pgvector-python's Vector, HalfVector, SparseVector and Bit round-trip through psycopg),
#   test_logical.py (publications of lsm tables into heap and lsm subscribers — streamed, two-phase,
#   row-filtered —, pg_recvlogical,
#   kill -9 mid-transaction), test_error_reports.py (lock timeouts and deadlocks in lsm
#   row changes report heap's SQLSTATE, detail and CONTEXT), test_citus.py (only where Citus is installed: a distributed lsm table,
#   k-NN across shards, an online shard move while writes continue).
# Each test starts its own servers on loopback ports as the postgres user and
# stops them. Strata must be installed into that PostgreSQL.
# Usage: tests/cluster.sh 18 [test_crash test_replica ...]
source "$(dirname "$0")/../scripts/lib.sh"
VER="${1:?usage: tests/cluster.sh 15|18 [test ...]}"; shift
ensure_python_tools
if [ $# -gt 0 ]; then TESTS=("$@"); else
    mapfile -t TESTS < <(cd "$STRATA_ROOT/tests/cluster" && ls test_*.py | sed 's/\.py$//' | sort)
fi
for t in "${TESTS[@]}"; do
    log "cluster test $t on PostgreSQL $VER"
    PYTHONPATH="$PY_TOOLS" python3 "$STRATA_ROOT/tests/cluster/$t.py" "$(pg_home "$VER")" ||
        die "cluster test $t failed on PostgreSQL $VER"
done
