#!/usr/bin/env bash
# Retrieval evaluation on the man pages installed on this machine (issue 6).
#
# Queries: each page's NAME-line description (the text after "\-" in its NAME
# section); the relevant document: that page (any chunk of it). Metrics:
# recall@1, recall@10, MRR and nDCG@10 for bm25, dense and hybrid (RRF), with
# the library's defaults — nothing tuned. Two variants of every index:
#   with-name  the pages as they are (the query text is also in the page's own
#              NAME section, so lexical matching is favoured)
#   no-name    the NAME section cut out before chunking (--drop-section NAME):
#              the description must be matched from the rest of the page
# Runs:
#   full   every page of /usr/share/man/man1..8 (regular files; symlinked
#          aliases are read once), BM25 only — dense embedding of ~300k chunks
#          is hours on 2 cores
#   sample every Nth page (DENSE_PAGES of them), with an embedding model:
#          bm25, dense and hybrid on the same chunks
# Ingestion throughput (MB/s of extracted text to chunks + BM25 postings, and
# with embeddings) comes from the ingests' own timing.
#
# Environment: QAI_BIN (build/bin/qai), BENCH_BIN (build/bench/bench_retrieval),
# OUT (/tmp/qai-retrieval-eval), EMBED_MODEL (default: qai's own embedding
# model, trained here once and reused from $OUT/embed-contrastive.gguf — see
# below), EMBED_BASE (the language model it starts from: default
# $QAI_HOME/models/qai-man.gguf, else /tmp/walk/man.gguf, else a small one
# trained here: a 4096-token BPE and a 2-layer model on a few hundred rendered
# pages), EMBED_STEPS (100), DENSE_PAGES (300), QUERY_PAGES (0: every page
# is a query on the full index; N: a spread sample of N pages), FULL (1: also
# the full BM25 run), THREADS (2), RERANK_MODEL (none: a GGUF decoder that
# reranks the top RERANK_K (30) of bm25 and hybrid in an extra run).
# Output: $OUT/results.json and $OUT/results.html (a table and an SVG chart).
#
# The embedding model, when none is given: `qai train --objective contrastive`
# from the base language model, on self-supervised pairs cut from an ingest of
# every man page with the NAME sections dropped (so no query text is ever a
# training pair), with a fixed recipe (batch 32, positives 64 tokens, queries
# 24, temperature 0.05, lr 2e-4 -> 2e-5, 10 warmup steps, EMBED_STEPS steps)
# — nothing is tuned on the evaluation queries. Where it
# came from (base model and its SHA-256, pairs, recipe, held-out loss and
# accuracy) is recorded in results.json under embed_model_provenance.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
QAI=${QAI_BIN:-$ROOT/build/bin/qai}
EVAL=${BENCH_BIN:-$ROOT/build/bench/bench_retrieval}
OUT=${OUT:-/tmp/qai-retrieval-eval}
DENSE_PAGES=${DENSE_PAGES:-300}
QUERY_PAGES=${QUERY_PAGES:-0}
FULL=${FULL:-1}
THREADS=${THREADS:-2}
RERANK_K=${RERANK_K:-30}
HOME_DIR=$OUT/home
mkdir -p "$OUT"
log() { echo "retrieval_eval: $*" >&2; }
[ -x "$QAI" ] || { log "no qai binary at $QAI (build first)"; exit 1; }
[ -x "$EVAL" ] || { log "no bench_retrieval at $EVAL (build first)"; exit 1; }
PY=/usr/bin/python3

# pages: regular files only (symlinked aliases are duplicates of their targets)
LC_ALL=C find /usr/share/man/man[1-8] -maxdepth 1 -type f -name '*.[1-9]*' | LC_ALL=C sort > "$OUT/pages_all.txt"
N_ALL=$(wc -l < "$OUT/pages_all.txt")
STEP=$(( (N_ALL + DENSE_PAGES - 1) / DENSE_PAGES ))
awk -v s="$STEP" '(NR - 1) % s == 0' "$OUT/pages_all.txt" > "$OUT/pages_sample.txt"
# queries on the full index: every page, or a spread sample of QUERY_PAGES of them
QSTEP=$(( QUERY_PAGES > 0 ? (N_ALL + QUERY_PAGES - 1) / QUERY_PAGES : 1 ))
awk -v s="$QSTEP" '(NR - 1) % s == 0' "$OUT/pages_all.txt" > "$OUT/pages_queries.txt"
log "$N_ALL pages; sample of $(wc -l < "$OUT/pages_sample.txt") (every ${STEP}th)"

