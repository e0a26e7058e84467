/* qai keygen — create a signing identity (Ed25519 + ML-DSA-65) under the data
 * directory's keys/ folder. The passphrase never comes from a plain flag. */
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "qai/sign.h"

static const char *usage =
    "usage: qai keygen [--name NAME] [--data-dir DIR] [--passphrase-file FILE]\n"
    "                  [--kdf interactive|moderate|sensitive] [--json]\n"
    "\n"
    "Creates a signing identity: an Ed25519 key and an ML-DSA-65 (FIPS 204) key used\n"
    "together, with a key id (32 hex digits). Writes DIR/keys/<keyid>.pub (public) and\n"
    "DIR/keys/<keyid>.key (private, mode 0600, encrypted with the passphrase through\n"
    "Argon2id and XChaCha20-Poly1305). DIR is --data-dir, else $QAI_HOME, else\n"
    "~/.local/share/qai. Prints the key id and the public key file's path.\n"
    "\n"
    "The passphrase comes from --passphrase-file FILE (its first line), else from\n"
    "$QAI_PASSPHRASE, else from a prompt on the terminal (asked twice, not echoed).\n"
    "\n"
    "  --name NAME   a label for the key (UTF-8, at most 63 bytes; default user@host)\n"
    "  --kdf LEVEL   Argon2id cost: interactive (64 MiB), moderate (256 MiB, default),\n"
    "                sensitive (1 GiB)\n"
    "  --json        print {\"key_id\", \"name\", \"created\", \"algorithms\", \"public_key\",\n"
    "                \"private_key\"} instead of text\n"
    "\n"
    "example:\n"
    "  QAI_PASSPHRASE='correct horse battery' qai keygen --name release@lab --kdf interactive\n";

#define PASS_MAX 1024

/* Reads one line of a passphrase from the terminal with echo off. Returns 0 on
 * success; the newline is removed. */
static int prompt_tty(FILE *tty, const char *prompt, char *buf, size_t cap) {
    struct termios old, quiet;
    int fd = fileno(tty);
    if (tcgetattr(fd, &old) != 0) return -1;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    /* echo off first (dropping anything typed ahead), then the prompt, so an
     * answer typed after the prompt is never echoed nor discarded */
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) return -1;
    fputs(prompt, stderr);
    fflush(stderr);
    char *r = fgets(buf, (int)cap, tty);
    tcsetattr(fd, TCSAFLUSH, &old);
    if (!r) return -1;
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

/* Fills pass (PASS_MAX bytes). Returns 0, or the exit code to return. */
static int get_passphrase(const char *file, char *pass) {
    if (file) {
        char *data;
        size_t n;
        if (qai_file_read(file, &data, &n) != QAI_OK) return cli_fail_last("keygen");
        size_t len = strcspn(data, "\r\n");
        if (len >= PASS_MAX) {
            sodium_memzero(data, n);
            qai_free(data);
            return cli_fail("keygen", "passphrase file '%s': the passphrase is longer than %d bytes", file,
                            PASS_MAX - 1);
        }
        memcpy(pass, data, len);
        pass[len] = 0;
        sodium_memzero(data, n);
        qai_free(data);
        if (!len) return cli_fail("keygen", "passphrase file '%s' is empty", file);
        return 0;
    }
    const char *env = getenv("QAI_PASSPHRASE");
    if (env && *env) {
        if (strlen(env) >= PASS_MAX) return cli_fail("keygen", "QAI_PASSPHRASE is longer than %d bytes", PASS_MAX - 1);
        strcpy(pass, env);
        return 0;
    }
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return cli_usage_error("keygen", "no passphrase: use --passphrase-file FILE or QAI_PASSPHRASE, or run on a "
                                         "terminal");
    char again[PASS_MAX];
    int rc = 0;
    if (prompt_tty(tty, "passphrase for the new key: ", pass, PASS_MAX) != 0 ||
        prompt_tty(tty, "repeat the passphrase: ", again, sizeof again) != 0)
        rc = cli_fail("keygen", "could not read the passphrase from the terminal");
    else if (!*pass)
        rc = cli_fail("keygen", "the passphrase is empty");
    else if (strcmp(pass, again) != 0)
        rc = cli_fail("keygen", "the two passphrases differ");
    sodium_memzero(again, sizeof again);
    fclose(tty);
    return rc;
}

