/* Reading bundles: one streaming pass over the archive that checks every
 * member against the manifest (names, types, sizes, SHA-256), then judges the
 * signatures. The same pass serves verify, sign (copying into a new archive)
 * and open_model (writing the model's bytes to a cache file).
 *
 * What it deliberately does not do: extract anything by the name found in the
 * archive. Only the model's bytes leave the archive, into a file the caller
 * names; every other member is hashed and dropped (or kept in memory when
 * small and asked for). Links, devices, sparse files, duplicates and odd names
 * are refused before their data is read. */
#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/bundle_internal.h"

#define READ_CHUNK (1u << 20)
#define MAX_ENTRIES 10000

typedef struct {
    char path[QAI_BUNDLE_MEMBER_MAX + 1];
    char sha[65];
    uint64_t size;
    bool seen;
} expect;

typedef struct {
    char member[QAI_BUNDLE_MEMBER_MAX + 1];
    uint8_t *bytes;
    size_t len;
} sig_blob;

typedef struct {
    const bundle_scan_opts *o;
    qai_bundle_report *r;
    const char *label; /* file name for messages */
    int fd;
    uint8_t *rbuf;
    bool hash_file;
    _Alignas(16) qai_sha256_ctx fh; /* base.h's ctx is a byte array; hash.c needs 8-byte alignment */
    uint64_t fsize;
    expect *ex;
    size_t nex;
    sig_blob *sigs;
    size_t nsigs;
    bool io_error; /* reading the file itself failed (not a verdict) */
    int io_errno;
    /* the first member whose size or hash differs from the manifest: reading
     * goes on to the signatures, which tell whether the member or the
     * manifest was changed */
    bool mismatch;
    char mm_member[QAI_BUNDLE_MEMBER_MAX + 1];
    char mm_problem[1024];
} scan;

static void mismatch(scan *s, const char *member, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void mismatch(scan *s, const char *member, const char *fmt, ...) {
    if (s->mismatch) return;
    s->mismatch = true;
    snprintf(s->mm_member, sizeof s->mm_member, "%s", member);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->mm_problem, sizeof s->mm_problem, fmt, ap);
    va_end(ap);
}

static void fail(qai_bundle_report *r, const char *member, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(qai_bundle_report *r, const char *member, const char *fmt, ...) {
    if (!r->ok && r->problem[0]) return; /* keep the first */
    r->ok = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->problem, sizeof r->problem, fmt, ap);
    va_end(ap);
    snprintf(r->failed, sizeof r->failed, "%s", member ? member : "");
}

static la_ssize_t read_cb(struct archive *a, void *ud, const void **buf) {
    scan *s = ud;
    ssize_t n;
    do n = read(s->fd, s->rbuf, READ_CHUNK);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        s->io_error = true;
        s->io_errno = errno;
        archive_set_error(a, errno, "read failed: %s", strerror(errno));
        return -1;
    }
    if (s->hash_file) qai_sha256_update(&s->fh, s->rbuf, (size_t)n);
    s->fsize += (uint64_t)n;
    *buf = s->rbuf;
    return n;
}

static const char *json_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static bool json_u64(const cJSON *o, const char *k, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
        return false;
    *out = (uint64_t)v->valuedouble;
    return true;
}

