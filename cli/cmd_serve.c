/* qai serve — the OpenAI-compatible HTTP server (the library does the work:
 * include/qai/serve.h). This file parses flags and serve.yaml, starts the
 * server, and turns signals into a graceful shutdown (SIGINT/SIGTERM) or a
 * reload of the routes (SIGHUP). */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qai/bundle.h"
#include "qai/model.h"
#include "qai/serve.h"

static const char *usage =
    "usage: qai serve [-m MODEL.gguf|BUNDLE.qai | --model NAME=PATH ...] [options]\n"
    "\n"
    "Serves the models over an OpenAI-compatible HTTP API: POST /v1/chat/completions,\n"
    "/v1/completions (streaming with \"stream\": true; response_format json_object and\n"
    "json_schema, tools and tool_choice enforced while decoding), POST /v1/embeddings,\n"
    "GET /v1/models, POST /v1/tokenize, /v1/detokenize, GET /health, /ready and /metrics\n"
    "(Prometheus). An encoder (BERT) model serves /v1/embeddings only. Concurrent requests\n"
    "share each forward pass (continuous batching). SIGINT/SIGTERM drain running\n"
    "requests and exit 0; SIGHUP reloads the routes (traffic split) from --config.\n"
    "\n"
    "  -m, --model FILE|NAME=PATH  a model to serve (repeatable): a GGUF file or a .qai bundle\n"
    "                           (verified first: every member's hash, and its signatures);\n"
    "                           the name clients use is NAME, or the file name without\n"
    "                           .gguf/.qai\n"
    "      --require-signed     refuse a bundle without a valid signature by a trusted,\n"
    "                           unrevoked key (and refuse plain GGUF files)\n"
    "      --trust DIR          the public keys trusted for bundles (default DATA/trust/ and\n"
    "                           DATA/keys/)\n"
    "      --config FILE        serve.yaml: models, routes and every setting below as a key\n"
    "                           (max_queue, data_dir, require_signed: true, ...); flags win\n"
    "      --host ADDR          listen address (default 127.0.0.1; 0.0.0.0 for all)\n"
    "      --port N             port (default 8080; 0 picks a free one)\n"
    "      --parallel N         slots (requests generating at once) per model (default 4)\n"
    "      --ctx N              context positions per slot (default: the model's, at most 2048)\n"
    "      --threads N          threads per model engine (default: all CPUs)\n"
    "      --kv-type T          KV cache element type: f16 (default; half the memory) or f32\n"
    "      --batch N            most tokens per forward pass; long prompts are split (default 256)\n"
    "      --max-queue N        requests waiting per model before 503 (default 64)\n"
    "      --max-body BYTES     largest request body before 413 (default 1048576)\n"
    "      --timeout S          a request's deadline from arrival, in seconds (default 600; 0 = none)\n"
    "      --max-tokens N       completion length when a request gives none (default: until the\n"
    "                           context is full)\n"
    "      --template NAME      chat format when the GGUF has none qai recognizes (llama2, llama3,\n"
    "                           chatml, zephyr, phi3, gemma)\n"
    "      --drain S            seconds to let running requests finish on shutdown (default 30)\n"
    "      --auth MODE          API keys: auto (required once the store holds an active key;\n"
    "                           the default), keys (always), none; requests are always audited\n"
    "      --store URL          the store for keys and audit (default $QAI_STORE or DATA/qai.db)\n"
    "      --data-dir DIR       the data directory (default $QAI_HOME or ~/.local/share/qai)\n"
    "  -q, --quiet              no access log lines on stderr\n"
    "\n"
    "example: qai serve -m stories260K.gguf --port 8080\n"
    "         curl -s localhost:8080/v1/completions -d '{\"prompt\": \"Once upon a time\", \"max_tokens\": 32}'\n";

#define MAX_MODELS 64

static int parse_int_flag(const char *flag, const char *v, long long lo, long long hi, int *out) {
    long long x;
    if (!v || !cli_parse_int(v, lo, hi, &x))
        return cli_usage_error("serve", "%s needs an integer in [%lld, %lld]", flag, lo, hi);
    *out = (int)x;
    return 0;
}

static int parse_secs_flag(const char *flag, const char *v, double *out) {
    double x;
    if (!v || !cli_parse_float(v, &x) || x < 0) return cli_usage_error("serve", "%s needs a number of seconds >= 0", flag);
    *out = x;
    return 0;
}

