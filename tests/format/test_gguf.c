/* GGUF reader and writer: round trips of every metadata type and tensor
 * layout, a file written by llama.cpp, and malformed files (each rejected with
 * a message naming the field and byte offset, never a crash). */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qai/gguf.h"
#include "test.h"

/* ---- a byte builder for hand-made files -------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void b_bytes(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void b_u32(buf *b, uint32_t v) { b_bytes(b, &v, 4); }
static void b_u64(buf *b, uint64_t v) { b_bytes(b, &v, 8); }
static void b_str(buf *b, const char *s) {
    b_u64(b, strlen(s));
    b_bytes(b, s, strlen(s));
}
static void b_zeros(buf *b, size_t n) {
    for (size_t i = 0; i < n; i++) b_bytes(b, "", 1);
}
static void b_pad(buf *b, size_t a) { b_zeros(b, (a - b->n % a) % a); }
static void b_hdr(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    b_u32(b, QAI_GGUF_MAGIC);
    b_u32(b, version);
    b_u64(b, n_tensors);
    b_u64(b, n_kv);
}
static void b_kv_u32(buf *b, const char *key, uint32_t v) {
    b_str(b, key);
    b_u32(b, QAI_GGUF_UINT32);
    b_u32(b, v);
}
/* tensor info with up to 2 dims */
static void b_tinfo(buf *b, const char *name, uint32_t nd, uint64_t ne0, uint64_t ne1, uint32_t type, uint64_t off) {
    b_str(b, name);
    b_u32(b, nd);
    b_u64(b, ne0);
    if (nd > 1) b_u64(b, ne1);
    b_u32(b, type);
    b_u64(b, off);
}

/* Opening must fail, with every given substring in the message. */
static void expect_fail_(int line, const buf *b, const char *const *subs) {
    qai_gguf *g = (qai_gguf *)1;
    qai_status st = qai_gguf_open_buffer(b->p, b->n, "bad.gguf", &g);
    if (st == QAI_OK || g != NULL) {
        t_fail++;
        fprintf(stderr, "%s:%d: malformed file was accepted\n", __FILE__, line);
        qai_gguf_close(g);
        return;
    }
    const char *msg = qai_last_error();
    for (; *subs; subs++) {
        if (strstr(msg, *subs)) t_pass++;
        else {
            t_fail++;
            fprintf(stderr, "%s:%d: message lacks '%s': %s\n", __FILE__, line, *subs, msg);
        }
    }
}
#define EXPECT_FAIL(b, ...) expect_fail_(__LINE__, b, (const char *const[]){"bad.gguf", __VA_ARGS__, NULL})

static void expect_ok_(int line, const buf *b) {
    qai_gguf *g;
    qai_status st = qai_gguf_open_buffer(b->p, b->n, "ok.gguf", &g);
    if (st) {
        t_fail++;
        fprintf(stderr, "%s:%d: valid file rejected: %s\n", __FILE__, line, qai_last_error());
    } else t_pass++;
    qai_gguf_close(g);
}
#define EXPECT_OK(b) expect_ok_(__LINE__, b)

/* ---- round trip ------------------------------------------------------------------ */

static char tmp_path[512];

static float f32_data[5 * 3];
static uint16_t f16_data[7];
static uint8_t q8_data[2 * 34 * 2]; /* q8_0: 64 x 2 -> 2 blocks of 34 bytes per row */
static int8_t i8_data[5];

