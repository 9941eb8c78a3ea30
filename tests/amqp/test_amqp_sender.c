/*
 * Integration tests of the Event Hubs sender (sw_amqp_send) against
 * scanwatch-emulator (started per test on ephemeral loopback ports; faults
 * injected through its control channel). What was sent is read back with a
 * receiving client and checked body by body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "emu_harness.h"
#include "scanwatch/amqp.h"
#include "scanwatch/log.h"

#define KEY_NAME "RootManageSharedAccessKey"
#define KEY "SAS_KEY_VALUE"
#define BODY_MAX 64

/* Events received by a reading client (bodies truncated to BODY_MAX - 1). */
typedef struct rx {
    pthread_mutex_t mu;
    char (*body)[BODY_MAX];
    int64_t *seq;
    int n, cap;
    sw_amqp_client *client;
} rx;

static void on_event(void *vc, const sw_amqp_event *ev)
{
    rx *r = vc;
    pthread_mutex_lock(&r->mu);
    if (r->n < r->cap) {
        size_t len = ev->body_len < BODY_MAX - 1 ? ev->body_len : BODY_MAX - 1;
        memcpy(r->body[r->n], ev->body, len);
        r->body[r->n][len] = '\0';
        r->seq[r->n] = ev->sequence_number;
        r->n++;
    }
    pthread_mutex_unlock(&r->mu);
    sw_amqp_settle(r->client, ev->partition, ev->sequence_number);
}

static rx *rx_new(int cap)
{
    rx *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->body = calloc((size_t)cap, sizeof *r->body);
    r->seq = calloc((size_t)cap, sizeof *r->seq);
    r->cap = cap;
    return r;
}

static void rx_free(rx *r)
{
    if (r == NULL) {
        return;
    }
    sw_amqp_client_free(r->client);
    pthread_mutex_destroy(&r->mu);
    free(r->body);
    free(r->seq);
    free(r);
}

static int rx_count(rx *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits until n events arrived, then 200 ms more to see any extra ones. */
static int rx_wait(rx *r, int n, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms && rx_count(r) < n; waited += 20) {
        usleep(20000);
    }
    usleep(200000);
    return rx_count(r);
}

static void emu_connstr(const emu *e, char *buf, size_t size)
{
    snprintf(buf, size,
             "Endpoint=sb://localhost:%d;SharedAccessKeyName=" KEY_NAME ";SharedAccessKey=" KEY
             ";UseDevelopmentEmulator=true",
             e->port);
}

static void opts_for(sw_amqp_options *o, const char *connstr, const char *hub)
{
    sw_amqp_options_default(o);
    o->connection_string = connstr;
    o->eventhub = hub;
    o->backoff_min_us = 100000;
    o->backoff_max_us = 1000000;
    o->operation_timeout_us = 5 * SW_US_PER_SEC;
}

/* A client that only sends: no callbacks, no partitions. */
static sw_amqp_client *sender_client(const emu *e, const char *hub)
{
    char cs[512];
    emu_connstr(e, cs, sizeof cs);
    sw_amqp_options o;
    opts_for(&o, cs, hub);
    sw_err err;
    sw_amqp_client *c = sw_amqp_client_new(&o, &err);
    if (c == NULL) {
        fail_msg("sender client: %s", err.msg);
    }
    return c;
}

/* A client reading partition of hub from the start into a new rx. */
static rx *reader(const emu *e, const char *hub, const char *partition, int cap)
{
    char cs[512];
    emu_connstr(e, cs, sizeof cs);
    rx *r = rx_new(cap);
    sw_amqp_options o;
    opts_for(&o, cs, hub);
    o.cb.ctx = r;
    o.cb.on_event = on_event;
    sw_err err;
    r->client = sw_amqp_client_new(&o, &err);
    if (r->client == NULL) {
        fail_msg("reader client: %s", err.msg);
    }
    sw_amqp_position start;
    assert_true(sw_amqp_position_parse("earliest", &start, &err));
    if (!sw_amqp_add_partition(r->client, partition, &start, &err)) {
        fail_msg("add partition: %s", err.msg);
    }
    return r;
}

