/* Unit tests of the rescan engine: every rule of the windows and
 * diff, durability across engine restarts, diff_log exactly once, image_ttl. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "scanwatch/state.h"
#include "scanwatch/state_engine.h"
#include "state_test_util.h"

#define S(x) ((sw_time_us)(x)*1000000LL)
#define IMG "reg.io/app@sha256:aa"
#define T0 S(1700000000)

typedef struct fx {
    char *dir;
    sw_state *st;
    sw_state_engine *e;
    sw_state_engine_opts o;
    long offset;
    uint64_t seen; /* outbox entries already returned by next_diff */
} fx;

static void fx_engine(fx *f)
{
    sw_err err;
    f->e = sw_state_engine_new(f->st, &f->o, &err);
    if (f->e == NULL) {
        fail_msg("engine: %s", err.msg);
    }
}

static void fx_open(fx *f)
{
    sw_state_opts so = {0};
    so.dir = f->dir;
    sw_err err;
    f->st = sw_state_open(&so, &err);
    if (f->st == NULL) {
        fail_msg("open: %s", err.msg);
    }
    fx_engine(f);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->dir = sw_test_tmpdir("engine");
    f->o.scan_quiet_us = S(300);
    f->o.baseline_until = SW_TIME_UNSET;
    fx_open(f);
    *state = f;
    return 0;
}

static void fx_close(fx *f)
{
    sw_state_engine_free(f->e);
    sw_state_close(f->st);
    f->e = NULL;
    f->st = NULL;
}

