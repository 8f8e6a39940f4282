#!/usr/bin/env python3
"""A Query/Retrieve SCP (Study Root FIND/MOVE/GET + Verification) that serves
the DICOM files of a folder and, on request, misbehaves like real PACSs do.

    fake_pacs.py --port PORT --ae PACS --dir DIR [--behaviour NAME]
                 [--peer AE=HOST:PORT ...] [--deliver K] [--late K] [--pause S]
                 [--late-once] [--late-until-next]
                 [--bind ADDRESS] [--ready-file FILE]

Run it with the project's virtualenv (pynetdicom 3.0.4, pydicom 3.0.2):
    target/pyenv/bin/python tests/support/fake_pacs.py ...
Every behaviour is described in BEHAVIOURS below and in README.md next to
this file. One line per request goes to stderr; SIGTERM or SIGINT stop it
cleanly (exit status 0).
"""

from __future__ import annotations

import argparse
import copy
import logging
import queue
import re
import signal
import socket
import sys
import threading
import time
import uuid
import weakref
from collections import Counter
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    UID,
)
from pynetdicom import (
    AE,
    ALL_TRANSFER_SYNTAXES,
    AllStoragePresentationContexts,
    build_context,
    evt,
)
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_MOVE
from pynetdicom.dsutils import encode
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from serving import log, nodelay, stop_server, write_ready


def _run_reactor_without_the_race(self) -> None:
    """pynetdicom 3.0.4's association reactor says it is paused just before
    it blocks, so a send_c_store() on the C-MOVE sub-association can send its
    request while the reactor is still about to read the queue: the reactor
    then takes the C-STORE response ("Received unexpected C-STORE service
    message") and the move hangs until the client's DIMSE timeout. Under load
    (another association served at the same time) it happened in about one
    C-MOVE of ten. Here "paused" is said only once the reactor has seen the
    checkpoint cleared, right before it blocks on it. The rest is pynetdicom's
    loop, unchanged in substance."""
    self._is_paused = False
    while not self._kill:
        time.sleep(0.001)
        if not self._reactor_checkpoint.is_set():
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False
            continue
        context_id, msg = self.dimse.get_msg(block=False)
        if msg:
            self._serve_request(msg, context_id)
        if self.is_established and self.acse.is_release_requested():
            self.acse.send_release(is_response=True)
            logging.getLogger("pynetdicom.association").info("Association Released")
            self.is_released = True
            self.is_established = False
            evt.trigger(self, evt.EVT_RELEASED, {})
            self.kill()
            return
        if self.acse.is_aborted():
            self.dul.receive_pdu(wait=False)
            self.is_aborted = True
            self.is_established = False
            evt.trigger(self, evt.EVT_ABORTED, {})
            self.kill()
            return
        if not self.dul.is_alive():
            self.kill()
            return
        if self.dul.idle_timer_expired():
            self.abort()
            self.kill()
            return


Association._run_reactor = _run_reactor_without_the_race

BEHAVIOURS = {
    "normal": "answers like a well-behaved PACS, with image counts at STUDY and SERIES level",
    "no-counts": "never returns NumberOf*Related* counts in C-FIND responses",
    "short": "announces N sub-operations, sends K (--deliver, default N-5), ends Success "
    "with Remaining N-K; no counts in C-FIND",
    "repeats": "sends K distinct instances (--deliver) and repeats some up to N C-STOREs; "
    "ends Success, Completed N; no counts in C-FIND",
    "per-instance-find": "a STUDY-level C-FIND gets one identical response per instance",
    "latin1": "C-FIND responses carry PatientName/PatientID as ISO-8859-1 bytes and no "
    "SpecificCharacterSet",
    "study-twice": "a STUDY-level C-FIND returns each matching study twice",
    "study-twice-disagree": "each study twice, the second time with PatientID OTHER-ID",
    "foreign": "a retrieve also sends an instance of the same study but of patient INTRUDER",
    "foreign-first": "a retrieve sends that instance of patient INTRUDER first, then the study, "
    "waiting --pause SECONDS before each instance",
    "other-study-first": "a retrieve sends an instance of the same patient but of another study "
    "(one no C-FIND knows) first, then the study, waiting --pause SECONDS before each instance",
    "extra": "a retrieve also sends an instance of the same study and patient that no "
    "C-FIND reports",
    "same-uid-differs": "a retrieve also sends a second, different data set under one "
    "instance's SOP Instance UID",
    "stall": "a retrieve stops after K instances (--deliver, default 1) and answers "
    "nothing more for 120 s, then aborts",
    "abort": "a retrieve sends K instances (--deliver, default 1), then aborts the association",
    "slow": "a retrieve waits --pause SECONDS (default 0.1) before each instance; otherwise normal",
    "lose-one": "the last instance of a retrieve cannot be read: that sub-operation fails, "
    "final Warning 0xB000",
    "refuse-image": "IMAGE-level C-FIND refused (0xA900); STUDY and SERIES normal",
    "refuse-image-no-counts": "IMAGE-level C-FIND refused and no counts at any level",
    "refuse-series": "SERIES- and IMAGE-level C-FIND refused; STUDY normal",
    "image-needs-series": "IMAGE-level C-FIND refused (0xA900) unless it names exactly one "
    "SeriesInstanceUID",
    "list-short": "the IMAGE-level C-FIND leaves out the last 3 instances of each study's first "
    "series and retrieves send only the listed ones; STUDY and SERIES counts stay true",
    "zero-count": "a STUDY-level C-FIND says NumberOfStudyRelatedInstances 0 for the archive's "
    "first study; otherwise normal",
    "parallel": "a C-MOVE sends over 3 sub-associations open at the same time (instances "
    "round-robin), final Success with Completed N",
    "late": "a C-MOVE sends all but the last K (--late, default 2), ends Success claiming N, "
    "then --pause S (default 0.5) later sends the K on a new association",
    "no-multi-study": "a C-MOVE/C-GET naming several StudyInstanceUIDs fails (0xA801 / 0xC000, "
    "counts 0, nothing sent)",
    "no-issuer": "C-FIND responses never carry IssuerOfPatientID (the files do); otherwise normal",
    "empty-study": "a STUDY-level C-FIND also answers, for each accession, a study the archive "
    "holds no instance of (NumberOfStudyRelatedInstances 0; no series); otherwise normal",
    "loose": "a STUDY-level C-FIND matches AccessionNumber loosely: case ignored, and any "
    "accession that begins with the value matches (as fuzzy-matching PACSs do)",
    "find-abort": "a STUDY-level C-FIND sends its first answer, then aborts the association",
}

# Behaviours whose C-FIND responses carry no NumberOf*Related* counts.
NO_COUNTS = {"no-counts", "short", "repeats", "refuse-image-no-counts"}
# Query levels a behaviour refuses outright.
REFUSED_LEVELS = {
    "refuse-image": {"IMAGE"},
    "refuse-image-no-counts": {"IMAGE"},
    "refuse-series": {"SERIES", "IMAGE"},
}
# --deliver K when not given: None means "N - 5, at least 1".
DEFAULT_DELIVER = {"short": None, "repeats": None, "stall": 1, "abort": 1}
# --pause S when not given.
DEFAULT_PAUSE = {"late": 0.5}
PAUSE = 0.1
# list-short: instances left out at the end of each study's first series.
LIST_SHORT_HIDDEN = 3
# parallel: sub-associations a C-MOVE opens at the same time.
PARALLEL_ASSOCIATIONS = 3