/* The settings of serve.yaml that belong to the command rather than the
 * server: keys and audit (auth, store), the data directory, bundle trust.
 * Flags given on the command line override them. */
typedef struct {
    int auth_mode;
    const char *store_url, *data_dir, *trust_dir;
    bool require_signed;
} cmd_settings;

static int config_string(const cJSON *cfg, const char *file, const char *key, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return 0;
    if (!cJSON_IsString(v) || !*v->valuestring) return cli_fail("serve", "%s: '%s' must be a non-empty string", file, key);
    *out = v->valuestring;
    return 0;
}

static int parse_auth(const char *v, int *mode) {
    if (v && !strcmp(v, "auto")) *mode = QAI_SERVE_AUTH_AUTO;
    else if (v && !strcmp(v, "keys")) *mode = QAI_SERVE_AUTH_KEYS;
    else if (v && !strcmp(v, "none")) *mode = QAI_SERVE_AUTH_NONE;
    else
        return -1;
    return 0;
}

static int config_settings(const cJSON *cfg, const char *file, cmd_settings *s) {
    const char *auth = NULL;
    int rc = config_string(cfg, file, "auth", &auth);
    if (!rc && auth && parse_auth(auth, &s->auth_mode))
        rc = cli_fail("serve", "%s: 'auth' must be auto, keys or none (not '%s')", file, auth);
    if (!rc) rc = config_string(cfg, file, "store", &s->store_url);
    if (!rc) rc = config_string(cfg, file, "data_dir", &s->data_dir);
    if (!rc) rc = config_string(cfg, file, "trust", &s->trust_dir);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(cfg, "require_signed");
    if (!rc && rs) {
        if (!cJSON_IsBool(rs)) rc = cli_fail("serve", "%s: 'require_signed' must be true or false", file);
        else
            s->require_signed = cJSON_IsTrue(rs);
    }
    return rc;
}

/* Reloads the routes of the config file into a running server. */
static void reload(qai_server *srv, const char *config) {
    if (!config) {
        fprintf(stderr, "qai: serve: SIGHUP: no --config to reload\n");
        return;
    }
    void *cfg = NULL;
    if (qai_yaml_load(config, &cfg)) {
        fprintf(stderr, "qai: serve: reload: %s (keeping the current routes)\n", qai_last_error());
        return;
    }
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive((cJSON *)cfg, "routes");
    if (qai_server_set_routes(srv, routes)) fprintf(stderr, "qai: serve: reload: %s (keeping the current routes)\n", qai_last_error());
    else
        fprintf(stderr, "qai: serve: reloaded the routes from '%s'\n", config);
    cJSON_Delete(cfg);
}

