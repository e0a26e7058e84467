/* Bundles (src/registry/bundle*.c): create -> sign -> verify round trip, the
 * manifest checked against hashes computed here with libsodium and against
 * the archive read back with libarchive directly; tampering with every
 * member, the manifest and every signature is caught and named; revoked
 * (store and revoked.txt) and untrusted keys; hostile archives (truncated,
 * sizes that lie, path traversal, absolute names, symlinks, hard links,
 * duplicates, devices) are refused and nothing is written outside the cache
 * (the whole test folder is listed before and after); open_model extracts
 * the right bytes, reuses and re-checks its cache. */
#include <archive.h>
#include <archive_entry.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qai/bundle.h"
#include "qai/model.h"
#include "qai/sign.h"
#include "qai/store.h"
#include "test.h"

static char T[1024];              /* this test's folder */
static char model[1200], card[1200], ds[1200], ev[1200], trust[1200], bundle[1200], home[1200];

static void path(char *out, const char *name) { snprintf(out, 1200, "%s/%s", T, name); }

static void write_text(const char *p, const char *text) {
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
}

static qai_identity *make_id(const char *name, uint8_t seed) {
    uint8_t a[32], b[32];
    memset(a, seed, 32);
    memset(b, seed + 100, 32);
    qai_identity *id = NULL;
    CHECK_OK(qai_identity_from_seeds(name, 1700000000, a, b, &id));
    return id;
}

static void sha_hex_file(const char *p, char hex[65]) {
    FILE *f = fopen(p, "rb");
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) crypto_hash_sha256_update(&st, buf, n);
    fclose(f);
    unsigned char h[32];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, 32);
}

/* ---- archives written by hand ------------------------------------------------------------- */

typedef struct {
    const char *name;
    const void *data;
    size_t len;
    long long header_size; /* -1: len */
    int type;              /* AE_IFREG, AE_IFLNK, AE_IFCHR ... */
    const char *link;      /* symlink target or hard link name */
    bool hardlink;
} tentry;

static void write_archive(const char *p, const tentry *e, size_t n) {
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_zstd(a);
    CHECK(archive_write_open_filename(a, p) == ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *x = archive_entry_new();
        archive_entry_set_pathname(x, e[i].name);
        archive_entry_set_filetype(x, e[i].type ? (unsigned)e[i].type : AE_IFREG);
        archive_entry_set_perm(x, 0644);
        if (e[i].hardlink) archive_entry_set_hardlink(x, e[i].link);
        else if (e[i].link) archive_entry_set_symlink(x, e[i].link);
        long long hs = e[i].header_size >= 0 ? e[i].header_size : (long long)e[i].len;
        if (!e[i].link && (!e[i].type || e[i].type == AE_IFREG)) archive_entry_set_size(x, hs);
        archive_write_header(a, x);
        if (e[i].len) archive_write_data(a, e[i].data, e[i].len);
        archive_entry_free(x);
    }
    archive_write_close(a);
    archive_write_free(a);
}

/* Reads every entry of a bundle into memory (names and bytes). */
typedef struct {
    char name[256];
    unsigned char *data;
    size_t len;
} member;
static size_t read_members(const char *p, member *m, size_t cap) {
    struct archive *a = archive_read_new();
    archive_read_support_filter_zstd(a);
    archive_read_support_format_tar(a);
    size_t n = 0;
    if (archive_read_open_filename(a, p, 65536) == ARCHIVE_OK) {
        struct archive_entry *e;
        while (n < cap && archive_read_next_header(a, &e) == ARCHIVE_OK) {
            snprintf(m[n].name, sizeof m[n].name, "%s", archive_entry_pathname(e));
            m[n].len = (size_t)archive_entry_size(e);
            m[n].data = malloc(m[n].len + 1);
            archive_read_data(a, m[n].data, m[n].len);
            n++;
        }
    }
    archive_read_free(a);
    return n;
}
static void free_members(member *m, size_t n) {
    for (size_t i = 0; i < n; i++) free(m[i].data);
}

