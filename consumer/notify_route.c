/* Routes: which diffs and findings go to which recipients (docs/notifications.md). */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "notify_internal.h"

#define MAX_ROUTES 1000
#define MAX_FIELD 1024

static void route_free(sw_route *r)
{
    free(r->name);
    free(r->registry);
    free(r->repository);
    free(r->subject_prefix);
    for (size_t i = 0; i < r->n_to; i++) {
        free(r->to[i]);
    }
    for (size_t i = 0; i < r->n_cc; i++) {
        free(r->cc[i]);
    }
    free(r->to);
    free(r->cc);
}

void sw_notify_routes_free(sw_routes *r)
{
    for (size_t i = 0; i < r->n; i++) {
        route_free(&r->v[i]);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

/* A plain address: local@domain, no spaces, quotes, brackets or separators. */
static bool address_ok(const char *a)
{
    size_t n = strlen(a);
    if (n < 3 || n > 320) {
        return false;
    }
    const char *at = strchr(a, '@');
    if (at == NULL || at == a || strchr(at + 1, '@') != NULL || at[1] == '\0') {
        return false;
    }
    for (const char *p = a; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == 0x7f || strchr("<>()[],;:\"\\", c) != NULL) {
            return false;
        }
    }
    return strchr(at + 1, '.') != NULL;
}

static bool add_address(char ***v, size_t *n, const char *s, size_t len, const char *ctx,
                        const char *field, sw_err *err)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1])) {
        len--;
    }
    if (len == 0) {
        return true;
    }
    char *a = strndup(s, len);
    if (a == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    if (!address_ok(a)) {
        sw_err_set(err, SW_E_CONFIG, "%s: %s: '%.100s' is not an e-mail address", ctx, field, a);
        free(a);
        return false;
    }
    char **nv = realloc(*v, (*n + 1) * sizeof *nv);
    if (nv == NULL) {
        free(a);
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    nv[(*n)++] = a;
    *v = nv;
    return true;
}

/* A list of addresses, or one string with comma-separated addresses. */
static bool parse_addresses(const cJSON *v, char ***out, size_t *n, const char *ctx,
                            const char *field, sw_err *err)
{
    if (v == NULL || cJSON_IsNull(v)) {
        return true;
    }
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        while (true) {
            const char *comma = strchr(s, ',');
            size_t len = comma ? (size_t)(comma - s) : strlen(s);
            if (!add_address(out, n, s, len, ctx, field, err)) {
                return false;
            }
            if (comma == NULL) {
                return true;
            }
            s = comma + 1;
        }
    }
    if (!cJSON_IsArray(v)) {
        return sw_err_set(err, SW_E_CONFIG, "%s: %s must be a list of e-mail addresses", ctx,
                          field);
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, v)
    {
        if (!cJSON_IsString(e)) {
            return sw_err_set(err, SW_E_CONFIG, "%s: %s must contain only strings", ctx, field);
        }
        if (!add_address(out, n, e->valuestring, strlen(e->valuestring), ctx, field, err)) {
            return false;
        }
    }
    return true;
}

static bool get_bool(const cJSON *o, const char *name, bool def, bool *out, const char *ctx,
                     sw_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = def;
    if (v == NULL) {
        return true;
    }
    if (cJSON_IsBool(v)) {
        *out = cJSON_IsTrue(v);
        return true;
    }
    /* YAML scalars arrive as strings. */
    const char *s = cJSON_GetStringValue(v);
    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0)) {
        *out = true;
        return true;
    }
    if (s != NULL && (strcmp(s, "false") == 0 || strcmp(s, "no") == 0)) {
        *out = false;
        return true;
    }
    return sw_err_set(err, SW_E_CONFIG, "%s: %s must be true or false", ctx, name);
}

static bool get_str(const cJSON *o, const char *name, const char *def, char **out, const char *ctx,
                    sw_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    const char *s = def;
    if (v != NULL && !cJSON_IsNull(v)) {
        s = cJSON_GetStringValue(v);
        if (s == NULL) {
            return sw_err_set(err, SW_E_CONFIG, "%s: %s must be a string", ctx, name);
        }
    }
    if (strlen(s) > MAX_FIELD) {
        return sw_err_set(err, SW_E_CONFIG, "%s: %s is longer than %d characters", ctx, name,
                          MAX_FIELD);
    }
    *out = strdup(s);
    return *out != NULL || sw_err_set(err, SW_E_NOMEM, "out of memory");
}

static const char *const known_fields[] = {
    "name", "registry", "repository", "min_severity",   "fixable_only",
    "to",   "cc",       "default",    "subject_prefix", "include_resolved",
};

