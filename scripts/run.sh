#!/usr/bin/env bash
# `make run`: the main job — `qai serve` on 127.0.0.1:$PORT (default 8080) with
# MODEL (a GGUF file or .qai bundle), or by default with the small story model
# converted from the reference data into the data directory. CHAT=1 chats in
# the terminal instead. Without any model, explains in one screen how to get one.
set -u
QAI=$1
MODEL=${2:-}
TEMPLATE=${TEMPLATE:-}
PORT=${PORT:-8080}
data=$(cd "$(dirname "$0")/../../shared/data/models/stories260K" 2>/dev/null && pwd || echo ../shared/data/models/stories260K)
if [ -z "$MODEL" ] && [ -f "$data/stories260K.bin" ]; then
  home=${QAI_HOME:-$HOME/.local/share/qai}
  mkdir -p "$home/models"
  MODEL=$home/models/stories260K.gguf
  [ -f "$MODEL" ] || "$QAI" convert --from llama2c --tokenizer "$data/tok512.bin" "$data/stories260K.bin" -o "$MODEL" >&2 || exit 1
fi
if [ -n "$MODEL" ]; then
  if [ ! -f "$MODEL" ]; then
    echo "qai: make run: model '$MODEL' does not exist" >&2
    exit 1
  fi
  [ "${CHAT:-0}" = 1 ] && exec "$QAI" chat -m "$MODEL" ${TEMPLATE:+--template "$TEMPLATE"}
  cat >&2 <<TXT
qai: make run: serving $MODEL on http://127.0.0.1:$PORT/v1 (Ctrl-C stops; CHAT=1 make run chats instead)
  try:  curl -s localhost:$PORT/v1/completions -d '{"prompt": "Once upon a time", "max_tokens": 48}'
        curl -s localhost:$PORT/metrics | grep qai_
  keys: $QAI keys create --scope inference   (once a key exists, requests need it)
TXT
  exec "$QAI" serve -m "$MODEL" --port "$PORT" ${TEMPLATE:+--template "$TEMPLATE"}
fi
cat <<TXT
qai is built: $QAI

To serve a GGUF model:   make run MODEL=path/to/model.gguf  [TEMPLATE=chatml] [PORT=8080]
To chat with it instead:  CHAT=1 make run MODEL=path/to/model.gguf

Where to get one (nothing is downloaded at run time):
  * a chat model in GGUF (TinyLlama-1.1B-Chat, SmolLM2-Instruct, Qwen2.5-Instruct,
    Llama 3.2 Instruct, ... e.g. a Q4_K_M or Q8_0 file) copied onto this machine;
  * the small story model shipped for tests, converted from llama2.c's format:
      $QAI convert --from llama2c --tokenizer $data/tok512.bin \\
          $data/stories260K.bin -o stories260K.gguf
      $QAI run -m stories260K.gguf -p "Once upon a time" --temp 0
    (a story model, not a chat model: use 'qai run' with it);
  * random weights of any shape, for benchmarks:
      $QAI init --dim 768 --layers 12 --heads 12 --ffn 2048 --vocab 32000 --type q8_0 rand.gguf

Then:  qai inspect FILE.gguf | qai quantize IN.gguf OUT.gguf q4_k_m | qai bench -m FILE.gguf
Docs: docs/<command>.md, or qai <command> --help.
TXT
