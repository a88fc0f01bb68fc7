# SIGINT and SIGTERM finish the step, write a checkpoint and exit with 128 + the signal; the run
# then resumes from it.
set -e
F=$DATA/fashion-mnist
mm-tokenize --format idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz \
	--labels $F/labels.txt -o fm 2>/dev/null
A="--data fm-00000.mms --dim 32 --layers 1 --heads 2 --seq-len 64 --batch 2 --log-every 1 --threads 1"
for sig in INT TERM; do
	rm -rf run
	mm-train $A --steps 1000000 --out run 2>/dev/null &
	pid=$!
	# Wait for the first logged step, then interrupt.
	i=0
	while ! grep -q '"step"' run/log.jsonl 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "no progress"; kill $pid; exit 1; }
		sleep 0.1
	done
	kill -$sig $pid
	rc=0
	wait $pid || rc=$?
	echo "SIG$sig: exit $rc"
	ckpt=$(cat run/latest)
	[ -f "run/$ckpt" ] && echo "checkpoint written"
	ls run | grep -c '\.tmp\.' || true
	step=${ckpt#ckpt-}
	step=${step%.mmc}
	mm-train --resume run --steps $((step + 2)) 2>/dev/null
	cat run/latest | sed "s/$((step + 2))/N+2/"
done
