#!/usr/bin/env bash
# Starts a 3-member etcd-rs cluster on 127.0.0.1, as etcd's Procfile does:
#   infra1: clients http://127.0.0.1:2379,  peers http://127.0.0.1:12380
#   infra2: clients http://127.0.0.1:22379, peers http://127.0.0.1:22380
#   infra3: clients http://127.0.0.1:32379, peers http://127.0.0.1:32380
# Data goes to ./local-cluster/infraN.etcd (kept across runs; delete the
# folder to start afresh), logs to ./local-cluster/infraN.log. Ctrl-C stops
# all three. Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin etcd
bin=target/release/etcd
dir=local-cluster
mkdir -p "$dir"
cluster="infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380"
pids=()
stop() {
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT INT TERM
for i in 1 2 3; do
    client=$([ "$i" = 1 ] && echo 2379 || echo "${i}2379")
    peer="${i}2380"
    "$bin" --name "infra$i" --data-dir "$dir/infra$i.etcd" \
        --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster-token etcd-cluster-1 --initial-cluster "$cluster" --initial-cluster-state new \
        >"$dir/infra$i.log" 2>&1 &
    pids+=($!)
done
echo "etcd-rs cluster starting: endpoints 127.0.0.1:2379,127.0.0.1:22379,127.0.0.1:32379 (logs in $dir/)"
echo "Ctrl-C to stop."
wait -n "${pids[@]}" || true
echo "a member exited; stopping the others (see $dir/*.log)" >&2
