/* The store on SQLite and on a real PostgreSQL server (started here from
 * Debian's packages; SKIP with the reason when it cannot start): migrations
 * from empty and on re-open, refusal of a newer schema, every entity's
 * create/get/list with the values read back, constraint messages, promotion
 * history and "the previous promoted version" as a stack, transactions,
 * two processes creating and promoting model versions at once, and a client
 * killed with SIGKILL inside a transaction. */
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg_test_server.h"
#include "qai/store.h"
#include "test.h"

static const char *label = "";

static void hexof(const char *s, char out[65]) {
    uint8_t h[32];
    qai_sha256(s, strlen(s), h);
    qai_hex(h, 32, out);
}

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* ---- migrations ------------------------------------------------------------------ */

static void test_migrations(const char *url) {
    qai_store *s = NULL;
    CHECK_OK(qai_store_open(url, NULL, &s));
    if (!s) return;
    CHECK_EQ_INT(qai_store_schema_version(s), QAI_STORE_SCHEMA_VERSION);
    qai_store_close(s);
    /* re-open: nothing applied twice */
    CHECK_OK(qai_store_open(url, NULL, &s));
    qai_store_close(s);
    CHECK_EQ_INT(raw_int(url, "SELECT COUNT(*) FROM schema_version"), QAI_STORE_SCHEMA_VERSION);
    CHECK_EQ_INT(raw_int(url, "SELECT MAX(version) FROM schema_version"), QAI_STORE_SCHEMA_VERSION);
    CHECK_EQ_INT(raw_int(url, "SELECT seq FROM audit_head WHERE id = 1"), 0);
    /* a database from a newer qai is refused, with a message that says so */
    CHECK(raw_exec(url, "INSERT INTO schema_version (version, applied_ms) VALUES (99, 0)"));
    qai_status st = qai_store_open(url, NULL, &s);
    CHECK_EQ_INT(st, QAI_ERR_UNSUPPORTED);
    CHECK_MSG(contains(qai_last_error(), "newer") && contains(qai_last_error(), "99"), "%s", qai_last_error());
    CHECK(raw_exec(url, "DELETE FROM schema_version WHERE version = 99"));
    CHECK_OK(qai_store_open(url, NULL, &s));
    qai_store_close(s);
}

/* ---- entities ----------------------------------------------------------------------- */

