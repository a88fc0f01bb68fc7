# --help on stdout with exit 0; --version.
set -e
mm-tokenize --help | head -n 2
mm-tokenize --help | grep -c -- '^  -' >/dev/null
mm-tokenize -V
