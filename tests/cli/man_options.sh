# The OPTIONS section of each tool's man page names exactly the flags of its option table: the
# flags on the tag line of every .TP there against the tool's hidden --list-options. A flag
# added on either side alone fails the test. man/mm-train.1 also documents mm-train-mpi: the
# flags of its subsection marked "mm-train-mpi only" belong to mm-train-mpi alone.
man_flags() { # PAGE all|plain
	awk -v mode="$2" '
		/^\.SH/ { in_opts = ($0 ~ /^\.SH OPTIONS/); tag = 0; next }
		!in_opts { next }
		/^\.SS/ { mpi = ($0 ~ /mm-train-mpi only/); next }
		tag { tag = 0; if (!(mpi && mode == "plain")) print }
		/^\.TP/ { tag = 1 }
	' "$1" | sed 's/\\f[BIRP]/ /g; s/\\//g' | grep -oE '(^|[ "])--?[A-Za-z0-9][A-Za-z0-9-]*' |
		sed 's/^[ "]*//' | sort -u
}
status=0
check() { # TOOL PAGE all|plain
	man_flags "$T/../man/$2" "$3" >man.txt
	"$1" --list-options | grep '^-' | cut -d' ' -f1 | sort -u >table.txt
	if [ ! -s table.txt ] || [ ! -s man.txt ]; then
		echo "$1: no flags found"
		status=1
	elif diff man.txt table.txt >diff.txt; then
		echo "$1: $(wc -l <table.txt) flags, the same in $2"
	else
		echo "$1: $2 and the option table disagree (<: man page only, >: table only)"
		grep '^[<>]' diff.txt
		status=1
	fi
}
check mm-tokenize mm-tokenize.1 all
check mm-train mm-train.1 plain
check mm-train-mpi mm-train.1 all
check mm-sample mm-sample.1 all
check mm-eval mm-eval.1 all
exit $status
