/* Man page extraction: the man(7) and mdoc(7) fixtures in tests/data/ingest/
 * against hand-written expectations (what `man -l FILE | col -b` shows, minus
 * layout), escapes and conditionals in isolation, .so links, and when the
 * machine has them, real pages under /usr/share/man (ls(1) by content, a
 * sample of man1 for invariants). */
#include <dirent.h>
#include <stdlib.h>
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

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t l = qai_utf8_seq((const unsigned char *)s + i, n - i);
        if (!l) return false;
        i += l;
    }
    return true;
}

static bool has(const qai_doc *d, const char *s) {
    bool ok = strstr(d->text, s) != NULL;
    if (!ok) fprintf(stderr, "missing: '%s'\n", s);
    return ok;
}

static int find_section(const qai_doc *d, const char *title) {
    for (int i = 0; i < d->n_sections; i++)
        if (!strcmp(d->sections[i].title, title)) return i;
    return -1;
}

/* the text of a man fragment */
static char *man(const char *src) {
    qai_doc_list dl;
    if (qai_doc_extract("frag.1", src, strlen(src), QAI_DOC_MAN, &dl) != QAI_OK || dl.n_docs != 1) return NULL;
    char *t = strdup(dl.docs[0].text);
    qai_doc_list_free(&dl);
    return t;
}

static void check_frag(const char *src, const char *want) {
    char *got = man(src);
    CHECK_MSG(got && !strcmp(got, want), "roff '%s': got '%s' want '%s'", src, got ? got : "(error)", want);
    free(got);
}

static void test_fixture_man(void) {
    qai_doc_list dl;
    CHECK_OK(qai_doc_read_file(testdata("sample.1"), &dl));
    CHECK_EQ_INT(dl.type, QAI_DOC_MAN);
    const qai_doc *d = &dl.docs[0];
    CHECK(valid_utf8(d->text, d->len));
    CHECK(d->title && !strcmp(d->title, "frob(1) - frobnicate the bar"));
    CHECK(!strcmp(d->lang, "en"));
    const char *secs[] = {"NAME", "SYNOPSIS", "DESCRIPTION", "Options", "Table", "EXAMPLES", "SEE ALSO"};
    const int levels[] = {1, 1, 1, 2, 2, 1, 1};
    CHECK_EQ_INT(d->n_sections, 7);
    for (int i = 0; i < 7 && i < d->n_sections; i++) {
        CHECK_MSG(!strcmp(d->sections[i].title, secs[i]), "section %d '%s'", i, d->sections[i].title);
        CHECK_EQ_INT(d->sections[i].level, levels[i]);
        CHECK(!strncmp(d->text + d->sections[i].start, secs[i], strlen(secs[i])));
    }
    int desc = find_section(d, "DESCRIPTION"), ex = find_section(d, "EXAMPLES");
    if (desc >= 0 && ex >= 0) CHECK_EQ_INT(d->sections[desc].end, d->sections[ex].start);
    CHECK(has(d, "NAME\nfrob - frobnicate the bar\n"));
    CHECK(has(d, "SYNOPSIS\nfrob [-v] [FILE]...\n"));
    CHECK(has(d, "frob version 1.0 frobnicates FILE using \xe2\x80\x9cnroff\xe2\x80\x9d mode. It is \xe2\x80\x94 really "
                 "\xe2\x80\x94 fast\xe2\x84\xa2.\n"));
    CHECK(has(d, "Second paragraph with a \\ backslash and 'quotes'."));
    CHECK(has(d, "-v, --verbose\nBe verbose.\n"));
    CHECK(has(d, "-n NUM\nRepeat NUM times.\n"));
    CHECK(has(d, "\xe2\x80\xa2 bullet item"));
    CHECK(has(d, "Key | Value\nalpha | 1\nbeta | long text block\n"));
    CHECK(has(d, "EXAMPLES\nfrob   -v   a.txt\nfrob b.txt\n"));
    CHECK(has(d, "bar(1), baz(5)"));
    CHECK(!strstr(d->text, "should not appear") && !strstr(d->text, "not in nroff") && !strstr(d->text, "comment"));
    CHECK(!strstr(d->text, "tab(") && !strstr(d->text, "l l."));
    qai_doc_list_free(&dl);
}

