/*
 * qai/tokenizer.h — tokenizers built from GGUF metadata (or a llama2.c
 * tokenizer.bin), and chat templates.
 *
 * Three kinds, named as GGUF's tokenizer.ggml.model names them:
 *   "llama" — SentencePiece-style BPE over UTF-8 characters with byte fallback
 *             (<0xXX> tokens), "▁" for spaces, merges by score.
 *   "gpt2"  — byte-level BPE (bytes mapped to printable code points) with merge
 *             ranks, after a pre-tokenizer regex named by tokenizer.ggml.pre
 *             (default/gpt2, llama3/llama-bpe, qwen2, smollm, ...), using PCRE2.
 *   "bert"  — WordPiece (BERT-style encoders): BertTokenizer's basic
 *             tokenization (cleaning, CJK and punctuation splitting, lowercase
 *             and accent stripping for uncased vocabularies), then greedy
 *             longest-match pieces; [CLS] ... [SEP] around the text. Pieces as
 *             llama.cpp stores them ("▁" word starts, bare continuations) or
 *             as vocab.txt does ("##" continuations). See wordpiece.c.
 * Special (control / user-defined) tokens are matched in the text first when
 * QAI_TOK_PARSE_SPECIAL is given.
 *
 * What it does not do: Unigram (T5) vocabularies (a later issue).
 *
 * Usage:
 *     qai_tokenizer *tok;
 *     qai_tokenizer_from_gguf(g, &tok);
 *     int32_t *ids; size_t n;
 *     qai_tokenizer_encode(tok, text, strlen(text), QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &ids, &n);
 *     ... qai_free(ids); qai_tokenizer_free(tok);
 */
#ifndef QAI_TOKENIZER_H
#define QAI_TOKENIZER_H

#include "qai/base.h"
#include "qai/gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { QAI_VOCAB_SPM = 1, QAI_VOCAB_BPE = 2, QAI_VOCAB_WPM = 3 } qai_vocab_kind;

/* Token types as GGUF stores them in tokenizer.ggml.token_type. */
enum {
    QAI_TOKEN_NORMAL = 1,
    QAI_TOKEN_UNKNOWN = 2,
    QAI_TOKEN_CONTROL = 3,
    QAI_TOKEN_USER_DEFINED = 4,
    QAI_TOKEN_UNUSED = 5,
    QAI_TOKEN_BYTE = 6,
};

/* Everything a tokenizer is built from, as stored in GGUF. Ids are -1 when absent. */
typedef struct {
    qai_vocab_kind kind;
    int32_t n_tokens;
    const char *const *tokens; /* vocabulary strings as stored (SPM: "▁the", "<0x0A>"; BPE: byte-level encoded) */
    const size_t *token_lens;  /* may be NULL: strlen */
    const float *scores;       /* may be NULL (BPE) */
    const int32_t *types;      /* may be NULL: all normal */
    int32_t n_merges;
    const char *const *merges; /* BPE: "left right", in rank order */
    const char *pre;           /* BPE pre-tokenizer name; NULL = "default" */
    int32_t bos, eos, eot, eom, unk, pad, sep; /* WPM: bos is [CLS], sep [SEP] */
    bool add_bos, add_eos;
    bool add_space_prefix; /* SPM: prepend "▁" (the dummy prefix) */
} qai_vocab_desc;

typedef struct qai_tokenizer qai_tokenizer;

/* Builds a tokenizer; everything in d is copied. */
qai_status qai_tokenizer_new(const qai_vocab_desc *d, qai_tokenizer **out);
/* From a GGUF's tokenizer.ggml.* metadata (works on vocab-only files). */
qai_status qai_tokenizer_from_gguf(const qai_gguf *g, qai_tokenizer **out);
void qai_tokenizer_free(qai_tokenizer *tok);

/* A llama2.c tokenizer.bin (i32 max_token_length, then per token: f32 score,
 * i32 len, bytes). Pieces use " " where SentencePiece uses "▁"; they are
 * converted to "▁" and <0xXX> byte pieces get the BYTE type, ids 0/1/2 are
 * <unk>/<s>/</s>. The desc owns its memory: release with qai_vocab_release. */
qai_status qai_vocab_read_llama2c(const char *path, qai_vocab_desc *d);
void qai_vocab_release(qai_vocab_desc *d);

