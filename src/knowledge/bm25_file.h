/*
 * Internal: the BM25 index file (".qbm"), version 1, little-endian.
 *
 *   offset  size  field
 *   0       8     magic "QAIBM25\0"
 *   8       4     version (1)
 *   12      4     reserved (0)
 *   16      4     k1 (f32)
 *   20      4     b (f32)
 *   24      8     n_docs (live documents, numbered 0 .. n_docs-1 in the file)
 *   32      8     n_terms
 *   40      8     total_len (sum of document lengths in tokens)
 *   48      8     n_postings
 *   56      8     docs_off     = 128: n_docs x {u64 id, u32 length, u32 zero}
 *   64      8     terms_off    = docs_off + 16 n_docs: n_terms x {u64 string offset, u32 length (1..64), u32 df}
 *   72      8     postings_off = terms_off + 16 n_terms: per term in term order, df x {u32 doc, u32 tf},
 *                                 docs strictly increasing
 *   80      8     strings_off  = postings_off + 8 n_postings: the term bytes, concatenated in term order
 *   88      8     strings_size
 *   96      8     body hash (qai_idx_hash of bytes 128 .. strings_off + strings_size)
 *   104     8     header hash (qai_idx_hash of bytes 0 .. 103)
 *   112     16    zero
 *   128           body
 *
 * A loader checks the checksums, then every count, offset, length, ordering
 * and sum (document length = sum of its tfs, total_len = sum of lengths,
 * postings = sum of dfs), so even a forged file cannot make search misbehave.
 */
#ifndef QAI_KNOWLEDGE_BM25_FILE_H
#define QAI_KNOWLEDGE_BM25_FILE_H

#include "knowledge/index_file.h"

#define QAI_BM25_MAGIC "QAIBM25"
#define QAI_BM25_VERSION 1

typedef struct {
    char magic[8];
    uint32_t version, reserved;
    float k1, b;
    uint64_t n_docs, n_terms, total_len, n_postings;
    uint64_t docs_off, terms_off, postings_off, strings_off, strings_size;
    uint64_t body_hash, header_hash;
    uint8_t pad[16];
} qai_bm25_header;
_Static_assert(sizeof(qai_bm25_header) == 128, "bm25 header is 128 bytes");
_Static_assert(__builtin_offsetof(qai_bm25_header, docs_off) == 56, "docs_off at 56");
_Static_assert(__builtin_offsetof(qai_bm25_header, header_hash) == 104, "header hash at 104");

#endif
