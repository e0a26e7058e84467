/* The registry: pushing verified bundles into <data dir>/bundles/ and the
 * store in a crash-safe order, recovering from a push that died, and the
 * lineage of a model version. The protocol is described in qai/bundle.h.
 *
 * Locks: <data dir>/bundles/.lock is taken shared by a push while it creates
 * and locks its temporary file, and exclusive by recovery while it looks for
 * abandoned ones; each push holds an exclusive flock on its own temporary
 * file until it is done. So recovery never removes a live push's copy, and a
 * copy whose lock is free belongs to a process that is gone.
 *
 * What it deliberately does not do: check signatures itself (bundle_read.c),
 * or decide who may push (serve's auth, later). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "registry/bundle_internal.h"
#include "registry/store_internal.h"

#define PUSH_MARK ".qai.push-"

static qai_status registry_paths(const char *data_dir, char *home, size_t cap) { return bundle_data_dir(data_dir, home, cap); }

/* Takes <home>/bundles/.lock (creating it). Returns the fd or -1 with the error set. */
static int lock_root(const char *home, int how) {
    char root[4200], p[4300];
    snprintf(root, sizeof root, "%s/bundles", home);
    if (qai_mkdirs(root)) return -1;
    snprintf(p, sizeof p, "%s/.lock", root);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        qai_error(QAI_ERR_IO, "cannot open '%s': %s", p, strerror(errno));
        return -1;
    }
    while (flock(fd, how) != 0) {
        if (errno == EINTR) continue;
        qai_error(QAI_ERR_IO, "cannot lock '%s': %s", p, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static qai_status copy_fd(const char *src, int dst, const char *dst_name) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return qai_error(QAI_ERR_IO, "cannot open '%s': %s", src, strerror(errno));
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = qai_malloc(CHUNK);
    if (!buf) {
        close(in);
        return QAI_ERR_NOMEM;
    }
    qai_status st = QAI_OK;
    for (;;) {
        ssize_t n = read(in, buf, CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            st = qai_error(QAI_ERR_IO, "reading '%s': %s", src, strerror(errno));
            break;
        }
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(dst, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                st = qai_error(QAI_ERR_IO, "writing '%s': %s", dst_name, strerror(errno));
                break;
            }
            off += w;
        }
        if (st) break;
    }
    qai_free(buf);
    close(in);
    if (!st && fsync(dst) != 0) st = qai_error(QAI_ERR_IO, "fsync '%s': %s", dst_name, strerror(errno));
    return st;
}

static qai_status file_sha(const char *path, char hex[65]) {
    uint8_t h[32];
    qai_status st = qai_sha256_file(path, h, NULL);
    if (!st) qai_hex(h, 32, hex);
    return st;
}

/* ---- recovery ------------------------------------------------------------------------- */

/* One abandoned copy: finish it if its row committed, else remove it. */
static qai_status recover_one(qai_store *s, const char *dir, const char *model, const char *fname) {
    char tmp[2700], final[2700], version[QAI_BUNDLE_NAME_MAX + 1];
    snprintf(tmp, sizeof tmp, "%s/%.255s", dir, fname);
    const char *mark = strstr(fname, PUSH_MARK);
    size_t vl = mark ? (size_t)(mark - fname - 1) : 0;
    if (!mark || fname[0] != '.' || vl == 0 || vl > QAI_BUNDLE_NAME_MAX) return QAI_OK;
    memcpy(version, fname + 1, vl);
    version[vl] = 0;
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return QAI_OK; /* gone meanwhile */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) { /* a live push */
        close(fd);
        return QAI_OK;
    }
    snprintf(final, sizeof final, "%s/%s.qai", dir, version);
    qai_model_version *mv = NULL;
    qai_status st = bundle_ident_ok(version) ? qai_model_version_get(s, model, version, &mv) : QAI_ERR_NOT_FOUND;
    char hex[65];
    if (st == QAI_OK && mv->bundle_sha256 && file_sha(tmp, hex) == QAI_OK && !strcmp(hex, mv->bundle_sha256)) {
        char have[65];
        bool good = access(final, F_OK) == 0 && file_sha(final, have) == QAI_OK && !strcmp(have, hex);
        if (good) unlink(tmp);
        else if (rename(tmp, final) != 0) st = qai_error(QAI_ERR_IO, "cannot rename '%s': %s", tmp, strerror(errno));
        else qai_log(QAI_LOG_INFO, "registry: finished the interrupted push of %s@%s", model, version);
        if (!st) bundle_fsync_dir(dir);
    } else if (st == QAI_OK || st == QAI_ERR_NOT_FOUND) {
        st = QAI_OK;
        unlink(tmp);
        bundle_fsync_dir(dir);
        qai_log(QAI_LOG_INFO, "registry: removed the copy left by an interrupted push of %s@%s", model, version);
    }
    qai_free(mv);
    close(fd);
    return st;
}