enum {
    QAI_TOK_ADD_SPECIAL = 1,   /* add BOS/EOS as the vocabulary's add_bos/add_eos say (WPM: [CLS] and [SEP]) */
    QAI_TOK_PARSE_SPECIAL = 2, /* text such as "<|im_start|>" becomes its special token */
};

/* Encodes len bytes of text (any bytes, including invalid UTF-8 and NULs).
 * *ids is allocated with qai_malloc (caller frees). */
qai_status qai_tokenizer_encode(const qai_tokenizer *tok, const char *text, size_t len, int flags, int32_t **ids,
                                size_t *n_ids);

enum {
    QAI_DETOK_SPECIAL = 1,      /* render control tokens' text (default: render nothing for them) */
    QAI_DETOK_STRIP_SPACE = 2,  /* SPM, WPM: drop the space that begins the first word piece */
};
/* The bytes one token stands for (SPM: "▁"→" ", <0xXX>→the byte; BPE: byte-level
 * decoded; WPM: a word start with a space before it, a continuation as it is). Writes at most cap bytes, returns the full length. */
size_t qai_tokenizer_piece(const qai_tokenizer *tok, int32_t id, int flags, char *buf, size_t cap);
/* Decodes a sequence; *text is NUL-terminated, allocated (caller frees). WPM:
 * spaces before . , ! ? and in " 's"-style contractions are removed, as
 * Hugging Face's clean_up_tokenization does. */
qai_status qai_tokenizer_decode(const qai_tokenizer *tok, const int32_t *ids, size_t n_ids, int flags, char **text,
                                size_t *len);

int32_t qai_tokenizer_n_vocab(const qai_tokenizer *tok);
qai_vocab_kind qai_tokenizer_kind(const qai_tokenizer *tok);
/* The vocabulary string of id as stored (NULL if out of range). */
const char *qai_tokenizer_token(const qai_tokenizer *tok, int32_t id);
int32_t qai_tokenizer_token_type(const qai_tokenizer *tok, int32_t id);
int32_t qai_tokenizer_bos(const qai_tokenizer *tok);
int32_t qai_tokenizer_eos(const qai_tokenizer *tok);
bool qai_tokenizer_add_bos(const qai_tokenizer *tok);
/* End of generation: EOS, EOT, EOM or another token the vocabulary marks as such. */
bool qai_tokenizer_is_eog(const qai_tokenizer *tok, int32_t id);
/* Id of an exact vocabulary string, or -1. */
int32_t qai_tokenizer_find(const qai_tokenizer *tok, const char *text);

/* ---- chat templates ---- */

typedef enum {
    QAI_CHAT_UNKNOWN = 0,
    QAI_CHAT_LLAMA2,
    QAI_CHAT_LLAMA3,
    QAI_CHAT_CHATML, /* also Qwen */
    QAI_CHAT_ZEPHYR, /* also TinyLlama chat */
    QAI_CHAT_PHI3,
    QAI_CHAT_GEMMA,
} qai_chat_format;

typedef struct {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} qai_chat_message;

/* Recognizes the format of a Jinja template (tokenizer.chat_template) by its
 * markers; QAI_CHAT_UNKNOWN if none fits (NULL template: unknown). */
qai_chat_format qai_chat_detect(const char *jinja);
/* "llama2", "llama3", "chatml", "zephyr", "phi3", "gemma"; from-name returns
 * QAI_CHAT_UNKNOWN for an unknown name. */
const char *qai_chat_format_name(qai_chat_format f);
qai_chat_format qai_chat_format_from_name(const char *name);
/* Renders messages into the prompt text the model was trained on, ending with
 * the assistant's turn opener when add_assistant. bos is prepended as text only
 * where the format writes it (callers usually let the tokenizer add BOS).
 * *out allocated (caller frees). */
qai_status qai_chat_apply(qai_chat_format f, const qai_chat_message *msgs, size_t n, bool add_assistant, char **out);
/* Text that ends an assistant turn in this format (e.g. "<|im_end|>"), used as
 * an extra stop string; "" if the format has none beyond EOS. */
const char *qai_chat_end_marker(qai_chat_format f);

#ifdef __cplusplus
}
#endif
#endif