static int teardown(void **state)
{
    fx *f = *state;
    fx_close(f);
    sw_test_rmdir(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

/* Options changed in a test take effect on a fresh engine. */
static void fx_reopen_engine(fx *f)
{
    sw_state_engine_free(f->e);
    fx_engine(f);
}

enum { ACTIVE = 0, RESOLVED = 1 };
enum { PLAIN = 0, SNAP = 1 };

/* One record as one event; event time = scan time unless enq given. */
static void add_ex(fx *f, const char *image, const char *key, int status, sw_time_us scan, int snap,
                   bool clean, sw_time_us enq, const char *tag)
{
    char off[32], json[256];
    snprintf(off, sizeof off, "%ld", ++f->offset);
    snprintf(json, sizeof json, "{\"key\":\"%s\",\"scan\":%lld}", key != NULL ? key : "",
             (long long)(scan / 1000000));
    const char *tags[1] = {tag};
    sw_state_pos pos = {"0", off, f->offset, enq};
    sw_state_record r = {0};
    r.image = image;
    r.repository = "reg.io/app";
    r.tags = tags;
    r.n_tags = tag != NULL ? 1 : 0;
    r.key = key;
    r.resolved = status == RESOLVED;
    r.snapshot = snap == SNAP;
    r.clean_marker = clean;
    r.scan_time = scan;
    r.finding_json = json;
    r.finding_len = strlen(json);
    sw_err err;
    if (!sw_state_engine_add(f->e, &pos, &r, &err) ||
        !sw_state_engine_event_done(f->e, &pos, &err)) {
        fail_msg("add: %s", err.msg);
    }
}

static void add(fx *f, const char *key, int status, sw_time_us scan, int snap)
{
    add_ex(f, IMG, key, status, scan, snap, false, scan, NULL);
}

static void close_commit(fx *f)
{
    sw_err err;
    if (!sw_state_engine_close_all(f->e, &err) || !sw_state_engine_commit(f->e, &err)) {
        fail_msg("close: %s", err.msg);
    }
}

static void commit(fx *f)
{
    sw_err err;
    if (!sw_state_engine_commit(f->e, &err)) {
        fail_msg("commit: %s", err.msg);
    }
}

struct grab {
    uint64_t after;
    char *json;
    uint64_t seq;
};

static bool grab_cb(void *ctx, uint64_t seq, const char *json, size_t len)
{
    struct grab *g = ctx;
    if (seq < g->after) {
        return true;
    }
    g->json = strndup(json, len);
    g->seq = seq;
    return false;
}

/* The next unread diff record, or NULL. Caller frees with cJSON_Delete. */
static cJSON *next_diff(fx *f)
{
    struct grab g = {f->seen, NULL, 0};
    sw_err err;
    assert_true(sw_state_outbox_iter(f->st, f->seen, grab_cb, &g, &err));
    if (g.json == NULL) {
        return NULL;
    }
    f->seen = g.seq + 1;
    cJSON *j = cJSON_Parse(g.json);
    free(g.json);
    assert_non_null(j);
    return j;
}

/* "A,B" lists: new keys and resolved keys of a diff record, sorted. */
static void keys_of(cJSON *d, const char *field, char *out, size_t n)
{
    out[0] = '\0';
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(d, field);
    cJSON *it;
    size_t len = 0;
    cJSON_ArrayForEach(it, arr)
    {
        const char *k = cJSON_IsString(it)
                            ? it->valuestring
                            : cJSON_GetObjectItemCaseSensitive(it, "key")->valuestring;
        len += (size_t)snprintf(out + len, n - len, "%s%s", len > 0 ? "," : "", k);
    }
}

static void expect_diff(fx *f, const char *new_keys, const char *resolved_keys)
{
    cJSON *d = next_diff(f);
    if (d == NULL) {
        fail_msg("expected a diff record new=[%s] resolved=[%s], got none", new_keys,
                 resolved_keys);
    }
    char nk[512], rk[512];
    keys_of(d, "new", nk, sizeof nk);
    keys_of(d, "resolved", rk, sizeof rk);
    if (strcmp(nk, new_keys) != 0 || strcmp(rk, resolved_keys) != 0) {
        fail_msg("diff: expected new=[%s] resolved=[%s], got new=[%s] resolved=[%s]", new_keys,
                 resolved_keys, nk, rk);
    }
    cJSON_Delete(d);
}

static void expect_no_diff(fx *f)
{
    cJSON *d = next_diff(f);
    if (d != NULL) {
        char *s = cJSON_PrintUnformatted(d);
        fail_msg("expected no diff record, got %s", s);
    }
}

/* ---- tests ---- */

static void test_first_scan_notify_and_record_fields(void **state)
{
    fx *f = *state;
    add(f, "CVE-2", ACTIVE, T0, PLAIN);
    add(f, "CVE-1", ACTIVE, T0 + S(1), PLAIN);
    add(f, "CVE-3", RESOLVED, T0 + S(2), PLAIN);
    close_commit(f);
    cJSON *d = next_diff(f);
    assert_non_null(d);
    char nk[128], rk[128];
    keys_of(d, "new", nk, sizeof nk);
    keys_of(d, "resolved", rk, sizeof rk);
    assert_string_equal(nk, "CVE-1,CVE-2");
    assert_string_equal(rk, "");
    assert_string_equal(cJSON_GetObjectItem(d, "image")->valuestring, IMG);
    assert_string_equal(cJSON_GetObjectItem(d, "scan_time")->valuestring,
                        "2023-11-14T22:13:22.000000Z");
    assert_int_equal(cJSON_GetObjectItem(d, "unchanged")->valueint, 0);
    assert_string_equal(cJSON_GetObjectItem(d, "partition")->valuestring, "0");
    assert_string_equal(cJSON_GetObjectItem(d, "first_offset")->valuestring, "1");
    assert_string_equal(cJSON_GetObjectItem(d, "last_offset")->valuestring, "3");
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(d, "tags")));
    /* "new" holds the finding JSON exactly as given. */
    cJSON *n0 = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "new"), 0);
    assert_int_equal(cJSON_GetObjectItem(n0, "scan")->valueint, 1700000001);
    cJSON_Delete(d);
    expect_no_diff(f);
}

