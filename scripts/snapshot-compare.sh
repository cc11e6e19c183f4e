#!/usr/bin/env bash
# Snapshot save and restore of a large backend, etcd-rs (release build)
# beside real etcd (Debian etcd-server 3.4), each a fresh single member on
# 127.0.0.1 with a temporary data dir: GIB gibibytes (default 1) of
# 60,000-byte values are put, then the Go etcdctl's `snapshot save`
# streams the member's snapshot to a file, and the file is restored into
# a new data dir: by our `etcdutl snapshot restore` for etcd-rs, by the
# Go `etcdctl snapshot restore` for etcd (3.4 has no etcdutl). Prints each
# step's wall time and the tool's peak RSS (/usr/bin/time), the
# snapshot's size, and the member's peak RSS over the whole run.
# ONLY=etcd-rs or ONLY=etcd runs one server.
set -u
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
cargo build --release --bin etcd --bin benchmark --bin etcdutl -q
bench=target/release/benchmark
ctl=/usr/bin/etcdctl
gib=${GIB:-1}

snapshot_case() {
    local ep=$1 d; d=$(mktemp -d)
    fill_values "$ep" "$gib" || return 1
    /usr/bin/time -f "save took %e s, etcdctl peak RSS %M kB" \
        "$ctl" --endpoints="$ep" --command-timeout=600s snapshot save "$d/snap.db" > /dev/null 2> "$d/save.err"
    tail -1 "$d/save.err"
    echo "snapshot: $(stat -c %s "$d/snap.db") bytes"
    local restore=("$ctl" snapshot restore)
    curl -sf "$ep/version" | grep -q '"etcdserver":"3.5' && restore=(target/release/etcdutl snapshot restore)
    ETCDCTL_API=3 /usr/bin/time -f "restore took %e s, ${restore[0]##*/} peak RSS %M kB" \
        "${restore[@]}" "$d/snap.db" --data-dir "$d/restored" > /dev/null 2> "$d/restore.err"
    tail -1 "$d/restore.err"
    rm -rf "$d"
}

bench_compare 24600 snapshot_case
