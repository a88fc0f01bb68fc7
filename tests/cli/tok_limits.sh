# Oversized claims are refused before the memory they claim is allocated (man mm-tokenize,
# LIMITS): a PNG whose header says 100,000 x 100,000 pixels, and a JSONL line of 65 MiB. The
# process may use 512 MiB of address space at most, so an attempt to allocate what the input
# claims would fail with "out of memory" instead of the message naming the limit.
# (Not under make test SANITIZE=1: AddressSanitizer reserves terabytes of address space; the
# messages are checked all the same.)
[ -n "${MM_SAN_FLAGS:-}" ] || ulimit -v 524288
mkdir pics
# 100000 x 100000 RGB, one tiny IDAT; the chunks' CRCs are right.
printf '\211PNG\015\012\032\012\000\000\000\015IHDR\000\001\206\240\000\001\206\240\010\002\000\000\000' > pics/huge.png
printf '\047\060\234\237\000\000\000\014IDAT\170\234\143\140\240\075\000\000\000\144\000\001' >> pics/huge.png
printf '\206\144\074\065\000\000\000\000IEND\256\102\140\202' >> pics/huge.png
echo 'a huge picture' > pics/huge.txt
mm-tokenize --format dir pics --image-size 64 --channels 3 -o big 2>&1
echo "exit $?"
# One JSONL line of 65 MiB (a text of 'a's).
{ printf '{"text": "'; head -c 68157440 /dev/zero | tr '\0' a; printf '"}\n'; } > long.jsonl
mm-tokenize --format jsonl long.jsonl -o long 2>&1
echo "exit $?"
ls
