/*
 * extract_pdf.c — PDF through poppler's pdftotext, when installed.
 *
 * qai does not parse PDF itself. The bytes are written to a private temporary
 * file (mkstemp under $TMPDIR or /tmp, removed afterwards) and
 * `pdftotext -enc UTF-8 -q FILE -` runs by fork/exec with an argv (no shell),
 * found on $PATH, with stdin and stderr on /dev/null; its output is capped at
 * QAI_DOC_MAX_BYTES and the process is killed after 60 s. Each page (pdftotext
 * ends pages with a form feed) becomes a level-1 section "page N".
 */
#include "ingest_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PDF_TIMEOUT_MS 60000

static bool find_exe(const char *name, char *out, size_t cap) {
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *c = strchr(path, ':');
        size_t l = c ? (size_t)(c - path) : strlen(path);
        if (l && l + strlen(name) + 2 <= cap) {
            memcpy(out, path, l);
            out[l] = '/';
            strcpy(out + l + 1, name);
            if (access(out, X_OK) == 0) return true;
        }
        path += l + (c ? 1 : 0);
    }
    return false;
}

static qai_status write_all(int fd, const void *data, size_t n) {
    const char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return QAI_ERR_IO;
        }
        p += w;
        n -= (size_t)w;
    }
    return QAI_OK;
}

qai_status qai_extract_pdf(const char *path, const void *data, size_t size, qai_doc *d) {
    char exe[4096];
    if (!find_exe("pdftotext", exe, sizeof exe))
        return qai_error(QAI_ERR_UNSUPPORTED, "'%s': PDF needs pdftotext (apt-get install poppler-utils)", path);
    const char *td = getenv("TMPDIR");
    if (!td || !*td) td = "/tmp";
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/qai-pdf-XXXXXX", td);
    int fd = mkstemp(tmp);
    if (fd < 0) return qai_error(QAI_ERR_IO, "'%s': cannot create a temporary file in %s: %s", path, td, strerror(errno));
    if (write_all(fd, data, size) != QAI_OK) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return qai_error(QAI_ERR_IO, "'%s': cannot write temporary file '%s': %s", path, tmp, strerror(e));
    }
    close(fd);
    int pfd[2];
    if (pipe(pfd) != 0) {
        unlink(tmp);
        return qai_error(QAI_ERR_IO, "'%s': pipe failed: %s", path, strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(pfd[0]);
        close(pfd[1]);
        unlink(tmp);
        return qai_error(QAI_ERR_IO, "'%s': fork failed: %s", path, strerror(e));
    }
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) {
            dup2(dn, 0);
            dup2(dn, 2);
        }
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        char *const argv[] = {"pdftotext", "-enc", "UTF-8", "-q", tmp, "-", NULL};
        execv(exe, argv);
        _exit(127);
    }
    close(pfd[1]);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    qai_status st = QAI_OK;
    uint64_t t0 = qai_time_ns();
    for (;;) {
        int64_t left = PDF_TIMEOUT_MS - (int64_t)((qai_time_ns() - t0) / 1000000);
        if (left <= 0) {
            st = qai_error(QAI_ERR_IO, "'%s': pdftotext took longer than %d s; killed", path, PDF_TIMEOUT_MS / 1000);
            break;
        }
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        int pr = poll(&p, 1, (int)left);
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) continue;
        if (cap - n < 65536) {
            size_t nc = cap ? cap * 2 : 1 << 17;
            char *nb = qai_realloc(buf, nc);
            if (!nb) {
                st = QAI_ERR_NOMEM;
                break;
            }
            buf = nb;
            cap = nc;
        }
        ssize_t r = read(pfd[0], buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        if (n > QAI_DOC_MAX_BYTES) {
            st = qai_error(QAI_ERR_RANGE, "'%s': pdftotext output exceeds %zu MiB; refused", path,
                           QAI_DOC_MAX_BYTES >> 20);
            break;
        }
    }
    close(pfd[0]);
    if (st) kill(pid, SIGKILL);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    unlink(tmp);
    if (!st && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
        if (WIFEXITED(ws) && WEXITSTATUS(ws) == 127)
            st = qai_error(QAI_ERR_IO, "'%s': cannot run '%s'", path, exe);
        else
            st = qai_error(QAI_ERR_FORMAT, "'%s': pdftotext failed (%s %d); not a readable PDF?", path,
                           WIFEXITED(ws) ? "exit status" : "signal", WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws));
    }
    if (st) {
        qai_free(buf);
        return st;
    }
    size_t cl, bad;
    char *clean = qai_utf8_clean(buf ? buf : "", n, &cl, &bad);
    qai_free(buf);
    if (!clean) return QAI_ERR_NOMEM;
    /* pages: split at form feeds */
    qai_tb tb;
    tb_init(&tb);
    size_t i = 0;
    int page = 0;
    while (i < cl) {
        size_t e = i;
        while (e < cl && clean[e] != '\f') e++;
        page++;
        bool blank = true;
        for (size_t k = i; k < e; k++)
            if (clean[k] != ' ' && clean[k] != '\n' && clean[k] != '\t') blank = false;
        if (!blank) {
            tb_blankline(&tb);
            int idx = tb_section_begin(&tb, 1);
            char t[32];
            snprintf(t, sizeof t, "page %d", page);
            tb_section_title(&tb, idx, t, strlen(t));
            tb_raw(&tb, clean + i, e - i);
        }
        i = e + 1;
    }
    qai_free(clean);
    return tb_finish(&tb, d);
}
