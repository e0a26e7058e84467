/* API keys on SQLite and PostgreSQL: the secret's shape, only its hash in
 * the database (checked by reading the raw rows and, for SQLite, every byte
 * of the database files), lookup with the right, a wrong, a malformed and a
 * revoked key, scopes, persisted per-day token usage and the daily limit with
 * its Retry-After, and the in-memory requests-per-minute bucket against
 * hand-computed refills. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg_test_server.h"
#include "qai/store.h"
#include "test.h"

#define DAY_MS 86400000LL

static bool contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

/* true if the bytes of needle occur in the file */
static bool file_contains(const char *path, const char *needle) {
    char *data = NULL;
    size_t n = 0;
    if (qai_file_read(path, &data, &n) != QAI_OK) return false;
    size_t k = strlen(needle);
    bool found = false;
    for (size_t i = 0; i + k <= n && !found; i++) found = !memcmp(data + i, needle, k);
    qai_free(data);
    return found;
}

static void suite(const char *url, const char *sqlite_path) {
    fprintf(stderr, "== %s\n", url);
    qai_store *s = NULL;
    CHECK_OK(qai_store_open(url, NULL, &s));
    if (!s) return;

    char secret[QAI_APIKEY_SECRET_SIZE], secret2[QAI_APIKEY_SECRET_SIZE];
    qai_apikey *k = NULL;
    CHECK_OK(qai_apikey_create(s, "inference", 60, 1000, "ci bot", secret, &k));
    CHECK_EQ_INT(strlen(secret), QAI_APIKEY_SECRET_LEN);
    CHECK(!strncmp(secret, "qai-", 4));
    for (const char *p = secret + 4; *p; p++)
        CHECK(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p) != NULL);
    char id[32] = "";
    if (k) {
        snprintf(id, sizeof id, "%s", k->id);
        CHECK(!strncmp(k->id, "key_", 4) && strlen(k->id) == 16);
        CHECK(!strncmp(k->prefix, secret, 12) && strlen(k->prefix) == 12);
        CHECK(!strcmp(k->scope, "inference") && !strcmp(k->name, "ci bot"));
        CHECK(k->rate_per_min == 60 && k->tokens_per_day == 1000 && k->revoked_ms == 0 && k->last_used_ms == 0);
    }
    qai_free(k);
    CHECK_OK(qai_apikey_create(s, "admin", 0, 0, NULL, secret2, NULL));
    CHECK(strcmp(secret, secret2) != 0);

    /* only the SHA-256 is stored */
    uint8_t h[32];
    char hex[65], sql[300], got[200];
    qai_sha256(secret, strlen(secret), h);
    qai_hex(h, 32, hex);
    snprintf(sql, sizeof sql, "SELECT key_hash FROM api_keys WHERE id = '%s'", id);
    CHECK(raw_query(url, sql, got, sizeof got));
    CHECK_MSG(!strcmp(got, hex), "stored '%s', want sha256 '%s'", got, hex);
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM api_keys WHERE key_hash LIKE '%%%s%%' OR name LIKE '%%%s%%' OR prefix = '%s'",
             secret + 4, secret + 4, secret);
    CHECK_EQ_INT(raw_int(url, sql), 0);
    if (sqlite_path) {
        char wal[700];
        snprintf(wal, sizeof wal, "%s-wal", sqlite_path);
        CHECK(file_contains(sqlite_path, id) || file_contains(wal, id)); /* the search itself works */
        CHECK(!file_contains(sqlite_path, secret + 16) && !file_contains(wal, secret + 16));
    }

    /* lookup */
    CHECK_OK(qai_apikey_lookup(s, secret, &k));
    if (k) {
        CHECK(!strcmp(k->id, id));
        CHECK(qai_apikey_allows(k, "inference") && !qai_apikey_allows(k, "admin"));
    }
    qai_free(k);
    CHECK_OK(qai_apikey_lookup(s, secret2, &k));
    if (k) CHECK(qai_apikey_allows(k, "inference") && qai_apikey_allows(k, "admin") && !qai_apikey_allows(k, "root"));
    qai_free(k);
    char wrong[QAI_APIKEY_SECRET_SIZE];
    memcpy(wrong, secret, sizeof wrong);
    wrong[20] = wrong[20] == 'A' ? 'B' : 'A'; /* one character off */
    CHECK_EQ_INT(qai_apikey_lookup(s, wrong, &k), QAI_ERR_NOT_FOUND);
    CHECK(k == NULL);
    CHECK_MSG(!strcmp(qai_last_error(), "invalid api key"), "%s", qai_last_error());
    const char *malformed[] = {"", "qai-", "sk-abc", "qai-short", "qai-!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", NULL};
    for (int i = 0; malformed[i]; i++) CHECK_EQ_INT(qai_apikey_lookup(s, malformed[i], &k), QAI_ERR_NOT_FOUND);
    CHECK_EQ_INT(qai_apikey_lookup(s, NULL, &k), QAI_ERR_NOT_FOUND);
    char longer[80];
    snprintf(longer, sizeof longer, "%sX", secret);
    CHECK_EQ_INT(qai_apikey_lookup(s, longer, &k), QAI_ERR_NOT_FOUND);

    /* bad arguments */
    CHECK_EQ_INT(qai_apikey_create(s, "root", 0, 0, NULL, wrong, NULL), QAI_ERR_ARG);
    CHECK_EQ_INT(qai_apikey_create(s, "inference", -1, 0, NULL, wrong, NULL), QAI_ERR_ARG);

    /* usage and the daily limit: 1000 tokens per UTC day */
    int64_t day0 = 20000 * DAY_MS, noon = day0 + DAY_MS / 2, tokens = -1, reqs = -1, retry = -1;
    CHECK_OK(qai_apikey_lookup(s, secret, &k));
    if (k) {
        CHECK_OK(qai_apikey_check_tokens(s, k, noon, &retry));
        CHECK_EQ_INT(retry, 0);
        CHECK_OK(qai_apikey_charge(s, id, 600, noon));
        CHECK_OK(qai_apikey_charge(s, id, 399, noon + 1000));
        CHECK_OK(qai_apikey_usage(s, id, noon, &tokens, &reqs));
        CHECK_EQ_INT(tokens, 999);
        CHECK_EQ_INT(reqs, 2);
        CHECK_OK(qai_apikey_check_tokens(s, k, noon, &retry)); /* 999 < 1000 */
        CHECK_OK(qai_apikey_charge(s, id, 1, noon + 2000));
        CHECK_EQ_INT(qai_apikey_check_tokens(s, k, noon, &retry), QAI_ERR_RANGE);
        CHECK_EQ_INT(retry, 43200); /* noon -> midnight UTC */
        CHECK_MSG(contains(qai_last_error(), id), "%s", qai_last_error());
        CHECK_EQ_INT(qai_apikey_check_tokens(s, k, day0 + DAY_MS - 1500, &retry), QAI_ERR_RANGE);
        CHECK_EQ_INT(retry, 2); /* 1.5 s rounds up */
        CHECK_OK(qai_apikey_check_tokens(s, k, day0 + DAY_MS, &retry)); /* the next day starts at 0 */
        CHECK_OK(qai_apikey_usage(s, id, day0 + DAY_MS, &tokens, &reqs));
        CHECK_EQ_INT(tokens, 0);
    }
    qai_free(k);
    CHECK_EQ_INT(qai_apikey_charge(s, "key_000000000000", 5, noon), QAI_ERR_NOT_FOUND);
    CHECK_EQ_INT(qai_apikey_charge(s, id, -5, noon), QAI_ERR_ARG);
    CHECK_OK(qai_apikey_get(s, id, &k));
    if (k) CHECK_EQ_INT(k->last_used_ms, noon + 2000);
    qai_free(k);

    /* usage survives re-opening (it is in the store, not in memory) */
    qai_store_close(s);
    CHECK_OK(qai_store_open(url, NULL, &s));
    if (!s) return;
    CHECK_OK(qai_apikey_usage(s, id, noon, &tokens, &reqs));
    CHECK_EQ_INT(tokens, 1000);
    CHECK_EQ_INT(reqs, 3);

    /* list and revoke */
    size_t n = 0;
    CHECK_OK(qai_apikey_list(s, &k, &n));
    CHECK_EQ_INT(n, 2);
    qai_free(k);
    CHECK_OK(qai_apikey_revoke(s, id));
    CHECK_OK(qai_apikey_revoke(s, id)); /* again: fine */
    CHECK_EQ_INT(qai_apikey_revoke(s, "key_nope"), QAI_ERR_NOT_FOUND);
    CHECK_EQ_INT(qai_apikey_lookup(s, secret, &k), QAI_ERR_ARG);
    CHECK(k == NULL);
    CHECK_MSG(contains(qai_last_error(), "revoked"), "%s", qai_last_error());
    CHECK_OK(qai_apikey_get(s, id, &k));
    if (k) {
        CHECK(k->revoked_ms > 0);
        CHECK(!qai_apikey_allows(k, "inference"));
    }
    qai_free(k);
    CHECK_OK(qai_apikey_lookup(s, secret2, &k)); /* the other key is unaffected */
    qai_free(k);
    qai_store_close(s);
}