# the embedding model
MODEL=${EMBED_MODEL:-}
PROV=$OUT/embed_provenance.json
sha() { sha256sum "$1" | cut -d' ' -f1; }
if [ -n "$MODEL" ]; then
  "$PY" -c 'import json,sys; json.dump({"given": sys.argv[1], "sha256": sys.argv[2]}, open(sys.argv[3], "w"), indent=1)' \
    "$MODEL" "$(sha "$MODEL")" "$PROV"
else
  MODEL=$OUT/embed-contrastive.gguf
  if [ ! -f "$MODEL" ]; then
    BASE=${EMBED_BASE:-}
    QHOME=${QAI_HOME:-$HOME/.local/share/qai}
    if [ -z "$BASE" ] && [ -f "$QHOME/models/qai-man.gguf" ]; then BASE=$QHOME/models/qai-man.gguf; fi
    if [ -z "$BASE" ] && [ -f /tmp/walk/man.gguf ]; then BASE=/tmp/walk/man.gguf; fi
    if [ -z "$BASE" ]; then
      BASE=$OUT/embed-lm.gguf
      if [ ! -f "$BASE" ]; then
        log "no base language model: training a small one on rendered man pages"
        mkdir -p "$OUT/corpus"
        head -n 400 "$OUT/pages_all.txt" | while read -r f; do
          if command -v man > /dev/null; then MANWIDTH=80 man -l "$f" 2> /dev/null | col -b > "$OUT/corpus/$(basename "$f").txt" || true
          else zcat -f "$f" > "$OUT/corpus/$(basename "$f").txt" || true; fi
        done
        "$QAI" tokenizer train --vocab 4096 "$OUT/corpus" -o "$OUT/embed-tok.gguf"
        "$QAI" data prepare --tokenizer "$OUT/embed-tok.gguf" --val 0.02 "$OUT/corpus" -o "$OUT/embed-data"
        "$QAI" train --data "$OUT/embed-data" --vocab 4096 --dim 128 --layers 2 --heads 4 --ffn 384 \
          --seq 256 --batch 8 --max-steps 300 --warmup 30 --lr 2e-3 --threads "$THREADS" -o "$BASE"
      fi
    fi
    TRAIN_HOME=$OUT/train-home
    if [ ! -f "$TRAIN_HOME/collections/man-noname/CURRENT" ]; then
      log "contrastive pairs: ingesting every man page with the NAME sections dropped"
      "$QAI" ingest --data-dir "$TRAIN_HOME" --into man-noname --no-store --json -q -t "$THREADS" --drop-section NAME \
        /usr/share/man/man1 /usr/share/man/man2 /usr/share/man/man3 /usr/share/man/man4 /usr/share/man/man5 \
        /usr/share/man/man6 /usr/share/man/man7 /usr/share/man/man8 > "$OUT/ingest_train_pairs.json"
    fi
    RECIPE=(--batch 32 --seq 64 --query-seq 24 --micro-batch 16 --temperature 0.05 --lr 2e-4 --min-lr 2e-5
      --warmup 10 --max-steps "${EMBED_STEPS:-100}" --eval-every 25 --eval-batches 4 --ckpt-every 25 --seed 1)
    CKPT=$MODEL.ckpt/latest.qck
    log "training the embedding model from $BASE (contrastive, ${EMBED_STEPS:-100} steps; resumable)"
    t0=$(date +%s)
    if [ -f "$CKPT" ]; then "$QAI" train --resume "$CKPT" --threads "$THREADS" -o "$MODEL"
    else
      "$QAI" train --objective contrastive --init "$BASE" --pairs-from man-noname --data-dir "$TRAIN_HOME" \
        "${RECIPE[@]}" --threads "$THREADS" -o "$MODEL"
    fi
    t1=$(date +%s)
    "$PY" - "$PROV" "$BASE" "$(sha "$BASE")" "$MODEL" "$(sha "$MODEL")" "$MODEL.ckpt/log.jsonl" $((t1 - t0)) \
      "${RECIPE[*]}" << 'PYEOF'
import json, sys
prov, base, base_sha, model, model_sha, log, secs, recipe = sys.argv[1:9]
rows = [json.loads(l) for l in open(log) if l.strip()]
evals = [r for r in rows if "val_loss" in r]
json.dump({"trained_here": True, "model": model, "sha256": model_sha, "base_model": base, "base_sha256": base_sha,
           "objective": "contrastive (symmetric in-batch InfoNCE, mean pooling)",
           "pairs_from": "every man page of /usr/share/man/man1-8 ingested with --drop-section NAME (collection man-noname): "
                         "self-supervised spans and chunks, no NAME-line text",
           "recipe": recipe, "steps": rows[-1]["step"] if rows else 0, "train_seconds_this_run": int(secs),
           "held_out": [{"step": r["step"], "val_loss": r["val_loss"], "val_acc": r.get("val_acc")} for r in evals]},
          open(prov, "w"), indent=1)
