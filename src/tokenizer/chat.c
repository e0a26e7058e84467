/*
 * chat.c — the chat formats qai knows, recognized from a model's Jinja
 * template (tokenizer.chat_template) by its markers and rendered in C.
 *
 * Each renderer produces what the model's own template renders with
 * Hugging Face's Jinja settings (trim_blocks, lstrip_blocks), except that a
 * BOS the template writes at the very start is left out (the tokenizer adds
 * it; with QAI_TOK_PARSE_SPECIAL the later "<s>" of Llama 2 become BOS tokens):
 *
 *   llama2  meta-llama/Llama-2-*-chat: "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U2 [/INST]"
 *           (user and assistant text stripped; no generation prompt — the reply follows "[/INST]")
 *   llama3  "<|start_header_id|>R<|end_header_id|>\n\nC<|eot_id|>" (C trimmed), then the assistant header
 *   chatml  "<|im_start|>R\nC<|im_end|>\n", then "<|im_start|>assistant\n" (Qwen's default system
 *           message is not added)
 *   zephyr  HuggingFaceH4/zephyr-7b-beta, TinyLlama-Chat: "<|R|>\nC</s>\n", then "<|assistant|>\n"
 *           (roles other than system/user/assistant are skipped, as the template does)
 *   phi3    "<|R|>\nC<|end|>\n", then "<|assistant|>\n" — or "<|endoftext|>" without a generation prompt
 *   gemma   "<start_of_turn>R\nC<end_of_turn>\n" with assistant → "model", C trimmed; Gemma has no
 *           system role, so a system message goes before the first user message, followed by "\n\n"
 *           (as Gemma 3's template and llama.cpp do), then "<start_of_turn>model\n"
 *
 * What it does not do: run Jinja. A template that matches none of the markers
 * is QAI_CHAT_UNKNOWN and the caller decides (e.g. fall back to chatml).
 */
#include <string.h>

#include "qai/tokenizer.h"

static const struct {
    qai_chat_format f;
    const char *name;
    const char *end;
} FORMATS[] = {
    {QAI_CHAT_LLAMA2, "llama2", "</s>"},       {QAI_CHAT_LLAMA3, "llama3", "<|eot_id|>"},
    {QAI_CHAT_CHATML, "chatml", "<|im_end|>"}, {QAI_CHAT_ZEPHYR, "zephyr", "</s>"},
    {QAI_CHAT_PHI3, "phi3", "<|end|>"},        {QAI_CHAT_GEMMA, "gemma", "<end_of_turn>"},
};
#define N_FORMATS (sizeof FORMATS / sizeof FORMATS[0])

const char *qai_chat_format_name(qai_chat_format f) {
    for (size_t i = 0; i < N_FORMATS; i++)
        if (FORMATS[i].f == f) return FORMATS[i].name;
    return "unknown";
}

qai_chat_format qai_chat_format_from_name(const char *name) {
    if (!name) return QAI_CHAT_UNKNOWN;
    for (size_t i = 0; i < N_FORMATS; i++)
        if (!strcmp(FORMATS[i].name, name)) return FORMATS[i].f;
    if (!strcmp(name, "qwen") || !strcmp(name, "qwen2")) return QAI_CHAT_CHATML;
    if (!strcmp(name, "tinyllama")) return QAI_CHAT_ZEPHYR;
    if (!strcmp(name, "phi-3")) return QAI_CHAT_PHI3;
    return QAI_CHAT_UNKNOWN;
}

const char *qai_chat_end_marker(qai_chat_format f) {
    for (size_t i = 0; i < N_FORMATS; i++)
        if (FORMATS[i].f == f) return FORMATS[i].end;
    return "";
}

qai_chat_format qai_chat_detect(const char *t) {
    if (!t) return QAI_CHAT_UNKNOWN;
    qai_chat_format by_name = qai_chat_format_from_name(t);
    if (by_name != QAI_CHAT_UNKNOWN) return by_name;
    if (strstr(t, "<|im_start|>")) return QAI_CHAT_CHATML;
    if (strstr(t, "<|start_header_id|>")) return QAI_CHAT_LLAMA3;
    if (strstr(t, "<start_of_turn>")) return QAI_CHAT_GEMMA;
    if (strstr(t, "[INST]")) return QAI_CHAT_LLAMA2;
    if (strstr(t, "<|user|>") || strstr(t, "<|assistant|>"))
        return strstr(t, "<|end|>") ? QAI_CHAT_PHI3 : QAI_CHAT_ZEPHYR;
    return QAI_CHAT_UNKNOWN;
}

/* ---- a small string builder ---- */

typedef qai_strbuf sbuf;

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Jinja's trim / Python's str.strip() (ASCII whitespace) */
static void put_trimmed(sbuf *b, const char *s) {
    size_t n = strlen(s);
    while (n && is_space(*s)) s++, n--;
    while (n && is_space(s[n - 1])) n--;
    qai_strbuf_put(b, s, n);
}

static bool role_is(const qai_chat_message *m, const char *r) { return !strcmp(m->role, r); }

