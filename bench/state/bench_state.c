/*
 * sw-bench-state: one measurement per process (so peak RSS is its own).
 *
 *   sw-bench-state --mode engine|floor --findings N --images M --dir DIR
 *
 * The stream: M images; every scan of an image carries 10 findings (one in
 * ten replaced at each rescan), scans of different images 0.5 s apart and
 * rounds one day apart, so N findings = N/(10 M) rescans per image. Each
 * finding is one event; every `batch` events are one commit (as
 * state_batch_events), sync on.
 *   engine: sw_state_engine_add + event_done per finding, commit per batch,
 *           close_all at the end (windows + diff + outbox + RocksDB commit).
 *   floor:  one rocksdb Put per finding of the same key ("image\0key") and
 *           value (the finding JSON) bytes, WriteBatch per `batch`, sync on.
 * Prints one JSON line: mode, findings, seconds, findings_per_s, cpu_seconds,
 * findings_per_cpu_s (whole process: RocksDB's flush and compaction threads
 * included), thread_cpu_seconds, findings_per_thread_cpu_s (the one thread
 * that generates the stream and runs the engine or the Puts, RocksDB's write
 * path included), peak_rss_kb, disk_bytes (after close), diff_records.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <rocksdb/c.h>

#include "scanwatch/finding.h"
#include "scanwatch/state.h"
#include "scanwatch/state_engine.h"
#include "../common/floor_db.h"

#define PER_SCAN 10

typedef struct cfg {
    const char *mode, *dir;
    uint64_t findings;
    uint64_t images;
    uint64_t batch;
} cfg;

static uint64_t disk_total;
static int du_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    if (flag == FTW_F) {
        disk_total += (uint64_t)sb->st_size;
    }
    return 0;
}

/* Finding j of image i in round r: key ids shift by one per round. */
static void make_finding(uint64_t i, uint64_t r, int j, sw_buf *image, sw_buf *key, sw_buf *json,
                         sw_time_us *scan)
{
    char digest[80], vuln[32], pkg[32];
    snprintf(digest, sizeof digest, "sha256:%064" PRIx64, (uint64_t)(i * 0x9e3779b97f4a7c15ULL));
    /* one of the ten findings is replaced per round */
    uint64_t id = (uint64_t)j < r % PER_SCAN ? (uint64_t)j + 1000 * (r / PER_SCAN + 1)
                                             : (uint64_t)j + 1000 * (r / PER_SCAN);
    if ((uint64_t)j == r % PER_SCAN) {
        id = (uint64_t)j + 1000 * (r + 1);
    }
    snprintf(vuln, sizeof vuln, "CVE-2024-%06" PRIu64, id % 1000000);
    snprintf(pkg, sizeof pkg, "pkg%d", j);
    sw_buf_reset(image);
    sw_buf_printf(image, "bench.azurecr.io/team%" PRIu64 "/app@%s", i % 97, digest);
    sw_buf_reset(key);
    sw_buf_printf(key, "%s:%s", vuln, pkg);
    *scan = 1767225600LL * 1000000 + (sw_time_us)r * 86400LL * 1000000 + (sw_time_us)i * 500000 +
            j * 1000;
    static const char *tags[1] = {"latest"};
    static const char *links[1] = {"https://nvd.nist.gov/vuln/detail/CVE"};
    char repo[32];
    snprintf(repo, sizeof repo, "team%" PRIu64 "/app", i % 97);
    sw_finding f = {0};
    f.image = image->data;
    f.registry = "bench.azurecr.io";
    f.repository = repo;
    f.digest = digest;
    f.tags = tags;
    f.n_tags = 1;
    f.key = key->data;
    f.vuln_id = vuln;
    f.package = pkg;
    f.version = "1.2.3";
    f.fixed_version = "1.2.4";
    f.title = "Out-of-bounds write in a commonly used compression library";
    f.published = "2024-03-01T00:00:00Z";
    f.links = links;
    f.n_links = 1;
    f.fixable = true;
    f.severity = (sw_severity)(1 + j % 4);
    f.has_cvss = true;
    f.cvss = 7.5;
    f.scan_time = *scan;
    f.shape = SW_SHAPE_MDVM;
    sw_buf_reset(json);
    sw_finding_to_json(&f, json);
}

static double now_s(void)
{
    return (double)sw_time_mono_us() / 1e6;
}

