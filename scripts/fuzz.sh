#!/usr/bin/env bash
# Fuzzes every parser of outside input with cargo-fuzz (libFuzzer, on the
# stable toolchain with `-s none`): frames, capture files, inventories (TOML,
# and the JSON the API's model bodies become), the field search, SQL's text
# bounds. Each target starts from fuzz/seeds/TARGET, every small capture of
# ../shared/data (and its frames) and what earlier runs kept in fuzz/corpus/.
#
#   scripts/fuzz.sh [--seconds N | --runs N] [TARGET...]
#
# --seconds N: N seconds a target (default 20); --runs N: N executions a
# target. Prints each target's executions. A crash stops the run: its input
# is in fuzz/artifacts/TARGET/; keep it as a regression test by moving it to
# fuzz/regressions/TARGET/NAME (NAME saying what it found), where
# `cargo test -p vpcflow-fuzzing` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-max_total_time=20)
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) limit=(-max_total_time="$2"); shift 2 ;;
        --runs) limit=(-runs="$2"); shift 2 ;;
        -*) echo "usage: $0 [--seconds N | --runs N] [TARGET...]" >&2; exit 2 ;;
        *) break ;;
    esac
done
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (crates.io)" >&2
    cargo install --locked cargo-fuzz --version 0.13.2
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
python3 fuzz/seed.py "$seeds" --shared
cargo fuzz build -s none --fuzz-dir fuzz >&2
summary=()
for t in "${targets[@]}"; do
    corpus=fuzz/corpus/$t
    # seed.py makes shared-data seeds for the targets that read captures.
    mkdir -p "$corpus" "$seeds/$t"
    log=$(mktemp)
    # Inputs: this target's kept corpus (written to), its seeds, the shared data's.
    if ! cargo fuzz run -s none --fuzz-dir fuzz "$t" "$corpus" "fuzz/seeds/$t" "$seeds/$t" -- \
        "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz.sh: $t crashed; the input is in fuzz/artifacts/$t/ (keep it in fuzz/regressions/$t/)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    rm -f "$log"
    summary+=("$t: ${runs:-?} executions in ${secs:-?} s")
    echo "fuzz.sh: $t: ${runs:-?} executions in ${secs:-?} s, no crash" >&2
done
printf 'fuzz.sh: %s\n' "${summary[@]}"
