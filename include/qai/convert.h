/*
 * qai/convert.h — importers that turn other model formats into GGUF.
 *
 * llama2.c checkpoints (karpathy/llama2.c run.c "legacy" format, little-endian):
 *   offset 0: 7 × i32  dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *                      vocab_size (negative: the classifier is stored separately),
 *                      seq_len
 *   offset 28: f32 arrays, in this order (head_size = dim / n_heads,
 *              kv_dim = n_kv_heads * head_size, L = n_layers, V = |vocab_size|):
 *     token_embedding (V, dim)     rms_att (L, dim)           wq (L, dim, dim)
 *     wk (L, kv_dim, dim)          wv (L, kv_dim, dim)        wo (L, dim, dim)
 *     rms_ffn (L, dim)             w1 (L, hidden, dim)        w2 (L, dim, hidden)
 *     w3 (L, hidden, dim)          rms_final (dim)
 *     freq_cis_real (seq_len, head_size/2)   freq_cis_imag (same; both skipped)
 *     [wcls (V, dim) when vocab_size < 0]
 * The file must be exactly that long. The tokenizer.bin (llama2.c format) gives
 * the vocabulary and must have V tokens.
 *
 * The GGUF written has F32 tensors named and shaped as llama.cpp's "llama"
 * architecture expects (token_embd, blk.N.attn_{norm,q,k,v,output},
 * blk.N.ffn_{norm,gate,up,down} with w1=gate w3=up w2=down, output_norm, and
 * output only when the classifier is not shared), plus general.*, llama.* and
 * tokenizer.ggml.* metadata. llama2.c's rotary embedding pairs adjacent
 * elements like ggml's normal (non-NeoX) rope, so weights are copied unchanged.
 *
 * Hugging Face tokenizer.json files: see qai_convert_hf_tokenizer below.
 *
 * What it does not do: llama2.c's versioned exports (magic "ak42", int8
 * quantized), or any quantization (use qai quantize afterwards).
 *
 * Usage:
 *     if (qai_convert_llama2c("stories260K.bin", "tok512.bin", "out.gguf"))
 *         fprintf(stderr, "qai: %s\n", qai_last_error());
 */
#ifndef QAI_CONVERT_H
#define QAI_CONVERT_H

#include "qai/base.h"
#include "qai/gguf.h"
#include "qai/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Converts a llama2.c checkpoint and its tokenizer.bin into a GGUF v3 file
 * (written atomically). Fails with a message naming the file and the field or
 * byte count that is wrong; out_gguf is untouched on failure. */
qai_status qai_convert_llama2c(const char *model_bin, const char *tokenizer_bin, const char *out_gguf);

/* Writes a vocabulary-only GGUF (general.architecture=llama, no tensors) from a
 * llama2.c tokenizer.bin — enough for qai_tokenizer_from_gguf and llama.cpp's
 * vocab-only loading. */
qai_status qai_convert_llama2c_vocab(const char *tokenizer_bin, const char *out_gguf);

/* Sets the tokenizer.ggml.* keys of a writer from a vocabulary description:
 * model ("llama" for SPM, "gpt2" for BPE), tokens, scores, token_type, merges,
 * pre, the special token ids that are >= 0, add_bos_token, add_eos_token and
 * (SPM) add_space_prefix. Nothing in d is kept. */
qai_status qai_convert_set_vocab(qai_gguf_writer *w, const qai_vocab_desc *d);

/* ---- Hugging Face tokenizers (tokenizer.json) ----
 *
 * A "fast" tokenizer file (and optionally its tokenizer_config.json) read into
 * the vocabulary llama.cpp's convert_hf_to_gguf.py would write: byte-level BPE
 * (tokenizer.ggml.model "gpt2", with tokenizer.ggml.pre recognised from the
 * pre-tokenizer regex: llama3 → "llama-bpe", qwen2 → "qwen2", gpt2 → "gpt-2",
 * Digits + ByteLevel → "smollm"), SentencePiece-style BPE with byte fallback
 * ("llama"; scores from merge ranks) and WordPiece ("bert"). See
 * src/format/hf_tokenizer.c for the fields read and what is left out. */
typedef struct {
    qai_vocab_desc desc; /* owns every array and string it points to */
    char *pre;           /* desc.pre points here (NULL unless byte-level BPE) */
    char *chat_template; /* tokenizer_config.json's chat_template, or NULL */
    const char *arch;    /* general.architecture for a vocab-only file: "llama", "qwen2" or "bert" (static) */
} qai_hf_vocab;

/* Parses tokenizer.json text (json, json_len bytes) and, when config is not
 * NULL, tokenizer_config.json text; the names are used in messages. pre, when
 * not NULL, names tokenizer.ggml.pre instead of recognising it (byte-level BPE
 * only). Malformed or unsupported input fails with QAI_ERR_FORMAT or
 * QAI_ERR_UNSUPPORTED and a message naming the file and field. The vocabulary
 * is checked to build a tokenizer. On success release *out with
 * qai_hf_vocab_release; on failure *out is empty. */
qai_status qai_hf_vocab_parse(const char *json, size_t json_len, const char *json_name, const char *config,
                              size_t config_len, const char *config_name, const char *pre, qai_hf_vocab *out);
void qai_hf_vocab_release(qai_hf_vocab *v);

/* tokenizer.json (+ tokenizer_config.json, may be NULL) → a vocabulary-only
 * GGUF (general.architecture, general.name = the tokenizer's folder name,
 * <arch>.vocab_size, tokenizer.ggml.* and tokenizer.chat_template), written
 * atomically; out_gguf is untouched on failure. */
qai_status qai_convert_hf_tokenizer(const char *tokenizer_json, const char *config_json, const char *pre,
                                    const char *out_gguf);

#ifdef __cplusplus
}
#endif
#endif