LEVELS = ("STUDY", "SERIES", "IMAGE")
# The unique key of each level, always returned at that level and below it.
UNIQUE_KEYS = {"STUDY": "StudyInstanceUID", "SERIES": "SeriesInstanceUID", "IMAGE": "SOPInstanceUID"}
# Matching keys, and the deepest level at which a key is an attribute of the
# entity being matched (keys of deeper levels are ignored, like Orthanc does).
MATCH_KEYS = {
    "PatientID": "STUDY",
    "AccessionNumber": "STUDY",
    "StudyInstanceUID": "STUDY",
    "ModalitiesInStudy": "STUDY",
    "SeriesInstanceUID": "SERIES",
    "Modality": "SERIES",
    "SOPInstanceUID": "IMAGE",
}
UID_KEYS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"}
COUNT_KEYS = {
    "NumberOfStudyRelatedInstances",
    "NumberOfStudyRelatedSeries",
    "NumberOfSeriesRelatedInstances",
}

STALL_SECONDS = 120.0
PENDING = 0xFF00
CANCEL = 0xFE00
REFUSED = 0xA900  # Identifier does not match SOP class
NO_MATCH_FAILURE = 0xC000  # what Orthanc sends when a retrieve matches nothing
MOVE_DESTINATION_UNKNOWN = 0xA801
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"


@dataclass
class Instance:
    """One served file: its header (no pixels, kept small) and where it lies."""

    path: Path
    header: Dataset
    transfer_syntax: UID

    def value(self, keyword: str) -> str:
        """A header attribute as text ("" when absent or empty)."""
        value = self.header.get(keyword)
        return "" if value is None else str(value)

    @property
    def study_uid(self) -> str:
        return self.value("StudyInstanceUID")

    @property
    def series_uid(self) -> str:
        return self.value("SeriesInstanceUID")

    @property
    def sop_uid(self) -> str:
        return self.value("SOPInstanceUID")

    def load(self) -> Dataset:
        """The whole data set, read when it is sent (as a PACS reads its disk)."""
        return dcmread(self.path)


@dataclass
class Archive:
    """Every Part 10 file under a folder, grouped by study and series in
    file-name order (series by SeriesNumber, instances by InstanceNumber)."""

    instances: list[Instance] = field(default_factory=list)

    @staticmethod
    def load(root: Path) -> "Archive":
        found: dict[str, Instance] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            try:
                header = dcmread(path, stop_before_pixels=True)
            except (InvalidDicomError, OSError, ValueError) as error:
                log(f"skipped {path}: not a DICOM Part 10 file ({error})")
                continue
            meta = getattr(header, "file_meta", Dataset())
            if meta.get("MediaStorageSOPClassUID") == DICOMDIR_CLASS:
                log(f"skipped {path}: a DICOMDIR")
                continue
            missing = [k for k in UNIQUE_KEYS.values() if not header.get(k)]
            if missing or "TransferSyntaxUID" not in meta:
                log(f"skipped {path}: no {', '.join(missing) or 'TransferSyntaxUID'}")
                continue
            uid = str(header.SOPInstanceUID)
            if uid in found:
                log(f"skipped {path}: SOP Instance UID {uid} already served by {found[uid].path}")
                continue
            found[uid] = Instance(path, header, meta.TransferSyntaxUID)

        # Studies and series keep the order in which their first file appeared.
        order: dict[str, int] = {}
        for instance in found.values():
            order.setdefault(instance.study_uid, len(order))

        def number(value) -> int:
            try:
                return int(value)
            except (TypeError, ValueError):
                return 0

        instances = sorted(
            found.values(),
            key=lambda i: (
                order[i.study_uid],
                number(i.value("SeriesNumber")),
                i.series_uid,
                number(i.value("InstanceNumber")),
                str(i.path),
            ),
        )
        return Archive(instances)

    def study(self, study_uid: str) -> list[Instance]:
        return [i for i in self.instances if i.study_uid == study_uid]

    def series(self, series_uid: str) -> list[Instance]:
        return [i for i in self.instances if i.series_uid == series_uid]

    def modalities(self, study_uid: str) -> list[str]:
        seen: list[str] = []
        for instance in self.study(study_uid):
            modality = instance.value("Modality")
            if modality and modality not in seen:
                seen.append(modality)
        return seen

    def matching(self, level: str, keys: dict[str, list[str]]) -> list[list[Instance]]:
        """The entities of `level` matching `keys`, each as its instances."""
        depth = LEVELS.index(level)
        applicable = {k: v for k, v in keys.items() if LEVELS.index(MATCH_KEYS[k]) <= depth}
        modalities = {uid: self.modalities(uid) for uid in {i.study_uid for i in self.instances}}

        def matches(instance: Instance) -> bool:
            for key, wanted in applicable.items():
                if key == "ModalitiesInStudy":
                    held = modalities[instance.study_uid]
                    if not any(wildcard(w, m) for w in wanted for m in held):
                        return False
                elif key in UID_KEYS:
                    if instance.value(key) not in wanted:
                        return False
                elif not any(wildcard(w, instance.value(key)) for w in wanted):
                    return False
            return True

        unique = UNIQUE_KEYS[level]
        groups: dict[str, list[Instance]] = {}
        for instance in self.instances:
            if matches(instance):
                groups.setdefault(instance.value(unique), [])
        # An entity holds all its instances, not only the ones that matched
        # (a STUDY-level "ModalitiesInStudy=CT" retrieve brings the whole study).
        for instance in self.instances:
            key = instance.value(unique)
            if key in groups:
                groups[key].append(instance)
        return list(groups.values())


def wildcard(pattern: str, value: str) -> bool:
    """DICOM wildcard matching (PS3.4 C.2.2.2.4): '*' any run, '?' one
    character, case-sensitive."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def values_of(element: DataElement) -> list[str]:
    """A request element's values ([] for an empty, i.e. universal, key)."""
    value = element.value
    if value is None:
        return []
    values = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    items = [str(v).strip() for v in values]
    # "*" alone matches everything, as an empty value does.
    return [] if all(v in ("", "*") for v in items) else items


def match_keys(identifier: Dataset) -> dict[str, list[str]]:
    """The matching keys of a request that carry a value."""
    keys = {}
    for keyword in MATCH_KEYS:
        if keyword in identifier:
            values = values_of(identifier[keyword])
            if values:
                keys[keyword] = values
    return keys


def vr_of(keyword: str) -> str:
    # The dictionary spells ambiguous VRs "US or SS"; any one of them encodes an empty value.
    return dictionary_VR(keyword).split(" or ")[0]


def describe(identifier: Dataset) -> str:
    """The keys of a request that carry a value, for the log line."""
    parts = []
    for element in identifier:
        if element.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet") or element.VR == "SQ":
            continue
        values = values_of(element)
        if values:
            parts.append(f"{element.keyword or element.tag}=" + "\\".join(values))
    return " ".join(parts) if parts else "(no keys)"


def plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word}es" if word.endswith("ch") else f"{n} {word}s"


@dataclass
class Plan:
    """What one retrieve announces and sends."""

    announced: int
    items: list  # callables returning the Dataset to send
    summary: str
    remaining_claimed: int = 0
    stop_after: int | None = None
    late: list = field(default_factory=list)  # instances a C-MOVE sends after its final response
    parallel: bool = False  # a C-MOVE over PARALLEL_ASSOCIATIONS sub-associations


class FakePacs:
    """The event handlers of one server, and the state they share: the archive,
    the chosen behaviour, and the stop signal that wakes stalled handlers."""

    def __init__(self, archive: Archive, behaviour: str, peers: dict[str, tuple[str, int]],
                 deliver: int | None, no_match: str, refuse_status: int, pause: float = PAUSE,
                 bind: str | None = None, late: int = 2, refuse_levels: set[str] | None = None,
                 counts: str = "default", hide_remaining: bool = False, find_pause: float = 0.0,
                 late_once: bool = False, no_modalities: bool = False, late_until_next: bool = False) -> None:
        self.archive = archive
        self.behaviour = behaviour
        # Modifiers that combine with any behaviour (see parse_args).
        self.refuse_levels = set(REFUSED_LEVELS.get(behaviour, set())) | (refuse_levels or set())
        self.with_counts = {"default": behaviour not in NO_COUNTS, "on": True, "off": False}[counts]
        self.hide_remaining = hide_remaining
        self.find_pause = find_pause
        self.late_once = late_once
        self.no_modalities = no_modalities
        self.late_done = False
        # late-until-next: the held-back instances wait for the next C-MOVE
        # request (set when it comes), which waits until they are stored.
        self.late_until_next = late_until_next
        self.late_pending = False
        self.next_move = threading.Event()
        self.late_flushed = threading.Event()
        self.peers = peers
        self.deliver = deliver
        self.pause = pause
        self.no_match = no_match
        self.refuse_status = refuse_status
        self.bind = bind
        self.late = late
        self.stop = threading.Event()
        # list-short: the SOP Instance UIDs no IMAGE-level C-FIND lists and no retrieve sends.
        self.unlisted = unlisted_instances(archive) if behaviour == "list-short" else set()
        # zero-count: the study whose STUDY-level count says 0.
        self.zero_study = archive.instances[0].study_uid if archive.instances else None
        # Associations this server requested (see interrupt_requests).
        self.requested: weakref.WeakSet = weakref.WeakSet()

    # -- plumbing ---------------------------------------------------------

    @staticmethod
    def log_final(event) -> None:
        """Logs the final response of a C-GET/C-MOVE as it leaves."""
        command = event.message.command_set
        field_ = command.get("CommandField")
        names = {0x8010: "C-GET", 0x8021: "C-MOVE"}
        if field_ not in names or command.Status in (PENDING, 0xFF01):
            return
        counts = ", ".join(
            f"{label} {command.get(f'NumberOf{label}Suboperations', '-')}"
            for label in ("Remaining", "Completed", "Failed", "Warning")
        )
        log(f"{names[field_]} final response 0x{command.Status:04X}: {counts}")

    def association_options(self, instances: list[Instance]) -> dict:
        """The associate() keyword arguments of an association this server
        opens itself to a move destination (fresh contexts every time: an
        association numbers the ones it is given)."""
        options = {
            "contexts": storage_contexts(instances),
            "evt_handlers": [(evt.EVT_CONN_OPEN, nodelay), (evt.EVT_CONN_OPEN, self.note_request)],
        }
        if self.bind:
            options["bind_address"] = (self.bind, 0)
        return options

    def note_request(self, event) -> None:
        self.requested.add(event.assoc)

    def interrupt_requests(self) -> None:
        """At shutdown: ends the association requests still waiting for an
        answer. pynetdicom negotiates a requested association in the thread
        that called associate(), before the association's own thread starts,
        so AE.shutdown() does not see it and the caller would wait the whole
        ACSE timeout (30 s; a destination that accepts the connection but
        does not answer, as a storescp without --fork busy with another
        association). Handing it the "nothing came" it waits for makes it
        abort (A-ABORT to the peer) at once, as on a timeout."""
        for assoc in list(self.requested):
            if assoc.is_requestor and not assoc.is_established and not assoc.is_alive():
                assoc.dul.to_user_queue.put(None)

    def handle_echo(self, event) -> int:
        log(f"C-ECHO from {event.assoc.requestor.ae_title}")
        return 0x0000

    # -- C-FIND -----------------------------------------------------------

    def handle_find(self, event):
        identifier = event.identifier
        level = str(identifier.get("QueryRetrieveLevel", ""))
        what = f"C-FIND {level or '(no level)'} {describe(identifier)}"
        if level not in LEVELS:
            log(f"{what} -> refused: unknown QueryRetrieveLevel")
            yield self.refusal(f"QueryRetrieveLevel {level!r} is not supported")
            return
        if level in self.refuse_levels:
            log(f"{what} -> refused 0x{self.refuse_status:04X} ({self.behaviour})")
            yield self.refusal(f"{level} level queries are not supported")
            return
        if self.behaviour == "image-needs-series" and level == "IMAGE":
            named = values_of(identifier["SeriesInstanceUID"]) if "SeriesInstanceUID" in identifier else []
            if len(named) != 1:
                log(f"{what} -> refused 0x{self.refuse_status:04X} (needs one SeriesInstanceUID)")
                yield self.refusal("IMAGE level needs exactly one SeriesInstanceUID")
                return

        if level == "STUDY" and self.find_pause and self.stop.wait(self.find_pause):
            return
        keys = match_keys(identifier)
        note = ""
        loose = self.behaviour == "loose" and level == "STUDY" and "AccessionNumber" in keys
        asked = keys.pop("AccessionNumber", []) if loose else []
        entities = self.archive.matching(level, keys)
        if loose:
            entities = [e for e in entities
                        if any(e[0].value("AccessionNumber").lower().startswith(a.lower()) for a in asked)]
            note = " (loose AccessionNumber match)"
        if level == "IMAGE" and self.unlisted:
            listed = [e for e in entities if e[0].sop_uid not in self.unlisted]
            if len(listed) != len(entities):
                note = f", {len(entities) - len(listed)} left out (list-short)"
            entities = listed
        if (self.behaviour == "zero-count" and level == "STUDY" and "NumberOfStudyRelatedInstances" in identifier
                and any(e[0].study_uid == self.zero_study for e in entities)):
            note = f", NumberOfStudyRelatedInstances 0 for {self.zero_study} (zero-count)"
        responses: list[Dataset] = []
        for instances in entities:
            response = self.response(identifier, level, instances)
            responses.append(response)
            if level != "STUDY":
                continue
            if self.behaviour == "per-instance-find":
                responses.extend(copy.deepcopy(response) for _ in instances[1:])
            elif self.behaviour == "study-twice":
                responses.append(copy.deepcopy(response))
            elif self.behaviour == "study-twice-disagree":
                twin = copy.deepcopy(response)
                twin.PatientID = "OTHER-ID"
                responses.append(twin)
        if self.behaviour == "empty-study" and level == "STUDY":
            for accession in sorted({e[0].value("AccessionNumber") for e in entities}):
                template = next(e for e in entities if e[0].value("AccessionNumber") == accession)
                empty = self.response(identifier, level, template)
                empty.StudyInstanceUID = fresh_uid(template[0].study_uid, "empty-study")
                if "NumberOfStudyRelatedInstances" in empty:
                    empty.NumberOfStudyRelatedInstances = 0
                if "ModalitiesInStudy" in empty:
                    empty.ModalitiesInStudy = ""
                responses.append(empty)
                note += f", an empty study {empty.StudyInstanceUID} (empty-study)"
        extra = f", {len(responses)} responses" if len(responses) != len(entities) else ""
        log(f"{what} -> {plural(len(entities), 'match')}{extra}{note}")
        for response in responses:
            if event.is_cancelled:
                yield (CANCEL, None)
                return
            yield (PENDING, response)
            if self.behaviour == "find-abort" and level == "STUDY":
                log("aborting the association after the first answer (find-abort)")
                event.assoc.abort()
                return

    def refusal(self, comment: str):
        status = Dataset()
        status.Status = self.refuse_status
        status.ErrorComment = comment[:64]
        return (status, None)

    def response(self, identifier: Dataset, level: str, instances: list[Instance]) -> Dataset:
        """One C-FIND response for an entity, holding the requested keys."""
        first = instances[0]
        header = first.header
        study = self.archive.study(first.study_uid)
        counts = {
            "NumberOfStudyRelatedInstances": len(study),
            "NumberOfStudyRelatedSeries": len({i.series_uid for i in study}),
            "NumberOfSeriesRelatedInstances": len(self.archive.series(first.series_uid)),
        }
        if self.behaviour == "zero-count" and level == "STUDY" and first.study_uid == self.zero_study:
            counts["NumberOfStudyRelatedInstances"] = 0
        response = Dataset()
        latin1 = self.behaviour == "latin1"
        if not latin1:
            # Copied from the file so that the names below decode as they were written.
            response.SpecificCharacterSet = header.get("SpecificCharacterSet", "")
        response.QueryRetrieveLevel = level
        wanted = [e.keyword for e in identifier
                  if e.keyword not in ("QueryRetrieveLevel", "SpecificCharacterSet")]
        for unique_level in LEVELS[: LEVELS.index(level) + 1]:
            if UNIQUE_KEYS[unique_level] not in wanted:
                wanted.append(UNIQUE_KEYS[unique_level])
        for keyword in wanted:
            if not keyword:
                continue  # private or unknown tags: not ours to answer
            if keyword in COUNT_KEYS:
                if self.with_counts:
                    setattr(response, keyword, counts[keyword])
            elif keyword == "ModalitiesInStudy":
                if not self.no_modalities:
                    response.ModalitiesInStudy = self.archive.modalities(first.study_uid)
            elif keyword in header:
                response[header[keyword].tag] = copy.deepcopy(header[keyword])
            else:
                response[keyword] = DataElement(keyword, vr_of(keyword), None)
        if self.behaviour == "no-issuer" and "IssuerOfPatientID" in response:
            del response.IssuerOfPatientID
        if latin1:
            # Re-encode the names ourselves: raw bytes go out as they are, with
            # no SpecificCharacterSet to tell the client what they mean.
            for keyword in ("PatientName", "PatientID"):
                if keyword in response:
                    text = str(response[keyword].value or "")
                    raw = text.encode("latin-1", errors="replace")
                    response[keyword] = DataElement(keyword, vr_of(keyword), raw)
        return response

    # -- C-GET / C-MOVE -----------------------------------------------------

    def handle_get(self, event):
        yield from self.retrieve(event, "C-GET")

    def handle_move(self, event):
        yield from self.retrieve(event, "C-MOVE")

    def retrieve(self, event, operation: str):
        """The generator pynetdicom drives for both C-GET and C-MOVE: for a
        C-MOVE first the destination, then the number of sub-operations
        announced, then one (status, data set) per C-STORE to make."""
        identifier = event.identifier
        level = str(identifier.get("QueryRetrieveLevel", ""))
        what = f"{operation} {level or '(no level)'} {describe(identifier)}"
        destination = None
        name = ""
        if operation == "C-MOVE":
            name = str(event.move_destination or "").strip()
            destination = self.peers.get(name)
            what += f" to {name}"
            if destination is None:
                log(f"{what} -> unknown destination: 0xA801")
                yield (None, None)
                return
            if self.late_until_next and self.late_pending:
                # An earlier C-MOVE's last instances go first, while this
                # request waits (as a PACS busy sending them would).
                log(f"{what}: the earlier C-MOVE's late instances go out first")
                self.next_move.set()
                self.late_flushed.wait(30)

        matches = []
        if level in LEVELS:
            matches = [i for group in self.archive.matching(level, match_keys(identifier)) for i in group]
        left_out = 0
        if self.unlisted:
            # list-short: what the IMAGE-level C-FIND leaves out is not sent either.
            listed = [i for i in matches if i.sop_uid not in self.unlisted]
            left_out = len(matches) - len(listed)
            matches = listed
        if destination:
            yield (destination[0], destination[1], self.association_options(matches))

        # The answers below are final responses with no sub-operation, which
        # pynetdicom sends (as Success) only when told "0 sub-operations".
        if level not in LEVELS:
            log(f"{what} -> refused 0xA900: unknown QueryRetrieveLevel")
            rewrite_empty_retrieve(event.assoc, event.request.MessageID, REFUSED,
                                   "unknown QueryRetrieveLevel")
            yield 0
            return
        studies = values_of(identifier["StudyInstanceUID"]) if "StudyInstanceUID" in identifier else []
        if self.behaviour == "no-multi-study" and len(studies) > 1:
            # As pynetdicom's qrscp app ends up answering: C-MOVE "Move
            # Destination unknown", C-GET "Unable to process".
            status = MOVE_DESTINATION_UNKNOWN if operation == "C-MOVE" else NO_MATCH_FAILURE
            log(f"{what} -> refused 0x{status:04X}: {len(studies)} StudyInstanceUIDs (no-multi-study)")
            rewrite_empty_retrieve(event.assoc, event.request.MessageID, status,
                                   "more than one StudyInstanceUID")
            yield 0
            return
        if not matches:
            if self.no_match == "failure":
                log(f"{what} -> no match: final 0x{NO_MATCH_FAILURE:04X}, all counts 0")
                rewrite_empty_retrieve(event.assoc, event.request.MessageID, NO_MATCH_FAILURE, "no match")
            else:
                log(f"{what} -> no match: final Success, all counts 0")
            yield 0
            return

        plan = self.plan(matches, operation, left_out)
        log(f"{what} -> {plural(len(matches), 'instance')}; {plan.summary}")
        if plan.parallel:
            # Done here, before the number of sub-operations is yielded:
            # told "0", pynetdicom opens no sub-association of its own.
            yield from self.move_in_parallel(event, name, destination, matches)
            return
        yield plan.announced
        for index, item in enumerate(plan.items):
            if index == plan.stop_after:
                break
            if self.stop.is_set():
                log(f"{operation} interrupted: shutting down")
                abort(event.assoc)
                return
            if event.is_cancelled:
                yield (CANCEL, None)
                return
            paced = self.behaviour in ("slow", "foreign-first", "other-study-first")
            if paced and self.stop.wait(self.pause):
                log(f"{operation} interrupted: shutting down")
                abort(event.assoc)
                return
            yield (PENDING, item())
        else:
            if plan.late:
                log(f"{operation} sent {len(plan.items)} of {plan.announced} instances; "
                    f"{len(plan.late)} to go after the final response (late)")
                self.send_late(event, name, destination, plan)
            else:
                log(f"{operation} sent all {plural(len(plan.items), 'instance')}")
        if plan.stop_after is not None:
            sent = min(plan.stop_after, len(plan.items))
            if self.behaviour == "stall":
                log(f"{operation} stalling after {sent} instances")
                self.stop.wait(STALL_SECONDS)
            log(f"{operation} aborting the association after {sent} instances")
            abort(event.assoc)
            return
        if plan.remaining_claimed and not self.hide_remaining:
            # pynetdicom leaves Remaining out of a final Success; set it from
            # the status data set so the lie is explicit.
            status = Dataset()
            status.Status = 0x0000
            status.NumberOfRemainingSuboperations = plan.remaining_claimed
            yield (status, None)

    def plan(self, matches: list[Instance], operation: str = "C-MOVE", left_out: int = 0) -> Plan:
        """What a retrieve of `matches` announces and sends, per behaviour."""
        n = len(matches)
        loaders = [instance.load for instance in matches]
        plan = Plan(announced=n, items=loaders, summary="sending all")
        if left_out:
            plan.summary = f"sending the {n} listed, {left_out} left out (list-short)"
        if not matches:
            return plan
        k = self.deliver
        if k is None and self.behaviour in DEFAULT_DELIVER:
            k = DEFAULT_DELIVER[self.behaviour] or n - 5
        k = max(1, min(n, k)) if k is not None else n
        first = matches[0]
        if self.behaviour == "short":
            plan.items = loaders[:k]
            plan.remaining_claimed = n - k
            plan.summary = f"announcing {n}, sending {k} (short)"
        elif self.behaviour == "repeats":
            plan.items = loaders[:k] + [loaders[i % k] for i in range(n - k)]
            plan.summary = f"sending {k} distinct instances in {n} C-STOREs (repeats)"
        elif self.behaviour in ("stall", "abort"):
            plan.stop_after = k
            plan.summary = f"announcing {n}, {self.behaviour} after {k}"
        elif self.behaviour == "foreign":
            plan.items = loaders + [lambda: intruder(first)]
            plan.announced = n + 1
            plan.summary = "sending all plus one instance of patient INTRUDER (foreign)"
        elif self.behaviour == "foreign-first":
            plan.items = [lambda: intruder(first)] + loaders
            plan.announced = n + 1
            plan.summary = "sending one instance of patient INTRUDER, then all (foreign-first)"
        elif self.behaviour == "other-study-first":
            plan.items = [lambda: stray(first)] + loaders
            plan.announced = n + 1
            plan.summary = "sending one instance of another study, then all (other-study-first)"
        elif self.behaviour == "extra":
            plan.items = loaders + [lambda: unlisted(first, matches)]
            plan.announced = n + 1
            plan.summary = "sending all plus one instance no C-FIND lists (extra)"
        elif self.behaviour == "same-uid-differs":
            twin = matches[-1]
            plan.items = loaders + [lambda: altered(twin)]
            plan.announced = n + 1
            plan.summary = f"sending all plus a different data set as {twin.sop_uid} (same-uid-differs)"
        elif self.behaviour == "lose-one":
            lost = matches[-1]
            plan.items = loaders[:-1] + [lambda: unreadable(lost)]
            plan.summary = f"sending all but {lost.sop_uid}, which fails (lose-one)"
        elif self.behaviour == "parallel" and operation == "C-MOVE":
            plan.parallel = True
            ways = min(PARALLEL_ASSOCIATIONS, n)
            plan.summary = f"sending all over {plural(ways, 'parallel sub-association')} (parallel)"
        elif self.behaviour == "late" and operation == "C-MOVE" and not (self.late_once and self.late_done):
            self.late_done = True
            late = min(self.late, n)
            plan.items = loaders[: n - late]
            plan.late = matches[n - late:]
            plan.summary = (f"sending {n - late}, final Success claiming {n}, the last {late} "
                            f"{self.pause:g} s later on a new association (late)")
        return plan

    # -- late: instances after the final response ---------------------------

    def send_late(self, event, name: str, destination: tuple[str, int], plan: Plan) -> None:
        """Makes the coming final Success claim all `plan.announced`
        completed, and starts the thread that sends `plan.late` once it has
        gone out. Called from the handler after its last sub-operation."""
        claimed = plan.announced
        sent = threading.Event()
        final: dict[str, int] = {}

        def claim_all(primitive) -> None:
            final["status"] = primitive.Status
            if primitive.Status == 0x0000:
                primitive.NumberOfRemainingSuboperations = 0
                primitive.NumberOfCompletedSuboperations = claimed

        on_final_response(event.assoc, event.request.MessageID, claim_all, sent.set)
        threading.Thread(
            target=self.deliver_late,
            args=(event.assoc, event.request.MessageID, name, destination, plan.late, sent, final),
            name="fake_pacs-late",
        ).start()

    def deliver_late(self, assoc, message_id: int, name: str, destination: tuple[str, int],
                     instances: list[Instance], sent: threading.Event, final: dict) -> None:
        """The late thread: waits for the final C-MOVE response to go out,
        then --pause seconds, then sends `instances` to the move destination
        on an association of their own."""
        count = plural(len(instances), "instance")
        while not sent.wait(0.05):
            if self.stop.is_set() or not assoc.is_alive():
                log(f"C-MOVE late: no final response went out; the last {count} are not sent")
                return
        if final.get("status") != 0x0000:
            log(f"C-MOVE late: the final response was 0x{final.get('status', 0):04X}, not Success; "
                f"the last {count} are not sent")
            return
        if self.late_until_next:
            self.late_pending = True
            try:
                while not self.next_move.wait(0.05):
                    if self.stop.is_set():
                        log(f"C-MOVE late: shutting down; the last {count} are not sent")
                        return
                log(f"C-MOVE late: the next C-MOVE came; sending the last {count} "
                    f"to {name} at {destination[0]}:{destination[1]} on a new association")
                self.store_late(assoc, message_id, name, destination, instances)
            finally:
                self.late_pending = False
                self.late_flushed.set()
            return
        if self.stop.wait(self.pause):
            log(f"C-MOVE late: shutting down; the last {count} are not sent")
            return
        log(f"C-MOVE late: {self.pause:g} s after the final response, sending the last {count} "
            f"to {name} at {destination[0]}:{destination[1]} on a new association")
        self.store_late(assoc, message_id, name, destination, instances)

    def store_late(self, assoc, message_id: int, name: str, destination: tuple[str, int],
                   instances: list[Instance]) -> None:
        """Sends the late `instances` on an association of their own."""
        count = plural(len(instances), "instance")
        try:
            store = assoc.ae.associate(destination[0], destination[1], ae_title=name,
                                       **self.association_options(instances))
        except OSError as error:  # e.g. a --bind address that is not ours
            log(f"C-MOVE late: cannot open an association ({error}); the last {count} are not sent")
            return
        if not store.is_established:
            log(f"C-MOVE late: {name} did not accept the association "
                f"({outcome(store, store in self.requested)}); "
                f"the last {count} are not sent")
            return
        results: Counter = Counter()
        for msg_id, instance in enumerate(instances, 1):
            if self.stop.is_set() or not store.is_established:
                break
            results[store_result(store, instance, msg_id, assoc.ae.ae_title, message_id)] += 1
        if store.is_established:
            store.release()
        log(f"C-MOVE late: done, {results['Success']} of {count} stored"
            + "".join(f", {results[k]} {k.lower()}" for k in ("Warning", "Failure") if results[k]))

    # -- parallel: one C-MOVE over several sub-associations -------------------

    def move_in_parallel(self, event, name: str, destination: tuple[str, int], matches: list[Instance]):
        """Sends `matches` over up to PARALLEL_ASSOCIATIONS sub-associations,
        each opened by its own thread, all open before the first C-STORE,
        the instances dealt round-robin. This thread answers a pending
        C-MOVE response per sub-operation, then yields "0 sub-operations"
        and rewrites the final response pynetdicom makes of it to the real
        counts."""
        n = len(matches)
        ways = min(PARALLEL_ASSOCIATIONS, n)
        shares = [matches[index::ways] for index in range(ways)]
        request = event.request
        ae = event.assoc.ae
        results: queue.Queue = queue.Queue()

        opened = [0]  # set by the barrier's action, before any result arrives

        def all_tried() -> None:
            up = opened[0] = sum(1 for store in stores if store is not None and store.is_established)
            then = "shutting down" if self.stop.is_set() else "sending" if up else "answering 0xA801"
            log(f"C-MOVE {up} of {plural(ways, 'sub-association')} to {name} open; {then}")

        stores: list = [None] * ways
        barrier = threading.Barrier(ways, action=all_tried)

        def worker(index: int, share: list[Instance]) -> None:
            label = f"C-MOVE sub-association {index + 1}/{ways} to {name}"
            store = None
            try:
                store = ae.associate(destination[0], destination[1], ae_title=name,
                                     **self.association_options(share))
                stores[index] = store
                why = "" if store.is_established else outcome(store, store in self.requested)
                log(f"{label} " + ("open" if store.is_established else f"not open ({why})"))
            except OSError as error:  # e.g. a --bind address that is not ours
                log(f"{label} not open ({error})")
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
            for msg_id, instance in enumerate(share, 1):
                if self.stop.is_set() or store is None or not store.is_established:
                    results.put((instance, "Failure"))
                    continue
                results.put((instance, store_result(store, instance, msg_id, ae.ae_title, request.MessageID)))
            if store is not None and store.is_established:
                store.release()
            results.put(None)

        threads = [threading.Thread(target=worker, args=(index, share), name=f"fake_pacs-parallel-{index + 1}")
                   for index, share in enumerate(shares)]
        for thread in threads:
            thread.start()

        remaining, completed, failed, warning = n, 0, 0, 0
        failed_uids: list[str] = []
        finished = 0
        while finished < ways:
            if self.stop.is_set():
                log("C-MOVE interrupted: shutting down")
                abort(event.assoc)
                yield 0  # pynetdicom sends nothing on an aborted association
                return
            try:
                item = results.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                finished += 1
                continue
            instance, category = item
            remaining -= 1
            if not opened[0]:
                continue  # none open: the one answer is the final 0xA801 below
            if category == "Success":
                completed += 1
            elif category == "Warning":
                warning += 1
            else:
                failed += 1
                failed_uids.append(instance.sop_uid)
            pending = C_MOVE()
            pending.MessageID = request.MessageID
            pending.MessageIDBeingRespondedTo = request.MessageID
            pending.AffectedSOPClassUID = request.AffectedSOPClassUID
            pending.Status = PENDING
            pending.NumberOfRemainingSuboperations = remaining
            pending.NumberOfCompletedSuboperations = completed
            pending.NumberOfFailedSuboperations = failed
            pending.NumberOfWarningSuboperations = warning
            event.assoc.dimse.send_msg(pending, event.context.context_id)
        if not opened[0]:
            # As pynetdicom answers when its own sub-association is not accepted.
            def refuse(primitive) -> None:
                primitive.Status = MOVE_DESTINATION_UNKNOWN
                for label in ("Remaining", "Completed", "Failed", "Warning"):
                    setattr(primitive, f"NumberOf{label}Suboperations", None)

            on_final_response(event.assoc, request.MessageID, refuse)
            yield 0
            return
        if failed == 0 and warning == 0:
            log(f"C-MOVE sent all {plural(n, 'instance')} over {plural(ways, 'sub-association')}")
        else:
            log(f"C-MOVE over {plural(ways, 'sub-association')}: {completed} completed, {warning} warning, "
                f"{failed} failed")
        syntax = event.context.transfer_syntax

        def real_counts(primitive) -> None:
            # What pynetdicom says after its own sub-operations, here made of ours.
            primitive.Status = 0x0000 if not (failed or warning) else 0xA702 if failed == n else 0xB000
            primitive.NumberOfRemainingSuboperations = 0
            primitive.NumberOfCompletedSuboperations = completed
            primitive.NumberOfFailedSuboperations = failed
            primitive.NumberOfWarningSuboperations = warning
            if failed or warning:
                status = Dataset()
                status.FailedSOPInstanceUIDList = failed_uids
                primitive.Identifier = BytesIO(encode(status, syntax.is_implicit_VR, syntax.is_little_endian,
                                                      syntax.is_deflated))

        on_final_response(event.assoc, request.MessageID, real_counts)
        yield 0


