/* qai import — verify an export folder (index, every file, every bundle and
 * signature) and only then add its keys, revocations and bundles here
 * (qai_registry_import). */
#include <string.h>

#include "cli.h"
#include "qai/bundle.h"

static const char *usage_text =
    "usage: qai import DIR [--index-sha256 HEX] [--require-signed] [--trust T]\n"
    "                  [--data-dir D] [--store URL] [--json]\n"
    "\n"
    "Reads an export folder made by qai export. The index must be vouched for: signed\n"
    "(DIR/index.json.sig) by a key already trusted here, or its SHA-256 given with\n"
    "--index-sha256. Then every file must match the index (unlisted files and links are\n"
    "refused), every bundle must verify with the carried public keys and revocations\n"
    "added to the trust here, and no version may clash with a different bundle here —\n"
    "all checked before anything is added. Then the keys go to D/trust/, the\n"
    "revocations into D/trust/revoked.txt, and the bundles into the registry.\n"
    "\n"
    "  --index-sha256 HEX  the index's SHA-256 as qai export printed it\n"
    "  --require-signed    every bundle needs a valid signature by a trusted key\n"
    "  --trust T           the public keys trusted here (default D/trust/ and D/keys/)\n"
    "  --data-dir D        the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --store URL         the store (default $QAI_STORE or D/qai.db)\n"
    "  --json              print {\"imported\"}\n"
    "  -h, --help          show this help\n"
    "\n"
    "example:\n"
    "  qai import /media/usb/qai-transfer --index-sha256 3f0c...e9 --require-signed\n"
    "\n"
    "exit codes: 0 ok, 1 failed (nothing was added), 2 bad usage\n";

int cmd_import(int argc, char **argv) {
    const char *dir = NULL, *sha = NULL;
    qai_bundle_policy pol = {0};
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *v, *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_flag(a, NULL, "--require-signed")) pol.require_signed = true;
        else if (cli_value(argc, argv, &i, NULL, "--index-sha256", &v)) {
            if (!v || strlen(v) != 64 || strspn(v, "0123456789abcdef") != 64)
                return cli_usage_error("import", "--index-sha256 needs 64 lowercase hex digits");
            sha = v;
        } else if (cli_value(argc, argv, &i, NULL, "--trust", &v)) {
            if (!v || !*v) return cli_usage_error("import", "--trust needs a directory");
            pol.trust_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v || !*v) return cli_usage_error("import", "--data-dir needs a directory");
            pol.data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v || !*v) return cli_usage_error("import", "--store needs a URL");
            pol.store_url = v;
        } else if (a[0] == '-') return cli_usage_error("import", "unknown option '%s'", a);
        else if (!dir) dir = a;
        else return cli_usage_error("import", "unexpected argument '%s'", a);
    }
    if (!dir) return cli_usage_error("import", "no folder given");
    qai_store *s;
    if (qai_store_open(pol.store_url, pol.data_dir, &s) != QAI_OK) return cli_fail_last("import");
    size_t n = 0;
    qai_status st = qai_registry_import(s, pol.data_dir, dir, &pol, sha, &n);
    qai_store_close(s);
    if (st) return cli_fail_last("import");
    if (json) printf("{\"imported\": %zu}\n", n);
    else fprintf(stderr, "qai: import: added %zu model version%s from %s\n", n, n == 1 ? "" : "s", dir);
    return 0;
}
