/*
 * Saving and opening dense index files (layout in index_file.h): save writes
 * through qai_atomic_open/commit; open maps the file, checks the header,
 * every section's bounds, alignment, size and checksum, then every flag,
 * level and link, and points the index's arrays into the mapping.
 *
 * What it deliberately does not do: convert between endiannesses or versions.
 */
#include <math.h>
#include <string.h>

#include "knowledge/index_file.h"
#include "knowledge/index_internal.h"

#define HK 0x9e3779b97f4a7c15ull

void qai_idx_hasher_init(qai_idx_hasher *hs) {
    static const uint64_t iv[4] = {0x243f6a8885a308d3ull, 0x13198a2e03707344ull, 0xa4093822299f31d0ull, 0x082efa98ec4e6c89ull};
    memcpy(hs->h, iv, sizeof iv);
    hs->total = 0;
    hs->nbuf = 0;
}

static inline void hash_block(uint64_t h[4], const uint8_t *p) {
    for (int l = 0; l < 4; l++) {
        uint64_t w;
        memcpy(&w, p + 8 * l, 8);
        h[l] = (h[l] ^ w) * HK;
        h[l] ^= h[l] >> 29;
    }
}

void qai_idx_hasher_update(qai_idx_hasher *hs, const void *data, size_t n) {
    const uint8_t *p = data;
    hs->total += n;
    if (hs->nbuf) {
        size_t take = 32 - hs->nbuf < n ? 32 - hs->nbuf : n;
        memcpy(hs->buf + hs->nbuf, p, take);
        hs->nbuf += take;
        p += take;
        n -= take;
        if (hs->nbuf < 32) return;
        hash_block(hs->h, hs->buf);
        hs->nbuf = 0;
    }
    for (; n >= 32; p += 32, n -= 32) hash_block(hs->h, p);
    memcpy(hs->buf, p, n);
    hs->nbuf = n;
}

uint64_t qai_idx_hasher_final(qai_idx_hasher *hs) {
    uint64_t r = hs->total * HK;
    for (int l = 0; l < 4; l++) r = (r ^ hs->h[l]) * 0xff51afd7ed558ccdull;
    for (size_t i = 0; i < hs->nbuf; i++) r = (r ^ hs->buf[i]) * 0x100000001b3ull;
    r ^= r >> 33;
    r *= 0xc4ceb9fe1a85ec53ull;
    r ^= r >> 33;
    return r;
}

uint64_t qai_idx_hash(const void *data, size_t n) {
    qai_idx_hasher hs;
    qai_idx_hasher_init(&hs);
    qai_idx_hasher_update(&hs, data, n);
    return qai_idx_hasher_final(&hs);
}

static size_t align64(size_t x) { return (x + 63) & ~(size_t)63; }

