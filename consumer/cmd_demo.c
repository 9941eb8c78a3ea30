/*
 * scanwatch demo [FILE] -- FIRST VERSION.
 *
 * Until the service path exists (emulator + run + mail sink), the demo decodes
 * the bundled sample stream (tests/data/demo-stream.ndjson, made by sw-gen)
 * and prints what scanwatch sees in it: images, their scans, findings by
 * severity and shape. This file is meant to be replaced by the full demo; it
 * uses only the decoder's public API.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "scanwatch/decode.h"

#ifndef SW_DEMO_STREAM
#define SW_DEMO_STREAM "tests/data/demo-stream.ndjson"
#endif
#define SW_DEMO_STREAM_INSTALLED "/usr/share/scanwatch/demo-stream.ndjson"

/* One record of an image, copied out of the decoder's per-call memory. */
typedef struct demo_rec {
    char *key; /* NULL: clean marker */
    sw_severity sev;
    sw_status status;
    sw_time_us t;
} demo_rec;

typedef struct demo_image {
    char *image;
    sw_shape shape;
    demo_rec *recs;
    size_t n, cap;
} demo_image;

typedef struct demo {
    demo_image *images;
    size_t n, cap;
    bool oom;
} demo;

static demo_image *image_for(demo *d, const sw_finding *f)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->images[i].image, f->image) == 0) {
            return &d->images[i];
        }
    }
    if (d->n == d->cap) {
        size_t cap = d->cap > 0 ? d->cap * 2 : 16;
        demo_image *p = realloc(d->images, cap * sizeof *p);
        if (p == NULL) {
            return NULL;
        }
        d->images = p;
        d->cap = cap;
    }
    demo_image *im = &d->images[d->n];
    memset(im, 0, sizeof *im);
    im->image = strdup(f->image);
    if (im->image == NULL) {
        return NULL;
    }
    im->shape = f->shape;
    d->n++;
    return im;
}

static bool on_finding(void *ctx, const sw_finding *f)
{
    demo *d = ctx;
    demo_image *im = image_for(d, f);
    if (im == NULL) {
        d->oom = true;
        return false;
    }
    if (im->n == im->cap) {
        size_t cap = im->cap > 0 ? im->cap * 2 : 64;
        demo_rec *p = realloc(im->recs, cap * sizeof *p);
        if (p == NULL) {
            d->oom = true;
            return false;
        }
        im->recs = p;
        im->cap = cap;
    }
    demo_rec *r = &im->recs[im->n];
    r->key = f->key != NULL ? strdup(f->key) : NULL;
    if (f->key != NULL && r->key == NULL) {
        d->oom = true;
        return false;
    }
    r->sev = f->severity;
    r->status = f->status;
    r->t = f->scan_time;
    im->n++;
    return true;
}

/* Scans of an image: its records' times split where the gap exceeds scan_quiet. */
static int count_scans(const demo_image *im, int64_t quiet, sw_time_us *latest_start)
{
    int scans = 0;
    sw_time_us prev = 0;
    *latest_start = 0;
    for (size_t i = 0; i < im->n; i++) { /* the stream is in time order per image */
        if (i == 0 || im->recs[i].t - prev > quiet) {
            scans++;
            *latest_start = im->recs[i].t;
        }
        prev = im->recs[i].t;
    }
    return scans;
}

/* Active findings of the latest scan, by severity (last record of a key wins). */
static size_t latest_active(const demo_image *im, sw_time_us from, size_t by_sev[SW_SEV_COUNT])
{
    size_t total = 0;
    for (size_t i = 0; i < im->n; i++) {
        const demo_rec *r = &im->recs[i];
        if (r->t < from || r->key == NULL) {
            continue;
        }
        bool superseded = false;
        for (size_t j = i + 1; j < im->n && !superseded; j++) {
            superseded = im->recs[j].key != NULL && strcmp(im->recs[j].key, r->key) == 0;
        }
        if (!superseded && r->status == SW_STATUS_ACTIVE) {
            by_sev[r->sev]++;
            total++;
        }
    }
    return total;
}

static void print_sev(const size_t by_sev[SW_SEV_COUNT])
{
    for (int s = SW_SEV_CRITICAL; s >= SW_SEV_UNKNOWN; s--) {
        printf("%s%s %zu", s == SW_SEV_CRITICAL ? "" : ", ", sw_severity_name((sw_severity)s),
               by_sev[s]);
    }
}