static void test_entities(qai_store *s) {
    char h1[65], h2[65], h3[65];
    hexof("manifest-1", h1);
    hexof("model-1", h2);
    hexof("bundle-1", h3);

    int64_t proj = 0, proj2 = 0;
    CHECK_OK(qai_project_create(s, "chatbot", "support bot", &proj));
    CHECK_OK(qai_project_create(s, "vision", NULL, &proj2));
    CHECK(proj > 0 && proj2 > proj);
    CHECK_EQ_INT(qai_project_create(s, "chatbot", "again", NULL), QAI_ERR_ARG);
    CHECK_MSG(contains(qai_last_error(), "project 'chatbot' already exists"), "%s", qai_last_error());
    qai_project *p = NULL;
    CHECK_OK(qai_project_get(s, "chatbot", &p));
    if (p) {
        CHECK_EQ_INT(p->id, proj);
        CHECK(!strcmp(p->description, "support bot"));
        CHECK(p->created_ms > 1600000000000LL);
    }
    qai_free(p);
    CHECK_EQ_INT(qai_project_get(s, "nope", &p), QAI_ERR_NOT_FOUND);
    CHECK_MSG(contains(qai_last_error(), "project 'nope' not found"), "%s", qai_last_error());
    size_t n = 0;
    CHECK_OK(qai_project_list(s, &p, &n));
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK(!strcmp(p[0].name, "chatbot") && !strcmp(p[1].name, "vision"));
        CHECK(p[1].description == NULL);
    }
    qai_free(p);

    /* datasets */
    int64_t ds1 = 0, ds2 = 0;
    CHECK_OK(qai_store_dataset_create(s, &(qai_dataset_record){.project_id = proj, .name = "faq", .version = "1", .manifest_sha256 = h1,
                                                  .uri = "/data/faq-1.json"},
                                &ds1));
    CHECK_OK(qai_store_dataset_create(s, &(qai_dataset_record){.project_id = proj, .name = "faq", .version = "2", .manifest_sha256 = h2},
                                &ds2));
    CHECK_EQ_INT(qai_store_dataset_create(s, &(qai_dataset_record){.project_id = proj, .name = "faq", .version = "2", .manifest_sha256 = h2},
                                    NULL),
                 QAI_ERR_ARG);
    CHECK_MSG(contains(qai_last_error(), "dataset 'faq' version '2' already exists"), "%s", qai_last_error());
    CHECK_EQ_INT(qai_store_dataset_create(s, &(qai_dataset_record){.project_id = proj, .name = "x", .version = "1", .manifest_sha256 = "abc"},
                                    NULL),
                 QAI_ERR_ARG);
    CHECK_EQ_INT(qai_store_dataset_create(s, &(qai_dataset_record){.project_id = 9999, .name = "x", .version = "1", .manifest_sha256 = h1},
                                    NULL),
                 QAI_ERR_ARG);
    CHECK_MSG(contains(qai_last_error(), "does not exist"), "%s", qai_last_error());
    qai_dataset_record *d = NULL;
    CHECK_OK(qai_store_dataset_get(s, ds1, &d));
    if (d) {
        CHECK(!strcmp(d->manifest_sha256, h1) && !strcmp(d->uri, "/data/faq-1.json") && d->project_id == proj);
        CHECK(!strcmp(d->version, "1"));
    }
    qai_free(d);
    CHECK_OK(qai_store_dataset_list(s, proj, &d, &n));
    CHECK_EQ_INT(n, 2);
    qai_free(d);
    CHECK_OK(qai_store_dataset_list(s, proj2, &d, &n));
    CHECK_EQ_INT(n, 0);
    qai_free(d);

    /* runs */
    int64_t run = 0, dsids[2] = {ds2, ds1};
    CHECK_OK(qai_run_create(s, &(qai_run){.project_id = proj, .name = "sft-1", .config = "{\"lr\": 0.001}"}, dsids, 2, &run));
    CHECK_EQ_INT(qai_run_create(s, &(qai_run){.project_id = proj, .name = "bad", .status = "exploded"}, NULL, 0, NULL),
                 QAI_ERR_ARG);
    /* a missing dataset rolls the whole run back */
    int64_t missing = 4242;
    CHECK_EQ_INT(qai_run_create(s, &(qai_run){.project_id = proj, .name = "half"}, &missing, 1, NULL), QAI_ERR_ARG);
    qai_run *r = NULL;
    CHECK_OK(qai_run_list(s, proj, &r, &n));
    CHECK_EQ_INT(n, 1);
    qai_free(r);
    CHECK_OK(qai_run_get(s, run, &r));
    if (r) {
        CHECK(!strcmp(r->status, "queued") && !strcmp(r->config, "{\"lr\": 0.001}") && r->metrics == NULL);
        CHECK_EQ_INT(r->started_ms, 0);
    }
    qai_free(r);
    CHECK_OK(qai_run_update(s, run, "running", NULL));
    CHECK_OK(qai_run_update(s, run, "succeeded", "{\"loss\": 1.25}"));
    CHECK_EQ_INT(qai_run_update(s, 777, "failed", NULL), QAI_ERR_NOT_FOUND);
    CHECK_OK(qai_run_get(s, run, &r));
    if (r) {
        CHECK(!strcmp(r->status, "succeeded") && !strcmp(r->metrics, "{\"loss\": 1.25}"));
        CHECK(r->started_ms > 0 && r->finished_ms >= r->started_ms);
    }
    qai_free(r);
    int64_t *ids = NULL;
    CHECK_OK(qai_run_datasets(s, run, &ids, &n));
    CHECK_EQ_INT(n, 2);
    if (n == 2) CHECK(ids[0] == ds1 && ids[1] == ds2);
    qai_free(ids);

    /* model versions */
    int64_t mv = 0, mv2 = 0;
    CHECK_OK(qai_model_version_create(s, &(qai_model_version){.project_id = proj, .run_id = run, .name = "bot",
                                                              .version = "1.0.0", .sha256 = h2, .bundle_sha256 = h3,
                                                              .uri = "bundles/bot-1.0.0.qai", .meta = "{\"params\": 110}"},
                                      &mv));
    CHECK_OK(qai_model_version_create(s, &(qai_model_version){.name = "bot", .version = "1.0.1-q4", .sha256 = h3, .parent_id = mv},
                                      &mv2));
    CHECK_EQ_INT(qai_model_version_create(s, &(qai_model_version){.name = "bot", .version = "1.0.0", .sha256 = h2}, NULL),
                 QAI_ERR_ARG);
    CHECK_MSG(contains(qai_last_error(), "model version 'bot@1.0.0' already exists"), "%s", qai_last_error());
    CHECK_EQ_INT(qai_model_version_create(s, &(qai_model_version){.name = "bot", .version = "9", .sha256 = h2, .run_id = 31337},
                                          NULL),
                 QAI_ERR_ARG);
    CHECK_EQ_INT(qai_model_version_create(s, &(qai_model_version){.name = "a@b", .version = "1", .sha256 = h2}, NULL),
                 QAI_ERR_ARG);
    qai_model_version *m = NULL;
    CHECK_OK(qai_model_version_get(s, "bot", "1.0.0", &m));
    if (m) {
        CHECK_EQ_INT(m->id, mv);
        CHECK(m->run_id == run && m->project_id == proj && m->parent_id == 0);
        CHECK(!strcmp(m->sha256, h2) && !strcmp(m->bundle_sha256, h3) && !strcmp(m->uri, "bundles/bot-1.0.0.qai"));
        CHECK(!strcmp(m->meta, "{\"params\": 110}") && m->stage == QAI_STAGE_NONE);
    }
    qai_free(m);
    CHECK_OK(qai_model_version_get(s, "bot", NULL, &m)); /* latest */
    if (m) CHECK(m->id == mv2 && m->parent_id == mv && m->bundle_sha256 == NULL && m->project_id == 0);
    qai_free(m);
    CHECK_OK(qai_model_version_get_id(s, mv, &m));
    if (m) CHECK(!strcmp(m->version, "1.0.0"));
    qai_free(m);
    CHECK_EQ_INT(qai_model_version_get(s, "bot", "7", &m), QAI_ERR_NOT_FOUND);
    CHECK_OK(qai_model_version_list(s, "bot", &m, &n));
    CHECK_EQ_INT(n, 2);
    qai_free(m);
    CHECK_OK(qai_model_version_list(s, "nobody", &m, &n));
    CHECK_EQ_INT(n, 0);
    qai_free(m);

    /* evaluations */
    int64_t ev = 0;
    CHECK_OK(qai_evaluation_create(s, &(qai_evaluation){.model_version_id = mv, .suite = "qa-small",
                                                        .metrics = "{\"exact_match\": 0.71}", .passed = 1,
                                                        .report_sha256 = h1},
                                   &ev));
    CHECK_OK(qai_evaluation_create(s, &(qai_evaluation){.model_version_id = mv2, .suite = "qa-small", .passed = 0}, NULL));
    CHECK_EQ_INT(qai_evaluation_create(s, &(qai_evaluation){.model_version_id = mv, .suite = "x", .passed = 2}, NULL),
                 QAI_ERR_ARG);
    CHECK_EQ_INT(qai_evaluation_create(s, &(qai_evaluation){.model_version_id = 555, .suite = "x", .passed = -1}, NULL),
                 QAI_ERR_ARG);
    qai_evaluation *e = NULL;
    CHECK_OK(qai_evaluation_get(s, ev, &e));
    if (e) CHECK(e->passed == 1 && !strcmp(e->metrics, "{\"exact_match\": 0.71}") && !strcmp(e->report_sha256, h1));
    qai_free(e);
    CHECK_OK(qai_evaluation_list(s, mv2, &e, &n));
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(e[0].passed == 0 && !strcmp(e[0].metrics, "{}"));
    qai_free(e);
    CHECK_OK(qai_evaluation_list(s, 0, &e, &n));
    CHECK_EQ_INT(n, 2);
    qai_free(e);

    /* deployments */
    int64_t dep = 0;
    CHECK_OK(qai_deployment_create(s, &(qai_deployment){.model_version_id = mv, .environment = "edge-01", .variant = "stable",
                                                        .weight = 90},
                                   &dep));
    CHECK_OK(qai_deployment_create(s, &(qai_deployment){.model_version_id = mv2, .environment = "edge-01", .weight = 10}, NULL));
    CHECK_EQ_INT(qai_deployment_create(s, &(qai_deployment){.model_version_id = mv, .environment = "e", .weight = 101}, NULL),
                 QAI_ERR_ARG);
    CHECK_OK(qai_deployment_update(s, dep, "stopped", 0));
    CHECK_EQ_INT(qai_deployment_update(s, 999, "stopped", 0), QAI_ERR_NOT_FOUND);
    qai_deployment *dp = NULL;
    CHECK_OK(qai_deployment_get(s, dep, &dp));
    if (dp) CHECK(!strcmp(dp->status, "stopped") && dp->weight == 0 && !strcmp(dp->variant, "stable") && dp->updated_ms >= dp->created_ms);
    qai_free(dp);
    CHECK_OK(qai_deployment_list(s, "edge-01", &dp, &n));
    CHECK_EQ_INT(n, 2);
    if (n == 2) CHECK(!strcmp(dp[1].status, "active") && dp[1].weight == 10 && dp[1].variant == NULL);
    qai_free(dp);
    CHECK_OK(qai_deployment_list(s, "elsewhere", &dp, &n));
    CHECK_EQ_INT(n, 0);
    qai_free(dp);

    /* signing keys: bytes survive exactly, including zeros and 0xff */
    uint8_t pub[1984 + 32];
    for (size_t i = 0; i < sizeof pub; i++) pub[i] = (uint8_t)(i * 37 + (i >> 8));
    pub[0] = 0, pub[1] = 0xff, pub[100] = 0;
    CHECK_OK(qai_signing_key_add(s, &(qai_signing_key){.key_id = "k-abc", .name = "release", .algorithm = "ed25519+ml-dsa-65",
                                                       .public_key = pub, .public_key_len = sizeof pub}));
    CHECK_EQ_INT(qai_signing_key_add(s, &(qai_signing_key){.key_id = "k-abc", .name = "again", .algorithm = "x",
                                                           .public_key = pub, .public_key_len = 1}),
                 QAI_ERR_ARG);
    qai_signing_key *k = NULL;
    CHECK_OK(qai_signing_key_get(s, "k-abc", &k));
    if (k) {
        CHECK_EQ_INT(k->public_key_len, sizeof pub);
        CHECK(k->public_key_len == sizeof pub && !memcmp(k->public_key, pub, sizeof pub));
        CHECK(k->revoked_ms == 0 && k->revoke_reason == NULL && !strcmp(k->algorithm, "ed25519+ml-dsa-65"));
    }
    qai_free(k);
    CHECK_OK(qai_signing_key_revoke(s, "k-abc", "laptop stolen"));
    CHECK_OK(qai_signing_key_revoke(s, "k-abc", "second time"));
    CHECK_EQ_INT(qai_signing_key_revoke(s, "k-nope", "x"), QAI_ERR_NOT_FOUND);
    CHECK_OK(qai_signing_key_list(s, &k, &n));
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(k[0].revoked_ms > 0 && !strcmp(k[0].revoke_reason, "laptop stolen"));
    qai_free(k);

    /* signatures */
    CHECK_OK(qai_model_signature_add(s, mv, "k-abc"));
    CHECK_EQ_INT(qai_model_signature_add(s, mv, "k-abc"), QAI_ERR_ARG);
    CHECK_EQ_INT(qai_model_signature_add(s, mv, "k-unknown"), QAI_ERR_ARG);
    char **keys = NULL;
    CHECK_OK(qai_model_signature_list(s, mv, &keys, &n));
    CHECK_EQ_INT(n, 1);
    if (n == 1) CHECK(!strcmp(keys[0], "k-abc") && keys[1] == NULL);
    qai_free(keys);
}