static void render_llama2(sbuf *b, const qai_chat_message *m, size_t n) {
    size_t first = 0;
    const char *sys = NULL;
    if (n && role_is(&m[0], "system")) sys = m[0].content, first = 1;
    bool first_turn = true;
    for (size_t i = first; i < n; i++) {
        bool user = role_is(&m[i], "user");
        if (!user && !role_is(&m[i], "assistant")) continue;
        /* content = ('<<SYS>>\n' + system + '\n<</SYS>>\n\n' if first) + message; then .strip() */
        sbuf c = {0};
        if (i == first && sys) {
            qai_strbuf_puts(&c, "<<SYS>>\n");
            qai_strbuf_puts(&c, sys);
            qai_strbuf_puts(&c, "\n<</SYS>>\n\n");
        }
        qai_strbuf_puts(&c, m[i].content);
        if (c.oom) {
            b->oom = true;
            qai_free(c.p);
            return;
        }
        if (user) {
            if (!first_turn) qai_strbuf_puts(b, "<s>");
            qai_strbuf_puts(b, "[INST] ");
            put_trimmed(b, c.p ? c.p : "");
            qai_strbuf_puts(b, " [/INST]");
        } else {
            qai_strbuf_puts(b, " ");
            put_trimmed(b, c.p ? c.p : "");
            qai_strbuf_puts(b, " </s>");
        }
        first_turn = false;
        qai_free(c.p);
    }
}

static void render(qai_chat_format f, sbuf *b, const qai_chat_message *m, size_t n, bool add_assistant) {
    switch (f) {
    case QAI_CHAT_LLAMA2:
        render_llama2(b, m, n);
        break;
    case QAI_CHAT_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            qai_strbuf_puts(b, "<|start_header_id|>");
            qai_strbuf_puts(b, m[i].role);
            qai_strbuf_puts(b, "<|end_header_id|>\n\n");
            put_trimmed(b, m[i].content);
            qai_strbuf_puts(b, "<|eot_id|>");
        }
        if (add_assistant) qai_strbuf_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case QAI_CHAT_CHATML:
        for (size_t i = 0; i < n; i++) {
            qai_strbuf_puts(b, "<|im_start|>");
            qai_strbuf_puts(b, m[i].role);
            qai_strbuf_puts(b, "\n");
            qai_strbuf_puts(b, m[i].content);
            qai_strbuf_puts(b, "<|im_end|>\n");
        }
        if (add_assistant) qai_strbuf_puts(b, "<|im_start|>assistant\n");
        break;
    case QAI_CHAT_ZEPHYR:
        for (size_t i = 0; i < n; i++) {
            if (role_is(&m[i], "user") || role_is(&m[i], "system") || role_is(&m[i], "assistant")) {
                qai_strbuf_puts(b, "<|");
                qai_strbuf_puts(b, m[i].role);
                qai_strbuf_puts(b, "|>\n");
                qai_strbuf_puts(b, m[i].content);
                qai_strbuf_puts(b, "</s>\n");
            }
            if (i == n - 1 && add_assistant) qai_strbuf_puts(b, "<|assistant|>\n");
        }
        break;
    case QAI_CHAT_PHI3:
        for (size_t i = 0; i < n; i++) {
            qai_strbuf_puts(b, "<|");
            qai_strbuf_puts(b, m[i].role);
            qai_strbuf_puts(b, "|>\n");
            qai_strbuf_puts(b, m[i].content);
            qai_strbuf_puts(b, "<|end|>\n");
        }
        qai_strbuf_puts(b, add_assistant ? "<|assistant|>\n" : "<|endoftext|>");
        break;
    case QAI_CHAT_GEMMA: {
        const char *sys = NULL;
        for (size_t i = 0; i < n; i++) {
            if (role_is(&m[i], "system")) {
                sys = m[i].content;
                continue;
            }
            bool model = role_is(&m[i], "assistant");
            qai_strbuf_puts(b, "<start_of_turn>");
            qai_strbuf_puts(b, model ? "model" : m[i].role);
            qai_strbuf_puts(b, "\n");
            if (sys && !model) {
                put_trimmed(b, sys);
                qai_strbuf_puts(b, "\n\n");
                sys = NULL;
            }
            put_trimmed(b, m[i].content);
            qai_strbuf_puts(b, "<end_of_turn>\n");
        }
        if (add_assistant) qai_strbuf_puts(b, "<start_of_turn>model\n");
        break;
    }
    default:
        break;
    }
}

qai_status qai_chat_apply(qai_chat_format f, const qai_chat_message *msgs, size_t n, bool add_assistant, char **out) {
    if (!out) return qai_error(QAI_ERR_ARG, "qai_chat_apply: out must not be NULL");
    *out = NULL;
    if (f != QAI_CHAT_LLAMA2 && f != QAI_CHAT_LLAMA3 && f != QAI_CHAT_CHATML && f != QAI_CHAT_ZEPHYR &&
        f != QAI_CHAT_PHI3 && f != QAI_CHAT_GEMMA)
        return qai_error(QAI_ERR_ARG, "chat: unknown chat format %d (known: llama2, llama3, chatml, zephyr, phi3, gemma)",
                         (int)f);
    if (n && !msgs) return qai_error(QAI_ERR_ARG, "chat: %zu messages announced but the list is NULL", n);
    for (size_t i = 0; i < n; i++)
        if (!msgs[i].role || !msgs[i].content)
            return qai_error(QAI_ERR_ARG, "chat: message %zu has no %s", i, msgs[i].role ? "content" : "role");
    sbuf b = {0};
    render(f, &b, msgs, n, add_assistant);
    if (!(*out = qai_strbuf_take(&b, NULL))) return qai_error(QAI_ERR_NOMEM, "chat: out of memory rendering %zu messages", n);
    return QAI_OK;
}
