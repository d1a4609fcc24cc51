#!/usr/bin/env bash
# `make run`: install what is missing, build Strata in release mode into
# PostgreSQL 18, start a local cluster on port $STRATA_PORT (default 54318) with
# `CREATE EXTENSION strata` and a demo table, then open psql — or, without a
# terminal, print how to connect and leave the server running. Idempotent.
source "$(dirname "$0")/lib.sh"

PORT="${STRATA_PORT:-54318}"
DATA="${STRATA_DATA:-/var/lib/strata/pg18}"
LOGFILE="$(dirname "$DATA")/pg18.log"
BIN="$PG18_HOME/bin"

ensure_all
install_strata 18 release

if [ ! -f "$DATA/PG_VERSION" ]; then
    log "creating cluster in $DATA"
    as_root mkdir -p "$DATA"
    as_root chown postgres: "$DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
# lsm row changes are logged as records of Strata's WAL resource manager,
# which the server must load at start (recovery needs it too).
as_pg grep -q "^shared_preload_libraries = 'strata'" "$DATA/postgresql.conf" ||
    as_pg sh -c "echo \"shared_preload_libraries = 'strata'\" >> '$DATA/postgresql.conf'"
# The server log sits next to the data directory and is written by `postgres`.
[ -f "$LOGFILE" ] || as_root touch "$LOGFILE"
as_root chown postgres: "$LOGFILE"
clear_stale_pid "$DATA"
if ! as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "starting PostgreSQL 18 on port $PORT"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w \
        -o "-p $PORT -k /tmp -c listen_addresses=localhost" start >/dev/null
else
    log "restarting PostgreSQL 18 to load the new build"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -m fast \
        -o "-p $PORT -k /tmp -c listen_addresses=localhost" restart >/dev/null
fi

PSQL=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h /tmp -p "$PORT" -U postgres)
"${PSQL[@]}" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'strata'" | grep -q 1 ||
    "${PSQL[@]}" -d postgres -c "CREATE DATABASE strata"
# The extension's version is not bumped while Strata is pre-release, so a
# database created by an older build lacks newer objects: recreate it then.
if [ "$("${PSQL[@]}" -d strata -tAc "SELECT count(*) FROM pg_extension WHERE extname = 'strata'")" = 1 ] &&
   [ "$("${PSQL[@]}" -d strata -tAc "SELECT count(*) FROM pg_am WHERE amname IN ('lsm', 'strata_hnsw')
        UNION ALL SELECT 0 WHERE to_regproc('strata.lsm_flush') IS NULL" | paste -sd, -)" != 2 ]; then
    log "database 'strata' has the extension from an older build: recreating it (drops the demo table)"
    "${PSQL[@]}" -d strata -c "DROP TABLE IF EXISTS demo_items" -c "DROP EXTENSION strata CASCADE" >/dev/null
fi
"${PSQL[@]}" -d strata -f "$STRATA_ROOT/scripts/demo.sql"

cat <<MSG

Strata is running: PostgreSQL 18 on localhost:$PORT, database 'strata', user 'postgres'.
  connect:  $BIN/psql -h localhost -p $PORT -U postgres strata
  try:      SELECT '[1,2,3]'::vector <-> '[4,5,6]';
  stop:     make stop
MSG

if [ -t 0 ] && [ -t 1 ] && [ -z "${CI:-}" ]; then
    exec "$BIN/psql" -h /tmp -p "$PORT" -U postgres strata
fi
