#!/usr/bin/env bash
# Counts the system calls each server makes per request (strace -c -f),
# for roomcast server and redis-server under the same `roomcast bench` load.
#
#   bash bench/syscalls.sh [CONNS...]        # default: 1 50 1000
#
# Only TCP on 127.0.0.1 (no multicast), so it may run outside the sandbox;
# it runs inside if you ask: tools/sandbox bash bench/syscalls.sh.
# Needs strace, redis-server, jq and a release build (bash bench/run.sh
# prepares all three). strace slows the servers, so the rates it prints
# mean nothing; the calls per request do.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
BIN=${ROOMCAST_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/roomcast}
DURATION=${DURATION:-2}
[ "$#" -gt 0 ] || set -- 1 50 1000
OUT=$(mktemp -d)
STARTED=()
cleanup() {
    for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$OUT"
}
trap cleanup EXIT

free_port() {
    local port=$1
    while ss -Hltn "sport = :$port" | grep -q .; do port=$((port + 1)); done
    echo "$port"
}

# trace NAME PROTOCOL PORT CONNS -- SERVER-COMMAND...
trace() {
    local name=$1 protocol=$2 port=$3 conns=$4
    shift 5
    strace -c -f -o "$OUT/$name.txt" "$@" >/dev/null 2>&1 &
    local tracer=$!
    STARTED+=("$tracer")
    local i
    for i in $(seq 100); do
        ss -Hltn "sport = :$port" | grep -q . && break
        sleep 0.05
    done
    local server
    server=$(pgrep -P "$tracer" | head -1)
    local requests
    requests=$(timeout 60 "$BIN" bench --server "127.0.0.1:$port" --protocol "$protocol" \
        --conns "$conns" --duration "$DURATION" --warmup 0 --json | jq .requests)
    # End the server itself (strace then writes its summary and exits).
    kill "$server"
    wait "$tracer" 2>/dev/null || true
    awk -v name="$name" -v n="$requests" '
        $1 ~ /^[0-9.]+$/ && NF >= 5 {
            calls = $4; sc = $NF
            if (sc == "total") { total = calls; next }
            per[sc] = calls / n
        }
        END {
            printf "%-22s %8d requests  %5.2f calls/request:", name, n, total / n
            for (s in per) if (per[s] >= 0.01) printf "  %s %.2f", s, per[s]
            printf "\n"
        }' "$OUT/$name.txt"
}

for conns in "$@"; do
    port=$(free_port 15577)
    trace "roomcast-$conns" crdp "$port" "$conns" -- \
        "$BIN" server --bind 127.0.0.1 --port "$port" --log-level error --max-connections 20000
    port=$(free_port 16379)
    trace "redis-$conns" redis "$port" "$conns" -- \
        redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --loglevel warning --maxclients 10100 --dir "$OUT"
done