/* n messages "<prefix>-<i>" for i in [first, first + n). */
typedef struct msgs {
    sw_amqp_out *out;
    char (*text)[BODY_MAX];
    size_t n;
} msgs;

static void msgs_make(msgs *m, const char *prefix, size_t first, size_t n)
{
    m->out = calloc(n, sizeof *m->out);
    m->text = calloc(n, sizeof *m->text);
    m->n = n;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(m->text[i], BODY_MAX, "%s-%zu", prefix, first + i);
        m->out[i].body = m->text[i];
        m->out[i].len = (size_t)len;
    }
}

static void msgs_free(msgs *m)
{
    free(m->out);
    free(m->text);
}

static void send_ok(sw_amqp_client *c, const char *hub, const char *p, const msgs *m)
{
    sw_err err;
    if (!sw_amqp_send(c, hub, p, m->out, m->n, &err)) {
        fail_msg("send to %s/%s: %s", hub != NULL ? hub : "(own hub)", p, err.msg);
    }
}

/* Index i of body "<prefix>-<i>", or -1 for another prefix. */
static long body_index(const char *body, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (strncmp(body, prefix, pl) != 0 || body[pl] != '-') {
        return -1;
    }
    char *end = NULL;
    long v = strtol(body + pl + 1, &end, 10);
    return (end != NULL && *end == '\0') ? v : -1;
}

/* ---------------------------------------------------------------- tests */

/* 1000 messages to partition 2 of a second hub, by a client with no receiving partitions. */
static void test_send_other_hub_1000(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", "--hub", "eh2:4", NULL};
    assert_true(emu_start(&e, args));
    sw_amqp_client *snd = sender_client(&e, "eh1");
    msgs m;
    msgs_make(&m, "m", 0, 1000);
    send_ok(snd, "eh2", "2", &m);
    sw_amqp_send_stats st;
    sw_amqp_get_send_stats(snd, &st);
    assert_int_equal(st.sent, 1000);
    assert_int_equal(st.attaches, 1);
    char reply[256];
    assert_true(emu_cmd(&e, reply, sizeof reply, "info eh2"));
    if (strstr(reply, "p2=0..999/") == NULL || strstr(reply, "p0=0..-1/") == NULL) {
        fail_msg("unexpected hub state: %s", reply);
    }
    assert_true(emu_cmd(&e, reply, sizeof reply, "info eh1"));
    if (strstr(reply, "p2=0..-1/") == NULL) {
        fail_msg("own hub got events: %s", reply);
    }
    rx *r = reader(&e, "eh2", "2", 2000);
    assert_int_equal(rx_wait(r, 1000, 10000), 1000);
    for (int i = 0; i < 1000; i++) {
        assert_string_equal(r->body[i], m.text[i]);
        assert_int_equal(r->seq[i], i);
    }
    rx_free(r);
    msgs_free(&m);
    sw_amqp_client_free(snd);
    emu_stop(&e);
}

/* hub NULL = the client's own hub; the same client reads them back. */
static void test_send_own_hub(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", NULL};
    assert_true(emu_start(&e, args));
    rx *r = reader(&e, "eh1", "0", 100);
    msgs m;
    msgs_make(&m, "own", 0, 20);
    send_ok(r->client, NULL, "0", &m);
    /* a second call reuses the cached link */
    send_ok(r->client, NULL, "0", &m);
    sw_amqp_send_stats st;
    sw_amqp_get_send_stats(r->client, &st);
    assert_int_equal(st.attaches, 1);
    assert_int_equal(rx_wait(r, 40, 10000), 40);
    for (int i = 0; i < 40; i++) {
        assert_string_equal(r->body[i], m.text[i % 20]);
    }
    rx_free(r);
    msgs_free(&m);
    emu_stop(&e);
}

