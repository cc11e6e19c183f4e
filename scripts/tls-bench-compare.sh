#!/usr/bin/env bash
# The cost of TLS, etcd-rs beside real etcd in one run: a 3-member cluster
# of each (real etcd: Debian's etcd-server, installed if missing; etcd-rs:
# the release build) in three modes, plain, client TLS (https client URLs,
# client certificates required) and peer TLS (https peer URLs, peer
# certificates required), with the same certificates (ECDSA P-256, made
# here with openssl). Each mode runs `benchmark` put and range
# (linearizable) with 100 clients on 10 connections, and prints QPS and
# the members' CPU time per request (user+system from /proc, the figure
# that noise on shared cores barely moves), then the TLS/plain ratios.
# Only 127.0.0.1; each benchmark run is bounded by `timeout`. TOTAL scales
# the request counts (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

if [ ! -x /usr/bin/etcd ]; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y -qq etcd-server >/dev/null || { echo "cannot install etcd-server" >&2; exit 1; }
fi
command -v openssl >/dev/null || { echo "openssl is needed to make the certificates" >&2; exit 1; }
cargo build --release --bin etcd --bin benchmark -q
bench=$PWD/target/release/benchmark
scale=${TOTAL:-1}
out=$(mktemp -d)
pids=()
stop_cluster() { kill "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" 2>/dev/null || true; pids=(); }
trap 'stop_cluster; rm -rf "$out"' EXIT

# A CA, and one certificate for 127.0.0.1 that serves and authenticates.
pki=$out/pki
mkdir -p "$pki"
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/ca-key.pem" 2>/dev/null
openssl req -x509 -new -key "$pki/ca-key.pem" -subj "/CN=bench CA" -days 2 -out "$pki/ca.pem" 2>/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$pki/key.pem" 2>/dev/null
openssl req -new -key "$pki/key.pem" -subj "/CN=bench" -out "$pki/csr.pem" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > "$pki/ext.cnf"
openssl x509 -req -in "$pki/csr.pem" -CA "$pki/ca.pem" -CAkey "$pki/ca-key.pem" -CAcreateserial \
    -days 2 -extfile "$pki/ext.cnf" -out "$pki/cert.pem" 2>/dev/null
client_tls=(--cert-file "$pki/cert.pem" --key-file "$pki/key.pem" --trusted-ca-file "$pki/ca.pem" --client-cert-auth)
peer_tls=(--peer-cert-file "$pki/cert.pem" --peer-key-file "$pki/key.pem" --peer-trusted-ca-file "$pki/ca.pem" --peer-client-cert-auth)

# start_cluster BIN MODE BASEPORT: 3 members; sets $endpoints and $bench_flags.
start_cluster() {
    local bin=$1 mode=$2 base=$3 cluster="" i cs=http ps=http extra=()
    case $mode in
        client-tls) cs=https; extra=("${client_tls[@]}") ;;
        peer-tls) ps=https; extra=("${peer_tls[@]}") ;;
    esac
    for i in 0 1 2; do
        cluster+="${cluster:+,}m$i=$ps://127.0.0.1:$((base + 10 * i + 1))"
    done
    endpoints=""
    for i in 0 1 2; do
        local c=$((base + 10 * i)) p=$((base + 10 * i + 1))
        "$bin" --name "m$i" --data-dir "$out/data-$base-$i" \
            --listen-client-urls "$cs://127.0.0.1:$c" --advertise-client-urls "$cs://127.0.0.1:$c" \
            --listen-peer-urls "$ps://127.0.0.1:$p" --initial-advertise-peer-urls "$ps://127.0.0.1:$p" \
            --initial-cluster "$cluster" --initial-cluster-token "bench-$base" --initial-cluster-state new \
            "${extra[@]}" > "$out/log-$base-$i" 2>&1 &
        pids+=($!)
        endpoints+="${endpoints:+,}$cs://127.0.0.1:$c"
    done
    bench_flags=()
    [ "$cs" = https ] && bench_flags=(--cacert "$pki/ca.pem" --cert "$pki/cert.pem" --key "$pki/key.pem")
    local curl_tls=(--cacert "$pki/ca.pem" --cert "$pki/cert.pem" --key "$pki/key.pem")
    for i in 0 1 2; do
        for _ in $(seq 200); do
            curl -sf "${curl_tls[@]}" "$cs://127.0.0.1:$((base + 10 * i))/health" | grep -q true && break
            sleep 0.1
        done
    done
}

for mode in plain client-tls peer-tls; do
    for server in etcd-rs etcd; do
        bin=target/release/etcd base=43000
        [ "$server" = etcd ] && bin=/usr/bin/etcd base=44000
        label="$server-$mode"
        start_cluster "$bin" "$mode" "$base"
        run_cpu put $((20000 * scale)) put --val-size=256 --key-space-size=100000
        run_cpu range-l $((20000 * scale)) range foo --consistency=l
        stop_cluster
        rm -rf "$out"/data-*
    done
done

printf '%-8s %-11s %10s %10s %14s %14s\n' test mode etcd-rs etcd "etcd-rs us/req" "etcd us/req"
for name in put range-l; do
    for mode in plain client-tls peer-tls; do
        read -r q1 c1 < "$out/etcd-rs-$mode-$name.sum"
        read -r q2 c2 < "$out/etcd-$mode-$name.sum"
        printf '%-8s %-11s %10s %10s %14s %14s\n' "$name" "$mode" "$q1" "$q2" "$c1" "$c2"
    done
done
echo
echo "TLS cost (TLS QPS / plain QPS; CPU per request TLS / plain):"
for name in put range-l; do
    read -r pq1 pc1 < "$out/etcd-rs-plain-$name.sum"
    read -r pq2 pc2 < "$out/etcd-plain-$name.sum"
    for mode in client-tls peer-tls; do
        read -r q1 c1 < "$out/etcd-rs-$mode-$name.sum"
        read -r q2 c2 < "$out/etcd-$mode-$name.sum"
        awk -v n="$name" -v m="$mode" -v q1="$q1" -v p1="$pq1" -v q2="$q2" -v p2="$pq2" \
            -v c1="$c1" -v d1="$pc1" -v c2="$c2" -v d2="$pc2" \
            'BEGIN {printf "%-8s %-11s QPS etcd-rs %.2f etcd %.2f | CPU/req etcd-rs %.2f etcd %.2f\n", n, m, q1/p1, q2/p2, c1/d1, c2/d2}'
    done
done
