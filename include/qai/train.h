/*
 * qai/train.h — training Llama-shaped models from scratch (or from a GGUF) on
 * a CPU: the parameter table, the fp32 forward and backward passes, AdamW with
 * warmup + cosine decay and gradient clipping, checkpoints that resume to the
 * bit, and GGUF export that `qai run` and llama.cpp load.
 *
 * The model is the one src/model runs for inference ("llama" architecture:
 * RMSNorm, RoPE in the NORM layout with the GGUF's theta, grouped-query
 * attention, SwiGLU, separate or tied output head), so an exported model gives
 * the logits the training forward pass computed.
 *
 * Dimension letters: B sequences per micro-batch, T tokens per sequence,
 * N = B·T, D width, H query heads, G KV heads, S head size, F feed-forward
 * width, V vocabulary, L layers.
 *
 * Determinism: the same config, seed and data give the same losses and weights
 * to the bit whatever the thread count, and a run resumed from a checkpoint
 * continues exactly as if it had never stopped.
 *
 * Objectives: next-token cross-entropy (lm, the default) or contrastive
 * sentence embeddings (contrastive): batches of (query, positive) texts, each
 * sequence mean-pooled over its real tokens from the final RMSNorm output
 * (what qai_embed does at inference), L2-normalized, and scored with
 * symmetric in-batch-negative InfoNCE at a temperature; the LM head is not
 * used. Pairs come from a JSONL file (qai_pairs below): explicit
 * {"query", "positive"} lines, or document chunks {"doc", "text"} from which
 * self-supervised pairs are cut (a short span of one chunk as the query,
 * another chunk of the same document as the positive). The exported GGUF is a
 * normal llama model with llama.pooling_type = 1 (mean).
 *
 * What it deliberately does not do: mixed precision by default (matmul: bf16
 * asks for it), sequence
 * packing across document boundaries with masks (windows are cut from the
 * token stream as they come, like llm.c and nanoGPT), LoRA/SFT/DPO (later).
 *
 * Usage:
 *     qai_train_config c = qai_train_config_default();
 *     c.dim = 288; c.layers = 6; c.heads = 6; c.kv_heads = 6; c.ffn = 768; c.vocab = 4096;
 *     c.data = "random";
 *     qai_trainer *t;
 *     if (qai_trainer_new(&c, &t)) { ... qai_last_error() ... }
 *     while (qai_trainer_step(t) < c.max_steps) {
 *         qai_train_stats s; qai_trainer_stats(t, &s);   // s.loss, s.tok_s, ...
 *     }
 *     qai_trainer_export_gguf(t, "out.gguf");
 *     qai_trainer_free(t);
 */
#ifndef QAI_TRAIN_H
#define QAI_TRAIN_H

#include "qai/base.h"
#include "qai/tokenizer_train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Precision of the big matrix products (projections, feed-forward, output head,
 * forward and backward). BF16 rounds their inputs — activations, gradients
 * flowing back and a copy of the fp32 master weights — to bf16 and sums in
 * fp32 (vdpbf16ps); weights, gradients, optimizer state and every other op stay
 * fp32. It needs a CPU with AVX512_BF16. */
typedef enum { QAI_MATMUL_FP32 = 0, QAI_MATMUL_BF16 = 1 } qai_train_matmul;

/* What the model learns: next-token prediction, or sentence embeddings. */
typedef enum { QAI_OBJECTIVE_LM = 0, QAI_OBJECTIVE_CONTRASTIVE = 1 } qai_train_objective;

/* Everything a run depends on. Strings are borrowed (the caller keeps them
 * alive while the trainer lives). Fields map one to one to `qai train` flags
 * and YAML keys (the key is the field name with '_' as '-' for flags). */
