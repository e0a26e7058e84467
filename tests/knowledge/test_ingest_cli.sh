#!/usr/bin/env bash
# qai ingest / search / rag end to end: --help matches docs/; an ingest prints
# NAME@N, lists skipped inputs with reasons and records the version in the
# store; search --json has the documented fields and ranks known answers
# first; filters; rag without a generator (or with one too small) gives a
# retrieval-only answer with citations; a kill -9 from outside in the middle
# of an ingest leaves the previous version current and searchable; bad usage
# exits 2, failures exit 1.
set -u
QAI=${QAI_BIN:?}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_ingest_cli.XXXXXX")
BGPID=
trap '[ -n "$BGPID" ] && kill -9 $BGPID 2>/dev/null; rm -rf "$TMP"' EXIT
export QAI_HOME=$TMP/home
unset QAI_STORE QAI_TEST_CRASH_AT QAI_TEST_PAUSE_AT QAI_TEST_PAUSE_FILE
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { if [ "$2" = "$3" ]; then ok; else bad "$1: got '$3', want '$2'"; fi; }
py() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# --- --help is what docs/ says ---
for c in ingest search rag; do
  want=$(awk '/^```$/ && n == 0 {n = 1; next} /^```$/ && n == 1 {exit} n == 1' "$ROOT/docs/$c.md")
  got=$("$QAI" $c --help)
  [ "$want" = "$got" ] && ok || bad "qai $c --help differs from docs/$c.md"
done

# --- a small corpus ---
C=$TMP/corpus
mkdir -p "$C/notes"
printf '# Pumps\n\nThe centrifugal pump moves coolant through the loop.\n\n## Priming\n\nOpen the bleed valve before starting the pump.\n' > "$C/pumps.md"
printf 'Fuses blow when the current exceeds the rated value for too long.\n' > "$C/notes/fuses.txt"
printf 'The logbook records every shift change and alarm acknowledgement.\n' > "$C/notes/logbook.txt"
printf '{"id": "t1", "text": "Ticket about a broken conveyor belt.", "team": "mech"}\n{"id": "t2", "text": "Ticket about a flickering display.", "team": "elec"}\n' > "$C/tickets.jsonl"
printf '\x00\x01\x02binary' > "$C/blob.txt"
: > "$C/empty.txt"

out=$("$QAI" ingest "$C" --into plant -q)
expect "ingest exit" 0 $?
expect "ingest prints NAME@N" "plant@1" "$out"
"$QAI" ingest "$C" --into plant --json -q > "$TMP/i2.json"
expect "re-ingest exit" 0 $?
expect "ref" "plant@2" "$(py "$TMP/i2.json" 'd["ref"]')"
expect "unchanged" 4 "$(py "$TMP/i2.json" 'd["changes"]["unchanged"]')"
expect "reused chunks = chunks" "True" "$(py "$TMP/i2.json" 'd["totals"]["chunks_reused"] == d["totals"]["chunks"]')"
expect "skipped" 2 "$(py "$TMP/i2.json" 'len(d["skipped_inputs"])')"
expect "binary reason" "True" "$(py "$TMP/i2.json" '"binary" in [s for s in d["skipped_inputs"] if s["path"].endswith("blob.txt")][0]["reason"]')"
expect "empty reason" "True" "$(py "$TMP/i2.json" '"empty" in [s for s in d["skipped_inputs"] if s["path"].endswith("empty.txt")][0]["reason"]')"
expect "manifest hash" 64 "$(py "$TMP/i2.json" 'len(d["manifest_sha256"])')"
# recorded in the store as dataset plant, versions 1 and 2
got=$(/usr/bin/python3 -c "import sqlite3,sys; print(','.join(r[0]+'@'+r[1] for r in sqlite3.connect(sys.argv[1]).execute('select name, version from datasets order by id')))" "$QAI_HOME/qai.db")
expect "store datasets" "plant@1,plant@2" "$got"
expect "list" "plant" "$("$QAI" ingest --list --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')"
expect "list versions" "1,2" "$("$QAI" ingest --list plant --json | /usr/bin/python3 -c 'import json,sys; print(",".join(str(v["version"]) for v in json.load(sys.stdin)))')"

