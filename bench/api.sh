#!/usr/bin/env bash
# The control plane's API benchmark (issue 5): a release `vpcflow serve` on
# 127.0.0.1 and, from a second process (`vpcflow-tools bench api`, keep-alive
# connections), 1,000 flow-log creates across 100 projects (the quota of 10
# each), then lists of a random project's flow logs; `GET /health` in the
# same run is the baseline. Requests/s and p50/p99 latency per phase.
#
#   bench/api.sh [CLIENTS [SECONDS [sqlite|postgres]]]
#       (default 8 clients, 10 s per phase, SQLite; `postgres` puts the
#       control plane on a PostgreSQL server of the run's own, on 127.0.0.1)
set -euo pipefail
cd "$(dirname "$0")/.."
clients=${1:-8}
seconds=${2:-10}
database=${3:-sqlite}
cargo build --release -q -p vpcflow -p vpcflow-tools
bin=${CARGO_TARGET_DIR:-target}/release/vpcflow
tools=${CARGO_TARGET_DIR:-target}/release/vpcflow-tools
work=$(mktemp -d)
server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; [ "$database" != postgres ] || ./scripts/postgres.sh stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"' EXIT
case "$database" in
    sqlite) unset VPCFLOW_DATABASE ;;
    postgres)
        ./scripts/setup.sh postgres
        VPCFLOW_DATABASE="$(./scripts/postgres.sh start "$work/pg")/vpcflow_bench"
        export VPCFLOW_DATABASE
        ;;
    *) echo "usage: $0 [CLIENTS [SECONDS [sqlite|postgres]]]" >&2; exit 2 ;;
esac
for i in $(seq -w 1 100); do
    echo "bench-project-$i $("$bin" token create --project "bench-project-$i" --data "$work/data")"
done > "$work/tokens"
"$bin" serve --listen 127.0.0.1:0 --data "$work/data" 2>"$work/serve.log" &
server=$!
for _ in $(seq 100); do grep -q "serving the API on" "$work/serve.log" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)
echo "vpcflow serve at $url on $database ($(nproc) cores shared by server, clients and database)"
"$tools" bench api --api "$url" --tokens "$work/tokens" --clients "$clients" --seconds "$seconds"
