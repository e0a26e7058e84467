/* qai keygen — create a signing identity (Ed25519 + ML-DSA-65) under the data
 * directory's keys/ folder. The passphrase never comes from a plain flag. */
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "qai/sign.h"
#include "qai/store.h"

static const char *usage =
    "usage: qai keygen [--name NAME] [--data-dir DIR] [--passphrase-file FILE]\n"
    "                  [--kdf interactive|moderate|sensitive] [--store URL | --no-store] [--json]\n"
    "\n"
    "Creates a signing identity: an Ed25519 key and an ML-DSA-65 (FIPS 204) key used\n"
    "together, with a key id (32 hex digits). Writes DIR/keys/<keyid>.pub (public) and\n"
    "DIR/keys/<keyid>.key (private, mode 0600, encrypted with the passphrase through\n"
    "Argon2id and XChaCha20-Poly1305). DIR is --data-dir, else $QAI_HOME, else\n"
    "~/.local/share/qai. Records the public key in the store (so 'qai keys list'\n"
    "shows it and 'qai keys revoke' can revoke it) and prints the key id and the\n"
    "public key file's path.\n"
    "\n"
    "The passphrase comes from --passphrase-file FILE (its first line), else from\n"
    "$QAI_PASSPHRASE, else from a prompt on the terminal (asked twice, not echoed).\n"
    "\n"
    "  --name NAME   a label for the key (UTF-8, at most 63 bytes; default user@host)\n"
    "  --kdf LEVEL   Argon2id cost: interactive (64 MiB), moderate (256 MiB, default),\n"
    "                sensitive (1 GiB)\n"
    "  --store URL   the store: sqlite:PATH, a path, or postgres://... (default\n"
    "                $QAI_STORE or DIR/qai.db)\n"
    "  --no-store    only write the files (e.g. a signing machine without the store)\n"
    "  --json        print {\"key_id\", \"name\", \"created\", \"algorithms\", \"public_key\",\n"
    "                \"private_key\"} instead of text\n"
    "\n"
    "example:\n"
    "  QAI_PASSPHRASE='correct horse battery' qai keygen --name release@lab --kdf interactive\n";


static void default_name(char *out, size_t cap) {
    const char *user = getenv("USER");
    char host[256] = "";
    if (gethostname(host, sizeof host) != 0) host[0] = 0;
    host[sizeof host - 1] = 0;
    snprintf(out, cap, "%s@%s", user && *user ? user : "qai", *host ? host : "localhost");
}

/* The public half goes into the store at once, so the key can be listed and
 * revoked before it ever signs a pushed bundle. */
static int record_in_store(const qai_identity *id, const char *store_url, const char *data_dir) {
    qai_store *s = NULL;
    uint8_t pub[QAI_PUBKEY_FILE_BYTES];
    qai_identity_public_bytes(id, pub);
    qai_status st = qai_store_open(store_url, data_dir, &s);
    if (!st)
        st = qai_signing_key_add(s, &(qai_signing_key){.key_id = qai_identity_key_id(id), .name = qai_identity_name(id),
                                                       .algorithm = "ed25519+ml-dsa-65", .public_key = pub,
                                                       .public_key_len = sizeof pub,
                                                       .created_ms = qai_identity_created(id) * 1000});
    qai_store_close(s);
    if (st)
        return cli_fail("keygen", "the key files were written, but the key could not be recorded in the store: %s "
                        "(fix the store and run 'qai registry push' with a bundle it signed, or use --no-store)",
                        qai_last_error());
    return 0;
}

int cmd_keygen(int argc, char **argv) {
    const char *name = NULL, *data_dir = NULL, *pass_file = NULL, *kdf_level = "moderate", *store_url = NULL;
    bool json = false, no_store = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        const char *a = argv[i];
        if (cli_flag(a, "-h", "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (cli_flag(a, NULL, "--json")) json = true;
        else if (cli_flag(a, NULL, "--no-store")) no_store = true;
        else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v || !*v) return cli_usage_error("keygen", "--store needs a URL or path");
            store_url = v;
        }
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
    if (no_store && store_url) return cli_usage_error("keygen", "--store and --no-store contradict each other");
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
    char *pass = sodium_malloc(CLI_PASS_MAX);
    if (!pass) {
        qai_identity_free(id);
        return cli_fail("keygen", "out of memory");
    }
    int rc = cli_get_passphrase("keygen", pass_file, "passphrase for the new key: ", true, pass);
    if (rc == 0) {
        if (!json) fprintf(stderr, "qai: keygen: encrypting the private key (Argon2id, %s)\n", kdf_level);
        if (qai_identity_save(id, keys, pass, &kdf) != QAI_OK) rc = cli_fail_last("keygen");
    }
    sodium_free(pass);
    if (rc == 0 && !no_store) rc = record_in_store(id, store_url, data_dir);
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
