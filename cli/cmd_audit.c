/* qai audit — verify the hash chain of the audit trail, or show its last rows.
 * A thin wrapper over qai/store.h. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "qai/store.h"

static const char *usage_text =
    "usage: qai audit verify [--anchor SEQ:HASH] [--json]\n"
    "       qai audit tail [-n N] [--json]\n"
    "\n"
    "The audit trail of qai serve: one row per request (time, API key id, model,\n"
    "variant, endpoint, token counts, latency, status, outcome), each row hashed\n"
    "together with the previous row's hash (see docs/store.md).\n"
    "\n"
    "  verify         walk the whole chain; names the first row that was edited,\n"
    "                 deleted or moved, or a head that does not match the end of the\n"
    "                 chain (deleted newest rows); prints the head (row and hash):\n"
    "                 keep it elsewhere to check later with --anchor\n"
    "    --anchor SEQ:HASH  also check that row SEQ still has hash HASH (a head\n"
    "                 recorded earlier), which catches a rewrite of the head itself\n"
    "  tail           the last rows, oldest first\n"
    "    -n N         how many (default 20)\n"
    "\n"
    "  --data-dir DIR the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --store URL    the store: sqlite:PATH, a path, or postgres://... (default\n"
    "                 $QAI_STORE or DIR/qai.db)\n"
    "  --json         machine-readable output (shapes in docs/audit.md)\n"
    "  -h, --help     show this help\n"
    "\n"
    "examples:\n"
    "  qai audit verify\n"
    "  qai audit tail -n 5 --json\n"
    "\n"
    "exit codes: 0 ok, 1 the chain is broken or the store failed, 2 bad usage\n";

static void iso_time(int64_t ms, char out[32]) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000 + 1000) % 1000);
}

static void json_str_or_null(const char *s) {
    if (s) cli_json_string(stdout, s, strlen(s), false);
    else fputs("null", stdout);
}

static int do_verify(qai_store *s, bool json, const char *anchor) {
    int64_t aseq = 0;
    char ahash[65] = "";
    if (anchor) {
        const char *colon = strchr(anchor, ':');
        char num[24];
        long long v;
        size_t n = colon ? (size_t)(colon - anchor) : 0;
        if (!colon || n == 0 || n >= sizeof num || strlen(colon + 1) != 64)
            return cli_usage_error("audit", "--anchor needs SEQ:HASH (a row number and its 64-hex-digit hash)");
        memcpy(num, anchor, n);
        num[n] = 0;
        if (!cli_parse_int(num, 1, INT64_MAX, &v)) return cli_usage_error("audit", "--anchor: '%s' is not a row number", num);
        aseq = v;
        snprintf(ahash, sizeof ahash, "%s", colon + 1);
    }
    qai_audit_verify_result r;
    if (qai_audit_verify(s, &r) != QAI_OK) return cli_fail_last("audit");
    char anchor_problem[200] = "";
    if (r.ok && anchor) {
        char h[65];
        qai_status st = qai_audit_row_hash(s, aseq, h);
        if (st == QAI_ERR_NOT_FOUND)
            snprintf(anchor_problem, sizeof anchor_problem, "anchor row %lld no longer exists (rows were deleted)",
                     (long long)aseq);
        else if (st != QAI_OK) return cli_fail_last("audit");
        else if (strcmp(h, ahash))
            snprintf(anchor_problem, sizeof anchor_problem, "anchor row %lld has hash %.16s..., not %.16s...",
                     (long long)aseq, h, ahash);
    }
    bool ok = r.ok && !anchor_problem[0];
    if (json) {
        printf("{\"ok\": %s, \"rows\": %" PRId64 ", \"head\": {\"seq\": %" PRId64 ", \"hash\": \"%s\"}, \"bad_row\": ",
               ok ? "true" : "false", r.rows, r.head_seq, r.head_hash);
        if (!r.ok && r.bad_seq) printf("%" PRId64, r.bad_seq);
        else fputs("null", stdout);
        fputs(", \"problem\": ", stdout);
        json_str_or_null(!r.ok ? r.problem : anchor_problem[0] ? anchor_problem : NULL);
        if (anchor) printf(", \"anchor\": {\"seq\": %" PRId64 ", \"ok\": %s}", aseq, r.ok && !anchor_problem[0] ? "true" : "false");
        fputs("}\n", stdout);
    } else if (ok)
        printf("audit chain ok: %" PRId64 " rows; head %" PRId64 ":%s%s\n", r.rows, r.head_seq, r.head_hash,
               anchor ? "; anchor matches" : "");
    if (!r.ok) return cli_fail("audit", "chain broken: %s", r.problem);
    if (anchor_problem[0]) return cli_fail("audit", "%s", anchor_problem);
    return 0;
}

static int do_tail(qai_store *s, bool json, long long n) {
    qai_audit_record *r = NULL;
    size_t k = 0;
    if (qai_audit_tail(s, (size_t)n, &r, &k) != QAI_OK) return cli_fail_last("audit");
    char t[32];
    if (json) fputs("[", stdout);
    for (size_t i = 0; i < k; i++) {
        iso_time(r[i].time_ms, t);
        if (json) {
            printf("%s\n {\"seq\": %" PRId64 ", \"time\": \"%s\", \"time_ms\": %" PRId64 ", \"key_id\": ", i ? "," : "",
                   r[i].seq, t, r[i].time_ms);
            json_str_or_null(r[i].key_id);
            fputs(", \"model\": ", stdout);
            json_str_or_null(r[i].model);
            fputs(", \"variant\": ", stdout);
            json_str_or_null(r[i].variant);
            fputs(", \"endpoint\": ", stdout);
            json_str_or_null(r[i].endpoint);
            printf(", \"prompt_tokens\": %" PRId64 ", \"completion_tokens\": %" PRId64 ", \"latency_ms\": %" PRId64
                   ", \"status\": %d, \"outcome\": ",
                   r[i].prompt_tokens, r[i].completion_tokens, r[i].latency_ms, r[i].status);
            json_str_or_null(r[i].outcome);
            printf(", \"prev_hash\": \"%s\", \"hash\": \"%s\"}", r[i].prev_hash, r[i].hash);
        } else
            printf("%6" PRId64 "  %s  %-16s  %-12s  %-8s  %-22s  %3d  %6" PRId64 "+%-6" PRId64 " %6" PRId64 "ms  %s\n",
                   r[i].seq, t, r[i].key_id ? r[i].key_id : "-", r[i].model ? r[i].model : "-",
                   r[i].variant ? r[i].variant : "-", r[i].endpoint ? r[i].endpoint : "-", r[i].status,
                   r[i].prompt_tokens, r[i].completion_tokens, r[i].latency_ms, r[i].outcome ? r[i].outcome : "-");
    }
    if (json) fputs(k ? "\n]\n" : "]\n", stdout);
    else if (!k) fprintf(stderr, "qai: audit: the audit trail is empty\n");
    qai_free(r);
    return 0;
}

int cmd_audit(int argc, char **argv) {
    if (argc < 2) return cli_usage_error("audit", "which subcommand: verify or tail?");
    if (cli_flag(argv[1], "-h", "--help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *sub = argv[1];
    bool verify = !strcmp(sub, "verify"), tail = !strcmp(sub, "tail");
    if (!verify && !tail) return cli_usage_error("audit", "unknown subcommand '%s'", sub);
    const char *data_dir = NULL, *store = NULL, *anchor = NULL;
    bool json = false;
    long long n = 20;
    for (int i = 2; i < argc; i++) {
        const char *v, *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v) return cli_usage_error("audit", "--data-dir needs a directory");
            data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v) return cli_usage_error("audit", "--store needs a URL");
            store = v;
        } else if (verify && cli_value(argc, argv, &i, NULL, "--anchor", &v)) {
            if (!v) return cli_usage_error("audit", "--anchor needs SEQ:HASH");
            anchor = v;
        } else if (tail && cli_value(argc, argv, &i, "-n", NULL, &v)) {
            if (!v || !cli_parse_int(v, 1, 1000000, &n)) return cli_usage_error("audit", "-n needs a number from 1 to 1000000");
        } else if (a[0] == '-' && a[1]) return cli_usage_error("audit", "unknown option '%s' for '%s'", a, sub);
        else return cli_usage_error("audit", "unexpected argument '%s'", a);
    }
    qai_store *s;
    if (qai_store_open(store, data_dir, &s) != QAI_OK) return cli_fail_last("audit");
    int rc = verify ? do_verify(s, json, anchor) : do_tail(s, json, n);
    qai_store_close(s);
    return rc;
}
