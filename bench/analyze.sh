#!/usr/bin/env bash
# The analyses' benchmark (issue 14): `vpcflow analyze attacks` and
# `vpcflow analyze rules` over a store of generated records (10 million by
# default, written through the real writer by `vpcflow-tools bench store`),
# each the best of 3 runs from the window summaries, then once each from
# the records (`--from-records`, which must print the same findings), beside
# the same attack groupings written by hand in DuckDB over the same files
# (the baselines, measured in the same run).
#
#   bench/analyze.sh [RECORDS]      (default 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-10000000}
./scripts/setup.sh test >/dev/null
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p vpcflow -p vpcflow-tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$target/release/vpcflow-tools" bench store --store "$work/store" --records "$records" >"$work/write"
head -2 "$work/write"
best() {
    local best=""
    for _ in 1 2 3; do
        local t0 t1
        t0=$(date +%s.%N)
        "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
        t1=$(date +%s.%N)
        best=$(python3 -c "import sys; a=float(sys.argv[1])-float(sys.argv[2]); b=sys.argv[3]; print(a if not b or a<float(b) else b)" "$t1" "$t0" "$best")
    done
    echo "$best"
}
attacks=$(best "$target/release/vpcflow" analyze attacks --store "$work/store" --format json)
echo "vpcflow analyze attacks: $attacks s ($(wc -l <"$work/out") findings)"
cp "$work/out" "$work/attacks"
rules=$(best "$target/release/vpcflow" analyze rules --config examples/vpc.toml --store "$work/store" --format json)
echo "vpcflow analyze rules: $rules s ($(wc -l <"$work/out") findings)"
cp "$work/out" "$work/rules"
# The same analyses from the records (the window summaries not read):
# the baseline the summaries are measured against, and the same findings.
from_records() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" --from-records >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    t1=$(date +%s.%N)
    python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.3f}')" "$t1" "$t0"
}
slow=$(from_records "$target/release/vpcflow" analyze attacks --store "$work/store" --format json)
cmp -s "$work/out" "$work/attacks" || { echo "analyze attacks: the summaries and the records disagree" >&2; exit 1; }
echo "vpcflow analyze attacks --from-records: $slow s (same findings); summaries / records = $(python3 -c "print(f'{$attacks / $slow:.3f}')")"
slow=$(from_records "$target/release/vpcflow" analyze rules --config examples/vpc.toml --store "$work/store" --format json)
cmp -s "$work/out" "$work/rules" || { echo "analyze rules: the summaries and the records disagree" >&2; exit 1; }
echo "vpcflow analyze rules --from-records: $slow s (same findings); summaries / records = $(python3 -c "print(f'{$rules / $slow:.3f}')")"
# DuckDB from the tests' venv (scripts/setup.sh test makes it).
"${VPCFLOW_TEST_VENV:-/var/tmp/vpcflow-test-venv}/bin/python" - "$work/store" "$attacks" <<'PY'
import sys, time, duckdb
store, ours = sys.argv[1], float(sys.argv[2])
con = duckdb.connect()
con.execute(f"CREATE VIEW records AS SELECT * FROM read_parquet('{store}/**/*.parquet', hive_partitioning = true)")
ok = "log_status = 'OK' AND direction = 'ingress'"
m = "count(DISTINCT srcaddr), count(DISTINCT dstaddr), count(DISTINCT dstport), count(*), sum(packets), sum(bytes), min(action), max(action)"
queries = [
    f"SELECT start, \"end\", flow_log_id, interface_id, srcaddr, {m} FROM records WHERE {ok} AND protocol IN (6, 17) GROUP BY ALL HAVING count(DISTINCT dstport) >= 20",
    f"SELECT start, \"end\", flow_log_id, srcaddr, {m} FROM records WHERE {ok} GROUP BY ALL HAVING count(DISTINCT dstaddr) >= 3 AND sum(packets) <= 3 * count(*)",
    f"SELECT start, \"end\", flow_log_id, interface_id, srcaddr, dstport, {m} FROM records WHERE {ok} AND protocol = 6 AND dstport IN (21, 22, 23, 25, 110, 143, 445, 1433, 3306, 3389, 5432, 5900, 6379, 27017) GROUP BY ALL HAVING count(*) >= 20 AND sum(packets) <= 30 * count(*)",
    f"SELECT start, \"end\", flow_log_id, interface_id, dstport, {m} FROM records WHERE {ok} AND protocol = 6 AND tcp_flag = 'syn_sent' GROUP BY ALL HAVING count(*) >= 200 AND count(DISTINCT srcaddr) >= 20",
    f"SELECT start, \"end\", flow_log_id, interface_id, dstport, {m} FROM records WHERE {ok} AND protocol = 17 GROUP BY ALL HAVING sum(packets) >= 1000 * max(\"end\" - start)",
    f"SELECT start, \"end\", flow_log_id, interface_id, srcport, {m} FROM records WHERE {ok} AND protocol = 17 AND srcport IN (17, 19, 53, 111, 123, 137, 161, 389, 1900, 3702, 5353, 11211) GROUP BY ALL HAVING sum(bytes) >= 100000 * max(\"end\" - start) AND count(DISTINCT srcaddr) >= 3",
    f"SELECT start, \"end\", flow_log_id, interface_id, {m} FROM records WHERE log_status = 'OK' AND action = 'REJECT' GROUP BY ALL",
]
best = None
for _ in range(3):
    t = time.perf_counter()
    for q in queries:
        con.execute(q).fetchall()
    d = time.perf_counter() - t
    best = d if best is None else min(best, d)
print(f"duckdb, the attack groupings by hand: {best:.3f} s; vpcflow analyze attacks / duckdb = {ours / best:.2f}")
PY
