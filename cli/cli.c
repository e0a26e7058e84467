/* Flag parsing and error printing for the commands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *cli_missing_value;

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qai: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail_last(const char *cmd) {
    fprintf(stderr, "qai: %s: %s\n", cmd, qai_last_error());
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qai: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see qai %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

bool cli_flag(const char *arg, const char *short_name, const char *long_name) {
    return (short_name && !strcmp(arg, short_name)) || (long_name && !strcmp(arg, long_name));
}

bool cli_value(int argc, char **argv, int *i, const char *short_name, const char *long_name, const char **value) {
    const char *a = argv[*i];
    if (long_name) {
        size_t n = strlen(long_name);
        if (!strncmp(a, long_name, n) && a[n] == '=') {
            *value = a + n + 1;
            return true;
        }
    }
    if (!cli_flag(a, short_name, long_name)) return false;
    if (*i + 1 >= argc) {
        cli_missing_value = a;
        *value = NULL;
        return true;
    }
    *value = argv[++*i];
    return true;
}

bool cli_parse_int(const char *s, long long min, long long max, long long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

bool cli_parse_float(const char *s, double *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

size_t cli_utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

void cli_json_string(FILE *f, const char *s, size_t n, bool bytes_as_code_points) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c), i++;
        else if (c == '\n') fputs("\\n", f), i++;
        else if (c == '\r') fputs("\\r", f), i++;
        else if (c == '\t') fputs("\\t", f), i++;
        else if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c), i++;
        else {
            size_t k = cli_utf8_seq(p + i, n - i);
            if (k) fwrite(p + i, 1, k, f), i += k;
            else if (bytes_as_code_points) fprintf(f, "\\u%04x", c), i++;
            else fputs("\\ufffd", f), i++;
        }
    }
    fputc('"', f);
}
