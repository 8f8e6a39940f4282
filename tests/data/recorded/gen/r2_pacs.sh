#!/bin/bash
# Round 2, questions 1-5: receiver for C-MOVE, movescu -d counts, dcmqrscp as
# a test PACS, the legacy ModalitiesInStudy loop, findscu -X/-Xs with several
# query files. Run r2_data.sh first. Starts Orthanc + dcmqrscp + storescp
# receivers on fixed loopback ports (see r2_env.sh) and stops them all.
. /work/main/tests/data/recorded/gen/r2_env.sh
S1=2.25.200000000000000000000000000000001   # ACC001, CT, 3 files, 2 series
S2=2.25.200000000000000000000000000000002   # ACC002, MR, 2 files
SER11=2.25.200000000000000000000000000000011
for p in $ORTHANC_DICOM $ORTHANC_HTTP $QR_PORT $MOVEPORT $PUBPORT $DOWNPORT; do
  port_busy $p && { echo "port $p busy"; exit 9; }
done
rm -rf $D/orthanc $D/qr $D/recv $D/q; mkdir -p $D/recv $D/q
start_orthanc || exit 1
start_qr || exit 1
storescu -aet LOADER -aec PACS 127.0.0.1 $ORTHANC_DICOM $D/pacs/*.dcm $D/big/BIG_CT.dcm || exit 1
storescu -aet LOADER -aec PACS 127.0.0.1 $QR_PORT $D/pacs/*.dcm || exit 1
ls $D/qr/PACS > $D/logs/qr_storage_after_load.txt

MV=(movescu -S -aet PACS2CD -aec PACS -aem PACS2CD -to 5 -ta 5 -td 5)
GET=(getscu -S -aet PACS2CD -aec PACS -to 5 -ta 5 -td 5)
FIND=(findscu -S -v -aet PACS2CD -aec PACS -to 5 -ta 5 -td 5)
RECV_ARGS=(-v -aet PACS2CD +xa -pm +uf)

# receiver storescp on MOVEPORT writing into $D/recv/NAME
recv_start() { local n=$1; shift; mkdir -p $D/recv/$n; start_scp recv_$n $MOVEPORT "${RECV_ARGS[@]}" "$@" -od $D/recv/$n; RECV_PID=$SCP_PID; }
# recv_stop NAME [FIXTURE]: stop it; FIXTURE.out = its log, FIXTURE.files = listing
recv_stop() {
  local n=$1 fx=$2
  kill $RECV_PID; wait $RECV_PID; local rc=$?
  if [ -n "$fx" ]; then
    norm < $D/logs/recv_$n.log > $REC/$fx.out; echo $rc > $REC/$fx.exit
  fi
  ( cd $D/recv/$n && for f in $(ls -1); do echo "$(stat -c %s $f) $f $(dcmdump -q +P 0008,0018 $f | sed 's/.*\[\(.*\)\].*/\1/')"; done ) > $D/recv/$n.files
  [ -n "$fx" ] && cp $D/recv/$n.files $REC/$fx.files
  echo "   recv $n: $(wc -l < $D/recv/$n.files) files (storescp rc=$rc)"
}

########## Q1: the C-MOVE receiver
recv_start receiver
rec movescu_to_receiver "${MV[@]}" -v -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $ORTHANC_DICOM
recv_stop receiver storescp_receiver

recv_start receiver_dbg
rec movescu_to_receiver_debug "${MV[@]}" -d -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $ORTHANC_DICOM
recv_stop receiver_dbg storescp_receiver_for_debug

