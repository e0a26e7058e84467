/* Traffic-splitting routes (config.c): route name -> weighted variants, each
 * one of the loaded models. Immutable once built; the server swaps a whole
 * table on reload. */
#ifndef QAI_SERVE_ROUTES_H
#define QAI_SERVE_ROUTES_H

#include "serve_internal.h"

typedef struct serve_routes serve_routes;

/* Builds the table from a cJSON object (NULL: empty table); models are the
 * names of the loaded models (variants must name one). Errors name the key. */
qai_status serve_routes_build(const void *json, const char *const *models, int n_models, serve_routes **out);
void serve_routes_free(serve_routes *rt);
/* The model index a request for `name` goes to, or -1 if name is not a route.
 * user (may be NULL) makes the pick sticky on sticky routes; otherwise rnd (a
 * uniform 64-bit random number) decides. *variant_name points into rt. */
int serve_routes_pick(const serve_routes *rt, const char *name, const char *user, uint64_t rnd, const char **variant_name);
int serve_routes_count(const serve_routes *rt);
const char *serve_routes_name(const serve_routes *rt, int i);

#endif
