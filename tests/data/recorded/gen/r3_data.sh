#!/bin/bash
# Round 3: test data in /tmp/p2cdr3: the round-2 PACS studies (ACC001 CT 3
# files / 2 series, ACC002 MR 2 files), ACC005 (a CT and a Parametric Map,
# a storage class getscu 3.6.7 does not propose), odd files for dcmmkdir,
# a Latin-1 study for the fake PACS, and query files made as pacs2cd makes
# them (RetrieveKeys::write_query / findscu::write_queries hold only the
# matching keys).
. "$(dirname "$0")/r3_env.sh"
set -e
rm -rf $D/px $D/pacs $D/acc005 $D/acc006 $D/odd $D/latin1 $D/q $D/tmpdump
mkdir -p $D/px $D/pacs $D/acc005 $D/odd $D/latin1 $D/q $D/tmpdump
python3 -c "
import struct
with open('$D/px/p16_8.raw', 'wb') as f:
    for r in range(8):
        for c in range(8):
            f.write(struct.pack('<H', (r * 37 + c * 11 + (r * c) % 13) % 4096))"
mk() {  # mk TEMPLATE OUT key=value...   (keys: the @NAMES@ in the template)
  local tmpl=$1 out=$2; shift 2
  local s="s#@DATE@#20240115#; s#@TIME@#101500#; s#@PN@#DOE^JOHN#; s#@PID@#PID001#; s#@ROWS@#8#; s#@COLS@#8#; s#@BA@#16#; s#@BS@#12#; s#@HB@#11#; s#@PXVR@#OW#; s#@PIXELS@#$D/px/p16_8.raw#"
  local kv
  for kv in "$@"; do s="s#@${kv%%=*}@#${kv#*=}#g; $s"; done
  sed "$s" $G/$tmpl > $D/tmpdump/$(basename $out).dump
  dump2dcm +te $D/tmpdump/$(basename $out).dump $out
}
U=2.25.2000000000000000000000000000
CT=1.2.840.10008.5.1.4.1.1.2; MR=1.2.840.10008.5.1.4.1.1.4; PM=1.2.840.10008.5.1.4.1.1.30
for i in 1 2 3; do ser=11; [ $i = 3 ] && ser=12; sn=1; [ $i = 3 ] && sn=2
  mk r2_image.dump.in $D/pacs/ACC001_$i.dcm SOPCLASS=$CT SOPINST=${U}0110$i STUDY=${U}00001 SERIES=${U}000$ser ACC=ACC001 MOD=CT STUDYID=S001 SERNO=$sn INSTNO=$i
done
for i in 1 2; do
  mk r2_image.dump.in $D/pacs/ACC002_$i.dcm SOPCLASS=$MR SOPINST=${U}0120$i STUDY=${U}00002 SERIES=${U}00021 ACC=ACC002 MOD=MR DATE=20240220 TIME=143000 STUDYID=S002 SERNO=1 INSTNO=$i
done
# ACC005: one CT, one Parametric Map (a real storage SOP class, not in
# getscu 3.6.7's fixed proposal list)
mk r2_image.dump.in $D/acc005/ACC005_1.dcm SOPCLASS=$CT SOPINST=${U}01501 STUDY=${U}00005 SERIES=${U}00051 ACC=ACC005 MOD=CT DATE=20240501 TIME=080000 STUDYID=S005 SERNO=1 INSTNO=1
mk r2_nonimage.dump.in $D/acc005/ACC005_2.dcm SOPCLASS=$PM SOPINST=${U}01502 STUDY=${U}00005 SERIES=${U}00052 ACC=ACC005 MOD=OT DATE=20240501 TIME=080000 STUDYID=S005 SERNO=2 INSTNO=1
# ACC006: two CT and one MR in one study (for a legacy-loop C-MOVE that
# delivers the CTs and then fails on the MR at a CT-only receiver)
mkdir -p $D/acc006
for i in 1 2; do
  mk r2_image.dump.in $D/acc006/ACC006_$i.dcm SOPCLASS=$CT SOPINST=${U}0160$i STUDY=${U}00006 SERIES=${U}00061 ACC=ACC006 MOD=CT DATE=20240601 TIME=090000 STUDYID=S006 SERNO=1 INSTNO=$i
done
mk r2_image.dump.in $D/acc006/ACC006_3.dcm SOPCLASS=$MR SOPINST=${U}01603 STUDY=${U}00006 SERIES=${U}00062 ACC=ACC006 MOD=MR DATE=20240601 TIME=090000 STUDYID=S006 SERNO=2 INSTNO=1
# odd files for dcmmkdir: a private SOP class, and a Basic Text SR with
# only the attributes of r2_nonimage (no ContentDate, CompletionFlag,
# VerificationFlag, ConceptNameCodeSequence, ...)
mk r2_nonimage.dump.in $D/odd/PRIVATE.dcm SOPCLASS=2.25.424242424242 SOPINST=${U}01601 STUDY=${U}00001 SERIES=${U}00016 ACC=ACC001 MOD=OT STUDYID=S001 SERNO=16 INSTNO=1
mk r2_nonimage.dump.in $D/odd/SR.dcm SOPCLASS=1.2.840.10008.5.1.4.1.1.88.11 SOPINST=${U}01701 STUDY=${U}00001 SERIES=${U}00017 ACC=ACC001 MOD=SR STUDYID=S001 SERNO=17 INSTNO=1
# Latin-1 study for the fake PACS (behaviour latin1 drops SpecificCharacterSet
# and sends the names as ISO-8859-1 bytes): a CT and an SR image-less file,
# the name with a CR/LF and a '<' in it (pydicom writes what it is given)
$PY - <<PY
from pydicom import dcmread
for src, dst, mod in (("$D/pacs/ACC001_1.dcm", "ACC007_1.dcm", "CT"), ("$D/pacs/ACC001_2.dcm", "ACC007_2.dcm", "SR")):
    ds = dcmread(src)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "MÜLLER\r\n^J<"
    ds.PatientID = "PID007"
    ds.AccessionNumber = "ACC007"
    ds.StudyInstanceUID = "${U}00007"
    ds.SeriesInstanceUID = "${U}0007" + ("1" if mod == "CT" else "2")
    ds.SOPInstanceUID = "${U}0170" + dst[7]
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = mod
    ds.save_as("$D/latin1/" + dst, enforce_file_format=True)
PY
# query files (matching keys only, as pacs2cd writes them)
qf() { local out=$1; shift; { echo '(0008,0052) CS [STUDY]'; printf '%s\n' "$@"; } > $D/tmpdump/$(basename $out).dump; dump2dcm $D/tmpdump/$(basename $out).dump $out; }
qf $D/q/acc001.dcm "(0020,000d) UI [${U}00001]"
qf $D/q/acc001_acc002.dcm "(0020,000d) UI [${U}00001\\${U}00002]"
qf $D/q/acc005.dcm "(0020,000d) UI [${U}00005]"
qf $D/q/legacy_acc001_mr.dcm "(0008,0050) SH [ACC001]" "(0008,0061) CS [MR]"
qf $D/q/legacy_acc001_ct.dcm "(0008,0050) SH [ACC001]" "(0008,0061) CS [CT]"
qf $D/q/legacy_acc006_ct.dcm "(0008,0050) SH [ACC006]" "(0008,0061) CS [CT]"
echo "data made in $D"; ls -R $D/pacs $D/acc005 $D/acc006 $D/odd $D/latin1 $D/q
