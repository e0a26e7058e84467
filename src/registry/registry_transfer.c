/* Air-gapped transfer: export chosen bundles with the public keys that signed
 * them and the revocations known here, under an index that lists every file's
 * SHA-256 (and may be signed); import checks all of it before adding anything.
 *
 * Export folder layout:
 *     index.json              {"format": "qai-export", "version": 1, "created",
 *                              "models": [{"name", "version", "bundle", "bundle_sha256"}],
 *                              "files": [{"path", "sha256", "size"}]}
 *     index.json.sig          optional hybrid signature of index.json's bytes
 *     bundles/NAME/VERSION.qai
 *     keys/<keyid>.pub        public keys of the signers
 *     keys/revoked.txt        revocation list (format in qai/bundle.h)
 *
 * What it deliberately does not do: trust anything it carries by itself. The
 * index must be vouched for — signed by a key the importing side already
 * trusts, or its SHA-256 given by the operator — before the keys inside count. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry/bundle_internal.h"

#define INDEX_NAME "index.json"
#define INDEX_SIG "index.json.sig"
#define INDEX_MAX (16u << 20)
#define MAX_FILES 100000

/* ---- small helpers ------------------------------------------------------------------------ */

static qai_status copy_file_atomic(const char *src, const char *dst, char sha_out[65], uint64_t *size_out) {
    FILE *in = fopen(src, "rb");
    if (!in) return qai_error(QAI_ERR_IO, "cannot open '%s': %s", src, strerror(errno));
    qai_atomic_file af;
    qai_status st = qai_atomic_open(dst, &af);
    if (st) {
        fclose(in);
        return st;
    }
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = qai_malloc(CHUNK);
    _Alignas(16) qai_sha256_ctx c; /* base.h's ctx is a byte array; hash.c needs 8-byte alignment */
    qai_sha256_init(&c);
    uint64_t total = 0;
    if (!buf) st = QAI_ERR_NOMEM;
    size_t n;
    while (!st && (n = fread(buf, 1, CHUNK, in)) > 0) {
        qai_sha256_update(&c, buf, n);
        total += n;
        if (fwrite(buf, 1, n, af.f) != n) st = qai_error(QAI_ERR_IO, "writing '%s': %s", dst, strerror(errno));
    }
    if (!st && ferror(in)) st = qai_error(QAI_ERR_IO, "reading '%s'", src);
    fclose(in);
    qai_free(buf);
    if (st) {
        qai_atomic_abort(&af);
        return st;
    }
    if ((st = qai_atomic_commit(&af))) return st;
    uint8_t h[32];
    qai_sha256_final(&c, h);
    if (sha_out) qai_hex(h, 32, sha_out);
    if (size_out) *size_out = total;
    return QAI_OK;
}

static qai_status write_atomic(const char *path, const void *data, size_t n) {
    qai_atomic_file af;
    qai_status st = qai_atomic_open(path, &af);
    if (st) return st;
    if (n && fwrite(data, 1, n, af.f) != n) {
        qai_atomic_abort(&af);
        return qai_error(QAI_ERR_IO, "writing '%s': %s", path, strerror(errno));
    }
    return qai_atomic_commit(&af);
}

static bool add_file(cJSON *files, const char *rel, const char *sha, uint64_t size) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return false;
    cJSON_AddStringToObject(o, "path", rel);
    cJSON_AddStringToObject(o, "sha256", sha);
    cJSON_AddNumberToObject(o, "size", (double)size);
    return cJSON_AddItemToArray(files, o);
}

/* Collects revocations (key id + line) without duplicates. */
typedef struct {
    char (*ids)[QAI_KEY_ID_HEX_BYTES];
    char **lines;
    size_t n, cap;
    bool oom;
} revset;

static bool revset_has(const revset *r, const char *kid) {
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->ids[i], kid)) return true;
    return false;
}

