#!/usr/bin/env bash
# Apache Kafka in KRaft mode, run on this machine's JVM: one broker, or a cluster of three.
#
#   scripts/kafka.sh fetch              download the broker's jars from Maven Central (cached in .deps/)
#   scripts/kafka.sh start DIR [PORT]   format DIR (first time only) and start a broker there; prints its address
#   scripts/kafka.sh stop DIR           stop it cleanly (SIGTERM, then wait)
#   scripts/kafka.sh kill9 DIR          kill it hard, as a crash would
#   scripts/kafka.sh address DIR        print host:port of the broker in DIR
#
# Three brokers, each broker and controller (a 3-voter quorum), in DIR/b1..DIR/b3, replication factor 3 and
# min.insync.replicas 2 (for every topic, the offsets and the transaction state):
#   scripts/kafka.sh start-cluster DIR       format DIR (first time only) and start the brokers that are not
#                                            running; waits until all three serve, prints 127.0.0.1:P1,P2,P3
#   scripts/kafka.sh bootstrap DIR           print that list
#   scripts/kafka.sh stop DIR                stop every broker cleanly
#   scripts/kafka.sh kill9-broker DIR N      kill broker N (1-3) hard
#   scripts/kafka.sh start-broker DIR N      start it again and wait until every partition is fully replicated
#
# Environment: KAFKA_VERSION (default 3.9.1), KAFKA_HEAP (the JVM's -Xmx: default 512m for one broker, 384m for
# each broker of a cluster), KAFKA_PARTITIONS (default partitions of auto-created topics, 4).
# KAFKA_ADVERTISED_PORT (one broker, read when DIR is first started): the broker tells clients it is at
# 127.0.0.1:KAFKA_ADVERTISED_PORT (e.g. a TCP proxy in front of PORT, so that every connection of a client
# that bootstraps there goes through the proxy, not only the first). The broker then also listens on a second
# port of its own, advertised as itself, which it uses for itself and which `start` and `address` print: a
# client that bootstraps there reaches the broker around the proxy.
# KAFKA_SASL_PLAIN=USER:PASSWORD (one broker, read when DIR is first started): clients authenticate with SASL/PLAIN
# as USER on PORT; the broker then also listens without authentication on a port of its own, which it uses for
# itself and which `start` and `address` print (tests create topics and produce there).
# A DIR that was started before keeps its ports and data: starting it again is a restart.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_VERSION=${KAFKA_VERSION:-3.9.1}
KAFKA_PARTITIONS=${KAFKA_PARTITIONS:-4}
CLUSTER_BROKERS="1 2 3"
LIBS="$ROOT/.deps/kafka-$KAFKA_VERSION/libs"

die() { echo "kafka.sh: $*" >&2; exit 1; }

fetch() {
  if [ -f "$LIBS/.complete" ]; then return 0; fi
  command -v java >/dev/null || die "java not found: install a JDK 17 (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "mvn not found: install Maven (apt-get install maven)"
  echo "kafka.sh: fetching Apache Kafka $KAFKA_VERSION from Maven Central" >&2
  mvn -q -B -f "$ROOT/scripts/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS" >&2 \
    || die "Maven could not fetch Kafka $KAFKA_VERSION"
  touch "$LIBS/.complete"
}

java_cmd() { # DIR MAINCLASS ARGS...
  local dir=$1; shift
  java -Xms128m -Xmx"${KAFKA_HEAP:-512m}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$dir/log4j.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$LIBS/*" "$@"
}

address() { # the DIRECT listener when the broker has one (KAFKA_ADVERTISED_PORT, KAFKA_SASL_PLAIN), else PLAINTEXT
  local line
  line=$(sed -n 's/^advertised.listeners=//p' "$1/server.properties")
  case "$line" in *DIRECT://*) line=${line##*DIRECT://} ;; *) line=${line#PLAINTEXT://} ;; esac
  echo "${line%%,*}"
}

new_cluster_id() {
  # A base64url id may start with '-', which the format tool's argument parser takes for an option,
  # so draw again until it does not (Kafka's own Uuid.randomUuid does the same).
  node -e "const c=require('node:crypto');let id;do{id=c.randomBytes(16).toString('base64url')}while(id.startsWith('-'));console.log(id)"
}

format() { # DIR CLUSTER_ID
  java_cmd "$1" kafka.tools.StorageTool format -t "$2" -c "$1/server.properties" >"$1/logs/format.log" 2>&1 \
    || { cat "$1/logs/format.log" >&2; die "formatting $1 failed"; }
}

configure() { # DIR PORT
  local dir=$1 port=$2 cport
  cport=$(node "$ROOT/scripts/free-port.mjs")
  write_properties "$dir" 1 "$port" "$cport" "1@127.0.0.1:$cport" 1
  if [ -n "${KAFKA_ADVERTISED_PORT:-}" ]; then advertise "$dir" "$port" "$cport" "$KAFKA_ADVERTISED_PORT"; fi
  if [ -n "${KAFKA_SASL_PLAIN:-}" ]; then sasl_plain "$dir" "$port" "$cport" "$KAFKA_SASL_PLAIN"; fi
  format "$dir" "$(new_cluster_id)"
}

