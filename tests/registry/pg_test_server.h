/* Tests' helpers for the store: start and stop a throwaway PostgreSQL server
 * from Debian's packages, and run raw SQL against a store (SQLite file or
 * PostgreSQL URL) behind qai's back, to tamper with rows or look at what is
 * really stored.
 *
 * The server: a fresh <store_test_dir()>/qai-pg.XXXXXX (owned by the
 * `postgres` user when the tests run as root, since PostgreSQL refuses to run
 * as root) holding a copy of a cluster made once by initdb and kept as
 * <store_test_dir()>/qai-pg-template.<uid>.<bin path> (about 40 MB; delete it
 * to make a new one), trust authentication, listening on 127.0.0.1 on a free port and
 * on a Unix socket in that directory; then a database "qai_test". pg_test_stop
 * stops it (immediate mode) and deletes the directory. When any step fails,
 * pg_test_start returns false with the reason in why[]: the caller prints
 * SKIP. The binaries come from $QAI_PG_BIN or /usr/lib/postgresql/<N>/bin. */
#ifndef QAI_PG_TEST_SERVER_H
#define QAI_PG_TEST_SERVER_H

#include <arpa/inet.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Where tests put their stores: /dev/shm when it is a writable directory (the
 * same SQLite and PostgreSQL code paths, minus the cost of fsync on a shared
 * disk, which is what makes these tests slow, not qai), else QAI_TMP or /tmp. */
static inline const char *store_test_dir(void) {
    if (access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
    const char *t = getenv("QAI_TMP");
    return t && *t ? t : "/tmp";
}

typedef struct {
    char bin[256];
    char dir[256];
    char runas[64]; /* "runuser -u postgres -- " or "" */
    int port;
    char url[512];
    bool running;
    char why[1024];
} pg_test_server;

static inline bool pg_find_bin_(char *out, size_t cap) {
    const char *env = getenv("QAI_PG_BIN");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return true;
    }
    DIR *d = opendir("/usr/lib/postgresql");
    if (!d) return false;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        int v = atoi(e->d_name);
        char p[300];
        snprintf(p, sizeof p, "/usr/lib/postgresql/%s/bin/initdb", e->d_name);
        if (v > best && access(p, X_OK) == 0) best = v;
    }
    closedir(d);
    if (best < 0) return false;
    snprintf(out, cap, "/usr/lib/postgresql/%d/bin", best);
    return true;
}

static inline int pg_free_port_(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static inline int pg_run_(pg_test_server *pg, const char *what, const char *cmd) {
    char full[2048];
    snprintf(full, sizeof full, "%s%s >>%s/%s.log 2>&1", pg->runas, cmd, pg->dir, what);
    return system(full);
}

/* durable=false: fsync off and the cluster in store_test_dir() (fast; the tests
 * kill clients, never the server). durable=true: fsync on, on the disk under
 * QAI_TMP or /tmp (for benchmarks). */
static inline bool pg_test_start(pg_test_server *pg, bool durable) {
    memset(pg, 0, sizeof *pg);
    if (!pg_find_bin_(pg->bin, sizeof pg->bin)) {
        snprintf(pg->why, sizeof pg->why, "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (set QAI_PG_BIN)");
        return false;
    }
    /* durable: on the real disk (QAI_TMP or /tmp), for honest fsync costs */
    const char *base = store_test_dir();
    if (durable) base = getenv("QAI_TMP") && *getenv("QAI_TMP") ? getenv("QAI_TMP") : "/tmp";
    snprintf(pg->dir, sizeof pg->dir, "%s/qai-pg.XXXXXX", base);
    if (!mkdtemp(pg->dir)) {
        snprintf(pg->why, sizeof pg->why, "mkdtemp failed");
        return false;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw) {
            snprintf(pg->why, sizeof pg->why, "running as root and there is no 'postgres' user to run the server as");
            rmdir(pg->dir);
            return false;
        }
        if (chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(pg->why, sizeof pg->why, "cannot chown %s to postgres", pg->dir);
            rmdir(pg->dir);
            return false;
        }
        snprintf(pg->runas, sizeof pg->runas, "runuser -u postgres -- ");
    }
    char cmd[1536];
    /* initdb is most of the start-up time (seconds on a busy machine): do it once
     * into a template next to the test folders, then copy the template. The
     * template is built in a private folder and renamed into place, so a
     * concurrent test never sees half of one. */
    char tmpl[400], tag[300];
    snprintf(tag, sizeof tag, "%s", pg->bin);
    for (char *c = tag; *c; c++)
        if (*c == '/') *c = '_';
    snprintf(tmpl, sizeof tmpl, "%s/qai-pg-template.%d%s", base, (int)geteuid(), tag);
    if (access(tmpl, F_OK) != 0) {
        snprintf(cmd, sizeof cmd, "%s/initdb -D %s/tmpl -U postgres -A trust -E UTF8 --no-locale --no-sync", pg->bin,
                 pg->dir);
        if (pg_run_(pg, "initdb", cmd) != 0) {
            snprintf(pg->why, sizeof pg->why, "initdb failed (see %s/initdb.log)", pg->dir);
            return false;
        }
        snprintf(cmd, sizeof cmd, "%s/tmpl", pg->dir);
        if (rename(cmd, tmpl) != 0) { /* another test made it first: use theirs */
            snprintf(cmd, sizeof cmd, "rm -rf '%s/tmpl'", pg->dir);
            if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s/tmpl\n", pg->dir);
        }
    }
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s/data'", tmpl, pg->dir);
    if (pg_run_(pg, "copy", cmd) != 0) {
        snprintf(pg->why, sizeof pg->why, "cannot copy the initdb template %s (see %s/copy.log)", tmpl, pg->dir);
        return false;
    }
    for (int attempt = 0; attempt < 3 && !pg->running; attempt++) {
        pg->port = pg_free_port_();
        snprintf(cmd, sizeof cmd,
                 "%s/pg_ctl -D %s/data -l %s/server.log -w -t 60 -o \"-p %d -k %s -c listen_addresses=127.0.0.1 "
                 "-c max_connections=50%s\" start",
                 pg->bin, pg->dir, pg->dir, pg->port, pg->dir,
                 durable ? "" : " -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        pg->running = pg_run_(pg, "pg_ctl", cmd) == 0;
    }
    if (!pg->running) {
        snprintf(pg->why, sizeof pg->why, "the server did not start (see %s/server.log)", pg->dir);
        return false;
    }
    char conninfo[600];
    snprintf(conninfo, sizeof conninfo, "postgresql://postgres@127.0.0.1:%d/postgres", pg->port);
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, "CREATE DATABASE qai_test") : NULL;
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) snprintf(pg->why, sizeof pg->why, "CREATE DATABASE failed: %s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    snprintf(pg->url, sizeof pg->url, "postgresql://postgres@127.0.0.1:%d/qai_test", pg->port);
    return ok;
}

