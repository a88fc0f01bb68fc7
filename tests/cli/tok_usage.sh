# Usage errors: exit status 2, a message and a hint on stderr, nothing written.
u() {
	mm-tokenize "$@"
	echo "exit $?"
}
touch in.txt
u
u in.txt
u -o out
u --bogus -o out in.txt
u -o
u --format xml -o out in.txt
u --channels 2 -o out in.txt
u --channels 4 -o out in.txt
u --image-size 28x -o out in.txt
u --image-size 0 -o out in.txt
u --image-size 30 -o out in.txt
u --image-size 32x16 --patch 16 --fit squash -o out in.txt
u --background red -o out in.txt
u --background '#12345' -o out in.txt
u --max-pixels 10Q -o out in.txt
u --shard-size 0 -o out in.txt
u --val-fraction 1.5 -o out in.txt
u --threads 0 -o out in.txt
u --seed -1 -o out in.txt
u --vocab-size 300 -o out in.txt
u --train-tokenizer t.tok -o out in.txt
u --train-tokenizer t.tok --vocab-size 100 -o out in.txt
u --tokenizer t.tok --train-tokenizer t.tok --vocab-size 300 -o out in.txt
u --doc-separator '' -o out in.txt
u -o out - -
u --list
u --list --extract d x.mms
u --list -o out x.mms
u --extract d --image-size 8 x.mms
u --list --tokenizer t.tok x.mms
ls