/* Validates the manifest and fills the expected members. */
static void parse_manifest(scan *s) {
    qai_bundle_report *r = s->r;
    size_t off;
    cJSON *m = bundle_json_parse(r->manifest, r->manifest_len, &off);
    if (!m) {
        fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json is not valid JSON (near byte %zu)", s->label, off);
        return;
    }
    const char *av = json_str(m, "apiVersion"), *kind = json_str(m, "kind");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(m, "metadata");
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(m, "spec");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(spec, "model");
    const cJSON *mem = cJSON_GetObjectItemCaseSensitive(m, "members");
    const char *name = json_str(meta, "name"), *version = json_str(meta, "version");
    const char *mfile = json_str(model, "file"), *msha = json_str(model, "sha256");
    uint64_t msize = 0;
    if (!cJSON_IsObject(m) || !av || strcmp(av, QAI_BUNDLE_API_VERSION))
        fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: apiVersion is not \"%s\"", s->label, QAI_BUNDLE_API_VERSION);
    else if (!kind || strcmp(kind, QAI_BUNDLE_KIND))
        fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: kind is not \"%s\"", s->label, QAI_BUNDLE_KIND);
    else if (!name || !bundle_ident_ok(name) || !version || !bundle_ident_ok(version))
        fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: metadata.name/version missing or not of [A-Za-z0-9._-]",
             s->label);
    else if (!mfile || !msha || !bundle_hex64_ok(msha) || !json_u64(model, "size", &msize))
        fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: spec.model needs file, sha256 and size", s->label);
    else if (!cJSON_IsArray(mem) || cJSON_GetArraySize(mem) > MAX_ENTRIES)
        fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: members must be a list (at most %d)", s->label, MAX_ENTRIES);
    if (!r->ok) {
        cJSON_Delete(m);
        return;
    }
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->version, sizeof r->version, "%s", version);
    size_t n = (size_t)cJSON_GetArraySize(mem);
    s->ex = qai_calloc(n ? n : 1, sizeof *s->ex);
    if (!s->ex) {
        fail(r, NULL, "out of memory");
        cJSON_Delete(m);
        return;
    }
    int i = 0;
    for (const cJSON *e = mem->child; e; e = e->next, i++) {
        const char *p = json_str(e, "path"), *h = json_str(e, "sha256");
        uint64_t sz;
        if (!cJSON_IsObject(e) || !p || !h || !bundle_hex64_ok(h) || !json_u64(e, "size", &sz)) {
            fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: members[%d] needs path, sha256 (64 hex) and size",
                 s->label, i);
            break;
        }
        char kid[QAI_KEY_ID_HEX_BYTES];
        if (!bundle_member_name_ok(p) || !strcmp(p, QAI_BUNDLE_MANIFEST) || !strncmp(p, "signatures/", 11) ||
            bundle_sig_member_key(p, kid)) {
            fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: members[%d]: '%s' is not an allowed member name",
                 s->label, i, p);
            break;
        }
        for (size_t j = 0; j < s->nex; j++)
            if (!strcmp(s->ex[j].path, p)) {
                fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: member '%s' listed twice", s->label, p);
                break;
            }
        if (!r->ok) break;
        expect *x = &s->ex[s->nex++];
        snprintf(x->path, sizeof x->path, "%s", p);
        snprintf(x->sha, sizeof x->sha, "%s", h);
        x->size = sz;
    }
    if (r->ok) {
        const expect *mx = NULL;
        for (size_t j = 0; j < s->nex; j++)
            if (!strcmp(s->ex[j].path, mfile)) mx = &s->ex[j];
        if (!mx)
            fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: spec.model.file '%s' is not among the members", s->label,
                 mfile);
        else if (strcmp(mx->sha, msha) || mx->size != msize)
            fail(r, QAI_BUNDLE_MANIFEST, "%s: manifest.json: spec.model and members disagree about '%s'", s->label,
                 mfile);
        else {
            snprintf(r->model_member, sizeof r->model_member, "%s", mfile);
            snprintf(r->model_sha256, sizeof r->model_sha256, "%s", msha);
            r->model_size = msize;
        }
    }
    cJSON_Delete(m);
}

static bool keep_small(const char *p) {
    return !strcmp(p, "card.yaml") || !strcmp(p, "sbom.json") || !strncmp(p, "datasets/", 9) ||
           !strncmp(p, "evals/", 6);
}

/* Reads the current entry's data (size bytes) into the hash, and optionally
 * into keep (a buffer of size+1), the model file and the copy. */
static bool pump(scan *s, struct archive *a, const char *member, uint64_t size, char *keep, FILE *out,
                 struct archive *copy, uint8_t digest[32]) {
    _Alignas(16) qai_sha256_ctx c; /* base.h's ctx is a byte array; hash.c needs 8-byte alignment */
    qai_sha256_init(&c);
    uint64_t got = 0;
    uint8_t *buf = s->rbuf + READ_CHUNK; /* second half of rbuf */
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, READ_CHUNK);
        if (n == 0) break;
        if (n < 0) {
            fail(s->r, member, "%s: member '%s' is truncated or corrupt: %s", s->label, member,
                 archive_error_string(a));
            return false;
        }
        if (got + (uint64_t)n > size) {
            fail(s->r, member, "%s: member '%s' holds more than its %" PRIu64 " bytes", s->label, member, size);
            return false;
        }
        qai_sha256_update(&c, buf, (size_t)n);
        if (keep) memcpy(keep + got, buf, (size_t)n);
        if (out && fwrite(buf, 1, (size_t)n, out) != (size_t)n) {
            s->io_error = true;
            s->io_errno = errno;
            fail(s->r, member, "writing the model out: %s", strerror(errno));
            return false;
        }
        if (copy && archive_write_data(copy, buf, (size_t)n) != n) {
            s->io_error = true;
            fail(s->r, member, "copying member '%s': %s", member, archive_error_string(copy));
            return false;
        }
        got += (uint64_t)n;
    }
    if (got != size) {
        fail(s->r, member, "%s: member '%s' is truncated: %" PRIu64 " of %" PRIu64 " bytes", s->label, member, got,
             size);
        return false;
    }
    qai_sha256_final(&c, digest);
    if (keep) keep[size] = 0;
    return true;
}