static void test_fixture_mdoc(void) {
    qai_doc_list dl;
    CHECK_OK(qai_doc_read_file(testdata("sample_mdoc.1"), &dl));
    const qai_doc *d = &dl.docs[0];
    CHECK(valid_utf8(d->text, d->len));
    CHECK(d->title && !strcmp(d->title, "widget(1) - make widgets"));
    CHECK_EQ_INT(d->n_sections, 5);
    CHECK(find_section(d, "Notes") >= 0 && d->sections[find_section(d, "Notes")].level == 2);
    CHECK(has(d, "NAME\nwidget - make widgets\n"));
    CHECK(has(d, "SYNOPSIS\nwidget [-ab] [-o file] input ...\n"));
    CHECK(has(d, "The widget utility makes widgets, see gadget(8).\n"));
    CHECK(has(d, "-a\nAll widgets.\n-o file\nWrite to file.\n"));
    CHECK(has(d, "\xe2\x80\xa2 First note.\n\xe2\x80\xa2 Second note.\n"));
    CHECK(has(d, "The widget utility exits 0 on success, and >0 if an error occurs."));
    qai_doc_list_free(&dl);
}

static void test_escapes(void) {
    check_frag("a\\-b \\(em \\[em] \\(lq\\(rq \\e \\\\ x\n", "a-b \xe2\x80\x94 \xe2\x80\x94 \xe2\x80\x9c\xe2\x80\x9d \\ \\ x\n");
    check_frag("\\fBbold\\fR \\f(CWcw\\fP \\f[I]it\\f[] done\n", "bold cw it done\n");
    check_frag("no\\&space\\|here\\^ok \\s-1small\\s0 \\s+2big\\s-2\n", "nospacehereok small big\n");
    check_frag("\\[u00E9]t\\[u00E9] \\N'65' \\C'co'\n", "\xc3\xa9t\xc3\xa9 A \xc2\xa9\n");
    check_frag("join\\c\nme\n", "joinme\n");
    check_frag("text \\\" trailing comment\n", "text\n");
    check_frag(".ds xy hello\n\\*(xy \\*[xy] \\*x\n", "hello hello\n");
    check_frag("width \\w'abc' \\h'3n'gap \\v'-1'up\n", "width gap up\n");
    check_frag(".if n nroff\n.if t troff\n.if !t not-troff\n.ie '\\*(xx'' empty\n.el nonempty\n", "nroff not-troff empty\n");
    check_frag(".ie t \\{\\\ntroff block\n.\\}\n.el \\{\\\nnroff block\n.\\}\n", "nroff block\n");
    check_frag(".if \\n(.g \\{\\\ngroff\n.\\}\nafter\n", "groff after\n");
    check_frag(".de Foo\nhidden\n..\n.ig\nignored\n..\nshown\n", "shown\n");
    check_frag("line\\\ncontinued\n", "linecontinued\n");
    /* escape names and delimiters are whole characters, never cut UTF-8 sequences (found by fuzzing) */
    check_frag("a\\(e\xc3\xa9" "b \\o'\xc3\xa9" "x' \\w\xc3\xa9" "abc\xc3\xa9" " c \\*(\xc3\xa9\xc3\xa9" "d\n",
               "ab \xc3\xa9 c d\n");
    check_frag(".B \"two words\" third\n.I x\n", "two words third x\n");
    check_frag(".BI bold italic \" with space\"\n", "bolditalic with space\n");
    check_frag(".nf\n  a  b\n\n c\n.fi\nd\ne\n", "  a  b\n\n c\nd e\n");
    check_frag("first\n.br\nsecond\n.sp\nthird\n", "first\nsecond\n\nthird\n");
    check_frag(".TS\nallbox;\nc c\nl n.\nH1\tH2\nr1\t1\n.TE\n", "H1 | H2\nr1 | 1\n");
    check_frag(".SH\nHEADING ON NEXT LINE\nbody\n", "HEADING ON NEXT LINE\nbody\n");
    check_frag(".EQ\ndelim $$\n.EN\nafter eqn\n", "after eqn\n");
    /* hostile: unbalanced conditionals, deep nesting, unterminated things */
    const char *hostile[] = {
        ".if n \\{\\\n.if n \\{\\\nx\n", ".ie t \\{\\\nnever closed\n", ".el\n.el\n.el x\n", ".de\n", ".ig\n", ".TS\n",
        ".TS\nl.\nT{\nno end", "\\", "\\f", "\\(", "\\[", "\\*(", "\\s", "\\w'", "\\N'", ".SH", ".TH", ".It", ".Bl\n.It\n.El\n.El\n",
        ".Op Op Op Op Op Op Op Op Op Op Op Op Op Op Op Op Op Op Op x\n", ".Xr", ".Fn", ".Nd", ".so", ".ds a \\*a\n\\*a\n",
        ".ds a \\*b\n.ds b \\*a\n\\*a x\n", "'\\\" comment\n", ".\n..\n...\n", ".if '\\n'\n", ".if \"\n"};
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        qai_doc_list dl;
        qai_status st = qai_doc_extract("h.1", hostile[i], strlen(hostile[i]), QAI_DOC_MAN, &dl);
        CHECK_MSG(st == QAI_OK || st == QAI_ERR_UNSUPPORTED, "hostile %zu: %s", i, qai_last_error());
        if (st == QAI_OK) CHECK(valid_utf8(dl.docs[0].text, dl.docs[0].len));
        qai_doc_list_free(&dl);
    }
    /* deep nesting of .if is bounded */
    char deep[4096] = "";
    for (int i = 0; i < 500; i++) strcat(deep, ".if n ");
    strcat(deep, "deep\n");
    char *got = man(deep);
    CHECK(got != NULL); /* dropped past the nesting limit, but no crash or stack overflow */
    free(got);
}

