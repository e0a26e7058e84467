/* qai data prepare and the dataset reader: the manifest against independent
 * hashes, the token stream against the tokenizer's own encoding of every
 * document, byte-identical output whatever the thread count, split stability
 * when inputs are added, windows across shards, 16- and 32-bit ids, and bad
 * inputs (empty, binary, bad JSONL, not a tokenizer, occupied output,
 * damaged shards and manifests). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qai/data.h"
#include "qai/gguf.h"
#include "qai/tokenizer.h"
#include "qai/tokenizer_train.h"
#include "test.h"

static char root[512];

/* Paths under the test's folder; kept until the end (freed in main). */
static char *paths_made[4096];
static int n_paths_made;
static char *path(const char *name) {
    char *p = malloc(strlen(root) + strlen(name) + 2);
    sprintf(p, "%s/%s", root, name);
    if (n_paths_made < 4096) paths_made[n_paths_made++] = p;
    return p;
}

static void write_file(const char *name, const char *data, size_t n) {
    char *p = path(name);
    char *slash = strrchr(p, '/');
    *slash = 0;
    qai_mkdirs(p);
    *slash = '/';
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}
static void write_str(const char *name, const char *s) { write_file(name, s, strlen(s)); }

static void rm_rf(const char *p) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", p);
}

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static bool same_file(const char *a, const char *b) {
    char *x, *y;
    size_t nx, ny;
    if (qai_file_read(a, &x, &nx)) return false;
    if (qai_file_read(b, &y, &ny)) {
        qai_free(x);
        return false;
    }
    bool eq = nx == ny && !memcmp(x, y, nx);
    qai_free(x);
    qai_free(y);
    return eq;
}

/* Every file of dir a equals the same-named file of dir b, and the counts match. */
static bool same_dir(const char *a, const char *b) {
    DIR *d = opendir(a);
    if (!d) return false;
    struct dirent *e;
    int na = 0, nb = 0;
    bool ok = true;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        na++;
        char pa[1024], pb[1024];
        snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
        if (!same_file(pa, pb)) {
            fprintf(stderr, "  %s differs\n", e->d_name);
            ok = false;
        }
    }
    closedir(d);
    d = opendir(b);
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') nb++;
    if (d) closedir(d);
    return ok && na == nb && na > 0;
}

/* ---- a small corpus and tokenizer ---- */

static const char *docs_txt[] = {
    "The cat sat on the mat. It was a sunny day and the cat was happy.\n",
    "Dogs like to run in the park; they chase balls and sticks.\n",
    "A tokenizer splits text into pieces. Pieces become ids.\n",
    "Once upon a time there was a little robot who wanted to learn.\n",
    "Caf\xc3\xa9 na\xc3\xafve r\xc3\xa9sum\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8d\xb0 and numbers 12345.\n",
};

static void make_tokenizer(void) {
    /* train on the documents repeated, SPM kind */
    char *text = NULL;
    size_t n = 0;
    for (int r = 0; r < 40; r++)
        for (size_t i = 0; i < sizeof docs_txt / sizeof docs_txt[0]; i++) {
            size_t l = strlen(docs_txt[i]);
            text = realloc(text, n + l + 1);
            memcpy(text + n, docs_txt[i], l);
            n += l;
        }
    qai_toktrain_opts o;
    qai_toktrain_opts_init(&o);
    o.vocab_size = 400;
    qai_vocab_desc d;
    const char *t = text;
    CHECK_OK(qai_tokenizer_train(&t, &n, 1, &o, &d, NULL));
    CHECK_OK(qai_vocab_write_gguf(&d, path("tok.gguf")));
    qai_vocab_release(&d);
    free(text);
}

static qai_tokenizer *load_tok(const char *p) {
    qai_gguf *g;
    qai_tokenizer *tok = NULL;
    if (qai_gguf_open(p, &g) == QAI_OK) {
        qai_tokenizer_from_gguf(g, &tok);
        qai_gguf_close(g);
    }
    return tok;
}