static const char *entry_kind(struct archive_entry *e) {
    if (archive_entry_hardlink(e)) return "a hard link";
    switch (archive_entry_filetype(e)) {
    case AE_IFLNK: return "a symbolic link";
    case AE_IFDIR: return "a directory";
    case AE_IFCHR: return "a character device";
    case AE_IFBLK: return "a block device";
    case AE_IFIFO: return "a FIFO";
    case AE_IFSOCK: return "a socket";
    case AE_IFREG: return NULL;
    default: return "not a regular file";
    }
}

static void walk(scan *s, struct archive *a) {
    const bundle_scan_opts *o = s->o;
    qai_bundle_report *r = s->r;
    char prev[QAI_BUNDLE_MEMBER_MAX + 1] = "";
    size_t count = 0;
    for (;;) {
        struct archive_entry *e;
        int rc = archive_read_next_header(a, &e);
        if (rc == ARCHIVE_EOF) break;
        if (rc != ARCHIVE_OK) {
            if (count == 0)
                fail(r, "", "%s: not a qai bundle (a zstd-compressed tar archive): %s", s->label,
                     archive_error_string(a));
            else
                fail(r, "", "%s: the archive is truncated or corrupt after member '%s': %s", s->label, prev,
                     archive_error_string(a));
            return;
        }
        if (++count > MAX_ENTRIES + 64) {
            fail(r, "", "%s: more than %d members", s->label, MAX_ENTRIES);
            return;
        }
        const char *nm = archive_entry_pathname(e);
        if (!nm) {
            fail(r, "", "%s: member %zu has no readable name", s->label, count);
            return;
        }
        if (!bundle_member_name_ok(nm)) {
            fail(r, "", "%s: member name '%.*s' is not allowed (absolute, '..', empty or odd characters)", s->label,
                 QAI_BUNDLE_MEMBER_MAX, nm);
            return;
        }
        char member[QAI_BUNDLE_MEMBER_MAX + 1];
        snprintf(member, sizeof member, "%s", nm);
        const char *kind = entry_kind(e);
        if (kind) {
            fail(r, member, "%s: member '%s' is %s; bundles hold regular files only", s->label, member, kind);
            return;
        }
        if (archive_entry_sparse_count(e) > 0 || !archive_entry_size_is_set(e) || archive_entry_size(e) < 0) {
            fail(r, member, "%s: member '%s' is sparse or has no size", s->label, member);
            return;
        }
        uint64_t size = (uint64_t)archive_entry_size(e);
        int64_t mtime = (int64_t)archive_entry_mtime(e);
        snprintf(prev, sizeof prev, "%s", member);
        uint8_t digest[32];
        char kid[QAI_KEY_ID_HEX_BYTES];

        if (count == 1) {
            if (strcmp(member, QAI_BUNDLE_MANIFEST)) {
                fail(r, member, "%s: the first member is '%s', not manifest.json", s->label, member);
                return;
            }
            if (size > QAI_BUNDLE_MANIFEST_MAX) {
                fail(r, member, "%s: manifest.json is %" PRIu64 " bytes (at most %u)", s->label, size,
                     QAI_BUNDLE_MANIFEST_MAX);
                return;
            }
            r->manifest = qai_malloc((size_t)size + 1);
            if (!r->manifest) {
                fail(r, NULL, "out of memory");
                return;
            }
            r->manifest_len = (size_t)size;
            if (o->copy_to && bundle_write_header(o->copy_to, member, size, mtime)) {
                s->io_error = true;
                fail(r, member, "%s", qai_last_error());
                return;
            }
            if (!pump(s, a, member, size, r->manifest, NULL, o->copy_to, digest)) return;
            parse_manifest(s);
            if (!r->ok || o->manifest_only) return;
            continue;
        }
        for (size_t i = 0; i < s->nsigs; i++)
            if (!strcmp(s->sigs[i].member, member)) {
                fail(r, member, "%s: member '%s' appears twice", s->label, member);
                return;
            }
        if (!strncmp(member, "signatures/", 11)) {
            if (!bundle_sig_member_key(member, kid)) {
                fail(r, member, "%s: '%s' is not a signature name (signatures/<32 hex key id>.sig)", s->label, member);
                return;
            }
            if (size != QAI_HYBRID_SIG_BYTES) {
                fail(r, member, "%s: signature '%s' is %" PRIu64 " bytes, not %d", s->label, member, size,
                     QAI_HYBRID_SIG_BYTES);
                return;
            }
            sig_blob *nb = qai_realloc(s->sigs, (s->nsigs + 1) * sizeof *s->sigs);
            if (!nb) {
                fail(r, NULL, "out of memory");
                return;
            }
            s->sigs = nb;
            sig_blob *sb = &s->sigs[s->nsigs];
            memset(sb, 0, sizeof *sb);
            snprintf(sb->member, sizeof sb->member, "%s", member);
            sb->bytes = qai_malloc(QAI_HYBRID_SIG_BYTES + 1);
            if (!sb->bytes) {
                fail(r, NULL, "out of memory");
                return;
            }
            s->nsigs++;
            bool replaced = o->replace_key_id && !strcmp(kid, o->replace_key_id);
            struct archive *copy = replaced ? NULL : o->copy_to;
            if (copy && bundle_write_header(copy, member, size, mtime)) {
                s->io_error = true;
                fail(r, member, "%s", qai_last_error());
                return;
            }
            if (!pump(s, a, member, size, (char *)sb->bytes, NULL, copy, digest)) return;
            sb->len = (size_t)size;
            continue;
        }
        expect *x = NULL;
        for (size_t i = 0; i < s->nex; i++)
            if (!strcmp(s->ex[i].path, member)) x = &s->ex[i];
        if (!x) {
            fail(r, member, "%s: member '%s' is not listed in the manifest", s->label, member);
            return;
        }
        if (x->seen) {
            fail(r, member, "%s: member '%s' appears twice", s->label, member);
            return;
        }
        x->seen = true;
        if (size != x->size) {
            mismatch(s, member, "%s: member '%s' is %" PRIu64 " bytes in the archive but %" PRIu64 " in the manifest",
                     s->label, member, size, x->size);
            if (o->copy_to || o->model_out || o->skip_signatures) {
                fail(r, member, "%s", s->mm_problem);
                return;
            }
            if (!pump(s, a, member, size, NULL, NULL, NULL, digest)) return;
            continue;
        }
        char *keep = NULL;
        bool small = (o->flags & QAI_BUNDLE_KEEP_SMALL) && keep_small(member) && size <= QAI_BUNDLE_SMALL_MAX;
        if (small && !(keep = qai_malloc((size_t)size + 1))) {
            fail(r, NULL, "out of memory");
            return;
        }
        qai_bundle_member *nm2 = qai_realloc(r->members, (r->n_members + 1) * sizeof *r->members);
        if (!nm2) {
            qai_free(keep);
            fail(r, NULL, "out of memory");
            return;
        }
        r->members = nm2;
        qai_bundle_member *bm = &r->members[r->n_members++];
        memset(bm, 0, sizeof *bm);
        snprintf(bm->path, sizeof bm->path, "%s", member);
        bm->size = size;
        bm->data = keep;
        FILE *out = (o->model_out && !strcmp(member, r->model_member)) ? o->model_out : NULL;
        if (o->copy_to && bundle_write_header(o->copy_to, member, size, mtime)) {
            s->io_error = true;
            fail(r, member, "%s", qai_last_error());
            return;
        }
        if (!pump(s, a, member, size, keep, out, o->copy_to, digest)) return;
        qai_hex(digest, 32, bm->sha256);
        if (strcmp(bm->sha256, x->sha)) {
            mismatch(s, member, "%s: member '%s' does not match the manifest (sha256 %s, manifest says %s)", s->label,
                     member, bm->sha256, x->sha);
            if (o->copy_to || o->model_out || o->skip_signatures) {
                fail(r, member, "%s", s->mm_problem);
                return;
            }
        }
    }
    if (count == 0) {
        fail(r, "", "%s: empty archive", s->label);
        return;
    }
    for (size_t i = 0; i < s->nex; i++)
        if (!s->ex[i].seen) {
            fail(r, s->ex[i].path, "%s: member '%s' listed in the manifest is missing", s->label, s->ex[i].path);
            return;
        }
}

