#!/bin/sh
# Runs every test program (tests/bin/test_*) and every CLI test (tests/cli/*.sh), prints one
# line per test and a closing "N passed, N failed" line; exits 1 if anything failed.
# A CLI test NAME.sh runs in a fresh directory with MM (the tools' directory), DATA (data/),
# and T (tests/) set; its stdout, stderr and exit status are compared with NAME.out, NAME.err
# and NAME.rc where those files exist (NAME.rc absent means 0).
# Set TESTS="pattern" to run only the tests whose name matches the shell pattern.
# Each test has TEST_TIMEOUT seconds (300): one that hangs is killed (SIGTERM, then SIGKILL 10 s
# later) and fails with its name and "timed out", so a hang never stalls the suite.
top=$(cd "$(dirname "$0")/.." && pwd)
tmp="$top/tests/tmp"
rm -rf "$tmp"
mkdir -p "$tmp"
pass=0
fail=0
failed=""
pattern=${TESTS:-*}
limit=${TEST_TIMEOUT:-300}
# timeout's status 124 (or 137 after the KILL) means the limit was reached.
timed_out() { [ "$1" = 124 ] || [ "$1" = 137 ]; }

report() { # name status seconds
	if [ "$2" = ok ]; then
		pass=$((pass + 1))
		printf 'ok    %-40s %ss\n' "$1" "$3"
	else
		fail=$((fail + 1))
		failed="$failed $1"
		printf 'FAIL  %-40s %ss\n' "$1" "$3"
	fi
}

for t in "$top"/tests/bin/test_*; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	case "$name" in $pattern) ;; *) continue ;; esac
	mkdir -p "$tmp/$name"
	start=$(date +%s)
	(cd "$tmp/$name" && T="$top/tests" DATA="$top/data" MM="$top/cmd" timeout -k 10 "$limit" "$t") \
		>"$tmp/$name.log" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		report "$name" ok $(($(date +%s) - start))
	else
		report "$name" fail $(($(date +%s) - start))
		timed_out $rc && echo "    timed out after $limit s"
		sed 's/^/    /' "$tmp/$name.log" | tail -n 30
	fi
done

for s in "$top"/tests/cli/*.sh; do
	[ -f "$s" ] || continue
	name=cli/$(basename "$s" .sh)
	case "$name" in $pattern) ;; *) continue ;; esac
	base=${s%.sh}
	dir="$tmp/$(basename "$base")"
	mkdir -p "$dir"
	start=$(date +%s)
	(cd "$dir" && T="$top/tests" DATA="$top/data" MM="$top/cmd" PATH="$top/cmd:$PATH" \
		timeout -k 10 "$limit" sh "$s") >"$dir.stdout" 2>"$dir.stderr"
	rc=$?
	want_rc=0
	[ -f "$base.rc" ] && want_rc=$(cat "$base.rc")
	why=""
	[ "$rc" = "$want_rc" ] || why="exit status $rc, expected $want_rc"
	timed_out $rc && why="timed out after $limit s"
	if [ -z "$why" ] && [ -f "$base.out" ] && ! cmp -s "$base.out" "$dir.stdout"; then why="stdout differs"; fi
	if [ -z "$why" ] && [ -f "$base.err" ] && ! cmp -s "$base.err" "$dir.stderr"; then why="stderr differs"; fi
	if [ -z "$why" ]; then
		report "$name" ok $(($(date +%s) - start))
	else
		report "$name" fail $(($(date +%s) - start))
		echo "    $why"
		[ -f "$base.out" ] && diff "$base.out" "$dir.stdout" | head -n 20 | sed 's/^/    out: /'
		[ -f "$base.err" ] && diff "$base.err" "$dir.stderr" | head -n 20 | sed 's/^/    err: /'
		tail -n 20 "$dir.stderr" | sed 's/^/    stderr: /'
	fi
done

echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
