/*
 * libFuzzer target for the route matcher: the input is a `routes` setting
 * (JSON, as the YAML loader hands it on), a NUL byte, then a diff record
 * (JSON, as the outbox holds it). Both are fuzzed together, so the globs, the
 * severity/fixable filters, the default-route fallback and the image-name
 * split of the diff all see hostile text. Without a NUL byte the whole input
 * is the routes and a fixed diff record is routed.
 *
 * Invariants checked (sw_notify_route_diff's contract, notify_internal.h):
 *   - an item exists only for a route whose filters every kept finding passes,
 *     and it has at least one finding, none more than the diff record had;
 *   - resolved findings are kept only for routes with include_resolved;
 *   - default routes get items only when no ordinary route got one;
 *   - every mail rendered for an item is JSON within mail_max_request.
 *
 * Built as fuzz_route with -DSW_FUZZ=ON (clang); otherwise linked with
 * fuzz_main.c and replays tests/fuzz/corpus/route as a regression test.
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixed_diff[] =
    "{\"image\":\"myreg.azurecr.io/team-a/api@sha256:0123\",\"new\":["
    "{\"registry\":\"myreg.azurecr.io\",\"repository\":\"team-a/api\",\"severity\":\"High\","
    "\"fixable\":true,\"id\":\"CVE-2024-1\"},"
    "{\"severity\":\"Low\",\"fixable\":false,\"id\":\"CVE-2024-2\"}],"
    "\"resolved\":[{\"id\":\"CVE-2023-9\",\"severity\":\"Critical\"}]}";

static void must(bool cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_route: invariant violated: %s\n", what);
        abort();
    }
}

static void check_item(const sw_route *r, const cJSON *item, const cJSON *diff)
{
    const cJSON *nw = cJSON_GetObjectItemCaseSensitive(item, "new");
    must(cJSON_IsArray(nw) && cJSON_GetArraySize(nw) > 0, "item has new findings");
    must(cJSON_GetArraySize(nw) <=
             cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(diff, "new")),
         "no more findings than the diff record");
    const cJSON *f;
    cJSON_ArrayForEach(f, nw)
    {
        must(sw_route_passes(r, f), "every kept finding passes the route's filters");
    }
    if (!r->include_resolved) {
        must(cJSON_GetObjectItemCaseSensitive(item, "resolved") == NULL,
             "resolved only with include_resolved");
    }
    sw_render_opts o = {.max_request = 16384, .now = 0, .digest = false};
    cJSON *items[1] = {(cJSON *)item};
    sw_mail_list ml;
    sw_err err;
    if (sw_notify_render(&o, r, items, 1, &ml, &err)) {
        for (size_t i = 0; i < ml.n; i++) {
            must(ml.lens[i] <= o.max_request, "mail within mail_max_request");
            cJSON *doc = cJSON_ParseWithLength(ml.bodies[i], ml.lens[i]);
            must(doc != NULL, "mail is JSON");
            cJSON_Delete(doc);
        }
        sw_mail_list_free(&ml);
    } else {
        must(err.msg[0] != '\0', "a failed render has a message");
    }
}

static void route_one(const sw_routes *routes, const char *diff_text, size_t len)
{
    cJSON *diff = cJSON_ParseWithLength(diff_text, len);
    if (diff == NULL) {
        return;
    }
    cJSON **items = calloc(routes->n > 0 ? routes->n : 1, sizeof *items);
    sw_err err;
    if (items != NULL && sw_notify_route_diff(routes, diff, items, &err)) {
        bool ordinary = false;
        for (size_t i = 0; i < routes->n; i++) {
            if (items[i] != NULL && !routes->v[i].is_default) {
                ordinary = true;
            }
        }
        for (size_t i = 0; i < routes->n; i++) {
            if (items[i] == NULL) {
                continue;
            }
            must(!(ordinary && routes->v[i].is_default), "default route only as a fallback");
            check_item(&routes->v[i], items[i], diff);
        }
    } else if (items != NULL) {
        must(err.msg[0] != '\0', "a rejected diff record has a message");
    }
    for (size_t i = 0; items != NULL && i < routes->n; i++) {
        cJSON_Delete(items[i]);
    }
    free(items);
    cJSON_Delete(diff);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024) {
        return 0;
    }
    /* One copy, NUL-terminated: routes text, then (after the first NUL) the diff record. */
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    size_t routes_len = strlen(text);
    const char *diff = routes_len < size ? text + routes_len + 1 : fixed_diff;
    size_t diff_len = routes_len < size ? size - routes_len - 1 : sizeof fixed_diff - 1;

    sw_routes routes;
    sw_err err;
    if (sw_notify_routes_parse(text, "fallback@example.com", &routes, &err)) {
        route_one(&routes, diff, diff_len);
        sw_notify_routes_free(&routes);
    } else {
        must(err.msg[0] != '\0', "a rejected routes setting has a message");
    }
    free(text);
    return 0;
}
