# MNIST-family IDX files, raw and gzip-compressed: images with their labels become
# [caption, image] documents, the caption from --caption-template and the --labels names.
# Both forms give the same shard; without labels the documents are images only.
set -e
# 3 images of 8 rows x 8 columns: pixel values 0..63, 64..127, 128..191.
{
	printf '\000\000\010\003\000\000\000\003\000\000\000\010\000\000\000\010'
	i=0
	while [ $i -lt 192 ]; do printf "\\$(printf %o $i)"; i=$((i + 1)); done
} >img-idx3-ubyte
printf '\000\000\010\001\000\000\000\003\000\002\001' >lab-idx1-ubyte
printf 'zero\none\ntwo\n' >names.txt
gzip -c img-idx3-ubyte >img.gz
gzip -c lab-idx1-ubyte >lab.gz
mm-tokenize --image-size 8 --patch 4 --labels names.txt --caption-template 'digit {label} ({label})' \
	-o raw img-idx3-ubyte lab-idx1-ubyte 2>err
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
mm-tokenize --image-size 8 --patch 4 --labels names.txt --caption-template 'digit {label} ({label})' \
	-o gz img.gz lab.gz 2>/dev/null
cmp raw-00000.mms gz-00000.mms && echo raw and gzip identical
mm-tokenize --list raw-00000.mms
mm-tokenize --extract x raw-00000.mms
cat x/manifest.jsonl
mm-tokenize --image-size 8 --patch 4 -o again x/manifest.jsonl 2>/dev/null
cmp raw-00000.mms again-00000.mms && echo identical
mm-tokenize --image-size 8 --patch 4 -o num --format idx img.gz lab.gz 2>/dev/null
mm-tokenize --extract y num-00000.mms 2>/dev/null
cat y/manifest.jsonl
mm-tokenize --image-size 4 --patch 2 -o alone img.gz 2>/dev/null
mm-tokenize --list alone-00000.mms
