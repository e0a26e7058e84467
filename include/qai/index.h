/*
 * qai/index.h — the retrieval core of the knowledge layer: dense vector
 * indexes (HNSW and an exact flat index), a BM25 inverted index, and fusion of
 * their result lists (reciprocal rank fusion, weighted min-max fusion).
 *
 * Documents (or chunks) are named by a caller-chosen 64-bit id; one id names
 * one vector in a dense index and one document in a BM25 index, so a hit from
 * either can be joined with the caller's metadata and with the other list.
 * Vectors are float32 of the dimension fixed when the index is made.
 *
 * What it deliberately does not do: chunk, embed, store text or metadata
 * (callers keep those and pass a filter callback), or lock: an index is safe
 * for any number of concurrent searches, but an add/remove/compact/save must
 * not run at the same time as anything else on the same index (callers that
 * mix them wrap the index in a rwlock).
 *
 * Scores are "higher is better" everywhere: dense hits carry the cosine
 * similarity (QAI_METRIC_COSINE), the inner product (QAI_METRIC_IP) or the
 * negated squared L2 distance (QAI_METRIC_L2); BM25 hits their BM25 score;
 * fused hits their fused score. Equal scores are ordered by ascending id.
 *
 * Usage:
 *     qai_index_params p;
 *     qai_index_params_default(&p, QAI_INDEX_HNSW, QAI_METRIC_COSINE, 384);
 *     qai_index *ix = qai_index_new(&p);
 *     qai_pool *pool = qai_pool_new(0);
 *     if (!ix || qai_index_add_batch(ix, ids, vecs, n, pool) != QAI_OK) ... qai_last_error() ...
 *     qai_hit hits[10];
 *     int nh;
 *     qai_search_opts so = {.ef = 64, .filter = my_filter, .filter_ctx = &ctx};
 *     qai_index_search(ix, query, 10, &so, hits, &nh);
 *     qai_index_save(ix, "docs.qvi");          // atomic: old or new file, never half
 *     qai_index_free(ix);
 *     qai_index_open("docs.qvi", &ix);         // memory-mapped, validated
 *
 *     qai_bm25 *bm = qai_bm25_new(NULL);        // k1 = 1.2, b = 0.75
 *     qai_bm25_add(bm, 7, text, strlen(text));
 *     qai_bm25_search(bm, "how to mount a disk", 10, NULL, NULL, lex, &nl);
 *
 *     const qai_hit *lists[2] = {dense, lex};
 *     int lens[2] = {nd, nl};
 *     qai_fuse_rrf(lists, lens, 2, 60, out, 10, &nout);
 */
#ifndef QAI_INDEX_H
#define QAI_INDEX_H

#include "qai/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- results and filters --------------------------------------------------- */

typedef struct {
    uint64_t id;
    float score; /* higher is better; meaning per index type, see above */
} qai_hit;

/* A filter is called during search with a document id; it returns true when
 * the document may appear in the results. Filtered-out nodes are still used to
 * navigate an HNSW graph, so a filter never disconnects it. It must be thread
 * safe when searches run concurrently, and cheap (it is called once per
 * visited node). */
typedef bool (*qai_filter_fn)(void *ctx, uint64_t id);

/* ---- dense indexes ---------------------------------------------------------- */

typedef enum { QAI_INDEX_FLAT = 0, QAI_INDEX_HNSW = 1 } qai_index_kind;
typedef enum { QAI_METRIC_L2 = 0, QAI_METRIC_IP = 1, QAI_METRIC_COSINE = 2 } qai_metric;

typedef struct {
    qai_index_kind kind;
    qai_metric metric;
    int dim;             /* 1 .. 65536 */
    int M;               /* HNSW: links per node on upper layers, 2*M on layer 0 (2..128, default 16) */
    int ef_construction; /* HNSW: candidate list size while building (default 200) */
    int ef_search;       /* HNSW: default candidate list size while searching (default 64) */
    uint64_t seed;       /* HNSW: seeds the level draw (default 42) */
    bool int8;           /* also keep int8 scalar-quantized rows (per-row scale). HNSW navigates
                          * on them and rescores the final ef candidates with the float vectors;
                          * the flat index prefilters with them under a rigorous error bound and
                          * rescores the survivors, so it stays exact (see docs/index.md) */
} qai_index_params;

