/* bench_extract — throughput of document extraction + chunking per format, and
 * of MinHash and PII redaction, in MB/s of input bytes.
 *
 * Inputs are loaded into memory first (so disk and gunzip are timed apart):
 * man pages from /usr/share/man/man1..8 (gunzipped; gunzip MB/s reported on
 * its own), HTML files (*.html) under /usr/share/doc, Markdown (*.md) under
 * /usr/share/doc, plain text from /usr/share/common-licenses and the copyright
 * files under /usr/share/doc; JSONL and CSV are generated from the man text.
 * Formats with no files on the machine are skipped (and said so).
 * Chunking uses the defaults (256 tokens, 32 overlap, 4-byte estimate).
 * Each measurement is the best of ROUNDS passes (default 3) in CPU time of
 * the process (single-threaded), so a busy shared machine does not skew it.
 *
 * usage: bench_extract [--quick] [--max-files N]   (per format, default 3000) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "qai/ingest.h"

typedef struct {
    char *name;
    char *data;
    size_t n;
} file_t;

typedef struct {
    file_t *f;
    int n, cap;
    size_t bytes;
} set_t;

static int max_files = 3000;

static void add(set_t *s, const char *name, char *data, size_t n) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->f = realloc(s->f, (size_t)s->cap * sizeof *s->f);
    }
    s->f[s->n++] = (file_t){strdup(name), data, n};
    s->bytes += n;
}

static void walk(const char *dir, const char *suffix, set_t *s, int depth) {
    if (s->n >= max_files || depth > 6) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && s->n < max_files) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            walk(p, suffix, s, depth + 1);
            continue;
        }
        if (!S_ISREG(st.st_mode)) continue;
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (sl && (l < sl || strcmp(e->d_name + l - sl, suffix) != 0)) continue;
        char *data;
        size_t n;
        if (qai_doc_load_bytes(p, &data, &n) != QAI_OK) continue;
        add(s, p, data, n);
    }
    closedir(d);
}

/* CPU time of this (single-threaded) process: on a shared machine wall time measures the neighbours */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rounds = 3;

/* extraction + chunking of every file; returns best seconds; counts docs/chunks/errors */
static double run_extract(const set_t *s, qai_doc_type t, long *docs, long *chunks, long *errors) {
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        long nd = 0, nc = 0, ne = 0;
        double t0 = now();
        for (int i = 0; i < s->n; i++) {
            qai_doc_list dl;
            int bad;
            if (qai_doc_extract_records(s->f[i].name, s->f[i].data, s->f[i].n, t, &dl, &bad) != QAI_OK) {
                ne++;
                continue;
            }
            for (int k = 0; k < dl.n_docs; k++) {
                qai_chunk *c;
                int n;
                if (qai_chunk_doc(&dl.docs[k], NULL, &c, &n) == QAI_OK) {
                    nc += n;
                    qai_chunks_free(c, n);
                }
            }
            nd += dl.n_docs;
            qai_doc_list_free(&dl);
        }
        double d = now() - t0;
        if (d < best) best = d;
        *docs = nd;
        *chunks = nc;
        *errors = ne;
    }
    return best;
}

static void report(const char *label, const set_t *s, qai_doc_type t) {
    if (!s->n) {
        printf("%-10s no input files found, skipped\n", label);
        return;
    }
    long docs = 0, chunks = 0, errors = 0;
    double d = run_extract(s, t, &docs, &chunks, &errors);
    printf("%-10s %6d files %8.1f MB  extract+chunk %7.1f MB/s  (%ld docs, %ld chunks, %ld refused)\n", label, s->n,
           s->bytes / 1e6, s->bytes / 1e6 / d, docs, chunks, errors);
}