typedef struct {
    /* model shape (ignored with init); kv_heads 0 means as many as heads */
    int dim, layers, heads, kv_heads, ffn, vocab;
    bool tie_embeddings; /* output head shares token_embd */
    float rope_theta;    /* 10000 */
    float norm_eps;      /* 1e-5 */
    const char *init;    /* start from this GGUF's weights (any type; dequantized to f32) */
    /* data */
    const char *data;      /* a dataset directory (qai data prepare) or "random" */
    const char *tokenizer; /* GGUF whose tokenizer is stored in the exported model (default: the dataset's, if found) */
    int seq;               /* T */
    int batch;             /* B sequences per micro-batch */
    int grad_accum;        /* micro-batches per optimizer step */
    int max_steps;
    /* optimizer */
    float lr, min_lr;      /* peak and final learning rate (cosine decay from lr to min_lr) */
    int warmup;            /* linear warmup steps */
    float beta1, beta2, eps, weight_decay; /* AdamW; decay applies to 2-D weights only */
    float grad_clip;       /* clip the global gradient norm to this (0: off) */
    /* evaluation, checkpoints, output */
    int eval_every, eval_batches; /* validation loss every N steps over this many micro-batches */
    int ckpt_every;               /* 0: only at the end and on interrupt */
    const char *out;              /* final GGUF path */
    const char *ckpt_dir;         /* checkpoints (default: <out>.ckpt/) */
    uint64_t seed;
    int threads;                  /* 0: all CPUs */
    qai_train_matmul matmul;      /* fp32 (default) or bf16 */
    /* contrastive objective (ignored by lm): batch is the number of pairs per
     * micro-batch (batch - 1 in-batch negatives each), seq the longest
     * positive in tokens; the tokenizer (default: init's) tokenizes the texts */
    qai_train_objective objective;
    const char *pairs;            /* JSONL of pairs or document chunks (see qai_pairs_parse) */
    const char *pairs_from;       /* provenance: the collection the pairs file was exported from (the
                                   * command exports it; the library only records the name) */
    int query_seq;                /* longest query in tokens (32) */
    float temperature;            /* InfoNCE temperature (0.05) */
    int micro_batch;              /* sequences per forward pass (0: 16); memory, not the loss */
    float val_share;              /* share of documents held out for validation (0.05) */
} qai_train_config;

qai_train_config qai_train_config_default(void);

/* Reads a YAML or JSON config file into c (keys as in qai_train_config, with
 * '-' or '_'); unknown keys and wrong types are errors naming the key. String
 * values are owned by an internal store freed with qai_train_config_release. */
qai_status qai_train_config_load(const char *path, qai_train_config *c);
/* Sets one key from text (a flag value); the same validation as the file. */
qai_status qai_train_config_set(qai_train_config *c, const char *key, const char *value);
void qai_train_config_release(void);
/* Checks shapes and ranges (heads divide dim, kv_heads divide heads, even head
 * size, positive sizes...); a clear message for the first problem. */
qai_status qai_train_config_validate(const qai_train_config *c);
/* The config as a JSON object text (allocated; caller frees with qai_free). */
char *qai_train_config_to_json(const qai_train_config *c);

typedef struct qai_trainer qai_trainer;

/* Builds the model (random init from the seed, or from c->init), opens the data
 * and allocates every buffer. Fails with a clear message on impossible shapes,
 * a vocabulary that does not match the dataset's, missing data, or bf16
 * matmuls on a CPU without AVX512_BF16 (never a silent fallback). */
qai_status qai_trainer_new(const qai_train_config *c, qai_trainer **out);
/* Restores a trainer from a checkpoint file: weights, optimizer moments, step,
 * data position and random state. The config is the checkpoint's; overrides
 * is NULL or a NULL-terminated list of "key=value" that may change only
 * max_steps, eval_every, eval_batches, ckpt_every, out, ckpt_dir and threads
 * (any other key is an error: it would change the run). A corrupted or
 * truncated checkpoint is rejected. */
qai_status qai_trainer_resume(const char *ckpt_path, const char *const *overrides, qai_trainer **out);
void qai_trainer_free(qai_trainer *t);

/* One optimizer step (grad_accum micro-batches forward+backward, clip, AdamW).
 * Returns the number of steps done so far, or -1 (qai_last_error says why). */
int qai_trainer_step(qai_trainer *t);
/* The same on a given micro-batch (B×(T+1) tokens, used for every one of the
 * grad_accum micro-batches) instead of the data stream. */
int qai_trainer_step_tokens(qai_trainer *t, const int32_t *tokens);
/* Mean validation loss over eval_batches micro-batches (the training split if
 * the dataset has no validation split; random tokens for "random"). Does not
 * change the training state (uses its own data position). */
