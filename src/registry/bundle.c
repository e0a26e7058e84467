/* Bundle creation: hash and validate the inputs, build the ModelBundle
 * manifest, write manifest + members as a zstd-compressed pax archive
 * through libarchive, atomically. Also the name rules shared with the reader
 * and the model card check.
 *
 * What it deliberately does not do: read bundles (bundle_read.c), judge
 * signatures (bundle_trust.c), or touch the store (registry.c). */
#include <archive.h>
#include <archive_entry.h>
#include <zstd.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "qai/data.h"
#include "qai/gguf.h"
#include "qai/tensor.h"
#include "registry/bundle_internal.h"

#define COPY_CHUNK (1u << 20)

/* ---- names ----------------------------------------------------------------------- */

bool bundle_member_name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > QAI_BUNDLE_MEMBER_MAX || name[0] == '/' || name[n - 1] == '/') return false;
    const char *comp = name;
    for (size_t i = 0; i <= n; i++) {
        char c = name[i];
        if (c == '/' || c == 0) {
            size_t len = (size_t)(name + i - comp);
            if (len == 0 || (len == 1 && comp[0] == '.') || (len == 2 && comp[0] == '.' && comp[1] == '.'))
                return false;
            comp = name + i + 1;
            continue;
        }
        if (!(isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '@')) return false;
    }
    return true;
}

bool bundle_ident_ok(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > QAI_BUNDLE_NAME_MAX || s[0] == '.' || s[0] == '-') return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '-')) return false;
    return true;
}