static qai_gguf_writer *build_writer(uint32_t align) {
    qai_gguf_writer *w = qai_gguf_writer_new();
    CHECK(w != NULL);
    if (align) CHECK_OK(qai_gguf_set_u32(w, "general.alignment", align));
    CHECK_OK(qai_gguf_set_str(w, "general.architecture", "test"));
    CHECK_OK(qai_gguf_set_u32(w, "t.u32", 4000000000u));
    CHECK_OK(qai_gguf_set_i32(w, "t.i32", -123456));
    CHECK_OK(qai_gguf_set_u64(w, "t.u64", 0xFEDCBA9876543210ull));
    CHECK_OK(qai_gguf_set_f32(w, "t.f32", 0.1f));
    CHECK_OK(qai_gguf_set_bool(w, "t.bool", true));
    CHECK_OK(qai_gguf_set_str(w, "t.str", "héllo \"world\"\n"));
    CHECK_OK(qai_gguf_set_str(w, "t.empty", ""));
    CHECK_OK(qai_gguf_set_u32(w, "t.replaced", 1));
    CHECK_OK(qai_gguf_set_str(w, "t.removed", "x"));
    const char *strs[] = {"a", "", "b\0c", "▁the"};
    size_t lens[] = {1, 0, 3, strlen("▁the")};
    CHECK_OK(qai_gguf_set_arr_str(w, "t.arr_str", strs, lens, 4));
    CHECK_OK(qai_gguf_set_arr_str(w, "t.arr_str0", NULL, NULL, 0));
    uint8_t u8[] = {0, 1, 255};
    int8_t i8[] = {-128, 0, 127};
    uint16_t u16[] = {0, 65535};
    int16_t i16[] = {-32768, 32767};
    uint32_t u32[] = {0, 4294967295u};
    int32_t i32[] = {INT32_MIN, -1, INT32_MAX};
    float f32[] = {1.5f, -0.0f, 3.25e-8f};
    uint8_t bools[] = {1, 0, 1};
    uint64_t u64[] = {UINT64_MAX, 7};
    int64_t i64[] = {INT64_MIN, INT64_MAX};
    double f64[] = {3.141592653589793, -1e300};
    CHECK_OK(qai_gguf_set_arr_data(w, "a.u8", QAI_GGUF_UINT8, u8, 3));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.i8", QAI_GGUF_INT8, i8, 3));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.u16", QAI_GGUF_UINT16, u16, 2));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.i16", QAI_GGUF_INT16, i16, 2));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.u32", QAI_GGUF_UINT32, u32, 2));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.i32", QAI_GGUF_INT32, i32, 3));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.f32", QAI_GGUF_FLOAT32, f32, 3));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.bool", QAI_GGUF_BOOL, bools, 3));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.u64", QAI_GGUF_UINT64, u64, 2));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.i64", QAI_GGUF_INT64, i64, 2));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.f64", QAI_GGUF_FLOAT64, f64, 2));
    CHECK_OK(qai_gguf_set_arr_data(w, "a.empty", QAI_GGUF_INT32, NULL, 0));
    CHECK(qai_gguf_set_arr_data(w, "a.bad", QAI_GGUF_STRING, strs, 1) == QAI_ERR_ARG);
    CHECK_OK(qai_gguf_set_u32(w, "t.replaced", 2)); /* replaced in place, keeps its position */
    qai_gguf_remove_kv(w, "t.removed");
    qai_gguf_remove_kv(w, "t.never-there");

    for (int i = 0; i < 15; i++) f32_data[i] = (float)i * 0.5f - 3;
    for (int i = 0; i < 7; i++) f16_data[i] = qai_fp32_to_fp16((float)i);
    for (size_t i = 0; i < sizeof q8_data; i++) q8_data[i] = (uint8_t)(i * 7 + 1);
    for (int i = 0; i < 5; i++) i8_data[i] = (int8_t)(i - 2);
    CHECK_OK(qai_gguf_add_tensor(w, "i8", QAI_TYPE_I8, 1, (int64_t[]){5}, i8_data, 5));
    CHECK_OK(qai_gguf_add_tensor(w, "f32", QAI_TYPE_F32, 2, (int64_t[]){5, 3}, f32_data, sizeof f32_data));
    CHECK_OK(qai_gguf_add_tensor(w, "f16", QAI_TYPE_F16, 1, (int64_t[]){7}, f16_data, sizeof f16_data));
    CHECK_OK(qai_gguf_add_tensor(w, "q8", QAI_TYPE_Q8_0, 2, (int64_t[]){64, 2}, q8_data, qai_row_size(QAI_TYPE_Q8_0, 64) * 2));
    /* writer-side validation */
    CHECK(qai_gguf_add_tensor(w, "f32", QAI_TYPE_F32, 1, (int64_t[]){1}, f32_data, 4) == QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "twice") != NULL);
    CHECK(qai_gguf_add_tensor(w, "short", QAI_TYPE_F32, 1, (int64_t[]){4}, f32_data, 12) == QAI_ERR_ARG);
    CHECK(strstr(qai_last_error(), "need 16") != NULL);
    CHECK(qai_gguf_add_tensor(w, "q8bad", QAI_TYPE_Q8_0, 1, (int64_t[]){33}, q8_data, 34) == QAI_ERR_ARG);
    CHECK(qai_gguf_add_tensor(w, "unk", (qai_type)5, 1, (int64_t[]){1}, q8_data, 1) == QAI_ERR_ARG);
    CHECK(qai_gguf_add_tensor(w, "dims", QAI_TYPE_F32, 5, (int64_t[]){1, 1, 1, 1, 1}, f32_data, 4) == QAI_ERR_ARG);
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = 0;
    CHECK(qai_gguf_add_tensor(w, longname, QAI_TYPE_F32, 1, (int64_t[]){1}, f32_data, 4) == QAI_ERR_ARG);
    return w;
}

