#!/usr/bin/env bash
# Fault runs: `bash scripts/robustness.sh N [SECONDS]` runs seeds 1..N of
# the robustness hunter (crates/robustness), SECONDS of traffic each
# (default 20), against a fresh 3-member cluster of the built etcd on
# loopback, and prints a summary line per seed and the failing seeds.
# A failing seed's output is kept in target/robustness/seed-S.txt, its
# report (fault timeline, what broke, the smallest non-linearizable part
# of the history found) and members' logs in target/robustness/seed-S/;
# it replays with
# `ETCD_BIN=target/faults/release/etcd target/release/robustness --seed S`
# (the faults and operations follow
# the seed; their timing is the machine's).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:?usage: scripts/robustness.sh N [SECONDS]}
seconds=${2:-20}
# The members are a `failpoints` build (the disk-full fault needs it),
# kept apart from the real binary.
cargo build --release --bin robustness -q
cargo build --release -q -p etcd-rs-server --features failpoints --bin etcd --target-dir target/faults
export ETCD_BIN=$PWD/target/faults/release/etcd
failed=()
ops=0
faults=0
for seed in $(seq 1 "$n"); do
    if out=$(timeout $((seconds + 240)) target/release/robustness --seed "$seed" --seconds "$seconds" 2>&1); then
        status=ok
    else
        status=FAILED
        failed+=("$seed")
        mkdir -p target/robustness
        printf '%s\n' "$out" > "target/robustness/seed-$seed.txt"
    fi
    o=$(printf '%s\n' "$out" | sed -n 's/^seed [0-9]*: \([0-9]*\) operations.*/\1/p')
    # The fault timeline: one indented line per fault, "  <time>s <fault>".
    f=$(printf '%s\n' "$out" | grep -cE '^ +[0-9]+\.[0-9]+s ' || true)
    ops=$((ops + ${o:-0}))
    faults=$((faults + f))
    echo "seed $seed: $status, ${o:-?} operations, $f faults"
done
echo "$n runs, $faults faults, $ops operations checked, ${#failed[@]} failed ${failed[*]:-}"
[ ${#failed[@]} -eq 0 ]
