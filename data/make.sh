#!/bin/sh
# Regenerates the data subsets under data/ from their public sources, then checks them.
#   sh data/make.sh [fashion-mnist|twemoji|text|check]...   (no argument: all four)
# Sources (see data/README.md):
#   fashion-mnist  Debian dataset-fashion-mnist, IDX files in $FMNIST_DIR
#   twemoji        npm emoji-datasource-twitter@$TWEMOJI_VERSION (fetched with `npm pack`,
#                  or a local tarball given as $TWEMOJI_TGZ); needs jq
#   text           Debian bible-kjv (the `bible` program)
# Hand-written files (README.md, twemoji/LICENSE, text/LICENSE) are not touched.
# Everything written depends only on the sources: the same sources give the same bytes
# (gzip -n drops the name and time stamp; the gzip stream itself depends on gzip's version).
set -eu
LC_ALL=C
export LC_ALL

FMNIST_DIR=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}
FMNIST_TRAIN=${FMNIST_TRAIN:-2000}
FMNIST_TEST=${FMNIST_TEST:-500}
TWEMOJI_VERSION=${TWEMOJI_VERSION:-16.0.0}
TWEMOJI_COUNT=${TWEMOJI_COUNT:-300}
KJV_RANGE=${KJV_RANGE:-Gen1:1-Ex40:38}

here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

die() { echo "make.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "needs '$1' ($2)"; }

# Writes $1 as four big-endian bytes (IDX counts and dimensions are big-endian). The octal
# escapes have to be in the format string, hence the variable there.
# shellcheck disable=SC2059
be32() {
	printf "\\$(printf %03o $(($1 >> 24 & 255)))\\$(printf %03o $(($1 >> 16 & 255)))"
	printf "\\$(printf %03o $(($1 >> 8 & 255)))\\$(printf %03o $(($1 & 255)))"
}

# Prints the header of an IDX stream (read from stdin) as decimal words:
# magic, then one size per dimension.
idx_header() {
	head -c 16 | od -An -v -tu1 | awk '{
		n = $4; printf "%d", $3 * 256 + $4
		for (i = 0; i < n; i++) {
			b = 5 + 4 * i; printf " %d", (($b * 256 + $(b+1)) * 256 + $(b+2)) * 256 + $(b+3)
		}
		printf "\n" }'
}

# idx_subset SRC.gz DST.gz N: the first N items of an IDX file, header count rewritten.
idx_subset() {
	# shellcheck disable=SC2046 # the header words are meant to split
	set -- "$1" "$2" "$3" $(zcat "$1" | idx_header)
	src=$1 dst=$2 n=$3 magic=$4 count=$5
	[ "$magic" = 2049 ] || [ "$magic" = 2051 ] || die "$src: IDX magic $magic, want 2049 or 2051"
	[ "$count" -ge "$n" ] || die "$src: holds $count items, want $n"
	ndim=$((magic - 2048))
	hdr=$((4 + 4 * ndim))
	item=1 d=6
	while [ "$d" -le $((ndim + 4)) ]; do
		eval "item=\$((item * \${$d}))"
		d=$((d + 1))
	done
	{
		zcat "$src" | head -c 4
		be32 "$n"
		zcat "$src" | head -c "$hdr" | tail -c $((hdr - 8))
		zcat "$src" | tail -c +$((hdr + 1)) | head -c $((n * item))
	} | gzip -9n >"$tmp/idx.gz"
	mv "$tmp/idx.gz" "$dst"
}

make_fashion_mnist() {
	out=$here/fashion-mnist
	doc=/usr/share/doc/dataset-fashion-mnist
	[ -r "$FMNIST_DIR/train-images-idx3-ubyte.gz" ] ||
		die "no $FMNIST_DIR/train-images-idx3-ubyte.gz (apt-get install dataset-fashion-mnist)"
	mkdir -p "$out"
	for set in train:"$FMNIST_TRAIN" t10k:"$FMNIST_TEST"; do
		name=${set%%:*} n=${set#*:}
		idx_subset "$FMNIST_DIR/$name-images-idx3-ubyte.gz" "$out/$name-images-idx3-ubyte.gz" "$n"
		idx_subset "$FMNIST_DIR/$name-labels-idx1-ubyte.gz" "$out/$name-labels-idx1-ubyte.gz" "$n"
	done
	# The class names of the upstream README's label table, lower-cased, in label order.
	printf '%s\n' t-shirt/top trouser pullover dress coat sandal shirt sneaker bag 'ankle boot' \
		>"$out/labels.txt"
	cp "$doc/copyright" "$out/LICENSE"
}

make_twemoji() {
	out=$here/twemoji
	need jq "apt-get install jq"
	if [ -n "${TWEMOJI_TGZ:-}" ]; then
		tgz=$TWEMOJI_TGZ
	else
		need npm "apt-get install npm"
		(cd "$tmp" && npm pack --silent "emoji-datasource-twitter@$TWEMOJI_VERSION" >/dev/null)
		tgz=$tmp/emoji-datasource-twitter-$TWEMOJI_VERSION.tgz
	fi
	tar -xzf "$tgz" -C "$tmp" package/emoji.json package/img/twitter/64
	pkg=$tmp/package
	# Evenly spaced picks over Unicode's ordering (sort_order) keep every category in the set.
	# Left out: emoji with no Twitter image, the skin-tone/hair "Component" swatches, and those
	# superseded by a newer entry (obsoleted_by). Skin-tone variants are not top-level entries.
	# The file name is the short name made safe ("+1" -> "plus1", other odd bytes -> "_").
	jq -r --argjson want "$TWEMOJI_COUNT" '
		[.[] | select(.has_img_twitter and .category != "Component" and .obsoleted_by == null)]
		| sort_by(.sort_order) | length as $n
		| [range(0; $want) | . * $n / $want | floor] as $picks
		| $picks[] as $i | .[$i]
		| [.image, (.short_name | ascii_downcase | gsub("\\+"; "plus") | gsub("[^a-z0-9_-]"; "_")),
		   (.name | ascii_downcase)] | @tsv' "$pkg/emoji.json" >"$tmp/picks.tsv"
	[ "$(wc -l <"$tmp/picks.tsv")" -eq "$TWEMOJI_COUNT" ] || die "emoji.json: too few emoji"
	[ "$(cut -f2 "$tmp/picks.tsv" | sort -u | wc -l)" -eq "$TWEMOJI_COUNT" ] ||
		die "two picked emoji map to the same file name"
	mkdir -p "$out"
	rm -f "$out"/*.png "$out"/*.txt "$out/manifest.jsonl"
	tab=$(printf '\t')
	while IFS=$tab read -r image name caption; do
		cp "$pkg/img/twitter/64/$image" "$out/$name.png"
		# No final newline: the sidecar holds exactly the caption, as in the manifest.
		printf '%s' "$caption" >"$out/$name.txt"
	done <"$tmp/picks.tsv"
	jq -R -c 'split("\t") | {file_name: (.[1] + ".png"), text: .[2]}' "$tmp/picks.tsv" \
		>"$out/manifest.jsonl"
}

make_text() {
	out=$here/text
	need bible "apt-get install bible-kjv"
	mkdir -p "$out"
	# One verse per line with its reference; a blank line before each new chapter, so the
	# text splits into one document per chapter.
	bible -f "$KJV_RANGE" | awk '{
		ch = $1; sub(/:.*/, "", ch)
		if (NR > 1 && ch != prev) print ""
		prev = ch; print }' >"$tmp/kjv.txt"
	[ -s "$tmp/kjv.txt" ] || die "bible printed nothing for $KJV_RANGE"
	mv "$tmp/kjv.txt" "$out/kjv-genesis-exodus.txt"
}

