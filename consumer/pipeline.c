#include "pipeline.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "scanwatch/log.h"

struct sw_pipeline {
    sw_state_engine *eng;
    sw_decoder *dec;
    sw_pipeline_clock clock;
    sw_time_us event_time; /* SW_CLOCK_SCAN_TIME's running maximum */
    sw_state_pos pos;      /* the event being processed */
    sw_buf json;
    sw_buf repo;
    sw_err err;
    bool failed;
    sw_decode_stats stats;
    sw_forward_fn forward;
    void *forward_ctx;
    sw_route_scratch *routed;
    sw_metric *m_events, *m_findings, *m_bad, *m_skipped;
    int64_t max_skew; /* max_scan_time_skew (SW_CLOCK_ENQUEUED) */
    /* Label sets of the last partition counted: formatted once per partition change,
     * not per event (events arrive in runs of one partition's batch). */
    char label_part[96]; /* longer ids are reformatted per event (correct, slower) */
    char labels_shape[SW_SHAPE_COUNT + 2][256]; /* shapes, then "skipped", "bad" */
    const char **tag_ptrs;                      /* sw_pipeline_apply's tags of one record */
    size_t tag_cap;
};

/* The decoder both the pipeline and a predecoder own. */
static sw_decoder *decoder_from_config(const sw_config *cfg, sw_err *err)
{
    sw_decode_opts dopts;
    sw_decode_opts_from_config(&dopts, cfg);
    return sw_decoder_new(&dopts, err);
}

sw_pipeline *sw_pipeline_new(const sw_config *cfg, sw_state_engine *eng, sw_metrics *metrics,
                             sw_pipeline_clock clock, sw_err *err)
{
    sw_pipeline *pl = calloc(1, sizeof *pl);
    if (pl == NULL) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
        return NULL;
    }
    pl->dec = decoder_from_config(cfg, err);
    if (pl->dec == NULL) {
        free(pl);
        return NULL;
    }
    pl->eng = eng;
    pl->clock = clock;
    pl->max_skew = sw_cfg_int(cfg, SW_CFG_MAX_SCAN_TIME_SKEW);
    pl->event_time = SW_TIME_UNSET;
    sw_buf_init(&pl->json, 0);
    sw_buf_init(&pl->repo, 0);
    if (metrics != NULL) {
        pl->m_events = sw_metrics_define(metrics, SW_METRIC_COUNTER, "scanwatch_events_total",
                                         "Events processed, by partition and shape (skipped: "
                                         "not a container finding; bad: dead-lettered).",
                                         NULL, 0);
        pl->m_findings =
            sw_metrics_define(metrics, SW_METRIC_COUNTER, "scanwatch_findings_total",
                              "Container findings decoded, by partition and shape.", NULL, 0);
        pl->m_bad = sw_metrics_define(metrics, SW_METRIC_COUNTER, "scanwatch_bad_events_total",
                                      "Bad events written to the dead letter, by reason.", NULL, 0);
        pl->m_skipped =
            sw_metrics_define(metrics, SW_METRIC_COUNTER, "scanwatch_skipped_records_total",
                              "Records that are not container findings, by kind.", NULL, 0);
    }
    return pl;
}

void sw_pipeline_free(sw_pipeline *pl)
{
    if (pl == NULL) {
        return;
    }
    sw_decoder_free(pl->dec);
    sw_route_scratch_free(pl->routed);
    free(pl->tag_ptrs);
    sw_buf_free(&pl->json);
    sw_buf_free(&pl->repo);
    free(pl);
}

void sw_pipeline_set_clock(sw_pipeline *pl, sw_time_us event_time)
{
    pl->event_time = event_time;
}

sw_time_us sw_pipeline_clock_now(const sw_pipeline *pl)
{
    return pl->event_time;
}

const sw_decode_stats *sw_pipeline_stats(const sw_pipeline *pl)
{
    return &pl->stats;
}

void sw_pipeline_set_forward(sw_pipeline *pl, sw_forward_fn fn, void *ctx)
{
    pl->forward = fn;
    pl->forward_ctx = ctx;
}

