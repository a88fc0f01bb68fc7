# mm-train's refusals: one message naming the file, exit 1 (2 for usage), nothing half-written.
F=$DATA/fashion-mnist
mm-tokenize --format idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz \
	--labels $F/labels.txt -o fm 2>/dev/null
printf 'in the beginning\n\nwas the word\n' > a.txt
mm-tokenize a.txt -o text 2>/dev/null
mm-tokenize --train-tokenizer tok.bin --vocab-size 270 a.txt -o bpe 2>/dev/null
mm-tokenize --format idx $F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz --image-size 16 -o small 2>/dev/null
A="--dim 16 --layers 1 --heads 2 --seq-len 64 --batch 2 --threads 1"
echo "-- usage"
mm-train --out x --steps 1 $A; echo "exit $?"
mm-train --data fm-00000.mms --out x $A; echo "exit $?"
mm-train --data fm-00000.mms --out x --steps 1 --epochs 1 $A; echo "exit $?"
mm-train --data fm-00000.mms --out x --steps 1 --dim 30 --heads 4; echo "exit $?"
mm-train --data fm-00000.mms --out x --steps 1 --lr fast; echo "exit $?"
mm-train --data fm-00000.mms --out x --steps 1 --bogus; echo "exit $?"
echo "-- data"
mm-train --data 'nothing-*.mms' --out x1 --steps 1 $A; echo "exit $?"
mm-train --data fm-00000.mms --data small-00000.mms --out x2 --steps 1 $A; echo "exit $?"
mm-train --data fm-00000.mms --val small-00000.mms --out x3 --steps 1 $A; echo "exit $?"
mm-train --data bpe-00000.mms --out x4 --steps 1 $A; echo "exit $?"
mm-train --data bpe-00000.mms --tokenizer tok.bin --out x5 --steps 1 $A 2>/dev/null; echo "exit $?"
mm-train --data fm-00000.mms --out x6 --steps 1 --seq-len 40 --dim 16 --layers 1 --heads 2; echo "exit $?"
ls -d x* | tr '\n' ' '; echo
echo "-- runs"
mm-train --data fm-00000.mms --out run --steps 1 $A 2>/dev/null; echo "exit $?"
mm-train --data fm-00000.mms --out run --steps 1 $A; echo "exit $?"
mm-train --resume nowhere; echo "exit $?"
# A flipped byte in the checkpoint is refused at resume.
printf 'X' | dd of=run/ckpt-1.mmc bs=1 seek=100 conv=notrunc 2>/dev/null
mm-train --resume run --steps 2; echo "exit $?"
ls run
head -c 1000 run/ckpt-1.mmc > run/ckpt-1.mmc.short && mv run/ckpt-1.mmc.short run/ckpt-1.mmc
mm-train --resume run --steps 2; echo "exit $?"
