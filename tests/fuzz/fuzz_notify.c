/*
 * Fuzz target for what the notifier parses: the first byte picks the input kind,
 * the rest is the text.
 *   0: the `routes` setting (JSON)
 *   1: a diff record from the outbox -> routes -> per-image and digest rendering
 *      (with a small mail_max_request so that splitting runs too)
 *   2: a Retry-After header value and a mail_sink value
 * Every rendered mail must be valid JSON no larger than mail_max_request.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "notify_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sw_routes routes;
static bool routes_ready;

static const char *const fuzz_routes =
    "[{\"name\":\"a\",\"registry\":\"*.azurecr.io\",\"repository\":\"team-*\","
    "\"min_severity\":\"High\",\"to\":\"a@example.com\",\"cc\":[\"c@example.com\"],"
    "\"subject_prefix\":\"[p]\"},"
    "{\"name\":\"fix\",\"fixable_only\":true,\"include_resolved\":false,\"to\":\"f@example.com\"},"
    "{\"name\":\"d\",\"default\":true,\"to\":\"d@example.com\"}]";

static void check_mails(const sw_mail_list *ml, size_t max)
{
    for (size_t i = 0; i < ml->n; i++) {
        if (ml->lens[i] > max) {
            abort();
        }
        cJSON *doc = cJSON_ParseWithLength(ml->bodies[i], ml->lens[i]);
        if (doc == NULL) {
            abort();
        }
        cJSON_Delete(doc);
    }
}

static void fuzz_diff(const char *text, size_t len)
{
    if (!routes_ready) {
        sw_err err;
        if (!sw_notify_routes_parse(fuzz_routes, "", &routes, &err)) {
            abort();
        }
        routes_ready = true;
    }
    cJSON *d = cJSON_ParseWithLength(text, len);
    if (d == NULL) {
        return;
    }
    cJSON *items[3] = {NULL, NULL, NULL};
    sw_err err;
    if (sw_notify_route_diff(&routes, d, items, &err)) {
        for (size_t r = 0; r < routes.n; r++) {
            if (items[r] == NULL) {
                continue;
            }
            sw_render_opts o = {.max_request = 65536, .now = 0, .digest = r == 1};
            sw_mail_list ml;
            if (sw_notify_render(&o, &routes.v[r], &items[r], 1, &ml, &err)) {
                check_mails(&ml, o.max_request);
                sw_mail_list_free(&ml);
            }
        }
    }
    for (size_t r = 0; r < 3; r++) {
        cJSON_Delete(items[r]);
    }
    cJSON_Delete(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    char *text = malloc(size);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    sw_err err;
    switch (data[0] % 3) {
    case 0: {
        sw_routes r;
        if (sw_notify_routes_parse(text, "", &r, &err)) {
            sw_notify_routes_free(&r);
        }
        break;
    }
    case 1:
        fuzz_diff(text, size - 1);
        break;
    default: {
        (void)sw_http_parse_retry_after(text, 0);
        sw_sink_spec spec;
        (void)sw_sink_spec_parse(text, &spec, &err);
        break;
    }
    }
    free(text);
    return 0;
}
