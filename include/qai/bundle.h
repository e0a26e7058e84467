/*
 * qai/bundle.h — model bundles (one signed-able file per model version), the
 * trust rules that check them, and the registry built on the store.
 *
 * A bundle is a tar archive (POSIX pax) compressed with zstd, written through
 * libarchive. Its members, in this order:
 *
 *     manifest.json            always first; the ModelBundle manifest (below)
 *     model/<file>.gguf        the model
 *     tokenizer/<file>         optional
 *     card.yaml                optional; the model card, validated on create
 *     datasets/<name>.json     zero or more dataset manifests
 *     evals/<file>.json        zero or more evaluation results
 *     sbom.json                the libraries this qai was built with (CycloneDX-like)
 *     signatures/<keyid>.sig   zero or more hybrid signatures (sign.h), appended by
 *                              qai_bundle_sign; each signs the manifest's bytes
 *
 * The archive is a pax tar stream compressed with zstd as several frames: the
 * entries, then (after each signature) the archive's end — 1024 zero bytes —
 * alone in the last frame. `zstd -dc B.qai | tar -t` lists it.
 *
 * Every member is a regular file with a plain relative name: letters, digits,
 * '.', '_', '-', '+', '@' and '/' between components; no empty, "." or ".."
 * component, no leading '/', at most 200 bytes. Links, devices, directories,
 * duplicates and names outside this alphabet are rejected when reading, and
 * nothing in a bundle is ever extracted by its own name: the only file
 * written from a bundle is the model, into a cache file named by its SHA-256.
 *
 * manifest.json (JSON, so any YAML 1.2 reader reads it too; written with sorted
 * members and no insignificant variation, so the signed bytes are exactly what
 * create wrote):
 *
 *     {"apiVersion": "qai/v1", "kind": "ModelBundle",
 *      "metadata": {"name", "version", "created" (RFC 3339 UTC)},
 *      "spec": {
 *        "model": {"file", "architecture", "params", "quantization", "sha256", "size"},
 *        "tokenizer": {"file", "sha256", "size"}                    (when given),
 *        "runtimeProfile": {"contextLength", "threadsHint", "memoryEstimateBytes"},
 *        "inputs": [{"type": "text", "chatTemplate": "..." (when the GGUF has one)}],
 *        "outputs": [{"type": "text"}],
 *        "safety": {"policySet"},
 *        "card": "card.yaml" | null, "datasets": [paths], "evals": [paths], "sbom": "sbom.json"},
 *      "members": [{"path", "sha256", "size"} for every member but the manifest
 *                  and the signatures, in archive order]}
 *
 * Trust (qai_bundle_verify): a signature counts only if its key's public key
 * file is trusted — found in policy->trust_dir, or (when that is NULL) in
 * <data dir>/trust/ or <data dir>/keys/, as <keyid>.pub or any *.pub whose key
 * id matches — and the key is not revoked: neither in the store's signing_keys
 * (revoked_ms set) nor listed in a revocation list "revoked.txt" in a trust
 * directory. Revocation list format: UTF-8 text, one key per line,
 *     <32 hex key id> [<revoked at: Unix seconds>] [<reason ...>]
 * blank lines and lines starting with '#' ignored; any other line is an error
 * (file:line), so a damaged list fails closed. Revocation is not dated against
 * the signature (a bundle carries no trusted time): a revoked key's signatures
 * are invalid, whenever they were made.
 *
 * Verdict: a bundle is valid when every member is present with the size and
 * SHA-256 the manifest gives, nothing else is in it, and no signature is
 * invalid (malformed, not matching its member name, failing Ed25519 or
 * ML-DSA-65 under a trusted key) or revoked. A signature by an untrusted key is
 * reported and otherwise ignored, unless require_signed is set: then at least
 * one signature must be valid under a trusted, unrevoked key.
 *
 * What it deliberately does not do: decide stages (store.h), create keys
 * (sign.h), or run models (model.h) — qai_bundle_open_model hands a verified
 * GGUF path to whoever runs it.
 *
 * Usage:
 *     qai_bundle_create_params p = {.model_path = "m.gguf", .card_path = "card.yaml",
 *                                   .name = "bot", .version = "1.0.0"};
 *     if (qai_bundle_create(&p, "bot-1.0.0.qai")) ... qai_last_error() ...
 *     qai_bundle_sign("bot-1.0.0.qai", identity);
 *     qai_bundle_report r;
 *     qai_bundle_verify("bot-1.0.0.qai", &(qai_bundle_policy){.require_signed = true}, 0, &r);
 *     if (!r.ok) fprintf(stderr, "%s\n", r.problem);
 *     qai_bundle_report_release(&r);
 */