static void make_corpus(void) {
    write_str("in/a.txt", docs_txt[0]);
    write_str("in/b.md", "# Title\n\nSome *markdown* text about dogs and cats.\n\nAnother paragraph here.\n");
    write_str("in/sub/c.jsonl", "{\"text\": \"first json document\"}\n\n{\"text\": \"second \\u00e9 document\", \"id\": 2}\n");
    write_str("in/sub/d.text", docs_txt[1]);
    write_str("in/z.txt", docs_txt[4]);
    write_str("in/ignored.png", "\x89PNG\r\n\x1a\n");
    write_str("in/.hidden.txt", "hidden text that must not be read\n");
    for (int i = 0; i < 30; i++) {
        char name[64], body[128];
        snprintf(name, sizeof name, "in/many/doc%02d.txt", i);
        snprintf(body, sizeof body, "Document number %d talks about the cat and the dog %d times.\n", i, i * 7);
        write_str(name, body);
    }
}

static qai_data_prepare_opts opts(void) {
    qai_data_prepare_opts o;
    qai_data_prepare_opts_init(&o);
    o.tokenizer = path("tok.gguf");
    o.val_fraction = 0.2;
    o.seed = 42;
    return o;
}

/* The documents of a split, reconstructed from the stream: [BOS] ids EOS each. */
typedef struct {
    int32_t *v;
    size_t n;
} ids;

static int split_docs(const int32_t *t, uint64_t n, int32_t bos, int32_t eos, ids *out, int max) {
    int k = 0;
    uint64_t start = 0;
    for (uint64_t i = 0; i < n; i++)
        if (t[i] == eos) {
            if (k < max) {
                uint64_t s = start;
                if (bos >= 0 && s < i && t[s] == bos) s++;
                out[k].v = (int32_t *)t + s;
                out[k].n = (size_t)(i - s);
            }
            k++;
            start = i + 1;
        }
    return k;
}

