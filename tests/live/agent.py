#!/usr/bin/env python3
"""Traffic for the live kernel tests, run inside test namespaces.

  agent.py serve --tcp 22,80 --udp 53     listen; print "ready"; serve until killed
  agent.py connect SRC DST tcp|udp PORT   one attempt; print one JSON line:
      {"src": ..., "sport": ..., "dst": ..., "dport": ..., "proto": 6|17, "ok": bool}
"""
import json
import selectors
import socket
import sys

TIMEOUT = 1.5


def serve(tcp_ports, udp_ports):
    sel = selectors.DefaultSelector()
    for p in tcp_ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", p))
        s.listen(16)
        sel.register(s, selectors.EVENT_READ, "tcp")
    for p in udp_ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", p))
        sel.register(s, selectors.EVENT_READ, "udp")
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if key.data == "tcp":
                c, _ = s.accept()
                c.sendall(b"ok")
                c.close()
            else:
                data, peer = s.recvfrom(2048)
                s.sendto(b"ok:" + data, peer)


def connect(src, dst, proto, port):
    tcp = proto == "tcp"
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(TIMEOUT)
    sport = s.getsockname()[1]
    ok = False
    try:
        if tcp:
            s.connect((dst, port))
            ok = s.recv(16) == b"ok"
        else:
            s.sendto(b"ping", (dst, port))
            data, _ = s.recvfrom(2048)
            ok = data == b"ok:ping"
    except OSError:
        ok = False
    finally:
        s.close()
    print(json.dumps({"src": src, "sport": sport, "dst": dst, "dport": port,
                      "proto": 6 if tcp else 17, "ok": ok}), flush=True)


def ports(arg):
    return [int(p) for p in arg.split(",") if p]


def main():
    if sys.argv[1] == "serve":
        args = dict(zip(sys.argv[2::2], sys.argv[3::2]))
        serve(ports(args.get("--tcp", "")), ports(args.get("--udp", "")))
    elif sys.argv[1] == "connect":
        src, dst, proto, port = sys.argv[2:6]
        connect(src, dst, proto, int(port))
    else:
        sys.exit("usage: agent.py serve|connect ...")


if __name__ == "__main__":
    main()
