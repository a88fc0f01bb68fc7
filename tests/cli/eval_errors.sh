# mm-eval's refusals: usage errors exit 2, the others 1, each with one message.
export OMP_WAIT_POLICY=passive
F=$DATA/fashion-mnist
T="--format idx --labels $F/labels.txt --image-size 16 --patch 4"
mm-tokenize $T $F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz -o fm 2>/dev/null
mm-tokenize $T --image-size 8 $F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz -o small 2>/dev/null
mm-tokenize $T --train-tokenizer tok.bin --vocab-size 280 $F/t10k-images-idx3-ubyte.gz \
	$F/t10k-labels-idx1-ubyte.gz -o bpe 2>/dev/null
A="--dim 16 --layers 1 --heads 2 --seq-len 32 --batch 2 --steps 1 --threads 1"
mm-train --data fm-00000.mms --out run $A 2>/dev/null
E="--model run --data fm-00000.mms --max-docs 4"
echo "-- usage"
mm-eval --data fm-00000.mms; echo "exit $?"
mm-eval --model run; echo "exit $?"
mm-eval $E --per-class 2; echo "exit $?"
mm-eval $E --classes $F/labels.txt --samples out; echo "exit $?"
mm-eval $E --classes $F/labels.txt --per-class 2 --sampler rk4; echo "exit $?"
mm-eval $E --bpd-t1 1; echo "exit $?"
mm-eval $E --buckets 0; echo "exit $?"
mm-eval $E --no-losses; echo "exit $?"
mm-eval $E --bogus; echo "exit $?"
mm-eval $E extra; echo "exit $?"
echo "-- runtime"
mm-eval --model nowhere --data fm-00000.mms; echo "exit $?"
mm-eval $E --ema; echo "exit $?"
mm-eval --model run --data 'none-*.mms'; echo "exit $?"
mm-eval --model run --data small-00000.mms; echo "exit $?"
{ mm-eval --model run --data bpe-00000.mms; echo "exit $?"; } 2>&1 | sed 's/[0-9a-f]\{16\}/H/g'
printf 'a\n\nb\n' >empty.txt
mm-eval $E --classes empty.txt; echo "exit $?"
printf 'just one\n' >one.txt
mm-eval $E --classes one.txt; echo "exit $?"
mm-eval $E --classes missing.txt; echo "exit $?"
