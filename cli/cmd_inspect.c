/* qai inspect — show a GGUF file's metadata and tensors (human or --json). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qai/gguf.h"

static const char *usage_text =
    "usage: qai inspect MODEL.gguf [--json] [--tensors|--no-tensors] [--full]\n"
    "\n"
    "Shows a GGUF file: header (version, alignment, data offset, file size), every\n"
    "metadata key with its type and value, every tensor (name, type, shape, offset\n"
    "in the data section, bytes) and the parameter count. The file is validated\n"
    "completely first; a malformed file is reported with the field and byte offset.\n"
    "\n"
    "  --json          print one JSON object (shape in docs/inspect.md) instead\n"
    "  --tensors       list tensors (the default)\n"
    "  --no-tensors    leave the tensor list out\n"
    "  --full          print arrays and long strings completely (default: arrays\n"
    "                  show their first 8 items, strings their first 256 bytes)\n"
    "  -h, --help      show this help\n"
    "\n"
    "examples:\n"
    "  qai inspect stories260K.gguf\n"
    "  qai inspect stories260K.gguf --json --no-tensors\n"
    "\n"
    "exit codes: 0 ok, 1 the file cannot be read or is malformed, 2 bad usage\n";

#define PREVIEW_ITEMS 8
#define PREVIEW_BYTES 256

/* ---- output helpers ---------------------------------------------------------- */

/* Human string: quoted, C-style escapes, invalid UTF-8 as \xNN; cut at max bytes. */
static void human_str(FILE *f, const char *s, size_t n, size_t max) {
    const unsigned char *p = (const unsigned char *)s;
    size_t lim = n > max ? max : n;
    fputc('"', f);
    for (size_t i = 0; i < lim;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c), i++;
        else if (c == '\n') fputs("\\n", f), i++;
        else if (c == '\t') fputs("\\t", f), i++;
        else if (c < 0x20 || c == 0x7F) fprintf(f, "\\x%02x", c), i++;
        else {
            size_t k = cli_utf8_seq(p + i, n - i);
            if (k) fwrite(p + i, 1, k, f), i += k;
            else fprintf(f, "\\x%02x", c), i++;
        }
    }
    fputc('"', f);
    if (n > lim) fprintf(f, "... (%zu bytes)", n);
}

/* Shortest decimal that reads back as the same float (JSON has no NaN/Inf: null). */
static void print_float(FILE *f, double v, bool is_f32, bool json) {
    if (!isfinite(v)) {
        fputs(json ? "null" : (isnan(v) ? "nan" : v > 0 ? "inf" : "-inf"), f);
        return;
    }
    char buf[64];
    for (int prec = is_f32 ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        double back = strtod(buf, NULL);
        if (is_f32 ? (float)back == (float)v : back == v) break;
    }
    fputs(buf, f);
}

static void print_int(FILE *f, qai_gguf_type t, int64_t v) {
    if (t == QAI_GGUF_UINT64) fprintf(f, "%" PRIu64, (uint64_t)v);
    else fprintf(f, "%" PRId64, v);
}

static bool is_float_kind(qai_gguf_type t) { return t == QAI_GGUF_FLOAT32 || t == QAI_GGUF_FLOAT64; }

/* One scalar kv value (not array). */
static void print_scalar(FILE *f, const qai_gguf *g, int64_t i, bool json, bool full) {
    qai_gguf_type t = qai_gguf_kv_type(g, i);
    if (t == QAI_GGUF_STRING) {
        const char *s = qai_gguf_kv_str(g, i);
        if (json) cli_json_string(f, s, strlen(s), false);
        else human_str(f, s, strlen(s), full ? SIZE_MAX : PREVIEW_BYTES);
    } else if (t == QAI_GGUF_BOOL) fputs(qai_gguf_kv_int(g, i) ? "true" : "false", f);
    else if (is_float_kind(t)) print_float(f, qai_gguf_kv_float(g, i), t == QAI_GGUF_FLOAT32, json);
    else print_int(f, t, qai_gguf_kv_int(g, i));
}

/* Elements [0, n) of array i, comma-separated. */
static void print_elems(FILE *f, const qai_gguf *g, int64_t i, uint64_t n, bool json, bool full) {
    qai_gguf_type et = qai_gguf_arr_type(g, i);
    for (uint64_t j = 0; j < n; j++) {
        if (j) fputs(", ", f);
        if (et == QAI_GGUF_STRING) {
            const char *s = qai_gguf_arr_str(g, i, j);
            size_t len = qai_gguf_arr_str_len(g, i, j);
            if (json) cli_json_string(f, s, len, false);
            else human_str(f, s, len, full ? SIZE_MAX : PREVIEW_BYTES);
        } else if (et == QAI_GGUF_BOOL) fputs(qai_gguf_arr_int(g, i, j) ? "true" : "false", f);
        else if (is_float_kind(et)) print_float(f, qai_gguf_arr_float(g, i, j), et == QAI_GGUF_FLOAT32, json);
        else print_int(f, et, qai_gguf_arr_int(g, i, j));
    }
}

