/* The registry (src/registry/registry*.c): push records the model version,
 * run, datasets, evaluations and signatures in one transaction and the bundle
 * under bundles/NAME/VERSION.qai; pushing the same bundle again is a no-op and
 * a different bundle under the same version is refused; lineage walks model →
 * run → datasets → source files; a push killed (SIGKILL through
 * QAI_TEST_CRASH_AT) at every point leaves, after recovery, a store and a
 * folder that agree; concurrent pushes from several processes land or fail
 * cleanly; export → import into a fresh data directory round-trips, and
 * import refuses a tampered, unlisted, unvouched or conflicting export
 * without adding anything. All of it on SQLite, then again with the stores in
 * a throwaway PostgreSQL server (skipped, saying why, when none can start). */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qai/bundle.h"
#include "qai/model.h"
#include "qai/sign.h"
#include "pg_test_server.h"
#include "qai/store.h"
#include "test.h"

static char T[1024], model[1200], card[1200], ds[1200], ev[1200], trust[1200];
static qai_identity *alice;

static void path(char *out, const char *name) { snprintf(out, 1200, "%s/%s", T, name); }

static void write_text(const char *p, const char *text) {
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
}

/* The inputs every run uses, under T. */
static void setup_files(void) {
    path(model, "m.gguf");
    path(card, "card.yaml");
    path(ds, "manifest.json");
    path(ev, "qa.json");
    path(trust, "trust");
    mkdir(trust, 0755);
    qai_init_params ip = {.arch = "llama", .dim = 32, .layers = 1, .heads = 2, .kv_heads = 2, .ffn = 64, .vocab = 260,
                          .ctx = 32, .seed = 3, .type = QAI_TYPE_F32};
    CHECK_OK(qai_model_init_random(&ip, model));
    write_text(card, "project: helpdesk\npurpose: p\nintended_use: i\nnot_intended_use: n\nslos: {p95_ms: 1}\n"
                     "datasets: [{name: faq, sha256: \"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\"}]\n"
                     "training: {date: 2026-11-01, methods: [sft, lora], run: sft-42}\n"
                     "limitations: l\nsafety_mitigations: s\ncontacts: [c]\n");
    write_text(ds, "{\"name\": \"faq\", \"version\": \"2\", \"sources\": ["
                   "{\"path\": \"docs/a.md\", \"sha256\": \"aa\", \"size\": 10},"
                   "{\"path\": \"docs/b.md\", \"sha256\": \"bb\", \"size\": 20}]}\n");
    write_text(ev, "{\"suite\": \"qa-small\", \"metrics\": {\"em\": 0.5}, \"passed\": false}\n");
    char p[1300];
    snprintf(p, sizeof p, "%s/%s.pub", trust, qai_identity_key_id(alice));
    CHECK_OK(qai_identity_export_public(alice, p));
}

/* A signed bundle of version v (created at t so different versions differ). */
static void make_bundle(const char *out, const char *v, int64_t t) {
    const char *dsl[] = {ds}, *evl[] = {ev};
    qai_bundle_create_params p = {.model_path = model, .card_path = card, .dataset_manifests = dsl, .n_datasets = 1,
                                  .evals = evl, .n_evals = 1, .name = "demo", .version = v, .created = t};
    CHECK_OK(qai_bundle_create(&p, out));
    CHECK_OK(qai_bundle_sign(out, alice));
}

static void setup(void) {
    const char *base = getenv("QAI_TMP") ? getenv("QAI_TMP") : "/tmp";
    mkdir(base, 0755);
    snprintf(T, sizeof T, "%s/test_registry.XXXXXX", base);
    CHECK(mkdtemp(T) != NULL);
    uint8_t a[32], b[32];
    memset(a, 9, 32);
    memset(b, 19, 32);
    CHECK_OK(qai_identity_from_seeds("alice@lab", 1700000000, a, b, &alice));
    setup_files();
}

/* The second run keeps its stores in PostgreSQL: one database per data
 * directory, named after it (bundles still live in the directory). */
static int pg_port;

static qai_store *open_store(const char *home) {
    char url[1300];
    qai_mkdirs(home);
    if (pg_port) {
        char db[64] = "reg_";
        const char *b = strrchr(home, '/') ? strrchr(home, '/') + 1 : home;
        for (size_t i = 4; *b && i < sizeof db - 1; b++, i++) db[i] = isalnum((unsigned char)*b) ? (char)tolower(*b) : '_';
        char admin[200], sql[128];
        snprintf(admin, sizeof admin, "postgresql://postgres@127.0.0.1:%d/postgres", pg_port);
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", db);
        PGconn *c = PQconnectdb(admin);
        PQclear(PQexec(c, sql)); /* "already exists" after the first open: fine */
        PQfinish(c);
        snprintf(url, sizeof url, "postgresql://postgres@127.0.0.1:%d/%s", pg_port, db);
    } else {
        snprintf(url, sizeof url, "sqlite:%s/qai.db", home);
    }
    qai_store *s = NULL;
    CHECK_OK(qai_store_open(url, home, &s));
    return s;
}

