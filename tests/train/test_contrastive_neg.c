/* InfoNCE with hard negatives (qai_infonce_neg): the backward against central
 * finite differences (tiny shapes, seeded), the loss against a direct
 * double-precision evaluation of its formula written out here, the closed
 * form of one query with one negative, Bd = B equal to the in-batch loss,
 * the accuracy counting a negative that beats the positive as a miss, and
 * the refusal of impossible shapes. */
#include <math.h>
#include <string.h>

#include "test.h"
#include "train/contrastive.h"

static qai_rng rng;
#define NEAR(a, b, tol) near_(__LINE__, #a, (a), (b), (tol))
static void near_(int line, const char *what, double a, double b, double tol) {
    if (!(fabs(a - b) <= tol)) fprintf(stderr, "  line %d: %s = %.9g, expected %.9g (tol %g)\n", line, what, a, b, tol);
    CHECK(fabs(a - b) <= tol);
}
static float frand(void) { return qai_rng_float(&rng) * 2 - 1; }

static double cosd(const float *a, const float *b, int D) {
    double ab = 0, aa = 0, bb = 0;
    for (int k = 0; k < D; k++) ab += (double)a[k] * b[k], aa += (double)a[k] * a[k], bb += (double)b[k] * b[k];
    return ab / sqrt(aa * bb);
}

/* the formula of contrastive.h, term by term */
static double reference(const float *q, const float *d, int B, int Bd, int D, double tau) {
    double l_q = 0, l_d = 0;
    for (int i = 0; i < B; i++) {
        double z = 0;
        for (int j = 0; j < Bd; j++) z += exp(cosd(q + i * D, d + j * D, D) / tau);
        l_q += log(z) - cosd(q + i * D, d + i * D, D) / tau;
    }
    for (int j = 0; j < B; j++) {
        double z = 0;
        for (int i = 0; i < B; i++) z += exp(cosd(q + i * D, d + j * D, D) / tau);
        l_d += log(z) - cosd(q + j * D, d + j * D, D) / tau;
    }
    return (l_q / B + l_d / B) / 2;
}

static void test_fd(void) {
    enum { B = 4, Bd = 7, D = 10 };
    float q[B * D], d[Bd * D], dq[B * D], dd[Bd * D];
    for (int i = 0; i < B * D; i++) q[i] = frand();
    for (int i = 0; i < Bd * D; i++) d[i] = frand();
    for (int k = 0; k < D; k++) d[5 * D + k] = q[1 * D + k] + 0.2f * frand(); /* a hard negative of query 1 */
    const float tau = 0.1f, scale = 0.25f;
    float acc = -1;
    float loss = qai_infonce_neg(q, d, B, Bd, D, tau, &acc, dq, dd, scale);
    CHECK(isfinite(loss));
    NEAR(loss, reference(q, d, B, Bd, D, tau), 1e-4);
    CHECK(acc >= 0 && acc <= 1);
    const float h = 1e-3f;
    int bad = 0;
    for (int which = 0; which < 2; which++)
        for (int i = 0; i < (which ? Bd : B) * D; i++) {
            float *x = which ? d : q, keep = x[i];
            x[i] = keep + h;
            double lp = qai_infonce_neg(q, d, B, Bd, D, tau, NULL, NULL, NULL, 1);
            x[i] = keep - h;
            double lm = qai_infonce_neg(q, d, B, Bd, D, tau, NULL, NULL, NULL, 1);
            x[i] = keep;
            double num = (lp - lm) / (2 * h), ana = (which ? dd : dq)[i] / scale;
            if (fabs(ana - num) > 2e-4 + 1e-2 * fmax(fabs(ana), fabs(num))) {
                fprintf(stderr, "  %s[%d]: analytic %.6g numeric %.6g\n", which ? "dd" : "dq", i, ana, num);
                bad++;
            }
        }
    CHECK_EQ_INT(bad, 0);
    /* the negatives' rows get gradient (they are in the query → document softmax) */
    double gn = 0;
    for (int i = B * D; i < Bd * D; i++) gn += fabs(dd[i]);
    CHECK(gn > 1e-6);
}

static void test_values(void) {
    enum { D = 6 };
    const double tau = 0.5;
    /* one query, its positive and one negative: the document → query half is
     * log(1) = 0, so loss = (log(e^{s+} + e^{s-}) − s+) / 2 */
    float q[D], d[2 * D];
    for (int k = 0; k < D; k++) q[k] = frand(), d[k] = frand(), d[D + k] = frand();
    double sp = cosd(q, d, D) / tau, sn = cosd(q, d + D, D) / tau;
    NEAR(qai_infonce_neg(q, d, 1, 2, D, (float)tau, NULL, NULL, NULL, 1), (log(exp(sp) + exp(sn)) - sp) / 2,
                1e-5);
    /* Bd = B is the in-batch loss, and adding a negative never lowers it */
    enum { B = 3 };
    float qq[B * D], dd[(B + 1) * D];
    for (int i = 0; i < B * D; i++) qq[i] = frand();
    for (int i = 0; i < (B + 1) * D; i++) dd[i] = frand();
    float l0 = qai_infonce(qq, dd, B, D, (float)tau, NULL, NULL, NULL, 1);
    NEAR(qai_infonce_neg(qq, dd, B, B, D, (float)tau, NULL, NULL, NULL, 1), l0, 1e-6);
    NEAR(l0, reference(qq, dd, B, B, D, tau), 1e-5);
    CHECK(qai_infonce_neg(qq, dd, B, B + 1, D, (float)tau, NULL, NULL, NULL, 1) > l0);
    /* accuracy: positives equal to their queries (all right), then a negative equal to query 2 (a tie: a miss) */
    memcpy(dd, qq, sizeof qq);
    for (int k = 0; k < D; k++) dd[B * D + k] = -qq[k];
    float acc = -1;
    qai_infonce_neg(qq, dd, B, B + 1, D, (float)tau, &acc, NULL, NULL, 1);
    NEAR(acc, 1.0, 1e-6);
    memcpy(dd + B * D, qq + 2 * D, D * sizeof(float));
    qai_infonce_neg(qq, dd, B, B + 1, D, (float)tau, &acc, NULL, NULL, 1);
    NEAR(acc, 2.0 / 3.0, 1e-6);
    /* impossible shapes */
    CHECK(isnan(qai_infonce_neg(qq, dd, B, B - 1, D, (float)tau, NULL, NULL, NULL, 1)));
    CHECK(strstr(qai_last_error(), "queries") != NULL);
    CHECK(isnan(qai_infonce_neg(qq, dd, 0, 2, D, (float)tau, NULL, NULL, NULL, 1)));
}

int main(void) {
    qai_rng_seed(&rng, 2024);
    test_fd();
    test_values();
    return test_summary();
}