static void test_first_scan_baseline(void **state)
{
    fx *f = *state;
    f->o.first_scan = SW_FIRST_SCAN_BASELINE;
    fx_reopen_engine(f);
    add(f, "CVE-1", ACTIVE, T0, PLAIN);
    close_commit(f);
    expect_no_diff(f);
    sw_state_engine_stats s;
    sw_state_engine_get_stats(f->e, &s);
    assert_int_equal(s.silent_applies, 1);
    add(f, "CVE-1", ACTIVE, T0 + S(86400), PLAIN);
    add(f, "CVE-2", ACTIVE, T0 + S(86400), PLAIN);
    close_commit(f);
    expect_diff(f, "CVE-2", ""); /* CVE-1 was stored silently */
}

static void test_stale_ignored(void **state)
{
    fx *f = *state;
    add(f, "CVE-1", ACTIVE, T0 + S(1000), PLAIN);
    close_commit(f);
    expect_diff(f, "CVE-1", "");
    /* T = T0+1000: older than T - 300 is stale, within is not. */
    add(f, "CVE-2", ACTIVE, T0 + S(699), PLAIN);
    close_commit(f);
    expect_no_diff(f);
    sw_state_engine_stats s;
    sw_state_engine_get_stats(f->e, &s);
    assert_int_equal(s.stale, 1);
    add(f, "CVE-3", ACTIVE, T0 + S(700), PLAIN);
    close_commit(f);
    expect_diff(f, "CVE-3", "");
}

static void test_window_split_by_quiet(void **state)
{
    fx *f = *state;
    f->o.scan_quiet_us = S(300);
    add(f, "A", ACTIVE, T0, PLAIN);
    add(f, "B", ACTIVE, T0 + S(250), PLAIN);
    add(f, "C", ACTIVE, T0 + S(550), PLAIN); /* within 300 of the latest (250) */
    expect_no_diff(f);
    add(f, "D", ACTIVE, T0 + S(851), PLAIN); /* > 550 + 300: closes, opens new */
    commit(f);
    expect_diff(f, "A,B,C", "");
    close_commit(f);
    expect_diff(f, "D", "");
}

static void test_decider_latest_scan_and_tie(void **state)
{
    fx *f = *state;
    add(f, "A", ACTIVE, T0 + S(10), PLAIN);
    add(f, "A", RESOLVED, T0 + S(5), PLAIN); /* older: does not decide */
    add(f, "B", ACTIVE, T0 + S(10), PLAIN);
    add(f, "B", RESOLVED, T0 + S(10), PLAIN); /* tie: the later arrival decides */
    add(f, "C", RESOLVED, T0 + S(10), PLAIN);
    add(f, "C", ACTIVE, T0 + S(10), PLAIN);
    close_commit(f);
    expect_diff(f, "A,C", "");
}

static void seed(fx *f, const char *keys)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", keys);
    for (char *save = NULL, *k = strtok_r(buf, ",", &save); k != NULL;
         k = strtok_r(NULL, ",", &save)) {
        add(f, k, ACTIVE, T0, PLAIN);
    }
    close_commit(f);
    expect_diff(f, keys, "");
}

static void test_auto_snapshot_full(void **state)
{
    fx *f = *state;
    seed(f, "A,B,C");
    add(f, "A", ACTIVE, T0 + S(86400), SNAP);
    add(f, "D", ACTIVE, T0 + S(86400), SNAP);
    close_commit(f);
    expect_diff(f, "D", "B,C"); /* full: S - W resolved */
}

static void test_auto_mixed_not_full(void **state)
{
    fx *f = *state;
    seed(f, "A,B,C");
    add(f, "A", ACTIVE, T0 + S(86400), SNAP);
    add(f, "B", RESOLVED, T0 + S(86400), PLAIN); /* not all snapshot: delta */
    add(f, "X", RESOLVED, T0 + S(86400), SNAP);  /* resolved, not in S: ignored */
    close_commit(f);
    expect_diff(f, "", "B");
}

static void test_auto_clean_marker(void **state)
{
    fx *f = *state;
    seed(f, "A,B");
    add_ex(f, IMG, NULL, RESOLVED, T0 + S(86400), PLAIN, true, T0 + S(86400), NULL);
    close_commit(f);
    expect_diff(f, "", "A,B");
    sw_state_engine_stats s;
    sw_state_engine_get_stats(f->e, &s);
    assert_int_equal(s.resolved_findings, 2);
}

