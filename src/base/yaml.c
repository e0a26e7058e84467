/* YAML documents into cJSON trees, through libyaml's event parser.
 * Only what configs and manifests need: one document of mappings, sequences
 * and scalars. Anchors, aliases, tags beyond the core schema and duplicate
 * keys are rejected rather than guessed at. */
#include "qai/base.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

enum { MAX_DEPTH = 64 };

typedef struct {
    yaml_parser_t parser;
    const char *name;
} yaml_reader;

static qai_status fail_at(const yaml_reader *r, const yaml_mark_t *m, const char *what) {
    return qai_error(QAI_ERR_FORMAT, "%s:%zu:%zu: %s", r->name, m->line + 1, m->column + 1, what);
}

static qai_status next_event(yaml_reader *r, yaml_event_t *ev) {
    if (!yaml_parser_parse(&r->parser, ev)) {
        const char *problem = r->parser.problem ? r->parser.problem : "malformed YAML";
        return qai_error(QAI_ERR_FORMAT, "%s:%zu:%zu: %s", r->name, r->parser.problem_mark.line + 1,
                         r->parser.problem_mark.column + 1, problem);
    }
    return QAI_OK;
}

/* Plain scalars follow YAML 1.2's core schema; quoted ones are always strings. */
static cJSON *scalar_to_json(const yaml_event_t *ev) {
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || ev->data.scalar.tag) return cJSON_CreateString(s);
    if (n == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return cJSON_CreateNull();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return cJSON_CreateTrue();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return cJSON_CreateFalse();
    char *end;
    errno = 0;
    if (strspn(s, "+-0123456789") == n) {
        long long v = strtoll(s, &end, 10);
        if (*end == 0 && errno == 0) return cJSON_CreateNumber((double)v);
    }
    if (strspn(s, "+-0123456789.eE") == n && strpbrk(s, "0123456789")) {
        double v = strtod(s, &end);
        if (*end == 0 && errno == 0 && isfinite(v)) return cJSON_CreateNumber(v);
    }
    return cJSON_CreateString(s);
}

static qai_status parse_node(yaml_reader *r, yaml_event_t *ev, int depth, cJSON **out);

static qai_status parse_children(yaml_reader *r, bool mapping, int depth, cJSON *node) {
    for (;;) {
        yaml_event_t ev;
        qai_status st = next_event(r, &ev);
        if (st) return st;
        if (ev.type == (mapping ? YAML_MAPPING_END_EVENT : YAML_SEQUENCE_END_EVENT)) {
            yaml_event_delete(&ev);
            return QAI_OK;
        }
        if (!mapping) {
            cJSON *child = NULL;
            st = parse_node(r, &ev, depth + 1, &child);
            if (st) return st;
            cJSON_AddItemToArray(node, child);
            continue;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            st = fail_at(r, &ev.start_mark, "a mapping key must be a plain scalar");
            yaml_event_delete(&ev);
            return st;
        }
        char *key = qai_strdup((const char *)ev.data.scalar.value);
        yaml_mark_t key_mark = ev.start_mark;
        yaml_event_delete(&ev);
        if (!key) return QAI_ERR_NOMEM;
        if (cJSON_GetObjectItemCaseSensitive(node, key)) {
            char msg[300];
            snprintf(msg, sizeof msg, "duplicate key '%.200s'", key);
            qai_free(key);
            return fail_at(r, &key_mark, msg);
        }
        st = next_event(r, &ev);
        if (st) {
            qai_free(key);
            return st;
        }
        cJSON *child = NULL;
        st = parse_node(r, &ev, depth + 1, &child);
        if (st) {
            qai_free(key);
            return st;
        }
        cJSON_AddItemToObject(node, key, child);
        qai_free(key);
    }
}

/* Consumes ev (and the events of its children); *out gets the node. */
static qai_status parse_node(yaml_reader *r, yaml_event_t *ev, int depth, cJSON **out) {
    qai_status st = QAI_OK;
    if (depth > MAX_DEPTH) {
        st = fail_at(r, &ev->start_mark, "nesting deeper than 64 levels");
        yaml_event_delete(ev);
        return st;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor) {
            st = fail_at(r, &ev->start_mark, "anchors are not supported");
            break;
        }
        *out = scalar_to_json(ev);
        if (!*out) st = QAI_ERR_NOMEM;
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool mapping = ev->type == YAML_MAPPING_START_EVENT;
        if ((mapping ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor)) {
            st = fail_at(r, &ev->start_mark, "anchors are not supported");
            break;
        }
        cJSON *node = mapping ? cJSON_CreateObject() : cJSON_CreateArray();
        if (!node) {
            st = QAI_ERR_NOMEM;
            break;
        }
        yaml_event_delete(ev);
        st = parse_children(r, mapping, depth, node);
        if (st) {
            cJSON_Delete(node);
            return st;
        }
        *out = node;
        return QAI_OK;
    }
    case YAML_ALIAS_EVENT:
        st = fail_at(r, &ev->start_mark, "aliases are not supported");
        break;
    default:
        st = fail_at(r, &ev->start_mark, "unexpected YAML event");
        break;
    }
    yaml_event_delete(ev);
    return st;
}

qai_status qai_yaml_parse(const char *text, size_t n, const char *name, void **json_out) {
    *json_out = NULL;
    yaml_reader r = {.name = name ? name : "<yaml>"};
    if (!yaml_parser_initialize(&r.parser)) return QAI_ERR_NOMEM;
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, n);
    cJSON *root = NULL;
    qai_status st = QAI_OK;
    bool in_doc = false, done = false;
    while (!done && st == QAI_OK) {
        yaml_event_t ev;
        st = next_event(&r, &ev);
        if (st) break;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
            yaml_event_delete(&ev);
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (root) st = fail_at(&r, &ev.start_mark, "only one YAML document is allowed");
            in_doc = true;
            yaml_event_delete(&ev);
            break;
        case YAML_DOCUMENT_END_EVENT:
            in_doc = false;
            yaml_event_delete(&ev);
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            yaml_event_delete(&ev);
            break;
        default:
            if (!in_doc) {
                st = fail_at(&r, &ev.start_mark, "content outside a document");
                yaml_event_delete(&ev);
            } else {
                st = parse_node(&r, &ev, 0, &root);
            }
            break;
        }
    }
    yaml_parser_delete(&r.parser);
    if (st) {
        cJSON_Delete(root);
        return st;
    }
    *json_out = root ? root : cJSON_CreateObject(); /* an empty file is an empty mapping */
    return *json_out ? QAI_OK : QAI_ERR_NOMEM;
}

qai_status qai_yaml_load(const char *path, void **json_out) {
    char *text;
    size_t n;
    qai_status st = qai_file_read(path, &text, &n);
    if (st) return st;
    st = qai_yaml_parse(text, n, path, json_out);
    qai_free(text);
    return st;
}