qai_status qai_trainer_eval(qai_trainer *t, float *loss);
/* The same, also giving the in-batch retrieval accuracy of the held-out pairs
 * (contrastive; -1 for lm). acc may be NULL. */
qai_status qai_trainer_eval_metrics(qai_trainer *t, float *loss, float *acc);

typedef struct {
    int step;
    float loss;        /* mean training loss of the last step */
    float grad_norm;   /* global gradient norm before clipping */
    float lr;          /* learning rate used by the last step */
    double tok_s;      /* training tokens per second of the last step */
    double mfu;        /* model FLOPs per second / peak (see qai_train_peak_flops) */
    uint64_t tokens;   /* tokens trained on so far */
    double elapsed_s;  /* wall time spent in steps */
    float acc;         /* contrastive: in-batch retrieval accuracy (query -> its positive) of the last step */
} qai_train_stats;
void qai_trainer_stats(const qai_trainer *t, qai_train_stats *s);
const qai_train_config *qai_trainer_config(const qai_trainer *t);
uint64_t qai_trainer_n_params(const qai_trainer *t);
/* Forward + backward FLOPs per trained token (6·params of the matmuls plus
 * attention), used for MFU. */
double qai_trainer_flops_per_token(const qai_trainer *t);
/* Peak fp32 FLOP/s of n_threads cores: measured once by a short FMA loop
 * (register-only, the ISA's widest vectors), cached. */
double qai_train_peak_flops(int n_threads);

/* Writes a checkpoint atomically (temp file, fsync, rename): a kill at any
 * moment leaves the previous file intact. */
qai_status qai_trainer_save(qai_trainer *t, const char *path);
/* Writes the model as a GGUF (F32 weights, llama architecture, the tokenizer of
 * c->tokenizer or the dataset, else a byte-level vocabulary). Atomic. */
qai_status qai_trainer_export_gguf(qai_trainer *t, const char *path);

/* Draws a loss curve (training loss as a line over steps, validation loss as
 * dots) into an SVG file, atomically. */
qai_status qai_train_write_loss_svg(const char *path, const char *title, const float *steps, const float *loss, int n,
                                    const float *val_steps, const float *val_loss, int nv);

/* ---- corpora ---- */

/* Trains a tokenizer (qai_tokenizer_train, include/qai/tokenizer_train.h) on
 * the inputs `qai data prepare` reads: files as given, directories walked
 * recursively in name order keeping .txt .text .md .markdown .rst .jsonl
 * (hidden entries skipped); a JSONL file contributes the "text" field of each
 * line, one per line. A binary file or a bad JSONL line is an error naming the
 * file and offset or line. n_files (may be NULL) gets the number of files read.
 * (Lives with the dataset code so both commands read the same files.) */
qai_status qai_tokenizer_train_inputs(const char *const *inputs, size_t n_inputs, const qai_toktrain_opts *o,
                                      qai_vocab_desc *out, qai_toktrain_stats *stats, size_t *n_files);

/* ---- contrastive pairs ---- */

/* A pair corpus, read from JSONL (one object per line, blank lines skipped):
 *   {"query": "...", "positive": "..."}            an explicit pair
 *   {"doc": "ID", "query": "...", "positive": "..."}
 *                                                   an explicit pair of document ID
 *   either pair form with "negative": "..." or [...] a hard negative (or
 *                                                   several) for that pair
 *   {"doc": "ID", "text": "...", "section": "..."}  one chunk of document ID
 *                                                   (section optional)
 * Chunks are grouped by doc id (lines of one document need not be adjacent;
 * their order is kept); so are the pairs of one document, which form one unit
 * (one pair of it drawn per batch; a document with both pairs and chunks is
 * refused). Units (documents and explicit pairs) are split into
 * training and validation by a hash of their id (a pair's id is its query),
 * so the split does not depend on line order. Self-supervised pairs from a
 * document: the query is a span of one chunk — with probability 1/4 the
 * chunk's section heading and its first 3-8 words, otherwise 4-16 words from
 * a sentence start — and the positive another chunk of the same document (a
 * random window of at most seq tokens), or for a one-chunk document the chunk
 * with the query span cut out. A pair's hard negatives (a text that looks
 * relevant to its query but is not, e.g. mined with BM25 from other
 * documents) are scored against every query of the batch as extra documents:
 * when a drawn pair has some, one of them, chosen at random, joins the batch
 * (qai_infonce_neg). A negative equal to its pair's positive is an error. */
