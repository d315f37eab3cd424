# Sourced by deploy/redis/start.sh and deploy/minio/init.sh from one folder up, in the repository
# and in their containers (compose.yaml mounts it at /etc/rdt/secret.sh): the checks every secret
# taken from .env passes before it is used. The caller defines fail(), which prints its message
# and exits.

# env_secret NAME [WHY]: prints the value of the variable NAME. Fails when it is unset, still the
# .env.example placeholder, or holds a character outside [A-Za-z0-9._~-]: these values go into
# URLs (REDIS_URL, MinIO's MC_HOST_*) unencoded. WHY, if given, is added to that last message.
env_secret() {
  eval "secret_value=\${$1:-}"
  [ -n "$secret_value" ] || fail "$1 is not set (see .env.example)"
  case $secret_value in
    change-me*) fail "$1 is still the .env.example placeholder: set a real secret in .env" ;;
  esac
  case $secret_value in
    *[!A-Za-z0-9._~-]*) fail "$1 may only use A-Z a-z 0-9 . _ ~ -${2:+ ($2)}" ;;
  esac
  printf '%s' "$secret_value"
}
