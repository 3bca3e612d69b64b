#!/usr/bin/env bash
# A redis-server of the project's own: own port, own data dir, AOF on (appendfsync everysec), never evicting.
#
#   scripts/redis.sh start DIR [PORT]   start (or restart, keeping port and data) a server in DIR; prints its URL
#   scripts/redis.sh stop DIR           stop it (SHUTDOWN, which writes the AOF out)
#   scripts/redis.sh kill9 DIR          kill it hard, as a crash would
#   scripts/redis.sh url DIR            print redis://127.0.0.1:PORT of the server in DIR
#
# A Redis Cluster of 3 masters and 3 replicas (one per master), each node in DIR/n1..DIR/n6 with the same settings
# and cluster-node-timeout REDIS_CLUSTER_NODE_TIMEOUT (default 3000 ms: a dead master's replica takes over
# within a few seconds):
#   scripts/redis.sh start-cluster DIR       start (or restart, keeping ports, nodes.conf and data) the cluster;
#                                            waits for cluster_state:ok on every node and every replica in sync,
#                                            then prints the seed list 127.0.0.1:P1,...,127.0.0.1:P6
#   scripts/redis.sh seeds DIR               print that seed list
#   scripts/redis.sh stop DIR                stop every node (SHUTDOWN)
#   scripts/redis.sh kill9-node DIR NODE     kill one node hard (NODE: its port, or n1..n6)
#   scripts/redis.sh start-node DIR NODE     start it again (same port, nodes.conf and data) and wait as above
#
# redis-server comes from Debian's packages; scripts/install-system.sh installs it when it is missing.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_NODES="n1 n2 n3 n4 n5 n6"
REDIS_CLUSTER_NODE_TIMEOUT=${REDIS_CLUSTER_NODE_TIMEOUT:-3000}
die() { echo "redis.sh: $*" >&2; exit 1; }

url() { echo "redis://127.0.0.1:$(cat "$1/port")"; }
running() { [ -f "$1/redis.pid" ] && kill -0 "$(cat "$1/redis.pid")" 2>/dev/null; }

