# mm-train --profile: the step's phases and the forward and backward by kernel; profiling does
# not change a number of the run.
set -e
F=$DATA/fashion-mnist
mm-tokenize --format idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz \
	--labels $F/labels.txt --caption-template 'a photo of a {label}' -o fm 2>/dev/null
A="--data fm-00000.mms --dim 32 --layers 2 --heads 2 --seq-len 80 --batch 4 --log-every 1 --steps 4 --threads 2"
mm-train $A --out plain 2>/dev/null
mm-train $A --out prof --profile 2>err.txt
strip() { sed 's/,"positions_per_s":[^,]*//' "$1"; }
strip plain/log.jsonl > a.txt
strip prof/log.jsonl > b.txt
cmp a.txt b.txt && echo "losses identical"
grep -o '^profile over [0-9]* steps' err.txt
sed -n 's/^  \(data\|forward\|backward\|optimizer\) .*%$/\1/p' err.txt
# every kernel the model calls, in name order, with its calls per step
sed -n '/^forward and backward by kernel/,$p' err.txt | awk 'NF == 4 && $3 ~ /%$/ {print $1, $4}' | sort
grep -c '(between kernels)' err.txt
