/* qai registry — push verified bundles, list and show model versions, and move
 * them between stages (promote, rollback, retire). A thin wrapper over
 * qai/bundle.h (push, lineage) and qai/store.h (stages). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "qai/bundle.h"

static const char *usage_text =
    "usage: qai registry push BUNDLE [--require-signed] [--trust DIR]\n"
    "       qai registry list [NAME] [--json]\n"
    "       qai registry show NAME[@VERSION] [--json]\n"
    "       qai registry promote NAME@VERSION --to staging|canary|prod [--reason TEXT]\n"
    "       qai registry rollback NAME --stage staging|canary|prod [--reason TEXT]\n"
    "       qai registry retire NAME@VERSION [--reason TEXT]\n"
    "\n"
    "The registry keeps bundles under DIR/bundles/NAME/VERSION.qai and their records\n"
    "(model version, run, datasets, evaluations, signatures, stage history) in the store.\n"
    "\n"
    "  push       verify BUNDLE (every member and signature) and record it; pushing the\n"
    "             same bundle again changes nothing, another bundle with the same\n"
    "             name@version is refused\n"
    "  list       model versions with their stage and signers\n"
    "  show       one version (default the newest): card, lineage, evaluations,\n"
    "             signatures and stage history\n"
    "  promote    move a version to a stage; the version there before goes back to none\n"
    "  rollback   put back the version that held the stage before (recorded)\n"
    "  retire     take a version out of service for good\n"
    "\n"
    "  --require-signed  (push) refuse bundles without a valid trusted signature\n"
    "  --trust DIR       (push) trust the public keys in DIR only (see qai verify)\n"
    "  --reason TEXT     why, recorded in the stage history\n"
    "  --data-dir DIR    the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --store URL       the store (default $QAI_STORE or DIR/qai.db)\n"
    "  --json            machine-readable output (shapes in docs/registry.md)\n"
    "  -h, --help        show this help\n"
    "\n"
    "examples:\n"
    "  qai registry push demo-1.0.0.qai --require-signed\n"
    "  qai registry promote demo@1.0.0 --to prod --reason 'passed evals'\n"
    "  qai registry rollback demo --stage prod\n"
    "\n"
    "exit codes: 0 ok, 1 failed, 2 bad usage\n";

typedef struct {
    const char *data_dir, *store, *trust, *to, *stage, *reason;
    bool json, require_signed;
    const char *pos[2];
    int npos;
} opts;

/* "NAME@VERSION" -> name, version (version NULL when absent and allowed). */
static bool split_ref(const char *ref, char *name, size_t ncap, char *ver, size_t vcap, bool need_version) {
    const char *at = strchr(ref, '@');
    size_t nl = at ? (size_t)(at - ref) : strlen(ref);
    if (nl == 0 || nl >= ncap || (need_version && !at) || (at && (!at[1] || strlen(at + 1) >= vcap))) return false;
    memcpy(name, ref, nl);
    name[nl] = 0;
    if (at) snprintf(ver, vcap, "%s", at + 1);
    else ver[0] = 0;
    return true;
}

static const char *actor(void) {
    const char *u = getenv("USER");
    return u && *u ? u : "cli";
}

static int do_push(qai_store *s, const opts *o) {
    if (o->npos != 1) return cli_usage_error("registry", "push needs one bundle");
    qai_bundle_policy pol = {.data_dir = o->data_dir, .trust_dir = o->trust, .store_url = o->store,
                             .require_signed = o->require_signed};
    qai_registry_push_result res;
    if (qai_registry_push(s, o->data_dir, o->pos[0], &pol, &res) != QAI_OK) return cli_fail_last("registry");
    if (o->json) {
        printf("{\"model_version_id\": %lld, \"already_present\": %s, \"path\": ", (long long)res.model_version_id,
               res.already_present ? "true" : "false");
        cli_json_string(stdout, res.path, strlen(res.path), false);
        printf("}\n");
    } else
        fprintf(stderr, "qai: registry: %s %s (%s)\n", res.already_present ? "already present:" : "pushed", o->pos[0],
                res.path);
    return 0;
}

