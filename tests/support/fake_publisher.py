#!/usr/bin/env python3
"""A Storage SCP standing in for the CD publisher robot: it stores whatever
it is sent and can stop answering on purpose.

    fake_publisher.py --port PORT --ae CDPUB --dir DIR [--stall-after N]
                      [--ready-file FILE]

Run it with the project's virtualenv (pynetdicom 3.0.4, pydicom 3.0.2):
    target/pyenv/bin/python tests/support/fake_publisher.py ...
Each received instance becomes DIR/<SOPInstanceUID>.dcm (Part 10, with the
file meta information, bytes as received). One line per stored instance goes
to stderr; SIGTERM or SIGINT stop it cleanly (exit status 0). See README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

from pydicom.uid import UID
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification

from serving import log, nodelay, stop_server, write_ready

OUT_OF_RESOURCES = 0xA700
DOES_NOT_MATCH = 0xA900  # Data set does not match SOP class
UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")


class Publisher:
    """The C-STORE handler and what it shares across associations: the
    output folder, the number stored so far, and the stop signal."""

    def __init__(self, out: Path, stall_after: int | None) -> None:
        self.out = out
        self.stall_after = stall_after
        self.stop = threading.Event()
        self.stored = 0
        # Several associations may store at once; the count decides the stall.
        self.lock = threading.Lock()

    def handle_echo(self, event) -> int:
        log(f"C-ECHO from {event.assoc.requestor.ae_title}")
        return 0x0000

    def handle_store(self, event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID or "")
        sop_class = UID(str(event.request.AffectedSOPClassUID or ""))
        if not UID_PATTERN.fullmatch(uid) or len(uid) > 64:
            # The UID names the file: never let a peer choose another path.
            log(f"refused an instance with an invalid SOP Instance UID {uid!r}")
            return DOES_NOT_MATCH
        with self.lock:
            # Decided and counted at once, so concurrent senders never store
            # more than --stall-after between them.
            stall = self.stall_after is not None and self.stored >= self.stall_after
            if not stall:
                self.stored += 1
                count = self.stored
        if stall:
            log(f"stalling on {uid}: {self.stall_after} instances stored, no more answers")
            # Keep the association open and the sender waiting until we are stopped.
            self.stop.wait()
            # Abort rather than answer late; the blocking form also keeps
            # pynetdicom from sending the response after the abort.
            event.assoc.abort(block=True)
            return OUT_OF_RESOURCES
        path = self.out / f"{uid}.dcm"
        temporary = self.out / f".{uid}.dcm.part"
        # Bytes as received, behind a file meta header: nothing re-encoded.
        temporary.write_bytes(event.encoded_dataset(include_meta=True))
        replaced = path.exists()
        os.replace(temporary, path)  # a reader never sees half a file
        syntax = UID(event.context.transfer_syntax)
        note = " (replaced an earlier copy)" if replaced else ""
        log(f"stored {uid} [{count}] {sop_class.name} in {syntax.name} "
            f"from {event.assoc.requestor.ae_title}{note}")
        return 0x0000


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--ae", default="CDPUB", help="own AE title (any called AE is accepted)")
    parser.add_argument("--dir", type=Path, required=True, help="where received instances go")
    parser.add_argument("--stall-after", type=int, metavar="N",
                        help="after N stored instances, answer no further C-STORE")
    parser.add_argument("--ready-file", type=Path, help="written with 'ready' once listening")
    parser.add_argument("--debug", action="store_true", help="pynetdicom's own log at DEBUG")
    args = parser.parse_args(argv)
    if args.stall_after is not None and args.stall_after < 0:
        parser.error("--stall-after must be 0 or more")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # pynetdicom logs every PDU at INFO; keep stderr to our one line per instance.
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if args.debug else logging.CRITICAL)
    if args.debug:
        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
    args.dir.mkdir(parents=True, exist_ok=True)

    # pynetdicom's documented switch for "accept every storage SOP class,
    # private and unknown ones too, in the transfer syntax the peer proposes
    # first" (a publisher takes what the PACS holds).
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    ae = AE(ae_title=args.ae)
    # A stall must last until we are killed: never drop an idle peer ourselves.
    ae.network_timeout = None
    ae.maximum_associations = 20
    ae.add_supported_context(Verification)

    publisher = Publisher(args.dir, args.stall_after)
    handlers = [
        (evt.EVT_CONN_OPEN, nodelay),
        (evt.EVT_C_ECHO, publisher.handle_echo),
        (evt.EVT_C_STORE, publisher.handle_store),
    ]
    stop = publisher.stop
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server = ae.start_server((args.host, args.port), block=False, evt_handlers=handlers)
    except OSError as error:
        log(f"fake_publisher: cannot listen on {args.host}:{args.port}: {error}")
        return 2
    stall = f", stalling after {args.stall_after}" if args.stall_after is not None else ""
    log(f"fake_publisher: listening on {args.host}:{args.port} as {args.ae}, storing into {args.dir}{stall}")
    if args.ready_file:
        write_ready(args.ready_file)
    # A plain wait with a timeout keeps the main thread responsive to signals.
    while not stop.wait(0.5):
        pass
    log("fake_publisher: stopping")
    left = stop_server(server, ae)
    if left:
        log(f"fake_publisher: threads still running: {', '.join(left)}")
        return 1
    log(f"fake_publisher: stopped after storing {publisher.stored} instances")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
