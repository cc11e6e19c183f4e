#!/usr/bin/env bash
# PostgreSQL high availability on etcd-rs: `bash scripts/patroni-demo.sh`
# starts 3 etcd-rs members and 2 PostgreSQL nodes under Patroni (its
# `etcd3` DCS, which speaks etcd's JSON gateway) on 127.0.0.1, shows the
# leader with `patronictl list`, kills the primary's Patroni and
# PostgreSQL and shows the replica promoted, then kills the etcd-rs
# leader and shows Patroni keeps its leader key. Every step is checked;
# the script exits non-zero at the first that fails, and stops everything
# it started (by pid) on the way out.
#
# Needs: the built etcd (ETCD_BIN, default target/debug/etcd), PostgreSQL
# (Debian `postgresql`; PG_BIN, default its newest /usr/lib/postgresql/*/bin),
# Patroni with etcd3 and psycopg (PATRONI_PY: a Python with them, default
# the virtualenv scripts/test.sh makes in target/pyenv), and, when run as
# root, the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
etcd_bin=${ETCD_BIN:-$target/debug/etcd}
py=${PATRONI_PY:-$target/pyenv/bin/python3}
pg_bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
work=""
die() {
    echo "patroni-demo: FAILED: $*" >&2
    # Patroni's own lines (its tracebacks left out) say why it acted.
    for f in "$work"/pg*/patroni.log; do
        [ -f "$f" ] && { echo "--- Patroni's last decisions in $f" >&2; grep -E '^[0-9]{4}-.* (INFO|WARNING|ERROR|CRITICAL): ' "$f" | grep -v 'no action' | tail -40 >&2; }
    done
    for f in "$work"/e*.log; do
        [ -f "$f" ] && { echo "--- last lines of $f" >&2; tail -15 "$f" >&2; }
    done
    for f in "$work"/pg*/patroni.yml; do
        [ -f "$f" ] || continue
        echo "--- patronictl -c $f list" >&2
        "${as_pg[@]}" "$(dirname "$py")/patronictl" -c "$f" list >&2 || true
    done
    exit 1
}
[ -x "$etcd_bin" ] || die "no etcd at $etcd_bin (cargo build --bin etcd)"
[ -x "$pg_bin/postgres" ] || die "no PostgreSQL in '$pg_bin' (apt-get install postgresql)"
"$py" -c 'import patroni, psycopg' 2>/dev/null || die "$py has no patroni[etcd3,psycopg3]"

as_pg=()
if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the postgres user"
    as_pg=(runuser -u postgres --)