static void judge_signatures(scan *s) {
    qai_bundle_report *r = s->r;
    const qai_bundle_policy *pol = s->o->pol;
    size_t n_crypto_fail = 0; /* trusted, unrevoked keys whose signature does not verify over the manifest */
    const char *first_crypto_fail = NULL;
    r->sigs = qai_calloc(s->nsigs ? s->nsigs : 1, sizeof *r->sigs);
    if (!r->sigs) {
        fail(r, NULL, "out of memory");
        return;
    }
    r->n_sigs = s->nsigs;
    for (size_t i = 0; i < s->nsigs; i++) {
        qai_bundle_signature *g = &r->sigs[i];
        const sig_blob *b = &s->sigs[i];
        snprintf(g->member, sizeof g->member, "%s", b->member);
        char named[QAI_KEY_ID_HEX_BYTES];
        bundle_sig_member_key(b->member, named);
        g->state = QAI_BUNDLE_SIG_INVALID;
        if (qai_hybrid_signature_key_id(b->bytes, b->len, g->key_id) != QAI_OK) {
            g->key_id[0] = 0;
            snprintf(g->detail, sizeof g->detail, "malformed: %s", qai_last_error());
            continue;
        }
        if (strcmp(g->key_id, named)) {
            snprintf(g->detail, sizeof g->detail, "holds a signature by key %s", g->key_id);
            continue;
        }
        if (s->o->skip_signatures) {
            g->state = QAI_BUNDLE_SIG_UNTRUSTED;
            snprintf(g->detail, sizeof g->detail, "not checked");
            continue;
        }
        qai_identity *pub = NULL;
        qai_status st = qai_trust_find_key(pol, g->key_id, &pub, NULL, 0);
        if (st == QAI_ERR_NOT_FOUND) {
            g->state = QAI_BUNDLE_SIG_UNTRUSTED;
            snprintf(g->detail, sizeof g->detail, "key %s is not trusted (no public key in the trust directories)",
                     g->key_id);
            continue;
        }
        if (st) {
            snprintf(g->detail, sizeof g->detail, "trust: %s", qai_last_error());
            continue;
        }
        snprintf(g->signer, sizeof g->signer, "%s", qai_identity_name(pub));
        bool revoked = false;
        char why[160] = "";
        st = qai_trust_is_revoked(pol, g->key_id, &revoked, why, sizeof why);
        if (st) snprintf(g->detail, sizeof g->detail, "revocation check failed: %s", qai_last_error());
        else if (revoked) {
            g->state = QAI_BUNDLE_SIG_REVOKED;
            snprintf(g->detail, sizeof g->detail, "key %s is revoked%s%s", g->key_id, *why ? ": " : "", why);
        } else if (qai_hybrid_verify(pub, r->manifest, r->manifest_len, b->bytes, b->len) != QAI_OK) {
            snprintf(g->detail, sizeof g->detail, "%s", qai_last_error());
            if (!n_crypto_fail++) first_crypto_fail = g->member;
        } else {
            g->state = QAI_BUNDLE_SIG_VALID;
            snprintf(g->detail, sizeof g->detail, "valid (Ed25519 and ML-DSA-65)");
            r->n_valid++;
        }
        qai_identity_free(pub);
    }
    if (s->o->skip_signatures) return;
    /* a member differs: if a trusted signature vouches for the manifest, the
     * member was changed; if every trusted signature fails, the manifest was */
    if (s->mismatch) {
        if (r->n_valid == 0 && n_crypto_fail)
            fail(r, QAI_BUNDLE_MANIFEST,
                 "%s: manifest.json was changed after it was signed: '%s' does not verify over it, and it no longer "
                 "matches member '%s'",
                 s->label, first_crypto_fail, s->mm_member);
        else
            fail(r, s->mm_member, "%s", s->mm_problem);
        return;
    }
    if (r->n_valid == 0 && n_crypto_fail >= 2) {
        fail(r, QAI_BUNDLE_MANIFEST,
             "%s: manifest.json was changed after it was signed: none of its %zu trusted signatures verifies over it",
             s->label, n_crypto_fail);
        return;
    }
    for (size_t i = 0; i < r->n_sigs; i++) {
        const qai_bundle_signature *g = &r->sigs[i];
        if (g->state == QAI_BUNDLE_SIG_INVALID || g->state == QAI_BUNDLE_SIG_REVOKED) {
            fail(r, g->member, "%s: signature '%s' %s: %s", s->label, g->member,
                 g->state == QAI_BUNDLE_SIG_REVOKED ? "is by a revoked key"
                                                    : "is invalid (this signature or manifest.json was changed)",
                 g->detail);
            return;
        }
    }
    if (pol && pol->require_signed && r->n_valid == 0) {
        if (r->n_sigs == 0) fail(r, "", "%s: the bundle is unsigned and a signature is required", s->label);
        else
            fail(r, r->sigs[0].member, "%s: no signature by a trusted key and a signature is required: '%s': %s",
                 s->label, r->sigs[0].member, r->sigs[0].detail);
    }
}