# --- search ---
"$QAI" search plant "bleed valve priming" --json > "$TMP/s.json"
expect "search exit" 0 $?
expect "top source" "$C/pumps.md" "$(py "$TMP/s.json" 'd[0]["source"]')"
expect "fields" "True" "$(py "$TMP/s.json" 'all(k in d[0] for k in ("source","score","span","text","section","chunk_id","version"))')"
expect "section" "Pumps > Priming" "$(py "$TMP/s.json" 'd[0]["section"]')"
expect "version" 2 "$(py "$TMP/s.json" 'd[0]["version"]')"
expect "span is text" "True" "$(py "$TMP/s.json" 'd[0]["span"][1] - d[0]["span"][0] == len(d[0]["text"].encode())')"
"$QAI" search plant "fuses current" --json -k 1 > "$TMP/s2.json"
expect "-k 1" 1 "$(py "$TMP/s2.json" 'len(d)')"
# the span indexes the file's bytes for plain text
expect "span bytes" "True" "$(/usr/bin/python3 -c "import json,sys; h=json.load(open(sys.argv[1]))[0]; print(open(h['source'],'rb').read()[h['span'][0]:h['span'][1]].decode() == h['text'])" "$TMP/s2.json")"
"$QAI" search plant "ticket" --filter team=elec --json > "$TMP/s3.json"
expect "filter on a JSONL field" "t2" "$(py "$TMP/s3.json" '",".join(h["record_id"] for h in d)')"
"$QAI" search plant "pump" --filter source='*/notes/*' --json > "$TMP/s4.json"
expect "source filter" 0 "$(py "$TMP/s4.json" 'len(d)')"
"$QAI" search plant "pump" --version 1 --json > "$TMP/s5.json"
expect "--version" 1 "$(py "$TMP/s5.json" 'd[0]["version"]')"
"$QAI" search plant "pump" --mode dense > /dev/null 2> "$TMP/err"
expect "dense without vectors" 1 $?
grep -q "no embeddings" "$TMP/err" && ok || bad "dense error message: $(cat "$TMP/err")"
"$QAI" search nosuch "pump" > /dev/null 2>&1
expect "missing collection" 1 $?
"$QAI" search plant > /dev/null 2>&1
expect "search usage" 2 $?
"$QAI" search plant q --mode fancy > /dev/null 2>&1
expect "bad mode" 2 $?
"$QAI" search plant "pump" --json > "$TMP/sp.json"
"$QAI" search plant "pump" --fusion weighted --dense-weight 0.2 --json > "$TMP/sw.json"
expect "fusion flags accepted (no vectors: the same bm25 hits)" "$(cat "$TMP/sp.json")" "$(cat "$TMP/sw.json")"
for bad in "--fusion max" "--dense-weight 1.5" "--dense-weight x"; do
  "$QAI" search plant q $bad > /dev/null 2>&1
  expect "search $bad" 2 $?
  "$QAI" rag --index plant q $bad > /dev/null 2>&1
  expect "rag $bad" 2 $?
done
"$QAI" ingest "$C" > /dev/null 2>&1
expect "ingest without --into" 2 $?
"$QAI" ingest "$C/nope" --into plant > /dev/null 2>&1
expect "missing input" 1 $?
"$QAI" ingest "$C" --into plant --dedup 2 > /dev/null 2>&1
expect "bad dedup" 2 $?

