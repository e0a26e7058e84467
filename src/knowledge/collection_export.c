/*
 * Bulk export of a collection's chunks (qai_collection_export_chunks): what the trainer
 * cuts self-supervised (query, positive) pairs from. The chunks are read from
 * the version's chunks.db (read-only), in id order, so the same version
 * always gives the same file.
 *
 * What it deliberately does not do: sampling or tokenizing (the train layer
 * does that from the file), or reading the dedup twins (dropped documents
 * have no chunks).
 */
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "qai/collection.h"

qai_status qai_collection_export_chunks(qai_collection *c, const char *path, size_t *n_chunks, size_t *n_docs) {
    char db_path[4200];
    snprintf(db_path, sizeof db_path, "%s/chunks.db", qai_collection_path(c));
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        qai_status st = qai_error(QAI_ERR_IO, "collection '%s': cannot open '%s': %s", qai_collection_name(c), db_path,
                                  db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return st;
    }
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT doc_id, source, record_id, section, text FROM chunks ORDER BY id", -1, &q,
                           NULL) != SQLITE_OK) {
        qai_status st = qai_error(QAI_ERR_FORMAT, "collection '%s': '%s' has no readable chunks table: %s",
                                  qai_collection_name(c), db_path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return st;
    }
    qai_atomic_file af;
    qai_status st = qai_atomic_open(path, &af);
    const bool opened = st == QAI_OK;
    size_t nc = 0, nd = 0;
    int64_t last_doc = -1;
    int rc = SQLITE_DONE;
    while (!st && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t doc = sqlite3_column_int64(q, 0);
        const char *src = (const char *)sqlite3_column_text(q, 1), *rec = (const char *)sqlite3_column_text(q, 2);
        const char *sec = (const char *)sqlite3_column_text(q, 3), *text = (const char *)sqlite3_column_text(q, 4);
        if (!src || !text) continue;
        if (doc != last_doc) nd++, last_doc = doc;
        char *id = NULL;
        if (rec && *rec) {
            size_t n = strlen(src) + strlen(rec) + 2;
            id = qai_malloc(n);
            if (id) snprintf(id, n, "%s#%s", src, rec);
        }
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddStringToObject(o, "doc", id ? id : src);
            cJSON_AddStringToObject(o, "section", sec ? sec : "");
            cJSON_AddStringToObject(o, "text", text);
        }
        char *line = o ? cJSON_PrintUnformatted(o) : NULL;
        if (!line) st = qai_error(QAI_ERR_NOMEM, "out of memory exporting chunks");
        else if (fprintf(af.f, "%s\n", line) < 0) st = qai_error(QAI_ERR_IO, "cannot write '%s'", path);
        cJSON_free(line);
        cJSON_Delete(o);
        qai_free(id);
        nc++;
    }
    if (!st && rc != SQLITE_DONE)
        st = qai_error(QAI_ERR_IO, "collection '%s': reading '%s': %s", qai_collection_name(c), db_path,
                       sqlite3_errmsg(db));
    if (!st && nc == 0) st = qai_error(QAI_ERR_ARG, "collection '%s' has no chunks", qai_collection_name(c));
    sqlite3_finalize(q);
    sqlite3_close(db);
    if (st) {
        if (opened) qai_atomic_abort(&af);
        return st;
    }
    if ((st = qai_atomic_commit(&af))) return st;
    if (n_chunks) *n_chunks = nc;
    if (n_docs) *n_docs = nd;
    return QAI_OK;
}