PYEOF
  fi
  [ -f "$PROV" ] || "$PY" -c 'import json,sys; json.dump({"reused": sys.argv[1], "sha256": sys.argv[2]}, open(sys.argv[3], "w"), indent=1)' \
    "$MODEL" "$(sha "$MODEL")" "$PROV"
fi
log "embedding model: $MODEL"

ingest() { # ingest NAME JSON_OUT ARGS...
  local name=$1 out=$2
  shift 2
  "$QAI" ingest --data-dir "$HOME_DIR" --into "$name" --no-store --json -q -t "$THREADS" "$@" > "$out"
}
evaluate() { # evaluate NAME PAGES MODES LABEL OUT
  "$EVAL" --data-dir "$HOME_DIR" --collection "$1" --pages "$2" --modes "$3" --label "$4" > "$5"
}
rm -rf "$HOME_DIR"

if [ "$FULL" = 1 ]; then
  log "full corpus, BM25: ingesting $N_ALL pages"
  ingest man-all "$OUT/ingest_full.json" /usr/share/man/man1 /usr/share/man/man2 /usr/share/man/man3 \
    /usr/share/man/man4 /usr/share/man/man5 /usr/share/man/man6 /usr/share/man/man7 /usr/share/man/man8
  evaluate man-all "$OUT/pages_queries.txt" bm25 "full, with NAME" "$OUT/eval_full.json"
  log "full corpus, BM25, NAME sections dropped"
  ingest man-all "$OUT/ingest_full_noname.json" --drop-section NAME /usr/share/man/man1 /usr/share/man/man2 \
    /usr/share/man/man3 /usr/share/man/man4 /usr/share/man/man5 /usr/share/man/man6 /usr/share/man/man7 \
    /usr/share/man/man8
  evaluate man-all "$OUT/pages_queries.txt" bm25 "full, NAME dropped" "$OUT/eval_full_noname.json"
fi

log "sample, with embeddings: ingesting $(wc -l < "$OUT/pages_sample.txt") pages"
mapfile -t SAMPLE < "$OUT/pages_sample.txt"
ingest man-sample "$OUT/ingest_sample.json" -m "$MODEL" "${SAMPLE[@]}"
evaluate man-sample "$OUT/pages_sample.txt" bm25,dense,hybrid "sample, with NAME" "$OUT/eval_sample.json"
log "sample, NAME sections dropped (vectors of unchanged chunk texts are reused)"
ingest man-sample "$OUT/ingest_sample_noname.json" -m "$MODEL" --drop-section NAME "${SAMPLE[@]}"
evaluate man-sample "$OUT/pages_sample.txt" bm25,dense,hybrid "sample, NAME dropped" "$OUT/eval_sample_noname.json"
if [ -n "${RERANK_MODEL:-}" ]; then
  log "sample, NAME dropped, the top $RERANK_K reranked by $RERANK_MODEL"
  "$EVAL" --data-dir "$HOME_DIR" --collection man-sample --pages "$OUT/pages_sample.txt" --modes bm25,hybrid \
    --rerank "$RERANK_MODEL" --rerank-k "$RERANK_K" --threads "$THREADS" --label "sample, NAME dropped, reranked" \
    > "$OUT/eval_sample_rerank.json"
fi

"$PY" - "$OUT" "$MODEL" << 'EOF'
import json, os, sys, html
out, model = sys.argv[1], sys.argv[2]
def load(n):
    p = os.path.join(out, n)
    return json.load(open(p)) if os.path.exists(p) else None
evals = [e for e in (load(n) for n in ("eval_full.json", "eval_full_noname.json", "eval_sample.json", "eval_sample_noname.json", "eval_sample_rerank.json")) if e]
ingests = {}
for n in ("ingest_full", "ingest_full_noname", "ingest_sample", "ingest_sample_noname"):
    j = load(n + ".json")
    if not j: continue
    t, tot = j["timing"], j["totals"]
    ingests[n] = {"files": tot["files"], "skipped": tot["skipped"], "docs": tot["docs"], "chunks": tot["chunks"],
                  "dup_exact": tot["dup_exact"], "dup_near": tot["dup_near"], "text_mb": tot["text_bytes"] / 1e6,
                  "seconds": t["seconds"], "seconds_extract": t["seconds_extract"], "seconds_embed": t["seconds_embed"],
                  "text_mb_per_s_chunks_bm25": t["text_mb_per_s"],
                  "text_mb_per_s_total": tot["text_bytes"] / 1e6 / t["seconds"] if t["seconds"] else 0,
                  "chunks_embedded": tot["chunks_embedded"], "vectors_reused_by_text": tot.get("vectors_reused_by_text", 0),
                  "embed_model": (j["options"].get("embed_model") or {}).get("name")}