/* Copies src to dst with one byte of member `target` flipped. */
static void tamper(const char *src, const char *dst, const char *target, size_t at) {
    member m[32];
    size_t n = read_members(src, m, 32);
    tentry e[32] = {{0}};
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(m[i].name, target)) m[i].data[at < m[i].len ? at : m[i].len / 2] ^= 0x01;
        e[i] = (tentry){.name = m[i].name, .data = m[i].data, .len = m[i].len, .header_size = -1};
    }
    write_archive(dst, e, n);
    free_members(m, n);
}

/* ---- the fixture ------------------------------------------------------------------------------------ */

static void setup(void) {
    const char *base = getenv("QAI_TMP") ? getenv("QAI_TMP") : "/tmp";
    mkdir(base, 0755);
    snprintf(T, sizeof T, "%s/test_bundle.XXXXXX", base);
    CHECK(mkdtemp(T) != NULL);
    path(model, "m.gguf");
    path(card, "card.yaml");
    path(ds, "faq-data.json");
    path(ev, "qa.json");
    path(trust, "trust");
    path(bundle, "demo-1.0.0.qai");
    path(home, "home");
    mkdir(trust, 0755);
    qai_init_params ip = {.arch = "llama", .dim = 32, .layers = 1, .heads = 2, .kv_heads = 2, .ffn = 64, .vocab = 260,
                          .ctx = 32, .seed = 7, .type = QAI_TYPE_F32};
    CHECK_OK(qai_model_init_random(&ip, model));
    write_text(card, "purpose: answer FAQ questions\n"
                     "intended_use: internal help desk\n"
                     "not_intended_use: medical or legal advice\n"
                     "slos: {latency_p95_ms: 200}\n"
                     "datasets:\n  - {name: faq, sha256: \"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\"}\n"
                     "training: {date: 2026-11-01, methods: [sft], run: sft-7}\n"
                     "limitations: tiny\nsafety_mitigations: [pii scrub]\ncontacts: [ml@example.com]\n");
    write_text(ds, "{\"name\": \"faq\", \"version\": \"3\", \"sources\": [{\"path\": \"faq.md\", \"sha256\": "
                   "\"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03\", \"size\": 12}]}\n");
    write_text(ev, "{\"suite\": \"qa-small\", \"metrics\": {\"exact_match\": 0.75}, \"passed\": true}\n");
}

static qai_status create(const char *out) {
    const char *dsl[] = {ds}, *evl[] = {ev};
    qai_bundle_create_params p = {.model_path = model, .card_path = card, .dataset_manifests = dsl, .n_datasets = 1,
                                  .evals = evl, .n_evals = 1, .name = "demo", .version = "1.0.0",
                                  .tool_version = "test", .created = 1790000000};
    return qai_bundle_create(&p, out);
}

/* ---- tests ------------------------------------------------------------------------------------------- */