static void test_prepare_and_read(void) {
    const char *in[] = {path("in")};
    qai_data_prepare_opts o = opts();
    qai_data_prepare_result r;
    CHECK_OK(qai_data_prepare(in, 1, path("out1"), &o, &r));
    CHECK_EQ_INT(r.n_files, 35);
    CHECK_EQ_INT(r.n_docs[0] + r.n_docs[1], 36); /* 34 text files + 2 JSONL lines */
    CHECK(r.n_docs[1] > 0 && r.n_docs[0] > r.n_docs[1]);

    /* the manifest, checked against independent hashes */
    char *text;
    size_t n;
    CHECK_OK(qai_file_read(path("out1/manifest.json"), &text, &n));
    cJSON *m = cJSON_Parse(text);
    CHECK(m != NULL);
    qai_free(text);
    if (!m) return;
    uint8_t h[32];
    char hex[65];
    CHECK_OK(qai_sha256_file(path("tok.gguf"), h, NULL));
    qai_hex(h, 32, hex);
    const cJSON *tk = cJSON_GetObjectItem(m, "tokenizer");
    CHECK(!strcmp(cJSON_GetObjectItem(tk, "sha256")->valuestring, hex));
    CHECK_EQ_INT(cJSON_GetObjectItem(tk, "n_vocab")->valueint, 400);
    CHECK(!strcmp(cJSON_GetObjectItem(m, "manifest_hash")->valuestring, r.manifest_hash));
    const cJSON *inputs = cJSON_GetObjectItem(m, "inputs");
    CHECK_EQ_INT(cJSON_GetArraySize(inputs), 35);
    /* sorted walk: in/a.txt, in/b.md, in/many/..., in/sub/c.jsonl, in/sub/d.text, in/z.txt */
    const char *first = cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, 0), "path")->valuestring;
    const char *last = cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, 34), "path")->valuestring;
    CHECK(strstr(first, "/in/a.txt") != NULL);
    CHECK(strstr(last, "/in/z.txt") != NULL);
    CHECK(strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, 2), "path")->valuestring, "/in/many/doc00.txt"));
    const cJSON *in_c = cJSON_GetArrayItem(inputs, 32);
    CHECK(strstr(cJSON_GetObjectItem(in_c, "path")->valuestring, "c.jsonl") != NULL);
    CHECK_EQ_INT(cJSON_GetObjectItem(in_c, "docs")->valueint, 2);
    uint64_t size;
    CHECK_OK(qai_sha256_file(cJSON_GetObjectItem(in_c, "path")->valuestring, h, &size));
    qai_hex(h, 32, hex);
    CHECK(!strcmp(cJSON_GetObjectItem(in_c, "sha256")->valuestring, hex));
    CHECK_EQ_INT(cJSON_GetObjectItem(in_c, "size")->valuedouble, size);
    for (int i = 0; i < cJSON_GetArraySize(inputs); i++) /* nothing hidden or ignored */
        CHECK(!strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, i), "path")->valuestring, "hidden") &&
              !strstr(cJSON_GetObjectItem(cJSON_GetArrayItem(inputs, i), "path")->valuestring, ".png"));
    const cJSON *sh = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(m, "splits"), "train"), "shards"), 0);
    CHECK_OK(qai_sha256_file(path("out1/train-00000.tok"), h, NULL));
    qai_hex(h, 32, hex);
    CHECK(!strcmp(cJSON_GetObjectItem(sh, "sha256")->valuestring, hex));
    cJSON_Delete(m);

    /* the reader */
    qai_dataset *ds;
    CHECK_OK(qai_dataset_open(path("out1"), &ds));
    if (!ds) return;
    CHECK_OK(qai_dataset_verify(ds));
    CHECK_EQ_INT(qai_dataset_n_vocab(ds), 400);
    CHECK_EQ_INT(qai_dataset_token_bytes(ds), 2);
    CHECK_EQ_INT(qai_dataset_bos(ds), 1);
    CHECK_EQ_INT(qai_dataset_eos(ds), 2);
    CHECK(!strcmp(qai_dataset_manifest_hash(ds), r.manifest_hash));
    CHECK_EQ_INT(strlen(qai_dataset_tokenizer_hash(ds)), 64);
    CHECK_EQ_INT(qai_dataset_n_tokens(ds, QAI_SPLIT_TRAIN), r.n_tokens[0]);
    CHECK_EQ_INT(qai_dataset_n_docs(ds, QAI_SPLIT_VAL), r.n_docs[1]);

    /* every document of either split is the tokenizer's encoding of an input
     * document; all 36 are there, each once */
    qai_tokenizer *tok = load_tok(path("tok.gguf"));
    CHECK(tok != NULL);
    const char *expect[37];
    int ne = 0;
    expect[ne++] = docs_txt[0];
    expect[ne++] = "# Title\n\nSome *markdown* text about dogs and cats.\n\nAnother paragraph here.\n";
    static char many[30][128];
    for (int i = 0; i < 30; i++) {
        snprintf(many[i], sizeof many[i], "Document number %d talks about the cat and the dog %d times.\n", i, i * 7);
        expect[ne++] = many[i];
    }
    expect[ne++] = "first json document";
    expect[ne++] = "second \xc3\xa9 document";
    expect[ne++] = docs_txt[1];
    expect[ne++] = docs_txt[4];
    int seen[37] = {0};
    for (int s = 0; s < 2 && tok; s++) {
        int32_t *t;
        uint64_t nt;
        CHECK_OK(qai_dataset_load_split(ds, (qai_split)s, &t, &nt));
        ids d[64];
        int nd = split_docs(t, nt, 1, 2, d, 64);
        CHECK_EQ_INT(nd, qai_dataset_n_docs(ds, (qai_split)s));
        CHECK(t[nt - 1] == 2);
        int prev = -1;
        for (int k = 0; k < nd && k < 64; k++) {
            int match = -1;
            for (int e = 0; e < ne; e++) {
                int32_t *enc;
                size_t ne2;
                qai_tokenizer_encode(tok, expect[e], strlen(expect[e]), 0, &enc, &ne2);
                if (ne2 == d[k].n && !memcmp(enc, d[k].v, ne2 * sizeof *enc)) match = e;
                qai_free(enc);
            }
            CHECK_MSG(match >= 0, "split %d document %d is no input document", s, k);
            if (match >= 0) {
                seen[match]++;
                CHECK_MSG(match > prev, "documents out of input order in split %d", s);
                prev = match;
            }
        }
        qai_free(t);
    }
    for (int e = 0; e < ne; e++) CHECK_MSG(seen[e] == 1, "document %d seen %d times", e, seen[e]);
    qai_tokenizer_free(tok);

    /* windows, range errors */
    int32_t w[8];
    uint64_t nt = qai_dataset_n_tokens(ds, QAI_SPLIT_TRAIN);
    CHECK_OK(qai_dataset_read(ds, QAI_SPLIT_TRAIN, nt - 8, 8, w));
    CHECK_EQ_INT(w[7], 2);
    CHECK_EQ_INT(qai_dataset_read(ds, QAI_SPLIT_TRAIN, nt - 7, 8, w), QAI_ERR_RANGE);
    CHECK_EQ_INT(qai_dataset_read(ds, QAI_SPLIT_VAL, UINT64_MAX, 1, w), QAI_ERR_RANGE);
    qai_dataset_close(ds);

    /* the same again on one thread, and into a second directory: identical bytes */
    o.n_threads = 1;
    CHECK_OK(qai_data_prepare(in, 1, path("out2"), &o, NULL));
    CHECK_MSG(same_dir(path("out1"), path("out2")), "two runs differ");
    o.n_threads = 3;
    CHECK_OK(qai_data_prepare(in, 1, path("out3"), &o, NULL));
    CHECK_MSG(same_dir(path("out1"), path("out3")), "1 and 3 threads differ");
    rm_rf(path("out2"));
    rm_rf(path("out3"));
}

