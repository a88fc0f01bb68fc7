# Data-parallel training: mm-train-mpi on 2 ranks of 4 rows against mm-train on 8 rows.
# - The same rows each step (epoch and padding equal) and the same losses, gradient norms and
#   validation losses within 1e-5 relative (the sums run in another order).
# - A second 2-rank run, and a 2-rank run stopped at step 5 and resumed, log the very same
#   figures, and write the same checkpoint but for the seconds of training it records.
# - SIGTERM to mpirun checkpoints a step that all ranks agree on.
# - A rank that stops (SIGSTOP), is killed, or fails alone ends the whole job.
set -e
# Under make test SANITIZE=1: Open MPI's components stay loaded (tests/sanitize_keep.c), and
# stacks are unwound in full so that Open MPI's own allocations are named and suppressed.
if [ -n "${MM_SAN_PRELOAD:-}" ]; then
	export LD_PRELOAD="$MM_SAN_PRELOAD"
	export ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0:fast_unwind_on_malloc=0"
fi
F=$DATA/fashion-mnist
mm-tokenize --format idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz \
	--labels $F/labels.txt --caption-template 'a photo of a {label}' --val-fraction 0.1 -o fm 2>/dev/null
A="--data ../fm-00000.mms --val ../fm-val-00000.mms --eval-every 6 --eval-batches 2 --dim 32 --layers 2
   --heads 2 --seq-len 80 --log-every 1 --warmup 3 --lr 1e-3 --ema 0.9 --steps 12 --ckpt-every 5"
mpi() { mpirun --allow-run-as-root --oversubscribe -np 2 "$@" </dev/null; }
mkdir a b c
(cd a && mm-train $A --batch 8 --threads 2 --out one 2>/dev/null)
(cd a && mpi mm-train-mpi $A --batch 4 --out two 2>/dev/null)

# Relative differences of the numbers in two logs; epoch, padding and step must be equal.
compare() {
	paste -d '\n' "$1" "$2" | awk -v tol="$3" '
	function num(line, key) {
		if (!match(line, "\"" key "\":[^,}]*"))
			return "none"
		return substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
	}
	NR % 2 == 1 { a = $0; next }
	{
		n = split("step epoch padding", exact, " ")
		for (i = 1; i <= n; i++)
			if (num(a, exact[i]) != num($0, exact[i])) { print "differ: " exact[i] ": " a " | " $0; bad++ }
		n = split("loss loss_text loss_image grad_norm val_loss_text val_loss_image", keys, " ")
		for (i = 1; i <= n; i++) {
			x = num(a, keys[i]); y = num($0, keys[i])
			if (x == "none" && y == "none") continue
			d = x - y; if (d < 0) d = -d
			m = x < 0 ? -x : x
			if (d > tol * m) { print "differ: " keys[i] ": " x " vs " y; bad++ }
			if (m > 0 && d / m > worst) worst = d / m
		}
		lines++
	}
	END {
		printf "worst relative difference %.2g over %d lines\n", worst, lines > "/dev/stderr"
		if (lines == 0 || bad) exit 1
	}'
}
compare a/one/log.jsonl a/two/log.jsonl 1e-5
echo "2 ranks x 4 rows = 1 rank x 8 rows: $(grep -c '"loss"' a/two/log.jsonl) steps and $(grep -c val_loss a/two/log.jsonl) evaluations within 1e-5"

