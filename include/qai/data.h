/*
 * qai/data.h — token datasets for training: `qai data prepare` writes them,
 * the trainer reads them.
 *
 * A dataset is a directory:
 *
 *   DIR/manifest.json        what the dataset is made of (written last)
 *   DIR/train-00000.tok ...  token shards of the training split
 *   DIR/val-00000.tok ...    token shards of the validation split (maybe none)
 *
 * Token stream. Each split is one stream of token ids, the concatenation of
 * its shards in order. Every document is written as
 *
 *     [BOS] tokens-of-the-document EOS
 *
 * BOS only when the tokenizer adds one at the start of a text
 * (qai_tokenizer_add_bos, true for SentencePiece-style "llama" vocabularies),
 * EOS always (the tokenizer's EOS id; preparing with a tokenizer that has none
 * is an error). So a window of the stream that contains EOS crosses a document
 * boundary there, and what follows EOS is the next document's first token (or
 * its BOS). Documents are tokenized without parsing special-token text: a
 * literal "</s>" in a document is text, not EOS.
 *
 * Shard file layout (little-endian), ".tok":
 *   offset 0  u8[4]  magic "QTOK"
 *          4  u32    version (1)
 *          8  u32    bytes per token: 2 (uint16) when n_vocab <= 65536, else 4 (uint32)
 *         12  u32    reserved, 0
 *         16  u64    n_tokens in this shard
 *         24  u64    reserved, 0
 *         32  n_tokens × (u16|u32) token ids
 * The file is exactly 32 + n_tokens × bytes-per-token long. Callers need not
 * care about the width: qai_dataset_read fills int32 windows whatever it is.
 *
 * manifest.json (documented field by field in docs/data.md) holds the format
 * version, the input files (path as given, sha256, size, documents), the
 * tokenizer file's sha256 and vocabulary size, the split settings (val
 * fraction, seed, how documents are cut), per-split token and document counts,
 * the shards (name, split, tokens, sha256) and "manifest_hash": the SHA-256 of
 * a canonical text of everything above except input paths (so moving a corpus
 * does not change it). The same inputs, tokenizer and settings always give
 * byte-identical shards and manifest.
 *
 * Usage (a trainer sampling windows of T+1 tokens):
 *     qai_dataset *ds;
 *     if (qai_dataset_open("data/", &ds)) { ... qai_last_error() ... }
 *     if (qai_dataset_n_vocab(ds) != model_vocab) ... mismatch ...
 *     uint64_t n = qai_dataset_n_tokens(ds, QAI_SPLIT_TRAIN);
 *     int32_t win[T + 1];
 *     qai_dataset_read(ds, QAI_SPLIT_TRAIN, off, T + 1, win);   // off + T + 1 <= n
 *     qai_dataset_close(ds);
 *
 * Thread safety: an open dataset is read-only; any number of threads may call
 * the read functions at the same time.
 */
#ifndef QAI_DATA_H
#define QAI_DATA_H

#include "qai/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QAI_DATASET_VERSION 1
#define QAI_SHARD_MAGIC "QTOK"
#define QAI_SHARD_HEADER_SIZE 32

typedef enum { QAI_SPLIT_TRAIN = 0, QAI_SPLIT_VAL = 1 } qai_split;

/* "train" / "val". */
const char *qai_split_name(qai_split split);

/* ---- reading ---------------------------------------------------------------- */

typedef struct qai_dataset qai_dataset;

/* Opens the dataset in dir: parses and validates manifest.json (every field
 * the reader uses, with messages naming the field), maps every shard read-only
 * and checks its header and length against the manifest. It does not rehash
 * the shards (qai_dataset_verify does). On failure *out is NULL. */
qai_status qai_dataset_open(const char *dir, qai_dataset **out);
void qai_dataset_close(qai_dataset *ds);

/* Recomputes the SHA-256 of every shard and compares it with the manifest;
 * QAI_ERR_FORMAT naming the first shard that differs. */
qai_status qai_dataset_verify(const qai_dataset *ds);

int32_t qai_dataset_n_vocab(const qai_dataset *ds);
/* Token ids that delimit documents in the stream (BOS is -1 when documents
 * carry none). */
int32_t qai_dataset_bos(const qai_dataset *ds);
int32_t qai_dataset_eos(const qai_dataset *ds);
/* Lowercase hex SHA-256 (64 chars) of the tokenizer file the dataset was made
 * with, and the manifest hash; owned by ds. */
const char *qai_dataset_tokenizer_hash(const qai_dataset *ds);
const char *qai_dataset_manifest_hash(const qai_dataset *ds);
/* 2 or 4: the width of ids in the shards. */
int qai_dataset_token_bytes(const qai_dataset *ds);

