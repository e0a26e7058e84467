/* qai chat — an interactive chat on a terminal using the model's chat template.
 * Each turn renders the whole conversation, and only the tokens after the part
 * already in the KV cache are evaluated. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "gen_common.h"

static const char *usage =
    "usage: qai chat -m MODEL.gguf [--template NAME] [--system TEXT] [options]\n"
    "\n"
    "Interactive chat: type a message and press Enter; the answer streams back.\n"
    "Commands: /reset (new conversation), /exit or Ctrl-D (quit); Ctrl-C stops an\n"
    "answer while it streams. Standard input may also be a pipe: one message per line.\n"
    "\n"
    "The chat format comes from the model's tokenizer.chat_template; when the model\n"
    "has none or an unrecognized one, pick a format with --template:\n"
    "  llama2, llama3, chatml (also Qwen), zephyr (also TinyLlama), phi3, gemma\n"
    "\n"
    "  --template NAME   chat format (overrides the model's)\n"
    "  --system TEXT     system prompt\n"
    "%s"
    "\n"
    "example: qai chat -m tinyllama-1.1b-chat.Q4_K_M.gguf --system 'You are terse.'\n";

typedef struct {
    char *buf;
    size_t len, cap;
    int32_t *toks;
    int n_toks, cap_toks;
} reply;

/* Ctrl-C while an answer streams stops that answer; at the prompt it quits. */
static volatile sig_atomic_t g_interrupted;

static void on_sigint(int sig) {
    (void)sig;
    g_interrupted = 1;
}

static bool on_token(void *user, int32_t token, const char *piece, size_t len) {
    reply *r = user;
    if (g_interrupted) return false;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    if (r->len + len + 1 > r->cap) {
        size_t nc = (r->cap + len + 1) * 2;
        char *nb = qai_realloc(r->buf, nc);
        if (!nb) return false;
        r->buf = nb;
        r->cap = nc;
    }
    memcpy(r->buf + r->len, piece, len);
    r->len += len;
    r->buf[r->len] = 0;
    if (r->n_toks == r->cap_toks) {
        int nc = r->cap_toks ? r->cap_toks * 2 : 256;
        int32_t *nt = qai_realloc(r->toks, (size_t)nc * sizeof(int32_t));
        if (!nt) return false;
        r->toks = nt;
        r->cap_toks = nc;
    }
    r->toks[r->n_toks++] = token;
    return true;
}

int cmd_chat(int argc, char **argv) {
    gen_opts o;
    gen_opts_init(&o, -1);
    const char *tmpl_name = NULL, *system = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = gen_opts_parse("chat", &o, argc, argv, &i);
        if (r == 2) return 2;
        if (r == 1) continue;
        if (cli_flag(argv[i], "-h", "--help")) {
            printf(usage, gen_opts_help);
            return 0;
        } else if (cli_value(argc, argv, &i, NULL, "--template", &v)) {
            if (!v) return cli_usage_error("chat", "--template needs a name");
            tmpl_name = v;
        } else if (cli_value(argc, argv, &i, NULL, "--system", &v)) {
            if (!v) return cli_usage_error("chat", "--system needs a text");
            system = v;
        } else return cli_usage_error("chat", "unknown option '%s'", argv[i]);
    }
    if (!o.model) return cli_usage_error("chat", "no model given (-m MODEL.gguf)");
    qai_chat_format fmt = QAI_CHAT_UNKNOWN;
    if (tmpl_name) {
        fmt = qai_chat_format_from_name(tmpl_name);
        if (fmt == QAI_CHAT_UNKNOWN)
            return cli_usage_error("chat", "unknown template '%s' (llama2, llama3, chatml, zephyr, phi3, gemma)",
                                   tmpl_name);
    }
    qai_model *m;
    qai_context *ctx;
    if (gen_open("chat", &o, &m, &ctx)) return 1;
    int rc = 0;
    if (fmt == QAI_CHAT_UNKNOWN) {
        const char *jinja = NULL;
        qai_gguf_get_str(qai_model_gguf(m), "tokenizer.chat_template", &jinja);
        fmt = qai_chat_detect(jinja);
        if (fmt == QAI_CHAT_UNKNOWN) {
            rc = cli_fail("chat",
                          "'%s' %s; pick a format with --template llama2|llama3|chatml|zephyr|phi3|gemma", o.model,
                          jinja ? "has a chat template qai does not recognize" : "has no chat template");
            qai_context_free(ctx);
            qai_model_close(m);
            return rc;
        }
    }
    const qai_tokenizer *tok = qai_model_tokenizer(m);
    bool tty = isatty(0) && isatty(1);
    if (tty)
        fprintf(stderr, "qai: chatting with '%s' (%s format); /reset starts over, /exit or Ctrl-D quits\n", o.model,
                qai_chat_format_name(fmt));
    qai_chat_message *msgs = NULL;
    size_t n_msgs = 0, cap_msgs = 0;
    int32_t *cached = NULL; /* tokens now in the KV cache */
    int n_cached = 0;
    char line[65536];