static void print_shape(FILE *f, const qai_gguf_tensor *t) {
    fputc('[', f);
    for (int d = 0; d < t->n_dims; d++) fprintf(f, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
    fputc(']', f);
}

static int64_t n_elements(const qai_gguf_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < QAI_GGUF_MAX_DIMS; d++) n *= t->ne[d];
    return n;
}

static const char *type_name(qai_type t) {
    const qai_type_traits *tr = qai_type_info((int)t);
    return tr ? tr->name : "?";
}

/* ---- the two output forms ------------------------------------------------------ */

static void print_json(FILE *f, const qai_gguf *g, const char *path, bool tensors, bool full, uint64_t n_params) {
    fputs("{\"path\": ", f);
    cli_json_string(f, path, strlen(path), false);
    fprintf(f, ", \"file_size\": %zu, \"version\": %u, \"alignment\": %zu, \"data_offset\": %zu", qai_gguf_file_size(g),
            qai_gguf_version(g), qai_gguf_alignment(g), qai_gguf_data_offset(g));
    fprintf(f, ", \"n_tensors\": %" PRId64 ", \"n_params\": %" PRIu64 ",\n \"metadata\": {", qai_gguf_n_tensors(g),
            n_params);
    for (int64_t i = 0; i < qai_gguf_n_kv(g); i++) {
        const char *key = qai_gguf_kv_key(g, i);
        qai_gguf_type t = qai_gguf_kv_type(g, i);
        fputs(i ? ",\n  " : "\n  ", f);
        cli_json_string(f, key, strlen(key), false);
        fprintf(f, ": {\"type\": \"%s\"", qai_gguf_type_name(t));
        if (t != QAI_GGUF_ARRAY) {
            fputs(", \"value\": ", f);
            print_scalar(f, g, i, true, full);
        } else {
            qai_gguf_type et = qai_gguf_arr_type(g, i);
            uint64_t n = qai_gguf_arr_len(g, i);
            fprintf(f, ", \"elem_type\": \"%s\", \"length\": %" PRIu64 ", \"value\": ", qai_gguf_type_name(et), n);
            if (et == QAI_GGUF_ARRAY) {
                fputs("null, \"truncated\": true", f); /* nested arrays are not readable element-wise */
            } else {
                uint64_t shown = full || n <= PREVIEW_ITEMS ? n : PREVIEW_ITEMS;
                fputc('[', f);
                print_elems(f, g, i, shown, true, full);
                fputc(']', f);
                fprintf(f, ", \"truncated\": %s", shown < n ? "true" : "false");
            }
        }
        fputc('}', f);
    }
    fputs(qai_gguf_n_kv(g) ? "\n }" : "}", f);
    if (tensors) {
        fputs(",\n \"tensors\": [", f);
        for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) {
            const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
            fputs(i ? ",\n  {\"name\": " : "\n  {\"name\": ", f);
            cli_json_string(f, t->name, strlen(t->name), false);
            fprintf(f, ", \"type\": \"%s\", \"shape\": ", type_name(t->type));
            print_shape(f, t);
            fprintf(f, ", \"offset\": %" PRIu64 ", \"size\": %zu}", t->offset, t->size);
        }
        fputs(qai_gguf_n_tensors(g) ? "\n ]" : "]", f);
    }
    fputs("}\n", f);
}

