# Round 3 recording environment: source it (bash). Not for CI. Paths are
# taken from this file's folder; the scratch dir is /tmp/p2cdr3 (made on
# first use; its path is replaced by /DATA in every recorded file).
export TCP_NODELAY=1
G=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REC=$(dirname "$G")
ROOT=$(cd "$REC/../../.." && pwd)
D=/tmp/p2cdr3
mkdir -p $D/raw $D/logs
PY=/work/main/target/pyenv/bin/python   # pynetdicom 3.0.4, pydicom 3.0.2
# fixed ports (checked free before use); nothing else listens there
ORTHANC_DICOM=28242; ORTHANC_HTTP=28280; QR_PORT=28342; FAKE_PORT=28442
MOVEPORT=28105; DOWNPORT=28106
TMO=(-to 5 -ta 5 -td 5)
PIDS=()

norm() { sed "s#$D/#/DATA/#g; s#$D#/DATA#g"; }
port_busy() { ss -ltnH "sport = :$1" | grep -q .; }
wait_port() { for i in $(seq 200); do port_busy $1 && return 0; sleep 0.05; done; echo "port $1 never opened"; return 1; }
wait_free() { for i in $(seq 200); do port_busy $1 || return 0; sleep 0.05; done; echo "port $1 still busy"; return 1; }
# stop one process we started, by PID
stop() { [ -n "$1" ] && { kill $1 2>/dev/null; wait $1 2>/dev/null; }; true; }
stop_all() { for p in "${PIDS[@]}"; do stop $p; done; PIDS=(); }
trap stop_all EXIT

# rec NAME CMD...: run a client, stdout+stderr into NAME.out (normalised), exit code into NAME.exit
rec() {
  local name=$1; shift
  "$@" > $D/raw/$name.raw 2>&1
  local rc=$?
  norm < $D/raw/$name.raw > $REC/$name.out
  echo $rc > $REC/$name.exit
  printf '%s\n' "$*" | norm > $D/raw/$name.cmd
  echo "== $name rc=$rc"
  return 0
}

# storescp as the C-MOVE receiver on MOVEPORT: recv_start NAME [ARGS] -> RECV_PID
recv_start() {
  local n=$1; shift
  rm -rf $D/recv/$n; mkdir -p $D/recv/$n
  wait_free $MOVEPORT || return 1
  storescp -v -aet PACS2CD +xa -pm +uf "$@" -od $D/recv/$n $MOVEPORT > $D/logs/recv_$n.log 2>&1 &
  RECV_PID=$!; PIDS+=($RECV_PID)
  wait_port $MOVEPORT
}
recv_stop() { stop $RECV_PID; echo "   recv $1: $(ls $D/recv/$1 | wc -l) files"; }

start_orthanc() {
  rm -rf $D/orthanc; mkdir -p $D/orthanc/db
  sed "s#@DB@#$D/orthanc/db#g; s#@HTTP@#$ORTHANC_HTTP#; s#@DICOM@#$ORTHANC_DICOM#; s#@MOVEPORT@#$MOVEPORT#; s#@PUBPORT@#$DOWNPORT#" \
    $G/r2_orthanc.json.in > $D/orthanc/orthanc.json
  wait_free $ORTHANC_DICOM || return 1
  Orthanc $D/orthanc/orthanc.json > $D/logs/orthanc.log 2>&1 &
  ORTHANC_PID=$!; PIDS+=($ORTHANC_PID)
  wait_port $ORTHANC_DICOM
}

start_qr() {   # dcmqrscp in fork mode (no -s: it segfaults after the first association)
  rm -rf $D/qr; mkdir -p $D/qr/PACS
  sed "s#@PORT@#$QR_PORT#; s#@MOVEPORT@#$MOVEPORT#; s#@STORAGE@#$D/qr/PACS#" \
    $ROOT/tests/data/dcmqrscp/dcmqrscp.cfg > $D/qr/dcmqrscp.cfg
  wait_free $QR_PORT || return 1
  dcmqrscp -v -c $D/qr/dcmqrscp.cfg > $D/logs/dcmqrscp.log 2>&1 &
  QR_PID=$!; PIDS+=($QR_PID)
  wait_port $QR_PORT
}

# fake PACS: start_fake BEHAVIOUR DIR [more args] -> FAKE_PID
start_fake() {
  local b=$1 dir=$2; shift 2
  wait_free $FAKE_PORT || return 1
  $PY $ROOT/tests/support/fake_pacs.py --port $FAKE_PORT --ae PACS --dir $dir --behaviour $b \
    --peer PACS2CD=127.0.0.1:$MOVEPORT "$@" >> $D/logs/fake.log 2>&1 &
  FAKE_PID=$!; PIDS+=($FAKE_PID)
  wait_port $FAKE_PORT
}
stop_fake() { stop $FAKE_PID; }
