/*
 * qai/collection.h — document collections: immutable, versioned retrieval
 * indexes built from files (what `qai ingest`, `qai search` and `qai rag`
 * use).
 *
 * A collection lives in the data directory (qai_home_dir: --data-dir,
 * $QAI_HOME, ~/.local/share/qai) under collections/NAME/:
 *
 *     collections/NAME/
 *         CURRENT            "v3\n": the version searches use (replaced atomically)
 *         .lock              flock()ed by an ingest while it runs
 *         v1/ v2/ v3/        immutable versions, each complete:
 *             manifest.json  inputs (path, size, mtime, sha256, content type, language,
 *                            docs, chunks, status or skip reason), options (chunk budget,
 *                            overlap, dedup threshold, redaction, embedding model name +
 *                            sha256 + dimension), duplicates dropped (with the kept twin),
 *                            redaction counts, changes against the previous version,
 *                            totals, the sha256 of every other file, creation time, and
 *                            manifest_sha256 = SHA-256 of the manifest's compact JSON
 *                            without that field (see docs/ingest.md)
 *             chunks.db      SQLite: files, docs (with MinHash signatures), chunks (id,
 *                            source path, record id, byte span, section path, text,
 *                            content hash, metadata JSON)
 *             bm25.qbm       the BM25 index of the chunk texts (qai/index.h layout)
 *             dense.qvi      optional: the chunk embeddings (HNSW or flat, cosine)
 *         .tmp-vN-PID/       a version being built; renamed to vN only when complete
 *
 * A version is built in a temporary folder, every file fsynced, then renamed
 * into place and CURRENT replaced: a crash at any moment leaves the previous
 * version current and intact (stale temporary folders are removed by the next
 * ingest). Re-ingesting reuses the files whose path and SHA-256 did not change:
 * their documents, chunks and vectors are copied from the previous version,
 * not recomputed.
 *
 * Embeddings: a collection records the model that made its vectors (name,
 * SHA-256 of the GGUF file, dimension) and refuses to mix models: ingesting
 * with another model, or searching with another model, is an error.
 *
 * Chunk ids are 1..n_chunks in the order the files were processed (sorted by
 * path); one id names the chunk in chunks.db, the BM25 index and the dense
 * index. Spans are byte offsets [start, end) into the document's extracted
 * text (for plain text files that is the file's bytes).
 *
 * What it deliberately does not do: extraction and chunking (qai/ingest.h),
 * the index structures (qai/index.h), or registering versions in the store
 * (the command does that: the store lives in a higher layer).
 *
 * Usage:
 *     qai_ingest_opts o;
 *     qai_ingest_opts_default(&o);
 *     o.embed_model = "bge-small.gguf";
 *     const char *paths[] = {"docs/", "/usr/share/man/man1"};
 *     qai_ingest_result r;
 *     if (qai_collection_ingest("manuals", paths, 2, &o, &r) != QAI_OK) ... qai_last_error() ...
 *     printf("manuals@%d\n", r.version);
 *     qai_ingest_result_release(&r);
 *
 *     qai_collection *c;
 *     qai_collection_open(NULL, "manuals", 0, &c);          // 0: the CURRENT version
 *     qai_search_params sp;
 *     qai_search_params_default(&sp);
 *     qai_collection_hit *hits; int nh;
 *     qai_collection_search(c, "list directory contents", &sp, &hits, &nh);
 *     ... hits[i].source, hits[i].start, hits[i].end, hits[i].text ...
 *     qai_collection_hits_free(hits, nh);
 *     qai_collection_close(c);
 */
#ifndef QAI_COLLECTION_H
#define QAI_COLLECTION_H

#include "qai/base.h"
#include "qai/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Collection names: 1..64 bytes of [A-Za-z0-9._-], not starting with '.'. */
bool qai_collection_name_ok(const char *name);

/* ---- ingesting ------------------------------------------------------------- */

