#!/usr/bin/env bash
# etcd-rs beside real etcd, in one run, on this machine: for a 1-member and
# a 3-member cluster of each (real etcd: Debian's etcd-server, installed if
# missing; etcd-rs: the release build), with the same flags and data dirs
# on the same disk, runs the same `benchmark` commands and prints a table
# of QPS, p50 and p99 latency and the members' peak RSS, with the ratio
# etcd-rs / etcd. Only 127.0.0.1; every benchmark run is bounded by
# `timeout`. TOTAL scales the request counts (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

if [ ! -x /usr/bin/etcd ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -qq etcd-server >/dev/null || { echo "cannot install etcd-server" >&2; exit 1; }
fi
cargo build --release --bin etcd --bin benchmark -q
bench=target/release/benchmark
scale=${TOTAL:-1}
out=$(mktemp -d)
pids=()
stop_cluster() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
trap 'stop_cluster; rm -rf "$out"' EXIT

peak_rss_mb() {
    local max=0 kb p
    for p in "${pids[@]}"; do
        kb=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        [ "${kb:-0}" -gt "$max" ] && max=$kb
    done
    echo $((max / 1024))
}

# run NAME ARGS...: one bounded benchmark; records "qps p50 p99" (ms).
run() {
    local name=$1; shift
    local f="$out/$label-$name"
    if timeout 600 "$bench" --endpoints="$endpoints" "$@" > "$f" 2>&1; then
        awk '/Requests\/sec/ {q=$2} /^  50% in/ {p50=$3*1000} /^  99% in/ {p99=$3*1000}
             END {printf "%.0f %.2f %.2f\n", q, p50, p99}' "$f" > "$f.sum"
    else
        echo "failed failed failed" > "$f.sum"
    fi
}

suite() {
    run put-1-client --clients=1 --conns=1 put --total=$((2000 * scale)) --val-size=256 --key-space-size=100000
    run put-100-clients --clients=100 --conns=10 put --total=$((20000 * scale)) --val-size=256 --key-space-size=100000
    run range-l-100-clients --clients=100 --conns=10 range foo --consistency=l --total=$((20000 * scale))
    run range-s-100-clients --clients=100 --conns=10 range foo --consistency=s --total=$((20000 * scale))
    run put-100k-256B --clients=100 --conns=10 put --total=100000 --val-size=256 --key-space-size=100000 --sequential-keys
    echo "$(peak_rss_mb)" > "$out/$label-rss"
}

for n in 1 3; do
    for server in etcd-rs etcd; do
        bin=target/release/etcd; [ $server = etcd ] && bin=/usr/bin/etcd
        base=$([ $server = etcd ] && echo 43000 || echo 42000)
        label="$server-$n"
        echo "running the suite against $n-member $server ..." >&2
        start_members "$bin" "$n" "$base"
        suite
        stop_cluster
        rm -rf "$out"/data-*
    done
done

printf '| benchmark | members | QPS etcd-rs | QPS etcd | ratio | p50 ms etcd-rs | p50 ms etcd | ratio | p99 ms etcd-rs | p99 ms etcd | ratio |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 == a) printf "%.2f", a / b; else printf "-" }'; }
for n in 1 3; do
    for name in put-1-client put-100-clients range-l-100-clients range-s-100-clients put-100k-256B; do
        read -r rq rp50 rp99 < "$out/etcd-rs-$n-$name.sum"
        read -r eq ep50 ep99 < "$out/etcd-$n-$name.sum"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$n" \
            "$rq" "$eq" "$(ratio "$rq" "$eq")" "$rp50" "$ep50" "$(ratio "$rp50" "$ep50")" \
            "$rp99" "$ep99" "$(ratio "$rp99" "$ep99")"
    done
done
printf '\n| peak RSS of a member (MB) | members | etcd-rs | etcd | ratio |\n|---|---|---|---|---|\n'
for n in 1 3; do
    r=$(cat "$out/etcd-rs-$n-rss"); e=$(cat "$out/etcd-$n-rss")
    printf '| whole suite incl. 100,000 puts of 256 B | %s | %s | %s | %s |\n' "$n" "$r" "$e" "$(ratio "$r" "$e")"
done
