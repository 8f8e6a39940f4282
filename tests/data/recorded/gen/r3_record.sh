#!/bin/bash
# Round 3: the outputs the parsers' unit tests lacked: dcmmkdir, movescu -d
# and getscu -v finals with failed or remaining sub-operations (Orthanc,
# dcmqrscp, the fake PACS), C-FIND refusals, an aborted C-FIND, ISO 2022
# IR 87 answers. Every client runs with the arguments pacs2cd gives it
# (src/dicom/*.rs args()), query files included. Run r3_data.sh first.
. "$(dirname "$0")/r3_env.sh"
U=2.25.2000000000000000000000000000
for p in $ORTHANC_DICOM $ORTHANC_HTTP $QR_PORT $FAKE_PORT $MOVEPORT $DOWNPORT; do
  port_busy $p && { echo "port $p busy"; exit 9; }
done
rm -rf $D/recv $D/out; mkdir -p $D/recv $D/out
: > $D/logs/fake.log
# pacs2cd's argument vectors (movescu::args, getscu::args, findscu::args)
MV() { local aet=$1 port=$2 q=$3; movescu -S -d -aem $aet -aet $aet -aec PACS "${TMO[@]}" 127.0.0.1 $port $q; }
GET() { local n=$1 port=$2 q=$3; rm -rf $D/out/$n; mkdir -p $D/out/$n
  getscu -S -v +xs -pdu 131072 -od $D/out/$n -aet PACS2CD -aec PACS "${TMO[@]}" 127.0.0.1 $port $q; }
STUDY_KEYS=(-k QueryRetrieveLevel=STUDY -k StudyInstanceUID -k PatientName -k PatientID -k IssuerOfPatientID
  -k PatientBirthDate -k StudyDate -k StudyDescription -k ModalitiesInStudy -k NumberOfStudyRelatedInstances
  -k SpecificCharacterSet)
FIND_X() { local n=$1 port=$2; shift 2; rm -rf $D/out/$n; mkdir -p $D/out/$n
  findscu -S -v -sr -X -od $D/out/$n "${STUDY_KEYS[@]}" -aet PACS2CD -aec PACS "${TMO[@]}" 127.0.0.1 $port "$@"; }
FIND_XS() { local n=$1 port=$2 q=$3; shift 3; rm -rf $D/out/$n; mkdir -p $D/out/$n
  findscu -S -v -sr -Xs responses.xml -od $D/out/$n "$@" -aet PACS2CD -aec PACS "${TMO[@]}" 127.0.0.1 $port $q; }
# files a receiver or getscu wrote: "size name SOPInstanceUID" per line
files() { ( cd $1 && for f in $(ls -1); do echo "$(stat -c %s $f) $f $(dcmdump -q +P 0008,0018 $f | sed 's/.*\[\(.*\)\].*/\1/')"; done ) > $REC/$2.files; }
# query files as findscu::write_queries writes them (matching keys only)
qf() { local out=$1; shift; printf '%s\n' "$@" > $D/raw/$(basename $out).dump; dump2dcm $D/raw/$(basename $out).dump $out; }
qf $D/q/find_acc001.dcm "(0008,0050) SH [ACC001]"
# (findscu's -k StudyInstanceUID, an empty return key as pacs2cd asks it,
# overrides this file's value: the query matches every study; see README)
qf $D/q/find_h31.dcm "(0020,000d) UI [1.3.6.1.4.1.5962.1.2.0.1175775771.5702.0]"
qf $D/q/find_acc007.dcm "(0008,0050) SH [ACC007]"
qf $D/q/image_ser11.dcm "(0020,000d) UI [${U}00001]" "(0020,000e) UI [${U}00011]"