static void test_create_and_manifest(void) {
    CHECK_OK(create(bundle));
    /* the archive, read with libarchive directly: manifest first, then the members in order */
    member m[16];
    size_t n = read_members(bundle, m, 16);
    CHECK_EQ_INT(n, 6);
    static const char *const want[] = {"manifest.json", "model/m.gguf", "card.yaml", "datasets/faq.json",
                                       "evals/qa.json", "sbom.json"};
    for (size_t i = 0; i < n && i < 6; i++) CHECK_MSG(!strcmp(m[i].name, want[i]), "member %zu is %s", i, m[i].name);
    m[0].data[m[0].len] = 0;
    cJSON *j = cJSON_Parse((char *)m[0].data);
    CHECK(j != NULL);
    CHECK(!strcmp(cJSON_GetObjectItem(j, "apiVersion")->valuestring, "qai/v1"));
    CHECK(!strcmp(cJSON_GetObjectItem(j, "kind")->valuestring, "ModelBundle"));
    cJSON *meta = cJSON_GetObjectItem(j, "metadata");
    CHECK(!strcmp(cJSON_GetObjectItem(meta, "name")->valuestring, "demo"));
    CHECK(!strcmp(cJSON_GetObjectItem(meta, "created")->valuestring, "2026-09-21T14:13:20Z"));
    cJSON *spec = cJSON_GetObjectItem(j, "spec"), *mo = cJSON_GetObjectItem(spec, "model");
    CHECK(!strcmp(cJSON_GetObjectItem(mo, "architecture")->valuestring, "llama"));
    CHECK(!strcmp(cJSON_GetObjectItem(mo, "quantization")->valuestring, "f32"));
    /* params: tok_embd 260x32 + output 260x32 + norm 32 + per layer (4 32x32 attn + 3 ffn 32x64 + 2 norms 32) */
    double params = 260 * 32 * 2 + 32 + (4 * 32 * 32 + 3 * 32 * 64 + 2 * 32);
    CHECK_MSG(cJSON_GetObjectItem(mo, "params")->valuedouble == params, "params %g, want %g",
              cJSON_GetObjectItem(mo, "params")->valuedouble, params);
    CHECK_EQ_INT(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "runtimeProfile"), "contextLength")->valueint, 32);
    /* every member's hash and size, against libsodium over the source files / the bytes read back */
    const char *srcs[] = {model, card, ds, ev};
    cJSON *mem = cJSON_GetObjectItem(j, "members");
    CHECK_EQ_INT(cJSON_GetArraySize(mem), 5);
    for (int i = 0; i < cJSON_GetArraySize(mem); i++) {
        cJSON *e = cJSON_GetArrayItem(mem, i);
        const char *sha = cJSON_GetObjectItem(e, "sha256")->valuestring;
        char hex[65];
        if (i < 4) sha_hex_file(srcs[i], hex);
        else {
            unsigned char h[32];
            crypto_hash_sha256(h, m[5].data, m[5].len);
            sodium_bin2hex(hex, 65, h, 32);
        }
        CHECK_MSG(!strcmp(sha, hex), "member %d hash %s, want %s", i, sha, hex);
        CHECK_EQ_INT((size_t)cJSON_GetObjectItem(e, "size")->valuedouble, m[i + 1].len);
    }
    char mh[65];
    sha_hex_file(model, mh);
    CHECK(!strcmp(cJSON_GetObjectItem(mo, "sha256")->valuestring, mh));
    /* the SBOM names the libraries with their run-time versions */
    cJSON *sb = cJSON_ParseWithLength((char *)m[5].data, m[5].len);
    CHECK(sb && !strcmp(cJSON_GetObjectItem(sb, "bomFormat")->valuestring, "CycloneDX"));
    bool have_sodium = false, have_sqlite = false;
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(sb, "components")) {
        const char *nm = cJSON_GetObjectItem(c, "name")->valuestring, *v = cJSON_GetObjectItem(c, "version")->valuestring;
        if (!strcmp(nm, "libsodium")) have_sodium = !strcmp(v, sodium_version_string());
        if (!strcmp(nm, "sqlite3")) have_sqlite = strlen(v) > 0;
    }
    CHECK(have_sodium && have_sqlite);
    cJSON_Delete(sb);
    cJSON_Delete(j);
    free_members(m, n);

    /* same inputs and time: the same bytes (reproducible) */
    char again[1200], h1[65], h2[65];
    path(again, "again.qai");
    CHECK_OK(create(again));
    sha_hex_file(bundle, h1);
    sha_hex_file(again, h2);
    CHECK(!strcmp(h1, h2));
    unlink(again);

    /* unsigned: valid, but not under require_signed */
    qai_bundle_report r;
    qai_bundle_policy pol = {.trust_dir = trust, .no_store = true};
    CHECK_OK(qai_bundle_verify(bundle, &pol, QAI_BUNDLE_HASH_FILE, &r));
    CHECK_MSG(r.ok, "%s", r.problem);
    CHECK(!strcmp(r.bundle_sha256, h1));
    CHECK_EQ_INT(r.n_sigs, 0);
    qai_bundle_report_release(&r);
    pol.require_signed = true;
    CHECK_OK(qai_bundle_verify(bundle, &pol, 0, &r));
    CHECK(!r.ok && strstr(r.problem, "unsigned"));
    qai_bundle_report_release(&r);
}

