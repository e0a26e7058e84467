/*
 * train_gguf.c — a vocabulary description written as a vocab-only GGUF file
 * (no tensors), in the keys gguf_vocab.c and llama.cpp read.
 *
 * What it does not do: model hyperparameters — a trained model's GGUF gets
 * them from the trainer, which copies these tokenizer keys.
 */
#include <string.h>

#include "qai/gguf.h"
#include "qai/tokenizer_train.h"

qai_status qai_vocab_write_gguf(const qai_vocab_desc *d, const char *path) {
    if (!d || !path) return qai_error(QAI_ERR_ARG, "qai_vocab_write_gguf: vocabulary and path must not be NULL");
    if (d->n_tokens <= 0 || !d->tokens) return qai_error(QAI_ERR_ARG, "qai_vocab_write_gguf: the vocabulary is empty");
    if (d->kind != QAI_VOCAB_SPM && d->kind != QAI_VOCAB_BPE)
        return qai_error(QAI_ERR_ARG, "qai_vocab_write_gguf: unknown vocabulary kind %d", (int)d->kind);
    qai_gguf_writer *w = qai_gguf_writer_new();
    if (!w) return qai_error(QAI_ERR_NOMEM, "out of memory");
    bool spm = d->kind == QAI_VOCAB_SPM;
    int32_t *types = NULL;
    qai_status st = QAI_OK;
#define TRY(x)                                                                                                         \
    do {                                                                                                               \
        if (!st) st = (x);                                                                                             \
    } while (0)
    TRY(qai_gguf_set_str(w, "general.architecture", "llama"));
    TRY(qai_gguf_set_str(w, "general.name", spm ? "qai-trained-bpe" : "qai-trained-bytebpe"));
    TRY(qai_gguf_set_u32(w, "llama.vocab_size", (uint32_t)d->n_tokens));
    TRY(qai_gguf_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2"));
    TRY(qai_gguf_set_str(w, "tokenizer.ggml.pre", spm ? "default" : (d->pre ? d->pre : "gpt-2")));
    TRY(qai_gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)d->tokens, d->token_lens,
                             (uint64_t)d->n_tokens));
    if (spm && d->scores)
        TRY(qai_gguf_set_arr_data(w, "tokenizer.ggml.scores", QAI_GGUF_FLOAT32, d->scores, (uint64_t)d->n_tokens));
    if (!st) {
        types = qai_malloc((size_t)d->n_tokens * sizeof *types);
        if (!types) st = qai_error(QAI_ERR_NOMEM, "out of memory");
        for (int32_t i = 0; types && i < d->n_tokens; i++) types[i] = d->types ? d->types[i] : QAI_TOKEN_NORMAL;
    }
    TRY(qai_gguf_set_arr_data(w, "tokenizer.ggml.token_type", QAI_GGUF_INT32, types, (uint64_t)d->n_tokens));
    if (!spm) TRY(qai_gguf_set_arr_str(w, "tokenizer.ggml.merges", d->merges, NULL, (uint64_t)d->n_merges));
    if (d->bos >= 0) TRY(qai_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)d->bos));
    if (d->eos >= 0) TRY(qai_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)d->eos));
    if (d->unk >= 0) TRY(qai_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)d->unk));
    if (d->pad >= 0) TRY(qai_gguf_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)d->pad));
    TRY(qai_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", d->add_bos));
    TRY(qai_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", d->add_eos));
    if (spm) TRY(qai_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", d->add_space_prefix));
    TRY(qai_gguf_writer_write(w, path));
#undef TRY
    qai_free(types);
    qai_gguf_writer_free(w);
    return st;
}
