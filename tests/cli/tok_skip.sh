# --skip-bad: bad documents (missing, truncated, oversized images; invalid JSON; a label with
# no name) are counted in the summary and skipped; the others are written. Every document bad
# is still an error.
fx="$T"/fixtures/tokenize
cp "$fx"/a.png "$fx"/c.png .
head -c 300 a.png >cut.png
cat >m.jsonl <<'END'
{"file_name": "a.png", "text": "good"}
{"file_name": "gone.png", "text": "missing"}
{"file_name": "cut.png", "text": "truncated"}
not json
{"texts": ["also good"], "images": [null]}
{"file_name": "c.png", "text": "good"}
END
mm-tokenize --skip-bad --max-pixels 4096 -o out m.jsonl 2>err
echo "exit $?"
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
mm-tokenize --list out-00000.mms
mm-tokenize --skip-bad --max-pixels 4095 -o out2 m.jsonl 2>err
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
printf 'not json\n{"file_name": "gone.png"}\n' >allbad.jsonl
mm-tokenize --skip-bad -o none allbad.jsonl
echo "exit $?"
printf '\000\000\010\003\000\000\000\002\000\000\000\001\000\000\000\001\001\002' >i-idx3-ubyte
printf '\000\000\010\001\000\000\000\002\000\005' >l-idx1-ubyte
printf 'only\nthree\nnames\n' >names.txt
mm-tokenize --skip-bad --image-size 1 --patch 1 --labels names.txt -o lab i-idx3-ubyte l-idx1-ubyte 2>err
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
mm-tokenize --list lab-00000.mms
mm-tokenize --image-size 1 --patch 1 --labels names.txt -o lab2 i-idx3-ubyte l-idx1-ubyte
echo "exit $?"
ls
