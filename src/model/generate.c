/* The generation loop shared by `qai run`, `qai chat` and the server: prompt in
 * batches, then sample → callback → decode one token at a time. */
#include <string.h>

#include "model_internal.h"

qai_status qai_generate(qai_context *c, int seq, const int32_t *prompt, int n_prompt, const qai_generate_params *p,
                        qai_token_fn fn, void *user, qai_generate_stats *stats) {
    qai_generate_stats st0 = {0};
    qai_generate_stats *s = stats ? stats : &st0;
    memset(s, 0, sizeof *s);
    if (n_prompt <= 0) return qai_error(QAI_ERR_ARG, "the prompt has no tokens");
    if (n_prompt >= c->n_ctx)
        return qai_error(QAI_ERR_RANGE, "the prompt has %d tokens, more than the context of %d allows", n_prompt,
                         c->n_ctx);
    const qai_tokenizer *tok = c->m->tok;
    const int V = c->m->info.n_vocab;
    qai_sampler *smp = qai_sampler_new(&p->sampling, V);
    if (!smp) return QAI_ERR_NOMEM;
    for (int i = 0; i < n_prompt; i++) qai_sampler_accept(smp, prompt[i]);
    int n_cached = p->n_cached > 0 ? p->n_cached : 0;
    if (n_cached >= n_prompt) n_cached = n_prompt - 1; /* re-evaluate the last token for its logits */
    qai_kv_truncate(c, seq, n_cached);
    uint64_t t0 = qai_time_ns();
    qai_status st = qai_decode_tokens(c, seq, n_cached, prompt + n_cached, n_prompt - n_cached);
    s->n_prompt = n_prompt;
    s->t_prompt_ns = qai_time_ns() - t0;
    if (st) {
        qai_sampler_free(smp);
        return st;
    }
    const float *logits = qai_context_logits(c, n_prompt - n_cached - 1);
    int pos = n_prompt;
    int32_t bos = qai_tokenizer_bos(tok);
    s->stop = QAI_STOP_LENGTH;
    t0 = qai_time_ns();
    char piece[256];
    while (p->n_predict < 0 || s->n_gen < p->n_predict) {
        int32_t t = qai_sampler_sample(smp, logits);
        if (qai_tokenizer_is_eog(tok, t) || t == bos) {
            s->stop = QAI_STOP_EOG;
            break;
        }
        qai_sampler_accept(smp, t);
        s->n_gen++;
        size_t n = qai_tokenizer_piece(tok, t, 0, piece, sizeof piece);
        if (fn && !fn(user, t, piece, n < sizeof piece ? n : sizeof piece)) {
            s->stop = QAI_STOP_CALLBACK;
            break;
        }
        if (p->n_predict >= 0 && s->n_gen >= p->n_predict) break;
        if (pos >= c->n_ctx) {
            s->stop = QAI_STOP_CONTEXT;
            break;
        }
        st = qai_decode_tokens(c, seq, pos, &t, 1);
        if (st) break;
        pos++;
        logits = qai_context_logits(c, 0);
    }
    s->t_gen_ns = qai_time_ns() - t0;
    qai_sampler_free(smp);
    return st;
}
