/*
 * The stream generator. Every random choice comes from a hash of (seed,
 * image, finding ordinal, scan, purpose) so that a finding's fields do not
 * depend on the order in which things are generated: a finding that survives a
 * rescan is byte-identical except for its timestamps and envelope.
 *
 * Body layouts copy the real samples in tests/data/samples: MDVM from the
 * subassessment-rest-api ARG row, Qualys from the REST example and the
 * jercle/azgo captures, non-container events from the Elastic captures.
 */
#include "gen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanwatch/buf.h"

/* ------------------------------------------------------------- random -- */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t h4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return mix64(mix64(mix64(mix64(a) ^ b) ^ c) ^ d);
}

static double unit(uint64_t h)
{
    return (double)(h >> 11) / 9007199254740992.0; /* [0,1) */
}

/* A small stateful stream for choices that are allowed to depend on order. */
typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r)
{
    r->s += 0x9e3779b97f4a7c15ULL;
    return mix64(r->s);
}

/* Purposes, so that independent choices use independent hashes. */
enum {
    H_IMAGE_SHAPE = 1,
    H_IMAGE_CASE,
    H_IMAGE_CLEAN,
    H_IMAGE_CLOUD,
    H_IMAGE_HOST,
    H_IMAGE_DIGEST,
    H_IMAGE_REPO,
    H_IMAGE_OFFSET,
    H_FIND,
    H_FIND_PKG,
    H_FIND_SEV,
    H_FIND_GUID,
    H_SCAN_JITTER,
    H_RESOLVE_HOW,
    H_CHURN,
    H_NOISE,
    H_ENQUEUE_DELAY,
};

/* ------------------------------------------------------------ vocab -- */

static const char *const packages[] = {
    "openssl",
    "libssl3",
    "zlib1g",
    "curl",
    "libcurl4",
    "glibc",
    "libc6",
    "busybox",
    "expat",
    "libxml2",
    "sqlite",
    "ncurses",
    "bash",
    "tar",
    "gzip",
    "xz-utils",
    "py",
    "requests",
    "urllib3",
    "jinja2",
    "log4j-core",
    "jackson-databind",
    "netty",
    "lodash",
    "minimist",
    "express",
    "golang.org/x/net",
    "github.com/gin-gonic/gin",
};
#define N_PACKAGES (sizeof packages / sizeof packages[0])

static const char *const repos[] = {"payments/api",    "payments/worker", "web/frontend",
                                    "web/backend",     "platform/nginx",  "platform/redis",
                                    "data/etl",        "data/notebook",   "ml/inference",
                                    "tools/ci-runner", "auth/keycloak",   "search/indexer"};
#define N_REPOS (sizeof repos / sizeof repos[0])

static const char *const registries[] = {"ContosoProdACR", "ContosoDevACR", "FabrikamACR"};
static const char *const severities[] = {"Low", "Medium", "High", "Critical"};
static const char *const os_names[] = {"ubuntu_linux_22.04", "debian_linux_12", "alpine_linux_3.19",
                                       "cbl_mariner_2.0"};

/* ----------------------------------------------------------- options -- */

const char sw_gen_usage[] =
    "usage: sw-gen [options]   deterministic Defender export stream (NDJSON) on stdout\n"
    "  --seed N              PRNG seed (default 1)\n"
    "  --images N            container images (default 3)\n"
    "  --findings N          active findings per image at its first scan (default 20)\n"
    "  --rescans N           scans of each image after the first (default 2)\n"
    "  --churn F             fraction of an image's findings replaced per rescan, 0..1 (default "
    "0.1)\n"
    "  --mix Q,M,I           relative weights of Qualys, MDVM and individual-recommendation\n"
    "                        images (default 1,3,1; e.g. 0,1,0 for MDVM only)\n"
    "  --casing C            camel | pascal | mixed (chosen per image; default mixed)\n"
    "  --mode M              full: rescans re-send every active finding (default);\n"
    "                        delta: only new and resolved findings\n"
    "  --snapshot-every N    every Nth scan (1-based) is a weekly-style snapshot: "
    "isSnapshot=true,\n"
    "                        the complete active set, no resolved records (default 0 = never)\n"
    "  --clean F             fraction of images that scan clean: one Healthy marker per scan\n"
    "  --other F             probability of a non-container event (regulatory compliance, VM\n"
    "                        assessment, VM sub-assessment) after each record (default 0)\n"
    "  --bad F               probability of a bad event (not JSON, truncated, missing image,\n"
    "                        missing vuln id, wrong type) after each record (default 0)\n"
    "  --batch N             records per body: 1 = one object (default); >1 = arrays\n"
    "  --wrap W              array | records: how batches are wrapped (default array)\n"
    "  --start TIME          first scan, RFC 3339 (default 2026-01-05T02:00:00Z)\n"
    "  --interval DUR        time between scans of an image (default 1d; units ms,s,m,h,d)\n"
    "  --spread DUR          spread of the records of one scan (default 5s)\n"
    "  --emit-enqueued       write \"<enqueued time><TAB><body>\" lines ordered by enqueued time,\n"
    "                        which is a body's scan time + 1-5 s (for scanwatch-emulator\n"
    "                        --load-format timed: a recorded export with its enqueue times)\n"
    "  --out FILE            write to FILE instead of stdout\n"
    "  --help                this text\n"
    "Resolved findings are sent as Healthy records (Qualys) or with envelope action Delete.\n";

void sw_gen_opts_default(sw_gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->images = 3;
    o->findings = 20;
    o->rescans = 2;
    o->churn = 0.1;
    o->mix[0] = 1;
    o->mix[1] = 3;
    o->mix[2] = 1;
    o->casing = SW_GEN_MIXED;
    o->mode = SW_GEN_FULL;
    o->batch = 1;
    o->wrap = SW_GEN_WRAP_ARRAY;
    sw_time_parse("2026-01-05T02:00:00Z", 20, &o->start);
    o->interval_us = 86400LL * SW_US_PER_SEC;
    o->spread_us = 5 * SW_US_PER_SEC;
}

static bool parse_int(const char *flag, const char *v, long long min, long long max, long long *out,
                      sw_err *err)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min || x > max) {
        return sw_err_set(err, SW_E_INVALID_ARG, "%s: '%s' is not an integer in [%lld, %lld]", flag,
                          v, min, max);
    }
    *out = x;
    return true;
}

static bool parse_frac(const char *flag, const char *v, double *out, sw_err *err)
{
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(x >= 0.0 && x <= 1.0)) {
        return sw_err_set(err, SW_E_INVALID_ARG, "%s: '%s' is not a number in [0, 1]", flag, v);
    }
    *out = x;
    return true;
}

static bool parse_mix(const char *v, int mix[3], sw_err *err)
{
    const char *p = v;
    for (int i = 0; i < 3; i++) {
        char *end = NULL;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno != 0 || end == p || x < 0 || x > 1000 || (i < 2 && *end != ',') ||
            (i == 2 && *end != '\0')) {
            return sw_err_set(err, SW_E_INVALID_ARG,
                              "--mix: '%s' is not three weights Q,M,I in [0, 1000]", v);
        }
        mix[i] = (int)x;
        p = end + 1;
    }
    if (mix[0] + mix[1] + mix[2] == 0) {
        return sw_err_set(err, SW_E_INVALID_ARG, "--mix: at least one weight must be positive");
    }
    return true;
}

