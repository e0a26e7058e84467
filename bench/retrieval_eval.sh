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
# model, trained here once and reused — see below), EMBED_STAGE (2: the
# two-stage model; 1: the self-supervised stage only, for its rows),
# EMBED_STAGE1 (an existing stage-1 model to start stage 2 from, e.g. one an
# earlier run trained; EMBED_STAGE1_PROV its provenance JSON), EMBED_BASE (the
# language model stage 1 starts from: default $QAI_HOME/models/qai-man.gguf,
# else /tmp/walk/man.gguf, else a small one trained here: a 4096-token BPE and
# a 2-layer model on a few hundred rendered pages), EMBED_STEPS (600, stage
# 1), SUP_STEPS (300, stage 2), HARD_NEGATIVES (1: stage 2 pairs carry
# BM25-mined hard negatives; 0: in-batch only), EMBED_DEV_PAGES (development pages for the
# fusion weight when EMBED_MODEL is given), DEV (1; 0: no weighted-fusion
# row), DENSE_PAGES (300), QUERY_PAGES (0: every page is a query on the full
# index; N: a spread sample of N pages), FULL (1: also the full BM25 run),
# THREADS (2), RERANK_MODEL (none: a GGUF decoder that reranks the top
# RERANK_K (30) of bm25 and hybrid in an extra run).
# Output: $OUT/results.json and $OUT/results.html (a table and an SVG chart).
#
# The embedding model, when none is given, in two stages (E5-style: weak
# pairs, then labelled ones), with fixed recipes — nothing is tuned on the
# evaluation queries:
#  1. self-supervised: `qai train --objective contrastive` from the base
#     language model on spans and chunks of an ingest of every man page with
#     the NAME sections dropped (batch 32, positives 64 tokens, queries 24,
#     temperature 0.05, lr 2e-4 -> 2e-5, 10 warmup steps, EMBED_STEPS steps).
#  2. supervised, on a split disjoint from the evaluation (as MS MARCO's train
#     and dev): the NAME-line descriptions of the pages that are NOT evaluated
#     (cut by `bench_retrieval --dump-queries`, the evaluation's own rule) as
#     queries, the first 3 own chunks of the same page from the NAME-dropped
#     ingest as positives (one per step; a page at most once per batch).
#     Excluded: every evaluation page, every page whose normalised description
#     equals an evaluation query or whose name (printf in printf.1 / printf.3)
#     equals an evaluation page's, pages with no chunk of their own, repeated
#     descriptions. Each pair carries hard negatives (HARD_NEGATIVES=1, the
#     default; 0 for in-batch negatives only): the 2 best BM25 chunks, in the
#     NAME-dropped ingest, of other pages (`bench_retrieval --mine`), skipping
#     the page itself, pages with the same normalised description, the
#     page's gcloud alpha/beta/GA siblings, evaluation pages and the page's own
#     positives; one of them joins the batch when the pair is drawn. From the
#     stage-1 model: batch 32, positives 128 tokens, queries 32, temperature
#     0.05, lr 1e-4 -> 1e-5, 20 warmup steps, SUP_STEPS steps, 5% of the
#     training pages held out for val_loss/val_acc. The model is retrained if
#     the evaluation sample or HARD_NEGATIVES changes.
# Provenance (base model and SHA-256s, both recipes, the split's counts and
# rules and the pair file's SHA-256, held-out loss and accuracy) is recorded in
# results.json under embed_model_provenance.
#
# Hybrid is RRF (k = 60, the library default). Next to it, a weighted-fusion
# row (weighted@W: min-max normalized scores, dense weight W) whose W is
# chosen on development pages — the stage-2 validation pages, never an
# evaluation page — by MRR, one W per variant; recorded under weighted_fusion.
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
EMBED_STAGE=${EMBED_STAGE:-2}
SUP_VAL=0.05 # the stage-2 validation share (by page): also the development pages of the fusion weight
PROV=$OUT/embed_provenance.json
sha() { sha256sum "$1" | cut -d' ' -f1; }
TRAIN_HOME=$OUT/train-home
train_ingest() { # every man page with the NAME sections dropped: the training text of both stages
  if [ ! -f "$TRAIN_HOME/collections/man-noname/CURRENT" ]; then
    log "training text: ingesting every man page with the NAME sections dropped"
    "$QAI" ingest --data-dir "$TRAIN_HOME" --into man-noname --no-store --json -q -t "$THREADS" --drop-section NAME \
      /usr/share/man/man1 /usr/share/man/man2 /usr/share/man/man3 /usr/share/man/man4 /usr/share/man/man5 \
      /usr/share/man/man6 /usr/share/man/man7 /usr/share/man/man8 > "$OUT/ingest_train_pairs.json"
  fi
}
# the held-out log of a training run as JSON
held_out() { "$PY" -c 'import json,sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(json.dumps([{"step": r["step"], "lr": r["lr"], "val_loss": r["val_loss"], "val_acc": r.get("val_acc")} for r in rows if "val_loss" in r]))' "$1"; }

