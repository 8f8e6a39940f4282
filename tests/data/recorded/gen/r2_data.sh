#!/bin/bash
# Round 2: make the PACS content ($D/pacs) and the sender corpus ($D/corpus).
. /work/main/tests/data/recorded/gen/r2_env.sh
set -e
mkdir -p $D/px $D/pacs $D/corpus $D/tmpdump $D/big
cd $D/px
python3 - <<'PY'
import struct
def w(name, rows, cols, bits):
    with open(name, "wb") as f:
        for r in range(rows):
            for c in range(cols):
                v = (r * 37 + c * 11 + (r * c) % 13)
                f.write(struct.pack("<H", v % 4096) if bits == 16 else bytes([v % 256]))
w("p16_8.raw", 8, 8, 16)       # 128 bytes, as round 1
w("p16_64.raw", 64, 64, 16)    # 8 KiB
w("p8_64.raw", 64, 64, 8)      # 4 KiB, for lossy JPEG baseline
w("p16_2k.raw", 2048, 2048, 16)  # 8 MiB, for watching a slow write
PY
# mk TEMPLATE OUT key=value...   (keys: the @NAMES@ in the template)
mk() {
  local tmpl=$1 out=$2; shift 2
  local s="s#@DATE@#20240115#; s#@TIME@#101500#; s#@PN@#DOE^JOHN#; s#@PID@#PID001#; s#@ROWS@#8#; s#@COLS@#8#; s#@BA@#16#; s#@BS@#12#; s#@HB@#11#; s#@PXVR@#OW#; s#@PIXELS@#$D/px/p16_8.raw#"
  local kv
  for kv in "$@"; do s="s#@${kv%%=*}@#${kv#*=}#g; $s"; done
  sed "$s" $G/$tmpl > $D/tmpdump/$(basename $out).dump
  dump2dcm +te $D/tmpdump/$(basename $out).dump $out
}
U=2.25.2000000000000000000000000000
CT=1.2.840.10008.5.1.4.1.1.2; MR=1.2.840.10008.5.1.4.1.1.4
# --- PACS content: same UIDs as round 1 (ACC001 CT 3 files / 2 series, ACC002 MR 2 files)
for i in 1 2 3; do ser=11; [ $i = 3 ] && ser=12; sn=1; [ $i = 3 ] && sn=2
  mk r2_image.dump.in $D/pacs/ACC001_$i.dcm SOPCLASS=$CT SOPINST=${U}0110$i STUDY=${U}00001 SERIES=${U}000$ser ACC=ACC001 MOD=CT STUDYID=S001 SERNO=$sn INSTNO=$i
done
for i in 1 2; do
  mk r2_image.dump.in $D/pacs/ACC002_$i.dcm SOPCLASS=$MR SOPINST=${U}0120$i STUDY=${U}00002 SERIES=${U}00021 ACC=ACC002 MOD=MR DATE=20240220 TIME=143000 STUDYID=S002 SERNO=1 INSTNO=$i
done
# --- sender corpus: UIDs 2.25.3000000000000000000000000000NNN, one study
V=2.25.3000000000000000000000000000
C=$D/corpus; B=$D/tmpdump
img() { # img OUT SOPCLASS MOD INST [more key=value]
  local out=$1 cls=$2 mod=$3 n=$4; shift 4
  mk r2_image.dump.in $out SOPCLASS=$cls SOPINST=${V}1$n STUDY=${V}00001 SERIES=${V}000$n ACC=ACC900 MOD=$mod STUDYID=S900 SERNO=$n INSTNO=1 ROWS=64 COLS=64 PIXELS=$D/px/p16_64.raw "$@"
}
img $C/C01_CT.dcm $CT CT 01
img $C/C02_MR.dcm $MR MR 02
img $B/c03.dcm $MR MR 03;  dcmcjpeg +e1 $B/c03.dcm $C/C03_MR_jpeg_lossless.dcm
img $B/c04.dcm 1.2.840.10008.5.1.4.1.1.7 OT 04 BA=8 BS=8 HB=7 PXVR=OB PIXELS=$D/px/p8_64.raw
dcmcjpeg +eb $B/c04.dcm $C/C04_SC8_jpeg_baseline.dcm
img $B/c05.dcm $CT CT 05;  dcmcjpls +el $B/c05.dcm $C/C05_CT_jpegls_lossless.dcm
img $B/c06.dcm $CT CT 06;  dcmcjpls +en $B/c06.dcm $C/C06_CT_jpegls_near.dcm
# JPEG 2000: no DCMTK 3.6.7 tool encodes it. C07 is a JPEG-lossless file whose
# meta header TS UID was relabelled 1.2.840.10008.1.2.4.70 -> ...4.91 (same
# length): the network layer sees "JPEG 2000", the codestream is not J2K.
img $B/c07.dcm $MR MR 07;  dcmcjpeg +e1 $B/c07.dcm $B/c07j.dcm
python3 -c "
import sys; b=open('$B/c07j.dcm','rb').read()
assert b.count(b'1.2.840.10008.1.2.4.70')==1
open('$C/C07_MR_j2k_label.dcm','wb').write(b.replace(b'1.2.840.10008.1.2.4.70', b'1.2.840.10008.1.2.4.91'))"
img $B/c08.dcm $MR MR 08;  dcmcrle $B/c08.dcm $C/C08_MR_rle.dcm
img $B/c09.dcm $CT CT 09;  dcmconv +td $B/c09.dcm $C/C09_CT_deflated.dcm
img $B/c10.dcm $CT CT 10;  dcmconv +tb $B/c10.dcm $C/C10_CT_big_endian.dcm
img $B/c11.dcm $CT CT 11;  head -c 4000 $B/c11.dcm > $C/C11_CT_truncated.dcm
img $C/C12_SEG.dcm 1.2.840.10008.5.1.4.1.1.66.4 SEG 12 BA=8 BS=8 HB=7 PXVR=OB PIXELS=$D/px/p8_64.raw
printf '%%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%%%EOF\n' > $B/doc.pdf
pdf2dcm --title 'TEST REPORT' --study-from $C/C01_CT.dcm $B/doc.pdf $B/c13.dcm
cp $B/c13.dcm $C/C13_PDF.dcm
mk r2_nonimage.dump.in $C/C14_ECG.dcm SOPCLASS=1.2.840.10008.5.1.4.1.1.9.1.1 SOPINST=${V}114 STUDY=${V}00001 SERIES=${V}00014 ACC=ACC900 MOD=ECG STUDYID=S900 SERNO=14 INSTNO=1
mk r2_nonimage.dump.in $C/C15_PRIVATE_CLASS.dcm SOPCLASS=2.25.424242424242 SOPINST=${V}115 STUDY=${V}00001 SERIES=${V}00015 ACC=ACC900 MOD=OT STUDYID=S900 SERNO=15 INSTNO=1
img $C/C16_CT.dcm $CT CT 16
# one big CT (8 MiB pixel data) for watching storescp write a file
mk r2_image.dump.in $D/big/BIG_CT.dcm SOPCLASS=$CT SOPINST=${V}199 STUDY=${V}00099 SERIES=${V}00099 ACC=ACC999 MOD=CT STUDYID=S999 SERNO=1 INSTNO=1 ROWS=2048 COLS=2048 PIXELS=$D/px/p16_2k.raw
cd $C; for f in C*.dcm; do printf '%-32s %8d  ' $f $(stat -c %s $f); dcmdump -M +P 0002,0010 +P 0008,0016 $f 2>&1 | tr '\n' ' '; echo; done
