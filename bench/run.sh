#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md and writes its tables.
#
#   bash bench/run.sh                 # the whole set, about 6-8 minutes
#   ROUNDS=1 DURATION=2 bash bench/run.sh   # a quick look
#
# Outside a private network namespace it prepares what it needs (installs
# redis-server and jq with apt-get if missing, builds `roomcast` in release
# mode), then runs itself again inside tools/sandbox, where loopback is
# the only interface, so no benchmark traffic can leave the machine. Inside
# it starts roomcast server and redis-server on 127.0.0.1, runs the load
# generator against each in turn (alternating which goes first), the idle
# connection memory test against a fresh server of each, and the multicast
# chat benchmarks; it stops only the processes it started, by PID.
#
# Results: bench/results/latest.md (the tables, also printed) and
# bench/results/latest.jsonl (every run, one JSON object per line).
#
# Knobs (environment): ROUNDS (3), DURATION (5 s measured), WARMUP (1 s),
# CHAT_ROUNDS (2), IDLE_CONNS (10000), PIN (1: server on CPU 0, load
# generator on CPU 1; 0: let the scheduler place them), CARGO_TARGET_DIR,
# ROOMCAST_BIN (the load generator; default: this tree's release build),
# SERVER_BIN (the roomcast server under test; default: ROOMCAST_BIN), e.g.
# to measure a patched server against the same generator.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
SANDBOX=${SANDBOX:-$ROOT/tools/sandbox}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${ROOMCAST_BIN:-$TARGET_DIR/release/roomcast}
# The server under test; by default the same build as the load generator.
SERVER_BIN=${SERVER_BIN:-$BIN}
RESULTS=${RESULTS:-$ROOT/bench/results}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CHAT_ROUNDS=${CHAT_ROUNDS:-2}
IDLE_CONNS=${IDLE_CONNS:-10000}
PIN=${PIN:-1}

# Interfaces other than loopback: none inside the sandbox.
others=$(awk -F: 'NR > 2 { gsub(/ /, "", $1); if ($1 != "lo") print $1 }' /proc/net/dev)