/* A message over the link's max-message-size fails before anything is sent; one at it passes. */
static void test_send_too_large(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", NULL};
    assert_true(emu_start(&e, args));
    sw_amqp_client *snd = sender_client(&e, "eh1");
    size_t big = 1048576 - 8 + 1; /* 8 bytes of data-section header: 1 byte over */
    char *buf = calloc(1, big);
    memset(buf, 'x', big);
    sw_amqp_out out[2] = {{"small", 5}, {buf, big}};
    sw_err err;
    assert_false(sw_amqp_send(snd, NULL, "1", out, 2, &err));
    assert_int_equal(err.code, SW_E_TOO_LARGE);
    if (strstr(err.msg, "message 1 of 2 is 1048577 bytes") == NULL ||
        strstr(err.msg, "1048576") == NULL || strstr(err.msg, "eh1/Partitions/1") == NULL) {
        fail_msg("unclear error: %s", err.msg);
    }
    char reply[256];
    assert_true(emu_cmd(&e, reply, sizeof reply, "info"));
    if (strstr(reply, "p1=0..-1/") == NULL) {
        fail_msg("something was sent: %s", reply);
    }
    out[1].len = big - 1; /* exactly the limit */
    if (!sw_amqp_send(snd, NULL, "1", out, 2, &err)) {
        fail_msg("send at the limit: %s", err.msg);
    }
    assert_true(emu_cmd(&e, reply, sizeof reply, "info"));
    if (strstr(reply, "p1=0..1/") == NULL) {
        fail_msg("expected 2 events: %s", reply);
    }
    /* bad arguments are named */
    assert_false(sw_amqp_send(snd, NULL, "a/b", out, 1, &err));
    assert_int_equal(err.code, SW_E_INVALID_ARG);
    assert_false(sw_amqp_send(snd, "nohub", "0", out, 1, &err));
    if (err.code != SW_E_NOT_FOUND || strstr(err.msg, "amqp:not-found") == NULL) {
        fail_msg("unknown hub: %s %s", sw_code_name(err.code), err.msg);
    }
    free(buf);
    sw_amqp_client_free(snd);
    emu_stop(&e);
}

/*
 * A rejected outcome fails the call with the service's condition. The emulator reads a body
 * that is itself an encoded AMQP data section as a batch (the JS SDK's format), so a truncated
 * one is a malformed message to it: rejected with amqp:decode-error.
 */
static void test_send_rejected(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", NULL};
    assert_true(emu_start(&e, args));
    sw_amqp_client *snd = sender_client(&e, "eh1");
    static const unsigned char bad[] = {0x00, 0x53, 0x75, 0xb0, 0xff, 0xff, 0xff, 0xff};
    sw_amqp_out out[2] = {{"fine", 4}, {bad, sizeof bad}};
    sw_err err;
    assert_false(sw_amqp_send(snd, NULL, "0", out, 2, &err));
    if (strstr(err.msg, "message 1 of 2 to eh1/Partitions/0 rejected: amqp:decode-error") == NULL) {
        fail_msg("unexpected error: %s", err.msg);
    }
    assert_false(err.retriable);
    /* the link stays usable */
    if (!sw_amqp_send(snd, NULL, "0", out, 1, &err)) {
        fail_msg("send after a rejection: %s", err.msg);
    }
    sw_amqp_client_free(snd);
    emu_stop(&e);
}

typedef struct send_job {
    sw_amqp_client *c;
    const char *hub, *partition;
    msgs m;
    bool ok;
    sw_err err;
    int64_t took_us;
} send_job;

static void *send_thread(void *arg)
{
    send_job *j = arg;
    int64_t t0 = sw_time_mono_us();
    j->ok = sw_amqp_send(j->c, j->hub, j->partition, j->m.out, j->m.n, &j->err);
    j->took_us = sw_time_mono_us() - t0;
    return NULL;
}