static void test_full_and_delta_settings(void **state)
{
    fx *f = *state;
    f->o.semantics = SW_RESCAN_FULL;
    fx_reopen_engine(f);
    seed(f, "A,B");
    add(f, "A", ACTIVE, T0 + S(86400), PLAIN);
    close_commit(f);
    expect_diff(f, "", "B");
    f->o.semantics = SW_RESCAN_DELTA;
    fx_reopen_engine(f);
    add(f, "C", ACTIVE, T0 + S(2 * 86400), SNAP);
    close_commit(f);
    expect_diff(f, "C", ""); /* delta: A stays although the snapshot lacks it */
}

static void test_continuation_never_full(void **state)
{
    fx *f = *state;
    f->o.semantics = SW_RESCAN_FULL;
    fx_reopen_engine(f);
    seed(f, "A,B,C");
    /* Late records of the applied scan (within T + quiet). */
    add(f, "D", ACTIVE, T0 + S(100), SNAP);
    close_commit(f);
    expect_diff(f, "D", ""); /* not full: A,B,C stay */
    add(f, "A", ACTIVE, T0 + S(86400), SNAP);
    close_commit(f);
    expect_diff(f, "", "B,C,D");
}

static void test_unchanged_count(void **state)
{
    fx *f = *state;
    seed(f, "A,B,C");
    add(f, "B", RESOLVED, T0 + S(86400), PLAIN);
    add(f, "E", ACTIVE, T0 + S(86400), PLAIN);
    close_commit(f);
    cJSON *d = next_diff(f);
    assert_non_null(d);
    assert_int_equal(cJSON_GetObjectItem(d, "unchanged")->valueint, 2);
    cJSON_Delete(d);
    /* Rescan that changes nothing: no record. */
    add(f, "A", ACTIVE, T0 + S(2 * 86400), PLAIN);
    close_commit(f);
    expect_no_diff(f);
}

static void test_baseline_until(void **state)
{
    fx *f = *state;
    f->o.baseline_until = T0 + S(86400);
    fx_reopen_engine(f);
    add(f, "A", ACTIVE, T0, PLAIN); /* enqueued before: silent */
    close_commit(f);
    expect_no_diff(f);
    add(f, "B", ACTIVE, T0 + S(2 * 86400), PLAIN);
    close_commit(f);
    expect_diff(f, "B", "");
}

static void test_diff_basis_tag(void **state)
{
    fx *f = *state;
    f->o.diff_basis = SW_DIFF_BASIS_TAG;
    fx_reopen_engine(f);
    const char *d1 = "reg.io/app@sha256:01", *d2 = "reg.io/app@sha256:02";
    add_ex(f, d1, "A", ACTIVE, T0, PLAIN, false, T0, "latest");
    add_ex(f, d1, "B", ACTIVE, T0, PLAIN, false, T0, "latest");
    close_commit(f);
    expect_diff(f, "A,B", "");
    /* A rebuild: new digest of the same tag, diffed against the old digest. */
    add_ex(f, d2, "A", ACTIVE, T0 + S(3600), SNAP, false, T0 + S(3600), "latest");
    add_ex(f, d2, "C", ACTIVE, T0 + S(3600), SNAP, false, T0 + S(3600), "latest");
    close_commit(f);
    cJSON *d = next_diff(f);
    assert_non_null(d);
    char nk[64], rk[64];
    keys_of(d, "new", nk, sizeof nk);
    keys_of(d, "resolved", rk, sizeof rk);
    assert_string_equal(nk, "C");
    assert_string_equal(rk, "B");
    assert_string_equal(cJSON_GetObjectItem(d, "image")->valuestring, d2);
    assert_string_equal(cJSON_GetObjectItem(d, "base_image")->valuestring, d1);
    cJSON_Delete(d);
    /* With diff_basis = digest the new digest would be a first scan. */
    f->o.diff_basis = SW_DIFF_BASIS_DIGEST;
    fx_reopen_engine(f);
    add_ex(f, "reg.io/app@sha256:03", "A", ACTIVE, T0 + S(7200), SNAP, false, T0 + S(7200),
           "latest");
    close_commit(f);
    expect_diff(f, "A", "");
}