def fresh_uid(source_uid: str, purpose: str) -> str:
    # A UUID-derived 2.25 UID computed from the source, so every retrieve of
    # a study sends the same extra instance.
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, f'{source_uid}/{purpose}').int}"


def with_uid(dataset: Dataset, uid: str) -> Dataset:
    dataset.SOPInstanceUID = uid
    dataset.file_meta.MediaStorageSOPInstanceUID = uid
    return dataset


def intruder(source: Instance) -> Dataset:
    """Same study, another patient: what a mis-filed image looks like."""
    dataset = with_uid(source.load(), fresh_uid(source.sop_uid, "intruder"))
    dataset.PatientID = "INTRUDER"
    dataset.PatientName = "INTRUDER^IVAN"
    return dataset


def stray(source: Instance) -> Dataset:
    """Same patient, a study nobody asked for (and no C-FIND knows): an
    image filed under the wrong study."""
    dataset = with_uid(source.load(), fresh_uid(source.sop_uid, "stray"))
    dataset.StudyInstanceUID = fresh_uid(source.study_uid, "stray-study")
    dataset.SeriesInstanceUID = fresh_uid(str(dataset.SeriesInstanceUID), "stray-series")
    dataset.AccessionNumber = "STRAY1"
    return dataset


def unlisted(source: Instance, matches: list[Instance]) -> Dataset:
    """Same study and patient, a new instance no C-FIND reports."""
    dataset = with_uid(source.load(), fresh_uid(source.sop_uid, "extra"))
    numbers = [int(i.value("InstanceNumber")) for i in matches if i.value("InstanceNumber").strip().isdigit()]
    dataset.InstanceNumber = max(numbers, default=0) + 1
    return dataset


