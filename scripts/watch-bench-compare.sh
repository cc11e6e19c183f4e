#!/usr/bin/env bash
# Runs the watch benchmark (crates/tests/examples/watch_bench.rs) against a
# fresh single-member etcd-rs (release build) and then a fresh real etcd
# (Debian etcd-server), each on 127.0.0.1 with a temporary data dir, and
# prints both reports with each server's peak RSS. Every run is bounded.
# Needs /usr/bin/etcd (apt-get install etcd-server).
set -u
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
cargo build --release --bin etcd -q
cargo build --release -p etcd-rs-tests --example watch_bench -q
watch_bench() { timeout 300 target/release/examples/watch_bench "$1"; }
bench_compare 24300 watch_bench
