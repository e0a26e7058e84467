/* The store's typed operations on the lifecycle entities: projects, datasets,
 * training runs, model versions with their stages and promotion history,
 * evaluations, deployments, signing keys and which keys signed what.
 * (API keys are in apikey.c, the audit trail in audit.c.)
 *
 * Each function is one short SQL statement or one transaction; the SQL is
 * the shared dialect described in store_internal.h. Column lists and the
 * struct field tables next to them must stay in the same order. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "registry/store_internal.h"

#define FD(type, t, m) {t, offsetof(type, m), 0}
#define NFIELDS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static bool is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static bool empty(const char *s) { return !s || !*s; }

/* Runs an INSERT ... RETURNING id (or any one-value query) under the handle's lock. */
static qai_status insert_id(qai_store *s, const char *sql, const qv *p, int np, int64_t *id_out, const char *what) {
    qrows rows;
    store_enter(s);
    qai_status st = store_query(s, sql, p, np, &rows, NULL);
    if (st != QAI_OK) {
        st = store_fail(s, st, "%s", what);
        store_leave(s);
        return st;
    }
    if (id_out) *id_out = rows.nrows ? qrows_at(&rows, 0, 0)->i : 0;
    qrows_free(&rows);
    store_leave(s);
    return QAI_OK;
}

/* An UPDATE that must touch a row: 0 rows changed -> QAI_ERR_NOT_FOUND. */
static qai_status update_one(qai_store *s, const char *sql, const qv *p, int np, const char *what) {
    int64_t changed = 0;
    store_enter(s);
    qai_status st = store_query(s, sql, p, np, NULL, &changed);
    if (st != QAI_OK) st = store_fail(s, st, "%s", what);
    else if (changed == 0) st = qai_error(QAI_ERR_NOT_FOUND, "%s not found", what);
    store_leave(s);
    return st;
}

static qai_status fetch(qai_store *s, const char *sql, const qv *p, int np, const fdesc *f, int nf, size_t size,
                        void **out, size_t *n, const char *what) {
    store_enter(s);
    qai_status st = store_fetch(s, sql, p, np, f, nf, size, out, n);
    store_leave(s);
    return st == QAI_OK ? st : qai_error_wrap(st, "%s", what);
}

static qai_status fetch_one(qai_store *s, const char *sql, const qv *p, int np, const fdesc *f, int nf, size_t size,
                            void **out, const char *what) {
    store_enter(s);
    qai_status st = store_fetch_one(s, sql, p, np, f, nf, size, out, what);
    store_leave(s);
    return st;
}

/* ---- projects ----------------------------------------------------------------------- */

static const fdesc project_f[] = {
    FD(qai_project, F_I64, id), FD(qai_project, F_STR, name), FD(qai_project, F_STR, description),
    FD(qai_project, F_I64, created_ms)};
#define PROJECT_COLS "SELECT id, name, description, created_ms FROM projects "

qai_status qai_project_create(qai_store *s, const char *name, const char *description, int64_t *id_out) {
    if (empty(name)) return qai_error(QAI_ERR_ARG, "project: empty name");
    char what[300];
    snprintf(what, sizeof what, "project '%s'", name);
    qv p[] = {qv_text(name), qv_text(description), qv_int(qai_store_now_ms())};
    return insert_id(s, "INSERT INTO projects (name, description, created_ms) VALUES (?, ?, ?) RETURNING id", p, 3,
                     id_out, what);
}

qai_status qai_project_get(qai_store *s, const char *name, qai_project **out) {
    char what[300];
    snprintf(what, sizeof what, "project '%s'", name ? name : "");
    qv p[] = {qv_text(name)};
    return fetch_one(s, PROJECT_COLS "WHERE name = ?", p, 1, project_f, NFIELDS(project_f), sizeof(qai_project),
                     (void **)out, what);
}

qai_status qai_project_list(qai_store *s, qai_project **out, size_t *n) {
    return fetch(s, PROJECT_COLS "ORDER BY id", NULL, 0, project_f, NFIELDS(project_f), sizeof(qai_project),
                 (void **)out, n, "projects");
}

/* ---- datasets ------------------------------------------------------------------------- */

static const fdesc dataset_f[] = {
    FD(qai_dataset_record, F_I64, id),      FD(qai_dataset_record, F_I64, project_id),     FD(qai_dataset_record, F_STR, name),
    FD(qai_dataset_record, F_STR, version), FD(qai_dataset_record, F_STR, manifest_sha256), FD(qai_dataset_record, F_STR, uri),
    FD(qai_dataset_record, F_I64, created_ms)};
#define DATASET_COLS "SELECT id, project_id, name, version, manifest_sha256, uri, created_ms FROM datasets "