static bool parse_choice(const char *flag, const char *v, const char *const *names, int n, int *out,
                         sw_err *err)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    return sw_err_set(err, SW_E_INVALID_ARG, "%s: unknown value '%s'", flag, v);
}

static bool parse_one(sw_gen_opts *o, const char *flag, const char *v, const char **out_path,
                      sw_err *err)
{
    long long x = 0;
    int c = 0;
    static const char *const casings[] = {"camel", "pascal", "mixed"};
    static const char *const modes[] = {"full", "delta"};
    static const char *const wraps[] = {"array", "records"};
    if (strcmp(flag, "--seed") == 0) {
        char *end = NULL;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0') {
            return sw_err_set(err, SW_E_INVALID_ARG, "--seed: '%s' is not an unsigned integer", v);
        }
        o->seed = s;
    } else if (strcmp(flag, "--images") == 0) {
        if (!parse_int(flag, v, 0, 1000000, &x, err)) {
            return false;
        }
        o->images = (int)x;
    } else if (strcmp(flag, "--findings") == 0) {
        if (!parse_int(flag, v, 0, 100000, &x, err)) {
            return false;
        }
        o->findings = (int)x;
    } else if (strcmp(flag, "--rescans") == 0) {
        if (!parse_int(flag, v, 0, 10000, &x, err)) {
            return false;
        }
        o->rescans = (int)x;
    } else if (strcmp(flag, "--snapshot-every") == 0) {
        if (!parse_int(flag, v, 0, 10000, &x, err)) {
            return false;
        }
        o->snapshot_every = (int)x;
    } else if (strcmp(flag, "--batch") == 0) {
        if (!parse_int(flag, v, 1, 10000, &x, err)) {
            return false;
        }
        o->batch = (int)x;
    } else if (strcmp(flag, "--churn") == 0) {
        return parse_frac(flag, v, &o->churn, err);
    } else if (strcmp(flag, "--clean") == 0) {
        return parse_frac(flag, v, &o->clean, err);
    } else if (strcmp(flag, "--other") == 0) {
        return parse_frac(flag, v, &o->other, err);
    } else if (strcmp(flag, "--bad") == 0) {
        return parse_frac(flag, v, &o->bad, err);
    } else if (strcmp(flag, "--mix") == 0) {
        return parse_mix(v, o->mix, err);
    } else if (strcmp(flag, "--casing") == 0) {
        if (!parse_choice(flag, v, casings, 3, &c, err)) {
            return false;
        }
        o->casing = (sw_gen_casing)c;
    } else if (strcmp(flag, "--mode") == 0) {
        if (!parse_choice(flag, v, modes, 2, &c, err)) {
            return false;
        }
        o->mode = (sw_gen_mode)c;
    } else if (strcmp(flag, "--wrap") == 0) {
        if (!parse_choice(flag, v, wraps, 2, &c, err)) {
            return false;
        }
        o->wrap = (sw_gen_wrap)c;
    } else if (strcmp(flag, "--start") == 0) {
        if (!sw_time_parse(v, strlen(v), &o->start)) {
            return sw_err_set(err, SW_E_INVALID_ARG, "--start: '%s' is not an RFC 3339 time", v);
        }
    } else if (strcmp(flag, "--interval") == 0 || strcmp(flag, "--spread") == 0) {
        int64_t us;
        if (!sw_duration_parse(v, &us) || (flag[2] == 'i' && us <= 0)) {
            return sw_err_set(err, SW_E_INVALID_ARG, "%s: '%s' is not a duration (e.g. 1d, 5s)",
                              flag, v);
        }
        *(flag[2] == 'i' ? &o->interval_us : &o->spread_us) = us;
    } else if (strcmp(flag, "--out") == 0) {
        *out_path = v;
    } else {
        return sw_err_set(err, SW_E_INVALID_ARG, "unknown option '%s' (see --help)", flag);
    }
    return true;
}

bool sw_gen_parse_args(sw_gen_opts *o, int argc, char **argv, const char **out_path, bool *help,
                       sw_err *err)
{
    *out_path = NULL;
    *help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = true;
            return true;
        }
        if (strcmp(a, "--emit-enqueued") == 0) {
            o->emit_enqueued = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        char flag[64];
        const char *v;
        if (eq != NULL) {
            size_t n = (size_t)(eq - a);
            if (n >= sizeof flag) {
                return sw_err_set(err, SW_E_INVALID_ARG, "unknown option '%s'", a);
            }
            memcpy(flag, a, n);
            flag[n] = '\0';
            v = eq + 1;
        } else {
            if (strlen(a) >= sizeof flag) {
                return sw_err_set(err, SW_E_INVALID_ARG, "unknown option '%s'", a);
            }
            memcpy(flag, a, strlen(a) + 1);
            if (i + 1 >= argc) {
                return sw_err_set(err, SW_E_INVALID_ARG, "%s needs a value", a);
            }
            v = argv[++i];
        }
        if (!parse_one(o, flag, v, out_path, err)) {
            return false;
        }
    }
    return true;
}

/* -------------------------------------------------------- JSON writer -- */

typedef struct jw {
    sw_buf *b;
    bool pascal;
    int depth;
    bool comma[64];
} jw;

static void jw_sep(jw *w)
{
    if (w->comma[w->depth]) {
        sw_buf_append_char(w->b, ',');
    }
    w->comma[w->depth] = true;
}

static void jw_key(jw *w, const char *k)
{
    jw_sep(w);
    if (k == NULL) {
        return;
    }
    sw_buf_append_char(w->b, '"');
    if (w->pascal && k[0] >= 'a' && k[0] <= 'z') {
        sw_buf_append_char(w->b, (char)(k[0] - 'a' + 'A'));
        sw_buf_append_str(w->b, k + 1);
    } else {
        sw_buf_append_str(w->b, k);
    }
    sw_buf_append_str(w->b, "\":");
}

static void jw_open(jw *w, const char *k, char c)
{
    jw_key(w, k);
    sw_buf_append_char(w->b, c);
    w->comma[++w->depth] = false;
}

static void jw_obj(jw *w, const char *k)
{
    jw_open(w, k, '{');
}

static void jw_arr(jw *w, const char *k)
{
    jw_open(w, k, '[');
}

static void jw_close(jw *w, char c)
{
    sw_buf_append_char(w->b, c);
    w->depth--;
}

static void jw_str(jw *w, const char *k, const char *v)
{
    jw_key(w, k);
    sw_buf_append_json_cstr(w->b, v);
}

static void jw_raw(jw *w, const char *k, const char *raw)
{
    jw_key(w, k);
    sw_buf_append_str(w->b, raw);
}

static void jw_bool(jw *w, const char *k, bool v)
{
    jw_raw(w, k, v ? "true" : "false");
}

static void jw_num(jw *w, const char *k, double v)
{
    jw_key(w, k);
    sw_buf_printf(w->b, "%.1f", v);
}

/* .NET serializers add "$type" members in the PascalCase generation. */
static void jw_dotnet_type(jw *w, const char *t)
{
    if (w->pascal) {
        jw_sep(w);
        sw_buf_append_str(w->b, "\"$type\":");
        sw_buf_append_json_cstr(w->b, t);
    }
}

/* ------------------------------------------------------------- model -- */

