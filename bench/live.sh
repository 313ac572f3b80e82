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
# the agent's CPU time per million packets, and the throughput ratios' 95%
# confidence intervals over the rounds (each round's ratio to that round's
# "none"). For ebpf it also reports what the kernel itself measures of the
# TC programs (kernel.bpf_stats_enabled: run_time_ns / run_cnt of each
# program, read from the agent's /proc/PID/fdinfo), the cost paid per
# packet where it is paid.
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
target=${CARGO_TARGET_DIR:-$PWD/target}
bin=$target/release/vpcflow
tools=$target/release/vpcflow-tools
inv=$PWD/tests/live/testbed.toml
prefix=vbench
work=$(mktemp -d)
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
cleanup() {
    sysctl -qw kernel.bpf_stats_enabled="$stats_before" || true
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
# "prog_tag run_time_ns run_cnt" of each BPF program the process holds
# (the tag names the program's code, the same in every round).
bpf_stats() {
    local f
    for f in /proc/"$1"/fdinfo/*; do
        awk '/^prog_tag:/ {id=$2} /^run_time_ns:/ {ns=$2} /^run_cnt:/ {n=$2}
             END {if (id != "") print id, ns + 0, n + 0}' "$f" 2>/dev/null
    done | sort -u
}
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
    [ "$mode" = ebpf ] && bpf_stats "$capture_pid" > "$work/bpf0"
    t=$(tcp); u=$(udp); r=$(rr); cpu=-
    if [ -n "$capture_pid" ]; then
        c1=$(cpu_ticks "$capture_pid"); p1=$(rx_packets)
        cpu=$(python3 -c "print('%.4f' % (($c1 - $c0) / $(getconf CLK_TCK) / max(1, ($p1 - $p0)) * 1e6))")
    fi
    if [ "$mode" = ebpf ]; then
        bpf_stats "$capture_pid" > "$work/bpf1"
        # Per program: nanoseconds per run over this round's tests.
        join "$work/bpf0" "$work/bpf1" | awk -v r="$round" \
            '$5 > $3 {printf "%s %s %.1f %d\n", r, $1, ($4 - $2) / ($5 - $3), $5 - $3}' >> "$work/bpf"
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
python3 - "$results" "$work/bpf" <<'PY'
import os, statistics, sys
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
    # Each round's ratio to that round's "none": mean and its 95% interval
    # (Student's t; wide with few rounds, as it should be).
    t95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}
    for i, name in ((0, "tcp"), (1, "udp64")):
        ratios = [r[i] / base[i] for r, base in zip(rows[m], rows["none"])]
        if len(ratios) > 1:
            mean, sd = statistics.mean(ratios), statistics.stdev(ratios)
            half = t95.get(len(ratios) - 1, 1.96) * sd / len(ratios) ** 0.5
            print(f"{'':10}   {name} ratio {mean:.3f} +- {half:.3f} (95%, {len(ratios)} rounds)")
if os.path.exists(sys.argv[2]) and os.path.getsize(sys.argv[2]) > 0:
    progs = {}
    for line in open(sys.argv[2]):
        _, prog, ns, runs = line.split()
        progs.setdefault(prog, []).append((float(ns), int(runs)))
    for prog, v in sorted(progs.items()):
        print(f"ebpf program tag {prog}: {statistics.median(x[0] for x in v):.1f} ns per run "
              f"(kernel's BPF statistics, median of {len(v)} rounds, {sum(x[1] for x in v)} runs)")
    # A datagram between the two ports passes both hooks; without capture
    # the path takes 1 / (udp64 rate) per datagram (sender-bound).
    total = sum(statistics.median(x[0] for x in v) for v in progs.values())
    path_ns = 1e9 / n[1]
    print(f"ebpf programs together: {total:.0f} ns per datagram, {100 * total / path_ns:.1f}% of "
          f"the {path_ns / 1e3:.2f} us a 64-byte datagram takes without capture")
else:
    print("ebpf programs: the agent held no BPF program fds to read statistics from")
PY
# The programs' own cost without the network around them: each hook's
# program run inside the kernel on real frames, beside an empty program;
# once with the statistics on, as in the live runs above (the empty
# program's time is then what the statistics themselves add to each live
# figure), and once as the machine runs without them.
echo
empty_ns() { cargo bench -q -p vpcflow-live --features ebpf 2>/dev/null | tee "$work/bench" |
    awk '/^echo-connections/ {print $NF}'; }
with_stats=$(empty_ns)
sysctl -qw kernel.bpf_stats_enabled="$stats_before"
without_stats=$(empty_ns)
sed -n '/^eBPF program cost/,$p' "$work/bench"
echo "empty program: $with_stats ns per run with the statistics on, $without_stats ns without:" \
    "$(echo "$with_stats - $without_stats" | bc) ns of each live figure above is the statistics' own"