static void test_card_rules(void) {
    char bad[1200], out[1200];
    path(bad, "bad-card.yaml");
    path(out, "bad.qai");
    write_text(bad, "purpose: x\nintended_use: y\nslos: {a: 1}\ndatasets: [{name: d, sha256: nothex}]\n"
                    "training: {date: 2026-01-01}\nlimitations: z\ncontacts: [a]\n");
    qai_bundle_create_params p = {.model_path = model, .card_path = bad, .name = "x", .version = "1"};
    CHECK(qai_bundle_create(&p, out) == QAI_ERR_FORMAT);
    const char *e = qai_last_error();
    CHECK_MSG(strstr(e, "not_intended_use") && strstr(e, "safety_mitigations") && strstr(e, "sha256") &&
                  strstr(e, "methods") && !strstr(e, "purpose"),
              "%s", e);
    CHECK(access(out, F_OK) != 0);
    /* a bad name, a missing version */
    p.card_path = NULL;
    p.name = "../evil";
    CHECK(qai_bundle_create(&p, out) == QAI_ERR_ARG);
    p.name = "ok";
    p.version = NULL;
    CHECK(qai_bundle_create(&p, out) == QAI_ERR_ARG && strstr(qai_last_error(), "version"));
    CHECK(access(out, F_OK) != 0);
}

static qai_identity *alice, *bob;

static void test_sign_verify(void) {
    alice = make_id("alice@lab", 1);
    bob = make_id("bob@lab", 2);
    char p[1300];
    snprintf(p, sizeof p, "%s/%s.pub", trust, qai_identity_key_id(alice));
    CHECK_OK(qai_identity_export_public(alice, p));
    char *unsigned_bytes = NULL, *signed_bytes = NULL;
    size_t n_unsigned = 0, n_signed = 0;
    CHECK_OK(qai_file_read(bundle, &unsigned_bytes, &n_unsigned));
    CHECK_OK(qai_bundle_sign(bundle, alice));
    /* signing appended: the bundle's bytes up to its small last zstd frame
     * (the archive's end) are kept as they were, not recompressed */
    CHECK_OK(qai_file_read(bundle, &signed_bytes, &n_signed));
    CHECK(n_unsigned > 64 && n_signed > n_unsigned + QAI_HYBRID_SIG_BYTES / 2 &&
          !memcmp(unsigned_bytes, signed_bytes, n_unsigned - 64));
    qai_free(unsigned_bytes);
    qai_free(signed_bytes);
    /* and the frames read as one tar stream by the standard tools */
    char cmd[2600], listing[4096] = "";
    snprintf(cmd, sizeof cmd, "zstd -dcq '%s' | tar -tf - 2>&1", bundle);
    FILE *tl = popen(cmd, "r");
    if (tl) {
        size_t got = fread(listing, 1, sizeof listing - 1, tl);
        listing[got] = 0;
        pclose(tl);
        snprintf(cmd, sizeof cmd, "manifest.json\n");
        CHECK_MSG(!strncmp(listing, cmd, strlen(cmd)) && strstr(listing, qai_identity_key_id(alice)) &&
                      !strstr(listing, "tar:"),
                  "zstd | tar -t: %s", listing);
    }
    qai_bundle_policy pol = {.trust_dir = trust, .no_store = true, .require_signed = true};
    qai_bundle_report r;
    CHECK_OK(qai_bundle_verify(bundle, &pol, 0, &r));
    CHECK_MSG(r.ok, "%s", r.problem);
    CHECK_EQ_INT(r.n_sigs, 1);
    CHECK_EQ_INT(r.n_valid, 1);
    CHECK(r.n_sigs == 1 && r.sigs[0].state == QAI_BUNDLE_SIG_VALID && !strcmp(r.sigs[0].signer, "alice@lab"));
    /* the signature is over the manifest's bytes exactly: check it with sign.h directly */
    member m[16];
    size_t n = read_members(bundle, m, 16);
    CHECK_EQ_INT(n, 7);
    char want[64];
    snprintf(want, sizeof want, "signatures/%s.sig", qai_identity_key_id(alice));
    CHECK(!strcmp(m[6].name, want));
    CHECK_OK(qai_hybrid_verify(alice, m[0].data, m[0].len, m[6].data, m[6].len));
    free_members(m, n);
    qai_bundle_report_release(&r);

    /* a second signer (untrusted): reported, not fatal; signing again replaces */
    CHECK_OK(qai_bundle_sign(bundle, bob));
    CHECK_OK(qai_bundle_sign(bundle, alice));
    CHECK_OK(qai_bundle_verify(bundle, &pol, 0, &r));
    CHECK_MSG(r.ok, "%s", r.problem);
    CHECK_EQ_INT(r.n_sigs, 2);
    CHECK_EQ_INT(r.n_valid, 1);
    int untrusted = 0;
    for (size_t i = 0; i < r.n_sigs; i++) untrusted += r.sigs[i].state == QAI_BUNDLE_SIG_UNTRUSTED;
    CHECK_EQ_INT(untrusted, 1);
    qai_bundle_report_release(&r);

    /* only bob's signature, under require_signed: refused, naming it */
    char only_bob[1200];
    path(only_bob, "only-bob.qai");
    CHECK_OK(create(only_bob));
    CHECK_OK(qai_bundle_sign(only_bob, bob));
    CHECK_OK(qai_bundle_verify(only_bob, &pol, 0, &r));
    CHECK(!r.ok && strstr(r.problem, "not trusted") && strstr(r.failed, qai_identity_key_id(bob)));
    qai_bundle_report_release(&r);
    pol.require_signed = false;
    CHECK_OK(qai_bundle_verify(only_bob, &pol, 0, &r));
    CHECK_MSG(r.ok, "%s", r.problem);
    qai_bundle_report_release(&r);
    unlink(only_bob);
}