# timed: storescp -v and movescu -v through ts.py (CLOCK_MONOTONIC), plus
# inotify events of the output dir on the same clock
timed_move() {  # timed_move NAME STUDYUID FIXPREFIX
  local n=$1 uid=$2 fx=$3
  mkdir -p $D/recv/$n
  $PY $G/inotify_watch.py $D/recv/$n > $D/logs/inotify_$n.log & local ipid=$!; PIDS+=($ipid)
  sleep 0.2
  wait_free $MOVEPORT
  storescp "${RECV_ARGS[@]}" -od $D/recv/$n $MOVEPORT > >($PY $G/ts.py > $D/logs/recv_$n.log) 2>&1 &
  RECV_PID=$!; PIDS+=($RECV_PID); wait_port $MOVEPORT; sleep 0.5
  (sleep 0.5; exec "${MV[@]}" -v -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$uid 127.0.0.1 $ORTHANC_DICOM) 2>&1 | $PY $G/ts.py > $D/raw/${fx}movescu.raw
  echo ${PIPESTATUS[0]} > $REC/movescu_to_receiver${fx#storescp_receiver}timed.exit
  sleep 0.3; kill $RECV_PID; wait $RECV_PID; echo $? > $REC/${fx}timed.exit; sleep 0.3
  stop $ipid
  norm < $D/logs/recv_$n.log > $REC/${fx}timed.out
  norm < $D/raw/${fx}movescu.raw > $REC/movescu_to_receiver${fx#storescp_receiver}timed.out
  norm < $D/logs/inotify_$n.log > $REC/${fx}inotify_timed.out
  echo "== timed $n done"
}
timed_move timed $S1 storescp_receiver_
timed_move timed_big 2.25.300000000000000000000000000000099 storescp_receiver_big_

# the same under strace -ttt (wall clock, one clock for both processes):
# exact order of "storing" log write, file open/write/close, C-STORE-RSP on
# the socket, and movescu's final-response log line
n=strace; rm -rf $D/recv/$n; mkdir -p $D/recv/$n; wait_free $MOVEPORT
strace -f -ttt -e trace=openat,close,write -o $D/logs/strace_scp.txt storescp "${RECV_ARGS[@]}" -od $D/recv/$n $MOVEPORT > $D/logs/recv_$n.log 2>&1 &
ST=$!; wait_port $MOVEPORT
strace -ttt -e trace=write -o $D/logs/strace_mv.txt "${MV[@]}" -v -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $ORTHANC_DICOM > /dev/null 2>&1
echo $? > $REC/movescu_to_receiver_strace.exit
sleep 0.3; kill $(pgrep -P $ST storescp); wait $ST; echo $? > $REC/storescp_receiver_strace.exit
sed -n '/Association Received/,$p' $D/logs/strace_scp.txt | grep -v 'SIGTERM' | norm | sed "s#/tmp/p2cdr2\.#/DATA/#g" > $REC/storescp_receiver_strace.out
grep 'write(2' $D/logs/strace_mv.txt | norm > $REC/movescu_to_receiver_strace.out
echo "== strace done"

# the same study moved twice into one running receiver: +uf vs default names
recv_start repeat_uf
rec movescu_repeat_uf_1 "${MV[@]}" -v -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $ORTHANC_DICOM
rec movescu_repeat_uf_2 "${MV[@]}" -v -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $ORTHANC_DICOM
recv_stop repeat_uf storescp_receiver_repeat_uf
RECV_ARGS=(-v -aet PACS2CD +xa -pm)
recv_start repeat_default
rec movescu_repeat_default_1 "${MV[@]}" -v -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $ORTHANC_DICOM
rec movescu_repeat_default_2 "${MV[@]}" -v -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $ORTHANC_DICOM
recv_stop repeat_default storescp_receiver_repeat_default
rm -f $REC/movescu_repeat_*   # identical to movescu_to_receiver; only the receiver side is kept
RECV_ARGS=(-v -aet PACS2CD +xa -pm +uf)

# file names while writing: 8 MiB CT sent by storescu, with and without +B;
# -xcr shows the exec-on-reception hook firing after the file is complete
for mode in plain bitpreserving; do
  n=write_$mode; mkdir -p $D/recv/$n
  B=; [ $mode = bitpreserving ] && B=+B
  $PY $G/inotify_watch.py $D/recv/$n > $D/logs/inotify_$n.log & ipid=$!; PIDS+=($ipid); sleep 0.2
  wait_free $MOVEPORT
  storescp "${RECV_ARGS[@]}" $B -xcr "echo EXEC-ON-RECEPTION #p/#f" -od $D/recv/$n $MOVEPORT > >($PY $G/ts.py > $D/logs/recv_$n.log) 2>&1 &
  RECV_PID=$!; PIDS+=($RECV_PID); wait_port $MOVEPORT; sleep 0.5
  storescu -aet PACS -aec PACS2CD 127.0.0.1 $MOVEPORT $D/big/BIG_CT.dcm $D/pacs/ACC001_1.dcm
  sleep 0.3; kill $RECV_PID; wait $RECV_PID; echo $? > $REC/storescp_write_${mode}_timed.exit; sleep 0.3; stop $ipid
  norm < $D/logs/recv_$n.log > $REC/storescp_write_${mode}_timed.out
  norm < $D/logs/inotify_$n.log > $REC/storescp_write_${mode}_inotify_timed.out
  echo "== $n done"
done

########## Q2: movescu -d final response; Orthanc sub-operation failure
# receiver accepting CT only (refuses MR): Orthanc's sub-operation fails
RECV_ARGS=(-v -aet PACS2CD)
recv_start subop_fail -xf $G/storescp-ctonly.cfg CTOnly
rec movescu_to_receiver_subop_fail_debug "${MV[@]}" -d -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S2 127.0.0.1 $ORTHANC_DICOM
recv_stop subop_fail storescp_receiver_subop_fail
RECV_ARGS=(-v -aet PACS2CD +xa -pm +uf)

recv_start qr_move_v
rec dcmqrscp_movescu "${MV[@]}" -v -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $QR_PORT
recv_stop qr_move_v
recv_start qr_move_d
rec dcmqrscp_movescu_debug "${MV[@]}" -d -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $QR_PORT
recv_stop qr_move_d
recv_start qr_move_nomatch
rec dcmqrscp_movescu_nomatch_debug "${MV[@]}" -d -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=1.2.3.4.5 127.0.0.1 $QR_PORT
recv_stop qr_move_nomatch
# no receiver listening on MOVEPORT
rec dcmqrscp_movescu_dest_down_debug "${MV[@]}" -d -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $QR_PORT

########## Q3: dcmqrscp vs Orthanc, C-FIND levels, C-GET
for pacs in orthanc dcmqrscp; do
  P=$ORTHANC_DICOM; [ $pacs = dcmqrscp ] && P=$QR_PORT
  rec findscu_${pacs}_study "${FIND[@]}" -k QueryRetrieveLevel=STUDY -k AccessionNumber=ACC001 -k StudyInstanceUID -k PatientName -k PatientID -k StudyDate -k ModalitiesInStudy -k NumberOfStudyRelatedSeries -k NumberOfStudyRelatedInstances -k SpecificCharacterSet 127.0.0.1 $P
  rec findscu_${pacs}_series "${FIND[@]}" -k QueryRetrieveLevel=SERIES -k StudyInstanceUID=$S1 -k SeriesInstanceUID -k Modality -k SeriesNumber -k NumberOfSeriesRelatedInstances 127.0.0.1 $P
  rec findscu_${pacs}_image "${FIND[@]}" -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=$S1 -k SeriesInstanceUID=$SER11 -k SOPInstanceUID -k SOPClassUID -k InstanceNumber 127.0.0.1 $P
  rec findscu_${pacs}_image_noseries "${FIND[@]}" -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=$S1 -k SOPInstanceUID -k SOPClassUID -k InstanceNumber 127.0.0.1 $P
  rec findscu_${pacs}_image_anyseries "${FIND[@]}" -k QueryRetrieveLevel=IMAGE -k StudyInstanceUID=$S1 -k SeriesInstanceUID -k SOPInstanceUID -k SOPClassUID -k InstanceNumber 127.0.0.1 $P
done
mkdir -p $D/recv/qr_get_xs
rec dcmqrscp_getscu_xs "${GET[@]}" -v +xs -od $D/recv/qr_get_xs -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $QR_PORT
ls $D/recv/qr_get_xs > $REC/dcmqrscp_getscu_xs.files 2>&1
mkdir -p $D/recv/qr_get_default
rec dcmqrscp_getscu_default "${GET[@]}" -v -od $D/recv/qr_get_default -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $QR_PORT
ls $D/recv/qr_get_default > $REC/dcmqrscp_getscu_default.files

########## Q4: legacy loop keys (AccessionNumber + ModalitiesInStudy), move and get
for pacs in orthanc dcmqrscp; do
  P=$ORTHANC_DICOM; [ $pacs = dcmqrscp ] && P=$QR_PORT
  for m in absent present; do
    MOD=MR; [ $m = present ] && MOD=CT
    K=(-k QueryRetrieveLevel=STUDY -k AccessionNumber=ACC001 -k ModalitiesInStudy=$MOD)
    rec legacy_${pacs}_find_$m "${FIND[@]}" "${K[@]}" -k StudyInstanceUID 127.0.0.1 $P
    recv_start legacy_${pacs}_$m
    rec legacy_${pacs}_move_$m "${MV[@]}" -d "${K[@]}" 127.0.0.1 $P
    recv_stop legacy_${pacs}_$m
    cp $D/recv/legacy_${pacs}_$m.files $REC/legacy_${pacs}_move_$m.files
    mkdir -p $D/recv/legacy_get_${pacs}_$m
    rec legacy_${pacs}_get_$m "${GET[@]}" -v +xs -od $D/recv/legacy_get_${pacs}_$m "${K[@]}" 127.0.0.1 $P
    ls $D/recv/legacy_get_${pacs}_$m > $REC/legacy_${pacs}_get_$m.files
  done
done

########## Q5: findscu -X / -Xs with two query files in one run
dump2dcm $G/r2_query1.dump $D/q/q1_acc001.dcm 2>/dev/null
dump2dcm $G/r2_query2.dump $D/q/q2_pid001.dcm 2>/dev/null
for pacs in orthanc; do
  mkdir -p $D/recv/findX $D/recv/findXs $D/recv/findXd $D/recv/findXq
  rec findscu_multi_X "${FIND[@]}" -X -od $D/recv/findX 127.0.0.1 $ORTHANC_DICOM $D/q/q1_acc001.dcm $D/q/q2_pid001.dcm
  ( cd $D/recv/findX; for f in $(ls -1); do echo "$f: $(dcmdump -q +P 0008,0050 $f)"; done ) > $REC/findscu_multi_X.files
  rec findscu_multi_Xs "${FIND[@]}" -Xs $D/recv/findXs/all.xml -od $D/recv/findXs 127.0.0.1 $ORTHANC_DICOM $D/q/q1_acc001.dcm $D/q/q2_pid001.dcm
  norm < $D/recv/findXs/all.xml > $REC/findscu_multi_Xs.xml
  rec findscu_multi_X_debug findscu -S -d -aet PACS2CD -aec PACS -to 5 -ta 5 -td 5 -X -od $D/recv/findXd 127.0.0.1 $ORTHANC_DICOM $D/q/q1_acc001.dcm $D/q/q2_pid001.dcm
done
# same, plus -k keys on the command line override/add to each file
rec findscu_multi_X_dcmqrscp "${FIND[@]}" -X -od $D/recv/findXq 127.0.0.1 $QR_PORT $D/q/q1_acc001.dcm $D/q/q2_pid001.dcm

########## Q2 (dcmqrscp failure): delete one image from the storage area
F=$(grep -l "2.25.200000000000000000000000000001102" $D/qr/PACS/CT_* | head -1)
echo "deleting $F (SOP Instance ...01102)"; rm -f "$F"
recv_start qr_move_missing_d
rec dcmqrscp_movescu_missing_debug "${MV[@]}" -d -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $QR_PORT
recv_stop qr_move_missing_d
recv_start qr_move_missing_v
rec dcmqrscp_movescu_missing "${MV[@]}" -v -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $QR_PORT
recv_stop qr_move_missing_v
mkdir -p $D/recv/qr_get_missing
rec dcmqrscp_getscu_missing "${GET[@]}" -v +xs -od $D/recv/qr_get_missing -k QueryRetrieveLevel=STUDY -k StudyInstanceUID=$S1 127.0.0.1 $QR_PORT

stop_all
sleep 0.5
norm < $D/logs/dcmqrscp.log > $REC/dcmqrscp_server.out
norm < $D/logs/orthanc.log > $D/logs/orthanc.norm.log
########## Q3: start-up time of dcmqrscp (storage as left above) and Orthanc
{ echo "# dcmqrscp -c dcmqrscp.cfg (fork mode, index of 5 instances), 10 runs"
  $PY $G/r2_startup.py 10 $QR_PORT PACS dcmqrscp -c $D/qr/dcmqrscp.cfg
  echo "# Orthanc orthanc.json (database with 6 instances), 10 runs"
  $PY $G/r2_startup.py 10 $ORTHANC_DICOM PACS Orthanc $D/orthanc/orthanc.json
} > $REC/dcmqrscp_startup.out 2>&1; echo 0 > $REC/dcmqrscp_startup.exit
cat $REC/dcmqrscp_startup.out
echo done
