#!/usr/bin/env python3
"""Sends DICOM files to a Storage SCP (C-STORE), each in its own SOP class
and transfer syntax, and says what became of each one: a stranger pushing
files at pacs2cd's receiver, or a sender whose peer misbehaves.

    push.py HOST:PORT FILE... [--ae FORGER] [--called ANY-SCP]
            [--bind ADDRESS] [--timeout SECONDS]

Run it with the project's virtualenv (pynetdicom 3.0.4, pydicom 3.0.2):
    target/pyenv/bin/python tests/support/push.py ...

One line per file on stdout (`FILE: stored, 0x0000 Success`), or one line
saying why there was no association (`connection refused by ...`,
`connection closed by the peer ...`, `association rejected ...`,
`association aborted by the peer ...`, `no answer within ...`).
Exit status: 0 every file stored (Success or Warning); 1 no association, or
the association was aborted or lost during the transfer; 2 some file not
stored (a failure status, no accepted presentation context, not a DICOM
file). See README.md next to this file.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID
from pynetdicom import AE, _config, build_context, evt
from pynetdicom.pdu import A_ABORT_RQ, A_ASSOCIATE_RJ
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

from serving import nodelay

MAX_CONTEXTS = 128  # the protocol's limit of presentation contexts


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class File:
    """One file to send, as its header describes it."""

    path: Path
    sop_class: UID | None = None
    transfer_syntax: UID | None = None
    problem: str = ""  # why it cannot be sent at all


@dataclass
class Watch:
    """What happened on the association, gathered from pynetdicom's events
    and its log (it reports most of it only there)."""

    connected: bool = False
    connect_error: str = ""
    rejected: str = ""
    peer_abort: str = ""
    we_aborted: bool = False
    errors: list[str] = field(default_factory=list)

    def handlers(self) -> list:
        return [
            (evt.EVT_CONN_OPEN, nodelay),
            (evt.EVT_CONN_OPEN, self.on_open),
            (evt.EVT_PDU_RECV, self.on_received),
            (evt.EVT_PDU_SENT, self.on_sent),
        ]

    def on_open(self, event) -> None:
        self.connected = True

    def on_received(self, event) -> None:
        pdu = event.pdu
        if isinstance(pdu, A_ASSOCIATE_RJ):
            self.rejected = f"{pdu.result_str}, source: {pdu.source_str}, reason: {pdu.reason_str}"
        elif isinstance(pdu, A_ABORT_RQ):
            self.peer_abort = f"source: {pdu.source_str}, reason: {pdu.reason_str}"

    def on_sent(self, event) -> None:
        if isinstance(event.pdu, A_ABORT_RQ):
            self.we_aborted = True


class LogCatcher(logging.Handler):
    """Keeps pynetdicom's error messages: the cause of a failed connection
    (`TCP Initialisation Error: [Errno 111] Connection refused`) is only
    logged."""

    def __init__(self, watch: Watch) -> None:
        super().__init__(logging.ERROR)
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.watch.errors.append(message)
        found = re.match(r"TCP Initialisation Error: (.*)", message)
        if found:
            self.watch.connect_error = found.group(1)


def inspect(path: Path) -> File:
    """Reads a file's header: its SOP class and transfer syntax."""
    try:
        header = dcmread(path, stop_before_pixels=True)
    except OSError as error:
        return File(path, problem=f"cannot read it ({error.strerror or error})")
    except (InvalidDicomError, ValueError, EOFError):
        return File(path, problem="not a DICOM Part 10 file")
    meta = getattr(header, "file_meta", None)
    missing = [k for k in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID")
               if meta is None or not meta.get(k)]
    if missing:
        return File(path, problem=f"no {', '.join(missing)} in its file meta information")
    return File(path, UID(str(meta.MediaStorageSOPClassUID)), UID(str(meta.TransferSyntaxUID)))


def why_not_associated(watch: Watch, target: str, timeout: float) -> str:
    if not watch.connected:
        error = watch.connect_error or "no connection"
        if "refused" in error.lower():
            return f"connection refused by {target}"
        return f"could not connect to {target}: {error}"
    if watch.rejected:
        return f"association rejected by {target}: {watch.rejected}"
    if watch.peer_abort:
        return f"association aborted by the peer ({watch.peer_abort})"
    if watch.we_aborted:
        return f"no answer to the association request within {timeout:g} s: aborted"
    return "connection closed by the peer without an answer to the association request"


