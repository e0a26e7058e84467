#!/usr/bin/env bash
# qai bundle/sign/verify/registry/lineage/export/import end to end:
# - the bundle read back with GNU tar + zstd (an independent reader): manifest
#   first, every member's sha256 and size as sha256sum/stat see them;
# - sign then verify (text and --json); a member changed and repacked with tar
#   is named; unsigned and untrusted bundles fail under --require-signed; a key
#   revoked with `qai keys revoke` (after push registered it) and one listed in
#   trust/revoked.txt fail;
# - registry push/list/show/promote/rollback/retire and lineage, with --json
#   checked by Python's json module; qai run -m BUNDLE runs the model inside;
# - export -> import into a fresh data dir; a tampered export is refused and
#   nothing is added; keys export-public writes the same .pub keygen wrote;
# - exit codes 0/1/2 and --help equal to the docs.
set -u
QAI=${QAI_BIN:?}
PY=/usr/bin/python3
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_bundle_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # label want got
  if [ "$2" = "$3" ]; then ok; else bad "$1: exit $3, want $2 ($(head -c 400 "$TMP/err" 2>/dev/null))"; fi
}
unset QAI_STORE QAI_TEST_CRASH_AT
export QAI_HOME="$TMP/home" QAI_PASSPHRASE='correct horse'
cd "$TMP"

"$QAI" init --dim 32 --layers 1 --heads 2 --ffn 64 --vocab 260 --ctx 32 m.gguf 2> /dev/null || bad "init"
cat > card.yaml << 'EOF'
purpose: answer questions about the help desk
intended_use: internal support
not_intended_use: medical, legal or financial advice
slos: {latency_p95_ms: 250, availability: 0.99}
datasets:
  - {name: faq, sha256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}
training: {date: 2026-11-01, methods: [sft], run: sft-1}
limitations: a toy model
safety_mitigations: [pii scrubbing]
contacts: [ml-team@example.com]
EOF
mkdir -p faq
printf '{"name": "faq", "sources": [{"path": "kb/a.md", "sha256": "%s", "size": 4}]}\n' "$(printf 'abc\n' | sha256sum | cut -c1-64)" > faq/manifest.json
echo '{"suite": "qa-small", "metrics": {"exact_match": 0.8}, "passed": true}' > qa.json

# ---- create -------------------------------------------------------------------------------
"$QAI" bundle create --model m.gguf --card card.yaml --dataset-manifest faq/manifest.json --eval qa.json \
  --name demo --version 1.0.0 -o demo-1.0.0.qai 2> "$TMP/err"
expect "bundle create" 0 $?
names=$(tar --zstd -tf demo-1.0.0.qai | tr '\n' ' ')
[ "$names" = "manifest.json model/m.gguf card.yaml datasets/faq.json evals/qa.json sbom.json " ] && ok || bad "members: $names"
mkdir x && tar --zstd -xf demo-1.0.0.qai -C x || bad "GNU tar cannot read the bundle"
cmp -s x/model/m.gguf m.gguf && cmp -s x/card.yaml card.yaml && ok || bad "members differ from their sources"
check=$($PY - x << 'EOF'
import json, hashlib, os, sys
d = sys.argv[1]
m = json.load(open(os.path.join(d, "manifest.json")))
assert m["apiVersion"] == "qai/v1" and m["kind"] == "ModelBundle", "header"
assert m["metadata"]["name"] == "demo" and m["metadata"]["version"] == "1.0.0"
assert m["spec"]["model"]["architecture"] == "llama" and m["spec"]["model"]["quantization"] == "f32"
assert m["spec"]["safety"]["policySet"] == "default"
for e in m["members"]:
    b = open(os.path.join(d, e["path"]), "rb").read()
    assert hashlib.sha256(b).hexdigest() == e["sha256"], e["path"]
    assert len(b) == e["size"], e["path"]
assert m["spec"]["model"]["sha256"] == m["members"][0]["sha256"]
sb = json.load(open(os.path.join(d, "sbom.json")))
assert sb["bomFormat"] == "CycloneDX" and {"sqlite3", "libsodium", "libarchive", "zstd"} <= {c["name"] for c in sb["components"]}
print("ok")
EOF
)
[ "$check" = ok ] && ok || bad "manifest check: $check"
# a card missing sections names them; bad usage is 2
printf 'purpose: x\n' > thin.yaml
"$QAI" bundle create --model m.gguf --card thin.yaml --name d --version 1 -o thin.qai 2> "$TMP/err"
expect "thin card" 1 $?
grep -q "missing sections: intended_use, not_intended_use, slos" "$TMP/err" && [ ! -e thin.qai ] && ok || bad "thin card message: $(cat "$TMP/err")"
"$QAI" bundle create --model m.gguf 2> "$TMP/err"; expect "no -o" 2 $?
"$QAI" bundle create --model m.gguf --level 30 -o y.qai 2> "$TMP/err"; expect "--level 30" 2 $?
"$QAI" bundle pack 2> "$TMP/err"; expect "unknown subcommand" 2 $?