qai_status bundle_scan(const char *path, const void *data, size_t n, const bundle_scan_opts *o, qai_bundle_report *r) {
    memset(r, 0, sizeof *r);
    r->ok = true;
    scan s = {.o = o, .r = r, .fd = -1, .label = path ? path : (o->name ? o->name : "bundle")};
    s.hash_file = (o->flags & QAI_BUNDLE_HASH_FILE) != 0;
    qai_sha256_init(&s.fh);
    s.rbuf = qai_malloc(2 * (size_t)READ_CHUNK);
    if (!s.rbuf) return QAI_ERR_NOMEM;
    qai_status st = QAI_OK;
    struct archive *a = archive_read_new();
    if (!a) {
        qai_free(s.rbuf);
        return qai_error(QAI_ERR_NOMEM, "out of memory");
    }
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    int orc;
    if (path) {
        s.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (s.fd < 0) {
            st = qai_error(QAI_ERR_IO, "cannot open bundle '%s': %s", path, strerror(errno));
            goto out;
        }
        struct stat sb;
        if (fstat(s.fd, &sb) == 0 && !S_ISREG(sb.st_mode)) {
            st = qai_error(QAI_ERR_IO, "bundle '%s' is not a regular file", path);
            goto out;
        }
        orc = archive_read_open(a, &s, NULL, read_cb, NULL);
    } else {
        if (s.hash_file) qai_sha256_update(&s.fh, data, n);
        s.fsize = n;
        orc = archive_read_open_memory(a, data, n);
    }
    if (orc != ARCHIVE_OK) {
        if (s.io_error) {
            st = qai_error(QAI_ERR_IO, "reading bundle '%s': %s", s.label, strerror(s.io_errno));
            goto out;
        }
        fail(r, "", "%s: not a qai bundle (a zstd-compressed tar archive): %s", s.label, archive_error_string(a));
    } else
        walk(&s, a);
    if (s.io_error) {
        st = qai_error(QAI_ERR_IO, "bundle '%s': %s", s.label, r->problem);
        goto out;
    }
    if (r->ok && !o->manifest_only) judge_signatures(&s);
    if (r->ok && s.mismatch) fail(r, s.mm_member, "%s", s.mm_problem); /* not decided above (e.g. sign) */
    if (path && s.hash_file) { /* the rest of the file, past what libarchive needed */
        ssize_t k;
        while ((k = read(s.fd, s.rbuf, READ_CHUNK)) > 0) {
            qai_sha256_update(&s.fh, s.rbuf, (size_t)k);
            s.fsize += (uint64_t)k;
        }
    }
    if (s.hash_file) {
        uint8_t h[32];
        qai_sha256_final(&s.fh, h);
        qai_hex(h, 32, r->bundle_sha256);
    }
    r->bundle_size = s.fsize;
out:
    archive_read_free(a);
    if (s.fd >= 0) close(s.fd);
    for (size_t i = 0; i < s.nsigs; i++) qai_free(s.sigs[i].bytes);
    qai_free(s.sigs);
    qai_free(s.ex);
    qai_free(s.rbuf);
    return st;
}