uint64_t qai_dataset_n_tokens(const qai_dataset *ds, qai_split split);
uint64_t qai_dataset_n_docs(const qai_dataset *ds, qai_split split);

/* Copies tokens [off, off + n) of a split's stream into out (n int32 values),
 * crossing shard boundaries as needed. QAI_ERR_RANGE if the window does not
 * lie inside the split. Never allocates. */
qai_status qai_dataset_read(const qai_dataset *ds, qai_split split, uint64_t off, size_t n, int32_t *out);

/* Zero-copy access to one shard: its ids (read-only, in the mapping; uint16_t
 * or uint32_t as qai_dataset_token_bytes says), count and the offset of its
 * first token in the split's stream. */
typedef struct {
    const void *ids;
    uint64_t n_tokens;
    uint64_t start;
    const char *name; /* file name inside the dataset dir, owned by ds */
} qai_dataset_shard;
size_t qai_dataset_n_shards(const qai_dataset *ds, qai_split split);
qai_status qai_dataset_get_shard(const qai_dataset *ds, qai_split split, size_t i, qai_dataset_shard *out);

/* A whole split as one int32 array (allocated with qai_malloc, caller frees);
 * convenient for small datasets and tests. */
qai_status qai_dataset_load_split(const qai_dataset *ds, qai_split split, int32_t **tokens, uint64_t *n);

/* Parses and validates a manifest held in memory (what qai_dataset_open does
 * before it touches shards); name is used in messages. Exposed for the fuzz
 * harness and for tools that only inspect a manifest. *out_json gets the cJSON
 * tree (struct cJSON *, caller frees with cJSON_Delete) when not NULL. */
qai_status qai_dataset_manifest_parse(const char *text, size_t n, const char *name, void **out_json);

/* ---- writing (qai data prepare) ---------------------------------------------- */

/* How a plain-text or Markdown file is cut into documents (a JSONL line is
 * always one document: its "text" field). */
typedef enum {
    QAI_DOCS_FILE = 0,  /* the whole file is one document (default) */
    QAI_DOCS_BLANK = 1, /* paragraphs: documents end at one or more blank lines */
    QAI_DOCS_LINE = 2,  /* every non-empty line is a document */
} qai_doc_split;

typedef struct {
    const char *tokenizer;    /* path of a GGUF file with a tokenizer (vocab-only is enough) */
    double val_fraction;      /* 0..0.5; a document goes to "val" when hash(seed, content) says so */
    uint64_t seed;            /* seeds the split hash */
    uint64_t shard_tokens;    /* tokens per shard file (0: 64 Mi); every shard but a split's last holds exactly this many
                                 (documents may continue into the next shard: the split is one stream) */
    int n_threads;            /* tokenizing threads (<= 0: all CPUs); results do not depend on it */
    qai_doc_split doc_split;  /* for text and Markdown files */
    bool skip_bad;            /* skip (with a warning) binary / invalid UTF-8 files and bad JSONL lines instead of failing */
    bool force;               /* replace an existing non-empty output directory */
    bool progress;            /* show progress on stderr */
} qai_data_prepare_opts;

/* Defaults: val_fraction 0.01, seed 0, shard_tokens 0, n_threads 0, QAI_DOCS_FILE. */
void qai_data_prepare_opts_init(qai_data_prepare_opts *o);

typedef struct {
    uint64_t n_files, n_skipped_files;
    uint64_t n_docs[2];
    uint64_t n_tokens[2];
    uint64_t n_bytes; /* text bytes tokenized */
    char manifest_hash[65];
} qai_data_prepare_result;

/* Builds a dataset in out_dir from inputs (files or directories; directories
 * are walked recursively in byte order of names, taking files ending in .txt,
 * .text, .md, .markdown, .rst and .jsonl and skipping hidden entries; a file
 * named explicitly is read whatever its name: .jsonl as JSONL, else as text).
 * Inputs must be UTF-8 text; a file with NUL bytes or invalid UTF-8 fails the
 * run naming the file and byte offset (or is skipped with opts->skip_bad).
 * Everything is written to a temporary directory next to out_dir that is
 * renamed into place at the end: a failure leaves no partial dataset and does
 * not touch an existing out_dir. out_dir must not exist or be empty unless
 * opts->force. res may be NULL. */
qai_status qai_data_prepare(const char *const *inputs, size_t n_inputs, const char *out_dir,
                            const qai_data_prepare_opts *opts, qai_data_prepare_result *res);

#ifdef __cplusplus
}
#endif
#endif
