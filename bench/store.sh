#!/usr/bin/env bash
# The log store's benchmark (issue 4): write generated records through the
# real writer, time a top-10 talkers query and a filtered one-day search in
# vpcflow, and the same top-10 query in DuckDB over the same files.
#
#   bench/store.sh [RECORDS]      (default 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-10000000}
./scripts/setup.sh test >/dev/null
cargo build --release -q -p vpcflow-tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target/release/vpcflow-tools bench store --store "$work/store" --records "$records"
top10="SELECT srcaddr, sum(bytes) AS bytes FROM records WHERE log_status = 'OK' GROUP BY srcaddr ORDER BY bytes DESC, srcaddr LIMIT 10"
# DuckDB from the tests' venv (scripts/setup.sh test makes it).
"${VPCFLOW_TEST_VENV:-/var/tmp/vpcflow-test-venv}/bin/python" - "$work/store" "$top10" <<'PY'
import sys, time, duckdb
store, sql = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f"CREATE VIEW records AS SELECT * FROM read_parquet('{store}/**/*.parquet', hive_partitioning = true)")
best = None
for _ in range(3):
    t = time.perf_counter()
    rows = con.execute(sql).fetchall()
    d = time.perf_counter() - t
    best = d if best is None else min(best, d)
print(f"duckdb top10: {best:.3f} s ({len(rows)} rows)")
PY
