# mm-sample on a checkpoint trained here: transcripts, image files, run-to-run determinism,
# guidance 1 = no guidance, captions, and the refusals (one message, exit 1; usage, exit 2).
F=$DATA/fashion-mnist
mm-tokenize --format idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz \
	--labels $F/labels.txt --caption-template 'a photo of a {label}' -o fm 2>/dev/null
mm-train --data fm-00000.mms --out run --dim 32 --layers 2 --heads 2 --seq-len 80 --batch 8 \
	--steps 12 --lr 3e-3 --warmup 4 --ema 0.9 --threads 1 2>/dev/null
A="--model run --threads 1 --steps 4"
same() { if cmp -s "$1" "$2"; then echo "$3: same bytes"; else echo "$3: different"; fi; }
echo "-- images"
mm-sample $A --prompt 'a photo of a shirt' --image -o a -n 3 --batch 2 --grid a.png --seed 7 --max-tokens 0 2>err.txt
echo "exit $?"
sed 's/ in [0-9.]* s ([0-9.]* images\/s)/ in T s/' err.txt
ls a
mm-sample $A --prompt 'a photo of a shirt' --image -o b -n 3 --batch 3 --grid b.png --seed 7 --max-tokens 0 2>/dev/null >/dev/null
for f in 000 001 002; do same a/$f.png b/$f.png "seed 7 again, another batch size, $f"; done
same a.png b.png "grid"
mm-sample --model run --threads 2 --steps 4 --prompt 'a photo of a shirt' --image -o th2 -n 3 --batch 2 --seed 7 --max-tokens 0 2>/dev/null >/dev/null
for f in 000 001 002; do same a/$f.png th2/$f.png "2 threads against 1, $f"; done
mm-sample $A --prompt 'a photo of a shirt' --image -o c --seed 8 --max-tokens 0 2>/dev/null >/dev/null
same a/000.png c/000.png "seed 8"
mm-sample $A --prompt 'a photo of a shirt' --image -o g1 --cfg 1 --max-tokens 0 2>/dev/null >/dev/null
mm-sample $A --prompt 'a photo of a shirt' --image -o g3 --cfg 3 --cfg-interval 1,1 --max-tokens 0 2>/dev/null >/dev/null
mm-sample $A --prompt 'a photo of a shirt' --image -o g3b --cfg 3 --max-tokens 0 2>/dev/null >/dev/null
same g1/000.png g3/000.png "cfg 1 vs cfg 3 applied nowhere"
same g1/000.png g3b/000.png "cfg 1 vs cfg 3"
mm-sample $A --prompt 'a photo of a shirt' --image -o e --ema --sampler euler --max-tokens 0 2>/dev/null
mm-sample $A --image -o u --max-tokens 0 --recompute 2>/dev/null
ls e u
echo "-- text"
mm-sample $A --prompt 'a photo' --max-tokens 6 > t1.txt
mm-sample $A --prompt 'a photo' --max-tokens 6 > t2.txt
same t1.txt t2.txt "greedy"
mm-sample $A --prompt 'a photo' --max-tokens 6 --temperature 1 --top-k 20 --top-p 0.9 -n 3 --seed 4 > t3.txt
mm-sample $A --prompt 'a photo' --max-tokens 6 --temperature 1 --top-k 20 --top-p 0.9 -n 3 --seed 4 --batch 1 > t4.txt
same t3.txt t4.txt "sampled, batch 8 and 1"
grep -c '^a photo' t3.txt
echo "-- captions"
cp $T/fixtures/rgb8.png $T/fixtures/not_image.txt .
mm-sample --model run --threads 1 --caption a/000.png a/001.png rgb8.png --max-tokens 8 > cap.txt
echo "exit $?"
cut -f1 cap.txt
awk -F'\t' 'NF != 2 { bad = 1 } END { print (bad ? "bad" : "2 fields") }' cap.txt
mm-sample --model run --threads 1 --caption a/000.png a/001.png rgb8.png --max-tokens 8 --batch 1 > cap2.txt
same cap.txt cap2.txt "captions, batch 8 and 1 (the images read noised, each from its own draws)"
mm-sample --model run --threads 1 --caption a/000.png a/001.png rgb8.png --max-tokens 8 --read-t 1 > cap3.txt
echo "exit $?"
echo "-- errors"
cp run/ckpt-12.mmc bad.mmc
printf 'X' | dd of=bad.mmc bs=1 seek=300 conv=notrunc 2>/dev/null
mm-sample --model bad.mmc 2>&1; echo "exit $?"
mm-sample --model nowhere 2>&1; echo "exit $?"
mm-sample --model run --caption a/000.png missing.png 2>&1; echo "exit $?"
mm-sample --model run --caption not_image.txt 2>&1; echo "exit $?"
mm-sample --model run --prompt "$(printf '%090d' 0)" 2>&1; echo "exit $?"
mm-sample --model run --prompt 'a photo of a long shirt for the test' --image -o x 2>&1; echo "exit $?"
mm-sample --model run --ema --prompt a --max-tokens 1 2>&1 >/dev/null; echo "exit $?"
mm-train --data fm-00000.mms --out noema --dim 16 --layers 1 --heads 2 --seq-len 80 --batch 2 --steps 1 --threads 1 2>/dev/null
mm-sample --model noema --ema 2>&1; echo "exit $?"
echo "-- usage"
mm-sample --prompt a 2>&1; echo "exit $?"
mm-sample --model run --image 2>&1; echo "exit $?"
mm-sample --model run --top-k 3 2>&1; echo "exit $?"
mm-sample --model run --sampler rk4 2>&1; echo "exit $?"
mm-sample --model run --cfg-interval 0.8,0.2 2>&1; echo "exit $?"
mm-sample --model run --caption 2>&1; echo "exit $?"
mm-sample --model run --caption a.png --read-t 0 2>&1; echo "exit $?"
mm-sample --model run --caption a.png --prompt a 2>&1; echo "exit $?"
mm-sample --model run stray 2>&1; echo "exit $?"
mm-sample --model run --steps 0 2>&1; echo "exit $?"
