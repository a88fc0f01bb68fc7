#!/bin/sh
# Regenerates the PyTorch fixtures tests/ref/tiny_a.bin and tiny_b.bin (`make ref`).
# Uses Debian's python3-torch under /usr/bin/python3 on purpose: another python3 may come
# first on PATH. Same bytes on every run (fixed seeds, one thread).
set -eu
cd "$(dirname "$0")/../.."
py=/usr/bin/python3
if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
	echo "tests/ref/make.sh: $py cannot import torch and numpy (install them: sh .ci/deps ref)" >&2
	exit 1
fi
exec "$py" tests/ref/gen.py "$@"
