#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every
# test of the workspace (unit, property, golden, end-to-end, oracles), with
# the agent's eBPF source built in.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh build
./scripts/setup.sh test
if [ "$(id -u)" -eq 0 ]; then
    # Root can build network namespaces and load BPF: run the live kernel
    # tests too.
    cargo test --workspace --locked --features vpcflow/ebpf "$@" -- --include-ignored
else
    echo "test.sh: not root, so the live kernel tests (marked ignored) do not run" >&2
    cargo test --workspace --locked --features vpcflow/ebpf "$@"
fi
# The API against its own OpenAPI document (schemathesis).
./scripts/api-fuzz.sh
