/*
 * bench_decode: decoder throughput against its floor, side by side in one run.
 *
 * Generates N MDVM bodies (sw_gen, ~3 KB each, mixed camel/Pascal keys), then
 * for each of R rounds measures (a) the floor: cJSON_ParseWithLength +
 * cJSON_Delete of every body, and (b) sw_decode_body of every body (parse,
 * depth check, shape table, normalized finding, UTF-8 check, callback), in
 * interleaved chunks, as thread CPU time (one core; other load on the machine
 * does not count). Prints the median of the rounds as findings/s and MB/s, and
 * the cost ratio decode / floor.
 *
 *   bench_decode [--bodies N] [--rounds R] [--seed S] [--profile decode|floor]
 *
 * --profile runs only one side, 20 passes, for perf record.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen.h"
#include "scanwatch/decode.h"

typedef struct corpus {
    char *data;
    size_t len, cap;
    size_t *off; /* body i is data[off[i] .. off[i+1]) */
    size_t n, ncap;
} corpus;

static bool add_body(void *ctx, const char *body, size_t len)
{
    corpus *c = ctx;
    if (c->len + len > c->cap) {
        size_t cap = c->cap > 0 ? c->cap : 1 << 20;
        while (cap < c->len + len) {
            cap *= 2;
        }
        char *p = realloc(c->data, cap);
        if (p == NULL) {
            return false;
        }
        c->data = p;
        c->cap = cap;
    }
    if (c->n + 2 > c->ncap) {
        size_t ncap = c->ncap > 0 ? c->ncap * 2 : 1024;
        size_t *o = realloc(c->off, ncap * sizeof *o);
        if (o == NULL) {
            return false;
        }
        c->off = o;
        c->ncap = ncap;
    }
    memcpy(c->data + c->len, body, len);
    c->off[c->n] = c->len;
    c->len += len;
    c->n++;
    c->off[c->n] = c->len;
    return true;
}

static bool count_finding(void *ctx, const sw_finding *f)
{
    size_t *n = ctx;
    *n += f->key != NULL ? 1 : 0;
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* CPU time of this thread: other processes on a shared machine do not count. */
static int64_t cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void floor_range(const corpus *c, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        cJSON *j = cJSON_ParseWithLength(c->data + c->off[i], c->off[i + 1] - c->off[i]);
        if (j == NULL) {
            fprintf(stderr, "bench_decode: body %zu is not JSON\n", i);
            exit(1);
        }
        cJSON_Delete(j);
    }
}

static void decode_range(const corpus *c, sw_decoder *d, size_t from, size_t to, size_t *findings)
{
    sw_decode_result res;
    sw_err err;
    for (size_t i = from; i < to; i++) {
        if (!sw_decode_body(d, c->data + c->off[i], c->off[i + 1] - c->off[i], count_finding,
                            findings, &res, &err)) {
            fprintf(stderr, "bench_decode: body %zu: %s\n", i, err.msg);
            exit(1);
        }
    }
}

/*
 * One round over all bodies, in chunks; each chunk runs the floor and the
 * decoder back to back (alternating which goes first), so that both sides
 * see the same cache and machine conditions.
 */
#define CHUNK 256
static void round_pass(const corpus *c, sw_decoder *d, int64_t *floor_us, int64_t *dec_us,
                       size_t *findings)
{
    *floor_us = *dec_us = 0;
    *findings = 0;
    for (size_t from = 0, k = 0; from < c->n; from += CHUNK, k++) {
        size_t to = from + CHUNK < c->n ? from + CHUNK : c->n;
        for (int side = 0; side < 2; side++) {
            bool dec_side = (side + k) % 2 == 1;
            int64_t t0 = cpu_us();
            if (dec_side) {
                decode_range(c, d, from, to, findings);
                *dec_us += cpu_us() - t0;
            } else {
                floor_range(c, from, to);
                *floor_us += cpu_us() - t0;
            }
        }
    }
}

