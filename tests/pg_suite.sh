#!/usr/bin/env bash
# Runs PostgreSQL's own regression suite (src/test/regress of a PostgreSQL
# source tree of the same major version) with default_table_access_method =
# lsm (or heap, for a baseline) in a temporary instance with Strata loaded.
# Not part of `make test`: it needs PostgreSQL sources, and many expected
# files differ on lsm for good reasons (plan shapes without index-only scans,
# row order, ctid values). It fails only when a backend crashed or the
# postmaster logged a PANIC; the diffs are left for reading.
# Usage: tests/pg_suite.sh 15|18 /path/to/postgresql-source [lsm|heap]
source "$(dirname "$0")/../scripts/lib.sh"
VER="${1:?usage: tests/pg_suite.sh 15|18 PGSRC [lsm|heap]}"
SRC="${2:?usage: tests/pg_suite.sh 15|18 PGSRC [lsm|heap]}"
AM="${3:-lsm}"
HOME_DIR="$(pg_home "$VER")"
PGXS="$("$HOME_DIR/bin/pg_config" --pkglibdir)/pgxs"
WORK="/tmp/strata-pgsuite-$VER-$AM"
[ -f "$SRC/src/test/regress/regress.c" ] || die "no src/test/regress/regress.c under $SRC"

as_root rm -rf "$WORK"
cp -r "$SRC/src/test/regress" "$WORK"
log "building regress.so against PostgreSQL $VER"
clang -O1 -shared -fPIC -w -I"$("$HOME_DIR/bin/pg_config" --includedir-server)" \
    -I"$("$HOME_DIR/bin/pg_config" --includedir)" "$WORK/regress.c" -o "$WORK/regress.so"
# lsm tables refuse publications: the publication tests would leave a FOR ALL
# TABLES publication behind and every later UPDATE would fail
sed 's/ publication / /; s/ subscription / /' "$WORK/parallel_schedule" > "$WORK/strata_schedule"
printf 'default_table_access_method = %s\nmax_connections = 40\n' "$AM" > "$WORK/strata.conf"
as_root chown -R postgres: "$WORK"
log "PostgreSQL's regression suite on PostgreSQL $VER with $AM tables"
(cd "$WORK" && as_pg "$PGXS/src/test/regress/pg_regress" \
    --temp-instance="$WORK/instance" --temp-config="$WORK/strata.conf" \
    --bindir="$HOME_DIR/bin" --inputdir="$WORK" --outputdir="$WORK" --dlpath="$WORK" \
    --load-extension=strata --schedule="$WORK/strata_schedule" --max-connections=20) || true
if grep -q "terminated by signal\|PANIC" "$WORK/log/postmaster.log"; then
    grep -n "terminated by signal\|PANIC" "$WORK/log/postmaster.log" | head
    die "a backend crashed during PostgreSQL's regression suite (log: $WORK/log/postmaster.log)"
fi
# "ok 12 - name" (PostgreSQL 16 and later) or "name ... ok" (15)
matched=$(grep -cE '^ok |[.][.][.] ok ' "$WORK/regression.out" 2>/dev/null || true)
log "no crash; ${matched:-?} tests match, diffs in $WORK/regression.diffs"