static int do_list(qai_store *s, const opts *o) {
    if (o->npos > 1) return cli_usage_error("registry", "list takes at most one name");
    qai_model_version *v = NULL;
    size_t n = 0;
    if (qai_model_version_list(s, o->npos ? o->pos[0] : NULL, &v, &n) != QAI_OK) return cli_fail_last("registry");
    if (o->json) printf("[");
    else if (n) printf("%-24s  %-12s  %-8s  %-20s  %-4s  %s\n", "NAME", "VERSION", "STAGE", "CREATED", "SIGS", "MODEL SHA256");
    else printf("no model versions (qai registry push BUNDLE adds one)\n");
    for (size_t i = 0; i < n; i++) {
        char **kids = NULL;
        size_t nk = 0;
        if (qai_model_signature_list(s, v[i].id, &kids, &nk) != QAI_OK) {
            qai_free(v);
            return cli_fail_last("registry");
        }
        char c[32];
        cli_iso_time(v[i].created_ms, c);
        if (o->json) {
            printf("%s\n  {\"name\": \"%s\", \"version\": \"%s\", \"stage\": \"%s\", \"created\": \"%s\", \"sha256\": \"%s\", "
                   "\"bundle\": ",
                   i ? "," : "", v[i].name, v[i].version, qai_stage_name(v[i].stage), c, v[i].sha256);
            if (v[i].uri) cli_json_string(stdout, v[i].uri, strlen(v[i].uri), false);
            else printf("null");
            printf(", \"signatures\": [");
            for (size_t k = 0; k < nk; k++) printf("%s\"%s\"", k ? ", " : "", kids[k]);
            printf("]}");
        } else
            printf("%-24s  %-12s  %-8s  %-20s  %4zu  %.16s\n", v[i].name, v[i].version, qai_stage_name(v[i].stage), c, nk,
                   v[i].sha256);
        qai_free(kids);
    }
    if (o->json) printf("%s]\n", n ? "\n" : "");
    qai_free(v);
    return 0;
}

/* a string field, or "-" */
static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "-";
}
static bool jhas(const cJSON *o, const char *k) { return cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, k)); }

static void print_yamlish(const cJSON *j, int indent) {
    for (const cJSON *e = j ? j->child : NULL; e; e = e->next) {
        printf("%*s%s%s", indent, "", e->string ? e->string : "-", e->string ? ":" : "");
        if (cJSON_IsObject(e) || cJSON_IsArray(e)) {
            printf("\n");
            print_yamlish(e, indent + 2);
        } else {
            char *t = cJSON_IsString(e) ? NULL : cJSON_PrintUnformatted(e);
            printf(" %s\n", t ? t : e->valuestring);
            if (t) cJSON_free(t);
        }
    }
}

static int do_show(qai_store *s, const opts *o) {
    if (o->npos != 1) return cli_usage_error("registry", "show needs NAME[@VERSION]");
    char name[256], ver[128];
    if (!split_ref(o->pos[0], name, sizeof name, ver, sizeof ver, false))
        return cli_usage_error("registry", "'%s' is not NAME[@VERSION]", o->pos[0]);
    void *j;
    if (qai_registry_lineage(s, o->data_dir, name, *ver ? ver : NULL, &j) != QAI_OK) return cli_fail_last("registry");
    cJSON *root = j;
    if (o->json) {
        char *t = cJSON_Print(root);
        if (t) printf("%s\n", t);
        cJSON_free(t);
        cJSON_Delete(root);
        return 0;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    printf("model        %s@%s\n", jstr(m, "name"), jstr(m, "version"));
    printf("stage        %s\n", jstr(m, "stage"));
    printf("created      %s\n", jstr(m, "created"));
    printf("model sha256 %s\n", jstr(m, "sha256"));
    printf("bundle       %s\n", jstr(m, "bundle"));
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(root, "run");
    if (cJSON_IsObject(run)) printf("run          %s (%s)\n", jstr(run, "name"), jstr(run, "status"));
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "datasets")) {
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(e, "sources");
        printf("dataset      %s %s (manifest %.16s, %d source files)\n", jstr(e, "name"), jstr(e, "version"),
               jstr(e, "manifest_sha256"), cJSON_GetArraySize(src));
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "evaluations")) {
        char *mt = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "metrics"));
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "passed");
        printf("evaluation   %s %s %s\n", jstr(e, "suite"), cJSON_IsTrue(p) ? "passed" : cJSON_IsFalse(p) ? "FAILED" : "-",
               mt ? mt : "");
        cJSON_free(mt);
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "signatures")) {
        printf("signed by    %s %s%s\n", jstr(e, "key_id"), jhas(e, "name") ? jstr(e, "name") : "",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "revoked")) ? " (REVOKED)" : "");
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "history")) {
        printf("history      %s %s %s -> %s by %s%s%s\n", jstr(e, "at"), jstr(e, "action"), jstr(e, "from"),
               jstr(e, "to"), jstr(e, "actor"), jhas(e, "reason") ? ": " : "", jhas(e, "reason") ? jstr(e, "reason") : "");
    }
    const cJSON *card = cJSON_GetObjectItemCaseSensitive(root, "card");
    if (cJSON_IsObject(card)) {
        printf("card:\n");
        print_yamlish(card, 2);
    }
    cJSON_Delete(root);
    return 0;
}

