/* qai tokenize — text to token ids with a model's vocabulary, and back. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qai/gguf.h"
#include "qai/tokenizer.h"

static const char *usage_text =
    "usage: qai tokenize -m MODEL [--raw] [--ids | --json] [--stdin | TEXT...]\n"
    "       qai tokenize -m MODEL --detokenize [--special] [--stdin | ID...]\n"
    "\n"
    "Encodes TEXT (several arguments are joined with spaces) with the model's\n"
    "vocabulary and prints one line per token: the id, a tab, and the piece it\n"
    "stands for, with control bytes escaped (\\n, \\t, \\xNN) so they are visible.\n"
    "MODEL is a GGUF file (a vocabulary-only one is enough) or a llama2.c\n"
    "tokenizer.bin. By default BOS/EOS are added as the vocabulary asks and text\n"
    "such as \"<s>\" or \"<|im_start|>\" becomes its special token.\n"
    "\n"
    "  -m, --model FILE  the vocabulary: MODEL.gguf or tokenizer.bin (llama2.c)\n"
    "  --raw             add no BOS/EOS and treat special-token text as plain text\n"
    "  --ids             print only the ids, space-separated on one line\n"
    "  --json            print {\"ids\": [...], \"pieces\": [...]} (pieces as JSON strings;\n"
    "                    bytes that are not valid UTF-8 become \\u00NN escapes of the byte)\n"
    "  --stdin           read the text (or, with --detokenize, the ids) from standard\n"
    "                    input, byte for byte\n"
    "  --detokenize      the reverse: ids (arguments or stdin, separated by spaces,\n"
    "                    commas or newlines) to text; control tokens (BOS, EOS, ...)\n"
    "                    are left out and the SentencePiece leading space is dropped,\n"
    "                    so tokenize --ids followed by --detokenize gives the text back\n"
    "  --special         with --detokenize: print control tokens as their text\n"
    "  -h, --help        show this help\n"
    "\n"
    "examples:\n"
    "  qai tokenize -m tok512.gguf \"Once upon a time\"\n"
    "  qai tokenize -m tok512.gguf --ids --raw \"Hello\"\n"
    "  printf 'two\\nlines' | qai tokenize -m tok512.gguf --stdin\n"
    "  qai tokenize -m tok512.gguf --detokenize 1 403 407 261 378\n"
    "\n"
    "exit codes: 0 ok, 1 the model cannot be read or an id is out of range, 2 bad usage\n";

/* A piece for a terminal: printable text and valid UTF-8 as they are, the rest escaped. */
static void print_escaped(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '\\') fputs("\\\\", stdout), i++;
        else if (c == '\n') fputs("\\n", stdout), i++;
        else if (c == '\t') fputs("\\t", stdout), i++;
        else if (c == '\r') fputs("\\r", stdout), i++;
        else if (c < 0x20 || c == 0x7F) printf("\\x%02x", c), i++;
        else {
            size_t len = cli_utf8_seq(p + i, n - i); /* valid UTF-8 as it is, anything else escaped */
            if (len) fwrite(p + i, 1, len, stdout), i += len;
            else printf("\\x%02x", c), i++;
        }
    }
}

/* Loads a vocabulary from a GGUF file or, if the file is not GGUF, a llama2.c tokenizer.bin. */
static qai_status load_tokenizer(const char *path, qai_tokenizer **tok) {
    FILE *f = fopen(path, "rb");
    if (!f) return qai_error(QAI_ERR_IO, "cannot open model '%s': %s", path, strerror(errno));
    char magic[4] = {0};
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && !memcmp(magic, "GGUF", 4)) {
        qai_gguf *g;
        qai_status st = qai_gguf_open(path, &g);
        if (st) return st;
        st = qai_tokenizer_from_gguf(g, tok);
        qai_gguf_close(g);
        return st;
    }
    qai_vocab_desc d;
    qai_status st = qai_vocab_read_llama2c(path, &d);
    if (st) return qai_error_wrap(st, "'%s' is not a GGUF file; as a llama2.c tokenizer.bin", path);
    st = qai_tokenizer_new(&d, tok);
    qai_vocab_release(&d);
    return st;
}

