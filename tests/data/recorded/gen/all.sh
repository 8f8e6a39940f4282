#!/bin/bash
D=$(cat /tmp/p2cdrec_dir); cd $D
rm -f /work/main/tests/data/recorded/*.out /work/main/tests/data/recorded/*.exit /work/main/tests/data/recorded/*.report
F="$D/data/CT1.dcm $D/data/CT2.dcm $D/data/MR1.dcm $D/data/MR2.dcm $D/data/SC1.dcm"
for C in dcmsend storescu; do
./run.sh ${C}_ok "+xa" 5 $C $F
PORT=21105 ./run.sh ${C}_unreachable closed 5 $C $F
./run.sh ${C}_rejected "--refuse" 5 $C $F
./run.sh ${C}_partial "-xf $D/ctonly.cfg CTOnly" 5 $C $F
./run.sh ${C}_jpeg_to_uncompressed "" 5 $C $D/data/MRJ1.dcm
./run.sh ${C}_stalled "--sleep-during 10" 2 $C $F
NOH= ./run.sh ${C}_stalled_halt "--sleep-during 10" 2 $C $F
./run.sh ${C}_nondicom "+xa" 5 $C $D/data/CT1.dcm $D/data/CT2.dcm $D/data/README.TXT $D/data/MR1.dcm
PRE_HOOK='rm -rf $OUT' ./run.sh ${C}_refused "+xa" 5 $C $D/data/CT1.dcm $D/data/MR1.dcm
./run.sh ${C}_sopclass_mismatch "+xa" 5 $C $D/data/CT1.dcm $D/mismatch/BAD1.dcm
./run.sh ${C}_dicomdir "+xa" 5 $C $D/dd/DICOMDIR $D/dd/CT1 $D/dd/MR1
done
./run.sh echoscu_ok "" 5 echoscu
PORT=21105 ./run.sh echoscu_unreachable closed 5 echoscu
./run.sh echoscu_rejected "--refuse" 5 echoscu