def why_lost(watch: Watch, timeout: float, what: str) -> str:
    if watch.peer_abort:
        return f"association aborted by the peer {what} ({watch.peer_abort})"
    if watch.we_aborted:
        return f"no answer within {timeout:g} s {what}: association aborted"
    return f"connection closed by the peer {what}"


def describe_status(code: int) -> str:
    category, text = STORAGE_SERVICE_CLASS_STATUS.get(code, ("Unknown", "unknown status"))
    return f"0x{code:04X} {category}" + (f": {text}" if text else "")


def push(target: tuple[str, int], paths: list[Path], calling: str, called: str,
         bind: str | None, timeout: float) -> int:
    files = [inspect(path) for path in paths]
    sendable = [f for f in files if not f.problem]
    if not sendable:
        for file in files:
            say(f"{file.path}: not sent, {file.problem}")
        return 2

    # One context per (SOP class, transfer syntax) with exactly that syntax:
    # every file goes out as it is stored, never converted.
    pairs: list[tuple[UID, UID]] = []
    for file in sendable:
        pair = (file.sop_class, file.transfer_syntax)
        if pair not in pairs:
            pairs.append(pair)
    contexts = [build_context(sop_class, [syntax]) for sop_class, syntax in pairs[:MAX_CONTEXTS]]

    ae = AE(ae_title=calling)
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = None  # no idle limit of our own: the three above bound every wait
    watch = Watch()
    logging.getLogger("pynetdicom").addHandler(LogCatcher(watch))

    host, port = target
    where = f"{host}:{port}"
    options = {"ae_title": called, "contexts": contexts, "evt_handlers": watch.handlers()}
    if bind:
        options["bind_address"] = (bind, 0)
    assoc = ae.associate(host, port, **options)
    if not assoc.is_established:
        say(why_not_associated(watch, where, timeout))
        return 1

    refused = False
    message_id = 0
    for file in files:
        if file.problem:
            say(f"{file.path}: not sent, {file.problem}")
            refused = True
            continue
        message_id += 1
        try:
            # A path, not a data set: with STORE_SEND_CHUNKED_DATASET the
            # file's own bytes go out, and only in its own transfer syntax.
            status = assoc.send_c_store(file.path, msg_id=message_id)
        except ValueError:
            say(f"{file.path}: not sent, the peer accepted no presentation context for "
                f"{file.sop_class.name} in {file.transfer_syntax.name}")
            refused = True
            continue
        except RuntimeError:  # the association ended before this file
            say(why_lost(watch, timeout, f"before {file.path}"))
            return 1
        if "Status" not in status:
            say(why_lost(watch, timeout, f"while sending {file.path}"))
            return 1
        code = int(status.Status)
        category = STORAGE_SERVICE_CLASS_STATUS.get(code, ("Failure", ""))[0]
        if category == "Success":
            say(f"{file.path}: stored, {describe_status(code)}")
        elif category == "Warning":
            say(f"{file.path}: stored with a warning, {describe_status(code)}")
        else:
            say(f"{file.path}: refused, {describe_status(code)}")
            refused = True
    assoc.release()
    if not assoc.is_released:
        # Every file has its answer; only the goodbye went wrong.
        say(why_lost(watch, timeout, "during the release") + " (every file had its answer)")
    return 2 if refused else 0


def parse_target(text: str) -> tuple[str, int]:
    match = re.fullmatch(r"(.+):(\d{1,5})", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return match.group(1), int(match.group(2))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit status: 0 every file stored, 1 no association or it was aborted, "
        "2 some file not stored",
    )
    parser.add_argument("target", type=parse_target, metavar="HOST:PORT")
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE")
    parser.add_argument("--ae", default="FORGER", help="calling AE title (default FORGER)")
    parser.add_argument("--called", default="ANY-SCP", help="called AE title (default ANY-SCP)")
    parser.add_argument("--bind", metavar="ADDRESS", help="source address (default: the system's choice)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="connect, association and per-answer timeout in seconds (default 5)")
    parser.add_argument("--debug", action="store_true", help="pynetdicom's own log at DEBUG on stderr")
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.debug:
        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
    else:
        # Errors reach LogCatcher only; nothing of pynetdicom's on stderr.
        logging.getLogger("pynetdicom").setLevel(logging.ERROR)
        logging.getLogger("pynetdicom").propagate = False
    _config.STORE_SEND_CHUNKED_DATASET = True
    return push(args.target, args.files, args.ae, args.called, args.bind, args.timeout)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
