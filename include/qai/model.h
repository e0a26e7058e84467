/*
 * qai/model.h — a Llama-family model loaded from GGUF (weights stay in the
 * read-only mmap), a context with a KV cache over several sequences, the
 * batched forward pass, and sampling.
 *
 * Architectures: "llama" (Llama 2/3, TinyLlama, SmolLM, Mistral without sliding
 * window) and "qwen2" (QKV bias, NeoX RoPE). RMSNorm, RoPE with the GGUF's
 * theta/scaling, grouped-query attention, SwiGLU, tied or separate output head.
 * And one encoder, "bert" (BERT-style sentence-embedding models: bge, e5,
 * MiniLM): absolute positions, bidirectional attention, post-LayerNorm, GELU;
 * its contexts only embed (qai_embed, qai_embed_batch).
 *
 * Dimension letters: T tokens in a batch, D model width (n_embd), H query
 * heads, G KV heads, S head size, F feed-forward width, V vocabulary, C context.
 *
 * Usage:
 *     qai_model *m;  qai_model_open("m.gguf", &m);
 *     qai_context_params cp = qai_context_default_params();
 *     qai_context *ctx;  qai_context_new(m, &cp, &ctx);
 *     int32_t tok[] = {...};                    // prompt, positions 0..n-1, sequence 0
 *     qai_decode_tokens(ctx, 0, 0, tok, n);      // logits of the last token
 *     const float *logits = qai_context_logits(ctx, n - 1);
 */
#ifndef QAI_MODEL_H
#define QAI_MODEL_H

#include "qai/base.h"
#include "qai/gguf.h"
#include "qai/tensor.h"
#include "qai/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { QAI_ROPE_NORM = 0, QAI_ROPE_NEOX = 2 } qai_rope_type;

/* How token states become one sentence vector; values are GGUF's
 * <arch>.pooling_type. */
typedef enum {
    QAI_POOLING_DEFAULT = -1, /* the model's own (qai_model_info.pooling) */
    QAI_POOLING_MEAN = 1,     /* mean over all tokens, [CLS] and [SEP] included */
    QAI_POOLING_CLS = 2,      /* the first token's state (encoders only) */
    QAI_POOLING_LAST = 3,     /* the last token's state (encoders only) */
} qai_pooling;

typedef struct {
    char arch[32];          /* "llama", "qwen2" */
    int n_vocab;            /* V */
    int n_embd;             /* D */
    int n_layer;
    int n_head;             /* H */
    int n_head_kv;          /* G */
    int head_dim;           /* S */
    int n_ff;               /* F */
    int n_ctx_train;
    int n_rot;              /* rotated dims per head (<= S) */
    float norm_eps;
    float rope_theta;
    float rope_freq_scale; /* 1/linear scaling factor */
    qai_rope_type rope_type;
    bool tied_output;       /* output head shares token_embd */
    bool qkv_bias;
    bool is_encoder;        /* an encoder ("bert"): embeddings only, no generation */
    uint64_t n_params;
    qai_pooling pooling;    /* the model's pooling: <arch>.pooling_type, mean when absent */
} qai_model_info;

typedef struct qai_model qai_model;

/* Opens a GGUF model; weights are used in place from the mmap. The message of a
 * failure names the file and the tensor or key at fault. */
qai_status qai_model_open(const char *path, qai_model **out);
void qai_model_close(qai_model *m);
const qai_model_info *qai_model_get_info(const qai_model *m);
const qai_tokenizer *qai_model_tokenizer(const qai_model *m);
const qai_gguf *qai_model_gguf(const qai_model *m);
/* Bytes of weights the forward pass reads per token (every matrix once). */
uint64_t qai_model_weight_bytes(const qai_model *m);

/* ---- contexts ---- */

typedef struct {
    int n_ctx;     /* positions per sequence (0: the model's training context, capped at 4096) */
    int n_batch;   /* most tokens per qai_decode call (default 512) */
    int n_seq;     /* sequences sharing the context (default 1) */
    int n_threads; /* 0: all CPUs */
    qai_type kv_type; /* KV cache elements: QAI_TYPE_F16 (default: half the memory and memory traffic of
                       * attention; keys and values rounded to nearest even once, when stored) or
                       * QAI_TYPE_F32 (exact); encoders ignore it */
} qai_context_params;

qai_context_params qai_context_default_params(void);
/* "f16" or "f32" (case-insensitive) as a KV cache type; QAI_ERR_ARG naming the
 * text otherwise. For --kv-type flags and kv_type config keys. */