qai_status qai_store_dataset_create(qai_store *s, const qai_dataset_record *d, int64_t *id_out) {
    if (empty(d->name) || empty(d->version)) return qai_error(QAI_ERR_ARG, "dataset: name and version are required");
    char what[400];
    snprintf(what, sizeof what, "dataset '%s' version '%s'", d->name, d->version);
    if (!is_hex64(d->manifest_sha256))
        return qai_error(QAI_ERR_ARG, "%s: manifest_sha256 must be 64 lowercase hex digits", what);
    qv p[] = {qv_int(d->project_id), qv_text(d->name),  qv_text(d->version), qv_text(d->manifest_sha256),
              qv_text(d->uri),       qv_int(qai_store_now_ms())};
    return insert_id(s,
                     "INSERT INTO datasets (project_id, name, version, manifest_sha256, uri, created_ms) "
                     "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                     p, 6, id_out, what);
}

qai_status qai_store_dataset_get(qai_store *s, int64_t id, qai_dataset_record **out) {
    char what[64];
    snprintf(what, sizeof what, "dataset %lld", (long long)id);
    qv p[] = {qv_int(id)};
    return fetch_one(s, DATASET_COLS "WHERE id = ?", p, 1, dataset_f, NFIELDS(dataset_f), sizeof(qai_dataset_record),
                     (void **)out, what);
}

qai_status qai_store_dataset_list(qai_store *s, int64_t project_id, qai_dataset_record **out, size_t *n) {
    qv p[] = {qv_int(project_id), qv_int(project_id)};
    return fetch(s, DATASET_COLS "WHERE (CAST(? AS BIGINT) = 0 OR project_id = ?) ORDER BY id", p, 2, dataset_f, NFIELDS(dataset_f),
                 sizeof(qai_dataset_record), (void **)out, n, "datasets");
}

/* ---- runs ------------------------------------------------------------------------------ */

static const fdesc run_f[] = {
    FD(qai_run, F_I64, id),          FD(qai_run, F_I64, project_id),  FD(qai_run, F_STR, name),
    FD(qai_run, F_STR, config),      FD(qai_run, F_STR, status),      FD(qai_run, F_STR, metrics),
    FD(qai_run, F_I64, started_ms),  FD(qai_run, F_I64, finished_ms), FD(qai_run, F_I64, created_ms)};
#define RUN_COLS "SELECT id, project_id, name, config, status, metrics, started_ms, finished_ms, created_ms FROM runs "

static const char *const run_statuses[] = {"queued", "running", "succeeded", "failed", "cancelled"};

static bool valid_run_status(const char *st) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(st, run_statuses[i])) return true;
    return false;
}

typedef struct {
    const qai_run *r;
    const int64_t *ds;
    size_t n;
    int64_t id;
} run_create_arg;

static qai_status run_create_tx(qai_store *s, void *varg) {
    run_create_arg *a = varg;
    const qai_run *r = a->r;
    char what[300];
    snprintf(what, sizeof what, "run '%s'", r->name);
    qv p[] = {qv_int(r->project_id), qv_text(r->name), qv_text(r->config ? r->config : "{}"),
              qv_text(r->status ? r->status : "queued"), qv_text(r->metrics), qv_int(qai_store_now_ms())};
    qrows rows;
    qai_status st = store_query(s,
                                "INSERT INTO runs (project_id, name, config, status, metrics, created_ms) "
                                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                                p, 6, &rows, NULL);
    if (st != QAI_OK) return store_fail(s, st, "%s", what);
    a->id = qrows_at(&rows, 0, 0)->i;
    qrows_free(&rows);
    for (size_t i = 0; i < a->n; i++) {
        qv q[] = {qv_int(a->id), qv_int(a->ds[i])};
        st = store_query(s, "INSERT INTO run_datasets (run_id, dataset_id) VALUES (?, ?)", q, 2, NULL, NULL);
        if (st != QAI_OK) return store_fail(s, st, "%s: dataset %lld", what, (long long)a->ds[i]);
    }
    return QAI_OK;
}

qai_status qai_run_create(qai_store *s, const qai_run *r, const int64_t *dataset_ids, size_t n_datasets,
                          int64_t *id_out) {
    if (empty(r->name)) return qai_error(QAI_ERR_ARG, "run: empty name");
    if (r->status && !valid_run_status(r->status))
        return qai_error(QAI_ERR_ARG, "run '%s': unknown status '%s' (queued, running, succeeded, failed, cancelled)",
                         r->name, r->status);
    run_create_arg a = {r, dataset_ids, n_datasets, 0};
    qai_status st = qai_store_transact(s, run_create_tx, &a);
    if (st == QAI_OK && id_out) *id_out = a.id;
    return st;
}

qai_status qai_run_update(qai_store *s, int64_t id, const char *status, const char *metrics) {
    if (status && !valid_run_status(status))
        return qai_error(QAI_ERR_ARG, "run %lld: unknown status '%s'", (long long)id, status);
    int64_t now = qai_store_now_ms();
    bool final = status && strcmp(status, "queued") && strcmp(status, "running");
    char what[64];
    snprintf(what, sizeof what, "run %lld", (long long)id);
    qv p[] = {qv_text(status), qv_text(metrics), status && !strcmp(status, "running") ? qv_int(now) : (qv){0},
              final ? qv_int(now) : (qv){0}, qv_int(id)};
    return update_one(s,
                      "UPDATE runs SET status = COALESCE(?, status), metrics = COALESCE(?, metrics), "
                      "started_ms = COALESCE(started_ms, ?), finished_ms = COALESCE(?, finished_ms) WHERE id = ?",
                      p, 5, what);
}