/* Which documents went to val, as a bitmask over the 30 "many" documents. */
static uint64_t val_mask(const char *dir) {
    qai_dataset *ds;
    uint64_t mask = 0;
    if (qai_dataset_open(dir, &ds)) return UINT64_MAX;
    qai_tokenizer *tok = load_tok(path("tok.gguf"));
    int32_t *t;
    uint64_t nt;
    if (tok && qai_dataset_load_split(ds, QAI_SPLIT_VAL, &t, &nt) == QAI_OK) {
        ids d[64];
        int nd = split_docs(t, nt, 1, 2, d, 64);
        for (int i = 0; i < 30; i++) {
            char body[128];
            snprintf(body, sizeof body, "Document number %d talks about the cat and the dog %d times.\n", i, i * 7);
            int32_t *enc;
            size_t ne;
            qai_tokenizer_encode(tok, body, strlen(body), 0, &enc, &ne);
            for (int k = 0; k < nd && k < 64; k++)
                if (ne == d[k].n && !memcmp(enc, d[k].v, ne * sizeof *enc)) mask |= 1ull << i;
            qai_free(enc);
        }
        qai_free(t);
    }
    qai_tokenizer_free(tok);
    qai_dataset_close(ds);
    return mask;
}

static void test_split_stability(void) {
    const char *in[] = {path("in/many")};
    qai_data_prepare_opts o = opts();
    o.val_fraction = 0.3;
    CHECK_OK(qai_data_prepare(in, 1, path("st1"), &o, NULL));
    uint64_t m1 = val_mask(path("st1"));
    CHECK(m1 != 0 && m1 != UINT64_MAX && m1 != (1ull << 30) - 1);
    /* more inputs, before and after: the same documents stay in val */
    write_str("extra/aaa.txt", "An extra document that comes first.\n");
    write_str("extra/zzz.txt", "An extra document that comes last.\n");
    const char *in2[] = {path("extra/aaa.txt"), path("in/many"), path("extra/zzz.txt")};
    CHECK_OK(qai_data_prepare(in2, 3, path("st2"), &o, NULL));
    CHECK_EQ_INT(val_mask(path("st2")), m1);
    /* another seed moves some */
    o.seed = 43;
    CHECK_OK(qai_data_prepare(in, 1, path("st3"), &o, NULL));
    uint64_t m3 = val_mask(path("st3"));
    CHECK(m3 != m1 && m3 != UINT64_MAX);
    /* val 0: nothing in val */
    o.val_fraction = 0;
    CHECK_OK(qai_data_prepare(in, 1, path("st4"), &o, NULL));
    CHECK_EQ_INT(val_mask(path("st4")), 0);
    for (int i = 1; i <= 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "st%d", i);
        rm_rf(path(name));
    }
}

