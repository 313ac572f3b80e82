#!/usr/bin/env bash
# The log store on ClickHouse (issue 20): the store benchmark's records
# (1,000 ports, 70,000 records a 600 s window) written through vpcflow
# into a two-shard ClickHouse cluster of this run's own (Debian's server,
# scripts/clickhouse.sh), as `ingest --store clickhouse://` and the agent
# write them: each window into the spool, then one insert a window (each
# shard's rows into its own table, all shards at once, Native format).
# Records/s until ClickHouse has every window, against the Parquet store
# writing the same windows in the same run and against ClickHouse's own
# ceiling (bench/clickhouse_ceiling.py: the same rows posted straight to
# the shards, no vpcflow); bytes per record on disk; the top-10 talkers
# and a filtered one-day search on ClickHouse, on the Parquet store
# (vpcflow's DataFusion) and in DuckDB over its files
# (bench/duckdb_queries.py). Run at RECORDS/10 and at RECORDS, to show
# how the cost grows.
#
#   bench/clickhouse.sh [RECORDS]      (default 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-10000000}
./scripts/setup.sh clickhouse >/dev/null
./scripts/setup.sh test >/dev/null
cargo build --release -q -p vpcflow-tools
tools=${CARGO_TARGET_DIR:-target}/release/vpcflow-tools
work=$(mktemp -d)
ch=$(mktemp -d)
trap './scripts/clickhouse.sh stop "$ch" >/dev/null 2>&1 || true; rm -rf "$work" "$ch"' EXIT
url=$(./scripts/clickhouse.sh start "$ch" --shards 2 | tail -1)
echo "ClickHouse (two shards) at $url, $(nproc) cores shared with vpcflow"
t0=1700000400
python=${VPCFLOW_TEST_VENV:-/var/tmp/vpcflow-test-venv}/bin/python
for n in $((records / 10)) "$records"; do
    echo "== $n records"
    "$tools" bench clickhouse --store "${url%%/vpcflow\?*}/bench_$n?${url#*\?}" \
        --records "$n" --work "$work/$n"
    "$python" bench/duckdb_queries.py "$work/$n/parquet" "$t0"
    # What the servers take at best with no vpcflow in the way: the
    # ceiling the records/s above are to be read against.
    hosts=${url#clickhouse://}
    "$python" bench/clickhouse_ceiling.py "${hosts%%/*}" "bench_$n"
    rm -rf "${work:?}/$n"
done
