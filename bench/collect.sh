#!/usr/bin/env bash
# The collector's benchmark (issue 21): one stream of IPFIX messages
# (1 million flows by default, written by vpcflow's own encoder) sent over
# loopback UDP, paced, to `vpcflow collect` (every 10.0.0.0/16 address a
# port, records into a log store; then again, records as text: the
# pipeline's share) and, in the same run, to nfcapd (writing its own files): each receiver's CPU time (user + system, from wait4),
# flows per CPU second, and the ratio. A receiver that did not get every
# flow is reported as such (the pacing was too fast for it), not timed.
#
#   bench/collect.sh [FLOWS [DATAGRAMS_PER_SECOND]]   (default 1000000 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
flows=${1:-1000000}
rate=${2:-20000}
./scripts/setup.sh test >/dev/null
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p vpcflow -p vpcflow-tools
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$target/release/vpcflow-tools" bench ipfix-stream --out "$work/stream" --flows "$flows"
# Runs a command, writes its pid to $1.pid and, once it exits, its CPU
# seconds to $1.cpu.
cat >"$work/cpu.py" <<'PY'
import os, subprocess, sys
out = sys.argv[1]
log = open(out + ".err", "w")
p = subprocess.Popen(sys.argv[2:], stderr=log, stdout=log)
open(out + ".pid", "w").write(str(p.pid))
_, _, ru = os.wait4(p.pid, 0)
open(out + ".cpu", "w").write(f"{ru.ru_utime + ru.ru_stime:.3f}")
PY
port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
run() { # NAME PORT COMMAND...
    local name=$1 p=$2
    shift 2
    python3 "$work/cpu.py" "$work/$name" "$@" &
    local wrapper=$!
    sleep 1
    "$target/release/vpcflow-tools" bench replay --stream "$work/stream" --to "127.0.0.1:$p" --rate "$rate" >"$work/$name.replay"
    sleep 1
    kill -TERM "$(cat "$work/$name.pid")"
    wait "$wrapper"
}
p=$(port)
run vpcflow "$p" "$target/release/vpcflow" collect --listen "127.0.0.1:$p" --ports-from 10.0.0.0/16 --store "$work/store"
got_vpcflow=$(grep -o 'collected [0-9]* flows' "$work/vpcflow.err" | grep -o '[0-9]*')
# The same without the store: the pipeline's share of the cost.
p=$(port)
run text "$p" "$target/release/vpcflow" collect --listen "127.0.0.1:$p" --ports-from 10.0.0.0/16 --format custom:packets
got_text=$(grep -o 'collected [0-9]* flows' "$work/text.err" | grep -o '[0-9]*')
mkdir -p "$work/nf"
p=$(port)
run nfcapd "$p" nfcapd -w "$work/nf" -b 127.0.0.1 -p "$p"
got_nfcapd=$(grep -o 'Flows: [0-9]*' "$work/nfcapd.err" | grep -o '[0-9]*' | tail -1)
echo "stream: $flows flows, $(cat "$work/vpcflow.replay")"
python3 - "$flows" "$got_vpcflow" "$(cat "$work/vpcflow.cpu")" "$got_nfcapd" "$(cat "$work/nfcapd.cpu")" "$got_text" "$(cat "$work/text.cpu")" <<'PY'
import sys
flows, gv, cv, gn, cn = int(sys.argv[1]), int(sys.argv[2] or 0), float(sys.argv[3]), int(sys.argv[4] or 0), float(sys.argv[5])
gt, ct = int(sys.argv[6] or 0), float(sys.argv[7])
def line(name, got, cpu):
    if got != flows:
        print(f"{name}: received {got} of {flows} flows (paced too fast for it): not timed")
        return None
    print(f"{name}: {cpu:.3f} CPU s = {flows / cpu:,.0f} flows per CPU second")
    return cpu
a = line("vpcflow collect (records into a log store)", gv, cv)
line("vpcflow collect (records as text, no store)", gt, ct)
b = line("nfcapd (its own files)", gn, cn)
if a and b:
    print(f"vpcflow CPU / nfcapd CPU = {a / b:.2f}")
PY