static void test_shards(void) {
    const char *in[] = {path("in")};
    qai_data_prepare_opts o = opts();
    o.shard_tokens = 97;
    CHECK_OK(qai_data_prepare(in, 1, path("sh"), &o, NULL));
    qai_dataset *ds, *ref;
    CHECK_OK(qai_dataset_open(path("sh"), &ds));
    CHECK_OK(qai_dataset_open(path("out1"), &ref)); /* same data in one shard */
    if (!ds || !ref) return;
    CHECK_OK(qai_dataset_verify(ds));
    uint64_t nt = qai_dataset_n_tokens(ds, QAI_SPLIT_TRAIN);
    CHECK_EQ_INT(nt, qai_dataset_n_tokens(ref, QAI_SPLIT_TRAIN));
    CHECK_EQ_INT(qai_dataset_n_shards(ds, QAI_SPLIT_TRAIN), (nt + 96) / 97);
    int32_t *all;
    uint64_t n;
    CHECK_OK(qai_dataset_load_split(ref, QAI_SPLIT_TRAIN, &all, &n));
    int bad = 0;
    for (uint64_t off = 0; off + 200 <= nt; off += 37) { /* windows crossing shard ends */
        int32_t w[200];
        CHECK_OK(qai_dataset_read(ds, QAI_SPLIT_TRAIN, off, 200, w));
        bad += memcmp(w, all + off, sizeof w) != 0;
    }
    CHECK_EQ_INT(bad, 0);
    qai_dataset_shard s;
    size_t last = qai_dataset_n_shards(ds, QAI_SPLIT_TRAIN) - 1;
    CHECK_OK(qai_dataset_get_shard(ds, QAI_SPLIT_TRAIN, 1, &s));
    CHECK_EQ_INT(s.n_tokens, 97);
    CHECK_EQ_INT(s.start, 97);
    CHECK_EQ_INT(((const uint16_t *)s.ids)[0], all[97]);
    CHECK(!strcmp(s.name, "train-00001.tok"));
    CHECK_OK(qai_dataset_get_shard(ds, QAI_SPLIT_TRAIN, last, &s));
    CHECK_EQ_INT(s.start + s.n_tokens, nt);
    CHECK_EQ_INT(qai_dataset_get_shard(ds, QAI_SPLIT_TRAIN, last + 1, &s), QAI_ERR_RANGE);
    qai_free(all);
    qai_dataset_close(ds);
    qai_dataset_close(ref);
}