static void revset_add(void *user, const char *kid, int64_t at, const char *reason) {
    revset *r = user;
    if (r->oom || revset_has(r, kid)) return;
    if (r->n == r->cap) {
        size_t nc = r->cap ? 2 * r->cap : 16;
        void *a = qai_realloc(r->ids, nc * sizeof *r->ids), *b = a ? qai_realloc(r->lines, nc * sizeof *r->lines) : NULL;
        if (a) r->ids = a;
        if (!a || !b) {
            r->oom = true;
            return;
        }
        r->lines = b;
        r->cap = nc;
    }
    char line[512];
    snprintf(line, sizeof line, "%s %" PRId64 "%s%.400s\n", kid, at, *reason ? " " : "", reason);
    r->lines[r->n] = qai_strdup(line);
    if (!r->lines[r->n]) {
        r->oom = true;
        return;
    }
    snprintf(r->ids[r->n], QAI_KEY_ID_HEX_BYTES, "%s", kid);
    r->n++;
}

static void revset_free(revset *r) {
    for (size_t i = 0; i < r->n; i++) qai_free(r->lines[i]);
    qai_free(r->lines);
    qai_free(r->ids);
}

static qai_status revset_load_file(revset *r, const char *path) {
    if (access(path, F_OK) != 0) return QAI_OK;
    char *text;
    size_t n;
    qai_status st = qai_file_read(path, &text, &n);
    if (st) return st;
    st = qai_revocations_parse(text, n, path, revset_add, r);
    qai_free(text);
    if (!st && r->oom) st = QAI_ERR_NOMEM;
    return st;
}

static char *revset_text(const revset *r, size_t *len) {
    static const char head[] = "# qai revocation list: <key id> <revoked at, Unix seconds> [reason]\n";
    size_t n = sizeof head - 1;
    for (size_t i = 0; i < r->n; i++) n += strlen(r->lines[i]);
    char *t = qai_malloc(n + 1);
    if (!t) return NULL;
    memcpy(t, head, sizeof head - 1);
    size_t o = sizeof head - 1;
    for (size_t i = 0; i < r->n; i++) {
        size_t l = strlen(r->lines[i]);
        memcpy(t + o, r->lines[i], l);
        o += l;
    }
    t[o] = 0;
    *len = o;
    return t;
}

static bool dir_empty_or_missing(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT;
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) empty = false;
    closedir(d);
    return empty;
}

/* ---- export ---------------------------------------------------------------------------------- */

