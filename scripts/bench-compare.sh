#!/usr/bin/env bash
# etcd-rs beside real etcd, in one run, on this machine: for a 1-member and
# a 3-member cluster of each (real etcd: Debian's etcd-server, installed if
# missing; etcd-rs: the release build), with the same flags and data dirs
# on the same disk, runs the same `benchmark` commands and prints a table
# of QPS, p99 latency and server CPU time per request (user+system of all
# members, from /proc, divided by the requests), and the members' peak RSS,
# each with the ratio etcd-rs / etcd. RUNS (default 2) alternating runs:
# odd runs start with etcd-rs, even ones with etcd; every cell shows each
# run's figure, separated by " / ". Only 127.0.0.1; every benchmark run is
# bounded by `timeout`. TOTAL scales the request counts (default 1); KEYS
# is the distinct keys of the large-key-space put row (default 100000).
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

# run NAME TOTAL ARGS...: one bounded benchmark of TOTAL requests;
# records "qps p99-ms cpu-us-per-request" of it.
run() {
    local name=$1 total=$2; shift 2
    local f="$out/$label-$name" before after
    before=$(cpu_ticks)
    if timeout 600 "$bench" --endpoints="$endpoints" "$@" --total="$total" > "$f" 2>&1; then
        after=$(cpu_ticks)
        awk -v t=$((after - before)) -v n="$total" -v hz="$(getconf CLK_TCK)" \
            '/Requests\/sec/ {q=$2} /^  99% in/ {p99=$3*1000}
             END {printf "%.0f %.2f %.1f\n", q, p99, t / hz * 1e6 / n}' "$f" > "$f.sum"
    else
        echo "failed failed failed" > "$f.sum"
    fi
}

rows="put-1-client put-100-clients range-l-100-clients range-s-100-clients txn-put-100-clients lease-keepalive-100-clients put-keyspace-256B"
keys=${KEYS:-100000}
suite() {
    local c100=(--clients=100 --conns=10)
    run put-1-client $((2000 * scale)) --clients=1 --conns=1 put --val-size=256 --key-space-size=100000
    run put-100-clients $((20000 * scale)) "${c100[@]}" put --val-size=256 --key-space-size=100000
    run range-l-100-clients $((20000 * scale)) "${c100[@]}" range foo --consistency=l
    run range-s-100-clients $((20000 * scale)) "${c100[@]}" range foo --consistency=s
    run txn-put-100-clients $((20000 * scale)) "${c100[@]}" txn-put --val-size=256 --key-space-size=100000
    run lease-keepalive-100-clients $((20000 * scale)) "${c100[@]}" lease-keepalive
    run put-keyspace-256B "$keys" "${c100[@]}" put --val-size=256 --key-space-size="$keys" --sequential-keys
    echo "$(peak_rss_mb)" > "$out/$label-rss.sum"
}

runs=${RUNS:-2}
for r in $(seq "$runs"); do
    order="etcd-rs etcd"; [ $((r % 2)) = 0 ] && order="etcd etcd-rs"
    for n in 1 3; do
        for server in $order; do
            bin=target/release/etcd; [ $server = etcd ] && bin=/usr/bin/etcd
            base=$([ $server = etcd ] && echo 43000 || echo 42000)
            label="$server-$n-$r"
            echo "run $r: the suite against $n-member $server ..." >&2
            start_members "$bin" "$n" "$base"
            suite
            stop_cluster
            rm -rf "$out"/data-*
        done
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 == a) printf "%.2f", a / b; else printf "-" }'; }
# figure SERVER-N RUN NAME FIELD: one recorded figure.
figure() { awk -v f="$4" '{print $f}' "$out/$1-$2-$3.sum"; }
# cells SERVER-N NAME FIELD: that figure of every run, " / "-separated.
cells() {
    local r acc=""
    for r in $(seq "$runs"); do acc+="${acc:+ / }$(figure "$1" "$r" "$2" "$3")"; done
    echo "$acc"
}
# ratios N NAME FIELD: etcd-rs / etcd of that figure in every run.
ratios() {
    local r acc=""
    for r in $(seq "$runs"); do
        acc+="${acc:+ / }$(ratio "$(figure "etcd-rs-$1" "$r" "$2" "$3")" "$(figure "etcd-$1" "$r" "$2" "$3")")"
    done
    echo "$acc"
}
printf '| benchmark | members | QPS etcd-rs | QPS etcd | ratio | p99 ms etcd-rs | p99 ms etcd | ratio | CPU µs/req etcd-rs | CPU µs/req etcd | ratio |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
for n in 1 3; do
    for name in $rows; do
        printf '| %s | %s |' "$name" "$n"
        for field in 1 2 3; do
            printf ' %s | %s | %s |' "$(cells "etcd-rs-$n" "$name" $field)" \
                "$(cells "etcd-$n" "$name" $field)" "$(ratios "$n" "$name" $field)"
        done
        printf '\n'
    done
done
printf '\n| peak RSS of a member (MB) | members | etcd-rs | etcd | ratio |\n|---|---|---|---|---|\n'
for n in 1 3; do
    printf '| whole suite incl. %s puts of 256 B | %s | %s | %s | %s |\n' "$keys" "$n" \
        "$(cells "etcd-rs-$n" rss 1)" "$(cells "etcd-$n" rss 1)" "$(ratios "$n" rss 1)"
done
