/* Parsing and validating the JSON bodies of /v1/completions and
 * /v1/chat/completions into a qai_serve_request. Everything outside input can
 * get wrong is rejected with a 400 naming the field; unknown fields are
 * ignored (OpenAI clients send many); features not built yet (structured
 * output, tools, echo, best_of, logit_bias) are rejected as "unsupported" so a
 * client never silently gets something other than it asked for.
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

static qai_status parse_messages(const cJSON *root, qai_serve_request *r, qai_serve_error *err) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs) return BAD("messages", "missing_field", "'messages' is required");
    if (!cJSON_IsArray(msgs)) return BAD("messages", "invalid_type", "'messages' must be an array, not %s", json_type_name(msgs));
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return BAD("messages", "invalid_value", "'messages' must not be empty");
    if (n > 100000) return BAD("messages", "invalid_value", "'messages' has too many entries (%d)", n);
    r->msgs = qai_calloc((size_t)n, sizeof(qai_chat_message));
    if (!r->msgs) return NOMEM();
    char param[64];
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!cJSON_IsObject(m)) return BAD(param, "invalid_type", "'%s' must be an object, not %s", param, json_type_name(m));
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!role) return BAD(param, "missing_field", "'%s' is required", param);
        if (!cJSON_IsString(role)) return BAD(param, "invalid_type", "'%s' must be a string, not %s", param, json_type_name(role));
        const char *rs = role->valuestring;
        if (!strcmp(rs, "developer")) rs = "system";
        if (!strcmp(rs, "tool") || !strcmp(rs, "function"))
            return UNSUPPORTED(param, "'%s' is '%s': tool messages are not supported yet", param, role->valuestring);
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant"))
            return BAD(param, "invalid_value", "'%s' must be system, developer, user or assistant (got '%.40s')", param, rs);
        if (field(m, "tool_calls") || field(m, "function_call"))
            return UNSUPPORTED(param, "messages[%d] has tool calls: tools are not supported yet", i);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        snprintf(param, sizeof param, "messages[%d].content", i);
        sbuf text = {0};
        if (!content || cJSON_IsNull(content)) {
            if (strcmp(rs, "assistant")) return BAD(param, "missing_field", "'%s' is required", param);
        } else if (cJSON_IsString(content)) {
            sb_puts(&text, content->valuestring);
        } else if (cJSON_IsArray(content)) {
            int k = 0;
            for (const cJSON *part = content->child; part; part = part->next, k++) {
                snprintf(param, sizeof param, "messages[%d].content[%d]", i, k);
                const cJSON *type = cJSON_IsObject(part) ? cJSON_GetObjectItemCaseSensitive(part, "type") : NULL;
                if (!cJSON_IsString(type)) {
                    sb_free(&text);
                    return BAD(param, "invalid_type", "'%s' must be an object with a string 'type'", param);
                }
                if (strcmp(type->valuestring, "text")) {
                    sb_free(&text);
                    return UNSUPPORTED(param, "'%s' has type '%.40s': only text parts are supported", param, type->valuestring);
                }
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(t)) {
                    sb_free(&text);
                    return BAD(param, "invalid_type", "'%s.text' must be a string", param);
                }
                sb_puts(&text, t->valuestring);
            }
        } else
            return BAD(param, "invalid_type", "'%s' must be a string or an array of text parts, not %s", param,
                       json_type_name(content));
        if (text.oom) return NOMEM();
        r->msgs[i].content = text.p ? text.p : dup_n("", 0);
        r->msgs[i].role = dup_n(rs, strlen(rs));
        r->n_msgs = (size_t)i + 1;
        if (!r->msgs[i].content || !r->msgs[i].role) return NOMEM();
    }
    return QAI_OK;
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

static qai_status parse_fields(const cJSON *root, int kind, qai_serve_request *r, qai_serve_error *err) {
    qai_status st;
    if (!cJSON_IsObject(root)) return BAD(NULL, "invalid_type", "the request body must be a JSON object, not %s", json_type_name(root));
    const cJSON *model = field(root, "model");
    if (model) {
        if (!cJSON_IsString(model)) return BAD("model", "invalid_type", "'model' must be a string, not %s", json_type_name(model));
        r->model = dup_n(model->valuestring, strlen(model->valuestring));
        if (!r->model) return NOMEM();
    }
    if ((st = kind == QAI_SERVE_CHAT ? parse_messages(root, r, err) : parse_prompt(root, r, err))) return st;
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
    const cJSON *user = field(root, "user");
    if (user) {
        if (!cJSON_IsString(user)) return BAD("user", "invalid_type", "'user' must be a string, not %s", json_type_name(user));
        r->user = dup_n(user->valuestring, strlen(user->valuestring));
        if (!r->user) return NOMEM();
    }
    const cJSON *rf = field(root, "response_format");
    if (rf) {
        const cJSON *t = cJSON_IsObject(rf) ? cJSON_GetObjectItemCaseSensitive(rf, "type") : NULL;
        if (!cJSON_IsString(t)) return BAD("response_format", "invalid_type", "'response_format' must be an object with a string 'type'");
        if (!strcmp(t->valuestring, "json_object") || !strcmp(t->valuestring, "json_schema"))
            return UNSUPPORTED("response_format", "response_format '%s' is not supported yet", t->valuestring);
        if (strcmp(t->valuestring, "text"))
            return BAD("response_format", "invalid_value", "'response_format.type' must be text, json_object or json_schema");
    }
    const cJSON *tools = field(root, "tools"), *fns = field(root, "functions");
    if ((tools && (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) > 0)) || (fns && (!cJSON_IsArray(fns) || cJSON_GetArraySize(fns) > 0)))
        return UNSUPPORTED(tools ? "tools" : "functions", "tools and function calling are not supported yet");
    const cJSON *lb = field(root, "logit_bias");
    if (lb && (!cJSON_IsObject(lb) || lb->child)) return UNSUPPORTED("logit_bias", "'logit_bias' is not supported yet");
    return QAI_OK;
}

qai_status qai_serve_request_parse(const char *body, size_t len, int kind, qai_serve_request **out,
                                   qai_serve_error *err) {
    *out = NULL;
    memset(err, 0, sizeof *err);
    if (kind != QAI_SERVE_COMPLETIONS && kind != QAI_SERVE_CHAT)
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
    qai_free(r->model);
    qai_free(r->prompt);
    qai_free(r->prompt_tokens);
    for (size_t i = 0; i < r->n_msgs; i++) {
        qai_free((char *)r->msgs[i].role);
        qai_free((char *)r->msgs[i].content);
    }
    qai_free(r->msgs);
    for (int i = 0; i < r->n_stop; i++) qai_free(r->stop[i]);
    qai_free(r->user);
    qai_free(r);
}
