/* Fusion: reciprocal rank fusion and weighted min-max fusion on small
 * hand-made lists whose fused scores are worked out in the comments. */
#include "qai/index.h"
#include "test.h"

static void test_rrf(void) {
    /* A = [1 2 3], B = [3 1 4], k = 60:
     *   1: 1/61 + 1/62 = 0.0325225   3: 1/63 + 1/61 = 0.0322664
     *   2: 1/62        = 0.0161290   4: 1/63        = 0.0158730 */
    qai_hit A[] = {{1, 9.f}, {2, 5.f}, {3, 1.f}}, B[] = {{3, 0.9f}, {1, 0.8f}, {4, 0.1f}};
    const qai_hit *lists[] = {A, B};
    int lens[] = {3, 3};
    qai_hit out[8];
    int n;
    CHECK_OK(qai_fuse_rrf(lists, lens, 2, 0, out, 8, &n));
    CHECK_EQ_INT(n, 4);
    uint64_t ids[] = {1, 3, 2, 4};
    float want[] = {0.0325225f, 0.0322664f, 0.0161290f, 0.0158730f}, got[4];
    for (int i = 0; i < 4 && i < n; i++) {
        CHECK_EQ_INT(out[i].id, ids[i]);
        got[i] = out[i].score;
    }
    CHECK_CLOSE("rrf", got, want, 4, 1e-7f, 1e-5f);
    /* k = 1 changes the balance: 1: 1/2 + 1/3, 3: 1/4 + 1/2 -> still 1 first; 2: 1/3 > 4: 1/4 */
    CHECK_OK(qai_fuse_rrf(lists, lens, 2, 1, out, 2, &n));
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(out[0].id, 1);
    CHECK_EQ_INT(out[1].id, 3);
    float w1 = 1.f / 2 + 1.f / 3;
    CHECK_CLOSE("rrf k=1", &out[0].score, &w1, 1, 1e-7f, 1e-6f);
    /* ties go to the lower id: two single-item lists */
    qai_hit C[] = {{9, 1.f}}, D[] = {{5, 1.f}};
    const qai_hit *l2[] = {C, D};
    int n2[] = {1, 1};
    CHECK_OK(qai_fuse_rrf(l2, n2, 2, 60, out, 8, &n));
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(out[0].id, 5);
    CHECK_EQ_INT(out[1].id, 9);
    /* empty lists */
    int z[] = {0, 0};
    CHECK_OK(qai_fuse_rrf(lists, z, 2, 60, out, 8, &n));
    CHECK_EQ_INT(n, 0);
    int neg[] = {-1, 0};
    CHECK_EQ_INT(qai_fuse_rrf(lists, neg, 2, 60, out, 8, &n), QAI_ERR_ARG);
}

static void test_weighted(void) {
    /* A scores 3 2 1 -> 1 .5 0; B scores 10 5 0 -> 1 .5 0; weights .7 .3:
     *   1: .7*1 + .3*.5 = .85   2: .7*.5 = .35   3: .7*0 + .3*1 = .3   4: .3*0 = 0 */
    qai_hit A[] = {{1, 3.f}, {2, 2.f}, {3, 1.f}}, B[] = {{3, 10.f}, {1, 5.f}, {4, 0.f}};
    const qai_hit *lists[] = {A, B};
    int lens[] = {3, 3};
    float w[] = {0.7f, 0.3f};
    qai_hit out[8];
    int n;
    CHECK_OK(qai_fuse_weighted(lists, lens, w, 2, out, 8, &n));
    CHECK_EQ_INT(n, 4);
    uint64_t ids[] = {1, 2, 3, 4};
    float want[] = {0.85f, 0.35f, 0.3f, 0.f}, got[4];
    for (int i = 0; i < 4 && i < n; i++) {
        CHECK_EQ_INT(out[i].id, ids[i]);
        got[i] = out[i].score;
    }
    CHECK_CLOSE("weighted", got, want, 4, 1e-6f, 1e-6f);
    /* no weights = 1 each: 1: 1.5, 3: 1, 2: .5, 4: 0 */
    CHECK_OK(qai_fuse_weighted(lists, lens, NULL, 2, out, 3, &n));
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(out[0].id, 1);
    CHECK_EQ_INT(out[1].id, 3);
    CHECK_EQ_INT(out[2].id, 2);
    /* negative scores (L2 dense hits) normalize the same way; a list of equal scores gives 1 */
    qai_hit E[] = {{7, -4.f}, {8, -8.f}}, F[] = {{8, 2.f}, {9, 2.f}};
    const qai_hit *l2[] = {E, F};
    int n2[] = {2, 2};
    CHECK_OK(qai_fuse_weighted(l2, n2, NULL, 2, out, 8, &n));
    CHECK_EQ_INT(n, 3);
    /* 7: 1, 8: 0 + 1 = 1, 9: 1 -> all equal: ascending ids */
    CHECK_EQ_INT(out[0].id, 7);
    CHECK_EQ_INT(out[1].id, 8);
    CHECK_EQ_INT(out[2].id, 9);
    for (int i = 0; i < n; i++) CHECK(out[i].score == 1.f);
    qai_hit G[] = {{1, NAN}};
    const qai_hit *l3[] = {G};
    int n3[] = {1};
    CHECK_EQ_INT(qai_fuse_weighted(l3, n3, NULL, 1, out, 8, &n), QAI_ERR_ARG);
}

int main(void) {
    test_rrf();
    test_weighted();
    return test_summary();
}
