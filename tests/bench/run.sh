#!/bin/bash
# make bench: mm against its peers on the reference configuration of mm-model(7), 2 threads,
# each pair of runs side by side (ours, then the peer, BENCH_RUNS times), so that both see the
# same machine. Prints one table and writes it with the machine, date and commit into
# tests/bench/results.md (BENCH_OUT: another file). Not part of make test; nothing here asserts
# a time.
#   training     tests/bench/bench_model (forward, backward, clipping, AdamW on random rows of
#                the reference layout) against tests/ref/bench_train.py, positions/s
#   GFLOP/s      the same runs' model FLOP/s against OpenBLAS sgemm at the shape of the model's
#                largest matmul (2048 x 1024 x 384: the SwiGLU input projections)
#   sampling     mm-sample, 8 images of 28x28 after a caption, 50 Heun steps, guidance 2 at every
#                call, against tests/ref/bench_sample.py doing the same, images/s; then mm at equal
#                quality (DPM-Solver++(2M), 20 steps, mm-sample's default guidance interval: on
#                Fashion-MNIST as good as Heun 50 by the judge's accuracy and Frechet distance,
#                README) against the same PyTorch Heun-50 runs
#   tokenize     mm-tokenize on a folder of Fashion-MNIST PNGs against bench_decode, a loop that
#                only decodes the same files with the same decoder, files/s; both timed the same
#                way, as whole commands from start to exit; 3 x BENCH_RUNS pairs (a run takes a
#                tenth of a second, and its spread is 20%)
#   memory       peak RSS of mm-train on the reference configuration (/usr/bin/time) against
#                the analytic sum of parameters, gradients, Adam moments, activations and batch
#   long rows    training positions/s of the reference model on rows of 64 to 1,024 positions
#                (BOS, text, BOI, 49 patches, EOI; 2,048 positions a step), mm against PyTorch at
#                each length, and mm's rate on text documents of 1,024 positions as a share of
#                its rate on text documents of 64 (the same work per position but attention's); then the peak
#                RSS of a step at rows of 1,024 and batch 16 against the analytic figure; and
#                sampling images/s after a prefix that makes documents of 64 to 1,024 positions
#                (BENCH_LONG=0 skips this part)
#   colour       64x64x3 images in patches of 8 and of 4: training positions/s and sampling
#                images/s (10 Heun steps), mm against PyTorch (BENCH_COLOUR=0 skips this part)
#   busy machine two runs of mm-train (a small model, 150 steps) and of mm-sample (32 images, 40
#                steps), --threads 2 each, started together, as a share of one run alone; mm's
#                wait at OpenMP's barriers against libgomp's default, and the cost of mm's alone
#                (BENCH_BUSY=0 skips this part)
set -eu
export LC_ALL=C # EPOCHREALTIME with a decimal point
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
RUNS=${BENCH_RUNS:-5}
OUT=${BENCH_OUT:-tests/bench/results.md}
TOK_RUNS=$((3 * RUNS))
TH=2
PY=/usr/bin/python3
tmp=tests/bench/tmp
bin=tests/bench/bin
rm -rf "$tmp"
mkdir -p "$tmp"
export OPENBLAS_CORETYPE="${OPENBLAS_CORETYPE:-Haswell}" # set on some of these machines
note() { printf '%s\n' "$*" >&2; }
# key=value from the last line of a file that has the key
val() { sed -n "s/.*$1=\([0-9.e+-]*\).*/\1/p" "$2" | tail -n 1; }
# the images/s of mm-sample's last progress line in a file
imgs_per_s() { sed -n 's/.*(\([0-9.]*\) images\/s).*/\1/p' "$1" | tail -n 1; }
# one pair of sampling runs, 4 images, 10 Heun steps, guidance 2 at every call: mm-sample on a
# model after a prompt, then bench_sample.py with the rest of the arguments; images/s appended
# to the two files
sample_pair() { # ours-file peer-file model prompt bench_sample.py-args...
	local ours=$1 peer=$2 model=$3 prompt=$4
	shift 4
	rm -rf "$tmp/smp"
	cmd/mm-sample --model "$model" --prompt "$prompt" --image -o "$tmp/smp" -n 4 --batch 4 --steps 10 \
		--cfg 2 --cfg-interval 0,1 --max-tokens 0 --threads $TH > /dev/null 2> "$tmp/ms.err"
	imgs_per_s "$tmp/ms.err" >> "$ours"
	$PY tests/ref/bench_sample.py --threads $TH --images 4 --steps 10 --cfg 2 "$@" > "$tmp/bs.out" 2>/dev/null
	val images_per_s "$tmp/bs.out" >> "$peer"
}
# median, min and max of the numbers in a file, one a line
stats() { sort -g "$1" | awk '{a[NR] = $1} END {printf "%s %s %s\n", a[int((NR + 1) / 2)], a[1], a[NR]}'; }

