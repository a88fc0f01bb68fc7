# --train-tokenizer learns a BPE tokenizer from the input text (written atomically) and
# tokenizes with it; --tokenizer FILE gives the same shards; extraction needs that tokenizer
# and round-trips to the same bytes. Without -o only the tokenizer is made.
set -e
t="$DATA"/text/kjv-genesis-exodus.txt
head -c 20000 "$t" >kjv.txt
mm-tokenize --train-tokenizer kjv.tok --vocab-size 400 -o a kjv.txt 2>err
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
mm-tokenize --tokenizer kjv.tok -o b kjv.txt 2>/dev/null
cmp a-00000.mms b-00000.mms && echo same with --tokenizer
mm-tokenize --list a-00000.mms | tail -n 1
mm-tokenize --train-tokenizer only.tok --vocab-size 400 kjv.txt
cmp kjv.tok only.tok && echo same tokenizer
mm-tokenize --format text --train-tokenizer piped.tok --vocab-size 400 -o c - <kjv.txt 2>/dev/null
cmp kjv.tok piped.tok && cmp a-00000.mms c-00000.mms && echo same from stdin
mm-tokenize --extract x a-00000.mms || echo "exit $?"
mm-tokenize --tokenizer kjv.tok --extract x a-00000.mms 2>/dev/null
mm-tokenize --tokenizer kjv.tok -o again x/manifest.jsonl 2>/dev/null
cmp a-00000.mms again-00000.mms && echo identical
ls
