# The bash completion made from each tool's option table (cmd/completion.sh): every flag of
# --list-options completes from "-", a value of names completes to the names, a directory
# option to directories, a file option to files.
mkdir -p d1 && touch f1.txt
for t in mm-tokenize mm-train mm-sample mm-eval mm-train-mpi; do
	sh "$T/../cmd/completion.sh" "$MM/$t" >"$t.bash" || echo "$t: no completion"
done
comp() { # TOOL WORD...: what bash completes for the last word
	t=$1
	shift
	bash -c '. ./"$0".bash; COMP_WORDS=("$0" "$@"); COMP_CWORD=$#; _$(echo "$0" | tr - _); printf "%s\n" "${COMPREPLY[@]}"' \
		"$t" "$@" | sort | tr '\n' ' '
	echo
}
for t in mm-tokenize mm-train mm-sample mm-eval mm-train-mpi; do
	want=$("$t" --list-options | grep '^-' | cut -d' ' -f1 | sort | tr '\n' ' ')
	[ "$(comp "$t" -)" = "$want" ] && echo "$t: all $(echo "$want" | wc -w) flags complete from -"
done
comp mm-tokenize --fi
comp mm-tokenize --fit ''
comp mm-tokenize --format i
comp mm-tokenize --extract ''
comp mm-tokenize -o f
comp mm-tokenize --patch ''
comp mm-tokenize ''
comp mm-eval --sampler ''
comp mm-train --qk-norm ''
comp mm-train --out ''
comp mm-train ''
comp mm-train-mpi --dist
comp mm-sample --model f