if [ -n "$MODEL" ]; then
  "$PY" -c 'import json,sys; json.dump({"given": sys.argv[1], "sha256": sys.argv[2]}, open(sys.argv[3], "w"), indent=1)' \
    "$MODEL" "$(sha "$MODEL")" "$PROV"
else
  # stage 1: self-supervised pairs (spans and chunks of the NAME-dropped pages)
  STAGE1=${EMBED_STAGE1:-$OUT/embed-contrastive.gguf}
  PROV1=$OUT/embed_provenance_stage1.json
  if [ -n "${EMBED_STAGE1:-}" ]; then
    [ -f "$STAGE1" ] || { log "EMBED_STAGE1=$STAGE1: no such file"; exit 1; }
    [ -f "$PROV1" ] && [ "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("sha256", ""))' "$PROV1")" = "$(sha "$STAGE1")" ] ||
      "$PY" -c 'import json,sys; json.dump({"given": sys.argv[1], "sha256": sys.argv[2], "provenance": json.load(open(sys.argv[4])) if sys.argv[4] else None}, open(sys.argv[3], "w"), indent=1)' \
        "$STAGE1" "$(sha "$STAGE1")" "$PROV1" "${EMBED_STAGE1_PROV:-}"
  elif [ ! -f "$STAGE1" ]; then
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
    train_ingest
    RECIPE=(--batch 32 --seq 64 --query-seq 24 --micro-batch 16 --temperature 0.05 --lr 2e-4 --min-lr 2e-5
      --warmup 10 --max-steps "${EMBED_STEPS:-600}" --eval-every 25 --eval-batches 4 --ckpt-every 25 --seed 1)
    CKPT=$STAGE1.ckpt/latest.qck
    log "stage 1: the embedding model from $BASE (contrastive, self-supervised, ${EMBED_STEPS:-600} steps; resumable)"
    t0=$(date +%s)
    if [ -f "$CKPT" ]; then "$QAI" train --resume "$CKPT" --threads "$THREADS" -o "$STAGE1"
    else
      "$QAI" train --objective contrastive --init "$BASE" --pairs-from man-noname --data-dir "$TRAIN_HOME" \
        "${RECIPE[@]}" --threads "$THREADS" -o "$STAGE1"
    fi
    t1=$(date +%s)
    "$PY" - "$PROV1" "$BASE" "$(sha "$BASE")" "$STAGE1" "$(sha "$STAGE1")" "$(held_out "$STAGE1.ckpt/log.jsonl")" \
      $((t1 - t0)) "${RECIPE[*]}" "$(tail -n 1 "$STAGE1.ckpt/log.jsonl")" << 'PYEOF'