/* "host/repo@sha256:0123456789ab..." : the full digest does not fit a terminal line. */
static void short_image(const char *image, char *out, size_t size)
{
    const char *at = strchr(image, '@');
    const char *colon = at != NULL ? strchr(at, ':') : NULL;
    const char *hex = colon != NULL ? colon + 1 : (at != NULL ? at + 1 : NULL);
    if (hex != NULL && strlen(hex) > 12) {
        snprintf(out, size, "%.*s...", (int)(hex - image) + 12, image);
    } else {
        snprintf(out, size, "%s", image);
    }
}

static void report(const demo *d, const sw_decode_stats *st, const char *path, int64_t quiet)
{
    size_t sev_total[SW_SEV_COUNT] = {0};
    size_t active_total = 0;
    int scans_total = 0;
    printf("scanwatch demo: decoded the sample stream %s\n", path);
    printf("(a Defender continuous-export stream made by sw-gen: each image scanned three times, "
           "a day apart)\n\n");
    printf("%-72s %-10s %5s  %s\n", "image", "shape", "scans", "active after the latest scan");
    for (size_t i = 0; i < d->n; i++) {
        const demo_image *im = &d->images[i];
        sw_time_us from;
        int scans = count_scans(im, quiet, &from);
        size_t by_sev[SW_SEV_COUNT] = {0};
        size_t active = latest_active(im, from, by_sev);
        char shown[128];
        short_image(im->image, shown, sizeof shown);
        printf("%-72s %-10s %5d  %zu", shown, sw_shape_name(im->shape), scans, active);
        if (active == 0) {
            printf(" (scanned clean)\n");
        } else {
            printf(" (C%zu H%zu M%zu L%zu U%zu)\n", by_sev[SW_SEV_CRITICAL], by_sev[SW_SEV_HIGH],
                   by_sev[SW_SEV_MEDIUM], by_sev[SW_SEV_LOW], by_sev[SW_SEV_UNKNOWN]);
        }
        for (int s = 0; s < SW_SEV_COUNT; s++) {
            sev_total[s] += by_sev[s];
        }
        active_total += active;
        scans_total += scans;
    }
    printf("\nimages: %zu, scans: %d, active findings after the latest scans: %zu (", d->n,
           scans_total, active_total);
    print_sev(sev_total);
    printf(")\n");
    sw_decode_stats_print(st, stdout);
}

static void demo_free(demo *d)
{
    for (size_t i = 0; i < d->n; i++) {
        for (size_t j = 0; j < d->images[i].n; j++) {
            free(d->images[i].recs[j].key);
        }
        free(d->images[i].recs);
        free(d->images[i].image);
    }
    free(d->images);
}

static FILE *open_stream(const char **path)
{
    if (*path != NULL) {
        return fopen(*path, "rb");
    }
    *path = SW_DEMO_STREAM;
    if (access(*path, R_OK) != 0) {
        *path = SW_DEMO_STREAM_INSTALLED;
    }
    return fopen(*path, "rb");
}

int sw_cmd_demo(sw_config *cfg, int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "usage: scanwatch demo [STREAM.ndjson]\n");
        return SW_EXIT_USAGE;
    }
    const char *path = argc == 2 ? argv[1] : NULL;
    FILE *in = open_stream(&path);
    if (in == NULL) {
        fprintf(stderr, "scanwatch demo: cannot open the demo stream %s: %s\n", path,
                strerror(errno));
        return SW_EXIT_FAIL;
    }
    sw_decode_opts opts;
    sw_decode_opts_from_config(&opts, cfg);
    sw_err err;
    sw_decoder *dec = sw_decoder_new(&opts, &err);
    if (dec == NULL) {
        fclose(in);
        fprintf(stderr, "scanwatch demo: %s\n", err.msg);
        return SW_EXIT_FAIL;
    }
    demo d = {0};
    sw_decode_stats st;
    memset(&st, 0, sizeof st);
    char *line = NULL;
    size_t cap = 0;
    while (!d.oom) {
        ssize_t n = getline(&line, &cap, in);
        if (n <= 0) {
            break;
        }
        sw_decode_result res;
        bool ok = sw_decode_body(dec, line, (size_t)n, on_finding, &d, &res, &err);
        sw_decode_stats_add(&st, &res, ok);
    }
    int rc = SW_EXIT_OK;
    if (ferror(in) || d.oom) {
        fprintf(stderr, "scanwatch demo: %s\n", d.oom ? "out of memory" : "cannot read the stream");
        rc = SW_EXIT_FAIL;
    } else {
        report(&d, &st, path, sw_cfg_int(cfg, SW_CFG_SCAN_QUIET));
    }
    free(line);
    fclose(in);
    sw_decoder_free(dec);
    demo_free(&d);
    return rc;
}