#ifndef QAI_BUNDLE_H
#define QAI_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qai/base.h"
#include "qai/sign.h"
#include "qai/store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QAI_BUNDLE_API_VERSION "qai/v1"
#define QAI_BUNDLE_KIND "ModelBundle"
#define QAI_BUNDLE_MANIFEST "manifest.json"
#define QAI_BUNDLE_MEMBER_MAX 200          /* longest member name, bytes */
#define QAI_BUNDLE_MANIFEST_MAX (4u << 20) /* largest manifest accepted */
#define QAI_BUNDLE_SMALL_MAX (16u << 20)   /* largest card/dataset/eval/sbom member accepted */
#define QAI_BUNDLE_NAME_MAX 64             /* model name and version: [A-Za-z0-9._-], not starting with '.' */

/* ---- create ------------------------------------------------------------------ */

typedef struct {
    const char *model_path;                /* GGUF, required */
    const char *tokenizer_path;            /* may be NULL */
    const char *card_path;                 /* model card YAML; may be NULL */
    const char *const *dataset_manifests;  /* JSON files; n_datasets of them */
    size_t n_datasets;
    const char *const *evals;              /* JSON files: {"suite", "metrics": {...}, "passed": bool} */
    size_t n_evals;
    const char *name;        /* NULL: the GGUF's general.name, else the model file's stem */
    const char *version;     /* NULL: the GGUF's general.version, else an error */
    const char *policy_set;  /* safety.policySet; NULL: "default" */
    int compression_level;   /* zstd level 1..19; 0: 3 */
    const char *tool_version;/* qai's version for the SBOM; NULL: "unknown" */
    int64_t created;         /* Unix seconds; 0: $SOURCE_DATE_EPOCH if set, else now */
} qai_bundle_create_params;

/* Writes the bundle to out_path atomically (temporary file, fsync, rename):
 * hashes every input (streaming), validates the card and the manifests, then
 * writes the archive. Errors name the input file and what is wrong; nothing is
 * left behind on failure. */
qai_status qai_bundle_create(const qai_bundle_create_params *p, const char *out_path);

/* Checks a parsed model card (a cJSON object from qai_yaml_load) for the
 * required sections: purpose, intended_use, not_intended_use, slos, datasets
 * (a list of {name, sha256} with 64 hex digits each), training {date,
 * methods}, limitations, safety_mitigations, contacts. On failure the message
 * names every missing or malformed section. */
qai_status qai_model_card_validate(const void *card_json, const char *name);

/* The SBOM (sbom.json) as heap JSON text (qai_free): the libraries linked in,
 * with the versions they report at run time. */
qai_status qai_sbom_json(const char *tool_version, int64_t created, char **out);

/* ---- trust and verification --------------------------------------------------- */

typedef struct {
    const char *data_dir;   /* NULL: $QAI_HOME or ~/.local/share/qai */
    const char *trust_dir;  /* NULL: <data dir>/trust and <data dir>/keys */
    const char *const *extra_trust_dirs; /* also trusted (e.g. an authenticated import); may be NULL */
    size_t n_extra_trust_dirs;
    const char *store_url;  /* revocations in the store: NULL = the default store, if its file exists */
    bool no_store;          /* do not consult the store */
    bool require_signed;
} qai_bundle_policy;

typedef enum {
    QAI_BUNDLE_SIG_VALID = 0,     /* both algorithms verify under a trusted, unrevoked key */
    QAI_BUNDLE_SIG_INVALID = 1,   /* malformed or a verification failed */
    QAI_BUNDLE_SIG_UNTRUSTED = 2, /* no trusted public key with this key id */
    QAI_BUNDLE_SIG_REVOKED = 3,   /* trusted, but the key is revoked */
} qai_bundle_sig_state;
const char *qai_bundle_sig_state_name(qai_bundle_sig_state s); /* "valid", "invalid", ... */

typedef struct {
    char member[QAI_BUNDLE_MEMBER_MAX + 1]; /* "signatures/<keyid>.sig" */
    char key_id[QAI_KEY_ID_HEX_BYTES];      /* from the signature; "" if malformed */
    char signer[QAI_IDENTITY_NAME_MAX + 1]; /* the key's name when trusted */
    qai_bundle_sig_state state;
    char detail[256];                       /* why, for people */
} qai_bundle_signature;

