# Plain text: documents are runs of non-blank lines; with --doc-separator STR a line equal to
# STR ends a document (fortune files: '%'). The last newline of a document is dropped.
set -e
printf 'First paragraph,\ntwo lines.\n\n  \t\nSecond\r\n\r\n\n\nThird, no newline' >t.txt
mm-tokenize -o out t.txt 2>/dev/null
mm-tokenize --list out-00000.mms
mm-tokenize --extract x out-00000.mms 2>/dev/null
cat x/manifest.jsonl
printf 'A fortune.\n%%\nTwo lines\n\nwith a blank one; 100%% sure.\n%%\n%%\n  \n%%\r\nlast\n%%\n' >fortunes
mm-tokenize --doc-separator % -o f fortunes 2>/dev/null
mm-tokenize --extract y f-00000.mms 2>/dev/null
cat y/manifest.jsonl
