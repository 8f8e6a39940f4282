"""When does a PACS end its C-MOVE sub-association, relative to its final
C-MOVE response? Receiver and move SCU in one process (one clock)."""
import os, sys, time, threading, statistics, subprocess, json, socket, tempfile
from pathlib import Path
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid, CTImageStorage
from pynetdicom import AE, evt, AllStoragePresentationContexts
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def make_study(folder, n):
    study = generate_uid(); series = generate_uid()
    for i in range(n):
        ds = Dataset()
        ds.SOPClassUID = CTImageStorage; ds.SOPInstanceUID = generate_uid()
        ds.StudyInstanceUID = study; ds.SeriesInstanceUID = series
        ds.PatientName = "MEASURE^ME"; ds.PatientID = "M1"; ds.AccessionNumber = "MEAS1"
        ds.Modality = "CT"; ds.InstanceNumber = i + 1; ds.SeriesNumber = 1; ds.StudyID = "1"
        ds.Rows = 64; ds.Columns = 64; ds.BitsAllocated = 16; ds.BitsStored = 12; ds.HighBit = 11
        ds.PixelRepresentation = 0; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = bytes(64 * 64 * 2)
        ds.file_meta = FileMetaDataset(); ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage; ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(folder / f"ct{i:03}.dcm", enforce_file_format=True)
    return study

events = []
def on_store(event):
    events.append(("store", time.monotonic())); return 0x0000
def on_released(event): events.append(("released", time.monotonic()))
def on_closed(event): events.append(("closed", time.monotonic()))
def on_aborted(event): events.append(("aborted", time.monotonic()))

def receiver(port):
    ae = AE(ae_title="MEAS")
    ae.supported_contexts = AllStoragePresentationContexts
    handlers = [(evt.EVT_C_STORE, on_store), (evt.EVT_RELEASED, on_released),
                (evt.EVT_CONN_CLOSE, on_closed), (evt.EVT_ABORTED, on_aborted)]
    return ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)

def move(port, study):
    ae = AE(ae_title="MEAS"); ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    ae.dimse_timeout = 30
    assoc = ae.associate("127.0.0.1", port, ae_title="PACS")
    assert assoc.is_established
    ds = Dataset(); ds.QueryRetrieveLevel = "STUDY"; ds.StudyInstanceUID = study
    final = None
    for status, _ in assoc.send_c_move(ds, "MEAS", StudyRootQueryRetrieveInformationModelMove):
        if status and status.Status not in (0xFF00, 0xFF01):
            final = (status.Status, time.monotonic())
    assoc.release()
    return final

def measure(name, port, study, runs):
    rows = []
    for _ in range(runs):
        events.clear()
        t0 = time.monotonic()
        status, t_final = move(port, study)
        time.sleep(1.0)  # anything later than a second would show
        stores = [t for k, t in events if k == "store"]
        ends = [t for k, t in events if k in ("released", "closed", "aborted")]
        rows.append(dict(status=status, n=len(stores), last_store=(max(stores) - t_final) * 1000,
                         end=(max(ends) - t_final) * 1000 if ends else None, total=(t_final - t0) * 1000))
    ends = [r["end"] for r in rows if r["end"] is not None]
    lasts = [r["last_store"] for r in rows]
    print(f"{name}: {runs} C-MOVEs, {rows[0]['n']} images, status 0x{rows[0]['status']:04X}; "
          f"move took median {statistics.median(r['total'] for r in rows):.1f} ms")
    print(f"  last C-STORE relative to final response: min {min(lasts):.2f} median {statistics.median(lasts):.2f} max {max(lasts):.2f} ms")
    print(f"  sub-association end (release/close) after final response: min {min(ends):.2f} median {statistics.median(ends):.2f} max {max(ends):.2f} ms")
    return rows

if __name__ == "__main__":
    which = sys.argv[1]; port = int(sys.argv[2]); recv = int(sys.argv[3]); study = sys.argv[4]
    server = receiver(recv)
    try:
        measure(which, port, study, int(sys.argv[5]) if len(sys.argv) > 5 else 30)
    finally:
        server.shutdown()
