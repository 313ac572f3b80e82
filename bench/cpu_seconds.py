#!/usr/bin/env python3
"""Runs a command pinned to CPU 0 and prints the CPU seconds (user + system)
it used. The benchmark compares tools by CPU time rather than wall time
because softflowd, after reading a file, sometimes sits idle on its control
socket instead of exiting; it is stopped after --idle seconds without CPU
progress, which does not count against it."""
import os
import resource
import subprocess
import sys
import tempfile
import time

def main() -> int:
    idle = 5.0
    args = sys.argv[1:]
    if args[:1] == ["--idle"]:
        idle, args = float(args[1]), args[2:]
    # stderr goes to a file: a pipe nobody reads until the end would stop a
    # tool that writes much there (nfpcapd warns once per odd frame).
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(["taskset", "-c", "0", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    last_cpu, last_change = -1.0, time.monotonic()
    while proc.poll() is None:
        time.sleep(0.05)
        try:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if cpu != last_cpu:
            last_cpu, last_change = cpu, time.monotonic()
        elif time.monotonic() - last_change > idle:
            proc.kill()
    proc.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    err.seek(0)
    sys.stderr.write(err.read().decode(errors="replace"))
    print(f"{usage.ru_utime + usage.ru_stime:.3f}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
