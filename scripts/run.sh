#!/usr/bin/env bash
# `make run`: chat with MODEL (a GGUF file); without one, explain in one screen
# how to get or make a model. (When `qai serve` lands, this starts the server.)
set -u
QAI=$1
MODEL=${2:-}
TEMPLATE=${TEMPLATE:-}
if [ -n "$MODEL" ]; then
  if [ ! -f "$MODEL" ]; then
    echo "qai: make run: model '$MODEL' does not exist" >&2
    exit 1
  fi
  exec "$QAI" chat -m "$MODEL" ${TEMPLATE:+--template "$TEMPLATE"}
fi
data=$(cd "$(dirname "$0")/../../shared/data/models/stories260K" 2>/dev/null && pwd || echo ../shared/data/models/stories260K)
cat <<TXT
qai is built: $QAI

To chat, give a GGUF model:   make run MODEL=path/to/model.gguf  [TEMPLATE=chatml]

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
