#!/usr/bin/env python3
"""Writes seed inputs for every fuzz target into OUT/TARGET/.

  fuzz/seed.py OUT            the project's own inputs (what fuzz/seeds/ holds)
  fuzz/seed.py OUT --shared   plus ../shared/data: its small captures, and
                              their frames for the frame target

Frames are taken from classic pcap files (gzip too); each seed is the frame
target's input: a byte picking the link type (its index in LINKS of
crates/fuzzing/src/lib.rs), two bytes of extra wire length, the frame.
"""
import gzip, hashlib, json, os, struct, sys, tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINKS = [0, 1, 101, 108, 113, 228, 229, 239, 276, 147]
MAX_CAPTURE = 128 * 1024

SEARCHES = [
    "action:REJECT AND dstport:22", "srcaddr:10.0.0.0/8", "NOT protocol:17",
    "bytes>1000000", "(dstport:22 OR dstport:3389) interface-id:abc*",
    "log-status:NODATA", "tcp-flag:2 direction:ingress", "srcaddr:fe80::/10",
    "decided-by:sg-rule packets>=10", "start<1548752400 end>1548751800",
]
SQLS = [
    "SELECT srcaddr, sum(bytes) AS b FROM records WHERE action = 'REJECT' GROUP BY 1 ORDER BY b DESC LIMIT 10",
    "SELECT * FROM records WHERE NOT (dstport = 22 OR dstport = 3389) AND srcaddr <> '10.0.0.1'",
    "SELECT 'it''s ((((' AS s", "SELECT count(*) FROM records UNION ALL SELECT 1",
    "SELECT \"log-status\", count(*) FROM records GROUP BY 1",
]


def put(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pcap_frames(data):
    """(link, frame, wire_len) of a classic pcap, either byte order."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except Exception:
            return
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    link = struct.unpack(e + "I", data[20:24])[0] & 0xFFFF
    off = 24
    while off + 16 <= len(data):
        _, _, incl, orig = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        if incl > 262144 or off + incl > len(data):
            return
        yield link, data[off:off + incl], orig
        off += incl


def captures(shared):
    yield os.path.join(ROOT, "examples", "vpc-demo.pcap")
    if not shared:
        return
    base = os.path.join(ROOT, "..", "shared", "data")
    for d, _, files in sorted(os.walk(base)):
        for f in sorted(files):
            p = os.path.join(d, f)
            if f.endswith((".pcap", ".pcapng", ".pcap.gz", ".cap", ".trace")) and os.path.getsize(p) <= MAX_CAPTURE:
                yield p


def main():
    out, shared = sys.argv[1], "--shared" in sys.argv[2:]
    frames = 0
    for p in captures(shared):
        data = open(p, "rb").read()
        name = hashlib.sha1(data).hexdigest()[:16]
        put(out, "capture", name, data)
        for i, (link, frame, orig) in enumerate(pcap_frames(data)):
            if link not in LINKS or (not shared and i >= 8) or frames >= 2000:
                break
            extra = max(0, min(orig - len(frame), 0xFFFF))
            put(out, "frame", f"{name}-{i}", bytes([LINKS.index(link)]) + struct.pack(">H", extra) + frame)
            frames += 1
    # The demo capture gzip-compressed, as uploads and ingest take it.
    demo = open(os.path.join(ROOT, "examples", "vpc-demo.pcap"), "rb").read()
    put(out, "capture", "vpc-demo.pcap.gz", gzip.compress(demo, mtime=0))
    toml_text = open(os.path.join(ROOT, "examples", "vpc.toml"), "rb").read()
    put(out, "inventory_toml", "vpc.toml", toml_text)
    put(out, "inventory_json", "vpc.json", json.dumps(tomllib.loads(toml_text.decode())).encode())
    for i, s in enumerate(SEARCHES):
        put(out, "search", f"search-{i}", s.encode())
    for i, s in enumerate(SQLS):
        put(out, "sql", f"sql-{i}", s.encode())


main()