/* ---- stages -------------------------------------------------------------------------- */

static int64_t in_stage(qai_store *s, const char *name, qai_stage st) {
    qai_model_version *m = NULL;
    if (qai_model_in_stage(s, name, st, &m) != QAI_OK) return 0;
    int64_t id = m->id;
    qai_free(m);
    return id;
}

static void test_stages(qai_store *s, const char *url) {
    char h[65];
    hexof("w", h);
    int64_t v[5];
    char ver[8];
    for (int i = 1; i <= 4; i++) {
        snprintf(ver, sizeof ver, "%d", i);
        CHECK_OK(qai_model_version_create(s, &(qai_model_version){.name = "m", .version = ver, .sha256 = h}, &v[i]));
    }
    qai_model_version *m = NULL;
    CHECK_EQ_INT(qai_model_previous(s, "m", QAI_STAGE_PROD, &m), QAI_ERR_NOT_FOUND);
    CHECK_EQ_INT(qai_model_promote(s, "m", "1", QAI_STAGE_RETIRED, "alice", NULL), QAI_ERR_ARG);
    CHECK_EQ_INT(qai_model_promote(s, "m", "77", QAI_STAGE_PROD, "alice", NULL), QAI_ERR_NOT_FOUND);
    CHECK_OK(qai_model_promote(s, "m", "1", QAI_STAGE_PROD, "alice", "first"));
    CHECK_OK(qai_model_promote(s, "m", "2", QAI_STAGE_STAGING, "bob", NULL));
    CHECK_OK(qai_model_promote(s, "m", "2", QAI_STAGE_PROD, "bob", "evals passed"));
    CHECK_OK(qai_model_promote(s, "m", "3", QAI_STAGE_PROD, "carol", NULL));
    CHECK_OK(qai_model_promote(s, "m", "3", QAI_STAGE_PROD, "carol", NULL)); /* already there: no event */
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_PROD), v[3]);
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_STAGING), 0);
    CHECK_OK(qai_model_version_get(s, "m", "2", &m));
    if (m) CHECK_EQ_INT(m->stage, QAI_STAGE_NONE);
    qai_free(m);

    qai_stage_event *ev = NULL;
    size_t n = 0;
    CHECK_OK(qai_model_history(s, "m", NULL, &ev, &n));
    /* promote 1; promote 2 to staging; promote 2 to prod + replace 1; promote 3 + replace 2 */
    CHECK_EQ_INT(n, 6);
    if (n == 6) {
        CHECK(!strcmp(ev[0].action, "promote") && !strcmp(ev[0].version, "1") && ev[0].from_stage == QAI_STAGE_NONE &&
              ev[0].to_stage == QAI_STAGE_PROD && !strcmp(ev[0].actor, "alice") && !strcmp(ev[0].reason, "first"));
        CHECK(!strcmp(ev[2].action, "replace") && !strcmp(ev[2].version, "1") && ev[2].to_stage == QAI_STAGE_NONE);
        CHECK(!strcmp(ev[3].action, "promote") && !strcmp(ev[3].version, "2") && ev[3].from_stage == QAI_STAGE_STAGING &&
              !strcmp(ev[3].reason, "evals passed"));
        CHECK(!strcmp(ev[5].version, "3") && !strcmp(ev[5].actor, "carol") && ev[5].reason == NULL);
        for (size_t i = 1; i < n; i++) CHECK(ev[i].at_ms >= ev[i - 1].at_ms && ev[i].id > ev[i - 1].id);
    }
    qai_free(ev);
    CHECK_OK(qai_model_history(s, "m", "2", &ev, &n));
    CHECK_EQ_INT(n, 3);
    qai_free(ev);

    /* previous promoted version: 2, then 1 */
    CHECK_OK(qai_model_previous(s, "m", QAI_STAGE_PROD, &m));
    if (m) CHECK_EQ_INT(m->id, v[2]);
    qai_free(m);
    m = NULL;
    CHECK_OK(qai_model_rollback(s, "m", QAI_STAGE_PROD, "dave", "latency regression", &m));
    if (m) CHECK(m->id == v[2] && m->stage == QAI_STAGE_PROD);
    qai_free(m);
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_PROD), v[2]);
    CHECK_OK(qai_model_version_get(s, "m", "3", &m));
    if (m) CHECK_EQ_INT(m->stage, QAI_STAGE_NONE);
    qai_free(m);
    CHECK_OK(qai_model_rollback(s, "m", QAI_STAGE_PROD, "dave", NULL, NULL));
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_PROD), v[1]);
    CHECK_EQ_INT(qai_model_rollback(s, "m", QAI_STAGE_PROD, "dave", NULL, NULL), QAI_ERR_NOT_FOUND);
    CHECK_MSG(contains(qai_last_error(), "no previous version"), "%s", qai_last_error());
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_PROD), v[1]); /* a failed rollback changes nothing */

    /* promote 4 over 1; retire 1; the previous of prod is no longer 1 */
    CHECK_OK(qai_model_promote(s, "m", "4", QAI_STAGE_PROD, "erin", NULL));
    CHECK_OK(qai_model_previous(s, "m", QAI_STAGE_PROD, &m));
    if (m) CHECK_EQ_INT(m->id, v[1]);
    qai_free(m);
    CHECK_OK(qai_model_retire(s, "m", "1", "erin", "license expired"));
    CHECK_EQ_INT(qai_model_promote(s, "m", "1", QAI_STAGE_PROD, "erin", NULL), QAI_ERR_ARG);
    CHECK_MSG(contains(qai_last_error(), "retired"), "%s", qai_last_error());
    CHECK_EQ_INT(qai_model_previous(s, "m", QAI_STAGE_PROD, &m), QAI_ERR_NOT_FOUND);
    CHECK_EQ_INT(qai_model_rollback(s, "m", QAI_STAGE_PROD, "erin", NULL, NULL), QAI_ERR_NOT_FOUND);

    /* a canary moving to prod leaves canary empty; the stages stay independent */
    CHECK_OK(qai_model_promote(s, "m", "3", QAI_STAGE_CANARY, "f", NULL));
    CHECK_OK(qai_model_promote(s, "m", "2", QAI_STAGE_CANARY, "f", NULL));
    CHECK_OK(qai_model_promote(s, "m", "2", QAI_STAGE_PROD, "f", NULL));
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_CANARY), 0);
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_PROD), v[2]);
    CHECK_OK(qai_model_previous(s, "m", QAI_STAGE_PROD, &m));
    if (m) CHECK_EQ_INT(m->id, v[4]);
    qai_free(m);
    CHECK_OK(qai_model_rollback(s, "m", QAI_STAGE_CANARY, "f", NULL, NULL)); /* back to 3 */
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_CANARY), v[3]);
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_PROD), v[2]);

    /* at most one version per stage, even past the API */
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE model_versions SET stage = 'prod' WHERE id = %lld", (long long)v[4]);
    fprintf(stderr, "(an error about a UNIQUE constraint / duplicate key is expected next)\n");
    CHECK(!raw_exec(url, sql));
    CHECK_EQ_INT(in_stage(s, "m", QAI_STAGE_PROD), v[2]);
}

