/* qai keys — API keys (create, list, revoke) and the signing keys registered in
 * the store (listed, revoked). A thin wrapper over qai/store.h.
 *
 * Signing-key subcommands that need the identity files (export-public, and
 * later import) belong in the table below, next to the API-key ones: see
 * "signing keys" in subcommands[]. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dirent.h>
#include <unistd.h>

#include "cli.h"
#include "qai/sign.h"
#include "qai/store.h"

static const char *usage_text =
    "usage: qai keys create --scope inference|admin [--rate N/min] [--tokens N/day] [--name NAME] [--json]\n"
    "       qai keys list [--json]\n"
    "       qai keys revoke ID [--reason TEXT]\n"
    "       qai keys export-public KEYID|NAME [-o FILE]\n"
    "\n"
    "API keys for qai serve, and the signing keys registered in the store.\n"
    "\n"
    "  create         make an API key; prints the secret (qai-...) once on stdout:\n"
    "                 only its SHA-256 is stored, so it cannot be shown again\n"
    "    --scope S    inference (the /v1 endpoints) or admin (everything)\n"
    "    --rate R     requests per minute, as N or N/min or N/s (default 0 = unlimited)\n"
    "    --tokens T   prompt + completion tokens per UTC day, as N or N/day\n"
    "                 (default 0 = unlimited)\n"
    "    --name NAME  a note to recognise the key by\n"
    "  list           API keys (id, prefix of the secret, scope, limits, tokens used\n"
    "                 today, state) and signing keys (id, name, algorithm, state)\n"
    "  revoke ID      revoke an API key (ID key_...) or a signing key; at once and\n"
    "                 for good (revoking twice is not an error)\n"
    "  export-public  write a signing identity's public key file (from DIR/keys/, or\n"
    "                 the store) to FILE (default ./<keyid>.pub), to give to whoever\n"
    "                 verifies your bundles (they put it in their trust/ folder)\n"
    "\n"
    "  --data-dir DIR the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --store URL    the store: sqlite:PATH, a path, or postgres://... (default\n"
    "                 $QAI_STORE or DIR/qai.db)\n"
    "  --json         machine-readable output (shapes in docs/keys.md)\n"
    "  -h, --help     show this help\n"
    "\n"
    "examples:\n"
    "  qai keys create --scope inference --rate 60/min --tokens 100000/day --name ci\n"
    "  qai keys list\n"
    "  qai keys revoke key_3f9a0c1d2e4b\n"
    "  qai keys export-public release@lab -o release.pub\n"
    "\n"
    "exit codes: 0 ok, 1 failed (unknown key, store error), 2 bad usage\n";

typedef struct {
    const char *data_dir, *store, *scope, *name, *reason, *out;
    int64_t rate, tokens;
    bool json;
    const char *pos[4];
    int npos;
} opts;

/* "N", "N/UNIT" with unit in units[] (scales[] multiplies); false if malformed. */
static bool parse_limit(const char *v, const char *const *units, const int64_t *scales, int64_t *out) {
    if (!v) return false;
    char num[32];
    const char *slash = strchr(v, '/');
    size_t n = slash ? (size_t)(slash - v) : strlen(v);
    if (n == 0 || n >= sizeof num) return false;
    memcpy(num, v, n);
    num[n] = 0;
    long long x;
    if (!cli_parse_int(num, 0, INT64_MAX / 3600, &x)) return false;
    int64_t scale = 1;
    if (slash) {
        int k = 0;
        while (units[k] && strcmp(units[k], slash + 1)) k++;
        if (!units[k]) return false;
        scale = scales[k];
    }
    *out = (int64_t)x * scale;
    return true;
}