import json, sys
prov, base, base_sha, model, model_sha, held, secs, recipe, last = sys.argv[1:10]
json.dump({"trained_here": True, "model": model, "sha256": model_sha, "base_model": base, "base_sha256": base_sha,
           "objective": "contrastive (symmetric in-batch InfoNCE, mean pooling)",
           "pairs_from": "every man page of /usr/share/man/man1-8 ingested with --drop-section NAME (collection man-noname): "
                         "self-supervised spans and chunks, no NAME-line text",
           "recipe": recipe, "steps": json.loads(last)["step"], "train_seconds_this_run": int(secs),
           "held_out": json.loads(held)}, open(prov, "w"), indent=1)
PYEOF
  fi
  [ -f "$PROV1" ] || "$PY" -c 'import json,sys; json.dump({"reused": sys.argv[1], "sha256": sys.argv[2]}, open(sys.argv[3], "w"), indent=1)' \
    "$STAGE1" "$(sha "$STAGE1")" "$PROV1"
  MODEL=$STAGE1
  cp "$PROV1" "$PROV"

  # stage 2: supervised pairs from the pages that are not evaluated — a page's
  # NAME-line description (cut by the evaluation's own rule) as the query, a
  # chunk of that page from the NAME-dropped ingest as the positive
  if [ "$EMBED_STAGE" = 2 ]; then
    SUP=$OUT/embed-sup.gguf
    PROV2=$OUT/embed_provenance_stage2.json
    SAMPLE_SHA=$(sha "$OUT/pages_sample.txt")
    HARD_NEGATIVES=${HARD_NEGATIVES:-1}
    if [ -f "$SUP" ] && ! { grep -q "\"evaluation_sample_sha256\": \"$SAMPLE_SHA\"" "$PROV2" &&
      grep -q "\"hard_negatives\": $HARD_NEGATIVES" "$PROV2"; } 2> /dev/null; then
      log "stage 2: $SUP was trained against another evaluation sample or negatives setting: training it again"
      rm -rf "$SUP" "$SUP.ckpt"
    fi
    if [ ! -f "$SUP" ]; then
      train_ingest
      "$EVAL" --dump-queries "$OUT/pages_all.txt" > "$OUT/queries_all.jsonl"
      "$EVAL" --data-dir "$TRAIN_HOME" --collection man-noname --export-chunks "$OUT/chunks_noname.jsonl"
      "$PY" - "$OUT/queries_all.jsonl" "$OUT/pages_sample.txt" "$OUT/chunks_noname.jsonl" "$OUT/sup_pairs.jsonl" \
        "$OUT/sup_split.json" "$OUT/sup_pages.txt" << 'PYEOF'
import hashlib, json, os, re, sys
from collections import Counter, defaultdict
queries_all, sample, chunks, out_pairs, out_stats, out_pages = sys.argv[1:7]
MAX_POS = 3
def norm(q): return " ".join(re.sub(r"[^\w]+", " ", q.lower()).split())
def pname(p): # printf.3.gz, printf.1 -> printf
    b = re.sub(r"\.(gz|bz2|xz|zst|Z)$", "", os.path.basename(p))
    return re.sub(r"\.[0-9][^.]*$", "", b).lower()
qs = [json.loads(l) for l in open(queries_all) if l.strip()]
evalp = [l.strip() for l in open(sample) if l.strip()]
evalset = set(evalp)
q_of = {r["page"]: r["query"] for r in qs}
eval_q = {norm(q_of[p]) for p in evalp if p in q_of}
eval_names = {pname(p) for p in evalp}
by_doc = defaultdict(list) # chunks of the NAME-dropped collection, per page in order
for l in open(chunks):
    if l.strip():
        c = json.loads(l)
        by_doc[c["doc"]].append(c["text"])
# a chunk text found in pages of different descriptions is boilerplate: it cannot tell them apart
descs_of = defaultdict(set)
for r in qs:
    for t in by_doc.get(r["page"], []):
        descs_of[hashlib.sha1(t.encode()).digest()].add(norm(r["query"]))
