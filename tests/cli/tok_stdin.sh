# '-' reads standard input: a list of input paths, or the content itself with --format jsonl
# or --format text. Each gives the same shard as the files named on the command line.
set -e
cp "$T"/fixtures/tokenize/*.png "$T"/fixtures/tokenize/*.txt .
printf '{"file_name": "a.png", "text": "one"}\n{"texts": ["two"], "images": [null]}\n' >m.jsonl
printf 'para one\n\npara two\n' >t.txt
mm-tokenize -o files a.png b.png m.jsonl t.txt 2>/dev/null
printf 'a.png\nb.png\n\nm.jsonl\nt.txt\n' | mm-tokenize -o paths - 2>/dev/null
cmp files-00000.mms paths-00000.mms && echo paths identical
mm-tokenize -o j1 m.jsonl 2>/dev/null
mm-tokenize --format jsonl -o j2 - <m.jsonl 2>/dev/null
cmp j1-00000.mms j2-00000.mms && echo jsonl identical
mm-tokenize -o t1 t.txt 2>/dev/null
mm-tokenize --format text -o t2 - <t.txt 2>err
cmp t1-00000.mms t2-00000.mms && echo text identical
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
