/* qai convert — import a model from another format into GGUF. */
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "qai/convert.h"

static const char *usage_text =
    "usage: qai convert [--from llama2c] --tokenizer TOKENIZER.bin MODEL.bin -o OUT.gguf\n"
    "       qai convert [--from llama2c] --vocab-only --tokenizer TOKENIZER.bin -o OUT.gguf\n"
    "       qai convert --from hf-tokenizer --vocab-only TOKENIZER.json [--config CONFIG.json]\n"
    "                   [--pre NAME] -o OUT.gguf\n"
    "\n"
    "Imports a model or a vocabulary into a GGUF v3 file that qai and llama.cpp load.\n"
    "\n"
    "  --from FORMAT       source format:\n"
    "                        llama2c (the default): a karpathy/llama2.c checkpoint (run.c\n"
    "                        legacy format) and its tokenizer.bin; tensors are written as\n"
    "                        F32 under llama.cpp's 'llama' architecture names\n"
    "                        hf-tokenizer: a Hugging Face tokenizer.json (byte-level BPE\n"
    "                        such as Llama 3, Qwen or GPT-2; SentencePiece-style BPE with\n"
    "                        byte fallback; WordPiece), written with the tokenizer.ggml.*\n"
    "                        keys llama.cpp's convert_hf_to_gguf.py writes (needs\n"
    "                        --vocab-only)\n"
    "  --tokenizer FILE    the llama2.c tokenizer.bin (its token count must equal the\n"
    "                      checkpoint's vocab_size)\n"
    "  --config FILE       hf-tokenizer: the tokenizer_config.json giving BOS/EOS/PAD,\n"
    "                      add_bos_token/add_eos_token and the chat template (default:\n"
    "                      tokenizer_config.json beside TOKENIZER.json, if there is one)\n"
    "  --pre NAME          hf-tokenizer: the tokenizer.ggml.pre to write instead of the one\n"
    "                      recognised from the pre-tokenizer regex (llama3 → llama-bpe,\n"
    "                      qwen2, gpt2 → gpt-2, Digits+ByteLevel → smollm); required when\n"
    "                      the regex is not one qai knows\n"
    "  --vocab-only        write only the vocabulary (tokenizer.ggml.* keys, no tensors)\n"
    "  -o, --output FILE   the GGUF to write (written atomically: a temporary file is\n"
    "                      renamed into place, so a failed run leaves no partial file)\n"
    "  -h, --help          show this help\n"
    "\n"
    "examples:\n"
    "  qai convert --from llama2c --tokenizer tok512.bin stories260K.bin -o stories260K.gguf\n"
    "  qai convert --vocab-only --tokenizer tok512.bin -o tok512.gguf\n"
    "  qai convert --from hf-tokenizer --vocab-only Meta-Llama-3-8B/tokenizer.json -o llama3-vocab.gguf\n"
    "\n"
    "exit codes: 0 ok, 1 conversion failed, 2 bad usage\n";

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* --from hf-tokenizer: the tokenizer.json is the positional argument. */
static int convert_hf(const char *json, const char *tokenizer, const char *config, const char *pre, const char *output,
                      bool vocab_only) {
    if (tokenizer) return cli_usage_error("convert", "--tokenizer is for llama2c; give the tokenizer.json as the argument");
    if (!json) return cli_usage_error("convert", "no tokenizer.json given");
    if (!vocab_only)
        return cli_usage_error("convert", "--from hf-tokenizer converts a vocabulary only: add --vocab-only");
    if (!output) return cli_usage_error("convert", "-o OUT.gguf is required");
    if (!is_file(json)) return cli_fail("convert", "tokenizer '%s' does not exist or is not a file", json);
    char beside[4096];
    if (!config) { /* Hugging Face's layout: tokenizer_config.json sits next to tokenizer.json */
        const char *slash = strrchr(json, '/');
        int dl = slash ? (int)(slash - json + 1) : 0;
        snprintf(beside, sizeof beside, "%.*stokenizer_config.json", dl, json);
        if (is_file(beside)) config = beside;
    } else if (!is_file(config)) {
        return cli_fail("convert", "config '%s' does not exist or is not a file", config);
    }
    if (qai_convert_hf_tokenizer(json, config, pre, output)) return cli_fail_last("convert");
    fprintf(stderr, "qai: convert: wrote '%s'%s%s%s\n", output, config ? " (with '" : "", config ? config : "",
            config ? "')" : "");
    return 0;
}

int cmd_convert(int argc, char **argv) {
    const char *from = "llama2c", *tokenizer = NULL, *output = NULL, *model = NULL, *config = NULL, *pre = NULL;
    bool vocab_only = false;
    cli_missing_value = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_value(argc, argv, &i, NULL, "--from", &v)) from = v;
        else if (cli_value(argc, argv, &i, NULL, "--tokenizer", &v)) tokenizer = v;
        else if (cli_value(argc, argv, &i, "-o", "--output", &v)) output = v;
        else if (cli_value(argc, argv, &i, NULL, "--config", &v)) config = v;
        else if (cli_value(argc, argv, &i, NULL, "--pre", &v)) pre = v;
        else if (cli_flag(argv[i], NULL, "--vocab-only")) vocab_only = true;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("convert", "unknown option '%s'", argv[i]);
        else if (!model) model = argv[i];
        else return cli_usage_error("convert", "more than one model file ('%s' and '%s')", model, argv[i]);
        if (cli_missing_value) return cli_usage_error("convert", "'%s' needs a value", cli_missing_value);
    }
    if (!strcmp(from, "hf-tokenizer")) return convert_hf(model, tokenizer, config, pre, output, vocab_only);
    if (strcmp(from, "llama2c") != 0)
        return cli_usage_error("convert", "unknown source format '%s' for --from (supported: llama2c, hf-tokenizer)", from);
    if (config || pre) return cli_usage_error("convert", "--config and --pre apply to --from hf-tokenizer only");
    if (!tokenizer) return cli_usage_error("convert", "--tokenizer TOKENIZER.bin is required");
    if (!output) return cli_usage_error("convert", "-o OUT.gguf is required");
    if (vocab_only && model)
        return cli_usage_error("convert", "--vocab-only takes no model file (got '%s')", model);
    if (!vocab_only && !model) return cli_usage_error("convert", "no model file given (MODEL.bin)");
    if (!is_file(tokenizer)) return cli_fail("convert", "tokenizer '%s' does not exist or is not a file", tokenizer);
    if (model && !is_file(model)) return cli_fail("convert", "model '%s' does not exist or is not a file", model);

    qai_status st = vocab_only ? qai_convert_llama2c_vocab(tokenizer, output)
                               : qai_convert_llama2c(model, tokenizer, output);
    if (st) return cli_fail_last("convert");
    fprintf(stderr, "qai: convert: wrote '%s'\n", output);
    return 0;
}
