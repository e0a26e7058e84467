/* serve.yaml → qai_serve_params, and the traffic-splitting routes: a route
 * name maps to weighted variants, each a loaded model. A request names the
 * route in "model"; the variant is drawn by weight, or, when the request has a
 * "user" and the route is sticky (the default), by a hash of the user so the
 * same user keeps the same variant while the weights stay the same.
 *
 * What it does not do: load or unload models on reload — only the routes and
 * their weights change (a new model needs a restart). */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "routes.h"

typedef struct {
    char *name;
    int model;
    double weight;
} variant;

typedef struct {
    char *name;
    bool sticky;
    variant *v;
    int n;
    double total;
} route;

struct serve_routes {
    route *r;
    int n;
};

void serve_routes_free(serve_routes *rt) {
    if (!rt) return;
    for (int i = 0; i < rt->n; i++) {
        for (int k = 0; k < rt->r[i].n; k++) qai_free(rt->r[i].v[k].name);
        qai_free(rt->r[i].v);
        qai_free(rt->r[i].name);
    }
    qai_free(rt->r);
    qai_free(rt);
}

qai_status serve_routes_build(const void *json, const char *const *models, int n_models, serve_routes **out) {
    *out = NULL;
    const cJSON *root = json;
    serve_routes *rt = qai_calloc(1, sizeof *rt);
    if (!rt) return QAI_ERR_NOMEM;
    if (!root || cJSON_IsNull(root)) {
        *out = rt;
        return QAI_OK;
    }
    if (!cJSON_IsObject(root)) {
        qai_free(rt);
        return qai_error(QAI_ERR_FORMAT, "routes: must be a mapping of route name to {variants, sticky}");
    }
    int n = cJSON_GetArraySize(root);
    rt->r = qai_calloc((size_t)(n ? n : 1), sizeof(route));
    if (!rt->r) goto nomem;
    for (const cJSON *it = root->child; it; it = it->next) {
        route *r = &rt->r[rt->n++];
        r->name = qai_strdup(it->string);
        r->sticky = true;
        if (!r->name) goto nomem;
        if (!cJSON_IsObject(it)) {
            serve_routes_free(rt);
            return qai_error(QAI_ERR_FORMAT, "routes.%s: must be a mapping with 'variants'", it->string);
        }
        const cJSON *sticky = cJSON_GetObjectItemCaseSensitive(it, "sticky");
        if (sticky) {
            if (!cJSON_IsBool(sticky)) {
                serve_routes_free(rt);
                return qai_error(QAI_ERR_FORMAT, "routes.%s.sticky: must be true or false", it->string);
            }
            r->sticky = cJSON_IsTrue(sticky);
        }
        const cJSON *vs = cJSON_GetObjectItemCaseSensitive(it, "variants");
        if (!cJSON_IsObject(vs) || !vs->child) {
            serve_routes_free(rt);
            return qai_error(QAI_ERR_FORMAT, "routes.%s.variants: must be a non-empty mapping of variant name to {model, weight}",
                             it->string);
        }
        r->v = qai_calloc((size_t)cJSON_GetArraySize(vs), sizeof(variant));
        if (!r->v) goto nomem;
        for (const cJSON *v = vs->child; v; v = v->next) {
            variant *va = &r->v[r->n++];
            va->name = qai_strdup(v->string);
            if (!va->name) goto nomem;
            const cJSON *model = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "model") : NULL;
            const cJSON *w = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "weight") : NULL;
            if (!cJSON_IsString(model)) {
                serve_routes_free(rt);
                return qai_error(QAI_ERR_FORMAT, "routes.%s.variants.%s.model: must name a loaded model", it->string,
                                 v->string);
            }
            va->model = -1;
            for (int m = 0; m < n_models; m++)
                if (!strcmp(models[m], model->valuestring)) va->model = m;
            if (va->model < 0) {
                qai_status st = qai_error(QAI_ERR_NOT_FOUND,
                                          "routes.%s.variants.%s.model: '%s' is not one of the loaded models (reloading "
                                          "cannot add models; restart the server)",
                                          it->string, v->string, model->valuestring);
                serve_routes_free(rt);
                return st;
            }
            va->weight = 1;
            if (w) {
                if (!cJSON_IsNumber(w) || !(w->valuedouble >= 0) || !isfinite(w->valuedouble)) {
                    serve_routes_free(rt);
                    return qai_error(QAI_ERR_FORMAT, "routes.%s.variants.%s.weight: must be a number >= 0", it->string,
                                     v->string);
                }
                va->weight = w->valuedouble;
            }
            r->total += va->weight;
        }
        if (!(r->total > 0)) {
            serve_routes_free(rt);
            return qai_error(QAI_ERR_FORMAT, "routes.%s: the weights of its variants add up to 0", it->string);
        }
    }
    *out = rt;
    return QAI_OK;