qai_status qai_registry_recover(qai_store *s, const char *data_dir) {
    char home[2048], root[2200];
    qai_status st = registry_paths(data_dir, home, sizeof home);
    if (st) return st;
    int lk = lock_root(home, LOCK_EX);
    if (lk < 0) return QAI_ERR_IO;
    snprintf(root, sizeof root, "%s/bundles", home);
    DIR *d = opendir(root);
    if (!d) {
        close(lk);
        return QAI_OK;
    }
    struct dirent *de;
    while (!st && (de = readdir(d))) {
        if (!bundle_ident_ok(de->d_name)) continue;
        char dir[2400];
        snprintf(dir, sizeof dir, "%s/%.64s", root, de->d_name);
        DIR *m = opendir(dir);
        if (!m) continue;
        struct dirent *fe;
        while (!st && (fe = readdir(m)))
            if (fe->d_name[0] == '.' && strstr(fe->d_name, PUSH_MARK)) st = recover_one(s, dir, de->d_name, fe->d_name);
        closedir(m);
    }
    closedir(d);
    close(lk);
    return st;
}

/* ---- push ------------------------------------------------------------------------------- */

typedef struct {
    const qai_bundle_report *r;
    const char *home, *final_path;
    cJSON *card;        /* parsed card.yaml or NULL */
    qai_identity **keys;/* trusted keys of the valid signatures (NULL entries skipped) */
    int64_t mv_id;
} push_tx;

static const qai_bundle_member *find_member(const qai_bundle_report *r, const char *path) {
    for (size_t i = 0; i < r->n_members; i++)
        if (!strcmp(r->members[i].path, path)) return &r->members[i];
    return NULL;
}

