/* Extraction: type detection and the binary check, UTF-8 repair, plain text,
 * Markdown and HTML against hand-written expectations for the fixtures in
 * tests/data/ingest/, gzip reading with its size cap, and PDF through a
 * stand-in pdftotext (the real one is used when installed). Man pages, JSONL
 * and CSV are in test_extract_man.c and test_extract_records.c. */
#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "knowledge/ingest_internal.h"
#include "qai/ingest.h"
#include "test.h"

static const char *testdata(const char *name) {
    static char buf[4096];
    const char *d = getenv("QAI_TESTDATA");
    snprintf(buf, sizeof buf, "%s/ingest/%s", d ? d : "tests/data", name);
    return buf;
}

static const char *tmpdir(void) {
    const char *t = getenv("QAI_TMP");
    return t ? t : "/tmp";
}

/* every extracted text must be valid UTF-8 with sections inside it and in order */
static void check_doc_invariants(const qai_doc *d) {
    size_t i = 0;
    bool valid = true;
    while (i < d->len) {
        size_t l = qai_utf8_seq((const unsigned char *)d->text + i, d->len - i);
        if (!l) {
            valid = false;
            break;
        }
        i += l;
    }
    CHECK_MSG(valid, "invalid UTF-8 at byte %zu", i);
    CHECK(d->text[d->len] == 0);
    CHECK(strlen(d->text) == d->len);
    for (int s = 0; s < d->n_sections; s++) {
        CHECK(d->sections[s].start < d->sections[s].end && d->sections[s].end <= d->len);
        if (s) CHECK(d->sections[s].start >= d->sections[s - 1].start);
        CHECK(d->sections[s].title && d->sections[s].title[0]);
        CHECK(d->sections[s].level >= 1 && d->sections[s].level <= 6);
    }
}

static bool has(const qai_doc *d, const char *s) { return strstr(d->text, s) != NULL; }

/* text starting at a section's start */
static bool section_is(const qai_doc *d, int i, int level, const char *title, const char *starts_with) {
    if (i >= d->n_sections) return false;
    const qai_doc_section *s = &d->sections[i];
    bool ok = s->level == level && strcmp(s->title, title) == 0 &&
              strncmp(d->text + s->start, starts_with, strlen(starts_with)) == 0;
    if (!ok)
        fprintf(stderr, "section %d: level %d title '%s' text '%.20s' (want %d '%s' '%s')\n", i, s->level, s->title,
                d->text + s->start, level, title, starts_with);
    return ok;
}

static void test_detect(void) {
    qai_doc_type t;
    const char *txt = "hello world\n";
    CHECK_OK(qai_doc_detect("a/b/readme.md", txt, 12, &t));
    CHECK_EQ_INT(t, QAI_DOC_MARKDOWN);
    CHECK_OK(qai_doc_detect("x.HTM", txt, 12, &t));
    CHECK_EQ_INT(t, QAI_DOC_HTML);
    CHECK_OK(qai_doc_detect("/usr/share/man/man1/ls.1.gz", ".TH LS 1\n", 9, &t));
    CHECK_EQ_INT(t, QAI_DOC_MAN);
    CHECK_OK(qai_doc_detect("Foo::Bar.3pm", txt, 12, &t));
    CHECK_EQ_INT(t, QAI_DOC_MAN);
    CHECK_OK(qai_doc_detect("openssl.1ssl.gz", txt, 12, &t));
    CHECK_EQ_INT(t, QAI_DOC_MAN);
    CHECK_OK(qai_doc_detect("data.jsonl", "{}", 2, &t));
    CHECK_EQ_INT(t, QAI_DOC_JSONL);
    CHECK_OK(qai_doc_detect("t.csv", "a,b\n", 4, &t));
    CHECK_EQ_INT(t, QAI_DOC_CSV);
    CHECK_OK(qai_doc_detect("doc.pdf", "%PDF-1.4\n\x80\x81", 11, &t));
    CHECK_EQ_INT(t, QAI_DOC_PDF);
    CHECK_OK(qai_doc_detect("noext", "%PDF-1.7", 8, &t));
    CHECK_EQ_INT(t, QAI_DOC_PDF);
    CHECK_OK(qai_doc_detect("noext", "  <!DOCTYPE html><p>x", 21, &t));
    CHECK_EQ_INT(t, QAI_DOC_HTML);
    CHECK_OK(qai_doc_detect("noext", ".\\\" comment\n.TH X 1\n", 20, &t));
    CHECK_EQ_INT(t, QAI_DOC_MAN);
    CHECK_OK(qai_doc_detect("notes", txt, 12, &t));
    CHECK_EQ_INT(t, QAI_DOC_TEXT);
    CHECK_OK(qai_doc_detect(NULL, NULL, 0, &t));
    CHECK_EQ_INT(t, QAI_DOC_TEXT);
    /* binary: NUL bytes, mostly invalid UTF-8 */
    CHECK_EQ_INT(qai_doc_detect("a.txt", "abc\0def", 7, &t), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "a.txt") && strstr(qai_last_error(), "NUL"));
    char junk[64];
    for (int i = 0; i < 64; i++) junk[i] = (char)(0x80 + (i * 7) % 64);
    CHECK_EQ_INT(qai_doc_detect("b.txt", junk, 64, &t), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "b.txt") != NULL);
    /* a head cut inside a UTF-8 sequence is fine */
    const char *u = "caf\xc3\xa9 caf\xc3\xa9 caf\xc3\xa9 \xc3";
    CHECK_OK(qai_doc_detect("c.txt", u, strlen(u), &t));
    CHECK(!strcmp(qai_doc_type_name(QAI_DOC_MAN), "text/troff"));
    CHECK(!strcmp(qai_doc_type_name(QAI_DOC_JSONL), "application/jsonl"));
    CHECK(!strcmp(qai_doc_type_name(QAI_DOC_PDF), "application/pdf"));
}