# ---- sign, verify ---------------------------------------------------------------------------
"$QAI" keygen --name release@lab --kdf interactive > keygen.out 2> /dev/null || bad "keygen"
kid=$(sed -n 's/^key id: *//p' keygen.out)
"$QAI" verify demo-1.0.0.qai > out 2> "$TMP/err"; expect "verify unsigned" 0 $?
grep -q "unsigned" out && ok || bad "verify should say unsigned"
"$QAI" verify demo-1.0.0.qai --require-signed 2> "$TMP/err"; expect "unsigned under --require-signed" 1 $?
grep -q "unsigned" "$TMP/err" && ok || bad "unsigned message: $(cat "$TMP/err")"
"$QAI" sign demo-1.0.0.qai --key release@lab 2> "$TMP/err"; expect "sign" 0 $?
"$QAI" sign demo-1.0.0.qai --key release@lab --passphrase nope 2> "$TMP/err"; expect "--passphrase flag" 2 $?
QAI_PASSPHRASE=wrong "$QAI" sign demo-1.0.0.qai --key "$kid" 2> "$TMP/err"; expect "wrong passphrase" 1 $?
"$QAI" verify demo-1.0.0.qai --require-signed > out 2> "$TMP/err"; expect "verify signed" 0 $?
grep -q "signatures/$kid.sig: valid" out && ok || bad "verify output: $(cat out)"
"$QAI" verify demo-1.0.0.qai --json > v.json 2> "$TMP/err"; expect "verify --json" 0 $?
r=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d["signatures"][0]; print(d["ok"], d["problem"], s["state"], s["key_id"]==sys.argv[2], s["signer"], len(d["members"]))' v.json "$kid" 2>&1)
[ "$r" = "True None valid True release@lab 5" ] && ok || bad "verify --json: $r"
mkdir empty-trust
"$QAI" verify demo-1.0.0.qai --trust empty-trust > /dev/null 2> "$TMP/err"; expect "untrusted, not required" 0 $?
"$QAI" verify demo-1.0.0.qai --trust empty-trust --require-signed 2> "$TMP/err"; expect "untrusted, required" 1 $?
grep -q "not trusted" "$TMP/err" && ok || bad "untrusted message: $(cat "$TMP/err")"

# tampering through tar: change the card, repack in the same order
( cd x && tar --zstd -xf ../demo-1.0.0.qai && sed -i 's/a toy model/a TOY model/' card.yaml &&
  tar --format=pax --zstd -cf ../tampered.qai manifest.json model/m.gguf card.yaml datasets/faq.json evals/qa.json \
    sbom.json "signatures/$kid.sig" )
"$QAI" verify tampered.qai 2> "$TMP/err"; expect "tampered card" 1 $?
grep -q "member 'card.yaml' does not match the manifest" "$TMP/err" && ok || bad "tampered message: $(cat "$TMP/err")"
"$QAI" verify tampered.qai --json > tj 2> /dev/null
[ "$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ok"], d["failed"])' tj)" = "False card.yaml" ] && ok || bad "--json failed member: $(cat tj)"
( cd x && tar --zstd -xf ../demo-1.0.0.qai && $PY -c '
import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[100]^=1; open(p,"wb").write(b)' "signatures/$kid.sig" &&
  tar --format=pax --zstd -cf ../badsig.qai manifest.json model/m.gguf card.yaml datasets/faq.json evals/qa.json \
    sbom.json "signatures/$kid.sig" )
