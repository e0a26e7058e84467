/* Parsing and validating the JSON bodies of /v1/completions,
 * /v1/chat/completions and /v1/embeddings into a qai_serve_request.
 * Everything outside input can get wrong is rejected with a 400 naming the
 * field; unknown fields are ignored (OpenAI clients send many); features not
 * built (echo, best_of, logit_bias, non-text content parts) are rejected as
 * "unsupported" so a client never silently gets something other than it asked
 * for.
 *
 * Structured output is decided here: response_format and tools/tool_choice
 * (or the legacy functions/function_call) are compiled into their grammar
 * (qai/grammar.h), so schema errors are 400s that name the keyword. Chat
 * messages are rendered for templates that know only system/user/assistant:
 * the tools go into a system preamble with the exact call format, assistant
 * turns with tool_calls carry the calls as the JSON text the model writes
 * under the grammar, and tool results become user turns (render_chat).
 *
 * What it does not do: tokenize or apply chat templates (that needs the model;
 * see http.c). */
#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "serve_internal.h"

#define BAD(param, code, ...) serve_err(err, 400, "invalid_request_error", code, param, __VA_ARGS__)
#define UNSUPPORTED(param, ...) serve_err(err, 400, "invalid_request_error", "unsupported", param, __VA_ARGS__)

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    return "invalid";
}

/* The field, or NULL when absent or null (OpenAI treats null as "not given"). */
static const cJSON *field(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

static qai_status get_number(const cJSON *o, const char *name, double lo, double hi, float *out,
                             qai_serve_error *err) {
    const cJSON *v = field(o, name);
    if (!v) return QAI_OK;
    if (!cJSON_IsNumber(v)) return BAD(name, "invalid_type", "'%s' must be a number, not %s", name, json_type_name(v));
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi)) return BAD(name, "invalid_value", "'%s' must be in [%g, %g] (got %g)", name, lo, hi, d);
    *out = (float)d;
    return QAI_OK;
}

static qai_status get_int(const cJSON *o, const char *name, double lo, double hi, int64_t *out, bool *given,
                          qai_serve_error *err) {
    const cJSON *v = field(o, name);
    if (given) *given = v != NULL;
    if (!v) return QAI_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return BAD(name, "invalid_type", "'%s' must be an integer, not %s", name,
                   cJSON_IsNumber(v) ? "a fraction" : json_type_name(v));
    double d = v->valuedouble;
    if (!(d >= lo && d <= hi)) return BAD(name, "invalid_value", "'%s' must be in [%.0f, %.0f] (got %.0f)", name, lo, hi, d);
    *out = (int64_t)d;
    return QAI_OK;
}

static qai_status get_bool(const cJSON *o, const char *name, bool *out, qai_serve_error *err) {
    const cJSON *v = field(o, name);
    if (!v) return QAI_OK;
    if (!cJSON_IsBool(v)) return BAD(name, "invalid_type", "'%s' must be a boolean, not %s", name, json_type_name(v));
    *out = cJSON_IsTrue(v);
    return QAI_OK;
}

static char *dup_n(const char *s, size_t n) {
    char *d = qai_malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

#define NOMEM() serve_err(err, 500, "server_error", "out_of_memory", NULL, "out of memory")

/* Text of a message's content: a string, or an array of text parts. */
static qai_status parse_content(const cJSON *content, int i, sbuf *text, qai_serve_error *err) {
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (cJSON_IsString(content)) {
        sb_puts(text, content->valuestring);
        return QAI_OK;
    }
    if (!cJSON_IsArray(content))
        return BAD(param, "invalid_type", "'%s' must be a string or an array of text parts, not %s", param,
                   json_type_name(content));
    int k = 0;
    for (const cJSON *part = content->child; part; part = part->next, k++) {
        snprintf(param, sizeof param, "messages[%d].content[%d]", i, k);
        const cJSON *type = cJSON_IsObject(part) ? cJSON_GetObjectItemCaseSensitive(part, "type") : NULL;
        if (!cJSON_IsString(type)) return BAD(param, "invalid_type", "'%s' must be an object with a string 'type'", param);
        if (strcmp(type->valuestring, "text"))
            return UNSUPPORTED(param, "'%s' has type '%.40s': only text parts are supported", param, type->valuestring);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(t)) return BAD(param, "invalid_type", "'%s.text' must be a string", param);
        sb_puts(text, t->valuestring);
    }
    return QAI_OK;
}

/* The calls of an assistant message (tool_calls, or legacy function_call) as
 * the model writes them under the tool-call grammar: {"name":N,"arguments":A},
 * or a JSON array of those when parallel (or when there are several). */
