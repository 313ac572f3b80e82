#!/usr/bin/env python3
"""Reads one vpcflow store with every common engine (DuckDB, Polars,
pyarrow datasets, chDB, Spark) the way each documents reading a Hive-style
Parquet tree, and prints what each saw as one JSON object per line:

  {"engine": ..., "rows": N, "digest": ..., "top_talkers": [...],
   "types": {"date": ..., "hour": ..., "start_time": ...}, "dashes": [...]}

`digest` is a SHA-256 over every row (every column, partitions included),
each value normalized (integers, timestamps as Unix seconds, text, null)
and the rows sorted, so equal digests mean the same rows. `ours` (a file of
`vpcflow query --format json` lines) is digested the same way as engine
"vpcflow". `dashes` names the text columns holding `-`, which would be a
second null convention beside NULL.

  engines.py STORE_DIR OURS_JSON_LINES [ENGINE...]
"""
import calendar
import datetime
import decimal
import hashlib
import json
import os
import sys

TOP = (
    "SELECT srcaddr, sum(bytes) AS bytes, count(*) AS flows FROM records "
    "WHERE log_status = 'OK' GROUP BY srcaddr ORDER BY bytes DESC, srcaddr LIMIT 10"
)


def norm(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, decimal.Decimal)):
        return int(v)
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            # Spark hands instants over in the session's zone, UTC here.
            return calendar.timegm(v.timetuple())
        return int(v.timestamp())
    if isinstance(v, datetime.date):
        return v.isoformat()
    return str(v)


def summary(engine, columns, rows, top, types):
    cols = sorted(columns)
    canon = sorted(
        json.dumps([norm(r[c]) for c in cols], separators=(",", ":")) for r in rows
    )
    digest = hashlib.sha256("\n".join(canon).encode()).hexdigest()
    dashes = sorted(
        {c for r in rows for c in cols if isinstance(r[c], str) and r[c] == "-"}
    )
    return {
        "engine": engine,
        "rows": len(rows),
        "columns": cols,
        "digest": digest,
        "top_talkers": [[norm(x) for x in t] for t in top],
        "types": types,
        "dashes": dashes,
    }


def ours(path):
    rows = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            for c in ("start_time", "end_time"):
                if r.get(c) is not None:
                    r[c] = calendar.timegm(
                        datetime.datetime.strptime(r[c], "%Y-%m-%dT%H:%M:%SZ").timetuple()
                    )
            rows.append(r)
    return rows


def duckdb_(store):
    import duckdb

    con = duckdb.connect()
    glob = f"{store}/**/*.parquet".replace("'", "''")
    con.execute(
        f"CREATE VIEW records AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)"
    )
    cur = con.execute("SELECT * FROM records")
    columns = [d[0] for d in cur.description]
    rows = [dict(zip(columns, r)) for r in cur.fetchall()]
    top = con.execute(TOP).fetchall()
    t = con.execute(
        "SELECT typeof(date), typeof(hour), typeof(start_time) FROM records LIMIT 1"
    ).fetchall()[0]
    return columns, rows, top, {"date": t[0], "hour": t[1], "start_time": t[2]}


def polars_(store):
    import polars as pl

    lf = pl.scan_parquet(f"{store}/**/*.parquet", hive_partitioning=True)
    df = lf.collect()
    top = pl.SQLContext(records=lf).execute(TOP).collect().rows()
    schema = df.schema
    types = {c: str(schema[c]) for c in ("date", "hour", "start_time")}
    return df.columns, df.to_dicts(), top, types


def pyarrow_(store):
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(store, format="parquet", partitioning="hive").to_table()
    ok = table.filter(pc.equal(table["log_status"], "OK"))
    grouped = ok.group_by("srcaddr").aggregate([("bytes", "sum"), ([], "count_all")])
    top = sorted(
        ((r["srcaddr"], r["bytes_sum"], r["count_all"]) for r in grouped.to_pylist()),
        key=lambda r: (-(r[1] or 0), r[0]),
    )[:10]
    types = {c: str(table.schema.field(c).type) for c in ("date", "hour", "start_time")}
    return table.column_names, table.to_pylist(), top, types


def chdb_(store):
    import chdb

    src = f"file('{store}/**/*.parquet', Parquet)"
    settings = " SETTINGS use_hive_partitioning = 1"

    def query(sql):
        return chdb.query(sql.replace("records", src) + settings, "ArrowTable")

    table = query("SELECT * FROM records")
    top = [tuple(r.values()) for r in query(TOP).to_pylist()]
    t = query(
        "SELECT toTypeName(date) AS d, toTypeName(hour) AS h, toTypeName(start_time) AS s "
        "FROM records LIMIT 1"
    ).to_pylist()[0]
    return table.column_names, table.to_pylist(), top, {
        "date": t["d"],
        "hour": t["h"],
        "start_time": t["s"],
    }


def spark_(store):
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("vpcflow-engines")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        df = spark.read.parquet(store)
        df.createOrReplaceTempView("records")
        rows = [r.asDict() for r in df.collect()]
        top = [tuple(r) for r in spark.sql(TOP).collect()]
        types = {c: df.schema[c].dataType.simpleString() for c in ("date", "hour", "start_time")}
        return df.columns, rows, top, types
    finally:
        spark.stop()


ENGINES = {
    "duckdb": duckdb_,
    "polars": polars_,
    "pyarrow": pyarrow_,
    "chdb": chdb_,
    "spark": spark_,
}


def main() -> int:
    os.environ["TZ"] = "UTC"
    store, mine = sys.argv[1], sys.argv[2]
    wanted = sys.argv[3:] or list(ENGINES)
    rows = ours(mine)
    columns = list(rows[0].keys()) if rows else []
    print(json.dumps(summary("vpcflow", columns, rows, [], {})), flush=True)
    for name in wanted:
        columns, rows, top, types = ENGINES[name](store)
        print(json.dumps(summary(name, columns, rows, top, types)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
