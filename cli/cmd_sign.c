/* qai sign — add a hybrid signature (Ed25519 + ML-DSA-65) over a bundle's
 * manifest as signatures/<keyid>.sig. Also the identity loading that qai
 * export uses to sign its index (sign_load_identity). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
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
    "(a damaged bundle is not signed) and rewritten atomically; other signers'\n"
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

#define PASS_MAX 1024

static int prompt_tty(FILE *tty, const char *prompt, char *buf, size_t cap) {
    struct termios old, quiet;
    int fd = fileno(tty);
    if (tcgetattr(fd, &old) != 0) return -1;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) return -1;
    fputs(prompt, stderr);
    fflush(stderr);
    char *r = fgets(buf, (int)cap, tty);
    tcsetattr(fd, TCSAFLUSH, &old);
    if (!r) return -1;
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

/* Fills pass (PASS_MAX bytes, sodium_malloc'd by the caller). 0 or an exit code. */
static int get_passphrase(const char *cmd, const char *file, const char *key_label, char *pass) {
    if (file) {
        char *data;
        size_t n;
        if (qai_file_read(file, &data, &n) != QAI_OK) return cli_fail_last(cmd);
        size_t len = strcspn(data, "\r\n");
        int rc = 0;
        if (len >= PASS_MAX) rc = cli_fail(cmd, "passphrase file '%s': longer than %d bytes", file, PASS_MAX - 1);
        else if (!len) rc = cli_fail(cmd, "passphrase file '%s' is empty", file);
        else {
            memcpy(pass, data, len);
            pass[len] = 0;
        }
        sodium_memzero(data, n);
        qai_free(data);
        return rc;
    }
    const char *env = getenv("QAI_PASSPHRASE");
    if (env && *env) {
        if (strlen(env) >= PASS_MAX) return cli_fail(cmd, "QAI_PASSPHRASE is longer than %d bytes", PASS_MAX - 1);
        strcpy(pass, env);
        return 0;
    }
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return cli_usage_error(cmd, "no passphrase: use --passphrase-file FILE or QAI_PASSPHRASE, or run on a terminal");
    char prompt[160];
    snprintf(prompt, sizeof prompt, "passphrase for key %s: ", key_label);
    int rc = prompt_tty(tty, prompt, pass, PASS_MAX) ? cli_fail(cmd, "could not read the passphrase from the terminal")
                                                     : 0;
    fclose(tty);
    return rc;
}

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
    char *pass = sodium_malloc(PASS_MAX);
    if (!pass) return cli_fail(cmd, "out of memory");
    rc = get_passphrase(cmd, pass_file, key, pass);
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