typedef struct {
    const char *data_dir;      /* NULL: $QAI_HOME, else ~/.local/share/qai */
    int chunk_tokens;          /* chunk budget (default 256; counted with the embedding model's
                                * tokenizer when there is one, else ~4 bytes per token) */
    int overlap_tokens;        /* overlap of consecutive pieces of a section (default 32) */
    double dedup;              /* near-duplicate Jaccard threshold in (0, 1] (default 0.8);
                                * 0 = keep everything (no exact or near duplicate removal) */
    bool redact_pii;           /* replace e-mails, phones, IPs, cards, IBANs, secrets before chunking */
    const char *embed_model;   /* GGUF for dense vectors; NULL: the previous version's model if it
                                * had one (the file must still be there, with the same SHA-256),
                                * else no vectors */
    const char *const *exclude; /* fnmatch globs; a file or folder matching by path or base name is skipped */
    int n_exclude;
    const char *const *drop_sections; /* section titles (case-insensitive globs) cut out of every
                                       * document before chunking, e.g. "SEE ALSO" */
    int n_drop_sections;
    int n_threads;             /* extraction and embedding threads (0: all CPUs) */
    bool progress;             /* progress on stderr (qai_progress: a redrawn line on a terminal,
                                * log lines otherwise) */
    size_t max_line_bytes;     /* a document with a longer line is skipped (default 1 MiB) */
} qai_ingest_opts;

void qai_ingest_opts_default(qai_ingest_opts *o);

typedef struct {
    int version;                   /* N of NAME@N */
    int previous_version;          /* 0 if this is the first */
    char manifest_sha256[65];
    char path[4096];               /* the version's folder */
    /* files: given = added + changed + unchanged + skipped; removed = in the previous version, not now */
    size_t files, added, changed, unchanged, removed, skipped;
    size_t docs, chunks, dup_exact, dup_near, bad_records;
    size_t chunks_reused;          /* chunks copied from the previous version (unchanged files) */
    size_t chunks_embedded;        /* chunks run through the embedding model */
    size_t chunks_vector_reused;   /* new chunks whose exact text the previous version had embedded */
    uint64_t input_bytes;          /* bytes of the files read (compressed size for .gz) */
    uint64_t text_bytes;           /* bytes of extracted text of the kept documents */
    double seconds;                /* whole ingest */
    double seconds_extract;        /* reading, extraction, chunking, BM25 postings */
    double seconds_embed;          /* embedding and dense index build */
    int dim;                       /* embedding dimension (0: no vectors) */
    char *manifest_json;           /* the manifest as written (qai_free via release) */
} qai_ingest_result;

/* Builds version N+1 of collection `name` from the files and folders in
 * paths (folders are walked recursively, in sorted order; symlinked folders are
 * not followed). Files that cannot be read or extracted, binary files, empty
 * documents and documents with over-long lines are skipped and listed in the
 * manifest with the reason (logged at info level); they never fail the
 * ingest. Fails (nothing changed) when no input exists, when name is invalid,
 * or when the embedding model differs from the collection's. res is filled on
 * success (release with qai_ingest_result_release). Takes the collection's
 * lock: a second ingest into the same collection waits. */
qai_status qai_collection_ingest(const char *name, const char *const *paths, int n_paths, const qai_ingest_opts *o,
                                 qai_ingest_result *res);
void qai_ingest_result_release(qai_ingest_result *r);

/* A document given in memory (qai serve's /v1/indexes/NAME/upsert). */
typedef struct {
    const char *id;        /* record id (may be NULL) */
    const char *text;      /* UTF-8 text, not empty */
    const char *meta_json; /* a JSON object of metadata fields (searchable with filters), or NULL;
                            * may not have "id", "text" or "content" */
} qai_upsert_doc;

