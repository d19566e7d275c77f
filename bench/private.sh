#!/usr/bin/env bash
# What a private room costs: BENCHMARKS.md, "Private rooms". About 4
# minutes; prints one JSON line per measurement.
#
#   bash bench/private.sh             # RUNS=2 rounds of the socket runs
#   CALLGRIND=1 bash bench/private.sh # also instruction counts (valgrind)
#
# Outside a private network namespace it builds `roomcast` in release mode,
# then runs itself again inside tools/sandbox (loopback only), so no
# benchmark datagram can leave the machine. Inside:
#   1. `bench seal`: the room protocol's session, open room beside private,
#      60- and 1000-byte texts, 8-byte name, 50,000 messages x 7 runs,
#      three times; with CALLGRIND=1, instructions per message of each
#      case, counted by callgrind inside `send_batch` and `receive_batch`;
#   2. `bench argon2`: 7 derivations with the shipped parameters, under
#      /usr/bin/time -v (peak resident memory), three times;
#   3. `bench reliable` on real sockets, open and private alternating:
#      sender's pace lifted, offered 10,000 to 40,000 messages/s for 3 s
#      (64-byte texts, 2 receivers), then as fast as the sender goes
#      (60,000 messages), each with the CPU seconds it used; RUNS rounds.
# Knobs: RUNS (2), ROOMCAST_BIN (default: this tree's release build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${ROOMCAST_BIN:-$(pwd)/target/release/roomcast}
RUNS=${RUNS:-2}
if [ "${IN_SANDBOX:-0}" != 1 ]; then
  if [ -z "${ROOMCAST_BIN:-}" ]; then
    cargo build --release -p host
  fi
  exec env IN_SANDBOX=1 ROOMCAST_BIN="$BIN" RUNS="$RUNS" CALLGRIND="${CALLGRIND:-0}" \
    timeout 1800 tools/sandbox bash "$0"
fi

# shellcheck source=bench/timed.sh
. bench/timed.sh

echo "# bench seal (ns per message; 3 x 7 runs)"
for _ in 1 2 3; do
  "$BIN" bench seal --messages 50000 --runs 7 --json
done

if [ "${CALLGRIND:-0}" = 1 ]; then
  echo "# instructions per message (callgrind, 20,000 messages)"
  dir=$(mktemp -d)
  for kind in open private; do
    for size in 60 1000; do
      valgrind --tool=callgrind --callgrind-out-file="$dir/cg" \
        --toggle-collect='*send_batch*' --toggle-collect='*receive_batch*' \
        "$BIN" bench seal --only "$kind" --sizes "$size" --runs 1 --messages 20000 \
        >/dev/null 2>&1
      # Inclusive instructions of one function (read to the end: no SIGPIPE).
      of() {
        callgrind_annotate --inclusive=yes --auto=no "$dir/cg" 2>/dev/null |
          awk -v f="seal::$1 [" 'index($0, f) && !n { gsub(",", "", $1); print $1; n = 1 }'
      }
      send=$(of send_batch)
      recv=$(of receive_batch)
      echo "{\"bench\":\"seal-instructions\",\"room\":\"$kind\",\"text_bytes\":$size,\"send\":$((send / 20000)),\"receive\":$((recv / 20000))}"
    done
  done
  rm -rf "$dir"
fi

echo "# bench argon2 (7 derivations; max RSS from /usr/bin/time -v)"
for _ in 1 2 3; do
  t=$(mktemp)
  out=$(/usr/bin/time -v -o "$t" "$BIN" bench argon2 --runs 7 --json)
  rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$t")
  rm -f "$t"
  echo "${out%\}},\"max_rss_kib\":$rss}"
done

echo "# bench reliable, open and private side by side"
for run in $(seq "$RUNS"); do
  for rate in 10000 20000 30000 40000 0; do
    count=$((rate * 3))
    [ "$rate" = 0 ] && count=60000
    for room in open private; do
      flag=""
      [ "$room" = private ] && flag="--private"
      timed "$BIN" bench reliable --receivers 2 --pace 1000000 --rate $rate --count $count \
        --size 64 --timeout 15 --port $((47700 + run * 10)) $flag --json
    done
  done
done
