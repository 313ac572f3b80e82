#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every
# test of the workspace (unit, property, golden, end-to-end, oracles), with
# the agent's eBPF source built in.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh build
./scripts/setup.sh test
./scripts/setup.sh postgres
./scripts/setup.sh clickhouse
# A PostgreSQL server of this run's own on 127.0.0.1 (a directory and a
# port of its own, removed at the end), for the control plane on PostgreSQL;
# and a two-shard ClickHouse cluster alike, for the store on ClickHouse.
pg=$(mktemp -d)
ch=$(mktemp -d)
trap './scripts/postgres.sh stop "$pg" >/dev/null 2>&1 || true; ./scripts/clickhouse.sh stop "$ch" >/dev/null 2>&1 || true; rm -rf "$pg" "$ch"' EXIT
VPCFLOW_TEST_POSTGRES=$(./scripts/postgres.sh start "$pg")
export VPCFLOW_TEST_POSTGRES
echo "test.sh: PostgreSQL for the tests at $VPCFLOW_TEST_POSTGRES" >&2
VPCFLOW_TEST_CLICKHOUSE=$(./scripts/clickhouse.sh start "$ch" --shards 2 | tail -1)
export VPCFLOW_TEST_CLICKHOUSE
echo "test.sh: ClickHouse for the tests at $VPCFLOW_TEST_CLICKHOUSE" >&2
# One build serves every run below: the same packages and features each
# time (`--workspace --features vpcflow/ebpf`), so nothing compiles twice.
build=(--workspace --locked --features vpcflow/ebpf)
if command -v cargo-nextest >/dev/null 2>&1; then
    # Test binaries run in parallel (each test a process of its own; the
    # live tests name their namespaces by process id). nextest runs no
    # doctests: `cargo test --doc` does.
    tests() { cargo nextest run "${build[@]}" --no-fail-fast "$@"; }
    ignored_too=(--run-ignored all)
    ignored_only=(--run-ignored only)
    api_suites='package(vpcflow) & (binary(api) | binary(api_model) | binary(api_records) | binary(api_cli) | binary(hardening) | binary(fleet))'
    postgres_tests='test(postgres) | binary(store_clickhouse)'
else
    echo "test.sh: cargo-nextest not found, so test binaries run one after another (cargo install cargo-nextest for a faster run)" >&2
    tests() { cargo test "${build[@]}" "$@"; }
    ignored_too=(-- --include-ignored)
    ignored_only=(-- --ignored)
    api_suites=''
    postgres_tests=postgres
fi
if [ "$(id -u)" -eq 0 ]; then
    # Root can build network namespaces and load BPF: run the live kernel
    # tests too (and the ones that need the PostgreSQL server).
    tests "$@" "${ignored_too[@]}"
else
    echo "test.sh: not root, so the live kernel tests (marked ignored) do not run" >&2
    tests "$@"
    # The ignored tests that need only the PostgreSQL server.
    if [ -n "$api_suites" ]; then
        tests -E "$postgres_tests" "${ignored_only[@]}"
    else
        tests "$postgres_tests" "${ignored_only[@]}"
    fi
fi
cargo test "${build[@]}" --doc
# The README's first command: the binary without its store and server
# (`--no-default-features`) writes the demo's golden records.
cargo run --locked -q -p vpcflow --no-default-features -- \
    ingest --config examples/vpc.toml examples/vpc-demo.pcap 2>/dev/null |
    diff -u tests/golden/demo-v2.txt - >&2 ||
    { echo "test.sh: the README's first command did not write tests/golden/demo-v2.txt" >&2; exit 1; }
echo "test.sh: the README's first command wrote the golden records" >&2
# The binary's own tests in that build too (its flags without the store's).
cargo test --locked -q -p vpcflow --no-default-features --bins >&2
# The API suites once more with every test server's control plane on
# PostgreSQL (a database each): the same tests pass on both databases.
if [ -n "$api_suites" ]; then
    VPCFLOW_TEST_CONTROL_DB=postgres tests -E "$api_suites"
else
    VPCFLOW_TEST_CONTROL_DB=postgres cargo test "${build[@]}" \
        --test api --test api_model --test api_records --test api_cli --test hardening --test fleet
fi
# Every parser of outside input fuzzed a little (cargo-fuzz, 15 s a
# target); the inputs it ever kept are replayed by the workspace's tests
# (vpcflow-fuzzing) above.
./scripts/fuzz.sh --seconds 15
# The API against its own OpenAPI document (schemathesis), on SQLite and
# on PostgreSQL.
./scripts/api-fuzz.sh
VPCFLOW_DATABASE="$VPCFLOW_TEST_POSTGRES/vpcflow_fuzz_$$" ./scripts/api-fuzz.sh