start() {
  local dir port
  command -v redis-server >/dev/null || die "redis-server not found: run scripts/install-system.sh (apt-get install redis-server)"
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  is_cluster "$dir" && die "$dir holds a cluster: use start-cluster"
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
  if is_cluster "$dir"; then stop_cluster "$dir"; return 0; fi
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

# --- Redis Cluster ---------------------------------------------------------------------------------------------

is_cluster() { [ -f "$1/n1/redis.conf" ]; }

seeds() {
  local dir=$1 n out=""
  is_cluster "$dir" || die "no cluster in $dir"
  for n in $CLUSTER_NODES; do out="$out${out:+,}127.0.0.1:$(cat "$dir/$n/port")"; done
  echo "$out"
}

configure_cluster() { # DIR: ports (a client port and a cluster bus port per node) and one redis.conf per node
  local dir=$1 n i=0 ports
  mapfile -t ports < <(node "$ROOT/scripts/free-port.mjs" 12)
  for n in $CLUSTER_NODES; do
    mkdir -p "$dir/$n"
    echo "${ports[$i]}" > "$dir/$n/port"
    cat > "$dir/$n/redis.conf" <<CONF
bind 127.0.0.1
protected-mode yes
port ${ports[$i]}
cluster-port ${ports[$((i + 6))]}
dir $dir/$n
daemonize yes
pidfile $dir/$n/redis.pid
logfile $dir/$n/redis.log
appendonly yes
appendfsync everysec
save ""
maxmemory-policy noeviction
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout $REDIS_CLUSTER_NODE_TIMEOUT
repl-diskless-sync-delay 0
CONF
    i=$((i + 1))
  done
}

node_dir() { # DIR NODE -> the node's directory (NODE: n1..n6 or its port)
  local dir=$1 node=$2 n
  for n in $CLUSTER_NODES; do
    if [ "$node" = "$n" ] || [ "$node" = "$(cat "$dir/$n/port")" ]; then echo "$dir/$n"; return 0; fi
  done
  die "no node $node in $dir (a port of $(seeds "$dir"), or n1..n6)"
}

start_node_process() { # NODEDIR: start it unless it runs, wait until it answers
  local nd=$1 port
  running "$nd" && return 0
  port=$(cat "$nd/port")
  redis-server "$nd/redis.conf" >/dev/null
  for _ in $(seq 1 200); do
    if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then return 0; fi
    sleep 0.05
  done
  tail -n 20 "$nd/redis.log" >&2 || true
  die "redis-server in $nd did not answer"
}

cluster_healthy() { # DIR: every node says cluster_state:ok and sees no failed node, every replica is in sync
  local dir=$1 n port info
  for n in $CLUSTER_NODES; do
    port=$(cat "$dir/$n/port")
    redis-cli -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    redis-cli -p "$port" cluster nodes 2>/dev/null | awk '$3 ~ /fail|handshake|noaddr/ { bad = 1 } END { exit bad }' || return 1
    info=$(redis-cli -p "$port" info replication 2>/dev/null) || return 1
    if grep -q '^role:slave' <<<"$info"; then
      grep -q '^master_link_status:up' <<<"$info" || return 1
      grep -q '^master_sync_in_progress:0' <<<"$info" || return 1
    fi
  done
  [ "$(redis-cli -p "$(cat "$dir/n1/port")" cluster nodes | awk '$3 ~ /master/' | wc -l)" = 3 ] || return 1
}

wait_cluster() { # DIR
  local dir=$1
  for _ in $(seq 1 600); do cluster_healthy "$dir" && return 0; sleep 0.1; done
  for n in $CLUSTER_NODES; do redis-cli -p "$(cat "$dir/$n/port")" cluster info 2>/dev/null | grep cluster_state >&2 || true; done
  die "the cluster in $dir did not reach cluster_state:ok with every replica in sync"
}

start_cluster() { # DIR
  local dir n hosts=""
  command -v redis-server >/dev/null || die "redis-server not found: run scripts/install-system.sh (apt-get install redis-server)"
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  [ -f "$dir/port" ] && die "$dir holds a single server, not a cluster"
  is_cluster "$dir" || configure_cluster "$dir"
  for n in $CLUSTER_NODES; do start_node_process "$dir/$n"; done
  if [ ! -f "$dir/created" ]; then
    for n in $CLUSTER_NODES; do hosts="$hosts 127.0.0.1:$(cat "$dir/$n/port")"; done
    # shellcheck disable=SC2086
    redis-cli --cluster create $hosts --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 \
      || { cat "$dir/create.log" >&2; die "creating the cluster in $dir failed"; }
    touch "$dir/created"
  fi
  wait_cluster "$dir"
  seeds "$dir"
}

stop_cluster() { # DIR: SHUTDOWN every node at once (so no replica starts a failover meanwhile), then wait
  local dir=$1 n
  for n in $CLUSTER_NODES; do
    running "$dir/$n" && { redis-cli -p "$(cat "$dir/$n/port")" shutdown >/dev/null 2>&1 || kill -TERM "$(cat "$dir/$n/redis.pid")" 2>/dev/null || true; } &
  done
  wait
  for n in $CLUSTER_NODES; do
    for _ in $(seq 1 300); do running "$dir/$n" || break; sleep 0.05; done
    rm -f "$dir/$n/redis.pid"
  done
}

kill9_node() { # DIR NODE
  local nd
  nd=$(node_dir "$1" "$2")
  kill9 "$nd"
}

start_node() { # DIR NODE
  local dir nd
  dir=$(cd "$1" && pwd)
  nd=$(node_dir "$dir" "$2")
  start_node_process "$nd"
  wait_cluster "$dir"
}

cmd=${1:-}; shift || true
case "$cmd" in
  start) [ $# -ge 1 ] || die "usage: redis.sh start DIR [PORT]"; start "$@" ;;
  stop) [ $# -ge 1 ] || die "usage: redis.sh stop DIR"; stop "$1" ;;
  kill9) [ $# -ge 1 ] || die "usage: redis.sh kill9 DIR"; kill9 "$1" ;;
  url) [ $# -ge 1 ] || die "usage: redis.sh url DIR"; url "$1" ;;
  start-cluster) [ $# -ge 1 ] || die "usage: redis.sh start-cluster DIR"; start_cluster "$1" ;;
  seeds) [ $# -ge 1 ] || die "usage: redis.sh seeds DIR"; seeds "$1" ;;
  kill9-node) [ $# -ge 2 ] || die "usage: redis.sh kill9-node DIR NODE"; kill9_node "$1" "$2" ;;
  start-node) [ $# -ge 2 ] || die "usage: redis.sh start-node DIR NODE"; start_node "$1" "$2" ;;
  *) die "usage: redis.sh start DIR [PORT] | stop DIR | kill9 DIR | url DIR | start-cluster DIR | seeds DIR | kill9-node DIR NODE | start-node DIR NODE" ;;
esac
