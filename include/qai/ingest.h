/*
 * qai/ingest.h — turning files into retrievable text: extraction of plain
 * text, Markdown, HTML, man pages (roff man(7)/mdoc(7), also gzipped), JSONL,
 * CSV and PDF (through poppler's pdftotext when installed) into UTF-8 text
 * with a section structure; structure-aware chunking with a token budget;
 * MinHash signatures with an LSH banding index for near-duplicate removal;
 * and a PII redaction pass.
 *
 * What it deliberately does not do: store anything, hash files for change
 * detection, embed or index (the collection code in cli/cmd_ingest.c and
 * qai/index.h do that). Everything here is pure computation on memory except
 * qai_doc_read_file (reads one file) and PDF extraction (runs pdftotext).
 * All functions are thread safe on distinct arguments; a qai_lsh is not safe
 * for concurrent check_insert calls.
 *
 * Usage:
 *     qai_doc_list dl;
 *     if (qai_doc_read_file("/usr/share/man/man1/ls.1.gz", &dl) != QAI_OK) ... qai_last_error() ...
 *     for (int i = 0; i < dl.n_docs; i++) {
 *         qai_chunk_opts co = qai_chunk_default_opts();   // 256 tokens, 32 overlap, 4 bytes/token
 *         qai_chunk *ch; int nch;
 *         qai_chunk_doc(&dl.docs[i], &co, &ch, &nch);
 *         // ch[j].start/end index dl.docs[i].text, ch[j].section_path "DESCRIPTION > Options"
 *         qai_chunks_free(ch, nch);
 *     }
 *     qai_minhash mh; qai_minhash_text(dl.docs[0].text, dl.docs[0].len, 5, &mh);
 *     uint64_t dup = qai_lsh_check_insert(lsh, file_id, &mh);   // UINT64_MAX: new
 *     qai_doc_list_free(&dl);
 */
#ifndef QAI_INGEST_H
#define QAI_INGEST_H

#include "qai/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- documents --------------------------------------------------------------- */

typedef enum {
    QAI_DOC_UNKNOWN = 0, QAI_DOC_TEXT, QAI_DOC_MARKDOWN, QAI_DOC_HTML, QAI_DOC_MAN,
    QAI_DOC_JSONL, QAI_DOC_CSV, QAI_DOC_PDF
} qai_doc_type;

/* MIME-like name: "text/plain", "text/markdown", "text/html", "text/troff",
 * "application/jsonl", "text/csv", "application/pdf"; "application/octet-stream"
 * for QAI_DOC_UNKNOWN. Static string. */
const char *qai_doc_type_name(qai_doc_type t);

/* A heading/section in the extracted text. */
typedef struct {
    size_t start, end;   /* byte span [start,end) of the section (heading line through the text before the
                            next heading of the same or higher level) in qai_doc.text */
    int level;           /* 1 = top (Markdown #, HTML h1, man .SH); 2 = sub (##, h2, .SS) ... up to 6 */
    char *title;         /* heading text, UTF-8 */
} qai_doc_section;

/* One document extracted from a file (JSONL/CSV give one per record). All
 * strings are owned by the enclosing qai_doc_list. */
typedef struct {
    char *text;  size_t len;        /* extracted plain text: valid UTF-8, NUL-terminated, structure kept as lines */
    qai_doc_section *sections; int n_sections;   /* in order of start */
    char *title;                    /* document title if known (HTML <title>, man NAME, first # heading), else NULL */
    char *record_id;                /* JSONL "id" / CSV row number as text for multi-record files, else NULL */
    char *meta_json;                /* extra metadata as a JSON object text (JSONL fields other than text, CSV columns), or NULL */
    char lang[8];                   /* language guess, ISO 639-1 ("en", "de", "fr", "es", "it", "nl", "pt" or "und") */
} qai_doc;

typedef struct { qai_doc *docs; int n_docs; qai_doc_type type; } qai_doc_list;

