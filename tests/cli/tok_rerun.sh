# Rerunning mm-tokenize with the same -o PREFIX: the new set replaces the old one whole (a
# smaller run removes the older shards past its own), an interrupted run leaves the old set
# as it was and says so, missing directories of PREFIX are created, and '-' or an unusable
# directory is refused before any input is read.
i=0
while [ $i -lt 300 ]; do printf 'document number %d with some words\n\n' $i; i=$((i + 1)); done >big.txt
head -n 40 big.txt >small.txt
echo "== big" >&2
mm-tokenize --shard-size 2K --val-fraction 0.3 -o d/e/x big.txt
echo "big: exit $?"
ls d/e
echo "== small" >&2
mm-tokenize --shard-size 2K --val-fraction 0.3 -o d/e/x small.txt
echo "small: exit $?"
ls d/e
mm-tokenize --list d/e/x-*.mms | tail -n 1
cp -r d/e before
# SIGINT with one shard of the new run sealed and the next under way: the input stays open.
echo "== interrupted" >&2
mkfifo in
mm-tokenize --format text --shard-size 1K -o d/e/x - <in &
pid=$!
exec 3>in
cat big.txt >&3
n=0
while [ $n -lt 100 ] && [ "$(ls d/e | grep -c 'tmp')" -lt 2 ]; do sleep 0.1; n=$((n + 1)); done
[ $n -lt 100 ] && echo "new shards under temporary names"
kill -INT $pid
{ wait $pid; } 2>/dev/null
echo "interrupted: exit $?"
exec 3>&-
ls d/e
diff -r before d/e && echo "old set unchanged"
echo "== refused" >&2
mm-tokenize -o - small.txt
echo "dash: exit $?"
touch file
mm-tokenize -o file/x nosuch.txt
echo "not a directory: exit $?"
mm-tokenize -o d/ small.txt
echo "trailing slash: exit $?"
mm-tokenize --train-tokenizer - --vocab-size 300 small.txt
echo "tokenizer dash: exit $?"
mm-tokenize --extract - d/e/x-00000.mms
echo "extract dash: exit $?"
