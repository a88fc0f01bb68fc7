#!/bin/sh
# make demo's last step: one page, DIR/index.html, with what the demo measured and made (the
# evaluation's table, the captions of generated images, the loss plot, the sample grids) and
# its wall time. Reads DIR/figures.txt, DIR/captions.tsv, DIR/loss.png, DIR/grid-*.png.
set -eu
[ $# -eq 2 ] || { echo "usage: demo_page.sh DIR SECONDS" >&2; exit 2; }
dir=$1 secs=$2
esc() { sed 's/&/\&amp;/g; s/</\&lt;/g; s/>/\&gt;/g'; }
tmp=$dir/index.html.tmp
{
	cat <<HTML
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>mm demo</title>
<style>
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; }
pre { background: #f4f4f4; padding: 1em; overflow-x: auto; font-size: 85%; }
img.grid { image-rendering: pixelated; width: 276px; margin: 0 1em 1em 0; border: 1px solid #ccc; }
figure { display: inline-block; margin: 0; } figcaption { font-size: 90%; }
</style></head><body>
<h1>mm demo</h1>
<p>One model trained on 2,000 Fashion-MNIST images with the captions <q>a photo of a {label}</q>,
then sampled and evaluated on 300 held-out images. Wall time of the whole demo: $((secs / 60)) min
$((secs % 60)) s. Files: <code>$dir</code>.</p>
<h2>Loss</h2>
HTML
	if [ -f "$dir/loss.png" ]; then
		echo '<p><img src="loss.png" alt="training and validation losses"></p>'
	else
		echo '<p>(no plot: gnuplot was not available)</p>'
	fi
	echo '<h2>Generated images</h2>'
	echo '<p>8 images for each caption, EMA weights, 25 Heun steps, guidance 2.</p>'
	for g in "$dir"/grid-*.png; do
		name=$(basename "$g" .png)
		echo "<figure><img class=\"grid\" src=\"$name.png\" alt=\"$name\"><figcaption>a photo of a ${name#grid-}</figcaption></figure>"
	done
	echo '<h2>Captions of generated images</h2><pre>'
	esc <"$dir/captions.tsv"
	echo '</pre><h2>Evaluation</h2><pre>'
	esc <"$dir/figures.txt"
	echo '</pre></body></html>'
} >"$tmp"
mv "$tmp" "$dir/index.html"
echo "page:        $dir/index.html"
