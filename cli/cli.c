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