static qai_status parse_calls(const cJSON *tc, const cJSON *fc, int i, bool parallel, serve_msg_extra *x,
                              qai_serve_error *err) {
    char param[96];
    int n = 1;
    if (tc) {
        snprintf(param, sizeof param, "messages[%d].tool_calls", i);
        if (!cJSON_IsArray(tc)) return BAD(param, "invalid_type", "'%s' must be an array, not %s", param, json_type_name(tc));
        n = cJSON_GetArraySize(tc);
        if (n == 0) return QAI_OK;
        if (n > 1000) return BAD(param, "invalid_value", "'%s' has too many calls (%d)", param, n);
    }
    x->call_id = qai_calloc((size_t)n, sizeof(char *));
    x->call_name = qai_calloc((size_t)n, sizeof(char *));
    if (!x->call_id || !x->call_name) return NOMEM();
    bool array = parallel || n > 1;
    sbuf b = {0};
    qai_status st = QAI_OK;
    if (array) sb_puts(&b, "[");
    int k = 0;
    for (const cJSON *c = tc ? tc->child : fc; c && !st; c = tc ? c->next : NULL, k++) {
        const cJSON *fn = c;
        x->n_calls = k + 1; /* entries are NULL until set, so freeing them is safe from here on */
        if (tc) {
            snprintf(param, sizeof param, "messages[%d].tool_calls[%d]", i, k);
            if (!cJSON_IsObject(c)) {
                st = BAD(param, "invalid_type", "'%s' must be an object, not %s", param, json_type_name(c));
                break;
            }
            const cJSON *type = field(c, "type"), *id = field(c, "id");
            if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "function"))) {
                st = BAD(param, "invalid_value", "'%s.type' must be \"function\"", param);
                break;
            }
            if (id && !cJSON_IsString(id)) {
                st = BAD(param, "invalid_type", "'%s.id' must be a string, not %s", param, json_type_name(id));
                break;
            }
            if (id && !(x->call_id[k] = dup_n(id->valuestring, strlen(id->valuestring)))) {
                st = NOMEM();
                break;
            }
            fn = field(c, "function");
            snprintf(param, sizeof param, "messages[%d].tool_calls[%d].function", i, k);
        } else
            snprintf(param, sizeof param, "messages[%d].function_call", i);
        const cJSON *name = cJSON_IsObject(fn) ? field(fn, "name") : NULL, *args = cJSON_IsObject(fn) ? field(fn, "arguments") : NULL;
        if (!cJSON_IsString(name)) {
            st = BAD(param, "invalid_type", "'%s' must be an object with a string 'name' and 'arguments'", param);
            break;
        }
        if (args && !cJSON_IsString(args)) {
            st = BAD(param, "invalid_type", "'%s.arguments' must be a string (the arguments as JSON text), not %s", param,
                     json_type_name(args));
            break;
        }
        if (!(x->call_name[k] = dup_n(name->valuestring, strlen(name->valuestring)))) {
            st = NOMEM();
            break;
        }
        sb_puts(&b, k ? ",{\"name\":" : "{\"name\":");
        sb_json_str(&b, name->valuestring, strlen(name->valuestring));
        sb_puts(&b, ",\"arguments\":");
        /* arguments as compact JSON; text that is not JSON goes in as a string */
        cJSON *a = args ? cJSON_Parse(args->valuestring) : NULL;
        char *at = a ? cJSON_PrintUnformatted(a) : NULL;
        if (at) sb_puts(&b, at);
        else if (args && args->valuestring[0])
            sb_json_str(&b, args->valuestring, strlen(args->valuestring));
        else
            sb_puts(&b, "{}");
        cJSON_free(at);
        cJSON_Delete(a);
        sb_puts(&b, "}");
    }
    if (array) sb_puts(&b, "]");
    if (!st && b.oom) st = NOMEM();
    if (st) {
        sb_free(&b);
        return st;
    }
    x->calls = b.p;
    return QAI_OK;
}

static qai_status parse_messages(const cJSON *root, qai_serve_request *r, bool parallel, qai_serve_error *err) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs) return BAD("messages", "missing_field", "'messages' is required");
    if (!cJSON_IsArray(msgs)) return BAD("messages", "invalid_type", "'messages' must be an array, not %s", json_type_name(msgs));
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return BAD("messages", "invalid_value", "'messages' must not be empty");
    if (n > 100000) return BAD("messages", "invalid_value", "'messages' has too many entries (%d)", n);
    r->msgs = qai_calloc((size_t)n, sizeof(qai_chat_message));
    r->mx = qai_calloc((size_t)n, sizeof(serve_msg_extra));
    if (!r->msgs || !r->mx) return NOMEM();
    r->n_mx = (size_t)n;
    char param[64];
    int i = 0;
    qai_status st;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) return BAD(param, "invalid_type", "'%s' must be an object, not %s", param, json_type_name(m));
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!role) return BAD(param, "missing_field", "'%s' is required", param);
        if (!cJSON_IsString(role)) return BAD(param, "invalid_type", "'%s' must be a string, not %s", param, json_type_name(role));
        const char *rs = role->valuestring;
        if (!strcmp(rs, "developer")) rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant") && strcmp(rs, "tool") && strcmp(rs, "function"))
            return BAD(param, "invalid_value", "'%s' must be system, developer, user, assistant or tool (got '%.40s')", param, rs);
        bool assistant = !strcmp(rs, "assistant"), tool = !strcmp(rs, "tool"), fn = !strcmp(rs, "function");
        serve_msg_extra *x = &r->mx[i];
        const cJSON *name = field(m, "name");
        snprintf(param, sizeof param, "messages[%d].name", i);
        if (name && !cJSON_IsString(name)) return BAD(param, "invalid_type", "'%s' must be a string, not %s", param, json_type_name(name));
        if (fn && !name) return BAD(param, "missing_field", "'%s' is required for a function message", param);
        if (name && (tool || fn) && !(x->name = dup_n(name->valuestring, strlen(name->valuestring)))) return NOMEM();
        if (tool) {
            const cJSON *id = field(m, "tool_call_id");
            snprintf(param, sizeof param, "messages[%d].tool_call_id", i);
            if (!id) return BAD(param, "missing_field", "'%s' is required for a tool message", param);
            if (!cJSON_IsString(id)) return BAD(param, "invalid_type", "'%s' must be a string, not %s", param, json_type_name(id));
            if (!(x->tool_call_id = dup_n(id->valuestring, strlen(id->valuestring)))) return NOMEM();
        }
        const cJSON *tc = field(m, "tool_calls"), *fc = field(m, "function_call");
        if (tc || fc) {
            snprintf(param, sizeof param, "messages[%d].%s", i, tc ? "tool_calls" : "function_call");
            if (!assistant) return BAD(param, "invalid_value", "'%s': only assistant messages carry tool calls", param);
            if ((st = parse_calls(tc, tc ? NULL : fc, i, parallel, x, err))) return st;
        }
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        snprintf(param, sizeof param, "messages[%d].content", i);
        sbuf text = {0};
        if (!content || cJSON_IsNull(content)) {
            if (!assistant) return BAD(param, "missing_field", "'%s' is required", param);
            if (!x->calls) { /* OpenAI accepts an empty assistant turn */ }
        } else if ((st = parse_content(content, i, &text, err))) {
            sb_free(&text);
            return st;
        }
        if (text.oom) return NOMEM();
        r->msgs[i].content = text.p ? text.p : dup_n("", 0);
        r->msgs[i].role = dup_n(rs, strlen(rs));
        r->n_msgs = (size_t)i + 1;
        if (!r->msgs[i].content || !r->msgs[i].role) return NOMEM();
    }
    return QAI_OK;
}

