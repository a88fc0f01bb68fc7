# --shard-size cuts the output into PREFIX-00000.mms, PREFIX-00001.mms ...: together they hold
# every document in order. A failure after some shards are finished removes them all.
set -e
fm="$DATA"/fashion-mnist
mm-tokenize --shard-size 16K -o cut --labels "$fm"/labels.txt "$fm"/t10k-images-idx3-ubyte.gz "$fm"/t10k-labels-idx1-ubyte.gz 2>/dev/null
mm-tokenize -o whole --labels "$fm"/labels.txt "$fm"/t10k-images-idx3-ubyte.gz "$fm"/t10k-labels-idx1-ubyte.gz 2>/dev/null
ls cut-* | wc -l
for f in cut-*; do [ "$(wc -c <"$f")" -lt 25000 ] || echo "$f is too large"; done
mm-tokenize --list cut-*.mms >cut.list
mm-tokenize --list whole-00000.mms >whole.list
cmp cut.list whole.list && echo same documents
tail -n 1 cut.list
mm-tokenize --extract x cut-*.mms 2>/dev/null
mm-tokenize --shard-size 16K -o again x/manifest.jsonl 2>/dev/null
for f in cut-*; do cmp "$f" "again${f#cut}"; done && echo identical
# A bad document near the end: nothing of the run is left.
cp "$T"/fixtures/tokenize/a.png .
head -c 300 a.png >cut.png
mm-tokenize --shard-size 16K -o fail --labels "$fm"/labels.txt "$fm"/t10k-images-idx3-ubyte.gz "$fm"/t10k-labels-idx1-ubyte.gz cut.png || echo "exit $?"
ls fail* 2>/dev/null | wc -l
