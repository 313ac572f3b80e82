#!/usr/bin/env bash
# The fleet benchmark (issue 17): a release `vpcflow serve` on 127.0.0.1
# holding the model of a fleet (HOSTS hosts, PORTS ports each, a VPC flow
# log), and from a second process (`vpcflow-tools bench fleet`) every
# host's agent posting WINDOWS closed windows of FLOWS records a port, each
# with its own agent token, over CLIENTS keep-alive connections.
# Windows/s and records/s accepted, p50/p99 acknowledgement latency, the
# server's CPU seconds per million records, and, measured in the same run,
# the store alone checking and writing the same windows (the baseline).
#
#   bench/fleet.sh [HOSTS [PORTS [WINDOWS [FLOWS [CLIENTS]]]]]
#       (default 1000 hosts, 10 ports each: 10,000 ports; 3 windows of
#       100 flows a port; 16 connections)
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=${1:-1000}
ports=${2:-10}
windows=${3:-3}
flows=${4:-100}
clients=${5:-16}
cargo build --release -q -p vpcflow -p vpcflow-tools
bin=${CARGO_TARGET_DIR:-target}/release/vpcflow
tools=${CARGO_TARGET_DIR:-target}/release/vpcflow-tools
work=$(mktemp -d)
server=
trap '[ -z "$server" ] || kill "$server" 2>/dev/null; rm -rf "$work"' EXIT
unset VPCFLOW_DATABASE
"$tools" bench fleet-inventory --out "$work/fleet.toml" --hosts "$hosts" --ports-per-host "$ports"
for i in $(seq 1 "$hosts"); do
    host=$(printf 'h%04d' "$i")
    echo "$host $("$bin" token create --agent "$host" --data "$work/data")"
done > "$work/tokens"
"$bin" serve --listen 127.0.0.1:0 --config "$work/fleet.toml" --data "$work/data" 2>"$work/serve.log" &
server=$!
for _ in $(seq 300); do grep -q "serving the API on" "$work/serve.log" && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)
echo "vpcflow serve at $url ($(nproc) cores shared by the server and the agents)"
"$tools" bench fleet --api "$url" --server-pid "$server" --config "$work/fleet.toml" \
    --tokens "$work/tokens" --work "$work/agents" --windows "$windows" --flows "$flows" \
    --clients "$clients"
