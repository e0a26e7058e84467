/* qai run — generate text from a prompt, streaming tokens to stdout. */
#include <stdlib.h>
#include <string.h>

#include "gen_common.h"
#include "qai/bundle.h"

static const char *usage =
    "usage: qai run -m MODEL.gguf -p PROMPT [options]\n"
    "\n"
    "Prints the prompt, then streams up to N generated tokens to stdout, stopping\n"
    "at end of text. --temp 0 is greedy decoding.\n"
    "\n"
    "  -p, --prompt TEXT        the prompt\n"
    "  -f, --file FILE          read the prompt from a file (- for stdin)\n"
    "      --no-bos             do not add the BOS token the vocabulary asks for\n"
    "      --special            parse special-token text (e.g. <|im_start|>) in the prompt\n"
    "      --no-echo            do not print the prompt\n"
    "  -v, --verbose            print seed and speed to stderr\n"
    "      --require-signed     with -m BUNDLE.qai: refuse a bundle without a valid\n"
    "                           signature by a trusted key (see qai verify)\n"
    "%s"
    "\n"
    "example: qai run -m stories260K.gguf -p 'Once upon a time' -n 64 --temp 0\n";

static bool on_token(void *user, int32_t token, const char *piece, size_t len) {
    (void)user;
    (void)token;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

int cmd_run(int argc, char **argv) {
    gen_opts o;
    gen_opts_init(&o, 256);
    const char *prompt = NULL, *file = NULL;
    bool add_bos = true, special = false, echo = true, verbose = false, require_signed = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = gen_opts_parse("run", &o, argc, argv, &i);
        if (r == 2) return 2;
        if (r == 1) continue;
        if (cli_flag(argv[i], "-h", "--help")) {
            printf(usage, gen_opts_help);
            return 0;
        } else if (cli_value(argc, argv, &i, "-p", "--prompt", &v)) {
            if (!v) return cli_usage_error("run", "-p needs a prompt");
            prompt = v;
        } else if (cli_value(argc, argv, &i, "-f", "--file", &v)) {
            if (!v) return cli_usage_error("run", "-f needs a file");
            file = v;
        } else if (cli_flag(argv[i], NULL, "--no-bos")) add_bos = false;
        else if (cli_flag(argv[i], NULL, "--special")) special = true;
        else if (cli_flag(argv[i], NULL, "--no-echo")) echo = false;
        else if (cli_flag(argv[i], "-v", "--verbose")) verbose = true;
        else if (cli_flag(argv[i], NULL, "--require-signed")) require_signed = true;
        else return cli_usage_error("run", "unknown option '%s'", argv[i]);
    }
    if (!o.model) return cli_usage_error("run", "no model given (-m MODEL.gguf)");
    if (prompt && file) return cli_usage_error("run", "give either -p or -f, not both");
    /* a bundle: verify it and run the model inside (extracted once to the data dir's cache) */
    char bundle_model[4096];
    if (qai_bundle_path_is_bundle(o.model)) {
        qai_bundle_policy pol = {.require_signed = require_signed};
        if (qai_bundle_open_model(o.model, &pol, bundle_model, sizeof bundle_model) != QAI_OK) return cli_fail_last("run");
        o.model = bundle_model;
    } else if (require_signed)
        return cli_usage_error("run", "--require-signed goes with a bundle (-m BUNDLE.qai)");
    char *text = NULL;
    size_t text_len = 0;
    if (file) {
        qai_status st = !strcmp(file, "-") ? qai_stream_read(stdin, "stdin", &text, &text_len)
                                           : qai_file_read(file, &text, &text_len);
        if (st) return cli_fail_last("run");
    } else {
        text = qai_strdup(prompt ? prompt : "");
        text_len = strlen(text);
    }
    qai_model *m;
    qai_context *ctx;
    if (gen_open("run", &o, &m, &ctx)) {
        qai_free(text);
        return 1;
    }
    const qai_tokenizer *tok = qai_model_tokenizer(m);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int flags = (add_bos ? QAI_TOK_ADD_SPECIAL : 0) | (special ? QAI_TOK_PARSE_SPECIAL : 0);
    int rc = 0;
    if (qai_tokenizer_encode(tok, text, text_len, flags, &ids, &n_ids) != QAI_OK) {
        rc = cli_fail_last("run");
        goto out;
    }
    if (n_ids == 0) {
        rc = cli_fail("run", "the prompt is empty and the vocabulary adds no BOS token; give a prompt");
        goto out;
    }
    if (verbose) fprintf(stderr, "qai: run: seed %llu, %zu prompt tokens\n", (unsigned long long)o.sp.seed, n_ids);
    if (echo) {
        fwrite(text, 1, text_len, stdout);
        fflush(stdout);
    }
    qai_generate_params gp = {.n_predict = o.n_predict, .sampling = o.sp};
    qai_generate_stats gs;
    if (qai_generate(ctx, 0, ids, (int)n_ids, &gp, on_token, NULL, &gs) != QAI_OK) {
        fputc('\n', stdout);
        rc = cli_fail_last("run");
        goto out;
    }
    fputc('\n', stdout);
    if (gs.stop == QAI_STOP_CONTEXT) fprintf(stderr, "qai: run: stopped: the context of %d tokens is full\n", qai_context_n_ctx(ctx));
    if (verbose)
        fprintf(stderr, "qai: run: prompt %d tokens in %.1f ms (%.1f tok/s), generated %d tokens at %.1f tok/s\n",
                gs.n_prompt, gs.t_prompt_ns / 1e6, gs.n_prompt / (gs.t_prompt_ns / 1e9 + 1e-12), gs.n_gen,
                gs.n_gen / (gs.t_gen_ns / 1e9 + 1e-12));
out:
    qai_free(ids);
    qai_free(text);
    qai_context_free(ctx);
    qai_model_close(m);
    return rc;
}