static bool on_finding(void *ctx, const sw_finding *f)
{
    sw_pipeline *pl = ctx;
    if (pl->forward != NULL) {
        pl->failed = !pl->forward(pl->forward_ctx, f, &pl->pos, &pl->err);
        return !pl->failed;
    }
    sw_buf_reset(&pl->json);
    sw_buf_reset(&pl->repo);
    if (!sw_finding_to_json(f, &pl->json)) {
        pl->failed = !sw_buf_check(&pl->json, &pl->err);
        return false;
    }
    /* appends, not a printf: this runs once per finding */
    sw_buf_append_str(&pl->repo, f->registry != NULL ? f->registry : "");
    sw_buf_append_char(&pl->repo, '/');
    sw_buf_append_str(&pl->repo, f->repository != NULL ? f->repository : "");
    if (pl->clock == SW_CLOCK_SCAN_TIME &&
        (pl->event_time == SW_TIME_UNSET || f->scan_time > pl->event_time)) {
        pl->event_time = f->scan_time;
        pl->pos.enqueued = f->scan_time;
    }
    sw_state_record r = {
        .image = f->image,
        .repository = pl->repo.data,
        .tags = f->tags,
        .n_tags = f->n_tags,
        .key = f->clean_marker ? NULL : f->key,
        .resolved = f->status == SW_STATUS_RESOLVED,
        .snapshot = f->snapshot,
        .clean_marker = f->clean_marker,
        .scan_time = f->scan_time,
        .finding_json = pl->json.data,
        .finding_len = pl->json.len,
    };
    if (!sw_state_engine_add(pl->eng, &pl->pos, &r, &pl->err)) {
        pl->failed = true;
        return false;
    }
    return true;
}

/* The label sets of pl->pos.partition, formatted when the partition changes. */
static void part_labels(sw_pipeline *pl)
{
    const char *id = pl->pos.partition != NULL ? pl->pos.partition : "";
    if (pl->labels_shape[0][0] != '\0' && strcmp(id, pl->label_part) == 0) {
        return;
    }
    snprintf(pl->label_part, sizeof pl->label_part, "%s", id);
    char part[96];
    sw_metrics_label_escape(id, part, sizeof part);
    for (int s = 0; s < SW_SHAPE_COUNT + 2; s++) {
        const char *shape = s < SW_SHAPE_COUNT    ? sw_shape_name((sw_shape)s)
                            : s == SW_SHAPE_COUNT ? "skipped"
                                                  : "bad";
        snprintf(pl->labels_shape[s], sizeof pl->labels_shape[s], "partition=\"%s\",shape=\"%s\"",
                 part, shape);
    }
}

static void count(sw_pipeline *pl, const sw_decode_result *res, bool ok)
{
    char labels[256];
    part_labels(pl);
    int shape = SW_SHAPE_COUNT; /* skipped */
    if (!ok) {
        shape = SW_SHAPE_COUNT + 1;
    } else if (res->findings > 0) {
        shape = res->by_shape[SW_SHAPE_MDVM] > 0         ? SW_SHAPE_MDVM
                : res->by_shape[SW_SHAPE_QUALYS] > 0     ? SW_SHAPE_QUALYS
                : res->by_shape[SW_SHAPE_INDIVIDUAL] > 0 ? SW_SHAPE_INDIVIDUAL
                                                         : SW_SHAPE_MDVM;
    }
    sw_metric_add(pl->m_events, pl->labels_shape[shape], 1);
    for (int s = 0; s < SW_SHAPE_COUNT; s++) {
        if (res->by_shape[s] > 0) {
            sw_metric_add(pl->m_findings, pl->labels_shape[s], (double)res->by_shape[s]);
        }
    }
    if (!ok) {
        snprintf(labels, sizeof labels, "reason=\"%s\"", sw_decode_bad_name(res->bad));
        sw_metric_add(pl->m_bad, labels, 1);
    }
    for (size_t i = 0; i < res->skipped_kinds.len; i++) {
        char kind[96];
        sw_metrics_label_escape(res->skipped_kinds.k[i].kind, kind, sizeof kind);
        snprintf(labels, sizeof labels, "kind=\"%s\"", kind);
        sw_metric_add(pl->m_skipped, labels, (double)res->skipped_kinds.k[i].n);
    }
}

static bool dead_letter(sw_pipeline *pl, const char *reason, const char *msg, const void *body,
                        size_t len, sw_err *err)
{
    char text[SW_ERR_MSG_MAX + 64];
    snprintf(text, sizeof text, "%s: %s", reason, msg);
    SW_LOG(SW_LOG_WARN, "bad event", SW_LF_STR("partition", pl->pos.partition),
           SW_LF_STR("offset", pl->pos.offset), SW_LF_STR("reason", reason),
           SW_LF_STR("error", msg));
    return sw_state_engine_dead_letter(pl->eng, &pl->pos, "event", text, body, len, err);
}