int cmd_serve(int argc, char **argv) {
    qai_serve_params p = qai_serve_default_params();
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_flag(argv[i], "-h", "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (cli_value(argc, argv, &i, NULL, "--config", &v)) {
            if (!v) return cli_usage_error("serve", "--config needs a file");
            config = v;
        }
    }
    void *cfg = NULL;
    qai_serve_model_spec *cfg_models = NULL;
    cmd_settings conf = {.auth_mode = QAI_SERVE_AUTH_AUTO};
    if (config) {
        if (qai_yaml_load(config, &cfg)) return cli_fail_last("serve");
        if (qai_serve_config_apply(cfg, config, &p, &cfg_models)) {
            cJSON_Delete(cfg);
            return cli_fail_last("serve");
        }
        if (config_settings(cfg, config, &conf)) {
            qai_free(cfg_models);
            cJSON_Delete(cfg);
            return 1;
        }
    }
    qai_serve_model_spec flag_models[MAX_MODELS];
    char names[MAX_MODELS][256];
    int n_flag_models = 0, rc = 0;
    const char *template_name = NULL, *store_url = conf.store_url, *data_dir = conf.data_dir, *trust_dir = conf.trust_dir;
    bool require_signed = conf.require_signed;
    int auth_mode = conf.auth_mode;
    for (int i = 1; i < argc && !rc; i++) {
        const char *v, *flag = argv[i];
        if (cli_value(argc, argv, &i, NULL, "--config", &v)) continue;
        if (cli_value(argc, argv, &i, "-m", "--model", &v)) {
            if (!v) rc = cli_usage_error("serve", "%s needs a file or NAME=PATH", flag);
            else if (n_flag_models == MAX_MODELS) rc = cli_usage_error("serve", "at most %d models", MAX_MODELS);
            else {
                qai_serve_model_spec *ms = &flag_models[n_flag_models];
                memset(ms, 0, sizeof *ms);
                const char *eq = strchr(v, '=');
                if (eq && eq != v && (size_t)(eq - v) < sizeof names[0]) {
                    snprintf(names[n_flag_models], sizeof names[0], "%.*s", (int)(eq - v), v);
                    ms->path = eq + 1;
                } else {
                    const char *base = strrchr(v, '/');
                    base = base ? base + 1 : v;
                    size_t n = strlen(base);
                    if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
                    else if (n > 4 && !strcmp(base + n - 4, ".qai")) n -= 4;
                    snprintf(names[n_flag_models], sizeof names[0], "%.*s", (int)(n < 255 ? n : 255), base);
                    ms->path = v;
                }
                ms->name = names[n_flag_models];
                n_flag_models++;
            }
        } else if (cli_value(argc, argv, &i, NULL, "--host", &v)) {
            if (!v) rc = cli_usage_error("serve", "--host needs an address");
            else
                p.host = v;
        } else if (cli_value(argc, argv, &i, NULL, "--port", &v)) rc = parse_int_flag(flag, v, 0, 65535, &p.port);
        else if (cli_value(argc, argv, &i, NULL, "--parallel", &v)) rc = parse_int_flag(flag, v, 1, 256, &p.parallel);
        else if (cli_value(argc, argv, &i, NULL, "--ctx", &v)) rc = parse_int_flag(flag, v, 0, 1 << 20, &p.n_ctx);
        else if (cli_value(argc, argv, &i, "-t", "--threads", &v)) rc = parse_int_flag(flag, v, 0, 512, &p.n_threads);
        else if (cli_value(argc, argv, &i, NULL, "--batch", &v)) rc = parse_int_flag(flag, v, 1, 1 << 16, &p.batch);
        else if (cli_value(argc, argv, &i, NULL, "--kv-type", &v)) {
            if (!v || qai_kv_type_parse(v, &p.kv_type)) rc = cli_usage_error("serve", "--kv-type needs f16 or f32");
        }
        else if (cli_value(argc, argv, &i, NULL, "--max-queue", &v)) rc = parse_int_flag(flag, v, 0, 1 << 20, &p.max_queue);
        else if (cli_value(argc, argv, &i, NULL, "--max-tokens", &v)) rc = parse_int_flag(flag, v, 0, 1 << 30, &p.max_tokens_default);
        else if (cli_value(argc, argv, &i, NULL, "--max-body", &v)) {
            int mb = 0;
            rc = parse_int_flag(flag, v, 1, 1 << 30, &mb);
            p.max_body = (size_t)mb;
        } else if (cli_value(argc, argv, &i, NULL, "--timeout", &v)) rc = parse_secs_flag(flag, v, &p.timeout_s);
        else if (cli_value(argc, argv, &i, NULL, "--drain", &v)) rc = parse_secs_flag(flag, v, &p.drain_s);
        else if (cli_value(argc, argv, &i, NULL, "--template", &v)) {
            if (!v) rc = cli_usage_error("serve", "--template needs a name");
            template_name = v;
        } else if (cli_value(argc, argv, &i, NULL, "--auth", &v)) {
            if (parse_auth(v, &auth_mode)) rc = cli_usage_error("serve", "--auth needs auto, keys or none");
        } else if (cli_value(argc, argv, &i, NULL, "--store", &v)) {
            if (!v) rc = cli_usage_error("serve", "--store needs a URL");
            store_url = v;
        } else if (cli_value(argc, argv, &i, NULL, "--data-dir", &v)) {
            if (!v) rc = cli_usage_error("serve", "--data-dir needs a directory");
            data_dir = v;
        } else if (cli_value(argc, argv, &i, NULL, "--trust", &v)) {
            if (!v) rc = cli_usage_error("serve", "--trust needs a directory");
            trust_dir = v;
        } else if (cli_flag(argv[i], NULL, "--require-signed")) require_signed = true;
        else if (cli_flag(argv[i], "-q", "--quiet")) p.quiet = true;
        else
            rc = cli_usage_error("serve", "unknown option '%s'", argv[i]);
    }
    if (!rc && n_flag_models > 0) { /* flags replace the config's models */
        p.models = flag_models;
        p.n_models = n_flag_models;
    }
    if (!rc && p.n_models == 0) rc = cli_usage_error("serve", "no model given (-m MODEL.gguf, --model NAME=PATH or models: in --config)");
    if (!rc && template_name) {
        for (int i = 0; i < p.n_models; i++) ((qai_serve_model_spec *)p.models)[i].template_name = template_name;
    }
    if (!rc && p.batch < p.parallel) p.batch = p.parallel;
    p.data_dir = data_dir; /* collections for /v1/indexes and retrieval */
    /* bundles: verified (hashes, signatures, revocations) and their model
     * served from the data directory's cache; under --require-signed only
     * signed bundles are accepted */
    char (*bundle_models)[4096] = rc ? NULL : qai_calloc((size_t)p.n_models, sizeof *bundle_models);
    if (!rc && !bundle_models) rc = cli_fail("serve", "out of memory");
    for (int i = 0; !rc && i < p.n_models; i++) {
        qai_serve_model_spec *ms = (qai_serve_model_spec *)&p.models[i];
        if (!qai_bundle_path_is_bundle(ms->path)) {
            if (require_signed)
                rc = cli_usage_error("serve", "model '%s': --require-signed serves signed bundles only, and '%s' is "
                                     "not a bundle (make one with 'qai bundle create', sign it with 'qai sign')",
                                     ms->name, ms->path);
            continue;
        }
        qai_bundle_policy pol = {.require_signed = require_signed, .trust_dir = trust_dir, .data_dir = data_dir};
        if (qai_bundle_open_model(ms->path, &pol, bundle_models[i], sizeof bundle_models[i]) != QAI_OK)
            rc = cli_fail("serve", "model '%s': %s", ms->name, qai_last_error());
        else {
            fprintf(stderr, "qai: serve: model '%s': bundle %s verified\n", ms->name, ms->path);
            ms->path = bundle_models[i];
        }
    }
    if (rc) {
        qai_free(bundle_models);
        qai_free(cfg_models);
        cJSON_Delete(cfg);
        return rc;
    }
    if (!p.quiet && !getenv("QAI_LOG")) qai_log_set_level(QAI_LOG_INFO);
    /* signals are taken by sigwait below; every thread the server starts inherits the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    qai_serve_store_auth *sa = NULL;
    if (qai_serve_store_auth_open(store_url, data_dir, auth_mode, &p.auth, &sa)) {
        rc = cli_fail_last("serve");
        qai_free(bundle_models);
        qai_free(cfg_models);
        cJSON_Delete(cfg);
        return rc;
    }
    if (!qai_serve_store_auth_requires_keys(sa))
        fprintf(stderr, "qai: serve: no API keys required (%s); every request is still audited. "
                "Create keys with 'qai keys create' to require them\n",
                auth_mode == QAI_SERVE_AUTH_NONE ? "--auth none" : "the store has no active key");
    qai_server *srv = NULL;
    if (qai_server_open(&p, &srv)) {
        rc = cli_fail_last("serve");
        qai_serve_store_auth_close(sa);
        qai_free(bundle_models);
        qai_free(cfg_models);
        cJSON_Delete(cfg);
        return rc;
    }
    fprintf(stderr, "qai: serve: listening on http://%s:%d/v1 (", p.host, qai_server_port(srv));
    for (int i = 0; i < p.n_models; i++) fprintf(stderr, "%s%s", i ? ", " : "", p.models[i].name);
    fprintf(stderr, "; KV cache %s); Ctrl-C to stop\n", p.kv_type == QAI_TYPE_F32 ? "f32" : "f16");
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig)) continue;
        if (sig == SIGHUP) {
            reload(srv, config);
            continue;
        }
        fprintf(stderr, "qai: serve: %s: finishing running requests (up to %.0f s)\n", sig == SIGINT ? "interrupted" : "terminated",
                p.drain_s);
        break;
    }
    qai_server_shutdown(srv, (int)(p.drain_s * 1000));
    qai_server_close(srv);
    qai_serve_store_auth_close(sa);
    qai_free(bundle_models);
    qai_free(cfg_models);
    cJSON_Delete(cfg);
    fprintf(stderr, "qai: serve: stopped\n");
    return 0;
}
