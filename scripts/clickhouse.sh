#!/usr/bin/env bash
# Throwaway ClickHouse servers for the tests and benchmarks: a cluster of N
# shards (one server each, one replica a shard), each with its own
# directory and ports, listening on 127.0.0.1 only; no systemd.
#
#   scripts/clickhouse.sh start DIR [--shards N]   makes and starts N servers
#       (default 2) on the first free ports from 18123, and prints the store
#       URL to use as its last line:
#         clickhouse://127.0.0.1:H1,127.0.0.1:H2/vpcflow?cluster=vpcflow
#       (each shard's HTTP address, so vpcflow makes its tables on every
#       shard; `cluster=vpcflow` is the cluster in every server's config)
#       Started again on a DIR whose servers were stopped, it starts the same
#       servers (same ports, same data) and prints the same URL.
#   scripts/clickhouse.sh stop DIR                 stops them (DIR can then go)
#
# ClickHouse comes from Debian (scripts/setup.sh clickhouse: 18.16).
set -euo pipefail
usage() { echo "usage: $0 start DIR [--shards N] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
shards=2
while [ $# -gt 0 ]; do
    case "$1" in
        --shards) [ $# -ge 2 ] || usage; shards=$2; shift 2 ;;
        *) usage ;;
    esac
done
[[ $shards =~ ^[1-9][0-9]?$ ]] || { echo "clickhouse.sh: --shards takes 1 to 99, not '$shards'" >&2; exit 2; }
server=/usr/sbin/clickhouse-server
free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /ping HTTP/1.0\r\n\r\n' >&3 && tail -c 4 <&3) 2>/dev/null; }

# write_config DIR HTTP TCP INTERSERVER REMOTE_SERVERS: one shard's server.
write_config() {
    local s=$1 http=$2 tcp=$3 interserver=$4 remote=$5
    mkdir -p "$s/data" "$s/tmp" "$s/user_files" "$s/log"
    cat >"$s/users.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
EOF
    cat >"$s/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$s/log/server.log</log><errorlog>$s/log/error.log</errorlog><size>10M</size><count>2</count></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$http</http_port>
  <tcp_port>$tcp</tcp_port>
  <interserver_http_port>$interserver</interserver_http_port>
  <interserver_http_host>127.0.0.1</interserver_http_host>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>64</max_concurrent_queries>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <mark_cache_size>268435456</mark_cache_size>
  <path>$s/data/</path>
  <tmp_path>$s/tmp/</tmp_path>
  <user_files_path>$s/user_files/</user_files_path>
  <users_config>$s/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <remote_servers><vpcflow>$remote</vpcflow></remote_servers>
  <compression><case><min_part_size>0</min_part_size><min_part_size_ratio>0</min_part_size_ratio><method>zstd</method></case></compression>
  <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
  <max_session_timeout>3600</max_session_timeout>
  <default_session_timeout>60</default_session_timeout>
</yandex>
EOF
}

case "$cmd" in
start)
    [ -x "$server" ] || { echo "clickhouse.sh: no ClickHouse server installed (scripts/setup.sh clickhouse installs it)" >&2; exit 1; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/shard0/config.xml" ]; then
        # The servers of an earlier start: the same again.
        shards=$(compgen -G "$dir/shard*/config.xml" | wc -l)
        ports=()
        for k in $(seq 0 $((shards - 1))); do
            for tag in http_port tcp_port interserver_http_port; do
                ports+=("$(sed -n "s|.*<$tag>\([0-9]*\)</$tag>.*|\1|p" "$dir/shard$k/config.xml")")
            done
        done
    else
        # Three free ports a shard: HTTP, native TCP (the Distributed
        # tables' traffic between shards) and interserver HTTP.
        ports=()
        p=18123
        while [ ${#ports[@]} -lt $((shards * 3)) ]; do
            [ $p -lt 19999 ] || { echo "clickhouse.sh: no free ports from 18123 to 19999" >&2; exit 1; }
            free $p && ports+=("$p")
            p=$((p + 1))
        done
        remote=""
        for k in $(seq 0 $((shards - 1))); do
            remote+="<shard><replica><host>127.0.0.1</host><port>${ports[k * 3 + 1]}</port></replica></shard>"
        done
        for k in $(seq 0 $((shards - 1))); do
            write_config "$dir/shard$k" "${ports[k * 3]}" "${ports[k * 3 + 1]}" "${ports[k * 3 + 2]}" "$remote"
        done
    fi
    url=""
    for k in $(seq 0 $((shards - 1))); do
        s="$dir/shard$k"
        (cd "$s" && exec "$server" --config-file="$s/config.xml" --pid-file="$s/server.pid" --daemon) \
            >"$s/log/start.log" 2>&1 || true
        url+="${url:+,}127.0.0.1:${ports[k * 3]}"
    done
    for k in $(seq 0 $((shards - 1))); do
        ok=""
        for _ in $(seq 1 150); do
            if [ "$(answers "${ports[k * 3]}")" = "Ok." ]; then
                ok=1
                break
            fi
            sleep 0.2
        done
        if [ -z "$ok" ]; then
            echo "clickhouse.sh: shard $k did not start on 127.0.0.1:${ports[k * 3]}; its logs:" >&2
            cat "$dir/shard$k/log/start.log" "$dir/shard$k/log/error.log" >&2 2>/dev/null || true
            "$0" stop "$dir" || true
            exit 1
        fi
    done
    echo "clickhouse://$url/vpcflow?cluster=vpcflow"
    ;;
stop)
    for pidfile in "$dir"/shard*/server.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
    ;;
*) usage ;;
esac
