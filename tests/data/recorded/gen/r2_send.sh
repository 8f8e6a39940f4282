#!/bin/bash
# Round 2, questions 6-7: relay of a mixed corpus to a "CD publisher"
# (storescp) with dcmsend and storescu; killed and stalled dcmsend.
# Run r2_data.sh first.
. /work/main/tests/data/recorded/gen/r2_env.sh
port_busy $PUBPORT && { echo "port $PUBPORT busy"; exit 9; }
C=$D/corpus
CORPUS=($C/C01_CT.dcm $C/C02_MR.dcm $C/C03_MR_jpeg_lossless.dcm $C/C04_SC8_jpeg_baseline.dcm
  $C/C05_CT_jpegls_lossless.dcm $C/C06_CT_jpegls_near.dcm $C/C07_MR_j2k_label.dcm
  $C/C08_MR_rle.dcm $C/C09_CT_deflated.dcm $C/C10_CT_big_endian.dcm $C/C11_CT_truncated.dcm
  $C/C12_SEG.dcm $C/C13_PDF.dcm $C/C14_ECG.dcm $C/C15_PRIVATE_CLASS.dcm $C/C16_CT.dcm)
COMMON=(-aet CDRECORD -aec CDPUB -to 5 -ta 5 -td 5)
declare -A SRV=([xa]="+xa" [xapm]="+xa -pm" [plain]="" [ctonly]="-xf $G/storescp-ctonly.cfg CTOnly")

# relay RECEIVER SENDERNAME SENDER-ARGS...
relay() {
  local r=$1 s=$2; shift 2
  local name=relay_${r}_$s out=$D/pub/${r}_$s
  rm -rf $out; mkdir -p $out
  start_scp pub_$name $PUBPORT -v ${SRV[$r]} -od $out || return 1
  local pid=$SCP_PID
  rm -f $D/raw/$name.report
  case $s in
    dcmsend*) rec $name dcmsend "$@" "${COMMON[@]}" +crf $D/raw/$name.report 127.0.0.1 $PUBPORT "${CORPUS[@]}"
              [ -f $D/raw/$name.report ] && norm < $D/raw/$name.report > $REC/$name.report ;;
    storescu*) rec $name storescu "$@" "${COMMON[@]}" 127.0.0.1 $PUBPORT "${CORPUS[@]}" ;;
  esac
  kill $pid; wait $pid
  ( cd $out; for f in $(ls -1); do echo "$f $(dcmdump -q -M +P 0002,0010 $f | sed 's/.*=\([^ ]*\) .*/\1/; s/.*\[\(.*\)\].*/\1/')"; done ) > $REC/$name.files
  norm < $D/logs/pub_$name.log > $D/logs/pub_$name.norm.log
  echo "   $name: $(wc -l < $REC/$name.files) files received"
}
for r in xa plain ctonly; do
  relay $r dcmsend_v -nh -v
  relay $r dcmsend_pc -nh -v +v
  relay $r storescu_v -nh -v
  relay $r storescu_pc -nh -v +v
  relay $r storescu_R_pc -nh -v +v -R
  relay $r storescu_RC_pc -nh -v +v -R +C
done
relay xapm dcmsend_pc -nh -v +v
relay plain dcmsend_debug -nh -d
# keep the receiver logs of the +v dcmsend runs (storescp -v view)
for r in xa plain ctonly xapm; do cp $D/logs/pub_relay_${r}_dcmsend_pc.norm.log $REC/relay_${r}_dcmsend_pc.server.out; done

########## dcmsend killed with SIGKILL part-way (receiver sleeps 1 s after each store)
out=$D/pub/killed; rm -rf $out; mkdir -p $out
start_scp pub_killed $PUBPORT -v +xa --sleep-after 1 -od $out; pid=$SCP_PID
rm -f $D/raw/relay_killed_dcmsend.report
dcmsend -nh -v "${COMMON[@]}" +crf $D/raw/relay_killed_dcmsend.report 127.0.0.1 $PUBPORT "${CORPUS[@]}" > $D/raw/relay_killed_dcmsend.raw 2>&1 &
spid=$!
sleep 3.5; kill -KILL $spid; wait $spid; echo $? > $REC/relay_killed_dcmsend.exit
norm < $D/raw/relay_killed_dcmsend.raw > $REC/relay_killed_dcmsend.out
ls $D/raw/relay_killed_dcmsend.report 2>&1 | norm > $REC/relay_killed_dcmsend.report_absent
sleep 1.5; kill $pid; wait $pid
( cd $out; for f in $(ls -1); do echo "$f"; done ) > $REC/relay_killed_dcmsend.files
norm < $D/logs/pub_killed.log > $REC/relay_killed_dcmsend.server.out
echo "== killed: $(wc -l < $REC/relay_killed_dcmsend.files) files received"

########## Q7: stalled publisher, timestamps (ts.py, CLOCK_MONOTONIC)
THREE=($C/C01_CT.dcm $C/C02_MR.dcm $C/C16_CT.dcm)
for v in nh halt; do
  NH=-nh; [ $v = halt ] && NH=
  out=$D/pub/stall_$v; rm -rf $out; mkdir -p $out
  wait_free $PUBPORT
  storescp -v +xa --sleep-during 10 -od $out $PUBPORT > >($PY $G/ts.py > $D/logs/pub_stall_$v.log) 2>&1 &
  pid=$!; PIDS+=($pid); wait_port $PUBPORT; sleep 0.5
  rm -f $D/raw/dcmsend_stalled_${v}_timed.report
  (sleep 0.5; exec dcmsend $NH -v -aet CDRECORD -aec CDPUB -to 5 -ta 5 -td 2 +crf $D/raw/dcmsend_stalled_${v}_timed.report 127.0.0.1 $PUBPORT "${THREE[@]}") 2>&1 \
    | $PY $G/ts.py > $D/raw/dcmsend_stalled_${v}_timed.raw
  echo ${PIPESTATUS[0]} > $REC/dcmsend_stalled_${v}_timed.exit
  norm < $D/raw/dcmsend_stalled_${v}_timed.raw > $REC/dcmsend_stalled_${v}_timed.out
  [ -f $D/raw/dcmsend_stalled_${v}_timed.report ] && norm < $D/raw/dcmsend_stalled_${v}_timed.report > $REC/dcmsend_stalled_${v}_timed.report
  kill $pid; wait $pid; sleep 0.3
  norm < $D/logs/pub_stall_$v.log > $REC/dcmsend_stalled_${v}_timed.server.out
  echo "== stalled $v rc=$(cat $REC/dcmsend_stalled_${v}_timed.exit)"
done
stop_all
