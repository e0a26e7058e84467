/* The software bill of materials a bundle carries (sbom.json): which
 * libraries this qai was built with and run against, with the versions each
 * library reports about itself at run time (not the headers' idea of it), in
 * a CycloneDX-like shape.
 *
 * What it deliberately does not do: list system libraries qai does not link,
 * or vouch for the model (that is the manifest's job). */
#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>
#include <yaml.h>
#include <zstd.h>
#include <archive.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "qai/bundle.h"

static bool add_component(cJSON *arr, const char *name, const char *version, const char *purl_name,
                          const char *license) {
    cJSON *c = cJSON_CreateObject();
    if (!c) return false;
    char purl[256];
    snprintf(purl, sizeof purl, "pkg:generic/%s@%s", purl_name, version);
    bool ok = cJSON_AddStringToObject(c, "type", "library") && cJSON_AddStringToObject(c, "name", name) &&
              cJSON_AddStringToObject(c, "version", version) && cJSON_AddStringToObject(c, "purl", purl);
    cJSON *lic = ok ? cJSON_AddArrayToObject(c, "licenses") : NULL;
    cJSON *l = lic ? cJSON_CreateObject() : NULL;
    cJSON *id = l ? cJSON_AddObjectToObject(l, "license") : NULL;
    ok = ok && id && cJSON_AddStringToObject(id, "id", license) && cJSON_AddItemToArray(lic, l);
    if (!ok) {
        if (l && !lic) cJSON_Delete(l);
        cJSON_Delete(c);
        return false;
    }
    return cJSON_AddItemToArray(arr, c);
}

qai_status qai_sbom_json(const char *tool_version, int64_t created, char **out) {
    *out = NULL;
    char ts[32] = "1970-01-01T00:00:00Z";
    time_t t = (time_t)created;
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);

    char pcre[64] = "unknown", pq[32], mhd[64], lib_arch[64];
    if (pcre2_config(PCRE2_CONFIG_VERSION, NULL) < (int)sizeof pcre) pcre2_config(PCRE2_CONFIG_VERSION, pcre);
    pcre[strcspn(pcre, " ")] = 0; /* "10.42 2022-12-11" -> "10.42" */
    int pv = PQlibVersion(); /* e.g. 150018 */
    snprintf(pq, sizeof pq, "%d.%d", pv / 10000, pv % 10000);
    snprintf(mhd, sizeof mhd, "%s", MHD_get_version());
    /* "libarchive 3.6.2 zlib/1.2.13 ..." -> "3.6.2" */
    const char *av = archive_version_string();
    if (!strncmp(av, "libarchive ", 11)) av += 11;
    snprintf(lib_arch, sizeof lib_arch, "%s", av);
    lib_arch[strcspn(lib_arch, " ")] = 0;

    cJSON *root = cJSON_CreateObject();
    if (!root) return qai_error(QAI_ERR_NOMEM, "sbom: out of memory");
    cJSON *meta = NULL, *comp = NULL, *comps = NULL;
    bool ok = cJSON_AddStringToObject(root, "bomFormat", "CycloneDX") &&
              cJSON_AddStringToObject(root, "specVersion", "1.5") && cJSON_AddNumberToObject(root, "version", 1) &&
              (meta = cJSON_AddObjectToObject(root, "metadata")) && cJSON_AddStringToObject(meta, "timestamp", ts) &&
              (comp = cJSON_AddObjectToObject(meta, "component")) &&
              cJSON_AddStringToObject(comp, "type", "application") && cJSON_AddStringToObject(comp, "name", "qai") &&
              cJSON_AddStringToObject(comp, "version", tool_version ? tool_version : "unknown") &&
              (comps = cJSON_AddArrayToObject(root, "components"));
    ok = ok && add_component(comps, "sqlite3", sqlite3_libversion(), "sqlite", "blessing");
    ok = ok && add_component(comps, "libsodium", sodium_version_string(), "libsodium", "ISC");
    ok = ok && add_component(comps, "libarchive", lib_arch, "libarchive", "BSD-2-Clause");
    ok = ok && add_component(comps, "zstd", ZSTD_versionString(), "zstd", "BSD-3-Clause");
    ok = ok && add_component(comps, "cjson", cJSON_Version(), "cjson", "MIT");
    ok = ok && add_component(comps, "pcre2", pcre, "pcre2", "BSD-3-Clause");
    ok = ok && add_component(comps, "utf8proc", utf8proc_version(), "utf8proc", "MIT");
    ok = ok && add_component(comps, "libmicrohttpd", mhd, "libmicrohttpd", "LGPL-2.1-or-later");
    ok = ok && add_component(comps, "libpq", pq, "libpq", "PostgreSQL");
    ok = ok && add_component(comps, "libyaml", yaml_get_version_string(), "libyaml", "MIT");
    char *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return qai_error(QAI_ERR_NOMEM, "sbom: out of memory");
    size_t n = strlen(text);
    *out = qai_malloc(n + 2);
    if (!*out) {
        cJSON_free(text);
        return QAI_ERR_NOMEM;
    }
    memcpy(*out, text, n);
    (*out)[n] = '\n';
    (*out)[n + 1] = 0;
    cJSON_free(text);
    return QAI_OK;
}