# ---- Data: a 4096-token BPE learned from the embedded KJV text, Fashion-MNIST with captions
note "bench: preparing data in $tmp"
cmd/mm-tokenize --format text data/text/kjv-genesis-exodus.txt --train-tokenizer "$tmp/tok.bin" \
	--vocab-size 4096 -o "$tmp/kjv" 2>/dev/null
cmd/mm-tokenize --format idx data/fashion-mnist/train-images-idx3-ubyte.gz \
	data/fashion-mnist/train-labels-idx1-ubyte.gz --labels data/fashion-mnist/labels.txt \
	--caption-template 'a photo of a {label} on a plain white background, seen from the front' \
	--patch 4 --tokenizer "$tmp/tok.bin" -o "$tmp/fm" 2>/dev/null
# The PNG folder: the 2,000 images written out by --extract, four copies of each (8,000 files).
cmd/mm-tokenize --tokenizer "$tmp/tok.bin" --extract "$tmp/x" "$tmp/fm-00000.mms" 2>/dev/null
mkdir -p "$tmp/png"
for k in 0 1 2 3; do
	for f in "$tmp"/x/*.png; do cp "$f" "$tmp/png/$k-$(basename "$f")"; done
done
ls "$tmp"/png/*.png > "$tmp/png.list"
nfiles=$(wc -l < "$tmp/png.list")
REF="--dim 384 --layers 6 --heads 6 --mlp 1024 --qk-norm 0 --seq-len 64 --batch 32"

# ---- Training speed and GFLOP/s
note "bench: training, $RUNS runs each"
: > "$tmp/train.ours"; : > "$tmp/train.peer"; : > "$tmp/gf.ours"; : > "$tmp/gf.peer"
for i in $(seq "$RUNS"); do
	"$bin/bench_model" $TH 4 1 > "$tmp/bm.out"
	val positions_per_s "$tmp/bm.out" >> "$tmp/train.ours"
	val gflops "$tmp/bm.out" >> "$tmp/gf.ours"
	$PY tests/ref/bench_train.py --threads $TH --steps 4 --warmup 2 > "$tmp/bt.out" 2>/dev/null
	val positions_per_s "$tmp/bt.out" >> "$tmp/train.peer"
	"$bin/bench_sgemm" 2048 1024 384 $TH 15 > "$tmp/sg.out"
	val gflops_median "$tmp/sg.out" >> "$tmp/gf.peer"
done
analytic=$(val analytic_mib "$tmp/bm.out")
flop=$(val flop_per_position "$tmp/bm.out")

# ---- Memory: mm-train itself, 6 steps on the reference configuration
note "bench: peak RSS of mm-train"
: > "$tmp/rss"
for i in $(seq "$RUNS"); do
	rm -rf "$tmp/run"
	/usr/bin/time -f 'rss_kib=%M' -o "$tmp/time.out" cmd/mm-train --data "$tmp/fm-00000.mms" \
		--tokenizer "$tmp/tok.bin" $REF --steps 6 --threads $TH --out "$tmp/run" 2>/dev/null
	awk -F= '/rss_kib/ {printf "%.1f\n", $2 / 1024}' "$tmp/time.out" >> "$tmp/rss"
done

# ---- Sampling: a reference-size checkpoint (one step of training: speed does not depend on it)
note "bench: sampling, $RUNS runs each"
rm -rf "$tmp/run"
cmd/mm-train --data "$tmp/fm-00000.mms" --tokenizer "$tmp/tok.bin" $REF --steps 1 --threads $TH \
	--out "$tmp/run" 2>/dev/null
: > "$tmp/sample.ours"; : > "$tmp/sample.peer"; : > "$tmp/sample.equal"
for i in $(seq "$RUNS"); do
	rm -rf "$tmp/smp"
	cmd/mm-sample --model "$tmp/run" --prompt 'a photo of a trouser on white ground' --image \
		-o "$tmp/smp" -n 8 --batch 8 --steps 50 --cfg 2 --cfg-interval 0,1 --max-tokens 0 --threads $TH \
		> /dev/null 2> "$tmp/ms.err"
	imgs_per_s "$tmp/ms.err" >> "$tmp/sample.ours"
	rm -rf "$tmp/smp"
	cmd/mm-sample --model "$tmp/run" --prompt 'a photo of a trouser on white ground' --image \
		-o "$tmp/smp" -n 8 --batch 8 --sampler dpm2m --steps 20 --cfg 2 --max-tokens 0 --threads $TH \
		> /dev/null 2> "$tmp/ms.err"
	imgs_per_s "$tmp/ms.err" >> "$tmp/sample.equal"
	$PY tests/ref/bench_sample.py --threads $TH --images 8 --steps 50 --cfg 2 --kv reuse \
		> "$tmp/bs.out" 2>/dev/null
	val images_per_s "$tmp/bs.out" >> "$tmp/sample.peer"
done

# ---- Tokenizing a folder of PNGs against decoding it
note "bench: tokenize $nfiles PNGs, $TOK_RUNS runs each"
: > "$tmp/tok.ours"; : > "$tmp/tok.peer"
# one run of each first, not counted: the files into the page cache, the output file made
cmd/mm-tokenize --format dir "$tmp/png" --tokenizer "$tmp/tok.bin" --patch 4 --threads $TH -o "$tmp/tk" 2>/dev/null
"$bin/bench_decode" $TH < "$tmp/png.list" > /dev/null
for i in $(seq "$TOK_RUNS"); do
	rm -f "$tmp"/tk-*.mms
	t0=$EPOCHREALTIME
	cmd/mm-tokenize --format dir "$tmp/png" --tokenizer "$tmp/tok.bin" --patch 4 --threads $TH \
		-o "$tmp/tk" 2>/dev/null
	t1=$EPOCHREALTIME
	"$bin/bench_decode" $TH < "$tmp/png.list" > "$tmp/dec.out"
	t2=$EPOCHREALTIME
	echo "$nfiles $t0 $t1" | awk '{printf "%.1f\n", $1 / ($3 - $2)}' >> "$tmp/tok.ours"
	echo "$nfiles $t1 $t2" | awk '{printf "%.1f\n", $1 / ($3 - $2)}' >> "$tmp/tok.peer"
done

# ---- Long rows: the same model and step on rows of 64 to 1,024 positions, 2,048 positions a step
LONG=${BENCH_LONG:-1}
if [ "$LONG" = 1 ]; then
	note "bench: long rows, $RUNS runs each length"
	for T in 64 128 256 512 1024; do
		: > "$tmp/long$T.ours"; : > "$tmp/long$T.peer"
		for i in $(seq "$RUNS"); do
			"$bin/bench_model" $TH 2 1 $((T - 52)) $((2048 / T)) > "$tmp/bl.out"
			val positions_per_s "$tmp/bl.out" >> "$tmp/long$T.ours"
			$PY tests/ref/bench_train.py --threads $TH --steps 2 --warmup 1 --text $((T - 52)) \
				--batch $((2048 / T)) > "$tmp/blp.out" 2>/dev/null
			val positions_per_s "$tmp/blp.out" >> "$tmp/long$T.peer"
		done
	done
	# the share: text documents at both lengths, so that only attention's work per position differs
	: > "$tmp/text64"; : > "$tmp/text1024"
	for i in $(seq "$RUNS"); do
		"$bin/bench_model" $TH 2 1 12 32 text > "$tmp/bt64.out"
		val positions_per_s "$tmp/bt64.out" >> "$tmp/text64"
		"$bin/bench_model" $TH 2 1 972 2 text > "$tmp/bt1024.out"
		val positions_per_s "$tmp/bt1024.out" >> "$tmp/text1024"
	done
	# sampling after a prefix: a document of T positions is BOS, T - 52 text tokens, BOI and 49
	# patches (the last, EOI, is not generated); mm-sample's prompt is T - 52 '#', one token each
	# ('#' is not in the text the tokenizer learned from, so no merge holds it), against
	# bench_sample.py with a caption of T - 52 tokens
	rm -rf "$tmp/run1024"
	cmd/mm-train --data "$tmp/fm-00000.mms" --tokenizer "$tmp/tok.bin" $REF --seq-len 1024 --batch 2 \
		--steps 1 --threads $TH --out "$tmp/run1024" 2>/dev/null
	for T in 64 128 256 512 1024; do
		: > "$tmp/ls$T.ours"; : > "$tmp/ls$T.peer"
		prompt=$(printf '%*s' $((T - 52)) '' | tr ' ' '#')
		for i in $(seq "$RUNS"); do
			sample_pair "$tmp/ls$T.ours" "$tmp/ls$T.peer" "$tmp/run1024" "$prompt" --caption $((T - 52))
		done
	done
	"$bin/bench_model" $TH 2 1 972 16 > "$tmp/b16.out"
	val peak_rss_mib "$tmp/b16.out" > "$tmp/rss1024"
	val analytic_mib "$tmp/b16.out" > "$tmp/analytic1024"
fi

# ---- Colour images of 64x64 in patches of 8 and of 4 (64 and 256 patches a row): training
# positions/s (bench_model against bench_train.py, the reference model, rows of BOS, 12 text
# tokens, BOI, the patches, EOI, about 2,048 positions a step) and sampling images/s (mm-sample
# on a one-step checkpoint of the embedded emoji against bench_sample.py: 4 images, 10 Heun
# steps, guidance 2 at every call; images/s at 50 steps is about a fifth of it)
COLOUR=${BENCH_COLOUR:-1}
if [ "$COLOUR" = 1 ]; then
	note "bench: 64x64x3 images, $RUNS runs each"
	for PS in 8 4; do
		NPC=$(((64 / PS) * (64 / PS)))
		T=$((NPC + 15))
		B=$(((2048 + T - 1) / T))
		cmd/mm-tokenize --image-size 64 --channels 3 --patch $PS --tokenizer "$tmp/tok.bin" -o "$tmp/tw$PS" \
			data/twemoji 2>/dev/null
		rm -rf "$tmp/twrun"
		cmd/mm-train --data "$tmp/tw$PS-00000.mms" --tokenizer "$tmp/tok.bin" --dim 384 --layers 6 --heads 6 \
			--mlp 1024 --qk-norm 0 --seq-len $((NPC + 16)) --batch 8 --steps 1 --threads $TH \
			--out "$tmp/twrun" 2>/dev/null
		: > "$tmp/c$PS.train.ours"; : > "$tmp/c$PS.train.peer"; : > "$tmp/c$PS.sample.ours"; : > "$tmp/c$PS.sample.peer"
		for i in $(seq "$RUNS"); do
			"$bin/bench_model" $TH 2 1 12 $B 64x64x3/$PS > "$tmp/bc.out"
			val positions_per_s "$tmp/bc.out" >> "$tmp/c$PS.train.ours"
			$PY tests/ref/bench_train.py --threads $TH --steps 2 --warmup 1 --text 12 --batch $B --img 64 \
				--channels 3 --patch $PS > "$tmp/bcp.out" 2>/dev/null
			val positions_per_s "$tmp/bcp.out" >> "$tmp/c$PS.train.peer"
			sample_pair "$tmp/c$PS.sample.ours" "$tmp/c$PS.sample.peer" "$tmp/twrun" \
				'a red apple on a plain white background' --img 64 --channels 3 --patch $PS
		done
	done
fi

# ---- A busy machine: two runs with --threads 2 started together on these cores, against one
# alone; with mm's wait at OpenMP's barriers (a short spin, lib/kernels.c) and with libgomp's
# default (GOMP_SPINCOUNT=300000, what mm ran with before). Whole commands, start to exit.
BUSY=${BENCH_BUSY:-1}
if [ "$BUSY" = 1 ]; then
	note "bench: a busy machine, $RUNS rounds"
	SMALL="--dim 128 --layers 4 --heads 4 --seq-len 64 --batch 16"
	rm -rf "$tmp/small"
	cmd/mm-train --data "$tmp/fm-00000.mms" --tokenizer "$tmp/tok.bin" $SMALL --steps 1 --threads $TH \
		--out "$tmp/small" 2>/dev/null
	busy_train() { # out-dir: wall seconds of 150 steps on stdout
		rm -rf "$1"
		local t0=$EPOCHREALTIME
		cmd/mm-train --data "$tmp/fm-00000.mms" --tokenizer "$tmp/tok.bin" $SMALL --steps 150 \
			--warmup 10 --threads $TH --log-every 1000 --out "$1" >/dev/null 2>&1
		echo "$t0 $EPOCHREALTIME" | awk '{printf "%.3f\n", $2 - $1}'
	}
	busy_sample() { # out-dir: wall seconds of 32 images, 40 Heun steps
		rm -rf "$1"
		local t0=$EPOCHREALTIME
		cmd/mm-sample --model "$tmp/small" --prompt 'a photo of a bag' --image -n 32 --steps 40 \
			--max-tokens 0 --threads $TH -o "$1" >/dev/null 2>&1
		echo "$t0 $EPOCHREALTIME" | awk '{printf "%.3f\n", $2 - $1}'
	}
	for w in train sample; do
		for v in mm gomp; do : > "$tmp/busy.$w.$v.share"; : > "$tmp/busy.$w.$v.alone"; done
	done
	for i in $(seq "$RUNS"); do
		for w in train sample; do
			for v in mm gomp; do
				if [ $v = gomp ]; then export GOMP_SPINCOUNT=300000; else unset GOMP_SPINCOUNT; fi
				a=$(busy_$w "$tmp/busy-a")
				busy_$w "$tmp/busy-b" > "$tmp/busy.b" &
				c=$(busy_$w "$tmp/busy-c")
				wait
				b=$(cat "$tmp/busy.b")
				echo "$a" | awk '{printf "%.4f\n", 1 / $1}' >> "$tmp/busy.$w.$v.alone"
				echo "$a $b $c" | awk '{printf "%.3f\n", $1 / $2 + $1 / $3}' >> "$tmp/busy.$w.$v.share"
			done
		done
	done
	unset GOMP_SPINCOUNT
fi

# ---- The table
row() { # name unit ours-file peer-file target "higher|lower" peer-name
	set -- "$1" "$2" "$(stats "$3")" "$(stats "$4")" "$5" "$6" "$7"
	echo "$3 $4" | awk -v name="$1" -v unit="$2" -v target="$5" -v peer="$7" '{
		ratio = $1 / $4
		printf "| %s | %s %s (%s-%s) | %s: %s (%s-%s) | %.2f | %s |\n", name, $1, unit, $2, $3, peer, $4, $5, $6, ratio, target
	}'
}
echo "$analytic" > "$tmp/analytic"
{
	echo "| figure | mm: median (min-max) | peer: median (min-max) | ratio | target |"
	echo "|---|---|---|---|---|"
	row "training, positions/s" "pos/s" "$tmp/train.ours" "$tmp/train.peer" ">= 1.5" higher "PyTorch"
	row "training, model GFLOP/s ($flop FLOP/position)" "GFLOP/s" "$tmp/gf.ours" "$tmp/gf.peer" ">= 0.75" higher "sgemm 2048x1024x384"
	row "sampling, images/s" "img/s" "$tmp/sample.ours" "$tmp/sample.peer" ">= 3" higher "PyTorch"
	row "sampling at equal quality, images/s (mm: DPM-Solver++(2M), 20 steps)" "img/s" "$tmp/sample.equal" "$tmp/sample.peer" ">= 10" higher "PyTorch Heun 50"
	row "mm-tokenize, PNG files/s ($nfiles files)" "files/s" "$tmp/tok.ours" "$tmp/tok.peer" ">= 0.8" higher "decode only"
	row "mm-train peak RSS, MiB" "MiB" "$tmp/rss" "$tmp/analytic" "<= 1.25" lower "analytic"
	if [ "$LONG" = 1 ]; then
		for T in 64 128 256 512 1024; do
			row "training, rows of $T positions, positions/s" "pos/s" "$tmp/long$T.ours" "$tmp/long$T.peer" ">= 2" higher "PyTorch"
		done
		for T in 64 128 256 512 1024; do
			row "sampling after $((T - 52)) text tokens (documents of $T), 10 Heun steps, images/s" "img/s" "$tmp/ls$T.ours" "$tmp/ls$T.peer" ">= 2" higher "PyTorch"
		done
		row "training, text documents of 1,024 positions over 64 (mm)" "pos/s" "$tmp/text1024" "$tmp/text64" ">= 0.8" higher "documents of 64"
		row "training step at rows of 1,024, batch 16: peak RSS, MiB" "MiB" "$tmp/rss1024" "$tmp/analytic1024" "<= 4096 MiB" lower "analytic"
	fi
	if [ "$COLOUR" = 1 ]; then
		for PS in 8 4; do
			row "training, 64x64x3 in patches of $PS ($(((64 / PS) * (64 / PS))) a row), positions/s" "pos/s" "$tmp/c$PS.train.ours" "$tmp/c$PS.train.peer" ">= 2" higher "PyTorch"
			row "sampling, 64x64x3 in patches of $PS, 10 Heun steps, images/s" "img/s" "$tmp/c$PS.sample.ours" "$tmp/c$PS.sample.peer" ">= 2" higher "PyTorch"
		done
	fi
	if [ "$BUSY" = 1 ]; then
		row "busy machine: two mm-train runs together, their work over one run alone" "x" "$tmp/busy.train.mm.share" "$tmp/busy.train.gomp.share" "mm >= 0.8" higher "libgomp's default"
		row "busy machine: two mm-sample runs together, their work over one run alone" "x" "$tmp/busy.sample.mm.share" "$tmp/busy.sample.gomp.share" "mm >= 0.8" higher "libgomp's default"
		row "busy machine: mm-train alone (150 steps)" "runs/s" "$tmp/busy.train.mm.alone" "$tmp/busy.train.gomp.alone" ">= 0.97" higher "libgomp's default"
		row "busy machine: mm-sample alone (32 images)" "runs/s" "$tmp/busy.sample.mm.alone" "$tmp/busy.sample.gomp.alone" ">= 0.97" higher "libgomp's default"
	fi
} > "$tmp/table.md"
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)
{
	echo "# make bench"
	echo
	echo "Machine: $cpu, $(nproc) processors, $TH threads. Date: $(date -u '+%Y-%m-%d %H:%M UTC')."
	echo "Commit: $commit$dirty. $RUNS runs per figure ($TOK_RUNS for mm-tokenize), ours and the peer alternating;"
	echo "OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE. Sections on (1) or off (0): long rows $LONG, colour $COLOUR, busy machine $BUSY."
	echo "Written by tests/bench/run.sh."
	echo
	cat "$tmp/table.md"
	echo
	echo "Ratios are of the medians (for memory: RSS over the analytic figure). mm-tokenize and the"
	echo "decode loop are both timed as whole commands, start to exit. Analytic memory:"
	echo "$(grep '^positions_per_s' "$tmp/bm.out" | tr ' ' '\n' | grep -E '^(params|activations|analytic_mib)=' | tr '\n' ' ')"
} > "$OUT"
cat "$OUT"
