"""Reads `vpcflow ... --format aws[:FIELDS]` lines with the tools built
around the other big cloud's flow logs, and checks each reads back as
written: Vector's VRL `parse_aws_vpc_flow_log` (vrl-python) and
flowlogs-reader's `FlowRecord` (with the lines' own field list).

    python aws_lines.py FILE "FIELD FIELD ..."

FILE's first line is the header (`--header`). Prints `read N lines`;
exits non-zero at the first line either tool reads differently.
"""
import sys
from datetime import datetime, timezone

import flowlogs_reader
import vrl_python

path, fields = sys.argv[1], sys.argv[2].split()
lines = open(path).read().splitlines()
assert lines[0].split() == fields, f"header {lines[0]!r} is not {fields}"
runtime = vrl_python.VRLRuntime()
# VRL names the fields with underscores, as Vector's events do.
program = f'. = parse_aws_vpc_flow_log!(.message, "{" ".join(f.replace("-", "_") for f in fields)}")'
numbers = {"version", "srcport", "dstport", "protocol", "packets", "bytes", "start", "end",
           "tcp-flags", "traffic-path"}


def expected(name, text):
    if text == "-":
        return None
    return int(text) if name in numbers else text


n = 0
for line in lines[1:]:
    values = line.split(" ")
    assert len(values) == len(fields), f"{len(values)} values: {line}"
    want = {f: expected(f, v) for f, v in zip(fields, values)}
    vrl = runtime.execute(program, {"message": line}).processed_event
    for f in fields:
        got = vrl.get(f.replace("-", "_"))
        if got != want[f]:
            sys.exit(f"VRL reads {f} as {got!r}, written {want[f]!r}: {line}")
    record = flowlogs_reader.FlowRecord.from_cwl_event(
        {"message": line}, fields=[f.replace("-", "_") for f in fields])
    for f in fields:
        got = getattr(record, f.replace("-", "_"), "absent")
        if f in ("start", "end") and want[f] is not None:
            got = int(got.replace(tzinfo=timezone.utc).timestamp())
        if got != want[f]:
            sys.exit(f"flowlogs-reader reads {f} as {got!r}, written {want[f]!r}: {line}")
    n += 1
print(f"read {n} lines")