"$QAI" verify badsig.qai 2> "$TMP/err"; expect "tampered signature" 1 $?
grep -q "signature 'signatures/$kid.sig' is invalid" "$TMP/err" && ok || bad "bad signature message: $(cat "$TMP/err")"
# a bundle packed by GNU tar (one zstd frame, tar's own padding): sign rewrites it, and it verifies
( cd x && tar --zstd -xf ../demo-1.0.0.qai &&
  tar --format=pax --zstd -cf ../gnutar.qai manifest.json model/m.gguf card.yaml datasets/faq.json evals/qa.json sbom.json )
"$QAI" sign gnutar.qai --key release@lab 2> "$TMP/err"; expect "sign a GNU tar bundle" 0 $?
"$QAI" verify gnutar.qai --require-signed > /dev/null 2> "$TMP/err"; expect "verify the GNU tar bundle signed by qai" 0 $?
head -c 5000 demo-1.0.0.qai > trunc.qai
"$QAI" verify trunc.qai 2> "$TMP/err"; expect "truncated" 1 $?
"$QAI" verify nope.qai 2> "$TMP/err"; expect "missing file" 1 $?
"$QAI" verify 2> "$TMP/err"; expect "no bundle" 2 $?

# revoked through trust/revoked.txt
mkdir -p "$QAI_HOME/trust"
echo "$kid 1790000000 lost laptop" > "$QAI_HOME/trust/revoked.txt"
"$QAI" verify demo-1.0.0.qai 2> "$TMP/err"; expect "revoked.txt" 1 $?
grep -q "revoked key.*lost laptop" "$TMP/err" && ok || bad "revoked message: $(cat "$TMP/err")"
rm "$QAI_HOME/trust/revoked.txt"

# ---- run a bundle ---------------------------------------------------------------------------
out1=$("$QAI" run -m demo-1.0.0.qai -p hi -n 8 --temp 0 --seed 1 --require-signed 2> "$TMP/err"); expect "run bundle" 0 $?
out2=$("$QAI" run -m m.gguf -p hi -n 8 --temp 0 --seed 1 2> /dev/null)
[ "$out1" = "$out2" ] && ok || bad "run from the bundle differs from the model: '$out1' vs '$out2'"
"$QAI" bundle create --model m.gguf --name u --version 1 -o u.qai 2> /dev/null
"$QAI" run -m u.qai -p hi -n 2 --require-signed > /dev/null 2> "$TMP/err"; expect "run unsigned, required" 1 $?
"$QAI" run -m m.gguf -p hi -n 2 --require-signed > /dev/null 2> "$TMP/err"; expect "--require-signed without a bundle" 2 $?