bool bundle_hex64_ok(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

bool bundle_sig_member_key(const char *name, char kid[QAI_KEY_ID_HEX_BYTES]) {
    static const char pre[] = "signatures/";
    size_t np = sizeof pre - 1;
    if (strncmp(name, pre, np) || strlen(name) != np + 32 + 4 || strcmp(name + np + 32, ".sig")) return false;
    for (int i = 0; i < 32; i++) {
        char c = name[np + (size_t)i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        kid[i] = c;
    }
    kid[32] = 0;
    return true;
}

bool qai_bundle_path_is_bundle(const char *path) {
    size_t n = path ? strlen(path) : 0;
    return n > 4 && !strcmp(path + n - 4, ".qai");
}

qai_status bundle_data_dir(const char *override, char *out, size_t cap) {
    qai_status st = qai_home_dir(override && *override ? override : NULL, out, cap);
    if (st) return st;
    /* absolute, so paths recorded in the store stay valid from any folder */
    char abs[PATH_MAX];
    if (realpath(out, abs) && strlen(abs) < cap) strcpy(out, abs);
    return QAI_OK;
}

void *bundle_json_parse(const char *text, size_t n, size_t *err_off) {
    *err_off = 0;
    const char *nul = memchr(text, 0, n);
    if (nul) {
        *err_off = (size_t)(nul - text);
        return NULL;
    }
    /* n + 1: cJSON's length-limited parse cannot see the end of a buffer
     * that ends in whitespace, but it can see the terminating NUL */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n + 1, &end, 1);
    if (!j) *err_off = end && end >= text ? (size_t)(end - text) : 0;
    return j;
}

void bundle_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* ---- archive writing ----------------------------------------------------------------- */

qai_status bundle_write_header(struct archive *a, const char *name, uint64_t size, int64_t mtime) {
    struct archive_entry *e = archive_entry_new();
    if (!e) return qai_error(QAI_ERR_NOMEM, "out of memory");
    archive_entry_set_pathname(e, name);
    archive_entry_set_size(e, (la_int64_t)size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, (time_t)mtime, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    int rc = archive_write_header(a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK) return qai_error(QAI_ERR_IO, "member '%s': %s", name, archive_error_string(a));
    return QAI_OK;
}

#define TAR_END_BYTES 1024

struct bundle_writer {
    struct archive *a;
    FILE *f;
    ZSTD_CCtx *cc;
    uint8_t *out;
    size_t out_cap;
    bool in_frame; /* bytes went into the current frame since it was last ended */
};

static bool zw_emit(bundle_writer *w, ZSTD_inBuffer *in, ZSTD_EndDirective mode) {
    for (;;) {
        ZSTD_outBuffer o = {w->out, w->out_cap, 0};
        size_t left = ZSTD_compressStream2(w->cc, &o, in, mode);
        if (ZSTD_isError(left)) {
            archive_set_error(w->a, EIO, "zstd: %s", ZSTD_getErrorName(left));
            return false;
        }
        if (o.pos && fwrite(w->out, 1, o.pos, w->f) != o.pos) {
            archive_set_error(w->a, errno ? errno : EIO, "write failed");
            return false;
        }
        if (mode == ZSTD_e_continue ? in->pos == in->size : left == 0) return true;
    }
}

static la_ssize_t zw_write(struct archive *a, void *user, const void *buf, size_t n) {
    (void)a;
    bundle_writer *w = user;
    ZSTD_inBuffer in = {buf, n, 0};
    if (!zw_emit(w, &in, ZSTD_e_continue)) return -1;
    w->in_frame = true;
    return (la_ssize_t)n;
}

static bool zw_end_frame(bundle_writer *w) {
    if (!w->in_frame) return true;
    ZSTD_inBuffer in = {NULL, 0, 0};
    w->in_frame = false;
    return zw_emit(w, &in, ZSTD_e_end);
}

static int zw_close(struct archive *a, void *user) {
    (void)a;
    return zw_end_frame(user) ? ARCHIVE_OK : ARCHIVE_FATAL;
}

qai_status bundle_writer_open(bundle_writer **out, FILE *f, int level, const char *what) {
    *out = NULL;
    bundle_writer *w = qai_calloc(1, sizeof *w);
    if (!w) return qai_error(QAI_ERR_NOMEM, "out of memory");
    w->f = f;
    w->cc = ZSTD_createCCtx();
    w->out_cap = ZSTD_CStreamOutSize();
    w->out = qai_malloc(w->out_cap);
    w->a = archive_write_new();
    if (!w->cc || !w->out || !w->a) {
        bundle_writer_abort(w);
        return qai_error(QAI_ERR_NOMEM, "out of memory");
    }
    ZSTD_CCtx_setParameter(w->cc, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(w->cc, ZSTD_c_checksumFlag, 1);
    /* no blocking: the archive's bytes reach zw_write as they are made, so
     * the end written by archive_write_close lands in a frame of its own */
    if (archive_write_set_format_pax_restricted(w->a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(w->a, 0) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(w->a, 1) != ARCHIVE_OK ||
        archive_write_open(w->a, w, NULL, zw_write, zw_close) != ARCHIVE_OK) {
        qai_status st = qai_error(QAI_ERR_IO, "'%s': cannot start the archive: %s", what, archive_error_string(w->a));
        bundle_writer_abort(w);
        return st;
    }
    *out = w;
    return QAI_OK;
}

struct archive *bundle_writer_archive(bundle_writer *w) { return w->a; }

void bundle_writer_abort(bundle_writer *w) {
    if (!w) return;
    if (w->a) archive_write_free(w->a); /* closes: writes into the FILE the caller discards */
    ZSTD_freeCCtx(w->cc);
    qai_free(w->out);
    qai_free(w);
}

qai_status bundle_writer_close(bundle_writer *w, const char *what) {
    qai_status st = QAI_OK;
    /* the last entry's padding belongs to the entries' frame, then the end
     * (two zero records) is the last frame */
    if (archive_write_finish_entry(w->a) != ARCHIVE_OK || !zw_end_frame(w) || archive_write_close(w->a) != ARCHIVE_OK)
        st = qai_error(QAI_ERR_IO, "'%s': cannot finish the archive: %s", what, archive_error_string(w->a));
    archive_write_free(w->a);
    w->a = NULL;
    bundle_writer_abort(w);
    return st;
}

bool bundle_append_point(const void *data, size_t n, size_t *offset) {
    const uint8_t *p = data;
    size_t pos = 0, last = SIZE_MAX;
    while (pos < n) {
        size_t fs = ZSTD_findFrameCompressedSize(p + pos, n - pos);
        if (ZSTD_isError(fs) || fs == 0) return false;
        last = pos;
        pos += fs;
    }
    if (last == SIZE_MAX) return false;
    uint8_t end[TAR_END_BYTES + 1];
    size_t got = ZSTD_decompress(end, sizeof end, p + last, n - last);
    if (ZSTD_isError(got) || got != TAR_END_BYTES) return false;
    for (size_t i = 0; i < got; i++)
        if (end[i]) return false;
    *offset = last;
    return true;
}

/* ---- model card ------------------------------------------------------------------------ */

static bool nonempty(const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return false;
    if (cJSON_IsString(v)) return v->valuestring && *v->valuestring;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return v->child != NULL;
    return true;
}

qai_status qai_model_card_validate(const void *card_json, const char *name) {
    const cJSON *c = card_json;
    if (!cJSON_IsObject(c)) return qai_error(QAI_ERR_FORMAT, "model card '%s': not a mapping", name);
    static const char *const required[] = {"purpose",     "intended_use", "not_intended_use",   "slos",
                                           "datasets",    "training",     "limitations",        "safety_mitigations",
                                           "contacts"};
    char missing[512] = "", bad[1024] = "";
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!nonempty(cJSON_GetObjectItemCaseSensitive(c, required[i])))
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s", *missing ? ", " : "",
                     required[i]);
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(c, "datasets");
    if (nonempty(ds)) {
        if (!cJSON_IsArray(ds)) snprintf(bad, sizeof bad, "datasets: must be a list of {name, sha256}");
        int i = 0;
        for (const cJSON *d = cJSON_IsArray(ds) ? ds->child : NULL; d; d = d->next, i++) {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(d, "name");
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(d, "sha256");
            if (!cJSON_IsObject(d) || !cJSON_IsString(n) || !*n->valuestring) {
                snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "%sdatasets[%d]: needs a name", *bad ? "; " : "",
                         i);
            } else if (!cJSON_IsString(h) || !bundle_hex64_ok(h->valuestring)) {
                snprintf(bad + strlen(bad), sizeof bad - strlen(bad),
                         "%sdatasets[%d] '%s': sha256 must be 64 lowercase hex digits (quoted if it could read as a number)", *bad ? "; " : "", i,
                         n->valuestring);
            }
        }
    }
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(c, "training");
    if (nonempty(tr)) {
        if (!cJSON_IsObject(tr) || !nonempty(cJSON_GetObjectItemCaseSensitive(tr, "date")) ||
            !nonempty(cJSON_GetObjectItemCaseSensitive(tr, "methods")))
            snprintf(bad + strlen(bad), sizeof bad - strlen(bad), "%straining: needs date and methods",
                     *bad ? "; " : "");
    }
    if (*missing && *bad)
        return qai_error(QAI_ERR_FORMAT, "model card '%s': missing sections: %s; %s", name, missing, bad);
    if (*missing) return qai_error(QAI_ERR_FORMAT, "model card '%s': missing sections: %s", name, missing);
    if (*bad) return qai_error(QAI_ERR_FORMAT, "model card '%s': %s", name, bad);
    return QAI_OK;
}

/* ---- create ------------------------------------------------------------------------------ */

typedef struct {
    char member[QAI_BUNDLE_MEMBER_MAX + 1];
    const char *src;  /* file to copy, or NULL when data is set */
    char *data;       /* owned bytes (sbom) */
    uint64_t size;
    char sha[65];
} input;

/* The last path component with unsafe characters replaced by '_'. */
static void safe_base(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t j = 0;
    for (; *b && j + 1 < cap; b++) {
        char c = *b;
        out[j++] = (isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '@') ? c : '_';
    }
    out[j] = 0;
    if (!j || out[0] == '.') {
        memmove(out + 1, out, j + 1 < cap ? j + 1 : cap - 1);
        out[0] = '_';
        out[cap - 1] = 0;
    }
}

static qai_status hash_input(input *in) {
    uint8_t h[32];
    if (qai_sha256_file(in->src, h, &in->size) != QAI_OK) return qai_error_wrap(QAI_ERR_IO, "bundle");
    qai_hex(h, 32, in->sha);
    return QAI_OK;
}

static qai_status read_json(const char *path, const char *what, cJSON **out) {
    char *text;
    size_t n;
    qai_status st = qai_file_read(path, &text, &n);
    if (st) return st;
    if (n > QAI_BUNDLE_SMALL_MAX) {
        qai_free(text);
        return qai_error(QAI_ERR_FORMAT, "%s '%s': larger than %u bytes", what, path, QAI_BUNDLE_SMALL_MAX);
    }
    size_t off;
    cJSON *j = bundle_json_parse(text, n, &off);
    if (!j) {
        qai_free(text);
        return qai_error(QAI_ERR_FORMAT, "%s '%s': not valid JSON (near byte %zu)", what, path, off);
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        qai_free(text);
        return qai_error(QAI_ERR_FORMAT, "%s '%s': not a JSON object", what, path);
    }
    if (!strcmp(what, "dataset manifest")) {
        const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
        if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "qai-dataset")) {
            void *dj = NULL;
            st = qai_dataset_manifest_parse(text, n, path, &dj);
            if (st) {
                cJSON_Delete(j);
                qai_free(text);
                return qai_error_wrap(st, "dataset manifest");
            }
            cJSON_Delete(dj);
        }
    }
    qai_free(text);
    *out = j;
    return QAI_OK;
}