advertise() { # DIR PORT CONTROLLER_PORT ADVERTISED_PORT: PORT advertised as ADVERTISED_PORT, and a DIRECT listener
  local dir=$1 port=$2 cport=$3 adv=$4 dport
  dport=$(node "$ROOT/scripts/free-port.mjs")
  sed -i \
    -e "s|^listeners=.*|listeners=PLAINTEXT://127.0.0.1:$port,DIRECT://127.0.0.1:$dport,CONTROLLER://127.0.0.1:$cport|" \
    -e "s|^advertised.listeners=.*|advertised.listeners=PLAINTEXT://127.0.0.1:$adv,DIRECT://127.0.0.1:$dport|" \
    -e "s|^inter.broker.listener.name=.*|inter.broker.listener.name=DIRECT|" \
    -e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,DIRECT:PLAINTEXT|" \
    "$dir/server.properties"
}

sasl_plain() { # DIR PORT CONTROLLER_PORT USER:PASSWORD: SASL/PLAIN on PORT, and a DIRECT listener without it
  local dir=$1 port=$2 cport=$3 user=${4%%:*} password=${4#*:} dport
  [ "$user" != "$4" ] && [ -n "$user" ] && [ -n "$password" ] || die "KAFKA_SASL_PLAIN must be USER:PASSWORD"
  dport=$(node "$ROOT/scripts/free-port.mjs")
  sed -i \
    -e "s|^listeners=.*|listeners=SASL://127.0.0.1:$port,DIRECT://127.0.0.1:$dport,CONTROLLER://127.0.0.1:$cport|" \
    -e "s|^advertised.listeners=.*|advertised.listeners=SASL://127.0.0.1:$port,DIRECT://127.0.0.1:$dport|" \
    -e "s|^inter.broker.listener.name=.*|inter.broker.listener.name=DIRECT|" \
    -e "s|^listener.security.protocol.map=.*|listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL:SASL_PLAINTEXT,DIRECT:PLAINTEXT|" \
    "$dir/server.properties"
  cat >> "$dir/server.properties" <<PROPS
sasl.enabled.mechanisms=PLAIN
listener.name.sasl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$user="$password";
PROPS
}

write_properties() { # DIR NODE_ID PORT CONTROLLER_PORT VOTERS REPLICAS
  local dir=$1 id=$2 port=$3 cport=$4 voters=$5 replicas=$6 min_isr=1
  [ "$replicas" -ge 3 ] && min_isr=2
  mkdir -p "$dir/data" "$dir/logs"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=$KAFKA_PARTITIONS
auto.create.topics.enable=true
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
log.retention.hours=168
num.network.threads=2
num.io.threads=4
PROPS
  cat > "$dir/log4j.properties" <<PROPS
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$dir/logs/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaServer=INFO
log4j.logger.kafka.server.BrokerServer=INFO
PROPS
}

running() { [ -f "$1/kafka.pid" ] && kill -0 "$(cat "$1/kafka.pid")" 2>/dev/null; }

launch() { # DIR HEAP: start the broker's JVM in the background, its pid in DIR/kafka.pid
  local dir=$1 heap=$2
  nohup bash -c "exec java -Xms128m -Xmx$heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration=file:$dir/log4j.properties -Dkafka.logs.dir=$dir/logs \
    -cp '$LIBS/*' kafka.Kafka $dir/server.properties" >"$dir/logs/stdout.log" 2>&1 &
  echo $! > "$dir/kafka.pid"
}

start() { # DIR [PORT]
  local dir port
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  fetch
  is_cluster "$dir" && die "$dir holds a cluster: use start-cluster"
  if running "$dir"; then address "$dir"; return 0; fi
  if [ ! -f "$dir/server.properties" ]; then
    port=${2:-$(node "$ROOT/scripts/free-port.mjs")}
    configure "$dir" "$port"
  fi
  launch "$dir" "${KAFKA_HEAP:-512m}"
  node "$ROOT/scripts/wait-kafka.mjs" "$(address "$dir")" 90000 || {
    tail -n 30 "$dir/logs/server.log" "$dir/logs/stdout.log" >&2 || true
    die "broker in $dir did not answer"
  }
  address "$dir"
}

stop() { # DIR
  local dir=$1 pid
  if is_cluster "$dir"; then stop_cluster "$dir"; return 0; fi
  running "$dir" || { rm -f "$dir/kafka.pid"; return 0; }
  pid=$(cat "$dir/kafka.pid")
  kill -TERM "$pid"
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$dir/kafka.pid"
}

kill9() { # DIR
  local dir=$1 pid
  running "$dir" || return 0
  pid=$(cat "$dir/kafka.pid")
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$dir/kafka.pid"
}

# --- three brokers ---------------------------------------------------------------------------------------------

is_cluster() { [ -f "$1/b1/server.properties" ]; }

bootstrap() {
  local dir=$1 n out=""
  is_cluster "$dir" || die "no cluster in $dir"
  for n in $CLUSTER_BROKERS; do out="$out${out:+,}$(address "$dir/b$n")"; done
  echo "$out"
}

configure_cluster() { # DIR: ports (a broker and a controller port per broker), properties, one cluster id
  local dir=$1 n ports voters cluster_id pids=()
  mapfile -t ports < <(node "$ROOT/scripts/free-port.mjs" 6)
  voters="1@127.0.0.1:${ports[3]},2@127.0.0.1:${ports[4]},3@127.0.0.1:${ports[5]}"
  cluster_id=$(new_cluster_id)
  for n in $CLUSTER_BROKERS; do
    write_properties "$dir/b$n" "$n" "${ports[$((n - 1))]}" "${ports[$((n + 2))]}" "$voters" 3
    # A dead broker is fenced (and leaves every ISR) after this long without a heartbeat: 9 s by default.
    echo "broker.session.timeout.ms=6000" >> "$dir/b$n/server.properties"
    format "$dir/b$n" "$cluster_id" & pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || die "formatting the brokers in $dir failed"; done
}

# Waits until every broker is registered and unfenced, no partition of any topic lacks an in-sync replica, and
# consumer groups have a coordinator (scripts/wait-kafka.mjs).
wait_cluster() { # DIR TIMEOUT_MS
  node "$ROOT/scripts/wait-kafka.mjs" "$(bootstrap "$1")" "$2" 3
}

start_cluster() { # DIR
  local dir n
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  fetch
  [ -f "$dir/server.properties" ] && die "$dir holds a single broker, not a cluster"
  is_cluster "$dir" || configure_cluster "$dir"
  for n in $CLUSTER_BROKERS; do running "$dir/b$n" || launch "$dir/b$n" "${KAFKA_HEAP:-384m}"; done
  wait_cluster "$dir" 120000 || {
    for n in $CLUSTER_BROKERS; do tail -n 10 "$dir/b$n/logs/server.log" "$dir/b$n/logs/stdout.log" >&2 || true; done
    die "the brokers in $dir did not start"
  }
  bootstrap "$dir"
}

stop_cluster() { # DIR: SIGTERM to every broker at once, so each shuts down while the controller quorum still has a majority
  local dir=$1 n pid
  for n in $CLUSTER_BROKERS; do running "$dir/b$n" && kill -TERM "$(cat "$dir/b$n/kafka.pid")"; done
  for n in $CLUSTER_BROKERS; do
    [ -f "$dir/b$n/kafka.pid" ] || continue
    pid=$(cat "$dir/b$n/kafka.pid")
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$dir/b$n/kafka.pid"
  done
}

broker_dir() { # DIR N
  is_cluster "$1" || die "no cluster in $1"
  case "$2" in 1|2|3) echo "$1/b$2" ;; *) die "no broker $2 in $1 (1, 2 or 3)" ;; esac
}

