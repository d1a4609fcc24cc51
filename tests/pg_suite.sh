#!/usr/bin/env bash
# PostgreSQL's own test suites with default_table_access_method = lsm (or
# heap, for a baseline), each in a temporary instance with Strata loaded:
#
#  * the regression suite (src/test/regress): many expected files differ on
#    lsm for good reasons (plans without index-only scans, row order, ctid
#    values, physical sizes), so it fails only when a backend crashed or the
#    postmaster logged a PANIC; the diffs are left for reading. On lsm it runs
#    on heap tables too, and the tests that differ only on lsm are listed
#    apart (a source tree of another minor release than the server's makes a
#    few differ on both);
#  * the isolation suite (src/test/isolation: EvalPlanQual, row locks,
#    MultiXacts, foreign keys, partitions, SSI, ...): every spec must give
#    heap's expected output, except the ones listed in ISOLATION_DIFFERS, whose
#    expected files name physical positions (see there);
#  * contrib/test_decoding's regression and isolation tests (logical
#    decoding: TOAST, streaming, two-phase, spilling, ...), with strata
#    preloaded: on lsm they must fail nowhere heap does not fail too (run on
#    both; with another minor release's expected files a test or two can
#    differ on both).
#
# PostgreSQL 15's sources come from Debian's source package when PGSRC is not
# given (fetched once, scripts/lib.sh: ensure_pg15_source); `make test` runs
# this on PostgreSQL 15.
# Usage: tests/pg_suite.sh 15|18 [PGSRC] [lsm|heap]
source "$(dirname "$0")/../scripts/lib.sh"
VER="${1:?usage: tests/pg_suite.sh 15|18 [PGSRC] [lsm|heap]}"
SRC="${2:-}"
AM="${3:-lsm}"
if [ -z "$SRC" ]; then
    [ "$VER" = 15 ] || die "give PostgreSQL $VER's source tree (only 15's comes from Debian)"
    SRC="$(ensure_pg15_source)"
fi
HOME_DIR="$(pg_home "$VER")"
PGXS="$("$HOME_DIR/bin/pg_config" --pkglibdir)/pgxs"
WORK="/tmp/strata-pgsuite-$VER-$AM"
ISO="/tmp/strata-pgsuite-isolation-$VER-$AM"
[ -f "$SRC/src/test/regress/regress.c" ] || die "no src/test/regress/regress.c under $SRC"

# Isolation specs whose expected output differs on lsm by design, not by
# behaviour: eval-plan-qual updates rows `WHERE ctid = '(0,1)'` (on lsm block
# 0 is the metapage, so rows start at (1,1)); vacuum-no-cleanup-lock prints
# pg_class.relpages (lsm counts its metapage, L0 directory and run pages).
# Everything else in them is covered by specs in tests/isolation.
ISOLATION_DIFFERS="eval-plan-qual vacuum-no-cleanup-lock"

# "ok 12 - name" / "not ok 12 - name" (PostgreSQL 16 and later) or
# "test name ... ok" / "name ... FAILED" (15)
passed_count() { grep -cE '^ok |[.][.][.] ok ' "$1" 2>/dev/null || true; }
failed_names() {
    sed -nE 's/^not ok +[0-9]+ +- +([^ ]+).*/\1/p; s/^(test )? *([^ ]+) +[.][.][.] FAILED.*/\2/p' "$1" 2>/dev/null
}
crashed() {
    if grep -q "terminated by signal\|PANIC" "$1"; then
        grep -n "terminated by signal\|PANIC" "$1" | head
        return 0
    fi
    return 1
}