/* name and version of a dataset member, as the store records it */
static void dataset_ident(const qai_bundle_member *m, const cJSON *j, char *name, size_t ncap, char *ver, size_t vcap) {
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(j, "name");
    if (cJSON_IsString(nm) && *nm->valuestring) snprintf(name, ncap, "%s", nm->valuestring);
    else {
        const char *b = m->path + strlen("datasets/");
        size_t l = strlen(b);
        if (l > 5 && !strcmp(b + l - 5, ".json")) l -= 5;
        snprintf(name, ncap, "%.*s", (int)l, b);
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(j, "format");
    const cJSON *mh = cJSON_GetObjectItemCaseSensitive(j, "manifest_hash");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
    if (cJSON_IsString(fmt) && !strcmp(fmt->valuestring, "qai-dataset") && cJSON_IsString(mh))
        snprintf(ver, vcap, "%.16s", mh->valuestring);
    else if (cJSON_IsString(v) && *v->valuestring) snprintf(ver, vcap, "%s", v->valuestring);
    else snprintf(ver, vcap, "%.16s", m->sha256);
}

static char *json_text(const cJSON *j) {
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    if (!t) return NULL;
    char *c = qai_strdup(t);
    cJSON_free(t);
    return c;
}

static qai_status push_fn(qai_store *s, void *arg) {
    push_tx *t = arg;
    const qai_bundle_report *r = t->r;
    /* Pushes are serialized: each looks rows up (project, datasets, run) and
     * creates the missing ones, which two concurrent PostgreSQL transactions
     * would both try (SQLite's BEGIN IMMEDIATE already serializes them). */
    qai_status st = store_lock(s, "qai.registry.push");
    if (st) return st;
    /* project: the card's "project", else the model's name */
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(t->card, "project");
    const char *project = cJSON_IsString(pj) && *pj->valuestring ? pj->valuestring : r->name;
    qai_project *p = NULL;
    int64_t project_id;
    st = qai_project_get(s, project, &p);
    if (st == QAI_OK) project_id = p->id;
    else if (st == QAI_ERR_NOT_FOUND) st = qai_project_create(s, project, NULL, &project_id);
    qai_free(p);
    if (st) return st;

    /* datasets (reused when the same name and version exist in the project) */
    int64_t ds_ids[256];
    size_t nds = 0;
    qai_dataset_record *have = NULL;
    size_t nhave = 0;
    if ((st = qai_store_dataset_list(s, project_id, &have, &nhave))) return st;
    for (size_t i = 0; i < r->n_members && !st; i++) {
        const qai_bundle_member *m = &r->members[i];
        if (strncmp(m->path, "datasets/", 9) || !m->data) continue;
        if (nds == sizeof ds_ids / sizeof ds_ids[0]) {
            st = qai_error(QAI_ERR_RANGE, "more than %zu dataset manifests", nds);
            break;
        }
        size_t off;
        cJSON *j = bundle_json_parse(m->data, (size_t)m->size, &off);
        char name[256], ver[128], uri[4400];
        dataset_ident(m, j, name, sizeof name, ver, sizeof ver);
        cJSON_Delete(j);
        snprintf(uri, sizeof uri, "%s/datasets/%s.json", t->home, m->sha256);
        int64_t id = 0;
        for (size_t k = 0; k < nhave; k++)
            if (!strcmp(have[k].name, name) && !strcmp(have[k].version, ver)) id = have[k].id;
        if (!id)
            st = qai_store_dataset_create(s,
                                          &(qai_dataset_record){.project_id = project_id, .name = name, .version = ver,
                                                                .manifest_sha256 = m->sha256, .uri = uri},
                                          &id);
        ds_ids[nds++] = id;
    }
    qai_free(have);
    if (st) return st;

    /* the run that made it, as far as the card says */
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(t->card, "training");
    const cJSON *rn = cJSON_GetObjectItemCaseSensitive(tr, "run");
    char run_name[256];
    if (cJSON_IsString(rn) && *rn->valuestring) snprintf(run_name, sizeof run_name, "%s", rn->valuestring);
    else snprintf(run_name, sizeof run_name, "%s-%s", r->name, r->version);
    char *config = tr ? json_text(tr) : qai_strdup("{}");
    if (!config) return QAI_ERR_NOMEM;
    int64_t run_id;
    st = qai_run_create(s, &(qai_run){.project_id = project_id, .name = run_name, .config = config, .status = "succeeded"},
                        ds_ids, nds, &run_id);
    qai_free(config);
    if (st) return st;

    /* the model version; meta keeps the manifest and the card for show/lineage */
    cJSON *meta = cJSON_CreateObject();
    size_t off;
    cJSON *man = bundle_json_parse(r->manifest, r->manifest_len, &off);
    if (!meta || !man) {
        cJSON_Delete(meta);
        cJSON_Delete(man);
        return QAI_ERR_NOMEM;
    }
    cJSON_AddItemToObject(meta, "manifest", man);
    cJSON_AddItemToObject(meta, "card", t->card ? cJSON_Duplicate(t->card, 1) : cJSON_CreateNull());
    char *meta_text = json_text(meta);
    cJSON_Delete(meta);
    if (!meta_text) return QAI_ERR_NOMEM;
    st = qai_model_version_create(s,
                                  &(qai_model_version){.project_id = project_id, .run_id = run_id, .name = r->name,
                                                       .version = r->version, .sha256 = r->model_sha256,
                                                       .bundle_sha256 = r->bundle_sha256, .uri = t->final_path,
                                                       .meta = meta_text},
                                  &t->mv_id);
    qai_free(meta_text);
    if (st) return st;
    qai_test_crash_point("push-in-tx");

    /* signatures (their keys registered first) */
    for (size_t i = 0; i < r->n_sigs && !st; i++) {
        if (r->sigs[i].state != QAI_BUNDLE_SIG_VALID || !t->keys[i]) continue;
        const qai_identity *id = t->keys[i];
        qai_signing_key *k = NULL;
        st = qai_signing_key_get(s, r->sigs[i].key_id, &k);
        qai_free(k);
        if (st == QAI_ERR_NOT_FOUND) {
            uint8_t pub[QAI_PUBKEY_FILE_BYTES];
            qai_identity_public_bytes(id, pub);
            st = qai_signing_key_add(s, &(qai_signing_key){.key_id = r->sigs[i].key_id, .name = qai_identity_name(id),
                                                           .algorithm = "ed25519+ml-dsa-65", .public_key = pub,
                                                           .public_key_len = sizeof pub,
                                                           .created_ms = qai_identity_created(id) * 1000});
        }
        if (!st) st = qai_model_signature_add(s, t->mv_id, r->sigs[i].key_id);
    }
    /* evaluations */
    for (size_t i = 0; i < r->n_members && !st; i++) {
        const qai_bundle_member *m = &r->members[i];
        if (strncmp(m->path, "evals/", 6) || !m->data) continue;
        cJSON *j = bundle_json_parse(m->data, (size_t)m->size, &off);
        const cJSON *su = cJSON_GetObjectItemCaseSensitive(j, "suite");
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(j, "passed");
        char *metrics = json_text(cJSON_GetObjectItemCaseSensitive(j, "metrics"));
        char suite[256];
        if (cJSON_IsString(su) && *su->valuestring) snprintf(suite, sizeof suite, "%s", su->valuestring);
        else snprintf(suite, sizeof suite, "%s", m->path + 6);
        int passed = cJSON_IsTrue(pa) ? 1 : cJSON_IsFalse(pa) ? 0 : -1;
        cJSON_Delete(j);
        if (!metrics) return qai_error(QAI_ERR_FORMAT, "evaluation '%s' has no metrics", m->path);
        int64_t eid;
        st = qai_evaluation_create(s,
                                   &(qai_evaluation){.model_version_id = t->mv_id, .suite = suite, .metrics = metrics,
                                                     .passed = passed, .report_sha256 = m->sha256},
                                   &eid);
        qai_free(metrics);
    }
    return st;
}

/* Writes the dataset manifests content-addressed under <home>/datasets/ (idempotent). */
static qai_status store_dataset_files(const char *home, const qai_bundle_report *r) {
    char dir[4200], p[4400];
    snprintf(dir, sizeof dir, "%s/datasets", home);
    for (size_t i = 0; i < r->n_members; i++) {
        const qai_bundle_member *m = &r->members[i];
        if (strncmp(m->path, "datasets/", 9) || !m->data) continue;
        qai_status st = qai_mkdirs(dir);
        if (st) return st;
        snprintf(p, sizeof p, "%s/%s.json", dir, m->sha256);
        if (access(p, F_OK) == 0) continue;
        qai_atomic_file af;
        if ((st = qai_atomic_open(p, &af))) return st;
        if (fwrite(m->data, 1, (size_t)m->size, af.f) != (size_t)m->size) {
            qai_atomic_abort(&af);
            return qai_error(QAI_ERR_IO, "writing '%s'", p);
        }
        if ((st = qai_atomic_commit(&af))) return st;
    }
    return QAI_OK;
}

qai_status qai_registry_push(qai_store *s, const char *data_dir, const char *bundle_path, const qai_bundle_policy *pol,
                             qai_registry_push_result *res) {
    memset(res, 0, sizeof *res);
    qai_bundle_policy def = {.data_dir = data_dir};
    if (!pol) pol = &def;
    char home[2048], dir[2200], tmp[2400], final[2400];
    qai_status st = registry_paths(data_dir, home, sizeof home);
    if (st) return st;
    if ((st = qai_registry_recover(s, data_dir))) return st;

    /* name and version decide where the copy goes */
    bundle_scan_opts peek = {.pol = pol, .manifest_only = true};
    qai_bundle_report r;
    if ((st = bundle_scan(bundle_path, NULL, 0, &peek, &r))) return st;
    if (!r.ok) {
        st = qai_error(QAI_ERR_FORMAT, "%s", r.problem);
        qai_bundle_report_release(&r);
        return st;
    }
    char name[QAI_BUNDLE_NAME_MAX + 1], version[QAI_BUNDLE_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", r.name);
    snprintf(version, sizeof version, "%s", r.version);
    qai_bundle_report_release(&r);
    snprintf(dir, sizeof dir, "%s/bundles/%s", home, name);
    snprintf(final, sizeof final, "%s/%s.qai", dir, version);
    snprintf(tmp, sizeof tmp, "%s/.%s" PUSH_MARK "XXXXXX", dir, version);
    if ((st = qai_mkdirs(dir))) return st;

    /* (1) the copy, locked while we work on it */
    int lk = lock_root(home, LOCK_SH);
    if (lk < 0) return QAI_ERR_IO;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        close(lk);
        return qai_error(QAI_ERR_IO, "cannot create a file in '%s': %s", dir, strerror(errno));
    }
    if (flock(fd, LOCK_EX) != 0) {
        st = qai_error(QAI_ERR_IO, "cannot lock '%s': %s", tmp, strerror(errno));
        close(lk);
        goto fail;
    }
    close(lk);
    fchmod(fd, 0644);
    if ((st = copy_fd(bundle_path, fd, tmp))) goto fail;
    qai_test_crash_point("push-copied");

    /* (2) verify what we hold */
    if ((st = qai_bundle_verify(tmp, pol, QAI_BUNDLE_HASH_FILE | QAI_BUNDLE_KEEP_SMALL, &r))) goto fail;
    if (!r.ok) {
        st = qai_error(QAI_ERR_FORMAT, "%s", r.problem);
        qai_bundle_report_release(&r);
        goto fail;
    }
    if (strcmp(r.name, name) || strcmp(r.version, version)) {
        qai_bundle_report_release(&r);
        st = qai_error(QAI_ERR_FORMAT, "bundle '%s' changed while it was being pushed", bundle_path);
        goto fail;
    }
    qai_test_crash_point("push-verified");

    /* same version already here? */
    qai_model_version *mv = NULL;
    st = qai_model_version_get(s, name, version, &mv);
    if (st == QAI_OK) {
        bool same = mv->bundle_sha256 && !strcmp(mv->bundle_sha256, r.bundle_sha256);
        res->model_version_id = mv->id;
        qai_free(mv);
        qai_bundle_report_release(&r);
        if (!same) {
            st = qai_error(QAI_ERR_ARG, "%s@%s already exists in the registry with a different bundle", name, version);
            goto fail;
        }
        res->already_present = true;
        snprintf(res->path, sizeof res->path, "%s", final);
        unlink(tmp);
        close(fd);
        return QAI_OK;
    }
    if (st != QAI_ERR_NOT_FOUND) {
        qai_bundle_report_release(&r);
        goto fail;
    }

    /* (3) the records */
    push_tx t = {.r = &r, .home = home, .final_path = final};
    const qai_bundle_member *card = find_member(&r, "card.yaml");
    if (card && card->data && (st = qai_yaml_parse(card->data, (size_t)card->size, "card.yaml", (void **)&t.card))) {
        qai_bundle_report_release(&r);
        goto fail;
    }
    t.keys = qai_calloc(r.n_sigs ? r.n_sigs : 1, sizeof *t.keys);
    if (!t.keys) st = QAI_ERR_NOMEM;
    for (size_t i = 0; !st && i < r.n_sigs; i++)
        if (r.sigs[i].state == QAI_BUNDLE_SIG_VALID) st = qai_trust_find_key(pol, r.sigs[i].key_id, &t.keys[i], NULL, 0);
    if (!st) st = store_dataset_files(home, &r);
    if (!st) st = qai_store_transact(s, push_fn, &t);
    for (size_t i = 0; t.keys && i < r.n_sigs; i++) qai_identity_free(t.keys[i]);
    qai_free(t.keys);
    cJSON_Delete(t.card);
    char bundle_sha[65];
    snprintf(bundle_sha, sizeof bundle_sha, "%s", r.bundle_sha256);
    qai_bundle_report_release(&r);
    if (st) {
        /* a concurrent push of the very same bundle counts as landed */
        qai_status keep = st;
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", qai_last_error());
        if (qai_model_version_get(s, name, version, &mv) == QAI_OK) {
            bool same = mv->bundle_sha256 && !strcmp(mv->bundle_sha256, bundle_sha);
            res->model_version_id = mv->id;
            qai_free(mv);
            if (same) {
                res->already_present = true;
                snprintf(res->path, sizeof res->path, "%s", final);
                unlink(tmp);
                close(fd);
                return QAI_OK;
            }
        }
        st = qai_error(keep, "%s", msg);
        goto fail;
    }
    res->model_version_id = t.mv_id;
    qai_test_crash_point("push-committed");

    /* (4) into place */
    if (rename(tmp, final) != 0) {
        /* the row exists; recovery will finish the rename */
        st = qai_error(QAI_ERR_IO, "cannot rename '%s' to '%s': %s", tmp, final, strerror(errno));
        close(fd);
        return st;
    }
    bundle_fsync_dir(dir);
    qai_test_crash_point("push-renamed");
    close(fd);
    snprintf(res->path, sizeof res->path, "%s", final);
    return QAI_OK;

fail:
    unlink(tmp);
    close(fd);
    return st;
}

/* ---- lineage ------------------------------------------------------------------------------ */

static cJSON *parse_or_null(const char *text) {
    if (!text) return cJSON_CreateNull();
    cJSON *j = cJSON_Parse(text);
    return j ? j : cJSON_CreateString(text);
}

static void add_time(cJSON *o, const char *key, int64_t ms) {
    if (ms <= 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char ts[32];
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, key, ts);
}

/* Source files of a stored dataset manifest. */
static cJSON *dataset_sources(const char *uri, const char *want_sha) {
    cJSON *arr = cJSON_CreateArray();
    if (!uri || !arr) return arr;
    char *text;
    size_t n;
    if (qai_file_read(uri, &text, &n) != QAI_OK) return arr;
    uint8_t h[32];
    char hex[65];
    qai_sha256(text, n, h);
    qai_hex(h, 32, hex);
    size_t off;
    cJSON *j = (want_sha && !strcmp(hex, want_sha)) ? bundle_json_parse(text, n, &off) : NULL;
    qai_free(text);
    if (!j) return arr;
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "inputs");
    if (!cJSON_IsArray(src)) src = cJSON_GetObjectItemCaseSensitive(j, "sources");
    for (const cJSON *e = cJSON_IsArray(src) ? src->child : NULL; e; e = e->next) {
        cJSON *o = cJSON_CreateObject();
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "path");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "sha256");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(e, "size");
        cJSON_AddStringToObject(o, "path", cJSON_IsString(p) ? p->valuestring : "?");
        if (cJSON_IsString(sh)) cJSON_AddStringToObject(o, "sha256", sh->valuestring);
        else cJSON_AddNullToObject(o, "sha256");
        if (cJSON_IsNumber(sz)) cJSON_AddNumberToObject(o, "size", sz->valuedouble);
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_Delete(j);
    return arr;
}

