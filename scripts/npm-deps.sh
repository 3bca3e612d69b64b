#!/usr/bin/env bash
# Installs the npm packages (npm ci) when node_modules is missing or package-lock.json changed since they were
# installed. A node_modules that is a symbolic link (shared with another checkout) is left as it is: npm ci
# would empty the directory it points to, under the other checkout's feet.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -L node_modules ]; then
  [ -d node_modules/ ] || { echo "npm-deps: node_modules links to $(readlink node_modules), which is not there" >&2; exit 1; }
  exit 0
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund || exit 1
fi