/* The name of the function a tool message answers: its own "name", or the
 * call with its id in an earlier assistant message. */
static const char *tool_result_name(const qai_serve_request *r, size_t i) {
    const serve_msg_extra *x = &r->mx[i];
    if (x->name) return x->name;
    if (!x->tool_call_id) return NULL;
    for (size_t k = i; k-- > 0;)
        for (int c = 0; c < r->mx[k].n_calls; c++)
            if (r->mx[k].call_id[c] && !strcmp(r->mx[k].call_id[c], x->tool_call_id)) return r->mx[k].call_name[c];
    return NULL;
}

/* Rewrites the messages for templates that know only system/user/assistant:
 * the tools preamble (if any) goes into the first system message (one is
 * added if there is none); an assistant turn with calls carries them as the
 * JSON text the model writes; tool and function results become user turns
 * "[tool result for ID (NAME)]\nCONTENT", consecutive ones merged into one. */
static qai_status render_chat(qai_serve_request *r, const char *preamble, qai_serve_error *err) {
    size_t n = r->n_msgs;
    qai_chat_message *out = qai_calloc(n + 1, sizeof *out);
    if (!out) return NOMEM();
    size_t o = 0, i = 0;
    bool ok = true, prev_result = false;
    if (preamble) {
        sbuf b = {0};
        if (n && !strcmp(r->msgs[0].role, "system")) {
            sb_puts(&b, r->msgs[0].content);
            if (r->msgs[0].content[0]) sb_puts(&b, "\n\n");
            i = 1;
        }
        sb_puts(&b, preamble);
        out[o].role = dup_n("system", 6);
        out[o++].content = b.p;
        ok = !b.oom && out[0].role;
    }
    for (; i < n && ok; i++) {
        const serve_msg_extra *x = &r->mx[i];
        const char *role = r->msgs[i].role, *content = r->msgs[i].content;
        bool result = !strcmp(role, "tool") || !strcmp(role, "function");
        sbuf b = {0};
        if (result) {
            const char *name = tool_result_name(r, i);
            if (prev_result) { /* merge into the previous user turn */
                sb_puts(&b, out[o - 1].content);
                sb_puts(&b, "\n\n");
                qai_free((char *)out[o - 1].content);
                o--;
            } else
                out[o].role = dup_n("user", 4);
            sb_puts(&b, "[tool result");
            if (x->tool_call_id) {
                sb_puts(&b, " for ");
                sb_puts(&b, x->tool_call_id);
            }
            if (name) {
                sb_puts(&b, " (");
                sb_puts(&b, name);
                sb_puts(&b, ")");
            }
            sb_puts(&b, "]\n");
            sb_puts(&b, content);
        } else {
            out[o].role = dup_n(role, strlen(role));
            sb_puts(&b, content);
            if (x->calls) {
                if (content[0]) sb_puts(&b, "\n");
                sb_puts(&b, x->calls);
            }
            if (!b.p) sb_put(&b, "", 0);
        }
        out[o].content = b.p;
        ok = !b.oom && out[o].role && out[o].content;
        o++;
        prev_result = result;
    }
    for (size_t k = 0; k < r->n_msgs; k++) {
        qai_free((char *)r->msgs[k].role);
        qai_free((char *)r->msgs[k].content);
    }
    qai_free(r->msgs);
    r->msgs = out;
    r->n_msgs = o;
    for (size_t k = 0; k < o; k++) /* an entry that failed half-way */
        if (!out[k].role || !out[k].content) ok = false;
    return ok ? QAI_OK : NOMEM();
}

