#!/usr/bin/env bash
# The pure core crates (crates/strata-*): their unit tests and clippy with
# -D warnings, built by plain cargo with no PostgreSQL on the machine.
#
# What "no PostgreSQL" means here is checked, not assumed:
#   * `cargo tree` of each core crate has no pgrx crate in it;
#   * as root (and where `unshare` may make a mount namespace), the tests
#     run with every PostgreSQL install on this machine hidden behind empty
#     mounts — Debian's /usr/lib/postgresql and /usr/include/postgresql, the
#     PG18 wheel under /opt/strata, pgrx's ~/.pgrx — and /dev/null over
#     every pg_config on PATH, so neither headers nor a pg_config can be
#     reached (checked inside). Elsewhere they run as they are.
# Idempotent; fine as root.
source "$(dirname "$0")/lib.sh"
cd "$STRATA_ROOT"

CORE=(strata-base strata-lsm-core strata-vector-core strata-hnsw-core)
pkgs=()
for c in "${CORE[@]}"; do
    pkgs+=(-p "$c")
    if cargo tree -p "$c" -e normal,build --prefix none | grep -q '^pgrx'; then
        die "$c depends on pgrx (cargo tree -p $c): the core crates must not"
    fi
done
log "core crates without pgrx: ${CORE[*]}"

hidden=(/usr/lib/postgresql /usr/include/postgresql /opt/strata "${HOME:-/root}/.pgrx")
run_hidden() {
    local mounts="" d
    for d in "${hidden[@]}"; do
        if [ -d "$d" ]; then mounts+="mount -t tmpfs none '$d' && "; fi
    done
    for d in $(type -ap pg_config pg_config.libpq-dev); do
        mounts+="mount --bind /dev/null '$d' && "
    done
    unshare --mount --propagation private bash -c "${mounts} $(printf '%q ' "$@")"
}

if [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then
    log "cargo test ${pkgs[*]} (PostgreSQL hidden: ${hidden[*]})"
    run_hidden bash -c '! command -v pg_config >/dev/null || ! pg_config --version >/dev/null 2>&1' ||
        die "a pg_config still runs inside the namespace"
    # its own target directory: on a fresh clone everything is built in here
    CARGO_TARGET_DIR="$STRATA_ROOT/target/core-hidden" run_hidden cargo test "${pkgs[@]}" --release
else
    log "cargo test ${pkgs[*]}"
    cargo test "${pkgs[@]}" --release
fi

if command -v cargo-clippy >/dev/null || rustup component add clippy; then
    log "cargo clippy ${pkgs[*]} -- -D warnings"
    cargo clippy "${pkgs[@]}" --all-targets -- -D warnings
else
    log "clippy is not installed and rustup could not add it: core lints skipped"
fi
