#!/bin/bash
# usage: run.sh NAME SERVER_ARGS|none|closed TD CLIENT FILES...
# CLIENT: dcmsend|storescu|echoscu
D=$(cat /tmp/p2cdrec_dir)
REC=/work/main/tests/data/recorded
NAME=$1; SRV=$2; TD=$3; CLIENT=$4; shift 4
export TCP_NODELAY=1
freeport() { while :; do p=$((20000 + RANDOM % 12000)); ss -ltnH "sport = :$p" | grep -q . || { echo $p; return; }; done; }
PORT=${PORT:-21104}; ss -ltnH "sport = :$PORT" | grep -q . && { echo "port $PORT busy"; exit 9; }
SPID=
if [ "$SRV" != closed ]; then
  OUT=$D/srv_$NAME; rm -rf $OUT; mkdir -p $OUT
  storescp -v $SRV -od $OUT $PORT > $D/srv_$NAME.log 2>&1 &
  SPID=$!
  for i in $(seq 50); do ss -ltnH "sport = :$PORT" | grep -q . && break; sleep 0.1; done
  [ -n "$PRE_HOOK" ] && eval "$PRE_HOOK"
fi
case $CLIENT in
  dcmsend)  CMD=(dcmsend ${NOH--nh} -v -aet CDRECORD -aec ANY-SCP -to 5 -ta 5 -td $TD +crf $D/$NAME.report 127.0.0.1 $PORT "$@");;
  storescu) CMD=(storescu ${NOH--nh} -v -aet CDRECORD -aec ANY-SCP -to 5 -ta 5 -td $TD 127.0.0.1 $PORT "$@");;
  echoscu)  CMD=(echoscu -v -aet CDRECORD -aec ANY-SCP -to 5 -ta 5 -td $TD 127.0.0.1 $PORT);;
esac
rm -f $D/$NAME.report
START=$(date +%s.%N)
"${CMD[@]}" > $D/$NAME.raw 2>&1
RC=$?
END=$(date +%s.%N)
[ -n "$SPID" ] && { kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; }
S="s#$D/data#/DATA#g; s#$D/dd#/DATA#g; s#$D/mismatch#/DATA#g; s#$D#/DATA#g"
sed "$S" $D/$NAME.raw > $REC/$NAME.out
echo $RC > $REC/$NAME.exit
[ -f $D/$NAME.report ] && sed "$S" $D/$NAME.report > $REC/$NAME.report
printf '%s\n' "${CMD[*]}" | sed "$S; s#127.0.0.1 $PORT#127.0.0.1 PORT#" > $D/$NAME.cmd
echo "server: storescp -v $SRV -od OUT PORT" | sed "$S" >> $D/$NAME.cmd
printf 'elapsed %.2f s\n' $(echo "$END - $START" | bc) >> $D/$NAME.cmd
echo "== $NAME rc=$RC port=$PORT"; cat $D/$NAME.cmd