res = {"embed_model": model, "embed_model_provenance": load("embed_provenance.json"), "evaluations": evals, "ingestion": ingests,
       "notes": "queries: NAME-line descriptions; relevant: the page (a dedup twin counts); document ranks from the top 100 chunks; "
                "'with NAME' indexes the page as is, 'NAME dropped' cuts the NAME section before chunking"}
for e in evals:
    m = e["modes"]
    if all(k in m for k in ("bm25", "dense", "hybrid")):
        e["hybrid_beats_both"] = {k: m["hybrid"][k] > max(m["bm25"][k], m["dense"][k]) for k in ("recall@1", "recall@10", "mrr", "ndcg@10")}
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=1)
rows = []
for e in evals:
    for mode, v in e["modes"].items():
        rows.append((e["label"], e["queries"], e["chunks"], mode, v))
W, bar = 760, 14
svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">' % (W, 30 + len(rows) * (bar + 6))]
svg.append('<text x="0" y="12">nDCG@10 (bar) per run and mode</text>')
for i, (label, q, ch, mode, v) in enumerate(rows):
    y = 22 + i * (bar + 6)
    w = int(v["ndcg@10"] * 400)
    col = {"bm25": "#4477aa", "dense": "#ee6677", "hybrid": "#228833"}[mode.split("+")[0]]
    svg.append('<text x="0" y="%d">%s</text>' % (y + 11, html.escape("%s / %s" % (label, mode))))
    svg.append('<rect x="230" y="%d" width="%d" height="%d" fill="%s"/>' % (y, w, bar, col))
    svg.append('<text x="%d" y="%d">%.3f</text>' % (236 + w, y + 11, v["ndcg@10"]))
svg.append("</svg>")
t = ["<table border=1 cellpadding=4><tr><th>run</th><th>queries</th><th>chunks</th><th>mode</th><th>recall@1</th><th>recall@10</th><th>MRR</th><th>nDCG@10</th><th>queries/s</th></tr>"]
for label, q, ch, mode, v in rows:
    t.append("<tr><td>%s</td><td>%d</td><td>%d</td><td>%s</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.3f</td><td>%.0f</td></tr>" % (
        html.escape(label), q, ch, mode, v["recall@1"], v["recall@10"], v["mrr"], v["ndcg@10"], v["queries_per_s"]))
t.append("</table>")
it = ["<table border=1 cellpadding=4><tr><th>ingest</th><th>files</th><th>chunks</th><th>text MB</th><th>MB/s to chunks+BM25</th><th>MB/s overall</th><th>chunks embedded</th></tr>"]
for n, v in ingests.items():
    it.append("<tr><td>%s</td><td>%d</td><td>%d</td><td>%.1f</td><td>%.2f</td><td>%.3f</td><td>%d</td></tr>" % (
        n, v["files"], v["chunks"], v["text_mb"], v["text_mb_per_s_chunks_bm25"], v["text_mb_per_s_total"], v["chunks_embedded"]))
it.append("</table>")
open(os.path.join(out, "results.html"), "w").write(
    "<html><head><meta charset=utf-8><title>qai retrieval evaluation</title></head><body>"
    "<h1>Man-page retrieval (qai)</h1><p>%s</p><p>Embedding model: %s</p>%s<h2>Ingestion</h2>%s%s</body></html>" % (
        html.escape(res["notes"]), html.escape(model), "".join(t), "".join(it), "".join(svg)))
for label, q, ch, mode, v in rows:
    print("%-22s %-6s q=%-6d r@1=%.3f r@10=%.3f mrr=%.3f ndcg@10=%.3f" % (label, mode, q, v["recall@1"], v["recall@10"], v["mrr"], v["ndcg@10"]))
for n, v in ingests.items():
    print("%-22s %6d files %7d chunks %7.1f MB text: %.2f MB/s to chunks+BM25, %.3f MB/s overall" % (
        n, v["files"], v["chunks"], v["text_mb"], v["text_mb_per_s_chunks_bm25"], v["text_mb_per_s_total"]))
EOF
log "wrote $OUT/results.json and $OUT/results.html"
