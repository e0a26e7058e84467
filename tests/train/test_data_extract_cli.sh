#!/usr/bin/env bash
# qai data prepare and qai tokenizer train read man pages (roff, also
# gzipped), HTML and CSV through the document extractors: the tokens are the
# pages' words, not roff requests or tags; a man page that is only a link
# (.so) is skipped and says so in the manifest; directories are walked for
# these kinds too.
set -u
QAI=${QAI_BIN:?}
FIX=${QAI_TESTDATA:?}/ingest
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_data_extract.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
PY=/usr/bin/python3

mkdir -p "$TMP/in/sub"
cp "$FIX/sample.1" "$TMP/in/"
gzip -c "$FIX/sample_mdoc.1" > "$TMP/in/sub/sample_mdoc.1.gz"
cp "$FIX/sample.html" "$FIX/link.3" "$TMP/in/sub/"

"$QAI" tokenizer train --vocab 400 "$TMP/in" -o "$TMP/tok.gguf" > /dev/null 2> "$TMP/err" && ok || bad "tokenizer train: $(cat "$TMP/err")"
"$QAI" data prepare --tokenizer "$TMP/tok.gguf" --val 0 "$TMP/in" -o "$TMP/data" > /dev/null 2> "$TMP/err" && ok || bad "data prepare: $(cat "$TMP/err")"
$PY - "$TMP/data/manifest.json" <<'PY' && ok || bad "manifest"
import json, sys
m = json.load(open(sys.argv[1]))
ins = {i["path"].rsplit("/", 1)[1]: i for i in m["inputs"]}
assert set(ins) == {"sample.1", "sample_mdoc.1.gz", "sample.html", "link.3"}, ins
assert "skipped" in ins["link.3"] and ".so" in ins["link.3"]["skipped"] + "target", ins["link.3"]
for k in ("sample.1", "sample_mdoc.1.gz", "sample.html"):
    assert ins[k]["docs"] >= 1 and "skipped" not in ins[k], (k, ins[k])
PY
# the text went through the extractors: the same page read as plain text
# (its roff requests and escapes included) gives more tokens
mkdir -p "$TMP/raw" "$TMP/man"
cp "$FIX/sample.1" "$TMP/man/sample.1"
cp "$FIX/sample.1" "$TMP/raw/sample.txt"
tokens() { "$QAI" data prepare --tokenizer "$TMP/tok.gguf" --val 0 "$1" -o "$2" >/dev/null 2>&1 &&
  $PY -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["splits"]["train"]["tokens"])' "$2/manifest.json" 2>/dev/null; }
t_man=$(tokens "$TMP/man" "$TMP/d-man") t_raw=$(tokens "$TMP/raw" "$TMP/d-raw")
[ -n "$t_man" ] && [ -n "$t_raw" ] && [ "$t_man" -lt "$t_raw" ] && ok || bad "extracted page: $t_man tokens, raw roff: $t_raw"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