static void print_human(FILE *f, const qai_gguf *g, const char *path, bool tensors, bool full, uint64_t n_params) {
    fprintf(f, "%s: GGUF v%u, %zu bytes, alignment %zu, tensor data at offset %zu\n", path, qai_gguf_version(g),
            qai_gguf_file_size(g), qai_gguf_alignment(g), qai_gguf_data_offset(g));
    fprintf(f, "\nmetadata: %" PRId64 " keys\n", qai_gguf_n_kv(g));
    size_t w = 0;
    for (int64_t i = 0; i < qai_gguf_n_kv(g); i++) {
        size_t n = strlen(qai_gguf_kv_key(g, i));
        if (n > w) w = n;
    }
    if (w > 60) w = 60;
    /* type column: "uint32" or "string[512]" */
    size_t tw = 7;
    for (int64_t i = 0; i < qai_gguf_n_kv(g); i++) {
        char tn[48];
        if (qai_gguf_kv_type(g, i) == QAI_GGUF_ARRAY)
            snprintf(tn, sizeof tn, "%s[%" PRIu64 "]", qai_gguf_type_name(qai_gguf_arr_type(g, i)), qai_gguf_arr_len(g, i));
        else snprintf(tn, sizeof tn, "%s", qai_gguf_type_name(qai_gguf_kv_type(g, i)));
        if (strlen(tn) > tw) tw = strlen(tn);
    }
    for (int64_t i = 0; i < qai_gguf_n_kv(g); i++) {
        qai_gguf_type t = qai_gguf_kv_type(g, i);
        fprintf(f, "  %-*s  ", (int)w, qai_gguf_kv_key(g, i));
        if (t != QAI_GGUF_ARRAY) {
            fprintf(f, "%-*s  ", (int)tw, qai_gguf_type_name(t));
            print_scalar(f, g, i, false, full);
        } else {
            qai_gguf_type et = qai_gguf_arr_type(g, i);
            uint64_t n = qai_gguf_arr_len(g, i);
            char tn[48];
            snprintf(tn, sizeof tn, "%s[%" PRIu64 "]", qai_gguf_type_name(et), n);
            fprintf(f, "%-*s  ", (int)tw, tn);
            if (et == QAI_GGUF_ARRAY) {
                fputs("(nested arrays)", f);
            } else {
                uint64_t shown = full || n <= PREVIEW_ITEMS ? n : PREVIEW_ITEMS;
                fputc('[', f);
                print_elems(f, g, i, shown, false, full);
                if (shown < n) fprintf(f, ", ... %" PRIu64 " more", n - shown);
                fputc(']', f);
            }
        }
        fputc('\n', f);
    }
    if (tensors) {
        fprintf(f, "\ntensors: %" PRId64 "\n", qai_gguf_n_tensors(g));
        size_t nw = 4;
        for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) {
            size_t n = strlen(qai_gguf_tensor_at(g, i)->name);
            if (n > nw) nw = n;
        }
        if (qai_gguf_n_tensors(g))
            fprintf(f, "  %-*s  %-7s  %-20s  %12s  %12s\n", (int)nw, "name", "type", "shape", "offset", "bytes");
        for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) {
            const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
            char shape[128];
            int p = snprintf(shape, sizeof shape, "[");
            for (int d = 0; d < t->n_dims && p < (int)sizeof shape; d++)
                p += snprintf(shape + p, sizeof shape - (size_t)p, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
            if (p < (int)sizeof shape) snprintf(shape + p, sizeof shape - (size_t)p, "]");
            const qai_type_traits *tr = qai_type_info((int)t->type);
            fprintf(f, "  %-*s  %-7s  %-20s  %12" PRIu64 "  %12zu%s\n", (int)nw, t->name, type_name(t->type), shape,
                    t->offset, t->size, tr && !tr->supported ? "  (type not supported for compute)" : "");
        }
    }
    double m = (double)n_params;
    fprintf(f, "\nparameters: %" PRIu64, n_params);
    if (m >= 1e9) fprintf(f, " (%.2fB)", m / 1e9);
    else if (m >= 1e6) fprintf(f, " (%.2fM)", m / 1e6);
    else if (m >= 1e3) fprintf(f, " (%.1fK)", m / 1e3);
    fprintf(f, " in %" PRId64 " tensors; file %zu bytes\n", qai_gguf_n_tensors(g), qai_gguf_file_size(g));
}

int cmd_inspect(int argc, char **argv) {
    const char *path = NULL;
    bool json = false, tensors = true, full = false;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_flag(argv[i], NULL, "--json")) json = true;
        else if (cli_flag(argv[i], NULL, "--tensors")) tensors = true;
        else if (cli_flag(argv[i], NULL, "--no-tensors")) tensors = false;
        else if (cli_flag(argv[i], NULL, "--full")) full = true;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage_error("inspect", "unknown option '%s'", argv[i]);
        else if (!path) path = argv[i];
        else return cli_usage_error("inspect", "more than one file ('%s' and '%s')", path, argv[i]);
    }
    if (!path) return cli_usage_error("inspect", "no GGUF file given");
    qai_gguf *g;
    if (qai_gguf_open(path, &g)) return cli_fail_last("inspect");
    uint64_t n_params = 0;
    for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) n_params += (uint64_t)n_elements(qai_gguf_tensor_at(g, i));
    if (json) print_json(stdout, g, path, tensors, full, n_params);
    else print_human(stdout, g, path, tensors, full, n_params);
    qai_gguf_close(g);
    if (fflush(stdout) != 0 || ferror(stdout)) return cli_fail("inspect", "cannot write the output");
    return 0;
}