static void check_read(const qai_gguf *g, size_t align) {
    CHECK_EQ_INT(qai_gguf_version(g), 3);
    CHECK_EQ_INT(qai_gguf_alignment(g), align);
    CHECK_EQ_INT(qai_gguf_data_offset(g) % align, 0);
    int64_t iv;
    double dv;
    bool bv;
    const char *sv;
    CHECK_OK(qai_gguf_get_int(g, "t.u32", &iv));
    CHECK_EQ_INT(iv, 4000000000ll);
    CHECK_OK(qai_gguf_get_int(g, "t.i32", &iv));
    CHECK_EQ_INT(iv, -123456);
    CHECK(qai_gguf_get_int(g, "t.u64", &iv) == QAI_ERR_FORMAT); /* > INT64_MAX */
    CHECK(strstr(qai_last_error(), "t.u64") != NULL);
    CHECK_OK(qai_gguf_get_float(g, "t.u64", &dv));
    CHECK(dv == (double)0xFEDCBA9876543210ull);
    CHECK_OK(qai_gguf_get_float(g, "t.f32", &dv));
    CHECK(dv == (double)0.1f);
    CHECK_OK(qai_gguf_get_float(g, "t.i32", &dv));
    CHECK(dv == -123456.0);
    CHECK_OK(qai_gguf_get_bool(g, "t.bool", &bv));
    CHECK(bv);
    CHECK_OK(qai_gguf_get_int(g, "t.bool", &iv));
    CHECK_EQ_INT(iv, 1);
    CHECK_OK(qai_gguf_get_str(g, "t.str", &sv));
    CHECK(!strcmp(sv, "héllo \"world\"\n"));
    CHECK_OK(qai_gguf_get_str(g, "t.empty", &sv));
    CHECK(!strcmp(sv, ""));
    CHECK_OK(qai_gguf_get_int(g, "t.replaced", &iv));
    CHECK_EQ_INT(iv, 2);
    CHECK(qai_gguf_find_kv(g, "t.replaced") == qai_gguf_find_kv(g, "t.replaced"));
    CHECK(qai_gguf_find_kv(g, "t.replaced") < qai_gguf_find_kv(g, "t.arr_str"));
    CHECK_EQ_INT(qai_gguf_find_kv(g, "t.removed"), -1);
    CHECK(qai_gguf_get_int(g, "t.removed", &iv) == QAI_ERR_NOT_FOUND);
    CHECK(qai_gguf_get_int(g, "t.str", &iv) == QAI_ERR_FORMAT);
    CHECK(strstr(qai_last_error(), "'t.str'") && strstr(qai_last_error(), "string") && strstr(qai_last_error(), "offset"));
    CHECK(qai_gguf_get_str(g, "t.u32", &sv) == QAI_ERR_FORMAT);
    CHECK(qai_gguf_get_bool(g, "t.u32", &bv) == QAI_ERR_FORMAT);
    CHECK(qai_gguf_get_float(g, "t.str", &dv) == QAI_ERR_FORMAT);

    int64_t i = qai_gguf_find_kv(g, "t.arr_str");
    CHECK(i >= 0 && qai_gguf_kv_type(g, i) == QAI_GGUF_ARRAY);
    if (i >= 0) {
        CHECK(qai_gguf_arr_type(g, i) == QAI_GGUF_STRING);
        CHECK_EQ_INT(qai_gguf_arr_len(g, i), 4);
        CHECK(!strcmp(qai_gguf_arr_str(g, i, 0), "a"));
        CHECK(!strcmp(qai_gguf_arr_str(g, i, 1), ""));
        CHECK_EQ_INT(qai_gguf_arr_str_len(g, i, 2), 3);
        CHECK(!memcmp(qai_gguf_arr_str(g, i, 2), "b\0c", 4));
        CHECK(!strcmp(qai_gguf_arr_str(g, i, 3), "▁the"));
    }
    i = qai_gguf_find_kv(g, "t.arr_str0");
    CHECK(i >= 0 && qai_gguf_arr_len(g, i) == 0 && qai_gguf_arr_type(g, i) == QAI_GGUF_STRING);
    struct {
        const char *key;
        qai_gguf_type t;
        int n;
        int64_t iv[3];
        double fv[3];
    } arrs[] = {
        {"a.u8", QAI_GGUF_UINT8, 3, {0, 1, 255}, {0, 1, 255}},
        {"a.i8", QAI_GGUF_INT8, 3, {-128, 0, 127}, {-128, 0, 127}},
        {"a.u16", QAI_GGUF_UINT16, 2, {0, 65535}, {0, 65535}},
        {"a.i16", QAI_GGUF_INT16, 2, {-32768, 32767}, {-32768, 32767}},
        {"a.u32", QAI_GGUF_UINT32, 2, {0, 4294967295ll}, {0, 4294967295.0}},
        {"a.i32", QAI_GGUF_INT32, 3, {INT32_MIN, -1, INT32_MAX}, {INT32_MIN, -1, INT32_MAX}},
        {"a.f32", QAI_GGUF_FLOAT32, 3, {1, 0, 0}, {1.5, -0.0, (double)3.25e-8f}},
        {"a.bool", QAI_GGUF_BOOL, 3, {1, 0, 1}, {1, 0, 1}},
        {"a.u64", QAI_GGUF_UINT64, 2, {-1, 7}, {(double)UINT64_MAX, 7}},
        {"a.i64", QAI_GGUF_INT64, 2, {INT64_MIN, INT64_MAX}, {(double)INT64_MIN, (double)INT64_MAX}},
        {"a.f64", QAI_GGUF_FLOAT64, 2, {3, -INT64_MAX}, {3.141592653589793, -1e300}},
    };
    for (size_t k = 0; k < sizeof arrs / sizeof arrs[0]; k++) {
        i = qai_gguf_find_kv(g, arrs[k].key);
        CHECK_MSG(i >= 0, "%s", arrs[k].key);
        if (i < 0) continue;
        CHECK_MSG(qai_gguf_arr_type(g, i) == arrs[k].t, "%s", arrs[k].key);
        CHECK_EQ_INT(qai_gguf_arr_len(g, i), arrs[k].n);
        for (int j = 0; j < arrs[k].n; j++) {
            if (arrs[k].t != QAI_GGUF_FLOAT64)
                CHECK_MSG(qai_gguf_arr_int(g, i, (uint64_t)j) == arrs[k].iv[j], "%s[%d]", arrs[k].key, j);
            CHECK_MSG(qai_gguf_arr_float(g, i, (uint64_t)j) == arrs[k].fv[j], "%s[%d] = %g", arrs[k].key, j,
                      qai_gguf_arr_float(g, i, (uint64_t)j));
        }
    }
    i = qai_gguf_find_kv(g, "a.empty");
    CHECK(i >= 0 && qai_gguf_arr_len(g, i) == 0);

    CHECK_EQ_INT(qai_gguf_n_tensors(g), 4);
    const qai_gguf_tensor *t;
    const uint8_t *base = (const uint8_t *)qai_gguf_tensor_at(g, 0)->data - qai_gguf_data_offset(g) -
                          qai_gguf_tensor_at(g, 0)->offset;
    for (int64_t k = 0; k < qai_gguf_n_tensors(g); k++) {
        t = qai_gguf_tensor_at(g, k);
        CHECK_EQ_INT(t->offset % align, 0);
        CHECK_EQ_INT(((const uint8_t *)t->data - base) % align, 0);
        CHECK(qai_gguf_find_tensor(g, t->name) == t);
    }
    CHECK(qai_gguf_tensor_at(g, 4) == NULL && qai_gguf_tensor_at(g, -1) == NULL);
    CHECK(qai_gguf_find_tensor(g, "nope") == NULL);
    t = qai_gguf_find_tensor(g, "i8");
    CHECK(t && t->type == QAI_TYPE_I8 && t->n_dims == 1 && t->ne[0] == 5 && t->ne[1] == 1 && t->size == 5 &&
          !memcmp(t->data, i8_data, 5));
    t = qai_gguf_find_tensor(g, "f32");
    CHECK(t && t->type == QAI_TYPE_F32 && t->n_dims == 2 && t->ne[0] == 5 && t->ne[1] == 3 && t->ne[2] == 1 &&
          t->size == sizeof f32_data && !memcmp(t->data, f32_data, sizeof f32_data));
    t = qai_gguf_find_tensor(g, "f16");
    CHECK(t && t->type == QAI_TYPE_F16 && t->size == sizeof f16_data && !memcmp(t->data, f16_data, sizeof f16_data));
    t = qai_gguf_find_tensor(g, "q8");
    CHECK(t && t->type == QAI_TYPE_Q8_0 && t->ne[0] == 64 && t->ne[1] == 2 && t->size == 136 &&
          !memcmp(t->data, q8_data, 136));
    /* tensors follow each other in the order added, each padded to the alignment */
    CHECK_EQ_INT(qai_gguf_tensor_at(g, 0)->offset, 0);
    CHECK_EQ_INT(qai_gguf_tensor_at(g, 1)->offset, align);
}

