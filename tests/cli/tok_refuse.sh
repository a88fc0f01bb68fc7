# Inputs are recognised by their content: what mm does not read is refused with one line that
# names the file and the formats mm reads, exit status 1, no output left. Text is text when
# it is UTF-8 (or --format text says so); a name that promises another format must hold it.
fx="$T"/fixtures/tokenize
printf 'PAR1\025\000\025\000PAR1' >t.parquet
printf 'RIFF\044\000\000\000WEBPVP8 \030\000\000\000' >t.webp
printf 'file_name,text\na.png,x\n' >t.csv
echo "just some text" >x.png
printf 'GIF89a\001\000\001\000' >t.gif
printf '\377\376t\000e\000x\000t\000' >utf16.txt
printf 'PAR1\025\000\025\000PAR1' | gzip >p.gz
for f in t.parquet t.webp t.csv x.png t.gif utf16.txt p.gz; do
	mm-tokenize -o out "$f"
	echo "$f: exit $?"
done
ls | grep mms || echo "no output left"
# --format text takes any bytes as text.
mm-tokenize --format text -o out utf16.txt 2>/dev/null
echo "utf16.txt as --format text: exit $?"