static PGconn *raw_pg_conn_;
static inline void pg_test_stop(pg_test_server *pg) {
    char cmd[1024];
    if (raw_pg_conn_) {
        PQfinish(raw_pg_conn_);
        raw_pg_conn_ = NULL;
    }
    if (pg->running) {
        snprintf(cmd, sizeof cmd, "%s/pg_ctl -D %s/data -m immediate -w stop", pg->bin, pg->dir);
        pg_run_(pg, "pg_ctl", cmd);
        pg->running = false;
    }
    if (pg->dir[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", pg->dir);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", pg->dir);
        pg->dir[0] = 0;
    }
}

/* ---- raw SQL on a store, bypassing qai ---------------------------------------------- */

static inline bool raw_is_pg_(const char *url) { return !strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13); }
static inline const char *raw_sqlite_path_(const char *url) { return !strncmp(url, "sqlite:", 7) ? url + 7 : url; }

static inline void raw_quiet_(void *arg, const char *msg) { (void)arg, (void)msg; }

/* One cached connection (a new one per statement costs a server process each). */
static char raw_pg_url_[600];
static inline PGconn *raw_pg_(const char *url) {
    if (raw_pg_conn_ && (strcmp(raw_pg_url_, url) || PQstatus(raw_pg_conn_) != CONNECTION_OK)) {
        PQfinish(raw_pg_conn_);
        raw_pg_conn_ = NULL;
    }
    if (!raw_pg_conn_) {
        raw_pg_conn_ = PQconnectdb(url);
        PQsetNoticeProcessor(raw_pg_conn_, raw_quiet_, NULL);
        snprintf(raw_pg_url_, sizeof raw_pg_url_, "%s", url);
    }
    return raw_pg_conn_;
}

/* Runs SQL (no parameters); returns true on success. */
static inline bool raw_exec(const char *url, const char *sql) {
    if (raw_is_pg_(url)) {
        PGconn *c = raw_pg_(url);
        PGresult *r = PQexec(c, sql);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok) fprintf(stderr, "raw_exec: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        return ok;
    }
    sqlite3 *db;
    if (sqlite3_open(raw_sqlite_path_(url), &db) != SQLITE_OK) return false;
    sqlite3_busy_timeout(db, 10000);
    char *err = NULL;
    bool ok = sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK;
    if (!ok) fprintf(stderr, "raw_exec: %s: %s\n", sql, err ? err : "?");
    sqlite3_free(err);
    sqlite3_close(db);
    return ok;
}

/* The first column of the first row as text into out ("" if none); false on error. */
static inline bool raw_query(const char *url, const char *sql, char *out, size_t cap) {
    out[0] = 0;
    if (raw_is_pg_(url)) {
        PGconn *c = raw_pg_(url);
        PGresult *r = PQexec(c, sql);
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        if (ok && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
        if (!ok) fprintf(stderr, "raw_query: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        return ok;
    }
    sqlite3 *db;
    if (sqlite3_open(raw_sqlite_path_(url), &db) != SQLITE_OK) return false;
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK;
    int rc = ok ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc == SQLITE_ROW && sqlite3_column_text(st, 0)) snprintf(out, cap, "%s", sqlite3_column_text(st, 0));
    ok = ok && (rc == SQLITE_ROW || rc == SQLITE_DONE);
    if (!ok) fprintf(stderr, "raw_query: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

static inline long long raw_int(const char *url, const char *sql) {
    char buf[64];
    if (!raw_query(url, sql, buf, sizeof buf)) return -999;
    return atoll(buf);
}

#endif