static int parse(int argc, char **argv, opts *o) {
    static const char *const rate_units[] = {"min", "m", "minute", "s", "sec", "second", NULL};
    static const int64_t rate_scales[] = {1, 1, 1, 60, 60, 60};
    static const char *const tok_units[] = {"day", "d", NULL};
    static const int64_t tok_scales[] = {1, 1};
    for (int i = 2; i < argc; i++) {
        const char *v, *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (cli_flag(a, NULL, "--json")) o->json = true;
        else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v) return cli_usage_error("keys", "--data-dir needs a directory");
            o->data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v) return cli_usage_error("keys", "--store needs a URL");
            o->store = v;
        } else if (cli_value(argc, argv, &i, NULL, "--scope", &v)) {
            if (!v || (strcmp(v, "inference") && strcmp(v, "admin")))
                return cli_usage_error("keys", "--scope needs 'inference' or 'admin'");
            o->scope = v;
        } else if (cli_value(argc, argv, &i, NULL, "--name", &v)) {
            if (!v) return cli_usage_error("keys", "--name needs a value");
            o->name = v;
        } else if (cli_value(argc, argv, &i, "-o", "--output", &v)) {
            if (!v || !*v) return cli_usage_error("keys", "-o needs a file");
            o->out = v;
        } else if (cli_value(argc, argv, &i, NULL, "--reason", &v)) {
            if (!v) return cli_usage_error("keys", "--reason needs a value");
            o->reason = v;
        } else if (cli_value(argc, argv, &i, NULL, "--rate", &v)) {
            if (!parse_limit(v, rate_units, rate_scales, &o->rate))
                return cli_usage_error("keys", "--rate needs requests per minute, like 60/min or 2/s");
        } else if (cli_value(argc, argv, &i, NULL, "--tokens", &v)) {
            if (!parse_limit(v, tok_units, tok_scales, &o->tokens))
                return cli_usage_error("keys", "--tokens needs tokens per day, like 100000/day");
        } else if (a[0] == '-' && a[1]) return cli_usage_error("keys", "unknown option '%s'", a);
        else if (o->npos < 4) o->pos[o->npos++] = a;
        else return cli_usage_error("keys", "too many arguments");
    }
    return -1; /* go on */
}

static int do_create(qai_store *s, const opts *o) {
    if (!o->scope) return cli_usage_error("keys", "create needs --scope inference|admin");
    if (o->npos) return cli_usage_error("keys", "create takes no arguments ('%s')", o->pos[0]);
    char secret[QAI_APIKEY_SECRET_SIZE];
    qai_apikey *k = NULL;
    if (qai_apikey_create(s, o->scope, o->rate, o->tokens, o->name, secret, &k) != QAI_OK)
        return cli_fail_last("keys");
    if (o->json) {
        char t[32];
        cli_iso_time(k->created_ms, t);
        printf("{\"id\": \"%s\", \"secret\": \"%s\", \"prefix\": \"%s\", \"scope\": \"%s\", \"name\": ", k->id, secret,
               k->prefix, k->scope);
        if (k->name) cli_json_string(stdout, k->name, strlen(k->name), false);
        else fputs("null", stdout);
        printf(", \"rate_per_min\": %" PRId64 ", \"tokens_per_day\": %" PRId64 ", \"created\": \"%s\"}\n", k->rate_per_min,
               k->tokens_per_day, t);
    } else {
        printf("%s\n", secret);
        fprintf(stderr,
                "qai: keys: created %s (scope %s, %" PRId64 " requests/min, %" PRId64
                " tokens/day; 0 = unlimited)\nqai: keys: the secret above is shown only once: store it now\n",
                k->id, k->scope, k->rate_per_min, k->tokens_per_day);
    }
    qai_free(k);
    return 0;
}