static qai_status parse_prompt(const cJSON *root, qai_serve_request *r, qai_serve_error *err) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    if (!p || cJSON_IsNull(p)) return BAD("prompt", "missing_field", "'prompt' is required");
    if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1 && cJSON_IsString(p->child)) p = p->child;
    if (cJSON_IsString(p)) {
        r->prompt_len = strlen(p->valuestring);
        r->prompt = dup_n(p->valuestring, r->prompt_len);
        return r->prompt ? QAI_OK : NOMEM();
    }
    if (cJSON_IsArray(p)) {
        int n = cJSON_GetArraySize(p);
        if (n == 0) return BAD("prompt", "invalid_value", "'prompt' must not be empty");
        if (cJSON_IsString(p->child) || cJSON_IsArray(p->child))
            return UNSUPPORTED("prompt", "'prompt' holds %d prompts: send one request per prompt", n);
        r->prompt_tokens = qai_malloc((size_t)n * sizeof(int32_t));
        if (!r->prompt_tokens) return NOMEM();
        int i = 0;
        for (const cJSON *t = p->child; t; t = t->next, i++) {
            if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 ||
                t->valuedouble > INT32_MAX)
                return BAD("prompt", "invalid_type", "'prompt[%d]' must be a token id (a non-negative integer)", i);
            r->prompt_tokens[i] = (int32_t)t->valuedouble;
        }
        r->n_prompt_tokens = n;
        return QAI_OK;
    }
    return BAD("prompt", "invalid_type", "'prompt' must be a string or an array of token ids, not %s", json_type_name(p));
}

static qai_status parse_stop(const cJSON *root, qai_serve_request *r, qai_serve_error *err) {
    const cJSON *s = field(root, "stop");
    if (!s) return QAI_OK;
    const cJSON *one = s;
    int n = 1;
    if (cJSON_IsArray(s)) {
        n = cJSON_GetArraySize(s);
        one = s->child;
        if (n > QAI_SERVE_MAX_STOP) return BAD("stop", "invalid_value", "'stop' has %d strings, at most %d are allowed", n, QAI_SERVE_MAX_STOP);
    } else if (!cJSON_IsString(s))
        return BAD("stop", "invalid_type", "'stop' must be a string or an array of strings, not %s", json_type_name(s));
    for (int i = 0; i < n; i++, one = one->next) {
        if (!cJSON_IsString(one)) return BAD("stop", "invalid_type", "'stop[%d]' must be a string, not %s", i, json_type_name(one));
        size_t len = strlen(one->valuestring);
        if (len == 0) return BAD("stop", "invalid_value", "'stop[%d]' must not be empty", i);
        if (len > 256) return BAD("stop", "invalid_value", "'stop[%d]' is longer than 256 bytes", i);
        r->stop[r->n_stop] = dup_n(one->valuestring, len);
        if (!r->stop[r->n_stop]) return NOMEM();
        r->stop_len[r->n_stop++] = len;
    }
    return QAI_OK;
}

/* ---- tools ---- */

/* An error of the grammar compiler as a 400 on param (the message already
 * names the field and, for schemas, the keyword and its JSON pointer). */
static qai_status grammar_err(qai_status st, const char *param, qai_serve_error *err) {
    if (st == QAI_ERR_NOMEM) return NOMEM();
    return serve_err(err, 400, "invalid_request_error", st == QAI_ERR_UNSUPPORTED ? "unsupported" : "invalid_value", param,
                     "%s", qai_last_error());
}

/* The system-prompt preamble that tells the model about the tools. */
static char *tools_preamble(const cJSON *tools, int mode, const char *named, bool parallel) {
    sbuf b = {0};
    sb_puts(&b, "# Tools\n\nYou can call these functions (each line: name, description, JSON Schema of the arguments):\n");
    const cJSON *t;
    cJSON_ArrayForEach(t, tools) {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(fn, "name"), *d = cJSON_GetObjectItemCaseSensitive(fn, "description");
        const cJSON *pa = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        sb_puts(&b, "{\"name\":");
        sb_json_str(&b, nm->valuestring, strlen(nm->valuestring));
        if (cJSON_IsString(d)) {
            sb_puts(&b, ",\"description\":");
            sb_json_str(&b, d->valuestring, strlen(d->valuestring));
        }
        sb_puts(&b, ",\"parameters\":");
        char *pt = pa ? cJSON_PrintUnformatted(pa) : NULL;
        sb_puts(&b, pt ? pt : "{\"type\":\"object\",\"properties\":{}}");
        cJSON_free(pt);
        sb_puts(&b, "}\n");
    }
    if (parallel)
        sb_puts(&b, "\nTo call functions, reply with only a JSON array of one or more calls and nothing else:\n"
                    "[{\"name\": \"<function name>\", \"arguments\": {<the arguments>}}]\n");
    else
        sb_puts(&b, "\nTo call a function, reply with only this JSON object and nothing else:\n"
                    "{\"name\": \"<function name>\", \"arguments\": {<the arguments>}}\n");
    if (mode == SERVE_TOOLS_AUTO)
        sb_printf(&b, "If no function is needed, answer in plain text (not starting with \"%c\").\n", parallel ? '[' : '{');
    else if (mode == SERVE_TOOLS_REQUIRED)
        sb_puts(&b, "You must call a function in this reply.\n");
    else {
        sb_puts(&b, "You must call the function ");
        sb_json_str(&b, named, strlen(named));
        sb_puts(&b, " in this reply.\n");
    }
    sb_puts(&b, "Results of calls come back in messages that start with \"[tool result\".");
    if (b.oom) {
        sb_free(&b);
        return NULL;
    }
    return b.p;
}

