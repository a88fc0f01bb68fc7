# A folder of images with sidecar captions: image files in byte order of their names, cat.txt
# the caption of cat.png (missing: image only), other files, hidden files and subfolders
# skipped. A single image file as input reads the same way.
set -e
mkdir pics pics/sub
cp "$T"/fixtures/tokenize/* pics/
cp pics/a.png pics/.hidden.png
cp pics/a.png pics/sub/z.png
cp pics/c.png pics/D.PNG
echo 'not an image' >pics/notes.md
mm-tokenize --image-size 32 --channels 3 --patch 8 --fit pad --background black -o out pics 2>err
sed 's/[0-9]* bytes out, ratio [0-9.]*/N bytes out, ratio R/' err
mm-tokenize --list out-00000.mms
mm-tokenize --extract x out-00000.mms 2>/dev/null
cat x/manifest.jsonl
mm-tokenize --image-size 32 --channels 3 --patch 8 -o one pics/c.png 2>/dev/null
mm-tokenize --list one-00000.mms
mm-tokenize --format dir -o no pics/c.png || echo "exit $?"
ls
