# mm-eval on a tiny model: the same figures on every run at a thread count (--json compared
# byte for byte), the sections and keys of the output, and the table's rows.
set -e
# Spinning OpenMP threads crawl on a busy machine; waiting threads should sleep.
export OMP_WAIT_POLICY=passive
F=$DATA/fashion-mnist
T="--format idx --labels $F/labels.txt --caption-template {label} --image-size 16 --patch 4"
mm-tokenize $T $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz -o train 2>/dev/null
mm-tokenize $T $F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz -o test 2>/dev/null
mm-train --data train-00000.mms --dim 32 --layers 1 --heads 2 --seq-len 40 --batch 8 --steps 30 \
	--warmup 5 --lr 3e-3 --ema 0.9 --threads 2 --log-every 100 --out run 2>/dev/null
E="--model run --data test-00000.mms --max-docs 40 --buckets 3 --bpd --bpd-samples 2 --classes $F/labels.txt"
mm-eval $E --json --threads 2 >a.json 2>/dev/null
mm-eval $E --json --threads 2 >b.json 2>/dev/null
cmp a.json b.json && echo "2 threads: identical"
mm-eval $E --json --threads 1 >c.json 2>/dev/null
mm-eval $E --json --threads 1 >d.json 2>/dev/null
cmp c.json d.json && echo "1 thread: identical"
# The keys, each once, in order.
grep -o '"[a-z_0-9]*":' a.json | tr -d '":' | awk '!seen[$0]++' | tr '\n' ' ' | fold -w 100; echo
grep -o '"images":[0-9]*' a.json | tr '\n' ' '; echo
# Reals printed shortest: the levels (k + 0.5) / 3 as 0.5, not 0.50000000000000000.
grep -o '"t":[^,]*' a.json | tr '\n' ' '; echo
# The table, its numbers replaced by '#'.
mm-eval $E --ema --threads 2 --json-file e.json 2>err.txt | sed -E 's/[0-9][0-9.e+-]*%?/#/g; s/ +/ /g'
sed 's/[0-9.]* s$/N s/' err.txt
# --json-file writes what --json prints (the EMA weights here).
mm-eval $E --ema --threads 2 --json 2>/dev/null | cmp - e.json && echo "--json-file: the same object"
# Guidance's interval (--cfg-interval): guidance 3 on [1, 1] (t = 1 is never evaluated) draws
# what no guidance draws; guidance 3 on the default interval draws something else.
G="--model run --data test-00000.mms --max-docs 10 --no-losses --classes $F/labels.txt --per-class 2 --steps 3 --threads 2"
mm-eval $G --cfg 1 --samples g1 --json >g1.json 2>/dev/null
mm-eval $G --cfg 3 --cfg-interval 1,1 --samples g3 --json >g3.json 2>/dev/null
mm-eval $G --cfg 3 --samples gd --json >gd.json 2>/dev/null
cat g1/*.png | cmp -s - "$(cat g3/*.png >g3.all; echo g3.all)" && echo "guidance 3 on [1, 1]: the images of guidance 1"
cat g1/*.png | cmp -s - "$(cat gd/*.png >gd.all; echo gd.all)" || echo "guidance 3 on the default interval: other images"
grep -o '"cfg_interval":\[[^]]*\]' g3.json gd.json
rc=0; mm-eval $G --cfg-interval 0.5,0.2 2>bad.txt || rc=$?
head -n 1 bad.txt; echo "exit $rc"
