/* qai train — train a model from scratch, from a GGUF, or continue a checkpoint. */
#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "qai/collection.h"
#include "qai/train.h"

static const char *usage =
    "usage: qai train [--config train.yaml] [--KEY VALUE ...] [-o OUT.gguf] [--log-json FILE] [--quiet]\n"
    "       qai train --resume CKPT [--max-steps N] [--eval-every N] [--ckpt-every N] [-o OUT.gguf] [--threads T]\n"
    "       qai train --objective contrastive --init BASE.gguf (--pairs-from COLLECTION [--data-dir D] |\n"
    "                 --pairs FILE.jsonl) [--KEY VALUE ...] -o EMBED.gguf\n"
    "\n"
    "Trains a Llama-shaped model on a dataset from `qai data prepare` (or --data random) and\n"
    "writes it as GGUF. Every config key is also a flag (--grad-accum 4 = grad_accum: 4):\n"
    "  shape      --dim --layers --heads --kv-heads --ffn --vocab --tie-embeddings --rope-theta --norm-eps\n"
    "             or --init BASE.gguf (start from its weights and shape)\n"
    "  data       --data DIR|random  --tokenizer TOK.gguf  --seq T  --batch B  --grad-accum A  --max-steps N\n"
    "  optimizer  --lr --min-lr --warmup --beta1 --beta2 --eps --weight-decay --grad-clip\n"
    "  runs       --eval-every N --eval-batches K --ckpt-every N --ckpt-dir DIR --seed S --threads T\n"
    "  precision  --matmul fp32|bf16 (bf16: the big matmuls take bf16 inputs, sum in fp32; needs AVX512_BF16)\n"
    "  objective  --objective lm|contrastive (default lm: next-token prediction)\n"
    "\n"
    "Contrastive (sentence embeddings, for `qai embed` and `qai ingest -m`): --batch is the number of\n"
    "(query, positive) pairs per step, each scored against the other positives (InfoNCE, symmetric,\n"
    "--temperature 0.05); embeddings are the mean of the final-norm states over the real tokens,\n"
    "as at inference. Pairs: --pairs FILE.jsonl ({\"query\",\"positive\"} lines, or {\"doc\",\"text\"}\n"
    "chunks to cut self-supervised pairs from) or --pairs-from COLLECTION[@N] (its chunks, exported to\n"
    "CKPT_DIR/pairs.jsonl; --data-dir as for qai ingest). --query-seq 32 caps queries, --seq positives,\n"
    "--micro-batch 16 sequences per forward pass (memory), --val-share 0.05 documents held out for\n"
    "val_loss and val_acc (in-batch retrieval accuracy). The tokenizer is --init's. The GGUF is a\n"
    "llama model with llama.pooling_type = 1 (mean).\n"
    "Defaults: the S shape (dim 288, 6 layers, 6 heads, ffn 768, vocab 4096), seq 256, batch 8,\n"
    "lr 1e-3 -> 1e-4 cosine after 100 warmup steps, AdamW (0.9, 0.95, wd 0.1), clip 1.0, 1000 steps.\n"
    "\n"
    "Writes OUT.gguf (default model.gguf) and, in the checkpoint directory (default OUT.gguf.ckpt/),\n"
    "latest.qck (every --ckpt-every steps, at the end and on Ctrl-C), log.jsonl (one JSON object\n"
    "per step: step, loss, lr, grad_norm, tok_s, mfu, tokens, elapsed_s, and acc for contrastive; eval\n"
    "rows add val_loss and val_ppl, or val_acc) and loss.svg. --resume continues to the bit as if the\n"
    "run had not stopped.\n"
    "\n"
    "example:\n"
    "  qai train --data random --dim 288 --layers 6 --heads 6 --ffn 768 --vocab 4096 --max-steps 50 -o s.gguf\n"
    "  qai train --objective contrastive --init s.gguf --pairs pairs.jsonl --batch 8 --seq 64 --max-steps 20 \\\n"
    "      -o embed.gguf\n";

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
    signal(SIGINT, SIG_DFL); /* a second Ctrl-C kills */
}

