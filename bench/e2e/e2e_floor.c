/*
 * sw-bench-e2e-floor: the per-finding floors of the end-to-end benchmark,
 * run on the very stream file the service consumes (bench/e2e/run.mjs).
 *
 *   sw-bench-e2e-floor --mode parse  --input STREAM.ndjson
 *   sw-bench-e2e-floor --mode rocksdb --input STREAM.ndjson --dir DIR [--batch N]
 *
 *   parse:   cJSON_ParseWithLength + cJSON_Delete of every body (line), no
 *            decoding: the least any JSON consumer pays. Thread CPU time.
 *   rocksdb: the bodies are decoded first (not timed) into what the service
 *            stores per finding — key "image\0finding key", value the
 *            finding's canonical JSON — then only the writes are timed: one
 *            rocksdb Put per finding, one synced WriteBatch per N findings
 *            (state_batch_events), the options of bench/state's floor.
 *            Process CPU time (RocksDB's flush/compaction threads included).
 *
 * The whole file is read into memory before timing. Prints one JSON line:
 * mode, findings, bytes, seconds, cpu_seconds, cpu_us_per_finding,
 * findings_per_s, peak_rss_kb.
 *
 * Thread safety: single-threaded (RocksDB adds its own background threads).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <rocksdb/c.h>

#include "scanwatch/buf.h"
#include "scanwatch/decode.h"
#include "scanwatch/finding.h"
#include "../common/floor_db.h"

typedef struct line {
    const char *p;
    size_t len;
} line;

typedef struct stream {
    char *data;
    size_t size;
    line *lines;
    size_t n;
} stream;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Reads the whole file and splits it into non-empty lines (in place). */
static bool read_stream(const char *path, stream *s)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "sw-bench-e2e-floor: cannot open %s: %s\n", path, strerror(errno));
        return false;
    }
    size_t cap = (size_t)1 << 20;
    s->data = malloc(cap);
    for (;;) {
        if (s->data == NULL) {
            fclose(f);
            fprintf(stderr, "sw-bench-e2e-floor: out of memory reading %s\n", path);
            return false;
        }
        size_t got = fread(s->data + s->size, 1, cap - s->size, f);
        s->size += got;
        if (got == 0) {
            break;
        }
        if (s->size == cap) {
            cap *= 2;
            char *bigger = realloc(s->data, cap);
            if (bigger == NULL) {
                free(s->data);
            }
            s->data = bigger;
        }
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        fprintf(stderr, "sw-bench-e2e-floor: cannot read %s\n", path);
        return false;
    }
    size_t lcap = 1024;
    s->lines = malloc(lcap * sizeof *s->lines);
    size_t start = 0;
    for (size_t i = 0; i <= s->size && s->lines != NULL; i++) {
        if (i == s->size || s->data[i] == '\n') {
            if (i > start) {
                if (s->n == lcap) {
                    lcap *= 2;
                    line *bigger = realloc(s->lines, lcap * sizeof *s->lines);
                    if (bigger == NULL) {
                        free(s->lines);
                    }
                    s->lines = bigger;
                    if (bigger == NULL) {
                        break;
                    }
                }
                s->lines[s->n].p = s->data + start;
                s->lines[s->n].len = i - start;
                s->n++;
            }
            start = i + 1;
        }
    }
    if (s->lines == NULL) {
        fprintf(stderr, "sw-bench-e2e-floor: out of memory splitting %s\n", path);
        return false;
    }
    return true;
}

static void report(const char *mode, uint64_t findings, size_t bytes, double secs, double cpu)
{
    printf("{\"mode\":\"%s\",\"findings\":%" PRIu64 ",\"bytes\":%zu,\"seconds\":%.4f,"
           "\"cpu_seconds\":%.4f,\"cpu_us_per_finding\":%.4f,\"findings_per_s\":%.0f,"
           "\"peak_rss_kb\":%ld}\n",
           mode, findings, bytes, secs, cpu, findings > 0 ? cpu * 1e6 / (double)findings : 0.0,
           secs > 0 ? (double)findings / secs : 0.0, peak_rss_kb());
}

static int run_parse(const stream *s)
{
    uint64_t ok = 0;
    double t0 = mono_s(), c0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    for (size_t i = 0; i < s->n; i++) {
        cJSON *j = cJSON_ParseWithLength(s->lines[i].p, s->lines[i].len);
        ok += j != NULL;
        cJSON_Delete(j);
    }
    double secs = mono_s() - t0, cpu = cpu_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    if (ok != s->n) {
        fprintf(stderr, "sw-bench-e2e-floor: %zu of %zu bodies are not JSON\n", s->n - ok, s->n);
    }
    report("parse", ok, s->size, secs, cpu);
    return 0;
}

/* Key "image\0key" and value (finding JSON) of every finding, back to back. */
typedef struct kvs {
    sw_buf blob; /* per finding: u32 key length, u32 value length, key, value */
    uint64_t n;
    sw_buf json;
} kvs;