static int run_engine(const cfg *c, uint64_t *diffs)
{
    sw_state_opts so = {0};
    so.dir = c->dir;
    so.sync = true;
    sw_err err;
    sw_state *st = sw_state_open(&so, &err);
    if (st == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    sw_state_engine_opts eo = {0};
    eo.scan_quiet_us = 300LL * 1000000;
    eo.baseline_until = SW_TIME_UNSET;
    eo.window_cache_bytes = (size_t)32 << 20; /* the state_window_cache default */
    sw_state_engine *e = sw_state_engine_new(st, &eo, &err);
    if (e == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    sw_buf image, key, json;
    sw_buf_init(&image, 0);
    sw_buf_init(&key, 0);
    sw_buf_init(&json, 0);
    static const char *tags[1] = {"latest"};
    uint64_t n = 0;
    for (uint64_t r = 0; n < c->findings; r++) {
        for (uint64_t i = 0; i < c->images && n < c->findings; i++) {
            for (int j = 0; j < PER_SCAN && n < c->findings; j++, n++) {
                sw_time_us scan;
                make_finding(i, r, j, &image, &key, &json, &scan);
                char off[24];
                snprintf(off, sizeof off, "%" PRIu64, n);
                sw_state_pos pos = {"0", off, (int64_t)n, scan};
                sw_state_record rec = {0};
                rec.image = image.data;
                rec.repository = "bench.azurecr.io/app";
                rec.tags = tags;
                rec.n_tags = 1;
                rec.key = key.data;
                rec.scan_time = scan;
                rec.snapshot = true;
                rec.finding_json = json.data;
                rec.finding_len = json.len;
                if (!sw_state_engine_add(e, &pos, &rec, &err) ||
                    !sw_state_engine_event_done(e, &pos, &err) ||
                    (sw_state_engine_pending_events(e) >= c->batch &&
                     !sw_state_engine_commit(e, &err))) {
                    fprintf(stderr, "%s\n", err.msg);
                    return 1;
                }
            }
        }
    }
    if (!sw_state_engine_close_all(e, &err) || !sw_state_engine_commit(e, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    sw_state_engine_stats s;
    sw_state_engine_get_stats(e, &s);
    *diffs = s.diff_records;
    sw_state_engine_free(e);
    sw_state_close(st);
    sw_buf_free(&image);
    sw_buf_free(&key);
    sw_buf_free(&json);
    return 0;
}

/* Raw Puts into the floor database (bench/common/floor_db.c: the store's tuning). */
static int run_floor(const cfg *c)
{
    char *rerr = NULL;
    sw_bench_floor fl;
    if (!sw_bench_floor_open(&fl, c->dir, &rerr)) {
        fprintf(stderr, "%s\n", rerr);
        return 1;
    }
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(wo, 1);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    sw_buf image, key, json, k;
    sw_buf_init(&image, 0);
    sw_buf_init(&key, 0);
    sw_buf_init(&json, 0);
    sw_buf_init(&k, 0);
    uint64_t n = 0, in_batch = 0;
    for (uint64_t r = 0; n < c->findings; r++) {
        for (uint64_t i = 0; i < c->images && n < c->findings; i++) {
            for (int j = 0; j < PER_SCAN && n < c->findings; j++, n++) {
                sw_time_us scan;
                make_finding(i, r, j, &image, &key, &json, &scan);
                sw_buf_reset(&k);
                sw_buf_append(&k, image.data, image.len + 1);
                sw_buf_append(&k, key.data, key.len);
                rocksdb_writebatch_put(wb, k.data, k.len, json.data, json.len);
                if (++in_batch >= c->batch) {
                    rocksdb_write(fl.db, wo, wb, &rerr);
                    rocksdb_writebatch_clear(wb);
                    in_batch = 0;
                }
            }
        }
    }
    rocksdb_write(fl.db, wo, wb, &rerr);
    if (rerr != NULL) {
        fprintf(stderr, "%s\n", rerr);
        return 1;
    }
    rocksdb_writebatch_destroy(wb);
    rocksdb_writeoptions_destroy(wo);
    sw_bench_floor_close(&fl);
    sw_buf_free(&image);
    sw_buf_free(&key);
    sw_buf_free(&json);
    sw_buf_free(&k);
    return 0;
}

static uint64_t num(const char *s)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0') {
        fprintf(stderr, "sw-bench-state: '%s' is not a number\n", s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    cfg c = {"engine", NULL, 1000000, 100000, 1000};
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--mode") == 0) {
            c.mode = argv[i + 1];
        } else if (strcmp(argv[i], "--dir") == 0) {
            c.dir = argv[i + 1];
        } else if (strcmp(argv[i], "--findings") == 0) {
            c.findings = num(argv[i + 1]);
        } else if (strcmp(argv[i], "--images") == 0) {
            c.images = num(argv[i + 1]);
        } else if (strcmp(argv[i], "--batch") == 0) {
            c.batch = num(argv[i + 1]);
        } else {
            fprintf(stderr, "sw-bench-state: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (c.dir == NULL || c.images == 0 || c.batch == 0) {
        fprintf(stderr, "usage: sw-bench-state --mode engine|floor --findings N --images M "
                        "--dir DIR [--batch B]\n");
        return 2;
    }
    uint64_t diffs = 0;
    double t0 = now_s();
    struct timespec tc0, tc1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &tc0);
    int rc = strcmp(c.mode, "floor") == 0 ? run_floor(&c) : run_engine(&c, &diffs);
    double secs = now_s() - t0;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &tc1);
    double tcpu = (double)(tc1.tv_sec - tc0.tv_sec) + (double)(tc1.tv_nsec - tc0.tv_nsec) / 1e9;
    if (rc != 0) {
        return rc;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    nftw(c.dir, du_cb, 16, FTW_PHYS);
    /* CPU time of the whole process (RocksDB's flush and compaction threads
     * included): on a shared machine it is steadier than wall time. */
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("{\"mode\":\"%s\",\"findings\":%" PRIu64 ",\"images\":%" PRIu64
           ",\"seconds\":%.2f,\"findings_per_s\":%.0f,\"cpu_seconds\":%.2f,"
           "\"findings_per_cpu_s\":%.0f,\"thread_cpu_seconds\":%.2f,"
           "\"findings_per_thread_cpu_s\":%.0f,\"peak_rss_kb\":%ld,\"disk_bytes\":%" PRIu64
           ",\"diff_records\":%" PRIu64 "}\n",
           c.mode, c.findings, c.images, secs, (double)c.findings / secs, cpu,
           (double)c.findings / cpu, tcpu, (double)c.findings / tcpu, ru.ru_maxrss, disk_total,
           diffs);
    return 0;
}