fi
work=$(mktemp -d /tmp/patroni-demo.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # The postmasters Patroni started (their pid files are in the data dirs).
    for f in "$work"/pg*/data/postmaster.pid; do
        [ -f "$f" ] && kill -9 "$(head -1 "$f")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

free_ports() {
    "$py" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r -a ports <<<"$(free_ports 10)"
client=("${ports[@]:0:3}")
peer=("${ports[@]:3:3}")
pg_port=("${ports[@]:6:2}")
api_port=("${ports[@]:8:2}")

# --- three etcd-rs members
initial=""
for i in 0 1 2; do initial+="${initial:+,}e$i=http://127.0.0.1:${peer[$i]}"; done
start_member() {
    local i=$1
    "$etcd_bin" --name "e$i" --data-dir "$work/e$i" \
        --listen-client-urls "http://127.0.0.1:${client[$i]}" \
        --advertise-client-urls "http://127.0.0.1:${client[$i]}" \
        --listen-peer-urls "http://127.0.0.1:${peer[$i]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${peer[$i]}" \
        --initial-cluster "$initial" --initial-cluster-token patroni-demo \
        >"$work/e$i.log" 2>&1 &
    member_pid[$i]=$!
    pids+=($!)
}
declare -a member_pid
for i in 0 1 2; do start_member "$i"; done
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || die "$what (not within ${limit}s)"
        sleep 0.5
    done
}
for i in 0 1 2; do
    wait_for 60 "etcd-rs member e$i healthy" curl -sf "http://127.0.0.1:${client[$i]}/health"
done
echo "== 3 etcd-rs members: ${client[*]}"

# --- two Patroni nodes
hosts="127.0.0.1:${client[0]},127.0.0.1:${client[1]},127.0.0.1:${client[2]}"
for n in 0 1; do
    mkdir -p "$work/pg$n"
    cat >"$work/pg$n/patroni.yml" <<EOF
scope: demo
name: pg$n
restapi:
  listen: 127.0.0.1:${api_port[$n]}
  connect_address: 127.0.0.1:${api_port[$n]}
etcd3:
  hosts: $hosts
bootstrap:
  dcs:
    # Patroni's minimum TTL, its rule loop_wait + 2 * retry_timeout <= ttl,
    # and a retry timeout that outlasts an etcd election: Patroni waits
    # retry_timeout / 3 for one request and for its watch cache.
    ttl: 20
    loop_wait: 1
    retry_timeout: 9
    maximum_lag_on_failover: 1048576
  initdb:
    - encoding: UTF8
  pg_hba:
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${pg_port[$n]}
  connect_address: 127.0.0.1:${pg_port[$n]}
  data_dir: $work/pg$n/data
  bin_dir: $pg_bin
  pgpass: $work/pg$n/pgpass
  authentication:
    superuser: {username: postgres, password: demo}
    replication: {username: replicator, password: demo}
  parameters:
    unix_socket_directories: '$work/pg$n'
EOF
done
[ ${#as_pg[@]} -eq 0 ] || chown -R postgres "$work"
declare -a patroni_pid
start_patroni() {
    local n=$1
    rm -f "$work/pg$n/patroni.pid"
    # Patroni writes its own pid (under runuser, $! would be runuser's).
    "${as_pg[@]}" sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$work/pg$n/patroni.pid" \
        "$py" -m patroni "$work/pg$n/patroni.yml" >"$work/pg$n/patroni.log" 2>&1 &
    pids+=($!)
    wait_for 10 "pg$n's Patroni started" test -s "$work/pg$n/patroni.pid"
    patroni_pid[$n]=$(cat "$work/pg$n/patroni.pid")
    pids+=("${patroni_pid[$n]}")
}
list() { "${as_pg[@]}" "$(dirname "$py")/patronictl" -c "$work/pg$1/patroni.yml" list 2>/dev/null; }
role_of() { # role_of NODE_TO_ASK MEMBER -> Leader / Replica / ...
    list "$1" | awk -v m="pg$2" -F'|' '{gsub(/ /,"",$2); gsub(/ /,"",$4); gsub(/ /,"",$5); if ($2 == m) print $4 "/" $5}'
}
is_role() { [ "$(role_of "$1" "$2")" = "$3" ]; }
start_patroni 0
wait_for 90 "pg0 the running leader" is_role 0 0 Leader/running
start_patroni 1
wait_for 90 "pg1 a streaming replica" is_role 0 1 Replica/streaming
echo "== Patroni with its leader on etcd-rs"
list 1

# --- the primary goes: its Patroni and its PostgreSQL are killed
kill -9 "${patroni_pid[0]}"
kill -9 "$(head -1 "$work/pg0/data/postmaster.pid")"
echo "== killed pg0's Patroni and PostgreSQL"
wait_for 60 "pg1 promoted" is_role 1 1 Leader/running
echo "== pg1 promoted"
list 1

# --- the etcd-rs leader goes: Patroni keeps its leader key
leader_member() {
    for i in 0 1 2; do
        st=$(curl -s -X POST "http://127.0.0.1:${client[$i]}/v3/maintenance/status" -d '{}' 2>/dev/null) || continue
        "$py" -c 'import json,sys; s=json.loads(sys.argv[1]); print(s["header"]["member_id"] == s["leader"])' "$st" | grep -q True && { echo "$i"; return; }
    done
    return 1
}
old=$(leader_member) || die "no etcd-rs leader"
kill -9 "${member_pid[$old]}"
echo "== killed the etcd-rs leader e$old"
alive=()
for i in 0 1 2; do [ "$i" = "$old" ] || alive+=("$i"); done
wait_for 30 "a new etcd-rs leader" leader_member
# Through several Patroni loops (1 s) and past the key's TTL (20 s).
deadline=$((SECONDS + 25))
while [ $SECONDS -lt $deadline ]; do
    # Patroni's REST API answers /primary with 200 only while it runs the
    # primary and holds the leader lock (what HAProxy checks); unlike
    # patronictl it does not read etcd itself.
    curl -sf -o /dev/null "http://127.0.0.1:${api_port[1]}/primary" \
        || die "pg1 lost its leader role after the etcd-rs leader went"
    sleep 1
done
key=$(curl -s -X POST "http://127.0.0.1:${client[${alive[0]}]}/v3/kv/range" -d '{"key":"L3NlcnZpY2UvZGVtby9sZWFkZXI="}')
"$py" -c 'import base64,json,sys; kv=json.loads(sys.argv[1])["kvs"][0]; assert base64.b64decode(kv["value"]) == b"pg1", kv' "$key" \
    || die "the leader key /service/demo/leader is not pg1: $key"
echo "== Patroni kept its leader key on etcd-rs: /service/demo/leader = pg1"
list 1
echo "patroni-demo: OK"