def own(p): return [t for t in by_doc.get(p, []) if len(descs_of[hashlib.sha1(t.encode()).digest()]) == 1][:MAX_POS]
excl, fam, train, seen_q = Counter(), Counter(), [], set()
for r in qs:
    p, q = r["page"], r["query"]
    if p in evalset: excl["evaluation page"] += 1; continue
    if norm(q) in eval_q: excl["description equals an evaluation query"] += 1; continue
    if pname(p) in eval_names: excl["page name equals an evaluation page's name"] += 1; continue
    if not own(p): excl["no chunk of its own in the NAME-dropped ingest"] += 1; continue
    if norm(q) in seen_q: excl["description repeats an earlier training page's"] += 1; continue
    seen_q.add(norm(q)); train.append((p, q))
n_pairs = 0
with open(out_pairs, "w") as f:
    for p, q in train:
        fam["gcloud" if os.path.basename(p).startswith("gcloud") else "other"] += 1
        for t in own(p):
            f.write(json.dumps({"doc": p, "query": q, "positive": t}, ensure_ascii=False) + "\n"); n_pairs += 1
with open(out_pages, "w") as f: # the training pages, for mining their hard negatives
    f.writelines(p + "\n" for p, q in train)
json.dump({"pages_with_description": len(qs), "evaluation_pages": len(evalp),
           "evaluation_sample_sha256": hashlib.sha256(open(sample, "rb").read()).hexdigest(),
           "training_pages": len(train), "training_pages_by_family": dict(fam), "pairs": n_pairs,
           "positives_per_page": "the first %d chunks of the page in the NAME-dropped ingest that no page of another "
                                 "description shares; one drawn per step, a page at most once per batch" % MAX_POS,
           "excluded": dict(excl),
           "exclusion_rules": ["every page of the evaluation sample",
                               "pages whose normalised description (lower case, punctuation to spaces) equals an evaluation query",
                               "pages whose name (basename without compression and section suffix, lower case) equals an evaluation page's name",
                               "pages without a chunk of their own in the NAME-dropped ingest (dropped as a near-duplicate, "
                               "or every chunk also in a page of another description)",
                               "pages whose description repeats an earlier training page's (one page per description)"],
           "query": "the page's NAME-line description, cut by bench_retrieval --dump-queries (the evaluation's own rule)",
           "pairs_file": out_pairs, "pairs_sha256": hashlib.sha256(open(out_pairs, "rb").read()).hexdigest()},
          open(out_stats, "w"), indent=1)
PYEOF
      PAIRS2=$OUT/sup_pairs.jsonl
      if [ "$HARD_NEGATIVES" = 1 ]; then
        log "stage 2: mining hard negatives (BM25 over the NAME-dropped ingest of every page)"
        "$EVAL" --data-dir "$TRAIN_HOME" --collection man-noname --pages "$OUT/sup_pages.txt" --mine "$OUT/sup_mined.jsonl"
        PAIRS2=$OUT/sup_pairs_neg.jsonl
        "$PY" - "$OUT/sup_pairs.jsonl" "$OUT/sup_mined.jsonl" "$OUT/queries_all.jsonl" "$OUT/pages_sample.txt" \
          "$PAIRS2" "$OUT/sup_split.json" << 'PYEOF'
import hashlib, json, os, re, sys
from collections import defaultdict
pairs, mined, queries_all, sample, out, split = sys.argv[1:7]
def norm(q): return " ".join(re.sub(r"[^\w]+", " ", q.lower()).split())
def sibling(p): # gcloud_alpha_x / gcloud_beta_x / gcloud_x: one command
    return re.sub(r"^gcloud_(alpha|beta)_", "gcloud_", re.sub(r"\.(gz|bz2|xz|zst|Z)$", "", os.path.basename(p)))
desc = {}
for l in open(queries_all):
    if l.strip():
        r = json.loads(l); desc[r["page"]] = norm(r["query"])
