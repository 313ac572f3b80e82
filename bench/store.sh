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
"${CARGO_TARGET_DIR:-target}"/release/vpcflow-tools bench store --store "$work/store" --records "$records"
# DuckDB from the tests' venv (scripts/setup.sh test makes it), over the
# same files.
"${VPCFLOW_TEST_VENV:-/var/tmp/vpcflow-test-venv}/bin/python" bench/duckdb_queries.py \
    "$work/store" 1700000400
