"""What both fake DICOM servers need around pynetdicom: one log line per
write, Nagle switched off, the ready file the test harness polls, and a
shutdown that leaves no thread behind."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

from pynetdicom import AE


def log(message: str) -> None:
    # The test harness reads this log while we run: never let it sit in a
    # buffer. One write per line, so lines of concurrent threads never mix
    # (print() writes the text and the newline separately).
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def nodelay(event) -> None:
    """An EVT_CONN_OPEN handler. pynetdicom leaves Nagle on; with DCMTK's
    delayed ACKs every C-STORE could wait ~40 ms (DICOM-NOTES 1)."""
    try:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError):
        pass


def write_ready(path: Path) -> None:
    # Written whole under a temporary name, so a poller never reads half of it.
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("ready\n")
    os.replace(temporary, path)


def stop_server(server, ae: AE) -> list[str]:
    """Closes the listening socket, aborts every association and waits for
    their threads; returns the names of threads that did not end."""
    server.shutdown()
    # A connection that never sent an A-ASSOCIATE-RQ (a harness probing the
    # port) keeps its thread waiting acse_timeout (30 s) for one, and
    # aborting it there upsets pynetdicom's state machine. Close it and hand
    # the thread the "nothing came" it waits for, so it ends now.
    waiting = [a for a in ae.active_associations if not a.is_established]
    for assoc in waiting:
        if assoc.dul.socket is not None:
            assoc.dul.socket.close()
        assoc.dul.to_user_queue.put(None)
    for assoc in waiting:
        assoc.join(1.0)
    ae.shutdown()  # A-ABORT to every established association
    deadline = time.monotonic() + 5
    for thread in threading.enumerate():
        if thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
    return [t.name for t in threading.enumerate() if t is not threading.current_thread()]
