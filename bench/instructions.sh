#!/usr/bin/env bash
# Instructions per packet (issue 22): a figure that does not move with the
# machine's load, where CPU seconds do. Counted with valgrind's callgrind
# (these VMs expose no hardware counters to `perf stat`) on two captures of
# the same make-up, N packets of F flows per window and 2N of 2F, so that
# start-up cancels out and the per-record work counts in proportion:
# (instructions(2N) - instructions(N)) / N.
#
#   bench/instructions.sh [PACKETS] [FLOWS_PER_WINDOW]   (defaults 100000 10000)
#
# Needs valgrind (scripts/setup.sh bench installs it) and the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-100000}
flows=${2:-10000}
./scripts/setup.sh bench >/dev/null
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p vpcflow -p vpcflow-tools
bin=$target/release/vpcflow
tools=$target/release/vpcflow-tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=../shared/data
for n in 1 2; do
    "$tools" bench make-capture --out "$work/c$n.pcap" --packets $((packets * n)) \
        --flows $((flows * n)) "$data"/zeek/traces/*.pcap* "$data"/suricata-verify/*.pcap \
        >/dev/null 2>&1
done

# Instructions of one run (callgrind's total), the command's output
# dropped; a fresh store each time.
count() {
    rm -rf "$work/store"
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" >/dev/null 2>&1
    awk '/^totals:/ {print $2}' "$work/cg.out"
}
# Instructions per packet of a command whose capture argument is CAP.
per_packet() {
    local one two
    one=$(count "${@//CAP/$work/c1.pcap}")
    two=$(count "${@//CAP/$work/c2.pcap}")
    echo "($two - $one) / $packets" | bc
}
read_i=$(per_packet "$tools" bench read CAP)
parse_i=$(per_packet "$tools" bench parse CAP)
ingest_i=$(per_packet "$bin" ingest --threads 1 --ports-from 0.0.0.0/0 --format v1 -o /dev/null CAP)
store_i=$(per_packet "$bin" ingest --threads 1 --ports-from 0.0.0.0/0 --store "$work/store" CAP)

echo "instructions per packet ($packets packets of >= $flows flows per window, and twice that; callgrind):"
printf '  %-40s %8s\n' "read frames (baseline)" "$read_i"
printf '  %-40s %8s\n' "read + parse (baseline)" "$parse_i"
printf '  %-40s %8s\n' "vpcflow ingest (every address a port)" "$ingest_i"
printf '  %-40s %8s\n' "vpcflow ingest --store" "$store_i"
echo "  ratio ingest / read+parse:      $(echo "scale=2; $ingest_i / $parse_i" | bc)"
echo "  ratio --store / text:           $(echo "scale=2; $store_i / $ingest_i" | bc)"