typedef struct image {
    int index;
    int shape; /* 0 qualys, 1 mdvm, 2 individual */
    bool pascal;
    bool clean;
    int cloud;        /* mdvm: 0 ACR, 1 AKS runtime, 2 AWS, 3 GCP */
    bool qualys_host; /* Qualys record carries registryHost */
    char host[96];
    char registry[32]; /* ACR name (Azure) */
    char repo[64];
    char digest[80];
    char tag[32];
    char sub[40]; /* subscription GUID */
    int *active;  /* finding ordinals */
    int n_active;
    int next_ordinal;
    sw_time_us offset; /* of this image's scans within the interval */
} image;

static void guid(uint64_t h, char out[37])
{
    uint64_t a = mix64(h), b = mix64(a);
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff, (unsigned)(b >> 48),
             (unsigned long long)(b & 0xffffffffffffULL));
}

static void hex64(uint64_t h, char *out)
{
    for (int i = 0; i < 4; i++) {
        h = mix64(h);
        snprintf(out + i * 16, 17, "%016llx", (unsigned long long)h);
    }
}

static int pick_weighted(const int w[3], double u)
{
    int total = w[0] + w[1] + w[2];
    double x = u * total;
    for (int i = 0; i < 3; i++) {
        if (x < w[i]) {
            return i;
        }
        x -= w[i];
    }
    return 2;
}

