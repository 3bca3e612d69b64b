#!/usr/bin/env bash
# A single-node Apache Kafka broker in KRaft mode, run on this machine's JVM.
#
#   scripts/kafka.sh fetch              download the broker's jars from Maven Central (cached in .deps/)
#   scripts/kafka.sh start DIR [PORT]   format DIR (first time only) and start a broker there; prints its address
#   scripts/kafka.sh stop DIR           stop it cleanly (SIGTERM, then wait)
#   scripts/kafka.sh kill9 DIR          kill it hard, as a crash would
#   scripts/kafka.sh address DIR        print host:port of the broker in DIR
#
# Environment: KAFKA_VERSION (default 3.9.1), KAFKA_HEAP (default 512m, the JVM's -Xmx),
# KAFKA_PARTITIONS (default partitions of auto-created topics, 4).
# A DIR that was started before keeps its port and data: starting it again is a restart.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_VERSION=${KAFKA_VERSION:-3.9.1}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
KAFKA_PARTITIONS=${KAFKA_PARTITIONS:-4}
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
  java -Xms128m -Xmx"$KAFKA_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$dir/log4j.properties" -Dkafka.logs.dir="$dir/logs" \
    -cp "$LIBS/*" "$@"
}

address() { sed -n 's/^advertised.listeners=PLAINTEXT:\/\///p' "$1/server.properties"; }

configure() { # DIR PORT
  local dir=$1 port=$2 cport
  cport=$(node "$ROOT/scripts/free-port.mjs")
  mkdir -p "$dir/data" "$dir/logs"
  cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=$KAFKA_PARTITIONS
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
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
  local cluster_id
  # A base64url id may start with '-', which the format tool's argument parser takes for an option,
  # so draw again until it does not (Kafka's own Uuid.randomUuid does the same).
  cluster_id=$(node -e "const c=require('node:crypto');let id;do{id=c.randomBytes(16).toString('base64url')}while(id.startsWith('-'));console.log(id)")
  java_cmd "$dir" kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" >"$dir/logs/format.log" 2>&1 \
    || { cat "$dir/logs/format.log" >&2; die "formatting $dir failed"; }
}

running() { [ -f "$1/kafka.pid" ] && kill -0 "$(cat "$1/kafka.pid")" 2>/dev/null; }

start() { # DIR [PORT]
  local dir port
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  fetch
  if running "$dir"; then address "$dir"; return 0; fi
  if [ ! -f "$dir/server.properties" ]; then
    port=${2:-$(node "$ROOT/scripts/free-port.mjs")}
    configure "$dir" "$port"
  fi
  nohup bash -c "exec java -Xms128m -Xmx$KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration=file:$dir/log4j.properties -Dkafka.logs.dir=$dir/logs \
    -cp '$LIBS/*' kafka.Kafka $dir/server.properties" >"$dir/logs/stdout.log" 2>&1 &
  echo $! > "$dir/kafka.pid"
  node "$ROOT/scripts/wait-kafka.mjs" "$(address "$dir")" 90000 || {
    tail -n 30 "$dir/logs/server.log" "$dir/logs/stdout.log" >&2 || true
    die "broker in $dir did not answer"
  }
  address "$dir"
}

stop() { # DIR
  local dir=$1 pid
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

cmd=${1:-}; shift || true
case "$cmd" in
  fetch) fetch ;;
  start) [ $# -ge 1 ] || die "usage: kafka.sh start DIR [PORT]"; start "$@" ;;
  stop) [ $# -ge 1 ] || die "usage: kafka.sh stop DIR"; stop "$1" ;;
  kill9) [ $# -ge 1 ] || die "usage: kafka.sh kill9 DIR"; kill9 "$1" ;;
  address) [ $# -ge 1 ] || die "usage: kafka.sh address DIR"; address "$1" ;;
  *) die "usage: kafka.sh fetch | start DIR [PORT] | stop DIR | kill9 DIR | address DIR" ;;
esac
