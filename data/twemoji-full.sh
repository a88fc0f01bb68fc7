#!/bin/sh
# The whole Twemoji set for make experiment-twemoji, from npm emoji-datasource-twitter.
#   sh data/twemoji-full.sh OUTDIR
# Writes OUTDIR/img/N.png (the 64x64 Twitter images, as published) and three JSONL manifests
# in ImageFolder form ({"file_name": ..., "text": NAME}): train.jsonl (names not held out),
# heldout.jsonl (names listed in data/twemoji-heldout.txt) and all.jsonl; captions.txt and
# heldout-captions.txt hold the distinct names, one per line. Every emoji with a Twitter image
# is taken (1,911), its name lower-cased as its caption; transparency is composed over white
# by mm-tokenize. TWEMOJI_TGZ names a local copy of the package instead of `npm pack`.
# Pictures: Twemoji by Twitter, Inc. and contributors, CC BY 4.0; names and the package: MIT
# (emoji-data by Cal Henderson / iamcal). Same package, same files, byte for byte.
set -eu
LC_ALL=C
export LC_ALL
VERSION=${TWEMOJI_VERSION:-16.0.0}
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 1 ] || { echo "usage: sh data/twemoji-full.sh OUTDIR" >&2; exit 2; }
out=$1
die() { echo "twemoji-full.sh: $*" >&2; exit 1; }
command -v jq >/dev/null 2>&1 || die "needs jq (apt-get install jq)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
if [ -n "${TWEMOJI_TGZ:-}" ]; then
	tgz=$TWEMOJI_TGZ
else
	command -v npm >/dev/null 2>&1 || die "needs npm (apt-get install npm)"
	(cd "$tmp" && npm pack --silent "emoji-datasource-twitter@$VERSION" >/dev/null) ||
		die "npm pack emoji-datasource-twitter@$VERSION failed"
	tgz=$tmp/emoji-datasource-twitter-$VERSION.tgz
fi
tar -xzf "$tgz" -C "$tmp" package/emoji.json package/img/twitter/64 || die "$tgz: not the package"
pkg=$tmp/package
mkdir -p "$out/img"
rm -f "$out"/img/*.png
# One line per emoji in Unicode's order: image file, name.
jq -r '[.[] | select(.has_img_twitter)] | sort_by(.sort_order) | .[]
	| [.image, (.name | ascii_downcase)] | @tsv' "$pkg/emoji.json" >"$tmp/all.tsv"
n=$(wc -l <"$tmp/all.tsv")
[ "$n" -eq 1911 ] || die "emoji.json: $n emoji with a Twitter image, want 1911 (version $VERSION)"
grep -v '^#' "$here/twemoji-heldout.txt" >"$tmp/heldout.txt"
tab=$(printf '\t')
i=0
: >"$out/all.jsonl.tmp"
: >"$out/train.jsonl.tmp"
: >"$out/heldout.jsonl.tmp"
while IFS=$tab read -r image name; do
	f=$(printf '%04d.png' "$i")
	cp "$pkg/img/twitter/64/$image" "$out/img/$f"
	line=$(jq -n -c --arg f "img/$f" --arg t "$name" '{file_name: $f, text: $t}')
	echo "$line" >>"$out/all.jsonl.tmp"
	if grep -qxF "$name" "$tmp/heldout.txt"; then
		echo "$line" >>"$out/heldout.jsonl.tmp"
	else
		echo "$line" >>"$out/train.jsonl.tmp"
	fi
	i=$((i + 1))
done <"$tmp/all.tsv"
cut -f2 "$tmp/all.tsv" | sort -u >"$out/captions.txt.tmp"
grep -vxF -f "$tmp/heldout.txt" "$out/captions.txt.tmp" >"$out/train-captions.txt.tmp"
cp "$tmp/heldout.txt" "$out/heldout-captions.txt.tmp"
for f in all.jsonl train.jsonl heldout.jsonl captions.txt train-captions.txt heldout-captions.txt; do
	mv "$out/$f.tmp" "$out/$f"
done
echo "twemoji-full.sh: $(wc -l <"$out/train.jsonl") training and $(wc -l <"$out/heldout.jsonl") held-out emoji in $out"
