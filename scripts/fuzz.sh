#!/usr/bin/env bash
# Long, coverage-guided fuzz runs of crates/fuzz's targets: libFuzzer
# through cargo fuzz, which needs the nightly toolchain. The test command
# runs the same targets briefly on stable (crates/fuzz/tests/bounded.rs).
#
# usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   default: 60 seconds for each of wal_segment snapshot_record
#   peer_message request_validation txn_eval.
# New inputs that reach new code are kept in crates/fuzz/corpus/<target>/
# (minimized at the end; commit them). A crash is left in
# crates/fuzz/libfuzzer/artifacts/<target>/: fix it, copy the input into
# the corpus (the bounded run then checks it for ever), and commit both.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "scripts/fuzz.sh: error: $*" >&2; exit 1; }

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wal_segment snapshot_record peer_message request_validation txn_eval)

rustup toolchain list | grep -q '^nightly' || die "cargo fuzz needs the nightly toolchain (rustup toolchain install nightly)"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked || die "could not install cargo-fuzz"

seeds=target/fuzz-seeds
cargo run -q -p etcd-rs-fuzz --bin fuzz-seeds -- "$seeds"
for t in "${targets[@]}"; do
    corpus=crates/fuzz/corpus/$t
    mkdir -p "$corpus"
    echo "scripts/fuzz.sh: $t for ${secs}s" >&2
    cargo +nightly fuzz run --fuzz-dir crates/fuzz/libfuzzer "$t" "$corpus" "$seeds/$t" -- \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 \
        || die "$t crashed: see crates/fuzz/libfuzzer/artifacts/$t/"
    # Keep only inputs that add coverage (libFuzzer's merge, with the
    # binary the run built).
    min=$(mktemp -d)
    crates/fuzz/libfuzzer/target/x86_64-unknown-linux-gnu/release/"$t" -merge=1 \
        -max_len=65536 "$min" "$corpus" >/dev/null 2>&1 || die "could not minimize the corpus of $t"
    rm -rf "$corpus"
    mv "$min" "$corpus"
done
echo "scripts/fuzz.sh: no crash; corpus sizes:" >&2
du -sh crates/fuzz/corpus/* >&2
