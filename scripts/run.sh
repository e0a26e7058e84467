#!/usr/bin/env bash
# `make run`: the main job — `qai serve` on 127.0.0.1:$PORT (default 8080) on
# the embedded defaults: one data directory ($QAI_HOME, else
# ~/.local/share/qai) holding the store and the default model. The default
# model is qai's own: on the first run it is made here, with qai's tokenizer
# trainer and trainer, from the manual pages of Debian's `manpages` and
# `manpages-dev` packages (a few minutes, with progress), then reused.
# MODEL=path.gguf|.qai serves that instead; CHAT=1 chats in the terminal;
# STEPS= sets the default model's training steps (default 600). The first run
# also indexes the machine's manual pages into the collection 'man' for
# `qai rag` / `qai search` (INDEX=0 skips it).
set -u
QAI=$1
MODEL=${2:-}
TEMPLATE=${TEMPLATE:-}
PORT=${PORT:-8080}
STEPS=${STEPS:-600}
home=${QAI_HOME:-$HOME/.local/share/qai}
export QAI_HOME=$home

say() { echo "qai: make run: $*" >&2; }

# The default model: tokenizer → token shards → a small Llama, all by qai.
# Every step's output is reused when present; an interrupted training run
# resumes from its checkpoint.
make_default_model() {
  local out=$1 work=$home/default-model
  mkdir -p "$work" "$(dirname "$out")"
  local pages=()
  while IFS= read -r f; do [ -f "$f" ] && pages+=("$f"); done < <(
    dpkg -L manpages manpages-dev 2>/dev/null | grep -E '^/usr/share/man/man[1-8]/[^/]+\.gz$' | sort)
  if [ ${#pages[@]} -lt 100 ]; then
    say "the default model is trained on Debian's manual pages, and they are not installed:"
    say "  sudo apt-get install manpages manpages-dev   (or: make run MODEL=path/to/model.gguf)"
    return 1
  fi
  say "first run: making the default model from ${#pages[@]} manual pages (manpages, manpages-dev) in $work"
  if [ ! -s "$work/tok.gguf" ]; then
    say "1/3 tokenizer (BPE, 2048 tokens)"
    "$QAI" tokenizer train --vocab 2048 "${pages[@]}" -o "$work/tok.gguf" || return 1
  fi
  if [ ! -s "$work/data/manifest.json" ]; then
    say "2/3 token shards"
    rm -rf "$work/data"
    "$QAI" data prepare --tokenizer "$work/tok.gguf" --val 0.02 "${pages[@]}" -o "$work/data" || return 1
  fi
  local ckpt=$work/model.gguf.ckpt/latest.qck
  if [ -s "$work/model.gguf" ]; then
    : # trained by an earlier run
  elif [ -f "$ckpt" ]; then
    say "3/3 training: resuming $ckpt (Ctrl-C keeps a checkpoint; the next 'make run' resumes)"
    "$QAI" train --resume "$ckpt" -o "$work/model.gguf" || return 1
  else
    say "3/3 training ($STEPS steps; Ctrl-C keeps a checkpoint and the next 'make run' resumes)"
    "$QAI" train --data "$work/data" --vocab 2048 --dim 256 --layers 4 --heads 4 --ffn 688 \
      --seq 256 --batch 8 --max-steps "$STEPS" --warmup 40 --lr 2e-3 --min-lr 2e-4 \
      --eval-every 100 --ckpt-every 100 --seed 1 -o "$work/model.gguf" || return 1
  fi
  cp "$work/model.gguf" "$out.tmp" && mv "$out.tmp" "$out" || return 1
  say "the default model is $out (training log and loss curve in $work/model.gguf.ckpt/)"
}

# The man-page collection `qai rag` and `qai search` answer from: the manual
# pages installed on this machine (English sections 1-8), made once.
make_man_index() {
  [ -f "$home/collections/man/CURRENT" ] && return 0
  say "first run: indexing the manual pages in /usr/share/man (collection 'man', BM25)"
  "$QAI" ingest /usr/share/man/man1 /usr/share/man/man2 /usr/share/man/man3 /usr/share/man/man4 \
    /usr/share/man/man5 /usr/share/man/man7 /usr/share/man/man8 --into man >&2 ||
    say "indexing the manual pages failed: 'qai rag --index man' will not work (the server still starts)"
}

if [ -z "$MODEL" ]; then
  MODEL=$home/models/qai-man.gguf
  [ -f "$MODEL" ] || make_default_model "$MODEL" || exit 1
fi
[ "${INDEX:-1}" = 1 ] && make_man_index
if [ ! -f "$MODEL" ]; then
  say "model '$MODEL' does not exist"
  exit 1
fi
[ "${CHAT:-0}" = 1 ] && exec "$QAI" chat -m "$MODEL" ${TEMPLATE:+--template "$TEMPLATE"}
name=$(basename "$MODEL"); name=${name%.gguf}; name=${name%.qai}
cat >&2 <<TXT
qai: make run: serving $MODEL on http://127.0.0.1:$PORT/v1 (Ctrl-C stops; CHAT=1 make run chats instead)
  try:  curl -s localhost:$PORT/v1/completions -H 'Content-Type: application/json' \\
             -d '{"model": "$name", "prompt": "The open() system call", "max_tokens": 48}'
        curl -s localhost:$PORT/metrics | grep qai_
  ask:  $QAI rag --index man "how do I duplicate a file descriptor?"     (cited passages)
        $QAI search man "change file permissions" -k 3
  keys: $QAI keys create --scope inference   (once a key exists, requests need it)
  data: $home (store, models)
TXT
exec "$QAI" serve -m "$MODEL" --port "$PORT" ${TEMPLATE:+--template "$TEMPLATE"}
