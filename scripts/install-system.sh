#!/usr/bin/env bash
# Installs the system packages the project runs on, from Debian's packages, when they are missing:
# redis-server, a Java 17 runtime and Maven (for the Kafka broker), Chromium (the portal's browser tests drive it
# with playwright-core). Node.js 20+ and npm must be present.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "install-system.sh: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || { echo "install-system.sh: Node.js 20 or newer is required" >&2; exit 1; }
node -e 'if (+process.versions.node.split(".")[0] < 20) { console.error("install-system.sh: Node.js 20 or newer is required, found " + process.version); process.exit(1) }'