# Reads every subset back: IDX headers and payload against the sources, the emoji manifest
# against the folder, and prints the label histograms.
check() {
	out=$here/fashion-mnist
	for set in train:"$FMNIST_TRAIN" t10k:"$FMNIST_TEST"; do
		name=${set%%:*} n=${set#*:}
		h=$(zcat "$out/$name-images-idx3-ubyte.gz" | idx_header)
		[ "$h" = "2051 $n 28 28" ] || die "$name images: header '$h', want '2051 $n 28 28'"
		h=$(zcat "$out/$name-labels-idx1-ubyte.gz" | idx_header)
		[ "$h" = "2049 $n" ] || die "$name labels: header '$h', want '2049 $n'"
		size=$(zcat "$out/$name-images-idx3-ubyte.gz" | wc -c)
		[ "$size" -eq $((16 + n * 784)) ] || die "$name images: $size bytes"
		size=$(zcat "$out/$name-labels-idx1-ubyte.gz" | wc -c)
		[ "$size" -eq $((8 + n)) ] || die "$name labels: $size bytes"
		if [ -r "$FMNIST_DIR/$name-images-idx3-ubyte.gz" ]; then
			for f in images-idx3-ubyte:16:784 labels-idx1-ubyte:8:1; do
				kind=${f%%:*} rest=${f#*:}
				hdr=${rest%%:*} item=${rest#*:}
				zcat "$FMNIST_DIR/$name-$kind.gz" | tail -c +$((hdr + 1)) |
					head -c $((n * item)) >"$tmp/a"
				zcat "$out/$name-$kind.gz" | tail -c +$((hdr + 1)) >"$tmp/b"
				cmp -s "$tmp/a" "$tmp/b" || die "$name-$kind: payload differs from the source"
			done
		fi
		printf '%s labels (label count):' "$name"
		zcat "$out/$name-labels-idx1-ubyte.gz" | tail -c +9 | od -An -v -tu1 |
			tr -s ' ' '\n' | grep . | sort -n | uniq -c | awk '{ printf " %s:%s", $2, $1 }'
		echo
	done
	[ "$(wc -l <"$out/labels.txt")" -eq 10 ] || die "labels.txt: want 10 lines"

	out=$here/twemoji
	n=0
	while IFS= read -r line; do
		f=$(printf '%s\n' "$line" | jq -r .file_name)
		t=$(printf '%s\n' "$line" | jq -r .text)
		[ -r "$out/$f" ] || die "twemoji/manifest.jsonl: no $f"
		[ "$(cat "$out/${f%.png}.txt")" = "$t" ] || die "twemoji/${f%.png}.txt: caption differs"
		n=$((n + 1))
	done <"$out/manifest.jsonl"
	pngs=0
	for f in "$out"/*.png; do pngs=$((pngs + 1)); done
	[ "$n" -eq "$pngs" ] || die "twemoji: $pngs PNG files, $n in the manifest"
	echo "twemoji: $n images with captions"
	echo "text: $(grep -c . "$here/text/kjv-genesis-exodus.txt") verses," \
		"$(($(grep -c '^$' "$here/text/kjv-genesis-exodus.txt") + 1)) chapters," \
		"$(wc -c <"$here/text/kjv-genesis-exodus.txt") bytes"
	echo "total: $(du -sk "$here" | cut -f1) KiB"
}

[ $# -eq 0 ] && set -- fashion-mnist twemoji text check
for step in "$@"; do
	case "$step" in
	fashion-mnist) make_fashion_mnist ;;
	twemoji) make_twemoji ;;
	text) make_text ;;
	check) check ;;
	*) die "unknown step '$step' (fashion-mnist, twemoji, text, check)" ;;
	esac
done
