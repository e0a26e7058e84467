/* Thread-local error messages and status names. */
#include "qai/base.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char g_err[1024];

#pragma GCC diagnostic ignored "-Wformat-truncation"

qai_status qai_error(qai_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return st;
}

qai_status qai_error_wrap(qai_status st, const char *fmt, ...) {
    char prefix[512], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    if (old[0])
        snprintf(g_err, sizeof g_err, "%s: %s", prefix, old);
    else
        snprintf(g_err, sizeof g_err, "%s", prefix);
    return st;
}

const char *qai_last_error(void) { return g_err; }

const char *qai_status_name(qai_status st) {
    switch (st) {
    case QAI_OK: return "ok";
    case QAI_ERR_IO: return "io";
    case QAI_ERR_FORMAT: return "format";
    case QAI_ERR_NOMEM: return "nomem";
    case QAI_ERR_ARG: return "arg";
    case QAI_ERR_UNSUPPORTED: return "unsupported";
    case QAI_ERR_NOT_FOUND: return "not-found";
    case QAI_ERR_RANGE: return "range";
    case QAI_ERR_INTERNAL: return "internal";
    default: return "unknown";
    }
}
