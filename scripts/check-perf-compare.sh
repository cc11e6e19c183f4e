#!/usr/bin/env bash
# Runs `etcdctl check perf --load=$LOAD` (default s) against a fresh
# single-member etcd-rs (release build) and then a fresh real etcd (Debian
# etcd-server), each on 127.0.0.1 with a temporary data dir, and prints the
# verdict lines and each server's peak RSS. Build first:
#   cargo build --release --bin etcd
# ONLY=etcd-rs or ONLY=etcd runs one of the two.
# Needs /usr/bin/etcd and /usr/bin/etcdctl (apt-get install etcd-server etcd-client).
set -u
cd "$(dirname "$0")/.."
run() {
  local name=$1 bin=$2 port=$3
  local d; d=$(mktemp -d)
  $bin --name p --data-dir $d/data --listen-client-urls http://127.0.0.1:$port --advertise-client-urls http://127.0.0.1:$port \
       --listen-peer-urls http://127.0.0.1:$((port+1)) --initial-advertise-peer-urls http://127.0.0.1:$((port+1)) \
       --initial-cluster p=http://127.0.0.1:$((port+1)) > $d/log 2>&1 &
  local pid=$!
  for i in $(seq 100); do curl -sf http://127.0.0.1:$port/health >/dev/null && break; sleep 0.1; done
  echo "== $name"
  ETCDCTL_API=3 timeout 120 etcdctl --endpoints=127.0.0.1:$port check perf --load=${LOAD:-s} 2>&1 | grep -v "^ *[0-9]* / [0-9]*" | tr "\r" "\n" | grep -E "PASS|FAIL|Throughput|Slowest|Stddev" 
  local rss; rss=$(grep VmHWM /proc/$pid/status)
  echo "peak RSS: $rss"
  kill $pid; wait $pid 2>/dev/null; rm -rf $d
}
[ "${ONLY:-}" = etcd ] || run etcd-rs target/release/etcd 24100
[ "${ONLY:-}" = etcd-rs ] || run etcd-3.4.23 /usr/bin/etcd 24200