static void test_round_trip(void) {
    for (int pass = 0; pass < 2; pass++) {
        uint32_t align = pass ? 64 : 0;
        qai_gguf_writer *w = build_writer(align);
        CHECK_OK(qai_gguf_writer_write(w, tmp_path));
        qai_gguf_writer_free(w);
        qai_gguf *g;
        CHECK_OK(qai_gguf_open(tmp_path, &g));
        if (!g) return;
        check_read(g, align ? align : 32);
        CHECK(!strcmp(qai_gguf_path(g), tmp_path));
        struct stat st;
        CHECK(stat(tmp_path, &st) == 0 && (size_t)st.st_size == qai_gguf_file_size(g));

        /* Copying every kv with set_kv_from and re-adding the tensors gives the same bytes. */
        qai_gguf_writer *w2 = qai_gguf_writer_new();
        for (int64_t i = 0; i < qai_gguf_n_kv(g); i++) CHECK_OK(qai_gguf_set_kv_from(w2, g, i));
        for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) {
            const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
            CHECK_OK(qai_gguf_add_tensor(w2, t->name, t->type, t->n_dims, t->ne, t->data, t->size));
        }
        char path2[600];
        snprintf(path2, sizeof path2, "%s.copy", tmp_path);
        CHECK_OK(qai_gguf_writer_write(w2, path2));
        qai_gguf_writer_free(w2);
        char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(qai_file_read(tmp_path, &a, &na));
        CHECK_OK(qai_file_read(path2, &b, &nb));
        CHECK(na == nb && a && b && !memcmp(a, b, na));
        qai_free(a);
        qai_free(b);
        unlink(path2);
        qai_gguf_close(g);
    }
    /* a bad alignment is refused at write time and leaves no file behind */
    qai_gguf_writer *w = qai_gguf_writer_new();
    CHECK_OK(qai_gguf_set_u32(w, "general.alignment", 24));
    char path3[600];
    snprintf(path3, sizeof path3, "%s.badalign", tmp_path);
    CHECK(qai_gguf_writer_write(w, path3) == QAI_ERR_ARG);
    struct stat st;
    CHECK(stat(path3, &st) != 0);
    qai_gguf_writer_free(w);
    w = qai_gguf_writer_new();
    CHECK(qai_gguf_writer_write(w, "/nonexistent-dir/x.gguf") == QAI_ERR_IO);
    CHECK(strstr(qai_last_error(), "/nonexistent-dir/x.gguf") != NULL);
    qai_gguf_writer_free(w);
    /* an empty writer writes a valid empty file */
    w = qai_gguf_writer_new();
    CHECK_OK(qai_gguf_writer_write(w, path3));
    qai_gguf_writer_free(w);
    qai_gguf *g;
    CHECK_OK(qai_gguf_open(path3, &g));
    if (g) {
        CHECK_EQ_INT(qai_gguf_n_kv(g), 0);
        CHECK_EQ_INT(qai_gguf_n_tensors(g), 0);
        qai_gguf_close(g);
    }
    unlink(path3);
}

