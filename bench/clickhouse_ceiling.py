"""ClickHouse's own insert ceiling for the store's rows, with no vpcflow in
the way: ROWS rows of the benchmark's `records`, fetched once in Native
format, posted ROUNDS times to a scratch copy of `records_local` on every
shard at once (as vpcflow inserts: each shard its own rows, in parallel).
The rows/s that the servers on this machine can take at best.

    python bench/clickhouse_ceiling.py HOST:PORT[,HOST:PORT...] DATABASE [ROWS] [ROUNDS]
"""
import sys
import threading
import time
import urllib.parse
import urllib.request

hosts = sys.argv[1].split(",")
db = sys.argv[2]
rows = int(sys.argv[3]) if len(sys.argv) > 3 else 70000
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5


def post(host, query, body=None):
    url = f"http://{host}/?" + urllib.parse.urlencode({"query": query}) if body is not None else f"http://{host}/"
    data = body if body is not None else query.encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=600) as r:
        return r.read()


block = post(hosts[0], f"SELECT * FROM {db}.records LIMIT {rows} FORMAT Native")
for h in hosts:
    post(h, f"DROP TABLE IF EXISTS {db}.ceiling")
    post(h, f"CREATE TABLE {db}.ceiling AS {db}.records_local")
errors = []


def insert(host):
    try:
        for _ in range(rounds):
            post(host, f"INSERT INTO {db}.ceiling FORMAT Native", block)
    except Exception as e:  # said below: the measure is void
        errors.append(f"{host}: {e}")


started = time.perf_counter()
threads = [threading.Thread(target=insert, args=(h,)) for h in hosts]
for t in threads:
    t.start()
for t in threads:
    t.join()
took = time.perf_counter() - started
for h in hosts:
    post(h, f"DROP TABLE IF EXISTS {db}.ceiling")
if errors:
    sys.exit("clickhouse ceiling: " + "; ".join(errors))
total = rows * rounds * len(hosts)
print(
    f"clickhouse's own ceiling (no vpcflow): {total / took:.0f} rows/s into {len(hosts)} shards at once "
    f"({total / took / len(hosts):.0f} a shard; {rows} rows a Native insert, {rounds} each, {len(block)} bytes)"
)
