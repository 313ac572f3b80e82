#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every
# test of the workspace (unit, property, golden, end-to-end, oracles).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh test
cargo test --workspace --locked "$@"
