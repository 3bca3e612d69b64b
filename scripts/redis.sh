#!/usr/bin/env bash
# A redis-server of the project's own: own port, own data dir, AOF on (appendfsync everysec), never evicting.
#
#   scripts/redis.sh start DIR [PORT]   start (or restart, keeping port and data) a server in DIR; prints its URL
#   scripts/redis.sh stop DIR           stop it (SHUTDOWN, which writes the AOF out)
#   scripts/redis.sh kill9 DIR          kill it hard, as a crash would
#   scripts/redis.sh url DIR            print redis://127.0.0.1:PORT of the server in DIR
#
# redis-server comes from Debian's packages; scripts/install-system.sh installs it when it is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
die() { echo "redis.sh: $*" >&2; exit 1; }

url() { echo "redis://127.0.0.1:$(cat "$1/port")"; }
running() { [ -f "$1/redis.pid" ] && kill -0 "$(cat "$1/redis.pid")" 2>/dev/null; }

start() {
  local dir port
  command -v redis-server >/dev/null || die "redis-server not found: run scripts/install-system.sh (apt-get install redis-server)"
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  if running "$dir"; then url "$dir"; return 0; fi
  [ -f "$dir/port" ] || echo "${2:-$(node "$ROOT/scripts/free-port.mjs")}" > "$dir/port"
  port=$(cat "$dir/port")
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --appendonly yes --appendfsync everysec --save "" \
    --maxmemory-policy noeviction --protected-mode yes >/dev/null
  for _ in $(seq 1 200); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then url "$dir"; return 0; fi
    sleep 0.05
  done
  tail -n 20 "$dir/redis.log" >&2 || true
  die "redis-server in $dir did not answer"
}

stop() {
  local dir=$1
  running "$dir" || return 0
  redis-cli -p "$(cat "$dir/port")" shutdown >/dev/null 2>&1 || kill -TERM "$(cat "$dir/redis.pid")" 2>/dev/null || true
  for _ in $(seq 1 100); do running "$dir" || break; sleep 0.05; done
  rm -f "$dir/redis.pid"
}

kill9() {
  local dir=$1 pid
  running "$dir" || return 0
  pid=$(cat "$dir/redis.pid")
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
  rm -f "$dir/redis.pid"
}

cmd=${1:-}; shift || true
case "$cmd" in
  start) [ $# -ge 1 ] || die "usage: redis.sh start DIR [PORT]"; start "$@" ;;
  stop) [ $# -ge 1 ] || die "usage: redis.sh stop DIR"; stop "$1" ;;
  kill9) [ $# -ge 1 ] || die "usage: redis.sh kill9 DIR"; kill9 "$1" ;;
  url) [ $# -ge 1 ] || die "usage: redis.sh url DIR"; url "$1" ;;
  *) die "usage: redis.sh start DIR [PORT] | stop DIR | kill9 DIR | url DIR" ;;
esac
