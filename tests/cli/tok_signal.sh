# SIGTERM while a shard is being written: the unfinished shard's temporary file is removed and
# the exit status says which signal (128 + 15).
mkfifo in
mm-tokenize --format text -o out - <in 2>err &
pid=$!
exec 3>in
i=0
while [ $i -lt 1000 ]; do printf 'document %d\n\n' $i >&3; i=$((i + 1)); done
# The input stays open: the tool waits for more with the first shard under way.
n=0
while [ $n -lt 100 ] && [ -z "$(ls | grep 'out-00000.mms.tmp')" ]; do sleep 0.1; n=$((n + 1)); done
ls | grep -c 'out-00000.mms.tmp'
kill -TERM $pid
{ wait $pid; } 2>/dev/null
echo "exit $?"
exec 3>&-
ls