static void test_so_link(void) {
    qai_doc_list dl;
    CHECK_EQ_INT(qai_doc_read_file(testdata("link.3"), &dl), QAI_ERR_UNSUPPORTED);
    CHECK(strstr(qai_last_error(), "link.3") && strstr(qai_last_error(), "man3/target.3"));
    CHECK_EQ_INT(dl.n_docs, 0);
}

static void test_real_pages(void) {
    qai_doc_list dl;
    if (access("/usr/share/man/man1/ls.1.gz", R_OK) == 0) {
        CHECK_OK(qai_doc_read_file("/usr/share/man/man1/ls.1.gz", &dl));
        const qai_doc *d = &dl.docs[0];
        CHECK(d->title && !strcmp(d->title, "ls(1) - list directory contents"));
        CHECK(find_section(d, "NAME") == 0 && find_section(d, "DESCRIPTION") > 0 && find_section(d, "SEE ALSO") > 0);
        CHECK(has(d, "-a, --all\ndo not ignore entries starting with ."));
        CHECK(has(d, "-A, --almost-all"));
        CHECK(!strstr(d->text, "\\f") && !strstr(d->text, "\\-"));
        CHECK(!strcmp(d->lang, "en"));
        qai_doc_list_free(&dl);
    } else
        fprintf(stderr, "note: /usr/share/man/man1/ls.1.gz missing, skipped\n");
    if (access("/usr/share/man/man1/ssh.1.gz", R_OK) == 0) { /* mdoc */
        CHECK_OK(qai_doc_read_file("/usr/share/man/man1/ssh.1.gz", &dl));
        const qai_doc *d = &dl.docs[0];
        CHECK(d->title && !strcmp(d->title, "ssh(1) - OpenSSH remote login client"));
        CHECK(has(d, "[-B bind_interface]"));
        CHECK(has(d, "ssh://[user@]hostname[:port]"));
        qai_doc_list_free(&dl);
    }
    /* a sample of man1: every page extracts (or is a .so link), valid UTF-8, a title, no roff left */
    DIR *dir = opendir("/usr/share/man/man1");
    if (!dir) return;
    char *names[400];
    int nn = 0;
    struct dirent *e;
    while ((e = readdir(dir)) && nn < 400)
        if (e->d_name[0] != '.') names[nn++] = strdup(e->d_name);
    closedir(dir);
    int ok = 0, links = 0, bad = 0, notitle = 0, leftovers = 0;
    for (int i = 0; i < nn; i++) {
        char p[4200];
        snprintf(p, sizeof p, "/usr/share/man/man1/%s", names[i]);
        qai_status st = qai_doc_read_file(p, &dl);
        if (st == QAI_ERR_UNSUPPORTED) links++;
        else if (st != QAI_OK) {
            bad++;
            fprintf(stderr, "%s: %s\n", p, qai_last_error());
        } else {
            ok++;
            for (int k = 0; k < dl.n_docs; k++) {
                const qai_doc *d = &dl.docs[k];
                if (!valid_utf8(d->text, d->len)) bad++;
                if (!d->title && d->len) notitle++;
                if (strstr(d->text, "\\fB") || strstr(d->text, "\n.SH ") || strstr(d->text, "\n.TP\n")) {
                    leftovers++;
                    fprintf(stderr, "roff left in %s\n", p);
                }
            }
            qai_doc_list_free(&dl);
        }
        free(names[i]);
    }
    fprintf(stderr, "man1 sample: %d ok, %d links, %d bad, %d without title, %d with roff left\n", ok, links, bad,
            notitle, leftovers);
    CHECK_EQ_INT(bad, 0);
    CHECK(notitle * 50 <= ok); /* a title for (almost) every page */
    CHECK_EQ_INT(leftovers, 0);
}

int main(void) {
    test_fixture_man();
    test_fixture_mdoc();
    test_escapes();
    test_so_link();
    test_real_pages();
    return test_summary();
}