/* The end of every event: a bad one to the dead letter, then counts, then the event done. */
static bool finish_event(sw_pipeline *pl, const sw_decode_result *res, bool ok, const char *why,
                         const void *body, size_t len, sw_err *err)
{
    if (!ok && !dead_letter(pl, sw_decode_bad_name(res->bad), why, body, len, err)) {
        return false;
    }
    sw_decode_stats_add(&pl->stats, res, ok);
    count(pl, res, ok);
    return sw_state_engine_event_done(pl->eng, &pl->pos, err);
}

static bool finish_oversize(sw_pipeline *pl, size_t oversize, const void *body, size_t len,
                            sw_err *err)
{
    char msg[128];
    snprintf(msg, sizeof msg, "body of %zu bytes exceeds max_message_size", oversize);
    sw_decode_result res;
    memset(&res, 0, sizeof res);
    res.bad = SW_DECODE_BAD_TOO_LARGE;
    return finish_event(pl, &res, false, msg, body, len, err);
}

/* max_scan_time_skew applies to live events; offline input has no enqueued time. */
static sw_time_us latest_scan_time(sw_time_us enqueued, int64_t max_skew)
{
    return enqueued != SW_TIME_UNSET ? enqueued + max_skew : SW_TIME_UNSET;
}

bool sw_pipeline_event(sw_pipeline *pl, const sw_state_pos *pos, const void *body, size_t len,
                       size_t oversize, sw_err *err)
{
    pl->pos = *pos;
    if (pl->clock == SW_CLOCK_SCAN_TIME) {
        pl->pos.enqueued = pl->event_time;
    }
    if (oversize > 0) {
        return finish_oversize(pl, oversize, body, len, err);
    }
    sw_decode_result res;
    sw_err derr;
    sw_err_clear(&derr);
    pl->failed = false;
    sw_decoder_set_latest_scan_time(pl->dec, pl->clock == SW_CLOCK_ENQUEUED
                                                 ? latest_scan_time(pos->enqueued, pl->max_skew)
                                                 : SW_TIME_UNSET);
    bool ok = sw_decode_body(pl->dec, body, len, on_finding, pl, &res, &derr);
    if (pl->failed) {
        *err = pl->err;
        return false;
    }
    return finish_event(pl, &res, ok, derr.msg, body, len, err);
}

/* ---- decoding ahead --------------------------------------------------------- */

/*
 * One record of an sw_decoded, followed by its strings, each NUL-terminated:
 * image, repository, key (unless PR_NO_KEY), finding JSON, then n_tags times
 * (uint32 length, bytes). Headers are read with memcpy (no alignment).
 */
typedef struct packed_rec {
    sw_time_us scan_time;
    uint32_t image_len, repo_len, key_len, json_len, n_tags;
    uint8_t flags;
} packed_rec;

enum { PR_RESOLVED = 1, PR_SNAPSHOT = 2, PR_CLEAN = 4, PR_NO_KEY = 8 };

struct sw_predecoder {
    sw_decoder *dec;
    int64_t max_skew;
    sw_buf packed; /* the body's records */
    sw_buf json;   /* one finding's canonical JSON */
    size_t n_records;
};

/* What a decode saw, when it is more than counts of findings: skipped records
 * (kinds), or a bad event (reason and message). Up to max_unsettled decoded
 * events wait between the threads, so the common case carries only counts. */
typedef struct decoded_more {
    sw_decode_result res;
    char msg[SW_ERR_MSG_MAX]; /* why it is bad */
} decoded_more;

struct sw_decoded {
    bool ok;            /* false: a bad event, more->msg says why */
    size_t oversize;    /* > 0: cut at this size, not decoded */
    decoded_more *more; /* NULL: the result is the counts below, nothing skipped */
    size_t records, findings, clean_markers, by_shape[SW_SHAPE_COUNT];
    size_t n_records; /* packed records */
    size_t len;
    unsigned char packed[]; /* n_records packed_rec + strings */
};

sw_predecoder *sw_predecoder_new(const sw_config *cfg, sw_err *err)
{
    sw_predecoder *pd = calloc(1, sizeof *pd);
    if (pd == NULL) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
        return NULL;
    }
    pd->dec = decoder_from_config(cfg, err);
    if (pd->dec == NULL) {
        free(pd);
        return NULL;
    }
    pd->max_skew = sw_cfg_int(cfg, SW_CFG_MAX_SCAN_TIME_SKEW);
    sw_buf_init(&pd->packed, 0);
    sw_buf_init(&pd->json, 0);
    return pd;
}