static bool image_init(const sw_gen_opts *o, int i, image *im)
{
    uint64_t s = o->seed;
    memset(im, 0, sizeof *im);
    im->index = i;
    im->shape = pick_weighted(o->mix, unit(h4(s, (uint64_t)i, H_IMAGE_SHAPE, 0)));
    im->pascal = o->casing == SW_GEN_PASCAL ||
                 (o->casing == SW_GEN_MIXED && unit(h4(s, (uint64_t)i, H_IMAGE_CASE, 0)) < 0.5);
    im->clean = unit(h4(s, (uint64_t)i, H_IMAGE_CLEAN, 0)) < o->clean;
    uint64_t hc = h4(s, (uint64_t)i, H_IMAGE_CLOUD, 0);
    im->cloud = im->shape == 1 ? (int)(hc % 10 < 7    ? 0
                                       : hc % 10 == 7 ? 1
                                       : hc % 10 == 8 ? 2
                                                      : 3)
                               : 0;
    im->qualys_host = h4(s, (uint64_t)i, H_IMAGE_HOST, 1) % 3 != 0;
    snprintf(im->registry, sizeof im->registry, "%s",
             registries[h4(s, (uint64_t)i, H_IMAGE_HOST, 0) % 3]);
    char lower[32];
    size_t k = 0;
    for (; im->registry[k] != '\0' && k < sizeof lower - 1; k++) {
        char c = im->registry[k];
        lower[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    lower[k] = '\0';
    if (im->cloud == 2) {
        snprintf(im->host, sizeof im->host, "%012llu.dkr.ecr.eu-west-1.amazonaws.com",
                 (unsigned long long)(hc % 1000000000000ULL));
    } else if (im->cloud == 3) {
        snprintf(im->host, sizeof im->host, "europe-west1-docker.pkg.dev");
    } else {
        snprintf(im->host, sizeof im->host, "%s.azurecr.io", lower);
    }
    uint64_t hr = h4(s, (uint64_t)i, H_IMAGE_REPO, 0);
    if (im->cloud == 3) {
        snprintf(im->repo, sizeof im->repo, "contoso-prod/%s-%d", repos[hr % N_REPOS], i);
    } else {
        snprintf(im->repo, sizeof im->repo, "%s-%d", repos[hr % N_REPOS], i);
    }
    memcpy(im->digest, "sha256:", 7);
    hex64(h4(s, (uint64_t)i, H_IMAGE_DIGEST, 0), im->digest + 7);
    snprintf(im->tag, sizeof im->tag, "1.%d.%d", (int)((hr >> 20) % 20), (int)((hr >> 40) % 50));
    guid(h4(s, 0, H_IMAGE_HOST, 7) + (uint64_t)(hc % 2), im->sub);
    /* Images are scanned one after another within the first half of the interval. */
    int64_t gap = o->images > 0 ? o->interval_us / 2 / o->images : 0;
    if (gap > 600LL * SW_US_PER_SEC) {
        gap = 600LL * SW_US_PER_SEC;
    }
    im->offset = gap * i;
    int cap = o->findings + 1;
    im->active = malloc((size_t)cap * sizeof *im->active);
    if (im->active == NULL) {
        return false;
    }
    for (int f = 0; f < o->findings; f++) {
        im->active[f] = f;
    }
    im->n_active = im->clean ? 0 : o->findings;
    im->next_ordinal = o->findings;
    return true;
}

typedef struct vuln {
    char id[32]; /* CVE (MDVM, individual) or QID (Qualys) */
    char cve[32];
    const char *package;
    char version[24];
    char fixed[24];
    const char *severity;
    double cvss;
    bool fixable;
    char published[32];
    char guid[40];
} vuln;

static void vuln_of(const sw_gen_opts *o, const image *im, int ordinal, vuln *v)
{
    uint64_t h = h4(o->seed, (uint64_t)im->index, H_FIND, (uint64_t)ordinal);
    int year = 2018 + (int)(h % 8);
    /* Unique per image: the ordinal is part of the number. */
    snprintf(v->cve, sizeof v->cve, "CVE-%d-%d", year, 10000 + ordinal * 7 + (int)((h >> 8) % 7));
    if (im->shape == 0) {
        snprintf(v->id, sizeof v->id, "%d", 170000 + ordinal * 3 + (int)((h >> 8) % 3));
    } else {
        memcpy(v->id, v->cve, sizeof v->id);
    }
    v->package =
        packages[h4(o->seed, (uint64_t)im->index, H_FIND_PKG, (uint64_t)ordinal) % N_PACKAGES];
    snprintf(v->version, sizeof v->version, "%d.%d.%d", (int)((h >> 16) % 4), (int)((h >> 20) % 12),
             (int)((h >> 24) % 30));
    v->fixable = (h >> 30) % 4 != 0;
    if (v->fixable) {
        snprintf(v->fixed, sizeof v->fixed, "%d.%d.%d", (int)((h >> 16) % 4), (int)((h >> 20) % 12),
                 (int)((h >> 24) % 30) + 1);
    } else {
        v->fixed[0] = '\0';
    }
    uint64_t hs = h4(o->seed, (uint64_t)im->index, H_FIND_SEV, (uint64_t)ordinal);
    int sev = (int)(hs % 100) < 10 ? 3 : (int)(hs % 100) < 40 ? 2 : (int)(hs % 100) < 80 ? 1 : 0;
    v->severity = severities[sev];
    static const double base[] = {2.0, 4.0, 7.0, 9.0};
    v->cvss = base[sev] + (double)((hs >> 8) % 10) / 10.0;
    snprintf(v->published, sizeof v->published, "%d-%02d-%02dT%02d:15:00Z", year,
             1 + (int)((h >> 40) % 12), 1 + (int)((h >> 44) % 28), (int)((h >> 48) % 24));
    guid(h4(o->seed, (uint64_t)im->index, H_FIND_GUID, (uint64_t)ordinal), v->guid);
}

/* Defender stamps 7 fraction digits. */
static void defender_time(sw_time_us t, char *out, size_t size)
{
    char ts[SW_TIME_BUF];
    sw_time_format(t, ts, sizeof ts);
    size_t n = strlen(ts);
    snprintf(out, size, "%.*s%dZ", (int)(n - 1), ts, (int)((uint64_t)t * 7 % 10));
}

/* ------------------------------------------------------------ bodies -- */

typedef struct rec_args {
    const image *im;
    const vuln *v; /* NULL: clean marker */
    sw_time_us t;
    bool snapshot;
    bool delete_action;
    bool healthy;
    int bad; /* 0 none; 3 missing image; 4 missing vuln id; 5 wrong type */
} rec_args;

static void envelope(jw *w, const char *name, const rec_args *a, const char *api)
{
    jw_obj(w, name);
    jw_dotnet_type(w, "subAssessmentEventDataEnrichment");
    jw_str(w, "action", a->delete_action ? "Delete" : "Insert");
    jw_str(w, "apiVersion", api);
    jw_bool(w, "isSnapshot", a->snapshot);
    jw_close(w, '}');
}

static void arm_registry_id(const image *im, char *out, size_t size)
{
    snprintf(out, size,
             "/subscriptions/%s/resourceGroups/containers-rg/providers/"
             "Microsoft.ContainerRegistry/registries/%s",
             im->sub, im->registry);
}

static void status_obj(jw *w, const rec_args *a, const char *sev)
{
    jw_obj(w, "status");
    jw_dotnet_type(w, "status");
    if (a->bad == 5) {
        jw_raw(w, "code", "42"); /* wrong type: a number where a string belongs */
    } else {
        jw_str(w, "code", a->healthy ? "Healthy" : "Unhealthy");
    }
    jw_str(w, "severity", a->v == NULL ? "Unknown" : sev);
    if (a->v != NULL) {
        jw_str(w, "cause", "");
        jw_str(w, "description",
               a->healthy ? "The resource is healthy" : "The resource is unhealthy");
    }
    jw_close(w, '}');
}

static void mdvm_additional(jw *w, const rec_args *a, const char *art)
{
    const image *im = a->im;
    const vuln *v = a->v;
    char ts[48];
    jw_obj(w, "additionalData");
    jw_dotnet_type(w, "additionalData/containerRegistryVulnerability");
    if (art != NULL) {
        jw_str(w, "assessedResourceType", art);
    }
    if (v != NULL) {
        jw_obj(w, "vulnerabilityDetails");
        jw_str(w, "severity", v->severity);
        jw_obj(w, "exploitabilityAssessment");
        jw_bool(w, "exploitStepsPublished", false);
        jw_bool(w, "exploitStepsVerified", false);
        jw_bool(w, "isInExploitKit", false);
        jw_arr(w, "exploitUris");
        jw_close(w, ']');
        jw_arr(w, "types");
        jw_str(w, NULL, "Remote");
        jw_close(w, ']');
        jw_close(w, '}');
        jw_str(w, "lastModifiedDate", "2025-11-12T00:00:00Z");
        jw_str(w, "publishedDate", v->published);
        jw_arr(w, "workarounds");
        jw_close(w, ']');
        jw_arr(w, "references");
        char link[128];
        jw_obj(w, NULL);
        jw_str(w, "title", v->cve);
        snprintf(link, sizeof link, "https://nvd.nist.gov/vuln/detail/%s", v->cve);
        jw_str(w, "link", link);
        jw_close(w, '}');
        jw_obj(w, NULL);
        jw_str(w, "title", "oval:com.microsoft.cbl-mariner:def:11166");
        jw_str(w, "link",
               "https://raw.githubusercontent.com/microsoft/CBL-MarinerVulnerabilityData/main/"
               "cbl-mariner-2.0-oval.xml");
        jw_close(w, '}');
        jw_close(w, ']');
        jw_obj(w, "weaknesses");
        jw_arr(w, "cwe");
        jw_obj(w, NULL);
        jw_str(w, "id", "CWE-1333");
        jw_close(w, '}');
        jw_close(w, ']');
        jw_close(w, '}');
        jw_str(w, "cveId", v->cve);
        jw_obj(w, "cvss");
        jw_raw(w, "2.0", "null");
        jw_obj(w, "3.0");
        jw_str(w, "cvssVectorString", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H");
        jw_num(w, "base", v->cvss);
        jw_close(w, '}');
        jw_close(w, '}');
        jw_obj(w, "cpe");
        jw_str(w, "version", "*");
        jw_str(w, "targetSoftware", "*");
        jw_str(w, "vendor", v->package);
        jw_str(w, "product", v->package);
        jw_str(w, "part", "Applications");
        char cpe[128];
        snprintf(cpe, sizeof cpe, "cpe:2.3:a:%s:%s:*:*:*:*:*:*:*:*", v->package, v->package);
        jw_str(w, "uri", cpe);
        jw_close(w, '}');
        jw_close(w, '}');
    }
    if (a->bad != 3) {
        jw_obj(w, "artifactDetails");
        defender_time(a->t - 3 * 86400LL * SW_US_PER_SEC, ts, sizeof ts);
        jw_str(w, "lastPushedToRegistryUTC", ts);
        jw_str(w, "repositoryName", im->repo);
        jw_str(w, "registryHost", im->host);
        jw_str(w, "artifactType", "ContainerImage");
        jw_str(w, "mediaType", "application/vnd.docker.distribution.manifest.v2+json");
        jw_str(w, "digest", im->digest);
        jw_arr(w, "tags");
        jw_str(w, NULL, im->tag);
        jw_str(w, NULL, "latest");
        jw_close(w, ']');
        jw_close(w, '}');
    }
    if (v != NULL) {
        uint64_t ho = (uint64_t)(unsigned char)v->guid[0];
        jw_obj(w, "softwareDetails");
        jw_str(w, "category", ho % 2 ? "OS" : "Language");
        jw_str(w, "language", ho % 2 ? "" : "python");
        jw_str(w, "fixedVersion", v->fixed);
        jw_str(w, "version", v->version);
        jw_str(w, "vendor", v->package);
        jw_str(w, "packageName", v->package);
        jw_obj(w, "osDetails");
        jw_str(w, "osPlatform", "linux");
        jw_str(w, "osVersion", os_names[ho % 4]);
        jw_close(w, '}');
        jw_str(w, "fixStatus", v->fixable ? "FixAvailable" : "NoFixAvailable");
        jw_arr(w, "evidence");
        jw_close(w, ']');
        jw_close(w, '}');
        jw_num(w, "cvssV30Score", v->cvss);
    }
    jw_close(w, '}');
}

static void resource_details(jw *w, const image *im, bool bad_image, bool individual)
{
    char id[256];
    jw_obj(w, "resourceDetails");
    jw_dotnet_type(w, "resourceDetails/azure");
    jw_str(w, "source", im->cloud == 2 ? "Aws" : im->cloud == 3 ? "Gcp" : "Azure");
    if (!bad_image) {
        if (im->cloud >= 2 || individual) {
            snprintf(id, sizeof id, "%s/%s@%s", im->host, im->repo, im->digest);
        } else {
            snprintf(id, sizeof id, "/repositories/%s/images/%s", im->repo, im->digest);
        }
        jw_str(w, individual ? "nativeResourceId" : "id", id);
    }
    if (individual) {
        jw_str(w, "resourceType", ".containerimage");
        jw_str(w, "resourceProvider", "Microsoft.ContainerRegistry");
    }
    jw_close(w, '}');
}

static void sub_id(const image *im, const char *assessment, const char *guid_s, char *out,
                   size_t size)
{
    char reg[200];
    arm_registry_id(im, reg, sizeof reg);
    snprintf(out, size, "%s/providers/Microsoft.Security/assessments/%s/subAssessments/%s", reg,
             assessment, guid_s);
}

static void clean_guid(const sw_gen_opts *o, const image *im, sw_time_us t, char out[37])
{
    guid(h4(o->seed, (uint64_t)im->index, H_FIND_GUID, (uint64_t)t), out);
}

static void mdvm_body(const sw_gen_opts *o, jw *w, const rec_args *a)
{
    static const char *const arts[] = {
        "AzureContainerRegistryVulnerability", "AzureContainerVulnerability",
        "AwsContainerRegistryVulnerability", "GcpContainerRegistryVulnerability"};
    static const char *const keys[] = {
        "c0b7cfc6-3172-465a-b378-53c7ff2cc0d5", "c609cf0f-71ab-41e9-a3c6-9a1f7fe1b8d5",
        "c27441ae-775c-45be-8ffa-655de37362ce", "5cc3a2c1-8397-456f-8792-fe9d0d4c9145"};
    const image *im = a->im;
    const vuln *v = a->v;
    char id[400], g[40], ts[48], text[256];
    if (v != NULL) {
        memcpy(g, v->guid, sizeof g);
    } else {
        clean_guid(o, im, a->t, g);
    }
    jw_obj(w, NULL);
    jw_dotnet_type(w, "subAssessmentEvent");
    envelope(w, "subAssessmentEventDataEnrichment", a, "2020-01-01");
    envelope(w, "securityEventDataEnrichment", a, "2020-01-01");
    jw_str(w, "tenantId", "aa40685b-417d-4664-b4ec-8f7640719adb");
    jw_str(w, "type", "Microsoft.Security/assessments/subAssessments");
    sub_id(im, keys[im->cloud], g, id, sizeof id);
    jw_str(w, "id", id);
    jw_str(w, "name", g);
    jw_obj(w, "properties");
    jw_dotnet_type(w, "response/subAssessmentProperties");
    if (v != NULL && a->bad != 4) {
        jw_str(w, "id", v->id);
        jw_str(w, "displayName", v->id);
    }
    status_obj(w, a, v != NULL ? v->severity : "Unknown");
    if (v != NULL) {
        if (v->fixable) {
            snprintf(text, sizeof text,
                     "Create new image with updated package %s with version %s or higher.",
                     v->package, v->fixed);
        } else {
            snprintf(text, sizeof text, "No remediation exists");
        }
        jw_str(w, "remediation", text);
        snprintf(text, sizeof text,
                 "This vulnerability affects the following vendors: %s. To view more details "
                 "about this vulnerability please visit the vendor website.",
                 v->package);
        jw_str(w, "description", text);
    }
    jw_str(w, "category", "Vulnerability");
    jw_str(w, "impact", "");
    defender_time(a->t, ts, sizeof ts);
    jw_str(w, "timeGenerated", ts);
    resource_details(w, im, a->bad == 3, false);
    vuln stripped;
    rec_args a2 = *a;
    if (v != NULL && a->bad == 4) {
        stripped = *v;
        stripped.cve[0] = '\0'; /* no vulnerabilityDetails.cveId either */
        a2.v = &stripped;
    }
    mdvm_additional(w, &a2, arts[im->cloud]);
    jw_close(w, '}');
    jw_close(w, '}');
}

static void qualys_body(const sw_gen_opts *o, jw *w, const rec_args *a)
{
    const image *im = a->im;
    const vuln *v = a->v;
    char id[400], g[40], ts[48], text[256];
    if (v != NULL) {
        memcpy(g, v->guid, sizeof g);
    } else {
        clean_guid(o, im, a->t, g);
    }
    jw_obj(w, NULL);
    jw_dotnet_type(w, "subAssessmentEvent");
    envelope(w, "subAssessmentEventDataEnrichment", a, "2020-01-01");
    envelope(w, "securityEventDataEnrichment", a, "2020-01-01");
    jw_str(w, "tenantId", "aa40685b-417d-4664-b4ec-8f7640719adb");
    jw_str(w, "type", "Microsoft.Security/assessments/subAssessments");
    sub_id(im, "dbd0cb49-b563-45e7-9724-889e799fa648", g, id, sizeof id);
    jw_str(w, "id", a->bad == 3 && !im->qualys_host ? "" : id);
    jw_str(w, "name", g);
    jw_obj(w, "properties");
    jw_dotnet_type(w, "response/subAssessmentProperties");
    if (v != NULL) {
        if (a->bad != 4) {
            jw_str(w, "id", v->id);
        }
        snprintf(text, sizeof text, "Security Update for %s (%s)", v->package, v->cve);
        jw_str(w, "displayName", text);
    }
    status_obj(w, a, v != NULL ? v->severity : "Unknown");
    if (v != NULL) {
        snprintf(text, sizeof text,
                 "Refer to the vendor advisory for %s for updates and patch information.",
                 v->package);
        jw_str(w, "remediation", text);
        jw_str(w, "impact",
               "Successful exploitation of this vulnerability could lead to a security breach or "
               "could affect integrity, availability, and confidentiality.");
        jw_str(w, "category", "Debian");
        snprintf(text, sizeof text,
                 "Debian has released a security update for %s to fix the "
                 "vulnerabilities.",
                 v->package);
        jw_str(w, "description", text);
    }
    defender_time(a->t, ts, sizeof ts);
    jw_str(w, "timeGenerated", ts);
    resource_details(w, im, a->bad == 3, false);
    jw_obj(w, "additionalData");
    jw_dotnet_type(w, "additionalData/containerRegistryVulnerability");
    jw_str(w, "assessedResourceType", "ContainerRegistryVulnerability");
    if (v != NULL) {
        char link[128];
        jw_str(w, "type", "Vulnerability");
        jw_obj(w, "cvss");
        jw_obj(w, "2.0");
        jw_num(w, "base", v->cvss > 1 ? v->cvss - 1 : v->cvss);
        jw_close(w, '}');
        jw_obj(w, "3.0");
        jw_num(w, "base", v->cvss);
        jw_str(w, "cvssVectorString", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H/E:U/RL:O/RC:C");
        jw_close(w, '}');
        jw_close(w, '}');
        jw_bool(w, "patchable", v->fixable);
        jw_arr(w, "cve");
        jw_obj(w, NULL);
        jw_str(w, "title", v->cve);
        snprintf(link, sizeof link, "http://cve.mitre.org/cgi-bin/cvename.cgi?name=%s", v->cve);
        jw_str(w, "link", link);
        jw_close(w, '}');
        jw_close(w, ']');
        jw_str(w, "publishedTime", v->published);
        jw_arr(w, "vendorReferences");
        jw_obj(w, NULL);
        jw_str(w, "title", "DSA 5111-1");
        jw_str(w, "link", "https://lists.debian.org/debian-security-announce/2022/msg00079.html");
        jw_close(w, '}');
        jw_close(w, ']');
    } else {
        jw_bool(w, "patchable", false);
        jw_str(w, "publishedTime", "0000-12-31T13:55:08.000Z");
    }
    if (a->bad != 3) {
        jw_str(w, "repositoryName", im->repo);
        jw_str(w, "imageDigest", im->digest);
    }
    if (im->qualys_host) {
        jw_str(w, "registryHost", im->host);
    }
    jw_obj(w, "imageDetails");
    jw_str(w, "os", "Linux");
    jw_str(w, "osDetails", "Debian Linux 11.3");
    jw_close(w, '}');
    jw_close(w, '}');
    jw_close(w, '}');
    jw_close(w, '}');
}

static void individual_body(const sw_gen_opts *o, jw *w, const rec_args *a)
{
    const image *im = a->im;
    const vuln *v = a->v;
    char id[400], g[40], ts[48], text[256];
    if (v != NULL) {
        memcpy(g, v->guid, sizeof g);
    } else {
        clean_guid(o, im, a->t, g);
    }
    jw_obj(w, NULL);
    envelope(w, "assessmentEventDataEnrichment", a, "2019-01-01");
    envelope(w, "securityEventDataEnrichment", a, "2019-01-01");
    jw_str(w, "tenantId", "aa40685b-417d-4664-b4ec-8f7640719adb");
    jw_str(w, "type", "Microsoft.Security/assessments");
    jw_raw(w, "kind", "null");
    jw_raw(w, "location", "null");
    char reg[200];
    arm_registry_id(im, reg, sizeof reg);
    snprintf(id, sizeof id, "%s/providers/Microsoft.Security/assessments/%s", reg, g);
    jw_str(w, "id", id);
    jw_str(w, "name", g);
    jw_obj(w, "properties");
    resource_details(w, im, a->bad == 3, true);
    if (v != NULL) {
        snprintf(text, sizeof text, "%s in %s should be remediated", v->cve, v->package);
        jw_str(w, "displayName", text);
    }
    jw_obj(w, "status");
    if (a->bad == 5) {
        jw_raw(w, "code", "42");
    } else {
        jw_str(w, "code", a->healthy ? "Healthy" : "Unhealthy");
    }
    defender_time(a->t, ts, sizeof ts);
    jw_str(w, "statusChangeDate", ts);
    jw_str(w, "firstEvaluationDate", ts);
    jw_close(w, '}');
    jw_str(w, "timeGenerated", ts);
    vuln stripped;
    rec_args a2 = *a;
    if (v != NULL && a->bad == 4) {
        stripped = *v;
        stripped.cve[0] = '\0'; /* cveId "" counts as missing */
        a2.v = &stripped;
    }
    mdvm_additional(w, &a2, NULL);
    jw_obj(w, "metadata");
    jw_str(w, "displayName", v != NULL ? text : "Container image vulnerabilities");
    jw_str(w, "assessmentType", "BuiltIn");
    jw_str(w, "recommendationCategory", "SoftwareUpdate");
    jw_str(w, "severity", v != NULL ? v->severity : "Low");
    jw_arr(w, "categories");
    jw_str(w, NULL, "Container");
    jw_close(w, ']');
    jw_close(w, '}');
    jw_close(w, '}');
    jw_close(w, '}');
}

static void other_body(const sw_gen_opts *o, jw *w, uint64_t h, sw_time_us t)
{
    char ts[48];
    defender_time(t, ts, sizeof ts);
    switch (h % 3) {
    case 0:
        jw_obj(w, NULL);
        jw_obj(w, "securityEventDataEnrichment");
        jw_str(w, "action", "Write");
        jw_str(w, "apiVersion", "2019-01-01-preview");
        jw_bool(w, "isSnapshot", false);
        jw_str(w, "interval", "00:00:00");
        jw_close(w, '}');
        jw_str(w, "id",
               "/subscriptions/12cabcb4-86e8-404f-a3d2-1dc9982f45ca/providers/Microsoft.Security/"
               "regulatoryComplianceStandards/Microsoft-cloud-security-benchmark/"
               "regulatoryComplianceControls/LT.5/regulatoryComplianceAssessments/"
               "45cfe080-ceb1-a91e-9743-71551ed24e94");
        jw_str(w, "type",
               "Microsoft.Security/regulatoryComplianceStandards/"
               "regulatoryComplianceControls/regulatoryComplianceAssessments");
        jw_obj(w, "properties");
        jw_str(w, "description",
               "Log Analytics agent should be installed on virtual machine scale sets");
        jw_str(w, "state", "Skipped");
        jw_close(w, '}');
        jw_close(w, '}');
        break;
    case 1:
        jw_obj(w, NULL);
        jw_obj(w, "assessmentEventDataEnrichment");
        jw_str(w, "action", "Insert");
        jw_bool(w, "isSnapshot", false);
        jw_close(w, '}');
        jw_str(w, "type", "Microsoft.Security/assessments");
        jw_str(w, "id",
               "/subscriptions/12cabcb4-86e8-404f-a3d2-1dc9982f45ca/resourcegroups/web/"
               "providers/microsoft.web/sites/web1/providers/Microsoft.Security/"
               "assessments/7b3d4796-9400-2904-692b-4a5ede7f0a1e");
        jw_obj(w, "properties");
        jw_str(w, "displayName", "CORS should not allow every resource to access Function Apps");
        jw_obj(w, "status");
        jw_str(w, "code", "Unhealthy");
        jw_str(w, "statusChangeDate", ts);
        jw_close(w, '}');
        jw_obj(w, "metadata");
        jw_str(w, "severity", "Low");
        jw_close(w, '}');
        jw_close(w, '}');
        jw_close(w, '}');
        break;
    default: {
        bool saved = w->pascal;
        w->pascal = true; /* the real capture of this event is PascalCase */
        jw_obj(w, NULL);
        jw_dotnet_type(w, "subAssessmentEvent");
        jw_obj(w, "subAssessmentEventDataEnrichment");
        jw_str(w, "action", "Insert");
        jw_bool(w, "isSnapshot", false);
        jw_close(w, '}');
        jw_str(w, "type", "Microsoft.Security/assessments/subAssessments");
        jw_str(w, "id",
               "/subscriptions/12cabcb4-86e8-404f-a3d2-1dc9982f45ca/resourcegroups/vm/"
               "providers/microsoft.compute/virtualmachines/vm1/providers/"
               "Microsoft.Security/assessments/c476dc48-8110-4139-91af-c8d940896b98/"
               "subassessments/93d2736e-7329-8806-3ef6-e71bb2203d11");
        jw_obj(w, "properties");
        jw_str(w, "id", "93d2736e-7329-8806-3ef6-e71bb2203d11");
        jw_str(w, "displayName", "Ensure DCCP is disabled");
        jw_obj(w, "status");
        jw_str(w, "code", "Unhealthy");
        jw_str(w, "severity", "Low");
        jw_close(w, '}');
        jw_str(w, "timeGenerated", ts);
        jw_obj(w, "additionalData");
        jw_str(w, "assessedResourceType", "GeneralVulnerability");
        jw_close(w, '}');
        jw_close(w, '}');
        jw_close(w, '}');
        w->pascal = saved;
        break;
    }
    }
    (void)o;
}

/* ------------------------------------------------------------ output -- */

/* A body waiting in the reorder heap of --emit-enqueued. */
typedef struct pending {
    sw_time_us enq;
    uint64_t n; /* emission order, so that equal times keep it */
    char *body;
    size_t len;
} pending;

typedef struct out {
    sw_gen_body_fn fn;
    sw_gen_timed_fn tfn; /* set: --emit-enqueued, bodies go through heap */
    void *ctx;
    const sw_gen_opts *o;
    sw_buf batch; /* pending records of the current body */
    int in_batch;
    sw_buf rec;
    sw_gen_counts *counts;
    bool stopped;
    sw_time_us t;       /* time of the record being added */
    sw_time_us batch_t; /* latest record time in the current body */
    pending *heap;      /* min-heap on (enq, n) */
    size_t heap_len, heap_cap;
} out;

static bool pending_less(const pending *a, const pending *b)
{
    return a->enq < b->enq || (a->enq == b->enq && a->n < b->n);
}

static bool heap_push(out *ou, sw_time_us enq, const char *p, size_t n)
{
    if (ou->heap_len == ou->heap_cap) {
        size_t cap = ou->heap_cap == 0 ? 256 : ou->heap_cap * 2;
        pending *h = realloc(ou->heap, cap * sizeof *h);
        if (h == NULL) {
            return false;
        }
        ou->heap = h;
        ou->heap_cap = cap;
    }
    pending e = {.enq = enq, .n = ou->counts->bodies, .body = malloc(n + 1), .len = n};
    if (e.body == NULL) {
        return false;
    }
    memcpy(e.body, p, n);
    size_t i = ou->heap_len++;
    while (i > 0 && pending_less(&e, &ou->heap[(i - 1) / 2])) {
        ou->heap[i] = ou->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    ou->heap[i] = e;
    return true;
}

static pending heap_pop(out *ou)
{
    pending top = ou->heap[0];
    pending last = ou->heap[--ou->heap_len];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= ou->heap_len) {
            break;
        }
        if (c + 1 < ou->heap_len && pending_less(&ou->heap[c + 1], &ou->heap[c])) {
            c++;
        }
        if (!pending_less(&ou->heap[c], &last)) {
            break;
        }
        ou->heap[i] = ou->heap[c];
        i = c;
    }
    if (ou->heap_len > 0) {
        ou->heap[i] = last;
    }
    return top;
}

/* Writes out every held body enqueued at or before until (all of them: INT64_MAX). */
static bool heap_flush(out *ou, sw_time_us until)
{
    while (ou->heap_len > 0 && ou->heap[0].enq <= until) {
        pending e = heap_pop(ou);
        bool ok = !ou->stopped && ou->tfn(ou->ctx, e.enq, e.body, e.len);
        free(e.body);
        if (!ok) {
            ou->stopped = true;
            return false;
        }
    }
    return true;
}

/* Shortest and longest delay from a body's scan time to its enqueued time. */
#define ENQ_DELAY_MIN_US (1 * SW_US_PER_SEC)
#define ENQ_DELAY_SPAN_MS 4000

static bool emit(out *ou, const char *p, size_t n)
{
    if (ou->stopped) {
        return false;
    }
    if (ou->tfn != NULL) {
        /* Enqueued when its last record was scanned, plus a deterministic 1-5 s. */
        sw_time_us t = ou->in_batch > 0 ? ou->batch_t : ou->t;
        uint64_t h = h4(ou->o->seed, ou->counts->bodies, H_ENQUEUE_DELAY, 0);
        sw_time_us enq =
            t - t % 1000 + ENQ_DELAY_MIN_US + (sw_time_us)(h % ENQ_DELAY_SPAN_MS) * 1000;
        bool ok = heap_push(ou, enq, p, n);
        ou->counts->bodies++;
        return ok;
    }
    ou->counts->bodies++;
    if (!ou->fn(ou->ctx, p, n)) {
        ou->stopped = true;
        return false;
    }
    return true;
}

static bool flush_batch(out *ou)
{
    if (ou->in_batch == 0) {
        return true;
    }
    bool ok;
    if (ou->o->batch == 1) {
        ok = emit(ou, ou->batch.data, ou->batch.len);
    } else {
        sw_buf_append_str(&ou->batch, ou->o->wrap == SW_GEN_WRAP_RECORDS ? "]}" : "]");
        ok = !ou->batch.failed && emit(ou, ou->batch.data, ou->batch.len);
    }
    sw_buf_reset(&ou->batch);
    ou->in_batch = 0;
    return ok && !ou->batch.failed;
}

/* Adds the record in ou->rec to the current body. */
static bool add_record(out *ou)
{
    if (ou->rec.failed) {
        return false;
    }
    if (ou->o->batch > 1) {
        if (ou->in_batch == 0) {
            sw_buf_append_str(&ou->batch,
                              ou->o->wrap == SW_GEN_WRAP_RECORDS ? "{\"records\":[" : "[");
        } else {
            sw_buf_append_char(&ou->batch, ',');
        }
    }
    sw_buf_append(&ou->batch, ou->rec.data, ou->rec.len);
    ou->batch_t = ou->in_batch == 0 || ou->t > ou->batch_t ? ou->t : ou->batch_t;
    ou->in_batch++;
    if (ou->in_batch >= ou->o->batch) {
        return flush_batch(ou);
    }
    return !ou->batch.failed;
}

static void write_record(const sw_gen_opts *o, out *ou, const rec_args *a)
{
    jw w = {.b = &ou->rec, .pascal = a->im->pascal};
    sw_buf_reset(&ou->rec);
    switch (a->im->shape) {
    case 0:
        qualys_body(o, &w, a);
        break;
    case 1:
        mdvm_body(o, &w, a);
        break;
    default:
        individual_body(o, &w, a);
        break;
    }
}

static bool container_record(const sw_gen_opts *o, out *ou, const rec_args *a)
{
    ou->t = a->t;
    write_record(o, ou, a);
    ou->counts->by_shape[a->im->shape]++;
    if (a->v == NULL) {
        ou->counts->clean_markers++;
    } else {
        ou->counts->findings++;
        ou->counts->resolved += (a->healthy || a->delete_action) ? 1 : 0;
    }
    return add_record(ou);
}

/* Noise after a record: maybe a non-container event, maybe a bad body. */
static bool noise(const sw_gen_opts *o, out *ou, rng *r, const image *im, sw_time_us t)
{
    ou->t = t;
    if (o->other > 0 && unit(rng_next(r)) < o->other) {
        jw w = {.b = &ou->rec, .pascal = false};
        sw_buf_reset(&ou->rec);
        other_body(o, &w, rng_next(r), t);
        ou->counts->other++;
        if (!add_record(ou)) {
            return false;
        }
    }
    if (o->bad > 0 && unit(rng_next(r)) < o->bad) {
        int kind = (int)(rng_next(r) % 5) + 1;
        if (!flush_batch(ou)) {
            return false;
        }
        ou->counts->bad++;
        if (kind == 1) {
            static const char garbage[] = "this is not JSON {\"id\":";
            return emit(ou, garbage, sizeof garbage - 1);
        }
        vuln v;
        vuln_of(o, im, 999999, &v);
        rec_args a = {.im = im, .v = &v, .t = t, .bad = kind};
        write_record(o, ou, &a);
        size_t n = kind == 2 ? ou->rec.len / 2 : ou->rec.len; /* 2: truncated */
        return !ou->rec.failed && emit(ou, ou->rec.data, n);
    }
    return true;
}

/* ------------------------------------------------------------ scans -- */

static sw_time_us scan_start(const sw_gen_opts *o, const image *im, int s)
{
    /* ~1 day apart, +-20 minutes, never closer than half the interval. */
    int64_t jitter_range = o->interval_us / 36;
    int64_t jitter = jitter_range > 0
                         ? (int64_t)(h4(o->seed, (uint64_t)im->index, H_SCAN_JITTER, (uint64_t)s) %
                                     (uint64_t)(2 * jitter_range)) -
                               jitter_range
                         : 0;
    return o->start + (sw_time_us)s * o->interval_us + im->offset + (s > 0 ? jitter : 0);
}

/*
 * Replaces churn * findings of the active set and returns the removed
 * ordinals. Replaced slots move to the tail so that a finding added in this
 * rescan is never removed in the same rescan.
 */
static int churn(const sw_gen_opts *o, image *im, int s, int *removed)
{
    int n = (int)lround(o->churn * im->n_active);
    rng r = {h4(o->seed, (uint64_t)im->index, H_CHURN, (uint64_t)s)};
    for (int k = 0; k < n; k++) {
        int left = im->n_active - k;
        int at = (int)(rng_next(&r) % (uint64_t)left);
        int tail = left - 1;
        int keep = im->active[tail];
        removed[k] = im->active[at];
        im->active[at] = keep;
        im->active[tail] = im->next_ordinal++;
    }
    return n;
}

static bool scan_image(const sw_gen_opts *o, out *ou, image *im, int s, int *removed)
{
    bool snapshot = o->snapshot_every > 0 && (s + 1) % o->snapshot_every == 0;
    int n_removed = s > 0 && !im->clean ? churn(o, im, s, removed) : 0;
    sw_time_us t0 = scan_start(o, im, s);
    rng r = {h4(o->seed, (uint64_t)im->index, H_NOISE, (uint64_t)s)};
    int total = im->clean ? 1 : im->n_active + (snapshot ? 0 : n_removed);
    int j = 0;
    if (im->clean) {
        rec_args a = {.im = im, .v = NULL, .t = t0, .snapshot = snapshot, .healthy = true};
        return container_record(o, ou, &a) && noise(o, ou, &r, im, t0);
    }
    for (int k = 0; k < im->n_active; k++, j++) {
        int ord = im->active[k];
        /* delta mode: only findings new in this scan (ordinals above the last scan's max) */
        bool is_new = s == 0 || ord >= im->next_ordinal - n_removed;
        if (o->mode == SW_GEN_DELTA && !snapshot && !is_new) {
            continue;
        }
        vuln v;
        vuln_of(o, im, ord, &v);
        sw_time_us t = t0 + (total > 0 ? o->spread_us * j / total : 0);
        rec_args a = {.im = im, .v = &v, .t = t, .snapshot = snapshot};
        if (!container_record(o, ou, &a) || !noise(o, ou, &r, im, t)) {
            return false;
        }
    }
    if (snapshot) {
        return true;
    }
    for (int k = 0; k < n_removed; k++, j++) {
        vuln v;
        vuln_of(o, im, removed[k], &v);
        sw_time_us t = t0 + (total > 0 ? o->spread_us * j / total : 0);
        /* Qualys reports a fixed finding as Healthy; MDVM-era exports as Delete. */
        bool healthy = im->shape == 0 ||
                       h4(o->seed, (uint64_t)im->index, H_RESOLVE_HOW, (uint64_t)removed[k]) % 2;
        rec_args a = {.im = im, .v = &v, .t = t, .healthy = healthy, .delete_action = !healthy};
        if (!container_record(o, ou, &a) || !noise(o, ou, &r, im, t)) {
            return false;
        }
    }
    return true;
}

typedef struct {
    sw_time_us t0;
    int index;
} scan_order;

static int scan_order_cmp(const void *a, const void *b)
{
    const scan_order *x = a, *y = b;
    if (x->t0 != y->t0) {
        return x->t0 < y->t0 ? -1 : 1;
    }
    return x->index - y->index;
}

/*
 * --emit-enqueued: the scans of one round in start order. Every round starts
 * after the previous one's last start (scans start in the first half of the
 * interval, +-interval/36), so a body enqueued before the next scan's start
 * plus the shortest delay can be written: nothing later can precede it.
 */
static bool scan_round_by_time(const sw_gen_opts *o, out *ou, image *ims, scan_order *order, int s,
                               int *removed)
{
    for (int i = 0; i < o->images; i++) {
        order[i].t0 = scan_start(o, &ims[i], s);
        order[i].index = i;
    }
    qsort(order, (size_t)o->images, sizeof *order, scan_order_cmp);
    for (int k = 0; k < o->images; k++) {
        if (!heap_flush(ou, order[k].t0 - 1000 + ENQ_DELAY_MIN_US) ||
            !scan_image(o, ou, &ims[order[k].index], s, removed)) {
            return false;
        }
    }
    return true;
}

static bool run(const sw_gen_opts *o, sw_gen_body_fn fn, sw_gen_timed_fn tfn, void *ctx,
                sw_gen_counts *counts, sw_err *err)
{
    sw_gen_counts local;
    if (counts == NULL) {
        counts = &local;
    }
    /* Every image keeps its active set in memory: bound the total. */
    if ((int64_t)o->images * (o->findings + 1) > 100000000) {
        return sw_err_set(err, SW_E_INVALID_ARG,
                          "--images x --findings must stay below 100,000,000");
    }
    memset(counts, 0, sizeof *counts);
    image *ims = calloc((size_t)(o->images > 0 ? o->images : 1), sizeof *ims);
    int *removed = malloc((size_t)(o->findings + 1) * sizeof *removed);
    scan_order *order =
        tfn != NULL ? malloc((size_t)(o->images > 0 ? o->images : 1) * sizeof *order) : NULL;
    out ou = {.fn = fn, .tfn = tfn, .ctx = ctx, .o = o, .counts = counts};
    sw_buf_init(&ou.batch, 0);
    sw_buf_init(&ou.rec, 0);
    bool ok = ims != NULL && removed != NULL && (tfn == NULL || order != NULL);
    for (int i = 0; ok && i < o->images; i++) {
        ok = image_init(o, i, &ims[i]);
    }
    if (!ok) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    for (int s = 0; ok && s <= o->rescans; s++) {
        if (tfn != NULL) {
            ok = scan_round_by_time(o, &ou, ims, order, s, removed);
            continue;
        }
        for (int i = 0; ok && i < o->images; i++) {
            ok = scan_image(o, &ou, &ims[i], s, removed);
        }
    }
    if (ok) {
        ok = flush_batch(&ou) && heap_flush(&ou, INT64_MAX);
    }
    if (!ok && err != NULL && err->code == SW_OK && !ou.stopped) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    for (int i = 0; ims != NULL && i < o->images; i++) {
        free(ims[i].active);
    }
    free(ims);
    free(removed);
    free(order);
    while (ou.heap_len > 0) {
        free(heap_pop(&ou).body);
    }
    free(ou.heap);
    sw_buf_free(&ou.batch);
    sw_buf_free(&ou.rec);
    return ok || ou.stopped;
}

bool sw_gen_run(const sw_gen_opts *o, sw_gen_body_fn fn, void *ctx, sw_gen_counts *counts,
                sw_err *err)
{
    return run(o, fn, NULL, ctx, counts, err);
}

bool sw_gen_run_timed(const sw_gen_opts *o, sw_gen_timed_fn fn, void *ctx, sw_gen_counts *counts,
                      sw_err *err)
{
    return run(o, NULL, fn, ctx, counts, err);
}