def altered(source: Instance) -> Dataset:
    """The same SOP Instance UID with different content."""
    dataset = source.load()
    dataset.InstanceNumber = 9999
    dataset.ImageComments = "fake_pacs: a second, different data set with this SOP Instance UID"
    if "PixelData" in dataset and not dataset.file_meta.TransferSyntaxUID.is_compressed:
        pixels = bytearray(dataset.PixelData)
        if pixels:
            pixels[0] ^= 0x01
            dataset.PixelData = bytes(pixels)
    return dataset


def unreadable(source: Instance) -> Dataset:
    """A data set pynetdicom cannot send (no SOP Class UID): the C-STORE
    sub-operation fails before any traffic, as when a PACS cannot read a file,
    and its UID lands in the FailedSOPInstanceUIDList."""
    dataset = Dataset()
    dataset.SOPInstanceUID = source.sop_uid
    return dataset


def storage_contexts(instances: list[Instance]) -> list:
    """What a C-MOVE proposes to its destination. Files go out as stored (no
    conversion), so each SOP class gets one context per transfer syntax of
    its files: an uncompressed one in explicit or implicit VR, a compressed
    one in exactly its own syntax. At most 128, the protocol's limit."""
    wanted: dict[tuple[str, tuple[str, ...]], None] = {}
    for instance in instances:
        syntax = instance.transfer_syntax
        syntaxes = (ExplicitVRLittleEndian, ImplicitVRLittleEndian) if not syntax.is_compressed else (syntax,)
        wanted.setdefault((instance.value("SOPClassUID"), syntaxes), None)
    if not wanted:
        # A move that matches nothing never opens the sub-association, but
        # pynetdicom wants valid (address, port, options) all the same.
        wanted[("1.2.840.10008.5.1.4.1.1.7", (ExplicitVRLittleEndian,))] = None
    return [build_context(sop_class, list(syntaxes)) for sop_class, syntaxes in wanted][:128]