qai_status qai_registry_lineage(qai_store *s, const char *data_dir, const char *name, const char *version,
                                void **json_out) {
    *json_out = NULL;
    qai_status st = qai_registry_recover(s, data_dir);
    if (st) return st;
    qai_model_version *mv = NULL;
    if ((st = qai_model_version_get(s, name, version, &mv))) return st;
    cJSON *root = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(m, "name", mv->name);
    cJSON_AddStringToObject(m, "version", mv->version);
    cJSON_AddStringToObject(m, "stage", qai_stage_name(mv->stage));
    cJSON_AddStringToObject(m, "sha256", mv->sha256);
    if (mv->bundle_sha256) cJSON_AddStringToObject(m, "bundle_sha256", mv->bundle_sha256);
    else cJSON_AddNullToObject(m, "bundle_sha256");
    if (mv->uri) cJSON_AddStringToObject(m, "bundle", mv->uri);
    else cJSON_AddNullToObject(m, "bundle");
    add_time(m, "created", mv->created_ms);
    cJSON *meta = parse_or_null(mv->meta);
    const cJSON *man = cJSON_GetObjectItemCaseSensitive(meta, "manifest");
    const cJSON *spec_model = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(man, "spec"), "model");
    if (spec_model) {
        cJSON_AddItemToObject(m, "architecture",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(spec_model, "architecture"), 1));
        cJSON_AddItemToObject(m, "params", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(spec_model, "params"), 1));
        cJSON_AddItemToObject(m, "quantization",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(spec_model, "quantization"), 1));
    }
    if (mv->project_id) cJSON_AddNumberToObject(m, "project_id", (double)mv->project_id);

    /* run and its datasets */
    qai_run *run = NULL;
    if (mv->run_id && qai_run_get(s, mv->run_id, &run) == QAI_OK) {
        cJSON *ro = cJSON_AddObjectToObject(root, "run");
        cJSON_AddNumberToObject(ro, "id", (double)run->id);
        cJSON_AddStringToObject(ro, "name", run->name);
        cJSON_AddStringToObject(ro, "status", run->status);
        cJSON_AddItemToObject(ro, "config", parse_or_null(run->config));
        add_time(ro, "created", run->created_ms);
        cJSON *dsa = cJSON_AddArrayToObject(root, "datasets");
        int64_t *ids = NULL;
        size_t nids = 0;
        if (qai_run_datasets(s, run->id, &ids, &nids) == QAI_OK) {
            for (size_t i = 0; i < nids; i++) {
                qai_dataset_record *d = NULL;
                if (qai_store_dataset_get(s, ids[i], &d) != QAI_OK) continue;
                cJSON *o = cJSON_CreateObject();
                cJSON_AddNumberToObject(o, "id", (double)d->id);
                cJSON_AddStringToObject(o, "name", d->name);
                cJSON_AddStringToObject(o, "version", d->version);
                cJSON_AddStringToObject(o, "manifest_sha256", d->manifest_sha256);
                if (d->uri) cJSON_AddStringToObject(o, "manifest", d->uri);
                else cJSON_AddNullToObject(o, "manifest");
                cJSON_AddItemToObject(o, "sources", dataset_sources(d->uri, d->manifest_sha256));
                cJSON_AddItemToArray(dsa, o);
                qai_free(d);
            }
            qai_free(ids);
        }
        qai_free(run);
    } else {
        cJSON_AddNullToObject(root, "run");
        cJSON_AddArrayToObject(root, "datasets");
    }

    /* evaluations, signatures, stage history, card */
    cJSON *ev = cJSON_AddArrayToObject(root, "evaluations");
    qai_evaluation *e = NULL;
    size_t ne = 0;
    if (qai_evaluation_list(s, mv->id, &e, &ne) == QAI_OK) {
        for (size_t i = 0; i < ne; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "suite", e[i].suite);
            cJSON_AddItemToObject(o, "metrics", parse_or_null(e[i].metrics));
            if (e[i].passed < 0) cJSON_AddNullToObject(o, "passed");
            else cJSON_AddBoolToObject(o, "passed", e[i].passed == 1);
            cJSON_AddItemToArray(ev, o);
        }
        qai_free(e);
    }
    cJSON *sg = cJSON_AddArrayToObject(root, "signatures");
    char **kids = NULL;
    size_t nk = 0;
    if (qai_model_signature_list(s, mv->id, &kids, &nk) == QAI_OK) {
        for (size_t i = 0; i < nk; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "key_id", kids[i]);
            qai_signing_key *k = NULL;
            if (qai_signing_key_get(s, kids[i], &k) == QAI_OK) {
                cJSON_AddStringToObject(o, "name", k->name);
                cJSON_AddBoolToObject(o, "revoked", k->revoked_ms != 0);
                qai_free(k);
            }
            cJSON_AddItemToArray(sg, o);
        }
        qai_free(kids);
    }
    cJSON *hi = cJSON_AddArrayToObject(root, "history");
    qai_stage_event *h = NULL;
    size_t nh = 0;
    if (qai_model_history(s, mv->name, mv->version, &h, &nh) == QAI_OK) {
        for (size_t i = 0; i < nh; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "action", h[i].action);
            cJSON_AddStringToObject(o, "from", qai_stage_name(h[i].from_stage));
            cJSON_AddStringToObject(o, "to", qai_stage_name(h[i].to_stage));
            if (h[i].actor) cJSON_AddStringToObject(o, "actor", h[i].actor);
            else cJSON_AddNullToObject(o, "actor");
            if (h[i].reason) cJSON_AddStringToObject(o, "reason", h[i].reason);
            else cJSON_AddNullToObject(o, "reason");
            add_time(o, "at", h[i].at_ms);
            cJSON_AddItemToArray(hi, o);
        }
        qai_free(h);
    }
    cJSON *card = cJSON_DetachItemFromObjectCaseSensitive(meta, "card");
    cJSON_AddItemToObject(root, "card", card ? card : cJSON_CreateNull());
    cJSON_Delete(meta);
    qai_free(mv);
    *json_out = root;
    return QAI_OK;
}
