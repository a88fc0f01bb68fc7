# make install puts the tools, man pages, bash completions, libmm.a and its headers under
# DESTDIR/PREFIX, and a program built against the installed header and library runs.
set -e
make -s -C "$T/.." install DESTDIR="$PWD/inst" PREFIX=/usr >/dev/null
cd inst/usr
ls bin share/man/man1 share/man/man5 share/man/man7 share/bash-completion/completions lib
cat > prog.c <<'C'
#include <stdio.h>
#include <mm/mm.h>
int main(void)
{
	mm_tokenizer *t;
	if (mm_tok_new_bytes(&t))
		return 1;
	printf("crc %08x vocab %u\n", mm_crc32c(0, "123456789", 9), mm_tok_vocab_size(t));
	mm_tok_free(t);
	return 0;
}
C
cc ${MM_SAN_FLAGS:-} -Iinclude $(pkg-config --cflags openblas libpng) prog.c lib/libmm.a -fopenmp \
	$(pkg-config --libs openblas libpng libzstd jansson libjpeg zlib) -lm -o prog
./prog