/* ---- transactions ---------------------------------------------------------------------- */

static qai_status make_two_then_fail(qai_store *s, void *arg) {
    (void)arg;
    qai_status st = qai_project_create(s, "tx-a", NULL, NULL);
    if (st == QAI_OK) st = qai_project_create(s, "tx-b", NULL, NULL);
    if (st == QAI_OK) st = qai_error(QAI_ERR_ARG, "deliberate failure");
    return st;
}

static void test_transactions(qai_store *s) {
    qai_project *p = NULL;
    CHECK_OK(qai_store_begin(s));
    CHECK_OK(qai_project_create(s, "tx-rolled-back", NULL, NULL));
    CHECK_OK(qai_project_get(s, "tx-rolled-back", &p)); /* visible inside */
    qai_free(p);
    CHECK_OK(qai_store_rollback(s));
    CHECK_EQ_INT(qai_project_get(s, "tx-rolled-back", &p), QAI_ERR_NOT_FOUND);

    CHECK_OK(qai_store_begin(s));
    CHECK_OK(qai_store_begin(s)); /* nested */
    CHECK_OK(qai_project_create(s, "tx-kept", NULL, NULL));
    CHECK_OK(qai_store_commit(s));
    CHECK_OK(qai_store_commit(s));
    CHECK_OK(qai_project_get(s, "tx-kept", &p));
    qai_free(p);

    /* a failing statement inside poisons the transaction on both backends */
    CHECK_OK(qai_store_begin(s));
    CHECK_OK(qai_project_create(s, "tx-poisoned", NULL, NULL));
    CHECK_EQ_INT(qai_project_create(s, "tx-kept", NULL, NULL), QAI_ERR_ARG);
    CHECK(qai_store_commit(s) != QAI_OK);
    CHECK_EQ_INT(qai_project_get(s, "tx-poisoned", &p), QAI_ERR_NOT_FOUND);
    CHECK_EQ_INT(qai_store_commit(s), QAI_ERR_ARG); /* nothing open */

    CHECK_EQ_INT(qai_store_transact(s, make_two_then_fail, NULL), QAI_ERR_ARG);
    CHECK_MSG(contains(qai_last_error(), "deliberate failure"), "%s", qai_last_error());
    CHECK_EQ_INT(qai_project_get(s, "tx-a", &p), QAI_ERR_NOT_FOUND);
    CHECK_OK(qai_project_create(s, "tx-after", NULL, NULL)); /* the handle still works */
}

