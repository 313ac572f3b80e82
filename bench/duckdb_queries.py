"""The store benchmarks' two queries in DuckDB over a Parquet store's files
(the baseline beside vpcflow's DataFusion and ClickHouse): the top-10
talkers and a filtered one-day search from T0, best of three each.

    python bench/duckdb_queries.py STORE_DIR T0
"""
import sys
import time

import duckdb

store, t0 = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
con.execute(
    f"CREATE VIEW records AS SELECT * FROM read_parquet('{store}/**/*.parquet', hive_partitioning = true)"
)
for name, sql in [
    ("top10", "SELECT srcaddr, sum(bytes) AS bytes FROM records WHERE log_status = 'OK' "
              "GROUP BY srcaddr ORDER BY bytes DESC, srcaddr LIMIT 10"),
    ("search-one-day", f"SELECT count(*) AS n, sum(bytes) AS bytes FROM records WHERE \"end\" > {t0} "
                       f"AND start < {t0 + 86400} AND action = 'REJECT' AND dstport = 22"),
]:
    best = None
    for _ in range(3):
        t = time.perf_counter()
        rows = con.execute(sql).fetchall()
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    print(f"duckdb {name}: {best:.3f} s ({len(rows)} rows, best of 3)")
