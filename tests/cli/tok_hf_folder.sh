# Hugging Face ImageFolder as its users lay it out: a folder holding metadata.jsonl or
# metadata.csv (RFC 4180 quoting) is read through it, the caption field named by --text-key,
# and the text fields left unread are named in a warning; a folder of split subfolders
# (train/, test/) reads each in name order (--split NAME: that one only), and a class subfolder's name captions its images
# that have no caption file of their own. Compressed manifests read the same.
set -e
fx="$T"/fixtures/tokenize
G="--image-size 16 --channels 3 --patch 8"
f() { sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/'; }
mkdir j
cp "$fx"/a.png "$fx"/b.png j/
printf '{"file_name": "a.png", "caption": "red a"}\n{"file_name": "b.png", "caption": "blue b", "source": "web"}\n' >j/metadata.jsonl
echo "== jsonl, caption left unread"
mm-tokenize $G -o j0 j 2>&1 | f
echo "== jsonl, --text-key caption"
mm-tokenize $G --text-key caption -o j1 j 2>&1 | f
mm-tokenize --list j1-00000.mms
echo "== the same manifest gzip-compressed, read by name"
gzip -c j/metadata.jsonl >j/m.jsonl.gz
mm-tokenize $G --text-key caption -o j2 j/m.jsonl.gz 2>/dev/null
cmp j1-00000.mms j2-00000.mms && echo identical
echo "== the same on standard input"
gzip -c j/metadata.jsonl | (cd j && mm-tokenize $G --text-key caption --format jsonl -o ../j3 - 2>/dev/null)
cmp j1-00000.mms j3-00000.mms && echo identical
echo "== zstd JSONL; the same bytes under another name are zstd text"
mm-tokenize -o z1 "$fx"/z.jsonl.zst 2>/dev/null
mm-tokenize --list z1-00000.mms
cp "$fx"/z.jsonl.zst z.bin
mm-tokenize -o z0 z.bin 2>/dev/null
mm-tokenize --list z0-00000.mms
echo "== csv"
mkdir c
cp "$fx"/a.png "$fx"/b.png c/
printf 'file_name,caption,score,note\r\na.png,"red, with ""quotes""",0.5,kept\r\nb.png,"two\nlines",1,\r\n' >c/metadata.csv
mm-tokenize $G --text-key caption -o c1 c 2>&1 | f
mm-tokenize --extract cx c1-00000.mms >/dev/null 2>&1
cat cx/manifest.jsonl
printf 'name,text\na.png,x\n' >c/metadata.csv
mm-tokenize $G -o c2 c 2>&1 || echo "exit $?"
echo "== splits and classes"
mkdir -p s/train/cat s/train/dog s/test/cat
cp "$fx"/a.png s/train/cat/
cp "$fx"/b.png s/train/dog/
echo "a dog with a caption" >s/train/dog/b.txt
cp "$fx"/c.png s/test/cat/
mm-tokenize $G -o s1 s 2>&1 | f
mm-tokenize --extract sx s1-00000.mms >/dev/null 2>&1
cat sx/manifest.jsonl
echo "== --split train reads that split only; a split that is not there is named"
mm-tokenize $G --split train -o s2 s 2>&1 | f
mm-tokenize --extract sx2 s2-00000.mms >/dev/null 2>&1
cat sx2/manifest.jsonl
mm-tokenize $G --split val -o s3 s 2>&1 || echo "exit $?"
ls s3* 2>/dev/null || echo "no s3 shards"
echo "== an empty folder is named"
mkdir empty
mm-tokenize $G -o e empty 2>&1 || echo "exit $?"
