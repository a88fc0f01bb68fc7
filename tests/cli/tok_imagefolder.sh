# JSONL manifest in Hugging Face ImageFolder form: one [caption, image] document per line,
# image names relative to the manifest; a line without file_name is text only, without text
# image only. Listed, extracted and tokenized again to the same bytes.
set -e
mkdir in
cp "$T"/fixtures/tokenize/a.png "$T"/fixtures/tokenize/b.png "$T"/fixtures/tokenize/c.png in/
cat >in/m.jsonl <<'END'
{"file_name": "a.png", "text": "negative squared ab"}
{"file_name": "b.png"}

{"text": "just words", "extra": 1}
{"file_name": "c.png", "text": "large yellow square"}
END
mm-tokenize --image-size 16 --channels 3 --patch 8 -o out in/m.jsonl 2>err
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
mm-tokenize --list out-00000.mms
mm-tokenize --extract x out-00000.mms
ls x
cat x/manifest.jsonl
mm-tokenize --image-size 16 --channels 3 --patch 8 -o again x/manifest.jsonl 2>/dev/null
cmp out-00000.mms again-00000.mms && echo identical