/* tools/tool_choice (or the legacy functions/function_call) into r->tools,
 * r->grammar and the preamble (*preamble NULL when the model is not to call
 * anything). */
static qai_status parse_tools(const cJSON *root, qai_serve_request *r, char **preamble, qai_serve_error *err) {
    *preamble = NULL;
    const cJSON *tools = field(root, "tools"), *fns = field(root, "functions");
    const cJSON *choice = field(root, "tool_choice"), *fcall = field(root, "function_call");
    if (tools && fns) return BAD("functions", "invalid_value", "give 'tools' or the legacy 'functions', not both");
    const char *tparam = fns ? "functions" : "tools", *cparam = fns ? "function_call" : "tool_choice";
    const cJSON *list = fns ? fns : tools, *c = fns ? fcall : choice;
    if (!list && fcall) c = fcall, cparam = "function_call";
    if (list && !cJSON_IsArray(list)) return BAD(tparam, "invalid_type", "'%s' must be an array, not %s", tparam, json_type_name(list));
    int n = list ? cJSON_GetArraySize(list) : 0;
    if (n > 128) return BAD(tparam, "invalid_value", "'%s' has %d entries, at most 128 are allowed", tparam, n);
    /* the choice */
    int mode = SERVE_TOOLS_AUTO;
    const char *named = NULL;
    if (c && cJSON_IsString(c)) {
        const char *v = c->valuestring;
        if (!strcmp(v, "none")) mode = SERVE_TOOLS_NONE;
        else if (!strcmp(v, "required") && !fns) mode = SERVE_TOOLS_REQUIRED;
        else if (strcmp(v, "auto"))
            return BAD(cparam, "invalid_value", "'%s' must be %s or an object naming a function (got '%.40s')", cparam,
                       fns ? "\"none\", \"auto\"" : "\"none\", \"auto\", \"required\"", v);
    } else if (c && cJSON_IsObject(c)) {
        const cJSON *nm = fns ? field(c, "name") : field(field(c, "function"), "name");
        const cJSON *ty = field(c, "type");
        if (!cJSON_IsString(nm) || (!fns && (!cJSON_IsString(ty) || strcmp(ty->valuestring, "function"))))
            return BAD(cparam, "invalid_value", "'%s' must be %s", cparam,
                       fns ? "\"none\", \"auto\" or {\"name\": NAME}"
                           : "\"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": NAME}}");
        mode = SERVE_TOOLS_NAMED;
        named = nm->valuestring;
    } else if (c)
        return BAD(cparam, "invalid_type", "'%s' must be a string or an object, not %s", cparam, json_type_name(c));
    if (n == 0) {
        if (mode == SERVE_TOOLS_REQUIRED || mode == SERVE_TOOLS_NAMED)
            return BAD(cparam, "invalid_value", "'%s' asks for a call but no tools are given", cparam);
        return QAI_OK;
    }
    r->legacy_functions = fns != NULL;
    if (!fns) {
        qai_status st = get_bool(root, "parallel_tool_calls", &r->parallel_tools, err);
        if (st) return st;
    }
    if (mode == SERVE_TOOLS_NONE) return QAI_OK;
    /* the tools in OpenAI's shape, for the grammar and the preamble */
    cJSON *norm = fns ? cJSON_CreateArray() : cJSON_Duplicate(list, true);
    if (!norm) return NOMEM();
    char param[64];
    int i = 0;
    qai_status st = QAI_OK;
    for (const cJSON *t = list->child; t && !st; t = t->next, i++) {
        const cJSON *fn = t;
        if (fns) {
            snprintf(param, sizeof param, "functions[%d]", i);
            cJSON *w = cJSON_CreateObject(), *f = cJSON_Duplicate(t, true);
            if (!w || !f || !cJSON_AddStringToObject(w, "type", "function")) {
                cJSON_Delete(w);
                cJSON_Delete(f);
                st = NOMEM();
                break;
            }
            cJSON_AddItemToObject(w, "function", f);
            cJSON_AddItemToArray(norm, w);
        } else {
            snprintf(param, sizeof param, "tools[%d].function", i);
            fn = cJSON_IsObject(t) ? field(t, "function") : NULL;
        }
        if (!cJSON_IsObject(fn)) { /* the grammar compiler reports the rest; this gives the field */
            st = BAD(param, "invalid_type", "'%s' must be an object with a 'name'", param);
            break;
        }
        const cJSON *d = field(fn, "description"), *strict = field(fn, "strict");
        if (d && !cJSON_IsString(d)) st = BAD(param, "invalid_type", "'%s.description' must be a string, not %s", param, json_type_name(d));
        else if (strict && !cJSON_IsBool(strict))
            st = BAD(param, "invalid_type", "'%s.strict' must be a boolean, not %s", param, json_type_name(strict));
    }
    char *tt = st ? NULL : cJSON_PrintUnformatted(norm);
    char *ct = NULL;
    if (!st && !tt) st = NOMEM();
    if (!st && named) {
        sbuf cb = {0};
        sb_puts(&cb, "{\"type\":\"function\",\"function\":{\"name\":");
        sb_json_str(&cb, named, strlen(named));
        sb_puts(&cb, "}}");
        ct = cb.p;
        if (cb.oom) st = NOMEM();
    }
    if (!st) {
        const char *cs = mode == SERVE_TOOLS_REQUIRED ? "\"required\"" : mode == SERVE_TOOLS_AUTO ? "\"auto\"" : ct;
        qai_status gs = qai_grammar_tool_calls(tt, strlen(tt), cs, strlen(cs), r->parallel_tools ? QAI_GRAMMAR_PARALLEL_TOOLS : 0,
                                               NULL, &r->grammar);
        if (gs) st = grammar_err(gs, !strncmp(qai_last_error(), "tool_choice", 11) ? cparam : tparam, err);
    }
    if (!st) {
        r->tools = mode;
        r->grammar_is_tools = r->grammar != NULL;
        *preamble = tools_preamble(norm, mode, named, r->parallel_tools);
        if (!*preamble) st = NOMEM();
    }
    cJSON_free(tt);
    qai_free(ct);
    cJSON_Delete(norm);
    return st;
}

