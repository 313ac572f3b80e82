#!/usr/bin/env bash
# Installs the Debian packages a task needs, and nothing when they are there.
#
#   scripts/setup.sh build   clang, libelf-dev, zlib1g-dev, pkg-config (the agent's
#                            eBPF source, `cargo build --features ebpf`)
#   scripts/setup.sh test    tshark (the tests' independent oracle); iproute2,
#                            nftables, tcpdump, python3, ping (the live tests);
#                            Java (Spark, one of the engines the store is read with);
#                            softflowd, pmacct, Open vSwitch and nfdump (the NetFlow, IPFIX
#                            and sFlow exporters `vpcflow collect` and the collector
#                            `--export ipfix://` are tested against); the seed cloud's
#                            Python SDK, Vector's VRL and flowlogs-reader, and the
#                            engines that read the store (DuckDB, Polars, pyarrow,
#                            chDB, PySpark), pinned in
#                            tests/python-requirements.txt, in a venv (VPCFLOW_TEST_VENV,
#                            default /var/tmp/vpcflow-test-venv); Chromium and its
#                            WebDriver (the web console's browser tests, with
#                            selenium from the same pins)
#   scripts/setup.sh bench   softflowd, bc (the pipeline benchmark), iperf3 (the live one),
#                            valgrind (instructions per packet, bench/instructions.sh)
#   scripts/setup.sh fuzz    python3 with venv (schemathesis, scripts/api-fuzz.sh)
#   scripts/setup.sh clickhouse a ClickHouse server (Debian 12: 18.16; the store on
#                            ClickHouse, scripts/clickhouse.sh)
#   scripts/setup.sh postgres a PostgreSQL server and its client tools (the
#                            control plane's tests on PostgreSQL, scripts/postgres.sh)
#
# Needs root (or sudo) only when something is missing.
set -euo pipefail
# Each entry is what shows a package is there (a command, or a file or glob) : the package.
case "${1:-test}" in
    build) want=(clang:clang pkg-config:pkg-config /usr/include/libelf.h:libelf-dev /usr/include/zlib.h:zlib1g-dev) ;;
    test) want=(tshark:tshark ip:iproute2 nft:nftables tcpdump:tcpdump python3:python3 ping:iputils-ping softflowd:softflowd nfcapd:nfdump pmacctd:pmacct ovs-vswitchd:openvswitch-switch java:openjdk-17-jre-headless chromium:chromium chromedriver:chromium-driver) ;;
    bench) want=(softflowd:softflowd nfpcapd:nfdump argus:argus-server /usr/bin/time:time bc:bc taskset:util-linux iperf3:iperf3 tcpdump:tcpdump ip:iproute2 nft:nftables ping:iputils-ping valgrind:valgrind) ;;
    fuzz) want=(python3:python3) ;;
    clickhouse) want=(/usr/sbin/clickhouse-server:clickhouse-server) ;;
    postgres) want=('/usr/lib/postgresql/*/bin/initdb:postgresql' pg_dump:postgresql-client runuser:util-linux) ;;
    *) echo "usage: $0 build|test|bench|fuzz|postgres|clickhouse" >&2; exit 2 ;;
esac
missing=()
for w in "${want[@]}"; do
    check=${w%%:*}
    if [[ $check == /* ]]; then compgen -G "$check" >/dev/null && continue
    else command -v "$check" >/dev/null 2>&1 && continue; fi
    missing+=("${w#*:}")
done
if [ "${1:-test}" = fuzz ] || [ "${1:-test}" = test ]; then
    python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
fi
# The Python packages the tests use (the seed cloud's SDK, the other
# cloud's flow-log tools), pinned, in a venv of their own; made again when
# the pins change.
test_venv() {
    [ "${1:-test}" = test ] || return 0
    local venv=${VPCFLOW_TEST_VENV:-/var/tmp/vpcflow-test-venv}
    local pins
    pins="$(dirname "$0")/../tests/python-requirements.txt"
    cmp -s "$pins" "$venv/requirements.txt" 2>/dev/null && return 0
    echo "setup: installing tests/python-requirements.txt into $venv (PyPI)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$pins"
    cp "$pins" "$venv/requirements.txt"
}
if [ ${#missing[@]} -eq 0 ]; then
    test_venv "${1:-test}"
    exit 0
fi
echo "setup: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "setup: need root to install ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# wireshark-common asks whether non-root users may capture; say no, quietly.
echo "wireshark-common wireshark-common/install-setuid boolean false" | "${sudo[@]}" debconf-set-selections 2>/dev/null || true
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
test_venv "${1:-test}"
