#!/usr/bin/env bash
# Runs every check and test of etcd-rs: formatting, clippy, unit tests and
# the black-box integration tests against the built `etcd`.
#
# The integration tests drive our server with the real Go etcdctl (Debian
# package etcd-client) and curl (the TLS tests), compare it with the
# reference etcd (etcd-server), and the etcd-client crate they use needs
# protoc (protobuf-compiler); the gateway tests run python-etcd3gw and
# Patroni from PyPI in a virtualenv (python3, python3-venv) and PostgreSQL
# (postgresql). Whatever of these is
# missing is installed here; if that fails, this script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "scripts/test.sh: error: $*" >&2; exit 1; }

missing=()
[ -x /usr/bin/etcd ] || missing+=(etcd-server)
[ -x /usr/bin/etcdctl ] || missing+=(etcd-client)
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ -x /usr/bin/python3 ] || missing+=(python3)
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    echo "scripts/test.sh: installing ${missing[*]}" >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root or sudo to install ${missing[*]}"
        sudo=sudo
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
    $sudo apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "could not install ${missing[*]}"
fi
[ -x /usr/bin/etcd ] || die "/usr/bin/etcd (etcd-server) is still missing"
[ -x /usr/bin/etcdctl ] || die "/usr/bin/etcdctl (etcd-client) is still missing"
command -v protoc >/dev/null 2>&1 || die "protoc (protobuf-compiler) is still missing"
command -v curl >/dev/null 2>&1 || die "curl is still missing"
# PyPI tools, pinned, in a virtualenv of Debian's Python (readable by the
# postgres user the Patroni demo runs PostgreSQL as): python-etcd3gw for
# tests/etcd3gw.rs, Patroni for tests/patroni.rs.
pyenv="${CARGO_TARGET_DIR:-$PWD/target}/pyenv"
if ! "$pyenv/bin/python3" -c 'import etcd3gw, patroni, psycopg' >/dev/null 2>&1; then
    rm -rf "$pyenv"
    /usr/bin/python3 -m venv "$pyenv" || die "could not make the virtualenv $pyenv"
    "$pyenv/bin/pip" install --quiet etcd3gw==2.7.0 "patroni[etcd3,psycopg3]==4.0.4" "psycopg[binary]==3.2.3" \
        || die "could not install etcd3gw and patroni from PyPI"
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# The integration tests start the `etcd` binary of this build (and run
# the examples).
cargo build --workspace --bins --examples
timeout 3000 cargo test --workspace
# The etcdctl-driven tests once more, with our etcdctl standing in for the
# Go one: everything they assert of its output must hold for ours too.
ETCDCTL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/etcdctl" timeout 900 \
    cargo test -p etcd-rs-tests --test etcdctl_kv --test watch --test lease --test tls_server \
        --test auth_enforce --test auth_tokens --test maintenance_output --test corrupt