static int do_promote(qai_store *s, const opts *o) {
    char name[256], ver[128];
    if (o->npos != 1 || !split_ref(o->pos[0], name, sizeof name, ver, sizeof ver, true))
        return cli_usage_error("registry", "promote needs NAME@VERSION");
    if (!o->to) return cli_usage_error("registry", "promote needs --to staging|canary|prod");
    int st = qai_stage_from_name(o->to);
    if (st != QAI_STAGE_STAGING && st != QAI_STAGE_CANARY && st != QAI_STAGE_PROD)
        return cli_usage_error("registry", "--to needs staging, canary or prod");
    if (qai_model_promote(s, name, ver, (qai_stage)st, actor(), o->reason) != QAI_OK) return cli_fail_last("registry");
    fprintf(stderr, "qai: registry: %s@%s is now in %s\n", name, ver, o->to);
    return 0;
}

static int do_rollback(qai_store *s, const opts *o) {
    if (o->npos != 1 || strchr(o->pos[0], '@')) return cli_usage_error("registry", "rollback needs NAME");
    if (!o->stage) return cli_usage_error("registry", "rollback needs --stage staging|canary|prod");
    int st = qai_stage_from_name(o->stage);
    if (st != QAI_STAGE_STAGING && st != QAI_STAGE_CANARY && st != QAI_STAGE_PROD)
        return cli_usage_error("registry", "--stage needs staging, canary or prod");
    qai_model_version *mv = NULL;
    if (qai_model_rollback(s, o->pos[0], (qai_stage)st, actor(), o->reason, &mv) != QAI_OK)
        return cli_fail_last("registry");
    if (o->json) printf("{\"name\": \"%s\", \"stage\": \"%s\", \"version\": \"%s\"}\n", mv->name, o->stage, mv->version);
    else fprintf(stderr, "qai: registry: %s is back to %s@%s\n", o->stage, mv->name, mv->version);
    qai_free(mv);
    return 0;
}

static int do_retire(qai_store *s, const opts *o) {
    char name[256], ver[128];
    if (o->npos != 1 || !split_ref(o->pos[0], name, sizeof name, ver, sizeof ver, true))
        return cli_usage_error("registry", "retire needs NAME@VERSION");
    if (qai_model_retire(s, name, ver, actor(), o->reason) != QAI_OK) return cli_fail_last("registry");
    fprintf(stderr, "qai: registry: retired %s@%s\n", name, ver);
    return 0;
}

typedef struct {
    const char *name;
    int (*fn)(qai_store *, const opts *);
} subcommand;

static const subcommand subcommands[] = {
    {"push", do_push},       {"list", do_list},         {"show", do_show},
    {"promote", do_promote}, {"rollback", do_rollback}, {"retire", do_retire},
};

int cmd_registry(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("registry", "which subcommand: push, list, show, promote, rollback or retire?");
    if (cli_flag(argv[1], "-h", "--help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    const subcommand *sc = NULL;
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name)) sc = &subcommands[i];
    if (!sc) return cli_usage_error("registry", "unknown subcommand '%s'", argv[1]);
    opts o = {0};
    for (int i = 2; i < argc; i++) {
        const char *v, *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (cli_flag(a, NULL, "--json")) o.json = true;
        else if (cli_flag(a, NULL, "--require-signed")) o.require_signed = true;
        else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v || !*v) return cli_usage_error("registry", "--data-dir needs a directory");
            o.data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v || !*v) return cli_usage_error("registry", "--store needs a URL");
            o.store = v;
        } else if (cli_value(argc, argv, &i, NULL, "--trust", &v)) {
            if (!v || !*v) return cli_usage_error("registry", "--trust needs a directory");
            o.trust = v;
        } else if (cli_value(argc, argv, &i, NULL, "--to", &v)) {
            if (!v) return cli_usage_error("registry", "--to needs a stage");
            o.to = v;
        } else if (cli_value(argc, argv, &i, NULL, "--stage", &v)) {
            if (!v) return cli_usage_error("registry", "--stage needs a stage");
            o.stage = v;
        } else if (cli_value(argc, argv, &i, NULL, "--reason", &v)) {
            if (!v) return cli_usage_error("registry", "--reason needs a text");
            o.reason = v;
        } else if (a[0] == '-' && a[1]) return cli_usage_error("registry", "unknown option '%s'", a);
        else if (o.npos < 2) o.pos[o.npos++] = a;
        else return cli_usage_error("registry", "too many arguments");
    }
    if ((o.require_signed || o.trust) && strcmp(sc->name, "push"))
        return cli_usage_error("registry", "--require-signed and --trust go with 'push'");
    if (o.to && strcmp(sc->name, "promote")) return cli_usage_error("registry", "--to goes with 'promote'");
    if (o.stage && strcmp(sc->name, "rollback")) return cli_usage_error("registry", "--stage goes with 'rollback'");
    qai_store *s;
    if (qai_store_open(o.store, o.data_dir, &s) != QAI_OK) return cli_fail_last("registry");
    int rc = 0;
    if (strcmp(sc->name, "push") && qai_registry_recover(s, o.data_dir) != QAI_OK) rc = cli_fail_last("registry");
    if (!rc) rc = sc->fn(s, &o);
    qai_store_close(s);
    return rc;
}