/* The model facts the manifest states, from the GGUF. */
typedef struct {
    char arch[64];
    char quant[32];
    uint64_t params;
    int64_t ctx, layers, dim, heads, kv_heads;
    const char *chat_template; /* in g */
    const char *gname, *gversion;
} model_facts;

static qai_status read_model(qai_gguf *g, model_facts *mf) {
    memset(mf, 0, sizeof *mf);
    const char *arch = NULL;
    if (qai_gguf_get_str(g, "general.architecture", &arch) != QAI_OK)
        return qai_error(QAI_ERR_FORMAT, "model '%s': no general.architecture", qai_gguf_path(g));
    snprintf(mf->arch, sizeof mf->arch, "%s", arch);
    uint64_t bytes_by_type[QAI_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) {
        const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
        uint64_t ne = 1;
        for (int d = 0; d < t->n_dims; d++) ne *= (uint64_t)t->ne[d];
        mf->params += ne;
        if (t->n_dims >= 2 && (int)t->type >= 0 && (int)t->type < QAI_TYPE_COUNT) bytes_by_type[t->type] += t->size;
    }
    int best = -1;
    for (int t = 0; t < QAI_TYPE_COUNT; t++)
        if (bytes_by_type[t] && (best < 0 || bytes_by_type[t] > bytes_by_type[best])) best = t;
    const qai_type_traits *tt = best >= 0 ? qai_type_info(best) : NULL;
    snprintf(mf->quant, sizeof mf->quant, "%s", tt && tt->name ? tt->name : "unknown");
    char key[128];
    int64_t v;
#define ARCH_INT(field, suffix)                                                                                        \
    snprintf(key, sizeof key, "%s." suffix, arch);                                                                     \
    if (qai_gguf_get_int(g, key, &v) == QAI_OK) mf->field = v;
    ARCH_INT(ctx, "context_length")
    ARCH_INT(layers, "block_count")
    ARCH_INT(dim, "embedding_length")
    ARCH_INT(heads, "attention.head_count")
    ARCH_INT(kv_heads, "attention.head_count_kv")
#undef ARCH_INT
    if (!mf->kv_heads) mf->kv_heads = mf->heads;
    const char *s;
    if (qai_gguf_get_str(g, "tokenizer.chat_template", &s) == QAI_OK) mf->chat_template = s;
    if (qai_gguf_get_str(g, "general.name", &s) == QAI_OK) mf->gname = s;
    if (qai_gguf_get_str(g, "general.version", &s) == QAI_OK) mf->gversion = s;
    return QAI_OK;
}