/* ---- two processes -------------------------------------------------------------------- */

#define PER_CHILD 25
#define PROMOTIONS 15

static int child_work(const char *url, int who) {
    qai_store *s;
    if (qai_store_open(url, NULL, &s) != QAI_OK) {
        fprintf(stderr, "child %d: %s\n", who, qai_last_error());
        return 100;
    }
    char h[65], ver[32];
    hexof("c", h);
    int fails = 0;
    for (int i = 0; i < PER_CHILD; i++) {
        snprintf(ver, sizeof ver, "c%d-%d", who, i);
        if (qai_model_version_create(s, &(qai_model_version){.name = "conc", .version = ver, .sha256 = h}, NULL) != QAI_OK) {
            fprintf(stderr, "child %d: %s\n", who, qai_last_error());
            fails++;
        }
    }
    /* both race for the same version: exactly one may win */
    int won = qai_model_version_create(s, &(qai_model_version){.name = "conc", .version = "race", .sha256 = h}, NULL) ==
              QAI_OK;
    if (!won && !strstr(qai_last_error(), "already exists")) fails++;
    /* promotions interleaved with the other process */
    for (int i = 0; i < PROMOTIONS; i++) {
        snprintf(ver, sizeof ver, "c%d-%d", who, i);
        if (qai_model_promote(s, "conc", ver, QAI_STAGE_PROD, who ? "p1" : "p0", NULL) != QAI_OK) {
            fprintf(stderr, "child %d promote: %s\n", who, qai_last_error());
            fails++;
        }
    }
    /* no qai_store_close: _exit leaves the connection to the kernel (see store.h) */
    return fails ? 10 + (fails > 50 ? 50 : fails) : won;
}

