#!/bin/sh
# The losses of a run from its log.jsonl, training and validation, text and image: a PNG
# (RUN/loss.png, or the second argument) and the same curves on the terminal. Needs gnuplot
# and jq (make plot RUN=DIR installs them: .ci/deps plot).
set -eu
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: plot.sh RUN_DIR [OUT.png]" >&2; exit 2; }
run=$1
png=${2:-$run/loss.png}
log=$run/log.jsonl
[ -f "$log" ] || { echo "plot.sh: $log: no such file" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# One row per logged step: step, text loss, image loss (training lines, then validation lines).
jq -r 'select(.loss_text != null) | "\(.step) \(.loss_text) \(.loss_image)"' "$log" >"$tmp/train"
jq -r 'select(.val_loss_text != null) | "\(.step) \(.val_loss_text) \(.val_loss_image)"' "$log" >"$tmp/val"
[ -s "$tmp/train" ] || { echo "plot.sh: $log: no training losses logged yet" >&2; exit 1; }
# gnuplot draws nothing for an empty file and says so: a run without --val has no val curve.
[ -s "$tmp/val" ] || echo "0 NaN NaN" >"$tmp/val"
curves() {
	cat <<GP
set xlabel "step"
set ylabel "loss (nats per token, per image value)"
set key top right
plot "$tmp/train" using 1:2 with lines title "train text", \
     "$tmp/train" using 1:3 with lines title "train image", \
     "$tmp/val" using 1:2 with linespoints title "val text", \
     "$tmp/val" using 1:3 with linespoints title "val image"
GP
}
{
	echo "set terminal png size 900,560"
	echo "set output '$png'"
	echo "set title \"$run\" noenhanced"
	curves
} | gnuplot
{
	echo "set terminal dumb size ${COLUMNS:-100},30"
	echo "set title \"$run\" noenhanced"
	curves
} | gnuplot
echo "plot.sh: wrote $png" >&2
