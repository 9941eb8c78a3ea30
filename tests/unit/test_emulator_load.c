/*
 * --load: file-backed events (indexed, re-read on delivery) must be the same
 * bytes, offsets and sequence numbers as the in-RAM events of the same bodies;
 * the timed format sets enqueued times and rejects bad or decreasing ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "load.h"
#include "store.h"

/* Writes n bytes to a new temp file; the caller unlinks path. */
static void write_file(char *path, const char *text, size_t n)
{
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

static emu_store *new_store(const char *hub, size_t retain_count)
{
    sw_err err;
    emu_store *s = emu_store_new(retain_count, 0, &err);
    assert_non_null(s);
    assert_true(emu_store_add_hub_spec(s, hub, &err));
    return s;
}

/* Every event of a in b: same seq, offset, enqueued time and encoded bytes. */
static void assert_same_events(emu_partition *pa, emu_partition *pb)
{
    assert_int_equal(pa->begin_seq, pb->begin_seq);
    assert_int_equal(pa->next_seq, pb->next_seq);
    assert_int_equal(pa->next_offset, pb->next_offset);
    assert_int_equal(pa->last_enq_ms, pb->last_enq_ms);
    for (int64_t seq = pa->begin_seq; seq < pa->next_seq; seq++) {
        const emu_event *b = emu_partition_get(pb, seq);
        assert_non_null(b);
        size_t blen = b->len;
        int64_t boff = b->offset, benq = b->enqueued_ms;
        unsigned char *copy = malloc(blen);
        assert_non_null(copy);
        memcpy(copy, b->bytes, blen);
        const emu_event *a = emu_partition_get(pa, seq);
        assert_non_null(a);
        if (a->len != blen || memcmp(a->bytes, copy, blen) != 0) {
            print_error("partition %s seq %lld: file-backed %zu bytes vs in-RAM %zu bytes\n",
                        pa->id, (long long)seq, a->len, blen);
        }
        assert_int_equal(a->seq, seq);
        assert_int_equal(a->offset, boff);
        assert_int_equal(a->enqueued_ms, benq);
        assert_memory_equal(a->bytes, copy, blen);
        free(copy);
    }
}

static void test_timed_file_matches_ram(void **state)
{
    (void)state;
    /* CRLF, an empty line, a NUL inside a body, and a last line without newline. */
    static const char text[] = "2026-01-31T08:00:00.000Z\t{\"n\":0}\n"
                               "2026-01-31T08:00:00.500Z\t{\"n\":1}\r\n"
                               "\n"
                               "2026-01-31T08:00:01Z\t{\"n\":2,\"z\":\"a\0b\"}\n"
                               "2026-01-31T08:00:01.000Z\t{\"n\":3}\n"
                               "2026-01-31T09:00:02+01:00\t{\"n\":4}";
    static const struct {
        const char *body;
        size_t len;
        int64_t ms;
    } want[] = {
        {"{\"n\":0}", 7, 1769846400000LL},
        {"{\"n\":1}", 7, 1769846400500LL},
        {"{\"n\":2,\"z\":\"a\0b\"}", 17, 1769846401000LL},
        {"{\"n\":3}", 7, 1769846401000LL},
        {"{\"n\":4}", 7, 1769846402000LL},
    };
    char path[] = "/tmp/emu-load-XXXXXX";
    write_file(path, text, sizeof text - 1);
    for (int keyed = 0; keyed < 2; keyed++) {
        emu_store *fs = new_store("h:2", 0), *rs = new_store("h:2", 0);
        emu_load_options o = {.path = path, .format = EMU_LOAD_TIMED, .key = keyed ? "k" : NULL};
        sw_err err;
        long long events = 0;
        if (!emu_load_file(fs, &o, &events, &err)) {
            fail_msg("load: %s", err.msg);
        }
        assert_int_equal(events, 5);
        emu_hub *fh = emu_store_hub_at(fs, 0), *rh = emu_store_hub_at(rs, 0);
        for (size_t i = 0; i < 5; i++) {
            emu_partition *p = emu_hub_route(rh, o.key, keyed ? 1 : 0);
            assert_true(emu_partition_append_body(rs, p, want[i].body, want[i].len, o.key,
                                                  keyed ? 1 : 0, want[i].ms, &err));
        }
        for (int i = 0; i < 2; i++) {
            assert_same_events(&fh->partitions[i], &rh->partitions[i]);
        }
        /* Round-robin: 0, 2, 4 in partition 0; seeks see the file's times. */
        if (!keyed) {
            emu_partition *p0 = &fh->partitions[0];
            assert_int_equal(p0->next_seq, 3);
            assert_int_equal(emu_partition_seek_time(p0, 1769846400000LL, false), 1);
            assert_int_equal(emu_partition_seek_time(p0, 1769846401000LL, true), 1);
            assert_int_equal(emu_partition_seek_time(p0, 1769846402000LL, false), 3);
            assert_int_equal(emu_partition_seek_offset(p0, 0, false), 1);
        }
        emu_store_free(fs);
        emu_store_free(rs);
    }
    unlink(path);
}

static void test_plain_file_and_retention(void **state)
{
    (void)state;
    char path[] = "/tmp/emu-load-XXXXXX";
    char text[4096];
    size_t n = 0;
    for (int i = 0; i < 50; i++) {
        n += (size_t)snprintf(text + n, sizeof text - n, "{\"event\":%d}\n", i);
    }
    write_file(path, text, n);
    emu_store *s = new_store("h:1", 10);
    emu_load_options o = {.path = path, .format = EMU_LOAD_PLAIN, .partition = "0"};
    sw_err err;
    long long events = 0;
    assert_true(emu_load_file(s, &o, &events, &err));
    assert_int_equal(events, 50);
    emu_partition *p = &emu_store_hub_at(s, 0)->partitions[0];
    assert_int_equal(p->begin_seq, 40);
    assert_int_equal(p->count, 10);
    assert_null(emu_partition_get(p, 39));
    const emu_event *e = emu_partition_get(p, 49);
    assert_non_null(e);
    assert_non_null(memmem(e->bytes, e->len, "{\"event\":49}", 12));
    /* Live appends after a load go to RAM and keep numbering. */
    assert_true(emu_partition_append_body(s, p, "live", 4, NULL, 0, 1, &err));
    e = emu_partition_get(p, 50);
    assert_non_null(e);
    assert_non_null(memmem(e->bytes, e->len, "live", 4));
    assert_int_equal(e->enqueued_ms, p->ring[(p->head + p->count - 2) % p->cap].enqueued_ms);
    /* A file that shrank after indexing: the event cannot be read, no crash. */
    assert_int_equal(truncate(path, 10), 0);
    assert_null(emu_partition_get(p, 45));
    emu_store_free(s);
    unlink(path);
}

/* Loads text as a timed file into "h:2"; returns the error message ("" when it loaded). */
static void load_error(const char *text, emu_load_format fmt, char *msg, size_t size)
{
    char path[] = "/tmp/emu-load-XXXXXX";
    write_file(path, text, strlen(text));
    emu_store *s = new_store("h:2", 0);
    emu_load_options o = {.path = path, .format = fmt};
    sw_err err;
    long long events = 0;
    bool ok = emu_load_file(s, &o, &events, &err);
    snprintf(msg, size, "%s", ok ? "" : err.msg);
    emu_store_free(s);
    unlink(path);
}

static void test_timed_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want1, *want2;
    } cases[] = {
        {"2026-01-31T08:00:00Z\t{}\nyesterday\t{}\n", "line 2", "bad enqueued time 'yesterday'"},
        {"{\"no\":\"tab\"}\n", "line 1", "expected <RFC 3339 enqueued time><TAB><body>"},
        {"2026-01-31T08:00:00Z\t\n", "line 1", "empty body"},
        /* Round-robin over 2 partitions: line 3 goes where line 1 went, and is earlier. */
        {"2026-01-31T08:00:05Z\ta\n2026-01-31T08:00:00Z\tb\n2026-01-31T08:00:04Z\tc\n", "line 3",
         "before 2026-01-31T08:00:05.000000Z of the previous event of partition 0"},
        {"2026-13-31T08:00:00Z\tx\n", "line 1", "bad enqueued time"},
    };
    char msg[600];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        load_error(cases[i].text, EMU_LOAD_TIMED, msg, sizeof msg);
        if (strstr(msg, cases[i].want1) == NULL || strstr(msg, cases[i].want2) == NULL) {
            fail_msg("case %zu: error '%s', want '%s' and '%s'", i, msg, cases[i].want1,
                     cases[i].want2);
        }
    }
    /* Decreasing across partitions is fine: each partition is non-decreasing. */
    load_error("2026-01-31T08:00:05Z\ta\n2026-01-31T08:00:00Z\tb\n2026-01-31T08:00:06Z\tc\n",
               EMU_LOAD_TIMED, msg, sizeof msg);
    assert_string_equal(msg, "");
    /* The 1 MiB event limit, in both formats. */
    size_t big = EMU_MAX_MESSAGE_SIZE + 30;
    char *text = malloc(big + 2);
    assert_non_null(text);
    memcpy(text, "2026-01-31T08:00:00Z\t", 21);
    memset(text + 21, 'x', big - 21);
    text[big] = '\n';
    text[big + 1] = '\0';
    load_error(text, EMU_LOAD_TIMED, msg, sizeof msg);
    assert_non_null(strstr(msg, "line 1: longer than the 1048576 byte event limit"));
    memset(text, 'y', big);
    load_error(text, EMU_LOAD_PLAIN, msg, sizeof msg);
    assert_non_null(strstr(msg, "line 1: longer than the 1048576 byte event limit"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timed_file_matches_ram),
        cmocka_unit_test(test_plain_file_and_retention),
        cmocka_unit_test(test_timed_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
