#!/usr/bin/env bash
# The core pipeline's benchmark (issue 2): vpcflow against softflowd,
# nfpcapd and argus and against its own read / read-and-parse baselines, on
# the same generated capture, in the same run, each pinned to one core
# (vpcflow on one thread); then vpcflow's wall-clock on 1 and 2 threads
# (rounds taking turns) and the peak RSS of each. Prints ratios.
#
#   bench/run.sh [PACKETS] [FLOWS_PER_WINDOW]     (defaults 5000000 500000)
#
# Tools are compared by CPU seconds on one core (bench/cpu_seconds.py).
# Needs softflowd (Debian); scripts/setup.sh bench installs it. The capture
# is built from ../shared/data's real traces into $TMPDIR and removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
packets=${1:-5000000}
flows=${2:-500000}
./scripts/setup.sh bench
cargo build --release -q -p vpcflow -p vpcflow-tools
target=${CARGO_TARGET_DIR:-target}
bin=$target/release/vpcflow
tools=$target/release/vpcflow-tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cap="$work/bench.pcap"
data=../shared/data
"$tools" bench make-capture --out "$cap" --packets "$packets" --flows "$flows" \
    "$data"/zeek/traces/*.pcap* "$data"/suricata-verify/*.pcap

# CPU seconds (user + system, on CPU 0) of the best of three runs.
cpu() {
    local best=999999 t
    for _ in 1 2 3; do
        t=$(bench/cpu_seconds.py "$@" 2>/dev/null)
        if (( $(echo "$t < $best" | bc -l) )); then best=$t; fi
    done
    echo "$best"
}
pps() { echo "$packets / $1" | bc; }
read_s=$(cpu "$tools" bench read "$cap")
parse_s=$(cpu "$tools" bench parse "$cap")
ingest_s=$(cpu "$bin" ingest --threads 1 --ports-from 0.0.0.0/0 --format v1 -o /dev/null "$cap")
"$bin" ingest --threads 1 --ports-from 0.0.0.0/0 --format v1 -o /dev/null "$cap" 2>"$work/stats"
# The same into the log store (a fresh one each run): Parquet, summaries,
# syncfs; the target is within 1.3x of the text output's CPU.
store_s=$(cpu bash -c 'rm -rf "$1" && exec "$2" ingest --threads 1 --ports-from 0.0.0.0/0 --store "$1" "$3" >/dev/null' \
    st "$work/store" "$bin" "$cap")
# softflowd cuts the -r path to 15 characters (and then waits forever), and
# refuses to start while a previous run's control socket exists: run it in
# the capture's directory with a short relative name, after a clean-up.
sf_s=$(cpu bash -c 'cd "$1" && rm -f sf.ctl sf.pid && exec softflowd -r bench.pcap -n 127.0.0.1:9995 -m 4000000 -d -c sf.ctl -p sf.pid' \
    sf "$work")
# nfdump's nfpcapd (node cache sized for the flows) and argus, from the file.
nf_s=$(cpu bash -c 'rm -rf "$1" && mkdir -p "$1" && exec nfpcapd -r "$2" -w "$1" -B 2000000' \
    nf "$work/nf" "$cap")
ar_s=$(cpu bash -c 'exec argus -r "$1" -w "$2"' ar "$cap" "$work/argus.out")
read_pps=$(pps "$read_s"); parse_pps=$(pps "$parse_s"); ingest_pps=$(pps "$ingest_s"); sf_pps=$(pps "$sf_s")
store_pps=$(pps "$store_s"); nf_pps=$(pps "$nf_s"); ar_pps=$(pps "$ar_s")

# Both cores: wall-clock of one and two threads, taking turns, 5 rounds.
wall() {
    python3 -c 'import subprocess, sys, time
t = time.monotonic()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(time.monotonic() - t)' "$@"
}
walls1=(); walls2=()
for _ in 1 2 3 4 5; do
    walls1+=("$(wall "$bin" ingest --threads 1 --ports-from 0.0.0.0/0 --format v1 -o /dev/null "$cap")")
    walls2+=("$(wall "$bin" ingest --threads 2 --ports-from 0.0.0.0/0 --format v1 -o /dev/null "$cap")")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 3p; }
wall1=$(median "${walls1[@]}"); wall2=$(median "${walls2[@]}")
# Each round's own ratio, so that drift hits both sides alike.
round_ratios=$(for i in 0 1 2 3 4; do echo "scale=3; ${walls1[$i]} / ${walls2[$i]}" | bc; done | sort -g | tr '\n' ' ')

# Peak resident memory (GNU time's maximum RSS, KB).
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
rss1=$(rss "$bin" ingest --threads 1 --ports-from 0.0.0.0/0 --format v1 -o /dev/null "$cap")
rss2=$(rss "$bin" ingest --threads 2 --ports-from 0.0.0.0/0 --format v1 -o /dev/null "$cap")
rss_sf=$(cd "$work" && rm -f sf.ctl sf.pid && rss softflowd -r bench.pcap -n 127.0.0.1:9995 -m 4000000 -d -c sf.ctl -p sf.pid)

echo
echo "capture: $packets packets, >= $flows flows per 600 s window (two windows)"
cat "$work/stats" | sed 's/^/  /'
printf '%-42s %12s pps\n' "read frames (baseline)" "$read_pps"
printf '%-42s %12s pps\n' "read + parse (baseline)" "$parse_pps"
printf '%-42s %12s pps\n' "vpcflow ingest (every address a port)" "$ingest_pps"
printf '%-42s %12s pps\n' "vpcflow ingest --store (same)" "$store_pps"
printf '%-42s %12s pps\n' "softflowd -r (same file)" "$sf_pps"
printf '%-42s %12s pps\n' "nfpcapd -r (same file)" "$nf_pps"
printf '%-42s %12s pps\n' "argus -r (same file)" "$ar_pps"
echo "ratio vpcflow / softflowd:        $(echo "scale=2; $ingest_pps / $sf_pps" | bc)"
echo "ratio vpcflow / nfpcapd:          $(echo "scale=2; $ingest_pps / $nf_pps" | bc)"
echo "ratio vpcflow / argus:            $(echo "scale=2; $ingest_pps / $ar_pps" | bc)"
echo "ratio --store CPU / text CPU:     $(echo "scale=2; $store_s / $ingest_s" | bc)"
echo "ratio vpcflow / read+parse:       $(echo "scale=3; $ingest_pps / $parse_pps" | bc)"
echo "ratio read+parse / softflowd:     $(echo "scale=2; $parse_pps / $sf_pps" | bc)"
echo "wall-clock 1 thread / 2 threads:  $(echo "scale=2; $wall1 / $wall2" | bc) (medians $wall1 s, $wall2 s; per round: $round_ratios)"
echo "peak RSS: vpcflow 1 thread $((rss1 / 1024)) MB, 2 threads $((rss2 / 1024)) MB, softflowd $((rss_sf / 1024)) MB"
echo
# The same comparisons in instructions per packet, which the machine's
# load does not move (valgrind's callgrind, on smaller captures).
bench/instructions.sh