/* Every prefix of a valid file that cuts into the header or a tensor fails
 * cleanly with a message; allocation failures at every point are clean too. */
static void test_truncation_and_oom(void) {
    char *data = NULL;
    size_t n = 0;
    CHECK_OK(qai_file_read(tmp_path, &data, &n));
    if (!data) return;
    qai_gguf *g;
    CHECK_OK(qai_gguf_open_buffer(data, n, "full.gguf", &g));
    if (!g) return;
    size_t data_end = 0;
    for (int64_t i = 0; i < qai_gguf_n_tensors(g); i++) {
        const qai_gguf_tensor *t = qai_gguf_tensor_at(g, i);
        size_t e = qai_gguf_data_offset(g) + t->offset + t->size;
        if (e > data_end) data_end = e;
    }
    qai_gguf_close(g);
    int bad = 0, no_msg = 0;
    for (size_t cut = 0; cut < n; cut++) {
        /* a fresh heap copy of exactly cut bytes, so ASan sees any overread */
        char *copy = malloc(cut ? cut : 1);
        memcpy(copy, data, cut);
        qai_error(QAI_OK, "%s", "");
        qai_status st = qai_gguf_open_buffer(copy, cut, "cut.gguf", &g);
        if (cut < data_end) {
            if (st == QAI_OK) bad++, qai_gguf_close(g);
            else if (!strstr(qai_last_error(), "cut.gguf") || !strstr(qai_last_error(), "offset")) {
                if (no_msg++ < 3) fprintf(stderr, "cut at %zu: message '%s'\n", cut, qai_last_error());
            }
        } else {
            if (st != QAI_OK) bad++;
            else qai_gguf_close(g);
        }
        free(copy);
    }
    CHECK_MSG(bad == 0, "%d truncated files were misjudged (file %zu bytes, data ends at %zu)", bad, n, data_end);
    CHECK_MSG(no_msg == 0, "%d truncation messages without file name and offset", no_msg);

    /* allocation failure at each allocation of open: fails with NOMEM, no leak */
    int oom_ok = 0, k;
    for (k = 1; k < 200; k++) {
        qai_alloc_fail_after(k);
        qai_status st = qai_gguf_open_buffer(data, n, "oom.gguf", &g);
        qai_alloc_fail_after(0);
        if (st == QAI_OK) {
            qai_gguf_close(g);
            break;
        }
        if (st == QAI_ERR_NOMEM) oom_ok++;
    }
    CHECK_MSG(k > 1 && oom_ok == k - 1, "allocation failures: %d of %d gave NOMEM", oom_ok, k - 1);
    qai_free(data);
}

/* ---- a file written by llama.cpp ------------------------------------------------ */

