# --threads: images decoded in parallel, output bytes identical for every thread count
# (300 emoji PNGs, more than one batch; 2000 Fashion-MNIST images).
set -e
mm-tokenize --image-size 16 --channels 3 --patch 4 --threads 1 -o one "$DATA"/twemoji 2>/dev/null
mm-tokenize --image-size 16 --channels 3 --patch 4 --threads 2 -o two "$DATA"/twemoji 2>/dev/null
mm-tokenize --image-size 16 --channels 3 --patch 4 --threads 3 -o three "$DATA"/twemoji 2>/dev/null
cmp one-00000.mms two-00000.mms && cmp one-00000.mms three-00000.mms && echo emoji identical
mm-tokenize --list one-00000.mms | tail -n 1
fm="$DATA"/fashion-mnist
mm-tokenize --threads 1 -o f1 --labels "$fm"/labels.txt "$fm"/train-images-idx3-ubyte.gz "$fm"/train-labels-idx1-ubyte.gz 2>/dev/null
mm-tokenize --threads 2 -o f2 --labels "$fm"/labels.txt "$fm"/train-images-idx3-ubyte.gz "$fm"/train-labels-idx1-ubyte.gz 2>/dev/null
cmp f1-00000.mms f2-00000.mms && echo fashion-mnist identical
mm-tokenize --list f1-00000.mms | tail -n 1
