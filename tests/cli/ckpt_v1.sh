# A checkpoint of format version 1 (tests/golden/ckpt-v1.mmc, written by mm before q, k, v and
# gate, up became single tensors: a 2-layer model trained 3 of 6 steps with an EMA) loads: its
# samples (guided at every noise level, as then) and evaluation are what that release gave, byte
# for byte, and --resume continues it.
# The tokenizer is retrained here as it was then (the same settings give the same file).
set -e
F=$DATA/fashion-mnist
mkdir g
cp $T/golden/ckpt-v1.mmc g/ckpt-3.mmc
echo ckpt-3.mmc > g/latest
mm-sample --model g --ema --prompt 'a photo of a bag' --image -n 2 --steps 5 --cfg-interval 0,1 --max-tokens 0 -o s \
	--threads 2 >/dev/null 2>&1
md5sum s/000.png s/001.png
mm-sample --model g --max-tokens 12 --prompt 'a photo of' --threads 2 2>/dev/null | md5sum
mm-tokenize --format idx $F/train-images-idx3-ubyte.gz $F/train-labels-idx1-ubyte.gz --labels $F/labels.txt \
	--caption-template 'a photo of a {label}' --train-tokenizer tok.bin --vocab-size 264 --val-fraction 0.1 \
	-o fm 2>/dev/null
mm-eval --model g --data fm-val-00000.mms --max-docs 20 --threads 2 --json 2>/dev/null >eval.json
# agree TOL A B: files A and B hold as many numbers (one a line), each of A within TOL of B's,
# relative (TOL 0: the same number).
agree() {
	[ "$(wc -l < "$2")" = "$(wc -l < "$3")" ] &&
		paste "$2" "$3" | awk -F'\t' -v tol="$1" '$1 != $2 { d = $1 - $2; if (d < 0) d = -d; m = $2 < 0 ? -$2 : $2;
			if (!(m > 0 && d / m <= tol)) bad++ } END { exit bad > 0 }'
}
# The release's evaluation (tests/golden/ckpt-v1.eval.json, printed then with 17 digits; mm now
# prints reals shortest): the same numbers, token by token, to 1e-9 relative: training's attention
# now sums block by block, in another order than the release's (its samples, from the cached
# attention, are the same bytes above); under make test SANITIZE=1, whose instrumented code sums
# in yet another order, to 1e-8.
tol=1e-9
[ -n "${MM_SAN_FLAGS:-}" ] && tol=1e-8
tr ',:{}[]' '\n\n\n\n\n\n' < eval.json > a.txt
tr ',:{}[]' '\n\n\n\n\n\n' < $T/golden/ckpt-v1.eval.json > b.txt
agree $tol a.txt b.txt && echo "evaluation: the release's numbers"
# Resumed: step 4's losses come from the restored weights and data position alone: the
# release's to the last digit here, and within 1e-6 under SANITIZE=1, whose instrumented
# attention rounds the image loss a last bit differently; the steps after it also depend on the
# gradient's rounding, which may differ by a last bit.
mm-train --resume g 2>/dev/null
sed -n 's/.*"step":4,"loss":\([^,]*\),"loss_text":\([^,]*\),"loss_image":\([^,]*\),.*/\1\n\2\n\3/p' g/log.jsonl > a.txt
printf '32.73255\n5.5298004\n5.4405503\n' > b.txt
tol=0
[ -n "${MM_SAN_FLAGS:-}" ] && tol=1e-6
if agree $tol a.txt b.txt; then echo "step 4: the release's losses"; else echo "step 4" $(cat a.txt); fi
awk -F'[:,}]' '/"loss":/ && !/"step":4,/ {printf "step %s loss %.5g\n", $2, $4}
	/val_loss/ {printf "step %s val %.5g %.5g\n", $2, $4, $6}' g/log.jsonl
ls g