/* Fills p with the defaults above for that kind, metric and dimension. */
void qai_index_params_default(qai_index_params *p, qai_index_kind kind, qai_metric metric, int dim);

typedef struct qai_index qai_index;

typedef struct {
    int ef;                /* HNSW candidate list size; 0 = the index's ef_search; raised to k if smaller */
    qai_filter_fn filter;  /* NULL = every live document */
    void *filter_ctx;
    qai_pool *pool;        /* flat index: split the scan over this pool (NULL = caller's thread) */
} qai_search_opts;

/* Makes an empty index; NULL (with qai_last_error) if p is invalid or memory runs out.
 * Free with qai_index_free. */
qai_index *qai_index_new(const qai_index_params *p);
void qai_index_free(qai_index *ix);

/* Inserts vec (dim floats, copied) under id. An id already present is updated:
 * its old vector is deleted and the new one inserted (so the graph is built
 * around the new position). Cosine indexes store the normalized vector.
 * Rejects NaN/Inf components and zero vectors under cosine. */
qai_status qai_index_add(qai_index *ix, uint64_t id, const float *vec);
/* Inserts n vectors (row-major n x dim) with their ids, building the HNSW graph
 * on pool's threads (NULL = the caller's thread). Single-threaded builds are
 * deterministic given the seed; multi-threaded ones insert in a racy order and
 * so give a (equally good) different graph. Ids must be distinct within the batch. */
qai_status qai_index_add_batch(qai_index *ix, const uint64_t *ids, const float *vecs, size_t n, qai_pool *pool);
/* Deletes id: it never appears in results again; in HNSW its node stays in the
 * graph for navigation until the next compaction. QAI_ERR_NOT_FOUND if absent. */
qai_status qai_index_remove(qai_index *ix, uint64_t id);
/* Rebuilds the index from its live vectors only (dropping deleted nodes and
 * their memory), in the order they were inserted, on pool's threads. Called
 * automatically by add when deleted nodes outnumber live ones. */
qai_status qai_index_compact(qai_index *ix, qai_pool *pool);

/* The k best live documents for the query (dim floats) that pass the filter,
 * best first, into out (room for k); *n_out gets how many (< k if fewer
 * exist). Safe to call from many threads at once on an index nobody modifies. */
qai_status qai_index_search(const qai_index *ix, const float *query, int k, const qai_search_opts *opts, qai_hit *out,
                            int *n_out);

/* Counts and parameters. */
size_t qai_index_size(const qai_index *ix);      /* live documents */
size_t qai_index_deleted(const qai_index *ix);   /* deleted nodes still in the graph */
const qai_index_params *qai_index_get_params(const qai_index *ix);
bool qai_index_contains(const qai_index *ix, uint64_t id);
/* Copies the stored vector of id (normalized under cosine) into out (dim floats). */
qai_status qai_index_get_vector(const qai_index *ix, uint64_t id, float *out);
/* Bytes of memory the index holds (heap plus mapped file sections). */
size_t qai_index_memory(const qai_index *ix);

/* Writes the index to path atomically (a crash leaves the old file or the new
 * one). The layout is in docs/index.md and src/knowledge/index_file.h. */
qai_status qai_index_save(const qai_index *ix, const char *path);
/* Opens a saved index: the file is memory-mapped and its vectors and graph are
 * used in place (copied to the heap only when the index is first modified).
 * Every offset, count and link is validated; a truncated or corrupted file is
 * rejected with a message naming the path, the field and the byte offset. */
qai_status qai_index_open(const char *path, qai_index **out);
/* The same from a caller's buffer (8-byte aligned), which must outlive the
 * index (used by the fuzz harness); name is used in messages. */
