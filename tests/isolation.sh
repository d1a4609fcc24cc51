#!/usr/bin/env bash
# Runs the isolation specs in tests/isolation with pg_isolation_regress
# against PostgreSQL $1 (15|18), twice: with default_table_access_method =
# heap and = lsm, against the same expected files — so every expected file is
# what heap does, and lsm must do the same. Strata must be installed.
# Usage: tests/isolation.sh 18 [spec ...]   (STRATA_ISOLATION_AMS="lsm" to skip heap)
source "$(dirname "$0")/../scripts/lib.sh"
VER="${1:?usage: tests/isolation.sh 15|18 [spec ...]}"; shift
HOME_DIR="$(pg_home "$VER")"
PGXS="$("$HOME_DIR/bin/pg_config" --pkglibdir)/pgxs"
AMS="${STRATA_ISOLATION_AMS:-heap lsm}"

if [ $# -gt 0 ]; then SPECS=("$@"); else
    mapfile -t SPECS < <(cd "$STRATA_ROOT/tests/isolation/specs" && ls *.spec | sed 's/\.spec$//' | sort)
fi

for am in $AMS; do
    WORK="/tmp/strata-isolation-$VER-$am"
    as_root rm -rf "$WORK"
    mkdir -p "$WORK"
    cp -r "$STRATA_ROOT/tests/isolation/specs" "$STRATA_ROOT/tests/isolation/expected" "$WORK/"
    cat > "$WORK/isolation.conf" <<CONF
default_table_access_method = $am
max_connections = 20
# as the Docker image and make run: Strata's WAL records, shared cache and chain hints
shared_preload_libraries = 'strata'
CONF
    as_root chown -R postgres: "$WORK"
    log "isolation specs on PostgreSQL $VER with $am tables: ${#SPECS[@]} specs"
    if ! (cd "$WORK" && as_pg "$PGXS/src/test/isolation/pg_isolation_regress" \
            --temp-instance="$WORK/instance" --temp-config="$WORK/isolation.conf" \
            --bindir="$HOME_DIR/bin" --inputdir="$WORK" --outputdir="$WORK" \
            --load-extension=strata "${SPECS[@]}"); then
        [ -f "$WORK/output_iso/regression.diffs" ] && cat "$WORK/output_iso/regression.diffs"
        [ -f "$WORK/regression.diffs" ] && cat "$WORK/regression.diffs"
        die "isolation specs failed on PostgreSQL $VER with $am tables (results in $WORK)"
    fi
done