qai_status qai_kv_type_parse(const char *s, qai_type *out);

typedef struct qai_context qai_context;

/* Allocates the KV cache (kv_type, n_seq × n_ctx positions: 2 × n_layer ×
 * n_head_kv × head_dim elements per position) and every activation buffer up
 * front; decoding does not allocate. Fails with QAI_ERR_ARG on a kv_type other
 * than F16 and F32. Encoders keep no cache: n_ctx
 * is at most the model's positions (0 or more: all of them) and n_batch, the
 * most tokens of one forward pass, is raised to n_ctx so any text fits. */
qai_status qai_context_new(qai_model *m, const qai_context_params *p, qai_context **out);
void qai_context_free(qai_context *ctx);
int qai_context_n_ctx(const qai_context *ctx);
int qai_context_n_threads(const qai_context *ctx);
qai_model *qai_context_model(const qai_context *ctx);

/* A batch of tokens, possibly from several sequences. Token i goes at position
 * pos[i] of sequence seq[i]; earlier positions of that sequence must already be
 * in the cache or earlier in the batch. want_logits[i] != 0 asks for its logits
 * (NULL: only the last token's). */
typedef struct {
    int n;
    const int32_t *token;
    const int32_t *pos;
    const int32_t *seq;
    const int8_t *want_logits;
} qai_batch;

/* Runs the forward pass over the batch (in chunks of n_batch), storing keys and
 * values in the cache. Fails (nothing changed) on out-of-range tokens,
 * positions or sequences, and with QAI_ERR_UNSUPPORTED on an encoder's
 * context ("an embedding model cannot generate"). */
qai_status qai_decode(qai_context *ctx, const qai_batch *b);
/* Convenience: n tokens of one sequence at positions pos0.. ; logits for the last. */
qai_status qai_decode_tokens(qai_context *ctx, int seq, int pos0, const int32_t *tokens, int n);
/* A sentence embedding: the final hidden state of each of the n tokens
 * pooled the model's way (decoders: final-norm states, each seeing the tokens
 * before it, mean-pooled; encoders: pooling_type, mean or [CLS]) and
 * L2-normalized, into out (n_embd floats). Decoders use sequence seq of the
 * context, which is cleared before and after; encoders ignore seq and keep no
 * state. n must fit the context (encoders: n <= qai_context_n_ctx). tokens are
 * what the tokenizer gives with QAI_TOK_ADD_SPECIAL ([CLS] ... [SEP]). */
qai_status qai_embed(qai_context *ctx, int seq, const int32_t *tokens, int n, float *out);

typedef struct {
    qai_pooling pooling; /* QAI_POOLING_DEFAULT: the model's */
    bool normalize;      /* L2-normalize each vector (default true) */
} qai_embed_params;
qai_embed_params qai_embed_default_params(void);

/* Embeds n_texts token sequences (tokens[i] of n_tokens[i] tokens) into out
 * (n_texts × n_embd floats, row i for text i). Encoders run as many texts per
 * forward pass as fit n_batch tokens (several short texts cost little more
 * than one); decoders embed them one after another on sequence seq. Results
 * are the same as one qai_embed per text and do not depend on the thread count
 * or batching. p NULL: defaults. Fails (out unspecified) on an empty text, one
 * longer than the context, an out-of-range token, or a pooling the model
 * cannot do (CLS/last pooling of a decoder: QAI_ERR_UNSUPPORTED). */
qai_status qai_embed_batch(qai_context *ctx, int seq, int n_texts, const int32_t *const *tokens, const int *n_tokens,
                           const qai_embed_params *p, float *out);
/* Logits (V floats) of batch row i of the last qai_decode; NULL if not requested. */
const float *qai_context_logits(const qai_context *ctx, int i);
/* Forgets positions >= pos of a sequence (pos 0: clears it). */
void qai_kv_truncate(qai_context *ctx, int seq, int pos);
/* Copies the first n positions of sequence src into dst (prefix sharing). */
void qai_kv_copy(qai_context *ctx, int src, int dst, int n);

/* ---- sampling ---- */

typedef struct {
    float temp;             /* 0: greedy */
    int top_k;              /* 0: off */
    float top_p;            /* 1: off */
    float min_p;            /* 0: off */
    float repeat_penalty;   /* 1: off (llama.cpp semantics: divide positive logits, multiply negative) */
    int repeat_last_n;      /* window of recent tokens for the penalties (-1: all) */
    float freq_penalty;     /* 0: off (OpenAI semantics) */
    float presence_penalty; /* 0: off */
    uint64_t seed;
} qai_sampler_params;

