# Bad input stops the run with one message naming the file (and the JSONL line), exit status
# 1, and leaves no output file behind: a missing input, a missing or truncated image, an image
# over --max-pixels, invalid JSON, a malformed document, an unknown IDX magic, IDX counts that
# differ. Each case prints its exit status and what is left in the directory.
fx="$T"/fixtures/tokenize
cp "$fx"/a.png "$fx"/c.png .
head -c 300 a.png >cut.png
case_() { # name, then the command
	name=$1
	shift
	echo "== $name" >&2
	"$@"
	echo "$name: exit $?"
	ls | grep mms || true
}
printf '{"file_name": "a.png"}\n{"file_name": "gone.png", "text": "x"}\n' >missing.jsonl
printf '{"file_name": "a.png"}\n\n{"file_name": "cut.png", "text": "x"}\n' >cut.jsonl
printf '{"file_name": "a.png"}\n{"text": "ok"}\n{"file_name": "a.png", "text": }\n' >bad.jsonl
printf '{"texts": ["a", "b"], "images": [null]}\n' >len.jsonl
printf '{"texts": ["a", null], "images": ["c.png", null]}\n' >both.jsonl
printf '[1, 2]\n' >array.jsonl
printf '{"caption": "no known key"}\n' >keys.jsonl
printf '\000\000\011\003\000\000\000\001\000\000\000\001\000\000\000\001\000' >bad-idx3-ubyte
printf '\000\000\010\003\000\000\000\002\000\000\000\001\000\000\000\001\000\000' >two-idx3-ubyte
printf '\000\000\010\001\000\000\000\003\000\000\000' >three-idx1-ubyte
printf '\000\000\010\003\000\000\000\003\000\000\000\001\000\000\000\001\000' >short-idx3-ubyte
case_ missing-input mm-tokenize -o out nosuch.jsonl
case_ missing-image mm-tokenize -o out missing.jsonl
case_ truncated-image mm-tokenize -o out cut.jsonl
case_ truncated-image-file mm-tokenize -o out a.png cut.png
case_ max-pixels mm-tokenize --max-pixels 4095 -o out c.png
case_ invalid-json mm-tokenize -o out bad.jsonl
case_ lengths mm-tokenize -o out len.jsonl
case_ both mm-tokenize -o out both.jsonl
case_ not-object mm-tokenize -o out array.jsonl
case_ no-keys mm-tokenize -o out keys.jsonl
case_ idx-magic mm-tokenize -o out bad-idx3-ubyte
case_ idx-forced mm-tokenize --format idx -o out c.png
case_ idx-counts mm-tokenize --image-size 1 --patch 1 -o out two-idx3-ubyte three-idx1-ubyte
case_ idx-short mm-tokenize --image-size 1 --patch 1 -o out short-idx3-ubyte
case_ idx-labels-alone mm-tokenize -o out three-idx1-ubyte
case_ labels-file mm-tokenize --labels nosuch.txt -o out a.png
case_ not-a-dir mm-tokenize --format dir -o out a.png
case_ out-dir mm-tokenize -o a.png/out a.png
case_ shard-list mm-tokenize --list a.png
