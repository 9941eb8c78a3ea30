/* Unit tests of the state store API: schema, checkpoints, outbox, dead
 * letter, notify KV and batches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

#include "scanwatch/log.h"
#include "scanwatch/state.h"
#include "scanwatch/state_engine.h"
#include "state_test_util.h"

static sw_state *open_dir(const char *dir, bool ro, sw_err *err)
{
    sw_state_opts o = {0};
    o.dir = dir;
    o.read_only = ro;
    o.sync = false;
    o.dead_letter_max_bytes = 16;
    return sw_state_open(&o, err);
}

static void test_open_schema(void **unused)
{
    char *dir = sw_test_tmpdir("store");
    sw_err err;
    sw_state *st = open_dir(dir, true, &err);
    assert_null(st); /* read-only on nothing */
    assert_int_equal(err.code, SW_E_NOT_FOUND);
    st = open_dir(dir, false, &err);
    assert_non_null(st);
    assert_int_equal(sw_state_schema_version(st), SW_STATE_SCHEMA_VERSION);
    sw_state_close(st);

    /* A newer schema (and a column family we do not know) is refused clearly. */
    rocksdb_options_t *o = rocksdb_options_create();
    char *rerr = NULL;
    const char *names[] = {"default",     "meta",   "images",      "sets", "windows",
                           "checkpoints", "outbox", "dead_letter", "tags", "notify"};
    const rocksdb_options_t *cfo[10];
    rocksdb_column_family_handle_t *h[10];
    for (int i = 0; i < 10; i++) {
        cfo[i] = o;
    }
    rocksdb_t *db = rocksdb_open_column_families(o, dir, 10, names, cfo, h, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_put_cf(db, wo, h[1], "schema_version", 14, "7", 1, &rerr);
    assert_null(rerr);
    rocksdb_column_family_handle_t *extra = rocksdb_create_column_family(db, o, "future", &rerr);
    assert_null(rerr);
    rocksdb_column_family_handle_destroy(extra);
    for (int i = 0; i < 10; i++) {
        rocksdb_column_family_handle_destroy(h[i]);
    }
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    st = open_dir(dir, false, &err);
    assert_null(st);
    assert_int_equal(err.code, SW_E_SCHEMA);
    assert_non_null(strstr(err.msg, "schema version 7"));
    sw_test_rmdir(dir);
    free(dir);

    /* An older schema (1: one key per set entry and pending record) is
     * refused too, naming both versions and what to do. */
    dir = sw_test_tmpdir("store-old");
    st = open_dir(dir, false, &err);
    assert_non_null(st);
    sw_state_close(st);
    o = rocksdb_options_create();
    for (int i = 0; i < 10; i++) {
        cfo[i] = o;
    }
    db = rocksdb_open_column_families(o, dir, 10, names, cfo, h, &rerr);
    assert_null(rerr);
    wo = rocksdb_writeoptions_create();
    rocksdb_put_cf(db, wo, h[1], "schema_version", 14, "1", 1, &rerr);
    assert_null(rerr);
    for (int i = 0; i < 10; i++) {
        rocksdb_column_family_handle_destroy(h[i]);
    }
    rocksdb_close(db);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    st = open_dir(dir, false, &err);
    assert_null(st);
    assert_int_equal(err.code, SW_E_SCHEMA);
    assert_non_null(strstr(err.msg, "older scanwatch (schema version 1"));
    char want[64];
    snprintf(want, sizeof want, "reads version %d", SW_STATE_SCHEMA_VERSION);
    assert_non_null(strstr(err.msg, want));
    sw_test_rmdir(dir);
    free(dir);
}

static void test_checkpoints(void **unused)
{
    char *dir = sw_test_tmpdir("cp");
    sw_err err;
    sw_state *st = open_dir(dir, false, &err);
    assert_non_null(st);
    sw_state_checkpoint cp = {0};
    bool found = true;
    assert_true(sw_state_checkpoint_get(st, "0", &cp, &found, &err));
    assert_false(found);
    snprintf(cp.offset, sizeof cp.offset, "%s", "4294967296");
    cp.sequence = 42;
    cp.enqueued = 1700000000000000LL;
    cp.max_event_time = 1700000000000001LL;
    assert_true(sw_state_checkpoint_put(st, "3", &cp, &err));
    sw_state_checkpoint got;
    assert_true(sw_state_checkpoint_get(st, "3", &got, &found, &err));
    assert_true(found);
    assert_string_equal(got.offset, "4294967296");
    assert_int_equal(got.sequence, 42);
    assert_int_equal(got.enqueued, cp.enqueued);
    assert_int_equal(got.max_event_time, cp.max_event_time);
    sw_state_close(st);
    sw_test_rmdir(dir);
    free(dir);
}

