/*
 * tok_internal.h — the tokenizer's private structures, shared by the files in
 * src/tokenizer/ (tokenizer.c: construction, special tokens, decoding;
 * spm.c: SentencePiece-style merging; bpe.c: pre-tokenizer and byte-level BPE;
 * wordpiece.c: BERT's basic tokenizer and WordPiece; gguf_vocab.c: reading a
 * vocabulary from GGUF metadata).
 *
 * Not installed; nothing outside src/tokenizer/ includes it.
 */
#ifndef QAI_TOK_INTERNAL_H
#define QAI_TOK_INTERNAL_H

#include "qai/tokenizer.h"

/* ---- string → id hash table (open addressing, keys point at strings owned elsewhere) ---- */

typedef struct {
    const char *s;
    uint32_t len;
    int32_t id;
} tok_slot;

typedef struct {
    tok_slot *slots; /* cap entries; s == NULL means empty */
    size_t cap;      /* power of two */
    size_t n;
} tok_map;

uint64_t tok_hash(const void *p, size_t n);
qai_status tok_map_init(tok_map *m, size_t expected);
void tok_map_release(tok_map *m);
/* Inserts or replaces (the last insert of a string wins, as llama.cpp's map). */
qai_status tok_map_put(tok_map *m, const char *s, size_t len, int32_t id);
int32_t tok_map_get(const tok_map *m, const char *s, size_t len);

/* ---- BPE merge table: (left id, right id) → rank and result id ---- */

typedef struct {
    uint64_t key; /* (uint64)left << 32 | right; UINT64_MAX = empty */
    int32_t rank;
    int32_t result;
} tok_merge_slot;

/* ---- SPM merge table: (left id, right id) -> the token their concatenation is ---- */

typedef struct {
    uint64_t key; /* (uint64)left << 32 | right; UINT64_MAX = empty */
    float score;  /* the result token's score */
    int32_t result;
} tok_spm_merge;

/* ---- growable id buffer used while encoding ---- */

typedef struct {
    int32_t *v;
    size_t n, cap;
} tok_ids;

qai_status tok_ids_push(tok_ids *b, int32_t id);

/* Token attributes beyond the GGUF type (llama.cpp's lstrip/rstrip). */
enum { TOK_ATTR_LSTRIP = 1, TOK_ATTR_RSTRIP = 2 };

typedef struct tok_pre tok_pre; /* compiled pre-tokenizer (bpe.c) */

struct qai_tokenizer {
    qai_vocab_kind kind;
    int32_t n_vocab;
    char **text;      /* NUL-terminated vocabulary strings (empty ones renamed "[EMPTY_i]") */
    uint32_t *len;    /* their lengths (strings may hold NUL bytes) */
    float *scores;    /* n_vocab */
    int32_t *types;   /* n_vocab */
    uint8_t *attrs;   /* n_vocab, TOK_ATTR_* */
    bool *eog;        /* n_vocab */
    tok_map map;      /* text → id (BPE: also virtual merge results, ids >= n_vocab) */

    int32_t bos, eos, eot, eom, unk, pad, sep;
    bool add_bos, add_eos, add_space_prefix;

    /* special tokens (control, user-defined, unknown) by text length, longest first */
    int32_t *special;
    int32_t n_special;

    /* decoded pieces: piece of id i is pieces[piece_off[i] .. piece_off[i+1]) */
    char *pieces;
    size_t *piece_off;

    /* SPM */
    int32_t byte_id[256]; /* id of <0xXX> (or of the 1-byte string), -1 if none */
    /* every pair of adjacent characters inside a vocabulary string, packed as
     * (uint64)char1 << 32 | char2 (UTF-8 bytes, little-endian); UINT64_MAX = empty.
     * Where two neighbouring characters of the text are not such a pair no merge
     * can ever join them, so the text is cut there into independent segments. */
    uint64_t *pairs;
    size_t pairs_cap;
    /* the symbols merging works on: every character that is a token or occurs
     * inside one has an id (its token id, or a "virtual" id >= n_vocab when the
     * character alone is not a token); spm_byte_char[b] for one-byte characters,
     * spm_chars (packed character -> id, open addressing) for longer ones */
    int32_t spm_byte_char[256];
    uint64_t *spm_ckey; /* UINT64_MAX = empty */
    int32_t *spm_cid;
    size_t spm_ccap;
    /* every way to cut a token into two symbols: (left, right) -> token */
    tok_spm_merge *spm_merges;
    size_t spm_mcap;

    /* BPE */
    char *pre_name;
    tok_pre *pre;
    int32_t byte_sym[256];  /* id (maybe virtual) of the byte-level char for each byte */
    char byte_chr[256][3];  /* UTF-8 of the byte-level char for each byte */
    uint8_t byte_chr_len[256];
    tok_merge_slot *merges; /* merge_cap slots */
    size_t merge_cap;
    bool ignore_merges;     /* llama3: a whole pre-token that is in the vocabulary is one token */
    /* virtual ids (merge results that are not vocabulary strings): text owned here */
    char **virt;
    int32_t n_virt, cap_virt;

    /* WordPiece */
    bool wpm_lower;       /* uncased vocabulary: lowercase and strip accents */
    bool wpm_hash;        /* "##" continuation marks (vocab.txt form) rather than "▁" word starts (llama.cpp's) */
    uint32_t wpm_max_len; /* longest vocabulary string in bytes */
};

/* spm.c: builds tok->pairs. */
qai_status tok_spm_init(qai_tokenizer *tok);
/* spm.c: appends the tokens of one text fragment (raw bytes, not yet escaped). */
qai_status tok_spm_encode(const qai_tokenizer *tok, const char *text, size_t len, bool add_prefix, tok_ids *out);

/* bpe.c */
qai_status tok_bpe_init(qai_tokenizer *tok, const qai_vocab_desc *d);
void tok_bpe_release(qai_tokenizer *tok);
qai_status tok_bpe_encode(const qai_tokenizer *tok, const char *text, size_t len, tok_ids *out);

/* wordpiece.c: decides the vocabulary's marks and casing; encodes one text
 * fragment (raw bytes); cleans up spaces before punctuation in decoded text
 * (in place, returns the new length). */
qai_status tok_wpm_init(qai_tokenizer *tok);
qai_status tok_wpm_encode(const qai_tokenizer *tok, const char *text, size_t len, tok_ids *out);
size_t tok_wpm_cleanup(char *s, size_t n);

/* Pre-tokenizer: splits text (any bytes) into pieces; calls fn(arg, start, len) for
 * each piece in order. Invalid UTF-8 bytes are treated as U+FFFD for matching
 * (as llama.cpp does) but the pieces cover the original bytes exactly. */
typedef qai_status (*tok_piece_fn)(void *arg, const char *s, size_t len);
qai_status tok_pre_split(const tok_pre *pre, const char *text, size_t len, tok_piece_fn fn, void *arg);
/* Known pre-tokenizer names → compiled regex list; QAI_ERR_UNSUPPORTED for an unknown name. */
qai_status tok_pre_new(const char *name, tok_pre **out);
void tok_pre_free(tok_pre *pre);

/* GPT-2's bytes_to_unicode as UTF-8: the byte-level character of each byte. */
void tok_byte_level_chars(char chr[256][3], uint8_t len[256]);

/* UTF-8: length of the valid sequence at s (1..4), or 0 if invalid (strict:
 * no overlongs, surrogates or code points above U+10FFFF). */
int tok_utf8_valid_len(const uint8_t *s, size_t n, uint32_t *cp);

#endif