static void test_tampering(void) {
    /* sign with both keys trusted, so a changed manifest can be told from a changed member */
    char p[1300];
    snprintf(p, sizeof p, "%s/%s.pub", trust, qai_identity_key_id(bob));
    CHECK_OK(qai_identity_export_public(bob, p));
    qai_bundle_policy pol = {.trust_dir = trust, .no_store = true, .require_signed = true};
    member m[16];
    size_t n = read_members(bundle, m, 16);
    CHECK_EQ_INT(n, 8);
    char bad[1200];
    path(bad, "tampered.qai");
    for (size_t i = 0; i < n; i++) {
        /* a byte early, in the middle and at the end of each member */
        size_t spots[3] = {i == 0 ? 20 : 10, m[i].len / 2, m[i].len - 1}; /* 10: a signature's key id */
        for (int k = 0; k < 3; k++) {
            tamper(bundle, bad, m[i].name, spots[k]);
            qai_bundle_report r;
            CHECK_OK(qai_bundle_verify(bad, &pol, 0, &r));
            CHECK_MSG(!r.ok && !strcmp(r.failed, m[i].name), "flipping byte %zu of '%s': ok=%d failed='%s' (%s)",
                      spots[k], m[i].name, r.ok, r.failed, r.problem);
            qai_bundle_report_release(&r);
        }
    }
    free_members(m, n);
    /* the untouched bundle still verifies, and a rewrite without changes too */
    tamper(bundle, bad, "no-such-member", 0);
    qai_bundle_report r;
    CHECK_OK(qai_bundle_verify(bad, &pol, 0, &r));
    CHECK_MSG(r.ok, "%s", r.problem);
    qai_bundle_report_release(&r);
    /* a damaged bundle is not signed */
    tamper(bundle, bad, "card.yaml", 3);
    CHECK(qai_bundle_sign(bad, alice) == QAI_ERR_FORMAT && strstr(qai_last_error(), "card.yaml"));
    unlink(bad);
}

