# mm-eval's retrieval on a small trained model: caption retrieval ranks each image's caption as
# classification does (the same scores and the same noise, so its top-1 is the accuracy by
# likelihood), while scoring fewer captions whole than the list holds; text-to-image retrieval
# gives the same figures on every run, and its comparison grid is a PNG of the right size.
set -e
export OMP_WAIT_POLICY=passive
F=$DATA/fashion-mnist
T="--format idx --labels $F/labels.txt --caption-template {label} --image-size 16 --patch 4"
mm-tokenize $T $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz -o train 2>/dev/null
mm-tokenize $T $F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz -o test 2>/dev/null
mm-train --data train-00000.mms --dim 32 --layers 1 --heads 2 --seq-len 40 --batch 16 --steps 800 \
	--warmup 10 --lr 3e-3 --image-first 0.5 --threads 2 --log-every 1000 --out run 2>/dev/null
mm-eval --model run --data test-00000.mms --max-docs 200 --no-losses --classes $F/labels.txt \
	--captions $F/labels.txt --threads 2 >table.txt 2>/dev/null
cls=$(sed -n 's/^ *by caption likelihood *\([0-9.]*%\)$/\1/p' table.txt)
top1=$(sed -n 's/^ *top-1 *\([0-9.]*%\)$/\1/p' table.txt)
if [ -n "$cls" ] && [ "$cls" = "$top1" ]; then echo "caption retrieval top-1 = accuracy by likelihood"
else echo "classification by likelihood $cls, caption retrieval top-1 $top1"; fi
awk '/captions scored whole per image/ { print ($NF < 10 ? "fewer than the 10 captions scored whole" : "all scored: " $NF) }' table.txt
sed -n 's/^\(Caption retrieval\) (weights; \([0-9]*\) images ranked among the \([0-9]*\) captions.*/\1: \2 images, \3 captions/p' table.txt
# --pmi: the plain ranking unchanged beside the ranking by PMI, more captions scored whole.
mm-eval --model run --data test-00000.mms --max-docs 200 --no-losses --captions $F/labels.txt --pmi \
	--threads 2 >pmi.txt 2>/dev/null
grep -E '^ +(top-[15]|median rank) +[0-9]' table.txt >plain.a
grep -E '^ +(top-[15]|median rank) +[0-9]' pmi.txt >plain.b
cmp -s plain.a plain.b && echo "--pmi: the plain ranking unchanged"
grep -E '^ +(top-[15]|median rank) by PMI +[0-9.]+%?$' pmi.txt | sed -E 's/ +[0-9.]+%?$//; s/^ +//'
a=$(awk '/captions scored whole per image/ {print $NF}' table.txt)
b=$(awk '/captions scored whole per image/ {print $NF}' pmi.txt)
awk -v a="$a" -v b="$b" 'BEGIN { print (b >= a ? "--pmi scores at least as many captions whole" : "--pmi scores fewer whole: " b " < " a) }'
mm-eval --model run --data test-00000.mms --max-docs 20 --no-losses --captions $F/labels.txt --pmi --json \
	--threads 2 2>/dev/null | grep -o '"[a-z0-9_]*_pmi":' | tr '\n' ' '; echo
rc=0; mm-eval --model run --data test-00000.mms --pmi 2>err.txt || rc=$?
head -n 1 err.txt; echo "exit $rc"
for a in "--read-draws 2" "--read-draws 2 --classes $F/labels.txt --captions $F/labels.txt"; do
	rc=0; mm-eval --model run --data test-00000.mms $a 2>err.txt || rc=$?
	head -n 1 err.txt; echo "exit $rc"
done
E="--model run --data test-00000.mms --max-docs 20 --no-losses --t2i $F/labels.txt --reference train-00000.mms --steps 4"
mm-eval $E --threads 2 --json --compare cmp.png >a.json 2>/dev/null
mm-eval $E --threads 2 --json >b.json 2>/dev/null
cmp a.json b.json && echo "text-to-image retrieval: identical runs"
grep -o '"t2i_retrieval":{[^}]*}' a.json | sed -E 's/"(top1|top5)":[0-9.e-]+/"\1":#/g; s/"captions":"[^"]*"/"captions":F/'
# 10 rows of 16x16 images twice enlarged, 2 pixels apart: 10 * 34 + 2 pixels high
od -An -tu1 -j 20 -N 4 cmp.png | awk '{ print "compare grid height " ($1 * 16777216 + $2 * 65536 + $3 * 256 + $4) }'