static void test_two_processes(const char *url) {
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        fflush(NULL);
        pids[c] = fork();
        if (pids[c] == 0) _exit(child_work(url, c));
    }
    int wins = 0;
    for (int c = 0; c < 2; c++) {
        int status = 0;
        waitpid(pids[c], &status, 0);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) <= 1, "child %d exit %d", c, WEXITSTATUS(status));
        if (WIFEXITED(status)) wins += WEXITSTATUS(status) == 1;
    }
    CHECK_EQ_INT(wins, 1);
    CHECK_EQ_INT(raw_int(url, "SELECT COUNT(*) FROM model_versions WHERE name = 'conc'"), 2 * PER_CHILD + 1);
    CHECK_EQ_INT(raw_int(url, "SELECT COUNT(*) FROM model_versions WHERE name = 'conc' AND stage = 'prod'"), 1);
    CHECK_EQ_INT(raw_int(url, "SELECT COUNT(*) FROM stage_events WHERE name = 'conc' AND action = 'promote'"),
                 2 * PROMOTIONS);
    /* every promotion but the first pushed out exactly the version before it */
    CHECK_EQ_INT(raw_int(url, "SELECT COUNT(*) FROM stage_events WHERE name = 'conc' AND action = 'replace'"),
                 2 * PROMOTIONS - 1);
}

