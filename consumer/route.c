#include "route.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TAGS 256

uint32_t sw_route_partition(const char *image, uint32_t n_partitions)
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)image; *p != '\0'; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return (uint32_t)(h % n_partitions);
}

bool sw_route_encode(const sw_finding *f, sw_time_us enqueued, sw_buf *out)
{
    char ts[SW_TIME_BUF];
    sw_time_format(enqueued == SW_TIME_UNSET ? 0 : enqueued, ts, sizeof ts);
    sw_buf_printf(out, "{\"scanwatch_routed\":1,\"enqueued\":\"%s\",\"clean_marker\":%s,\"finding\":",
                  ts, f->clean_marker ? "true" : "false");
    sw_finding_to_json(f, out);
    return sw_buf_append_char(out, '}');
}

struct sw_route_scratch {
    cJSON *doc;
    char *finding_json;
    char *repository;
    const char *tags[MAX_TAGS];
};

sw_route_scratch *sw_route_scratch_new(void)
{
    return calloc(1, sizeof(sw_route_scratch));
}

static void scratch_clear(sw_route_scratch *s)
{
    cJSON_Delete(s->doc);
    free(s->finding_json);
    free(s->repository);
    s->doc = NULL;
    s->finding_json = NULL;
    s->repository = NULL;
}

void sw_route_scratch_free(sw_route_scratch *s)
{
    if (s != NULL) {
        scratch_clear(s);
        free(s);
    }
}

static const char *str(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool sw_route_decode(sw_route_scratch *s, const void *body, size_t len, sw_routed *out,
                     sw_err *err)
{
    scratch_clear(s);
    memset(out, 0, sizeof *out);
    s->doc = cJSON_ParseWithLength(body, len);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(s->doc, "finding");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(s->doc, "scanwatch_routed");
    if (s->doc == NULL || !cJSON_IsNumber(ver) || ver->valueint != 1 || !cJSON_IsObject(f)) {
        return sw_err_set(err, SW_E_PARSE, "not a scanwatch routed record (version 1)");
    }
    const char *image = str(f, "image");
    const char *scan_time = str(f, "scan_time");
    const char *status = str(f, "status");
    const char *enq = str(s->doc, "enqueued");
    const cJSON *clean = cJSON_GetObjectItemCaseSensitive(s->doc, "clean_marker");
    sw_routed r = {0};
    if (image == NULL || scan_time == NULL || status == NULL || enq == NULL ||
        !cJSON_IsBool(clean) ||
        !sw_time_parse(scan_time, strlen(scan_time), &r.rec.scan_time) ||
        !sw_time_parse(enq, strlen(enq), &r.enqueued)) {
        return sw_err_set(err, SW_E_PARSE, "routed record lacks image, scan_time, status, "
                                           "enqueued or clean_marker");
    }
    r.rec.clean_marker = cJSON_IsTrue(clean);
    r.rec.key = str(f, "key");
    if (r.rec.key == NULL && !r.rec.clean_marker) {
        return sw_err_set(err, SW_E_PARSE, "routed record of %s has no finding key", image);
    }
    const char *registry = str(f, "registry");
    const char *repository = str(f, "repository");
    size_t rl = (registry != NULL ? strlen(registry) : 0) +
                (repository != NULL ? strlen(repository) : 0) + 2;
    s->repository = malloc(rl);
    s->finding_json = cJSON_PrintUnformatted(f);
    if (s->repository == NULL || s->finding_json == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    snprintf(s->repository, rl, "%s/%s", registry != NULL ? registry : "",
             repository != NULL ? repository : "");
    size_t n_tags = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(f, "tags"))
    {
        if (cJSON_IsString(t) && n_tags < MAX_TAGS) {
            s->tags[n_tags++] = t->valuestring;
        }
    }
    const cJSON *snap = cJSON_GetObjectItemCaseSensitive(f, "snapshot");
    r.rec.image = image;
    r.rec.repository = s->repository;
    r.rec.tags = s->tags;
    r.rec.n_tags = n_tags;
    r.rec.resolved = strcmp(status, "resolved") == 0;
    r.rec.snapshot = cJSON_IsTrue(snap);
    r.rec.finding_json = s->finding_json;
    r.rec.finding_len = strlen(s->finding_json);
    *out = r;
    return true;
}
