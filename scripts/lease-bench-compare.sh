#!/usr/bin/env bash
# Runs the lease benchmark (crates/tests/examples/lease_bench.rs) against a
# fresh single-member etcd-rs (release build) and then a fresh real etcd
# (Debian etcd-server), each on 127.0.0.1 with a temporary data dir, and
# prints both reports with each server's peak RSS. LEASES=N sets how many
# leases expire (default 100000, as in the issue). Every run is bounded.
# Needs /usr/bin/etcd (apt-get install etcd-server).
set -u
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
cargo build --release --bin etcd -q
cargo build --release -p etcd-rs-tests --example lease_bench -q
lease_bench() { timeout 900 target/release/examples/lease_bench "$1" "${LEASES:-100000}"; }
bench_compare 24500 lease_bench
