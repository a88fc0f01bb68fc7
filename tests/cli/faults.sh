# A disk that fills or fails: every write (fwrite, fflush, write), fsync and rename of a run
# is failed in turn, the first one, the second, ... until the run gets through without
# reaching the fault (tests/fault_shim.c, by LD_PRELOAD). Each faulted run must end with exit
# status 1 and one message naming the error; leave no temporary file; leave every output
# under its final name either absent or complete (the same bytes as a healthy run's, for a
# checkpoint all but its seconds of training); keep the checkpoint a resumed run started
# from; and a healthy rerun must then succeed. The number of faults tried goes to stderr.
set -e
SHIM=$T/bin/fault_shim.so
[ -f "$SHIM" ] || { echo "no $SHIM"; exit 1; }
F=$DATA/fashion-mnist
TOK="--format idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz --labels $F/labels.txt"
TOK="$TOK --caption-template 'a photo of a {label}' --val-fraction 0.1"
TRAIN="--data ../fm-00000.mms --val ../fm-val-00000.mms --tokenizer ../tok.bin --dim 32 --layers 1 --heads 2
       --seq-len 72 --batch 4 --eval-every 2 --eval-batches 1 --ckpt-every 2 --log-every 1 --ema 0.9"

# Checkpoints equal but for STAT (its seconds of training, and the CRCs over them).
same_ckpt() {
	off=$(grep -obUa STAT "$1" | head -n 1 | cut -d: -f1)
	[ "$(wc -c < "$1")" = "$(wc -c < "$2")" ] || return 1
	cmp -l "$1" "$2" | awk -v lo="$off" '$1 - 1 < lo || $1 - 1 >= lo + 24 + 64 { bad++ } END { exit bad > 0 }'
}
# Every file of directory $1 either is absent from $2, or equals it there; no temporary files.
complete() {
	if find "$2" -name '*.tmp*' | grep -q .; then echo "temporary file left: $(find "$2" -name '*.tmp*')"; return 1; fi
	for f in $(cd "$1" && find . -type f); do
		[ -f "$2/$f" ] || continue
		case "$f" in
		*.mmc) same_ckpt "$1/$f" "$2/$f" || { echo "$2/$f: incomplete checkpoint"; return 1; } ;;
		*/log.jsonl) ;; # appended as the run goes
		*/latest) ;;    # a pointer: checked below
		*) cmp -s "$1/$f" "$2/$f" || { echo "$2/$f: differs from a healthy run's"; return 1; } ;;
		esac
	done
	if [ -f "$2/run/latest" ] && [ ! -f "$2/run/$(cat "$2/run/latest")" ]; then
		echo "$2/run/latest names a missing checkpoint"
		return 1
	fi
}
next() { [ "$1" -lt 12 ] && echo $(($1 + 1)) || echo $(($1 * 3 / 2)); }

# faults NAME SETUP CHECK CMD...: SETUP makes the directory the command runs in (from a
# healthy run's files), CHECK runs after each faulted run.
faults() {
	name=$1 setup=$2 check=$3
	shift 3
	tried=0
	for op in write fsync rename; do
		n=1
		while :; do
			rm -rf f flog
			$setup f
			rc=0
			(cd f && MM_FAULT=$op:$n MM_FAULT_LOG=../flog LD_PRELOAD=$SHIM "$@" >out 2>err) || rc=$?
			[ -s flog ] || break
			tried=$((tried + 1))
			[ $rc = 1 ] || { echo "$name, $op fault $n: exit status $rc"; cat f/err; exit 1; }
			msgs=$(grep -c "No space left on device" f/err || true)
			[ "$msgs" = 1 ] || { echo "$name, $op fault $n: $msgs messages naming the error"; cat f/err; exit 1; }
			complete healthy f || { echo "($name, $op fault $n)"; cat f/err; exit 1; }
			$check f || { echo "($name, $op fault $n)"; cat f/err; exit 1; }
			n=$(next $n)
		done
	done
	# A healthy rerun where the last faulted run stopped.
	(cd f && "$@" >out 2>err) || { echo "$name: the rerun failed"; cat f/err; exit 1; }
	complete healthy f
	echo "$name: $tried faults, each refused cleanly; the rerun succeeds" >&2
	echo "$name: every write, fsync and rename fault refused cleanly"
}
nocheck() { :; }

# mm-tokenize: the tokenizer and two shards.
setup_tok() { mkdir "$1"; }
rm -rf healthy && mkdir healthy
(cd healthy && eval mm-tokenize $TOK --train-tokenizer tok.bin --vocab-size 300 -o fm 2>/dev/null)
cp healthy/fm-00000.mms healthy/fm-val-00000.mms healthy/tok.bin .
eval "set -- $TOK"
faults mm-tokenize setup_tok nocheck mm-tokenize "$@" --train-tokenizer tok.bin --vocab-size 300 -o fm

# mm-train, resumed from its checkpoint of step 2 for 2 more steps: the checkpoint it started
# from stays, whatever fails.
rm -rf healthy && mkdir healthy
(cd healthy && mm-train $TRAIN --steps 2 --out run 2>/dev/null && mm-train --resume run --steps 4 2>/dev/null)
mkdir start && (cd start && mm-train $TRAIN --steps 2 --out run 2>/dev/null)
setup_train() { mkdir "$1" && cp -r start/run "$1/run"; }
kept() { cmp -s start/run/ckpt-2.mmc "$1/run/ckpt-2.mmc" || { echo "ckpt-2.mmc changed or lost"; return 1; }; }
faults mm-train setup_train kept mm-train --resume run --steps 4

# mm-sample: four PNGs and a grid.
S="--model ../start/run --prompt 'a photo of a bag' --image -n 4 --steps 3 --max-tokens 0 -o s --grid grid.png"
rm -rf healthy && mkdir healthy
(cd healthy && eval mm-sample $S >/dev/null 2>&1)
eval "set -- $S"
faults mm-sample setup_tok nocheck mm-sample "$@"

# mm-eval: its JSON file.
rm -rf healthy && mkdir healthy
(cd healthy && mm-eval --model ../start/run --data ../fm-val-00000.mms --max-docs 20 --json-file e.json >/dev/null 2>&1)
faults mm-eval setup_tok nocheck mm-eval --model ../start/run --data ../fm-val-00000.mms --max-docs 20 --json-file e.json