/*
 * The service detaches the sender with com.microsoft:server-busy in the middle of a send: the
 * call still succeeds and every message arrives at least once, in order apart from resent
 * ones (in-flight messages without an outcome are sent again on the new link).
 */
static void test_send_server_busy_detach(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", NULL};
    assert_true(emu_start(&e, args));
    sw_amqp_client *snd = sender_client(&e, "eh1");
    enum { N = 5000 };
    send_job j = {.c = snd, .hub = NULL, .partition = "2"};
    msgs_make(&j.m, "b", 0, N);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_thread, &j), 0);
    sw_amqp_send_stats st;
    for (int i = 0; i < 5000; i++) {
        sw_amqp_get_send_stats(snd, &st);
        if (st.sent >= 100) {
            break;
        }
        usleep(200);
    }
    char reply[256];
    assert_true(emu_cmd(&e, reply, sizeof reply, "detach 2 com.microsoft:server-busy busy"));
    pthread_join(th, NULL);
    if (!j.ok) {
        fail_msg("send failed: %s", j.err.msg);
    }
    sw_amqp_get_send_stats(snd, &st);
    if (strcmp(reply, "ok links=1") != 0 || st.attaches != 2 || st.sent < N) {
        fail_msg("detach did not hit the send: %s, attaches %llu, sent %llu", reply,
                 (unsigned long long)st.attaches, (unsigned long long)st.sent);
    }
    rx *r = reader(&e, "eh1", "2", 2 * N);
    int got = rx_wait(r, N, 20000);
    assert_true(got >= N);
    char *seen = calloc(N, 1);
    long last = -1;
    int dups = 0;
    for (int i = 0; i < got; i++) {
        long k = body_index(r->body[i], "b");
        assert_true(k >= 0 && k < N);
        if (seen[k]) {
            dups++;
        } else if (k < last) {
            fail_msg("message %ld arrived for the first time after %ld", k, last);
        }
        seen[k] = 1;
        last = k > last ? k : last;
    }
    for (int k = 0; k < N; k++) {
        if (!seen[k]) {
            fail_msg("message %d lost", k);
        }
    }
    print_message("server-busy detach during a send of %d: %d duplicates, %llu transfers resent\n",
                  N, dups, (unsigned long long)st.resent);
    assert_true(dups <= (int)st.resent);
    free(seen);
    rx_free(r);
    msgs_free(&j.m);
    sw_amqp_client_free(snd);
    emu_stop(&e);
}

/* The connection drops in the middle of a send: the client reconnects and the call completes. */
static void test_send_connection_drop(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", NULL};
    assert_true(emu_start(&e, args));
    sw_amqp_client *snd = sender_client(&e, "eh1");
    enum { N = 5000 };
    send_job j = {.c = snd, .hub = NULL, .partition = "0"};
    msgs_make(&j.m, "d", 0, N);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, send_thread, &j), 0);
    sw_amqp_send_stats st;
    for (int i = 0; i < 5000; i++) {
        sw_amqp_get_send_stats(snd, &st);
        if (st.sent >= 100) {
            break;
        }
        usleep(200);
    }
    char reply[256];
    assert_true(emu_cmd(&e, reply, sizeof reply, "drop-connections"));
    pthread_join(th, NULL);
    if (!j.ok) {
        fail_msg("send failed: %s", j.err.msg);
    }
    sw_amqp_get_send_stats(snd, &st);
    if (strcmp(reply, "ok connections=1") != 0 || st.attaches != 2) {
        fail_msg("the drop did not hit the send: %s, attaches %llu", reply,
                 (unsigned long long)st.attaches);
    }
    rx *r = reader(&e, "eh1", "0", 2 * N);
    int got = rx_wait(r, N, 20000);
    char *seen = calloc(N, 1);
    for (int i = 0; i < got; i++) {
        long k = body_index(r->body[i], "d");
        assert_true(k >= 0 && k < N);
        seen[k] = 1;
    }
    for (int k = 0; k < N; k++) {
        if (!seen[k]) {
            fail_msg("message %d lost", k);
        }
    }
    print_message("connection drop during a send of %d: %d received, %llu transfers resent\n", N,
                  got, (unsigned long long)st.resent);
    free(seen);
    rx_free(r);
    msgs_free(&j.m);
    sw_amqp_client_free(snd);
    emu_stop(&e);
}