qai_sampler_params qai_sampler_default_params(void);

typedef struct qai_sampler qai_sampler;
qai_sampler *qai_sampler_new(const qai_sampler_params *p, int n_vocab);
void qai_sampler_free(qai_sampler *s);
/* Picks a token from logits (not modified). Same seed, same logits and same
 * history give the same token on every machine. */
int32_t qai_sampler_sample(qai_sampler *s, const float *logits);
/* Adds a token to the history the penalties look at (prompt and generated). */
void qai_sampler_accept(qai_sampler *s, int32_t token);
void qai_sampler_reset(qai_sampler *s);

/* ---- generation ---- */

typedef struct {
    int n_predict;            /* most tokens to generate (<0: until EOG or the context is full) */
    int n_cached;             /* the first n_cached prompt tokens are already in the cache (an earlier turn) */
    qai_sampler_params sampling;
} qai_generate_params;

typedef enum { QAI_STOP_LENGTH = 0, QAI_STOP_EOG, QAI_STOP_CONTEXT, QAI_STOP_CALLBACK } qai_stop_reason;

typedef struct {
    int n_prompt, n_gen;
    uint64_t t_prompt_ns, t_gen_ns; /* prompt processing; generation (sampling + decode) */
    qai_stop_reason stop;
} qai_generate_stats;

/* Called for each generated token with the bytes it stands for; return false to stop. */
typedef bool (*qai_token_fn)(void *user, int32_t token, const char *piece, size_t len);

/* Evaluates the prompt on sequence seq (positions from p->n_cached on; what
 * was cached after that is replaced), then samples up to n_predict tokens, calling fn for each. Stops at an
 * end-of-generation token (EOS/EOT/..., or BOS, which llama2.c-style models emit
 * between stories; neither is passed to fn), when fn returns false, or when the
 * context is full. */
qai_status qai_generate(qai_context *ctx, int seq, const int32_t *prompt, int n_prompt, const qai_generate_params *p,
                        qai_token_fn fn, void *user, qai_generate_stats *stats);

/* ---- creating models ---- */

typedef struct {
    const char *arch; /* "llama" or "qwen2" */
    int dim, layers, heads, kv_heads, ffn, vocab, ctx;
    uint64_t seed;
    qai_type type; /* weight type of 2-D matrices (F32, F16, Q8_0, ...) */
    float std;     /* standard deviation of the weights (0: 0.02) */
} qai_init_params;
/* Writes a model with random weights (uniform, std 0.02 or p->std; norms 1) and a byte-level
 * SentencePiece-style vocabulary of the requested size, so it runs in qai and
 * llama.cpp. */
qai_status qai_model_init_random(const qai_init_params *p, const char *out_path);
/* Writes a "bert" encoder with random weights, as llama.cpp's converter lays
 * out a BERT sentence-embedding model (p->arch is ignored; kv_heads = heads;
 * ctx = positions). vocab: n_vocab WordPiece tokens in vocab.txt form ("##"
 * continuations, "[CLS]"-style specials), written in llama.cpp's "▁" form;
 * NULL: a synthetic vocabulary of p->vocab tokens (BERT's special ids 0 and
 * 100-103, ASCII characters and their "##" forms, filler words). pooling: 1
 * mean, 2 CLS. Every tensor is drawn from its own stream so other programs
 * can rebuild the weights (tests/tools/bert_ref.py does): splitmix64 seeded
 * with seed ^ FNV-1a-64(tensor name), u = (next >> 40) / 2^24, value
 * (2u - 1)·a with a = std·sqrt(3) for matrices, embeddings and linear biases,
 * 1 + 0.2(2u - 1) for LayerNorm weights, 0.1(2u - 1) for LayerNorm biases;
 * values are computed in double and rounded to float, in row-major order. */
qai_status qai_bert_init_random(const qai_init_params *p, const char *const *vocab, int n_vocab, int pooling,
                                const char *out_path);
/* Adds the byte-level SentencePiece-style vocabulary qai_model_init_random uses
 * (<unk> <s> </s>, 256 byte tokens, filler pieces; vocab >= 259) to a writer. */
qai_status qai_model_write_byte_vocab(qai_gguf_writer *w, int vocab);

#ifdef __cplusplus
}
#endif
#endif
