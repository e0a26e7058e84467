/* qai verify — check a bundle's members against its manifest and its
 * signatures against the trusted keys and revocations (qai/bundle.h). */
#include <string.h>

#include "cli.h"
#include "qai/bundle.h"

static const char *usage_text =
    "usage: qai verify BUNDLE [--trust DIR] [--require-signed] [--data-dir DIR] [--store URL] [--json]\n"
    "\n"
    "Recomputes the SHA-256 and size of every member of BUNDLE and compares them with\n"
    "its manifest, naming the first member that differs; refuses links, odd names and\n"
    "members the manifest does not list. Then checks each signature: valid only if\n"
    "both Ed25519 and ML-DSA-65 verify under a trusted key that is not revoked.\n"
    "\n"
    "  --trust DIR       trust the public keys (*.pub) in DIR only; default DIR/trust/\n"
    "                    and DIR/keys/ of the data directory\n"
    "  --require-signed  fail unless at least one signature is valid under a trusted key\n"
    "                    (without it, signatures by unknown keys are reported, not fatal)\n"
    "  --data-dir DIR    the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --store URL       where revocations are recorded (default $QAI_STORE or\n"
    "                    DIR/qai.db when it exists); revoked.txt in a trust directory\n"
    "                    also revokes\n"
    "  --json            print the report as JSON (shape in docs/verify.md)\n"
    "  -h, --help        show this help\n"
    "\n"
    "example:\n"
    "  qai verify demo-1.0.0.qai --require-signed\n"
    "\n"
    "exit codes: 0 valid, 1 invalid or unreadable (the reason on stderr), 2 bad usage\n";

static void json_str(const char *s) { cli_json_string(stdout, s, strlen(s), false); }

int cmd_verify(int argc, char **argv) {
    const char *bundle = NULL;
    qai_bundle_policy pol = {0};
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *v, *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_flag(a, NULL, "--require-signed")) pol.require_signed = true;
        else if (cli_value(argc, argv, &i, NULL, "--trust", &v)) {
            if (!v || !*v) return cli_usage_error("verify", "--trust needs a directory");
            pol.trust_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v || !*v) return cli_usage_error("verify", "--data-dir needs a directory");
            pol.data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v || !*v) return cli_usage_error("verify", "--store needs a URL");
            pol.store_url = v;
        } else if (a[0] == '-') return cli_usage_error("verify", "unknown option '%s'", a);
        else if (!bundle) bundle = a;
        else return cli_usage_error("verify", "unexpected argument '%s'", a);
    }
    if (!bundle) return cli_usage_error("verify", "no bundle given");
    qai_bundle_report r;
    if (qai_bundle_verify(bundle, &pol, 0, &r) != QAI_OK) {
        qai_bundle_report_release(&r);
        return cli_fail_last("verify");
    }
    if (json) {
        printf("{\"bundle\": ");
        json_str(bundle);
        printf(", \"ok\": %s, \"problem\": ", r.ok ? "true" : "false");
        if (r.ok) printf("null");
        else json_str(r.problem);
        printf(", \"failed\": ");
        if (r.failed[0]) json_str(r.failed);
        else printf("null");
        printf(", \"name\": \"%s\", \"version\": \"%s\", \"model\": {\"path\": ", r.name, r.version);
        json_str(r.model_member);
        printf(", \"sha256\": \"%s\", \"size\": %llu}, \"members\": [", r.model_sha256,
               (unsigned long long)r.model_size);
        for (size_t i = 0; i < r.n_members; i++) {
            printf("%s{\"path\": ", i ? ", " : "");
            json_str(r.members[i].path);
            printf(", \"sha256\": \"%s\", \"size\": %llu}", r.members[i].sha256, (unsigned long long)r.members[i].size);
        }
        printf("], \"signatures\": [");
        for (size_t i = 0; i < r.n_sigs; i++) {
            const qai_bundle_signature *g = &r.sigs[i];
            printf("%s{\"member\": ", i ? ", " : "");
            json_str(g->member);
            printf(", \"key_id\": ");
            if (g->key_id[0]) json_str(g->key_id);
            else printf("null");
            printf(", \"signer\": ");
            if (g->signer[0]) json_str(g->signer);
            else printf("null");
            printf(", \"state\": \"%s\", \"detail\": ", qai_bundle_sig_state_name(g->state));
            json_str(g->detail);
            printf("}");
        }
        printf("], \"valid_signatures\": %zu}\n", r.n_valid);
    } else if (r.ok) {
        printf("%s: ok: %s %s, %zu members match the manifest\n", bundle, r.name, r.version, r.n_members);
        for (size_t i = 0; i < r.n_sigs; i++)
            printf("  %s: %s%s%s%s\n", r.sigs[i].member, r.sigs[i].detail, r.sigs[i].signer[0] ? " by '" : "",
                   r.sigs[i].signer, r.sigs[i].signer[0] ? "'" : "");
        if (!r.n_sigs) printf("  unsigned\n");
    }
    int rc = 0;
    if (!r.ok) rc = cli_fail("verify", "%s", r.problem);
    qai_bundle_report_release(&r);
    return rc;
}