strip() { sed 's/,"positions_per_s":[^,]*//' "$1"; }
# Checkpoints equal but for STAT (its seconds of training, and the CRCs over them).
same_ckpt() {
	off=$(grep -obUa STAT "$1" | head -n 1 | cut -d: -f1)
	cmp -l "$1" "$2" | awk -v lo="$off" '$1 - 1 < lo || $1 - 1 >= lo + 24 + 64 { bad++ } END { exit bad > 0 }'
}
(cd b && mpi mm-train-mpi $A --batch 4 --out two 2>/dev/null)
strip a/two/log.jsonl > a.txt
strip b/two/log.jsonl > b.txt
cmp a.txt b.txt && same_ckpt a/two/ckpt-12.mmc b/two/ckpt-12.mmc && echo "a second 2-rank run: identical"
(cd c && mpi mm-train-mpi $A --batch 4 --out two 2>/dev/null)
rm c/two/ckpt-10.mmc c/two/ckpt-12.mmc
echo ckpt-5.mmc > c/two/latest
(cd c && mpi mm-train-mpi --resume two 2>/dev/null)
strip c/two/log.jsonl > c.txt
cmp a.txt c.txt && same_ckpt a/two/ckpt-12.mmc c/two/ckpt-12.mmc && echo "stopped at step 5 and resumed on 2 ranks: identical"

# SIGTERM to mpirun reaches every rank: they agree on the step, rank 0 checkpoints, and the
# run resumes from it.
L="--data fm-00000.mms --dim 32 --layers 1 --heads 2 --seq-len 80 --batch 2 --log-every 1 --steps 1000000"
mpirun --allow-run-as-root --oversubscribe -np 2 mm-train-mpi $L --out term </dev/null 2>err &
pid=$!
i=0
while ! grep -q '"step":5,' term/log.jsonl 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 300 ] || { echo "no progress"; kill $pid; exit 1; }
	sleep 0.1
done
kill -TERM $pid
wait $pid || true
# The checkpoint is that of the last step logged. (Rank 0's "saved" line is not checked:
# mpirun, ending the job, may drop what the ranks print after its signal.)
step=$(sed 's/ckpt-\(.*\)\.mmc/\1/' term/latest)
last=$(tail -n 1 term/log.jsonl | sed 's/{"step":\([0-9]*\),.*/\1/')
[ -f "term/$(cat term/latest)" ] && [ "$step" = "$last" ] && echo "SIGTERM: checkpoint written"
mpi mm-train-mpi --resume term --steps $((step + 2)) 2>/dev/null
[ "$(cat term/latest)" = "ckpt-$((step + 2)).mmc" ] && echo "resumed for 2 more steps"

# Rank 1 records its pid, so that it can be stopped or killed.
cat > rank.sh <<'EOF'
[ "$OMPI_COMM_WORLD_RANK" = 1 ] && echo $$ > rank1.pid
exec "$@"
EOF
for how in STOP KILL; do
	rm -rf run rank1.pid
	mpi sh rank.sh mm-train-mpi $L --dist-timeout 2 --out run 2>err &
	pid=$!
	i=0
	while ! grep -q '"step":5,' run/log.jsonl 2>/dev/null || [ ! -s rank1.pid ]; do
		i=$((i + 1))
		[ $i -lt 300 ] || { echo "no progress"; kill $pid; exit 1; }
		sleep 0.1
	done
	kill -$how "$(cat rank1.pid)"
	rc=0
	wait $pid || rc=$?
	[ $rc -ne 0 ] && echo "rank 1 got SIG$how: the job ended with a non-zero status"
	case $how in
	STOP) grep -o 'rank 0 of 2 .* for the other ranks: one of them has stopped, hung or lost its connection' err |
		sed 's/(.*)/(host, pid)/; s/waited .* for the other ranks/waited for the other ranks/' ;;
	KILL) grep -q 'process rank 1 .* exited on signal 9' err && echo "mpirun names the rank killed" ;;
	esac
done

# One rank fails alone (its shard is missing): the job ends with its message.
cat > bad.sh <<'EOF'
[ "$OMPI_COMM_WORLD_RANK" = 1 ] && exec "$@" --data missing.mms
exec "$@" --data fm-00000.mms
EOF
rc=0
mpi sh bad.sh mm-train-mpi --steps 3 --dim 32 --layers 1 --heads 2 --seq-len 80 --out bad 2>err || rc=$?
echo "a failing rank: exit $rc"
grep -o 'mm-train-mpi\[1\]: missing.mms: no shard matches this pattern' err
