# mm-sample --grid: --grid-scale N enlarges every image N times, and with --prompts each prompt
# gets a row of its images, labelled with its text at the left (a 5x7 font scaled with the
# images): the PNG sizes (read from IHDR) follow; the picture itself is checked by eye.
export OMP_WAIT_POLICY=passive
F=$DATA/fashion-mnist
mm-tokenize --format idx --labels $F/labels.txt --image-size 16 --patch 4 --caption-template 'a {label}' \
	$F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz -o fm 2>/dev/null
mm-train --data fm-00000.mms --out run --dim 16 --layers 1 --heads 2 --seq-len 32 --batch 2 --steps 2 \
	--threads 1 2>/dev/null
size() { echo "$1: $(od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d", $1*16777216+$2*65536+$3*256+$4, $5*16777216+$6*65536+$7*256+$8 }')"; }
S="--model run --threads 1 --steps 2 --max-tokens 0 --image"
mm-sample $S -n 3 -o a --grid a.png 2>/dev/null >/dev/null
size a.png
mm-sample $S -n 3 -o b --grid b.png --grid-scale 2 2>/dev/null >/dev/null
size b.png
printf 'a shirt\na bag\n' >prompts.txt
mm-sample $S --prompts prompts.txt -n 2 -o c --grid c.png --grid-scale 3 2>/dev/null >/dev/null
size c.png
mm-sample $S --prompts prompts.txt -n 2 -o d --grid d.png --grid-scale 3 2>/dev/null >/dev/null
cmp -s c.png d.png && echo "labelled grid: same bytes again"
mm-sample $S -n 1 -o e --grid-scale 2 2>&1 | head -n 1
