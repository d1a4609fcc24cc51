#!/usr/bin/env bash
# `make stop`: stops the cluster `make run` started. Idempotent.
source "$(dirname "$0")/lib.sh"
DATA="${STRATA_DATA:-/var/lib/strata/pg18}"
if [ -f "$DATA/postmaster.pid" ]; then
    as_pg "$PG18_HOME/bin/pg_ctl" -D "$DATA" -m fast -w stop || clear_stale_pid "$DATA"
fi
log "stopped"
