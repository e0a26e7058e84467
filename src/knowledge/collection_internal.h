/*
 * collection_internal.h — what collection.c (ingest) and collection_read.c
 * (open, search, list) share: folder layout, the query/passage embedder,
 * manifest hashing and the chunks.db schema. Not installed.
 */
#ifndef QAI_COLLECTION_INTERNAL_H
#define QAI_COLLECTION_INTERNAL_H

#include <limits.h>
#include <sqlite3.h>

#include "qai/collection.h"
#include "qai/model.h"

#define COLL_MANIFEST "manifest.json"
#define COLL_CHUNKS "chunks.db"
#define COLL_BM25 "bm25.qbm"
#define COLL_DENSE "dense.qvi"
#define COLL_FORMAT 1 /* manifest "format"; bumped when the layout changes */

/* "<data dir>/collections/<name>" into out. */
qai_status coll_dir(const char *data_dir, const char *name, char *out, size_t cap);
/* The CURRENT version of a collection folder (0 if none or unreadable). */
int coll_read_current(const char *cdir);
/* The highest vN folder (0 if none). */
int coll_max_version(const char *cdir);

/* An embedding model opened for passages and queries. */
typedef struct {
    qai_model *m;
    qai_context *ctx;
    const qai_tokenizer *tok;
    char path[PATH_MAX];   /* absolute */
    char name[256];        /* general.name, else the file's base name */
    char sha256[65];       /* of the GGUF file */
    int dim, n_ctx;
} coll_embedder;

/* Opens path (hashing the file). n_threads 0: all CPUs. */
qai_status coll_embedder_open(const char *path, int n_threads, coll_embedder *e);
void coll_embedder_close(coll_embedder *e);
/* Embeds text (tokenized with BOS as the model says; cut to the context when
 * longer: *truncated set). out: dim floats, L2-normalized. */
qai_status coll_embed_text(coll_embedder *e, const char *text, size_t n, float *out, bool *truncated);
/* Token count of text with the model's tokenizer (a qai_count_tokens_fn). */
int coll_count_tokens(void *e, const char *text, size_t n);

/* SHA-256 (hex) of a manifest: its compact JSON text without the
 * "manifest_sha256" member. j is a cJSON object (not modified). */
qai_status coll_manifest_hash(const void *j, char hex[65]);

/* Parses and validates a version's manifest.json (n bytes of text; name in
 * messages): a JSON object whose manifest_sha256 matches, a known format, a
 * version number, options, and a complete embed_model when there is one.
 * *out gets the cJSON tree (caller frees with cJSON_Delete). */
qai_status coll_manifest_parse(const char *text, size_t n, const char *name, void **out);

/* Crash points of an ingest (qai_test_crash_point in qai/base.h):
 * ingest-first-batch, ingest-extracted, ingest-before-rename,
 * ingest-before-current. */

/* Maps the short content-type names of --filter type=... ("man", "markdown") to MIME names. */
const char *coll_type_alias(const char *v);

#endif