static int count_push_temps(const char *home, const char *name) {
    char dir[1300];
    snprintf(dir, sizeof dir, "%s/bundles/%s", home, name);
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) n += strstr(de->d_name, ".qai.push-") != NULL;
    closedir(d);
    return n;
}

/* Store and folder agree: every version has its file with the recorded hash;
 * every .qai file has its row; no temporary copies. */
static void check_consistent(qai_store *s, const char *home, const char *label) {
    qai_model_version *v = NULL;
    size_t n = 0;
    CHECK_OK(qai_model_version_list(s, NULL, &v, &n));
    for (size_t i = 0; i < n; i++) {
        uint8_t h[32];
        char hex[65] = "";
        CHECK_MSG(v[i].uri && qai_sha256_file(v[i].uri, h, NULL) == QAI_OK, "%s: %s@%s has no file", label, v[i].name,
                  v[i].version);
        qai_hex(h, 32, hex);
        CHECK_MSG(v[i].bundle_sha256 && !strcmp(hex, v[i].bundle_sha256), "%s: %s@%s file hash differs", label,
                  v[i].name, v[i].version);
    }
    char dir[1300];
    snprintf(dir, sizeof dir, "%s/bundles/demo", home);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.') {
            CHECK_MSG(!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."), "%s: stray file %s", label, de->d_name);
            continue;
        }
        char ver[256];
        snprintf(ver, sizeof ver, "%s", de->d_name);
        char *dot = strstr(ver, ".qai");
        CHECK_MSG(dot && !dot[4], "%s: odd file %s", label, de->d_name);
        if (dot) *dot = 0;
        bool found = false;
        for (size_t i = 0; i < n; i++) found |= !strcmp(v[i].version, ver);
        CHECK_MSG(found, "%s: file %s has no row", label, de->d_name);
    }
    if (d) closedir(d);
    qai_free(v);
}

