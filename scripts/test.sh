#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every
# test of the workspace (unit, property, golden, end-to-end, oracles), with
# the agent's eBPF source built in.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh build
./scripts/setup.sh test
./scripts/setup.sh postgres
# A PostgreSQL server of this run's own on 127.0.0.1 (a directory and a
# port of its own, removed at the end), for the control plane on PostgreSQL.
pg=$(mktemp -d)
trap './scripts/postgres.sh stop "$pg" >/dev/null 2>&1 || true; rm -rf "$pg"' EXIT
VPCFLOW_TEST_POSTGRES=$(./scripts/postgres.sh start "$pg")
export VPCFLOW_TEST_POSTGRES
echo "test.sh: PostgreSQL for the tests at $VPCFLOW_TEST_POSTGRES" >&2
if [ "$(id -u)" -eq 0 ]; then
    # Root can build network namespaces and load BPF: run the live kernel
    # tests too (and the ones that need the PostgreSQL server).
    cargo test --workspace --locked --features vpcflow/ebpf "$@" -- --include-ignored
else
    echo "test.sh: not root, so the live kernel tests (marked ignored) do not run" >&2
    cargo test --workspace --locked --features vpcflow/ebpf "$@"
    # The ignored tests that need only the PostgreSQL server.
    cargo test --workspace --locked --features vpcflow/ebpf postgres -- --ignored
fi
# The API suites once more with every test server's control plane on
# PostgreSQL (a database each): the same tests pass on both databases.
VPCFLOW_TEST_CONTROL_DB=postgres cargo test --locked --features vpcflow/ebpf -p vpcflow \
    --test api --test api_model --test api_records --test api_cli --test hardening
# The API against its own OpenAPI document (schemathesis), on SQLite and
# on PostgreSQL.
./scripts/api-fuzz.sh
VPCFLOW_DATABASE="$VPCFLOW_TEST_POSTGRES/vpcflow_fuzz_$$" ./scripts/api-fuzz.sh
