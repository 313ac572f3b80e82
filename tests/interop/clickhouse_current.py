"""Runs the statements vpcflow sends ClickHouse in chDB, a current
release of ClickHouse in process: the store's tables, windows' inserts
(Native and RowBinary files), then queries; prints the release and each query's
answer as TabSeparated text, as JSON.

Input on stdin (JSON): {"statements": [SQL], "inserts": [{"sql":
"INSERT ... FORMAT Native", "file": PATH}], "queries": [SQL]}.
"""
import json
import sys

from chdb import session

spec = json.load(sys.stdin)
s = session.Session()
for sql in spec["statements"]:
    s.query(sql)
for ins in spec["inserts"]:
    head, fmt = ins["sql"].rsplit(" FORMAT ", 1)
    s.query(f"{head} FROM INFILE '{ins['file']}' FORMAT {fmt}")
answers = [str(s.query(q, "TabSeparated")) for q in spec["queries"]]
version = str(s.query("SELECT version()", "TabSeparated")).strip()
print(json.dumps({"version": version, "answers": answers}))
