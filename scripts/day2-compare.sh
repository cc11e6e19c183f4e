#!/usr/bin/env bash
# Day-two operations under load, etcd-rs (release build) beside real etcd
# (Debian etcd-server), each a fresh single member on 127.0.0.1 with a
# temporary data dir:
#
# compaction: N revisions (default 1,000,000) of small puts over 1,000
#   keys, then a paced put load (500/s, 10 clients, 20 s) run twice: once
#   alone (the baseline) and once while `etcdctl compact` removes every
#   revision but the last of each key. Prints each run's p99 and slowest
#   put, and how long the compaction took (the server's own "finished
#   scheduled compaction" log line).
#
# defrag: GIB gibibytes (default 1) of 60,000-byte values, then a paced
#   serializable range load and a paced put load (200/s each, 10 clients,
#   30 s) while `etcdctl defrag` runs 3 s in. Prints how long the defrag
#   took and the slowest range and put of the run (the longest stall a
#   client saw), with p99s.
#
# MEMBERS=3 runs the cases on a 3-member cluster of each instead (the
# loads spread over the members), and the compaction case also counts the
# leader changes the members saw during its paced runs.
#
# ONLY=etcd-rs or ONLY=etcd runs one server; CASES="compaction defrag"
# picks the cases.
set -u
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
cargo build --release --bin etcd --bin benchmark -q
bench=target/release/benchmark
# The Go etcdctl (Debian etcd-client) drives both servers alike.
ctl=/usr/bin/etcdctl
revisions=${N:-1000000}
gib=${GIB:-1}
cases=${CASES:-compaction defrag}

# The p99 and slowest request (ms) of a benchmark report.
latency() {
    awk '/Slowest:/ {s=$2*1000} /^  99% in/ {p=$3*1000} END {printf "p99 %.1f ms, slowest %.1f ms", p, s}' "$1"
}

# The log file of the member serving the last of the comma-separated
# ENDPOINTS: where its standard output goes.
log_of() {
    local pid; pid=$(ss -ltnpH "sport = :${1##*:}" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    readlink "/proc/$pid/fd/1"
}

# The leader changes the members of the comma-separated ENDPOINTS saw so
# far, summed (etcd_server_leader_changes_seen_total).
leader_changes() {
    local sum=0 e n
    for e in ${1//,/ }; do
        n=$(curl -sf "$e/metrics" | awk '/^etcd_server_leader_changes_seen_total/ {print $2}')
        sum=$((sum + ${n:-0}))
    done
    echo "$sum"
}

compaction_case() {
    local ep=$1 f; f=$(mktemp)
    timeout 900 "$bench" --endpoints="$ep" --clients=100 --conns=10 put \
        --total="$revisions" --key-space-size=1000 --val-size=64 > /dev/null 2>&1 || { echo "fill failed"; return 1; }
    local changes; changes=$(leader_changes "$ep")
    timeout 120 "$bench" --endpoints="$ep" --clients=10 put --rate=500 --total=10000 --key-space-size=1000 > "$f" 2>&1
    echo "put alone:               $(latency "$f")"
    local rev; rev=$("$ctl" --endpoints="$ep" get k -w json | grep -o '"revision":[0-9]*' | head -1 | cut -d: -f2)
    timeout 120 "$bench" --endpoints="$ep" --clients=10 put --rate=500 --total=10000 --key-space-size=1000 > "$f" 2>&1 &
    local load=$!
    sleep 2
    "$ctl" --endpoints="$ep" compact "$rev" > /dev/null
    wait "$load"
    echo "put while compacting:    $(latency "$f")"
    echo "leader changes during the paced runs: $(($(leader_changes "$ep") - changes))"
    echo "server's log: $(grep -m1 'finished scheduled compaction' "$(log_of "$ep")" | cut -c1-220)"
    rm -f "$f"
}

defrag_case() {
    local ep=$1 r w; r=$(mktemp); w=$(mktemp)
    fill_values "$ep" "$gib" || return 1
    "$ctl" --endpoints="$ep" put small x > /dev/null
    echo "backend: $("$ctl" --endpoints="$ep" endpoint status -w table | awk -F'|' 'NR==4 {print $5}')"
    timeout 120 "$bench" --endpoints="$ep" --clients=10 range small --consistency=s --rate=200 --total=6000 > "$r" 2>&1 &
    local reads=$!
    timeout 120 "$bench" --endpoints="$ep" --clients=10 put --rate=200 --total=6000 --key-space-size=1000 > "$w" 2>&1 &
    local writes=$!
    sleep 3
    local t0 t1; t0=$(date +%s.%N)
    "$ctl" --endpoints="$ep" --command-timeout=600s defrag > /dev/null
    t1=$(date +%s.%N)
    wait "$reads" "$writes"
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "defrag took %.2f s\n", b - a}'
    echo "range during the run:    $(latency "$r")"
    echo "put during the run:      $(latency "$w")"
    rm -f "$r" "$w"
}

day2() {
    local ep=$1
    for c in $cases; do
        echo "-- $c"
        "${c}_case" "$ep"
    done
}
# members3 NAME BIN PORT FUNCTION: FUNCTION on a fresh 3-member cluster
# of BIN (bench-lib's start_members on PORT), then the members' peak RSS.
members3() {
    local name=$1 bin=$2 port=$3 fn=$4 out pids=()
    out=$(mktemp -d)
    start_members "$bin" 3 "$port"
    echo "== $name, 3 members"
    "$fn" "$endpoints" || echo "(benchmark failed or timed out)"
    echo "peak RSS of a member: $(for p in "${pids[@]}"; do awk '/VmHWM/ {print $2}' "/proc/$p/status"; done | sort -n | tail -1) kB"
    kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null; rm -rf "$out"
}

if [ "${MEMBERS:-1}" = 3 ]; then
    [ "${ONLY:-}" = etcd ] || members3 etcd-rs target/release/etcd 24900 day2
    [ "${ONLY:-}" = etcd-rs ] || members3 etcd-3.4.23 /usr/bin/etcd 25000 day2
else
    bench_compare 24800 day2
fi
