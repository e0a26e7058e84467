/* Internal to the bundle and registry files: the archive scanner shared by
 * verify, sign and open_model, name rules, and small helpers. */
#ifndef QAI_BUNDLE_INTERNAL_H
#define QAI_BUNDLE_INTERNAL_H

#include <stdio.h>

#include "qai/bundle.h"

struct archive;

/* Member names: see bundle.h. */
bool bundle_member_name_ok(const char *name);
/* Model names and versions: 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool bundle_ident_ok(const char *s);
/* 64 lowercase hex digits. */
bool bundle_hex64_ok(const char *s);
/* "signatures/<32 hex>.sig" -> key id into kid (33 bytes); false otherwise. */
bool bundle_sig_member_key(const char *name, char kid[QAI_KEY_ID_HEX_BYTES]);

/* What a scan does beyond checking. */
typedef struct {
    int flags;                     /* QAI_BUNDLE_HASH_FILE | QAI_BUNDLE_KEEP_SMALL */
    const qai_bundle_policy *pol;  /* trust for signatures */
    bool skip_signatures;          /* sign: existing signatures are carried, not judged */
    bool manifest_only;            /* stop after reading and checking the manifest */
    FILE *model_out;               /* write the model's bytes here (may be NULL) */
    struct archive *copy_to;       /* write every entry here (sign), except signatures by replace_key_id */
    const char *replace_key_id;
    const char *name;              /* for messages when scanning memory */
} bundle_scan_opts;

/* Scans a bundle file (path) or a buffer (data, n when path is NULL). Fills r
 * (verdict and details). Returns an error only for I/O on the file itself or
 * out of memory; everything about the content is a verdict. */
qai_status bundle_scan(const char *path, const void *data, size_t n, const bundle_scan_opts *o, qai_bundle_report *r);

/* Resolves the data directory (creating it) into out. */
qai_status bundle_data_dir(const char *override, char *out, size_t cap);

/* Writes a regular file entry header (pax) with fixed owner and mode. */
qai_status bundle_write_header(struct archive *a, const char *name, uint64_t size, int64_t mtime);
/* A bundle being written to an open FILE: pax entries from libarchive,
 * compressed here with zstd so that the archive's end (1024 zero bytes) is a
 * zstd frame of its own after the frame holding the entries. Signing then
 * adds a member by replacing only that last frame (bundle_append_point). */
typedef struct bundle_writer bundle_writer;
qai_status bundle_writer_open(bundle_writer **out, FILE *f, int level, const char *what);
struct archive *bundle_writer_archive(bundle_writer *w);
/* Ends the entries' frame, writes the end frame, frees w. */
qai_status bundle_writer_close(bundle_writer *w, const char *what);
/* Frees w after a failure (what was written is to be discarded). */
void bundle_writer_abort(bundle_writer *w);
/* Where a member can be appended to the bundle in data[0..n): the offset of
 * its last zstd frame when that frame is exactly the archive's end (1024 zero
 * bytes) and every frame before it is whole. false for anything else (e.g. a
 * bundle written by another tool): the caller rewrites the archive instead. */
bool bundle_append_point(const void *data, size_t n, size_t *offset);

/* Parses text[0..n) (with text[n] == 0) as one JSON value with nothing but
 * whitespace after it; embedded NUL bytes are refused. *err_off gets the
 * byte offset of a syntax error. Returns a cJSON * (as void *) or NULL. */
void *bundle_json_parse(const char *text, size_t n, size_t *err_off);

/* fsync a directory (after a rename in it). */
void bundle_fsync_dir(const char *dir);

#endif