def abort(assoc) -> None:
    """Sends an A-ABORT from inside a retrieve handler.

    The blocking form also marks the association as no longer established,
    which keeps pynetdicom from sending a final response after the abort;
    it waits only for the network thread, not for this one."""
    assoc.abort(block=True)


def on_final_response(assoc, message_id: int, change=None, after=None) -> None:
    """Hooks the coming final (not Pending) response to `message_id` on this
    association: `change(primitive)` may rewrite it before it is encoded,
    `after()` runs once it has been handed to the network thread.

    pynetdicom builds the final response of a retrieve itself, from the
    sub-operations it counted; this is the one place to make it say
    something else. Only this association's DIMSE provider is touched, and
    only for that one response."""
    provider = assoc.dimse
    send = provider.send_msg

    def send_msg(primitive, context_id):
        final = (getattr(primitive, "MessageIDBeingRespondedTo", None) == message_id
                 and primitive.Status not in (PENDING, 0xFF01))
        if final:
            del provider.send_msg  # back to the class's method
            if change is not None:
                change(primitive)
        send(primitive, context_id)
        if final and after is not None:
            after()

    provider.send_msg = send_msg


def rewrite_empty_retrieve(assoc, message_id: int, status: int, comment: str) -> None:
    """Makes the coming final response to `message_id` a failure `status`
    with all counts 0, as Orthanc answers a retrieve that matches nothing.

    pynetdicom answers a retrieve with no sub-operations "Success, counts 0"
    and offers no way to choose another status without counting a failed
    sub-operation, so that one response is rewritten on its way out."""

    def fail(primitive) -> None:
        if primitive.Status == 0x0000:
            primitive.Status = status
            primitive.NumberOfRemainingSuboperations = 0
            primitive.NumberOfCompletedSuboperations = 0
            primitive.NumberOfFailedSuboperations = 0
            primitive.NumberOfWarningSuboperations = 0
            primitive.ErrorComment = comment

    on_final_response(assoc, message_id, fail)