static void test_llama_cpp_file(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K-gguf/stories260K.gguf", TEST_DATA());
    qai_gguf *g;
    CHECK_OK(qai_gguf_open(path, &g));
    if (!g) return;
    CHECK_EQ_INT(qai_gguf_version(g), 3);
    CHECK_EQ_INT(qai_gguf_file_size(g), 1185376);
    CHECK_EQ_INT(qai_gguf_alignment(g), 32);
    CHECK_EQ_INT(qai_gguf_data_offset(g), 14176);
    CHECK_EQ_INT(qai_gguf_n_kv(g), 19);
    CHECK_EQ_INT(qai_gguf_n_tensors(g), 48);
    const char *s;
    CHECK_OK(qai_gguf_get_str(g, "general.architecture", &s));
    CHECK(!strcmp(s, "llama"));
    CHECK_OK(qai_gguf_get_str(g, "tokenizer.ggml.model", &s));
    CHECK(!strcmp(s, "llama"));
    struct {
        const char *key;
        int64_t v;
    } ints[] = {{"llama.context_length", 2048},       {"llama.embedding_length", 64},
                {"llama.feed_forward_length", 172},   {"llama.attention.head_count", 8},
                {"llama.attention.head_count_kv", 4}, {"llama.block_count", 5},
                {"llama.rope.dimension_count", 8},    {"tokenizer.ggml.unknown_token_id", 0},
                {"tokenizer.ggml.bos_token_id", 1},   {"tokenizer.ggml.eos_token_id", 2},
                {"tokenizer.ggml.padding_token_id", 4294967295ll}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = -1;
        CHECK_OK(qai_gguf_get_int(g, ints[i].key, &v));
        CHECK_MSG(v == ints[i].v, "%s = %lld, expected %lld", ints[i].key, (long long)v, (long long)ints[i].v);
    }
    double eps;
    CHECK_OK(qai_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &eps));
    CHECK(eps == (double)1e-5f);
    int64_t i = qai_gguf_find_kv(g, "tokenizer.ggml.tokens");
    CHECK(i == 0);
    CHECK_EQ_INT(qai_gguf_arr_len(g, i), 512);
    CHECK(!strcmp(qai_gguf_arr_str(g, i, 0), "<unk>") && !strcmp(qai_gguf_arr_str(g, i, 1), "<s>") &&
          !strcmp(qai_gguf_arr_str(g, i, 2), "</s>") && !strcmp(qai_gguf_arr_str(g, i, 3), "<0x00>") &&
          !strcmp(qai_gguf_arr_str(g, i, 511), "\xe2\x80\x8a"));
    i = qai_gguf_find_kv(g, "tokenizer.ggml.scores");
    CHECK(qai_gguf_arr_type(g, i) == QAI_GGUF_FLOAT32 && qai_gguf_arr_float(g, i, 511) == -252.0);
    i = qai_gguf_find_kv(g, "tokenizer.ggml.token_type");
    CHECK(qai_gguf_arr_type(g, i) == QAI_GGUF_INT32 && qai_gguf_arr_int(g, i, 0) == 2 &&
          qai_gguf_arr_int(g, i, 1) == 3 && qai_gguf_arr_int(g, i, 3) == 6 && qai_gguf_arr_int(g, i, 511) == 1);
    struct {
        const char *name;
        int n_dims;
        int64_t ne0, ne1;
        uint64_t offset;
    } ts[] = {{"token_embd.weight", 2, 64, 512, 0},         {"output_norm.weight", 1, 64, 1, 131072},
              {"output.weight", 2, 64, 512, 131328},        {"blk.0.attn_q.weight", 2, 64, 64, 262400},
              {"blk.0.attn_k.weight", 2, 64, 32, 278784},   {"blk.2.ffn_gate.weight", 2, 64, 172, 675328},
              {"blk.4.ffn_down.weight", 2, 172, 64, 1082880}, {"blk.4.ffn_norm.weight", 1, 64, 1, 1170944}};
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
        const qai_gguf_tensor *t = qai_gguf_find_tensor(g, ts[k].name);
        CHECK_MSG(t != NULL, "%s", ts[k].name);
        if (!t) continue;
        CHECK_MSG(t->type == QAI_TYPE_F32 && t->n_dims == ts[k].n_dims && t->ne[0] == ts[k].ne0 &&
                      t->ne[1] == ts[k].ne1 && t->offset == ts[k].offset && t->size == (size_t)(ts[k].ne0 * ts[k].ne1 * 4),
                  "%s", ts[k].name);
    }
    /* the norm weights of a trained model are not all zero */
    const qai_gguf_tensor *t = qai_gguf_find_tensor(g, "output_norm.weight");
    float norm0;
    memcpy(&norm0, t->data, 4);
    CHECK(norm0 != 0 && isfinite(norm0));
    uint64_t params = 0;
    for (int64_t k = 0; k < qai_gguf_n_tensors(g); k++) {
        const qai_gguf_tensor *x = qai_gguf_tensor_at(g, k);
        params += (uint64_t)(x->ne[0] * x->ne[1] * x->ne[2] * x->ne[3]);
    }
    CHECK_EQ_INT(params, 260032 + 64 * 512);
    qai_gguf_close(g);

    CHECK(qai_gguf_open("/nonexistent/x.gguf", &g) == QAI_ERR_IO && g == NULL);
    CHECK(strstr(qai_last_error(), "/nonexistent/x.gguf") != NULL);
}

/* ---- malformed files -------------------------------------------------------------- */

/* A minimal valid file: 2 kvs and 2 f32 tensors of 8 floats. */
static void good_file(buf *b) {
    b->n = 0;
    b_hdr(b, 3, 2, 2);
    b_kv_u32(b, "a.x", 1);
    b_kv_u32(b, "a.y", 2);
    b_tinfo(b, "t0", 1, 8, 0, QAI_TYPE_F32, 0);
    b_tinfo(b, "t1", 2, 4, 2, QAI_TYPE_F32, 32);
    b_pad(b, 32);
    b_zeros(b, 64);
}