static int do_list(qai_store *s, const opts *o) {
    if (o->npos) return cli_usage_error("keys", "list takes no arguments ('%s')", o->pos[0]);
    qai_apikey *k = NULL;
    size_t n = 0, ns = 0;
    qai_signing_key *sk = NULL;
    if (qai_apikey_list(s, &k, &n) != QAI_OK) return cli_fail_last("keys");
    if (qai_signing_key_list(s, &sk, &ns) != QAI_OK) {
        qai_free(k);
        return cli_fail_last("keys");
    }
    int64_t now = qai_store_now_ms();
    char c[32], r[32], u[32];
    if (o->json) printf("{\"api_keys\": [");
    else if (n) printf("%-16s  %-12s  %-9s  %8s  %10s  %10s  %-20s  %-20s  %s\n", "ID", "PREFIX", "SCOPE", "RATE/MIN",
                       "TOKENS/DAY", "USED TODAY", "CREATED", "REVOKED", "NAME");
    for (size_t i = 0; i < n; i++) {
        int64_t used = 0;
        if (qai_apikey_usage(s, k[i].id, now, &used, NULL) != QAI_OK) {
            qai_free(k);
            qai_free(sk);
            return cli_fail_last("keys");
        }
        cli_iso_time(k[i].created_ms, c);
        cli_iso_time(k[i].revoked_ms, r);
        cli_iso_time(k[i].last_used_ms, u);
        if (o->json) {
            printf("%s\n  {\"id\": \"%s\", \"prefix\": \"%s\", \"scope\": \"%s\", \"name\": ", i ? "," : "", k[i].id,
                   k[i].prefix, k[i].scope);
            if (k[i].name) cli_json_string(stdout, k[i].name, strlen(k[i].name), false);
            else fputs("null", stdout);
            printf(", \"rate_per_min\": %" PRId64 ", \"tokens_per_day\": %" PRId64 ", \"tokens_today\": %" PRId64
                   ", \"created\": \"%s\", \"last_used\": %s%s%s, \"revoked\": %s%s%s}",
                   k[i].rate_per_min, k[i].tokens_per_day, used, c, k[i].last_used_ms ? "\"" : "",
                   k[i].last_used_ms ? u : "null", k[i].last_used_ms ? "\"" : "", k[i].revoked_ms ? "\"" : "",
                   k[i].revoked_ms ? r : "null", k[i].revoked_ms ? "\"" : "");
        } else
            printf("%-16s  %-12s  %-9s  %8" PRId64 "  %10" PRId64 "  %10" PRId64 "  %-20s  %-20s  %s\n", k[i].id,
                   k[i].prefix, k[i].scope, k[i].rate_per_min, k[i].tokens_per_day, used, c, r,
                   k[i].name ? k[i].name : "");
    }
    if (o->json) printf("%s], \"signing_keys\": [", n ? "\n" : "");
    else if (!n) printf("no API keys (qai keys create --scope inference makes one)\n");
    if (!o->json && ns) printf("\nsigning keys:\n%-24s  %-24s  %-20s  %-20s  %s\n", "KEY ID", "NAME", "ALGORITHM", "CREATED", "REVOKED");
    for (size_t i = 0; i < ns; i++) {
        cli_iso_time(sk[i].created_ms, c);
        cli_iso_time(sk[i].revoked_ms, r);
        if (o->json) {
            printf("%s\n  {\"key_id\": ", i ? "," : "");
            cli_json_string(stdout, sk[i].key_id, strlen(sk[i].key_id), false);
            printf(", \"name\": ");
            cli_json_string(stdout, sk[i].name, strlen(sk[i].name), false);
            printf(", \"algorithm\": ");
            cli_json_string(stdout, sk[i].algorithm, strlen(sk[i].algorithm), false);
            printf(", \"created\": \"%s\", \"revoked\": %s%s%s}", c, sk[i].revoked_ms ? "\"" : "",
                   sk[i].revoked_ms ? r : "null", sk[i].revoked_ms ? "\"" : "");
        } else
            printf("%-24s  %-24s  %-20s  %-20s  %s\n", sk[i].key_id, sk[i].name, sk[i].algorithm, c, r);
    }
    if (o->json) printf("%s]}\n", ns ? "\n" : "");
    qai_free(k);
    qai_free(sk);
    return 0;
}

static int do_revoke(qai_store *s, const opts *o) {
    if (o->npos != 1) return cli_usage_error("keys", "revoke needs one key id");
    const char *id = o->pos[0];
    qai_status st = !strncmp(id, "key_", 4) ? qai_apikey_revoke(s, id) : qai_signing_key_revoke(s, id, o->reason);
    if (st != QAI_OK) return cli_fail_last("keys");
    fprintf(stderr, "qai: keys: revoked %s\n", id);
    return 0;
}

/* The identity with this key id or name: DIR/keys/<id>.pub or .key, any
 * .pub or .key file there whose key id or name matches, else the store's copy. */
