#!/usr/bin/env bash
# pioneer-consumer as one executable that needs no Node.js on the machine it runs on: Node's single-executable
# application (SEA). The CLI's TypeScript is bundled into one CommonJS script (esbuild), Node turns it into a
# blob (--experimental-sea-config), and the blob is injected (postject) into a copy of the node binary running
# this script. The executable runs on the platform and C library of that binary: linux-x64, glibc.
#
#   consumer-sdk/scripts/build-binary.sh [OUT_DIR]   writes OUT_DIR/pioneer-consumer (default consumer-sdk/dist-bin)
#
# Needs the repository's devDependencies (npm ci): esbuild and postject, both from the npm registry.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/consumer-sdk/dist-bin}" && cd "${1:-$ROOT/consumer-sdk/dist-bin}" && pwd)
NODE=$(command -v node)
BIN="$ROOT/node_modules/.bin"
# the fuse Node looks for to know a blob was injected (a fixed string of Node's, see its doc on SEA)
FUSE=NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) echo "build-binary: builds for linux-x64 only, this is $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
for tool in esbuild postject; do
  [ -x "$BIN/$tool" ] || { echo "build-binary: $BIN/$tool is missing: run npm ci in the repository" >&2; exit 1; }
done

# a node built as a shared library (Debian's nodejs package: libnode.so) would make an executable that needs it
if [ "$("$NODE" -p 'process.config.variables.node_shared === true')" = true ]; then
  echo "build-binary: $NODE is linked against libnode; build with the official Node.js 20 binary (as the node images have)" >&2; exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One CommonJS file: the SEA's main script can require Node's built-in modules only, and is not an ES module.
# The shebang is dropped: the script is not run by a shell. The bundle keeps names readable for stack traces.
# Any warning fails the build: in CommonJS an import.meta is empty, a missing tsconfig changes class fields.
"$BIN/esbuild" "$ROOT/consumer-sdk/src/cli.ts" --bundle --platform=node --format=cjs --target=node20 \
  --log-level=warning --legal-comments=none --outfile="$work/pioneer-consumer.cjs" 2>"$work/esbuild.log" || true
if [ -s "$work/esbuild.log" ] || [ ! -s "$work/pioneer-consumer.cjs" ]; then
  cat "$work/esbuild.log" >&2; echo "build-binary: esbuild did not bundle the CLI cleanly" >&2; exit 1
fi
sed -i '1{/^#!/d}' "$work/pioneer-consumer.cjs"

# No experimental-feature warning in users' logs. No code cache either: V8 rejects it, with a warning on stderr,
# as soon as NODE_OPTIONS changes a heap flag (the memory caps the README suggests); it would only shorten the start.
cat > "$work/sea-config.json" <<EOF
{
  "main": "$work/pioneer-consumer.cjs",
  "output": "$work/sea-prep.blob",
  "disableExperimentalSEAWarning": true,
  "useCodeCache": false
}
EOF
quiet() { "$@" >"$work/step.log" 2>&1 || { cat "$work/step.log" >&2; return 1; }; }   # output only when it fails
quiet "$NODE" --experimental-sea-config "$work/sea-config.json"

cp "$NODE" "$work/pioneer-consumer"
chmod u+w "$work/pioneer-consumer"
# (postject warns about each of node's note sections it cannot name: noise, unless the injection fails)
quiet "$BIN/postject" "$work/pioneer-consumer" NODE_SEA_BLOB "$work/sea-prep.blob" --sentinel-fuse "$FUSE"
chmod 0755 "$work/pioneer-consumer"
mv "$work/pioneer-consumer" "$OUT/pioneer-consumer"
cp "$work/pioneer-consumer.cjs" "$OUT/pioneer-consumer.cjs"   # the bundle, for reading a stack trace
echo "build-binary: $OUT/pioneer-consumer ($(( $(stat -c %s "$OUT/pioneer-consumer") / 1048576 )) MiB, node $("$NODE" --version))"