struct set_grab {
    char keys[256];
    char json[1024];
    sw_time_us last_b;
};

static bool set_grab_cb(void *ctx, const sw_state_set_entry *e)
{
    struct set_grab *g = ctx;
    size_t n = strlen(g->keys), m = strlen(g->json);
    snprintf(g->keys + n, sizeof g->keys - n, "%s%s", n > 0 ? "," : "", e->key);
    snprintf(g->json + m, sizeof g->json - m, "%.*s", (int)e->finding_len,
             e->finding_json != NULL ? e->finding_json : "");
    if (strcmp(e->key, "B") == 0) {
        g->last_b = e->last_seen;
    }
    return true;
}

/*
 * Everything in ONE commit batch: the engine's batch has no index, so its
 * own writes (image records, tag pointers, the base's finding JSON) must be
 * read back through its overlay. d1 is scanned twice (rule a applies the
 * first window while the second opens), then d2, a rebuild of the same tag
 * with a delta window, inherits d1's set including the JSON.
 */
static void test_read_back_in_one_batch(void **state)
{
    fx *f = *state;
    f->o.diff_basis = SW_DIFF_BASIS_TAG;
    fx_reopen_engine(f);
    const char *d1 = "reg.io/app@sha256:11", *d2 = "reg.io/app@sha256:22";
    add_ex(f, d1, "A", ACTIVE, T0, SNAP, false, T0, "v1");
    add_ex(f, d1, "B", ACTIVE, T0, SNAP, false, T0, "v1");
    /* Rescan of d1 a day later: A unchanged (only scan_time differs), B gone, C new. */
    add_ex(f, d1, "A", ACTIVE, T0 + S(86400), SNAP, false, T0 + S(86400), "v1");
    add_ex(f, d1, "C", ACTIVE, T0 + S(86400), SNAP, false, T0 + S(86400), "v1");
    /* Rebuild d2 of tag v1, delta records: D new; A and C inherited. */
    add_ex(f, d2, "D", ACTIVE, T0 + S(2 * 86400), PLAIN, false, T0 + S(2 * 86400), "v1");
    close_commit(f);
    expect_diff(f, "A,B", "");
    expect_diff(f, "C", "B");
    cJSON *d = next_diff(f);
    assert_non_null(d);
    char nk[64], rk[64];
    keys_of(d, "new", nk, sizeof nk);
    keys_of(d, "resolved", rk, sizeof rk);
    assert_string_equal(nk, "D");
    assert_string_equal(rk, "");
    assert_int_equal(cJSON_GetObjectItem(d, "unchanged")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(d, "base_image")->valuestring, d1);
    cJSON_Delete(d);
    expect_no_diff(f);
    /* d2's set: the inherited entries carry d1's finding JSON. */
    struct set_grab g;
    memset(&g, 0, sizeof g);
    sw_err err;
    assert_true(sw_state_set_iter(f->st, d2, set_grab_cb, &g, &err));
    assert_string_equal(g.keys, "A,C,D");
    assert_non_null(strstr(g.json, "{\"key\":\"A\""));
    assert_non_null(strstr(g.json, "{\"key\":\"C\""));
    assert_non_null(strstr(g.json, "{\"key\":\"D\""));
    /* d1's set after its rescan: A (JSON as first reported: same content
     * apart from scan_time) and C; B is gone. */
    memset(&g, 0, sizeof g);
    assert_true(sw_state_set_iter(f->st, d1, set_grab_cb, &g, &err));
    assert_string_equal(g.keys, "A,C");
}

/* A finding whose content changes (not only its scan_time) gets its stored
 * JSON rewritten; one that only gets rescanned keeps it and a new last seen. */