qai_status qai_index_save(const qai_index *ix, const char *path) {
    qai_idx_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, QAI_IDX_MAGIC, 8);
    h.version = QAI_IDX_VERSION;
    h.kind = (uint32_t)ix->p.kind;
    h.metric = (uint32_t)ix->p.metric;
    h.dim = (uint32_t)ix->p.dim;
    h.M = (uint32_t)ix->p.M;
    h.ef_construction = (uint32_t)ix->p.ef_construction;
    h.ef_search = (uint32_t)ix->p.ef_search;
    h.flags = ix->p.int8 ? 1u : 0u;
    h.n = ix->n;
    h.n_deleted = ix->n_deleted;
    bool hnsw = ix->p.kind == QAI_INDEX_HNSW;
    h.n_upper = hnsw ? ix->n_upper : 0;
    h.seed = ix->p.seed;
    memcpy(h.rng, ix->rng.s, sizeof h.rng);
    h.entry = hnsw ? ix->entry : 0;
    h.max_level = hnsw ? ix->max_level : -1;
    size_t n = ix->n, d = (size_t)ix->p.dim;
    const void *ptr[QAI_IDX_NSEC] = {ix->ids, ix->flags, ix->vecs, ix->qvecs, ix->qmeta,
                                     ix->levels, ix->links0, ix->upper_off, ix->upper};
    size_t size[QAI_IDX_NSEC] = {n * 8, n, n * d * 4, ix->p.int8 ? n * (size_t)ix->qstride : 0, ix->p.int8 ? n * 16 : 0,
                                 hnsw ? n : 0, hnsw ? n * (size_t)(1 + ix->maxM0) * 4 : 0, hnsw ? n * 4 : 0,
                                 hnsw ? ix->n_upper * (size_t)(1 + ix->maxM) * 4 : 0};
    size_t off = QAI_IDX_HEADER;
    for (int i = 0; i < QAI_IDX_NSEC; i++) {
        if (!size[i]) continue;
        h.sec[i].offset = off;
        h.sec[i].size = size[i];
        h.sec_hash[i] = qai_idx_hash(ptr[i], size[i]);
        off = align64(off + size[i]);
    }
    h.header_hash = qai_idx_hash(&h, __builtin_offsetof(qai_idx_header, header_hash));
    qai_atomic_file af;
    qai_status st = qai_atomic_open(path, &af);
    if (st) return st;
    static const uint8_t zeros[64];
    bool ok = fwrite(&h, sizeof h, 1, af.f) == 1;
    size_t pos = QAI_IDX_HEADER;
    for (int i = 0; i < QAI_IDX_NSEC && ok; i++) {
        if (!size[i]) continue;
        ok = fwrite(zeros, 1, h.sec[i].offset - pos, af.f) == h.sec[i].offset - pos &&
             fwrite(ptr[i], 1, size[i], af.f) == size[i];
        pos = h.sec[i].offset + size[i];
    }
    if (ok && align64(pos) > pos) ok = fwrite(zeros, 1, align64(pos) - pos, af.f) == align64(pos) - pos;
    if (!ok) {
        qai_atomic_abort(&af);
        return qai_error(QAI_ERR_IO, "cannot write index '%s'", path);
    }
    return qai_atomic_commit(&af);
}

static const char *sec_name[QAI_IDX_NSEC] = {"ids", "flags", "vectors", "qvecs", "qmeta",
                                             "levels", "links0", "upper_off", "upper"};

#define FAIL(...) qai_error(QAI_ERR_FORMAT, __VA_ARGS__)