static long arg_long(const char *flag, const char *v, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min || x > max) {
        fprintf(stderr, "bench_decode: %s wants an integer in [%ld, %ld]\n", flag, min, max);
        exit(2);
    }
    return x;
}

int main(int argc, char **argv)
{
    long bodies = 20000, rounds = 5, seed = 1;
    const char *profile = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--bodies") == 0) {
            bodies = arg_long(argv[i], argv[i + 1], 1, 10000000);
        } else if (strcmp(argv[i], "--rounds") == 0) {
            rounds = arg_long(argv[i], argv[i + 1], 1, 101);
        } else if (strcmp(argv[i], "--profile") == 0) {
            profile = argv[i + 1];
        } else if (strcmp(argv[i], "--seed") == 0) {
            seed = arg_long(argv[i], argv[i + 1], 0, 1L << 30);
        } else {
            fprintf(stderr, "usage: bench_decode [--bodies N] [--rounds R] [--seed S] "
                            "[--profile decode|floor]\n");
            return 2;
        }
    }
    sw_gen_opts o;
    sw_gen_opts_default(&o);
    o.seed = (uint64_t)seed;
    o.mix[0] = 0;
    o.mix[1] = 1;
    o.mix[2] = 0;
    o.findings = 50;
    o.rescans = 0;
    o.images = (int)((bodies + 49) / 50);
    corpus c = {0};
    sw_err err;
    if (!sw_gen_run(&o, add_body, &c, NULL, &err)) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return 1;
    }
    c.n = c.n > (size_t)bodies ? (size_t)bodies : c.n;
    size_t bytes = c.off[c.n];
    sw_decoder *d = sw_decoder_new(NULL, &err);
    if (d == NULL) {
        return 1;
    }
    int64_t *tf = calloc((size_t)rounds, sizeof *tf), *td = calloc((size_t)rounds, sizeof *td);
    size_t findings = 0;
    if (profile != NULL) {
        bool dec_side = strcmp(profile, "decode") == 0;
        int64_t t0 = cpu_us();
        for (int r = 0; r < 20; r++) {
            if (dec_side) {
                decode_range(&c, d, 0, c.n, &findings);
            } else {
                floor_range(&c, 0, c.n);
            }
        }
        printf("%s: %.0f bodies/s\n", profile,
               20.0 * (double)c.n / ((double)(cpu_us() - t0) / 1e6));
        sw_decoder_free(d);
        return 0;
    }
    round_pass(&c, d, &tf[0], &td[0], &findings); /* warm caches and the allocator */
    for (long r = 0; r < rounds; r++) {
        round_pass(&c, d, &tf[r], &td[r], &findings);
    }
    qsort(tf, (size_t)rounds, sizeof *tf, cmp_i64);
    qsort(td, (size_t)rounds, sizeof *td, cmp_i64);
    double mf = (double)tf[rounds / 2] / 1e6, md = (double)td[rounds / 2] / 1e6;
    double mb = (double)bytes / 1e6;
    printf("bodies: %zu MDVM findings, %.1f MB, %.0f bytes/body average; median of %ld rounds\n",
           c.n, mb, (double)bytes / (double)c.n, rounds);
    printf("%-34s %12s %10s %10s\n", "", "findings/s", "MB/s", "s/round");
    printf("%-34s %12.0f %10.1f %10.4f\n", "floor: cJSON_Parse + cJSON_Delete", (double)c.n / mf,
           mb / mf, mf);
    printf("%-34s %12.0f %10.1f %10.4f\n", "sw_decode_body", (double)findings / md, mb / md, md);
    printf("cost ratio decode / floor: %.2f (bar: <= 1.5); decode findings/s: %.0f (bar: >= "
           "80000)\n",
           md / mf, (double)findings / md);
    sw_decoder_free(d);
    free(c.data);
    free(c.off);
    free(tf);
    free(td);
    return findings == c.n ? 0 : 1;
}
