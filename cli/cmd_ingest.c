/* qai ingest — files into a versioned collection (chunks, BM25, optional
 * dense vectors) and listing collections. A thin wrapper over
 * qai/collection.h; it also records each version in the store as a dataset
 * (project "collections", dataset NAME, version N) for lineage. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "qai/collection.h"
#include "qai/store.h"

static const char *usage_text =
    "usage: qai ingest PATHS... --into NAME [options]\n"
    "       qai ingest --list [NAME] [--json]\n"
    "\n"
    "Extracts text from files and folders (plain text, Markdown, HTML, man pages\n"
    "also gzipped, JSONL, CSV, PDF through pdftotext), drops duplicates, chunks it\n"
    "by structure and builds a new immutable version NAME@N of the collection: a\n"
    "BM25 index, optional dense vectors and a manifest of what went in. Files\n"
    "unchanged since the previous version are reused, not extracted again. Bad\n"
    "inputs (binary, invalid, empty, enormous lines) are skipped and listed.\n"
    "Prints NAME@N.\n"
    "\n"
    "  --into NAME           the collection (created on first use)\n"
    "  -m, --embed-model M   GGUF model for dense vectors (mean-pooled, normalized);\n"
    "                        default: the collection's model if it has one\n"
    "  --chunk-tokens N      chunk budget in tokens (default 256)\n"
    "  --overlap N           tokens shared by consecutive pieces of a section (default 32)\n"
    "  --dedup T|off         near-duplicate Jaccard threshold (default 0.8); off keeps\n"
    "                        exact and near duplicates\n"
    "  --redact-pii          replace e-mails, phones, IPs, cards, IBANs, secrets first\n"
    "  --exclude GLOB        skip files and folders matching GLOB (repeatable)\n"
    "  --drop-section TITLE  cut sections with this title (a glob, any case) out of\n"
    "                        every document before chunking (repeatable)\n"
    "  -t, --threads N       threads (default: all CPUs)\n"
    "  --data-dir DIR        the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --store URL           record the version in this store (default $QAI_STORE or DIR/qai.db)\n"
    "  --no-store            do not record the version in the store\n"
    "  --list [NAME]         list collections, or one collection's versions\n"
    "  --json                print the manifest summary (or the listing) as JSON\n"
    "  -q, --quiet           no progress lines\n"
    "  -h, --help            show this help\n"
    "\n"
    "example:\n"
    "  qai ingest /usr/share/man/man1 docs/ --into manuals --exclude '*.html'\n"
    "\n"
    "exit codes: 0 ok, 1 failed, 2 bad usage\n";

typedef struct {
    const char *data_dir, *store, *into, *list_name;
    bool json, list, no_store, quiet;
} opts;

/* Records NAME@N as a dataset of project "collections" in the store. */
static void register_version(const opts *o, const char *name, const qai_ingest_result *r) {
    qai_store *s;
    if (qai_store_open(o->store, o->data_dir, &s) != QAI_OK) {
        fprintf(stderr, "qai: ingest: warning: %s@%d not recorded in the store: %s\n", name, r->version,
                qai_last_error());
        return;
    }
    qai_project *p = NULL;
    int64_t pid = 0, did = 0;
    qai_status st = qai_project_get(s, "collections", &p);
    if (st == QAI_OK) pid = p->id;
    else if (st == QAI_ERR_NOT_FOUND) st = qai_project_create(s, "collections", "document collections (qai ingest)", &pid);
    qai_free(p);
    char ver[32], uri[4200];
    snprintf(ver, sizeof ver, "%d", r->version);
    snprintf(uri, sizeof uri, "%s/manifest.json", r->path);
    if (!st)
        st = qai_store_dataset_create(
            s, &(qai_dataset_record){.project_id = pid, .name = name, .version = ver,
                                     .manifest_sha256 = r->manifest_sha256, .uri = uri},
            &did);
    if (st)
        fprintf(stderr, "qai: ingest: warning: %s@%d not recorded in the store: %s\n", name, r->version,
                qai_last_error());
    qai_store_close(s);
}

