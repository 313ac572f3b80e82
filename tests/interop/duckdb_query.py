#!/usr/bin/env python3
"""Runs SQL in DuckDB over a vpcflow store directory read with Hive
partitioning (the table is `records`), and prints the result as CSV with a
header line, the way `vpcflow query --format csv` does.

  duckdb_query.py STORE_DIR 'SELECT ... FROM records ...'
"""
import csv
import sys

import duckdb


def main() -> int:
    store, sql = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    glob = f"{store}/**/*.parquet".replace("'", "''")
    con.execute(
        f"CREATE VIEW records AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)"
    )
    cur = con.execute(sql)
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow([d[0] for d in cur.description])
    for row in cur.fetchall():
        out.writerow(["" if v is None else v for v in row])
    return 0


if __name__ == "__main__":
    sys.exit(main())
