# A run stopped after 5 steps and resumed gives the same losses, bit for bit (printed with 9
# significant digits, which is exact for float32), as an uninterrupted 12-step run.
set -e
F=$DATA/fashion-mnist
mm-tokenize --format idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz \
	--labels $F/labels.txt --caption-template 'a photo of a {label}' --val-fraction 0.1 -o fm 2>/dev/null
A="--data fm-00000.mms --val fm-val-00000.mms --eval-every 6 --eval-batches 2 --dim 32 --layers 2 --heads 2
   --seq-len 80 --batch 4 --log-every 1 --warmup 3 --lr 1e-3 --threads 2 --ema 0.9 --steps 12 --ckpt-every 5"
mm-train $A --out whole 2>/dev/null
mm-train $A --out parts 2>/dev/null
# Go back to step 5 as if the run had stopped there.
rm parts/ckpt-10.mmc parts/ckpt-12.mmc
echo ckpt-5.mmc > parts/latest
mm-train --resume parts 2>/dev/null
strip() { sed 's/,"positions_per_s":[^,]*//' "$1"; }
strip whole/log.jsonl > a.txt
strip parts/log.jsonl > b.txt
cmp a.txt b.txt && echo "losses identical"
grep -c '"loss"' b.txt
grep -c '"val_loss_text"' b.txt
ls parts
cat parts/latest
# Changing the model on resume is refused.
mm-train --resume parts --dim 64 2>&1 || echo "exit $?"