static void test_revoked(void) {
    qai_bundle_policy pol = {.trust_dir = trust, .no_store = true};
    qai_bundle_report r;
    /* revoked.txt in the trust folder */
    char rv[1300];
    snprintf(rv, sizeof rv, "%s/revoked.txt", trust);
    char line[256];
    snprintf(line, sizeof line, "# revoked keys\n\n%s 1790000000 laptop stolen\n", qai_identity_key_id(bob));
    write_text(rv, line);
    CHECK_OK(qai_bundle_verify(bundle, &pol, 0, &r));
    CHECK(!r.ok && strstr(r.problem, "revoked") && strstr(r.problem, "laptop stolen") &&
          strstr(r.failed, qai_identity_key_id(bob)));
    qai_bundle_report_release(&r);
    /* a damaged list fails closed */
    write_text(rv, "not-a-key-id\n");
    CHECK_OK(qai_bundle_verify(bundle, &pol, 0, &r));
    CHECK(!r.ok && strstr(r.problem, "revoked.txt:1"));
    qai_bundle_report_release(&r);
    unlink(rv);
    /* revoked in the store */
    char db[1300];
    snprintf(db, sizeof db, "sqlite:%s/rev.db", T);
    qai_store *s;
    CHECK_OK(qai_store_open(db, NULL, &s));
    uint8_t pub[QAI_PUBKEY_FILE_BYTES];
    qai_identity_public_bytes(alice, pub);
    CHECK_OK(qai_signing_key_add(s, &(qai_signing_key){.key_id = qai_identity_key_id(alice), .name = "alice@lab",
                                                       .algorithm = "ed25519+ml-dsa-65", .public_key = pub,
                                                       .public_key_len = sizeof pub, .created_ms = 1}));
    pol.no_store = false;
    pol.store_url = db;
    CHECK_OK(qai_bundle_verify(bundle, &pol, 0, &r));
    CHECK_MSG(r.ok, "%s", r.problem);
    qai_bundle_report_release(&r);
    CHECK_OK(qai_signing_key_revoke(s, qai_identity_key_id(alice), "rotated"));
    qai_store_close(s);
    CHECK_OK(qai_bundle_verify(bundle, &pol, 0, &r));
    CHECK(!r.ok && strstr(r.problem, "revoked") && strstr(r.failed, qai_identity_key_id(alice)));
    qai_bundle_report_release(&r);
    /* the parser itself */
    CHECK_OK(qai_revocations_parse("", 0, "empty", NULL, NULL));
    CHECK(qai_revocations_parse("0123456789abcdef0123456789abcdefX\n", 33, "x", NULL, NULL) == QAI_ERR_FORMAT);
    CHECK(qai_revocations_parse("0123456789abcdef0123456789abcdef 12x\n", 37, "x", NULL, NULL) == QAI_ERR_FORMAT);
}

/* ---- hostile archives ------------------------------------------------------------------------------------ */

/* Lists every path under dir (recursively) into buf, one per line, sorted by readdir order per folder. */
static void list_tree(const char *dir, char *buf, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[2400];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, "%s\n", p);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) list_tree(p, buf, cap);
    }
    closedir(d);
}

static void hostile(const char *label, const tentry *e, size_t n, const char *want) {
    char p[1200], before[65536] = "", after[65536] = "", parent[1200];
    path(p, "hostile.qai");
    write_archive(p, e, n);
    snprintf(parent, sizeof parent, "%s/..", T);
    list_tree(T, before, sizeof before);
    qai_bundle_report r;
    CHECK_OK(qai_bundle_verify(p, &(qai_bundle_policy){.no_store = true}, 0, &r));
    CHECK_MSG(!r.ok && strstr(r.problem, want), "%s: ok=%d problem '%s', want '%s'", label, r.ok, r.problem, want);
    qai_bundle_report_release(&r);
    char out[4096];
    qai_status st = qai_bundle_open_model(p, &(qai_bundle_policy){.data_dir = home, .no_store = true}, out, sizeof out);
    CHECK_MSG(st == QAI_ERR_FORMAT && strstr(qai_last_error(), want), "%s: open_model gave %d: %s", label, st,
              qai_last_error());
    list_tree(T, after, sizeof after);
    CHECK_MSG(!strcmp(before, after), "%s: files changed:\nbefore:\n%s\nafter:\n%s", label, before, after);
    CHECK_MSG(access("x", F_OK) != 0 && access("/tmp/qai-evil", F_OK) != 0, "%s wrote outside", label);
    unlink(p);
}

