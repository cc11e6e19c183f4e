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
. scripts/bench-lib.sh
check_perf() {
    ETCDCTL_API=3 timeout 120 etcdctl --endpoints="${1#http://}" check perf --load="${LOAD:-s}" 2>&1 \
        | tr "\r" "\n" | grep -E "PASS|FAIL|Throughput|Slowest|Stddev"
}
bench_compare 24100 check_perf