# ---- serve a bundle: the same tokens over HTTP; unsigned, plain and tampered refused ----------
serve_port() { # $1: stderr file of a starting server -> its port, once it answers
  for _ in $(seq 100); do
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\)/v1.*|\1|p' "$1")
    [ -n "$port" ] && curl -sf "http://127.0.0.1:$port/health" > /dev/null && { echo "$port"; return 0; }
    sleep 0.1
  done
  return 1
}
"$QAI" serve -m demo-1.0.0.qai --require-signed --port 0 --auth none --threads 1 -q 2> "$TMP/serve.err" &
spid=$!
if port=$(serve_port "$TMP/serve.err"); then
  grep -q "bundle demo-1.0.0.qai verified" "$TMP/serve.err" && ok || bad "serve did not say it verified the bundle"
  body=$(curl -s "http://127.0.0.1:$port/v1/completions" -d '{"model": "demo-1.0.0", "prompt": "hi", "max_tokens": 8, "temperature": 0}')
  got=$(printf '%s' "$body" | $PY -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"], end="")' 2>&1)
  [ "hi$got" = "$out2" ] && ok || bad "serve from the bundle: 'hi$got' vs qai run '$out2' ($body)"
else
  bad "serve -m BUNDLE did not start: $(cat "$TMP/serve.err")"
fi
kill -TERM "$spid" 2>/dev/null; wait "$spid"; expect "serve bundle exit" 0 $?
"$QAI" serve -m u.qai --require-signed --port 0 2> "$TMP/err"; expect "serve unsigned, required" 1 $?
grep -q "unsigned" "$TMP/err" && ok || bad "serve unsigned message: $(cat "$TMP/err")"
"$QAI" serve -m m.gguf --require-signed --port 0 2> "$TMP/err"; expect "serve plain GGUF, required" 2 $?
cp demo-1.0.0.qai t.qai && printf 'x' | dd of=t.qai bs=1 seek=300 conv=notrunc 2> /dev/null
"$QAI" serve -m t.qai --port 0 2> "$TMP/err"; expect "serve a damaged bundle" 1 $?

# ---- registry --------------------------------------------------------------------------------
"$QAI" registry push demo-1.0.0.qai --require-signed 2> "$TMP/err"; expect "push" 0 $?
[ -f "$QAI_HOME/bundles/demo/1.0.0.qai" ] && cmp -s "$QAI_HOME/bundles/demo/1.0.0.qai" demo-1.0.0.qai && ok || bad "pushed file"
"$QAI" registry push demo-1.0.0.qai --json > pj 2> "$TMP/err"; expect "push again" 0 $?
grep -q '"already_present": true' pj && ok || bad "second push: $(cat pj)"
"$QAI" registry push u.qai --require-signed 2> "$TMP/err"; expect "push unsigned, required" 1 $?
"$QAI" registry push tampered.qai 2> "$TMP/err"; expect "push tampered" 1 $?
"$QAI" bundle create --model m.gguf --card card.yaml --name demo --version 1.1.0 -o demo-1.1.0.qai 2> /dev/null
"$QAI" sign demo-1.1.0.qai --key "$kid" 2> /dev/null
"$QAI" registry push demo-1.1.0.qai 2> "$TMP/err"; expect "push 1.1.0" 0 $?
"$QAI" registry list > out 2> "$TMP/err"; expect "list" 0 $?
[ "$(grep -c '^demo ' out)" = 2 ] && ok || bad "list: $(cat out)"
"$QAI" registry promote demo@1.0.0 --to prod --reason first 2> "$TMP/err"; expect "promote 1.0.0" 0 $?
"$QAI" registry promote demo@1.1.0 --to prod 2> "$TMP/err"; expect "promote 1.1.0" 0 $?
"$QAI" registry promote demo@1.1.0 --to production 2> "$TMP/err"; expect "bad stage" 2 $?
"$QAI" registry rollback demo --stage prod --json > rb 2> "$TMP/err"; expect "rollback" 0 $?
grep -q '"version": "1.0.0"' rb && ok || bad "rollback: $(cat rb)"
"$QAI" registry list --json > lj 2> /dev/null
r=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sorted((m["version"], m["stage"], len(m["signatures"])) for m in d))' lj 2>&1)
[ "$r" = "[('1.0.0', 'prod', 1), ('1.1.0', 'none', 1)]" ] && ok || bad "list --json: $r"
"$QAI" registry retire demo@1.1.0 2> "$TMP/err"; expect "retire" 0 $?
"$QAI" registry promote demo@1.1.0 --to canary 2> "$TMP/err"; expect "promote retired" 1 $?
"$QAI" registry show demo@1.0.0 > out 2> "$TMP/err"; expect "show" 0 $?
grep -q "^evaluation   qa-small passed" out && grep -q "^signed by    $kid release@lab" out && grep -q "purpose: answer" out && ok ||
  bad "show: $(cat out)"