# The regression suite in $2 with $1 (heap|lsm) tables: its own copy of the
# suite, regress.so and contrib/spi's refint.so and autoinc.so (the triggers
# test loads them) built against this PostgreSQL. Prints the failed tests.
regress_failures() {
    local am="$1" dir="$2" c
    as_root rm -rf "$dir"
    cp -r "$SRC/src/test/regress" "$dir"
    for c in "$SRC/src/test/regress/regress.c" "$SRC/contrib/spi/refint.c" "$SRC/contrib/spi/autoinc.c"; do
        clang -O1 -shared -fPIC -w -I"$("$HOME_DIR/bin/pg_config" --includedir-server)" \
            -I"$("$HOME_DIR/bin/pg_config" --includedir)" "$c" -o "$dir/$(basename "$c" .c).so"
    done
    # lsm tables refuse publications: the publication tests would leave a FOR ALL
    # TABLES publication behind and every later UPDATE would fail
    sed 's/ publication / /; s/ subscription / /' "$dir/parallel_schedule" > "$dir/strata_schedule"
    printf 'default_table_access_method = %s\nmax_connections = 40\n' "$am" > "$dir/strata.conf"
    as_root chown -R postgres: "$dir"
    (cd "$dir" && as_pg "$PGXS/src/test/regress/pg_regress" \
        --temp-instance="$dir/instance" --temp-config="$dir/strata.conf" \
        --bindir="$HOME_DIR/bin" --inputdir="$dir" --outputdir="$dir" --dlpath="$dir" \
        --load-extension=strata --schedule="$dir/strata_schedule" --max-connections=20) >"$dir/run.log" 2>&1 || true
    crashed "$dir/log/postmaster.log" >&2 &&
        die "a backend crashed during PostgreSQL's regression suite (log: $dir/log/postmaster.log)"
    [ "$(passed_count "$dir/run.log")" -gt 0 ] || { tail -n 20 "$dir/run.log" >&2; die "the regression suite did not run (see $dir)"; }
    failed_names "$dir/run.log"
}

as_root rm -rf "$ISO"
log "PostgreSQL's regression suite on PostgreSQL $VER with $AM tables"
am_failed=$(regress_failures "$AM" "$WORK")
summary="$(passed_count "$WORK/run.log") tests match the expected output"
if [ "$AM" = lsm ]; then
    # the same suite on heap tables: what differs there too is not lsm's
    # (another minor release's expected files, the machine)
    log "the regression suite again with heap tables, for the tests that differ on both"
    heap_failed=" $(regress_failures heap "$WORK-heap" | tr '\n' ' ') "
    both=() only=()
    for t in $am_failed; do
        case "$heap_failed" in *" $t "*) both+=("$t") ;; *) only+=("$t") ;; esac
    done
    printf '%s\n' "${only[@]}" > "$WORK/lsm-only.txt"
    summary+="; ${#only[@]} differ only on lsm (listed in $WORK/lsm-only.txt: plans without index-only scans, ctid values, physical sizes, ...); ${#both[@]} on heap too: ${both[*]:-none}"
fi
log "regression suite: no crash; $summary; diffs in $WORK/regression.diffs"

mkdir -p "$ISO"
cp -r "$SRC/src/test/isolation/specs" "$SRC/src/test/isolation/expected" \
    "$SRC/src/test/isolation/isolation_schedule" "$ISO/"
cat > "$ISO/strata.conf" <<CONF
default_table_access_method = $AM
max_connections = 40
max_prepared_transactions = 10
shared_preload_libraries = 'strata'
CONF
as_root chown -R postgres: "$ISO"
log "PostgreSQL's isolation suite on PostgreSQL $VER with $AM tables"
(cd "$ISO" && as_pg "$PGXS/src/test/isolation/pg_isolation_regress" \
    --temp-instance="$ISO/instance" --temp-config="$ISO/strata.conf" \
    --bindir="$HOME_DIR/bin" --inputdir="$ISO" --outputdir="$ISO" \
    --load-extension=strata --schedule="$ISO/isolation_schedule") >"$ISO/run.log" 2>&1 || true
crashed "$ISO/log/postmaster.log" &&
    die "a backend crashed during PostgreSQL's isolation suite (log: $ISO/log/postmaster.log)"