def store_result(store, instance: Instance, msg_id: int, originator_aet: str, originator_id: int) -> str:
    """One C-STORE sub-operation on an association of our own: "Success",
    "Warning" or "Failure" (no answer, no presentation context, or a
    failure status), as pynetdicom counts them."""
    try:
        status = store.send_c_store(instance.load(), msg_id=msg_id, originator_aet=originator_aet,
                                    originator_id=originator_id)
    except (OSError, ValueError, AttributeError, RuntimeError) as error:
        log(f"C-STORE of {instance.sop_uid} failed: {error}")
        return "Failure"
    code = status.get("Status")
    category = STORAGE_SERVICE_CLASS_STATUS.get(code, ("Failure", ""))[0] if code is not None else "Failure"
    return category if category in ("Success", "Warning") else "Failure"


def outcome(assoc, connected: bool) -> str:
    """Why an association we requested is not established (`connected`:
    whether its TCP connection was ever made)."""
    if not connected:
        # pynetdicom "aborts" these too, so _sent_abort says nothing here.
        return "no connection"
    if assoc.is_rejected:
        return "rejected"
    if getattr(assoc, "_sent_abort", False):  # pynetdicom's ACSE timeout, or our shutdown
        return "no answer, aborted"
    if assoc.is_aborted:
        return "aborted by the peer"
    return "no connection"


def unlisted_instances(archive: Archive) -> set[str]:
    """list-short: the last LIST_SHORT_HIDDEN instances of each study's first
    series (in archive order), which no IMAGE-level C-FIND lists."""
    hidden: set[str] = set()
    seen: set[str] = set()
    for first in archive.instances:
        if first.study_uid in seen:
            continue
        seen.add(first.study_uid)
        series = [i for i in archive.study(first.study_uid) if i.series_uid == first.series_uid]
        hidden.update(i.sop_uid for i in series[-LIST_SHORT_HIDDEN:])
    return hidden


