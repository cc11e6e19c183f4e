#!/usr/bin/env bash
# HTTP/JSON gateway throughput: `oha` (crates.io: cargo install oha) sends
# N requests (default 50000) from 100 concurrent connections, a put and
# then a range of one key through /v3/kv/*, to a fresh single-member
# etcd-rs (release build) and then a fresh real etcd (Debian etcd-server),
# each on 127.0.0.1 with a temporary data dir. Prints, per server and
# call, requests/s, the p50 and p99 latency, and the server's CPU time
# per request (µs, user+system, from /proc), then its peak RSS.
set -u
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
command -v oha >/dev/null || { echo "needs oha: cargo install oha" >&2; exit 1; }
cargo build --release --bin etcd -q
n=${N:-50000}
gateway_bench() {
    local ep=$1 pid
    pid=$(ss -ltnpH "sport = :${ep##*:}" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    pids=("$pid")
    curl -s -X POST "$ep/v3/kv/put" -d '{"key":"Zm9v","value":"YmFy"}' >/dev/null
    for call in put range; do
        local body='{"key":"Zm9v","value":"YmFy"}'
        [ "$call" = range ] && body='{"key":"Zm9v"}'
        local before after out
        before=$(cpu_ticks)
        out=$(timeout 300 oha --no-tui --output-format json -n "$n" -c 100 -m POST \
            -T application/json -d "$body" "$ep/v3/kv/$call") || { echo "$call: failed"; continue; }
        after=$(cpu_ticks)
        printf '%s' "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
s, p = r["summary"], r["latencyPercentiles"]
ok = r.get("statusCodeDistribution", {}).get("200", 0)
ticks, n, hz = (int(a) for a in sys.argv[1:4])
print("%s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %.1f us CPU/request, %d of %d answered 200" % (
    sys.argv[4], s["requestsPerSec"], p["p50"] * 1000, p["p99"] * 1000, ticks / hz * 1e6 / n, ok, n))
' $((after - before)) "$n" "$(getconf CLK_TCK)" "$call"
    done
}
bench_compare 24500 gateway_bench
