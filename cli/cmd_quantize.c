/* qai quantize — quantize a GGUF model (q8_0, q4_0, q4_k, q6_k, q4_k_m, f16, bf16, f32). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qai/quantize.h"

static const char *usage_text =
    "usage: qai quantize IN.gguf OUT.gguf TYPE [-t THREADS] [--quiet]\n"
    "\n"
    "Writes OUT.gguf with the 2-D weights of IN.gguf converted to TYPE, choosing\n"
    "per-tensor types the way llama.cpp's llama-quantize does, so the file also\n"
    "runs in llama.cpp and ollama. Metadata is copied; general.file_type is set.\n"
    "\n"
    "TYPE:\n"
    "  q4_k_m   Q4_K, with Q6_K for output.weight and for attn_v/ffn_down in the\n"
    "           layers llama.cpp picks (about 4.9 bits per weight; recommended)\n"
    "  q4_k     Q4_K (output.weight Q6_K)\n"
    "  q4_0     Q4_0 (output.weight Q6_K)\n"
    "  q6_k     Q6_K\n"
    "  q8_0     Q8_0\n"
    "  f16, bf16, f32\n"
    "1-D tensors (norms) stay as they are. A tensor whose rows are not a multiple\n"
    "of the block size falls back to q8_0 or f16 (a warning names it).\n"
    "\n"
    "options:\n"
    "  -t, --threads N  threads (default: all CPUs)\n"
    "  -q, --quiet      no progress line\n"
    "  -h, --help       show this help\n"
    "\n"
    "Prints sizes before and after (MB, bits per weight). Exit codes: 0 done,\n"
    "1 failed (message on stderr), 2 bad usage.\n";

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int npos = 0;
    qai_quantize_options opts = {0};
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (cli_value(argc, argv, &i, "-t", "--threads", &v)) {
            long long n;
            if (!v || !cli_parse_int(v, 1, 1024, &n)) return cli_usage_error("quantize", "bad thread count '%s'", v ? v : "");
            opts.n_threads = (int)n;
        } else if (cli_flag(argv[i], "-q", "--quiet")) {
            opts.quiet = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("quantize", "unknown option '%s'", argv[i]);
        } else if (npos < 3) {
            pos[npos++] = argv[i];
        } else {
            return cli_usage_error("quantize", "unexpected argument '%s'", argv[i]);
        }
    }
    if (cli_missing_value) return cli_usage_error("quantize", "option '%s' needs a value", cli_missing_value);
    if (npos < 3) return cli_usage_error("quantize", "expected IN.gguf OUT.gguf TYPE");
    if (qai_quantize_file_type(pos[2]) < 0) return cli_usage_error("quantize", "unknown type '%s'", pos[2]);
    if (!strcmp(pos[0], pos[1])) return cli_usage_error("quantize", "output must differ from input '%s'", pos[0]);

    qai_quantize_summary s;
    if (qai_quantize_model(pos[0], pos[1], pos[2], &opts, &s)) return cli_fail_last("quantize");
    double n = s.n_elements ? (double)s.n_elements : 1;
    printf("%s: %.2f MB (%.2f bits/weight) -> %s: %.2f MB (%.2f bits/weight), %s\n", pos[0], s.file_in / 1e6,
           8.0 * s.data_in / n, pos[1], s.file_out / 1e6, 8.0 * s.data_out / n, pos[2]);
    printf("%lld tensors, %lld converted, %lld fallback; %.1f s\n", (long long)s.n_tensors, (long long)s.n_converted,
           (long long)s.n_fallback, s.seconds);
    return 0;
}