static void test_malformed(void) {
    buf b = {0};
    char off[64];
    good_file(&b);
    EXPECT_OK(&b);

    b.n = 0;
    b_bytes(&b, "GGUX", 4);
    b_u32(&b, 3);
    b_zeros(&b, 16);
    EXPECT_FAIL(&b, "magic", "offset 0", "not a GGUF file");
    b.n = 0;
    EXPECT_FAIL(&b, "magic", "offset 0", "truncated");

    good_file(&b);
    uint32_t v = 1;
    memcpy(b.p + 4, &v, 4);
    EXPECT_FAIL(&b, "version", "offset 4", "version 1");
    v = 4;
    memcpy(b.p + 4, &v, 4);
    EXPECT_FAIL(&b, "version", "offset 4", "unknown GGUF version 4");
    v = 0x03000000;
    memcpy(b.p + 4, &v, 4);
    EXPECT_FAIL(&b, "version", "offset 4", "big-endian");
    /* v2 has the same layout and is accepted */
    v = 2;
    memcpy(b.p + 4, &v, 4);
    EXPECT_OK(&b);

    /* absurd counts */
    good_file(&b);
    uint64_t big = 1ull << 60;
    memcpy(b.p + 16, &big, 8);
    EXPECT_FAIL(&b, "n_kv", "offset 16", "1152921504606846976");
    good_file(&b);
    memcpy(b.p + 8, &big, 8);
    EXPECT_FAIL(&b, "n_tensors", "offset 8");
    /* n_tensors plausible for the whole file but not for what follows the kvs */
    good_file(&b);
    big = 3;
    memcpy(b.p + 8, &big, 8);
    EXPECT_FAIL(&b, "tensor 2", "offset");

    /* absurd string length of the first key */
    good_file(&b);
    big = UINT64_MAX - 3;
    memcpy(b.p + 24, &big, 8);
    EXPECT_FAIL(&b, "key 0 name", "offset 24", "string length");

    /* unknown kv type */
    b.n = 0;
    b_hdr(&b, 3, 0, 2);
    b_kv_u32(&b, "a.x", 1);
    size_t kv1 = b.n;
    b_str(&b, "a.weird");
    b_u32(&b, 99);
    b_u32(&b, 0);
    snprintf(off, sizeof off, "offset %zu", kv1);
    EXPECT_FAIL(&b, "key 1", "a.weird", off, "unknown value type 99");

    /* unknown array element type, arrays too long, nested arrays */
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "a.arr");
    b_u32(&b, QAI_GGUF_ARRAY);
    size_t val = b.n;
    b_u32(&b, 77);
    b_u64(&b, 1);
    b_u32(&b, 0);
    snprintf(off, sizeof off, "offset %zu", val);
    EXPECT_FAIL(&b, "a.arr", off, "unknown array element type 77");
    b.n = val;
    b_u32(&b, QAI_GGUF_UINT32);
    b_u64(&b, 1ull << 62);
    b_u32(&b, 0);
    EXPECT_FAIL(&b, "a.arr", off, "does not fit");
    b.n = val;
    b_u32(&b, QAI_GGUF_STRING);
    b_u64(&b, 2);
    b_str(&b, "ok");
    b_u64(&b, 1000);
    EXPECT_FAIL(&b, "a.arr", "string length 1000");
    /* nested: array of 2 arrays of u8 — accepted, not element-readable */
    b.n = val;
    b_u32(&b, QAI_GGUF_ARRAY);
    b_u64(&b, 2);
    b_u32(&b, QAI_GGUF_UINT8);
    b_u64(&b, 3);
    b_bytes(&b, "abc", 3);
    b_u32(&b, QAI_GGUF_STRING);
    b_u64(&b, 1);
    b_str(&b, "x");
    {
        qai_gguf *g;
        CHECK_OK(qai_gguf_open_buffer(b.p, b.n, "nested.gguf", &g));
        if (g) {
            CHECK(qai_gguf_arr_type(g, 0) == QAI_GGUF_ARRAY && qai_gguf_arr_len(g, 0) == 2);
            /* and copies faithfully */
            qai_gguf_writer *w = qai_gguf_writer_new();
            CHECK_OK(qai_gguf_set_kv_from(w, g, 0));
            CHECK_OK(qai_gguf_writer_write(w, tmp_path));
            qai_gguf_writer_free(w);
            char *d = NULL;
            size_t n = 0;
            CHECK_OK(qai_file_read(tmp_path, &d, &n));
            CHECK(d && n >= b.n && !memcmp(d, b.p, b.n));
            qai_free(d);
            qai_gguf_close(g);
        }
    }
    /* nesting deeper than the limit */
    b.n = val;
    for (int d = 0; d < 10; d++) {
        b_u32(&b, QAI_GGUF_ARRAY);
        b_u64(&b, 1);
    }
    b_u32(&b, QAI_GGUF_UINT8);
    b_u64(&b, 0);
    EXPECT_FAIL(&b, "a.arr", "nested");

    /* duplicate key */
    b.n = 0;
    b_hdr(&b, 3, 0, 2);
    b_kv_u32(&b, "a.x", 1);
    kv1 = b.n;
    b_kv_u32(&b, "a.x", 2);
    snprintf(off, sizeof off, "offset %zu", kv1);
    EXPECT_FAIL(&b, "key 1", off, "duplicate key 'a.x'");

    /* general.alignment: wrong type, not a power of two; a valid 64 is honoured */
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_str(&b, "general.alignment");
    b_u32(&b, QAI_GGUF_UINT64);
    b_u64(&b, 32);
    EXPECT_FAIL(&b, "general.alignment", "offset 24", "uint32");
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_kv_u32(&b, "general.alignment", 48);
    EXPECT_FAIL(&b, "general.alignment", "offset 24", "power of two");
    b.n = 0;
    b_hdr(&b, 3, 0, 1);
    b_kv_u32(&b, "general.alignment", 0);
    EXPECT_FAIL(&b, "general.alignment", "power of two");

    /* tensor infos: build one kv, then a tensor info we can break */