if [ -n "$others" ]; then
    # ---- Outside: prepare, then run again inside the sandbox. ----
    need=()
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
    command -v jq >/dev/null 2>&1 || need+=(jq)
    command -v taskset >/dev/null 2>&1 || need+=(util-linux)
    if [ "${#need[@]}" -gt 0 ]; then
        sudo=()
        [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        "${sudo[@]}" apt-get update
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"
    fi
    if [ -z "${ROOMCAST_BIN:-}" ]; then
        cargo build --release -p host
    fi
    export ROOMCAST_BIN=$BIN CARGO_TARGET_DIR=$TARGET_DIR
    # The whole run is bounded: nothing here may go on for ever.
    exec timeout --signal=TERM --kill-after=10 1200 "$SANDBOX" bash "$ROOT/bench/run.sh" "$@"
fi

# ---- Inside the sandbox. ----
[ -x "$BIN" ] || { echo "no roomcast binary at $BIN: build it first" >&2; exit 1; }
[ -x "$SERVER_BIN" ] || { echo "no roomcast server binary at $SERVER_BIN" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is missing" >&2; exit 1; }
command -v jq >/dev/null || { echo "jq is missing" >&2; exit 1; }
mkdir -p "$RESULTS"
RUNS="$RESULTS/latest.jsonl"
TABLE="$RESULTS/latest.md"
: >"$RUNS"
LOGDIR=$(mktemp -d)

# Every process this script starts, so the trap ends exactly those.
STARTED=()
cleanup() {
    for pid in "${STARTED[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$LOGDIR"
}
trap cleanup EXIT

SERVER_CPU=()
CLIENT_CPU=()
if [ "$PIN" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    SERVER_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
fi

free_port() {
    local port=$1
    while ss -Hltn "sport = :$port" | grep -q .; do
        port=$((port + 1))
    done
    echo "$port"
}

wait_port() {
    local port=$1 i
    for i in $(seq 100); do
        if ss -Hltn "sport = :$port" | grep -q .; then
            return 0
        fi
        sleep 0.05
    done
    echo "nothing listens on port $port" >&2
    return 1
}

# start_roomcast VAR: starts a server, sets VAR_PID and VAR_PORT.
start_roomcast() {
    local port
    port=$(free_port 5577)
    # All the load comes from 127.0.0.1, and the benchmark measures the
    # server's capacity, not its per-client quotas: those are lifted here
    # (redis, compared against, has none either).
    "${SERVER_CPU[@]}" "$SERVER_BIN" server --bind 127.0.0.1 --port "$port" --log-level error \
        --max-connections $((IDLE_CONNS + 100)) \
        --max-connections-per-client $((IDLE_CONNS + 100)) \
        --max-rooms-per-client 4096 --commands-per-second 0 \
        >"$LOGDIR/roomcast.log" 2>&1 &
    RC_PID=$!
    STARTED+=("$RC_PID")
    RC_PORT=$port
    wait_port "$port"
}

start_redis() {
    local port
    port=$(free_port 16379)
    "${SERVER_CPU[@]}" redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --maxclients $((IDLE_CONNS + 100)) --daemonize no --loglevel warning \
        --dir "$LOGDIR" >"$LOGDIR/redis.log" 2>&1 &
    RD_PID=$!
    STARTED+=("$RD_PID")
    RD_PORT=$port
    wait_port "$port"
}

stop() {
    local pid=$1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# record CASE TARGET ROUND -- COMMAND...: runs a benchmark, labels its JSON.
record() {
    local case=$1 target=$2 round=$3
    shift 4
    local out
    if ! out=$(timeout 180 "${CLIENT_CPU[@]}" "$@" --json); then
        echo "  $case $target: the benchmark failed" >&2
        return 0
    fi
    echo "$out" | jq -c --arg case "$case" --arg target "$target" --argjson round "$round" \
        '. + {case: $case, target: $target, round: $round}' >>"$RUNS"
    echo "$out" | jq -r --arg case "$case" --arg target "$target" \
        'if .mode == "load" then
           "  \($case) \($target): \(.rps) req/s, p50 \(.p50_us) µs, p99 \(.p99_us) µs, server \(.server_cpu_us_per_req) µs CPU/req, errors \(.errors + .conn_errors)"
         elif .mode == "idle" then
           "  \($case) \($target): \(.connected) held, RSS \(.rss_before_kib) -> \(.rss_end_kib) KiB, \(.bytes_per_conn) B/conn"
         else
           "  \($case): fixed \(.fixed_rate)/s lost \(.fixed_lost), max loss-free \(.max_lossless_rate)/s"
         end'
}

# load CASE TARGET ROUND PORT PID [BENCH OPTIONS...]
load() {
    local case=$1 target=$2 round=$3 port=$4 pid=$5
    shift 5
    local protocol=crdp
    [ "$target" = redis ] && protocol=redis
    record "$case" "$target" "$round" -- "$BIN" bench --server "127.0.0.1:$port" \
        --protocol "$protocol" --duration "$DURATION" --warmup "$WARMUP" \
        --server-pid "$pid" "$@"
}

echo "roomcast benchmarks: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "  $(uname -sr); $("$BIN" --version); $(redis-server --version | cut -d' ' -f1-3)"
echo "  rounds $ROUNDS x ${DURATION}s measured after ${WARMUP}s warm-up; pinning: ${PIN}"
echo "  load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
started_at=$(date +%s)

# ---- Throughput and latency ----
start_roomcast
start_redis
for round in $(seq "$ROUNDS"); do
    echo "round $round"
    order=(roomcast redis)
    [ $((round % 2)) -eq 0 ] && order=(redis roomcast)
    for spec in "ping-1:--conns 1" "ping-50:--conns 50" "ping-1000:--conns 1000" \
        "ping-50-p16:--conns 50 --pipeline 16"; do
        case=${spec%%:*}
        read -r -a opts <<<"${spec#*:}"
        for target in "${order[@]}"; do
            if [ "$target" = roomcast ]; then
                load "$case" roomcast "$round" "$RC_PORT" "$RC_PID" "${opts[@]}"
            else
                load "$case" redis "$round" "$RD_PORT" "$RD_PID" "${opts[@]}"
            fi
        done
    done
    load getdir-100 roomcast "$round" "$RC_PORT" "$RC_PID" --conns 50 --mix getdir --rooms 100
    load rooms-50 roomcast "$round" "$RC_PORT" "$RC_PID" --conns 50 --mix rooms
done
stop "$RC_PID"
stop "$RD_PID"

# ---- Memory: a fresh server of each, idle, then holding idle connections ----
echo "idle connections"
start_roomcast
sleep 0.5
record idle roomcast 1 -- "$BIN" bench --server "127.0.0.1:$RC_PORT" --idle \
    --conns "$IDLE_CONNS" --hold 5 --server-pid "$RC_PID"
stop "$RC_PID"
start_redis
sleep 0.5
record idle redis 1 -- "$BIN" bench --server "127.0.0.1:$RD_PORT" --protocol redis --idle \
    --conns "$IDLE_CONNS" --hold 5 --server-pid "$RD_PID"
stop "$RD_PID"

# ---- Chat over multicast (loopback only, TTL 1) ----
echo "chat"
for round in $(seq "$CHAT_ROUNDS"); do
    record chat roomcast "$round" -- "$BIN" bench chat
    record raw raw "$round" -- "$BIN" bench raw
    record raw-2 raw "$round" -- "$BIN" bench raw --receivers 2
    record chat-rcvbuf-1M roomcast "$round" -- "$BIN" bench chat --rcvbuf 1048576
done

elapsed=$(($(date +%s) - started_at))
echo "done in ${elapsed}s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- Tables ----
jq -r -s --arg elapsed "$elapsed" '
  def median: sort | if length == 0 then null
    elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  def r0: if . == null then "–" else (. * 1 | round | tostring) end;
  def r1: if . == null then "–" else ((. * 10 | round) / 10 | tostring) end;
  def r2: if . == null then "–" else ((. * 100 | round) / 100 | tostring) end;
  def spread: if length < 2 then "–"
    else ((max - min) / (median) * 100 | round | tostring) + " %" end;
  def loadrow($c; $t): [.[] | select(.mode == "load" and .case == $c and .target == $t)];
  def rps($c; $t): loadrow($c; $t) | map(.rps) | median;
  def p99($c; $t): loadrow($c; $t) | map(.p99_us) | median;
  def idle($t): [.[] | select(.mode == "idle" and .target == $t)][0];
  def chat($c): [.[] | select(.case == $c)];
  def verdict(ok): if ok then "met" else "**missed**" end;
  . as $all |
  "### Throughput and latency (median of \([$all[] | .round] | max) rounds)",
  "",
  "| case | server | req/s | spread | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | server busy | errors |",
  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ([$all[] | select(.mode == "load")] | group_by([.case, .target]) | sort_by(.[0].case, .[0].target)[] |
    "| \(.[0].case) | \(.[0].target) | \(map(.rps) | median | r0) | \(map(.rps) | spread) | " +
    "\(map(.p50_us) | median | r1) | \(map(.p99_us) | median | r1) | " +
    "\(map(.p999_us) | median | r1) | \(map(.server_cpu_us_per_req // null) | map(select(. != null)) | median | r2) | " +
    "\(map(.server_busy // null) | map(select(. != null)) | median | r2) | \(map(.errors + .conn_errors) | add) |"),
  "",
  "### Idle connections",
  "",
  "| server | connections | RSS idle KiB | RSS held KiB | bytes/conn |",
  "|---|---:|---:|---:|---:|",
  ([$all[] | select(.mode == "idle")][] |
    "| \(.target) | \(.connected) | \(.rss_before_kib) | \(.rss_end_kib) | \(.bytes_per_conn) |"),
  "",
  "### Chat over multicast (64-byte datagrams, 1 sender)",
  "",
  "| bench | receivers | round | 10k/s: lost | 10k/s p50 µs | 10k/s p99 µs | max loss-free msg/s | its p50 µs | its p99 µs |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ([$all[] | select(.mode == "chat" or .mode == "raw")] | sort_by(.case, .round)[] |
    "| \(.case) | \(.receivers) | \(.round) | \(.fixed_lost) | \(.fixed_p50_us | r1) | \(.fixed_p99_us | r1) | " +
    "\(.max_lossless_rate | r0)\(if .sender_bound == 1 then " (sender-bound)" else "" end) | \(.max_p50_us | r1) | \(.max_p99_us | r1) |"),
  "",
  "### Targets",
  "",
  "| target | measured | verdict |",
  "|---|---|---|",
  (["ping-1", "ping-50", "ping-1000", "ping-50-p16"][] as $c |
    ($all | rps($c; "roomcast")) as $a | ($all | rps($c; "redis")) as $b |
    ($all | p99($c; "roomcast")) as $pa | ($all | p99($c; "redis")) as $pb |
    if $a == null or $b == null then "| \($c) | no data | – |" else
    "| \($c): ping ≥ redis PING | \($a | r0) vs \($b | r0) req/s (×\(($a / $b * 100 | round) / 100)) | \(verdict($a >= $b)) |",
    "| \($c): p99 ≤ redis | \($pa | r1) vs \($pb | r1) µs | \(verdict($pa <= $pb)) |" end),
  (($all | rps("getdir-100"; "roomcast")) as $g | ($all | rps("ping-50"; "roomcast")) as $p |
    if $g == null or $p == null then "| getdir ≥ ½ ping | no data | – |" else
    "| getdir (100 rooms) ≥ ½ ping, 50 conns | \($g | r0) vs \($p | r0) req/s (×\(($g / $p * 100 | round) / 100)) | \(verdict($g >= $p / 2)) |" end),
  (($all | idle("roomcast")) as $a | ($all | idle("redis")) as $b |
    if $a == null or $b == null or $a.bytes_per_conn == null or $b.bytes_per_conn == null
    then "| idle bytes/conn ≤ redis | no data | – |" else
    "| \($a.connected) idle conns: bytes/conn ≤ redis | \($a.bytes_per_conn) vs \($b.bytes_per_conn) B | \(verdict($a.bytes_per_conn <= $b.bytes_per_conn and $a.connected >= $b.connected)) |" end),
  (($all | chat("chat")) as $c | ($all | chat("raw")) as $r |
    if ($c | length) == 0 then "| chat | no data | – |" else
    ($c | map(.fixed_lost) | max) as $lost |
    ($c | map(.max_lossless_rate // 0) | median) as $cm |
    ($r | map(.max_lossless_rate // 0) | median) as $rm |
    "| chat: zero loss at 10,000 msg/s | lost \($lost) in the worst of \($c | length) runs | \(verdict($lost == 0)) |",
    "| chat loss-free rate ≥ ½ raw pair | \($cm | r0) vs \($rm | r0) msg/s (×\(if $rm > 0 then ($cm / $rm * 100 | round) / 100 else "–" end)) | \(verdict($rm > 0 and $cm >= $rm / 2)) |" end),
  "",
  "_Run took \($elapsed) s._"
' "$RUNS" >"$TABLE"
echo
cat "$TABLE"