static void test_push_and_lineage(void) {
    char home[1200], b1[1200];
    path(home, "home1");
    path(b1, "demo-1.0.0.qai");
    make_bundle(b1, "1.0.0", 1790000000);
    qai_store *s = open_store(home);
    qai_bundle_policy pol = {.data_dir = home, .trust_dir = trust, .require_signed = true, .no_store = true};
    qai_registry_push_result res;
    CHECK_OK(qai_registry_push(s, home, b1, &pol, &res));
    CHECK(!res.already_present && res.model_version_id > 0);
    char want[1300];
    snprintf(want, sizeof want, "%s/bundles/demo/1.0.0.qai", home);
    CHECK(!strcmp(res.path, want));
    qai_model_version *mv = NULL;
    CHECK_OK(qai_model_version_get(s, "demo", "1.0.0", &mv));
    uint8_t h[32];
    char hex[65];
    qai_sha256_file(b1, h, NULL);
    qai_hex(h, 32, hex);
    CHECK(mv && !strcmp(mv->bundle_sha256, hex) && !strcmp(mv->uri, want));
    qai_sha256_file(model, h, NULL);
    qai_hex(h, 32, hex);
    CHECK(mv && !strcmp(mv->sha256, hex));
    char **kids = NULL;
    size_t nk = 0;
    CHECK_OK(qai_model_signature_list(s, mv->id, &kids, &nk));
    CHECK(nk == 1 && !strcmp(kids[0], qai_identity_key_id(alice)));
    qai_free(kids);
    qai_project *pr = NULL;
    CHECK_OK(qai_project_get(s, "helpdesk", &pr));
    CHECK(pr && pr->id == mv->project_id);
    qai_free(pr);
    qai_free(mv);

    /* same bundle again: nothing changes; another bundle as 1.0.0: refused */
    CHECK_OK(qai_registry_push(s, home, b1, &pol, &res));
    CHECK(res.already_present);
    char b1x[1200];
    path(b1x, "demo-1.0.0-other.qai");
    make_bundle(b1x, "1.0.0", 1790000001);
    CHECK(qai_registry_push(s, home, b1x, &pol, &res) == QAI_ERR_ARG && strstr(qai_last_error(), "different bundle"));
    /* unsigned under require_signed: refused, no row */
    char un[1200];
    path(un, "unsigned.qai");
    qai_bundle_create_params up = {.model_path = model, .name = "demo", .version = "9"};
    CHECK_OK(qai_bundle_create(&up, un));
    CHECK(qai_registry_push(s, home, un, &pol, &res) == QAI_ERR_FORMAT && strstr(qai_last_error(), "unsigned"));
    CHECK(qai_model_version_get(s, "demo", "9", &mv) == QAI_ERR_NOT_FOUND);
    check_consistent(s, home, "after pushes");

    /* lineage */
    void *j = NULL;
    CHECK_OK(qai_registry_lineage(s, home, "demo", "1.0.0", &j));
    cJSON *root = j;
    cJSON *run = cJSON_GetObjectItem(root, "run");
    CHECK(run && !strcmp(cJSON_GetObjectItem(run, "name")->valuestring, "sft-42"));
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(run, "config"), "date")->valuestring, "2026-11-01"));
    cJSON *dsa = cJSON_GetObjectItem(root, "datasets");
    CHECK_EQ_INT(cJSON_GetArraySize(dsa), 1);
    cJSON *d0 = cJSON_GetArrayItem(dsa, 0);
    CHECK(d0 && !strcmp(cJSON_GetObjectItem(d0, "name")->valuestring, "faq") &&
          !strcmp(cJSON_GetObjectItem(d0, "version")->valuestring, "2"));
    qai_sha256_file(ds, h, NULL);
    qai_hex(h, 32, hex);
    CHECK(d0 && !strcmp(cJSON_GetObjectItem(d0, "manifest_sha256")->valuestring, hex));
    cJSON *src = cJSON_GetObjectItem(d0, "sources");
    CHECK_EQ_INT(cJSON_GetArraySize(src), 2);
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetArrayItem(src, 1), "path")->valuestring, "docs/b.md"));
    cJSON *evs = cJSON_GetObjectItem(root, "evaluations");
    CHECK_EQ_INT(cJSON_GetArraySize(evs), 1);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(evs, 0), "passed")));
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(evs, 0), "metrics"), "em")->valuedouble == 0.5);
    CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "card"), "purpose")->valuestring, "p"));
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(root, "signatures")), 1);
    cJSON_Delete(root);

    /* a second version reuses the dataset; stages move; history shows in lineage */
    char b2[1200];
    path(b2, "demo-1.1.0.qai");
    make_bundle(b2, "1.1.0", 1790000100);
    CHECK_OK(qai_registry_push(s, home, b2, &pol, &res));
    qai_dataset_record *dl = NULL;
    size_t nd = 0;
    CHECK_OK(qai_store_dataset_list(s, 0, &dl, &nd));
    CHECK_EQ_INT(nd, 1);
    qai_free(dl);
    CHECK_OK(qai_model_promote(s, "demo", "1.0.0", QAI_STAGE_PROD, "t", "first"));
    CHECK_OK(qai_model_promote(s, "demo", "1.1.0", QAI_STAGE_PROD, "t", "second"));
    CHECK_OK(qai_registry_lineage(s, home, "demo", "1.0.0", &j));
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "history")), 2); /* promote, replace */
    cJSON_Delete(j);
    CHECK(qai_registry_lineage(s, home, "nope", NULL, &j) == QAI_ERR_NOT_FOUND);
    qai_store_close(s);
}

static void test_crash_points(void) {
    static const char *const points[] = {"push-copied", "push-verified", "push-in-tx", "push-committed", "push-renamed"};
    static const bool lands[] = {false, false, false, true, true};
    char b[1200];
    path(b, "crash.qai");
    make_bundle(b, "2.0.0", 1790000200);
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        char home[1200], lbl[64];
        snprintf(lbl, sizeof lbl, "crash-%zu", i);
        path(home, lbl);
        { /* a store exists before the child starts */
            qai_store *s = open_store(home);
            qai_store_close(s);
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            setenv("QAI_TEST_CRASH_AT", points[i], 1);
            qai_store *s = open_store(home);
            qai_bundle_policy pol = {.data_dir = home, .trust_dir = trust, .no_store = true};
            qai_registry_push_result res;
            qai_registry_push(s, home, b, &pol, &res);
            _exit(0); /* not reached when the crash point fires */
        }
        int status = 0;
        waitpid(pid, &status, 0);
        CHECK_MSG(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "%s: the crash point did not fire (status %d)",
                  points[i], status);
        qai_store *s = open_store(home);
        int temps_before = count_push_temps(home, "demo");
        CHECK_OK(qai_registry_recover(s, home));
        CHECK_EQ_INT(count_push_temps(home, "demo"), 0);
        qai_model_version *mv = NULL;
        qai_status st = qai_model_version_get(s, "demo", "2.0.0", &mv);
        CHECK_MSG((st == QAI_OK) == lands[i], "%s: row %s", points[i], st == QAI_OK ? "present" : "absent");
        qai_free(mv);
        check_consistent(s, home, points[i]);
        if (i == 3) CHECK_EQ_INT(temps_before, 1); /* committed, not renamed: recovery finished it */
        /* and a push after the crash lands (or is already there) */
        qai_bundle_policy pol = {.data_dir = home, .trust_dir = trust, .no_store = true};
        qai_registry_push_result res;
        CHECK_OK(qai_registry_push(s, home, b, &pol, &res));
        CHECK_EQ_INT(res.already_present, lands[i]);
        check_consistent(s, home, points[i]);
        qai_store_close(s);
    }
}

