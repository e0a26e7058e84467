/* qai lineage — where a model version came from: model → run → datasets →
 * source files, plus its evaluations (qai_registry_lineage in qai/bundle.h). */
#include <cjson/cJSON.h>
#include <string.h>

#include "cli.h"
#include "qai/bundle.h"

static const char *usage_text =
    "usage: qai lineage NAME[@VERSION] [--data-dir DIR] [--store URL] [--json]\n"
    "\n"
    "Walks a registered model version (default the newest) back to what made it: the\n"
    "training run, the datasets the run read and the source files each dataset\n"
    "manifest lists (with their SHA-256), and the evaluations recorded with it.\n"
    "\n"
    "  --data-dir DIR  the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --store URL     the store (default $QAI_STORE or DIR/qai.db)\n"
    "  --json          the lineage as JSON (shape in docs/lineage.md)\n"
    "  -h, --help      show this help\n"
    "\n"
    "example:\n"
    "  qai lineage demo@1.0.0\n"
    "\n"
    "exit codes: 0 ok, 1 failed (unknown model, store error), 2 bad usage\n";

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

int cmd_lineage(int argc, char **argv) {
    const char *ref = NULL, *data_dir = NULL, *store = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *v, *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v || !*v) return cli_usage_error("lineage", "--data-dir needs a directory");
            data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v || !*v) return cli_usage_error("lineage", "--store needs a URL");
            store = v;
        } else if (a[0] == '-') return cli_usage_error("lineage", "unknown option '%s'", a);
        else if (!ref) ref = a;
        else return cli_usage_error("lineage", "unexpected argument '%s'", a);
    }
    if (!ref) return cli_usage_error("lineage", "no model given (NAME[@VERSION])");
    char name[256], ver[128] = "";
    const char *at = strchr(ref, '@');
    size_t nl = at ? (size_t)(at - ref) : strlen(ref);
    if (nl == 0 || nl >= sizeof name || (at && (!at[1] || strlen(at + 1) >= sizeof ver)))
        return cli_usage_error("lineage", "'%s' is not NAME[@VERSION]", ref);
    memcpy(name, ref, nl);
    name[nl] = 0;
    if (at) snprintf(ver, sizeof ver, "%s", at + 1);

    qai_store *s;
    if (qai_store_open(store, data_dir, &s) != QAI_OK) return cli_fail_last("lineage");
    void *j;
    qai_status st = qai_registry_lineage(s, data_dir, name, *ver ? ver : NULL, &j);
    qai_store_close(s);
    if (st) return cli_fail_last("lineage");
    cJSON *root = j;
    if (json) {
        char *t = cJSON_Print(root);
        if (t) printf("%s\n", t);
        cJSON_free(t);
        cJSON_Delete(root);
        return 0;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    printf("model %s@%s  [%s]  sha256 %s\n", jstr(m, "name"), jstr(m, "version"), jstr(m, "stage"), jstr(m, "sha256"));
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(root, "run");
    const cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "datasets");
    if (cJSON_IsObject(run)) printf("└─ run %s  (%s)\n", jstr(run, "name"), jstr(run, "status"));
    else printf("└─ run: unknown\n");
    int nd = cJSON_GetArraySize(ds), di = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, ds) {
        bool last_d = ++di == nd;
        printf("   %s dataset %s %s  manifest sha256 %s\n", last_d ? "└─" : "├─", jstr(d, "name"), jstr(d, "version"),
               jstr(d, "manifest_sha256"));
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(d, "sources");
        int ns = cJSON_GetArraySize(src), si = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, src) {
            printf("   %s  %s %s  sha256 %s\n", last_d ? " " : "│", ++si == ns ? "└─" : "├─", jstr(f, "path"),
                   jstr(f, "sha256"));
        }
        if (!ns) printf("   %s  (no source files listed)\n", last_d ? " " : "│");
    }
    if (cJSON_IsObject(run) && !nd) printf("   └─ (no datasets recorded)\n");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "evaluations")) {
        char *mt = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "metrics"));
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "passed");
        printf("evaluation %s: %s %s\n", jstr(e, "suite"), cJSON_IsTrue(p) ? "passed" : cJSON_IsFalse(p) ? "failed" : "-",
               mt ? mt : "");
        cJSON_free(mt);
    }
    cJSON_Delete(root);
    return 0;
}