#define TENSOR_CASE(nd, ne0, ne1, type, offs, data_bytes)                                                              \
    do {                                                                                                               \
        b.n = 0;                                                                                                       \
        b_hdr(&b, 3, 1, 1);                                                                                            \
        b_kv_u32(&b, "a.x", 1);                                                                                        \
        ti = b.n;                                                                                                      \
        b_tinfo(&b, "w", nd, ne0, ne1, type, offs);                                                                    \
        b_pad(&b, 32);                                                                                                 \
        b_zeros(&b, data_bytes);                                                                                       \
    } while (0)
    size_t ti;
    TENSOR_CASE(2, 4, 2, QAI_TYPE_F32, 0, 32);
    EXPECT_OK(&b);
    TENSOR_CASE(2, 4, 2, 99, 0, 32);
    snprintf(off, sizeof off, "offset %zu", ti + 8 + 1 + 4 + 16);
    EXPECT_FAIL(&b, "tensor 0 ('w') type", off, "unknown tensor type id 99");
    TENSOR_CASE(2, 4, 2, 4, 0, 32); /* 4 (old Q4_2) is not a type */
    EXPECT_FAIL(&b, "tensor 0 ('w') type", "unknown tensor type id 4");
    TENSOR_CASE(5, 4, 2, QAI_TYPE_F32, 0, 32);
    snprintf(off, sizeof off, "offset %zu", ti + 9);
    EXPECT_FAIL(&b, "tensor 0 ('w') n_dims", off, "5 dimensions");
    TENSOR_CASE(2, 1ull << 62, 1ull << 62, QAI_TYPE_F32, 0, 32);
    snprintf(off, sizeof off, "offset %zu", ti + 9 + 4 + 8);
    EXPECT_FAIL(&b, "tensor 0 ('w') ne[1]", off, "absurd");
    TENSOR_CASE(2, 1ull << 40, 1ull << 20, QAI_TYPE_F32, 0, 32); /* elements fit int64, bytes past the end */
    EXPECT_FAIL(&b, "tensor 'w'", "past the end");
    TENSOR_CASE(1, 33, 0, QAI_TYPE_Q8_0, 0, 64);
    EXPECT_FAIL(&b, "tensor 0 ('w')", "not a multiple of the q8_0 block size 32");
    TENSOR_CASE(2, 4, 2, QAI_TYPE_F32, 16, 64);
    snprintf(off, sizeof off, "offset %zu", ti + 9 + 4 + 16 + 4);
    EXPECT_FAIL(&b, "tensor 0 ('w') offset", off, "not a multiple of the alignment 32");
    TENSOR_CASE(2, 4, 2, QAI_TYPE_F32, 32, 32);
    snprintf(off, sizeof off, "info at offset %zu", ti);
    EXPECT_FAIL(&b, "tensor 'w'", off, "past the end of the file");
    TENSOR_CASE(2, 4, 2, QAI_TYPE_F32, 0, 31);
    EXPECT_FAIL(&b, "tensor 'w'", "past the end of the file", "size");
    /* known but unsupported types still load (IQ2_XXS: 256-element blocks of 66 bytes) */
    TENSOR_CASE(1, 256, 0, QAI_TYPE_IQ2_XXS, 0, 66);
    EXPECT_OK(&b);
    /* a 65-byte name is refused; a 64-byte one is fine */
    {
        char nm[70];
        memset(nm, 'n', 65);
        nm[65] = 0;
        b.n = 0;
        b_hdr(&b, 3, 1, 0);
        b_tinfo(&b, nm, 1, 8, 0, QAI_TYPE_F32, 0);
        b_pad(&b, 32);
        b_zeros(&b, 32);
        EXPECT_FAIL(&b, "tensor 0 name", "offset 24", "longer than 64");
        nm[64] = 0;
        b.n = 0;
        b_hdr(&b, 3, 1, 0);
        b_tinfo(&b, nm, 1, 8, 0, QAI_TYPE_F32, 0);
        b_pad(&b, 32);
        b_zeros(&b, 32);
        EXPECT_OK(&b);
    }

    /* duplicate tensor names, overlapping tensors */
    b.n = 0;
    b_hdr(&b, 3, 2, 0);
    b_tinfo(&b, "t0", 1, 8, 0, QAI_TYPE_F32, 0);
    size_t t1 = b.n;
    b_tinfo(&b, "t0", 1, 8, 0, QAI_TYPE_F32, 32);
    b_pad(&b, 32);
    b_zeros(&b, 64);
    snprintf(off, sizeof off, "offset %zu", t1);
    EXPECT_FAIL(&b, "tensor 1", off, "duplicate tensor name 't0'");
    b.n = 0;
    b_hdr(&b, 3, 3, 0);
    b_tinfo(&b, "t0", 1, 16, 0, QAI_TYPE_F32, 0);
    b_tinfo(&b, "empty", 1, 0, 0, QAI_TYPE_F32, 32);
    t1 = b.n;
    b_tinfo(&b, "t1", 1, 8, 0, QAI_TYPE_F32, 32);
    b_pad(&b, 32);
    b_zeros(&b, 96);
    snprintf(off, sizeof off, "info at offset %zu", t1);
    EXPECT_FAIL(&b, "tensor 't1'", off, "overlaps tensor 't0'");
    /* out of order but disjoint is fine */
    b.n = 0;
    b_hdr(&b, 3, 2, 0);
    b_tinfo(&b, "t0", 1, 8, 0, QAI_TYPE_F32, 32);
    b_tinfo(&b, "t1", 1, 8, 0, QAI_TYPE_F32, 0);
    b_pad(&b, 32);
    b_zeros(&b, 64);
    EXPECT_OK(&b);

    /* bit flips over a valid file never crash (messages checked above) */
    good_file(&b);
    size_t n = b.n;
    uint8_t *orig = malloc(n);
    memcpy(orig, b.p, n);
    int accepted = 0;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(b.p, orig, n);
            b.p[i] ^= (uint8_t)(1u << bit);
            qai_gguf *g;
            if (qai_gguf_open_buffer(b.p, n, "flip.gguf", &g) == QAI_OK) {
                accepted++;
                qai_gguf_close(g);
            }
        }
    }
    CHECK(accepted > 0); /* flips inside the data section are harmless */
    free(orig);
    free(b.p);
}

int main(void) {
    snprintf(tmp_path, sizeof tmp_path, "%s/test_gguf_%d.gguf", TEST_TMP(), (int)getpid());
    test_round_trip();
    test_truncation_and_oom();
    test_llama_cpp_file();
    test_malformed();
    unlink(tmp_path);
    return test_summary();
}
