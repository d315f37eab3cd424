#!/bin/sh
# Redis's entry point in compose.yaml: writes the ACL file from deploy/redis/users.acl.in, then
# runs the rest of the command line (the image's docker-entrypoint.sh redis-server …).
#
#   REDIS_ACL_TEMPLATE  the template (default /etc/rdt/users.acl.in)
#   REDIS_ACL_FILE      where the ACL file goes; the command line must pass the same path to
#                       --aclfile (default /run/rdt/users.acl)
#   REDIS_PREFIX        key prefix of the processes (default {rdt}), as in their config
#   REDIS_GATEWAY_PASSWORD, REDIS_WORKER_PASSWORD, REDIS_ADMIN_PASSWORD
#
# Only SHA-256 hashes of the passwords are written. A password must be at least 16 characters of
# [A-Za-z0-9._~-], so that it fits in REDIS_URL without percent-encoding (`openssl rand -hex 32`).
set -eu

template=${REDIS_ACL_TEMPLATE:-/etc/rdt/users.acl.in}
out=${REDIS_ACL_FILE:-/run/rdt/users.acl}
prefix=${REDIS_PREFIX:-}
[ -n "$prefix" ] || prefix='{rdt}'

fail() {
  echo "redis start: $*" >&2
  exit 1
}

# The same rule as the processes' REDIS_PREFIX check (shared/config.ts); it also keeps ACL glob
# characters out of the key patterns.
case $prefix in
  *[!A-Za-z0-9{}_-]*) fail "REDIS_PREFIX must be 1-64 of [A-Za-z0-9{}_-], got \"$prefix\"" ;;
esac
[ ${#prefix} -le 64 ] || fail "REDIS_PREFIX is longer than 64 characters"
[ -r "$template" ] || fail "ACL template $template is missing"

# The other shards' prefixes (shared/redis-shards.ts): {rdt} -> {rdt:*}. A prefix that is not a
# hash tag cannot have shards (the processes refuse it), so its pattern is the prefix itself.
case $prefix in
  \{*\}) shards="${prefix%\}}:*}" ;;
  *) shards=$prefix ;;
esac

# env_secret NAME: the checked value of a secret (deploy/secret.sh).
. "$(dirname "$0")/../secret.sh"

hash_of() {
  value=$(env_secret "$1" "it goes into REDIS_URL unencoded") || exit 1
  [ ${#value} -ge 16 ] || fail "$1 must be at least 16 characters"
  printf '%s' "$value" | sha256sum | cut -d' ' -f1
}

gateway=$(hash_of REDIS_GATEWAY_PASSWORD)
worker=$(hash_of REDIS_WORKER_PASSWORD)
admin=$(hash_of REDIS_ADMIN_PASSWORD)

mkdir -p "$(dirname "$out")"
umask 077
# Comments and blank lines out: the ACL file holds only "user" lines.
grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$template" |
  sed -e "s|{{PREFIX}}|$prefix|g" \
      -e "s|{{SHARDS}}|$shards|g" \
      -e "s|{{REDIS_GATEWAY_PASSWORD}}|$gateway|g" \
      -e "s|{{REDIS_WORKER_PASSWORD}}|$worker|g" \
      -e "s|{{REDIS_ADMIN_PASSWORD}}|$admin|g" > "$out.tmp"
if grep -q '{{' "$out.tmp"; then
  rm -f "$out.tmp"
  fail "the ACL template has a placeholder this script does not fill"
fi
mv "$out.tmp" "$out"
# The image's entry point runs redis-server as the "redis" user.
if [ "$(id -u)" = 0 ] && id redis >/dev/null 2>&1; then
  chown redis "$(dirname "$out")" "$out"
fi

[ $# -gt 0 ] || fail "no command to run after writing $out"
exec "$@"
