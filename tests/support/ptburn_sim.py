#!/usr/bin/env python3
"""A Primera PTBurn service in place of the hardware, written from the
documented formats (../shared/ROBOTS.md): it watches a job folder for
NAME.JRQ job requests (`Key = Value` lines), moves each through NAME.QRJ ->
NAME.INP -> NAME.DON (or NAME.ERR), rewrites Status/SystemStatus.txt
([System] with a tick count, [RobotList], a section per robot) and
Status/<RobotName>.txt ([System] SystemStatus, SystemError,
SystemErrorString; a [<JobID>] section per job with JobState, DiscsDone,
DiscsFailed, ErrorNumber, ErrorString) every 0.1 s, and honours NAME.PTM
abort messages (Message=ABORT, ClientID).

Before it "burns", it checks the job file's keys and that the Data paths
make a whole disc (tdbridge_sim.disc_problems: DICOMDIR, README.TXT and
INDEX.HTM at the root, every DICOM file indexed, the VolumeName the
File-set ID). What it found goes to checks.json in --state; a job that
fails the check ends in ERR as rejected.

Modes: ok, ink-low (burns; the robot says "Ink Low"), out-of-discs,
cover-open, printer-offline, off (no status files), refuse (the job
rejected), disc-rejected (ERR after the first disc), hang (burns the first
disc forever; only a PTM ends it).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tdbridge_sim import disc_problems, key_problems  # noqa: E402

KNOWN_KEYS = {
    "JobID", "ClientID", "Importance", "Data", "ImageFile", "ImageType", "DataImageType", "Copies",
    "VolumeName", "CloseDisc", "VerifyDisc", "RejectIfNotBlank", "BurnSpeed", "BinID", "PrintLabel",
    "PrintQuality", "MergeField", "NotifyClient", "RobotName",
}
REQUIRED = ["JobID", "ClientID", "Data", "Copies", "VolumeName"]
YES_NO = ["CloseDisc", "VerifyDisc", "RejectIfNotBlank"]
# The robot's [System] by mode: SystemStatus, SystemError, SystemErrorString.
TROUBLE = {
    "out-of-discs": ("Out of Discs", 3, "Input bin empty"),
    "cover-open": ("Cover Open", 7, "Cover open"),
    "printer-offline": ("Printer Offline", 12, "Printer not responding"),
    "ink-low": ("Ink Low", 0, ""),
}


def parse_job(text):
    pairs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if "=" not in line:
            raise ValueError(f"line without '=': {line!r}")
        key, value = line.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    return pairs


def check_job(pairs, name):
    problems, values = key_problems(pairs, KNOWN_KEYS, REQUIRED)
    for key, found in values.items():
        if key not in ("Data", "MergeField") and len(found) > 1:
            problems.append(f"{key} given {len(found)} times")
    if values.get("JobID", [""])[0] != name:
        problems.append(f"JobID {values.get('JobID')} is not the file's name {name}")
    if not values.get("Copies", ["x"])[0].isdigit():
        problems.append("bad Copies")
    for key in YES_NO:
        if key in values and values[key][0] not in ("YES", "NO"):
            problems.append(f"bad {key}")
    if "MergeField" in values and "PrintLabel" not in values:
        problems.append("MergeField without PrintLabel")
    sources = values.get("Data", [])
    for source in sources:
        if not os.path.exists(source):
            problems.append(f"Data path missing: {source}")
    problems += disc_problems(sources, values.get("VolumeName", [""])[0], problems)
    return values, problems


class Sim:
    def __init__(self, args):
        self.args = args
        self.jobs = {}  # id -> dict(state, done, failed, error, string, ext, copies, next, stage)
        self.order = []
        self.tick = 1000

    def write(self, name, lines):
        os.makedirs(self.args.status, exist_ok=True)
        path = os.path.join(self.args.status, name)
        with open(path + ".tmp", "w") as f:
            f.write("\r\n".join(lines) + "\r\n")
        os.replace(path + ".tmp", path)

    def write_status(self):
        if self.args.mode == "off":
            return
        self.tick += 100
        robot = self.args.robot
        discs = 0 if self.args.mode == "out-of-discs" else 50
        self.write("SystemStatus.txt", [
            "[System]", f"TickCount={self.tick}", "JobsInQueue=" + str(sum(1 for j in self.jobs.values() if j["stage"] != "end")),
            "[RobotList]", f"Robot0={robot}",
            f"[{robot}]", f"Bin1Discs={discs}", "Bin2Discs=-1", "InkFillCyan=80", "InkFillMagenta=75",
            "InkFillYellow=70", "InkFillBlack=90", f"JobCount={len(self.jobs)}",
        ])
        status, number, string = TROUBLE.get(self.args.mode, ("Burning" if self.busy() else "Idle", 0, ""))
        lines = ["[System]", f"SystemStatus={status}", f"SystemError={number}", f"SystemErrorString={string}"]
        for job_id in self.order:
            job = self.jobs[job_id]
            lines += [f"[{job_id}]", f"JobState={job['state']}", f"DiscsDone={job['done']}",
                      f"DiscsFailed={job['failed']}", f"ErrorNumber={job['error']}", f"ErrorString={job['string']}"]
        self.write(f"{robot}.txt", lines)

    def busy(self):
        return any(j["stage"] == "burning" for j in self.jobs.values())

    def rename(self, job_id, ext):
        job = self.jobs[job_id]
        old = os.path.join(self.args.hot, f"{job_id}.{job['ext']}")
        new = os.path.join(self.args.hot, f"{job_id}.{ext}")
        os.rename(old, new)
        job["ext"] = ext

    def end(self, job_id, state, error=0, string=""):
        job = self.jobs[job_id]
        job.update(stage="end", state=state, error=error, string=string)
        self.rename(job_id, "ERR" if state != "Done" else "DON")
        if state != "Done":
            with open(os.path.join(self.args.hot, f"{job_id}.ERR"), "a") as f:
                f.write(f"ErrorNumber = {error}\r\nErrorString = {string}\r\n")

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
        self.jobs[job_id] = {"state": "Queued", "done": 0, "failed": 0, "error": 0, "string": "", "ext": "JRQ",
                             "copies": 1, "next": time.time() + self.args.step, "stage": "taken"}
        self.order.append(job_id)
        self.rename(job_id, "QRJ")
        try:
            values, problems = check_job(parse_job(text), job_id)
        except Exception as err:  # a job file the service cannot read
            values, problems = {}, [f"unreadable job file: {err}"]
        modes = {}
        for source in values.get("Data", [])[:1]:
            job_dir = os.path.dirname(os.path.dirname(source))
            modes = {"job_dir": oct(os.stat(job_dir).st_mode & 0o7777),
                     "job_file": oct(os.stat(os.path.join(self.args.hot, f"{job_id}.QRJ")).st_mode & 0o7777)}
        self.record({"job_id": job_id, "keys": values, "problems": problems, "modes": modes})
        if values.get("Copies", ["1"])[0].isdigit():
            self.jobs[job_id]["copies"] = int(values["Copies"][0])
        if problems:
            print(f"{job_id}: rejected: {problems}", flush=True)
            self.end(job_id, "Rejected", 1001, "Invalid job request")
        elif self.args.mode == "refuse":
            self.end(job_id, "Rejected", 1002, "Job request rejected")

    def step(self, job_id):
        job = self.jobs[job_id]
        if job["stage"] == "end" or time.time() < job["next"]:
            return
        job["next"] = time.time() + self.args.step
        if job["stage"] == "taken":
            job.update(stage="burning", state="Burning")
            self.rename(job_id, "INP")
        elif job["stage"] == "burning":
            if self.args.mode == "hang":
                return
            if self.args.mode == "disc-rejected" and job["done"] >= 1:
                job["failed"] += 1
                self.end(job_id, "Error", 5, "Disc rejected: verify failed")
                return
            job["done"] += 1
            if job["done"] >= job["copies"]:
                self.end(job_id, "Done")

    def abort(self, name):
        path = os.path.join(self.args.hot, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        os.remove(path)
        job_id = name[:-4]
        values = {}
        for key, value in parse_job(text):
            values[key] = value
        self.record({"abort": job_id, "keys": values})
        if values.get("Message") != "ABORT" or values.get("ClientID") != "PACS2CD":
            print(f"bad abort message {name}: {text!r}", flush=True)
            return
        job = self.jobs.get(job_id)
        if job and job["stage"] != "end":
            self.end(job_id, "Aborted", 0, "Aborted by the client")

    def run(self):
        ready = True
        while True:
            for name in sorted(os.listdir(self.args.hot)):
                if name.startswith("."):
                    continue
                if name.endswith(".JRQ"):
                    self.take(name)
                elif name.endswith(".PTM"):
                    self.abort(name)
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
    parser.add_argument("--status", required=True, help="the Status folder")
    parser.add_argument("--state", required=True)
    parser.add_argument("--robot", default="Bravo 4100")
    parser.add_argument("--mode", default="ok")
    parser.add_argument("--step", type=float, default=0.3, help="seconds per state change or disc")
    parser.add_argument("--ready-file")
    args = parser.parse_args()
    Sim(args).run()


if __name__ == "__main__":
    sys.exit(main())
