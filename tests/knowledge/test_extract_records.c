/* JSONL and CSV extraction: records, ids, metadata, and errors that name
 * file:line, in strict mode (first bad record fails) and in skipping mode. */
#include <stdlib.h>

#include "qai/ingest.h"
#include "test.h"

static const char *testdata(const char *name) {
    static char buf[4096];
    const char *d = getenv("QAI_TESTDATA");
    snprintf(buf, sizeof buf, "%s/ingest/%s", d ? d : "tests/data", name);
    return buf;
}

static bool streq(const char *a, const char *b) {
    bool ok = a && b && !strcmp(a, b);
    if (!ok) fprintf(stderr, "got '%s' want '%s'\n", a ? a : "(null)", b ? b : "(null)");
    return ok;
}

static void test_jsonl(void) {
    qai_doc_list dl;
    char *data;
    size_t n;
    CHECK_OK(qai_doc_load_bytes(testdata("records.jsonl"), &data, &n));
    /* strict: line 4 has a number as text */
    CHECK_EQ_INT(qai_doc_extract("records.jsonl", data, n, QAI_DOC_UNKNOWN, &dl), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "records.jsonl:4:") != NULL);
    CHECK_EQ_INT(dl.n_docs, 0);
    /* skipping */
    int bad = -1;
    CHECK_OK(qai_doc_extract_records("records.jsonl", data, n, QAI_DOC_UNKNOWN, &dl, &bad));
    CHECK_EQ_INT(bad, 2);
    CHECK(strstr(qai_last_error(), "records.jsonl:4:") != NULL); /* the first bad record */
    CHECK_EQ_INT(dl.type, QAI_DOC_JSONL);
    CHECK_EQ_INT(dl.n_docs, 3);
    if (dl.n_docs == 3) {
        CHECK(streq(dl.docs[0].text, "first record"));
        CHECK(streq(dl.docs[0].record_id, "7"));
        CHECK(streq(dl.docs[0].meta_json, "{\"source\":\"a\"}"));
        CHECK(streq(dl.docs[1].text, "second\nrecord")); /* CRLF normalized */
        CHECK(streq(dl.docs[1].record_id, "x2"));
        CHECK(streq(dl.docs[1].meta_json, "{\"tags\":[\"t\"]}"));
        CHECK(streq(dl.docs[2].text, "last"));
        CHECK(dl.docs[2].record_id == NULL);
        CHECK(streq(dl.docs[2].title, "T"));
    }
    qai_doc_list_free(&dl);
    qai_free(data);
    /* error kinds, with line numbers */
    struct { const char *in, *msg; } errs[] = {
        {"{\"text\":\"a\"}\n{\"text\": \"b\"\n", "x.jsonl:2: invalid JSON"},
        {"[1,2]\n", "x.jsonl:1: not a JSON object"},
        {"\n\n{\"text\":\"a\"} trailing\n", "x.jsonl:3: text after the JSON value"},
        {"{\"content\": null}\n", "x.jsonl:1: no string field"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        CHECK_EQ_INT(qai_doc_extract("x.jsonl", errs[i].in, strlen(errs[i].in), QAI_DOC_JSONL, &dl), QAI_ERR_FORMAT);
        CHECK_MSG(strstr(qai_last_error(), errs[i].msg) != NULL, "got '%s' want '%s'", qai_last_error(), errs[i].msg);
    }
    /* a lone surrogate escape is invalid JSON (cJSON refuses it) */
    const char *j = "{\"text\": \"\\ud800 x\"}\n";
    CHECK_EQ_INT(qai_doc_extract("x.jsonl", j, strlen(j), QAI_DOC_JSONL, &dl), QAI_ERR_FORMAT);
    /* escapes, empty file */
    j = "{\"text\": \"caf\\u00e9 \\ud83d\\ude00 x\", \"id\": 1.5}\n";
    CHECK_OK(qai_doc_extract("x.jsonl", j, strlen(j), QAI_DOC_JSONL, &dl));
    if (dl.n_docs == 1) {
        CHECK(strncmp(dl.docs[0].text, "caf\xc3\xa9 \xf0\x9f\x98\x80 ", 10) == 0);
        CHECK(streq(dl.docs[0].record_id, "1.5"));
    }
    qai_doc_list_free(&dl);
    CHECK_OK(qai_doc_extract("x.jsonl", "", 0, QAI_DOC_JSONL, &dl));
    CHECK_EQ_INT(dl.n_docs, 0);
    qai_doc_list_free(&dl);
}