static void print_json_summary(const char *name, const qai_ingest_result *r) {
    cJSON *m = cJSON_Parse(r->manifest_json);
    if (!m) {
        printf("{\"ref\": \"%s@%d\"}\n", name, r->version);
        return;
    }
    /* the full input list stays in the manifest file; the summary keeps the skipped ones */
    cJSON *inputs = cJSON_DetachItemFromObjectCaseSensitive(m, "inputs");
    cJSON *sk = cJSON_CreateArray();
    cJSON *it;
    cJSON_ArrayForEach(it, inputs) {
        cJSON *why = cJSON_GetObjectItemCaseSensitive(it, "skipped");
        if (!cJSON_IsString(why)) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "path", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "path"), 1));
        cJSON_AddStringToObject(e, "reason", why->valuestring);
        cJSON_AddItemToArray(sk, e);
    }
    cJSON_Delete(inputs);
    char ref[128];
    snprintf(ref, sizeof ref, "%s@%d", name, r->version);
    cJSON_AddStringToObject(m, "ref", ref);
    cJSON_AddStringToObject(m, "path", r->path);
    cJSON_AddItemToObject(m, "skipped_inputs", sk);
    cJSON *t = cJSON_AddObjectToObject(m, "timing");
    cJSON_AddNumberToObject(t, "seconds", r->seconds);
    cJSON_AddNumberToObject(t, "seconds_extract", r->seconds_extract);
    cJSON_AddNumberToObject(t, "seconds_embed", r->seconds_embed);
    cJSON_AddNumberToObject(t, "text_mb_per_s",
                            r->seconds_extract > 0 ? (double)r->text_bytes / 1e6 / r->seconds_extract : 0);
    char *s = cJSON_Print(m);
    if (s) puts(s);
    cJSON_free(s);
    cJSON_Delete(m);
}

static int do_list(const opts *o) {
    if (!o->list_name) {
        qai_collection_info *v;
        int n;
        if (qai_collection_list(o->data_dir, &v, &n)) return cli_fail_last("ingest");
        if (o->json) {
            printf("[");
            for (int i = 0; i < n; i++) {
                printf("%s{\"name\": ", i ? ", " : "");
                cli_json_string(stdout, v[i].name, strlen(v[i].name), false);
                printf(", \"current\": %d, \"versions\": [", v[i].current);
                for (int k = 0; k < v[i].n_versions; k++) printf("%s%d", k ? ", " : "", v[i].versions[k]);
                printf("]}");
            }
            printf("]\n");
        } else {
            if (!n) fprintf(stderr, "qai: ingest: no collections yet\n");
            for (int i = 0; i < n; i++)
                printf("%-24s current v%d, %d version%s\n", v[i].name, v[i].current, v[i].n_versions,
                       v[i].n_versions == 1 ? "" : "s");
        }
        qai_free(v);
        return 0;
    }
    qai_collection_info info;
    if (qai_collection_stat(o->data_dir, o->list_name, &info)) return cli_fail_last("ingest");
    if (o->json) printf("[");
    for (int k = 0; k < info.n_versions; k++) {
        qai_collection *c;
        if (qai_collection_open(o->data_dir, o->list_name, info.versions[k], &c)) {
            fprintf(stderr, "qai: ingest: %s@%d: %s\n", o->list_name, info.versions[k], qai_last_error());
            continue;
        }
        cJSON *m = cJSON_Parse(qai_collection_manifest(c));
        cJSON *tot = cJSON_GetObjectItemCaseSensitive(m, "totals");
        cJSON *chg = cJSON_GetObjectItemCaseSensitive(m, "changes");
        cJSON *em = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "options"), "embed_model");