/* Attaches refused with server-busy again and again: the call gives up after 3 x
 * operation_timeout with a timeout error that names the last condition. */
static void test_send_gives_up(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", NULL};
    assert_true(emu_start(&e, args));
    char reply[256];
    assert_true(emu_cmd(&e, reply, sizeof reply, "refuse-attach 1000 com.microsoft:server-busy"));
    char cs[512];
    emu_connstr(&e, cs, sizeof cs);
    sw_amqp_options o;
    opts_for(&o, cs, "eh1");
    o.operation_timeout_us = 400000;
    o.backoff_min_us = 50000;
    o.backoff_max_us = 200000;
    sw_err err;
    sw_amqp_client *snd = sw_amqp_client_new(&o, &err);
    assert_non_null(snd);
    msgs m;
    msgs_make(&m, "g", 0, 3);
    int64_t t0 = sw_time_mono_us();
    assert_false(sw_amqp_send(snd, NULL, "0", m.out, m.n, &err));
    int64_t took = sw_time_mono_us() - t0;
    assert_int_equal(err.code, SW_E_TIMEOUT);
    if (strstr(err.msg, "0 of 3 messages accepted within 1200 ms") == NULL ||
        strstr(err.msg, "com.microsoft:server-busy") == NULL) {
        fail_msg("unexpected error: %s", err.msg);
    }
    assert_true(took >= 1200000 && took < 3000000);
    /* once the service takes attaches again, the same client sends */
    assert_true(emu_cmd(&e, reply, sizeof reply, "refuse-attach 0"));
    if (!sw_amqp_send(snd, NULL, "0", m.out, m.n, &err)) {
        fail_msg("send after the refusals: %s", err.msg);
    }
    msgs_free(&m);
    sw_amqp_client_free(snd);
    emu_stop(&e);
}

