/* The loss curve of a run as a self-contained SVG: training loss as a line,
 * validation loss as dots, axes with round ticks. No scripts, no fonts beyond
 * the viewer's sans-serif. Written atomically. */
#include <math.h>
#include <stdio.h>

#include "qai/train.h"

static double nice_step(double range, int ticks) {
    double raw = range / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

qai_status qai_train_write_loss_svg(const char *path, const char *title, const float *steps, const float *loss, int n,
                                    const float *val_steps, const float *val_loss, int nv) {
    const double W = 720, H = 420, L = 60, R = 20, T = 40, B = 50;
    double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        x1 = fmax(x1, steps[i]);
        if (isfinite(loss[i])) y0 = fmin(y0, loss[i]), y1 = fmax(y1, loss[i]);
    }
    for (int i = 0; i < nv; i++) {
        x1 = fmax(x1, val_steps[i]);
        if (isfinite(val_loss[i])) y0 = fmin(y0, val_loss[i]), y1 = fmax(y1, val_loss[i]);
    }
    if (!isfinite(y0)) y0 = 0, y1 = 1;
    if (y1 - y0 < 1e-6) y0 -= 0.5, y1 += 0.5;
    double ys = nice_step(y1 - y0, 6);
    y0 = floor(y0 / ys) * ys, y1 = ceil(y1 / ys) * ys;
    double xs = nice_step(x1 - x0, 8);
#define PX(x) (L + ((x)-x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - B - ((y)-y0) / (y1 - y0) * (H - T - B))
    qai_atomic_file af;
    qai_status st = qai_atomic_open(path, &af);
    if (st) return st;
    FILE *f = af.f;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%.0f\" y=\"24\" font-size=\"15\">", L);
    for (const char *c = title ? title : "loss"; *c; c++) { /* escape XML */
        if (*c == '<') fputs("&lt;", f);
        else if (*c == '>') fputs("&gt;", f);
        else if (*c == '&') fputs("&amp;", f);
        else fputc(*c, f);
    }
    fprintf(f, "</text>\n");
    for (double y = y0; y <= y1 + ys / 2; y += ys)
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                L, PY(y), W - R, PY(y), L - 6, PY(y) + 4, round(y / ys) * ys);
    for (double x = 0; x <= x1 + xs / 2; x += xs)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", PX(x), H - B + 18, x);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">step</text>\n", (L + W - R) / 2, H - 12);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#888\"/>\n", L, T,
            W - L - R, H - T - B);
    if (n > 0) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"");
        for (int i = 0; i < n; i++)
            if (isfinite(loss[i])) fprintf(f, "%.1f,%.1f ", PX(steps[i]), PY(loss[i]));
        fprintf(f, "\"/>\n");
    }
    for (int i = 0; i < nv; i++)
        if (isfinite(val_loss[i]))
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#d62728\"/>\n", PX(val_steps[i]),
                    PY(val_loss[i]));
    fprintf(f, "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#1f77b4\" stroke-width=\"2\"/>"
               "<text x=\"%.0f\" y=\"%.0f\">training loss</text>\n", W - 250, T + 16, W - 225, T + 16, W - 220, T + 20);
    fprintf(f, "<circle cx=\"%.0f\" cy=\"%.0f\" r=\"3.5\" fill=\"#d62728\"/><text x=\"%.0f\" y=\"%.0f\">validation "
               "loss</text>\n</svg>\n", W - 125, T + 16, W - 115, T + 20);
#undef PX
#undef PY
    return qai_atomic_commit(&af);
}