static void test_set_entry_content(void **state)
{
    fx *f = *state;
    add_ex(f, IMG, "A", ACTIVE, T0, SNAP, false, T0, NULL);
    add_ex(f, IMG, "B", ACTIVE, T0, SNAP, false, T0, NULL);
    close_commit(f);
    expect_diff(f, "A,B", "");
    /* Rescan: the fixture's JSON carries the scan time in a "scan" member
     * (not "scan_time", which the content hash ignores): a content change. */
    add_ex(f, IMG, "A", ACTIVE, T0 + S(86400), SNAP, false, T0 + S(86400), NULL);
    add_ex(f, IMG, "B", ACTIVE, T0 + S(86400), SNAP, false, T0 + S(86400), NULL);
    close_commit(f);
    expect_no_diff(f);
    struct set_grab g;
    memset(&g, 0, sizeof g);
    sw_err err;
    assert_true(sw_state_set_iter(f->st, IMG, set_grab_cb, &g, &err));
    assert_string_equal(g.keys, "A,B");
    assert_int_equal(g.last_b, T0 + S(86400));
    char want[64];
    snprintf(want, sizeof want, "\"scan\":%lld", (long long)((T0 + S(86400)) / 1000000));
    assert_non_null(strstr(g.json, want));
}

static void test_close_by_event_time(void **state)
{
    fx *f = *state;
    /* Image 1's window; then image 2's events move event time on. */
    add_ex(f, "r/a@1", "A", ACTIVE, T0, PLAIN, false, T0, NULL);
    add_ex(f, "r/b@2", "B", ACTIVE, T0, PLAIN, false, T0 + S(300), NULL);
    commit(f);
    expect_no_diff(f); /* exactly scan_quiet later: not yet */
    add_ex(f, "r/b@2", "B", ACTIVE, T0, PLAIN, false, T0 + S(301), NULL);
    commit(f);
    expect_diff(f, "A", ""); /* rule (b) */
    expect_no_diff(f);
    sw_err err;
    /* Rule (b) from an external event time through tick. */
    assert_true(sw_state_engine_tick(f->e, 0, T0 + S(602), false, &err));
    commit(f);
    expect_diff(f, "B", "");
}

/* Five windows due at once: with batch_bytes_max tiny, each closes in its own
 * commit (sw_state_engine_more_due between them), in event-time order; a
 * restart between those commits closes the rest before a new record of one
 * of their images is staged, so that record opens a window of its own. */
static void stage_five_and_cut(fx *f)
{
    f->o.batch_bytes_max = 1;
    fx_reopen_engine(f);
    const char *img[] = {"r/a@1", "r/b@1", "r/c@1", "r/d@1", "r/e@1"};
    const char *key[] = {"A", "B", "C", "D", "E"};
    for (int i = 0; i < 5; i++) {
        add_ex(f, img[i], key[i], ACTIVE, T0 + S(i), PLAIN, false, T0 + S(i), NULL);
    }
    commit(f);
    assert_false(sw_state_engine_more_due(f->e));
    /* Event time moves 1000 s on: all five are due; the close stops after one. */
    add_ex(f, "r/z@1", "Z", ACTIVE, T0 + S(1000), PLAIN, false, T0 + S(1000), NULL);
    assert_true(sw_state_engine_more_due(f->e));
    commit(f);
    expect_diff(f, "A", "");
    expect_no_diff(f);
}

/* The four windows the cut left due, each once, in event-time order. */
static void expect_rest_of_five(fx *f)
{
    expect_diff(f, "B", "");
    expect_diff(f, "C", "");
    expect_diff(f, "D", "");
    expect_diff(f, "E", "");
    expect_no_diff(f);
}

static void test_close_bounded_by_batch_bytes(void **state)
{
    fx *f = *state;
    stage_five_and_cut(f);
    sw_err err;
    sw_state_engine_stats st0, st1;
    sw_state_engine_get_stats(f->e, &st0);
    int rounds = 0;
    while (sw_state_engine_more_due(f->e)) {
        assert_true(sw_state_engine_tick(f->e, 0, SW_TIME_UNSET, false, &err));
        commit(f);
        rounds++;
    }
    sw_state_engine_get_stats(f->e, &st1);
    assert_int_equal(rounds, 4); /* B, C, D, E: one commit each */
    assert_int_equal(st1.open_windows, 1); /* Z */
    expect_rest_of_five(f);
}