typedef struct {
    char path[QAI_BUNDLE_MEMBER_MAX + 1];
    char sha256[65];
    uint64_t size;
    char *data;   /* for card, datasets, evals, sbom (NUL-terminated); NULL for others */
} qai_bundle_member;

typedef struct {
    bool ok;                   /* the verdict */
    char problem[1024];        /* the first thing that failed ("" when ok) */
    char failed[QAI_BUNDLE_MEMBER_MAX + 1]; /* the member or signature that failed, "" if none or not one */
    char name[QAI_BUNDLE_NAME_MAX + 1], version[QAI_BUNDLE_NAME_MAX + 1];
    char model_member[QAI_BUNDLE_MEMBER_MAX + 1];
    char model_sha256[65];
    uint64_t model_size;
    char bundle_sha256[65];    /* of the whole file (with QAI_BUNDLE_HASH_FILE) */
    uint64_t bundle_size;
    char *manifest;            /* the manifest bytes (NUL-terminated), or NULL */
    size_t manifest_len;
    qai_bundle_member *members; /* in archive order (manifest and signatures excluded) */
    size_t n_members;
    qai_bundle_signature *sigs;
    size_t n_sigs, n_valid;
} qai_bundle_report;

enum {
    QAI_BUNDLE_HASH_FILE = 1, /* also hash the whole bundle file (bundle_sha256) */
    QAI_BUNDLE_KEEP_SMALL = 2,/* keep the card, dataset, eval and sbom members' bytes in members[].data */
};

/* Reads the whole bundle at path, checking every member against the manifest
 * and every signature against the policy (NULL: defaults, not require_signed).
 * Returns QAI_OK when the check ran — the verdict is r->ok, with r->problem
 * and r->failed naming the first failure (a member in archive order, then the
 * signatures) — or an error if the file cannot be opened/read or memory ran
 * out. A truncated, corrupt or hostile archive is a verdict (ok false), not an
 * error. Release r with qai_bundle_report_release in every case. */
qai_status qai_bundle_verify(const char *path, const qai_bundle_policy *pol, int flags, qai_bundle_report *r);
void qai_bundle_report_release(qai_bundle_report *r);

/* The same on bytes in memory (for the fuzz harness and tests); name is used
 * in messages. No store is consulted unless pol says so. */
qai_status qai_bundle_verify_buffer(const void *data, size_t n, const char *name, const qai_bundle_policy *pol,
                                    int flags, qai_bundle_report *r);

/* Finds the trusted public key with this key id under the policy's trust
 * directories. QAI_ERR_NOT_FOUND if none; *out owned by the caller. */
qai_status qai_trust_find_key(const qai_bundle_policy *pol, const char *key_id, qai_identity **out,
                              char *path_out, size_t path_cap);
/* Whether key_id is revoked under the policy (store and revoked.txt files).
 * *revoked gets the answer; reason (may be NULL) a short note. An unreadable or
 * malformed revocation list is an error (fail closed). */
qai_status qai_trust_is_revoked(const qai_bundle_policy *pol, const char *key_id, bool *revoked, char *reason,
                                size_t reason_cap);
/* Parses a revocation list (format above). For each entry calls fn (may be
 * NULL: just validate). Errors name "name:line". */
typedef void (*qai_revocation_fn)(void *user, const char *key_id, int64_t revoked_at, const char *reason);
qai_status qai_revocations_parse(const char *text, size_t n, const char *name, qai_revocation_fn fn, void *user);

/* ---- sign ------------------------------------------------------------------------ */

/* Adds (or replaces) signatures/<keyid>.sig: a hybrid signature of the
 * manifest bytes by id (private parts needed). The bundle is read through once,
 * every member checked against the manifest (a damaged bundle is not signed),
 * then written anew atomically with the other signatures kept: bundles from
 * qai_bundle_create end in a zstd frame holding only the archive's end, so the
 * bytes before it are copied as they are (by the kernel, not recompressed) and
 * the signature and a new end appended; any other bundle, or a second
 * signature by the same key (which replaces the first), is recompressed. */
qai_status qai_bundle_sign(const char *path, const qai_identity *id);

/* ---- use --------------------------------------------------------------------------- */