static char *gen_records(const set_t *man, bool csv, size_t *n_out) {
    size_t cap = 1 << 20, n = 0;
    char *o = malloc(cap);
    if (csv) n += (size_t)sprintf(o, "id,text,tag\n");
    for (int i = 0; i < man->n && n < (32u << 20); i++) {
        qai_doc_list dl;
        if (qai_doc_extract(man->f[i].name, man->f[i].data, man->f[i].n, QAI_DOC_MAN, &dl) != QAI_OK) continue;
        for (int k = 0; k < dl.n_docs; k++) {
            const qai_doc *d = &dl.docs[k];
            size_t need = d->len * 2 + 256 + (d->title ? strlen(d->title) * 2 : 0);
            while (n + need >= cap) o = realloc(o, cap *= 2);
            if (csv) n += (size_t)sprintf(o + n, "%d,\"", i);
            else n += (size_t)sprintf(o + n, "{\"id\": %d, \"text\": \"", i);
            for (size_t j = 0; j < d->len; j++) {
                char c = d->text[j];
                if (csv) {
                    if (c == '"') o[n++] = '"';
                    o[n++] = c;
                } else if (c == '"' || c == '\\') {
                    o[n++] = '\\';
                    o[n++] = c;
                } else if (c == '\n') {
                    o[n++] = '\\';
                    o[n++] = 'n';
                } else if (c == '\t') {
                    o[n++] = ' ';
                } else
                    o[n++] = c;
            }
            n += (size_t)sprintf(o + n, csv ? "\",x\n" : "\"}\n");
        }
        qai_doc_list_free(&dl);
    }
    *n_out = n;
    return o;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) {
            rounds = 1;
            max_files = 300;
        } else if (!strcmp(argv[i], "--max-files") && i + 1 < argc)
            max_files = atoi(argv[++i]);
    }
    set_t man = {0}, html = {0}, md = {0}, txt = {0};
    /* man: time the gunzip separately */
    double t0 = now();
    const char *mandirs[] = {"/usr/share/man/man1", "/usr/share/man/man3", "/usr/share/man/man5",
                             "/usr/share/man/man7", "/usr/share/man/man8", "/usr/share/man/man2"};
    size_t gz_bytes = 0;
    for (size_t i = 0; i < sizeof mandirs / sizeof mandirs[0]; i++) {
        DIR *d = opendir(mandirs[i]);
        struct dirent *e;
        while (d && (e = readdir(d)) && man.n < max_files) {
            if (e->d_name[0] == '.') continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", mandirs[i], e->d_name);
            struct stat st;
            if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
            char *data;
            size_t n;
            if (qai_doc_load_bytes(p, &data, &n) != QAI_OK) continue;
            gz_bytes += (size_t)st.st_size;
            add(&man, p, data, n);
        }
        if (d) closedir(d);
    }
    double tgz = now() - t0;
    if (man.n)
        printf("man pages: read+gunzip %d files, %.1f MB -> %.1f MB in %.2f s (%.1f MB/s of output, CPU time, disk reads excluded)\n",
               man.n, gz_bytes / 1e6, man.bytes / 1e6, tgz, man.bytes / 1e6 / tgz);
    walk("/usr/share/doc", ".html", &html, 0);
    walk("/usr/share/doc", ".md", &md, 0);
    walk("/usr/share/common-licenses", "", &txt, 0);
    walk("/usr/share/doc", "copyright", &txt, 0);
    report("man", &man, QAI_DOC_MAN);
    report("html", &html, QAI_DOC_HTML);
    report("markdown", &md, QAI_DOC_MARKDOWN);
    report("text", &txt, QAI_DOC_TEXT);
    if (man.n) {
        set_t j = {0}, c = {0};
        size_t n;
        char *data = gen_records(&man, false, &n);
        add(&j, "gen.jsonl", data, n);
        report("jsonl", &j, QAI_DOC_JSONL);
        data = gen_records(&man, true, &n);
        add(&c, "gen.csv", data, n);
        report("csv", &c, QAI_DOC_CSV);
        /* MinHash and PII over the extracted man text */
        size_t total = 0;
        double best_mh = 1e30, best_pii = 1e30;
        long redactions = 0;
        for (int r = 0; r < rounds; r++) {
            double a = now();
            total = 0;
            for (int i = 0; i < j.n; i++) {
                qai_minhash m;
                qai_minhash_text(j.f[i].data, j.f[i].n, 5, &m);
                total += j.f[i].n;
            }
            double dm = now() - a;
            if (dm < best_mh) best_mh = dm;
            a = now();
            long red = 0;
            for (int i = 0; i < man.n; i++) {
                char *o;
                size_t on;
                qai_pii_counts pc;
                if (qai_pii_redact(man.f[i].data, man.f[i].n, &o, &on, &pc) == QAI_OK) {
                    red += pc.emails + pc.phones + pc.ipv4 + pc.ipv6 + pc.cards + pc.ibans + pc.secrets;
                    qai_free(o);
                }
            }
            double dp = now() - a;
            if (dp < best_pii) best_pii = dp;
            redactions = red;
        }
        printf("%-10s %8.1f MB  %7.1f MB/s  (128 permutations, 5-word shingles, NFKC casefold)\n", "minhash",
               total / 1e6, total / 1e6 / best_mh);
        printf("%-10s %8.1f MB  %7.1f MB/s  (%ld redactions in man page sources)\n", "pii", man.bytes / 1e6,
               man.bytes / 1e6 / best_pii, redactions);
    }
    return 0;
}
