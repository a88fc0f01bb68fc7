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