void sw_predecoder_free(sw_predecoder *pd)
{
    if (pd == NULL) {
        return;
    }
    sw_decoder_free(pd->dec);
    sw_buf_free(&pd->packed);
    sw_buf_free(&pd->json);
    free(pd);
}

static void pack_str(sw_buf *b, const char *s, size_t n)
{
    sw_buf_append(b, s, n);
    sw_buf_append_char(b, '\0');
}

/* on_finding's twin: the record packed for the engine's thread instead of added. */
static bool pack_finding(void *ctx, const sw_finding *f)
{
    sw_predecoder *pd = ctx;
    sw_buf_reset(&pd->json);
    if (!sw_finding_to_json(f, &pd->json)) {
        return false;
    }
    const char *image = f->image != NULL ? f->image : "";
    const char *reg = f->registry != NULL ? f->registry : "";
    const char *repo = f->repository != NULL ? f->repository : "";
    const char *key = f->clean_marker ? NULL : f->key;
    size_t reg_len = strlen(reg), repo_len = strlen(repo);
    packed_rec h = {
        .scan_time = f->scan_time,
        .image_len = (uint32_t)strlen(image),
        .repo_len = (uint32_t)(reg_len + 1 + repo_len),
        .key_len = key != NULL ? (uint32_t)strlen(key) : 0,
        .json_len = (uint32_t)pd->json.len,
        .n_tags = (uint32_t)f->n_tags,
        .flags = (uint8_t)((f->status == SW_STATUS_RESOLVED ? PR_RESOLVED : 0) |
                           (f->snapshot ? PR_SNAPSHOT : 0) | (f->clean_marker ? PR_CLEAN : 0) |
                           (key == NULL ? PR_NO_KEY : 0)),
    };
    sw_buf *b = &pd->packed;
    sw_buf_append(b, &h, sizeof h);
    pack_str(b, image, h.image_len);
    sw_buf_append(b, reg, reg_len);
    sw_buf_append_char(b, '/');
    pack_str(b, repo, repo_len);
    if (key != NULL) {
        pack_str(b, key, h.key_len);
    }
    pack_str(b, pd->json.data, pd->json.len);
    for (size_t i = 0; i < f->n_tags; i++) {
        uint32_t n = (uint32_t)strlen(f->tags[i]);
        sw_buf_append(b, &n, sizeof n);
        pack_str(b, f->tags[i], n);
    }
    pd->n_records++;
    return !b->failed;
}

sw_decoded *sw_predecode(sw_predecoder *pd, sw_time_us enqueued, const void *body, size_t len,
                         size_t oversize)
{
    sw_buf_reset(&pd->packed);
    pd->n_records = 0;
    sw_decode_result res;
    memset(&res, 0, sizeof res);
    sw_err derr;
    sw_err_clear(&derr);
    bool ok = true;
    if (oversize == 0) {
        sw_decoder_set_latest_scan_time(pd->dec, latest_scan_time(enqueued, pd->max_skew));
        ok = sw_decode_body(pd->dec, body, len, pack_finding, pd, &res, &derr);
        if (res.stopped || pd->packed.failed) {
            return NULL; /* out of memory: the engine's thread decodes it itself */
        }
    }
    sw_decoded *d = malloc(sizeof *d + pd->packed.len);
    if (d == NULL) {
        return NULL;
    }
    d->ok = ok;
    d->oversize = oversize;
    d->more = NULL;
    if (!ok || res.skipped > 0 || res.skipped_kinds.len > 0 || res.skipped_kinds.other > 0) {
        d->more = malloc(sizeof *d->more);
        if (d->more == NULL) {
            free(d);
            return NULL;
        }
        d->more->res = res;
        memcpy(d->more->msg, derr.msg, sizeof d->more->msg);
    }
    d->records = res.records;
    d->findings = res.findings;
    d->clean_markers = res.clean_markers;
    memcpy(d->by_shape, res.by_shape, sizeof d->by_shape);
    d->n_records = pd->n_records;
    d->len = pd->packed.len;
    if (d->len > 0) {
        memcpy(d->packed, pd->packed.data, d->len);
    }
    return d;
}

void sw_decoded_free(sw_decoded *d)
{
    if (d != NULL) {
        free(d->more);
        free(d);
    }
}

