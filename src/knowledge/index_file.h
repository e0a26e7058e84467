/*
 * Internal: the dense index file (".qvi"), version 1. Little-endian, every
 * section 64-byte aligned so vectors and links are used in place from a
 * read-only mapping.
 *
 *   offset  size  field
 *   0       8     magic "QAIVIDX\0"
 *   8       4     version (1)
 *   12      4     kind (0 flat, 1 hnsw)
 *   16      4     metric (0 l2, 1 ip, 2 cosine)
 *   20      4     dim
 *   24      4     M (0 for flat)
 *   28      4     ef_construction
 *   32      4     ef_search
 *   36      4     flags (bit 0: int8 rows present)
 *   40      8     n: slots (live + deleted)
 *   48      8     n_deleted
 *   56      8     n_upper: upper-layer link blocks
 *   64      8     seed
 *   72      32    rng state (4 x u64; further inserts continue the level stream)
 *   104     4     entry point slot (hnsw, n > 0)
 *   108     4     max level (hnsw; -1 when empty)
 *   112     9x16  section table, {u64 offset, u64 size} in this order:
 *                 ids (n x u64), flags (n x u8, bit 0 deleted), vectors (n x dim f32),
 *                 qvecs (n x qstride s8, qstride = dim rounded up to 64), qmeta (n x 16 bytes:
 *                 f32 scale, i32 sum, f32 norm2, f32 err), levels (n x u8), links0 (n x (1 + 2M) u32:
 *                 count then links), upper_off (n x u32, first block or 0xffffffff),
 *                 upper (n_upper x (1 + M) u32); absent sections have offset 0 and size 0
 *   256     9x8   section checksums (FNV-1a-style 64-bit over 8-byte words, see qai_idx_hash)
 *   328     8     header checksum (the same hash over bytes 0 .. 327)
 *   336..511      zero
 *   512           sections
 */
#ifndef QAI_KNOWLEDGE_INDEX_FILE_H
#define QAI_KNOWLEDGE_INDEX_FILE_H

#include <stddef.h>
#include <stdint.h>

#define QAI_IDX_MAGIC "QAIVIDX"
#define QAI_IDX_VERSION 1
#define QAI_IDX_HEADER 512
#define QAI_IDX_NSEC 9

enum { SEC_IDS, SEC_FLAGS, SEC_VECS, SEC_QVECS, SEC_QMETA, SEC_LEVELS, SEC_LINKS0, SEC_UPPER_OFF, SEC_UPPER };

typedef struct {
    uint64_t offset, size;
} qai_idx_section;

typedef struct {
    char magic[8];
    uint32_t version, kind, metric, dim, M, ef_construction, ef_search, flags;
    uint64_t n, n_deleted, n_upper, seed;
    uint64_t rng[4];
    uint32_t entry;
    int32_t max_level;
    qai_idx_section sec[QAI_IDX_NSEC];
    uint64_t sec_hash[QAI_IDX_NSEC];
    uint64_t header_hash;
    uint8_t pad[QAI_IDX_HEADER - 336];
} qai_idx_header;

_Static_assert(sizeof(qai_idx_header) == QAI_IDX_HEADER, "index header is 512 bytes");
_Static_assert(__builtin_offsetof(qai_idx_header, rng) == 72, "rng at 72");
_Static_assert(__builtin_offsetof(qai_idx_header, entry) == 104, "entry at 104");
_Static_assert(__builtin_offsetof(qai_idx_header, sec) == 112, "sections at 112");
_Static_assert(__builtin_offsetof(qai_idx_header, sec_hash) == 256, "section hashes at 256");
_Static_assert(__builtin_offsetof(qai_idx_header, header_hash) == 328, "header hash at 328");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the index file is little-endian");

/* A fast 64-bit hash of n bytes: four interleaved multiply-xor lanes over
 * 8-byte words, then the tail bytes; detects corruption, not tampering. */
uint64_t qai_idx_hash(const void *data, size_t n);
/* The same hash fed in pieces (gives the value qai_idx_hash gives on the concatenation). */
typedef struct {
    uint64_t h[4], total;
    uint8_t buf[32];
    size_t nbuf;
} qai_idx_hasher;
void qai_idx_hasher_init(qai_idx_hasher *hs);
void qai_idx_hasher_update(qai_idx_hasher *hs, const void *data, size_t n);
uint64_t qai_idx_hasher_final(qai_idx_hasher *hs);

#endif
