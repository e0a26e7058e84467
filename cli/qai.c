/* The qai command: one table of subcommands, each in cli/cmd_<name>.c. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "qai/base.h"

/* Weak so the table can name a command whose file is not built in yet. */
#define QAI_COMMANDS(X)                                                                                                \
    X(run, "generate text from a prompt")                                                                              \
    X(chat, "interactive chat using the model's chat template")                                                        \
    X(inspect, "show a GGUF file's metadata and tensors")                                                              \
    X(tokenize, "text to token ids and back")                                                                          \
    X(convert, "import a model from another format into GGUF")                                                         \
    X(quantize, "quantize a GGUF model (q8_0, q4_0, q4_k, q6_k, q4_k_m)")                                              \
    X(perplexity, "perplexity of a model over a text")                                                                 \
    X(bench, "prompt-processing and generation speed")                                                                 \
    X(init, "create a model with random weights of any shape")                                                         \
    X(tokenizer, "train a tokenizer from text files")                                                                  \
    X(data, "prepare token shards for training")                                                                       \
    X(train, "train a model from scratch or continue one")                                                             \
    X(serve, "OpenAI-compatible HTTP server")                                                                          \
    X(keygen, "create a signing identity (Ed25519 + ML-DSA-65)")                                                       \
    X(keys, "API keys and signing keys: create, list, export-public, revoke")                                          \
    X(bundle, "pack a model and its records into one signed-able file")                                                \
    X(sign, "sign a bundle")                                                                                           \
    X(verify, "verify a bundle's members and signatures")                                                              \
    X(registry, "push, list, show, promote and roll back model versions")                                              \
    X(lineage, "where a model version came from: run, datasets, source files")                                         \
    X(export, "copy bundles, public keys and revocations to a folder for air-gapped transfer")                         \
    X(import, "verify and add an export folder's bundles, keys and revocations")                                       \
    X(audit, "verify or tail the audit chain")                                                                         \
    X(ingest, "documents into a versioned dataset and search index")                                                   \
    X(embed, "sentence embeddings from a GGUF model")                                                                  \
    X(search, "search an index (BM25, dense or hybrid)")                                                               \
    X(rag, "answer a question from an index, with citations")

#define DECLARE(name, help) int cmd_##name(int argc, char **argv) __attribute__((weak));
QAI_COMMANDS(DECLARE)

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

#define ENTRY(name, help) {#name, cmd_##name, help},
static const command commands[] = {QAI_COMMANDS(ENTRY)};

static void usage(FILE *f) {
    fprintf(f, "usage: qai <command> [options]   (qai <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].fn) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\nversion %s — docs in docs/<command>.md\n", QAI_VERSION_STRING);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("qai %s\n", QAI_VERSION_STRING);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].fn && !strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "qai: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
