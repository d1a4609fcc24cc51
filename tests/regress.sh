#!/usr/bin/env bash
# Runs the pg_regress suites in tests/pg_regress against PostgreSQL $1 (15|18),
# in a temporary instance owned by the postgres user. Strata must be installed.
# Usage: tests/regress.sh 18 [test ...]
source "$(dirname "$0")/../scripts/lib.sh"
VER="${1:?usage: tests/regress.sh 15|18 [test ...]}"; shift
HOME_DIR="$(pg_home "$VER")"
WORK="/tmp/strata-regress-$VER"
PGXS="$("$HOME_DIR/bin/pg_config" --pkglibdir)/pgxs"

if [ $# -gt 0 ]; then TESTS=("$@"); else
    mapfile -t TESTS < <(cd "$STRATA_ROOT/tests/pg_regress/sql" && ls *.sql | sed 's/\.sql$//' | sort)
fi

as_root rm -rf "$WORK"
mkdir -p "$WORK"
cp -r "$STRATA_ROOT/tests/pg_regress/sql" "$STRATA_ROOT/tests/pg_regress/expected" "$WORK/"
cp "$STRATA_ROOT/tests/pg_regress/regress.conf" "$WORK/"
as_root chown -R postgres: "$WORK"

log "pg_regress on PostgreSQL $VER: ${TESTS[*]}"
if ! (cd "$WORK" && as_pg "$PGXS/src/test/regress/pg_regress" \
        --temp-instance="$WORK/instance" --temp-config="$WORK/regress.conf" \
        --bindir="$HOME_DIR/bin" --inputdir="$WORK" --outputdir="$WORK" \
        --load-extension=strata --dbname=strata_regress "${TESTS[@]}"); then
    [ -f "$WORK/regression.diffs" ] && cat "$WORK/regression.diffs"
    die "pg_regress failed on PostgreSQL $VER (results in $WORK)"
fi
