# What every tool shares through cmd/opts.c: -h/--help on stdout with exit 0, headed "Usage:";
# -V/--version; a misspelled long option named with its closest flag, exit 2; an unexpected
# argument; the defaults in --help printed from the values, whatever precedes --help.
for t in mm-tokenize mm-train mm-sample mm-eval mm-train-mpi; do
	$t -h >h.txt; echo "$t -h: exit $?, $(head -n 1 h.txt | cut -d' ' -f1-2)"
	$t --help | cmp -s - h.txt && echo "$t --help: the same"
	$t -V; $t --version; echo "exit $?"
done
mm-train --stepz 3 --out x; echo "exit $?"
mm-tokenize --trheads 2 -o x a.txt; echo "exit $?"
mm-sample --temp 1 --model m; echo "exit $?"
mm-eval --bdp; echo "exit $?"
mm-eval --zzzzzz; echo "exit $?"
mm-train --dta x; echo "exit $?"
mm-train --out x stray; echo "exit $?"
mm-sample --help=1; echo "exit $?"
mm-train --data; echo "exit $?"
mm-tokenize -q; echo "exit $?"
mm-train --dim 512 --lr 1 --help | grep -e '--dim' -e '--lr'
mm-tokenize --max-pixels 1K --help | grep -e '--max-pixels' -e '--background' -e '--fit'
mm-sample --cfg-interval 0.5,1 -h | grep -e '--cfg-interval' -e '--sampler' -e 'ODE sampler'
mm-eval -h | grep -e '--bpd-t1'
# "--" ends the options: what follows is an input even when it starts with a dash.
printf 'hello\n' >-x.txt
mm-tokenize -o out -- -x.txt 2>/dev/null; echo "exit $?"; ls out-00000.mms
mm-tokenize -o out -- -y.txt 2>&1; echo "exit $?"