qai_status qai_registry_export(qai_store *s, const char *data_dir, const char *dir, const char *const *refs,
                               size_t n_refs, const qai_identity *signer, char index_sha256[65]) {
    char home[2048];
    qai_status st = bundle_data_dir(data_dir, home, sizeof home);
    if (st) return st;
    if ((st = qai_registry_recover(s, data_dir))) return st;
    if (!dir_empty_or_missing(dir))
        return qai_error(QAI_ERR_ARG, "'%s' is not empty; export into a new or empty folder", dir);

    /* which versions */
    qai_model_version *all = NULL;
    size_t nall = 0, nsel = 0;
    if ((st = qai_model_version_list(s, NULL, &all, &nall))) return st;
    bool *pick = qai_calloc(nall ? nall : 1, sizeof *pick);
    if (!pick) {
        qai_free(all);
        return QAI_ERR_NOMEM;
    }
    for (size_t r = 0; r < n_refs; r++) {
        const char *at = strchr(refs[r], '@');
        size_t nl = at ? (size_t)(at - refs[r]) : strlen(refs[r]);
        bool any = false;
        for (size_t i = 0; i < nall; i++)
            if (strlen(all[i].name) == nl && !strncmp(all[i].name, refs[r], nl) && (!at || !strcmp(all[i].version, at + 1))) {
                pick[i] = true;
                any = true;
            }
        if (!any) {
            qai_free(pick);
            qai_free(all);
            return qai_error(QAI_ERR_NOT_FOUND, "no model version '%s' in the registry", refs[r]);
        }
    }
    cJSON *root = cJSON_CreateObject(), *models = NULL, *files = NULL;
    char ts[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!root || !cJSON_AddStringToObject(root, "format", "qai-export") || !cJSON_AddNumberToObject(root, "version", 1) ||
        !cJSON_AddStringToObject(root, "created", ts) || !(models = cJSON_AddArrayToObject(root, "models")) ||
        !(files = cJSON_AddArrayToObject(root, "files")))
        st = QAI_ERR_NOMEM;
    char p[4600], rel[512], sha[65], keysdir[2400];
    uint64_t size;
    snprintf(keysdir, sizeof keysdir, "%s/keys", dir);
    if (!st) st = qai_mkdirs(keysdir);
    char (*kids)[QAI_KEY_ID_HEX_BYTES] = NULL;
    size_t nkids = 0;
    for (size_t i = 0; !st && i < nall; i++) {
        if (n_refs && !pick[i]) continue;
        const qai_model_version *v = &all[i];
        if (!v->uri || !v->bundle_sha256) continue; /* recorded without a bundle: nothing to carry */
        if (!bundle_ident_ok(v->name) || !bundle_ident_ok(v->version)) {
            /* not pushed from a bundle (names are checked at push): never build paths from it */
            st = qai_error(QAI_ERR_FORMAT, "model version '%s@%s' has a name that cannot be a file name", v->name,
                           v->version);
            break;
        }
        snprintf(rel, sizeof rel, "bundles/%s/%s.qai", v->name, v->version);
        snprintf(p, sizeof p, "%s/bundles/%s", dir, v->name);
        if ((st = qai_mkdirs(p))) break;
        snprintf(p, sizeof p, "%s/%s", dir, rel);
        if ((st = copy_file_atomic(v->uri, p, sha, &size))) break;
        if (strcmp(sha, v->bundle_sha256)) {
            st = qai_error(QAI_ERR_FORMAT, "the registry's copy of %s@%s ('%s') no longer matches its record",
                           v->name, v->version, v->uri);
            break;
        }
        add_file(files, rel, sha, size);
        cJSON *mo = cJSON_CreateObject();
        cJSON_AddStringToObject(mo, "name", v->name);
        cJSON_AddStringToObject(mo, "version", v->version);
        cJSON_AddStringToObject(mo, "bundle", rel);
        cJSON_AddStringToObject(mo, "bundle_sha256", sha);
        cJSON_AddItemToArray(models, mo);
        nsel++;
        char **sk = NULL;
        size_t nsk = 0;
        if ((st = qai_model_signature_list(s, v->id, &sk, &nsk))) break;
        for (size_t k = 0; !st && k < nsk; k++) {
            bool seen = false;
            for (size_t q = 0; q < nkids; q++) seen |= !strcmp(kids[q], sk[k]);
            if (seen) continue;
            void *nk = qai_realloc(kids, (nkids + 1) * sizeof *kids);
            if (!nk) {
                st = QAI_ERR_NOMEM;
                break;
            }
            kids = nk;
            snprintf(kids[nkids++], QAI_KEY_ID_HEX_BYTES, "%s", sk[k]);
        }
        qai_free(sk);
    }
    /* the signers' public keys, as the store recorded them at push */
    for (size_t k = 0; !st && k < nkids; k++) {
        qai_signing_key *key = NULL;
        if ((st = qai_signing_key_get(s, kids[k], &key))) break;
        qai_identity *id = NULL;
        st = qai_identity_parse(key->public_key, key->public_key_len, kids[k], NULL, &id);
        if (!st && strcmp(qai_identity_key_id(id), kids[k]))
            st = qai_error(QAI_ERR_FORMAT, "the stored public key of %s has another key id", kids[k]);
        if (!st) {
            uint8_t pub[QAI_PUBKEY_FILE_BYTES];
            qai_identity_public_bytes(id, pub);
            snprintf(rel, sizeof rel, "keys/%s.pub", kids[k]);
            snprintf(p, sizeof p, "%s/%s", dir, rel);
            if (!(st = write_atomic(p, pub, sizeof pub))) {
                uint8_t h[32];
                qai_sha256(pub, sizeof pub, h);
                qai_hex(h, 32, sha);
                add_file(files, rel, sha, sizeof pub);
            }
        }
        qai_identity_free(id);
        qai_free(key);
    }
    /* revocations: the store's and the trust folders' */
    revset rs = {0};
    if (!st) {
        qai_signing_key *sk = NULL;
        size_t nsk = 0;
        if (!(st = qai_signing_key_list(s, &sk, &nsk))) {
            for (size_t k = 0; k < nsk; k++)
                if (sk[k].revoked_ms) revset_add(&rs, sk[k].key_id, sk[k].revoked_ms / 1000, sk[k].revoke_reason ? sk[k].revoke_reason : "");
            qai_free(sk);
        }
        snprintf(p, sizeof p, "%s/trust/revoked.txt", home);
        if (!st) st = revset_load_file(&rs, p);
        snprintf(p, sizeof p, "%s/keys/revoked.txt", home);
        if (!st) st = revset_load_file(&rs, p);
        if (!st && rs.oom) st = QAI_ERR_NOMEM;
    }
    if (!st) {
        size_t len;
        char *t = revset_text(&rs, &len);
        if (!t) st = QAI_ERR_NOMEM;
        snprintf(p, sizeof p, "%s/keys/revoked.txt", dir);
        if (!st && !(st = write_atomic(p, t, len))) {
            uint8_t h[32];
            qai_sha256(t, len, h);
            qai_hex(h, 32, sha);
            add_file(files, "keys/revoked.txt", sha, len);
        }
        qai_free(t);
    }
    revset_free(&rs);
    qai_free(kids);
    /* the index, and its signature */
    if (!st && n_refs && !nsel) st = qai_error(QAI_ERR_NOT_FOUND, "the chosen versions have no bundles");
    char *text = !st ? cJSON_Print(root) : NULL;
    if (!st && !text) st = QAI_ERR_NOMEM;
    if (!st) {
        size_t len = strlen(text);
        snprintf(p, sizeof p, "%s/" INDEX_NAME, dir);
        st = write_atomic(p, text, len);
        uint8_t h[32];
        qai_sha256(text, len, h);
        if (index_sha256) qai_hex(h, 32, index_sha256);
        if (!st && signer) {
            uint8_t sig[QAI_HYBRID_SIG_BYTES];
            snprintf(p, sizeof p, "%s/" INDEX_SIG, dir);
            st = qai_hybrid_sign(signer, text, len, sig);
            if (!st) st = write_atomic(p, sig, sizeof sig);
        }
    }
    if (text) cJSON_free(text);
    cJSON_Delete(root);
    qai_free(pick);
    qai_free(all);
    if (!st) bundle_fsync_dir(dir);
    return st;
}

