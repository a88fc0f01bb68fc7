# WebDataset tar shards: members grouped by key (path without its last extension), key.png or
# key.jpg the image, key.txt or the text field of key.json (--text-key) its caption, read as
# a stream: two shards concatenated on standard input give the documents of both; gzip and
# zstd compressed shards read the same. Bad archives stop with a message naming the member.
set -e
fx="$T"/fixtures/tokenize
G="--image-size 16 --channels 3 --patch 8"
mkdir s
cp "$fx"/a.png s/000.png
echo "first caption" >s/000.txt
cp "$fx"/b.png s/001.png
printf '{"caption": "second caption", "id": "x1"}' >s/001.json
echo "text alone" >s/002.txt
mkdir s/sub
cp "$fx"/c.png s/sub/003.png
(cd s && tar cf ../one.tar 000.png 000.txt 001.png 001.json && tar cf ../two.tar 002.txt sub/003.png)
mm-tokenize $G --text-key caption -o a one.tar two.tar 2>err
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
mm-tokenize --list a-00000.mms
cat one.tar two.tar | mm-tokenize $G --text-key caption --format wds -o b - 2>/dev/null
cmp a-00000.mms b-00000.mms && echo stdin identical
cat one.tar two.tar | gzip >both.tar.gz
mm-tokenize $G --text-key caption -o c both.tar.gz 2>/dev/null
cmp a-00000.mms c-00000.mms && echo gzip identical
# Keys of 120 characters: GNU long names and pax path records; a ustar prefix (a folder of 80).
L=$(printf 'k%.0s' $(seq 1 120))
D=$(printf 'd%.0s' $(seq 1 80))
mkdir "s/$D"
cp "$fx"/a.png "s/$L.png"
echo "long caption" >"s/$L.txt"
cp "$fx"/b.png "s/$D/x.png"
echo "in a folder" >"s/$D/x.txt"
(cd s && tar --format=gnu -cf ../gnu.tar "$L.png" "$L.txt" && tar --format=pax -cf ../pax.tar "$L.png" "$L.txt" &&
	tar --format=ustar -cf ../ustar.tar "$D/x.png" "$D/x.txt")
for f in gnu pax ustar; do
	mm-tokenize $G -o "$f" "$f.tar" 2>/dev/null
	mm-tokenize --list "$f-00000.mms" | tail -n 1
done
# Without --text-key the .json caption is left unread, and the warning names it.
mm-tokenize $G -o d one.tar 2>&1 | sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/'
# Truncated in a member; a header that is not one; a size field out of range.
head -c 1000 one.tar >cut.tar
mm-tokenize $G --format wds -o e cut.tar 2>&1 || echo "exit $?"
{ head -c 3072 one.tar; head -c 512 /dev/zero | tr '\0' 'x'; } >garbage.tar
mm-tokenize $G --format wds -o e garbage.tar 2>&1 || echo "exit $?"
# The first header with a size of 8 GiB and its checksum made again.
{ head -c 124 one.tar; printf '77777777777\000'; tail -c +137 one.tar | head -c 12; printf '        '; tail -c +157 one.tar | head -c 356; } >h
sum=$(od -An -v -tu1 h | awk '{ for (i = 1; i <= NF; i++) s += $i } END { print s }')
{ head -c 148 h; printf '%06o\000 ' "$sum"; tail -c +157 h; head -c 512 /dev/zero; } >big.tar
mm-tokenize $G --format wds -o e big.tar 2>&1 || echo "exit $?"
ls | grep '^e-' || echo "no output left"
