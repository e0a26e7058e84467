/*
 * ingest_internal.h — shared pieces of the extractors (src/knowledge/extract*.c):
 * a growing output text with its sections, UTF-8 helpers and the per-format
 * entry points. Not installed.
 *
 * The text builder keeps output tidy as it is written, so section offsets never
 * need fixing afterwards: tb_text collapses whitespace runs to one space and
 * drops spaces at line starts, tb_newline/tb_blankline never stack more than one
 * blank line, tb_raw copies bytes as they are (<pre>, .nf).
 */
#ifndef QAI_INGEST_INTERNAL_H
#define QAI_INGEST_INTERNAL_H

#include "qai/ingest.h"

typedef struct {
    char *buf;
    size_t len, cap;
    qai_doc_section *secs;
    int nsec, capsec;
    bool oom;
    bool pending_space; /* a collapsed space waiting for the next visible byte */
} qai_tb;

void tb_init(qai_tb *tb);
void tb_release(qai_tb *tb);
/* bytes as given (must be valid UTF-8 in whole sequences) */
void tb_raw(qai_tb *tb, const char *s, size_t n);
/* flowing text: whitespace runs become one space, none at a line start */
void tb_text(qai_tb *tb, const char *s, size_t n);
void tb_textz(qai_tb *tb, const char *s);
/* a space that is dropped if the line ends first */
void tb_space(qai_tb *tb);
/* end the current line (if not empty) */
void tb_newline(qai_tb *tb);
/* end the current paragraph: at most one blank line */
void tb_blankline(qai_tb *tb);
/* appends one code point as UTF-8 (invalid ones as U+FFFD) */
void tb_codepoint(qai_tb *tb, uint32_t cp);
/* starts a section at the current position (caller has ended the line); title is set later by
 * tb_section_title (empty-title sections are dropped at the end) */
int tb_section_begin(qai_tb *tb, int level);
void tb_section_title(qai_tb *tb, int idx, const char *s, size_t n);
/* trims trailing whitespace, computes section ends, moves everything into d (d->text etc.);
 * tb is left empty. Returns QAI_ERR_NOMEM if any step ran out of memory. */
qai_status tb_finish(qai_tb *tb, qai_doc *d);
/* the last byte written or 0 */
static inline char tb_last(const qai_tb *tb) { return tb->len ? tb->buf[tb->len - 1] : 0; }

/* Length of the valid UTF-8 sequence at s (1..4) or 0 if invalid/truncated. */
size_t qai_utf8_seq(const unsigned char *s, size_t n);
/* Writes cp as UTF-8 into out (4 bytes room); returns the length. Surrogates and values above
 * U+10FFFF become U+FFFD. */
int qai_utf8_put(uint32_t cp, char *out);
/* Copy with invalid UTF-8 replaced by U+FFFD, CRLF and lone CR -> LF, NUL -> dropped. *bad gets the
 * number of invalid bytes. Returns NULL on allocation failure. */
char *qai_utf8_clean(const char *s, size_t n, size_t *out_len, size_t *bad);
/* strdup of n bytes with surrounding whitespace trimmed */
char *qai_strndup_trim(const char *s, size_t n);

/* helpers for building doc lists */
qai_status docs_push(qai_doc_list *l, int *cap, qai_doc *d);
void doc_release(qai_doc *d);

/* per-format extractors: input is cleaned UTF-8 (LF line ends, no NUL), NUL-terminated */
qai_status qai_extract_text(const char *path, const char *s, size_t n, qai_doc *d);
qai_status qai_extract_markdown(const char *path, const char *s, size_t n, qai_doc *d);
qai_status qai_extract_html(const char *path, const char *s, size_t n, qai_doc *d);
qai_status qai_extract_man(const char *path, const char *s, size_t n, qai_doc *d);
/* records: skip_bad false -> first bad record is an error; true -> counted in *n_bad */
qai_status qai_extract_jsonl(const char *path, const char *s, size_t n, qai_doc_list *out, bool skip_bad, int *n_bad);
qai_status qai_extract_csv(const char *path, const char *s, size_t n, qai_doc_list *out, bool skip_bad, int *n_bad);
/* raw bytes of a PDF */
qai_status qai_extract_pdf(const char *path, const void *data, size_t size, qai_doc *d);

#endif