static bool parse_route(const cJSON *o, size_t idx, sw_route *r, sw_err *err)
{
    char ctx[160];
    snprintf(ctx, sizeof ctx, "routes[%zu]", idx);
    if (!cJSON_IsObject(o)) {
        return sw_err_set(err, SW_E_CONFIG, "%s must be an object (a YAML mapping)", ctx);
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, o)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof known_fields / sizeof known_fields[0]; i++) {
            known = known || strcmp(f->string, known_fields[i]) == 0;
        }
        if (!known) {
            return sw_err_set(err, SW_E_CONFIG,
                              "%s: unknown field '%.64s' (known: name, registry, repository, "
                              "min_severity, fixable_only, to, cc, subject_prefix, default, "
                              "include_resolved)",
                              ctx, f->string);
        }
    }
    char defname[32];
    snprintf(defname, sizeof defname, "route-%zu", idx + 1);
    if (!get_str(o, "name", defname, &r->name, ctx, err)) {
        return false;
    }
    snprintf(ctx, sizeof ctx, "routes[%zu] (%.100s)", idx, r->name);
    if (!get_str(o, "registry", "*", &r->registry, ctx, err) ||
        !get_str(o, "repository", "*", &r->repository, ctx, err) ||
        !get_str(o, "subject_prefix", "", &r->subject_prefix, ctx, err) ||
        !get_bool(o, "fixable_only", false, &r->fixable_only, ctx, err) ||
        !get_bool(o, "default", false, &r->is_default, ctx, err) ||
        !get_bool(o, "include_resolved", true, &r->include_resolved, ctx, err)) {
        return false;
    }
    const cJSON *sev = cJSON_GetObjectItemCaseSensitive(o, "min_severity");
    r->min_severity = SW_SEV_UNKNOWN;
    if (sev != NULL && !cJSON_IsNull(sev)) {
        const char *s = cJSON_GetStringValue(sev);
        sw_severity v = s ? sw_severity_parse(s, strlen(s)) : SW_SEV_UNKNOWN;
        if (s == NULL || (v == SW_SEV_UNKNOWN && strcasecmp(s, "unknown") != 0)) {
            return sw_err_set(err, SW_E_CONFIG,
                              "%s: min_severity must be one of Unknown, Low, Medium, High, "
                              "Critical",
                              ctx);
        }
        r->min_severity = v;
    }
    if (!parse_addresses(cJSON_GetObjectItemCaseSensitive(o, "to"), &r->to, &r->n_to, ctx, "to",
                         err) ||
        !parse_addresses(cJSON_GetObjectItemCaseSensitive(o, "cc"), &r->cc, &r->n_cc, ctx, "cc",
                         err)) {
        return false;
    }
    if (r->n_to == 0) {
        return sw_err_set(err, SW_E_CONFIG, "%s: 'to' needs at least one address", ctx);
    }
    if (r->n_to + r->n_cc > SW_NOTIFY_MAX_RECIPIENTS) {
        return sw_err_set(err, SW_E_CONFIG,
                          "%s: %zu recipients; Exchange allows at most %d per message", ctx,
                          r->n_to + r->n_cc, SW_NOTIFY_MAX_RECIPIENTS);
    }
    return true;
}

bool sw_notify_routes_parse(const char *json, const char *mail_to, sw_routes *out, sw_err *err)
{
    out->v = NULL;
    out->n = 0;
    if (json != NULL && json[0] != '\0') {
        cJSON *doc = cJSON_Parse(json);
        if (doc == NULL || !cJSON_IsArray(doc)) {
            cJSON_Delete(doc);
            return sw_err_set(err, SW_E_CONFIG,
                              "setting routes: must be a list of route objects (a YAML list)");
        }
        int n = cJSON_GetArraySize(doc);
        if (n > MAX_ROUTES) {
            cJSON_Delete(doc);
            return sw_err_set(err, SW_E_CONFIG, "setting routes: more than %d routes", MAX_ROUTES);
        }
        out->v = calloc(n > 0 ? (size_t)n : 1, sizeof *out->v);
        if (out->v == NULL) {
            cJSON_Delete(doc);
            return sw_err_set(err, SW_E_NOMEM, "out of memory");
        }
        bool ok = true;
        for (int i = 0; ok && i < n; i++) {
            out->n++;
            ok = parse_route(cJSON_GetArrayItem(doc, i), (size_t)i, &out->v[i], err);
        }
        for (size_t i = 0; ok && i < out->n; i++) {
            for (size_t j = 0; j < i; j++) {
                if (strcmp(out->v[i].name, out->v[j].name) == 0) {
                    ok = sw_err_set(err, SW_E_CONFIG,
                                    "setting routes: two routes are named '%.100s'; names key "
                                    "pending digests and must be unique",
                                    out->v[i].name);
                    break;
                }
            }
        }
        cJSON_Delete(doc);
        if (!ok) {
            sw_err_prefix(err, "setting routes");
            sw_notify_routes_free(out);
            return false;
        }
        if (out->n > 0) {
            return true;
        }
    }
    if (mail_to == NULL || mail_to[0] == '\0') {
        return true;
    }
    cJSON *def = cJSON_CreateObject();
    bool ok = def != NULL && cJSON_AddStringToObject(def, "name", "default") != NULL &&
              cJSON_AddStringToObject(def, "to", mail_to) != NULL &&
              cJSON_AddBoolToObject(def, "default", true) != NULL;
    free(out->v);
    out->v = ok ? calloc(1, sizeof *out->v) : NULL;
    if (out->v == NULL) {
        cJSON_Delete(def);
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    out->n = 1;
    ok = parse_route(def, 0, &out->v[0], err);
    cJSON_Delete(def);
    if (!ok) {
        sw_err_prefix(err, "setting mail_to");
        sw_notify_routes_free(out);
    }
    return ok;
}

bool sw_route_matches_image(const sw_route *r, const char *registry, const char *repository)
{
    return fnmatch(r->registry, registry ? registry : "", FNM_CASEFOLD) == 0 &&
           fnmatch(r->repository, repository ? repository : "", 0) == 0;
}

bool sw_route_passes(const sw_route *r, const cJSON *f)
{
    const char *sev = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(f, "severity"));
    sw_severity s = sev ? sw_severity_parse(sev, strlen(sev)) : SW_SEV_UNKNOWN;
    if (s < r->min_severity) {
        return false;
    }
    if (r->fixable_only && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "fixable"))) {
        return false;
    }
    return true;
}

