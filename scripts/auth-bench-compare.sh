#!/usr/bin/env bash
# The cost of auth, etcd-rs beside real etcd in one run: a 3-member
# cluster of each (real etcd: Debian's etcd-server, installed if missing;
# etcd-rs: the release build), once without auth and once with auth
# enabled and the benchmark authenticating as one user holding one role
# with one key range, READWRITE on every key from "\x01" (benchmark's
# keys are binary varints sharing no prefix; only key 0 starts with
# "\x00"). Each mode runs `benchmark` put and range (linearizable) with
# 100 clients on 10 connections over the three endpoints, and prints QPS
# and the members' CPU time per request (user+system from /proc, the
# figure that noise on shared cores barely moves), then the auth/plain
# ratios. Only 127.0.0.1; each benchmark run is bounded by `timeout`.
# TOTAL scales the request counts (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

if [ ! -x /usr/bin/etcd ] || [ ! -x /usr/bin/etcdctl ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -qq etcd-server etcd-client >/dev/null || { echo "cannot install etcd-server etcd-client" >&2; exit 1; }
fi
cargo build --release --bin etcd --bin benchmark -q
bench=$PWD/target/release/benchmark
scale=${TOTAL:-1}
out=$(mktemp -d)
pids=()
stop_cluster() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
trap 'stop_cluster; rm -rf "$out"' EXIT

# start_cluster BIN MODE BASEPORT: 3 members; sets $endpoints and $user.
start_cluster() {
    local bin=$1 mode=$2 base=$3
    start_members "$bin" 3 "$base"
    bench_flags=()
    if [ "$mode" = auth ]; then
        local ctl=(env ETCDCTL_API=3 /usr/bin/etcdctl --endpoints="$endpoints")
        "${ctl[@]}" user add root:rootpw >/dev/null
        "${ctl[@]}" user grant-role root root >/dev/null
        "${ctl[@]}" role add bench >/dev/null
        "${ctl[@]}" role grant-permission bench readwrite --from-key $'\x01' >/dev/null
        "${ctl[@]}" user add bench:pw >/dev/null
        "${ctl[@]}" user grant-role bench bench >/dev/null
        "${ctl[@]}" auth enable >/dev/null
        bench_flags=(--user=bench:pw)
    fi
}

for mode in plain auth; do
    for server in etcd-rs etcd; do
        bin=target/release/etcd base=45000
        [ "$server" = etcd ] && bin=/usr/bin/etcd base=46000
        label="$server-$mode"
        start_cluster "$bin" "$mode" "$base"
        run_cpu put $((20000 * scale)) put --val-size=256 --key-space-size=100000
        run_cpu range-l $((20000 * scale)) range foo --consistency=l
        grep -h "Error distribution" -A3 "$out/$label"-* || true
        stop_cluster
        rm -rf "$out"/data-*
    done
done

printf '%-8s %-6s %10s %10s %14s %14s\n' test mode etcd-rs etcd "etcd-rs us/req" "etcd us/req"
for name in put range-l; do
    for mode in plain auth; do
        read -r q1 c1 < "$out/etcd-rs-$mode-$name.sum"
        read -r q2 c2 < "$out/etcd-$mode-$name.sum"
        printf '%-8s %-6s %10s %10s %14s %14s\n' "$name" "$mode" "$q1" "$q2" "$c1" "$c2"
    done
done
echo
echo "Auth cost (auth QPS / plain QPS; CPU per request auth / plain):"
for name in put range-l; do
    read -r pq1 pc1 < "$out/etcd-rs-plain-$name.sum"
    read -r pq2 pc2 < "$out/etcd-plain-$name.sum"
    read -r q1 c1 < "$out/etcd-rs-auth-$name.sum"
    read -r q2 c2 < "$out/etcd-auth-$name.sum"
    awk -v n="$name" -v q1="$q1" -v p1="$pq1" -v q2="$q2" -v p2="$pq2" \
        -v c1="$c1" -v d1="$pc1" -v c2="$c2" -v d2="$pc2" \
        'BEGIN {printf "%-8s QPS etcd-rs %.2f etcd %.2f | CPU/req etcd-rs %.2f etcd %.2f\n", n, q1/p1, q2/p2, c1/d1, c2/d2}'
done