const char *qai_bundle_sig_state_name(qai_bundle_sig_state s) {
    switch (s) {
    case QAI_BUNDLE_SIG_VALID: return "valid";
    case QAI_BUNDLE_SIG_INVALID: return "invalid";
    case QAI_BUNDLE_SIG_UNTRUSTED: return "untrusted";
    case QAI_BUNDLE_SIG_REVOKED: return "revoked";
    }
    return "?";
}

qai_status qai_bundle_verify(const char *path, const qai_bundle_policy *pol, int flags, qai_bundle_report *r) {
    static const qai_bundle_policy def = {0};
    bundle_scan_opts o = {.flags = flags, .pol = pol ? pol : &def};
    return bundle_scan(path, NULL, 0, &o, r);
}

qai_status qai_bundle_verify_buffer(const void *data, size_t n, const char *name, const qai_bundle_policy *pol,
                                    int flags, qai_bundle_report *r) {
    static const qai_bundle_policy def = {.no_store = true};
    bundle_scan_opts o = {.flags = flags, .pol = pol ? pol : &def, .name = name};
    return bundle_scan(NULL, data, n, &o, r);
}

void qai_bundle_report_release(qai_bundle_report *r) {
    if (!r) return;
    qai_free(r->manifest);
    for (size_t i = 0; i < r->n_members; i++) qai_free(r->members[i].data);
    qai_free(r->members);
    qai_free(r->sigs);
    memset(r, 0, sizeof *r);
}

/* ---- sign ------------------------------------------------------------------------- */

/* The hybrid signature of a checked bundle's manifest; a damaged bundle is
 * not signed. */