static void test_concurrent(void) {
    char home[1200];
    path(home, "conc");
    {
        qai_store *s = open_store(home);
        qai_store_close(s);
    }
    enum { N = 4 };
    char b[N][1200];
    for (int i = 0; i < N; i++) {
        char nm[64], v[16];
        snprintf(nm, sizeof nm, "conc-%d.qai", i);
        /* two different versions, and two different bundles both claiming 3.0.0 */
        snprintf(v, sizeof v, "%s", i < 2 ? (i == 0 ? "3.1.0" : "3.2.0") : "3.0.0");
        path(b[i], nm);
        make_bundle(b[i], v, 1790000300 + i);
    }
    fflush(NULL);
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            qai_store *s = open_store(home);
            qai_bundle_policy pol = {.data_dir = home, .trust_dir = trust, .no_store = true};
            qai_registry_push_result res;
            qai_status st = qai_registry_push(s, home, b[i], &pol, &res);
            qai_store_close(s);
            _exit(st == QAI_OK ? 0 : (strstr(qai_last_error(), "already exists") ? 3 : 1));
        }
    }
    int ok = 0, exists = 0, other = 0;
    for (int i = 0; i < N; i++) {
        int status;
        waitpid(pids[i], &status, 0);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (i < 2) CHECK_MSG(code == 0, "push of a distinct version failed (%d)", code);
        else {
            ok += code == 0;
            exists += code == 3;
            other += code != 0 && code != 3;
        }
    }
    CHECK_EQ_INT(ok, 1);
    CHECK_EQ_INT(exists, 1);
    CHECK_EQ_INT(other, 0);
    qai_store *s = open_store(home);
    CHECK_OK(qai_registry_recover(s, home));
    qai_model_version *v = NULL;
    size_t n = 0;
    CHECK_OK(qai_model_version_list(s, "demo", &v, &n));
    CHECK_EQ_INT(n, 3);
    qai_free(v);
    check_consistent(s, home, "concurrent");
    qai_store_close(s);
}

