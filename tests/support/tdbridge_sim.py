#!/usr/bin/env python3
"""An Epson TD Bridge in place of the hardware, written from the documented
formats (../shared/ROBOTS.md): it watches a hot folder for NAME.JDF job files
(KEY=value lines), moves each through NAME.RJD -> NAME.INP -> NAME.DON
(or NAME.ERR / NAME.STP), rewrites TDBStatus.txt every 0.2 s (a [JOB_ID]
section per job with STATUS, ERROR, COMPLETED_DISCS, FAILED_DISCS and a
[PUBLISHER1] section), and honours NAME.JCF cancel files ([CANCEL], JOB_ID).

Before it "burns", it checks the job file's keys and that the DATA sources
make a whole disc: DICOMDIR, README.TXT and INDEX.HTM at the root, every
file under DICOM/ indexed by the DICOMDIR and every indexed file present
(pydicom), dciodvfy on the DICOMDIR when installed. What it found goes to
checks.json in --state (one object per job); a job that fails the check ends
in ERR with ERROR=99.

Modes: ok, out-of-discs, cover-open, off (no status file), refuse (STATUS 6),
disc-rejected (ERR with ERROR=5 after the first disc), hang (burns the first
disc forever; only a JCF ends it).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pydicom

KNOWN_KEYS = {
    "JOB_ID", "PUBLISHER", "COPIES", "OUT_STACKER", "DISC_TYPE", "FORMAT", "DATA",
    "DATA_LIST", "VOLUME_LABEL", "LABEL", "REPLACE_FIELD", "PRIORITY", "CLOSE_DISC", "VERIFY",
}
REQUIRED = ["JOB_ID", "COPIES", "DISC_TYPE", "FORMAT", "VOLUME_LABEL", "DATA"]


def parse_job(text):
    pairs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if "=" not in line:
            raise ValueError(f"line without '=': {line!r}")
        key, value = line.split("=", 1)
        pairs.append((key, value))
    return pairs


def disc_problems(sources, volume, earlier=()):
    """What keeps the DATA sources from making a whole disc (shared with
    ptburn_sim.py): DICOMDIR, DICOM, README.TXT and INDEX.HTM from one
    folder, the DICOMDIR's File-set ID the volume label, every file under
    DICOM/ indexed and every indexed file there, dciodvfy clean."""
    problems = []
    names = {os.path.basename(s): s for s in sources}
    for needed in ("DICOMDIR", "DICOM", "README.TXT", "INDEX.HTM"):
        if needed not in names:
            problems.append(f"{needed} not on the disc")
    if "DICOMDIR" in names and "DICOM" in names and not problems and not earlier:
        root = os.path.dirname(names["DICOMDIR"])
        ds = pydicom.dcmread(names["DICOMDIR"])
        if ds.get("FileSetID", "") != volume:
            problems.append(f"volume label {volume!r} is not the File-set ID {ds.get('FileSetID')!r}")
        indexed = set()
        for record in ds.DirectoryRecordSequence:
            file_id = record.get("ReferencedFileID")
            if file_id:
                parts = [file_id] if isinstance(file_id, str) else list(file_id)
                indexed.add(os.path.join(root, *parts))
        on_disc = set()
        for folder, _dirs, files in os.walk(names["DICOM"]):
            for name in files:
                on_disc.add(os.path.join(folder, name))
        for path in sorted(on_disc - indexed):
            problems.append(f"not in the DICOMDIR: {os.path.relpath(path, root)}")
        for path in sorted(indexed - on_disc):
            problems.append(f"indexed but missing: {os.path.relpath(path, root)}")
        if shutil.which("dciodvfy"):
            run = subprocess.run(["dciodvfy", "-new", names["DICOMDIR"]], capture_output=True, text=True, timeout=60)
            errors = [l for l in (run.stdout + run.stderr).splitlines() if l.startswith("Error")]
            if errors:
                problems.append("dciodvfy: " + errors[0])
    if len({os.path.dirname(s) for s in sources}) > 1:
        problems.append("the sources are not one disc folder")
    return problems


def key_problems(pairs, known, required):
    """A job file's keys against a vendor's: (problems, values by key)."""
    problems = []
    keys = [k for k, _ in pairs]
    for key in keys:
        if key not in known:
            problems.append(f"unknown key {key}")
    for key in required:
        if key not in keys:
            problems.append(f"missing key {key}")
    values = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    return problems, values


def check_disc(pairs, label_values):
    """Problems with a job, as a list of sentences (empty: whole)."""
    problems, values = key_problems(pairs, KNOWN_KEYS, REQUIRED)
    job_id = values.get("JOB_ID", [""])[0]
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", job_id):
        problems.append(f"bad JOB_ID {job_id!r}")
    if values.get("DISC_TYPE", [""])[0] not in ("CD", "DVD", "DVD-DL", "BD"):
        problems.append("bad DISC_TYPE")
    if not values.get("COPIES", ["x"])[0].isdigit():
        problems.append("bad COPIES")
    sources = []
    for data in values.get("DATA", []):
        if "\t" not in data:
            problems.append(f"DATA without a tab: {data!r}")
            continue
        source, _dest = data.split("\t", 1)
        if not os.path.exists(source):
            problems.append(f"DATA source missing: {source}")
        sources.append(source)
    problems += disc_problems(sources, values.get("VOLUME_LABEL", [""])[0], problems)
    if "REPLACE_FIELD" in values:
        merge = values["REPLACE_FIELD"][0]
        try:
            with open(merge, encoding="utf-8") as f:
                label_values.update(dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line))
        except OSError as err:
            problems.append(f"merge file unreadable: {err}")
    return problems


class Sim:
    def __init__(self, args):
        self.args = args
        self.jobs = {}  # id -> dict(status, error, done, failed, name, copies, ext)
        self.order = []
        self.publisher = {"mode": args.mode}

    def write_status(self):
        if self.args.mode == "off":
            return
        lines = ["[JOB_LIST]",
                 "ACTIVE=" + ",".join(j for j in self.order if self.jobs[j]["status"] in (1, 2, 3)),
                 "COMPLETED=" + ",".join(j for j in self.order if self.jobs[j]["status"] in (4, 5, 6))]
        for job_id in self.order:
            job = self.jobs[job_id]
            lines += [f"[{job_id}]", f"STATUS={job['status']}", f"ERROR={job['error']}",
                      f"COMPLETED_DISCS={job['done']}", f"FAILED_DISCS={job['failed']}"]
        status, error = {"out-of-discs": (4, 1), "cover-open": (4, 2)}.get(self.args.mode, (2 if self.busy() else 1, 0))
        lines += ["[PUBLISHER1]", "NAME=PP-100", f"STATUS={status}", f"ERROR={error}",
                  "STACKER1=1", "INK_CYAN=80", "INK_MAGENTA=75", "INK_YELLOW=70", "INK_BLACK=90"]
        tmp = self.args.status + ".tmp"
        with open(tmp, "w") as f:
            f.write("\r\n".join(lines) + "\r\n")
        os.replace(tmp, self.args.status)

    def busy(self):
        return any(j["status"] == 2 for j in self.jobs.values())

    def rename(self, job_id, ext):
        job = self.jobs[job_id]
        old = os.path.join(self.args.hot, f"{job_id}.{job['ext']}")
        new = os.path.join(self.args.hot, f"{job_id}.{ext}")
        os.rename(old, new)
        job["ext"] = ext

    def record(self, entry):
        path = os.path.join(self.args.state, "checks.json")
        entries = []
        if os.path.exists(path):
            with open(path) as f:
                entries = json.load(f)
        entries.append(entry)
        with open(path + ".tmp", "w") as f:
            json.dump(entries, f)
        os.replace(path + ".tmp", path)

    def take(self, name):
        job_id = name[:-4]
        with open(os.path.join(self.args.hot, name), encoding="utf-8") as f:
            text = f.read()
        self.jobs[job_id] = {"status": 1, "error": 0, "done": 0, "failed": 0, "ext": "JDF",
                             "copies": 1, "next": time.time() + self.args.step, "stage": "taken"}
        self.order.append(job_id)
        self.rename(job_id, "RJD")
        job = self.jobs[job_id]
        label = {}
        try:
            pairs = parse_job(text)
            problems = check_disc(pairs, label)
        except Exception as err:  # a job file the robot cannot read
            pairs, problems = [], [f"unreadable job file: {err}"]
        keys = {}
        for key, value in pairs:
            keys.setdefault(key, []).append(value)
        self.record({"job_id": job_id, "keys": keys, "problems": problems, "label": label})
        if keys.get("COPIES", ["1"])[0].isdigit():
            job["copies"] = int(keys["COPIES"][0])
        if problems:
            print(f"{job_id}: refused: {problems}", flush=True)
            job.update(status=6, error=99, stage="end")
            self.rename(job_id, "ERR")
        elif self.args.mode == "refuse":
            job.update(status=6, error=0, stage="end")
            self.rename(job_id, "ERR")

    def step(self, job_id):
        job = self.jobs[job_id]
        if job["stage"] == "end" or time.time() < job["next"]:
            return
        job["next"] = time.time() + self.args.step
        if job["stage"] == "taken":
            job.update(stage="burning", status=2)
            self.rename(job_id, "INP")
        elif job["stage"] == "burning":
            if self.args.mode == "hang":
                return
            if self.args.mode == "disc-rejected" and job["done"] >= 1:
                job.update(stage="end", status=5, error=5, failed=job["failed"] + 1)
                self.rename(job_id, "ERR")
                return
            job["done"] += 1
            if job["done"] >= job["copies"]:
                job.update(stage="end", status=4)
                self.rename(job_id, "DON")

    def cancel(self, name):
        path = os.path.join(self.args.hot, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        os.remove(path)
        match = re.search(r"^JOB_ID=(.+)$", text, re.M)
        if "[CANCEL]" not in text or not match:
            print(f"bad cancel file {name}: {text!r}", flush=True)
            return
        job_id = match.group(1).strip()
        job = self.jobs.get(job_id)
        self.record({"cancel": job_id})
        if job and job["stage"] != "end":
            job.update(stage="end", status=5, error=8)
            self.rename(job_id, "ERR")

    def run(self):
        ready = True
        while True:
            for name in sorted(os.listdir(self.args.hot)):
                upper = name.upper()
                if upper.endswith(".JDF") and not name.startswith("."):
                    self.take(name)
                elif upper.endswith(".JCF"):
                    self.cancel(name)
            for job_id in list(self.order):
                self.step(job_id)
            self.write_status()
            if ready and self.args.ready_file:
                open(self.args.ready_file, "w").close()
                ready = False
            time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hot", required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--mode", default="ok")
    parser.add_argument("--step", type=float, default=0.3, help="seconds per state change or disc")
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    Sim(args).run()


if __name__ == "__main__":
    sys.exit(main())