static int find_identity(qai_store *s, const opts *o, const char *want, qai_identity **out) {
    char home[4096], keys[4200], p[4600];
    *out = NULL;
    if (qai_home_dir(o->data_dir, home, sizeof home) != QAI_OK) return cli_fail_last("keys");
    snprintf(keys, sizeof keys, "%s/keys", home);
    static const char *const exts[] = {".pub", ".key"};
    for (int e = 0; e < 2; e++) {
        snprintf(p, sizeof p, "%s/%.64s%s", keys, want, exts[e]);
        if (access(p, F_OK) == 0) {
            if (qai_identity_load_public(p, out) != QAI_OK) return cli_fail_last("keys");
            return 0;
        }
    }
    DIR *d = opendir(keys);
    int found = 0;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || (strcmp(de->d_name + len - 4, ".pub") && strcmp(de->d_name + len - 4, ".key"))) continue;
        snprintf(p, sizeof p, "%s/%.255s", keys, de->d_name);
        qai_identity *id;
        if (qai_identity_load_public(p, &id) != QAI_OK) continue;
        if ((!strcmp(qai_identity_name(id), want) || !strcmp(qai_identity_key_id(id), want)) &&
            (!*out || strcmp(qai_identity_key_id(*out), qai_identity_key_id(id)))) {
            found++;
            qai_identity_free(*out);
            *out = id;
        } else
            qai_identity_free(id);
    }
    if (d) closedir(d);
    if (found > 1) {
        qai_identity_free(*out);
        *out = NULL;
        return cli_fail("keys", "several identities are named '%s': give the key id", want);
    }
    if (found) return 0;
    qai_signing_key *k = NULL;
    if (qai_signing_key_get(s, want, &k) == QAI_OK) {
        qai_status st = qai_identity_parse(k->public_key, k->public_key_len, want, NULL, out);
        qai_free(k);
        if (st != QAI_OK) return cli_fail_last("keys");
        return 0;
    }
    return cli_fail("keys", "no signing identity '%s' in '%s' or the store", want, keys);
}

static int do_export_public(qai_store *s, const opts *o) {
    if (o->npos != 1) return cli_usage_error("keys", "export-public needs one key id or name");
    qai_identity *id;
    int rc = find_identity(s, o, o->pos[0], &id);
    if (rc) return rc;
    char def[64];
    snprintf(def, sizeof def, "%s.pub", qai_identity_key_id(id));
    const char *path = o->out ? o->out : def;
    if (qai_identity_export_public(id, path) != QAI_OK) rc = cli_fail_last("keys");
    else if (o->json) {
        printf("{\"key_id\": \"%s\", \"name\": ", qai_identity_key_id(id));
        cli_json_string(stdout, qai_identity_name(id), strlen(qai_identity_name(id)), false);
        printf(", \"path\": ");
        cli_json_string(stdout, path, strlen(path), false);
        printf("}\n");
    } else
        fprintf(stderr, "qai: keys: wrote the public key of %s (%s) to %s\n", qai_identity_key_id(id),
                qai_identity_name(id), path);
    qai_identity_free(id);
    return rc;
}

typedef struct {
    const char *name;
    int (*fn)(qai_store *, const opts *);
} subcommand;

static const subcommand subcommands[] = {
    /* API keys */
    {"create", do_create},
    {"list", do_list},
    {"revoke", do_revoke},
    /* signing keys */
    {"export-public", do_export_public},
};

int cmd_keys(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("keys", "which subcommand: create, list, revoke or export-public?");
    if (cli_flag(argv[1], "-h", "--help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    const subcommand *sc = NULL;
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (!strcmp(argv[1], subcommands[i].name)) sc = &subcommands[i];
    if (!sc) return cli_usage_error("keys", "unknown subcommand '%s'", argv[1]);
    opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    if (strcmp(sc->name, "create") && (o.scope || o.name || o.rate || o.tokens))
        return cli_usage_error("keys", "--scope, --rate, --tokens and --name go with 'create'");
    if (strcmp(sc->name, "export-public") && o.out) return cli_usage_error("keys", "-o goes with 'export-public'");
    qai_store *s;
    if (qai_store_open(o.store, o.data_dir, &s) != QAI_OK) return cli_fail_last("keys");
    rc = sc->fn(s, &o);
    qai_store_close(s);
    return rc;
}