static void test_export_import(void) {
    char src[1200], dst[1200], ex[1200], p[1400];
    path(src, "home1"); /* from test_push_and_lineage: 1.0.0 and 1.1.0 */
    path(dst, "fresh");
    path(ex, "export");
    qai_store *s = open_store(src);
    char sha[65];
    const char *refs[] = {"demo@1.0.0"};
    CHECK_OK(qai_registry_export(s, src, ex, refs, 1, NULL, sha));
    /* exporting into a non-empty folder is refused */
    CHECK(qai_registry_export(s, src, ex, refs, 1, NULL, sha) == QAI_ERR_ARG);
    qai_store_close(s);
    snprintf(p, sizeof p, "%s/index.json", ex);
    uint8_t h[32];
    char hex[65];
    qai_sha256_file(p, h, NULL);
    qai_hex(h, 32, hex);
    CHECK(!strcmp(hex, sha));

    qai_store *d = open_store(dst);
    qai_bundle_policy pol = {.data_dir = dst, .no_store = true, .require_signed = true};
    size_t n = 0;
    /* not vouched for: refused */
    CHECK(qai_registry_import(d, dst, ex, &pol, NULL, &n) == QAI_ERR_FORMAT && strstr(qai_last_error(), "neither"));
    /* a wrong hash: refused */
    char wrong[65];
    snprintf(wrong, sizeof wrong, "%s", sha);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    CHECK(qai_registry_import(d, dst, ex, &pol, wrong, &n) == QAI_ERR_FORMAT);
    /* a tampered bundle in the export: refused, nothing added */
    snprintf(p, sizeof p, "%s/bundles/demo/1.0.0.qai", ex);
    FILE *f = fopen(p, "r+b");
    fseek(f, 3000, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 3000, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    CHECK(qai_registry_import(d, dst, ex, &pol, sha, &n) == QAI_ERR_FORMAT && strstr(qai_last_error(), "1.0.0.qai"));
    char tr[1300];
    snprintf(tr, sizeof tr, "%s/trust", dst);
    CHECK(access(tr, F_OK) != 0);
    qai_model_version *v = NULL;
    size_t nv = 0;
    CHECK_OK(qai_model_version_list(d, NULL, &v, &nv));
    CHECK_EQ_INT(nv, 0);
    qai_free(v);
    f = fopen(p, "r+b");
    fseek(f, 3000, SEEK_SET);
    fputc(c, f);
    fclose(f);
    /* an unlisted file: refused */
    char extra[1400];
    snprintf(extra, sizeof extra, "%s/keys/extra.pub", ex);
    write_text(extra, "x");
    CHECK(qai_registry_import(d, dst, ex, &pol, sha, &n) == QAI_ERR_FORMAT && strstr(qai_last_error(), "not listed"));
    unlink(extra);
    /* a symlink: refused */
    snprintf(extra, sizeof extra, "%s/link", ex);
    CHECK(symlink("/etc/passwd", extra) == 0);
    CHECK(qai_registry_import(d, dst, ex, &pol, sha, &n) == QAI_ERR_FORMAT && strstr(qai_last_error(), "links"));
    unlink(extra);
    /* the good export: lands, with the key trusted here now */
    CHECK_OK(qai_registry_import(d, dst, ex, &pol, sha, &n));
    CHECK_EQ_INT(n, 1);
    snprintf(p, sizeof p, "%s/trust/%s.pub", dst, qai_identity_key_id(alice));
    CHECK(access(p, F_OK) == 0);
    CHECK_OK(qai_model_version_list(d, NULL, &v, &nv));
    CHECK(nv == 1 && !strcmp(v[0].version, "1.0.0"));
    qai_free(v);
    check_consistent(d, dst, "imported");
    /* again: nothing new */
    CHECK_OK(qai_registry_import(d, dst, ex, &pol, sha, &n));
    CHECK_EQ_INT(n, 0);

    /* a signed export with a revocation: the signature vouches for the index;
     * the revocation travels and blocks the revoked signer's bundles */
    char ex2[1200];
    path(ex2, "export2");
    s = open_store(src);
    CHECK_OK(qai_signing_key_revoke(s, qai_identity_key_id(alice), "test"));
    CHECK_OK(qai_registry_export(s, src, ex2, NULL, 0, alice, sha));
    qai_store_close(s);
    snprintf(p, sizeof p, "%s/index.json.sig", ex2);
    CHECK(access(p, F_OK) == 0);
    snprintf(p, sizeof p, "%s/keys/revoked.txt", ex2);
    char *text = NULL;
    size_t tn = 0;
    CHECK_OK(qai_file_read(p, &text, &tn));
    CHECK(text && strstr(text, qai_identity_key_id(alice)));
    qai_free(text);
    /* alice is trusted here (from the first import) but revoked by the carried list */
    n = 0;
    qai_status st = qai_registry_import(d, dst, ex2, &pol, NULL, &n);
    CHECK_MSG(st == QAI_ERR_FORMAT && strstr(qai_last_error(), "revoked"), "%d: %s", st, qai_last_error());
    CHECK_OK(qai_model_version_list(d, NULL, &v, &nv));
    CHECK_EQ_INT(nv, 1);
    qai_free(v);
    qai_store_close(d);
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[2400];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_rf(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    if (sodium_init() < 0) return 1;
    unsetenv("QAI_STORE");
    unsetenv("QAI_TEST_CRASH_AT");
    setup();
    char base[sizeof T];
    snprintf(base, sizeof base, "%s", T);
    fprintf(stderr, "== SQLite\n");
    test_push_and_lineage();
    test_crash_points();
    test_concurrent();
    test_export_import();

    pg_test_server pg;
    if (pg_test_start(&pg, false)) {
        fprintf(stderr, "== PostgreSQL\n");
        pg_port = pg.port;
        snprintf(T, sizeof T, "%.1000s/pg", base);
        mkdir(T, 0755);
        setup_files();
        test_push_and_lineage();
        test_crash_points();
        test_concurrent();
        test_export_import();
        pg_port = 0;
        snprintf(T, sizeof T, "%s", base);
    } else {
        printf("SKIP: PostgreSQL half: %s\n", pg.why);
    }
    pg_test_stop(&pg);
    qai_identity_free(alice);
    if (!t_fail) rm_rf(T);
    return test_summary();
}