struct seqs {
    uint64_t seq[16];
    char text[16][64];
    size_t n;
};

static bool collect_outbox(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct seqs *s = ctx;
    s->seq[s->n] = seq;
    snprintf(s->text[s->n], sizeof s->text[0], "%.*s", (int)len, json);
    s->n++;
    return s->n < 16;
}

/* The outbox is written by the engine; drive it with three diffs. */
static void fill_outbox(sw_state *st, int first, int images)
{
    sw_err err;
    sw_state_engine_opts eo = {0};
    eo.scan_quiet_us = 300000000LL;
    eo.baseline_until = SW_TIME_UNSET;
    sw_state_engine *e = sw_state_engine_new(st, &eo, &err);
    assert_non_null(e);
    for (int i = first; i < first + images; i++) {
        char image[64];
        snprintf(image, sizeof image, "r.io/app@sha256:%d", i);
        sw_state_pos pos = {"p", "1", 1, 1000};
        sw_state_record r = {0};
        r.image = image;
        r.key = "CVE-1";
        r.scan_time = 1000;
        r.finding_json = "{}";
        r.finding_len = 2;
        assert_true(sw_state_engine_add(e, &pos, &r, &err));
        assert_true(sw_state_engine_event_done(e, &pos, &err));
    }
    assert_true(sw_state_engine_close_all(e, &err));
    assert_true(sw_state_engine_commit(e, &err));
    sw_state_engine_free(e);
}

static void test_outbox(void **unused)
{
    char *dir = sw_test_tmpdir("outbox");
    sw_err err;
    sw_state *st = open_dir(dir, false, &err);
    assert_non_null(st);
    fill_outbox(st, 0, 3);
    struct seqs s = {0};
    assert_true(sw_state_outbox_iter(st, 0, collect_outbox, &s, &err));
    assert_int_equal(s.n, 3);
    assert_true(s.seq[0] < s.seq[1] && s.seq[1] < s.seq[2]);
    assert_non_null(strstr(s.text[0], "\"image\":\"r.io/app@sha256:0\""));
    uint64_t count = 0;
    assert_true(sw_state_outbox_count(st, &count, &err));
    assert_int_equal(count, 3);
    sw_buf b;
    sw_buf_init(&b, 0);
    bool found = false;
    assert_true(sw_state_outbox_get(st, s.seq[1], &b, &found, &err));
    assert_true(found);
    assert_non_null(strstr(b.data, "sha256:1"));
    /* Delete all, reopen: sequences are never reused. */
    uint64_t last = s.seq[2];
    assert_true(sw_state_outbox_delete(st, s.seq[0], &err));
    assert_true(sw_state_outbox_count(st, &count, &err));
    assert_int_equal(count, 2);
    sw_state_close(st);
    /* The count survives a reopen (counted at open) and an absent key's delete. */
    st = open_dir(dir, false, &err);
    assert_non_null(st);
    assert_true(sw_state_outbox_count(st, &count, &err));
    assert_int_equal(count, 2);
    for (size_t i = 0; i < 3; i++) {
        assert_true(sw_state_outbox_delete(st, s.seq[i], &err));
    }
    assert_true(sw_state_outbox_count(st, &count, &err));
    assert_int_equal(count, 0);
    assert_true(sw_state_outbox_get(st, s.seq[1], &b, &found, &err));
    assert_false(found);
    sw_state_close(st);
    st = open_dir(dir, false, &err);
    assert_non_null(st);
    fill_outbox(st, 10, 1);
    assert_true(sw_state_outbox_count(st, &count, &err));
    assert_int_equal(count, 1);
    struct seqs s2 = {0};
    assert_true(sw_state_outbox_iter(st, 0, collect_outbox, &s2, &err));
    assert_int_equal(s2.n, 1);
    assert_true(s2.seq[0] > last);
    sw_buf_free(&b);
    sw_state_close(st);
    sw_test_rmdir(dir);
    free(dir);
}

/* Stores written before the column families moved to universal compaction (their
 * files spread over levels by leveled compaction) open, count and take writes. */