#define PUSH(role_, content_)                                                                                          \
    do {                                                                                                               \
        if (n_msgs == cap_msgs) {                                                                                      \
            cap_msgs = cap_msgs ? cap_msgs * 2 : 16;                                                                   \
            msgs = qai_realloc(msgs, cap_msgs * sizeof *msgs);                                                         \
        }                                                                                                              \
        msgs[n_msgs].role = role_;                                                                                     \
        msgs[n_msgs].content = qai_strdup(content_);                                                                   \
        n_msgs++;                                                                                                      \
    } while (0)
    if (system) PUSH("system", system);
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C at the prompt ends fgets */
    sigaction(SIGINT, &sa, NULL);
    for (;;) {
        if (tty) fputs("\n> ", stdout), fflush(stdout);
        g_interrupted = 0;
        if (!fgets(line, sizeof line, stdin)) break;
        size_t ll = strlen(line);
        while (ll && (line[ll - 1] == '\n' || line[ll - 1] == '\r')) line[--ll] = 0;
        if (!ll) continue;
        if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
        if (!strcmp(line, "/reset")) {
            for (size_t k = system ? 1 : 0; k < n_msgs; k++) qai_free((char *)msgs[k].content);
            n_msgs = system ? 1 : 0;
            n_cached = 0;
            fprintf(stderr, "qai: chat: conversation reset\n");
            continue;
        }
        PUSH("user", line);
        char *text = NULL;
        int32_t *ids = NULL;
        size_t n_ids = 0;
        if (qai_chat_apply(fmt, msgs, n_msgs, true, &text) ||
            qai_tokenizer_encode(tok, text, strlen(text), QAI_TOK_ADD_SPECIAL | QAI_TOK_PARSE_SPECIAL, &ids,
                                 &n_ids)) {
            rc = cli_fail_last("chat");
            qai_free(text);
            break;
        }
        qai_free(text);
        int common = 0;
        while (common < n_cached && (size_t)common < n_ids && cached[common] == ids[common]) common++;
        reply r = {0};
        qai_generate_params gp = {.n_predict = o.n_predict, .n_cached = common, .sampling = o.sp};
        qai_generate_stats gs;
        qai_status st = qai_generate(ctx, 0, ids, (int)n_ids, &gp, on_token, &r, &gs);
        if (g_interrupted) fprintf(stderr, "\nqai: chat: answer interrupted");
        fputc('\n', stdout);
        fflush(stdout);
        if (st) {
            cli_fail_last("chat");
            if (st == QAI_ERR_RANGE) fprintf(stderr, "qai: chat: the conversation is too long; /reset to start over\n");
            n_msgs--;
            qai_free((char *)msgs[n_msgs].content);
            qai_free(ids);
            qai_free(r.buf);
            qai_free(r.toks);
            n_cached = 0;
            continue;
        }
        if (gs.stop == QAI_STOP_CONTEXT) fprintf(stderr, "qai: chat: the context is full; /reset to start over\n");
        /* the cache now holds the prompt and the generated tokens (all but the last, which was never decoded) */
        int32_t *nc = qai_realloc(cached, (n_ids + (size_t)r.n_toks + 1) * sizeof(int32_t));
        if (nc) {
            cached = nc;
            memcpy(cached, ids, n_ids * sizeof(int32_t));
            if (r.n_toks > 0) memcpy(cached + n_ids, r.toks, (size_t)(r.n_toks - 1) * sizeof(int32_t));
            n_cached = (int)n_ids + (r.n_toks > 0 ? r.n_toks - 1 : 0);
        } else n_cached = 0;
        PUSH("assistant", r.buf ? r.buf : "");
        qai_free(ids);
        qai_free(r.buf);
        qai_free(r.toks);
    }
#undef PUSH
    for (size_t k = 0; k < n_msgs; k++) qai_free((char *)msgs[k].content);
    qai_free(msgs);
    qai_free(cached);
    qai_context_free(ctx);
    qai_model_close(m);
    return rc;
}
