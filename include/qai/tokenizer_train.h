/*
 * qai/tokenizer_train.h — training a BPE tokenizer from text, and writing a
 * vocabulary as a vocab-only GGUF file.
 *
 * Two kinds, matching what qai_tokenizer_new (and llama.cpp) read:
 *
 *   QAI_TOKTRAIN_SPM — SentencePiece-style BPE with byte fallback, the GGUF
 *     "llama" tokenizer. Every line of the input is a sentence; spaces become
 *     "▁" and a "▁" is prefixed to each line (the dummy prefix). Sentences are
 *     cut into words before every "▁" and again where the kind of character
 *     changes (letters of one script / everything else: digits, punctuation,
 *     symbols), as SentencePiece's split_by_whitespace and
 *     split_by_unicode_script do; a piece is at most max_piece_chars
 *     characters. The characters covering `coverage` of all character
 *     occurrences become pieces; rarer ones are left to the byte tokens. Then
 *     the most frequent adjacent pair of symbols (ties: the pair whose ids are
 *     smaller, i.e. made earlier) is merged, repeatedly, until the vocabulary
 *     is full. Layout: 0 <unk>, 1 <s>, 2 </s>, the special tokens, the 256
 *     byte tokens <0x00>..<0xFF>, the merged pieces in merge order with score
 *     -i for the i-th, then the single characters by falling frequency with
 *     lower scores still. The encoder merges the adjacent pair whose
 *     concatenation has the highest score, which replays the training merges.
 *
 *   QAI_TOKTRAIN_BYTEBPE — GPT-2-style byte-level BPE, the GGUF "gpt2"
 *     tokenizer with pre-tokenizer "gpt-2" (GPT-2's regex, known to qai and
 *     llama.cpp). The text (lines kept with their "\n") is split by that regex;
 *     words start as their bytes; the most frequent pair is merged until the
 *     vocabulary is full. Layout: 0 <|endoftext|> (BOS = EOS), the special
 *     tokens, the 256 byte-level characters in byte order, then the merges'
 *     results in merge order; tokenizer.ggml.merges lists the merges in rank
 *     order.
 *
 * Special tokens given by the caller are USER_DEFINED (always matched in text,
 * like SentencePiece's user_defined_symbols) or, in control_tokens, CONTROL
 * (matched only when parsing special tokens, as chat markers usually are).
 * Training text never contributes to them: occurrences are cut out before
 * counting.
 *
 * Determinism: the result depends only on the input bytes and the options,
 * never on n_threads or timing. Counting words runs on n_threads; merging is
 * sequential with incremental pair counts (a lazy max-heap over pairs and, per
 * pair, the words where it occurs).
 *
 * What it does not do: Unigram or WordPiece training, Unicode normalization
 * (NFKC), sampling of sentences (max_bytes only truncates).
 *
 * Usage:
 *     qai_toktrain_opts o;
 *     qai_toktrain_opts_init(&o);
 *     o.vocab_size = 8000;
 *     qai_vocab_desc d;
 *     if (qai_tokenizer_train_files(paths, n, &o, &d, NULL)) ... qai_last_error() ...
 *     qai_vocab_write_gguf(&d, "tok.gguf");
 *     qai_vocab_release(&d);
 */
#ifndef QAI_TOKENIZER_TRAIN_H
#define QAI_TOKENIZER_TRAIN_H

#include "qai/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { QAI_TOKTRAIN_SPM = 1, QAI_TOKTRAIN_BYTEBPE = 2 } qai_toktrain_type;

typedef struct {
    qai_toktrain_type type;
    int32_t vocab_size;                 /* total, including special and byte tokens */
    const char *const *user_tokens;     /* USER_DEFINED special tokens (may be NULL) */
    size_t n_user_tokens;
    const char *const *control_tokens;  /* CONTROL special tokens (may be NULL) */
    size_t n_control_tokens;
    int n_threads;                      /* <= 0: all CPUs */
    uint64_t max_bytes;                 /* read at most this many bytes of input (whole lines); 0: all */
    double coverage;                    /* SPM: character coverage (default 0.9995) */
    int max_piece_chars;                /* SPM: longest piece in characters (default 16) */
    bool progress;                      /* progress on stderr */
} qai_toktrain_opts;

/* Defaults: SPM, vocab 8000, all CPUs, coverage 0.9995, pieces <= 16 chars. */
void qai_toktrain_opts_init(qai_toktrain_opts *o);

typedef struct {
    uint64_t n_bytes;      /* text bytes read */
    uint64_t n_words;      /* word occurrences counted */
    uint64_t n_unique;     /* distinct words */
    int32_t n_chars;       /* SPM: character pieces kept */
    int32_t n_merges;      /* merges made */
    double seconds_count, seconds_merge;
} qai_toktrain_stats;

/* Trains on texts[i] (lens[i] bytes each; any bytes — invalid UTF-8 sequences
 * are left to byte fallback). Fills *out (owned by the caller: release with
 * qai_vocab_release). If the text runs out of pairs before the vocabulary is
 * full, the vocabulary is smaller than asked (out->n_tokens says) — not an
 * error. QAI_ERR_ARG for a vocabulary too small for the fixed tokens and
 * characters. stats may be NULL. */
qai_status qai_tokenizer_train(const char *const *texts, const size_t *lens, size_t n, const qai_toktrain_opts *o,
                               qai_vocab_desc *out, qai_toktrain_stats *stats);
/* Same over files (read whole; empty corpus is an error naming the files). */
qai_status qai_tokenizer_train_files(const char *const *paths, size_t n, const qai_toktrain_opts *o,
                                     qai_vocab_desc *out, qai_toktrain_stats *stats);

/* Writes a vocab-only GGUF (atomically): general.architecture "llama",
 * tokenizer.ggml.model "llama" (SPM) or "gpt2" (BPE), pre, tokens, scores
 * (SPM), token_type, merges (BPE), bos/eos/unknown ids, add_bos_token,
 * add_eos_token, add_space_prefix. qai_tokenizer_from_gguf and llama.cpp read it. */
qai_status qai_vocab_write_gguf(const qai_vocab_desc *d, const char *path);

#ifdef __cplusplus
}
#endif
#endif
