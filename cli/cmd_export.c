/* qai export — copy registered bundles, the public keys that signed them and
 * the known revocations into a folder, under an index listing every file's
 * SHA-256, for carrying to an air-gapped machine (qai_registry_export). */
#include <string.h>

#include "cli.h"
#include "qai/bundle.h"

/* in cmd_sign.c */
int sign_load_identity(const char *cmd, const char *data_dir, const char *key, const char *pass_file,
                       qai_identity **out);

static const char *usage_text =
    "usage: qai export --to DIR [NAME[@VERSION] ...] [--key KEYID|NAME] [--passphrase-file FILE]\n"
    "                  [--data-dir D] [--store URL] [--json]\n"
    "\n"
    "Copies the chosen model versions' bundles (NAME: all its versions; none: every\n"
    "version in the registry) to DIR/bundles/, the public keys that signed them to\n"
    "DIR/keys/, the revocations known here to DIR/keys/revoked.txt, and writes\n"
    "DIR/index.json listing every file with its SHA-256 and size. DIR must be new or\n"
    "empty. Prints the index's SHA-256: give it to qai import --index-sha256 on the\n"
    "other side (read it out, write it down), or sign the index with --key.\n"
    "\n"
    "  --to DIR                the folder to fill (required)\n"
    "  --key K                 sign the index (DIR/index.json.sig) with this identity\n"
    "  --passphrase-file FILE  the key's passphrase (else $QAI_PASSPHRASE or a prompt)\n"
    "  --data-dir D            the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --store URL             the store (default $QAI_STORE or D/qai.db)\n"
    "  --json                  print {\"dir\", \"index_sha256\", \"signed\"}\n"
    "  -h, --help              show this help\n"
    "\n"
    "example:\n"
    "  qai export --to /media/usb/qai-transfer demo@1.0.0\n"
    "\n"
    "exit codes: 0 ok, 1 failed, 2 bad usage\n";

#define MAX_REFS 256

int cmd_export(int argc, char **argv) {
    const char *dir = NULL, *key = NULL, *pass_file = NULL, *data_dir = NULL, *store = NULL, *refs[MAX_REFS];
    size_t nrefs = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *v, *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_value(argc, argv, &i, NULL, "--to", &v)) {
            if (!v || !*v) return cli_usage_error("export", "--to needs a directory");
            dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--key", &v)) {
            if (!v || !*v) return cli_usage_error("export", "--key needs a key id or name");
            key = v;
        } else if (cli_value(argc, argv, &i, NULL, "--passphrase-file", &v)) {
            if (!v || !*v) return cli_usage_error("export", "--passphrase-file needs a file");
            pass_file = v;
        } else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v || !*v) return cli_usage_error("export", "--data-dir needs a directory");
            data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v || !*v) return cli_usage_error("export", "--store needs a URL");
            store = v;
        } else if (cli_flag(a, NULL, "--passphrase"))
            return cli_usage_error("export", "a passphrase is never taken as a flag: use --passphrase-file FILE, "
                                             "QAI_PASSPHRASE or the terminal prompt");
        else if (a[0] == '-') return cli_usage_error("export", "unknown option '%s'", a);
        else if (nrefs < MAX_REFS) refs[nrefs++] = a;
        else return cli_usage_error("export", "too many models (at most %d)", MAX_REFS);
    }
    if (!dir) return cli_usage_error("export", "no folder given (--to DIR)");
    qai_identity *id = NULL;
    if (key) {
        int rc = sign_load_identity("export", data_dir, key, pass_file, &id);
        if (rc) return rc;
    }
    qai_store *s;
    if (qai_store_open(store, data_dir, &s) != QAI_OK) {
        qai_identity_free(id);
        return cli_fail_last("export");
    }
    char sha[65];
    qai_status st = qai_registry_export(s, data_dir, dir, refs, nrefs, id, sha);
    qai_store_close(s);
    int rc = 0;
    if (st) rc = cli_fail_last("export");
    else if (json) {
        printf("{\"dir\": ");
        cli_json_string(stdout, dir, strlen(dir), false);
        printf(", \"index_sha256\": \"%s\", \"signed\": %s}\n", sha, id ? "true" : "false");
    } else {
        printf("%s\n", sha);
        fprintf(stderr, "qai: export: wrote %s/index.json%s; its sha256 is above: carry it separately\n", dir,
                id ? " and index.json.sig" : "");
    }
    qai_identity_free(id);
    return rc;
}