static void test_csv(void) {
    qai_doc_list dl;
    CHECK_OK(qai_doc_read_file(testdata("table.csv"), &dl));
    CHECK_EQ_INT(dl.type, QAI_DOC_CSV);
    CHECK_EQ_INT(dl.n_docs, 2);
    if (dl.n_docs == 2) {
        CHECK(streq(dl.docs[0].text, "says \"hi\"\nand bye"));
        CHECK(streq(dl.docs[0].meta_json, "{\"name\":\"Smith, J\",\"n\":\"1\"}"));
        CHECK(streq(dl.docs[0].record_id, "1"));
        CHECK(streq(dl.docs[1].text, "plain"));
        CHECK(streq(dl.docs[1].record_id, "2"));
    }
    qai_doc_list_free(&dl);
    /* no text column: "column: value" lines, empty cells left out */
    const char *c = "city,country,note\nParis,France,\nLima,Peru,\"multi\nline\"\n\n";
    CHECK_OK(qai_doc_extract("c.csv", c, strlen(c), QAI_DOC_CSV, &dl));
    CHECK_EQ_INT(dl.n_docs, 2);
    if (dl.n_docs == 2) {
        CHECK(streq(dl.docs[0].text, "city: Paris\ncountry: France"));
        CHECK(streq(dl.docs[1].text, "city: Lima\ncountry: Peru\nnote: multi\nline"));
        CHECK(streq(dl.docs[1].meta_json, "{\"city\":\"Lima\",\"country\":\"Peru\",\"note\":\"multi\\nline\"}"));
    }
    qai_doc_list_free(&dl);
    /* semicolon separated */
    c = "a;b\n1;2\n";
    CHECK_OK(qai_doc_extract("s.csv", c, strlen(c), QAI_DOC_CSV, &dl));
    CHECK(dl.n_docs == 1 && streq(dl.docs[0].text, "a: 1\nb: 2"));
    qai_doc_list_free(&dl);
    /* errors: unterminated quote (file:line of the record), field count, junk after a quote */
    CHECK_EQ_INT(qai_doc_read_file(testdata("bad.csv"), &dl), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "bad.csv:3: unterminated quoted field") != NULL);
    c = "a,b\n1,2\n1,2,3\n";
    CHECK_EQ_INT(qai_doc_extract("f.csv", c, strlen(c), QAI_DOC_CSV, &dl), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "f.csv:3: 3 fields, the header has 2") != NULL);
    c = "a,b\n\"x\"y,2\n";
    CHECK_EQ_INT(qai_doc_extract("q.csv", c, strlen(c), QAI_DOC_CSV, &dl), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "q.csv:2:") != NULL);
    /* skipping mode keeps the good rows */
    c = "a,b\n1,2\n1,2,3\n\"4\",\"5\"\n";
    int bad = 0;
    CHECK_OK(qai_doc_extract_records("f.csv", c, strlen(c), QAI_DOC_CSV, &dl, &bad));
    CHECK_EQ_INT(bad, 1);
    CHECK_EQ_INT(dl.n_docs, 2);
    if (dl.n_docs == 2) CHECK(streq(dl.docs[1].text, "a: 4\nb: 5"));
    qai_doc_list_free(&dl);
    /* header only, empty */
    CHECK_OK(qai_doc_extract("h.csv", "a,b\n", 4, QAI_DOC_CSV, &dl));
    CHECK_EQ_INT(dl.n_docs, 0);
    qai_doc_list_free(&dl);
    CHECK_OK(qai_doc_extract("h.csv", "", 0, QAI_DOC_CSV, &dl));
    CHECK_EQ_INT(dl.n_docs, 0);
    qai_doc_list_free(&dl);
}

int main(void) {
    test_jsonl();
    test_csv();
    return test_summary();
}