qai_status qai_index_open_buffer(const void *data, size_t size, const char *name, qai_index **out);

/* ---- BM25 ------------------------------------------------------------------- */

typedef struct {
    float k1; /* term-frequency saturation (default 1.2) */
    float b;  /* length normalization (default 0.75) */
} qai_bm25_params;

typedef struct qai_bm25 qai_bm25;

/* params may be NULL for the defaults. Free with qai_bm25_free. */
qai_bm25 *qai_bm25_new(const qai_bm25_params *params);
void qai_bm25_free(qai_bm25 *bm);
/* Tokenizes text (UTF-8, n bytes; see qai_bm25_tokenize) and indexes it under
 * id; an id already present is replaced. Invalid UTF-8 is rejected. */
qai_status qai_bm25_add(qai_bm25 *bm, uint64_t id, const char *text, size_t n);
/* Removes a document; QAI_ERR_NOT_FOUND if absent. */
qai_status qai_bm25_remove(qai_bm25 *bm, uint64_t id);
/* Top k documents for the query text, best first (only documents sharing at
 * least one term with the query score above zero and are returned).
 *   score(D, Q) = sum over query tokens t of
 *       idf(t) * tf(t,D) * (k1 + 1) / (tf(t,D) + k1 * (1 - b + b * |D| / avgdl))
 *   idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
 * with N live documents, df(t) how many contain t, |D| the token count of D
 * after stop-word removal and avgdl the mean |D|. A token repeated in the
 * query counts each time. Safe to call concurrently on an unmodified index. */
qai_status qai_bm25_search(const qai_bm25 *bm, const char *query, int k, qai_filter_fn filter, void *filter_ctx,
                           qai_hit *out, int *n_out);
size_t qai_bm25_size(const qai_bm25 *bm);  /* live documents */
size_t qai_bm25_terms(const qai_bm25 *bm); /* distinct terms with at least one posting */
/* Saves atomically / loads with validation (layout in docs/index.md). */
qai_status qai_bm25_save(const qai_bm25 *bm, const char *path);
qai_status qai_bm25_load(const char *path, qai_bm25 **out);
qai_status qai_bm25_load_buffer(const void *data, size_t size, const char *name, qai_bm25 **out);

/* Retrieval tokenization: NFKC case folding (utf8proc), split on anything that
 * is not a letter or a digit, drop English stop words and tokens longer than
 * 64 bytes, then Porter's step 1 (1a plurals, 1b -ed/-ing, 1c y->i) on
 * all-ASCII tokens. Calls fn(ctx, token, len) for each token (not NUL
 * terminated; valid during the call). Fails on invalid UTF-8. */
typedef void (*qai_bm25_term_fn)(void *ctx, const char *tok, size_t len);
qai_status qai_bm25_tokenize(const char *text, size_t n, qai_bm25_term_fn fn, void *ctx);
/* Porter step 1 on a lowercase ASCII word of n bytes in place; returns the new length. */
size_t qai_stem_porter1(char *word, size_t n);
/* True if the lowercase word is in the English stop-word list. */
bool qai_is_stopword(const char *word, size_t n);

/* ---- fusion ----------------------------------------------------------------- */

/* Reciprocal rank fusion: score(d) = sum over lists containing d of
 * 1 / (k + rank), rank counted from 1 (k = 60 is the usual choice; k <= 0 means 60).
 * Lists are best first. Writes the top max_out fused hits to out. */
qai_status qai_fuse_rrf(const qai_hit *const *lists, const int *lens, int n_lists, int k, qai_hit *out, int max_out,
                        int *n_out);
/* Weighted score fusion: each list's scores are min-max normalized to [0, 1]
 * (all 1 when a list's scores are equal), then score(d) = sum of
 * weights[i] * norm_i(d) over the lists containing d (weights NULL = all 1). */
qai_status qai_fuse_weighted(const qai_hit *const *lists, const int *lens, const float *weights, int n_lists,
                             qai_hit *out, int max_out, int *n_out);

#ifdef __cplusplus
}
#endif
#endif
