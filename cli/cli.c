/* Flag parsing and error printing for the commands. */
#include <sodium.h>
#include <termios.h>

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* One line from the terminal with echo off; the newline is removed. */
static int prompt_tty(FILE *tty, const char *prompt, char *buf, size_t cap) {
    struct termios old, quiet;
    int fd = fileno(tty);
    if (tcgetattr(fd, &old) != 0) return -1;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    /* echo off first (dropping anything typed ahead), then the prompt, so an
     * answer typed after the prompt is never echoed nor discarded */
    if (tcsetattr(fd, TCSAFLUSH, &quiet) != 0) return -1;
    fputs(prompt, stderr);
    fflush(stderr);
    char *r = fgets(buf, (int)cap, tty);
    tcsetattr(fd, TCSAFLUSH, &old);
    if (!r) return -1;
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

int cli_get_passphrase(const char *cmd, const char *file, const char *prompt, bool confirm, char *pass) {
    if (file) {
        char *data;
        size_t n;
        if (qai_file_read(file, &data, &n) != QAI_OK) return cli_fail_last(cmd);
        size_t len = strcspn(data, "\r\n");
        int rc = 0;
        if (len >= CLI_PASS_MAX)
            rc = cli_fail(cmd, "passphrase file '%s': the passphrase is longer than %d bytes", file, CLI_PASS_MAX - 1);
        else if (!len)
            rc = cli_fail(cmd, "passphrase file '%s' is empty", file);
        else {
            memcpy(pass, data, len);
            pass[len] = 0;
        }
        sodium_memzero(data, n);
        qai_free(data);
        return rc;
    }
    const char *env = getenv("QAI_PASSPHRASE");
    if (env && *env) {
        if (strlen(env) >= CLI_PASS_MAX) return cli_fail(cmd, "QAI_PASSPHRASE is longer than %d bytes", CLI_PASS_MAX - 1);
        strcpy(pass, env);
        return 0;
    }
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty)
        return cli_usage_error(cmd, "no passphrase: use --passphrase-file FILE or QAI_PASSPHRASE, or run on a terminal");
    char again[CLI_PASS_MAX];
    int rc = 0;
    if (prompt_tty(tty, prompt, pass, CLI_PASS_MAX) != 0 ||
        (confirm && prompt_tty(tty, "repeat the passphrase: ", again, sizeof again) != 0))
        rc = cli_fail(cmd, "could not read the passphrase from the terminal");
    else if (!*pass)
        rc = cli_fail(cmd, "the passphrase is empty");
    else if (confirm && strcmp(pass, again) != 0)
        rc = cli_fail(cmd, "the two passphrases differ");
    sodium_memzero(again, sizeof again);
    fclose(tty);
    return rc;
}

void cli_iso_time(int64_t ms, char out[32]) {
    if (ms <= 0) {
        strcpy(out, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
