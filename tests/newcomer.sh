#!/usr/bin/env bash
# The newcomer's path, as README.md gives it: `make run` from nothing against a
# throwaway data directory and port, `make run` a second time (idempotence), the
# README's "30-second example" SQL block extracted from README.md itself and run
# verbatim with ON_ERROR_STOP in a scratch database (its results checked), then
# `make stop`. A README edit that breaks the example fails here.
# Usage: tests/newcomer.sh   (PostgreSQL 18, what `make run` starts)
source "$(dirname "$0")/../scripts/lib.sh"
WORK=/tmp/strata-newcomer
export STRATA_DATA="$WORK/pg18"
# A port nobody listens on (the kernel picks it), unless the caller chose one.
export STRATA_PORT="${STRATA_NEWCOMER_PORT:-$(python3 -c \
    'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
export CI=true
PSQL=("$PG18_HOME/bin/psql" -X -q -v ON_ERROR_STOP=1 -h /tmp -p "$STRATA_PORT" -U postgres)

stop_server() {
    [ -f "$STRATA_DATA/postmaster.pid" ] &&
        as_pg "$PG18_HOME/bin/pg_ctl" -D "$STRATA_DATA" -m immediate -w stop >/dev/null 2>&1
    return 0
}
fail() { log "server log:"; tail -n 30 "$WORK/pg18.log" >&2 2>/dev/null || true; die "newcomer: $*"; }
# Fails unless the query's single value equals the expected one.
expect() {
    local want="$1" sql="$2" got
    got=$("${PSQL[@]}" -d "$DB" -tAc "$sql") || fail "query failed: $sql"
    [ "$got" = "$want" ] || fail "expected '$want', got '$got' from: $sql"
}

stop_server
as_root rm -rf "$WORK"
trap stop_server EXIT

for round in 1 2; do
    log "newcomer: make run ($round of 2, data $STRATA_DATA, port $STRATA_PORT)"
    make -C "$STRATA_ROOT" run </dev/null || fail "make run failed (round $round)"
    DB=strata
    expect 5 "SELECT count(*) FROM demo_items"
    expect apple "SELECT name FROM demo_items ORDER BY embedding <-> '[1,0.1,0]' LIMIT 1"
done

# The first ```sql block after the "30-second example" heading, exactly as written.
block="$WORK/readme-example.sql"
awk '/^## 30-second example/ { h = 1; next }
     h && !s && /^```sql$/ { s = 1; next }
     s && /^```$/ { exit }
     s { print }' "$STRATA_ROOT/README.md" >"$block"
[ -s "$block" ] || fail "no sql block under '## 30-second example' in README.md"

log "newcomer: the README's 30-second example in a scratch database"
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS strata_readme" -c "CREATE DATABASE strata_readme"
out=$("${PSQL[@]}" -d strata_readme -tA -f "$block") || fail "the README example failed (output above)"
# Every `SELECT ...; -- <number>` line states its result: it must be in the output.
stated=0
while read -r want; do
    grep -qxF "$want" <<<"$out" || fail "README says $want, the example printed:"$'\n'"$out"
    stated=$((stated + 1))
done < <(grep -oP '^SELECT .*;\s*--\s*\K-?[0-9][0-9.e+-]*(?=\s*$)' "$block" || true)
[ "$stated" -gt 0 ] || fail "the README example states no result to check"
DB=strata_readme
expect "1,3" "SELECT string_agg(id::text, ',' ORDER BY embedding <-> '[1,0,0]') FROM items
              WHERE id IN (SELECT id FROM items ORDER BY embedding <-> '[1,0,0]' LIMIT 2)"
expect "1000|changed" "SELECT (SELECT count(*) FROM events) || '|' || payload FROM events WHERE id = 42"
expect lsm "SELECT amname FROM pg_class JOIN pg_am ON relam = pg_am.oid WHERE relname = 'events'"
expect t "SELECT count(*) > 0 FROM strata.lsm_info('events')"
expect strata_hnsw "SELECT amname FROM pg_class JOIN pg_am ON relam = pg_am.oid
                    WHERE relname = 'docs_embedding_idx'"
expect t "SELECT count(*) > 0 FROM strata.hnsw_info('docs_embedding_idx')"
# The filtered query the example ends with fills its LIMIT with rows of category 7.
expect "5|5" "SET strata.hnsw_iterative_scan = relaxed_order;
              SELECT count(*) || '|' || count(*) FILTER (WHERE category = 7) FROM (
                  SELECT category FROM docs WHERE category = 7
                  ORDER BY embedding <=> '[0.5,0.5,0.5]' LIMIT 5) s"
"${PSQL[@]}" -d postgres -c "DROP DATABASE strata_readme"

log "newcomer: make stop"
make -C "$STRATA_ROOT" stop </dev/null || fail "make stop failed"
if as_pg "$PG18_HOME/bin/pg_ctl" -D "$STRATA_DATA" status >/dev/null 2>&1; then
    fail "the server still runs after make stop"
fi
trap - EXIT
as_root rm -rf "$WORK"
log "newcomer path passed: make run (twice), the README example, make stop"