static void test_opens_leveled_layout(void **unused)
{
    char *dir = sw_test_tmpdir("leveled");
    sw_err err;
    sw_state *st = open_dir(dir, false, &err);
    assert_non_null(st);
    fill_outbox(st, 0, 50);
    sw_state_close(st);

    static const char *const names[] = {"default",     "meta",   "images",      "sets", "windows",
                                        "checkpoints", "outbox", "dead_letter", "tags", "notify"};
    enum { N = sizeof names / sizeof names[0] };
    rocksdb_options_t *o = rocksdb_options_create();
    const rocksdb_options_t *cfo[N];
    rocksdb_column_family_handle_t *h[N];
    for (int i = 0; i < N; i++) {
        cfo[i] = o; /* RocksDB's defaults: leveled */
    }
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open_column_families(o, dir, N, names, cfo, h, &rerr);
    assert_null(rerr);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    for (int i = 0; i < N; i++) {
        rocksdb_compact_range_cf(db, h[i], NULL, 0, NULL, 0); /* to the bottom level */
    }
    rocksdb_put_cf(db, wo, h[9], "x/leveled", 9, "1", 1, &rerr); /* and a new L0 file */
    assert_null(rerr);
    rocksdb_flush_cf(db, fo, h[9], &rerr);
    assert_null(rerr);
    for (int i = 0; i < N; i++) {
        rocksdb_column_family_handle_destroy(h[i]);
    }
    rocksdb_close(db);
    rocksdb_flushoptions_destroy(fo);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);

    st = open_dir(dir, false, &err);
    assert_non_null(st);
    uint64_t count = 0;
    assert_true(sw_state_outbox_count(st, &count, &err));
    assert_int_equal(count, 50);
    fill_outbox(st, 50, 10);
    assert_true(sw_state_outbox_count(st, &count, &err));
    assert_int_equal(count, 60);
    sw_buf v;
    sw_buf_init(&v, 0);
    bool found = false;
    assert_true(sw_state_kv_get(st, "x/leveled", 9, &v, &found, &err));
    assert_true(found);
    sw_buf_free(&v);
    sw_state_close(st);
    st = open_dir(dir, false, &err);
    assert_non_null(st);
    struct seqs s = {0};
    assert_true(sw_state_outbox_iter(st, 0, collect_outbox, &s, &err));
    assert_true(s.n > 0);
    sw_state_close(st);
    sw_test_rmdir(dir);
    free(dir);
}

struct dls {
    size_t n;
    char reason[4][64];
    size_t len[4], orig[4];
};

static bool collect_dl(void *ctx, const sw_state_dead_letter *dl)
{
    struct dls *d = ctx;
    snprintf(d->reason[d->n], 64, "%s", dl->reason);
    d->len[d->n] = dl->len;
    d->orig[d->n] = dl->orig_len;
    d->n++;
    return d->n < 4;
}

static void test_dead_letter_bounded(void **unused)
{
    char *dir = sw_test_tmpdir("dl");
    sw_err err;
    sw_state *st = open_dir(dir, false, &err);
    assert_non_null(st);
    sw_state_dead_letter dl = {0};
    dl.kind = "event";
    dl.reason = "not JSON";
    dl.partition = "0";
    dl.offset = "12";
    dl.bytes = "0123456789abcdefghijklmnop";
    dl.len = 26;
    assert_true(sw_state_dead_letter_put(st, &dl, &err));
    dl.reason = "second";
    dl.len = 3;
    assert_true(sw_state_dead_letter_put(st, &dl, &err));
    struct dls d = {0};
    assert_true(sw_state_dead_letter_iter(st, collect_dl, &d, &err));
    assert_int_equal(d.n, 2);
    assert_string_equal(d.reason[0], "not JSON");
    assert_int_equal(d.len[0], 16); /* the bound */
    assert_int_equal(d.orig[0], 26);
    assert_int_equal(d.len[1], 3);
    sw_state_close(st);
    sw_test_rmdir(dir);
    free(dir);
}

struct kvs {
    size_t n;
    char keys[8][32];
};

static bool collect_kv(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    struct kvs *s = ctx;
    snprintf(s->keys[s->n], 32, "%.*s=%.*s", (int)kl, (const char *)k, (int)vl, (const char *)v);
    s->n++;
    return s->n < 8;
}