/* A vocabulary past 65536 tokens: 32-bit ids in the shards. */
static void test_u32(void) {
    enum { NV = 70000 };
    qai_vocab_desc d = {0};
    d.kind = QAI_VOCAB_SPM;
    d.n_tokens = NV;
    char **toks = calloc(NV, sizeof *toks);
    float *scores = calloc(NV, sizeof *scores);
    int32_t *types = calloc(NV, sizeof *types);
    static const char *fixed[] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < NV; i++) {
        char b[32];
        if (i < 3) snprintf(b, sizeof b, "%s", fixed[i]), types[i] = i ? QAI_TOKEN_CONTROL : QAI_TOKEN_UNKNOWN;
        else if (i < 259) snprintf(b, sizeof b, "<0x%02X>", i - 3), types[i] = QAI_TOKEN_BYTE;
        else { /* one character each: U+10000 + i */
            uint32_t cp = 0x10000u + (uint32_t)i;
            b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
            b[2] = (char)(0x80 | (cp >> 6 & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), b[4] = 0;
            types[i] = QAI_TOKEN_NORMAL;
        }
        toks[i] = strdup(b);
        scores[i] = -(float)i;
    }
    d.tokens = (const char *const *)toks;
    d.scores = scores;
    d.types = types;
    d.bos = 1, d.eos = 2, d.unk = 0, d.eot = d.eom = d.pad = d.sep = -1;
    d.add_bos = true;
    d.add_space_prefix = true;
    CHECK_OK(qai_vocab_write_gguf(&d, path("big.gguf")));
    char big[32];
    uint32_t cps[2] = {0x10000u + 69999, 0x10000u + 65536};
    for (int k = 0; k < 2; k++) {
        uint32_t cp = cps[k];
        big[4 * k] = (char)(0xF0 | cp >> 18), big[4 * k + 1] = (char)(0x80 | (cp >> 12 & 0x3F));
        big[4 * k + 2] = (char)(0x80 | (cp >> 6 & 0x3F)), big[4 * k + 3] = (char)(0x80 | (cp & 0x3F));
    }
    memcpy(big + 8, "\n", 2);
    write_str("big/t.txt", big);
    const char *in[] = {path("big")};
    qai_data_prepare_opts o = opts();
    o.tokenizer = path("big.gguf");
    o.val_fraction = 0;
    CHECK_OK(qai_data_prepare(in, 1, path("bigout"), &o, NULL));
    qai_dataset *ds;
    CHECK_OK(qai_dataset_open(path("bigout"), &ds));
    if (ds) {
        CHECK_EQ_INT(qai_dataset_token_bytes(ds), 4);
        int32_t *t;
        uint64_t n;
        CHECK_OK(qai_dataset_load_split(ds, QAI_SPLIT_TRAIN, &t, &n));
        /* BOS, the dummy prefix as 3 byte tokens, the two characters, "\n" as a byte, EOS */
        CHECK_EQ_INT(n, 8);
        if (n == 8) {
            CHECK_EQ_INT(t[0], 1);
            CHECK_EQ_INT(t[1], 3 + 0xE2);
            CHECK_EQ_INT(t[4], 69999);
            CHECK_EQ_INT(t[5], 65536);
            CHECK_EQ_INT(t[6], 3 + 0x0A);
            CHECK_EQ_INT(t[7], 2);
        }
        qai_free(t);
        qai_dataset_close(ds);
    }
    for (int i = 0; i < NV; i++) free(toks[i]);
    free(toks);
    free(scores);
    free(types);
}

static void test_doc_split(void) {
    write_str("para/p.txt", "first paragraph\nstill first\n\n  \nsecond\n\n\nthird\nline\n");
    const char *in[] = {path("para")};
    qai_data_prepare_opts o = opts();
    o.val_fraction = 0;
    qai_data_prepare_result r;
    o.doc_split = QAI_DOCS_BLANK;
    CHECK_OK(qai_data_prepare(in, 1, path("pb"), &o, &r));
    CHECK_EQ_INT(r.n_docs[0], 3);
    o.doc_split = QAI_DOCS_LINE;
    CHECK_OK(qai_data_prepare(in, 1, path("pl"), &o, &r));
    CHECK_EQ_INT(r.n_docs[0], 5);
    o.doc_split = QAI_DOCS_FILE;
    CHECK_OK(qai_data_prepare(in, 1, path("pf"), &o, &r));
    CHECK_EQ_INT(r.n_docs[0], 1);
    rm_rf(path("pb"));
    rm_rf(path("pl"));
    rm_rf(path("pf"));
}

/* No directory named like out_dir or its temporaries is left behind. */
static bool leftovers(const char *base) {
    DIR *d = opendir(root);
    struct dirent *e;
    bool any = false;
    while (d && (e = readdir(d)))
        if (!strncmp(e->d_name, base, strlen(base))) any = true;
    if (d) closedir(d);
    return any;
}

