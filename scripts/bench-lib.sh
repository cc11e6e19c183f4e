# Shared by the scripts/*-compare.sh benchmarks (source it, do not run it).
#
# cpu_ticks: clock ticks of user+system time so far of the processes in
# the array $pids.
#
# run_cpu NAME TOTAL ARGS...: runs `$bench --endpoints=$endpoints
# ${bench_flags[@]} --clients=100 --conns=10 ARGS --total=TOTAL`, bounded,
# and writes "qps cpu-us-per-request" (the CPU of $pids) to
# $out/$label-NAME.sum ("failed failed" if it failed).
#
# start_members BIN N BASEPORT: a fresh N-member cluster of BIN, clients
# on BASEPORT+10*i, peers on BASEPORT+10*i+1, data dirs and logs in $out
# (data-BASEPORT-i, log-BASEPORT-i); appends the members to the array
# $pids, sets $endpoints (comma-separated http URLs) and returns once
# every member reports healthy (or 20 s passed).
#
# fill_values ENDPOINT GIB: puts GIB gibibytes of 60,000-byte values
# (distinct keys) with `$bench`; fails if the benchmark does.
#
# bench_compare PORT FUNCTION: calls `FUNCTION ENDPOINT` against a fresh
# single-member etcd-rs (target/release/etcd) on 127.0.0.1:PORT, then
# against a fresh real etcd (/usr/bin/etcd, Debian etcd-server) on
# 127.0.0.1:PORT+100, each with a temporary data dir, and prints each
# server's peak RSS. ONLY=etcd-rs or ONLY=etcd runs one of the two.

bench_run() {
    local name=$1 bin=$2 port=$3 fn=$4
    local d; d=$(mktemp -d)
    "$bin" --name b --data-dir "$d/data" \
        --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$((port+1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port+1))" \
        --initial-cluster "b=http://127.0.0.1:$((port+1))" > "$d/log" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
    echo "== $name"
    "$fn" "http://127.0.0.1:$port" || echo "(benchmark failed or timed out)"
    echo "peak RSS: $(grep VmHWM "/proc/$pid/status" | awk '{print $2, $3}')"
    kill "$pid"; wait "$pid" 2>/dev/null; rm -rf "$d"
}

start_members() {
    local bin=$1 n=$2 base=$3 cluster="" i
    for i in $(seq 0 $((n - 1))); do
        cluster+="${cluster:+,}m$i=http://127.0.0.1:$((base + 10 * i + 1))"
    done
    endpoints=""
    for i in $(seq 0 $((n - 1))); do
        local c=$((base + 10 * i)) p=$((base + 10 * i + 1))
        "$bin" --name "m$i" --data-dir "$out/data-$base-$i" \
            --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
            --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
            --initial-cluster "$cluster" --initial-cluster-token "bench-$base" --initial-cluster-state new \
            > "$out/log-$base-$i" 2>&1 &
        pids+=($!)
        endpoints+="${endpoints:+,}http://127.0.0.1:$c"
    done
    for i in $(seq 0 $((n - 1))); do
        for _ in $(seq 200); do
            curl -sf "http://127.0.0.1:$((base + 10 * i))/health" | grep -q true && break
            sleep 0.1
        done
    done
}

fill_values() {
    local keys=$(($2 * 1073741824 / 60000))
    timeout 900 "$bench" --endpoints="$1" --clients=10 --conns=2 put --total=$keys \
        --key-space-size=$keys --sequential-keys --val-size=60000 > /dev/null 2>&1 || { echo "fill failed"; return 1; }
}

bench_compare() {
    local port=$1 fn=$2
    [ "${ONLY:-}" = etcd ] || bench_run etcd-rs target/release/etcd "$port" "$fn"
    [ "${ONLY:-}" = etcd-rs ] || bench_run etcd-3.4.23 /usr/bin/etcd "$((port+100))" "$fn"
}

cpu_ticks() {
    local sum=0 p
    for p in "${pids[@]}"; do
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$sum"
}

run_cpu() {
    local name=$1 total=$2; shift 2
    local f="$out/$label-$name" before after
    before=$(cpu_ticks)
    if timeout 600 "$bench" --endpoints="$endpoints" "${bench_flags[@]}" --clients=100 --conns=10 "$@" --total="$total" > "$f" 2>&1; then
        after=$(cpu_ticks)
        awk -v t=$((after - before)) -v n="$total" -v hz="$(getconf CLK_TCK)" \
            '/Requests\/sec/ {q=$2} END {printf "%.0f %.1f\n", q, t / hz * 1e6 / n}' "$f" > "$f.sum"
    else
        echo "failed failed" > "$f.sum"
    fi
}