static bool collect(void *ctx, const sw_finding *f)
{
    kvs *k = ctx;
    const char *key = f->key != NULL ? f->key : "";
    sw_buf_reset(&k->json);
    if (!sw_finding_to_json(f, &k->json)) {
        return false;
    }
    uint32_t kl = (uint32_t)(strlen(f->image) + 1 + strlen(key));
    uint32_t vl = (uint32_t)k->json.len;
    sw_buf_append(&k->blob, &kl, sizeof kl);
    sw_buf_append(&k->blob, &vl, sizeof vl);
    sw_buf_append(&k->blob, f->image, strlen(f->image) + 1);
    sw_buf_append(&k->blob, key, strlen(key));
    sw_buf_append(&k->blob, k->json.data, k->json.len);
    k->n++;
    return true;
}

static int run_rocksdb(const stream *s, const char *dir, uint64_t batch)
{
    kvs k;
    memset(&k, 0, sizeof k);
    sw_buf_init(&k.blob, 0);
    sw_buf_init(&k.json, 0);
    sw_err err;
    sw_err_clear(&err);
    sw_decoder *d = sw_decoder_new(NULL, &err);
    if (d == NULL) {
        fprintf(stderr, "sw-bench-e2e-floor: %s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < s->n; i++) {
        sw_decode_result res;
        sw_decode_body(d, s->lines[i].p, s->lines[i].len, collect, &k, &res, NULL);
    }
    sw_decoder_free(d);
    if (!sw_buf_check(&k.blob, &err)) {
        fprintf(stderr, "sw-bench-e2e-floor: %s\n", err.msg);
        return 1;
    }

    char *rerr = NULL;
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = mono_s();
    /* The floor database: the store's RocksDB tuning (bench/common/floor_db.c). */
    sw_bench_floor fl;
    if (!sw_bench_floor_open(&fl, dir, &rerr)) {
        fprintf(stderr, "sw-bench-e2e-floor: %s: %s\n", dir, rerr);
        return 1;
    }
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    uint64_t in_batch = 0;
    size_t at = 0;
    for (uint64_t i = 0; i < k.n && rerr == NULL; i++) {
        uint32_t kl, vl;
        memcpy(&kl, k.blob.data + at, sizeof kl);
        memcpy(&vl, k.blob.data + at + 4, sizeof vl);
        const char *key = k.blob.data + at + 8;
        rocksdb_writebatch_put(wb, key, kl, key + kl, vl);
        at += 8 + (size_t)kl + vl;
        if (++in_batch >= batch) {
            rocksdb_write(fl.db, wo, wb, &rerr);
            rocksdb_writebatch_clear(wb);
            in_batch = 0;
        }
    }
    if (rerr == NULL && in_batch > 0) {
        rocksdb_write(fl.db, wo, wb, &rerr);
    }
    double secs = mono_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    if (rerr != NULL) {
        fprintf(stderr, "sw-bench-e2e-floor: write: %s\n", rerr);
        return 1;
    }
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    report("rocksdb", k.n, k.blob.len, secs, cpu);
    rocksdb_writebatch_destroy(wb);
    rocksdb_writeoptions_destroy(wo);
    sw_bench_floor_close(&fl);
    sw_buf_free(&k.blob);
    sw_buf_free(&k.json);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = NULL, *input = NULL, *dir = NULL;
    uint64_t batch = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--mode") == 0) {
            mode = argv[i + 1];
        } else if (strcmp(argv[i], "--input") == 0) {
            input = argv[i + 1];
        } else if (strcmp(argv[i], "--dir") == 0) {
            dir = argv[i + 1];
        } else if (strcmp(argv[i], "--batch") == 0) {
            char *end = NULL;
            unsigned long long v = strtoull(argv[i + 1], &end, 10);
            if (end == argv[i + 1] || *end != '\0' || v == 0 || v > 1000000) {
                fprintf(stderr, "sw-bench-e2e-floor: --batch: '%s' is not in [1, 1000000]\n",
                        argv[i + 1]);
                return 2;
            }
            batch = v;
        } else {
            fprintf(stderr, "sw-bench-e2e-floor: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    bool is_parse = mode != NULL && strcmp(mode, "parse") == 0;
    bool is_db = mode != NULL && strcmp(mode, "rocksdb") == 0;
    if ((!is_parse && !is_db) || input == NULL || (is_db && dir == NULL)) {
        fprintf(stderr, "usage: sw-bench-e2e-floor --mode parse|rocksdb --input FILE "
                        "[--dir DIR] [--batch N]\n");
        return 2;
    }
    stream s;
    if (!read_stream(input, &s)) {
        return 1;
    }
    int rc = is_parse ? run_parse(&s) : run_rocksdb(&s, dir, batch);
    free(s.lines);
    free(s.data);
    return rc;
}
