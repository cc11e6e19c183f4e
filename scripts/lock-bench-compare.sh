#!/usr/bin/env bash
# Lock throughput: `benchmark lock` rounds (take a lock, release it) with 1
# client and with 100 clients contending for one lock, through the Lock and
# Unlock RPCs (--lock-kind rpc) and through clientv3's Mutex recipe on KV
# (--lock-kind client), against a fresh single-member etcd-rs (release
# build) and then a fresh real etcd (Debian etcd-server), each on
# 127.0.0.1 with a temporary data dir. Prints, per server and case, rounds
# per second, p50 and p99, and the server's CPU time per round (µs,
# user+system, from /proc), then its peak RSS. N scales the rounds
# (default 1).
set -u
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
cargo build --release --bin etcd --bin benchmark -q
bench=target/release/benchmark
scale=${N:-1}
lock_bench() {
    local ep=$1 pid
    pid=$(ss -ltnpH "sport = :${ep##*:}" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    pids=("$pid")
    for kind in rpc client; do
        for clients in 1 100; do
            local total=$((2000 * scale)) before after f
            f=$(mktemp)
            before=$(cpu_ticks)
            if timeout 600 "$bench" --endpoints="$ep" --clients=$clients --conns=$(( clients > 10 ? 10 : 1 )) \
                lock --lock-kind=$kind --total=$total > "$f" 2>&1; then
                after=$(cpu_ticks)
                awk -v t=$((after - before)) -v n="$total" -v hz="$(getconf CLK_TCK)" -v name="$kind, $clients client(s)" \
                    '/Requests\/sec/ {q=$2} /^  50% in/ {p50=$3*1000} /^  99% in/ {p99=$3*1000}
                     END {printf "%s: %.0f rounds/s, p50 %.2f ms, p99 %.2f ms, %.0f us CPU/round\n", name, q, p50, p99, t / hz * 1e6 / n}' "$f"
            else
                echo "$kind, $clients client(s): failed"; cat "$f"
            fi
            rm -f "$f"
        done
    done
}
bench_compare 24700 lock_bench
