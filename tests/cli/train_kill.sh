# SIGKILL at any moment of training, a checkpoint write included, loses nothing but the steps
# since the last checkpoint: a run killed again and again, each time resumed with --resume,
# ends with the same final checkpoint (all but its seconds of training) and the same log as a
# run never interrupted. The kill times come from a fixed sequence spread over the run; a
# checkpoint every step makes many of them land inside a checkpoint write.
set -e
F=$DATA/fashion-mnist
mm-tokenize --format idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz \
	--labels $F/labels.txt --caption-template 'a photo of a {label}' -o fm 2>/dev/null
A="--data $PWD/fm-00000.mms --dim 64 --layers 2 --heads 4 --seq-len 80 --batch 4 --log-every 1 --warmup 3
   --lr 1e-3 --threads 2 --ema 0.9 --steps 80 --ckpt-every 1 --keep 2"
# The uninterrupted run, under the same --out name (the checkpoint stores it).
mkdir whole && (cd whole && mm-train $A --out parts 2>/dev/null)
# Checkpoints equal but for STAT (its seconds of training, and the CRCs over them).
same_ckpt() {
	off=$(grep -obUa STAT "$1" | head -n 1 | cut -d: -f1)
	[ "$(wc -c < "$1")" = "$(wc -c < "$2")" ] || return 1
	cmp -l "$1" "$2" | awk -v lo="$off" '$1 - 1 < lo || $1 - 1 >= lo + 24 + 64 { bad++ } END { exit bad > 0 }'
}
strip() { sed 's/,"positions_per_s":[^,]*//' "$1"; }

kills=0 seed=7 tries=0
while :; do
	tries=$((tries + 1))
	[ $tries -le 60 ] || { echo "no end after $tries starts"; exit 1; }
	if [ -d parts ] && [ -f parts/latest ]; then
		set -- --resume parts
	else
		rm -rf parts
		set -- $A --out parts
	fi
	mm-train "$@" 2>/dev/null &
	pid=$!
	# A kill 10 to 250 ms into the run (the run takes a second or more here), from a fixed
	# sequence; after 12 kills, or once it has finished, the run is left alone.
	seed=$(((seed * 1103515245 + 12345) % 2147483648))
	ms=$((10 + seed % 241))
	if [ $kills -lt 12 ]; then
		sleep "$(echo "$ms" | awk '{printf "%.3f", $1 / 1000}')"
		if kill -KILL $pid 2>/dev/null; then
			kills=$((kills + 1))
			wait $pid || true
		else
			# It ended before the kill: finished, or a failure the resumes below would repeat.
			rc=0
			wait $pid || rc=$?
			[ $rc = 0 ] || { echo "mm-train $* failed: exit status $rc"; exit 1; }
			[ "$(cat parts/latest)" = ckpt-80.mmc ] && break
		fi
		# Whatever the moment, the checkpoint named by latest is whole, and no temporary
		# file is mistaken for a checkpoint.
		if [ -f parts/latest ]; then
			c=parts/$(cat parts/latest)
			[ -f "$c" ] || { echo "latest names a missing $c"; exit 1; }
			mm-sample --model "$c" --max-tokens 1 --prompt a >/dev/null 2>&1 || { echo "$c does not load"; exit 1; }
		fi
		continue
	fi
	wait $pid
	break
done
[ $kills -ge 4 ] && echo "killed at least 4 times and resumed"
same_ckpt whole/parts/ckpt-80.mmc parts/ckpt-80.mmc && echo "final checkpoint identical to the uninterrupted run's"
strip whole/parts/log.jsonl > a.txt
strip parts/log.jsonl > b.txt
cmp a.txt b.txt && echo "log identical"
# What the killed writes left: their temporary files are gone once the run has resumed.
ls parts
