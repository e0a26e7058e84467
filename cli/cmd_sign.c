/* qai sign — add a hybrid signature (Ed25519 + ML-DSA-65) over a bundle's
 * manifest as signatures/<keyid>.sig. Also the identity loading that qai
 * export uses to sign its index (sign_load_identity). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "qai/bundle.h"

static const char *usage_text =
    "usage: qai sign BUNDLE --key KEYID|NAME [--data-dir DIR] [--passphrase-file FILE]\n"
    "\n"
    "Signs BUNDLE's manifest (which holds the SHA-256 of every other member) with a\n"
    "signing identity from qai keygen, both Ed25519 and ML-DSA-65, and stores the\n"
    "signature in the bundle as signatures/<keyid>.sig. The bundle is checked first\n"
    "(a damaged bundle is not signed) and written anew atomically; other signers'\n"
    "signatures stay, a second signature by the same key replaces the first.\n"
    "\n"
    "  --key K                 the key id (32 hex digits) or the name of an identity in\n"
    "                          DIR/keys/\n"
    "  --data-dir DIR          the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  --passphrase-file FILE  read the passphrase from FILE's first line; else\n"
    "                          $QAI_PASSPHRASE, else a prompt on the terminal\n"
    "  -h, --help              show this help\n"
    "\n"
    "example:\n"
    "  QAI_PASSPHRASE='correct horse battery' qai sign demo-1.0.0.qai --key release@lab\n"
    "\n"
    "exit codes: 0 signed, 1 failed, 2 bad usage\n";


/* Finds DIR/keys/<key>.key, or the one *.key whose identity is named key. */
static int find_key_file(const char *cmd, const char *keys, const char *key, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s.key", keys, key);
    if (access(out, F_OK) == 0) return 0;
    DIR *d = opendir(keys);
    if (!d) return cli_fail(cmd, "no signing keys in '%s' (qai keygen makes one)", keys);
    int found = 0;
    struct dirent *de;
    char p[4600];
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".key")) continue;
        snprintf(p, sizeof p, "%s/%s", keys, de->d_name);
        qai_identity *id;
        if (qai_identity_load_public(p, &id) != QAI_OK) continue;
        if (!strcmp(qai_identity_name(id), key)) {
            if (found++) {
                qai_identity_free(id);
                closedir(d);
                return cli_fail(cmd, "several keys in '%s' are named '%s': give the key id", keys, key);
            }
            snprintf(out, cap, "%s", p);
        }
        qai_identity_free(id);
    }
    closedir(d);
    if (!found) return cli_fail(cmd, "no signing key '%s' in '%s' (by key id or name)", key, keys);
    return 0;
}

/* Loads the private identity named key (key id or name) from DIR/keys with the
 * passphrase from pass_file / $QAI_PASSPHRASE / the terminal. */
int sign_load_identity(const char *cmd, const char *data_dir, const char *key, const char *pass_file,
                       qai_identity **out) {
    *out = NULL;
    if (sodium_init() < 0) return cli_fail(cmd, "libsodium failed to initialise");
    char home[4096], keys[4200], path[4600];
    if (qai_home_dir(data_dir, home, sizeof home) != QAI_OK) return cli_fail_last(cmd);
    snprintf(keys, sizeof keys, "%s/keys", home);
    int rc = find_key_file(cmd, keys, key, path, sizeof path);
    if (rc) return rc;
    char *pass = sodium_malloc(CLI_PASS_MAX);
    if (!pass) return cli_fail(cmd, "out of memory");
    char prompt[160];
    snprintf(prompt, sizeof prompt, "passphrase for key %s: ", key);
    rc = cli_get_passphrase(cmd, pass_file, prompt, false, pass);
    if (!rc && qai_identity_load_private(path, pass, out) != QAI_OK) rc = cli_fail_last(cmd);
    sodium_free(pass);
    return rc;
}

int cmd_sign(int argc, char **argv) {
    const char *bundle = NULL, *key = NULL, *data_dir = NULL, *pass_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v, *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_value(argc, argv, &i, NULL, "--key", &v)) {
            if (!v || !*v) return cli_usage_error("sign", "--key needs a key id or name");
            key = v;
        } else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v || !*v) return cli_usage_error("sign", "--data-dir needs a directory");
            data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--passphrase-file", &v)) {
            if (!v || !*v) return cli_usage_error("sign", "--passphrase-file needs a file");
            pass_file = v;
        } else if (cli_flag(a, NULL, "--passphrase"))
            return cli_usage_error("sign", "a passphrase is never taken as a flag: use --passphrase-file FILE, "
                                           "QAI_PASSPHRASE or the terminal prompt");
        else if (a[0] == '-') return cli_usage_error("sign", "unknown option '%s'", a);
        else if (!bundle) bundle = a;
        else return cli_usage_error("sign", "unexpected argument '%s'", a);
    }
    if (!bundle) return cli_usage_error("sign", "no bundle given");
    if (!key) return cli_usage_error("sign", "no key given (--key KEYID|NAME)");
    qai_identity *id;
    int rc = sign_load_identity("sign", data_dir, key, pass_file, &id);
    if (rc) return rc;
    if (qai_bundle_sign(bundle, id) != QAI_OK) rc = cli_fail_last("sign");
    else
        fprintf(stderr, "qai: sign: %s signed by %s (%s) as signatures/%s.sig\n", bundle, qai_identity_key_id(id),
                qai_identity_name(id), qai_identity_key_id(id));
    qai_identity_free(id);
    return rc;
}