#define NUM(o_, k_) (cJSON_GetObjectItemCaseSensitive(o_, k_) ? cJSON_GetObjectItemCaseSensitive(o_, k_)->valuedouble : 0)
#define STR(o_, k_) (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o_, k_)) ? cJSON_GetObjectItemCaseSensitive(o_, k_)->valuestring : "")
        if (o->json) {
            printf("%s{\"version\": %d, \"current\": %s, \"created\": \"%s\", \"files\": %.0f, \"skipped\": %.0f, "
                   "\"docs\": %.0f, \"chunks\": %.0f, \"added\": %.0f, \"changed\": %.0f, \"unchanged\": %.0f, "
                   "\"removed\": %.0f, \"embed_model\": ",
                   k ? ", " : "", info.versions[k], info.versions[k] == info.current ? "true" : "false",
                   STR(m, "created"), NUM(tot, "files"), NUM(tot, "skipped"), NUM(tot, "docs"), NUM(tot, "chunks"),
                   NUM(chg, "added"), NUM(chg, "changed"), NUM(chg, "unchanged"), NUM(chg, "removed"));
            if (cJSON_IsObject(em)) cli_json_string(stdout, STR(em, "name"), strlen(STR(em, "name")), false);
            else printf("null");
            printf(", \"manifest_sha256\": \"%s\"}", STR(m, "manifest_sha256"));
        } else
            printf("%s@%d%s  %s  %.0f files (%.0f skipped), %.0f docs, %.0f chunks, +%.0f ~%.0f =%.0f -%.0f%s%s  "
                   "%.16s\n",
                   o->list_name, info.versions[k], info.versions[k] == info.current ? " (current)" : "",
                   STR(m, "created"), NUM(tot, "files"), NUM(tot, "skipped"), NUM(tot, "docs"), NUM(tot, "chunks"),
                   NUM(chg, "added"), NUM(chg, "changed"), NUM(chg, "unchanged"), NUM(chg, "removed"),
                   cJSON_IsObject(em) ? ", vectors: " : "", cJSON_IsObject(em) ? STR(em, "name") : "",
                   STR(m, "manifest_sha256"));
#undef NUM
#undef STR
        cJSON_Delete(m);
        qai_collection_close(c);
    }
    if (o->json) printf("]\n");
    return 0;
}