/* Adds documents as version N+1 of collection `name` (created if needed):
 * they are written as one JSONL file under collections/NAME/uploads/ (crash
 * safe) and the new version is built by qai_collection_ingest from every
 * upload file plus the previous version's inputs (unchanged files reused, not
 * re-read; an input that no longer exists is dropped with a warning). The
 * versioning, locking and crash safety are those of qai_collection_ingest; on
 * failure the upload file is removed and nothing changes. Upserts within one
 * process are serialized. */
qai_status qai_collection_upsert(const char *name, const qai_upsert_doc *docs, int n_docs, const qai_ingest_opts *o,
                                 qai_ingest_result *res);

/* ---- listing --------------------------------------------------------------- */

typedef struct {
    char name[72];
    int current;        /* the CURRENT version (0 if none) */
    int n_versions;
    int versions[64];   /* ascending; the newest 64 when there are more */
} qai_collection_info;

/* The collections of a data directory, sorted by name. *out freed with qai_free. */
qai_status qai_collection_list(const char *data_dir, qai_collection_info **out, int *n);
/* One collection's versions; QAI_ERR_NOT_FOUND if it does not exist. */
qai_status qai_collection_stat(const char *data_dir, const char *name, qai_collection_info *out);

/* ---- reading and searching ------------------------------------------------- */

typedef struct qai_collection qai_collection;

/* Opens version `version` of a collection (0: CURRENT). Validates the
 * manifest's hash and opens chunks.db (read-only), the BM25 index and the
 * dense index (memory-mapped). Free with qai_collection_close. */
qai_status qai_collection_open(const char *data_dir, const char *name, int version, qai_collection **out);
void qai_collection_close(qai_collection *c);
const char *qai_collection_name(const qai_collection *c);
int qai_collection_version(const qai_collection *c);
const char *qai_collection_path(const qai_collection *c);     /* the version's folder */
const char *qai_collection_manifest(const qai_collection *c); /* manifest.json text */

/* Writes every chunk of the opened version to path as JSONL, one line per
 * chunk in chunk-id order (what `qai train --pairs-from` cuts contrastive
 * pairs from; the document-chunk shape of qai/train.h):
 *     {"doc": "SOURCE" or "SOURCE#RECORD", "section": "...", "text": "..."}
 * Atomic: a failure leaves no file. n_chunks and n_docs (may be NULL) get
 * the counts. */
qai_status qai_collection_export_chunks(qai_collection *c, const char *path, size_t *n_chunks, size_t *n_docs);
size_t qai_collection_n_chunks(const qai_collection *c);
/* The embedding model recorded in the manifest: false if the collection has
 * no vectors. Strings are owned by c. */
bool qai_collection_embed_model(const qai_collection *c, const char **name, const char **path, const char **sha256,
                                int *dim);

typedef enum { QAI_RETRIEVE_BM25 = 0, QAI_RETRIEVE_DENSE = 1, QAI_RETRIEVE_HYBRID = 2 } qai_retrieve_mode;
/* "bm25", "dense", "hybrid" -> *out; false (out untouched) for anything else, NULL included. */
bool qai_retrieve_mode_from_name(const char *name, qai_retrieve_mode *out);
typedef enum { QAI_FUSE_RRF = 0, QAI_FUSE_WEIGHTED = 1 } qai_fusion_kind;
/* "rrf", "weighted" -> *out; false (out untouched) for anything else, NULL included. */
bool qai_fusion_from_name(const char *name, qai_fusion_kind *out);

/* A metadata filter: every filter must match (AND). Keys:
 *   source        glob on the path as ingested (fnmatch)
 *   type          content type ("text/markdown", ...) or its short form ("markdown", "man", ...);
 *                 also "content_type"
 *   lang          language code ("en", "und", ...); also "language"
 *   section       glob on the section path
 *   record        the record id (JSONL id / CSV row)
 *   anything else a field of the record's metadata (JSONL fields, CSV columns), compared as text */
typedef struct {
    const char *key, *value;
} qai_meta_filter;