static void test_hostile(void) {
    /* warm the cache folder so before/after listings compare only what a bad bundle could add */
    char out[4096];
    CHECK_OK(qai_bundle_open_model(bundle, &(qai_bundle_policy){.data_dir = home, .trust_dir = trust, .no_store = true},
                                   out, sizeof out));
    char mh[65], xh[65];
    sha_hex_file(model, mh);
    sha_hex_file(out, xh);
    CHECK(!strcmp(mh, xh));
    CHECK(strstr(out, mh) != NULL);

    static const char body[] = "hello";
    char man[2048];
    /* a manifest listing one member "a.txt" of 5 bytes, and a model */
    unsigned char h[32];
    char hx[65];
    crypto_hash_sha256(h, (const unsigned char *)body, 5);
    sodium_bin2hex(hx, 65, h, 32);
    snprintf(man, sizeof man,
             "{\"apiVersion\": \"qai/v1\", \"kind\": \"ModelBundle\", \"metadata\": {\"name\": \"x\", \"version\": \"1\"},"
             " \"spec\": {\"model\": {\"file\": \"model/a.gguf\", \"sha256\": \"%s\", \"size\": 5}},"
             " \"members\": [{\"path\": \"model/a.gguf\", \"sha256\": \"%s\", \"size\": 5}]}",
             hx, hx);
    size_t ml = strlen(man);
    tentry good[] = {{"manifest.json", man, ml, -1, 0, NULL, false}, {"model/a.gguf", body, 5, -1, 0, NULL, false}};
    {
        char p[1200];
        path(p, "fine.qai");
        write_archive(p, good, 2);
        qai_bundle_report r;
        CHECK_OK(qai_bundle_verify(p, &(qai_bundle_policy){.no_store = true}, 0, &r));
        CHECK_MSG(r.ok, "the hand-made bundle should verify: %s", r.problem);
        qai_bundle_report_release(&r);
        /* truncated at several points */
        FILE *f = fopen(p, "rb");
        unsigned char buf[8192];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        for (size_t cut = 1; cut < n; cut += n / 7 + 1) {
            char q[1200];
            path(q, "cut.qai");
            f = fopen(q, "wb");
            fwrite(buf, 1, cut, f);
            fclose(f);
            CHECK_OK(qai_bundle_verify(q, &(qai_bundle_policy){.no_store = true}, 0, &r));
            CHECK_MSG(!r.ok, "cut at %zu of %zu verified", cut, n);
            qai_bundle_report_release(&r);
            unlink(q);
        }
        /* not an archive at all, and an empty file */
        write_text(p, "GGUF this is not a bundle");
        CHECK_OK(qai_bundle_verify(p, &(qai_bundle_policy){.no_store = true}, 0, &r));
        CHECK(!r.ok && strstr(r.problem, "not a qai bundle"));
        qai_bundle_report_release(&r);
        write_text(p, "");
        CHECK_OK(qai_bundle_verify(p, &(qai_bundle_policy){.no_store = true}, 0, &r));
        CHECK(!r.ok);
        qai_bundle_report_release(&r);
        unlink(p);
    }
    tentry t1[] = {good[0], good[1], {"../x", body, 5, -1, 0, NULL, false}};
    hostile("dot-dot", t1, 3, "not allowed");
    tentry t2[] = {good[0], {"/tmp/qai-evil", body, 5, -1, 0, NULL, false}};
    hostile("absolute", t2, 2, "not allowed");
    tentry t3[] = {good[0], {"model/../../x", body, 5, -1, 0, NULL, false}};
    hostile("nested dot-dot", t3, 2, "not allowed");
    tentry t4[] = {good[0], {"model/a.gguf", NULL, 0, -1, AE_IFLNK, "/etc/passwd", false}};
    hostile("symlink", t4, 2, "symbolic link");
    tentry t5[] = {good[0], good[1], {"evals/x.json", NULL, 0, -1, 0, "model/a.gguf", true}};
    hostile("hardlink", t5, 3, "hard link");
    tentry t6[] = {good[0], good[1], good[1]};
    hostile("duplicate", t6, 3, "twice");
    tentry t7[] = {good[0], {"model/a.gguf", "hello world", 11, -1, 0, NULL, false}};
    hostile("bigger than the manifest says", t7, 2, "11 bytes in the archive but 5");
    tentry t8[] = {good[0], {"model/a.gguf", body, 5, 4096, 0, NULL, false}};
    hostile("oversized header", t8, 2, "4096 bytes in the archive but 5");
    tentry t9[] = {good[0], {"model/a.gguf", NULL, 0, -1, AE_IFCHR, NULL, false}};
    hostile("device", t9, 2, "device");
    tentry t10[] = {good[1], good[0]};
    hostile("manifest not first", t10, 2, "not manifest.json");
    tentry t11[] = {good[0]};
    hostile("missing member", t11, 1, "missing");
    tentry t12[] = {good[0], good[1], {"extra.txt", body, 5, -1, 0, NULL, false}};
    hostile("unlisted member", t12, 3, "not listed");
    tentry t13[] = {good[0], good[1], {"signatures/zz.sig", body, 5, -1, 0, NULL, false}};
    hostile("bad signature name", t13, 3, "not a signature name");
    /* a manifest that lies: says 3 bytes */
    char lie[2048];
    snprintf(lie, sizeof lie,
             "{\"apiVersion\": \"qai/v1\", \"kind\": \"ModelBundle\", \"metadata\": {\"name\": \"x\", \"version\": \"1\"},"
             " \"spec\": {\"model\": {\"file\": \"model/a.gguf\", \"sha256\": \"%s\", \"size\": 3}},"
             " \"members\": [{\"path\": \"model/a.gguf\", \"sha256\": \"%s\", \"size\": 3}]}",
             hx, hx);
    tentry t14[] = {{"manifest.json", lie, strlen(lie), -1, 0, NULL, false}, good[1]};
    hostile("manifest lies about the size", t14, 2, "5 bytes in the archive but 3");
    /* manifests that name bad members */
    snprintf(lie, sizeof lie,
             "{\"apiVersion\": \"qai/v1\", \"kind\": \"ModelBundle\", \"metadata\": {\"name\": \"x\", \"version\": \"1\"},"
             " \"spec\": {\"model\": {\"file\": \"../a\", \"sha256\": \"%s\", \"size\": 5}},"
             " \"members\": [{\"path\": \"../a\", \"sha256\": \"%s\", \"size\": 5}]}",
             hx, hx);
    tentry t15[] = {{"manifest.json", lie, strlen(lie), -1, 0, NULL, false}, good[1]};
    hostile("manifest names ../a", t15, 2, "not an allowed member name");
    tentry t16[] = {{"manifest.json", "{\"apiVersion\": 1}", 17, -1, 0, NULL, false}, good[1]};
    hostile("manifest without fields", t16, 2, "apiVersion");
    tentry t17[] = {{"manifest.json", "{not json", 9, -1, 0, NULL, false}, good[1]};
    hostile("manifest not JSON", t17, 2, "not valid JSON");
}