[ "$(passed_count "$ISO/run.log")" -gt 0 ] || { tail -n 20 "$ISO/run.log"; die "the isolation suite did not run (see $ISO)"; }
unexpected=()
for spec in $(failed_names "$ISO/run.log"); do
    case " $ISOLATION_DIFFERS " in
        *" $spec "*) [ "$AM" = lsm ] || unexpected+=("$spec") ;;
        *) unexpected+=("$spec") ;;
    esac
done
if [ ${#unexpected[@]} -gt 0 ]; then
    [ -f "$ISO/regression.diffs" ] && cat "$ISO/regression.diffs"
    die "PostgreSQL's isolation specs differ from heap's output on $AM: ${unexpected[*]} (results in $ISO)"
fi
log "isolation suite: $(passed_count "$ISO/run.log") specs give heap's output (by design not: $ISOLATION_DIFFERS)"

# The words of a Makefile's `NAME = ...` list, continuation lines included.
make_list() {
    sed -n "/^$1 = /,/[^\\]\$/p" "$2" | sed "s/^$1 = //; s/\\\\//g" | tr -s ' \n\t' ' '
}

# contrib/test_decoding on $1 (heap|lsm) tables: prints the tests that failed
test_decoding_failures() {
    local am="$1" dir="/tmp/strata-pgsuite-decoding-$VER-$1" td="$SRC/contrib/test_decoding"
    as_root rm -rf "$dir"
    mkdir -p "$dir"
    cp -r "$td/sql" "$td/expected" "$td/specs" "$dir/"
    { cat "$td/logical.conf"; printf "default_table_access_method = %s\nshared_preload_libraries = 'strata'\n" "$am"; } \
        > "$dir/decoding.conf"
    as_root chown -R postgres: "$dir"
    local regress isolation
    regress=$(make_list REGRESS "$td/Makefile")
    isolation=$(make_list ISOLATION "$td/Makefile")
    # shellcheck disable=SC2086 # the Makefile's lists of test names
    (cd "$dir" && as_pg "$PGXS/src/test/regress/pg_regress" --temp-instance="$dir/instance" \
        --temp-config="$dir/decoding.conf" --bindir="$HOME_DIR/bin" --inputdir="$dir" \
        --outputdir="$dir" --load-extension=strata $regress) >"$dir/regress.log" 2>&1 || true
    # shellcheck disable=SC2086
    (cd "$dir" && as_pg "$PGXS/src/test/isolation/pg_isolation_regress" --temp-instance="$dir/instance2" \
        --temp-config="$dir/decoding.conf" --bindir="$HOME_DIR/bin" --inputdir="$dir" \
        --outputdir="$dir/isolation" --load-extension=strata $isolation) >"$dir/isolation.log" 2>&1 || true
    crashed "$dir/log/postmaster.log" && die "a backend crashed in test_decoding's tests ($dir)"
    crashed "$dir/isolation/log/postmaster.log" && die "a backend crashed in test_decoding's tests ($dir)"
    [ "$(passed_count "$dir/regress.log")" -gt 0 ] && [ "$(passed_count "$dir/isolation.log")" -gt 0 ] ||
        die "test_decoding's tests did not run (see $dir)"
    failed_names "$dir/regress.log"
    failed_names "$dir/isolation.log"
}

if [ -f "$SRC/contrib/test_decoding/Makefile" ]; then
    log "contrib/test_decoding's tests on PostgreSQL $VER with heap, then $AM tables"
    heap_failed=" $(test_decoding_failures heap | tr '\n' ' ') "
    am_failed=$(test_decoding_failures "$AM")
    unexpected=()
    for t in $am_failed; do
        case "$heap_failed" in *" $t "*) ;; *) unexpected+=("$t") ;; esac
    done
    if [ ${#unexpected[@]} -gt 0 ]; then
        cat "/tmp/strata-pgsuite-decoding-$VER-$AM/regression.diffs" 2>/dev/null || true
        die "test_decoding differs from heap's on $AM: ${unexpected[*]} (see /tmp/strata-pgsuite-decoding-$VER-$AM)"
    fi
    log "test_decoding: $AM fails nothing heap passes (both fail:${heap_failed% })"
fi
