#!/usr/bin/env bash
# The live capture benchmark (issue 6): what capturing costs the network.
# On the testbed (tests/live/testbed.toml: port A in subnet a, port B in
# subnet b, routed by the host namespace), in one run, each of
#   none       no capture
#   ebpf       vpcflow agent --capture ebpf on the ports' host interfaces
#   af-packet  vpcflow agent --capture af-packet on the same interfaces
#   tcpdump    tcpdump -w /dev/null on the same interfaces (reference)
# measures iperf3 TCP throughput A->B, iperf3 UDP small-packet rate A->B,
# and UDP request/response round trips A<->B (p50, p99). The modes take
# turns for ROUNDS rounds (so drift on a shared machine hits them alike);
# each figure is the median over rounds, printed as a ratio to "none", with
# the agent's CPU time per million packets.
#
#   bench/live.sh [SECONDS_PER_TEST [ROUNDS]]     (default 5 and 3; root)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
rounds=${2:-3}
[ "$(id -u)" -eq 0 ] || { echo "bench/live.sh needs root (network namespaces)" >&2; exit 1; }
./scripts/setup.sh build
./scripts/setup.sh bench
cargo build --release -q -p vpcflow -p vpcflow-tools --features vpcflow/ebpf
bin=$PWD/target/release/vpcflow
tools=$PWD/target/release/vpcflow-tools
inv=$PWD/tests/live/testbed.toml
prefix=vbench
work=$(mktemp -d)
cleanup() {
    [ -n "${capture_pid:-}" ] && kill "$capture_pid" 2>/dev/null || true
    "$tools" testbed --prefix $prefix down >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
"$tools" testbed --prefix $prefix down >/dev/null 2>&1 || true
"$tools" testbed --prefix $prefix up --config "$inv" >/dev/null
host="ip netns exec $prefix-host"
a="ip netns exec $prefix-p0"
b="ip netns exec $prefix-p1"
$b iperf3 -s -D -1 >/dev/null 2>&1 || true
# A UDP echo server on B:5000 for the round trips.
$b python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5000))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)
' &
echo_pid=$!
sleep 1

rr() {  # p50 p99 of 5000 UDP round trips, microseconds
    $a python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("10.77.2.20", 5000))
t = []
for i in range(5500):
    t0 = time.perf_counter_ns(); s.send(b"x" * 32); s.recv(64); t.append(time.perf_counter_ns() - t0)
t = sorted(t[500:])
print("%.1f %.1f" % (t[len(t) // 2] / 1e3, t[len(t) * 99 // 100] / 1e3))
'
}
tcp() {  # bits/s
    $b iperf3 -s -D -1 >/dev/null 2>&1 || true; sleep 0.3
    $a iperf3 -c 10.77.2.20 -t "$secs" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"])'
}
udp() {  # packets/s received, 64-byte datagrams
    $b iperf3 -s -D -1 >/dev/null 2>&1 || true; sleep 0.3
    $a iperf3 -c 10.77.2.20 -u -l 64 -b 0 -t "$secs" -J | python3 -c '
import json, sys
e = json.load(sys.stdin)["end"]["sum"]
print(e["packets"] * (1 - e["lost_percent"] / 100) / e["seconds"])'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rx_packets() {
    local n=0
    for i in vfbtap-a vfbtap-b; do
        n=$((n + $($host cat /sys/class/net/$i/statistics/rx_packets) + $($host cat /sys/class/net/$i/statistics/tx_packets)))
    done
    echo $n
}

modes=(none ebpf af-packet tcpdump)
results=$work/results
for round in $(seq "$rounds"); do
for mode in "${modes[@]}"; do
    capture_pid=
    case $mode in
        ebpf|af-packet)
            $host "$bin" agent --capture "$mode" --config "$inv" --store "$work/store-$mode" --window 60 >/dev/null 2>"$work/agent.err" &
            capture_pid=$!; sleep 1.5 ;;
        tcpdump)
            $host tcpdump -q -s 256 -i vfbtap-a -w /dev/null 2>/dev/null &
            capture_pid=$!
            $host tcpdump -q -s 256 -i vfbtap-b -w /dev/null 2>/dev/null &
            tcpdump_b=$!; sleep 1 ;;
    esac
    p0=$(rx_packets)
    [ -n "$capture_pid" ] && c0=$(cpu_ticks "$capture_pid")
    t=$(tcp); u=$(udp); r=$(rr); cpu=-
    if [ -n "$capture_pid" ]; then
        c1=$(cpu_ticks "$capture_pid"); p1=$(rx_packets)
        cpu=$(python3 -c "print('%.4f' % (($c1 - $c0) / $(getconf CLK_TCK) / max(1, ($p1 - $p0)) * 1e6))")
    fi
    [ -n "$capture_pid" ] && kill -INT "$capture_pid" && wait "$capture_pid" 2>/dev/null || true
    [ "$mode" = tcpdump ] && kill "$tcpdump_b" 2>/dev/null || true
    capture_pid=
    echo "$mode $t $u $r $cpu" >> "$results"
    printf 'round %d %-10s tcp %.2f Gbit/s  udp64 %.0f pps  rr p50/p99 %s us  cpu %s s/Mpkt\n' "$round" "$mode" \
        "$(python3 -c "print($t / 1e9)")" "$u" "$r" "$cpu"
done
done
kill $echo_pid 2>/dev/null || true
python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m, t, u, p50, p99, cpu = line.split()
    rows.setdefault(m, []).append((float(t), float(u), float(p50), float(p99), cpu))
med = {m: [statistics.median(r[i] for r in v) for i in range(4)] for m, v in rows.items()}
n = med["none"]
print(f"none       tcp {n[0] / 1e9:.2f} Gbit/s, udp64 {n[1]:.0f} pps, rr p50 {n[2]:.1f} us, p99 {n[3]:.1f} us (medians of {len(rows['none'])} rounds)")
for m in ("ebpf", "af-packet", "tcpdump"):
    x = med[m]
    cpus = [float(r[4]) for r in rows[m] if r[4] != "-"]
    cpu = f", capture process CPU {statistics.median(cpus):.4f} s per million packets" if cpus else ""
    print(f"{m:10} / none: tcp {x[0] / n[0]:.3f}, udp64 {x[1] / n[1]:.3f}, "
          f"rr p50 {x[2] - n[2]:+.1f} us, p99 {x[3] - n[3]:+.1f} us{cpu}")
PY