static void test_plain(void) {
    /* CRLF, lone CR, invalid bytes, BOM */
    const char *in = "\xef\xbb\xbfHello\r\nworld\rbad \xff\xfe here \xe2\x82 x and some more text\n";
    qai_doc_list dl;
    CHECK_OK(qai_doc_extract("p.txt", in, strlen(in), QAI_DOC_TEXT, &dl));
    CHECK_EQ_INT(dl.n_docs, 1);
    if (dl.n_docs == 1) {
        const qai_doc *d = &dl.docs[0];
        CHECK(!strcmp(d->text, "Hello\nworld\nbad \xef\xbf\xbd\xef\xbf\xbd here \xef\xbf\xbd x and some more text\n"));
        check_doc_invariants(d);
        CHECK(d->title == NULL && d->record_id == NULL && d->meta_json == NULL);
    }
    qai_doc_list_free(&dl);
    /* mostly non-text is refused, with the name */
    char bin[200];
    for (int i = 0; i < 200; i++) bin[i] = (char)(i % 2 ? 0x01 : 0x9f);
    CHECK_EQ_INT(qai_doc_extract("bin.txt", bin, sizeof bin, QAI_DOC_TEXT, &dl), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "bin.txt") != NULL);
    CHECK_EQ_INT(dl.n_docs, 0);
    /* underlined headings */
    const char *ul = "Intro line.\n\nFirst Part\n==========\n\nBody one.\n\nA Sub\n-----\nBody two.\nnot a title\n---\n";
    CHECK_OK(qai_doc_extract("u.txt", ul, strlen(ul), QAI_DOC_TEXT, &dl));
    const qai_doc *d = &dl.docs[0];
    check_doc_invariants(d);
    CHECK_EQ_INT(d->n_sections, 2);
    CHECK(section_is(d, 0, 1, "First Part", "First Part\n===="));
    CHECK(section_is(d, 1, 2, "A Sub", "A Sub\n"));
    CHECK_EQ_INT(d->sections[0].end, d->len);
    qai_doc_list_free(&dl);
    /* empty input: one empty document */
    CHECK_OK(qai_doc_extract("e.txt", "", 0, QAI_DOC_TEXT, &dl));
    CHECK_EQ_INT(dl.n_docs, 1);
    CHECK_EQ_INT(dl.docs[0].len, 0);
    CHECK(!strcmp(dl.docs[0].lang, "und"));
    qai_doc_list_free(&dl);
}