kill9_broker() { # DIR N
  local bd
  bd=$(broker_dir "$1" "$2")
  kill9 "$bd"
}

start_broker() { # DIR N
  local dir bd
  dir=$(cd "$1" && pwd)
  bd=$(broker_dir "$dir" "$2")
  running "$bd" || launch "$bd" "${KAFKA_HEAP:-384m}"
  wait_cluster "$dir" 120000 || { tail -n 20 "$bd/logs/server.log" "$bd/logs/stdout.log" >&2 || true; die "broker $2 in $dir did not rejoin"; }
}

cmd=${1:-}; shift || true
case "$cmd" in
  fetch) fetch ;;
  start) [ $# -ge 1 ] || die "usage: kafka.sh start DIR [PORT]"; start "$@" ;;
  stop) [ $# -ge 1 ] || die "usage: kafka.sh stop DIR"; stop "$1" ;;
  kill9) [ $# -ge 1 ] || die "usage: kafka.sh kill9 DIR"; kill9 "$1" ;;
  address) [ $# -ge 1 ] || die "usage: kafka.sh address DIR"; address "$1" ;;
  start-cluster) [ $# -ge 1 ] || die "usage: kafka.sh start-cluster DIR"; start_cluster "$1" ;;
  bootstrap) [ $# -ge 1 ] || die "usage: kafka.sh bootstrap DIR"; bootstrap "$1" ;;
  kill9-broker) [ $# -ge 2 ] || die "usage: kafka.sh kill9-broker DIR N"; kill9_broker "$1" "$2" ;;
  start-broker) [ $# -ge 2 ] || die "usage: kafka.sh start-broker DIR N"; start_broker "$1" "$2" ;;
  *) die "usage: kafka.sh fetch | start DIR [PORT] | stop DIR | kill9 DIR | address DIR | start-cluster DIR | bootstrap DIR | kill9-broker DIR N | start-broker DIR N" ;;
esac
