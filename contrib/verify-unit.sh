#!/usr/bin/env bash
# Checks contrib/roomcast-server.service with `systemd-analyze verify`, as
# .ci/run does. The unit names the installed binary (/usr/local/bin/roomcast);
# the check points it at the one cargo built, since verify wants the program
# to exist. Usage: contrib/verify-unit.sh [PATH-TO-roomcast]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(realpath "${1:-target/debug/roomcast}")
[ -x "$bin" ] || { echo "error: $bin is missing: run cargo build -p host first" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/roomcast|$bin|" contrib/roomcast-server.service >"$dir/roomcast-server.service"
# --man=no: the page named in Documentation= is not installed here.
systemd-analyze verify --man=no "$dir/roomcast-server.service"
echo "contrib/roomcast-server.service: systemd-analyze verify passed"