bool sw_notify_diff_check(const cJSON *d, sw_err *err)
{
    if (!cJSON_IsObject(d)) {
        return sw_err_set(err, SW_E_PARSE, "diff record is not a JSON object");
    }
    if (cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "image")) == NULL) {
        return sw_err_set(err, SW_E_PARSE, "diff record has no image");
    }
    const cJSON *nw = cJSON_GetObjectItemCaseSensitive(d, "new");
    if (!cJSON_IsArray(nw)) {
        return sw_err_set(err, SW_E_PARSE, "diff record: new must be a list");
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, nw)
    {
        if (!cJSON_IsObject(f)) {
            return sw_err_set(err, SW_E_PARSE, "diff record: new[] must hold finding objects");
        }
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(d, "resolved");
    if (rs != NULL && !cJSON_IsArray(rs)) {
        return sw_err_set(err, SW_E_PARSE, "diff record: resolved must be a list");
    }
    return true;
}

/* Registry and repository of a diff: from its first finding, else from the image key. */
static void diff_names(const cJSON *d, char *reg, size_t regsz, char *repo, size_t reposz)
{
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "new"), 0);
    const char *r1 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "registry"));
    const char *r2 = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(first, "repository"));
    if (r1 != NULL && r2 != NULL) {
        snprintf(reg, regsz, "%s", r1);
        snprintf(repo, reposz, "%s", r2);
        return;
    }
    /* "<host>/<repository>@<digest>" */
    const char *img = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(d, "image"));
    const char *slash = strchr(img, '/');
    const char *at = strrchr(img, '@');
    if (slash == NULL) {
        snprintf(reg, regsz, "%s", "");
        slash = img - 1;
    } else {
        snprintf(reg, regsz, "%.*s", (int)(slash - img), img);
    }
    size_t rl = at != NULL && at > slash ? (size_t)(at - slash - 1) : strlen(slash + 1);
    snprintf(repo, reposz, "%.*s", (int)rl, slash + 1);
}

static cJSON *filtered_item(const sw_route *r, const cJSON *d)
{
    cJSON *item = cJSON_CreateObject();
    cJSON *nw = cJSON_CreateArray();
    if (item == NULL || nw == NULL) {
        cJSON_Delete(item);
        cJSON_Delete(nw);
        return NULL;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, d)
    {
        if (strcmp(f->string, "new") == 0) {
            continue;
        }
        if (strcmp(f->string, "resolved") == 0 && !r->include_resolved) {
            continue;
        }
        cJSON_AddItemToObject(item, f->string, cJSON_Duplicate(f, true));
    }
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(d, "new"))
    {
        if (sw_route_passes(r, f)) {
            cJSON_AddItemToArray(nw, cJSON_Duplicate(f, true));
        }
    }
    cJSON_AddItemToObject(item, "new", nw);
    return item;
}

bool sw_notify_route_diff(const sw_routes *routes, const cJSON *d, cJSON **items, sw_err *err)
{
    char reg[512], repo[1024];
    for (size_t i = 0; i < routes->n; i++) {
        items[i] = NULL;
    }
    if (!sw_notify_diff_check(d, err)) {
        return false;
    }
    diff_names(d, reg, sizeof reg, repo, sizeof repo);
    bool matched = false;
    for (int pass = 0; pass < 2 && !matched; pass++) {
        /* Pass 0: ordinary routes. Pass 1 (only when none matched): default routes. */
        for (size_t i = 0; i < routes->n; i++) {
            const sw_route *r = &routes->v[i];
            if (r->is_default != (pass == 1) || !sw_route_matches_image(r, reg, repo)) {
                continue;
            }
            matched = true;
            cJSON *item = filtered_item(r, d);
            if (item == NULL) {
                for (size_t j = 0; j < routes->n; j++) {
                    cJSON_Delete(items[j]);
                    items[j] = NULL;
                }
                return sw_err_set(err, SW_E_NOMEM, "out of memory");
            }
            if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(item, "new")) == 0) {
                cJSON_Delete(item); /* nothing left for this route: no mail */
                continue;
            }
            items[i] = item;
        }
    }
    return true;
}
