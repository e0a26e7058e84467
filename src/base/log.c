/* Log lines on stderr, filtered by level (QAI_LOG or qai_log_set_level). */
#include "qai/base.h"

#include <stdlib.h>
#include <string.h>

static int g_level = -1;

static int env_level(void) {
    const char *e = getenv("QAI_LOG");
    if (!e) return QAI_LOG_WARN;
    if (!strcmp(e, "debug")) return QAI_LOG_DEBUG;
    if (!strcmp(e, "info")) return QAI_LOG_INFO;
    if (!strcmp(e, "error")) return QAI_LOG_ERROR;
    if (!strcmp(e, "off")) return QAI_LOG_OFF;
    return QAI_LOG_WARN;
}

void qai_log_set_level(qai_log_level level) { g_level = (int)level; }

qai_log_level qai_log_get_level(void) {
    if (g_level < 0) g_level = env_level();
    return (qai_log_level)g_level;
}

void qai_log(qai_log_level level, const char *fmt, ...) {
    if (level < qai_log_get_level()) return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    static const char *names[] = {"debug: ", "", "warning: ", "error: "};
    fprintf(stderr, "qai: %s%s\n", names[level < 4 ? level : 3], buf);
}
