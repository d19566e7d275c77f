#!/usr/bin/env bash
# Reliable chat on real sockets: BENCHMARKS.md, "Reliable chat on real
# sockets". About 7 minutes; prints one JSON line per run.
#
#   bash bench/reliable.sh            # RUNS=3 by default
#   RUNS=1 bash bench/reliable.sh     # a quick look
#
# Outside a private network namespace it builds `roomcast` in release mode,
# then runs itself again inside tools/sandbox (loopback only), so no
# benchmark datagram can leave the machine. Inside, each run measures:
#   1. 0 % loss: the plain datagram path (`bench chat`, the client's
#      sockets, 1 MiB buffers, ramp to the highest loss-free rate) and the
#      room protocol with the sender's pace lifted (`--pace 1000000`) at
#      offered rates of 10,000 to 40,000 messages/s for 3 s each (the
#      highest with every message delivered and no loss notice is its
#      zero-loss rate), side by side, with the CPU time of each;
#   2. 10 % loss dropped independently at each receiver (`--drop 10`) at
#      9 messages/s (below the pace, so no message waits in the send
#      queue): delivery and repair delay;
#   3. the same loss from an nftables rule in the namespace (`numgen random
#      mod 10 0 drop` on the room's two ports: every member loses the same
#      datagrams);
#   4. a paste: 400 lines handed over at once, default pace, 10 % loss;
# then once: 5. a quiet room of 3 and of 10 members for 30 s (bytes/s).
# Knobs: RUNS (3), ROOMCAST_BIN (default: this tree's release build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${ROOMCAST_BIN:-$(pwd)/target/release/roomcast}
RUNS=${RUNS:-3}
if [ "${IN_SANDBOX:-0}" != 1 ]; then
  if [ -z "${ROOMCAST_BIN:-}" ]; then
    cargo build --release -p host
  fi
  exec env IN_SANDBOX=1 ROOMCAST_BIN="$BIN" RUNS="$RUNS" timeout 1800 tools/sandbox bash "$0"
fi

# shellcheck source=bench/timed.sh
. bench/timed.sh

loss_rule() {
  nft add table inet loss
  nft add chain inet loss in '{ type filter hook input priority 0; }'
  nft add rule inet loss in udp dport '{ 47650, 47651 }' numgen random mod 10 0 counter drop
}

for run in $(seq "$RUNS"); do
  echo "# run $run of $RUNS"
  timed "$BIN" bench chat --receivers 2 --rcvbuf 1048576 --size 68 --port $((47000 + run * 100)) --json
  for rate in 10000 15000 20000 25000 30000 40000; do
    timed "$BIN" bench reliable --receivers 2 --pace 1000000 --rate $rate --count $((rate * 3)) \
      --size 64 --timeout 15 --port $((47600 + run * 2)) --json
  done
  timed "$BIN" bench reliable --receivers 2 --rate 9 --count 300 --drop 10 --port 47620 --json
  loss_rule
  timed "$BIN" bench reliable --receivers 2 --rate 9 --count 300 --port 47650 --json
  nft list chain inet loss in | grep -o 'packets [0-9]*' | sed 's/^/# nftables dropped /'
  nft delete table inet loss
  timed "$BIN" bench reliable --receivers 2 --count 400 --drop 10 --port 47630 --json
done
timed "$BIN" bench reliable --receivers 2 --quiet 30 --port 47640 --json
timed "$BIN" bench reliable --receivers 9 --quiet 30 --port 47644 --json