typedef struct {
    float *steps, *loss, *vsteps, *vloss;
    int n, nv, cap, vcap;
} history;

static void hist_add(float **xs, float **ys, int *n, int *cap, float x, float y) {
    if (*n == *cap) {
        int nc = *cap ? *cap * 2 : 256;
        float *a = realloc(*xs, nc * sizeof(float)), *b = realloc(*ys, nc * sizeof(float));
        if (!a || !b) {
            *xs = a ? a : *xs;
            *ys = b ? b : *ys;
            return;
        }
        *xs = a, *ys = b, *cap = nc;
    }
    (*xs)[*n] = x, (*ys)[*n] = y, (*n)++;
}

/* Keeps the lines of an earlier log up to step (a resumed run), rebuilding the history. */
static void reload_log(const char *path, int upto, history *h) {
    char *text;
    size_t n;
    if (qai_file_read(path, &text, &n)) return;
    qai_atomic_file af;
    if (qai_atomic_open(path, &af)) {
        qai_free(text);
        return;
    }
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        cJSON *s = cJSON_GetObjectItem(j, "step");
        if (cJSON_IsNumber(s) && s->valueint <= upto) {
            fprintf(af.f, "%s\n", line);
            cJSON *l = cJSON_GetObjectItem(j, "loss"), *v = cJSON_GetObjectItem(j, "val_loss");
            if (cJSON_IsNumber(l)) hist_add(&h->steps, &h->loss, &h->n, &h->cap, (float)s->valuedouble, (float)l->valuedouble);
            if (cJSON_IsNumber(v))
                hist_add(&h->vsteps, &h->vloss, &h->nv, &h->vcap, (float)s->valuedouble, (float)v->valuedouble);
        }
        cJSON_Delete(j);
    }
    qai_atomic_commit(&af);
    qai_free(text);
}

static void fmt_eta(char *buf, size_t cap, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)s / 3600, (int)s / 60 % 60);
}

/* Frees the "key=value" overrides and passes rc through (for early returns). */
static int drop(char **overrides, int n, int rc) {
    for (int i = 0; i < n; i++) free(overrides[i]);
    free(overrides);
    qai_train_config_release();
    return rc;
}

/* --pairs-from NAME[@N]: the collection's chunks become CKPT_DIR/pairs.jsonl
 * (the pairs key), and pairs_from records NAME@N. */
static qai_status export_pairs(qai_train_config *c, const char *data_dir) {
    char name[128], dir[4096], path[4200], from[160];
    int version = 0;
    snprintf(name, sizeof name, "%s", c->pairs_from);
    char *at = strchr(name, '@');
    if (at) {
        *at = 0;
        char *end;
        long v = strtol(at + 1, &end, 10);
        if (*end || v < 1) return qai_error(QAI_ERR_ARG, "--pairs-from '%s': the version after '@' must be a number",
                                           c->pairs_from);
        version = (int)v;
    }
    if (!qai_collection_name_ok(name)) return qai_error(QAI_ERR_ARG, "--pairs-from '%s': not a collection name", name);
    if (c->ckpt_dir) snprintf(dir, sizeof dir, "%s", c->ckpt_dir);
    else snprintf(dir, sizeof dir, "%s.ckpt", c->out);
    qai_status st = qai_mkdirs(dir);
    if (st) return st;
    qai_collection *coll;
    if ((st = qai_collection_open(data_dir, name, version, &coll))) return st;
    snprintf(path, sizeof path, "%s/pairs.jsonl", dir);
    snprintf(from, sizeof from, "%s@%d", name, qai_collection_version(coll));
    size_t nc = 0, nd = 0;
    st = qai_collection_export_chunks(coll, path, &nc, &nd);
    qai_collection_close(coll);
    if (st) return st;
    fprintf(stderr, "qai: train: pairs from collection %s: %zu chunks of %zu documents -> %s\n", from, nc, nd, path);
    if ((st = qai_train_config_set(c, "pairs", path))) return st;
    return qai_train_config_set(c, "pairs-from", from);
}