static void test_close_bounded_restart_between_commits(void **state)
{
    fx *f = *state;
    stage_five_and_cut(f);
    fx_close(f); /* a crash with B..E due and open */
    fx_open(f);
    sw_state_engine_stats st;
    sw_state_engine_get_stats(f->e, &st);
    assert_int_equal(st.open_windows, 5); /* B, C, D, E, Z */
    /* A rescan of b: its old window closes first, the record opens a new one. */
    add_ex(f, "r/b@1", "B2", ACTIVE, T0 + S(1001), PLAIN, false, T0 + S(1001), NULL);
    commit(f);
    expect_rest_of_five(f);
    close_commit(f);
    expect_diff(f, "Z", "");
    expect_diff(f, "B2", "");
    expect_no_diff(f);
}

static void test_close_by_wall_time(void **state)
{
    fx *f = *state;
    add_ex(f, IMG, "A", ACTIVE, T0, PLAIN, false, SW_TIME_UNSET, NULL);
    sw_err err;
    sw_time_us now = sw_time_now();
    assert_true(sw_state_engine_tick(f->e, now + S(400), SW_TIME_UNSET, false, &err));
    commit(f);
    expect_no_diff(f); /* not caught up */
    assert_true(sw_state_engine_tick(f->e, now + S(100), SW_TIME_UNSET, true, &err));
    commit(f);
    expect_no_diff(f); /* caught up, quiet not yet passed */
    assert_true(sw_state_engine_tick(f->e, now + S(400), SW_TIME_UNSET, true, &err));
    commit(f);
    expect_diff(f, "A", ""); /* rule (c) */
}

static void test_open_window_durable(void **state)
{
    fx *f = *state;
    add(f, "A", ACTIVE, T0, PLAIN);
    add(f, "B", ACTIVE, T0 + S(1), PLAIN);
    commit(f);
    add(f, "C", ACTIVE, T0 + S(2), PLAIN); /* not committed: lost by the "crash" */
    fx_close(f);
    fx_open(f);
    sw_state_engine_stats s;
    sw_state_engine_get_stats(f->e, &s);
    assert_int_equal(s.open_windows, 1);
    sw_state_checkpoint cp;
    bool found;
    sw_err err;
    assert_true(sw_state_checkpoint_get(f->st, "0", &cp, &found, &err));
    assert_true(found);
    assert_string_equal(cp.offset, "2");
    add(f, "D", ACTIVE, T0 + S(3), PLAIN);
    close_commit(f);
    expect_diff(f, "A,B,D", "");
}

static void test_window_cap(void **state)
{
    fx *f = *state;
    f->o.max_window_records = 2;
    f->o.semantics = SW_RESCAN_FULL;
    fx_reopen_engine(f);
    seed(f, "A");
    /* (seed's own window had 1 record.) A full rescan cut at 2 records
     * must not resolve A although A is not among the first two. */
    add(f, "B", ACTIVE, T0 + S(86400), SNAP);
    add(f, "C", ACTIVE, T0 + S(86400), SNAP);
    add(f, "A", ACTIVE, T0 + S(86400), SNAP);
    commit(f);
    expect_diff(f, "B,C", "");
    sw_state_engine_stats s;
    sw_state_engine_get_stats(f->e, &s);
    assert_int_equal(s.windows_capped, 1);
    close_commit(f);
    expect_no_diff(f); /* A: already in S, continuation */
}