static void test_kv_and_batch(void **unused)
{
    char *dir = sw_test_tmpdir("kv");
    sw_err err;
    sw_state *st = open_dir(dir, false, &err);
    assert_non_null(st);
    fill_outbox(st, 0, 2);
    assert_true(sw_state_kv_put(st, "route/a", 7, "1", 1, &err));
    assert_true(sw_state_kv_put(st, "route/b", 7, "2", 1, &err));
    assert_true(sw_state_kv_put(st, "digest/x", 8, "3", 1, &err));
    struct kvs s = {0};
    assert_true(sw_state_kv_iter_prefix(st, "route/", 6, collect_kv, &s, &err));
    assert_int_equal(s.n, 2);
    assert_string_equal(s.keys[0], "route/a=1");
    assert_string_equal(s.keys[1], "route/b=2");

    struct seqs ob = {0};
    assert_true(sw_state_outbox_iter(st, 0, collect_outbox, &ob, &err));
    assert_int_equal(ob.n, 2);
    sw_state_batch *b = sw_state_batch_new();
    assert_non_null(b);
    sw_state_batch_outbox_delete(b, ob.seq[0]);
    sw_state_batch_kv_put(b, "digest/x", 8, "4", 1);
    sw_state_batch_kv_delete(b, "route/a", 7);
    assert_true(sw_state_batch_commit(st, b, &err));
    sw_state_batch_free(b);
    uint64_t count = 0;
    assert_true(sw_state_outbox_count(st, &count, &err));
    assert_int_equal(count, 1);

    struct seqs ob2 = {0};
    assert_true(sw_state_outbox_iter(st, 0, collect_outbox, &ob2, &err));
    assert_int_equal(ob2.n, 1);
    assert_int_equal(ob2.seq[0], ob.seq[1]);
    sw_buf v;
    sw_buf_init(&v, 0);
    bool found = false;
    assert_true(sw_state_kv_get(st, "digest/x", 8, &v, &found, &err));
    assert_true(found);
    assert_string_equal(v.data, "4");
    assert_true(sw_state_kv_get(st, "route/a", 7, &v, &found, &err));
    assert_false(found);
    assert_true(sw_state_kv_delete(st, "route/b", 7, &err));
    struct kvs s2 = {0};
    assert_true(sw_state_kv_iter_prefix(st, "", 0, collect_kv, &s2, &err));
    assert_int_equal(s2.n, 1);
    sw_buf_free(&v);
    sw_state_close(st);
    sw_test_rmdir(dir);
    free(dir);
}

/* Log lines go to a fresh temporary file until end_capture, which returns
 * them as a malloc'd string. */
static FILE *begin_capture(void)
{
    FILE *fp = tmpfile();
    assert_non_null(fp);
    sw_log_set_sink(fp);
    return fp;
}

static char *end_capture(FILE *fp)
{
    sw_log_set_sink(NULL);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    char *text = calloc((size_t)n + 1, 1);
    assert_non_null(text);
    rewind(fp);
    assert_int_equal(fread(text, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    return text;
}

/* A writer closed at debug level logs RocksDB's per-column-family flush and
 * compaction statistics (what bench/state/cfstats.mjs reads); a reader, or a
 * writer at info level, logs none. */
static void test_close_logs_cf_stats(void **unused)
{
    char *dir = sw_test_tmpdir("cfstats");
    sw_err err;
    sw_log_level was = sw_log_get_level();

    sw_log_set_level(SW_LOG_INFO);
    FILE *fp = begin_capture();
    sw_state *st = open_dir(dir, false, &err);
    assert_non_null(st);
    assert_true(sw_state_kv_put(st, "k", 1, "v", 1, &err));
    sw_state_close(st);
    char *quiet = end_capture(fp);
    assert_null(strstr(quiet, "rocksdb column family stats"));
    free(quiet);

    sw_log_set_level(SW_LOG_DEBUG);
    fp = begin_capture();
    st = open_dir(dir, true, &err);
    assert_non_null(st);
    sw_state_close(st);
    char *reader = end_capture(fp);
    assert_null(strstr(reader, "rocksdb column family stats"));
    free(reader);

    fp = begin_capture();
    st = open_dir(dir, false, &err);
    assert_non_null(st);
    assert_true(sw_state_kv_put(st, "k2", 2, "v", 1, &err));
    sw_state_close(st);
    char *text = end_capture(fp);
    sw_log_set_level(was);
    static const char *const cfs[] = {"meta", "images", "sets", "windows", "outbox", "notify"};
    for (size_t i = 0; i < sizeof cfs / sizeof cfs[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "\"cf\":\"%s\",\"stats\":\"", cfs[i]);
        if (strstr(text, want) == NULL) {
            fail_msg("no stats line for %s in:\n%s", cfs[i], text);
        }
        snprintf(want, sizeof want, "Compaction Stats [%s]", cfs[i]);
        if (strstr(text, want) == NULL) {
            fail_msg("no '%s' in:\n%s", want, text);
        }
    }
    assert_non_null(strstr(text, "\"rocksdb db stats\""));
    assert_non_null(strstr(text, "Cumulative writes"));
    free(text);
    sw_test_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_schema),  cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_outbox),       cmocka_unit_test(test_dead_letter_bounded),
        cmocka_unit_test(test_kv_and_batch), cmocka_unit_test(test_close_logs_cf_stats),
        cmocka_unit_test(test_opens_leveled_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