static qai_status sign_report(const qai_bundle_report *r, const qai_identity *id, uint8_t sig[QAI_HYBRID_SIG_BYTES]) {
    if (!r->ok) return qai_error(QAI_ERR_FORMAT, "not signing a damaged bundle: %s", r->problem);
    return qai_hybrid_sign(id, r->manifest, r->manifest_len, sig);
}

static qai_status write_sig_member(struct archive *a, const char *member, const uint8_t *sig, int64_t mtime) {
    qai_status st = bundle_write_header(a, member, QAI_HYBRID_SIG_BYTES, mtime);
    if (!st && archive_write_data(a, sig, QAI_HYBRID_SIG_BYTES) != (la_ssize_t)QAI_HYBRID_SIG_BYTES)
        st = qai_error(QAI_ERR_IO, "writing '%s': %s", member, archive_error_string(a));
    return st;
}

/* Every entry read, checked and copied into a new archive (one pass), then the
 * signature: for bundles without an append point, and re-signatures. */
static qai_status sign_rewrite(const char *path, const qai_identity *id, const char *member, FILE *out) {
    bundle_writer *w = NULL;
    qai_status st = bundle_writer_open(&w, out, 3, path);
    if (st) return st;
    struct archive *a = bundle_writer_archive(w);
    bundle_scan_opts o = {.skip_signatures = true, .copy_to = a, .replace_key_id = qai_identity_key_id(id)};
    qai_bundle_report r;
    uint8_t sig[QAI_HYBRID_SIG_BYTES];
    st = bundle_scan(path, NULL, 0, &o, &r); /* fills r in any case */
    if (!st) st = sign_report(&r, id, sig);
    qai_bundle_report_release(&r);
    if (!st) st = write_sig_member(a, member, sig, qai_identity_created(id));
    if (st) {
        bundle_writer_abort(w);
        return st;
    }
    return bundle_writer_close(w, path);
}

/* Adds the signature by appending: the bundle is checked, then everything
 * before its last zstd frame (the archive's end) is copied as is — by the
 * kernel, without decompressing — and the signature member and a new end
 * follow. *resign: the key has signed already, nothing was written (the old
 * signature must be replaced: sign_rewrite). */
static qai_status sign_append(const char *path, int src, size_t keep, const qai_identity *id, const char *member,
                              FILE *out, bool *resign) {
    bundle_scan_opts check = {.skip_signatures = true};
    qai_bundle_report r;
    uint8_t sig[QAI_HYBRID_SIG_BYTES];
    qai_status st = bundle_scan(path, NULL, 0, &check, &r);
    *resign = false;
    if (st) {
        qai_bundle_report_release(&r);
        return st;
    }
    for (size_t i = 0; i < r.n_sigs; i++) *resign |= !strcmp(r.sigs[i].member, member);
    st = *resign ? QAI_OK : sign_report(&r, id, sig);
    qai_bundle_report_release(&r);
    if (st || *resign) return st;

    int dst = fileno(out);
    off_t in_off = 0;
    size_t left = keep;
    while (left > 0) {
        ssize_t k = copy_file_range(src, &in_off, dst, NULL, left, 0);
        if (k <= 0) break; /* not supported here, or EOF: copy by hand below */
        left -= (size_t)k;
    }
    if (left > 0) {
        uint8_t buf[1 << 16];
        while (left > 0) {
            ssize_t k = pread(src, buf, left < sizeof buf ? left : sizeof buf, in_off);
            if (k <= 0 || write(dst, buf, (size_t)k) != k)
                return qai_error(QAI_ERR_IO, "copying '%s': %s", path, k < 0 ? strerror(errno) : "short read or write");
            in_off += k;
            left -= (size_t)k;
        }
    }
    if (fseeko(out, 0, SEEK_END) != 0) return qai_error(QAI_ERR_IO, "copying '%s': %s", path, strerror(errno));
    bundle_writer *w = NULL;
    if ((st = bundle_writer_open(&w, out, 3, path))) return st;
    if ((st = write_sig_member(bundle_writer_archive(w), member, sig, qai_identity_created(id)))) {
        bundle_writer_abort(w);
        return st;
    }
    return bundle_writer_close(w, path);
}

