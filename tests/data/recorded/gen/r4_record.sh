#!/bin/bash
# Round 4: outputs the parsers' tests still lacked, made with the real
# tools on loopback: storescp's own failures (its port held by another
# program; an output folder that vanished, so a file cannot be written)
# with the receiver's arguments (storescp::inetd_args, console instead of
# --inetd), and Orthanc's C-MOVE finals with remaining or failed
# sub-operations (C-CANCEL after the first pending response; nothing
# listening on the move port). Self-contained (dump2dcm only); the scratch
# dir /tmp/p2cdr4 is replaced by /DATA in every recorded file and removed
# at the end. For reference, not for CI.
export TCP_NODELAY=1
G=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REC=$(dirname "$G")
D=/tmp/p2cdr4
ORTHANC_DICOM=29242; ORTHANC_HTTP=29280; MOVEPORT=29105; DOWNPORT=29106; HELD=29107
TMO=(-to 5 -ta 5 -td 5)
PIDS=()
norm() { sed "s#$D/#/DATA/#g; s#$D#/DATA#g"; }
port_busy() { ss -ltnH "sport = :$1" | grep -q .; }
wait_port() { for i in $(seq 200); do port_busy $1 && return 0; sleep 0.05; done; echo "port $1 never opened"; return 1; }
stop() { [ -n "$1" ] && { kill $1 2>/dev/null; wait $1 2>/dev/null; }; true; }
stop_all() { for p in "${PIDS[@]}"; do stop $p; done; PIDS=(); rm -rf $D; }
trap stop_all EXIT
rec() {  # rec NAME CMD...: stdout+stderr -> NAME.out (normalised), exit code -> NAME.exit
  local name=$1; shift
  "$@" > $D/raw/$name.raw 2>&1
  local rc=$?
  norm < $D/raw/$name.raw > $REC/$name.out
  echo $rc > $REC/$name.exit
  echo "== $name rc=$rc"
}
files() { ( cd $1 && for f in $(ls -1); do echo "$(stat -c %s $f) $f $(dcmdump -q +P 0008,0018 $f | sed 's/.*\[\(.*\)\].*/\1/')"; done ) > $REC/$2.files; }
# storescp with the receiver's options (storescp::inetd_args), on a port
RECV=(-aet PACS2CD +xa -pm +uf -dhl -pdu 131072 -ta 5 -td 5 -ts 5)
for p in $ORTHANC_DICOM $ORTHANC_HTTP $MOVEPORT $DOWNPORT $HELD; do port_busy $p && { echo "port $p busy"; exit 9; }; done
rm -rf $D; mkdir -p $D/raw $D/px $D/pacs $D/q $D/recv $D/tmpdump

########## data: ACC001 (3 CT) as in rounds 2 and 3, and its query file
python3 -c "
import struct
with open('$D/px/p16_8.raw', 'wb') as f:
    for r in range(8):
        for c in range(8):
            f.write(struct.pack('<H', (r * 37 + c * 11 + (r * c) % 13) % 4096))"
U=2.25.2000000000000000000000000000
for i in 1 2 3; do ser=11; [ $i = 3 ] && ser=12; sn=1; [ $i = 3 ] && sn=2
  sed "s#@SOPCLASS@#1.2.840.10008.5.1.4.1.1.2#g; s#@SOPINST@#${U}0110$i#g; s#@STUDY@#${U}00001#; s#@SERIES@#${U}000$ser#;
       s#@ACC@#ACC001#; s#@MOD@#CT#; s#@STUDYID@#S001#; s#@SERNO@#$sn#; s#@INSTNO@#$i#; s#@DATE@#20240115#; s#@TIME@#101500#;
       s#@PN@#DOE^JOHN#; s#@PID@#PID001#; s#@ROWS@#8#; s#@COLS@#8#; s#@BA@#16#; s#@BS@#12#; s#@HB@#11#; s#@PXVR@#OW#;
       s#@PIXELS@#$D/px/p16_8.raw#" $G/r2_image.dump.in > $D/tmpdump/ACC001_$i.dump
  dump2dcm +te $D/tmpdump/ACC001_$i.dump $D/pacs/ACC001_$i.dcm || exit 1
done
printf '%s\n' '(0008,0052) CS [STUDY]' "(0020,000d) UI [${U}00001]" > $D/tmpdump/acc001.dump
dump2dcm $D/tmpdump/acc001.dump $D/q/acc001.dcm || exit 1

########## storescp: its port held by another program
python3 -c "
import socket, time
s = socket.socket(); s.bind(('127.0.0.1', $HELD)); s.listen(1); time.sleep(30)" &
HOLDER=$!; PIDS+=($HOLDER); wait_port $HELD
mkdir -p $D/recv/port_in_use
rec storescp_port_in_use storescp -v "${RECV[@]}" -od $D/recv/port_in_use $HELD
stop $HOLDER

########## storescp: the output folder removed after start-up; one CT sent
mkdir -p $D/recv/gone
storescp -v "${RECV[@]}" -od $D/recv/gone $MOVEPORT > $D/raw/storescp_cannot_write.raw 2>&1 &
S=$!; PIDS+=($S); wait_port $MOVEPORT
rmdir $D/recv/gone
storescu -v -aet ORTHANC -aec PACS2CD "${TMO[@]}" 127.0.0.1 $MOVEPORT $D/pacs/ACC001_1.dcm > $D/raw/storescu_to_gone.raw 2>&1
echo "   storescu rc=$?"
sleep 0.3; stop $S
norm < $D/raw/storescp_cannot_write.raw > $REC/storescp_cannot_write.out

########## Orthanc: C-MOVE finals (pacs2cd's movescu::args)
mkdir -p $D/orthanc/db
sed "s#@DB@#$D/orthanc/db#g; s#@HTTP@#$ORTHANC_HTTP#; s#@DICOM@#$ORTHANC_DICOM#; s#@MOVEPORT@#$MOVEPORT#; s#@PUBPORT@#$DOWNPORT#" \
  $G/r2_orthanc.json.in > $D/orthanc/orthanc.json
Orthanc $D/orthanc/orthanc.json > $D/raw/orthanc.log 2>&1 &
O=$!; PIDS+=($O); wait_port $ORTHANC_DICOM || exit 1
storescu -aet LOADER -aec PACS 127.0.0.1 $ORTHANC_DICOM $D/pacs/*.dcm || exit 1
# a C-CANCEL after the first pending response (movescu --cancel 1)
mkdir -p $D/recv/cancel
storescp -v "${RECV[@]}" -od $D/recv/cancel $MOVEPORT > $D/raw/recv_cancel.log 2>&1 &
S=$!; PIDS+=($S); wait_port $MOVEPORT
rec orthanc_movescu_cancel_debug movescu -S -d --cancel 1 -aem PACS2CD -aet PACS2CD -aec PACS "${TMO[@]}" 127.0.0.1 $ORTHANC_DICOM $D/q/acc001.dcm
sleep 0.3; stop $S; files $D/recv/cancel orthanc_movescu_cancel_debug
# nothing listening on the move port
rec orthanc_movescu_dest_down_debug movescu -S -d -aem PACS2CD -aet PACS2CD -aec PACS "${TMO[@]}" 127.0.0.1 $ORTHANC_DICOM $D/q/acc001.dcm
norm < $D/raw/orthanc.log > $D/raw/orthanc.norm.log
grep -i "cancel\|store\|error\|fail" $D/raw/orthanc.norm.log | tail -20
stop $O
echo "round 4 recorded"