static int detokenize(const qai_tokenizer *tok, const char *text, bool from_args, bool special) {
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX ||
            (*end && *end != ' ' && *end != ',' && *end != '\n' && *end != '\t' && *end != '\r')) {
            int len = 0;
            while (p[len] && p[len] != ' ' && p[len] != ',' && p[len] != '\n' && len < 40) len++;
            free(ids);
            if (from_args) return cli_usage_error("tokenize", "'%.*s' is not a token id", len, p);
            return cli_fail("tokenize", "stdin: '%.*s' at byte %zu is not a token id", len, p, (size_t)(p - text));
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            int32_t *nv = realloc(ids, cap * sizeof *ids);
            if (!nv) {
                free(ids);
                return cli_fail("tokenize", "out of memory");
            }
            ids = nv;
        }
        ids[n++] = (int32_t)v;
        p = end;
    }
    char *out;
    size_t len;
    qai_status st = qai_tokenizer_decode(tok, ids, n, QAI_DETOK_STRIP_SPACE | (special ? QAI_DETOK_SPECIAL : 0), &out, &len);
    free(ids);
    if (st) return cli_fail_last("tokenize");
    fwrite(out, 1, len, stdout);
    qai_free(out);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL;
    bool raw = false, ids_only = false, json = false, use_stdin = false, detok = false, special = false;
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int n_pos = 0;
    if (!pos) return cli_fail("tokenize", "out of memory");
    bool opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (opts_done || argv[i][0] != '-' || !argv[i][1]) {
            pos[n_pos++] = argv[i];
            continue;
        }
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage_text, stdout);
            free(pos);
            return 0;
        } else if (!strcmp(argv[i], "--")) opts_done = true;
        else if (cli_value(argc, argv, &i, "-m", "--model", &v)) {
            if (!v) {
                free(pos);
                return cli_usage_error("tokenize", "%s needs a value", cli_missing_value);
            }
            model = v;
        } else if (cli_flag(argv[i], NULL, "--raw")) raw = true;
        else if (cli_flag(argv[i], NULL, "--ids")) ids_only = true;
        else if (cli_flag(argv[i], NULL, "--json")) json = true;
        else if (cli_flag(argv[i], NULL, "--stdin")) use_stdin = true;
        else if (cli_flag(argv[i], NULL, "--detokenize")) detok = true;
        else if (cli_flag(argv[i], NULL, "--special")) special = true;
        else if (detok && argv[i][0] == '-' && argv[i][1] >= '0' && argv[i][1] <= '9') pos[n_pos++] = argv[i];
        else {
            free(pos);
            return cli_usage_error("tokenize", "unknown option '%s'", argv[i]);
        }
    }
    int rc = 2;
    if (!model) {
        rc = cli_usage_error("tokenize", "-m MODEL is required");
        goto done_pos;
    }
    if (use_stdin && n_pos) {
        rc = cli_usage_error("tokenize", "give the input either as arguments or with --stdin, not both");
        goto done_pos;
    }
    if (!use_stdin && !n_pos && !detok) {
        rc = cli_usage_error("tokenize", "no text: give TEXT or --stdin");
        goto done_pos;
    }
    if (ids_only && json) {
        rc = cli_usage_error("tokenize", "--ids and --json exclude each other");
        goto done_pos;
    }
    if (special && !detok) {
        rc = cli_usage_error("tokenize", "--special goes with --detokenize");
        goto done_pos;
    }

    /* the input, as bytes */
    char *text = NULL;
    size_t len = 0;
    if (use_stdin || (detok && !n_pos)) {
        if (qai_stream_read(stdin, "stdin", &text, &len)) {
            rc = cli_fail_last("tokenize");
            goto done_pos;
        }
    } else {
        size_t total = 1;
        for (int i = 0; i < n_pos; i++) total += strlen(pos[i]) + 1;
        text = qai_malloc(total);
        if (!text) {
            rc = cli_fail("tokenize", "out of memory");
            goto done_pos;
        }
        for (int i = 0; i < n_pos; i++) {
            if (i) text[len++] = ' ';
            memcpy(text + len, pos[i], strlen(pos[i]));
            len += strlen(pos[i]);
        }
        text[len] = 0;
    }

    qai_tokenizer *tok = NULL;
    if (load_tokenizer(model, &tok)) {
        rc = cli_fail_last("tokenize");
        goto done_text;
    }
    if (detok) {
        if (memchr(text, 0, len)) rc = cli_fail("tokenize", "stdin: a NUL byte where token ids were expected");
        else rc = detokenize(tok, text, !use_stdin && n_pos, special);
        goto done_tok;
    }
    int32_t *ids;
    size_t n;
    int flags = raw ? 0 : QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL;
    if (qai_tokenizer_encode(tok, text, len, flags, &ids, &n)) {
        rc = cli_fail_last("tokenize");
        goto done_tok;
    }
    char small[256];
    if (ids_only) {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    } else {
        if (json) fputs("{\"ids\": [", stdout);
        for (size_t i = 0; json && i < n; i++) printf(i ? ", %d" : "%d", ids[i]);
        if (json) fputs("], \"pieces\": [", stdout);
        for (size_t i = 0; i < n; i++) {
            size_t pl = qai_tokenizer_piece(tok, ids[i], QAI_DETOK_SPECIAL, small, sizeof small);
            char *piece = small;
            if (pl > sizeof small) {
                piece = malloc(pl);
                if (piece) qai_tokenizer_piece(tok, ids[i], QAI_DETOK_SPECIAL, piece, pl);
                else piece = small, pl = sizeof small;
            }
            if (json) {
                if (i) fputs(", ", stdout);
                cli_json_string(stdout, piece, pl, true);
            } else {
                printf("%d\t", ids[i]);
                print_escaped(piece, pl);
                putchar('\n');
            }
            if (piece != small) free(piece);
        }
        if (json) fputs("]}\n", stdout);
    }
    qai_free(ids);
    rc = 0;
    if (fflush(stdout) != 0) rc = cli_fail("tokenize", "cannot write the output: %s", strerror(errno));
done_tok:
    qai_tokenizer_free(tok);
done_text:
    qai_free(text);
done_pos:
    free(pos);
    return rc;
}