typedef struct {
    qai_retrieve_mode mode;     /* default hybrid when the collection has vectors, else bm25 */
    bool mode_given;            /* false: pick the default above */
    qai_fusion_kind fusion;     /* hybrid: RRF (k = 60, default) or weighted min-max (qai_fuse_weighted) */
    float dense_weight;         /* weighted fusion: the dense list's weight in [0, 1], BM25's is 1 - w
                                 * (default 0.5; 0 ranks as BM25 does, 1 as dense does) */
    int k;                      /* hits wanted (default 8) */
    int candidates;             /* hybrid: hits taken from each list before fusion (default max(4k, 50)) */
    int ef;                     /* HNSW candidate list (default max(2 * candidates, 64)) */
    const qai_meta_filter *filters;
    int n_filters;
    const char *embed_model;    /* the query embedder: NULL = the model recorded in the manifest
                                 * (its path); a model with another SHA-256 is refused */
    int n_threads;              /* query embedding threads (0: all CPUs) */
} qai_search_params;

void qai_search_params_default(qai_search_params *p);

typedef struct {
    uint64_t chunk_id;
    float score;                /* BM25 score, cosine similarity, or fused score by mode */
    int rank_bm25, rank_dense;  /* 1-based rank in each list before fusion; 0 if absent */
    size_t start, end;          /* byte span in the document's extracted text */
    char *source;               /* the path as ingested */
    char *record_id;            /* NULL unless a JSONL/CSV record */
    char *section;              /* section path, "" if none */
    char *title;                /* document title or NULL */
    char *content_type, *lang;
    char *meta_json;            /* record metadata JSON or NULL */
    char *text;
    /* set by qai_rerank_hits (zero otherwise): */
    float rerank_score;         /* the reranker's score (higher is better; see qai_rerank_score) */
    int rank_retrieval;         /* 1-based rank before reranking; 0: the hit was not reranked */
} qai_collection_hit;

/* The best p->k chunks for the query text. dense/hybrid need vectors (a clear
 * error names the fix otherwise) and load the embedding model on first use
 * (kept open by c for the next searches; c is then not thread safe). Filters
 * are applied during the index searches (filter callbacks), so k hits come
 * back whenever k chunks pass them. *hits is an array of *n hits, freed with
 * qai_collection_hits_free. */
qai_status qai_collection_search(qai_collection *c, const char *query, const qai_search_params *p,
                                 qai_collection_hit **hits, int *n);
void qai_collection_hits_free(qai_collection_hit *hits, int n);

/* The source paths of the documents dropped as duplicates of the document
 * that `source` holds, and that of its own twin (for evaluations that count a
 * kept twin as relevant). *out is an array of *n strings in one block
 * (qai_free). */
qai_status qai_collection_twins(qai_collection *c, const char *source, char ***out, int *n);

/* ---- reranking ------------------------------------------------------------- */

/* A reranker re-scores retrieved passages with a GGUF model.
 *
 * Decoder models ("llama", "qwen2": any GGUF qai generates with) score by
 * query likelihood (the UPR method): the score of a passage is the mean
 * log-probability (natural log, so <= 0) of the query's tokens when the model
 * reads them after a prompt made from the passage:
 *
 *     [BOS] "Passage: <passage>\nQuestion:" + " <query>"
 *
 * (the template is params.prompt, "{passage}" marking where the passage goes;
 * the query's tokens are the tokenization of " <query>" — the same ids for every
 * passage — and follow the template's tokens directly). A passage longer than
 * its token budget is cut to its first max_passage_tokens tokens (or refused
 * when truncate is false). Several passages are evaluated in one forward pass
 * (n_seq sequences of the context per qai_decode); the scores do not depend on
 * n_seq or the thread count (each sequence's tokens see only their own cache,
 * and every output element of the forward pass is computed the same way
 * whatever the batch holds; tests/knowledge/test_rerank.c checks it).
 *
 * Encoder models ("bert") are refused with QAI_ERR_UNSUPPORTED: cross-encoder
 * rerankers (pooling_type 4, a cls.* head) are not supported yet, and an
 * embedding model cannot score query likelihood.
 *
 * A reranker holds one context (its KV cache): it is not thread safe; use one
 * per thread. Usage:
 *
 *     qai_rerank_params rp;  qai_rerank_params_default(&rp);
 *     qai_reranker *r;
 *     if (qai_rerank_new("model.gguf", &rp, &r)) ... qai_last_error() ...
 *     qai_collection_hit *hits; int nh;
 *     qai_collection_search_rerank(c, "copy a directory", &sp, r, 30, &hits, &nh);
 *     ... hits[i].score (retrieval), hits[i].rerank_score, hits[i].rank_retrieval ...
 *     qai_collection_hits_free(hits, nh);
 *     qai_rerank_free(r);
 */