bool sw_decoded_needs_body(const sw_decoded *d)
{
    return !d->ok || d->oversize > 0;
}

static const char *unpack_str(const unsigned char **p, size_t n)
{
    const char *s = (const char *)*p;
    *p += n + 1;
    return s;
}

bool sw_pipeline_apply(sw_pipeline *pl, const sw_state_pos *pos, const sw_decoded *d,
                       const void *body, size_t len, sw_err *err)
{
    pl->pos = *pos;
    if (d->oversize > 0) {
        return finish_oversize(pl, d->oversize, body, len, err);
    }
    if (!d->ok) {
        return finish_event(pl, &d->more->res, false, d->more->msg, body, len, err);
    }
    const unsigned char *p = d->packed;
    for (size_t i = 0; i < d->n_records; i++) {
        packed_rec h;
        memcpy(&h, p, sizeof h);
        p += sizeof h;
        sw_state_record r = {
            .scan_time = h.scan_time,
            .resolved = (h.flags & PR_RESOLVED) != 0,
            .snapshot = (h.flags & PR_SNAPSHOT) != 0,
            .clean_marker = (h.flags & PR_CLEAN) != 0,
            .n_tags = h.n_tags,
            .finding_len = h.json_len,
        };
        r.image = unpack_str(&p, h.image_len);
        r.repository = unpack_str(&p, h.repo_len);
        r.key = (h.flags & PR_NO_KEY) != 0 ? NULL : unpack_str(&p, h.key_len);
        r.finding_json = unpack_str(&p, h.json_len);
        if (h.n_tags > pl->tag_cap) {
            const char **t = realloc(pl->tag_ptrs, h.n_tags * sizeof *t);
            if (t == NULL) {
                return sw_err_set(err, SW_E_NOMEM, "out of memory");
            }
            pl->tag_ptrs = t;
            pl->tag_cap = h.n_tags;
        }
        for (uint32_t t = 0; t < h.n_tags; t++) {
            uint32_t n;
            memcpy(&n, p, sizeof n);
            p += sizeof n;
            pl->tag_ptrs[t] = unpack_str(&p, n);
        }
        r.tags = pl->tag_ptrs;
        if (!sw_state_engine_add(pl->eng, &pl->pos, &r, err)) {
            return false;
        }
    }
    if (d->more != NULL) {
        return finish_event(pl, &d->more->res, true, "", body, len, err);
    }
    sw_decode_result res;
    memset(&res, 0, sizeof res);
    res.records = d->records;
    res.findings = d->findings;
    res.clean_markers = d->clean_markers;
    memcpy(res.by_shape, d->by_shape, sizeof res.by_shape);
    return finish_event(pl, &res, true, "", body, len, err);
}

bool sw_pipeline_routed_event(sw_pipeline *pl, const sw_state_pos *pos, const void *body,
                              size_t len, sw_err *err)
{
    if (pl->routed == NULL && (pl->routed = sw_route_scratch_new()) == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    pl->pos = *pos;
    sw_routed r;
    sw_err derr;
    sw_err_clear(&derr);
    sw_decode_result res;
    memset(&res, 0, sizeof res);
    bool ok = sw_route_decode(pl->routed, body, len, &r, &derr);
    if (!ok) {
        res.bad = SW_DECODE_BAD_WRONG_TYPE;
        if (!dead_letter(pl, "bad_routed_record", derr.msg, body, len, err)) {
            return false;
        }
    } else {
        /* The export event's time: replays and several replicas see the same clock. */
        pl->pos.enqueued = r.enqueued;
        if (!sw_state_engine_add(pl->eng, &pl->pos, &r.rec, err)) {
            return false;
        }
        res.records = 1;
        res.findings = 1;
        sw_shape shape = SW_SHAPE_MDVM;
        const char *sh = strstr(r.rec.finding_json, "\"shape\":\"");
        for (int i = 0; sh != NULL && i < SW_SHAPE_COUNT; i++) {
            if (strncmp(sh + 9, sw_shape_name((sw_shape)i), strlen(sw_shape_name((sw_shape)i))) ==
                0) {
                shape = (sw_shape)i;
            }
        }
        res.by_shape[shape] = 1;
        res.clean_markers = r.rec.clean_marker ? 1 : 0;
    }
    sw_decode_stats_add(&pl->stats, &res, ok);
    count(pl, &res, ok);
    return sw_state_engine_event_done(pl->eng, &pl->pos, err);
}