nomem:
    serve_routes_free(rt);
    return qai_error(QAI_ERR_NOMEM, "out of memory reading the routes");
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    /* finalize (splitmix) so nearby strings spread over the whole range */
    h ^= h >> 30, h *= 0xbf58476d1ce4e5b9ull, h ^= h >> 27, h *= 0x94d049bb133111ebull, h ^= h >> 31;
    return h;
}

int serve_routes_pick(const serve_routes *rt, const char *name, const char *user, uint64_t rnd, const char **variant_name) {
    for (int i = 0; rt && i < rt->n; i++) {
        const route *r = &rt->r[i];
        if (strcmp(r->name, name)) continue;
        uint64_t h = r->sticky && user && *user ? fnv1a(user) : rnd;
        double u = (double)(h >> 11) * (1.0 / 9007199254740992.0) * r->total;
        int pick = r->n - 1;
        double acc = 0;
        for (int k = 0; k < r->n; k++) {
            acc += r->v[k].weight;
            if (u < acc && r->v[k].weight > 0) {
                pick = k;
                break;
            }
        }
        while (pick > 0 && r->v[pick].weight <= 0) pick--; /* rounding at the top end */
        if (variant_name) *variant_name = r->v[pick].name;
        return r->v[pick].model;
    }
    return -1;
}

int serve_routes_count(const serve_routes *rt) { return rt ? rt->n : 0; }
const char *serve_routes_name(const serve_routes *rt, int i) { return rt->r[i].name; }

/* ---- serve.yaml ---- */

static qai_status cfg_int(const cJSON *cfg, const char *file, const char *key, long long lo, long long hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return QAI_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return qai_error(QAI_ERR_FORMAT, "%s: '%s' must be an integer in [%lld, %lld]", file, key, lo, hi);
    *out = (int)v->valuedouble;
    return QAI_OK;
}