qai_status qai_bundle_sign(const char *path, const qai_identity *id) {
    if (!id || !qai_identity_has_private(id)) return qai_error(QAI_ERR_ARG, "sign: the key's private part is needed");
    char member[64];
    snprintf(member, sizeof member, "signatures/%s.sig", qai_identity_key_id(id));
    int src = open(path, O_RDONLY | O_CLOEXEC);
    if (src < 0) return qai_error(QAI_ERR_IO, "sign: cannot open bundle '%s': %s", path, strerror(errno));
    /* the append point, when the bundle's frames allow it */
    size_t keep = 0;
    bool append = false;
    struct stat sb;
    if (fstat(src, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        void *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, src, 0);
        if (map != MAP_FAILED) {
            append = bundle_append_point(map, (size_t)sb.st_size, &keep);
            munmap(map, (size_t)sb.st_size);
        }
    }
    qai_atomic_file af;
    qai_status st = qai_atomic_open(path, &af);
    if (st) {
        close(src);
        return qai_error_wrap(st, "sign");
    }
    bool resign = false;
    st = append ? sign_append(path, src, keep, id, member, af.f, &resign) : sign_rewrite(path, id, member, af.f);
    if (!st && resign) st = sign_rewrite(path, id, member, af.f); /* nothing was written by sign_append */
    close(src);
    if (st) {
        qai_atomic_abort(&af);
        return qai_error_wrap(st, "sign '%s'", path);
    }
    if ((st = qai_atomic_commit(&af))) return qai_error_wrap(st, "sign");
    return QAI_OK;
}

/* ---- open the model inside ------------------------------------------------------------ */

static qai_status hash_matches(const char *path, const char *sha, uint64_t size, bool *match) {
    uint8_t h[32];
    uint64_t n;
    char hex[65];
    *match = false;
    qai_status st = qai_sha256_file(path, h, &n);
    if (st) return st;
    qai_hex(h, 32, hex);
    *match = n == size && !strcmp(hex, sha);
    return QAI_OK;
}

qai_status qai_bundle_open_model(const char *path, const qai_bundle_policy *pol, char *path_out, size_t cap) {
    static const qai_bundle_policy def = {0};
    if (!pol) pol = &def;
    char home[4096], cache[4200], final[4400], tmp[4400];
    qai_status st = bundle_data_dir(pol->data_dir, home, sizeof home);
    if (st) return st;
    snprintf(cache, sizeof cache, "%s/cache/models", home);
    if ((st = qai_mkdirs(cache))) return st;

    /* the model's hash names the cache file: peek at the manifest */
    bundle_scan_opts peek = {.pol = pol, .manifest_only = true};
    qai_bundle_report r;
    if ((st = bundle_scan(path, NULL, 0, &peek, &r))) return st;
    if (!r.ok) {
        st = qai_error(QAI_ERR_FORMAT, "%s", r.problem);
        qai_bundle_report_release(&r);
        return st;
    }
    char sha[65];
    snprintf(sha, sizeof sha, "%s", r.model_sha256);
    uint64_t size = r.model_size;
    qai_bundle_report_release(&r);
    snprintf(final, sizeof final, "%s/%s.gguf", cache, sha);

    bool cached = false;
    if (access(final, F_OK) == 0 && (st = hash_matches(final, sha, size, &cached))) return st;
    FILE *out = NULL;
    if (!cached) {
        snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", cache, sha);
        int fd = mkstemp(tmp);
        if (fd < 0) return qai_error(QAI_ERR_IO, "cannot create a file in '%s': %s", cache, strerror(errno));
        fchmod(fd, 0644);
        out = fdopen(fd, "wb");
        if (!out) {
            close(fd);
            unlink(tmp);
            return qai_error(QAI_ERR_IO, "cannot open a stream in '%s'", cache);
        }
    }
    bundle_scan_opts o = {.pol = pol, .model_out = out};
    st = bundle_scan(path, NULL, 0, &o, &r);
    if (!st && !r.ok) st = qai_error(QAI_ERR_FORMAT, "%s", r.problem);
    if (!st && strcmp(r.model_sha256, sha)) st = qai_error(QAI_ERR_FORMAT, "bundle '%s' changed while opening", path);
    qai_bundle_report_release(&r);
    if (out) {
        if (!st && (fflush(out) != 0 || fsync(fileno(out)) != 0))
            st = qai_error(QAI_ERR_IO, "writing '%s': %s", tmp, strerror(errno));
        if (fclose(out) != 0 && !st) st = qai_error(QAI_ERR_IO, "writing '%s': %s", tmp, strerror(errno));
        if (!st && rename(tmp, final) != 0) st = qai_error(QAI_ERR_IO, "cannot rename into '%s': %s", final, strerror(errno));
        if (st) unlink(tmp);
        else bundle_fsync_dir(cache);
    }
    if (st) return st;
    if ((size_t)snprintf(path_out, cap, "%s", final) >= cap) return qai_error(QAI_ERR_RANGE, "model path too long");
    return QAI_OK;
}
