#!/usr/bin/env bash
# `make test`: every test layer on PostgreSQL 15 and 18.
#   0. newcomer path    — tests/newcomer.sh, first: `make run` from nothing on a
#                         throwaway data directory and port, again (idempotence),
#                         README's 30-second example run verbatim, `make stop`;
#   1. scripts/core_test.sh — the pure core crates (strata-base, -lsm-core,
#                         -vector-core, -hnsw-core): unit tests (kernels, codecs,
#                         page formats, checks, graph, policies) with every
#                         PostgreSQL install hidden, clippy -D warnings;
#      scripts/module_cycles.py — no import cycle between the extension's modules;
#      cargo clippy -D warnings — the extension crate, per PostgreSQL version;
#      cargo pgrx test  — #[pg_test] in-backend tests, per PostgreSQL version;
#   2. pg_regress       — tests/pg_regress suites with asserted output;
#   3. isolation specs — tests/isolation: concurrency semantics, run on heap
#                        and on lsm tables against the same expected files;
#      PostgreSQL's own suites (PG15, sources from Debian) — tests/pg_suite.sh:
#                        its regression suite with lsm tables (no crash),
#                        its isolation suite (heap's output on lsm) and
#                        test_decoding's tests (lsm fails none heap passes);
#   4. cluster tests  — tests/cluster: kill -9 crash recovery, streaming replica,
#                        pgbench balance check;
#   5. bench smoke    — bench/run.sh --mode smoke (PG18): the whole benchmark suite at toy sizes;
#   6. package smoke    — `cargo pgrx package` installed into PG18 + SQL smoke test.
# Set STRATA_PG_VERSIONS="18" to limit the versions. Idempotent; fine as root.
source "$(dirname "$0")/lib.sh"
VERSIONS="${STRATA_PG_VERSIONS:-15 18}"

ensure_all
cd "$STRATA_ROOT"

# What a newcomer types first, exactly as README.md gives it (PostgreSQL 18).
case " $VERSIONS " in *" 18 "*) "$STRATA_ROOT/tests/newcomer.sh" ;; esac

# The pgrx-free core crates: plain cargo, no server, no PostgreSQL headers.
"$STRATA_ROOT/scripts/core_test.sh"
log "module cycles (scripts/module_cycles.py)"
python3 scripts/module_cycles.py || die "import cycles between modules of src/ (see above)"

for v in $VERSIONS; do
    pgdata="/tmp/strata-pgrx-test/pg$v"
    as_root mkdir -p "$(dirname "$pgdata")"
    as_root chown postgres: "$(dirname "$pgdata")"
    # the extension crate lint-clean too, per PostgreSQL version (the table
    # AM API differs between them), tests' code included
    if command -v cargo-clippy >/dev/null; then
        log "cargo clippy (extension, pg$v) -- -D warnings"
        cargo clippy --lib --no-default-features --features "pg$v,pg_test" -- -D warnings
    fi
    log "cargo pgrx test pg$v"
    cargo pgrx test "pg$v" --runas postgres --pgdata "$pgdata"

    install_strata "$v" debug
    "$STRATA_ROOT/tests/regress.sh" "$v"
    "$STRATA_ROOT/tests/isolation.sh" "$v"
    if [ "$v" = 15 ]; then "$STRATA_ROOT/tests/pg_suite.sh" 15; fi
    "$STRATA_ROOT/tests/cluster.sh" "$v"
done

case " $VERSIONS " in *" 18 "*)
    # The benchmark harness at toy sizes, so it never rots (the real run is manual).
    "$STRATA_ROOT/bench/run.sh" --mode smoke --pg 18 --no-install --out /tmp/strata-bench-smoke
    "$STRATA_ROOT/tests/package_smoke.sh" ;;
esac
log "all tests passed on PostgreSQL: $VERSIONS"
