/* libFuzzer harness for the contrastive pair reader (qai_pairs_parse, JSONL
 * of {"query","positive"} pairs, with "negative"s, and {"doc","text","section"}
 * chunks) and the pair sampler: on a successful parse, batches are cut from
 * both splits with a small BPE tokenizer trained once in memory. Any crash, overread or
 * sanitizer report is a bug; rejections must leave a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qai/tokenizer_train.h"
#include "qai/train.h"

static volatile uint64_t sink;
static qai_tokenizer *tok;

static void init_tokenizer(void) {
    static const char text[] = "the quick brown fox jumps over the lazy dog. NAME SYNOPSIS DESCRIPTION options\n";
    const char *texts[] = {text};
    size_t lens[] = {sizeof text - 1};
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    o.vocab_size = 300;
    o.n_threads = 1;
    qai_vocab_desc d;
    if (qai_tokenizer_train(texts, lens, 1, &o, &d, NULL) == QAI_OK) {
        if (qai_tokenizer_new(&d, &tok) != QAI_OK) tok = NULL;
        qai_vocab_release(&d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok) init_tokenizer();
    qai_pairs *p = NULL;
    if (qai_pairs_parse((const char *)data, size, "fuzz.jsonl", 0.3, &p) != QAI_OK) {
        sink += strlen(qai_last_error());
        return 0;
    }
    sink += (uint64_t)qai_pairs_n_units(p, 0) + (uint64_t)qai_pairs_n_units(p, 1) + (uint8_t)qai_pairs_sha256(p)[0];
    qai_rng rng;
    qai_rng_seed(&rng, size);
    for (int split = 0; split < 2 && tok; split++) {
        int n = qai_pairs_n_units(p, split);
        int B = n < 4 ? n : 4;
        if (B < 1) continue;
        qai_pair_batch pb;
        if (qai_pairs_sample(p, tok, &rng, split, B, 8, 16, &pb) == QAI_OK) {
            for (int b = 0; b < pb.B; b++) {
                if (pb.qlen[b] < 1 || pb.qlen[b] > 8 || pb.dlen[b] < 1 || pb.dlen[b] > 16) abort();
                sink += (uint64_t)pb.q[(size_t)b * pb.Tq] + (uint64_t)pb.d[(size_t)b * pb.Td];
            }
            if (pb.Bn < 0 || pb.Bn > pb.B) abort();
            for (int b = 0; b < pb.Bn; b++) {
                if (pb.nlen[b] < 1 || pb.nlen[b] > 16) abort();
                sink += (uint64_t)pb.n[(size_t)b * pb.Td];
            }
            qai_pair_batch_release(&pb);
        } else {
            sink += strlen(qai_last_error());
        }
    }
    qai_pairs_free(p);
    return 0;
}
