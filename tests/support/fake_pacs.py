#!/usr/bin/env python3
"""A Query/Retrieve SCP (Study Root FIND/MOVE/GET + Verification) that serves
the DICOM files of a folder and, on request, misbehaves like real PACSs do.

    fake_pacs.py --port PORT --ae PACS --dir DIR [--behaviour NAME]
                 [--peer AE=HOST:PORT ...] [--deliver K] [--ready-file FILE]

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
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
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


class FakePacs:
    """The event handlers of one server, and the state they share: the archive,
    the chosen behaviour, and the stop signal that wakes stalled handlers."""

    def __init__(self, archive: Archive, behaviour: str, peers: dict[str, tuple[str, int]],
                 deliver: int | None, no_match: str, refuse_status: int, pause: float = 0.1) -> None:
        self.archive = archive
        self.behaviour = behaviour
        self.peers = peers
        self.deliver = deliver
        self.pause = pause
        self.no_match = no_match
        self.refuse_status = refuse_status
        self.stop = threading.Event()

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
        if level in REFUSED_LEVELS.get(self.behaviour, set()):
            log(f"{what} -> refused 0x{self.refuse_status:04X} ({self.behaviour})")
            yield self.refusal(f"{level} level queries are not supported")
            return
        if self.behaviour == "image-needs-series" and level == "IMAGE":
            named = values_of(identifier["SeriesInstanceUID"]) if "SeriesInstanceUID" in identifier else []
            if len(named) != 1:
                log(f"{what} -> refused 0x{self.refuse_status:04X} (needs one SeriesInstanceUID)")
                yield self.refusal("IMAGE level needs exactly one SeriesInstanceUID")
                return

        entities = self.archive.matching(level, match_keys(identifier))
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
        extra = f", {len(responses)} responses" if len(responses) != len(entities) else ""
        log(f"{what} -> {plural(len(entities), 'match')}{extra}")
        for response in responses:
            if event.is_cancelled:
                yield (CANCEL, None)
                return
            yield (PENDING, response)

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
                if self.behaviour not in NO_COUNTS:
                    setattr(response, keyword, counts[keyword])
            elif keyword == "ModalitiesInStudy":
                response.ModalitiesInStudy = self.archive.modalities(first.study_uid)
            elif keyword in header:
                response[header[keyword].tag] = copy.deepcopy(header[keyword])
            else:
                response[keyword] = DataElement(keyword, vr_of(keyword), None)
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
        if operation == "C-MOVE":
            name = str(event.move_destination or "").strip()
            destination = self.peers.get(name)
            what += f" to {name}"
            if destination is None:
                log(f"{what} -> unknown destination: 0xA801")
                yield (None, None)
                return

        matches = []
        if level in LEVELS:
            matches = [i for group in self.archive.matching(level, match_keys(identifier)) for i in group]
        if destination:
            yield (destination[0], destination[1], {
                "contexts": storage_contexts(matches),
                "evt_handlers": [(evt.EVT_CONN_OPEN, nodelay)],
            })

        # Both answers below are final responses with no sub-operation, which
        # pynetdicom sends (as Success) only when told "0 sub-operations".
        if level not in LEVELS:
            log(f"{what} -> refused 0xA900: unknown QueryRetrieveLevel")
            rewrite_empty_retrieve(event.assoc, event.request.MessageID, REFUSED,
                                   "unknown QueryRetrieveLevel")
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

        plan = self.plan(matches)
        log(f"{what} -> {plural(len(matches), 'instance')}; {plan.summary}")
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
            if self.behaviour in ("slow", "foreign-first") and self.stop.wait(self.pause):
                log(f"{operation} interrupted: shutting down")
                abort(event.assoc)
                return
            yield (PENDING, item())
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
        if plan.remaining_claimed:
            # pynetdicom leaves Remaining out of a final Success; set it from
            # the status data set so the lie is explicit.
            status = Dataset()
            status.Status = 0x0000
            status.NumberOfRemainingSuboperations = plan.remaining_claimed
            yield (status, None)

    def plan(self, matches: list[Instance]) -> Plan:
        """What a retrieve of `matches` announces and sends, per behaviour."""
        n = len(matches)
        loaders = [instance.load for instance in matches]
        plan = Plan(announced=n, items=loaders, summary="sending all")
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
        return plan


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


def rewrite_empty_retrieve(assoc, message_id: int, status: int, comment: str) -> None:
    """Makes the coming final response to `message_id` a failure `status`
    with all counts 0, as Orthanc answers a retrieve that matches nothing.

    pynetdicom answers a retrieve with no sub-operations "Success, counts 0"
    and offers no way to choose another status without counting a failed
    sub-operation, so that one response is rewritten on its way out. Only
    this association's DIMSE provider is touched, and only once."""
    provider = assoc.dimse
    send = provider.send_msg

    def send_msg(primitive, context_id):
        if getattr(primitive, "MessageIDBeingRespondedTo", None) == message_id and primitive.Status == 0x0000:
            primitive.Status = status
            primitive.NumberOfRemainingSuboperations = 0
            primitive.NumberOfCompletedSuboperations = 0
            primitive.NumberOfFailedSuboperations = 0
            primitive.NumberOfWarningSuboperations = 0
            primitive.ErrorComment = comment
            del provider.send_msg  # back to the class's method
        send(primitive, context_id)

    provider.send_msg = send_msg


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
    parser.add_argument("--pause", type=float, default=0.1, help="seconds before each instance (slow)")
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
    return args


def serve(args: argparse.Namespace, ae: AE, handlers: list, stop: threading.Event) -> int:
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
                    args.pause)
    handlers = [
        (evt.EVT_CONN_OPEN, nodelay),
        (evt.EVT_C_ECHO, pacs.handle_echo),
        (evt.EVT_C_FIND, pacs.handle_find),
        (evt.EVT_C_GET, pacs.handle_get),
        (evt.EVT_C_MOVE, pacs.handle_move),
        (evt.EVT_DIMSE_SENT, pacs.log_final),
    ]
    return serve(args, make_ae(args.ae, archive), handlers, pacs.stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
