# make install puts the tools, man pages, bash completions, libmm.a, its headers and mm.pc
# under DESTDIR/PREFIX; a program built through pkg-config against them runs; make uninstall
# then removes every file install put there.
set -e
make -s -C "$T/.." install DESTDIR="$PWD/inst" PREFIX=/usr >/dev/null
cd inst/usr
ls bin share/man/man1 share/man/man5 share/man/man7 share/bash-completion/completions lib lib/pkgconfig
cd ../..
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
# The installed mm.pc names /usr; the sysroot puts inst/ in front of its paths.
export PKG_CONFIG_PATH="$PWD/inst/usr/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$PWD/inst"
pkg-config --modversion mm
cc ${MM_SAN_FLAGS:-} $(pkg-config --cflags mm) prog.c $(pkg-config --libs mm) -o prog
./prog
make -s -C "$T/.." uninstall DESTDIR="$PWD/inst" PREFIX=/usr >/dev/null
echo "left after uninstall: $(find inst -type f | wc -l) files"
