#!/bin/sh
# The sampling sweep of make sweep-fashion: for each setting below, 100 images per class from
# a trained Fashion-MNIST model (mm-sample, class c from seed c + 1, the EMA weights), judged by
# tests/ref/judge.py against the validation images (the last 10,000 of the training set: never
# the test set, so that the settings chosen here are not fitted to it). Writes OUT/sweep.tsv
# (one row a setting: its accuracy, Frechet distance, floor and speed) and two plots:
# OUT/sweep-guidance.png (accuracy and Frechet distance over the floor against the guidance
# scale) and OUT/sweep-nfe.png (the same against the model calls an image costs, per sampler).
#   sh data/fashion-sweep.sh RUN JUDGE.pt OUT [THREADS]
# SWEEP_SETTINGS replaces the list below (lines of: sampler steps guidance A,B);
# SWEEP_PLOT_ONLY=1 draws the plots again from OUT/sweep.tsv.
set -eu
LC_ALL=C
export LC_ALL
[ $# -ge 3 ] || { echo "usage: sh data/fashion-sweep.sh RUN JUDGE.pt OUT [THREADS]" >&2; exit 2; }
run=$1 judge=$2 out=$3 th=${4:-2}
top=$(cd "$(dirname "$0")/.." && pwd)
src=${EXP_SRC:-/usr/share/datasets/fashion-mnist}
per=${SWEEP_PER_CLASS:-100}
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mm-sweep.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# sampler steps guidance interval: what a setting is
settings=${SWEEP_SETTINGS:-"dpm2m 20 1 0.2,1
dpm2m 20 1.5 0.2,1
dpm2m 20 2 0.2,1
dpm2m 20 2.5 0.2,1
dpm2m 20 3 0.2,1
dpm2m 20 2 0,1
dpm2m 20 2 0.1,1
dpm2m 20 2 0.3,1
dpm2m 5 2 0.2,1
dpm2m 10 2 0.2,1
dpm2m 15 2 0.2,1
dpm2m 30 2 0.2,1
euler 10 2 0.2,1
euler 20 2 0.2,1
euler 50 2 0.2,1
heun 5 2 0.2,1
heun 10 2 0.2,1
heun 25 2 0.2,1
heun 50 2 0.2,1
heun 50 2 0,1"}
row() { sed -n "s/^$1=//p" "$tmp/judge.txt"; }
printf 'sampler\tsteps\tcalls\tguidance\tfrom\tto\taccuracy\tfrechet\tfloor\tover_floor\tmean_intensity\timages_per_s\treal_accuracy\n' \
	> "$tmp/sweep.tsv"
[ "${SWEEP_PLOT_ONLY:-0}" = 1 ] && settings="" && cp "$out/sweep.tsv" "$tmp/sweep.tsv"
echo "$settings" | while read -r s n g iv; do
	[ -n "$s" ] || continue
	rm -rf "$tmp/gen"
	t0=$(date +%s.%N)
	c=0
	gens=""
	while read -r lab; do
		"$top/cmd/mm-sample" --model "$run" --ema --prompt "a photo of a $lab" --image -n "$per" --batch 50 \
			--sampler "$s" --steps "$n" --cfg "$g" --cfg-interval "$iv" --max-tokens 0 --threads "$th" \
			--seed $((c + 1)) -o "$tmp/gen/$c" > /dev/null 2> "$tmp/sample.err" ||
			{ cat "$tmp/sample.err" >&2; exit 1; }
		gens="$gens --gen $c=$tmp/gen/$c"
		c=$((c + 1))
	done < "$top/data/fashion-mnist/labels.txt"
	t1=$(date +%s.%N)
	# shellcheck disable=SC2086
	/usr/bin/python3 "$top/tests/ref/judge.py" eval --model "$judge" --data "$src" --against val $gens \
		> "$tmp/judge.txt"
	case $s in heun) calls=$((2 * n - 1)) ;; *) calls=$n ;; esac
	lo=${iv%,*} hi=${iv#*,}
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$n" "$calls" "$g" "$lo" "$hi" \
		"$(row judge_accuracy_generated)" "$(row frechet_generated)" "$(row frechet_floor)" \
		"$(row frechet_over_floor)" "$(row mean_intensity_generated)" \
		"$(echo "$t0 $t1 $c $per" | awk '{printf "%.2f", $3 * $4 / ($2 - $1)}')" \
		"$(row judge_accuracy_real)" >> "$tmp/sweep.tsv"
	tail -n 1 "$tmp/sweep.tsv" >&2
done
real=$(awk -F '\t' 'NR == 2 {print $13}' "$tmp/sweep.tsv")
[ -n "$real" ] || { echo "fashion-sweep.sh: no setting measured" >&2; exit 1; }
[ "${SWEEP_PLOT_ONLY:-0}" = 1 ] || mv "$tmp/sweep.tsv" "$out/sweep.tsv"
# The plots: accuracy on the left axis (the judge's on real validation images as a line),
# Frechet distance over its floor on the right.
plot() { # png title xlabel logx curves...
	png=$1 title=$2 xl=$3 logx=$4
	shift 4
	{
		echo "set terminal pngcairo size 960,560 font ',10'"
		echo "set output '$png.tmp'"
		echo "set title \"$title\""
		echo "set xlabel '$xl'"
		echo "set ylabel 'judge accuracy, %'"
		echo "set y2label 'Frechet distance / real-vs-real floor'"
		echo "set ytics nomirror"
		echo "set y2tics"
		echo "set key outside bottom center horizontal"
		echo "set grid"
		[ "$logx" = 1 ] && echo "set logscale x 2"
		printf 'plot %s' "$*"
		echo ", $(awk -v r="$real" 'BEGIN {printf "%.2f", 100 * r}') axes x1y1 title 'judge on real images (left)' dt 3 lw 2 lc rgb 'black', 3 axes x1y2 title 'target: 3 x floor (right)' dt 4 lw 1 lc rgb 'red'"
	} > "$tmp/plot.gp"
	gnuplot "$tmp/plot.gp"
	mv "$png.tmp" "$png"
}
# curve NAME AWK-CONDITION X-COLUMN: the rows that meet the condition as "x accuracy% over-floor",
# sorted by x, into $tmp/NAME.dat
curve() {
	awk -F '\t' -v x="$3" "NR > 1 && ($2) {print \$x, 100 * \$7, \$10}" "$out/sweep.tsv" | sort -g > "$tmp/$1.dat"
}
curve guidance '$1 == "dpm2m" && $2 == 20 && $5 == 0.2' 4
plot "$out/sweep-guidance.png" "DPM-Solver++(2M), 20 steps, guided at t in [0.2, 1]; 100 images a class against the validation images" "guidance scale" 0 \
	"'$tmp/guidance.dat' using 1:2 axes x1y1 with linespoints lw 2 title 'accuracy (left)'," \
	"'$tmp/guidance.dat' using 1:3 axes x1y2 with linespoints lw 2 dt 2 title 'Frechet / floor (right)'"
curves="" k=0
for s in euler heun dpm2m; do
	k=$((k + 1))
	curve "$s" "\$1 == \"$s\" && \$4 == 2 && \$5 == 0.2" 3
	curves="$curves '$tmp/$s.dat' using 1:2 axes x1y1 with linespoints lw 2 lc $k pt 7 title '$s: accuracy (left)',"
	curves="$curves '$tmp/$s.dat' using 1:3 axes x1y2 with linespoints lw 2 lc $k pt 6 dt 2 title '$s: Frechet / floor (right)',"
done
plot "$out/sweep-nfe.png" "guidance 2 at t in [0.2, 1]; 100 images a class against the validation images" "model calls per image" 1 "${curves%,}"
echo "sweep: $out/sweep.tsv $out/sweep-guidance.png $out/sweep-nfe.png"
