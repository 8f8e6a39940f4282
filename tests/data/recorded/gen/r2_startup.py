#!/usr/bin/env python3
"""Measure start-up of a DICOM server: time from exec until the port accepts
TCP connections, and until echoscu gets an association (C-ECHO success).
usage: r2_startup.py N PORT AET CMD...   (prints one line per run + medians)"""
import os, socket, subprocess, statistics, sys, time
n, port, aet, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
env = dict(os.environ, TCP_NODELAY="1")
tcp, echo = [], []
for i in range(n):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); break
        except OSError:
            time.sleep(0.001)
    t1 = time.monotonic()
    while subprocess.run(["echoscu", "-aec", aet, "127.0.0.1", str(port)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        time.sleep(0.001)
    t2 = time.monotonic()
    p.terminate(); p.wait()
    while True:   # wait until the port is free again
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close(); time.sleep(0.01)
        except OSError:
            break
    tcp.append(t1 - t0); echo.append(t2 - t0)
    print("run %d: port open %.4f s, first C-ECHO ok %.4f s" % (i + 1, t1 - t0, t2 - t0))
print("median: port open %.4f s, first C-ECHO ok %.4f s" % (statistics.median(tcp), statistics.median(echo)))