/* ---- SIGKILL inside a transaction ------------------------------------------------------- */

static void test_killed_in_transaction(const char *url) {
    int fds[2];
    CHECK(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        qai_store *s;
        char h[65];
        hexof("k", h);
        if (qai_store_open(url, NULL, &s) != QAI_OK) _exit(1);
        if (qai_store_begin(s) != QAI_OK) _exit(2);
        if (qai_project_create(s, "half-done", NULL, NULL) != QAI_OK) _exit(3);
        if (qai_model_version_create(s, &(qai_model_version){.name = "ghost", .version = "1", .sha256 = h}, NULL) != QAI_OK)
            _exit(4);
        qai_audit_record rec = {.endpoint = "/v1/ghost", .status = 200};
        if (qai_audit_append(s, &rec, 1) != QAI_OK) _exit(5);
        if (write(fds[1], "x", 1) != 1) _exit(6);
        for (;;) pause(); /* killed here, the transaction open */
    }
    close(fds[1]);
    char c;
    ssize_t got = read(fds[0], &c, 1);
    CHECK_EQ_INT(got, 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    qai_store *s = NULL;
    CHECK_OK(qai_store_open(url, NULL, &s));
    if (!s) return;
    qai_project *p = NULL;
    CHECK_EQ_INT(qai_project_get(s, "half-done", &p), QAI_ERR_NOT_FOUND);
    qai_model_version *m = NULL;
    CHECK_EQ_INT(qai_model_version_get(s, "ghost", "1", &m), QAI_ERR_NOT_FOUND);
    CHECK_EQ_INT(raw_int(url, "SELECT COUNT(*) FROM audit_log WHERE endpoint = '/v1/ghost'"), 0);
    qai_audit_verify_result vr;
    CHECK_OK(qai_audit_verify(s, &vr));
    CHECK_MSG(vr.ok, "%s", vr.problem);
    /* the lock died with the process: writing works at once */
    CHECK_OK(qai_project_create(s, "after-crash", NULL, NULL));
    qai_audit_record rec = {.endpoint = "/v1/after", .status = 200};
    CHECK_OK(qai_audit_append(s, &rec, 1));
    qai_store_close(s);
}

#define TIMED(call)                                                                                                    \
    do {                                                                                                               \
        uint64_t t0_ = qai_time_ns();                                                                                  \
        call;                                                                                                          \
        fprintf(stderr, "   %-40s %7.1f ms\n", #call, (qai_time_ns() - t0_) / 1e6);                                     \
    } while (0)

/* PostgreSQL: the server drops our session (restart, failover, idle timeout);
 * the next call, in or out of a transaction, reconnects once and works. */
static void test_reconnect(const char *url) {
    qai_store *s = NULL;
    CHECK_OK(qai_store_open(url, NULL, &s));
    if (!s) return;
    const char *kill_others = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = 'qai_test' AND pid <> pg_backend_pid()";
    qai_project *p = NULL;
    CHECK(raw_exec(url, kill_others));
    CHECK_OK(qai_project_get(s, "chatbot", &p)); /* a plain read */
    qai_free(p);
    CHECK(raw_exec(url, kill_others));
    CHECK_OK(qai_project_create(s, "after-reconnect", NULL, NULL)); /* a plain write */
    CHECK(raw_exec(url, kill_others));
    qai_audit_record rec = {.endpoint = "/v1/reconnect", .status = 200};
    CHECK_OK(qai_audit_append(s, &rec, 1)); /* a transaction: BEGIN meets the dead session */
    qai_store_close(s);
}

static void suite(const char *url) {
    fprintf(stderr, "== %s: %s\n", label, url);
    TIMED(test_migrations(url));
    qai_store *s = NULL;
    CHECK_OK(qai_store_open(url, NULL, &s));
    if (!s) return;
    TIMED(test_entities(s));
    TIMED(test_stages(s, url));
    TIMED(test_transactions(s));
    qai_store_close(s);
    TIMED(test_two_processes(url));
    TIMED(test_killed_in_transaction(url));
    if (!strncmp(url, "postgres", 8)) TIMED(test_reconnect(url));
}

/* SQLite-only: default location under the data directory, file mode, bad URLs. */
static void test_sqlite_specifics(const char *dir) {
    char home[600], path[700];
    snprintf(home, sizeof home, "%s/home", dir);
    unsetenv("QAI_STORE");
    qai_store *s = NULL;
    CHECK_OK(qai_store_open(NULL, home, &s));
    if (s) {
        CHECK(!strcmp(qai_store_backend(s), "sqlite"));
        snprintf(path, sizeof path, "%s/qai.db", home);
        CHECK(!strcmp(qai_store_location(s), path));
        qai_store_close(s);
    }
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
    char mode[32];
    snprintf(path, sizeof path, "sqlite:%s/home/qai.db", dir);
    CHECK(raw_query(path, "PRAGMA journal_mode", mode, sizeof mode) && !strcmp(mode, "wal"));
    /* QAI_STORE is used when no URL is given */
    char alt[700];
    snprintf(alt, sizeof alt, "sqlite:%s/alt.db", dir);
    setenv("QAI_STORE", alt, 1);
    CHECK_OK(qai_store_open(NULL, home, &s));
    if (s) {
        snprintf(path, sizeof path, "%s/alt.db", dir);
        CHECK(!strcmp(qai_store_location(s), path));
        qai_store_close(s);
    }
    unsetenv("QAI_STORE");

    CHECK_EQ_INT(qai_store_open("mysql://x/y", NULL, &s), QAI_ERR_FORMAT);
    CHECK_MSG(contains(qai_last_error(), "mysql://x/y"), "%s", qai_last_error());
    CHECK_EQ_INT(qai_store_open("sqlite:", NULL, &s), QAI_ERR_FORMAT);
    snprintf(path, sizeof path, "%s/garbage.db", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        for (int i = 0; i < 4096; i++) fputc(i * 7 + 3, f);
        fclose(f);
    }
    CHECK(qai_store_open(path, NULL, &s) != QAI_OK);
    CHECK_MSG(contains(qai_last_error(), "garbage.db"), "%s", qai_last_error());
    snprintf(path, sizeof path, "%s/no/such/dir/x.db", dir);
    CHECK_EQ_INT(qai_store_open(path, NULL, &s), QAI_ERR_IO);
    /* a PostgreSQL URL with a password: the password never shows in messages */
    CHECK(qai_store_open("postgresql://u:hunter2@127.0.0.1:1/db?connect_timeout=2", NULL, &s) != QAI_OK);
    CHECK_MSG(!contains(qai_last_error(), "hunter2") && contains(qai_last_error(), "u:***@127.0.0.1"), "%s",
              qai_last_error());
}

int main(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test_store.XXXXXX", store_test_dir());
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    unsetenv("QAI_STORE");
    char url[600];
    snprintf(url, sizeof url, "sqlite:%s/qai.db", dir);
    label = "sqlite";
    suite(url);
    test_sqlite_specifics(dir);

    pg_test_server pg;
    uint64_t t0 = qai_time_ns();
    bool up = pg_test_start(&pg, false);
    fprintf(stderr, "   starting PostgreSQL: %.1f ms\n", (qai_time_ns() - t0) / 1e6);
    if (up) {
        label = "postgres";
        suite(pg.url);
    } else
        printf("SKIP: postgres half: %s\n", pg.why);
    pg_test_stop(&pg);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