# --- rag ---
"$QAI" rag --index plant "how do I prime the pump?" --json -k 2 > "$TMP/r.json"
expect "rag exit" 0 $?
expect "rag mode" "retrieval-only" "$(py "$TMP/r.json" 'd["mode"]')"
expect "rag citation" "$C/pumps.md" "$(py "$TMP/r.json" 'd["citations"][0]["source"]')"
expect "rag answer quotes [1]" "True" "$(py "$TMP/r.json" '"[1]" in d["answer"] and "bleed valve" in d["answer"]')"
"$QAI" rag --index plant "how do I prime the pump?" -k 2 > "$TMP/r.txt" 2>/dev/null
grep -q "^\[1\] $C/pumps.md (bytes [0-9]*-[0-9]*, Pumps > Priming)" "$TMP/r.txt" && ok || bad "rag text sources: $(cat "$TMP/r.txt")"
"$QAI" init --dim 32 --layers 1 --heads 2 --ffn 64 --vocab 300 --ctx 128 "$TMP/tiny.gguf" > /dev/null 2>&1
"$QAI" rag -m "$TMP/tiny.gguf" --index plant "fuses?" --json > "$TMP/r2.json"
expect "rag small model exit" 0 $?
expect "rag small model mode" "retrieval-only" "$(py "$TMP/r2.json" 'd["mode"]')"
expect "rag small model reason" "True" "$(py "$TMP/r2.json" '"parameters" in d["reason"]')"
# the generation path (a random model allowed by --min-params 0, with a chat format)
"$QAI" init --dim 32 --layers 1 --heads 2 --ffn 64 --vocab 300 --ctx 2048 "$TMP/gen.gguf" > /dev/null 2>&1
"$QAI" rag -m "$TMP/gen.gguf" --template chatml --min-params 0 -n 4 --index plant "fuses?" -k 2 --json > "$TMP/r3.json"
expect "rag generated exit" 0 $?
expect "rag generated mode" "generated" "$(py "$TMP/r3.json" 'd["mode"]')"
expect "rag generated citations" "True" "$(py "$TMP/r3.json" '1 <= len(d["citations"]) <= 2 and d["citations"][0]["source"].endswith("fuses.txt")')"
"$QAI" rag -m "$TMP/gen.gguf" --template chatml --min-params 0 -n 4 -c 64 --index plant "fuses?" > /dev/null 2> "$TMP/err"
expect "rag context too small" 1 $?
grep -q "fits the context" "$TMP/err" && ok || bad "rag small context message: $(cat "$TMP/err")"
"$QAI" rag --index plant > /dev/null 2>&1
expect "rag usage" 2 $?

# --- kill -9 from outside in the middle of an ingest ---
for point in ingest-extracted ingest-before-rename ingest-before-current; do
  rm -f "$TMP/paused"
  QAI_TEST_PAUSE_AT=$point QAI_TEST_PAUSE_FILE=$TMP/paused "$QAI" ingest "$C" "$ROOT/docs/index.md" --into plant -q > /dev/null 2>&1 &
  BGPID=$!
  for _ in $(seq 1 200); do [ -f "$TMP/paused" ] && break; sleep 0.05; done
  [ -f "$TMP/paused" ] && ok || bad "$point: the ingest never reached the pause point"
  kill -9 $BGPID
  wait $BGPID 2>/dev/null
  expect "$point: killed" 137 $?
  BGPID=
  expect "$point: CURRENT unchanged" "v2" "$(cat "$QAI_HOME/collections/plant/CURRENT")"
  "$QAI" search plant "bleed valve" --json -k 1 > "$TMP/k.json"
  expect "$point: search after kill" "$C/pumps.md" "$(py "$TMP/k.json" 'd[0]["source"]')"
done
out=$("$QAI" ingest "$C" "$ROOT/docs/index.md" --into plant -q --no-store)
case "$out" in plant@[0-9]*) ok ;; *) bad "ingest after kills: $out" ;; esac
ls -a "$QAI_HOME/collections/plant" | grep -q '^\.tmp-' && bad "temporary folders left after a new ingest" || ok
"$QAI" search plant "retrieval index HNSW" --json -k 1 > "$TMP/k2.json"
expect "new version searchable" "True" "$(py "$TMP/k2.json" 'd[0]["source"].endswith("index.md")')"

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