static qai_status parse_response_format(const cJSON *root, qai_serve_request *r, qai_serve_error *err) {
    const cJSON *rf = field(root, "response_format");
    if (!rf) return QAI_OK;
    const cJSON *t = cJSON_IsObject(rf) ? cJSON_GetObjectItemCaseSensitive(rf, "type") : NULL;
    if (!cJSON_IsString(t)) return BAD("response_format", "invalid_type", "'response_format' must be an object with a string 'type'");
    if (!strcmp(t->valuestring, "text")) return QAI_OK;
    bool schema = !strcmp(t->valuestring, "json_schema");
    if (!schema && strcmp(t->valuestring, "json_object"))
        return BAD("response_format", "invalid_value", "'response_format.type' must be text, json_object or json_schema (got '%.40s')",
                   t->valuestring);
    if (schema) {
        const cJSON *js = field(rf, "json_schema");
        if (!js) return BAD("response_format", "missing_field", "'response_format.json_schema' is required for type json_schema");
        if (!cJSON_IsObject(js))
            return BAD("response_format", "invalid_type", "'response_format.json_schema' must be an object, not %s", json_type_name(js));
        const cJSON *nm = field(js, "name"), *strict = field(js, "strict"), *sc = field(js, "schema");
        if (nm && !cJSON_IsString(nm)) return BAD("response_format", "invalid_type", "'response_format.json_schema.name' must be a string");
        if (strict && !cJSON_IsBool(strict))
            return BAD("response_format", "invalid_type", "'response_format.json_schema.strict' must be a boolean");
        if (!sc) return BAD("response_format", "missing_field", "'response_format.json_schema.schema' is required");
        if (!cJSON_IsObject(sc) && !cJSON_IsBool(sc))
            return BAD("response_format", "invalid_type", "'response_format.json_schema.schema' must be an object, not %s",
                       json_type_name(sc));
    }
    if (r->tools != SERVE_TOOLS_NONE)
        return UNSUPPORTED("response_format", "response_format '%s' cannot be combined with tools unless tool_choice is \"none\"",
                           t->valuestring);
    char *text = cJSON_PrintUnformatted(rf);
    if (!text) return NOMEM();
    qai_status st = qai_grammar_from_response_format(text, strlen(text), NULL, &r->grammar);
    cJSON_free(text);
    return st ? grammar_err(st, "response_format", err) : QAI_OK;
}

/* ---- embeddings ---- */

static qai_status token_array(const cJSON *a, const char *param, int32_t **out, int *n_out, qai_serve_error *err) {
    int n = cJSON_GetArraySize(a);
    if (n == 0) return BAD(param, "invalid_value", "'%s' must not be empty", param);
    int32_t *ids = qai_malloc((size_t)n * sizeof(int32_t));
    if (!ids) return NOMEM();
    int i = 0;
    for (const cJSON *t = a->child; t; t = t->next, i++)
        if (!cJSON_IsNumber(t) || t->valuedouble != floor(t->valuedouble) || t->valuedouble < 0 || t->valuedouble > INT32_MAX) {
            qai_free(ids);
            return BAD(param, "invalid_type", "'%s[%d]' must be a token id (a non-negative integer)", param, i);
        } else
            ids[i] = (int32_t)t->valuedouble;
    *out = ids;
    *n_out = n;
    return QAI_OK;
}