/* Two threads send to the same target at once (one cached link): each one's order is kept. */
static void test_send_concurrent(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", NULL};
    assert_true(emu_start(&e, args));
    sw_amqp_client *snd = sender_client(&e, "eh1");
    enum { N = 800 };
    send_job a = {.c = snd, .partition = "1"}, b = {.c = snd, .partition = "1"},
             o = {.c = snd, .partition = "3"};
    msgs_make(&a.m, "A", 0, N);
    msgs_make(&b.m, "B", 0, N);
    msgs_make(&o.m, "O", 0, N);
    pthread_t ta, tb, to;
    assert_int_equal(pthread_create(&ta, NULL, send_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, send_thread, &b), 0);
    assert_int_equal(pthread_create(&to, NULL, send_thread, &o), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(to, NULL);
    if (!a.ok || !b.ok || !o.ok) {
        fail_msg("send failed: %s / %s / %s", a.err.msg, b.err.msg, o.err.msg);
    }
    sw_amqp_send_stats st;
    sw_amqp_get_send_stats(snd, &st);
    assert_int_equal(st.attaches, 2);
    assert_int_equal(st.sent, 3 * N);
    rx *r = reader(&e, "eh1", "1", 4 * N);
    assert_int_equal(rx_wait(r, 2 * N, 10000), 2 * N);
    long next_a = 0, next_b = 0;
    for (int i = 0; i < 2 * N; i++) {
        long ka = body_index(r->body[i], "A"), kb = body_index(r->body[i], "B");
        if (ka >= 0) {
            assert_int_equal(ka, next_a++);
        } else {
            assert_int_equal(kb, next_b++);
        }
    }
    assert_int_equal(next_a, N);
    assert_int_equal(next_b, N);
    rx *r3 = reader(&e, "eh1", "3", 2 * N);
    assert_int_equal(rx_wait(r3, N, 10000), N);
    for (int i = 0; i < N; i++) {
        assert_string_equal(r3->body[i], o.m.text[i]);
    }
    rx_free(r3);
    rx_free(r);
    msgs_free(&a.m);
    msgs_free(&b.m);
    msgs_free(&o.m);
    sw_amqp_client_free(snd);
    emu_stop(&e);
}

/*
 * Throughput figure (docs/benchmarks.md "send"): 1 KB bodies in calls of 100 messages, one
 * caller, against the emulator on loopback. Printed, not asserted (speed is no unit test).
 * SW_SEND_BENCH_N sets the message count (default 20000), SW_SEND_BENCH_BATCH the messages
 * per call (1..100, default 100).
 */
static void test_send_throughput(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", "--retain-count", "0", "--retain-bytes", "0", NULL};
    assert_true(emu_start(&e, args));
    sw_amqp_client *snd = sender_client(&e, "eh1");
    const char *env = getenv("SW_SEND_BENCH_N");
    long total = env != NULL ? strtol(env, NULL, 10) : 20000;
    const char *benv = getenv("SW_SEND_BENCH_BATCH");
    long batch = benv != NULL ? strtol(benv, NULL, 10) : 100;
    enum { BATCH_MAX = 100, SIZE = 1024 };
    if (batch < 1 || batch > BATCH_MAX) {
        batch = BATCH_MAX;
    }
    if (total < batch) {
        total = batch;
    }
    total -= total % batch;
    static char bodies[BATCH_MAX][SIZE];
    sw_amqp_out out[BATCH_MAX];
    for (int i = 0; i < BATCH_MAX; i++) {
        memset(bodies[i], 'a' + i % 26, SIZE);
        out[i].body = bodies[i];
        out[i].len = SIZE;
    }
    sw_err err;
    /* warm-up: connection, token, attach */
    assert_true(sw_amqp_send(snd, NULL, "0", out, (size_t)batch, &err));
    int64_t t0 = sw_time_mono_us();
    for (long done = 0; done < total; done += batch) {
        if (!sw_amqp_send(snd, NULL, "0", out, (size_t)batch, &err)) {
            fail_msg("send: %s", err.msg);
        }
    }
    int64_t us = sw_time_mono_us() - t0;
    print_message("send throughput: %ld messages of %d bytes in calls of %ld: %.0f messages/s "
                  "(%.1f MB/s), %.2f ms per call\n",
                  total, SIZE, batch, (double)total * 1e6 / (double)us,
                  (double)total * SIZE / (double)us, (double)us / 1000.0 / (double)(total / batch));
    char reply[256];
    assert_true(emu_cmd(&e, reply, sizeof reply, "info"));
    char want[64];
    snprintf(want, sizeof want, "p0=0..%ld/", total + batch - 1);
    if (strstr(reply, want) == NULL) {
        fail_msg("expected %s in %s", want, reply);
    }
    sw_amqp_client_free(snd);
    emu_stop(&e);
}

int main(void)
{
    sw_log_set_level(SW_LOG_ERROR);
    /* SW_TEST_FILTER=test_send_throughput runs only the figure (docs/benchmarks.md) */
    const char *filter = getenv("SW_TEST_FILTER");
    if (filter != NULL && *filter != '\0') {
        cmocka_set_test_filter(filter);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_other_hub_1000),     cmocka_unit_test(test_send_own_hub),
        cmocka_unit_test(test_send_too_large),          cmocka_unit_test(test_send_rejected),
        cmocka_unit_test(test_send_server_busy_detach), cmocka_unit_test(test_send_connection_drop),
        cmocka_unit_test(test_send_gives_up),           cmocka_unit_test(test_send_concurrent),
        cmocka_unit_test(test_send_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
