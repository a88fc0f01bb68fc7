# --val-fraction with --seed: a deterministic share of the documents goes to PREFIX-val-*.mms;
# the same seed gives the same split (whatever the thread count), another seed another one.
set -e
fm="$DATA"/fashion-mnist
run() { mm-tokenize -o "$1" --val-fraction 0.25 --seed "$2" --threads "$3" "$fm"/train-images-idx3-ubyte.gz 2>/dev/null; }
run a 7 1
run b 7 2
run c 8 1
ls
cmp a-00000.mms b-00000.mms && cmp a-val-00000.mms b-val-00000.mms && echo same seed, same split
cmp -s a-val-00000.mms c-val-00000.mms || echo other seed, other split
for p in a a-val c c-val; do mm-tokenize --list $p-00000.mms | tail -n 1; done
mm-tokenize -o all --val-fraction 1 "$fm"/t10k-images-idx3-ubyte.gz 2>/dev/null
ls all*
