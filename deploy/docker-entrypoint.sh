#!/bin/sh
# Container entrypoint of every Pioneer function (Dockerfile).
#
# OpenFaaS mounts each secret of a function as a file in /var/openfaas/secrets/<name>; the functions read their
# configuration from the environment only (platform/config/env.ts). So a secret file named pioneer-<name> becomes
# the variable PIONEER_<NAME> (dashes to underscores, upper case): pioneer-redis-url -> PIONEER_REDIS_URL. A
# variable already set in the environment wins. Knative passes secrets as variables (secretKeyRef) and has no
# such directory, so there this only starts the function.
#
# Then it runs the function named by PIONEER_FUNCTION, or by the first argument, on $PORT (8080 by default).
set -eu

secrets_dir=/var/openfaas/secrets
if [ -d "$secrets_dir" ]; then
  for file in "$secrets_dir"/pioneer-*; do
    [ -f "$file" ] || continue
    base=$(basename "$file")
    case "$base" in
      *[!a-z0-9-]*) echo "pioneer: ignoring secret $base: expected lower-case letters, digits and dashes" >&2; continue ;;
    esac
    name=$(printf '%s' "$base" | tr 'a-z-' 'A-Z_')
    eval "already=\${$name+set}"
    if [ -z "$already" ]; then
      value=$(cat "$file")
      export "$name=$value"
    fi
  done
fi

exec node dist/adapters/knative/server.js "$@"