evalset = {l.strip() for l in open(sample) if l.strip()}
rows = [json.loads(l) for l in open(pairs) if l.strip()]
own = defaultdict(set)
for r in rows: own[r["doc"]].add(r["positive"])
negs, skipped = {}, {"same description": 0, "sibling command": 0, "evaluation page": 0}
for l in open(mined):
    m = json.loads(l); p = m["page"]; q = norm(m["query"]); got = []
    for h in m["hits"]:
        s, t = h["source"], h["text"]
        if s == p or t in own[p] or t in got: continue
        why = ("same description" if desc.get(s) == q else "sibling command" if sibling(s) == sibling(p)
               else "evaluation page" if s in evalset else None)
        if why: skipped[why] += 1; continue
        got.append(t)
        if len(got) == 2: break
    if got: negs[p] = got
with open(out, "w") as f:
    for r in rows:
        if r["doc"] in negs: r["negative"] = negs[r["doc"]]
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
st = json.load(open(split))
st["hard_negatives"] = {"pages_with_negatives": len(negs), "per_pair": "up to 2: the best BM25 chunks (top 20 of the "
                        "NAME-dropped ingest of every page, the page's description as the query) of other pages; one "
                        "drawn with the pair", "candidates_skipped": skipped,
                        "rules": ["not the page itself, nor one of its positives", "not a page with the same normalised description",
                                  "not a gcloud alpha/beta/GA sibling of the page", "not an evaluation page"],
                        "pairs_file": out, "pairs_sha256": hashlib.sha256(open(out, "rb").read()).hexdigest()}
json.dump(st, open(split, "w"), indent=1)
PYEOF
      fi
      RECIPE2=(--batch 32 --seq 128 --query-seq 32 --micro-batch 16 --temperature 0.05 --lr 1e-4 --min-lr 1e-5
        --warmup 20 --max-steps "${SUP_STEPS:-300}" --val-share "$SUP_VAL" --eval-every 50 --eval-batches 8 --ckpt-every 50 --seed 1)
      log "stage 2: supervised pairs of $("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["training_pages"])' "$OUT/sup_split.json") training pages, ${SUP_STEPS:-300} steps from $STAGE1"
      t0=$(date +%s)
      if [ -f "$SUP.ckpt/latest.qck" ]; then "$QAI" train --resume "$SUP.ckpt/latest.qck" --threads "$THREADS" -o "$SUP"
      else
        "$QAI" train --objective contrastive --init "$STAGE1" --pairs "$PAIRS2" "${RECIPE2[@]}" \
          --threads "$THREADS" -o "$SUP"
      fi
      t1=$(date +%s)
      "$PY" - "$PROV2" "$PROV1" "$OUT/sup_split.json" "$SUP" "$(sha "$SUP")" "$(held_out "$SUP.ckpt/log.jsonl")" \
        $((t1 - t0)) "${RECIPE2[*]}" "$(tail -n 1 "$SUP.ckpt/log.jsonl")" "$SUP_VAL" "$HARD_NEGATIVES" << 'PYEOF'
import json, sys
prov, prov1, split, model, model_sha, held, secs, recipe, last, sp_val, hard = sys.argv[1:12]
sp = json.load(open(split))
json.dump({"trained_here": True, "model": model, "sha256": model_sha, "stages": 2,
           "objective": "contrastive (InfoNCE over the batch's positives" + (" and hard negatives" if hard == "1" else "") +
                        ", mean pooling)",
           "stage1": json.load(open(prov1)),
           "stage2": {"init": "the stage-1 model", "pairs": "supervised: (NAME-line description, chunk of the same page) "
                      "for pages disjoint from the evaluation sample" + (", with BM25-mined hard negatives" if hard == "1" else ""),
                      "hard_negatives": int(hard), "evaluation_sample_sha256": sp["evaluation_sample_sha256"],
                      "split": sp, "recipe": recipe, "validation": "--val-share %s of the training pages (by page), "
                      "never an evaluation query" % sp_val, "steps": json.loads(last)["step"],
                      "train_seconds_this_run": int(secs), "train_seconds": json.loads(last).get("elapsed_s"),
                      "held_out": json.loads(held)}},
          open(prov, "w"), indent=1)
