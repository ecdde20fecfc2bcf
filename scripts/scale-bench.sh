#!/usr/bin/env bash
# The scale-out benchmark behind docs/PERFORMANCE.md ("Scale-out"): one
# imc-loadgen run, same parameters, against
#   a) one replica on SQLite (the embedded default),
#   b) one replica on PostgreSQL + Garage,
#   c) two replicas on PostgreSQL + Garage (loadgen spreads agents and ERP
#      clients over both),
# with release builds. For each it prints loadgen's summary and the CPU
# seconds each kind of process used (from /proc/PID/stat), plus the machine's
# iowait, to show where the time went.
#
#   scripts/scale-bench.sh                      # 10 agents x 100 pages x 300 KB, 4 ERP clients
#   AGENTS=20 PAGES=50 scripts/scale-bench.sh   # other parameters
#
# PostgreSQL and Garage come from scripts/services.sh; each run uses a fresh
# schema (left behind: drop schemas `bench_*` to reclaim the space) and a
# fresh bucket prefix, emptied at the end (disk is precious here).
set -euo pipefail
cd "$(dirname "$0")/.."

agents="${AGENTS:-10}"
pages="${PAGES:-100}"
page_size="${PAGE_SIZE:-307200}"
erp="${ERP:-4}"
out="${OUT:-target/scale-bench}"
token="imc_bench_admin_token_0123456789"

cargo build --release -q -p imc-server -p imc-agent --bin imc-server --bin imc-loadgen
server=target/release/imc-server
loadgen=target/release/imc-loadgen

scripts/services.sh >/dev/null
set -a
# shellcheck disable=SC1090
. "${IMC_SERVICES_ENV:-$HOME/.cache/imc-tools/services.env}"
set +a

mkdir -p "$out"
# Stops the replicas this script started (their pids are in $out/*/pid).
stop_servers() {
    local pidfile pid
    for pidfile in "$out"/*/pid; do
        [[ -f "$pidfile" ]] || continue
        pid="$(cat "$pidfile")"
        kill "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
        rm -f "$pidfile"
    done
}

# Starts a replica; extra arguments go to `serve`. Prints its base URL.
start_server() {
    local name="$1"
    shift
    local dir="$out/$name"
    rm -rf "$dir"
    mkdir -p "$dir"
    IMC_BOOTSTRAP_TOKEN="$token" IMC_LOG=warn "$server" serve --data-dir "$dir/data" \
        --listen 127.0.0.1:0 --rate-per-ip 0 --rate-per-token 0 "$@" \
        >"$dir/stdout" 2>"$dir/stderr" &
    echo "$!" >"$dir/pid"
    for _ in $(seq 300); do
        if grep -q "listening on" "$dir/stdout" 2>/dev/null; then
            sed -n 's/^imc-server listening on //p' "$dir/stdout"
            return
        fi
        sleep 0.1
    done
    echo "scale-bench: $name did not start; see $dir/stderr" >&2
    exit 1
}

# A fresh schema in the services' database, as a URL whose connections use it.
fresh_database() {
    local schema
    schema="bench_$(date +%s)_$RANDOM"
    psql "$IMC_TEST_DATABASE_URL" -qAt -c "CREATE SCHEMA $schema" >/dev/null
    echo "$IMC_TEST_DATABASE_URL?options=-c%20search_path%3D$schema"
}

# "comm ticks" for every process of interest (utime + stime, in clock ticks).
# Replicas count only when this script started them (others may run tests);
# postgres and garage are shared services, so their figures include any
# other user's load during the run.
cpu_snapshot() {
    local ours
    ours=" $(cat "$out"/*/pid 2>/dev/null | tr '\n' ' ') "
    for stat in /proc/[0-9]*/stat; do
        # comm is in parentheses and may hold spaces; the fields after it are fixed.
        sed -E 's/^([0-9]+) \((.*)\) (.*)$/\1 \2|\3/' "$stat" 2>/dev/null
    done | awk -F'|' -v ours="$ours" '
        { split($1, head, " "); pid = head[1]; comm = substr($1, length(pid) + 2)
          if (comm !~ /^(imc-server|postgres|garage)$/) next
          if (comm == "imc-server" && index(ours, " " pid " ") == 0) next
          split($2, f, " "); print pid, comm, f[12] + f[13] }'
}

