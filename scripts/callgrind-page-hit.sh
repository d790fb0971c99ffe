#!/usr/bin/env bash
# Instructions the release `active_users` spends per `/users/page` hit, counted by
# valgrind's callgrind (instructions, not seconds: the same on a busy or a quiet machine),
# beside the same count for the ceiling (a plain axum server answering the same bytes).
#
#   scripts/callgrind-page-hit.sh                          # memory://
#   CACHE_URL=redis://127.0.0.1:6390 scripts/callgrind-page-hit.sh
#
# Needs valgrind and wrk (`apt-get install -y valgrind wrk`). Builds both binaries with line
# tables into target/profiling, starts each under callgrind on a free port, warms it up,
# zeroes the counters, drives it with `wrk -t1 -c4` for 15 s, and divides the instructions
# by the requests wrk completed. The profiles stay in target/profiling/*.callgrind for
# `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in valgrind callgrind_control wrk curl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y valgrind wrk curl" >&2; exit 1; }
done
out=target/profiling
# Two builds, as `wrk_load` does: the app as a user builds it (default features, so no lz4);
# built together with the example, features would unify and the page would be compressed.
export CARGO_PROFILE_RELEASE_DEBUG=line-tables-only
cargo build --quiet --release --target-dir "$out" -p cache-examples --bin active_users
cargo build --quiet --release --target-dir "$out" -p cache-examples --example ceiling
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# measure NAME URL_PATH COMMAND...: prints instructions per request of COMMAND under load
# (COMMAND itself runs under valgrind: environment goes before `measure`, not through `env`).
measure() {
    local name=$1 path=$2 port
    shift 2
    port=$(free_port)
    PORT=$port RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out/$name.callgrind" \
        "$@" >"$out/$name.log" 2>&1 &
    local pid=$!
    trap 'kill $pid 2>/dev/null || true' RETURN
    for _ in $(seq 1 120); do
        curl -sf -o /dev/null "http://127.0.0.1:$port$path" && break
        sleep 0.5
    done
    wrk -t1 -c4 -d4s "http://127.0.0.1:$port$path" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    local requests
    requests=$(wrk -t1 -c4 -d15s "http://127.0.0.1:$port$path" | awk '/requests in/ {print $1}')
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    local total
    total=$(callgrind_annotate "$out/$name.callgrind".1 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    printf '| %s | %d | %d |\n' "$name" "$requests" $((total / requests))
}

echo "| server | requests | instructions per request |"
echo "|---|---:|---:|"
page=$out/page.html
cache_url=${CACHE_URL:-memory://}
CACHE_URL=$cache_url measure active_users /users/page "$out/release/active_users"
# The ceiling serves the page the app served (fetched again from a plain run of the app).
port=$(free_port)
CACHE_URL=memory:// PORT=$port RUST_LOG=warn "$out/release/active_users" >/dev/null 2>&1 &
app=$!
for _ in $(seq 1 60); do curl -sf -o "$page" "http://127.0.0.1:$port/users/page" && break; sleep 0.5; done
kill $app
measure ceiling /users/page "$out/release/examples/ceiling" "$page" "text/html; charset=utf-8"