PYEOF
    fi
    [ -f "$PROV2" ] || { log "stage 2: $SUP has no provenance ($PROV2); remove it to train it again"; exit 1; }
    MODEL=$SUP
    cp "$PROV2" "$PROV"
  fi
fi
log "embedding model: $MODEL"

ingest() { # ingest NAME JSON_OUT ARGS...
  local name=$1 out=$2
  shift 2
  "$QAI" ingest --data-dir "$HOME_DIR" --into "$name" --no-store --json -q -t "$THREADS" "$@" > "$out"
}
evaluate() { # evaluate NAME PAGES MODES LABEL OUT [OPTIONS...]
  local name=$1 pages=$2 modes=$3 label=$4 out=$5
  shift 5
  "$EVAL" --data-dir "$HOME_DIR" --collection "$name" --pages "$pages" --modes "$modes" --label "$label" "$@" > "$out"
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

# Weighted fusion with its dense weight chosen on a development collection:
# the stage-2 validation pages (training pages the trainer held out by the
# hash of their path — never an evaluation page, never trained on), or
# EMBED_DEV_PAGES. One weight per variant (with NAME, NAME dropped), the one
# with the best MRR on the development queries (ties: the smaller weight).
# RRF (the library default) stays the "hybrid" row; this is the
# "weighted@W" row next to it. DEV=0 skips it.
W_NAME=""
W_NONAME=""
DEV_PAGES=${EMBED_DEV_PAGES:-}
DEV_SOURCE="EMBED_DEV_PAGES ($DEV_PAGES)"
if [ -z "$DEV_PAGES" ] && [ "$MODEL" = "${SUP:-}" ] && [ -f "$OUT/sup_pairs.jsonl" ]; then
  DEV_PAGES=$OUT/pages_dev.txt
  DEV_SOURCE="the stage-2 validation split of the training pages: disjoint from the evaluation sample, never trained on"
  "$PY" - "$OUT/sup_pairs.jsonl" "$SUP_VAL" > "$DEV_PAGES" << 'PYEOF'
import json, struct, sys
# the trainer's split (src/train/pairs.c id_hash): FNV-1a of the document id, mixed; validation when
# hash % 1e6 < (uint64)(val_share * 1e6), val_share a float
M = (1 << 64) - 1
def id_hash(s):
    h = 1469598103934665603
    for b in s.encode():
        h = ((h ^ b) * 1099511628211) & M
    h ^= h >> 29
    h = (h * 0xbf58476d1ce4e5b9) & M
    return h ^ (h >> 32)
cut = int(struct.unpack("f", struct.pack("f", float(sys.argv[2])))[0] * 1e6)
seen = set()
for l in open(sys.argv[1]):
    d = json.loads(l)["doc"]
    if d not in seen:
        seen.add(d)
        if id_hash(d) % 1000000 < cut: print(d)
PYEOF
fi
if [ -n "$DEV_PAGES" ] && [ "${DEV:-1}" = 1 ]; then
  GRID=$(LC_ALL=C seq -s, 0 0.05 1)
  mapfile -t DEVP < "$DEV_PAGES"
  log "weighted fusion: choosing the dense weight on ${#DEVP[@]} development pages (not evaluated, not trained on)"
  ingest man-dev "$OUT/ingest_dev.json" -m "$MODEL" "${DEVP[@]}"
  evaluate man-dev "$DEV_PAGES" bm25,dense,hybrid "development, with NAME" "$OUT/eval_dev.json" --weights "$GRID"
  ingest man-dev "$OUT/ingest_dev_noname.json" -m "$MODEL" --drop-section NAME "${DEVP[@]}"
  evaluate man-dev "$DEV_PAGES" bm25,dense,hybrid "development, NAME dropped" "$OUT/eval_dev_noname.json" --weights "$GRID"
  pick() { "$PY" -c 'import json,sys
m = json.load(open(sys.argv[1]))["modes"]
w = sorted((-v["mrr"], float(k.split("@")[1])) for k, v in m.items() if k.startswith("weighted@"))
print("%.2f" % w[0][1])' "$1"; }
  W_NAME=$(pick "$OUT/eval_dev.json")
  W_NONAME=$(pick "$OUT/eval_dev_noname.json")
  log "weighted fusion: dense weight $W_NAME (with NAME), $W_NONAME (NAME dropped), chosen on the development pages"
fi

log "sample, with embeddings: ingesting $(wc -l < "$OUT/pages_sample.txt") pages"
mapfile -t SAMPLE < "$OUT/pages_sample.txt"
ingest man-sample "$OUT/ingest_sample.json" -m "$MODEL" "${SAMPLE[@]}"
evaluate man-sample "$OUT/pages_sample.txt" bm25,dense,hybrid "sample, with NAME" "$OUT/eval_sample.json" \
  ${W_NAME:+--weights "$W_NAME"}
log "sample, NAME sections dropped (vectors of unchanged chunk texts are reused)"
ingest man-sample "$OUT/ingest_sample_noname.json" -m "$MODEL" --drop-section NAME "${SAMPLE[@]}"
evaluate man-sample "$OUT/pages_sample.txt" bm25,dense,hybrid "sample, NAME dropped" "$OUT/eval_sample_noname.json" \
  ${W_NONAME:+--weights "$W_NONAME"}
if [ -n "${RERANK_MODEL:-}" ]; then
  log "sample, NAME dropped, the top $RERANK_K reranked by $RERANK_MODEL"
  "$EVAL" --data-dir "$HOME_DIR" --collection man-sample --pages "$OUT/pages_sample.txt" --modes bm25,hybrid \
    --rerank "$RERANK_MODEL" --rerank-k "$RERANK_K" --threads "$THREADS" --label "sample, NAME dropped, reranked" \
    > "$OUT/eval_sample_rerank.json"
fi

"$PY" - "$OUT" "$MODEL" "$W_NAME" "$W_NONAME" "${DEV_SOURCE:-}" << 'EOF'
import json, os, sys, html
out, model, w_name, w_noname, dev_source = sys.argv[1:6]
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
dev = [e for e in (load("eval_dev.json"), load("eval_dev_noname.json")) if e]
res = {"embed_model": model, "embed_model_provenance": load("embed_provenance.json"), "evaluations": evals, "ingestion": ingests,
       "weighted_fusion": {"dense_weight_with_name": float(w_name) if w_name else None,
                           "dense_weight_name_dropped": float(w_noname) if w_noname else None,
                           "chosen_on": "development pages (%s), best MRR over dense weights 0, 0.05, ..., 1 "
                                        "(ties: the smaller)" % dev_source,
                           "development": dev} if dev else None,
       "notes": "queries: NAME-line descriptions; relevant: the page (a dedup twin counts); document ranks from the top 100 chunks; "
                "'with NAME' indexes the page as is, 'NAME dropped' cuts the NAME section before chunking"}
for e in evals:
    m = e["modes"]
    if all(k in m for k in ("bm25", "dense", "hybrid")):
        e["hybrid_beats_both"] = {k: m["hybrid"][k] > max(m["bm25"][k], m["dense"][k]) for k in ("recall@1", "recall@10", "mrr", "ndcg@10")}
        for wk in [k for k in m if k.startswith("weighted@")]:
            e["weighted_beats_both"] = {"mode": wk, **{k: m[wk][k] > max(m["bm25"][k], m["dense"][k]) for k in ("recall@1", "recall@10", "mrr", "ndcg@10")}}
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
    col = {"bm25": "#4477aa", "dense": "#ee6677", "hybrid": "#228833", "weighted": "#ccbb44"}[mode.split("+")[0].split("@")[0]]
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
