#!/usr/bin/env bash
# qai search --rerank and qai rag --rerank from the command line, with the
# real stories260K model: --json hits carry rerank_score and rank_retrieval,
# are ordered by rerank_score, keep their retrieval score, and the story the
# query was taken from comes first; --rerank-k limits what is reranked; rag's
# citations carry the scores; bad usage exits 2, a missing model or an
# encoder exits 1 with a message naming the file.
set -u
QAI=${QAI_BIN:?}
MODEL=${QAI_DATA:-/work/shared/data}/models/stories260K-gguf/stories260K.gguf
TMP=$(mktemp -d "${QAI_TMP:-/tmp}/test_rerank_cli.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export QAI_HOME=$TMP/home
unset QAI_STORE
PY=/usr/bin/python3
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { if [ "$2" = "$3" ]; then ok; else bad "$1: got '$3', want '$2'"; fi; }

C=$TMP/corpus
mkdir -p "$C"
printf 'One sunny day Tom had a big red ball. That day he liked to kick the ball in the park with his dog Max all day.\n' > "$C/a.txt"
printf 'One day Lily wanted to bake a cake for her mom. Her mom smiled and said the cake was yummy.\n' > "$C/b.txt"
printf 'One hot day, a fine day, Sam and Sue went to the beach and built a sand castle.\n' > "$C/c.txt"
printf 'One day Ben saw a big truck. The truck was loud and yellow. Ben waved at the man in the truck that day.\n' > "$C/d.txt"
"$QAI" ingest "$C" --into st --no-store -q > /dev/null || bad "ingest"

# every story matches "day" (BM25 ranks those with more of it first); the cake story is the source
Q="One day her mom smiled and said the cake was yummy."
"$QAI" search st "$Q" -k 3 --rerank "$MODEL" --rerank-k 4 --json > "$TMP/r.json" 2> "$TMP/err" || bad "search --rerank: $(cat "$TMP/err")"
"$PY" - "$TMP/r.json" <<'PYEOF' && ok || bad "search --rerank --json"
import json, sys
h = json.load(open(sys.argv[1]))
assert len(h) == 3, len(h)
assert h[0]["source"].endswith("b.txt"), h[0]["source"]
for x in h:
    assert isinstance(x["rerank_score"], float) and x["rerank_score"] < 0, x
    assert 1 <= x["rank_retrieval"] <= 4 and isinstance(x["score"], float)
assert [x["rank"] for x in h] == [1, 2, 3]
assert all(h[i]["rerank_score"] >= h[i + 1]["rerank_score"] for i in range(2))
assert len({x["rank_retrieval"] for x in h}) == 3
PYEOF
# without --rerank: no rerank fields; the plain order's scores are the reranked hits' retrieval scores
"$QAI" search st "$Q" -k 4 --json > "$TMP/p.json" || bad "search"
"$PY" - "$TMP/p.json" "$TMP/r.json" <<'PYEOF' && ok || bad "plain vs reranked"
import json, sys
p, r = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert all("rerank_score" not in x for x in p)
for x in r:
    y = p[x["rank_retrieval"] - 1]
    assert y["chunk_id"] == x["chunk_id"] and y["score"] == x["score"], (x, y)
PYEOF
# --rerank-k 1: only the first candidate is reranked, the rest keep their order
"$QAI" search st "$Q" -k 3 --rerank "$MODEL" --rerank-k 1 --json > "$TMP/r1.json" || bad "--rerank-k 1"
"$PY" - "$TMP/r1.json" "$TMP/p.json" <<'PYEOF' && ok || bad "--rerank-k 1 order"
import json, sys
r, p = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert [x["chunk_id"] for x in r] == [x["chunk_id"] for x in p[:3]]
assert r[0]["rank_retrieval"] == 1 and r[1]["rerank_score"] is None and r[1]["rank_retrieval"] is None
PYEOF
# the text form says the rerank score and the old rank
"$QAI" search st "$Q" -k 1 --rerank "$MODEL" > "$TMP/t.txt" || bad "text"
grep -q 'rerank -[0-9.]* (was [0-9]*)' "$TMP/t.txt" && ok || bad "text form: $(cat "$TMP/t.txt")"

# rag: citations carry the scores, the cake story first
"$QAI" rag --index st "$Q" -k 2 --rerank "$MODEL" --json > "$TMP/rag.json" 2> /dev/null || bad "rag --rerank"
"$PY" - "$TMP/rag.json" <<'PYEOF' && ok || bad "rag --rerank --json"
import json, sys
d = json.load(open(sys.argv[1]))
c = d["citations"]
assert d["mode"] == "retrieval-only" and len(c) == 2
assert c[0]["source"].endswith("b.txt") and c[0]["rerank_score"] >= c[1]["rerank_score"]
assert all("rank_retrieval" in x for x in c)
PYEOF

# errors
"$QAI" search st "$Q" --rerank-k 0 --rerank "$MODEL" > /dev/null 2>&1; expect "--rerank-k 0" 2 $?
"$QAI" search st "$Q" --rerank > /dev/null 2>&1; expect "--rerank without a model" 2 $?
"$QAI" search st "  " --rerank "$MODEL" > /dev/null 2>&1; expect "blank query" 2 $?
"$QAI" search st "$Q" --rerank "$TMP/none.gguf" > /dev/null 2> "$TMP/err"; expect "missing model" 1 $?
grep -q "none.gguf" "$TMP/err" && ok || bad "missing model message: $(cat "$TMP/err")"
"$QAI" init --arch bert --dim 32 --layers 1 --heads 2 --ffn 64 --vocab 500 --ctx 64 "$TMP/enc.gguf" > /dev/null 2>&1 || bad "init bert"
"$QAI" search st "$Q" --rerank "$TMP/enc.gguf" > /dev/null 2> "$TMP/err"; expect "encoder" 1 $?
grep -q "encoder" "$TMP/err" && ok || bad "encoder message: $(cat "$TMP/err")"
"$QAI" rag --index st "$Q" --rerank-k x > /dev/null 2>&1; expect "rag --rerank-k x" 2 $?

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