static void test_bad_inputs(void) {
    qai_data_prepare_opts o = opts();
    /* empty corpus */
    write_str("empty/a.txt", "   \n\n\t\n");
    write_str("empty/b.jsonl", "\n\n");
    const char *e[] = {path("empty")};
    CHECK_EQ_INT(qai_data_prepare(e, 1, path("bad"), &o, NULL), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "empty corpus") != NULL);
    CHECK(!leftovers("bad"));
    /* a directory without text files */
    write_str("notext/x.bin", "x");
    const char *nt[] = {path("notext")};
    CHECK_EQ_INT(qai_data_prepare(nt, 1, path("bad"), &o, NULL), QAI_ERR_ARG);
    CHECK(!leftovers("bad"));
    /* binary and invalid UTF-8 */
    write_file("bin/ok.txt", "fine text\n", 10);
    write_file("bin/x.txt", "abc\0def", 7);
    const char *b[] = {path("bin")};
    CHECK_EQ_INT(qai_data_prepare(b, 1, path("bad"), &o, NULL), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "x.txt") && strstr(qai_last_error(), "offset 3"));
    CHECK(!leftovers("bad"));
    write_file("utf/y.txt", "ok \xc3\x28 no", 9);
    const char *u[] = {path("utf")};
    CHECK_EQ_INT(qai_data_prepare(u, 1, path("bad"), &o, NULL), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "invalid UTF-8 at byte offset 3") != NULL);
    /* skip_bad keeps going and records the skipped file */
    o.skip_bad = true;
    qai_data_prepare_result r;
    qai_log_level lv = qai_log_get_level();
    qai_log_set_level(QAI_LOG_ERROR);
    CHECK_OK(qai_data_prepare(b, 1, path("skip"), &o, &r));
    qai_log_set_level(lv);
    CHECK_EQ_INT(r.n_skipped_files, 1);
    CHECK_EQ_INT(r.n_docs[0] + r.n_docs[1], 1);
    char *text;
    size_t n;
    CHECK_OK(qai_file_read(path("skip/manifest.json"), &text, &n));
    CHECK(strstr(text, "\"skipped\"") != NULL);
    qai_free(text);
    o.skip_bad = false;
    /* bad JSONL */
    write_str("js/a.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"no text field\"}\n");
    const char *j[] = {path("js/a.jsonl")};
    CHECK_EQ_INT(qai_data_prepare(j, 1, path("bad"), &o, NULL), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "line 2") && strstr(qai_last_error(), "\"text\""));
    write_str("js/b.jsonl", "{\"text\": \"ok\"}\nnot json\n");
    j[0] = path("js/b.jsonl");
    CHECK_EQ_INT(qai_data_prepare(j, 1, path("bad"), &o, NULL), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "line 2") && strstr(qai_last_error(), "not valid JSON"));
    CHECK(!leftovers("bad"));
    /* not a tokenizer */
    const char *in[] = {path("in/a.txt")};
    o.tokenizer = path("in/a.txt");
    CHECK_EQ_INT(qai_data_prepare(in, 1, path("bad"), &o, NULL), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "not a GGUF file") != NULL);
    o.tokenizer = path("nope.gguf");
    CHECK_EQ_INT(qai_data_prepare(in, 1, path("bad"), &o, NULL), QAI_ERR_IO);
    write_str("notok.gguf", "GGUF garbage");
    o.tokenizer = path("notok.gguf");
    CHECK(qai_data_prepare(in, 1, path("bad"), &o, NULL) != QAI_OK);
    CHECK(!leftovers("bad"));
    o.tokenizer = path("tok.gguf");
    /* an occupied output directory is left alone; force replaces it */
    write_str("busy/keep.txt", "precious\n");
    CHECK_EQ_INT(qai_data_prepare(in, 1, path("busy"), &o, NULL), QAI_ERR_ARG);
    CHECK(exists(path("busy/keep.txt")));
    o.force = true;
    qai_log_level lv2 = qai_log_get_level();
    qai_log_set_level(QAI_LOG_ERROR); /* (one document: the "no validation document" warning) */
    CHECK_OK(qai_data_prepare(in, 1, path("busy"), &o, NULL));
    CHECK(!exists(path("busy/keep.txt")) && exists(path("busy/manifest.json")));
    o.force = false;
    /* an existing empty directory is fine */
    qai_mkdirs(path("emptyout"));
    CHECK_OK(qai_data_prepare(in, 1, path("emptyout"), &o, NULL));
    CHECK(exists(path("emptyout/manifest.json")));
    qai_log_set_level(lv2);
    /* bad arguments */
    o.val_fraction = 0.7;
    CHECK_EQ_INT(qai_data_prepare(in, 1, path("bad"), &o, NULL), QAI_ERR_ARG);
}

