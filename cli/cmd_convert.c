/* qai convert — import a model from another format into GGUF. */
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "qai/convert.h"

static const char *usage_text =
    "usage: qai convert [--from llama2c] --tokenizer TOKENIZER.bin MODEL.bin -o OUT.gguf\n"
    "       qai convert [--from llama2c] --vocab-only --tokenizer TOKENIZER.bin -o OUT.gguf\n"
    "\n"
    "Imports a model into a GGUF v3 file that qai and llama.cpp load.\n"
    "\n"
    "  --from FORMAT       source format; only 'llama2c' so far (the default): a\n"
    "                      karpathy/llama2.c checkpoint (run.c legacy format) and its\n"
    "                      tokenizer.bin; tensors are written as F32 under llama.cpp's\n"
    "                      'llama' architecture names\n"
    "  --tokenizer FILE    the llama2.c tokenizer.bin (its token count must equal the\n"
    "                      checkpoint's vocab_size)\n"
    "  --vocab-only        write only the vocabulary (tokenizer.ggml.* keys, no tensors)\n"
    "  -o, --output FILE   the GGUF to write (written atomically: a temporary file is\n"
    "                      renamed into place, so a failed run leaves no partial file)\n"
    "  -h, --help          show this help\n"
    "\n"
    "examples:\n"
    "  qai convert --from llama2c --tokenizer tok512.bin stories260K.bin -o stories260K.gguf\n"
    "  qai convert --vocab-only --tokenizer tok512.bin -o tok512.gguf\n"
    "\n"
    "exit codes: 0 ok, 1 conversion failed, 2 bad usage\n";

static bool is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int cmd_convert(int argc, char **argv) {
    const char *from = "llama2c", *tokenizer = NULL, *output = NULL, *model = NULL;
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
        else if (cli_flag(argv[i], NULL, "--vocab-only")) vocab_only = true;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("convert", "unknown option '%s'", argv[i]);
        else if (!model) model = argv[i];
        else return cli_usage_error("convert", "more than one model file ('%s' and '%s')", model, argv[i]);
        if (cli_missing_value) return cli_usage_error("convert", "'%s' needs a value", cli_missing_value);
    }
    if (strcmp(from, "llama2c") != 0)
        return cli_usage_error("convert", "unknown source format '%s' for --from (supported: llama2c)", from);
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