int cmd_train(int argc, char **argv) {
    qai_train_config c = qai_train_config_default();
    const char *config = NULL, *resume = NULL, *log_json = NULL, *data_dir = NULL;
    bool quiet = false;
    /* the config file first, so flags override it wherever they are */
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (cli_value(argc, argv, &i, NULL, "--config", &v)) {
            if (!v) return cli_usage_error("train", "--config needs a file");
            config = v;
        }
    }
    if (config && qai_train_config_load(config, &c)) return cli_fail_last("train");
    /* with --resume, flags become "key=value" overrides the library checks */
    char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    int n_over = 0;
    if (!overrides) return cli_fail("train", "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_value(argc, argv, &i, NULL, "--config", &v)) continue;
        if (cli_value(argc, argv, &i, NULL, "--resume", &v)) {
            if (!v) return drop(overrides, n_over, cli_usage_error("train", "--resume needs a checkpoint file"));
            resume = v;
        } else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v) return drop(overrides, n_over, cli_usage_error("train", "--data-dir needs a folder"));
            data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--log-json", &v)) {
            if (!v) return drop(overrides, n_over, cli_usage_error("train", "--log-json needs a file"));
            log_json = v;
        } else if (cli_value(argc, argv, &i, "-o", "--out", &v)) {
            if (!v) return drop(overrides, n_over, cli_usage_error("train", "-o needs a file"));
            c.out = v;
            if (asprintf(&overrides[n_over], "out=%s", v) < 0)
                return drop(overrides, n_over, cli_fail("train", "out of memory"));
            n_over++;
        } else if (cli_flag(argv[i], "-q", "--quiet")) {
            quiet = true;
        } else if (!strncmp(argv[i], "--", 2) && argv[i][2]) {
            char key[64];
            const char *eq = strchr(argv[i], '=');
            size_t kl = eq ? (size_t)(eq - argv[i] - 2) : strlen(argv[i] + 2);
            if (kl >= sizeof key)
                return drop(overrides, n_over, cli_usage_error("train", "unknown option '%s'", argv[i]));
            memcpy(key, argv[i] + 2, kl);
            key[kl] = 0;
            const char *val = eq ? eq + 1 : NULL;
            if (!val && !strcmp(key, "tie-embeddings")) { /* a bare boolean flag */
                val = "true";
                if (i + 1 < argc && (!strcmp(argv[i + 1], "true") || !strcmp(argv[i + 1], "false"))) val = argv[++i];
            } else if (!val) {
                if (i + 1 >= argc)
                    return drop(overrides, n_over, cli_usage_error("train", "--%s needs a value", key));
                val = argv[++i];
            }
            if (qai_train_config_set(&c, key, val))
                return drop(overrides, n_over, cli_usage_error("train", "%s", qai_last_error()));
            if (asprintf(&overrides[n_over], "%s=%s", key, val) < 0)
                return drop(overrides, n_over, cli_fail("train", "out of memory"));
            n_over++;
        } else {
            return drop(overrides, n_over, cli_usage_error("train", "unexpected argument '%s'", argv[i]));
        }
    }
    if (!resume && c.objective == QAI_OBJECTIVE_CONTRASTIVE && c.pairs_from) {
        if (c.pairs)
            return drop(overrides, n_over, cli_usage_error("train", "give --pairs or --pairs-from, not both"));
        if (export_pairs(&c, data_dir)) return drop(overrides, n_over, cli_fail_last("train"));
    }
    qai_trainer *t = NULL;
    qai_status st = resume ? qai_trainer_resume(resume, (const char *const *)overrides, &t) : qai_trainer_new(&c, &t);
    for (int i = 0; i < n_over; i++) free(overrides[i]);
    free(overrides);
    if (st == QAI_ERR_ARG && resume && strstr(qai_last_error(), "cannot change when resuming"))
        return cli_usage_error("train", "%s", qai_last_error());
    if (st) return cli_fail_last("train");
    const qai_train_config *tc = qai_trainer_config(t);
    char ckpt_dir[4096], latest[4200], log_path[4200], svg_path[4200];
    snprintf(ckpt_dir, sizeof ckpt_dir, "%s", tc->ckpt_dir ? tc->ckpt_dir : "");
    if (!tc->ckpt_dir) snprintf(ckpt_dir, sizeof ckpt_dir, "%s.ckpt", tc->out);
    if (qai_mkdirs(ckpt_dir)) {
        qai_trainer_free(t);
        return cli_fail_last("train");
    }
    snprintf(latest, sizeof latest, "%s/latest.qck", ckpt_dir);
    snprintf(log_path, sizeof log_path, "%s/log.jsonl", ckpt_dir);
    snprintf(svg_path, sizeof svg_path, "%s/loss.svg", ckpt_dir);

    history h = {0};
    qai_train_stats s;
    qai_trainer_stats(t, &s);
    int start = s.step;
    const double start_s = s.elapsed_s; /* a resumed run's ETA counts this run's steps only */
    if (resume) reload_log(log_path, start, &h);
    FILE *log = fopen(log_path, resume ? "a" : "w");
    FILE *ext = log_json ? fopen(log_json, resume ? "a" : "w") : NULL;
    if (!log || (log_json && !ext)) {
        if (log) fclose(log);
        qai_trainer_free(t);
        return cli_fail("train", "cannot write the log '%s'", log ? log_json : log_path);
    }
    const bool tty = isatty(2) && !quiet;
    const bool contrastive = tc->objective == QAI_OBJECTIVE_CONTRASTIVE;
    const int N = tc->seq * tc->batch * tc->grad_accum;
    double peak = qai_train_peak_flops(tc->threads > 0 ? tc->threads : qai_cpu_count());
    if (!quiet && contrastive)
        fprintf(stderr, "qai: train: contrastive, %.2fM parameters, %d pairs/step (batch %d × accum %d, %d sequences per "
                "pass), pairs %s%s%s%s, temperature %g, %d threads, %s matmuls%s\n", qai_trainer_n_params(t) / 1e6,
                tc->batch * tc->grad_accum, tc->batch, tc->grad_accum, tc->micro_batch > 0 ? tc->micro_batch : 16,
                tc->pairs, tc->pairs_from ? " (from " : "", tc->pairs_from ? tc->pairs_from : "",
                tc->pairs_from ? ")" : "", tc->temperature, tc->threads > 0 ? tc->threads : qai_cpu_count(),
                tc->matmul == QAI_MATMUL_BF16 ? "bf16" : "fp32", resume ? " (resumed)" : "");
    else if (!quiet)
        fprintf(stderr, "qai: train: %.2fM parameters, %d tokens/step (batch %d × seq %d × accum %d), data %s, "
                "%d threads, %s matmuls, fp32 peak %.0f GFLOP/s%s\n", qai_trainer_n_params(t) / 1e6, N, tc->batch,
                tc->seq, tc->grad_accum, tc->data ? tc->data : "random", tc->threads > 0 ? tc->threads : qai_cpu_count(),
                tc->matmul == QAI_MATMUL_BF16 ? "bf16" : "fp32", peak / 1e9, resume ? " (resumed)" : "");
    signal(SIGINT, on_sigint);
    int rc = 0;
    const int every = tc->max_steps >= 100 ? tc->max_steps / 100 : 1;
    while (s.step < tc->max_steps && !interrupted) {
        if (qai_trainer_step(t) < 0) {
            rc = cli_fail_last("train");
            break;
        }
        qai_trainer_stats(t, &s);
        if (!isfinite(s.loss)) {
            rc = cli_fail("train", "the loss is not finite at step %d; lower --lr or check the data", s.step);
            break;
        }
        char line[512];
        int len = snprintf(line, sizeof line, "{\"step\":%d,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tok_s\":%.1f,"
                           "\"mfu\":%.4f,\"tokens\":%llu,\"elapsed_s\":%.3f", s.step, s.loss, s.lr, s.grad_norm,
                           s.tok_s, s.mfu, (unsigned long long)s.tokens, s.elapsed_s);
        if (contrastive) len += snprintf(line + len, sizeof line - len, ",\"acc\":%.4f", s.acc);
        hist_add(&h.steps, &h.loss, &h.n, &h.cap, (float)s.step, s.loss);
        bool eval = tc->eval_every > 0 && (s.step % tc->eval_every == 0 || s.step == tc->max_steps);
        float vl = 0, va = 0;
        if (eval) {
            if (qai_trainer_eval_metrics(t, &vl, &va)) {
                rc = cli_fail_last("train");
                break;
            }
            if (contrastive) len += snprintf(line + len, sizeof line - len, ",\"val_loss\":%.6f,\"val_acc\":%.4f", vl, va);
            else len += snprintf(line + len, sizeof line - len, ",\"val_loss\":%.6f,\"val_ppl\":%.4f", vl, exp(vl));
            hist_add(&h.vsteps, &h.vloss, &h.nv, &h.vcap, (float)s.step, vl);
        }
        fprintf(log, "%s}\n", line);
        fflush(log);
        if (ext) fprintf(ext, "%s}\n", line), fflush(ext);
        double per_step = (s.elapsed_s - start_s) / (s.step - start > 0 ? s.step - start : 1);
        char eta[32];
        fmt_eta(eta, sizeof eta, per_step * (tc->max_steps - s.step));
        char accs[32] = "";
        if (contrastive) snprintf(accs, sizeof accs, tty ? " | acc %.3f" : " acc %.3f", s.acc);
        if (tty) {
            fprintf(stderr, "\r\033[Kstep %d/%d | loss %.4f%s | lr %.2e | %.0f tok/s | MFU %.1f%% | ETA %s", s.step,
                    tc->max_steps, s.loss, accs, s.lr, s.tok_s, 100 * s.mfu, eta);
            if (eval && contrastive)
                fprintf(stderr, "\n  eval at step %d: val loss %.4f, in-batch accuracy %.3f\n", s.step, vl, va);
            else if (eval) fprintf(stderr, "\n  eval at step %d: val loss %.4f, perplexity %.2f\n", s.step, vl, exp(vl));
        } else if (!quiet && (s.step % every == 0 || eval || s.step == tc->max_steps)) {
            fprintf(stderr, "step %d/%d loss %.4f%s lr %.3g tok/s %.0f mfu %.3f eta %s%s", s.step, tc->max_steps,
                    s.loss, accs, s.lr, s.tok_s, s.mfu, eta, eval ? "" : "\n");
            if (eval && contrastive) fprintf(stderr, " val_loss %.4f val_acc %.3f\n", vl, va);
            else if (eval) fprintf(stderr, " val_loss %.4f val_ppl %.2f\n", vl, exp(vl));
        }
        if (tc->ckpt_every > 0 && s.step % tc->ckpt_every == 0 && s.step < tc->max_steps &&
            qai_trainer_save(t, latest)) {
            rc = cli_fail_last("train");
            break;
        }
    }
    if (tty) fputc('\n', stderr);
    fclose(log);
    if (ext) fclose(ext);
    if (rc == 0 || interrupted) {
        if (qai_trainer_save(t, latest)) rc = cli_fail_last("train");
        char title[256];
        snprintf(title, sizeof title, "qai train: %.2fM parameters, %d tokens/step", qai_trainer_n_params(t) / 1e6, N);
        if (qai_train_write_loss_svg(svg_path, title, h.steps, h.loss, h.n, h.vsteps, h.vloss, h.nv))
            rc = cli_fail_last("train");
    }
    if (interrupted) {
        fprintf(stderr, "qai: train: interrupted at step %d; checkpoint '%s'; continue with: qai train --resume %s\n",
                s.step, latest, latest);
    } else if (rc == 0) {
        if (qai_trainer_export_gguf(t, tc->out)) rc = cli_fail_last("train");
        else if (!quiet)
            fprintf(stderr, "qai: train: wrote '%s' after %d steps (%.1f s); checkpoint '%s', log '%s', curve '%s'\n",
                    tc->out, s.step, s.elapsed_s, latest, log_path, svg_path);
    }
    free(h.steps), free(h.loss), free(h.vsteps), free(h.vloss);
    qai_trainer_free(t);
    qai_train_config_release();
    return rc;
}
