#!/usr/bin/env bash
# Runs the lease benchmark (crates/tests/examples/lease_bench.rs) against a
# fresh single-member etcd-rs (release build) and then a fresh real etcd
# (Debian etcd-server), each on 127.0.0.1 with a temporary data dir, and
# prints both reports with each server's peak RSS. LEASES=N sets how many
# leases expire (default 100000, as in the issue). Every run is bounded.
# Needs /usr/bin/etcd (apt-get install etcd-server).
set -u
cd "$(dirname "$0")/.."
cargo build --release --bin etcd -q
cargo build --release -p etcd-rs-tests --example lease_bench -q
bench=target/release/examples/lease_bench
run() {
    local name=$1 bin=$2 port=$3
    local d; d=$(mktemp -d)
    "$bin" --name w --data-dir "$d/data" \
        --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$((port+1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port+1))" \
        --initial-cluster "w=http://127.0.0.1:$((port+1))" > "$d/log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    echo "== $name"
    timeout 900 "$bench" "http://127.0.0.1:$port" ${LEASES:-100000} || echo "(benchmark failed or timed out)"
    echo "peak RSS: $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}')"
    kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$d"
}
[ "${ONLY:-}" = etcd ] || run etcd-rs target/release/etcd 24500
[ "${ONLY:-}" = etcd-rs ] || run etcd-3.4.23 /usr/bin/etcd 24600
