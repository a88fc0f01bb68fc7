# JSONL manifest in the interleaved (OBELICS) form: texts and images in order, one of the two
# at each position; a text may be {"file": NAME}. Text that is not UTF-8 is kept as bytes,
# counted, and extracted through a {"file": ...} entry; the round trip is byte-identical.
set -e
mkdir in
cp "$T"/fixtures/tokenize/a.png "$T"/fixtures/tokenize/b.png in/
printf 'caf\351 \377 bytes' >in/latin1.txt
cat >in/m.jsonl <<'END'
{"texts": ["two pictures:", null, "and", null, "the end"], "images": [null, "a.png", null, "b.png", null]}
{"texts": [null, "caption after"], "images": ["b.png", null]}
{"texts": [{"file": "latin1.txt"}], "images": [null]}
{"texts": ["caf\u00e9 \u2615"], "images": [null], "url": "ignored"}
END
mm-tokenize --image-size 8 --patch 2 -o out in/m.jsonl 2>err
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
mm-tokenize --list out-00000.mms
mm-tokenize --extract x out-00000.mms
cat x/manifest.jsonl
cmp x/00000002-0.txt in/latin1.txt && echo latin1 kept
mm-tokenize --image-size 8 --patch 2 -o again x/manifest.jsonl 2>/dev/null
cmp out-00000.mms again-00000.mms && echo identical
