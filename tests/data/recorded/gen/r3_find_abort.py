#!/usr/bin/env python3
"""A C-FIND SCP that answers every query with N pending responses (copies of
one made-up study) and then aborts the association instead of sending the
final response: a PACS that crashes or gives up in the middle of an answer.

    r3_find_abort.py PORT [N]      (pynetdicom 3.0.4; stops on SIGTERM)
"""
import signal
import sys
import threading

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

port = int(sys.argv[1])
answers = int(sys.argv[2]) if len(sys.argv) > 2 else 2


def handle_find(event):
    for n in range(answers):
        response = Dataset()
        response.QueryRetrieveLevel = "STUDY"
        response.SpecificCharacterSet = "ISO_IR 100"
        response.AccessionNumber = "ACC001"
        response.StudyInstanceUID = f"2.25.20000000000000000000000000000000{n + 1}"
        response.PatientName = "DOE^JOHN"
        response.PatientID = "PID001"
        yield (0xFF00, response)
    sys.stderr.write(f"C-FIND: {answers} pending responses sent, aborting\n")
    sys.stderr.flush()
    event.assoc.abort(block=True)


ae = AE(ae_title="PACS")
ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
ae.add_supported_context(Verification)
server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, handle_find)])
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
while not stop.wait(0.2):
    pass
server.shutdown()