static void default_name(char *out, size_t cap) {
    const char *user = getenv("USER");
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0) host[0] = 0;
    host[sizeof host - 1] = 0;
    snprintf(out, cap, "%s@%s", user && *user ? user : "qai", *host ? host : "localhost");
}

int cmd_keygen(int argc, char **argv) {
    const char *name = NULL, *data_dir = NULL, *pass_file = NULL, *kdf_level = "moderate";
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        const char *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_value(argc, argv, &i, NULL, "--name", &v)) {
            if (!v) return cli_usage_error("keygen", "--name needs a value");
            name = v;
        } else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v || !*v) return cli_usage_error("keygen", "--data-dir needs a directory");
            data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--passphrase-file", &v)) {
            if (!v || !*v) return cli_usage_error("keygen", "--passphrase-file needs a file");
            pass_file = v;
        } else if (cli_value(argc, argv, &i, NULL, "--kdf", &v)) {
            if (!v) return cli_usage_error("keygen", "--kdf needs interactive, moderate or sensitive");
            kdf_level = v;
        } else if (cli_flag(a, NULL, "--passphrase"))
            return cli_usage_error("keygen", "a passphrase is never taken as a flag: use --passphrase-file FILE, "
                                             "QAI_PASSPHRASE or the terminal prompt");
        else if (a[0] == '-') return cli_usage_error("keygen", "unknown option '%s'", a);
        else return cli_usage_error("keygen", "unexpected argument '%s'", a);
    }
    qai_kdf_params kdf;
    if (qai_kdf_params_named(kdf_level, &kdf) != QAI_OK) return cli_usage_error("keygen", "%s", qai_last_error());
    char defname[QAI_IDENTITY_NAME_MAX + 1];
    if (!name) {
        default_name(defname, sizeof defname);
        name = defname;
    }
    if (sodium_init() < 0) return cli_fail("keygen", "libsodium failed to initialise");

    char home[4096], keys[4200], pub[4300], key[4300];
    if (qai_home_dir(data_dir, home, sizeof home) != QAI_OK) return cli_fail_last("keygen");
    snprintf(keys, sizeof keys, "%s/keys", home);

    qai_identity *id;
    if (qai_identity_generate(name, &id) != QAI_OK) return cli_fail_last("keygen");
    char *pass = sodium_malloc(PASS_MAX);
    if (!pass) {
        qai_identity_free(id);
        return cli_fail("keygen", "out of memory");
    }
    int rc = get_passphrase(pass_file, pass);
    if (rc == 0) {
        if (!json) fprintf(stderr, "qai: keygen: encrypting the private key (Argon2id, %s)\n", kdf_level);
        if (qai_identity_save(id, keys, pass, &kdf) != QAI_OK) rc = cli_fail_last("keygen");
    }
    sodium_free(pass);
    if (rc == 0) {
        snprintf(pub, sizeof pub, "%s/%s.pub", keys, qai_identity_key_id(id));
        snprintf(key, sizeof key, "%s/%s.key", keys, qai_identity_key_id(id));
        if (json) {
            printf("{\"key_id\": \"%s\", \"name\": ", qai_identity_key_id(id));
            cli_json_string(stdout, qai_identity_name(id), strlen(qai_identity_name(id)), false);
            printf(", \"created\": %lld, \"algorithms\": [\"ed25519\", \"ml-dsa-65\"], \"public_key\": ",
                   (long long)qai_identity_created(id));
            cli_json_string(stdout, pub, strlen(pub), false);
            printf(", \"private_key\": ");
            cli_json_string(stdout, key, strlen(key), false);
            printf("}\n");
        } else {
            printf("key id:      %s\n", qai_identity_key_id(id));
            printf("name:        %s\n", qai_identity_name(id));
            printf("public key:  %s\n", pub);
            printf("private key: %s\n", key);
        }
    }
    qai_identity_free(id);
    return rc;
}
