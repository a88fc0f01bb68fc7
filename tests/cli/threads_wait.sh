# How OpenMP's threads wait: every tool that runs the model starts with a short spin at barriers
# (GOMP_SPINCOUNT 1000, lib/kernels.h), so that beside another run a waiting thread soon sleeps;
# a user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept. OMP_DISPLAY_ENV=verbose makes libgomp
# print what it read from the environment when it started.
unset OMP_WAIT_POLICY GOMP_SPINCOUNT
spin() { grep -o "GOMP_SPINCOUNT = '[0-9]*'" | head -n 1; }
for t in mm-train mm-sample mm-eval mm-train-mpi; do
	echo "$t: $(OMP_DISPLAY_ENV=verbose $t --version 2>&1 | spin), exit $?"
done
echo "GOMP_SPINCOUNT=7: $(GOMP_SPINCOUNT=7 OMP_DISPLAY_ENV=verbose mm-train --version 2>&1 | spin)"
echo "OMP_WAIT_POLICY=active: $(OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=verbose mm-sample --version 2>&1 | spin)"
echo "OMP_WAIT_POLICY=passive: $(OMP_WAIT_POLICY=passive OMP_DISPLAY_ENV=verbose mm-eval --version 2>&1 | spin)"
# the arguments and the standard input reach the program started again
printf 'x\n' | mm-sample --model nowhere --prompts - 2>&1 | head -n 1