typedef struct qai_pairs qai_pairs;
/* Parses JSONL text (name for messages). A malformed line, a missing or
 * non-string field, an empty text or an unknown shape is an error naming
 * name:line. Free with qai_pairs_free. */
qai_status qai_pairs_parse(const char *text, size_t n, const char *name, double val_share, qai_pairs **out);
qai_status qai_pairs_load(const char *path, double val_share, qai_pairs **out);
void qai_pairs_free(qai_pairs *p);
/* Units (documents + explicit pairs) in the split: 0 training, 1 validation. */
int qai_pairs_n_units(const qai_pairs *p, int split);
/* SHA-256 (hex) of the text the corpus was parsed from. */
const char *qai_pairs_sha256(const qai_pairs *p);

/* One contrastive micro-batch: B queries (B × Tq tokens) and B positives
 * (B × Td), right-padded; qlen/dlen the real lengths (at least 1). Pair i is
 * (query i, positive i); every other positive is a negative of query i, and
 * so are the Bn hard negatives (Bn × Td tokens in n, lengths nlen; Bn may be
 * 0 and n, nlen NULL). */
typedef struct {
    int B, Tq, Td, Bn;
    int32_t *q, *d, *n;
    int *qlen, *dlen, *nlen;
} qai_pair_batch;

/* ---- lower level (tests, tools) ---- */

/* Contrastive loss of one batch (pb->Tq <= query_seq, pb->Td <= seq, pb->B <=
 * batch, pb->Bn <= pb->B), accumulating gradients scaled by `scale` when backward; acc (may be
 * NULL) gets the in-batch accuracy. The trainer must have the contrastive
 * objective. */
qai_status qai_trainer_contrastive(qai_trainer *t, const qai_pair_batch *pb, bool backward, float scale, float *loss,
                                   float *acc);
/* Samples a batch of B pairs from the trainer's corpus (split 0 training, 1
 * validation) with rng; the batch's arrays are allocated (qai_pair_batch_release). */
qai_status qai_trainer_sample_pairs(qai_trainer *t, qai_rng *rng, int split, int B, qai_pair_batch *out);
void qai_pair_batch_release(qai_pair_batch *pb);
/* Samples B pairs from split (0 training, 1 validation) of P, tokenized with
 * tok (QAI_TOK_ADD_SPECIAL), queries cut to Tq tokens and positives to Td,
 * into a batch whose arrays are allocated (qai_pair_batch_release). Fails if
 * the split has fewer than B units. Deterministic given rng. */
qai_status qai_pairs_sample(const qai_pairs *P, const qai_tokenizer *tok, qai_rng *rng, int split, int B, int Tq,
                            int Td, qai_pair_batch *pb);
/* The pooled embeddings ((2·B + Bn) × D: queries, positives, then hard
 * negatives; not normalized) of the last qai_trainer_contrastive call, NULL
 * for lm. */
const float *qai_trainer_embeddings(const qai_trainer *t);

/* Loss of one micro-batch (tokens: B×(T+1), inputs are the first T of each
 * row, targets the last T), accumulating gradients (scaled by `scale`) when
 * backward. */
qai_status qai_trainer_forward_backward(qai_trainer *t, const int32_t *tokens, bool backward, float scale,
                                        float *loss);
/* Parameter and gradient tensors in descriptor order (name as in GGUF; shape
 * ne[0] columns × ne[1] rows). */
int qai_trainer_n_tensors(const qai_trainer *t);
const char *qai_trainer_tensor(const qai_trainer *t, int i, int64_t ne[2], float **param, float **grad);
void qai_trainer_zero_grad(qai_trainer *t);
/* Logits (N×V) of the last forward pass. */
const float *qai_trainer_logits(const qai_trainer *t);

#ifdef __cplusplus
}
#endif
#endif