"$QAI" registry show demo@1.0.0 --json > sj 2> /dev/null
r=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["model"]["stage"], [h["action"] for h in d["history"]], d["run"]["name"], d["datasets"][0]["sources"][0]["path"])' sj 2>&1)
[ "$r" = "prod ['promote', 'replace', 'rollback'] sft-1 kb/a.md" ] && ok || bad "show --json: $r"
"$QAI" registry show nope 2> "$TMP/err"; expect "show unknown" 1 $?
"$QAI" registry frobnicate 2> "$TMP/err"; expect "unknown subcommand" 2 $?
"$QAI" lineage demo@1.0.0 > out 2> "$TMP/err"; expect "lineage" 0 $?
grep -q "run sft-1" out && grep -q "dataset faq" out && grep -q "kb/a.md" out && ok || bad "lineage: $(cat out)"
"$QAI" lineage demo@1.0.0 --json > lnj 2> /dev/null
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["datasets"][0]["sources"][0]["size"] == 4' lnj && ok || bad "lineage --json"
"$QAI" lineage 2> "$TMP/err"; expect "lineage no model" 2 $?

# revoked in the store (push registered the key) -> verify fails
"$QAI" keys export-public release@lab -o exported.pub 2> "$TMP/err"; expect "export-public" 0 $?
cmp -s exported.pub "$QAI_HOME/keys/$kid.pub" && ok || bad "export-public wrote other bytes"

# ---- export / import --------------------------------------------------------------------------
sha=$("$QAI" export --to exp demo@1.0.0 2> "$TMP/err"); expect "export" 0 $?
[ "$sha" = "$(sha256sum exp/index.json | cut -c1-64)" ] && ok || bad "export printed $sha"
cp -r exp exp-bad
$PY -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=1; open(p,"wb").write(b)' exp-bad/bundles/demo/1.0.0.qai
QAI_HOME="$TMP/home2" "$QAI" import exp-bad --index-sha256 "$sha" 2> "$TMP/err"; expect "import tampered" 1 $?
grep -q "does not match the index" "$TMP/err" && ok || bad "tampered import message: $(cat "$TMP/err")"
[ ! -e "$TMP/home2/trust" ] && [ ! -e "$TMP/home2/bundles/demo" ] && ok || bad "a refused import added files"
QAI_HOME="$TMP/home2" "$QAI" import exp 2> "$TMP/err"; expect "import unvouched" 1 $?
QAI_HOME="$TMP/home2" "$QAI" import exp --index-sha256 "$sha" --require-signed 2> "$TMP/err"; expect "import" 0 $?
QAI_HOME="$TMP/home2" "$QAI" registry list --json > l2 2> /dev/null
[ "$($PY -c 'import json,sys; print([(m["name"], m["version"]) for m in json.load(open(sys.argv[1]))])' l2)" = "[('demo', '1.0.0')]" ] && ok || bad "imported list: $(cat l2)"
QAI_HOME="$TMP/home2" "$QAI" verify "$TMP/home2/bundles/demo/1.0.0.qai" --require-signed > /dev/null 2> "$TMP/err"
expect "imported bundle verifies with the imported key" 0 $?
"$QAI" export --to exp 2> "$TMP/err"; expect "export into non-empty" 1 $?
"$QAI" import 2> "$TMP/err"; expect "import no dir" 2 $?
"$QAI" import exp --index-sha256 xyz 2> "$TMP/err"; expect "bad --index-sha256" 2 $?

# now revoke in the store: verify fails
"$QAI" keys revoke "$kid" --reason rotated 2> "$TMP/err"; expect "keys revoke" 0 $?
"$QAI" verify demo-1.0.0.qai 2> "$TMP/err"; expect "verify revoked" 1 $?
grep -q "revoked key.*rotated" "$TMP/err" && ok || bad "store revocation message: $(cat "$TMP/err")"

# ---- --help is what the docs say ----------------------------------------------------------------
for pair in bundle:bundle sign:sign verify:verify registry:registry lineage:lineage export:export import:export; do
  cmd=${pair%%:*} doc=${pair##*:}
  "$QAI" $cmd --help > "$TMP/help" || bad "$cmd --help"
  awk -v want="usage: qai $cmd" 'index($0, want) == 1 && !found { on = 1; found = 1 } on && /^```/ { exit } on { print }' \
    "$ROOT/docs/$doc.md" > "$TMP/doc"
  if cmp -s "$TMP/help" "$TMP/doc"; then ok; else bad "$cmd --help differs from docs/$doc.md:"; diff "$TMP/help" "$TMP/doc" >&2; fi
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