typedef struct {
    const char *prompt;     /* the passage template, with one "{passage}" (default
                             * "Passage: {passage}\nQuestion:") */
    int max_passage_tokens; /* a passage's token budget (default 256; lowered to what fits n_ctx) */
    int max_query_tokens;   /* the longest query accepted, in tokens (default 64) */
    bool truncate;          /* cut passages past the budget (default true); false: refuse them */
    int n_ctx;              /* positions per sequence (0: prompt + budgets, at most the model's
                             * training context) */
    int n_seq;              /* passages per forward pass (default 8) */
    int n_threads;          /* 0: all CPUs */
} qai_rerank_params;

void qai_rerank_params_default(qai_rerank_params *p);

typedef struct qai_reranker qai_reranker;

/* Opens the GGUF at model_path and makes a reranker that owns it. p NULL:
 * defaults. Fails with QAI_ERR_UNSUPPORTED for an encoder model, QAI_ERR_ARG
 * for a template without "{passage}" or budgets the context cannot hold (the
 * message says the numbers). Free with qai_rerank_free. */
qai_status qai_rerank_new(const char *model_path, const qai_rerank_params *p, qai_reranker **out);
/* The same on a model opened by the caller (borrowed: it must outlive the
 * reranker; the reranker makes its own context, so the model may be shared
 * with other contexts). */
qai_status qai_rerank_new_from_model(qai_model *m, const qai_rerank_params *p, qai_reranker **out);
void qai_rerank_free(qai_reranker *r);
/* The budgets in effect (after lowering to the context): passage tokens, query tokens, n_ctx. */
void qai_rerank_limits(const qai_reranker *r, int *max_passage_tokens, int *max_query_tokens, int *n_ctx);

/* scores[i] = the score of passages[i] for query (see above), i < n. Fails
 * (scores unspecified) on an empty or blank query, a query longer than
 * max_query_tokens, a NULL passage, or (truncate false) a passage past its
 * budget; the message names the passage by index. An empty passage is scored
 * with an empty passage text. */
qai_status qai_rerank_score(qai_reranker *r, const char *query, const char *const *passages, int n, float *scores);

/* Reranks the first n_rerank hits (all of them when n_rerank <= 0 or > n) by
 * qai_rerank_score of their text: they are reordered by score, best first,
 * ties kept in their original order; each gets rerank_score and
 * rank_retrieval (its 1-based rank before). Hits past n_rerank keep their
 * order, after the reranked ones, with rank_retrieval 0. On failure the hits
 * are unchanged. */
qai_status qai_rerank_hits(qai_reranker *r, const char *query, qai_collection_hit *hits, int n, int n_rerank);

/* qai_collection_search for max(p->k, n_rerank) candidates, the first
 * n_rerank of them reranked (qai_rerank_hits), then the best p->k kept.
 * r NULL: a plain search. */
qai_status qai_collection_search_rerank(qai_collection *c, const char *query, const qai_search_params *p,
                                        qai_reranker *r, int n_rerank, qai_collection_hit **hits, int *n);

#ifdef __cplusplus
}
#endif
#endif