# S3 requests signed with the services' key (curl's SigV4).
s3() {
    curl -sS --fail --aws-sigv4 "aws:amz:$AWS_REGION:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

# Deletes every object under s3://bucket/prefix/.
delete_prefix() {
    local location="${1#s3://}" bucket prefix keys
    bucket="${location%%/*}"
    prefix="${location#*/}"
    while :; do
        # Query parameters in sorted order and no '/': what curl's SigV4 signs as given.
        keys="$(s3 "$AWS_ENDPOINT/$bucket?list-type=2&prefix=$prefix" |
            grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g' || true)"
        [[ -n "$keys" ]] || break
        while read -r key; do s3 -X DELETE "$AWS_ENDPOINT/$bucket/$key" >/dev/null; done <<<"$keys"
    done
}
prefixes=()
finish() {
    stop_servers
    for prefix in "${prefixes[@]}"; do delete_prefix "$prefix"; done
    # The summaries stay; the data dirs (the SQLite run's blobs) go.
    rm -rf "$out"/*/data
}
trap finish EXIT

iowait_ticks() { awk '/^cpu /{print $6}' /proc/stat; }

# Per kind of process: CPU seconds between two snapshots (processes started
# in between count from zero), as a share of one core over the run.
cpu_report() {
    local before="$1" after="$2" secs="$3" hz
    hz="$(getconf CLK_TCK)"
    awk -v hz="$hz" -v secs="$secs" '
        NR == FNR { start[$1] = $3; next }
        { used[$2] += $3 - ($1 in start ? start[$1] : 0); n[$2]++ }
        END { for (c in used) printf "  %-12s %2d proc  %7.1f cpu-s  %5.0f%% of a core\n",
                  c, n[c], used[c] / hz, 100 * used[c] / hz / secs }' "$before" "$after" | sort
}

run() {
    local name="$1"
    shift
    local servers=()
    for url in "$@"; do servers+=(--server "$url"); done
    echo "== $name"
    cpu_snapshot >"$out/$name.cpu0"
    local io0 t0 t1
    io0="$(iowait_ticks)"
    t0="$(date +%s.%N)"
    "$loadgen" "${servers[@]}" --admin-token "$token" --insecure --json \
        --agents "$agents" --pages-per-agent "$pages" --page-size "$page_size" \
        --erp-clients "$erp" >"$out/$name.json" || echo "scale-bench: $name: loadgen reported a failure" >&2
    t1="$(date +%s.%N)"
    cpu_snapshot >"$out/$name.cpu1"
    local secs
    secs="$(printf '%.1f' "$(echo "$t1 - $t0" | bc)")"
    python3 - "$out/$name.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  {s['elapsed_secs']:.1f} s  pages/s {s['pages_per_sec']:.1f}  MiB/s {s['mib_per_sec']:.1f}  "
      f"stored {s['pages_stored']}/{s['pages_offered']}  "
      f"page p50 {s['page_latency_ms']['p50']:.1f} ms p99 {s['page_latency_ms']['p99']:.1f} ms")
print(f"  status calls {s['status_calls']} ({s['status_per_sec']:.0f}/s)  "
      f"p50 {s['status_latency_ms']['p50']:.2f} ms  p99 {s['status_latency_ms']['p99']:.2f} ms  "
      f"errors {s['status_errors']} protocol errors {s['protocol_errors']}  ok {s['ok']}")
EOF
    cpu_report "$out/$name.cpu0" "$out/$name.cpu1" "$secs"
    echo "  iowait $(echo "($(iowait_ticks) - $io0) / $(getconf CLK_TCK)" | bc) s (all cores) over $secs s; load $(cut -d' ' -f1-3 /proc/loadavg)"
}

echo "scale-bench: $agents agents x $pages pages x $page_size bytes, $erp ERP clients"

a="$(start_server a-sqlite)"
run a-sqlite "$a"
stop_servers

# Moving that embedded installation up, timed.
db_m="$(fresh_database)"
blobs_m="$IMC_TEST_S3_URL/bench-m-$(date +%s)"
prefixes+=("$blobs_m")
t0="$(date +%s.%N)"
"$server" migrate-store --from "$out/a-sqlite/data" --to "$db_m" --blobs "$blobs_m" \
    >"$out/migrate-store.txt"
echo "== migrate-store of a-sqlite: $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-6) s"
sed 's/^/  /' "$out/migrate-store.txt"
# Each run's bytes go as soon as it is measured (Garage frees blocks a while after deletion).
rm -rf "$out/a-sqlite/data"
delete_prefix "$blobs_m"

db_b="$(fresh_database)"
"$server" migrate --database "$db_b" >/dev/null
blobs_b="$IMC_TEST_S3_URL/bench-b-$(date +%s)"
prefixes+=("$blobs_b")
b="$(start_server b-pg --database "$db_b" --blobs "$blobs_b")"
run b-pg-garage "$b"
stop_servers
delete_prefix "$blobs_b"

db_c="$(fresh_database)"
"$server" migrate --database "$db_c" >/dev/null
blobs_c="$IMC_TEST_S3_URL/bench-c-$(date +%s)"
prefixes+=("$blobs_c")
c1="$(start_server c-pg-1 --database "$db_c" --blobs "$blobs_c")"
c2="$(start_server c-pg-2 --database "$db_c" --blobs "$blobs_c")"
run c-pg-garage-x2 "$c1" "$c2"