/* Points ix's arrays at data after checking every byte that search trusts. */
static qai_status load(qai_index *ix, const uint8_t *data, size_t size, const char *name) {
    if (size < QAI_IDX_HEADER)
        return FAIL("%s: not a qai index: %zu bytes, shorter than the %d-byte header", name, size, QAI_IDX_HEADER);
    qai_idx_header h;
    memcpy(&h, data, sizeof h);
    if (memcmp(h.magic, QAI_IDX_MAGIC, 8) != 0) return FAIL("%s: not a qai index (bad magic at offset 0)", name);
    if (h.version != QAI_IDX_VERSION)
        return FAIL("%s: index version %u at offset 8 is not supported (expected %d)", name, h.version, QAI_IDX_VERSION);
    if (qai_idx_hash(&h, __builtin_offsetof(qai_idx_header, header_hash)) != h.header_hash)
        return FAIL("%s: header checksum mismatch (offset 328): the header is corrupted", name);
    if (h.kind > QAI_INDEX_HNSW) return FAIL("%s: kind %u at offset 12 is unknown", name, h.kind);
    if (h.metric > QAI_METRIC_COSINE) return FAIL("%s: metric %u at offset 16 is unknown", name, h.metric);
    if (h.dim < 1 || h.dim > QAI_MAX_DIM) return FAIL("%s: dimension %u at offset 20 is not in 1..%d", name, h.dim, QAI_MAX_DIM);
    bool hnsw = h.kind == QAI_INDEX_HNSW;
    if (hnsw && (h.M < 2 || h.M > QAI_MAX_M)) return FAIL("%s: M = %u at offset 24 is not in 2..%d", name, h.M, QAI_MAX_M);
    if (hnsw && (h.ef_construction < 1 || h.ef_construction > 1u << 20 || h.ef_search < 1 || h.ef_search > 1u << 20))
        return FAIL("%s: ef_construction/ef_search at offset 28 out of range", name);
    if (h.flags > 1) return FAIL("%s: unknown flags 0x%x at offset 36", name, h.flags);
    if (h.n > UINT32_MAX - 1 || h.n_deleted > h.n) return FAIL("%s: counts at offset 40 are inconsistent (n %llu, deleted %llu)", name,
                                                               (unsigned long long)h.n, (unsigned long long)h.n_deleted);
    if (h.n_upper > UINT32_MAX - 1) return FAIL("%s: n_upper %llu at offset 56 is too large", name, (unsigned long long)h.n_upper);
    ix->p.kind = (qai_index_kind)h.kind;
    ix->p.metric = (qai_metric)h.metric;
    ix->p.dim = (int)h.dim;
    ix->p.M = hnsw ? (int)h.M : 0;
    ix->p.ef_construction = hnsw ? (int)h.ef_construction : 0;
    ix->p.ef_search = hnsw ? (int)h.ef_search : 0;
    ix->p.seed = h.seed;
    ix->p.int8 = h.flags & 1;
    qai_index_setup(ix);
    memcpy(ix->rng.s, h.rng, sizeof h.rng);
    size_t n = (size_t)h.n, d = h.dim;
    size_t want[QAI_IDX_NSEC] = {n * 8, n, n * d * 4, ix->p.int8 ? n * (size_t)ix->qstride : 0, ix->p.int8 ? n * 16 : 0,
                                 hnsw ? n : 0, hnsw ? n * (size_t)(1 + ix->maxM0) * 4 : 0, hnsw ? n * 4 : 0,
                                 hnsw ? (size_t)h.n_upper * (size_t)(1 + ix->maxM) * 4 : 0};
    const uint8_t *ptr[QAI_IDX_NSEC] = {0};
    for (int i = 0; i < QAI_IDX_NSEC; i++) {
        size_t so = 112 + 16 * (size_t)i;
        if (h.sec[i].size != want[i])
            return FAIL("%s: section '%s' (table at offset %zu) has %llu bytes, expected %zu", name, sec_name[i], so,
                        (unsigned long long)h.sec[i].size, want[i]);
        if (!want[i]) continue;
        if (h.sec[i].offset % 64 || h.sec[i].offset < QAI_IDX_HEADER)
            return FAIL("%s: section '%s' (table at offset %zu) starts at %llu, not a 64-byte aligned offset past the header",
                        name, sec_name[i], so, (unsigned long long)h.sec[i].offset);
        if (h.sec[i].offset > size || h.sec[i].size > size - h.sec[i].offset)
            return FAIL("%s: section '%s' at offset %llu (%llu bytes) ends past the end of the file (%zu bytes): truncated?",
                        name, sec_name[i], (unsigned long long)h.sec[i].offset, (unsigned long long)h.sec[i].size, size);
        ptr[i] = data + h.sec[i].offset;
        if (qai_idx_hash(ptr[i], want[i]) != h.sec_hash[i])
            return FAIL("%s: section '%s' at offset %llu..%llu fails its checksum: the file is corrupted", name, sec_name[i],
                        (unsigned long long)h.sec[i].offset, (unsigned long long)(h.sec[i].offset + h.sec[i].size));
    }
    /* the arrays are only read until the first modification copies them */
    ix->ids = (uint64_t *)ptr[SEC_IDS];
    ix->flags = (uint8_t *)ptr[SEC_FLAGS];
    ix->vecs = (float *)ptr[SEC_VECS];
    ix->qvecs = (int8_t *)ptr[SEC_QVECS];
    ix->qmeta = (qai_qmeta *)ptr[SEC_QMETA];
    ix->levels = (uint8_t *)ptr[SEC_LEVELS];
    ix->links0 = (uint32_t *)ptr[SEC_LINKS0];
    ix->upper_off = (uint32_t *)ptr[SEC_UPPER_OFF];
    ix->upper = (uint32_t *)ptr[SEC_UPPER];
    ix->n = n;
    ix->n_upper = (size_t)h.n_upper;
    ix->n_deleted = (size_t)h.n_deleted;
    ix->entry = h.entry;
    ix->max_level = h.max_level;
    /* the checksums catch accidents; these checks make a forged file safe too */
    size_t deleted = 0;
    for (size_t s = 0; s < n; s++) {
        if (ix->flags[s] & ~QAI_FLAG_DELETED)
            return FAIL("%s: flags of slot %zu (offset %llu) has unknown bits", name, s, (unsigned long long)(h.sec[SEC_FLAGS].offset + s));
        deleted += ix->flags[s] & QAI_FLAG_DELETED;
    }
    /* vectors must be finite (search and re-quantization assume it); int8 rows
     * in [-127, 127] with zero padding, and metadata consistent with them */
    for (size_t s = 0; s < n; s++) {
        const float *v = ix->vecs + s * d;
        double n2 = 0;
        for (size_t i = 0; i < d; i++) {
            if (!isfinite(v[i]))
                return FAIL("%s: component %zu of vector %zu (offset %llu) is not finite", name, i, s,
                            (unsigned long long)(h.sec[SEC_VECS].offset + 4 * (s * d + i)));
            n2 += (double)v[i] * v[i];
        }
        if (!(n2 <= 3.0e38) || (n2 == 0 && ix->p.metric == QAI_METRIC_COSINE))
            return FAIL("%s: vector %zu (offset %llu) has a norm no index of this metric accepts", name, s,
                        (unsigned long long)(h.sec[SEC_VECS].offset + 4 * s * d));
    }
    if (ix->p.int8) {
        for (size_t s = 0; s < n; s++) {
            const int8_t *q = ix->qvecs + s * (size_t)ix->qstride;
            int64_t sum = 0;
            for (int j = 0; j < ix->qstride; j++) {
                if (q[j] < -127 || (j >= ix->p.dim && q[j] != 0))
                    return FAIL("%s: int8 row %zu (offset %llu) has a bad value at %d", name, s,
                                (unsigned long long)(h.sec[SEC_QVECS].offset + s * (size_t)ix->qstride), j);
                sum += q[j];
            }
            const qai_qmeta *m = &ix->qmeta[s];
            if (sum != m->sum || !isfinite(m->scale) || !(m->scale > 0) || !isfinite(m->norm2) || !isfinite(m->err))
                return FAIL("%s: int8 metadata of row %zu (offset %llu) is inconsistent", name, s,
                            (unsigned long long)(h.sec[SEC_QMETA].offset + 16 * s));
        }
    }
    if (deleted != ix->n_deleted)
        return FAIL("%s: %zu slots are marked deleted but the header (offset 48) says %zu", name, deleted, ix->n_deleted);
    if (hnsw) {
        if (n == 0 ? h.max_level != -1 : (h.max_level < 0 || h.max_level > QAI_HNSW_MAX_LEVEL || h.entry >= n))
            return FAIL("%s: entry point %u / max level %d at offset 104 are invalid for %zu nodes", name, h.entry, h.max_level, n);
        if (n && ix->levels[h.entry] != h.max_level)
            return FAIL("%s: the entry point's level %u differs from the max level %d (offset 108)", name, ix->levels[h.entry], h.max_level);
        size_t blocks = 0;
        for (size_t s = 0; s < n; s++) {
            uint32_t L = ix->levels[s];
            size_t lo = (size_t)h.sec[SEC_LEVELS].offset + s;
            if ((int)L > h.max_level) return FAIL("%s: level %u of slot %zu (offset %zu) exceeds the max level %d", name, L, s, lo, h.max_level);
            uint32_t uo = ix->upper_off[s];
            size_t oo = (size_t)h.sec[SEC_UPPER_OFF].offset + 4 * s;
            if (L == 0 ? uo != QAI_NO_UPPER : ((uint64_t)uo + L > h.n_upper))
                return FAIL("%s: upper-layer offset %u of slot %zu (offset %zu) does not fit its level %u", name, uo, s, oo, L);
            blocks += L;
        }
        if (blocks > h.n_upper) return FAIL("%s: nodes claim %zu upper blocks, the file has %llu", name, blocks, (unsigned long long)h.n_upper);
        for (size_t s = 0; s < n; s++) {
            for (int lev = 0; lev <= ix->levels[s]; lev++) {
                const uint32_t *ll = qai_links(ix, (uint32_t)s, lev);
                size_t lo = lev == 0 ? (size_t)h.sec[SEC_LINKS0].offset + 4 * s * (size_t)(1 + ix->maxM0)
                                     : (size_t)h.sec[SEC_UPPER].offset +
                                           4 * ((size_t)ix->upper_off[s] + (size_t)lev - 1) * (size_t)(1 + ix->maxM);
                uint32_t cnt = ll[0], maxc = (uint32_t)(lev ? ix->maxM : ix->maxM0);
                if (cnt > maxc)
                    return FAIL("%s: node %zu has %u links on layer %d (offset %zu), more than %u", name, s, cnt, lev, lo, maxc);
                for (uint32_t j = 1; j <= cnt; j++)
                    if (ll[j] >= n || ix->levels[ll[j]] < lev)
                        return FAIL("%s: link %u of node %zu on layer %d (offset %zu) points to %u, not a node of that layer",
                                    name, j, s, lev, lo + 4 * j, ll[j]);
            }
        }
    }
    size_t ido = (size_t)h.sec[SEC_IDS].offset;
    return qai_index_build_map(ix, name, &ido);
}