/* ---- import ------------------------------------------------------------------------------------ */

typedef struct {
    char path[QAI_BUNDLE_MEMBER_MAX + 1];
    char sha[65];
    uint64_t size;
} listed;

/* Every file under dir (relative names) must be in the list or be the index;
 * no links, devices or other oddities anywhere. */
static qai_status check_tree(const char *root, const char *rel, const listed *l, size_t nl, int depth) {
    char p[4600];
    snprintf(p, sizeof p, "%s%s%s", root, *rel ? "/" : "", rel);
    if (depth > 8) return qai_error(QAI_ERR_FORMAT, "'%s' is nested too deep", p);
    DIR *d = opendir(p);
    if (!d) return qai_error(QAI_ERR_IO, "cannot read '%s': %s", p, strerror(errno));
    qai_status st = QAI_OK;
    struct dirent *de;
    while (!st && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char r2[600], full[4800];
        snprintf(r2, sizeof r2, "%s%s%.255s", rel, *rel ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", root, r2);
        struct stat sb;
        if (lstat(full, &sb) != 0) {
            st = qai_error(QAI_ERR_IO, "cannot stat '%s': %s", full, strerror(errno));
            break;
        }
        if (S_ISDIR(sb.st_mode)) {
            st = check_tree(root, r2, l, nl, depth + 1);
            continue;
        }
        if (!S_ISREG(sb.st_mode)) {
            st = qai_error(QAI_ERR_FORMAT, "'%s' is not a regular file (links are refused)", full);
            break;
        }
        if (!*rel && (!strcmp(de->d_name, INDEX_NAME) || !strcmp(de->d_name, INDEX_SIG))) continue;
        bool ok = false;
        for (size_t i = 0; i < nl && !ok; i++) ok = !strcmp(l[i].path, r2);
        if (!ok) st = qai_error(QAI_ERR_FORMAT, "'%s' is not listed in the index", full);
    }
    closedir(d);
    return st;
}

qai_status qai_registry_import(qai_store *s, const char *data_dir, const char *dir, const qai_bundle_policy *pol,
                               const char *expect_index_sha256, size_t *n_imported) {
    if (n_imported) *n_imported = 0;
    qai_bundle_policy def = {.data_dir = data_dir};
    if (!pol) pol = &def;
    char home[2048], p[4600], keysdir[2400];
    qai_status st = bundle_data_dir(data_dir, home, sizeof home);
    if (st) return st;
    if ((st = qai_registry_recover(s, data_dir))) return st;

    /* 1. the index, vouched for */
    snprintf(p, sizeof p, "%s/" INDEX_NAME, dir);
    char *text = NULL;
    size_t tn = 0;
    struct stat sb;
    if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode))
        return qai_error(QAI_ERR_FORMAT, "'%s' is missing or not a regular file", p);
    if ((size_t)sb.st_size > INDEX_MAX) return qai_error(QAI_ERR_FORMAT, "'%s' is too large", p);
    if ((st = qai_file_read(p, &text, &tn))) return st;
    uint8_t h[32];
    char index_sha[65];
    qai_sha256(text, tn, h);
    qai_hex(h, 32, index_sha);
    bool vouched = false;
    char how[256] = "";
    if (expect_index_sha256) {
        if (strcmp(expect_index_sha256, index_sha)) {
            qai_free(text);
            return qai_error(QAI_ERR_FORMAT, "'%s' has sha256 %s, not the expected %s", p, index_sha,
                             expect_index_sha256);
        }
        vouched = true;
        snprintf(how, sizeof how, "its sha256 matched");
    }
    snprintf(p, sizeof p, "%s/" INDEX_SIG, dir);
    if (lstat(p, &sb) == 0) {
        char *sig = NULL;
        size_t sn = 0;
        char kid[QAI_KEY_ID_HEX_BYTES];
        qai_identity *pub = NULL;
        bool revoked = false;
        if (!S_ISREG(sb.st_mode) || (size_t)sb.st_size != QAI_HYBRID_SIG_BYTES)
            st = qai_error(QAI_ERR_FORMAT, "'%s' is not a %d-byte signature file", p, QAI_HYBRID_SIG_BYTES);
        if (!st) st = qai_file_read(p, &sig, &sn);
        if (!st) st = qai_hybrid_signature_key_id((const uint8_t *)sig, sn, kid);
        if (!st) {
            qai_status fs = qai_trust_find_key(pol, kid, &pub, NULL, 0);
            if (fs == QAI_OK) {
                if (!(st = qai_trust_is_revoked(pol, kid, &revoked, NULL, 0)) && revoked)
                    st = qai_error(QAI_ERR_FORMAT, "the index is signed by revoked key %s", kid);
                if (!st && (st = qai_hybrid_verify(pub, text, tn, (const uint8_t *)sig, sn)))
                    st = qai_error_wrap(st, "the index signature '%s'", p);
                if (!st) {
                    vouched = true;
                    snprintf(how, sizeof how, "signed by trusted key %s (%s)", kid, qai_identity_name(pub));
                }
            } else if (fs != QAI_ERR_NOT_FOUND)
                st = fs;
            else if (!vouched)
                st = qai_error(QAI_ERR_FORMAT,
                               "the index is signed by key %s, which is not trusted here; trust its public "
                               "key or give --index-sha256",
                               kid);
        }
        qai_identity_free(pub);
        qai_free(sig);
        if (st) {
            qai_free(text);
            return st;
        }
    }
    if (!vouched) {
        qai_free(text);
        return qai_error(QAI_ERR_FORMAT,
                         "the index of '%s' is neither signed by a trusted key nor matched by --index-sha256 "
                         "(export prints its sha256: %s here)",
                         dir, index_sha);
    }
    qai_log(QAI_LOG_INFO, "index %s", how);

    /* 2. the listed files */
    size_t off;
    cJSON *idx = bundle_json_parse(text, tn, &off);
    qai_free(text);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(idx, "format");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(idx, "files");
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(idx, "models");
    if (!idx || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, "qai-export") || !cJSON_IsArray(files) ||
        !cJSON_IsArray(models) || cJSON_GetArraySize(files) > MAX_FILES) {
        cJSON_Delete(idx);
        return qai_error(QAI_ERR_FORMAT, "'%s/" INDEX_NAME "' is not a qai export index", dir);
    }
    size_t nl = (size_t)cJSON_GetArraySize(files), k = 0;
    listed *l = qai_calloc(nl ? nl : 1, sizeof *l);
    if (!l) {
        cJSON_Delete(idx);
        return QAI_ERR_NOMEM;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, files) {
        const cJSON *fp = cJSON_GetObjectItemCaseSensitive(e, "path"), *fh = cJSON_GetObjectItemCaseSensitive(e, "sha256");
        const cJSON *fs = cJSON_GetObjectItemCaseSensitive(e, "size");
        char kid[QAI_KEY_ID_HEX_BYTES];
        bool ok = cJSON_IsString(fp) && cJSON_IsString(fh) && bundle_hex64_ok(fh->valuestring) && cJSON_IsNumber(fs) &&
                  fs->valuedouble >= 0 && bundle_member_name_ok(fp->valuestring);
        if (ok) {
            const char *fpv = fp->valuestring;
            size_t fl = strlen(fpv);
            bool is_key = !strncmp(fpv, "keys/", 5) && fl == 5 + 32 + 4 && !strcmp(fpv + fl - 4, ".pub");
            if (is_key) {
                char tmpname[64];
                snprintf(tmpname, sizeof tmpname, "signatures/%.32s.sig", fpv + 5);
                is_key = bundle_sig_member_key(tmpname, kid);
            }
            ok = is_key || !strcmp(fpv, "keys/revoked.txt") ||
                 (!strncmp(fpv, "bundles/", 8) && fl > 4 && !strcmp(fpv + fl - 4, ".qai"));
        }
        for (size_t q = 0; ok && q < k; q++) ok = strcmp(l[q].path, fp->valuestring) != 0;
        if (!ok) {
            st = qai_error(QAI_ERR_FORMAT, "index files[%zu] is malformed, duplicated or names an unexpected file",
                           k);
            break;
        }
        snprintf(l[k].path, sizeof l[k].path, "%s", fp->valuestring);
        snprintf(l[k].sha, sizeof l[k].sha, "%s", fh->valuestring);
        l[k].size = (uint64_t)fs->valuedouble;
        k++;
    }
    if (!st) st = check_tree(dir, "", l, k, 0);
    for (size_t i = 0; !st && i < k; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, l[i].path);
        uint8_t fh[32];
        uint64_t fsz;
        char hex[65];
        if ((st = qai_sha256_file(p, fh, &fsz))) break;
        qai_hex(fh, 32, hex);
        if (fsz != l[i].size || strcmp(hex, l[i].sha))
            st = qai_error(QAI_ERR_FORMAT, "'%s' does not match the index (sha256 %s, size %" PRIu64 ")", p, hex,
                           fsz);
    }
    /* 3. the keys and revocations it carries */
    snprintf(keysdir, sizeof keysdir, "%s/keys", dir);
    revset rs = {0};
    for (size_t i = 0; !st && i < k; i++) {
        if (strncmp(l[i].path, "keys/", 5)) continue;
        snprintf(p, sizeof p, "%s/%s", dir, l[i].path);
        if (!strcmp(l[i].path, "keys/revoked.txt")) {
            st = revset_load_file(&rs, p);
            continue;
        }
        qai_identity *id = NULL;
        if (!(st = qai_identity_load_public(p, &id)) && strncmp(l[i].path + 5, qai_identity_key_id(id), 32))
            st = qai_error(QAI_ERR_FORMAT, "'%s' holds the key %s", p, qai_identity_key_id(id));
        qai_identity_free(id);
    }
    /* 4. every bundle verifies, under the trust here plus the carried keys */
    const char *extra[1] = {keysdir};
    qai_bundle_policy vp = *pol;
    vp.extra_trust_dirs = extra;
    vp.n_extra_trust_dirs = 1;
    size_t nm = (size_t)cJSON_GetArraySize(models), mi = 0;
    bool *skip = qai_calloc(nm ? nm : 1, sizeof *skip);
    if (!skip && !st) st = QAI_ERR_NOMEM;
    cJSON_ArrayForEach(e, models) {
        if (st) break;
        const char *mname = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "name"));
        const char *mver = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "version"));
        const char *mb = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "bundle"));
        const char *msha = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "bundle_sha256"));
        bool found = false;
        for (size_t i = 0; mb && i < k; i++) found |= !strcmp(l[i].path, mb) && msha && !strcmp(l[i].sha, msha);
        if (!mname || !mver || !found) {
            st = qai_error(QAI_ERR_FORMAT, "index models[%zu] is malformed or names an unlisted bundle", mi);
            break;
        }
        snprintf(p, sizeof p, "%s/%s", dir, mb);
        qai_bundle_report r;
        if ((st = qai_bundle_verify(p, &vp, 0, &r))) {
            qai_bundle_report_release(&r);
            break;
        }
        if (!r.ok) st = qai_error(QAI_ERR_FORMAT, "%s", r.problem);
        else if (strcmp(r.name, mname) || strcmp(r.version, mver))
            st = qai_error(QAI_ERR_FORMAT, "'%s' holds %s@%s, the index says %s@%s", p, r.name, r.version, mname,
                           mver);
        for (size_t g = 0; !st && g < r.n_sigs; g++) /* revoked per the carried list, too */
            if (revset_has(&rs, r.sigs[g].key_id))
                st = qai_error(QAI_ERR_FORMAT, "'%s' is signed by revoked key %s", p, r.sigs[g].key_id);
        qai_bundle_report_release(&r);
        /* conflicts with what is here */
        qai_model_version *have = NULL;
        if (!st && qai_model_version_get(s, mname, mver, &have) == QAI_OK) {
            if (!have->bundle_sha256 || strcmp(have->bundle_sha256, msha))
                st = qai_error(QAI_ERR_ARG, "%s@%s already exists here with a different bundle", mname, mver);
            else skip[mi] = true;
        }
        qai_free(have);
        mi++;
    }
    /* 5. add: keys, revocations, bundles */
    char trust[2200];
    snprintf(trust, sizeof trust, "%s/trust", home);
    if (!st) st = qai_mkdirs(trust);
    for (size_t i = 0; !st && i < k; i++) {
        if (strncmp(l[i].path, "keys/", 5) || !strcmp(l[i].path, "keys/revoked.txt")) continue;
        char dst[4600];
        snprintf(p, sizeof p, "%s/%s", dir, l[i].path);
        snprintf(dst, sizeof dst, "%s/%s", trust, l[i].path + 5);
        if (access(dst, F_OK) != 0) st = copy_file_atomic(p, dst, NULL, NULL);
    }
    if (!st && rs.n) {
        revset here = {0};
        snprintf(p, sizeof p, "%s/revoked.txt", trust);
        st = revset_load_file(&here, p);
        for (size_t i = 0; !st && i < rs.n; i++) {
            /* re-parse the carried line to add it with its time and reason */
            if (qai_revocations_parse(rs.lines[i], strlen(rs.lines[i]), "carried", revset_add, &here)) st = QAI_ERR_FORMAT;
        }
        if (!st && here.oom) st = QAI_ERR_NOMEM;
        if (!st) {
            size_t len;
            char *t = revset_text(&here, &len);
            st = t ? write_atomic(p, t, len) : QAI_ERR_NOMEM;
            qai_free(t);
        }
        revset_free(&here);
    }
    const char *extra2[1] = {trust};
    qai_bundle_policy pp = *pol;
    if (pol->trust_dir) { /* the keys just copied count, whatever the policy's folder */
        pp.extra_trust_dirs = extra2;
        pp.n_extra_trust_dirs = 1;
    }
    mi = 0;
    cJSON_ArrayForEach(e, models) {
        if (st) break;
        if (!skip[mi++]) {
            snprintf(p, sizeof p, "%s/%s", dir, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "bundle")));
            qai_registry_push_result res;
            if ((st = qai_registry_push(s, data_dir, p, &pp, &res))) break;
            if (n_imported && !res.already_present) (*n_imported)++;
        }
    }
    revset_free(&rs);
    qai_free(skip);
    qai_free(l);
    cJSON_Delete(idx);
    return st;
}
