#!/usr/bin/env bash
# Starts the real services the scale-out tests use: a private PostgreSQL
# cluster and a single-node Garage (S3-compatible) store, both on loopback.
# Installs what is missing (PostgreSQL from Debian's packages, Garage with
# `cargo install` into a cached folder), then writes the connection details to
# an env file the tests read:
#
#   ~/.cache/imc-tools/services.env   (or $IMC_SERVICES_ENV)
#     IMC_TEST_DATABASE_URL  postgres://... of a database for tests
#     IMC_TEST_S3_URL        s3://bucket for tests (each test uses its own prefix)
#     AWS_ENDPOINT, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#     AWS_ALLOW_HTTP         how to reach Garage, in the usual AWS_* form
#
# Safe to run again: a running service is left alone, so a second run takes
# about a second. State lives outside the clone, under ~/.cache/imc-tools
# (as root the PostgreSQL cluster lives under the postgres user's home,
# because initdb refuses to run as root and postgres cannot enter /root).
set -euo pipefail

tools="${IMC_TOOLS_DIR:-$HOME/.cache/imc-tools}"
env_file="${IMC_SERVICES_ENV:-$tools/services.env}"
pg_port="${IMC_PG_PORT:-55432}"
s3_port="${IMC_GARAGE_PORT:-39000}"
mkdir -p "$tools"

if [[ $(id -u) -eq 0 ]]; then sudo=""; else sudo="sudo"; fi

apt_install() {
    echo "services: installing $*"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# ---------------------------------------------------------------- PostgreSQL
pg_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
[[ -n "$(pg_bin)" ]] || apt_install postgresql
pg_bin="$(pg_bin)"
[[ -x "$pg_bin/initdb" ]] || { echo "services: no PostgreSQL server binaries found" >&2; exit 1; }

if [[ $(id -u) -eq 0 ]]; then
    pg_home="$(getent passwd postgres | cut -d: -f6)"
    pg_dir="${IMC_PG_DIR:-$pg_home/imc-tools/pg}"
    as_pg() { runuser -u postgres -- "$@"; }
    mkdir -p "$pg_dir"
    chown postgres:postgres "$(dirname "$pg_dir")" "$pg_dir"
else
    pg_dir="${IMC_PG_DIR:-$tools/pg}"
    as_pg() { "$@"; }
    mkdir -p "$pg_dir"
fi
pg_data="$pg_dir/data"
pg_password_file="$pg_dir/password"

if [[ ! -s "$pg_password_file" ]]; then
    as_pg sh -c "umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > '$pg_password_file'"
fi
pg_password="$(cat "$pg_password_file")"

if [[ ! -f "$pg_data/PG_VERSION" ]]; then
    echo "services: creating PostgreSQL cluster in $pg_data"
    as_pg "$pg_bin/initdb" -D "$pg_data" -U imc --pwfile="$pg_password_file" \
        --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi

if ! as_pg "$pg_bin/pg_ctl" -D "$pg_data" status >/dev/null 2>&1; then
    echo "services: starting PostgreSQL on 127.0.0.1:$pg_port"
    # The socket goes into the cluster's own folder; tests use TCP on loopback.
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $pg_port -c unix_socket_directories='$pg_dir' -c max_connections=200" \
        start >/dev/null
fi

export PGPASSWORD="$pg_password"
psql_admin=(psql -h 127.0.0.1 -p "$pg_port" -U imc -d postgres -qAt -v ON_ERROR_STOP=1)
if [[ -z "$("${psql_admin[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'imc_test'")" ]]; then
    "${psql_admin[@]}" -c "CREATE DATABASE imc_test"
fi
unset PGPASSWORD
database_url="postgres://imc:$pg_password@127.0.0.1:$pg_port/imc_test"

# -------------------------------------------------------------------- Garage
garage_root="${IMC_GARAGE_ROOT:-$tools/garage}"
garage="$garage_root/bin/garage"
if [[ ! -x "$garage" ]]; then
    echo "services: building Garage into $garage_root (about 20 minutes, once)"
    cargo install garage --locked --version '^2.5' --root "$garage_root" \
        >"$tools/garage-build.log" 2>&1 || {
        echo "services: building Garage failed; see $tools/garage-build.log" >&2
        exit 1
    }
fi

node="$tools/garage-node"
conf="$node/garage.toml"
mkdir -p "$node/meta" "$node/data"
if [[ ! -s "$conf" ]]; then
    secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    admin_token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    (umask 077; cat >"$conf" <<EOF
metadata_dir = "$node/meta"
data_dir = "$node/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$((s3_port + 1))"
rpc_public_addr = "127.0.0.1:$((s3_port + 1))"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"

[admin]
api_bind_addr = "127.0.0.1:$((s3_port + 3))"
admin_token = "$admin_token"
EOF
    )
fi
g() { "$garage" -c "$conf" "$@"; }

garage_up() { g status >/dev/null 2>&1; }
if ! garage_up; then
    echo "services: starting Garage on 127.0.0.1:$s3_port"
    setsid nohup "$garage" -c "$conf" server >"$node/garage.log" 2>&1 </dev/null &
    echo $! >"$node/garage.pid"
    for _ in $(seq 100); do garage_up && break; sleep 0.2; done
    garage_up || { echo "services: Garage did not start; see $node/garage.log" >&2; exit 1; }
fi

if [[ ! -f "$node/layout.done" ]]; then
    node_id="$(g node id -q | cut -d@ -f1)"
    g layout assign -z dc1 -c 10G "$node_id" >/dev/null
    g layout apply --version 1 >/dev/null
    touch "$node/layout.done"
fi

bucket=imc-test
key_name=imc-test
key_file="$node/key"
if [[ ! -s "$key_file" ]]; then
    key_id="GK$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    key_secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    (umask 077; echo "$key_id $key_secret" >"$key_file")
fi
read -r key_id key_secret <"$key_file"
# The layout takes a moment to become active after a fresh start.
for _ in $(seq 50); do
    g bucket info "$bucket" >/dev/null 2>&1 && break
    g bucket create "$bucket" >/dev/null 2>&1 && break
    sleep 0.2
done
g bucket info "$bucket" >/dev/null
g key info "$key_id" >/dev/null 2>&1 || g key import --yes -n "$key_name" "$key_id" "$key_secret" >/dev/null
g bucket allow --read --write --owner "$bucket" --key "$key_id" >/dev/null

(umask 077; cat >"$env_file" <<EOF
# Written by scripts/services.sh; the scale-out tests read it.
IMC_TEST_DATABASE_URL=$database_url
IMC_TEST_S3_URL=s3://$bucket
AWS_ENDPOINT=http://127.0.0.1:$s3_port
AWS_REGION=garage
AWS_ACCESS_KEY_ID=$key_id
AWS_SECRET_ACCESS_KEY=$key_secret
AWS_ALLOW_HTTP=true
EOF
)
echo "services: PostgreSQL and Garage ready; settings in $env_file"
