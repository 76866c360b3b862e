# A shell script for busybox's own sh, using its applets: sort, sed, awk, md5sum, gzip,
# gunzip, tr, uniq, wc, cut, head, tail, seq, printf, test. Run as: busybox sh busybox.sh DIR
set -e
bb=busybox
work=$1
cd "$work"
$bb seq 1 400 | $bb awk '{ printf "%05d %s %.3f\n", ($1 * 7919) % 1000, ($1 % 3 ? "odd" : "even"), $1 / 7 }' > data.txt
$bb wc -l < data.txt
$bb sort -n data.txt | $bb head -n 3
$bb sort -k2,2 -k1,1nr data.txt | $bb uniq -c -f1 | $bb head -n 4
$bb sed -e 's/odd/ODD/g' -e '/even/d' -e 's/^0*//' data.txt | $bb tail -n 3
$bb awk '{ s += $3; n++ } END { printf "sum %.6f mean %.9g n %d\n", s, s / n, n }' data.txt
$bb cut -d' ' -f2 data.txt | $bb sort | $bb uniq -c
$bb tr 'a-z' 'A-Z' < data.txt | $bb md5sum
$bb gzip -9 -c data.txt > data.gz
$bb gunzip -c data.gz | $bb md5sum
$bb md5sum data.txt | $bb cut -c1-32
$bb sha256sum data.txt | $bb cut -c1-16
x=0
for i in $($bb seq 1 50); do x=$((x + i * i)); done
echo "squares $x"
count=$(echo "a b c d" | $bb wc -w)
[ "$count" -eq 4 ] && echo "four words"
( cd /; $bb pwd )
f() { echo "function $1"; return 3; }
f called || echo "returned $?"
$bb printf '%s=%d\n' answer 42
$bb awk 'BEGIN { for (i = 1; i <= 5; i++) printf "%g %.15g ", i / 3, i * 1e15 / 7; print "" }'
echo "done" >&2
exit 7