static void test_markdown(void) {
    qai_doc_list dl;
    CHECK_OK(qai_doc_read_file(testdata("sample.md"), &dl));
    CHECK_EQ_INT(dl.type, QAI_DOC_MARKDOWN);
    CHECK_EQ_INT(dl.n_docs, 1);
    const qai_doc *d = &dl.docs[0];
    check_doc_invariants(d);
    CHECK(d->title && !strcmp(d->title, "Getting Started"));
    CHECK_EQ_INT(d->n_sections, 5);
    CHECK(section_is(d, 0, 1, "Getting Started", "# Getting Started #"));
    CHECK(section_is(d, 1, 2, "Install", "## Install"));
    CHECK(section_is(d, 2, 2, "Setext Title", "Setext Title\n---"));
    CHECK(section_is(d, 3, 3, "Deep", "### Deep ###"));
    CHECK(section_is(d, 4, 1, "Second Top", "Second Top\n==="));
    /* nesting: Getting Started ends where Second Top starts; Install ends at Setext Title */
    if (d->n_sections == 5) {
        CHECK_EQ_INT(d->sections[0].end, d->sections[4].start);
        CHECK_EQ_INT(d->sections[1].end, d->sections[2].start);
        CHECK_EQ_INT(d->sections[3].end, d->sections[4].start);
        CHECK_EQ_INT(d->sections[4].end, d->len);
    }
    /* text kept verbatim (front matter and code included) */
    CHECK(has(d, "# not a heading\nmake install"));
    CHECK(has(d, "[link](https://example.com/x)"));
    CHECK(!strncmp(d->text, "---\ntitle: front matter\n---\n", 28));
    qai_doc_list_free(&dl);
}

static void test_html(void) {
    qai_doc_list dl;
    CHECK_OK(qai_doc_read_file(testdata("sample.html"), &dl));
    CHECK_EQ_INT(dl.type, QAI_DOC_HTML);
    const qai_doc *d = &dl.docs[0];
    check_doc_invariants(d);
    CHECK(d->title && !strcmp(d->title, "Sample & Test"));
    CHECK_EQ_INT(d->n_sections, 4);
    CHECK(section_is(d, 0, 1, "Main \xe2\x80\x94 Title", "Main \xe2\x80\x94 Title\n"));
    CHECK(section_is(d, 1, 2, "Lists", "Lists\n"));
    CHECK(section_is(d, 2, 2, "Table", "Table\n"));
    CHECK(section_is(d, 3, 3, "Sub &unknown; heading", "Sub &unknown;"));
    CHECK(has(d, "First para with <tags>, caf\xc3\xa9, \xe2\x98\xba and nbsp."));
    CHECK(has(d, "Second para bold misnested text here."));
    CHECK(has(d, "- one\n- two\n- three \xc2\xa9 2024\n"));
    CHECK(has(d, "Name | Value\na | 1\n"));
    CHECK(has(d, "\n  keep   this\n    spacing\n"));
    CHECK(has(d, "raw <cdata> text"));
    CHECK(has(d, "end \xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd done"));
    CHECK(!has(d, "not a heading") && !has(d, "color") && !has(d, "hidden") && !has(d, "var x"));
    CHECK(!has(d, "Sample & Test")); /* the title is metadata */
    qai_doc_list_free(&dl);

    /* broken HTML: unterminated everything, never crashes, keeps text */
    const char *broken[] = {"<p>text <b", "<!-- never closed", "<script>alert(1)", "a < b and c > d", "<<<>>>&&&#;&#x;",
                            "<h1>open heading<p>para", "</p></div>stray</h2>", "<pre>unclosed\n  pre", "<![CDATA[x",
                            "&#99999999999999;&#x110000;", "<a href='>'>quoted gt</a>", "<title>t"};
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        CHECK_OK(qai_doc_extract("b.html", broken[i], strlen(broken[i]), QAI_DOC_HTML, &dl));
        if (dl.n_docs == 1) check_doc_invariants(&dl.docs[0]);
        qai_doc_list_free(&dl);
    }
    const char *h = "<h1>open heading<p>para";
    CHECK_OK(qai_doc_extract("b.html", h, strlen(h), QAI_DOC_HTML, &dl));
    CHECK(!strcmp(dl.docs[0].text, "open heading\n\npara\n"));
    CHECK_EQ_INT(dl.docs[0].n_sections, 1);
    CHECK(dl.docs[0].title && !strcmp(dl.docs[0].title, "open heading"));
    qai_doc_list_free(&dl);
    h = "a < b and c > d &amp &ampx &lt;";
    CHECK_OK(qai_doc_extract("b.html", h, strlen(h), QAI_DOC_HTML, &dl));
    CHECK(!strcmp(dl.docs[0].text, "a < b and c > d & &ampx <\n"));
    qai_doc_list_free(&dl);
    h = "<a href='>'>quoted gt</a><img alt=\"a cat\" src=x>";
    CHECK_OK(qai_doc_extract("b.html", h, strlen(h), QAI_DOC_HTML, &dl));
    CHECK(!strcmp(dl.docs[0].text, "quoted gt a cat\n"));
    qai_doc_list_free(&dl);
}