/* Verifies the bundle under pol (NULL: defaults) and gives a path to its model
 * file: <data dir>/cache/models/<sha256>.gguf, extracted in the same pass
 * through a temporary file that is renamed only after the whole bundle
 * verified. A cached file is re-hashed before it is used (re-extracted if it
 * differs). A bundle that fails verification is QAI_ERR_FORMAT naming what
 * failed. path_out gets the model path (cap bytes). */
qai_status qai_bundle_open_model(const char *path, const qai_bundle_policy *pol, char *path_out, size_t cap);

/* True if path names a bundle by its extension (".qai"). */
bool qai_bundle_path_is_bundle(const char *path);

/* ---- registry ---------------------------------------------------------------------- */

/* Bundles live at <data dir>/bundles/<name>/<version>.qai; dataset manifests
 * at <data dir>/datasets/<sha256>.json (content-addressed).
 *
 * Push: (1) copy the bundle to a temporary file in the version's folder
 * (exclusively locked with flock while the push runs), fsync; (2) verify the
 * copy (what is verified is what is stored); (3) one store transaction: the
 * project, datasets, run, model version, its signing keys and signatures, and
 * evaluations; (4) rename the temporary file to <version>.qai and fsync the
 * folder. A push killed before (3) commits leaves an unlocked temporary file
 * and no rows; killed after, a committed row whose file is still the
 * temporary one. qai_registry_recover (run by every registry call) finishes
 * both: it renames a temporary file whose row exists with the same bundle
 * SHA-256, and deletes any other unlocked temporary file. So after recovery
 * every pushed version has its file and no file lacks its row. Two pushes of
 * the same name@version race in the transaction: one lands, the other fails
 * with "already exists" and removes its copy.
 *
 * QAI_TEST_CRASH_AT=<point> makes the process _exit(99) at that point (for the
 * crash tests; inert unless set): push-copied, push-verified, push-in-tx,
 * push-committed, push-renamed. */
qai_status qai_registry_recover(qai_store *s, const char *data_dir);

typedef struct {
    int64_t model_version_id;
    bool already_present; /* the same bundle was pushed before: nothing changed */
    char path[4096];      /* where the bundle now lives */
} qai_registry_push_result;
/* Verifies and records a bundle (see above). pol->require_signed applies;
 * invalid or revoked signatures always refuse. actor (may be NULL) is recorded
 * nowhere yet but kept for the audit trail to come. */
qai_status qai_registry_push(qai_store *s, const char *data_dir, const char *bundle_path, const qai_bundle_policy *pol,
                             qai_registry_push_result *res);

/* Lineage of name@version (version NULL: the newest) as a cJSON object
 * (returned as void *, freed with cJSON_Delete):
 *   {"model": {...}, "run": {...}|null, "datasets": [{..., "sources": [...]}],
 *    "evaluations": [...], "signatures": [...], "history": [...], "card": {...}|null}
 * Dataset sources come from the stored dataset manifests (inputs[] of a
 * qai-dataset manifest, or "sources"/"inputs" of another). */
qai_status qai_registry_lineage(qai_store *s, const char *data_dir, const char *name, const char *version,
                                void **json_out);

/* Air-gapped transfer. Export copies the chosen bundles (refs "NAME" = all its
 * versions, "NAME@VERSION"; none = every version) to dir/bundles/, the public
 * keys that signed them to dir/keys/, the revocations known here to
 * dir/revoked.txt, and writes dir/index.json listing every file with its
 * SHA-256 and size; signer (may be NULL) signs the index into
 * dir/index.json.sig. index_sha256 (65 bytes, may be NULL) gets the index's
 * hash, to carry out of band.
 *
 * Import trusts the index only if it is signed by a key already trusted here
 * (pol) or its SHA-256 equals expect_index_sha256; then checks every file
 * against it (unlisted files are refused), verifies every bundle with the
 * exported keys and revocations added to the trust, and refuses conflicts
 * (a version already here with another bundle) — all before adding anything.
 * Then it copies the keys to <data dir>/trust/, merges the revocations into
 * <data dir>/trust/revoked.txt and pushes the bundles. n_imported (may be
 * NULL) counts bundles added (already present ones are skipped). */
qai_status qai_registry_export(qai_store *s, const char *data_dir, const char *dir, const char *const *refs,
                               size_t n_refs, const qai_identity *signer, char index_sha256[65]);
qai_status qai_registry_import(qai_store *s, const char *data_dir, const char *dir, const qai_bundle_policy *pol,
                               const char *expect_index_sha256, size_t *n_imported);

#ifdef __cplusplus
}
#endif
#endif
