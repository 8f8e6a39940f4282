# Round 2 recording environment: source it (bash). Not for CI: it expects a
# scratch dir whose path is kept in /tmp/p2cdrec2_dir (made on first use).
export TCP_NODELAY=1
REC=/work/main/tests/data/recorded
G=$REC/gen
[ -s /tmp/p2cdrec2_dir ] || mktemp -d /tmp/p2cdr2.XXXXXX > /tmp/p2cdrec2_dir
D=$(cat /tmp/p2cdrec2_dir)
mkdir -p $D/raw $D/logs
# fixed ports (checked free before use); nothing else listens there
ORTHANC_DICOM=27242; ORTHANC_HTTP=27280; QR_PORT=27342
MOVEPORT=27105; PUBPORT=27104; DOWNPORT=27106
AETS=(-aet PACS2CD -aec PACS)
TMO=(-to 5 -ta 5 -td 5)
PY=/usr/bin/python3   # stdlib only; the pyenv shim starts too slowly for ts.py
PIDS=()

norm() { sed "s#$D/#/DATA/#g; s#$D#/DATA#g"; }
port_busy() { ss -ltnH "sport = :$1" | grep -q .; }
wait_port() { for i in $(seq 200); do port_busy $1 && return 0; sleep 0.05; done; echo "port $1 never opened"; return 1; }
wait_free() { for i in $(seq 200); do port_busy $1 || return 0; sleep 0.05; done; echo "port $1 still busy"; return 1; }
# stop one process we started, by PID
stop() { [ -n "$1" ] && { kill $1 2>/dev/null; wait $1 2>/dev/null; }; true; }
stop_all() { for p in "${PIDS[@]}"; do stop $p; done; PIDS=(); }
trap stop_all EXIT

# rec NAME CMD...: run a client, 2>&1 into $D/raw/NAME.raw, record NAME.out/.exit
rec() {
  local name=$1; shift
  local t0=$(date +%s.%N)
  "$@" > $D/raw/$name.raw 2>&1
  local rc=$?
  local t1=$(date +%s.%N)
  norm < $D/raw/$name.raw > $REC/$name.out
  echo $rc > $REC/$name.exit
  printf '%s\n' "$*" | norm > $D/raw/$name.cmd
  printf 'elapsed %.3f s\n' $(echo "$t1 - $t0" | bc) >> $D/raw/$name.cmd
  echo "== $name rc=$rc $(tail -1 $D/raw/$name.cmd)"
  return 0
}

# storescp server in background: start_scp LOGNAME PORT ARGS...  -> $SCP_PID
start_scp() {
  local log=$1 port=$2; shift 2
  wait_free $port || return 1
  storescp "$@" $port > $D/logs/$log.log 2>&1 &
  SCP_PID=$!; PIDS+=($SCP_PID)
  wait_port $port
}

start_orthanc() {
  mkdir -p $D/orthanc/db
  sed "s#@DB@#$D/orthanc/db#g; s#@HTTP@#$ORTHANC_HTTP#; s#@DICOM@#$ORTHANC_DICOM#; s#@MOVEPORT@#$MOVEPORT#; s#@PUBPORT@#$PUBPORT#" \
    $G/r2_orthanc.json.in > $D/orthanc/orthanc.json
  Orthanc $D/orthanc/orthanc.json > $D/logs/orthanc.log 2>&1 &
  ORTHANC_PID=$!; PIDS+=($ORTHANC_PID)
  wait_port $ORTHANC_DICOM
}

start_qr() {   # start_qr [extra dcmqrscp args]
  mkdir -p $D/qr/PACS   # (no -s below: 3.6.7 single-process mode segfaults after the first association)
  sed "s#@PORT@#$QR_PORT#; s#@MOVEPORT@#$MOVEPORT#; s#@STORAGE@#$D/qr/PACS#" \
    /work/main/tests/data/dcmqrscp/dcmqrscp.cfg > $D/qr/dcmqrscp.cfg
  wait_free $QR_PORT || return 1
  dcmqrscp -v -c $D/qr/dcmqrscp.cfg "$@" > $D/logs/dcmqrscp.log 2>&1 &
  QR_PID=$!; PIDS+=($QR_PID)
  wait_port $QR_PORT
}
