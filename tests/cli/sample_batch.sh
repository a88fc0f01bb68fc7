# mm-sample without a shell loop: --prompts FILE (or - for standard input) continues each
# prompt -n times in batches that mix prompts, naming each image by its prompt's line; the
# documents do not depend on the batch, and the first prompt's are those of --prompt.
# --caption-list FILE (or -) captions the images named in it, as --caption does with arguments.
export OMP_WAIT_POLICY=passive
F=$DATA/fashion-mnist
mm-tokenize --format idx --labels $F/labels.txt --image-size 16 --patch 4 --caption-template 'a {label}' \
	$F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz -o fm 2>/dev/null
mm-train --data fm-00000.mms --out run --dim 16 --layers 1 --heads 2 --seq-len 32 --batch 2 --steps 2 \
	--threads 1 2>/dev/null
same() { if cmp -s "$1" "$2"; then echo "$3: same bytes"; else echo "$3: different"; fi; }
S="--model run --threads 1 --steps 2 --max-tokens 0 --image"
printf 'a shirt\n\na bag\r\na dress\n' >prompts.txt
echo "-- prompts"
mm-sample $S --prompts prompts.txt -n 2 --batch 4 -o a --grid a.png 2>/dev/null
echo "exit $?"
ls a
mm-sample $S --prompts - -n 2 --batch 3 -o b <prompts.txt >/dev/null 2>&1
for f in $(ls a); do same a/$f b/$f "stdin, another batch size, $f"; done
mm-sample $S --prompt 'a shirt' -n 2 -o c >/dev/null 2>&1
same a/p001-000.png c/000.png "first prompt against --prompt, 000"
same a/p001-001.png c/001.png "first prompt against --prompt, 001"
same a/p001-000.png a/p003-000.png "two prompts"
echo "-- captions"
cp $T/fixtures/rgb8.png $T/fixtures/g8.png .
mm-sample --model run --threads 1 --max-tokens 4 --caption rgb8.png g8.png >args.tsv 2>/dev/null
printf 'rgb8.png\n\ng8.png\n' | mm-sample --model run --threads 1 --max-tokens 4 --batch 1 --caption-list - >list.tsv 2>/dev/null
echo "exit $?"
cut -f 1 list.tsv
same args.tsv list.tsv "--caption-list against --caption"
echo "-- refusals"
mm-sample $S --prompt x --prompts prompts.txt -o d 2>&1 | head -n 1
mm-sample --model run --caption-list - --prompt x </dev/null 2>&1 | head -n 1
printf '\n\n' | mm-sample $S --prompts - -o d 2>&1; echo "exit $?"
mm-sample $S --prompts nosuch.txt -o d 2>&1; echo "exit $?"
printf 'a shirt\nrgb8.png %0200d\n' 0 >long.txt
mm-sample $S --prompts long.txt -o d 2>&1; echo "exit $?"