static void test_open_model_cache(void) {
    qai_bundle_policy pol = {.data_dir = home, .trust_dir = trust, .no_store = true};
    char out[4096], mh[65], xh[65];
    CHECK_OK(qai_bundle_open_model(bundle, &pol, out, sizeof out));
    sha_hex_file(model, mh);
    /* a damaged cache file is noticed and replaced */
    FILE *f = fopen(out, "r+b");
    fseek(f, 100, SEEK_SET);
    fputc('X', f);
    fclose(f);
    CHECK_OK(qai_bundle_open_model(bundle, &pol, out, sizeof out));
    sha_hex_file(out, xh);
    CHECK(!strcmp(mh, xh));
    /* require_signed with nobody trusted: refused, nothing extracted anew */
    char empty[1200];
    path(empty, "empty-trust");
    mkdir(empty, 0755);
    pol.trust_dir = empty;
    pol.require_signed = true;
    CHECK(qai_bundle_open_model(bundle, &pol, out, sizeof out) == QAI_ERR_FORMAT &&
          strstr(qai_last_error(), "not trusted"));
    /* the model is loadable */
    pol.trust_dir = trust;
    CHECK_OK(qai_bundle_open_model(bundle, &pol, out, sizeof out));
    qai_model *m;
    CHECK_OK(qai_model_open(out, &m));
    qai_model_close(m);
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char p[2400];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_rf(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int main(void) {
    if (sodium_init() < 0) return 1;
    setup();
    test_create_and_manifest();
    test_card_rules();
    test_sign_verify();
    test_tampering();
    test_revoked();
    test_hostile();
    test_open_model_cache();
    qai_identity_free(alice);
    qai_identity_free(bob);
    if (!t_fail) rm_rf(T);
    return test_summary();
}
