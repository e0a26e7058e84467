/* Trust decisions for bundle signatures: which public keys are believed (key
 * files in the trust directories) and which are revoked (the store's
 * signing_keys, revoked.txt files). The rules are in qai/bundle.h.
 *
 * What it deliberately does not do: check signatures (sign.h does), or fetch
 * keys from anywhere but local directories. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/bundle_internal.h"

#define MAX_DIRS 16

/* The trust directories of a policy, in order. Returns the count. */
static size_t trust_dirs(const qai_bundle_policy *pol, char dirs[MAX_DIRS][4200]) {
    size_t n = 0;
    if (pol && pol->trust_dir) snprintf(dirs[n++], 4200, "%s", pol->trust_dir);
    else {
        char home[4096];
        if (bundle_data_dir(pol ? pol->data_dir : NULL, home, sizeof home) == QAI_OK) {
            snprintf(dirs[n++], 4200, "%s/trust", home);
            snprintf(dirs[n++], 4200, "%s/keys", home);
        }
    }
    for (size_t i = 0; pol && i < pol->n_extra_trust_dirs && n < MAX_DIRS; i++)
        snprintf(dirs[n++], 4200, "%s", pol->extra_trust_dirs[i]);
    return n;
}

qai_status qai_trust_find_key(const qai_bundle_policy *pol, const char *key_id, qai_identity **out, char *path_out,
                              size_t path_cap) {
    *out = NULL;
    if (!key_id || strlen(key_id) != 32) return qai_error(QAI_ERR_ARG, "trust: a key id has 32 hex digits");
    char dirs[MAX_DIRS][4200];
    size_t nd = trust_dirs(pol, dirs);
    char p[4800];
    /* <keyid>.pub first: the usual name */
    for (size_t i = 0; i < nd; i++) {
        snprintf(p, sizeof p, "%.4199s/%.32s.pub", dirs[i], key_id);
        if (access(p, F_OK) != 0) continue;
        qai_identity *id;
        qai_status st = qai_identity_load_public(p, &id);
        if (st) return st; /* a damaged trusted key file is an error, not "untrusted" */
        if (!strcmp(qai_identity_key_id(id), key_id)) {
            *out = id;
            if (path_out) snprintf(path_out, path_cap, "%s", p);
            return QAI_OK;
        }
        qai_identity_free(id);
    }
    /* then any *.pub whose key id matches (a renamed file) */
    for (size_t i = 0; i < nd; i++) {
        DIR *d = opendir(dirs[i]);
        if (!d) continue;
        struct dirent *de;
        while ((de = readdir(d))) {
            size_t len = strlen(de->d_name);
            if (len < 5 || strcmp(de->d_name + len - 4, ".pub")) continue;
            snprintf(p, sizeof p, "%.4199s/%.255s", dirs[i], de->d_name);
            qai_identity *id;
            if (qai_identity_load_public(p, &id) != QAI_OK) continue; /* not ours to judge here */
            if (!strcmp(qai_identity_key_id(id), key_id)) {
                closedir(d);
                *out = id;
                if (path_out) snprintf(path_out, path_cap, "%s", p);
                return QAI_OK;
            }
            qai_identity_free(id);
        }
        closedir(d);
    }
    return qai_error(QAI_ERR_NOT_FOUND, "no trusted public key for key id %s", key_id);
}