/* Detect the type from the name (.md .markdown .html .htm .xhtml .txt .text .jsonl .ndjson .csv .pdf,
 * man pages NAME.[1-9][a-z]* and those with .gz; .gz is stripped before looking) and the first bytes
 * (%PDF-, <!DOCTYPE html / <html, a leading .TH/.Dd/.\" roff line). Unknown names with text content
 * give QAI_DOC_TEXT. Binary content (NUL bytes, < 90% valid UTF-8 ...) gives QAI_ERR_FORMAT with a
 * reason naming the path. head/n are the first bytes of the (decompressed) file; path may be NULL. */
qai_status qai_doc_detect(const char *path, const void *head, size_t n, qai_doc_type *out);

/* Extracts the documents of one file's bytes (already gunzipped when the name ended .gz: the caller may use
 * qai_doc_read_file which does it). Malformed input -> QAI_ERR_FORMAT and a message naming path and byte
 * offset/line; broken HTML is tolerated (best effort), invalid UTF-8 is repaired (U+FFFD) or refused, never crashes.
 * JSONL/CSV: the first bad record fails the whole call (message "path:LINE: ..."); use
 * qai_doc_extract_records to skip bad records instead. On success *out owns everything
 * (qai_doc_list_free); on failure *out is empty. A file with no text gives n_docs == 0 for
 * JSONL/CSV and one empty document otherwise. */
qai_status qai_doc_extract(const char *path, const void *data, size_t size, qai_doc_type type, qai_doc_list *out);

/* Like qai_doc_extract for JSONL/CSV, but a bad record is skipped: *n_bad counts them and
 * the message of the first one is left in qai_last_error() (when the call still returns QAI_OK).
 * For other types identical to qai_doc_extract (n_bad = 0). */
qai_status qai_doc_extract_records(const char *path, const void *data, size_t size, qai_doc_type type,
                                   qai_doc_list *out, int *n_bad);

/* Largest decompressed .gz / read file accepted (64 MiB). */
#define QAI_DOC_MAX_BYTES ((size_t)64 << 20)

/* Reads a file (gunzips .gz with a QAI_DOC_MAX_BYTES cap), detects and extracts. */
qai_status qai_doc_read_file(const char *path, qai_doc_list *out);
/* Reads a file's bytes, gunzipping when the name ends in .gz (cap QAI_DOC_MAX_BYTES).
 * *data is NUL-terminated, owned by the caller (qai_free). */
qai_status qai_doc_load_bytes(const char *path, char **data, size_t *size);
void qai_doc_list_free(qai_doc_list *l);

/* Language guess by counting frequent function words of en/de/fr/es/it/nl/pt; "und" when
 * fewer than 3 such words are found or no language leads clearly. out has room for 8 bytes. */
void qai_doc_guess_lang(const char *text, size_t n, char out[8]);

/* ---- chunking ---------------------------------------------------------------- */

typedef int (*qai_count_tokens_fn)(void *ctx, const char *text, size_t n);   /* NULL: ~4 bytes per token estimate */
typedef struct {
    int max_tokens;      /* default 256 */
    int overlap_tokens;  /* default 32; must be < max_tokens */
    qai_count_tokens_fn count; void *count_ctx;
} qai_chunk_opts;
qai_chunk_opts qai_chunk_default_opts(void);

typedef struct {
    size_t start, end;   /* byte span in qai_doc.text; chunk boundaries fall on paragraph/sentence/word boundaries,
                            never inside a UTF-8 sequence */
    char *section_path;  /* "NAME > DESCRIPTION > Options" (titles of enclosing sections, outermost first), "" if none */
} qai_chunk;