def make_ae(title: str, archive: Archive) -> AE:
    ae = AE(ae_title=title)
    # Stalls are the point of some behaviours: never drop an idle peer ourselves.
    ae.network_timeout = None
    ae.dimse_timeout = 60
    ae.acse_timeout = 30
    ae.maximum_associations = 20
    # Explicit VR first, as DCMTK and Orthanc prefer (pynetdicom would pick implicit).
    uncompressed = [ExplicitVRLittleEndian, ImplicitVRLittleEndian]
    for sop_class in (Verification, StudyRootQueryRetrieveInformationModelFind,
                      StudyRootQueryRetrieveInformationModelMove, StudyRootQueryRetrieveInformationModelGet):
        ae.add_supported_context(sop_class, uncompressed)
    # C-GET sends the files back on the client's association: accept its
    # storage contexts with the client in the SCP role. A context carries one
    # transfer syntax and files go out as stored (no conversion), so each SOP
    # class prefers the syntax most of its files use, then uncompressed ones.
    used: dict[str, Counter] = {}
    for instance in archive.instances:
        used.setdefault(instance.value("SOPClassUID"), Counter())[str(instance.transfer_syntax)] += 1
    classes = [cx.abstract_syntax for cx in AllStoragePresentationContexts]
    classes += sorted(set(used) - set(classes))
    for sop_class in classes:
        preferred = [syntax for syntax, _ in used.get(sop_class, Counter()).most_common()]
        for syntax in [ExplicitVRLittleEndian, ImplicitVRLittleEndian] + ALL_TRANSFER_SYNTAXES:
            if syntax not in preferred:
                preferred.append(syntax)
        ae.add_supported_context(sop_class, preferred, scu_role=False, scp_role=True)
    return ae


def parse_peer(text: str) -> tuple[str, tuple[str, int]]:
    match = re.fullmatch(r"([^=]{1,16})=([^:]+):(\d{1,5})", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected AE=HOST:PORT, got {text!r}")
    return match.group(1).strip(), (match.group(2), int(match.group(3)))


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="behaviours:\n" + "\n".join(f"  {k:24} {v}" for k, v in BEHAVIOURS.items()),
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--ae", default="PACS", help="own AE title (any called AE is accepted)")
    parser.add_argument("--dir", type=Path, required=True, help="folder of DICOM files to serve")
    parser.add_argument("--behaviour", default="normal", choices=sorted(BEHAVIOURS))
    parser.add_argument("--peer", action="append", type=parse_peer, default=[],
                        help="C-MOVE destination AE=HOST:PORT (repeatable)")
    parser.add_argument("--deliver", type=int, help="K for short, repeats, stall, abort")
    parser.add_argument("--late", type=int, default=2, help="K for late: instances sent after the "
                        "final response (default 2)")
    parser.add_argument("--pause", type=float, help="seconds before each instance (slow, foreign-first, "
                        "other-study-first; default 0.1), or after the final response (late; default 0.5)")
    parser.add_argument("--late-once", action="store_true",
                        help="late: only the first C-MOVE sends late; the others send all in time")
    parser.add_argument("--late-until-next", action="store_true",
                        help="late: the last K go out when the next C-MOVE request comes (before its "
                        "own sub-operations, which wait for them), not --pause seconds later")
    parser.add_argument("--find-pause", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long before answering a STUDY-level C-FIND (a busy PACS)")
    parser.add_argument("--refuse-levels", default="", metavar="LEVELS",
                        help="comma-separated query levels (SERIES, IMAGE) whose C-FINDs are refused, "
                        "whatever the behaviour")
    parser.add_argument("--counts", choices=("default", "on", "off"), default="default",
                        help="NumberOf*Related* in C-FIND answers: the behaviour's default, always, never")
    parser.add_argument("--no-modalities", action="store_true",
                        help="study answers leave ModalitiesInStudy out (a PACS that does not index it)")
    parser.add_argument("--hide-remaining", action="store_true",
                        help="short: the final Success says nothing of the sub-operations left (a PACS "
                        "that lies by omission)")
    parser.add_argument("--bind", metavar="ADDRESS", help="source address of the associations this "
                        "server opens (C-MOVE sub-associations); default: the system's choice")
    parser.add_argument("--no-match", choices=("failure", "success"), default="failure",
                        help="final status of a retrieve matching nothing: failure = 0xC000 "
                        "with counts 0 like Orthanc (default), success = 0x0000 with counts 0")
    parser.add_argument("--refuse-status", type=lambda s: int(s, 0), default=REFUSED,
                        help="status of refused C-FINDs (default 0xA900; e.g. 0xC000)")
    parser.add_argument("--ready-file", type=Path, help="written with 'ready' once listening")
    parser.add_argument("--debug", action="store_true", help="pynetdicom's own log at DEBUG")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"--dir {args.dir} is not a folder")
    if args.deliver is not None and args.deliver < 1:
        parser.error("--deliver must be at least 1")
    if args.late < 1:
        parser.error("--late must be at least 1")
    if args.bind:
        # Checked now: pynetdicom would only answer each C-MOVE 0xC515.
        try:
            with socket.socket() as probe:
                probe.bind((args.bind, 0))
        except OSError as error:
            parser.error(f"--bind {args.bind}: {error.strerror or error}")
    if args.pause is None:
        args.pause = DEFAULT_PAUSE.get(args.behaviour, PAUSE)
    return args


def serve(args: argparse.Namespace, ae: AE, handlers: list, stop: threading.Event,
          on_stop=None) -> int:
    """Listens until SIGTERM/SIGINT, then stops every association and thread."""
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        server = ae.start_server((args.host, args.port), block=False, evt_handlers=handlers)
    except OSError as error:
        log(f"fake_pacs: cannot listen on {args.host}:{args.port}: {error}")
        return 2
    log(f"fake_pacs: listening on {args.host}:{args.port} as {args.ae}")
    if args.ready_file:
        write_ready(args.ready_file)
    while not stop.wait(0.5):
        pass
    log(f"fake_pacs: stopping")
    if on_stop is not None:
        on_stop()
    left = stop_server(server, ae)
    if left:
        log(f"fake_pacs: threads still running: {', '.join(left)}")
        return 1
    log(f"fake_pacs: stopped")
    return 0


def configure_logging(debug: bool) -> None:
    # pynetdicom logs every PDU at INFO; keep stderr to our one line per request.
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if debug else logging.CRITICAL)
    if debug:
        logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging(args.debug)
    archive = Archive.load(args.dir)
    studies = len({i.study_uid for i in archive.instances})
    log(f"fake_pacs: {len(archive.instances)} instances in {studies} studies from {args.dir}; "
        f"behaviour {args.behaviour}")
    pacs = FakePacs(archive, args.behaviour, dict(args.peer), args.deliver, args.no_match, args.refuse_status,
                    args.pause, bind=args.bind, late=args.late,
                    refuse_levels={l.strip().upper() for l in args.refuse_levels.split(",") if l.strip()},
                    counts=args.counts, hide_remaining=args.hide_remaining, find_pause=args.find_pause,
                    late_once=args.late_once, no_modalities=args.no_modalities,
                    late_until_next=args.late_until_next)
    handlers = [
        (evt.EVT_CONN_OPEN, nodelay),
        (evt.EVT_C_ECHO, pacs.handle_echo),
        (evt.EVT_C_FIND, pacs.handle_find),
        (evt.EVT_C_GET, pacs.handle_get),
        (evt.EVT_C_MOVE, pacs.handle_move),
        (evt.EVT_DIMSE_SENT, pacs.log_final),
    ]
    return serve(args, make_ae(args.ae, archive), handlers, pacs.stop, pacs.interrupt_requests)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
