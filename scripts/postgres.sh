#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: its own directory, trust
# authentication for the superuser `vpcflow`, listening on 127.0.0.1 only.
#
#   scripts/postgres.sh start DIR   creates the cluster in DIR, starts it on the
#                                   first free port from 55432 and prints its
#                                   URL (postgres://vpcflow@127.0.0.1:PORT)
#   scripts/postgres.sh stop DIR    stops it (DIR can then be removed)
#
# PostgreSQL comes from Debian (scripts/setup.sh postgres). It refuses to
# run as root, so as root it runs as the `postgres` user the package made.
set -euo pipefail
usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
dir=$2
bin=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1 || true)
[ -n "$bin" ] || { echo "postgres.sh: no PostgreSQL server installed (scripts/setup.sh postgres installs it)" >&2; exit 1; }
bin=$(dirname "$bin")
as=()
[ "$(id -u)" -eq 0 ] && as=(runuser -u postgres --)
case "$1" in
start)
    mkdir -p "$dir"
    [ ${#as[@]} -eq 0 ] || chown postgres "$dir"
    cd "$dir"
    "${as[@]}" "$bin/initdb" -D "$dir/cluster" -U vpcflow -A trust -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    for port in $(seq 55432 55481); do
        if "${as[@]}" "$bin/pg_ctl" -D "$dir/cluster" -l "$dir/server.log" -w -t 60 \
            -o "-h 127.0.0.1 -p $port -k $dir -c max_connections=300" start >/dev/null 2>&1; then
            echo "postgres://vpcflow@127.0.0.1:$port"
            exit 0
        fi
    done
    echo "postgres.sh: the server did not start; its log:" >&2
    cat "$dir/server.log" >&2
    exit 1
    ;;
stop)
    cd "$dir"
    "${as[@]}" "$bin/pg_ctl" -D "$dir/cluster" -m fast -w stop >/dev/null
    ;;
*) usage ;;
esac