qai_status qai_run_get(qai_store *s, int64_t id, qai_run **out) {
    char what[64];
    snprintf(what, sizeof what, "run %lld", (long long)id);
    qv p[] = {qv_int(id)};
    return fetch_one(s, RUN_COLS "WHERE id = ?", p, 1, run_f, NFIELDS(run_f), sizeof(qai_run), (void **)out, what);
}

qai_status qai_run_list(qai_store *s, int64_t project_id, qai_run **out, size_t *n) {
    qv p[] = {qv_int(project_id), qv_int(project_id)};
    return fetch(s, RUN_COLS "WHERE (CAST(? AS BIGINT) = 0 OR project_id = ?) ORDER BY id", p, 2, run_f, NFIELDS(run_f),
                 sizeof(qai_run), (void **)out, n, "runs");
}

qai_status qai_run_datasets(qai_store *s, int64_t run_id, int64_t **ids, size_t *n) {
    qv p[] = {qv_int(run_id)};
    qrows rows;
    store_enter(s);
    qai_status st =
        store_query(s, "SELECT dataset_id FROM run_datasets WHERE run_id = ? ORDER BY dataset_id", p, 1, &rows, NULL);
    store_leave(s);
    if (st != QAI_OK) return qai_error_wrap(st, "run %lld datasets", (long long)run_id);
    *ids = qai_malloc(rows.nrows ? rows.nrows * sizeof(int64_t) : 1);
    if (!*ids) {
        qrows_free(&rows);
        return QAI_ERR_NOMEM;
    }
    for (size_t i = 0; i < rows.nrows; i++) (*ids)[i] = qrows_at(&rows, i, 0)->i;
    *n = rows.nrows;
    qrows_free(&rows);
    return QAI_OK;
}

/* ---- model versions -------------------------------------------------------------------- */

static const fdesc mv_f[] = {
    FD(qai_model_version, F_I64, id),           FD(qai_model_version, F_I64, project_id),
    FD(qai_model_version, F_I64, run_id),       FD(qai_model_version, F_I64, parent_id),
    FD(qai_model_version, F_STR, name),         FD(qai_model_version, F_STR, version),
    FD(qai_model_version, F_STR, sha256),       FD(qai_model_version, F_STR, bundle_sha256),
    FD(qai_model_version, F_STR, uri),          FD(qai_model_version, F_STR, meta),
    FD(qai_model_version, F_STAGE, stage),      FD(qai_model_version, F_I64, created_ms)};
#define MV_COLS                                                                                                        \
    "SELECT id, project_id, run_id, parent_id, name, version, sha256, bundle_sha256, uri, meta, stage, created_ms "    \
    "FROM model_versions "