qai_status qai_revocations_parse(const char *text, size_t n, const char *name, qai_revocation_fn fn, void *user) {
    size_t line = 0, i = 0;
    while (i < n) {
        line++;
        size_t j = i;
        while (j < n && text[j] != '\n') j++;
        const char *l = text + i;
        size_t len = j - i;
        i = j + 1;
        if (len && l[len - 1] == '\r') len--;
        size_t k = 0;
        while (k < len && (l[k] == ' ' || l[k] == '\t')) k++;
        if (k == len || l[k] == '#') continue;
        char kid[QAI_KEY_ID_HEX_BYTES];
        size_t h = 0;
        while (k + h < len && h < 33 && ((l[k + h] >= '0' && l[k + h] <= '9') || (l[k + h] >= 'a' && l[k + h] <= 'f')))
            h++;
        if (h != 32 || (k + h < len && l[k + h] != ' ' && l[k + h] != '\t'))
            return qai_error(QAI_ERR_FORMAT, "%s:%zu: expected a key id (32 lowercase hex digits) at the start of the line",
                             name, line);
        memcpy(kid, l + k, 32);
        kid[32] = 0;
        k += 32;
        while (k < len && (l[k] == ' ' || l[k] == '\t')) k++;
        int64_t at = 0;
        if (k < len && isdigit((unsigned char)l[k])) {
            size_t d = 0;
            while (k + d < len && isdigit((unsigned char)l[k + d])) d++;
            if (d > 18 || (k + d < len && l[k + d] != ' ' && l[k + d] != '\t'))
                return qai_error(QAI_ERR_FORMAT, "%s:%zu: the revocation time must be Unix seconds", name, line);
            for (size_t q = 0; q < d; q++) at = at * 10 + (l[k + q] - '0');
            k += d;
            while (k < len && (l[k] == ' ' || l[k] == '\t')) k++;
        }
        char reason[256];
        size_t rl = len - k < sizeof reason - 1 ? len - k : sizeof reason - 1;
        for (size_t q = 0; q < rl; q++) {
            unsigned char c = (unsigned char)l[k + q];
            if (c < 0x20 && c != '\t')
                return qai_error(QAI_ERR_FORMAT, "%s:%zu: control character in the reason", name, line);
            reason[q] = (char)c;
        }
        reason[rl] = 0;
        if (memchr(l, 0, len)) return qai_error(QAI_ERR_FORMAT, "%s:%zu: NUL byte", name, line);
        if (fn) fn(user, kid, at, reason);
    }
    return QAI_OK;
}

typedef struct {
    const char *want;
    bool found;
    char reason[160];
} rev_find;

static void rev_match(void *user, const char *key_id, int64_t at, const char *reason) {
    (void)at;
    rev_find *f = user;
    if (!f->found && !strcmp(key_id, f->want)) {
        f->found = true;
        snprintf(f->reason, sizeof f->reason, "%.159s", *reason ? reason : "listed in a revocation list");
    }
}

/* The store to consult, if any: an explicit URL, $QAI_STORE, or the default
 * file when it exists (verification never creates a store). */
static qai_status open_store(const qai_bundle_policy *pol, qai_store **s) {
    *s = NULL;
    if (pol && pol->no_store) return QAI_OK;
    const char *url = pol ? pol->store_url : NULL;
    const char *env = getenv("QAI_STORE");
    if (!url && !(env && *env)) {
        char home[4096], db[4200];
        qai_status st = bundle_data_dir(pol ? pol->data_dir : NULL, home, sizeof home);
        if (st) return st;
        snprintf(db, sizeof db, "%s/qai.db", home);
        if (access(db, F_OK) != 0) return QAI_OK;
    }
    return qai_store_open(url, pol ? pol->data_dir : NULL, s);
}

qai_status qai_trust_is_revoked(const qai_bundle_policy *pol, const char *key_id, bool *revoked, char *reason,
                                size_t reason_cap) {
    *revoked = false;
    if (reason && reason_cap) reason[0] = 0;
    qai_store *s;
    qai_status st = open_store(pol, &s);
    if (st) return qai_error_wrap(st, "revocations");
    if (s) {
        qai_signing_key *k = NULL;
        st = qai_signing_key_get(s, key_id, &k);
        qai_store_close(s);
        if (st == QAI_OK) {
            if (k->revoked_ms) {
                *revoked = true;
                if (reason) snprintf(reason, reason_cap, "%s", k->revoke_reason ? k->revoke_reason : "revoked in the store");
            }
            qai_free(k);
            if (*revoked) return QAI_OK;
        } else if (st != QAI_ERR_NOT_FOUND)
            return qai_error_wrap(st, "revocations");
    }
    char dirs[MAX_DIRS][4200], p[4800];
    size_t nd = trust_dirs(pol, dirs);
    for (size_t i = 0; i < nd; i++) {
        snprintf(p, sizeof p, "%.4199s/revoked.txt", dirs[i]);
        if (access(p, F_OK) != 0) continue;
        char *text;
        size_t n;
        if ((st = qai_file_read(p, &text, &n))) return st;
        rev_find f = {.want = key_id};
        st = qai_revocations_parse(text, n, p, rev_match, &f);
        qai_free(text);
        if (st) return st;
        if (f.found) {
            *revoked = true;
            if (reason) snprintf(reason, reason_cap, "%s", f.reason);
            return QAI_OK;
        }
    }
    return QAI_OK;
}