static void test_ratelimit(void) {
    qai_ratelimit *rl = qai_ratelimit_new();
    CHECK(rl != NULL);
    if (!rl) return;
    uint64_t t = 1000000000000ull, sec = 1000000000ull;
    int64_t retry = -1;
    /* 60/min: a burst of 60, then one per second */
    for (int i = 0; i < 60; i++) CHECK(qai_ratelimit_take(rl, "a", 60, t, &retry));
    CHECK(!qai_ratelimit_take(rl, "a", 60, t, &retry));
    CHECK_EQ_INT(retry, 1);
    CHECK(!qai_ratelimit_take(rl, "a", 60, t + sec / 2, &retry)); /* half a token */
    CHECK_EQ_INT(retry, 1);
    CHECK(qai_ratelimit_take(rl, "a", 60, t + sec, &retry));
    CHECK(!qai_ratelimit_take(rl, "a", 60, t + sec, &retry));
    /* other keys have their own buckets */
    CHECK(qai_ratelimit_take(rl, "b", 60, t, &retry));
    /* 6/min: one per 10 s; Retry-After counts whole seconds up */
    for (int i = 0; i < 6; i++) CHECK(qai_ratelimit_take(rl, "slow", 6, t, &retry));
    CHECK(!qai_ratelimit_take(rl, "slow", 6, t, &retry));
    CHECK_EQ_INT(retry, 10);
    CHECK(!qai_ratelimit_take(rl, "slow", 6, t + 2500000000ull, &retry));
    CHECK_EQ_INT(retry, 8); /* 7.5 s left -> 8 */
    CHECK(qai_ratelimit_take(rl, "slow", 6, t + 10 * sec, &retry));
    /* the bucket never holds more than the burst, however long the pause */
    for (int i = 0; i < 6; i++) CHECK(qai_ratelimit_take(rl, "slow", 6, t + 100000 * sec, &retry));
    CHECK(!qai_ratelimit_take(rl, "slow", 6, t + 100000 * sec, &retry));
    /* unlimited */
    for (int i = 0; i < 1000; i++) CHECK(qai_ratelimit_take(rl, "u", 0, t, &retry));
    /* many keys: the table grows and keeps every bucket */
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        CHECK(qai_ratelimit_take(rl, key, 1, t, &retry));
    }
    int limited = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        limited += !qai_ratelimit_take(rl, key, 1, t, &retry) && retry == 60;
    }
    CHECK_EQ_INT(limited, 5000);
    qai_ratelimit_free(rl);
}

