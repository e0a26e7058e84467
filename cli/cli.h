/* Helpers shared by the command files: flag parsing and error printing.
 * Commands parse flags, call the library, print; no logic the library lacks. */
#ifndef QAI_CLI_H
#define QAI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "qai/base.h"

#define QAI_VERSION_STRING "0.1.0"

/* Prints "qai: <cmd>: <fmt...>" to stderr; returns 1 (the failure exit code). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "qai: <cmd>: <qai_last_error()>" and returns 1. */
int cli_fail_last(const char *cmd);
/* Prints "qai: <cmd>: <fmt...>" and a hint to use --help; returns 2 (bad usage). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Flag parsing: walk argv with cli_flag/cli_value. A flag may be given as
 * "--name value" or "--name=value". Typical loop:
 *     for (int i = 1; i < argc; i++) {
 *         const char *v;
 *         if (cli_value(argc, argv, &i, "-m", "--model", &v)) model = v;
 *         else if (cli_flag(argv[i], NULL, "--json")) json = true;
 *         else if (argv[i][0] == '-') return cli_usage_error("x", "unknown option '%s'", argv[i]);
 *         else positional...
 *     }
 * cli_value sets *missing (when given) if the flag was last with no value. */
bool cli_flag(const char *arg, const char *short_name, const char *long_name);
bool cli_value(int argc, char **argv, int *i, const char *short_name, const char *long_name, const char **value);
/* Strict number parsing: whole string must be a number in range. */
bool cli_parse_int(const char *s, long long min, long long max, long long *out);
bool cli_parse_float(const char *s, double *out);
/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
size_t cli_utf8_seq(const unsigned char *s, size_t n);
/* Writes s[0..n) as a quoted JSON string: valid UTF-8 passes through, control
 * characters are escaped; a byte that is not valid UTF-8 becomes U+FFFD, or,
 * with bytes_as_code_points, the escape \u00NN of its value (so a byte
 * token's piece stays recoverable). */
void cli_json_string(FILE *f, const char *s, size_t n, bool bytes_as_code_points);
/* Milliseconds since the epoch as "2026-11-22T14:03:11Z" (UTC); "-" for <= 0. */
void cli_iso_time(int64_t ms, char out[32]);
/* Passphrases of signing keys (never a plain flag): the first line of `file`
 * when given, else $QAI_PASSPHRASE, else asked on the terminal with echo off
 * (a second time to confirm when `confirm`). pass holds CLI_PASS_MAX bytes
 * (callers keep it in sodium_malloc'd memory). Returns 0, or the exit code to
 * return (2 when there is no source at all). */
#define CLI_PASS_MAX 1024
int cli_get_passphrase(const char *cmd, const char *file, const char *prompt, bool confirm, char *pass);
/* True if a value was required but missing: cli_value leaves this set. */
extern const char *cli_missing_value;

#endif
