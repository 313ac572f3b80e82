#!/usr/bin/env bash
# The log store on ClickHouse (issue 20): the store benchmark's records
# (1,000 ports, 70,000 records a 600 s window) written through vpcflow
# into a two-shard ClickHouse cluster of this run's own (Debian's server,
# scripts/clickhouse.sh), as `ingest --store clickhouse://` and the agent
# write them: each window into the spool, then one insert a window.
# Records/s until ClickHouse has every window, against the Parquet store
# writing the same windows in the same run; bytes per record on disk;
# the top-10 talkers and a filtered one-day search on ClickHouse, on the
# Parquet store (vpcflow's DataFusion) and in DuckDB over its files. Run
# at RECORDS/10 and at RECORDS, to show how the cost grows.
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
for n in $((records / 10)) "$records"; do
    echo "== $n records"
    "$tools" bench clickhouse --store "${url%%/vpcflow\?*}/bench_$n?${url#*\?}" \
        --records "$n" --work "$work/$n"
    "${VPCFLOW_TEST_VENV:-/var/tmp/vpcflow-test-venv}/bin/python" - "$work/$n/parquet" "$t0" <<'PY'
import sys, time, duckdb
store, t0 = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute(f"CREATE VIEW records AS SELECT * FROM read_parquet('{store}/**/*.parquet', hive_partitioning = true)")
for name, sql in [
    ("top10", "SELECT srcaddr, sum(bytes) AS bytes FROM records WHERE log_status = 'OK' "
              "GROUP BY srcaddr ORDER BY bytes DESC, srcaddr LIMIT 10"),
    ("search-one-day", f"SELECT count(*) AS n, sum(bytes) AS bytes FROM records WHERE \"end\" > {t0} "
                       f"AND start < {t0 + 86400} AND action = 'REJECT' AND dstport = 22"),
]:
    best = None
    for _ in range(3):
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    print(f"duckdb {name}: {best:.3f} s ({len(rows)} rows, best of 3)")
PY
    rm -rf "${work:?}/$n"
done
