/* A small Prometheus registry: families of counters, gauges and histograms,
 * each with series keyed by their label text, rendered in the text exposition
 * format 0.0.4. One mutex; the server updates it per request and per scrape,
 * never per token, so contention does not matter.
 *
 * What it does not do: label validation (callers build label text with
 * qai_metrics_escape), summaries, or expiry of series. */
#include <math.h>
#include <string.h>

#include "serve_internal.h"

enum { M_COUNTER, M_GAUGE, M_HISTOGRAM };

static const double MS_BUCKETS[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000};
static const double COUNT_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
#define MAX_BUCKETS 16

typedef struct {
    char *labels;
    double value;                     /* counter/gauge */
    uint64_t buckets[MAX_BUCKETS];    /* histogram: non-cumulative counts per bucket */
    uint64_t count;
    double sum;
} series;

typedef struct {
    char *name, *help;
    int type;
    const double *bounds;
    int n_bounds;
    series *s;
    int n, cap;
} family;

struct qai_metrics {
    pthread_mutex_t mu;
    family *f;
    int n, cap;
};

qai_metrics *qai_metrics_new(void) {
    qai_metrics *m = qai_calloc(1, sizeof *m);
    if (m) pthread_mutex_init(&m->mu, NULL);
    return m;
}

void qai_metrics_free(qai_metrics *m) {
    if (!m) return;
    for (int i = 0; i < m->n; i++) {
        for (int k = 0; k < m->f[i].n; k++) qai_free(m->f[i].s[k].labels);
        qai_free(m->f[i].s);
        qai_free(m->f[i].name);
        qai_free(m->f[i].help);
    }
    qai_free(m->f);
    pthread_mutex_destroy(&m->mu);
    qai_free(m);
}

/* Finds or creates the series (under m->mu); NULL when out of memory. */
static series *get(qai_metrics *m, const char *name, const char *help, int type, const double *bounds, int nb,
                   const char *labels) {
    family *f = NULL;
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->f[i].name, name)) f = &m->f[i];
    if (!f) {
        if (m->n == m->cap) {
            int nc = m->cap ? m->cap * 2 : 16;
            family *nf = qai_realloc(m->f, (size_t)nc * sizeof *nf);
            if (!nf) return NULL;
            m->f = nf;
            m->cap = nc;
        }
        f = &m->f[m->n];
        memset(f, 0, sizeof *f);
        f->name = qai_strdup(name);
        f->help = qai_strdup(help ? help : "");
        if (!f->name || !f->help) {
            qai_free(f->name);
            qai_free(f->help);
            return NULL;
        }
        f->type = type;
        f->bounds = bounds;
        f->n_bounds = nb;
        m->n++;
    }
    for (int k = 0; k < f->n; k++)
        if (!strcmp(f->s[k].labels, labels)) return &f->s[k];
    if (f->n == f->cap) {
        int nc = f->cap ? f->cap * 2 : 8;
        series *ns = qai_realloc(f->s, (size_t)nc * sizeof *ns);
        if (!ns) return NULL;
        f->s = ns;
        f->cap = nc;
    }
    series *s = &f->s[f->n];
    memset(s, 0, sizeof *s);
    s->labels = qai_strdup(labels ? labels : "");
    if (!s->labels) return NULL;
    f->n++;
    return s;
}

void qai_metrics_add(qai_metrics *m, const char *family_name, const char *help, const char *labels, double v) {
    pthread_mutex_lock(&m->mu);
    series *s = get(m, family_name, help, M_COUNTER, NULL, 0, labels);
    if (s) s->value += v;
    pthread_mutex_unlock(&m->mu);
}

void qai_metrics_set(qai_metrics *m, const char *family_name, const char *help, const char *labels, double v) {
    pthread_mutex_lock(&m->mu);
    series *s = get(m, family_name, help, M_GAUGE, NULL, 0, labels);
    if (s) s->value = v;
    pthread_mutex_unlock(&m->mu);
}

static void observe(qai_metrics *m, const char *name, const char *help, const char *labels, double v,
                    const double *bounds, int nb) {
    pthread_mutex_lock(&m->mu);
    series *s = get(m, name, help, M_HISTOGRAM, bounds, nb, labels);
    if (s) {
        int b = 0;
        while (b < nb && v > bounds[b]) b++;
        s->buckets[b]++; /* b == nb: only +Inf */
        s->count++;
        s->sum += v;
    }
    pthread_mutex_unlock(&m->mu);
}

void qai_metrics_observe(qai_metrics *m, const char *name, const char *help, const char *labels, double v) {
    observe(m, name, help, labels, v, MS_BUCKETS, (int)(sizeof MS_BUCKETS / sizeof MS_BUCKETS[0]));
}

void qai_metrics_observe_count(qai_metrics *m, const char *name, const char *help, const char *labels, double v) {
    observe(m, name, help, labels, v, COUNT_BUCKETS, (int)(sizeof COUNT_BUCKETS / sizeof COUNT_BUCKETS[0]));
}

static void put_labels(sbuf *b, const char *labels, const char *extra) {
    bool any = labels && *labels;
    if (!any && !extra) return;
    sb_puts(b, "{");
    if (any) sb_puts(b, labels);
    if (extra) {
        if (any) sb_puts(b, ",");
        sb_puts(b, extra);
    }
    sb_puts(b, "}");
}

static void put_value(sbuf *b, double v) {
    if (v == floor(v) && fabs(v) < 1e15) sb_printf(b, " %.0f\n", v);
    else
        sb_printf(b, " %.17g\n", v);
}

qai_status qai_metrics_render(qai_metrics *m, char **out, size_t *len) {
    sbuf b = {0};
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n; i++) {
        const family *f = &m->f[i];
        const char *ts = f->type == M_COUNTER ? "counter" : f->type == M_GAUGE ? "gauge" : "histogram";
        sb_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, ts);
        for (int k = 0; k < f->n; k++) {
            const series *s = &f->s[k];
            if (f->type != M_HISTOGRAM) {
                sb_puts(&b, f->name);
                put_labels(&b, s->labels, NULL);
                put_value(&b, s->value);
                continue;
            }
            uint64_t cum = 0;
            char le[48];
            for (int q = 0; q <= f->n_bounds; q++) {
                cum += s->buckets[q];
                if (q < f->n_bounds) snprintf(le, sizeof le, "le=\"%g\"", f->bounds[q]);
                else
                    snprintf(le, sizeof le, "le=\"+Inf\"");
                sb_printf(&b, "%s_bucket", f->name);
                put_labels(&b, s->labels, le);
                put_value(&b, (double)cum);
            }
            sb_printf(&b, "%s_sum", f->name);
            put_labels(&b, s->labels, NULL);
            put_value(&b, s->sum);
            sb_printf(&b, "%s_count", f->name);
            put_labels(&b, s->labels, NULL);
            put_value(&b, (double)s->count);
        }
    }
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        sb_free(&b);
        return qai_error(QAI_ERR_NOMEM, "out of memory rendering metrics");
    }
    if (!b.p) sb_puts(&b, "");
    *out = b.p;
    *len = b.n;
    return QAI_OK;
}

void qai_metrics_escape(const char *s, char *out, size_t cap) {
    size_t o = 0;
    if (!cap) return;
    for (; s && *s && o + 2 < cap; s++) {
        if (*s == '"' || *s == '\\') out[o++] = '\\', out[o++] = *s;
        else if (*s == '\n')
            out[o++] = '\\', out[o++] = 'n';
        else
            out[o++] = *s;
    }
    out[o] = 0;
}
