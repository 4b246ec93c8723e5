#!/usr/bin/env bash
# The container image: built from the repository's Dockerfile and checked running when a Docker
# daemon answers. Without a daemon it says so and stops: the image's entrypoint (its non-root
# user, `serve --listen 0.0.0.0:4510`, the banner's warning, the health check) is tested without
# Docker by cli/tests/container.rs, which `cargo test` runs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
  echo "container: NO DOCKER DAEMON here ('docker info' fails): the image was NOT built;" \
    "its entrypoint was tested without Docker (cli/tests/container.rs)"
  exit 0
fi

tag="rehearsal:test-$$"
token="container-check-token"
docker build --tag "$tag" .
cid=$(docker run --detach --publish 127.0.0.1::4510 --env REHEARSAL_CONTROL_TOKEN="$token" "$tag")
cleanup() {
  docker rm --force "$cid" >/dev/null 2>&1 || true
  docker rmi "$tag" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# The banner, with its warning that the server listens beyond loopback (bounded wait).
timeout 60 bash -c "docker logs --follow '$cid' 2>&1 | grep --quiet --max-count=1 'beyond loopback'"
port=$(docker port "$cid" 4510/tcp | head -n 1 | sed 's/.*://')
base="http://127.0.0.1:$port"

uid=$(docker exec "$cid" id -u)
[ "$uid" != 0 ] || { echo "container: runs as root" >&2; exit 1; }

status=$(curl --silent --output /dev/null --write-out '%{http_code}' "$base/v1/Conversations")
[ "$status" = 401 ] || { echo "container: unauthenticated REST answered $status, not 401" >&2; exit 1; }
status=$(curl --silent --output /dev/null --write-out '%{http_code}' \
  -u AC72656865617273616c00000000000001:rehearsal-auth-token "$base/v1/Conversations")
[ "$status" = 200 ] || { echo "container: the default seed's REST answered $status" >&2; exit 1; }
status=$(curl --silent --output /dev/null --write-out '%{http_code}' \
  -H "Authorization: Bearer $token" "$base/_rehearsal/v1/tenants")
[ "$status" = 200 ] || { echo "container: the control plane answered $status with its token" >&2; exit 1; }

# Docker's own verdict from the image's HEALTHCHECK (10 s interval; bounded wait).
timeout 90 bash -c "until [ \"\$(docker inspect --format '{{.State.Health.Status}}' '$cid')\" = healthy ]; do sleep 1; done"

echo "container: image built and checked ($tag, uid $uid, port $port)"
