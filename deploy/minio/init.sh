#!/bin/sh
# The minio-init service of compose.yaml (image: the mc stage of deploy/minio/Dockerfile). Creates
# the bucket, one policy and one user per service, and leaves the bucket private. It runs on every
# `docker compose up` and every step is idempotent, so changing a secret in .env and running
# `docker compose up -d` again rotates it (then recreate the service that uses it).
#
#   gateway  s3:PutObject, s3:AbortMultipartUpload on <bucket>/media/* and <bucket>/pending/*
#            only (a photo's upload, where it stays, and its marker): it cannot read, list or
#            delete anything, not even its own uploads
#   worker   reads and writes the bucket (records uploads, sweeps unsettled ones, finishes photos
#            staged by the earlier layout, deletes expired ones)
#   admin    reads the bucket (the panel streams photos) and deletes objects (session delete,
#            workspace purge: uploads, their markers, earlier-layout objects); never writes
#
# It also owns the bucket's lifecycle configuration (replaced as a whole on every run): one rule,
# objects under staging/ expire MINIO_STAGING_EXPIRY_DAYS (default 30) after they were written.
# Only the earlier layout staged photos there (for a job to copy to their final key); the rule
# still cleans up any that nothing will finish after an upgrade, independently of the workers.
# Photos are now written once under media/, where they stay, so no rule may expire that prefix;
# unsettled uploads there are the workers' sweeper's (UPLOAD_EXPIRY_DAYS). README "Retention" has
# the reasoning; fewer than 7 days is refused.
#
# Only this job and the minio service hold the root credentials; no service key may change the
# lifecycle (deploy/minio/policies/).
set -eu

fail() {
  echo "minio-init: $*" >&2
  exit 1
}

# env_secret NAME: the checked value of a secret (deploy/secret.sh). The root pair goes into
# MC_HOST_rdt as a URL; the service pairs go into the processes' environment as they are. Both
# are kept to URL-safe characters.
. "$(dirname "$0")/../secret.sh"

endpoint=${MINIO_ENDPOINT:-http://minio:9000}
bucket=${S3_BUCKET:-rdt-media}
policies=${MINIO_POLICY_DIR:-/etc/rdt/minio-policies}
# The bucket the policies name. Only the local test stack (stack/minio-init.ts) sets it, to "*":
# there every test file uses a bucket of its own, and the rights per service stay the same.
policy_bucket=${MINIO_POLICY_BUCKET:-$bucket}
case $policy_bucket in
  *[!a-z0-9.*-]*) fail "MINIO_POLICY_BUCKET may only use a-z 0-9 . - *" ;;
esac
staging_expiry_days=${MINIO_STAGING_EXPIRY_DAYS:-30}
case $staging_expiry_days in
  '' | *[!0-9]*) fail "MINIO_STAGING_EXPIRY_DAYS must be a whole number of days" ;;
esac
[ "$staging_expiry_days" -ge 7 ] || fail "MINIO_STAGING_EXPIRY_DAYS must be at least 7 (a worker outage must not lose staged photos)"
root_user=$(env_secret MINIO_ROOT_USER)
root_password=$(env_secret MINIO_ROOT_PASSWORD)
case $endpoint in
  http://*) scheme=http ;;
  https://*) scheme=https ;;
  *) fail "MINIO_ENDPOINT must start with http:// or https://" ;;
esac
# mc reads an alias from MC_HOST_<alias>, so no credential is written to its config folder.
export MC_HOST_rdt="$scheme://$root_user:$root_password@${endpoint#*://}"

# Every value is checked before anything changes.
for svc in GATEWAY WORKER ADMIN; do
  key=$(env_secret "S3_${svc}_ACCESS_KEY")
  secret=$(env_secret "S3_${svc}_SECRET_KEY")
  [ ${#key} -ge 3 ] || fail "S3_${svc}_ACCESS_KEY must be at least 3 characters"
  [ ${#secret} -ge 8 ] && [ ${#secret} -le 40 ] || fail "S3_${svc}_SECRET_KEY must be 8 to 40 characters"
  [ "$key" != "$root_user" ] || fail "S3_${svc}_ACCESS_KEY must not be the root user"
  # They go to mc as arguments, which would read a leading "-" as an option.
  case "$key $secret" in
    -* | *" -"*) fail "S3_${svc}_ACCESS_KEY and S3_${svc}_SECRET_KEY must not start with -" ;;
  esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mc mb --ignore-existing "rdt/$bucket"
# Private: no anonymous access of any kind (media is patient data).
mc anonymous set private "rdt/$bucket" >/dev/null
# The whole lifecycle configuration, so a re-run never adds a second copy of the rule.
echo '{"Rules":[{"ID":"rdt-staging-expiry","Status":"Enabled","Filter":{"Prefix":"staging/"},"Expiration":{"Days":'"$staging_expiry_days"'}}]}' |
  mc ilm import "rdt/$bucket" >/dev/null
echo "minio-init: objects under staging/ expire after $staging_expiry_days days"

for svc in gateway worker admin; do
  upper=$(echo "$svc" | tr a-z A-Z)
  key=$(env_secret "S3_${upper}_ACCESS_KEY")
  secret=$(env_secret "S3_${upper}_SECRET_KEY")
  sed "s|@BUCKET@|$policy_bucket|g" "$policies/$svc.json" > "$work/$svc.json"
  # "create" replaces a policy of the same name, so an edited policy file takes effect here.
  mc admin policy create rdt "rdt-$svc" "$work/$svc.json" >/dev/null
  # "user add" on an existing user sets its secret.
  mc admin user add rdt "$key" "$secret" >/dev/null
  # Exactly this one policy: attach it unless it is there, detach anything else.
  attached=$(mc admin user info rdt "$key" --json | sed -n 's/.*"policyName": *"\([^"]*\)".*/\1/p')
  for p in $(echo "$attached" | tr ',' ' '); do
    [ "$p" = "rdt-$svc" ] || mc admin policy detach rdt "$p" --user "$key" >/dev/null
  done
  case ",$attached," in
    *",rdt-$svc,"*) ;;
    *) mc admin policy attach rdt "rdt-$svc" --user "$key" >/dev/null ;;
  esac
  echo "minio-init: user $key has policy rdt-$svc"
done
echo "minio-init: bucket $bucket ready"
