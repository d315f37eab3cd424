#!/usr/bin/env bash
# Validates the production files without a Docker engine (CI runs it from .ci/run; so can you):
#   1. compose.yaml (and the analysts' override) with the example env: Debian's docker-compose
#      `config -q`, installed here if it is missing;
#   2. compose.yaml must be refused without any one of the secrets (.env.example's change-me lines);
#   3. the rules the README promises: images pinned (never :latest), only caddy publishes ports,
#      the admin panel is closed to the internet by default,
#      the internal networks are internal, no app process holds a root credential, the gateway
#      has no MongoDB user and is not on the database network, only the deliveries worker has a
#      way out (the egress network);
#   4. the deploy shell scripts parse.
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "check-compose: $*" >&2
  exit 1
}

if ! command -v docker-compose >/dev/null 2>&1; then
  echo "check-compose: installing Debian's docker-compose"
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq docker-compose >/dev/null
fi
echo "check-compose: $(docker-compose version --short 2>/dev/null || docker-compose version | head -1)"

# Only the example env: nothing from the caller's environment may fill a gap in it.
compose() {
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" docker-compose --project-directory . "$@"
}

echo "check-compose: compose.yaml with .env.example"
compose --env-file .env.example -f compose.yaml config -q || fail "compose.yaml is invalid with .env.example"
compose --env-file .env.example -f compose.yaml --profile tools --profile per-queue config -q ||
  fail "compose.yaml's optional profiles (tools, per-queue) are invalid with .env.example"
echo "check-compose: compose.yaml + deploy/compose.analysts.yaml with .env.example"
compose --env-file .env.example -f compose.yaml -f deploy/compose.analysts.yaml config -q ||
  fail "deploy/compose.analysts.yaml is invalid on top of compose.yaml"

rendered=$(mktemp)
partial=$(mktemp)
trap 'rm -f "$rendered" "$partial"' EXIT

echo "check-compose: compose.yaml refuses to start without any one of the secrets"
secrets=$(sed -n 's/^\([A-Z0-9_]*\)=change-me$/\1/p' .env.example)
[ -n "$secrets" ] || fail ".env.example lists no secret (change-me)"
for var in $secrets; do
  grep -v "^$var=" .env.example > "$partial"
  if compose --env-file "$partial" -f compose.yaml config -q >/dev/null 2>&1; then
    fail "compose.yaml does not require $var"
  fi
done

echo "check-compose: pinned images, published ports, networks, credentials"
# Every service, including the optional profiles.
compose --env-file .env.example -f compose.yaml --profile tools --profile per-queue config > "$rendered"
python3 - "$rendered" <<'EOF' || fail "compose.yaml breaks a rule above"
import re, sys, yaml

doc = yaml.safe_load(open(sys.argv[1]))
services, networks = doc["services"], doc.get("networks", {})
errors = []

for name, svc in services.items():
    image = svc.get("image")
    if image is None and "build" not in svc:
        errors.append(f"{name}: neither image nor build")
    if image is not None:
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        if not re.search(r"\d", tag) or tag == "latest":
            errors.append(f"{name}: image {image} is not pinned to a version")
    if svc.get("ports") and name != "caddy":
        errors.append(f"{name}: publishes ports; only caddy may")
    env = svc.get("environment") or {}
    if name not in ("minio", "minio-init") and any(k.startswith("MINIO_ROOT") for k in env):
        errors.append(f"{name}: holds the MinIO root credentials")
    if name not in ("mongo", "mongo-init") and any(k.startswith("MONGO_ROOT") or k.startswith("MONGO_INITDB") for k in env):
        errors.append(f"{name}: holds the MongoDB root credentials")
    if "REDIS_URL" in env and not re.match(r"^redis://[a-z]+:[^@]+@", env["REDIS_URL"]):
        errors.append(f"{name}: REDIS_URL has no ACL user and password")

gateway = services["gateway"]
if "db" in (gateway.get("networks") or {}):
    errors.append("gateway: is on the database network")
if "@" in gateway["environment"].get("MONGODB_URL", ""):
    errors.append("gateway: has MongoDB credentials")
if str(gateway["environment"].get("TRUST_PROXY_HOPS")) != "1":
    errors.append("gateway: TRUST_PROXY_HOPS must be 1 behind caddy")
# The admin panel is not for the internet unless the operator names who may open it.
allow = str((services["caddy"].get("environment") or {}).get("ADMIN_ALLOW_FROM", "")).split()
if not allow or any(r in ("0.0.0.0/0", "::/0") for r in allow):
    errors.append("caddy: ADMIN_ALLOW_FROM lets the whole internet reach the admin panel by default")
# Outbound webhooks are the one way out for app data: only their worker is on `egress`.
for name, svc in services.items():
    if "egress" in (svc.get("networks") or {}) and name != "worker-deliveries":
        errors.append(f"{name}: is on the egress network (only worker-deliveries may be)")
if str(services["worker-deliveries"]["environment"].get("WORKER_QUEUES")) != "deliveries":
    errors.append("worker-deliveries: serves more than the deliveries queue")
for net in ("front", "back", "db"):
    if not (networks.get(net) or {}).get("internal"):
        errors.append(f"network {net} is not internal")

for line in open("deploy/minio/Dockerfile"):
    m = re.match(r"ARG (GO_IMAGE|RUNTIME_IMAGE)=(\S+)", line)
    if m and not re.search(r":\S*\d", m.group(2)):
        errors.append(f"deploy/minio/Dockerfile: {m.group(1)} {m.group(2)} is not pinned")

if errors:
    print("\n".join("  " + e for e in errors), file=sys.stderr)
    sys.exit(1)
EOF
grep -nE '^\s*(image:|FROM|ARG [A-Z_]*IMAGE=).*:latest\b' compose.yaml Dockerfile deploy/minio/Dockerfile deploy/compose.analysts.yaml &&
  fail ":latest is used"

echo "check-compose: deploy scripts parse"
for f in deploy/secret.sh deploy/redis/start.sh deploy/minio/init.sh deploy/mongo/start.sh; do
  sh -n "$f" || fail "$f does not parse"
done
bash -n deploy/check-compose.sh

echo "check-compose: ok"