/* Splits a document into chunks of at most o->max_tokens (o NULL: defaults). Rules:
 *  - the text is cut at every section start into regions (text from one heading to the next);
 *    a chunk never crosses a region boundary except as follows; a region that fits is one chunk;
 *  - adjacent sibling regions (same parent section, same depth) merge into one chunk while the
 *    merged span counts at most max_tokens / 2; the merged chunk's path is the parent's path;
 *  - a region that is only its heading line joins its first subsection (path: the subsection's);
 *  - a bigger region is split at blank-line paragraph boundaries, then sentence ends/line ends,
 *    then whitespace, then (a single over-long word) at UTF-8 character boundaries, so no chunk
 *    exceeds the budget (only a single character counting more than max_tokens can); consecutive
 *    chunks of one region overlap by whole words counting at most o->overlap_tokens;
 *  - spans are trimmed of surrounding whitespace; whitespace-only spans give no chunk.
 * Deterministic; thread safe. *out is an array of *n_out chunks (qai_chunks_free); QAI_ERR_ARG for
 * bad options or sections outside the text. */
qai_status qai_chunk_doc(const qai_doc *d, const qai_chunk_opts *o, qai_chunk **out, int *n_out);
void qai_chunks_free(qai_chunk *c, int n);

/* ---- near duplicates --------------------------------------------------------- */

#define QAI_MINHASH_K 128
typedef struct { uint32_t h[QAI_MINHASH_K]; } qai_minhash;

/* Signature of the set of word shingles (shingle_words consecutive words, default 5 when <= 0)
 * after NFKC casefold; words are maximal runs of letters/digits. A text with fewer words than
 * shingle_words gives one shingle of all its words; an empty text gives all h = UINT32_MAX.
 * Hash: each shingle -> 64-bit FNV-1a of its words joined by ' ', then permutation i is
 * h_i(x) = (splitmix64(x ^ seed_i)) >> 32 with seed_i = splitmix64 sequence from 0x9E3779B97F4A7C15. */
void qai_minhash_text(const char *text, size_t n, int shingle_words /* 5 */, qai_minhash *out);
/* Fraction of equal slots: an unbiased estimate of the shingle sets' Jaccard similarity. */
double qai_minhash_jaccard(const qai_minhash *a, const qai_minhash *b);

/* LSH banding index to find candidates quickly: b bands of r rows (b*r <= 128) picked to make
 * the S-curve's midpoint (1/b)^(1/r) sit a little below threshold, so pairs at the threshold are
 * found with probability > 0.99; candidates are then confirmed by the full signature estimate. */
typedef struct qai_lsh qai_lsh;
qai_status qai_lsh_new(double threshold /* 0.8 */, qai_lsh **out);
/* returns the id of an existing near-duplicate with estimated Jaccard >= threshold (then does NOT insert),
 * or inserts and returns UINT64_MAX. UINT64_MAX on allocation failure too (then nothing is inserted). */
uint64_t qai_lsh_check_insert(qai_lsh *l, uint64_t id, const qai_minhash *m);
/* number of signatures inserted; bands b and rows per band r chosen */
size_t qai_lsh_count(const qai_lsh *l);
void qai_lsh_params(const qai_lsh *l, int *bands, int *rows);
void qai_lsh_free(qai_lsh *l);

/* ---- PII redaction ----------------------------------------------------------- */

typedef struct { int emails, phones, ipv4, ipv6, cards, ibans, secrets; } qai_pii_counts;
/* Replaces PII in place-copy: e-mail addresses -> [EMAIL], phone numbers -> [PHONE], IP addresses -> [IP],
 * payment card numbers passing Luhn -> [CARD], IBANs passing mod-97 -> [IBAN], API keys/tokens (AWS AKIA...,
 * "sk-...", "ghp_...", PEM private key blocks) -> [SECRET].
 * out is a new NUL-terminated string (qai_free). counts may be NULL. What exactly matches is
 * described at the top of src/knowledge/pii.c. */
qai_status qai_pii_redact(const char *text, size_t n, char **out, size_t *out_len, qai_pii_counts *counts);

#ifdef __cplusplus
}
#endif

#endif