/* writes data gzip-compressed to path with libarchive (an independent writer) */
static bool write_gz(const char *path, const char *data, size_t n, size_t repeat) {
    struct archive *a = archive_write_new();
    archive_write_add_filter_gzip(a);
    archive_write_set_format_raw(a);
    if (archive_write_open_filename(a, path) != ARCHIVE_OK) {
        archive_write_free(a);
        return false;
    }
    struct archive_entry *e = archive_entry_new();
    archive_entry_set_pathname(e, "x");
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_size(e, (la_int64_t)(n * repeat));
    archive_write_header(a, e);
    for (size_t r = 0; r < repeat; r++) archive_write_data(a, data, n);
    archive_entry_free(e);
    archive_write_close(a);
    archive_write_free(a);
    return true;
}

static void test_gzip(void) {
    char p[4096];
    snprintf(p, sizeof p, "%s/ingest_test_page.7.gz", tmpdir());
    const char *page = ".TH GZT 7\n.SH NAME\ngzt \\- a gzipped page\n.SH DESCRIPTION\nBody text.\n";
    CHECK(write_gz(p, page, strlen(page), 1));
    qai_doc_list dl;
    CHECK_OK(qai_doc_read_file(p, &dl));
    CHECK_EQ_INT(dl.type, QAI_DOC_MAN);
    if (dl.n_docs == 1) {
        CHECK(dl.docs[0].title && !strcmp(dl.docs[0].title, "gzt(7) - a gzipped page"));
        CHECK(has(&dl.docs[0], "Body text."));
    }
    qai_doc_list_free(&dl);
    /* bytes as they are */
    char *data;
    size_t n;
    CHECK_OK(qai_doc_load_bytes(p, &data, &n));
    CHECK(n == strlen(page) && !memcmp(data, page, n));
    qai_free(data);
    /* a .gz that is not gzip */
    snprintf(p, sizeof p, "%s/ingest_test_plain.txt.gz", tmpdir());
    FILE *f = fopen(p, "wb");
    fputs("plain text, not compressed\n", f);
    fclose(f);
    CHECK(qai_doc_read_file(p, &dl) != QAI_OK);
    CHECK(strstr(qai_last_error(), "ingest_test_plain.txt.gz") != NULL);
    /* truncated gzip */
    snprintf(p, sizeof p, "%s/ingest_test_trunc.txt.gz", tmpdir());
    CHECK(write_gz(p, page, strlen(page), 200));
    struct stat st;
    stat(p, &st);
    CHECK(truncate(p, st.st_size / 2) == 0);
    CHECK(qai_doc_read_file(p, &dl) != QAI_OK);
    CHECK(strstr(qai_last_error(), "ingest_test_trunc.txt.gz") != NULL);
    /* decompression bomb: 65 MiB of text from a small file hits the cap */
    snprintf(p, sizeof p, "%s/ingest_test_bomb.txt.gz", tmpdir());
    static char block[1 << 16];
    memset(block, 'a', sizeof block);
    CHECK(write_gz(p, block, sizeof block, 1040));
    stat(p, &st);
    CHECK(st.st_size < (1 << 20));
    CHECK_EQ_INT(qai_doc_read_file(p, &dl), QAI_ERR_RANGE);
    CHECK(strstr(qai_last_error(), "ingest_test_bomb.txt.gz") && strstr(qai_last_error(), "64 MiB"));
    unlink(p);
    /* missing file */
    CHECK_EQ_INT(qai_doc_read_file("/nonexistent/x.md", &dl), QAI_ERR_IO);
    CHECK(strstr(qai_last_error(), "/nonexistent/x.md") != NULL);
}