static qai_status parse_embeddings(const cJSON *root, qai_serve_request *r, qai_serve_error *err) {
    const cJSON *in = field(root, "input");
    if (!in) return BAD("input", "missing_field", "'input' is required");
    if (!cJSON_IsString(in) && !cJSON_IsArray(in))
        return BAD("input", "invalid_type", "'input' must be a string, an array of strings, an array of token ids or an array of arrays of token ids, not %s",
                   json_type_name(in));
    int n = cJSON_IsString(in) ? 1 : cJSON_GetArraySize(in);
    if (n == 0) return BAD("input", "invalid_value", "'input' must not be empty");
    bool tokens1 = cJSON_IsArray(in) && cJSON_IsNumber(in->child); /* one input given as token ids */
    if (tokens1) n = 1;
    if (n > QAI_SERVE_MAX_EMBED_INPUTS)
        return BAD("input", "invalid_value", "'input' has %d entries, at most %d are allowed", n, QAI_SERVE_MAX_EMBED_INPUTS);
    r->input_text = qai_calloc((size_t)n, sizeof(char *));
    r->input_len = qai_calloc((size_t)n, sizeof(size_t));
    r->input_tok = qai_calloc((size_t)n, sizeof(int32_t *));
    r->input_ntok = qai_calloc((size_t)n, sizeof(int));
    if (!r->input_text || !r->input_len || !r->input_tok || !r->input_ntok) return NOMEM();
    r->n_inputs = n;
    qai_status st;
    if (cJSON_IsString(in) || tokens1) {
        if (tokens1) return token_array(in, "input", &r->input_tok[0], &r->input_ntok[0], err);
        if (!in->valuestring[0]) return BAD("input", "invalid_value", "'input' must not be an empty string");
        r->input_len[0] = strlen(in->valuestring);
        return (r->input_text[0] = dup_n(in->valuestring, r->input_len[0])) ? QAI_OK : NOMEM();
    }
    bool strings = cJSON_IsString(in->child);
    char param[48];
    int i = 0;
    for (const cJSON *e = in->child; e; e = e->next, i++) {
        snprintf(param, sizeof param, "input[%d]", i);
        if (strings) {
            if (!cJSON_IsString(e)) return BAD("input", "invalid_type", "'%s' must be a string like input[0], not %s", param, json_type_name(e));
            if (!e->valuestring[0]) return BAD("input", "invalid_value", "'%s' must not be an empty string", param);
            r->input_len[i] = strlen(e->valuestring);
            if (!(r->input_text[i] = dup_n(e->valuestring, r->input_len[i]))) return NOMEM();
        } else {
            if (!cJSON_IsArray(e))
                return BAD("input", "invalid_type", "'%s' must be %s, not %s", param,
                           i == 0 ? "a string, a token id or an array of token ids" : "an array of token ids like input[0]", json_type_name(e));
            if ((st = token_array(e, param, &r->input_tok[i], &r->input_ntok[i], err))) {
                snprintf(err->param, sizeof err->param, "input");
                return st;
            }
        }
    }
    return QAI_OK;
}

static qai_status parse_embeddings_fields(const cJSON *root, qai_serve_request *r, qai_serve_error *err) {
    qai_status st;
    if ((st = parse_embeddings(root, r, err))) return st;
    const cJSON *ef = field(root, "encoding_format");
    if (ef) {
        if (!cJSON_IsString(ef)) return BAD("encoding_format", "invalid_type", "'encoding_format' must be a string, not %s", json_type_name(ef));
        if (!strcmp(ef->valuestring, "base64")) r->base64 = true;
        else if (strcmp(ef->valuestring, "float"))
            return BAD("encoding_format", "invalid_value", "'encoding_format' must be float or base64 (got '%.40s')", ef->valuestring);
    }
    int64_t iv;
    bool given;
    if ((st = get_int(root, "dimensions", 1, 1 << 20, &iv, &given, err))) return st;
    if (given) r->dimensions = (int)iv;
    return QAI_OK;
}