static qai_status open_common(const uint8_t *data, size_t size, const char *name, qai_index **out, qai_mapped_file *mf) {
    *out = NULL;
    qai_index *ix = qai_calloc(1, sizeof *ix);
    if (!ix) return QAI_ERR_NOMEM;
    qai_status st = load(ix, data, size, name);
    if (st) {
        /* the arrays point into data: detach them before freeing */
        ix->ids = NULL;
        ix->flags = NULL;
        ix->vecs = NULL;
        ix->qvecs = NULL;
        ix->qmeta = NULL;
        ix->levels = NULL;
        ix->links0 = NULL;
        ix->upper_off = NULL;
        ix->upper = NULL;
        if (ix->k) { /* setup ran: mutexes exist */
            qai_index_free(ix);
        } else {
            qai_free(ix);
        }
        return st;
    }
    if (mf) {
        ix->mapped = true;
        ix->mf = *mf;
    } else {
        ix->mapped = true; /* caller's buffer: never freed by us */
        ix->mf.data = NULL;
        ix->mf.size = 0;
        ix->mf.fd = -1;
    }
    *out = ix;
    return QAI_OK;
}

qai_status qai_index_open_buffer(const void *data, size_t size, const char *name, qai_index **out) {
    *out = NULL;
    if ((uintptr_t)data % 8) return qai_error(QAI_ERR_ARG, "%s: index buffer is not 8-byte aligned", name);
    return open_common(data, size, name, out, NULL);
}

qai_status qai_index_open(const char *path, qai_index **out) {
    qai_mapped_file mf;
    qai_status st = qai_file_map(path, &mf);
    if (st) return st;
    st = open_common(mf.data, mf.size, path, out, &mf);
    if (st) qai_file_unmap(&mf);
    return st;
}