static void test_pdf(void) {
    const char *pdf = "%PDF-1.4\n% fake\n";
    qai_doc_list dl;
    char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    /* no pdftotext on PATH: a clear message */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/ingest_fakebin", tmpdir());
    mkdir(dir, 0755);
    char exe[4200];
    snprintf(exe, sizeof exe, "%s/pdftotext", dir);
    unlink(exe);
    setenv("PATH", dir, 1);
    CHECK_EQ_INT(qai_doc_extract("x.pdf", pdf, strlen(pdf), QAI_DOC_UNKNOWN, &dl), QAI_ERR_UNSUPPORTED);
    CHECK(strstr(qai_last_error(), "pdftotext") && strstr(qai_last_error(), "poppler-utils") &&
          strstr(qai_last_error(), "x.pdf"));
    /* a stand-in pdftotext: checks its argv and prints two pages */
    FILE *f = fopen(exe, "w");
    fprintf(f, "#!/bin/sh\n[ \"$1\" = -enc ] && [ \"$2\" = UTF-8 ] && [ \"$5\" = - ] || exit 3\nread -r first < \"$4\"; case \"$first\" in %%PDF*) ;; *) exit 4;; esac\n"
               "printf 'Page one text.\\n\\fPage two \\303\\251t\\303\\251.\\n\\f'\n");
    fclose(f);
    chmod(exe, 0755);
    CHECK_OK(qai_doc_extract("x.pdf", pdf, strlen(pdf), QAI_DOC_PDF, &dl));
    CHECK_EQ_INT(dl.type, QAI_DOC_PDF);
    if (dl.n_docs == 1) {
        const qai_doc *d = &dl.docs[0];
        check_doc_invariants(d);
        CHECK(!strcmp(d->text, "Page one text.\n\nPage two \xc3\xa9t\xc3\xa9.\n"));
        CHECK_EQ_INT(d->n_sections, 2);
        CHECK(section_is(d, 0, 1, "page 1", "Page one"));
        CHECK(section_is(d, 1, 1, "page 2", "Page two"));
    }
    qai_doc_list_free(&dl);
    /* failing pdftotext */
    f = fopen(exe, "w");
    fprintf(f, "#!/bin/sh\nexit 1\n");
    fclose(f);
    CHECK_EQ_INT(qai_doc_extract("y.pdf", pdf, strlen(pdf), QAI_DOC_PDF, &dl), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "y.pdf") != NULL);
    unlink(exe);
    if (old) {
        setenv("PATH", old, 1);
        free(old);
    }
}

static void test_lang(void) {
    static const struct { const char *text, *lang; } cases[] = {
        {"The quick brown fox jumps over the lazy dog and it was not for the faint of heart.", "en"},
        {"Der schnelle braune Fuchs springt über den faulen Hund, und das ist nicht für jeden.", "de"},
        {"Le renard brun rapide saute par-dessus le chien paresseux et les chats sont dans la maison.", "fr"},
        {"El rápido zorro marrón salta sobre el perro perezoso y los gatos están en la casa con una niña.", "es"},
        {"La volpe marrone veloce salta sopra il cane pigro e gli altri sono nella casa della nonna.", "it"},
        {"De snelle bruine vos springt over de luie hond en het is niet voor een kat van de buren.", "nl"},
        {"A rápida raposa marrom salta sobre o cão preguiçoso e os gatos estão em uma casa não muito longe.", "pt"},
        {"12345 67890 +-*/ ===", "und"},
        {"", "und"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char l[8];
        qai_doc_guess_lang(cases[i].text, strlen(cases[i].text), l);
        CHECK_MSG(!strcmp(l, cases[i].lang), "case %zu: got %s want %s", i, l, cases[i].lang);
    }
}

/* every allocation failure inside extraction and chunking gives an error, never a crash or a leak
 * (leaks show under the ASan build) */
static void test_alloc_failures(void) {
    const char *files[] = {"sample.md", "sample.html", "sample.1", "sample_mdoc.1", "records.jsonl", "table.csv"};
    int failures = 0, oks = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char *data;
        size_t n;
        if (qai_doc_load_bytes(testdata(files[f]), &data, &n) != QAI_OK) {
            CHECK(0);
            continue;
        }
        for (long k = 1; k < 3000; k++) {
            qai_doc_list dl;
            int bad;
            qai_alloc_fail_after(k);
            qai_status st = qai_doc_extract_records(files[f], data, n, QAI_DOC_UNKNOWN, &dl, &bad);
            qai_chunk *c = NULL;
            int nc = 0;
            qai_status st2 = QAI_OK;
            if (st == QAI_OK && dl.n_docs > 0) st2 = qai_chunk_doc(&dl.docs[0], NULL, &c, &nc);
            qai_alloc_fail_after(0);
            if (st == QAI_OK) {
                qai_chunks_free(c, nc);
                qai_doc_list_free(&dl);
                if (st2 == QAI_OK) {
                    oks++;
                    break; /* k is past the last allocation */
                }
                CHECK_EQ_INT(st2, QAI_ERR_NOMEM);
            } else {
                CHECK_MSG(st == QAI_ERR_NOMEM, "%s, failing allocation %ld: status %d (%s)", files[f], k, st,
                          qai_last_error());
                CHECK_EQ_INT(dl.n_docs, 0);
            }
            failures++;
        }
        qai_free(data);
    }
    CHECK_EQ_INT(oks, 6);
    fprintf(stderr, "allocation failures injected: %d\n", failures);
}

int main(void) {
    test_alloc_failures();
    test_detect();
    test_plain();
    test_markdown();
    test_html();
    test_gzip();
    test_pdf();
    test_lang();
    return test_summary();
}