static qai_status parse_fields(const cJSON *root, int kind, qai_serve_request *r, qai_serve_error *err) {
    qai_status st;
    if (!cJSON_IsObject(root)) return BAD(NULL, "invalid_type", "the request body must be a JSON object, not %s", json_type_name(root));
    const cJSON *model = field(root, "model");
    if (model) {
        if (!cJSON_IsString(model)) return BAD("model", "invalid_type", "'model' must be a string, not %s", json_type_name(model));
        r->model = dup_n(model->valuestring, strlen(model->valuestring));
        if (!r->model) return NOMEM();
    }
    const cJSON *user = field(root, "user");
    if (user) {
        if (!cJSON_IsString(user)) return BAD("user", "invalid_type", "'user' must be a string, not %s", json_type_name(user));
        r->user = dup_n(user->valuestring, strlen(user->valuestring));
        if (!r->user) return NOMEM();
    }
    if (kind == QAI_SERVE_EMBEDDINGS) return parse_embeddings_fields(root, r, err);
    char *preamble = NULL;
    if (kind == QAI_SERVE_CHAT) {
        if ((st = parse_tools(root, r, &preamble, err))) return st;
        st = parse_messages(root, r, r->parallel_tools, err);
        if (!st) st = render_chat(r, preamble, err);
        qai_free(preamble);
        if (st) return st;
    } else {
        if (field(root, "tools") || field(root, "functions"))
            return UNSUPPORTED(field(root, "tools") ? "tools" : "functions", "tools are for /v1/chat/completions, not /v1/completions");
        if ((st = parse_prompt(root, r, err))) return st;
    }
    if ((st = parse_response_format(root, r, err))) return st;
    int64_t iv;
    bool given;
    r->max_tokens = -1;
    const char *mt = field(root, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if ((st = get_int(root, mt, 1, 1 << 30, &iv, &given, err))) return st;
    if (given) r->max_tokens = (int)iv;
    r->temperature = 1, r->top_p = 1;
    if ((st = get_number(root, "temperature", 0, 2, &r->temperature, err))) return st;
    if ((st = get_number(root, "top_p", 0, 1, &r->top_p, err))) return st;
    if ((st = get_number(root, "presence_penalty", -2, 2, &r->presence_penalty, err))) return st;
    if ((st = get_number(root, "frequency_penalty", -2, 2, &r->frequency_penalty, err))) return st;
    r->n = 1;
    if ((st = get_int(root, "n", 1, QAI_SERVE_MAX_N, &iv, &given, err))) return st;
    if (given) r->n = (int)iv;
    if ((st = get_int(root, "seed", -9.2e18, 9.2e18, &iv, &r->has_seed, err))) return st;
    if (r->has_seed) r->seed = (uint64_t)iv;
    if ((st = parse_stop(root, r, err))) return st;
    if (kind == QAI_SERVE_CHAT) {
        if ((st = get_bool(root, "logprobs", &r->logprobs, err))) return st;
        if ((st = get_int(root, "top_logprobs", 0, QAI_SERVE_MAX_TOP_LOGPROBS, &iv, &given, err))) return st;
        if (given) {
            if (!r->logprobs) return BAD("top_logprobs", "invalid_value", "'top_logprobs' needs 'logprobs': true");
            r->top_logprobs = (int)iv;
        }
    } else {
        if ((st = get_int(root, "logprobs", 0, 5, &iv, &given, err))) return st;
        if (given) r->logprobs = true, r->top_logprobs = (int)iv;
        bool echo = false;
        if ((st = get_bool(root, "echo", &echo, err))) return st;
        if (echo) return UNSUPPORTED("echo", "'echo' is not supported yet");
        if ((st = get_int(root, "best_of", 1, 1, &iv, &given, err))) return UNSUPPORTED("best_of", "'best_of' other than 1 is not supported");
        if (field(root, "suffix")) return UNSUPPORTED("suffix", "'suffix' (insertion) is not supported");
    }
    if ((st = get_bool(root, "stream", &r->stream, err))) return st;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) return BAD("stream_options", "invalid_type", "'stream_options' must be an object, not %s", json_type_name(so));
        if ((st = get_bool(so, "include_usage", &r->include_usage, err))) return st;
    }
    const cJSON *rt = field(root, "retrieval");
    if (rt && !cJSON_IsNull(rt)) {
        if (kind != QAI_SERVE_CHAT) return UNSUPPORTED("retrieval", "'retrieval' is for /v1/chat/completions, not /v1/completions");
        if ((st = serve_retr_parse(rt, "retrieval.", true, false, 4, &r->retr, err))) return st;
        bool has_user = false;
        for (size_t i = 0; i < r->n_msgs; i++) has_user |= !strcmp(r->msgs[i].role, "user");
        if (!has_user) return BAD("messages", "invalid_value", "'retrieval' needs a user message (its last one is the query)");
    }
    const cJSON *lb = field(root, "logit_bias");
    if (lb && (!cJSON_IsObject(lb) || lb->child)) return UNSUPPORTED("logit_bias", "'logit_bias' is not supported yet");
    return QAI_OK;
}

qai_status qai_serve_request_parse(const char *body, size_t len, int kind, qai_serve_request **out,
                                   qai_serve_error *err) {
    *out = NULL;
    memset(err, 0, sizeof *err);
    if (kind != QAI_SERVE_COMPLETIONS && kind != QAI_SERVE_CHAT && kind != QAI_SERVE_EMBEDDINGS)
        return serve_err(err, 500, "server_error", "internal", NULL, "unknown request kind %d", kind);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, &end, false);
    if (!root) {
        size_t off = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        const char *e = cJSON_GetErrorPtr();
        if (e && e >= body && e <= body + len) off = (size_t)(e - body);
        return BAD(NULL, "invalid_json", "the request body is not valid JSON (error near byte %zu)", off);
    }
    if (end) {
        while (end < body + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
        if (end < body + len) {
            size_t off = (size_t)(end - body);
            cJSON_Delete(root);
            return BAD(NULL, "invalid_json", "the request body has data after the JSON value (byte %zu)", off);
        }
    }
    qai_serve_request *r = qai_calloc(1, sizeof *r);
    if (!r) {
        cJSON_Delete(root);
        return NOMEM();
    }
    r->kind = kind;
    qai_status st = parse_fields(root, kind, r, err);
    cJSON_Delete(root);
    if (st) {
        qai_serve_request_free(r);
        return st;
    }
    *out = r;
    return QAI_OK;
}

void qai_serve_request_free(qai_serve_request *r) {
    if (!r) return;
    serve_retr_free(&r->retr);
    qai_free(r->model);
    qai_free(r->prompt);
    qai_free(r->prompt_tokens);
    for (size_t i = 0; i < r->n_msgs; i++) {
        qai_free((char *)r->msgs[i].role);
        qai_free((char *)r->msgs[i].content);
    }
    qai_free(r->msgs);
    for (size_t i = 0; i < r->n_mx; i++) {
        serve_msg_extra *x = &r->mx[i];
        qai_free(x->calls);
        for (int c = 0; c < x->n_calls; c++) {
            qai_free(x->call_id[c]);
            qai_free(x->call_name[c]);
        }
        qai_free(x->call_id);
        qai_free(x->call_name);
        qai_free(x->tool_call_id);
        qai_free(x->name);
    }
    qai_free(r->mx);
    for (int i = 0; i < r->n_stop; i++) qai_free(r->stop[i]);
    qai_free(r->user);
    qai_grammar_free(r->grammar);
    for (int i = 0; i < r->n_inputs; i++) {
        qai_free(r->input_text[i]);
        qai_free(r->input_tok[i]);
    }
    qai_free(r->input_text);
    qai_free(r->input_len);
    qai_free(r->input_tok);
    qai_free(r->input_ntok);
    qai_free(r);
}