########## dcmmkdir (no server): disc folders laid out as disc.rs does
dcmmkdir_case() {  # dcmmkdir_case NAME [FILE SE-FOLDER]...  (ACC001 + ACC002 always)
  local n=$1; shift
  local f=$D/disc/$n; rm -rf $f
  mkdir -p $f/DICOM/ST000001/SE000001 $f/DICOM/ST000001/SE000002 $f/DICOM/ST000002/SE000001
  cp $D/pacs/ACC001_1.dcm $f/DICOM/ST000001/SE000001/IM000001
  cp $D/pacs/ACC001_2.dcm $f/DICOM/ST000001/SE000001/IM000002
  cp $D/pacs/ACC001_3.dcm $f/DICOM/ST000001/SE000002/IM000001
  cp $D/pacs/ACC002_1.dcm $f/DICOM/ST000002/SE000001/IM000001
  cp $D/pacs/ACC002_2.dcm $f/DICOM/ST000002/SE000001/IM000002
  while [ $# -gt 1 ]; do mkdir -p $f/DICOM/$2; cp $1 $f/DICOM/$2/IM000001; shift 2; done
  ( cd $f && rec $n dcmmkdir -v -nb +r -Pgp +I -Nxc -Nec -Nrc +F ACC001 +D DICOMDIR DICOM )
}
dcmmkdir_case dcmmkdir_ok
dcmmkdir_case dcmmkdir_private_class $D/odd/PRIVATE.dcm ST000001/SE000003
dcmmkdir_case dcmmkdir_sr_incomplete $D/odd/SR.dcm ST000001/SE000003
$PY -c "
from pydicom import dcmread
ds = dcmread('$D/pacs/ACC002_1.dcm'); ds.PatientName = 'DOE^JANE'; ds.AccessionNumber = 'ACC009'
ds.StudyInstanceUID = '${U}00009'; ds.SeriesInstanceUID = '${U}00091'
ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = '${U}01901'
ds.save_as('$D/odd/JANE.dcm')"
dcmmkdir_case dcmmkdir_inconsistent_patient $D/odd/JANE.dcm ST000003/SE000001

########## Orthanc
start_orthanc || exit 1
storescu -aet LOADER -aec PACS 127.0.0.1 $ORTHANC_DICOM $D/pacs/*.dcm $D/acc006/ACC006_3.dcm $D/acc006/ACC006_[12].dcm || exit 1  # (MR first: Orthanc sent ACC001 last-stored first)
for f in $D/acc005/*.dcm; do curl -sS -o /dev/null -w "POST $f %{http_code}\n" --data-binary @$f http://127.0.0.1:$ORTHANC_HTTP/instances; done
# C-MOVE of ACC001 + ACC002 (3 CT, 2 MR) to a receiver taking CT only
wait_free $MOVEPORT
mkdir -p $D/recv/ctonly
storescp -v -aet PACS2CD +uf -xf $G/storescp-ctonly.cfg CTOnly -od $D/recv/ctonly $MOVEPORT > $D/logs/recv_ctonly.log 2>&1 &
RECV_PID=$!; PIDS+=($RECV_PID); wait_port $MOVEPORT
rec orthanc_movescu_ctonly_debug MV PACS2CD $ORTHANC_DICOM $D/q/acc001_acc002.dcm
recv_stop ctonly; files $D/recv/ctonly orthanc_movescu_ctonly_debug
# the legacy loop's request for ACC006 (2 CT, 1 MR) and CT: Orthanc ignores
# ModalitiesInStudy, sends the CTs, then fails on the MR
wait_free $MOVEPORT
rm -rf $D/recv/legacy_ctonly; mkdir -p $D/recv/legacy_ctonly
storescp -v -aet PACS2CD +uf -xf $G/storescp-ctonly.cfg CTOnly -od $D/recv/legacy_ctonly $MOVEPORT > $D/logs/recv_legacy_ctonly.log 2>&1 &
RECV_PID=$!; PIDS+=($RECV_PID); wait_port $MOVEPORT
rec orthanc_movescu_legacy_ctonly_debug MV PACS2CD $ORTHANC_DICOM $D/q/legacy_acc006_ct.dcm
recv_stop legacy_ctonly; files $D/recv/legacy_ctonly orthanc_movescu_legacy_ctonly_debug
# C-GET of ACC005: the Parametric Map is not in getscu's proposal
rec orthanc_getscu_unproposed_class GET orthanc_get_pm $ORTHANC_DICOM $D/q/acc005.dcm
files $D/out/orthanc_get_pm orthanc_getscu_unproposed_class
stop $ORTHANC_PID

########## dcmqrscp
start_qr || exit 1
storescu -aet LOADER -aec PACS 127.0.0.1 $QR_PORT $D/pacs/*.dcm $ROOT/tests/data/charset/chrH31.dcm || exit 1
dcmsend -aet LOADER -aec PACS 127.0.0.1 $QR_PORT $D/acc005/*.dcm || exit 1
# a move destination it does not know (pacs2cd configured with an AE title
# missing from the PACS's AE table): nothing listens anywhere
rec dcmqrscp_movescu_unknown_dest_debug MV NOBODY $QR_PORT $D/q/acc001.dcm
# a C-CANCEL after the first pending response (movescu --cancel 1): the
# final Cancel status still counts the sub-operation left
recv_start cancel
rec dcmqrscp_movescu_cancel_debug movescu -S -d --cancel 1 -aem PACS2CD -aet PACS2CD -aec PACS "${TMO[@]}" 127.0.0.1 $QR_PORT $D/q/acc001.dcm
recv_stop cancel; files $D/recv/cancel dcmqrscp_movescu_cancel_debug
# C-GET of ACC005
rec dcmqrscp_getscu_unproposed_class GET qr_get_pm $QR_PORT $D/q/acc005.dcm
files $D/out/qr_get_pm dcmqrscp_getscu_unproposed_class
# ISO 2022 IR 87 answers: -X keeps them (the rsp files are recorded), -Xs loses them
rec dcmqrscp_findscu_ir87_X FIND_X qr_ir87_X $QR_PORT $D/q/find_h31.dcm
rm -rf $REC/dcmqrscp_findscu_ir87_X.rsp; cp -r $D/out/qr_ir87_X $REC/dcmqrscp_findscu_ir87_X.rsp
rec dcmqrscp_findscu_ir87_Xs FIND_XS qr_ir87_Xs $QR_PORT $D/q/find_h31.dcm "${STUDY_KEYS[@]}"
cp $D/out/qr_ir87_Xs/responses.xml $REC/dcmqrscp_findscu_ir87_Xs.xml
stop $QR_PID

########## the fake PACS (tests/support/fake_pacs.py)
# short: announces 3, sends 2, final Success with Remaining 1
start_fake short $D/pacs --deliver 2 || exit 1
recv_start short
rec fake_movescu_short_debug MV PACS2CD $FAKE_PORT $D/q/acc001.dcm
recv_stop short; files $D/recv/short fake_movescu_short_debug
rec fake_getscu_short GET fake_get_short $FAKE_PORT $D/q/acc001.dcm
files $D/out/fake_get_short fake_getscu_short
stop_fake
# no-multi-study: a C-MOVE naming two studies ends 0xA801, nothing sent
start_fake no-multi-study $D/pacs || exit 1
recv_start nomulti
rec fake_movescu_no_multi_study_debug MV PACS2CD $FAKE_PORT $D/q/acc001_acc002.dcm
recv_stop nomulti
# the legacy loop asks ACC001 (CT) for MR: this PACS honours ModalitiesInStudy
# in a C-MOVE; no match ends 0xC000 with all counts 0, as Orthanc answers
recv_start legacy
rec fake_movescu_legacy_nomatch_debug MV PACS2CD $FAKE_PORT $D/q/legacy_acc001_mr.dcm
rec fake_movescu_legacy_match_debug MV PACS2CD $FAKE_PORT $D/q/legacy_acc001_ct.dcm
recv_stop legacy; files $D/recv/legacy fake_movescu_legacy_match_debug
stop_fake
# refuse-image: the IMAGE-level C-FIND (as retrieve's manifest asks it) refused 0xA900
start_fake refuse-image $D/pacs || exit 1
rec fake_findscu_refuse_image FIND_XS refuse $FAKE_PORT $D/q/image_ser11.dcm -k QueryRetrieveLevel=IMAGE -k SOPInstanceUID
stop_fake
# latin1: no SpecificCharacterSet, names as ISO-8859-1 bytes; -Xs then
# holds raw bytes (not UTF-8) and the CR/LF of the name as references
start_fake latin1 $D/latin1 || exit 1
rec fake_findscu_latin1_xs FIND_XS latin1 $FAKE_PORT $D/q/find_acc007.dcm -k QueryRetrieveLevel=STUDY -k StudyInstanceUID -k PatientName -k PatientID -k ModalitiesInStudy -k NumberOfStudyRelatedInstances
cp $D/out/latin1/responses.xml $REC/fake_findscu_latin1_xs.xml
stop_fake
norm < $D/logs/fake.log > $D/logs/fake.norm.log

########## a C-FIND aborted after two answers (gen/r3_find_abort.py)
wait_free $FAKE_PORT
$PY $G/r3_find_abort.py $FAKE_PORT 2 > $D/logs/find_abort.log 2>&1 &
AB=$!; PIDS+=($AB); wait_port $FAKE_PORT
rec findscu_aborted FIND_X aborted $FAKE_PORT $D/q/find_acc001.dcm
stop $AB
echo "round 3 recorded"