static void copy_dir(const char *from, const char *to) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
    if (system(cmd) != 0) fprintf(stderr, "copy failed\n");
}

static void test_damaged(void) {
    qai_dataset *ds;
    /* missing manifest */
    CHECK_EQ_INT(qai_dataset_open(path("in"), &ds), QAI_ERR_NOT_FOUND);
    CHECK_EQ_INT(qai_dataset_open(path("nothing-here"), &ds), QAI_ERR_NOT_FOUND);
    /* a flipped byte in a shard: open works (sizes fine), verify names the shard */
    copy_dir(path("out1"), path("dmg"));
    char *p = path("dmg/train-00000.tok");
    FILE *f = fopen(p, "r+b");
    fseek(f, 40, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 40, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    CHECK_OK(qai_dataset_open(path("dmg"), &ds));
    if (ds) {
        CHECK_EQ_INT(qai_dataset_verify(ds), QAI_ERR_FORMAT);
        CHECK(strstr(qai_last_error(), "train-00000.tok") != NULL);
        qai_dataset_close(ds);
    }
    /* a truncated shard */
    CHECK(truncate(p, 100) == 0);
    CHECK_EQ_INT(qai_dataset_open(path("dmg"), &ds), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "truncated") || strstr(qai_last_error(), "tokens at offset 16"));
    /* an edited manifest: the hash no longer matches */
    copy_dir(path("out1"), path("dmg"));
    char *text;
    size_t n;
    CHECK_OK(qai_file_read(path("dmg/manifest.json"), &text, &n));
    char *s = strstr(text, "\"seed\":");
    CHECK(s != NULL);
    if (s) {
        char *q = strchr(s + 8, '"') + 1; /* first digit of the seed string */
        *q = *q == '9' ? '8' : '9';
        write_file("dmg/manifest.json", text, n);
        CHECK_EQ_INT(qai_dataset_open(path("dmg"), &ds), QAI_ERR_FORMAT);
        CHECK(strstr(qai_last_error(), "manifest_hash") != NULL);
    }
    qai_free(text);
    /* manifest parser on its own */
    CHECK_EQ_INT(qai_dataset_manifest_parse("{", 1, "m", NULL), QAI_ERR_FORMAT);
    const char *v2 = "{\"format\": \"qai-dataset\", \"version\": 2}", *v1 = "{\"format\": \"qai-dataset\", \"version\": 1}";
    CHECK_EQ_INT(qai_dataset_manifest_parse(v2, strlen(v2), "m", NULL), QAI_ERR_UNSUPPORTED);
    CHECK_EQ_INT(qai_dataset_manifest_parse(v1, strlen(v1), "m", NULL), QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "'tokenizer'") != NULL);
    rm_rf(path("dmg"));
}

int main(void) {
    snprintf(root, sizeof root, "%s/test_data_%d", TEST_TMP(), (int)getpid());
    rm_rf(root);
    qai_mkdirs(root);
    make_tokenizer();
    make_corpus();
    test_prepare_and_read();
    test_split_stability();
    test_shards();
    test_u32();
    test_doc_split();
    test_bad_inputs();
    test_damaged();
    int rc = test_summary();
    if (rc == 0) rm_rf(root);
    for (int i = 0; i < n_paths_made; i++) free(paths_made[i]);
    return rc;
}
