/* Mapping, reading and crash-safe writing of files. */
#include "qai/base.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

qai_status qai_file_map(const char *path, qai_mapped_file *out) {
    memset(out, 0, sizeof *out);
    out->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qai_error(QAI_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return qai_error(QAI_ERR_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return qai_error(QAI_ERR_IO, "'%s' is not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return qai_error(QAI_ERR_IO, "cannot map '%s': %s", path, strerror(e));
        }
        out->data = p;
    }
    out->size = (size_t)st.st_size;
    out->fd = fd;
    return QAI_OK;
}

void qai_file_unmap(qai_mapped_file *mf) {
    if (mf->data) munmap((void *)mf->data, mf->size);
    if (mf->fd >= 0) close(mf->fd);
    mf->data = NULL;
    mf->size = 0;
    mf->fd = -1;
}

qai_status qai_stream_read(FILE *f, const char *name, char **data, size_t *size) {
    size_t cap = 1 << 16, n = 0;
    char *buf = qai_malloc(cap);
    if (!buf) return QAI_ERR_NOMEM;
    for (;;) {
        if (cap - n < 4096) {
            char *nb = qai_realloc(buf, cap * 2);
            if (!nb) {
                qai_free(buf);
                return QAI_ERR_NOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    if (ferror(f)) {
        qai_free(buf);
        return qai_error(QAI_ERR_IO, "cannot read '%s': %s", name, strerror(errno));
    }
    buf[n] = 0;
    *data = buf;
    *size = n;
    return QAI_OK;
}

qai_status qai_file_read(const char *path, char **data, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return qai_error(QAI_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    qai_status st = qai_stream_read(f, path, data, size);
    fclose(f);
    return st;
}

qai_status qai_atomic_open(const char *path, qai_atomic_file *af) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path);
    af->path = qai_strdup(path);
    af->tmp_path = qai_malloc(n + 16);
    if (!af->path || !af->tmp_path) {
        qai_free(af->path);
        qai_free(af->tmp_path);
        return QAI_ERR_NOMEM;
    }
    snprintf(af->tmp_path, n + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->tmp_path);
    if (fd < 0) {
        int e = errno;
        qai_free(af->path);
        qai_free(af->tmp_path);
        return qai_error(QAI_ERR_IO, "cannot create a temporary file next to '%s': %s", path, strerror(e));
    }
    fchmod(fd, 0644);
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        unlink(af->tmp_path);
        qai_free(af->path);
        qai_free(af->tmp_path);
        return qai_error(QAI_ERR_IO, "cannot open a stream for '%s'", path);
    }
    return QAI_OK;
}

static void atomic_free(qai_atomic_file *af) {
    qai_free(af->path);
    qai_free(af->tmp_path);
    memset(af, 0, sizeof *af);
}

qai_status qai_atomic_commit(qai_atomic_file *af) {
    qai_status st = QAI_OK;
    if (fflush(af->f) != 0 || ferror(af->f))
        st = qai_error(QAI_ERR_IO, "cannot write '%s': %s", af->path, strerror(errno));
    else if (fsync(fileno(af->f)) != 0)
        st = qai_error(QAI_ERR_IO, "cannot fsync '%s': %s", af->path, strerror(errno));
    if (fclose(af->f) != 0 && st == QAI_OK)
        st = qai_error(QAI_ERR_IO, "cannot close '%s': %s", af->path, strerror(errno));
    af->f = NULL;
    if (st == QAI_OK && rename(af->tmp_path, af->path) != 0)
        st = qai_error(QAI_ERR_IO, "cannot rename into '%s': %s", af->path, strerror(errno));
    if (st != QAI_OK) {
        unlink(af->tmp_path);
    } else {
        char *dir = qai_strdup(af->path);
        if (dir) {
            int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
            qai_free(dir);
        }
    }
    atomic_free(af);
    return st;
}

void qai_atomic_abort(qai_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    atomic_free(af);
}
