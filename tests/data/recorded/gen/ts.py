#!/usr/bin/env python3
"""Timestamper: copy stdin to stdout, each line prefixed with
time.monotonic() (CLOCK_MONOTONIC, system-wide, so stamps from several
processes on one machine compare) as '%.6f '. Unbuffered both ways."""
import sys, time
inp, out = sys.stdin.buffer, sys.stdout.buffer
while True:
    line = inp.readline()
    if not line:
        break
    out.write(b"%.6f " % time.monotonic() + line)
    out.flush()