static void test_sweep_ttl(void **state)
{
    fx *f = *state;
    add_ex(f, "r/old@1", "A", ACTIVE, T0, PLAIN, false, T0, NULL);
    close_commit(f);
    add_ex(f, "r/open@2", "A", ACTIVE, T0, PLAIN, false, SW_TIME_UNSET, NULL);
    uint64_t dropped = 0;
    sw_err err;
    sw_time_us now = sw_time_now();
    assert_true(sw_state_engine_sweep(f->e, now, S(3600), &dropped, &err));
    assert_int_equal(dropped, 0); /* applied just now */
    assert_true(sw_state_engine_sweep(f->e, now + S(7200), S(3600), &dropped, &err));
    assert_int_equal(dropped, 1); /* r/old; r/open has an open window */
    bool found = true;
    assert_true(sw_state_image_get(f->st, "r/old@1", NULL, NULL, &found, &err));
    assert_false(found);
    /* Dropped: a new scan is a first scan again. */
    cJSON_Delete(next_diff(f));
    add_ex(f, "r/old@1", "A", ACTIVE, T0 + S(1), PLAIN, false, SW_TIME_UNSET, NULL);
    close_commit(f);
    cJSON *d = NULL;
    int n = 0;
    while ((d = next_diff(f)) != NULL) {
        n++;
        cJSON_Delete(d);
    }
    assert_int_equal(n, 2); /* r/open and r/old again */
}

struct tags_seen {
    size_t n_tags;
    char first[32];
};

static bool tags_cb(void *ctx, const sw_state_image_info *info)
{
    struct tags_seen *t = ctx;
    t->n_tags = info->n_tags;
    snprintf(t->first, sizeof t->first, "%s", info->n_tags > 0 ? info->tags[0] : "");
    return true;
}

static void test_untagged_rescan_keeps_tags(void **state)
{
    fx *f = *state;
    add_ex(f, IMG, "A", ACTIVE, T0, PLAIN, false, T0, "v1");
    close_commit(f);
    add_ex(f, IMG, "B", ACTIVE, T0 + S(86400), PLAIN, false, T0 + S(86400), NULL);
    close_commit(f);
    struct tags_seen t = {0};
    bool found = false;
    sw_err err;
    assert_true(sw_state_image_get(f->st, IMG, tags_cb, &t, &found, &err));
    assert_true(found);
    assert_int_equal(t.n_tags, 1);
    assert_string_equal(t.first, "v1");
}

static size_t count_lines(const char *path, char *last, size_t n)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char line[4096];
    size_t count = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        count++;
        snprintf(last, n, "%s", line);
    }
    fclose(fp);
    return count;
}

static void test_diff_log_exactly_once(void **state)
{
    fx *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s.difflog", f->dir);
    unlink(path);
    f->o.diff_log = path;
    fx_reopen_engine(f);
    add_ex(f, "r/a@1", "A", ACTIVE, T0, PLAIN, false, T0, NULL);
    close_commit(f);
    add_ex(f, "r/b@1", "B", ACTIVE, T0, PLAIN, false, T0, NULL);
    close_commit(f);
    char last[4096];
    assert_int_equal(count_lines(path, last, sizeof last), 2);
    assert_non_null(strstr(last, "r/b@1"));
    /* A crash after the commit, before the line reached the file: */
    FILE *fp = fopen(path, "r+");
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fclose(fp);
    assert_int_equal(truncate(path, size - (long)strlen(last) + 10), 0); /* torn line */
    fx_reopen_engine(f);
    assert_int_equal(count_lines(path, last, sizeof last), 2);
    assert_non_null(strstr(last, "r/b@1"));
    /* A restart with nothing missing writes nothing. */
    fx_reopen_engine(f);
    fx_reopen_engine(f);
    assert_int_equal(count_lines(path, last, sizeof last), 2);
    unlink(path);
    f->o.diff_log = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_scan_notify_and_record_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_scan_baseline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_split_by_quiet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decider_latest_scan_and_tie, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_snapshot_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_mixed_not_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_clean_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_and_delta_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continuation_never_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchanged_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_baseline_until, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diff_basis_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_back_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_entry_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_by_event_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_bounded_by_batch_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_bounded_restart_between_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_by_wall_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_window_durable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_diff_log_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untagged_rescan_keeps_tags, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