static cJSON *member_obj(const input *in) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    if (!cJSON_AddStringToObject(o, "path", in->member) || !cJSON_AddStringToObject(o, "sha256", in->sha) ||
        !cJSON_AddNumberToObject(o, "size", (double)in->size)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Copies src into the archive as the entry's data, re-hashing it: a file that
 * changed since it was hashed would make a bundle that cannot verify. */
static qai_status copy_member(struct archive *a, const input *in, uint8_t *buf) {
    FILE *f = fopen(in->src, "rb");
    if (!f) return qai_error(QAI_ERR_IO, "cannot open '%s': %s", in->src, strerror(errno));
    _Alignas(16) qai_sha256_ctx c; /* base.h's ctx is a byte array; hash.c needs 8-byte alignment */
    qai_sha256_init(&c);
    uint64_t total = 0;
    qai_status st = QAI_OK;
    for (;;) {
        size_t n = fread(buf, 1, COPY_CHUNK, f);
        if (n == 0) break;
        qai_sha256_update(&c, buf, n);
        total += n;
        if (total > in->size) break;
        if (archive_write_data(a, buf, n) != (la_ssize_t)n) {
            st = qai_error(QAI_ERR_IO, "writing member '%s': %s", in->member, archive_error_string(a));
            break;
        }
    }
    if (!st && ferror(f)) st = qai_error(QAI_ERR_IO, "reading '%s': %s", in->src, strerror(errno));
    fclose(f);
    if (st) return st;
    uint8_t h[32];
    char hex[65];
    qai_sha256_final(&c, h);
    qai_hex(h, 32, hex);
    if (total != in->size || strcmp(hex, in->sha))
        return qai_error(QAI_ERR_IO, "'%s' changed while it was being bundled", in->src);
    return QAI_OK;
}

static int64_t created_time(int64_t given) {
    if (given > 0) return given;
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    if (sde && *sde) {
        char *end;
        long long v = strtoll(sde, &end, 10);
        if (!*end && v > 0) return v;
    }
    return (int64_t)time(NULL);
}

qai_status qai_bundle_create(const qai_bundle_create_params *p, const char *out_path) {
    if (!p || !p->model_path || !out_path) return qai_error(QAI_ERR_ARG, "bundle: a model and an output path are needed");
    if (p->n_datasets && !p->dataset_manifests) return qai_error(QAI_ERR_ARG, "bundle: dataset list is NULL");
    if (p->n_evals && !p->evals) return qai_error(QAI_ERR_ARG, "bundle: eval list is NULL");
    int level = p->compression_level ? p->compression_level : 3;
    if (level < 1 || level > 19) return qai_error(QAI_ERR_ARG, "bundle: compression level %d not in 1..19", level);
    int64_t created = created_time(p->created);

    size_t cap = 4 + p->n_datasets + p->n_evals;
    input *ins = qai_calloc(cap, sizeof *ins);
    if (!ins) return QAI_ERR_NOMEM;
    size_t nin = 0;
    qai_status st = QAI_OK;
    qai_gguf *g = NULL;
    cJSON *manifest = NULL, *card = NULL;
    char *manifest_text = NULL;
    uint8_t *buf = NULL;
    char name[QAI_BUNDLE_NAME_MAX + 1], version[QAI_BUNDLE_NAME_MAX + 1], base[160];
    model_facts mf;

    /* the model */
    if ((st = qai_gguf_open(p->model_path, &g))) goto out;
    if ((st = read_model(g, &mf))) goto out;
    if (p->name) snprintf(name, sizeof name, "%s", p->name);
    else if (mf.gname && bundle_ident_ok(mf.gname)) snprintf(name, sizeof name, "%s", mf.gname);
    else {
        safe_base(p->model_path, name, sizeof name);
        char *dot = strrchr(name, '.');
        if (dot && dot != name) *dot = 0;
    }
    if (p->version) snprintf(version, sizeof version, "%s", p->version);
    else if (mf.gversion) snprintf(version, sizeof version, "%s", mf.gversion);
    else {
        st = qai_error(QAI_ERR_ARG, "bundle: no version: give one (--version), the model has no general.version");
        goto out;
    }
    if (!bundle_ident_ok(name) || (p->name && strlen(p->name) > QAI_BUNDLE_NAME_MAX)) {
        st = qai_error(QAI_ERR_ARG, "bundle: name '%s' must be 1..%d of letters, digits, '.', '_', '-'",
                       p->name ? p->name : name, QAI_BUNDLE_NAME_MAX);
        goto out;
    }
    if (!bundle_ident_ok(version) || (p->version && strlen(p->version) > QAI_BUNDLE_NAME_MAX)) {
        st = qai_error(QAI_ERR_ARG, "bundle: version '%s' must be 1..%d of letters, digits, '.', '_', '-'",
                       p->version ? p->version : version, QAI_BUNDLE_NAME_MAX);
        goto out;
    }
    safe_base(p->model_path, base, sizeof base);
    input *model = &ins[nin++];
    snprintf(model->member, sizeof model->member, "model/%s", base);
    model->src = p->model_path;
    if ((st = hash_input(model))) goto out;

    if (p->tokenizer_path) {
        input *in = &ins[nin++];
        safe_base(p->tokenizer_path, base, sizeof base);
        snprintf(in->member, sizeof in->member, "tokenizer/%s", base);
        in->src = p->tokenizer_path;
        if ((st = hash_input(in))) goto out;
    }
    if (p->card_path) {
        if ((st = qai_yaml_load(p->card_path, (void **)&card))) goto out;
        if ((st = qai_model_card_validate(card, p->card_path))) goto out;
        input *in = &ins[nin++];
        snprintf(in->member, sizeof in->member, "card.yaml");
        in->src = p->card_path;
        if ((st = hash_input(in))) goto out;
    }
    for (size_t i = 0; i < p->n_datasets; i++) {
        const char *path = p->dataset_manifests[i];
        cJSON *j;
        if ((st = read_json(path, "dataset manifest", &j))) goto out;
        /* the member's name: the manifest's "name", else its folder's name, else the file's stem */
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
        char dsname[128];
        if (cJSON_IsString(nm) && *nm->valuestring) safe_base(nm->valuestring, dsname, sizeof dsname);
        else {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", path);
            char *slash = strrchr(dir, '/');
            if (slash && !strcmp(slash + 1, "manifest.json") && slash != dir) {
                *slash = 0;
                safe_base(dir, dsname, sizeof dsname);
            } else {
                safe_base(path, dsname, sizeof dsname);
                char *dot = strrchr(dsname, '.');
                if (dot && dot != dsname && !strcmp(dot, ".json")) *dot = 0;
            }
        }
        cJSON_Delete(j);
        input *in = &ins[nin++];
        snprintf(in->member, sizeof in->member, "datasets/%s.json", dsname);
        in->src = path;
        if ((st = hash_input(in))) goto out;
    }
    for (size_t i = 0; i < p->n_evals; i++) {
        const char *path = p->evals[i];
        cJSON *j;
        if ((st = read_json(path, "evaluation results", &j))) goto out;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "metrics");
        const cJSON *su = cJSON_GetObjectItemCaseSensitive(j, "suite");
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(j, "passed");
        bool ok = cJSON_IsObject(m) && (!su || cJSON_IsString(su)) && (!pa || cJSON_IsBool(pa) || cJSON_IsNull(pa));
        cJSON_Delete(j);
        if (!ok) {
            st = qai_error(QAI_ERR_FORMAT,
                           "evaluation results '%s': need \"metrics\" (an object), optional \"suite\" (a string) and "
                           "\"passed\" (true/false)",
                           path);
            goto out;
        }
        input *in = &ins[nin++];
        safe_base(path, base, sizeof base);
        snprintf(in->member, sizeof in->member, "evals/%s", base);
        in->src = path;
        if ((st = hash_input(in))) goto out;
    }
    {
        input *in = &ins[nin++];
        snprintf(in->member, sizeof in->member, "sbom.json");
        if ((st = qai_sbom_json(p->tool_version, created, &in->data))) goto out;
        in->size = strlen(in->data);
        uint8_t h[32];
        qai_sha256(in->data, (size_t)in->size, h);
        qai_hex(h, 32, in->sha);
    }
    for (size_t i = 0; i < nin; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(ins[i].member, ins[j].member)) {
                st = qai_error(QAI_ERR_ARG, "bundle: two inputs would both be stored as '%s' ('%s' and '%s')",
                               ins[i].member, ins[j].src ? ins[j].src : "sbom", ins[i].src ? ins[i].src : "sbom");
                goto out;
            }

    /* the manifest */
    {
        char ts[32];
        time_t t = (time_t)created;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        uint64_t kv_bytes = (mf.heads > 0) ? (uint64_t)2 * (uint64_t)mf.layers * (uint64_t)mf.ctx *
                                                 (uint64_t)(mf.dim * mf.kv_heads / mf.heads) * sizeof(float)
                                           : 0;
        int threads = mf.params < 50000000ull ? 2 : mf.params < 500000000ull ? 4 : 8;
        manifest = cJSON_CreateObject();
        cJSON *meta, *spec = NULL, *jm, *rp, *inputs, *outputs, *inobj, *outobj, *safety, *dsl = NULL, *evl = NULL, *mem = NULL;
        bool ok = manifest && cJSON_AddStringToObject(manifest, "apiVersion", QAI_BUNDLE_API_VERSION) &&
                  cJSON_AddStringToObject(manifest, "kind", QAI_BUNDLE_KIND) &&
                  (meta = cJSON_AddObjectToObject(manifest, "metadata")) &&
                  cJSON_AddStringToObject(meta, "name", name) && cJSON_AddStringToObject(meta, "version", version) &&
                  cJSON_AddStringToObject(meta, "created", ts) && (spec = cJSON_AddObjectToObject(manifest, "spec")) &&
                  (jm = cJSON_AddObjectToObject(spec, "model")) && cJSON_AddStringToObject(jm, "file", model->member) &&
                  cJSON_AddStringToObject(jm, "architecture", mf.arch) &&
                  cJSON_AddNumberToObject(jm, "params", (double)mf.params) &&
                  cJSON_AddStringToObject(jm, "quantization", mf.quant) &&
                  cJSON_AddStringToObject(jm, "sha256", model->sha) &&
                  cJSON_AddNumberToObject(jm, "size", (double)model->size);
        if (ok && p->tokenizer_path) {
            cJSON *tk = cJSON_AddObjectToObject(spec, "tokenizer");
            ok = tk && cJSON_AddStringToObject(tk, "file", ins[1].member) &&
                 cJSON_AddStringToObject(tk, "sha256", ins[1].sha) &&
                 cJSON_AddNumberToObject(tk, "size", (double)ins[1].size);
        }
        ok = ok && (rp = cJSON_AddObjectToObject(spec, "runtimeProfile")) &&
             cJSON_AddNumberToObject(rp, "contextLength", (double)mf.ctx) &&
             cJSON_AddNumberToObject(rp, "threadsHint", threads) &&
             cJSON_AddNumberToObject(rp, "memoryEstimateBytes", (double)(model->size + kv_bytes)) &&
             (inputs = cJSON_AddArrayToObject(spec, "inputs")) && (inobj = cJSON_CreateObject()) &&
             cJSON_AddItemToArray(inputs, inobj) && cJSON_AddStringToObject(inobj, "type", "text") &&
             (!mf.chat_template || cJSON_AddStringToObject(inobj, "chatTemplate", mf.chat_template)) &&
             (outputs = cJSON_AddArrayToObject(spec, "outputs")) && (outobj = cJSON_CreateObject()) &&
             cJSON_AddItemToArray(outputs, outobj) && cJSON_AddStringToObject(outobj, "type", "text") &&
             (safety = cJSON_AddObjectToObject(spec, "safety")) &&
             cJSON_AddStringToObject(safety, "policySet", p->policy_set ? p->policy_set : "default");
        ok = ok && (p->card_path ? cJSON_AddStringToObject(spec, "card", "card.yaml") != NULL
                                 : cJSON_AddNullToObject(spec, "card") != NULL);
        ok = ok && (dsl = cJSON_AddArrayToObject(spec, "datasets")) && (evl = cJSON_AddArrayToObject(spec, "evals")) &&
             cJSON_AddStringToObject(spec, "sbom", "sbom.json") && (mem = cJSON_AddArrayToObject(manifest, "members"));
        for (size_t i = 0; ok && i < nin; i++) {
            cJSON *mo = member_obj(&ins[i]);
            ok = mo && cJSON_AddItemToArray(mem, mo);
            if (ok && !strncmp(ins[i].member, "datasets/", 9))
                ok = cJSON_AddItemToArray(dsl, cJSON_CreateString(ins[i].member));
            if (ok && !strncmp(ins[i].member, "evals/", 6))
                ok = cJSON_AddItemToArray(evl, cJSON_CreateString(ins[i].member));
        }
        manifest_text = ok ? cJSON_Print(manifest) : NULL;
        if (!manifest_text) {
            st = qai_error(QAI_ERR_NOMEM, "bundle: out of memory building the manifest");
            goto out;
        }
    }

    /* the archive */
    buf = qai_malloc(COPY_CHUNK);
    if (!buf) {
        st = QAI_ERR_NOMEM;
        goto out;
    }
    {
        qai_atomic_file af;
        if ((st = qai_atomic_open(out_path, &af))) goto out;
        bundle_writer *w = NULL;
        struct archive *a = NULL;
        size_t mlen = strlen(manifest_text);
        st = bundle_writer_open(&w, af.f, level, out_path);
        if (!st) a = bundle_writer_archive(w);
        if (!st) st = bundle_write_header(a, QAI_BUNDLE_MANIFEST, mlen, created);
        if (!st && archive_write_data(a, manifest_text, mlen) != (la_ssize_t)mlen)
            st = qai_error(QAI_ERR_IO, "writing the manifest: %s", archive_error_string(a));
        for (size_t i = 0; !st && i < nin; i++) {
            st = bundle_write_header(a, ins[i].member, ins[i].size, created);
            if (st) break;
            if (ins[i].data) {
                if (archive_write_data(a, ins[i].data, (size_t)ins[i].size) != (la_ssize_t)ins[i].size)
                    st = qai_error(QAI_ERR_IO, "writing member '%s': %s", ins[i].member, archive_error_string(a));
            } else
                st = copy_member(a, &ins[i], buf);
        }
        if (w) {
            qai_status cs = st ? (bundle_writer_abort(w), QAI_OK) : bundle_writer_close(w, out_path);
            if (!st) st = cs;
        }
        if (st) {
            qai_atomic_abort(&af);
            st = qai_error_wrap(st, "bundle '%s'", out_path);
        } else if ((st = qai_atomic_commit(&af)))
            st = qai_error_wrap(st, "bundle");
    }

out:
    if (manifest_text) cJSON_free(manifest_text);
    cJSON_Delete(manifest);
    cJSON_Delete(card);
    for (size_t i = 0; i < nin; i++) qai_free(ins[i].data);
    qai_free(ins);
    qai_free(buf);
    qai_gguf_close(g);
    return st;
}