/* A revocation by another process must survive while this process holds two
 * handles on the store (the server's store and its audit writer). Opening the
 * second handle once closed a descriptor of the database file, which drops
 * every POSIX lock of the process: the revoking process then believed it was
 * the last user, checkpointed and reset the WAL, and the writer's next commit
 * through the stale WAL brought the old row back (the key was accepted again). */
static void test_revoke_with_two_handles(const char *dir) {
    char url[700];
    snprintf(url, sizeof url, "sqlite:%s/two-handles.db", dir);
    qai_store *a = NULL, *b = NULL;
    char secret[QAI_APIKEY_SECRET_SIZE];
    qai_apikey *k = NULL;
    CHECK_OK(qai_store_open(url, NULL, &a));
    CHECK_OK(qai_apikey_create(a, "inference", 60, 0, "svc", secret, &k));
    CHECK_OK(qai_store_open(url, NULL, &b));
    if (!a || !b || !k) return;
    qai_apikey *got = NULL;
    CHECK_OK(qai_apikey_lookup(a, secret, &got));
    qai_free(got);
    CHECK_OK(qai_apikey_charge(b, k->id, 5, 0));
    /* the mechanism: SQLite holds a read lock on the database file's shared
     * range for as long as a WAL connection is open; another process asking
     * for a write lock there must see it still held after the second open */
    pid_t probe = fork();
    if (probe == 0) {
        char path[700];
        snprintf(path, sizeof path, "%s/two-handles.db", dir);
        int fd = open(path, O_RDONLY);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0x40000000 + 2, .l_len = 510};
        int held = fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
        _exit(held ? 0 : 1);
    }
    int probe_status = 0;
    CHECK(probe > 0 && waitpid(probe, &probe_status, 0) == probe && WIFEXITED(probe_status) &&
          WEXITSTATUS(probe_status) == 0);
    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        if (pid == 0) { /* another process: `qai keys revoke` */
            qai_store *c = NULL;
            int rc = qai_store_open(url, NULL, &c) == QAI_OK && (round > 0 || qai_apikey_revoke(c, k->id) == QAI_OK);
            qai_store_close(c);
            _exit(rc ? 0 : 1);
        }
        int ws = 0;
        CHECK(pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
        CHECK_OK(qai_apikey_charge(b, k->id, 7, 0)); /* the audit writer charges usage */
        got = NULL;
        CHECK_EQ_INT(qai_apikey_lookup(a, secret, &got), QAI_ERR_ARG);
        qai_free(got);
    }
    qai_store_close(b);
    qai_store_close(a);
    CHECK_OK(qai_store_open(url, NULL, &a));
    got = NULL;
    CHECK_EQ_INT(qai_apikey_lookup(a, secret, &got), QAI_ERR_ARG);
    qai_free(got);
    qai_store_close(a);
    qai_free(k);
}

int main(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/test_apikeys.XXXXXX", store_test_dir());
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    unsetenv("QAI_STORE");
    char url[700], path[600];
    snprintf(path, sizeof path, "%s/qai.db", dir);
    snprintf(url, sizeof url, "sqlite:%s", path);
    suite(url, path);
    test_ratelimit();
    test_revoke_with_two_handles(dir);

    pg_test_server pg;
    if (pg_test_start(&pg, false)) suite(pg.url, NULL);
    else printf("SKIP: postgres half: %s\n", pg.why);
    pg_test_stop(&pg);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary();
}