int cmd_ingest(int argc, char **argv) {
    opts o = {0};
    qai_ingest_opts io;
    qai_ingest_opts_default(&io);
    const char **paths = calloc((size_t)argc + 1, sizeof *paths);
    const char **excl = calloc((size_t)argc + 1, sizeof *excl);
    const char **drops = calloc((size_t)argc + 1, sizeof *drops);
    int np = 0, rc = 0;
    if (!paths || !excl || !drops) {
        rc = cli_fail("ingest", "out of memory");
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *v, *a = argv[i];
        long long iv;
        double dv;
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            goto out;
        } else if (cli_flag(a, NULL, "--json")) o.json = true;
        else if (cli_flag(a, "-q", "--quiet")) o.quiet = true;
        else if (cli_flag(a, NULL, "--redact-pii")) io.redact_pii = true;
        else if (cli_flag(a, NULL, "--no-store")) o.no_store = true;
        else if (cli_flag(a, NULL, "--list")) {
            o.list = true;
            if (i + 1 < argc && argv[i + 1][0] != '-') o.list_name = argv[++i];
        } else if (cli_value(argc, argv, &i, NULL, "--into", &v)) {
            if (!v || !*v) { rc = cli_usage_error("ingest", "--into needs a collection name"); goto out; }
            o.into = v;
        } else if (cli_value(argc, argv, &i, "-m", "--embed-model", &v)) {
            if (!v || !*v) { rc = cli_usage_error("ingest", "%s needs a GGUF file", a); goto out; }
            io.embed_model = v;
        } else if (cli_value(argc, argv, &i, NULL, "--chunk-tokens", &v)) {
            if (!v || !cli_parse_int(v, 16, 1 << 20, &iv)) { rc = cli_usage_error("ingest", "--chunk-tokens needs an integer in [16, 1048576]"); goto out; }
            io.chunk_tokens = (int)iv;
        } else if (cli_value(argc, argv, &i, NULL, "--overlap", &v)) {
            if (!v || !cli_parse_int(v, 0, 1 << 20, &iv)) { rc = cli_usage_error("ingest", "--overlap needs a non-negative integer"); goto out; }
            io.overlap_tokens = (int)iv;
        } else if (cli_value(argc, argv, &i, NULL, "--dedup", &v)) {
            if (v && !strcmp(v, "off")) io.dedup = 0;
            else if (!v || !cli_parse_float(v, &dv) || !(dv > 0 && dv <= 1)) { rc = cli_usage_error("ingest", "--dedup needs a threshold in (0, 1] or 'off'"); goto out; }
            else io.dedup = dv;
        } else if (cli_value(argc, argv, &i, NULL, "--exclude", &v)) {
            if (!v || !*v) { rc = cli_usage_error("ingest", "--exclude needs a glob"); goto out; }
            excl[io.n_exclude++] = v;
        } else if (cli_value(argc, argv, &i, NULL, "--drop-section", &v)) {
            if (!v || !*v) { rc = cli_usage_error("ingest", "--drop-section needs a title"); goto out; }
            drops[io.n_drop_sections++] = v;
        } else if (cli_value(argc, argv, &i, "-t", "--threads", &v)) {
            if (!v || !cli_parse_int(v, 1, 512, &iv)) { rc = cli_usage_error("ingest", "--threads needs an integer in [1, 512]"); goto out; }
            io.n_threads = (int)iv;
        } else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v || !*v) { rc = cli_usage_error("ingest", "--data-dir needs a directory"); goto out; }
            o.data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v || !*v) { rc = cli_usage_error("ingest", "--store needs a URL"); goto out; }
            o.store = v;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error("ingest", "unknown option '%s'", a);
            goto out;
        } else paths[np++] = a;
    }
    if (o.list) {
        if (np || o.into) { rc = cli_usage_error("ingest", "--list takes no paths and no --into"); goto out; }
        rc = do_list(&o);
        goto out;
    }
    if (!o.into) { rc = cli_usage_error("ingest", "no collection given (--into NAME)"); goto out; }
    if (!np) { rc = cli_usage_error("ingest", "no files or folders given"); goto out; }
    if (!qai_collection_name_ok(o.into)) {
        rc = cli_usage_error("ingest", "invalid collection name '%s': use 1-64 letters, digits, '.', '_' or '-'", o.into);
        goto out;
    }
    if (io.overlap_tokens >= io.chunk_tokens) {
        rc = cli_usage_error("ingest", "--overlap (%d) must be smaller than --chunk-tokens (%d)", io.overlap_tokens, io.chunk_tokens);
        goto out;
    }
    io.data_dir = o.data_dir;
    io.exclude = excl;
    io.drop_sections = drops;
    io.progress = !o.quiet;
    qai_ingest_result r;
    if (qai_collection_ingest(o.into, paths, np, &io, &r)) {
        rc = cli_fail_last("ingest");
        goto out;
    }
    if (!o.no_store) register_version(&o, o.into, &r);
    if (o.json) print_json_summary(o.into, &r);
    else {
        if (!o.quiet)
            fprintf(stderr,
                    "qai: ingest: %zu files (%zu added, %zu changed, %zu unchanged, %zu removed, %zu skipped), "
                    "%zu docs, %zu chunks (%zu reused), %zu exact + %zu near duplicates dropped; %.1f MB of text in "
                    "%.2f s (%.1f MB/s)%s\n",
                    r.files, r.added, r.changed, r.unchanged, r.removed, r.skipped, r.docs, r.chunks, r.chunks_reused,
                    r.dup_exact, r.dup_near, (double)r.text_bytes / 1e6, r.seconds,
                    r.seconds_extract > 0 ? (double)r.text_bytes / 1e6 / r.seconds_extract : 0.0,
                    r.dim ? "" : "; no vectors (give -m MODEL.gguf for dense search)");
        printf("%s@%d\n", o.into, r.version);
    }
    qai_ingest_result_release(&r);
out:
    free(paths);
    free(excl);
    free(drops);
    return rc;
}
