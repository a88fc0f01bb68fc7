# Every output path creates its missing directories, is checked writable before the long work
# starts (a --grid that cannot be written fails before any image is generated), and '-' is a
# usage error where the output is files, not a stream.
export OMP_WAIT_POLICY=passive
F=$DATA/fashion-mnist
mm-tokenize --format idx --labels $F/labels.txt --image-size 16 --patch 4 --caption-template 'a {label}' \
	$F/t10k-images-idx3-ubyte.gz $F/t10k-labels-idx1-ubyte.gz -o data/fm/x 2>/dev/null
echo "tokenize into new directories: exit $?"
touch afile
A="--dim 16 --layers 1 --heads 2 --seq-len 32 --batch 2 --steps 1 --threads 1"
echo "== train" >&2
mm-train --data data/fm/x-00000.mms --out runs/new/exp1 $A 2>/dev/null
echo "train into new directories: exit $?"
ls runs/new/exp1 | grep -c 'log.jsonl'
mm-train --data data/fm/x-00000.mms --out - $A
echo "train --out -: exit $?"
mm-train --data data/fm/x-00000.mms --out afile/run $A
echo "train --out under a file: exit $?"
echo "== sample" >&2
S="--model runs/new/exp1 --threads 1 --steps 1 --max-tokens 0 --image"
mm-sample $S -o img/a/b --grid grids/new/g.png -n 2 2>/dev/null
echo "sample into new directories: exit $?"
ls img/a/b grids/new
mm-sample $S -o - -n 1
echo "sample -o -: exit $?"
mm-sample $S -o img2 --grid - -n 1
echo "sample --grid -: exit $?"
mm-sample $S -o img3 --grid afile/g.png -n 2
echo "sample --grid under a file: exit $?"
echo "images generated before the refusal: $(ls img3 | wc -l)"
echo "== eval" >&2
E="--model runs/new/exp1 --data data/fm/x-00000.mms --max-docs 4 --threads 1"
mm-eval $E --json-file js/new/r.json >/dev/null 2>&1
echo "eval into new directories: exit $?"
grep -c '"docs"' js/new/r.json
mm-eval $E --json-file - >/dev/null
echo "eval --json-file -: exit $?"
mm-eval $E --json-file afile/r.json >/dev/null
echo "eval --json-file under a file: exit $?"
