#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every
# test of the workspace (unit, property, golden, end-to-end, oracles).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh test
if [ "$(id -u)" -eq 0 ]; then
    # Root can build network namespaces: run the live kernel tests too.
    cargo test --workspace --locked "$@" -- --include-ignored
else
    echo "test.sh: not root, so the live kernel tests (marked ignored) do not run" >&2
    cargo test --workspace --locked "$@"
fi
