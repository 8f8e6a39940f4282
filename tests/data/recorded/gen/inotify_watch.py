#!/usr/bin/env python3
"""Log inotify events of one directory with time.monotonic() stamps
(CLOCK_MONOTONIC, comparable with ts.py stamps):
   '<t> <EVENT> <name> size=<bytes at the time the event was read>'
A run of MODIFY events on one file is shortened to its first event plus one
line '<t> MODIFY... <name> size=<s> (<n> more MODIFY events)' for the last.
An event on the directory itself is shown with the name '<dir>'.
Usage: inotify_watch.py DIR  (runs until SIGTERM)."""
import ctypes, os, struct, sys, time, signal
libc = ctypes.CDLL("libc.so.6", use_errno=True)
EV = {0x2: "MODIFY", 0x8: "CLOSE_WRITE", 0x20: "OPEN", 0x40: "MOVED_FROM",
      0x80: "MOVED_TO", 0x100: "CREATE", 0x200: "DELETE"}
d = sys.argv[1]
fd = libc.inotify_init()
if fd < 0 or libc.inotify_add_watch(fd, d.encode(), sum(EV)) < 0:
    sys.exit("inotify failed")
held = None   # [name, count, last_t, last_size] of a MODIFY run

def flush():
    global held
    if held and held[1] > 0:
        print("%.6f MODIFY... %s size=%s (%d more MODIFY events)" % (held[2], held[0], held[3], held[1]))
    held = None
    sys.stdout.flush()

def stop(*a):
    flush(); sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("%.6f WATCHING %s" % (time.monotonic(), d), flush=True)
while True:
    buf = os.read(fd, 65536)
    t = time.monotonic()
    i = 0
    while i < len(buf):
        wd, mask, cookie, ln = struct.unpack_from("iIII", buf, i)
        name = buf[i + 16:i + 16 + ln].rstrip(b"\0").decode() or "<dir>"
        i += 16 + ln
        try:
            size = os.stat(os.path.join(d, name) if name != "<dir>" else d).st_size
        except OSError:
            size = "-"
        for bit, ev in EV.items():
            if not mask & bit:
                continue
            if ev == "MODIFY" and held and held[0] == name:
                held[1] += 1; held[2] = t; held[3] = size
                continue
            flush()
            print("%.6f %s %s size=%s" % (t, ev, name, size))
            if ev == "MODIFY":
                held = [name, 0, t, size]
    sys.stdout.flush()
