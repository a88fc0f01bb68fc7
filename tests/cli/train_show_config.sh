# mm-train --show-config prints a checkpoint's settings as a --config file, numbers in their
# shortest form; the run directory and the checkpoint file give the same settings, and the
# printed lines read back as a --config give a run with the same settings.
export OMP_WAIT_POLICY=passive
F=$DATA/fashion-mnist
mm-tokenize --format idx --labels $F/labels.txt --image-size 16 --patch 4 \
	$F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz -o fm 2>/dev/null
mm-train --data fm-00000.mms --out run --dim 16 --layers 1 --heads 2 --seq-len 32 --batch 2 --steps 1 \
	--lr 0.1 --weight-decay 0.3 --threads 1 2>/dev/null
mm-train --show-config run >dir.txt
echo "exit $?"
sed 1d dir.txt | grep -E '^(lr|weight-decay|dim|out) '
mm-train --show-config run/$(cat run/latest) | sed 1d >file.txt
sed 1d dir.txt | cmp -s file.txt - && echo "file and directory: same settings"
sed 1d dir.txt | grep -v '^out ' >again.conf
mm-train --config again.conf --out run2 --threads 1 2>/dev/null
mm-train --show-config run2 | sed 1d | grep -v '^out ' >again.txt
cmp -s again.conf again.txt && echo "read back as --config: same settings"
mm-train --show-config run --lr 1
echo "exit $?"
mm-train --show-config nowhere
echo "exit $?"
