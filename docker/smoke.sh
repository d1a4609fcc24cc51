#!/usr/bin/env bash
# For users with Docker: build the image, start it, run the SQL smoke test, stop it.
# Usage: docker/smoke.sh [image-tag]
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${1:-strata:dev}"
NAME="strata-smoke-$$"
docker build -t "$TAG" .
docker run -d --name "$NAME" -e POSTGRES_PASSWORD=strata "$TAG" >/dev/null
trap 'docker rm -f "$NAME" >/dev/null' EXIT
for _ in $(seq 60); do
    docker exec "$NAME" pg_isready -U postgres -q && break
    sleep 1
done
out=$(docker exec -i "$NAME" psql -X -q -A -t -v ON_ERROR_STOP=1 -U postgres < docker/smoke.sql)
diff -u docker/smoke.expected <(echo "$out")
echo "docker smoke test passed ($TAG)"