qai_status qai_serve_config_apply(const void *cfgv, const char *file, qai_serve_params *p,
                                  qai_serve_model_spec **models_out) {
    const cJSON *cfg = cfgv;
    *models_out = NULL;
    if (!file) file = "config";
    if (!cJSON_IsObject(cfg)) return qai_error(QAI_ERR_FORMAT, "%s: must be a mapping of settings", file);
    /* the last six are the command's (qai serve reads them: keys, store,
     * bundles, logging); accepted here so a config may hold every setting */
    static const char *known[] = {"host",   "port",     "parallel",  "ctx",   "threads", "batch",
                                  "max_queue", "max_body", "timeout", "max_tokens", "template", "models",
                                  "routes", "drain",    "auth",      "store", "data_dir", "trust",
                                  "require_signed", "quiet", "kv_type"};
    for (const cJSON *it = cfg->child; it; it = it->next) {
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) ok |= !strcmp(it->string, known[k]);
        if (!ok) return qai_error(QAI_ERR_FORMAT, "%s: unknown setting '%s'", file, it->string);
    }
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(cfg, "host");
    if (host) {
        if (!cJSON_IsString(host)) return qai_error(QAI_ERR_FORMAT, "%s: 'host' must be a string", file);
        p->host = host->valuestring;
    }
    qai_status st;
    int max_body = -1;
    if ((st = cfg_int(cfg, file, "port", 0, 65535, &p->port)) || (st = cfg_int(cfg, file, "parallel", 1, 256, &p->parallel)) ||
        (st = cfg_int(cfg, file, "ctx", 0, 1 << 20, &p->n_ctx)) || (st = cfg_int(cfg, file, "threads", 0, 512, &p->n_threads)) ||
        (st = cfg_int(cfg, file, "batch", 1, 1 << 16, &p->batch)) ||
        (st = cfg_int(cfg, file, "max_queue", 0, 1 << 20, &p->max_queue)) ||
        (st = cfg_int(cfg, file, "max_body", 1, 1 << 30, &max_body)) ||
        (st = cfg_int(cfg, file, "max_tokens", 0, 1 << 30, &p->max_tokens_default)))
        return st;
    if (max_body > 0) p->max_body = (size_t)max_body;
    const cJSON *kvt = cJSON_GetObjectItemCaseSensitive(cfg, "kv_type");
    if (kvt && (!cJSON_IsString(kvt) || qai_kv_type_parse(kvt->valuestring, &p->kv_type)))
        return qai_error(QAI_ERR_FORMAT, "%s: 'kv_type' must be f16 or f32", file);
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(cfg, "timeout");
    if (to) {
        if (!cJSON_IsNumber(to) || to->valuedouble < 0) return qai_error(QAI_ERR_FORMAT, "%s: 'timeout' must be seconds >= 0", file);
        p->timeout_s = to->valuedouble;
    }
    const cJSON *drain = cJSON_GetObjectItemCaseSensitive(cfg, "drain");
    if (drain) {
        if (!cJSON_IsNumber(drain) || drain->valuedouble < 0) return qai_error(QAI_ERR_FORMAT, "%s: 'drain' must be seconds >= 0", file);
        p->drain_s = drain->valuedouble;
    }
    const cJSON *quiet = cJSON_GetObjectItemCaseSensitive(cfg, "quiet");
    if (quiet) {
        if (!cJSON_IsBool(quiet)) return qai_error(QAI_ERR_FORMAT, "%s: 'quiet' must be true or false", file);
        p->quiet = cJSON_IsTrue(quiet);
    }
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(cfg, "template");
    if (tmpl && !cJSON_IsString(tmpl)) return qai_error(QAI_ERR_FORMAT, "%s: 'template' must be a string", file);
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(cfg, "models");
    if (models) {
        if (!cJSON_IsObject(models) || !models->child)
            return qai_error(QAI_ERR_FORMAT, "%s: 'models' must be a mapping of name to path or {path, template}", file);
        int n = cJSON_GetArraySize(models);
        qai_serve_model_spec *ms = qai_calloc((size_t)n, sizeof *ms);
        if (!ms) return QAI_ERR_NOMEM;
        int i = 0;
        for (const cJSON *m = models->child; m; m = m->next, i++) {
            ms[i].name = m->string;
            ms[i].template_name = tmpl ? tmpl->valuestring : NULL;
            if (cJSON_IsString(m)) ms[i].path = m->valuestring;
            else if (cJSON_IsObject(m)) {
                const cJSON *path = cJSON_GetObjectItemCaseSensitive(m, "path");
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(m, "template");
                if (!cJSON_IsString(path) || (t && !cJSON_IsString(t))) {
                    qai_free(ms);
                    return qai_error(QAI_ERR_FORMAT, "%s: models.%s: needs a string 'path' (and an optional string 'template')",
                                     file, m->string);
                }
                ms[i].path = path->valuestring;
                if (t) ms[i].template_name = t->valuestring;
            } else {
                qai_free(ms);
                return qai_error(QAI_ERR_FORMAT, "%s: models.%s: must be a path or {path, template}", file, m->string);
            }
        }
        p->models = ms;
        p->n_models = n;
        *models_out = ms;
    }
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(cfg, "routes");
    if (routes) p->routes = routes;
    return QAI_OK;
}