qai_status qai_model_version_create(qai_store *s, const qai_model_version *m, int64_t *id_out) {
    if (empty(m->name) || empty(m->version)) return qai_error(QAI_ERR_ARG, "model version: name and version are required");
    char what[400];
    snprintf(what, sizeof what, "model version '%s@%s'", m->name, m->version);
    if (strchr(m->name, '@')) return qai_error(QAI_ERR_ARG, "%s: a model name cannot contain '@'", what);
    if (!is_hex64(m->sha256)) return qai_error(QAI_ERR_ARG, "%s: sha256 must be 64 lowercase hex digits", what);
    if (m->bundle_sha256 && !is_hex64(m->bundle_sha256))
        return qai_error(QAI_ERR_ARG, "%s: bundle_sha256 must be 64 lowercase hex digits", what);
    qv p[] = {qv_int_or_null(m->project_id), qv_int_or_null(m->run_id), qv_int_or_null(m->parent_id),
              qv_text(m->name),              qv_text(m->version),      qv_text(m->sha256),
              qv_text(m->bundle_sha256),     qv_text(m->uri),          qv_text(m->meta),
              qv_int(qai_store_now_ms())};
    return insert_id(s,
                     "INSERT INTO model_versions (project_id, run_id, parent_id, name, version, sha256, bundle_sha256, "
                     "uri, meta, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                     p, 10, id_out, what);
}

qai_status qai_model_version_get(qai_store *s, const char *name, const char *version, qai_model_version **out) {
    char what[400];
    snprintf(what, sizeof what, "model version '%s@%s'", name ? name : "", version ? version : "latest");
    if (version) {
        qv p[] = {qv_text(name), qv_text(version)};
        return fetch_one(s, MV_COLS "WHERE name = ? AND version = ?", p, 2, mv_f, NFIELDS(mv_f),
                         sizeof(qai_model_version), (void **)out, what);
    }
    qv p[] = {qv_text(name)};
    return fetch_one(s, MV_COLS "WHERE name = ? ORDER BY id DESC LIMIT 1", p, 1, mv_f, NFIELDS(mv_f),
                     sizeof(qai_model_version), (void **)out, what);
}

qai_status qai_model_version_get_id(qai_store *s, int64_t id, qai_model_version **out) {
    char what[64];
    snprintf(what, sizeof what, "model version %lld", (long long)id);
    qv p[] = {qv_int(id)};
    return fetch_one(s, MV_COLS "WHERE id = ?", p, 1, mv_f, NFIELDS(mv_f), sizeof(qai_model_version), (void **)out,
                     what);
}

qai_status qai_model_version_list(qai_store *s, const char *name, qai_model_version **out, size_t *n) {
    if (name) {
        qv p[] = {qv_text(name)};
        return fetch(s, MV_COLS "WHERE name = ? ORDER BY id", p, 1, mv_f, NFIELDS(mv_f), sizeof(qai_model_version),
                     (void **)out, n, "model versions");
    }
    return fetch(s, MV_COLS "ORDER BY id", NULL, 0, mv_f, NFIELDS(mv_f), sizeof(qai_model_version), (void **)out, n,
                 "model versions");
}

qai_status qai_model_in_stage(qai_store *s, const char *name, qai_stage stage, qai_model_version **out) {
    char what[400];
    snprintf(what, sizeof what, "a version of model '%s' in stage '%s'", name ? name : "", qai_stage_name(stage));
    qv p[] = {qv_text(name), qv_text(qai_stage_name(stage))};
    return fetch_one(s, MV_COLS "WHERE name = ? AND stage = ? ORDER BY id DESC LIMIT 1", p, 2, mv_f, NFIELDS(mv_f),
                     sizeof(qai_model_version), (void **)out, what);
}

/* ---- stages and history ------------------------------------------------------------------- */

static const fdesc ev_f[] = {
    FD(qai_stage_event, F_I64, id),           FD(qai_stage_event, F_I64, model_version_id),
    FD(qai_stage_event, F_STR, name),         FD(qai_stage_event, F_STR, version),
    FD(qai_stage_event, F_STAGE, from_stage), FD(qai_stage_event, F_STAGE, to_stage),
    FD(qai_stage_event, F_STR, action),       FD(qai_stage_event, F_STR, actor),
    FD(qai_stage_event, F_STR, reason),       FD(qai_stage_event, F_I64, at_ms)};
#define EV_COLS                                                                                                        \
    "SELECT e.id, e.model_version_id, e.name, m.version, e.from_stage, e.to_stage, e.action, e.actor, e.reason, "     \
    "e.at_ms FROM stage_events e JOIN model_versions m ON m.id = e.model_version_id "

qai_status qai_model_history(qai_store *s, const char *name, const char *version, qai_stage_event **out, size_t *n) {
    if (version) {
        qv p[] = {qv_text(name), qv_text(version)};
        return fetch(s, EV_COLS "WHERE e.name = ? AND m.version = ? ORDER BY e.id", p, 2, ev_f, NFIELDS(ev_f),
                     sizeof(qai_stage_event), (void **)out, n, "stage history");
    }
    qv p[] = {qv_text(name)};
    return fetch(s, EV_COLS "WHERE e.name = ? ORDER BY e.id", p, 1, ev_f, NFIELDS(ev_f), sizeof(qai_stage_event),
                 (void **)out, n, "stage history");
}

/* Sets a version's stage and records the event (inside a transaction). */
static qai_status set_stage(qai_store *s, const qai_model_version *m, qai_stage to, const char *action,
                            const char *actor, const char *reason) {
    qv p[] = {qv_text(qai_stage_name(to)), qv_int(m->id)};
    qai_status st = store_query(s, "UPDATE model_versions SET stage = ? WHERE id = ?", p, 2, NULL, NULL);
    if (st != QAI_OK) return store_fail(s, st, "model version '%s@%s'", m->name, m->version);
    qv e[] = {qv_int(m->id),    qv_text(m->name), qv_text(qai_stage_name(m->stage)), qv_text(qai_stage_name(to)),
              qv_text(action),  qv_text(actor),   qv_text(reason),                   qv_int(qai_store_now_ms())};
    st = store_query(s,
                     "INSERT INTO stage_events (model_version_id, name, from_stage, to_stage, action, actor, reason, "
                     "at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     e, 8, NULL, NULL);
    if (st != QAI_OK) return store_fail(s, st, "stage history of '%s@%s'", m->name, m->version);
    return QAI_OK;
}

static qai_status lock_model(qai_store *s, const char *name) {
    char res[300];
    snprintf(res, sizeof res, "qai.model:%s", name);
    return store_lock(s, res);
}

typedef struct {
    const char *name, *version, *actor, *reason;
    qai_stage stage;
    qai_model_version *result;
} stage_arg;

static qai_status promote_tx(qai_store *s, void *varg) {
    stage_arg *a = varg;
    qai_status st = lock_model(s, a->name);
    if (st != QAI_OK) return st;
    qai_model_version *m = NULL, *cur = NULL;
    st = store_fetch_one(s, MV_COLS "WHERE name = ? AND version = ?", (qv[]){qv_text(a->name), qv_text(a->version)},
                         2, mv_f, NFIELDS(mv_f), sizeof *m, (void **)&m, "model version");
    if (st != QAI_OK) return qai_error(st, "promote: model version '%s@%s' not found", a->name, a->version);
    if (m->stage == QAI_STAGE_RETIRED)
        st = qai_error(QAI_ERR_ARG, "promote: model version '%s@%s' is retired", a->name, a->version);
    else if (m->stage != a->stage) {
        st = store_fetch_one(s, MV_COLS "WHERE name = ? AND stage = ?",
                             (qv[]){qv_text(a->name), qv_text(qai_stage_name(a->stage))}, 2, mv_f, NFIELDS(mv_f),
                             sizeof *cur, (void **)&cur, "holder");
        if (st == QAI_OK) {
            char why[200];
            snprintf(why, sizeof why, "replaced by %s", a->version);
            st = set_stage(s, cur, QAI_STAGE_NONE, "replace", a->actor, why);
        } else if (st == QAI_ERR_NOT_FOUND)
            st = QAI_OK;
        if (st == QAI_OK) st = set_stage(s, m, a->stage, "promote", a->actor, a->reason);
    }
    qai_free(m);
    qai_free(cur);
    return st;
}

qai_status qai_model_promote(qai_store *s, const char *name, const char *version, qai_stage to, const char *actor,
                             const char *reason) {
    if (empty(name) || empty(version)) return qai_error(QAI_ERR_ARG, "promote: name and version are required");
    if (to != QAI_STAGE_STAGING && to != QAI_STAGE_CANARY && to != QAI_STAGE_PROD)
        return qai_error(QAI_ERR_ARG, "promote '%s@%s': the target stage must be staging, canary or prod (not '%s')",
                         name, version, qai_stage_name(to));
    stage_arg a = {name, version, actor, reason, to, NULL};
    return qai_store_transact(s, promote_tx, &a);
}

/* The version a rollback of `stage` restores (see store.h): replay the
 * model's stage history as a stack per stage. Inside a transaction. */
static qai_status find_previous(qai_store *s, const char *name, qai_stage stage, qai_model_version **out) {
    qai_stage_event *ev = NULL;
    size_t n = 0;
    qai_status st = store_fetch(s, EV_COLS "WHERE e.name = ? ORDER BY e.id", (qv[]){qv_text(name)}, 1, ev_f,
                                NFIELDS(ev_f), sizeof *ev, (void **)&ev, &n);
    if (st != QAI_OK) return st;
    int64_t *stack = qai_malloc((n + 1) * sizeof *stack);
    if (!stack) {
        qai_free(ev);
        return QAI_ERR_NOMEM;
    }
    size_t top = 0;
#define REMOVE(idv)                                                                                                    \
    do {                                                                                                               \
        size_t w_ = 0;                                                                                                 \
        for (size_t r_ = 0; r_ < top; r_++)                                                                            \
            if (stack[r_] != (idv)) stack[w_++] = stack[r_];                                                           \
        top = w_;                                                                                                      \
    } while (0)
    for (size_t i = 0; i < n; i++) {
        const qai_stage_event *e = &ev[i];
        bool moves = !strcmp(e->action, "promote") || !strcmp(e->action, "rollback");
        if (moves && e->to_stage == stage) {
            REMOVE(e->model_version_id);
            stack[top++] = e->model_version_id;
        } else if ((moves && e->from_stage == stage) || !strcmp(e->action, "retire"))
            REMOVE(e->model_version_id);
        /* "replace": pushed out by a newer promotion, stays below it on the stack */
    }
#undef REMOVE
    qai_free(ev);
    qai_model_version *cur = NULL;
    int64_t cur_id = 0;
    st = store_fetch_one(s, MV_COLS "WHERE name = ? AND stage = ?", (qv[]){qv_text(name), qv_text(qai_stage_name(stage))},
                         2, mv_f, NFIELDS(mv_f), sizeof *cur, (void **)&cur, "holder");
    if (st == QAI_OK) cur_id = cur->id;
    qai_free(cur);
    if (st != QAI_OK && st != QAI_ERR_NOT_FOUND) {
        qai_free(stack);
        return st;
    }
    st = QAI_ERR_NOT_FOUND;
    while (top > 0 && st == QAI_ERR_NOT_FOUND) {
        int64_t id = stack[--top];
        if (id == cur_id) continue;
        st = store_fetch_one(s, MV_COLS "WHERE id = ?", (qv[]){qv_int(id)}, 1, mv_f, NFIELDS(mv_f),
                             sizeof(qai_model_version), (void **)out, "model version");
        if (st == QAI_OK && (*out)->stage == QAI_STAGE_RETIRED) {
            qai_free(*out);
            *out = NULL;
            st = QAI_ERR_NOT_FOUND;
        }
    }
    qai_free(stack);
    if (st == QAI_ERR_NOT_FOUND)
        return qai_error(st, "model '%s': no previous version was promoted to '%s'", name, qai_stage_name(stage));
    return st;
}

static qai_status previous_tx(qai_store *s, void *varg) {
    stage_arg *a = varg;
    return find_previous(s, a->name, a->stage, &a->result);
}

qai_status qai_model_previous(qai_store *s, const char *name, qai_stage stage, qai_model_version **out) {
    stage_arg a = {name, NULL, NULL, NULL, stage, NULL};
    qai_status st = qai_store_transact(s, previous_tx, &a);
    if (st == QAI_OK) *out = a.result;
    return st;
}

static qai_status rollback_tx(qai_store *s, void *varg) {
    stage_arg *a = varg;
    qai_status st = lock_model(s, a->name);
    if (st != QAI_OK) return st;
    qai_model_version *prev = NULL, *cur = NULL;
    st = find_previous(s, a->name, a->stage, &prev);
    if (st != QAI_OK) return st;
    st = store_fetch_one(s, MV_COLS "WHERE name = ? AND stage = ?",
                         (qv[]){qv_text(a->name), qv_text(qai_stage_name(a->stage))}, 2, mv_f, NFIELDS(mv_f),
                         sizeof *cur, (void **)&cur, "holder");
    if (st == QAI_OK) st = set_stage(s, cur, QAI_STAGE_NONE, "rollback", a->actor, a->reason);
    else if (st == QAI_ERR_NOT_FOUND) st = QAI_OK;
    if (st == QAI_OK) st = set_stage(s, prev, a->stage, "rollback", a->actor, a->reason);
    qai_free(cur);
    if (st == QAI_OK) {
        prev->stage = a->stage;
        a->result = prev;
    } else
        qai_free(prev);
    return st;
}

qai_status qai_model_rollback(qai_store *s, const char *name, qai_stage stage, const char *actor, const char *reason,
                              qai_model_version **restored_out) {
    if (empty(name)) return qai_error(QAI_ERR_ARG, "rollback: empty model name");
    if (stage != QAI_STAGE_STAGING && stage != QAI_STAGE_CANARY && stage != QAI_STAGE_PROD)
        return qai_error(QAI_ERR_ARG, "rollback '%s': the stage must be staging, canary or prod", name);
    stage_arg a = {name, NULL, actor, reason, stage, NULL};
    qai_status st = qai_store_transact(s, rollback_tx, &a);
    if (st == QAI_OK) {
        if (restored_out) *restored_out = a.result;
        else qai_free(a.result);
    }
    return st;
}

static qai_status retire_tx(qai_store *s, void *varg) {
    stage_arg *a = varg;
    qai_status st = lock_model(s, a->name);
    if (st != QAI_OK) return st;
    qai_model_version *m = NULL;
    st = store_fetch_one(s, MV_COLS "WHERE name = ? AND version = ?", (qv[]){qv_text(a->name), qv_text(a->version)},
                         2, mv_f, NFIELDS(mv_f), sizeof *m, (void **)&m, "model version");
    if (st != QAI_OK) return qai_error(st, "retire: model version '%s@%s' not found", a->name, a->version);
    if (m->stage != QAI_STAGE_RETIRED) st = set_stage(s, m, QAI_STAGE_RETIRED, "retire", a->actor, a->reason);
    qai_free(m);
    return st;
}

qai_status qai_model_retire(qai_store *s, const char *name, const char *version, const char *actor,
                            const char *reason) {
    if (empty(name) || empty(version)) return qai_error(QAI_ERR_ARG, "retire: name and version are required");
    stage_arg a = {name, version, actor, reason, QAI_STAGE_RETIRED, NULL};
    return qai_store_transact(s, retire_tx, &a);
}

/* ---- signatures ---------------------------------------------------------------------- */

qai_status qai_model_signature_add(qai_store *s, int64_t model_version_id, const char *key_id) {
    if (empty(key_id)) return qai_error(QAI_ERR_ARG, "signature: empty key id");
    char what[300];
    snprintf(what, sizeof what, "signature of model version %lld by key '%s'", (long long)model_version_id, key_id);
    qv p[] = {qv_int(model_version_id), qv_text(key_id), qv_int(qai_store_now_ms())};
    return insert_id(s, "INSERT INTO model_signatures (model_version_id, key_id, added_ms) VALUES (?, ?, ?)", p, 3,
                     NULL, what);
}

qai_status qai_model_signature_list(qai_store *s, int64_t model_version_id, char ***key_ids, size_t *n) {
    qrows rows;
    store_enter(s);
    qai_status st = store_query(s, "SELECT key_id FROM model_signatures WHERE model_version_id = ? ORDER BY added_ms, key_id",
                                (qv[]){qv_int(model_version_id)}, 1, &rows, NULL);
    store_leave(s);
    if (st != QAI_OK) return qai_error_wrap(st, "signatures of model version %lld", (long long)model_version_id);
    size_t bytes = (rows.nrows + 1) * sizeof(char *);
    for (size_t i = 0; i < rows.nrows; i++) bytes += qrows_at(&rows, i, 0)->n + 1;
    char **arr = qai_malloc(bytes);
    if (!arr) {
        qrows_free(&rows);
        return QAI_ERR_NOMEM;
    }
    char *heap = (char *)(arr + rows.nrows + 1);
    for (size_t i = 0; i < rows.nrows; i++) {
        const qv *c = qrows_at(&rows, i, 0);
        arr[i] = heap;
        memcpy(heap, c->p, c->n);
        heap[c->n] = 0;
        heap += c->n + 1;
    }
    arr[rows.nrows] = NULL;
    *key_ids = arr;
    *n = rows.nrows;
    qrows_free(&rows);
    return QAI_OK;
}

/* ---- evaluations ------------------------------------------------------------------------ */

static const fdesc eval_f[] = {
    FD(qai_evaluation, F_I64, id),      FD(qai_evaluation, F_I64, model_version_id),
    FD(qai_evaluation, F_STR, suite),   FD(qai_evaluation, F_STR, metrics),
    FD(qai_evaluation, F_INT, passed),  FD(qai_evaluation, F_STR, report_sha256),
    FD(qai_evaluation, F_I64, created_ms)};
#define EVAL_COLS "SELECT id, model_version_id, suite, metrics, passed, report_sha256, created_ms FROM evaluations "

qai_status qai_evaluation_create(qai_store *s, const qai_evaluation *e, int64_t *id_out) {
    if (empty(e->suite)) return qai_error(QAI_ERR_ARG, "evaluation: empty suite name");
    char what[300];
    snprintf(what, sizeof what, "evaluation '%s' of model version %lld", e->suite, (long long)e->model_version_id);
    if (e->passed < -1 || e->passed > 1) return qai_error(QAI_ERR_ARG, "%s: passed must be -1, 0 or 1", what);
    if (e->report_sha256 && !is_hex64(e->report_sha256))
        return qai_error(QAI_ERR_ARG, "%s: report_sha256 must be 64 lowercase hex digits", what);
    qv p[] = {qv_int(e->model_version_id), qv_text(e->suite),         qv_text(e->metrics ? e->metrics : "{}"),
              qv_int(e->passed),           qv_text(e->report_sha256), qv_int(qai_store_now_ms())};
    return insert_id(s,
                     "INSERT INTO evaluations (model_version_id, suite, metrics, passed, report_sha256, created_ms) "
                     "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                     p, 6, id_out, what);
}

qai_status qai_evaluation_get(qai_store *s, int64_t id, qai_evaluation **out) {
    char what[64];
    snprintf(what, sizeof what, "evaluation %lld", (long long)id);
    return fetch_one(s, EVAL_COLS "WHERE id = ?", (qv[]){qv_int(id)}, 1, eval_f, NFIELDS(eval_f),
                     sizeof(qai_evaluation), (void **)out, what);
}

qai_status qai_evaluation_list(qai_store *s, int64_t model_version_id, qai_evaluation **out, size_t *n) {
    qv p[] = {qv_int(model_version_id), qv_int(model_version_id)};
    return fetch(s, EVAL_COLS "WHERE (CAST(? AS BIGINT) = 0 OR model_version_id = ?) ORDER BY id", p, 2, eval_f, NFIELDS(eval_f),
                 sizeof(qai_evaluation), (void **)out, n, "evaluations");
}

/* ---- deployments ---------------------------------------------------------------------------- */

static const fdesc dep_f[] = {
    FD(qai_deployment, F_I64, id),          FD(qai_deployment, F_I64, model_version_id),
    FD(qai_deployment, F_STR, environment), FD(qai_deployment, F_STR, variant),
    FD(qai_deployment, F_INT, weight),      FD(qai_deployment, F_STR, status),
    FD(qai_deployment, F_I64, created_ms),  FD(qai_deployment, F_I64, updated_ms)};
#define DEP_COLS                                                                                                       \
    "SELECT id, model_version_id, environment, variant, weight, status, created_ms, updated_ms FROM deployments "

static bool valid_dep_status(const char *st) { return !strcmp(st, "active") || !strcmp(st, "stopped"); }

qai_status qai_deployment_create(qai_store *s, const qai_deployment *d, int64_t *id_out) {
    if (empty(d->environment)) return qai_error(QAI_ERR_ARG, "deployment: empty environment");
    char what[300];
    snprintf(what, sizeof what, "deployment of model version %lld to '%s'", (long long)d->model_version_id,
             d->environment);
    if (d->weight < 0 || d->weight > 100) return qai_error(QAI_ERR_ARG, "%s: weight %d is not in 0..100", what, d->weight);
    if (d->status && !valid_dep_status(d->status))
        return qai_error(QAI_ERR_ARG, "%s: status must be 'active' or 'stopped'", what);
    int64_t now = qai_store_now_ms();
    qv p[] = {qv_int(d->model_version_id), qv_text(d->environment), qv_text(d->variant), qv_int(d->weight),
              qv_text(d->status ? d->status : "active"), qv_int(now), qv_int(now)};
    return insert_id(s,
                     "INSERT INTO deployments (model_version_id, environment, variant, weight, status, created_ms, "
                     "updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                     p, 7, id_out, what);
}

qai_status qai_deployment_update(qai_store *s, int64_t id, const char *status, int weight) {
    char what[64];
    snprintf(what, sizeof what, "deployment %lld", (long long)id);
    if (status && !valid_dep_status(status)) return qai_error(QAI_ERR_ARG, "%s: status must be 'active' or 'stopped'", what);
    if (weight < 0 || weight > 100) return qai_error(QAI_ERR_ARG, "%s: weight %d is not in 0..100", what, weight);
    qv p[] = {qv_text(status), qv_int(weight), qv_int(qai_store_now_ms()), qv_int(id)};
    return update_one(s, "UPDATE deployments SET status = COALESCE(?, status), weight = ?, updated_ms = ? WHERE id = ?",
                      p, 4, what);
}

qai_status qai_deployment_get(qai_store *s, int64_t id, qai_deployment **out) {
    char what[64];
    snprintf(what, sizeof what, "deployment %lld", (long long)id);
    return fetch_one(s, DEP_COLS "WHERE id = ?", (qv[]){qv_int(id)}, 1, dep_f, NFIELDS(dep_f), sizeof(qai_deployment),
                     (void **)out, what);
}

qai_status qai_deployment_list(qai_store *s, const char *environment, qai_deployment **out, size_t *n) {
    if (environment)
        return fetch(s, DEP_COLS "WHERE environment = ? ORDER BY id", (qv[]){qv_text(environment)}, 1, dep_f,
                     NFIELDS(dep_f), sizeof(qai_deployment), (void **)out, n, "deployments");
    return fetch(s, DEP_COLS "ORDER BY id", NULL, 0, dep_f, NFIELDS(dep_f), sizeof(qai_deployment), (void **)out, n,
                 "deployments");
}

/* ---- signing keys ---------------------------------------------------------------------------- */

static const fdesc sk_f[] = {
    FD(qai_signing_key, F_STR, key_id),     FD(qai_signing_key, F_STR, name),
    FD(qai_signing_key, F_STR, algorithm),  {F_BLOB, offsetof(qai_signing_key, public_key), offsetof(qai_signing_key, public_key_len)},
    FD(qai_signing_key, F_I64, created_ms), FD(qai_signing_key, F_I64, revoked_ms),
    FD(qai_signing_key, F_STR, revoke_reason)};
#define SK_COLS "SELECT key_id, name, algorithm, public_key, created_ms, revoked_ms, revoke_reason FROM signing_keys "

qai_status qai_signing_key_add(qai_store *s, const qai_signing_key *k) {
    if (empty(k->key_id) || empty(k->name) || empty(k->algorithm) || !k->public_key || !k->public_key_len)
        return qai_error(QAI_ERR_ARG, "signing key: key_id, name, algorithm and public_key are required");
    char what[300];
    snprintf(what, sizeof what, "signing key '%s'", k->key_id);
    qv p[] = {qv_text(k->key_id), qv_text(k->name), qv_text(k->algorithm), qv_blob(k->public_key, k->public_key_len),
              qv_int(k->created_ms ? k->created_ms : qai_store_now_ms())};
    return insert_id(s,
                     "INSERT INTO signing_keys (key_id, name, algorithm, public_key, created_ms) VALUES (?, ?, ?, ?, ?)",
                     p, 5, NULL, what);
}

qai_status qai_signing_key_get(qai_store *s, const char *key_id, qai_signing_key **out) {
    char what[300];
    snprintf(what, sizeof what, "signing key '%s'", key_id ? key_id : "");
    return fetch_one(s, SK_COLS "WHERE key_id = ?", (qv[]){qv_text(key_id)}, 1, sk_f, NFIELDS(sk_f),
                     sizeof(qai_signing_key), (void **)out, what);
}

qai_status qai_signing_key_list(qai_store *s, qai_signing_key **out, size_t *n) {
    return fetch(s, SK_COLS "ORDER BY created_ms, key_id", NULL, 0, sk_f, NFIELDS(sk_f), sizeof(qai_signing_key),
                 (void **)out, n, "signing keys");
}

qai_status qai_signing_key_revoke(qai_store *s, const char *key_id, const char *reason) {
    char what[300];
    snprintf(what, sizeof what, "signing key '%s'", key_id ? key_id : "");
    qv p[] = {qv_int(qai_store_now_ms()), qv_text(reason), qv_text(key_id)};
    return update_one(s,
                      "UPDATE signing_keys SET revoke_reason = CASE WHEN revoked_ms IS NULL THEN ? ELSE revoke_reason END, "
                      "revoked_ms = COALESCE(revoked_ms, ?) WHERE key_id = ?",
                      (qv[]){p[1], p[0], p[2]}, 3, what);
}
