#!/bin/sh
# MongoDB's entry point in compose.yaml. Access control on a replica set needs a key file for
# the members to authenticate each other; this one-member set never uses it, but mongod refuses
# to start without it. It is made once, in the config volume, and is no secret the operator keeps.
# Then the image's own entry point runs (it creates the root user on the first start and makes
# /data/configdb the mongodb user's).
set -eu
keyfile=/data/configdb/rdt-replica-set.key
if [ ! -s "$keyfile" ]; then
  umask 077
  # 756 random bytes as base64 (1008 characters; mongod takes 6 to 1024).
  head -c 756 /dev/urandom | base64 | tr -d '\n' > "$keyfile.tmp"
  mv "$keyfile.tmp" "$keyfile"
fi
chmod 400 "$keyfile"
exec docker-entrypoint.sh "$@"
