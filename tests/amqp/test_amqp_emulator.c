/*
 * Integration tests of the Event Hubs client against scanwatch-emulator
 * (started per test on ephemeral loopback ports; faults injected through its
 * control channel).
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
#include "scanwatch/sas.h"

#define KEY_NAME "RootManageSharedAccessKey"
#define KEY "SAS_KEY_VALUE"
#define MAX_EV 4096

typedef struct rec {
    char partition[8];
    int64_t seq;
    char offset[32];
    sw_time_us enq;
    char body[256];
    size_t body_len;
    char pkey[64];
    bool has_pkey;
} rec;

typedef struct ctx {
    pthread_mutex_t mu;
    rec ev[MAX_EV];
    int n;
    int errors, fatal;
    sw_err last_err;
    int64_t err_times[16];
    int closed;
    sw_err closed_err;
    int opened;
    int detached; /* on_partition_detached calls */
    sw_err detached_err;
    int64_t auto_settle_limit; /* settle events with seq <= this as they arrive */
    sw_amqp_client *client;
} ctx;

static void on_event(void *vc, const sw_amqp_event *ev)
{
    ctx *c = vc;
    pthread_mutex_lock(&c->mu);
    if (c->n < MAX_EV) {
        rec *r = &c->ev[c->n++];
        snprintf(r->partition, sizeof r->partition, "%s", ev->partition);
        r->seq = ev->sequence_number;
        snprintf(r->offset, sizeof r->offset, "%s", ev->offset);
        r->enq = ev->enqueued_time;
        r->body_len = ev->body_len < sizeof r->body ? ev->body_len : sizeof r->body - 1;
        memcpy(r->body, ev->body, r->body_len);
        r->body[r->body_len] = '\0';
        r->has_pkey = ev->partition_key != NULL;
        if (r->has_pkey) {
            snprintf(r->pkey, sizeof r->pkey, "%s", ev->partition_key);
        }
    }
    int64_t lim = c->auto_settle_limit;
    pthread_mutex_unlock(&c->mu);
    if (c->client != NULL) {
        sw_amqp_settle(c->client, ev->partition,
                       ev->sequence_number <= lim ? ev->sequence_number : lim);
    }
}

static void on_error(void *vc, const char *partition, const sw_err *err, bool fatal)
{
    ctx *c = vc;
    pthread_mutex_lock(&c->mu);
    if (c->errors < 16) {
        c->err_times[c->errors] = sw_time_mono_us();
    }
    c->errors++;
    c->fatal += fatal;
    c->last_err = *err;
    pthread_mutex_unlock(&c->mu);
}

static void on_closed(void *vc, const char *partition, const sw_err *err)
{
    ctx *c = vc;
    pthread_mutex_lock(&c->mu);
    c->closed++;
    c->closed_err = *err;
    pthread_mutex_unlock(&c->mu);
}

static void on_detached(void *vc, const char *partition, const sw_err *err)
{
    ctx *c = vc;
    pthread_mutex_lock(&c->mu);
    c->detached++;
    c->detached_err = *err;
    pthread_mutex_unlock(&c->mu);
}

static void on_open(void *vc, const char *partition)
{
    ctx *c = vc;
    pthread_mutex_lock(&c->mu);
    c->opened++;
    pthread_mutex_unlock(&c->mu);
}

static ctx *ctx_new(void)
{
    ctx *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    c->auto_settle_limit = INT64_MAX;
    return c;
}

static void opts_for(sw_amqp_options *o, ctx *c, const char *connstr)
{
    sw_amqp_options_default(o);
    o->connection_string = connstr;
    o->eventhub = "eh1";
    o->backoff_min_us = 100000;
    o->backoff_max_us = 1000000;
    o->operation_timeout_us = 5 * SW_US_PER_SEC;
    o->cb.ctx = c;
    o->cb.on_event = on_event;
    o->cb.on_error = on_error;
    o->cb.on_partition_closed = on_closed;
    o->cb.on_partition_open = on_open;
    o->cb.on_partition_detached = on_detached;
}

static void emu_connstr(const emu *e, char *buf, size_t size, const char *key)
{
    snprintf(buf, size,
             "Endpoint=sb://localhost:%d;SharedAccessKeyName=" KEY_NAME
             ";SharedAccessKey=%s;UseDevelopmentEmulator=true",
             e->port, key);
}

static int count(ctx *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Waits until pred(c) or timeout; returns pred's final value. */
static bool wait_until(ctx *c, bool (*pred)(ctx *, int), int arg, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (pred(c, arg)) {
            return true;
        }
        usleep(20000);
    }
    return pred(c, arg);
}

static bool have_events(ctx *c, int n)
{
    return count(c) >= n;
}

static bool have_errors(ctx *c, int n)
{
    pthread_mutex_lock(&c->mu);
    bool ok = c->errors >= n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static bool have_closed(ctx *c, int n)
{
    pthread_mutex_lock(&c->mu);
    bool ok = c->closed >= n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static bool have_opened(ctx *c, int n)
{
    pthread_mutex_lock(&c->mu);
    bool ok = c->opened >= n;
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static void publish(emu *e, const char *partition, int n, const char *prefix)
{
    char reply[256];
    for (int i = 0; i < n; i++) {
        if (!emu_cmd(e, reply, sizeof reply, "publish %s %s-%d", partition, prefix, i)) {
            fail_msg("publish failed: %s", reply);
        }
    }
}

static sw_amqp_client *start_client(ctx *c, const sw_amqp_options *o)
{
    sw_err err;
    sw_amqp_client *cl = sw_amqp_client_new(o, &err);
    if (cl == NULL) {
        fail_msg("client: %s", err.msg);
    }
    c->client = cl;
    return cl;
}

static void add(sw_amqp_client *cl, const char *p, const char *pos)
{
    sw_amqp_position sp;
    sw_err err;
    assert_true(sw_amqp_position_parse(pos, &sp, &err));
    if (!sw_amqp_add_partition(cl, p, &sp, &err)) {
        fail_msg("add %s: %s", p, err.msg);
    }
}

/* Checks that partition p's records are seq first..last, each once, in order. */
static void assert_contiguous(ctx *c, const char *p, int64_t first, int64_t last)
{
    int64_t want = first;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->ev[i].partition, p) != 0) {
            continue;
        }
        if (c->ev[i].seq != want) {
            pthread_mutex_unlock(&c->mu);
            fail_msg("partition %s: event %d has seq %lld, expected %lld", p, i,
                     (long long)c->ev[i].seq, (long long)want);
        }
        want++;
    }
    pthread_mutex_unlock(&c->mu);
    if (want != last + 1) {
        fail_msg("partition %s: got seqs %lld..%lld, expected ..%lld", p, (long long)first,
                 (long long)want - 1, (long long)last);
    }
}

static void finish(emu *e, ctx *c, sw_amqp_client *cl)
{
    sw_amqp_client_free(cl);
    c->client = NULL;
    emu_stop(e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---------------------------------------------------------------- tests */

/* SAS success, UseDevelopmentEmulator=true (plain AMQP), discovery, all partitions. */
static void test_sas_discovery_all_partitions(void **state)
{
    emu e;
    const char *args[] = {"--hub", "eh1:4", NULL};
    assert_true(emu_start(&e, args));
    for (int p = 0; p < 4; p++) {
        char pid[4];
        snprintf(pid, sizeof pid, "%d", p);
        publish(&e, pid, 5, pid);
    }
    ctx *c = ctx_new();
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    char **ids = NULL;
    size_t nids = 0;
    sw_err err;
    if (!sw_amqp_get_partition_ids(cl, &ids, &nids, &err)) {
        fail_msg("partition ids: %s", err.msg);
    }
    assert_int_equal(nids, 4);
    for (size_t i = 0; i < nids; i++) {
        add(cl, ids[i], "earliest");
    }
    assert_true(wait_until(c, have_events, 20, 10000));
    for (size_t i = 0; i < nids; i++) {
        assert_contiguous(c, ids[i], 0, 4);
        sw_amqp_partition_info info;
        if (!sw_amqp_get_partition_info(cl, ids[i], &info, &err)) {
            fail_msg("partition info: %s", err.msg);
        }
        assert_string_equal(info.partition, ids[i]);
        assert_int_equal(info.last_enqueued_sequence_number, 4);
        assert_false(info.is_empty);
        assert_true(info.last_enqueued_time != SW_TIME_UNSET);
    }
    sw_amqp_free_partition_ids(ids, nids);
    assert_string_equal(c->ev[0].body, "0-0");
    sw_amqp_stats st;
    sw_amqp_get_stats(cl, &st);
    assert_int_equal(st.events, 20);
    assert_int_equal(c->fatal, 0);
    usleep(100000);
    sw_amqp_get_stats(cl, &st);
    assert_int_equal(st.settled, 20);
    finish(&e, c, cl);
}

/* A wrong key: the CBS put-token is rejected, fatally, without the key in the message. */
static void test_sas_rejected(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    ctx *c = ctx_new();
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, "WRONGKEYVALUE");
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_errors, 1, 5000));
    assert_int_equal(c->fatal, 1);
    assert_int_equal(c->last_err.code, SW_E_AUTH);
    if (strstr(c->last_err.msg, "rejected") == NULL || strstr(c->last_err.msg, "WRONGKEY")) {
        fail_msg("unexpected error text: %s", c->last_err.msg);
    }
    char **ids;
    size_t n;
    sw_err err;
    assert_false(sw_amqp_get_partition_ids(cl, &ids, &n, &err));
    assert_int_equal(err.code, SW_E_AUTH);
    finish(&e, c, cl);
}

/* Short-lived tokens are re-put before they expire; receiving goes on past several lifetimes. */
static void test_token_refresh(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    ctx *c = ctx_new();
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    sw_amqp_options o;
    opts_for(&o, c, cs);
    o.sas_token_lifetime_us = 2 * SW_US_PER_SEC;
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    publish(&e, "0", 1, "a");
    assert_true(wait_until(c, have_events, 1, 5000));
    sleep(5); /* 2.5 lifetimes */
    publish(&e, "0", 1, "b");
    assert_true(wait_until(c, have_events, 2, 5000));
    sw_amqp_stats st;
    sw_amqp_get_stats(cl, &st);
    if (st.token_puts < 4) {
        fail_msg("expected >= 4 put-tokens in 5 s with 2 s tokens, got %llu",
                 (unsigned long long)st.token_puts);
    }
    assert_int_equal(st.reattaches, 0);
    assert_int_equal(st.connects, 1);
    assert_int_equal(c->errors, 0);
    finish(&e, c, cl);
}

static void test_start_positions(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    publish(&e, "0", 10, "old");
    usleep(20000);
    sw_time_us mid = sw_time_now();
    usleep(20000);
    publish(&e, "1", 3, "x");
    publish(&e, "2", 3, "y");
    publish(&e, "2", 3, "z"); /* partition 2: seqs 0..5 */
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);

    /* earliest on 0, after a checkpoint on 2, enqueued-time on 0 via a 2nd client, latest on 3 */
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_events, 10, 5000));
    assert_contiguous(c, "0", 0, 9);
    /* checkpoint = event seq 2 of partition 2 */
    char off2[32] = "";
    {
        ctx *c2 = ctx_new();
        sw_amqp_options o2;
        opts_for(&o2, c2, cs);
        sw_amqp_client *cl2 = start_client(c2, &o2);
        add(cl2, "2", "earliest");
        assert_true(wait_until(c2, have_events, 6, 5000));
        snprintf(off2, sizeof off2, "%s", c2->ev[2].offset);
        sw_amqp_client_free(cl2);
        pthread_mutex_destroy(&c2->mu);
        free(c2);
    }
    sw_amqp_position after;
    sw_err err;
    assert_true(sw_amqp_position_after(&after, off2, 2, &err));
    assert_true(sw_amqp_add_partition(cl, "2", &after, &err));
    assert_true(wait_until(c, have_events, 13, 5000));
    assert_contiguous(c, "2", 3, 5);

    add(cl, "3", "latest");
    assert_true(wait_until(c, have_opened, 3, 5000));
    usleep(100000);
    publish(&e, "3", 2, "new");
    assert_true(wait_until(c, have_events, 15, 5000));
    assert_contiguous(c, "3", 0, 1);
    finish(&e, c, cl);
    (void)mid;
}

static void test_start_enqueued_time(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    publish(&e, "1", 4, "before");
    usleep(50000);
    char when[SW_TIME_BUF];
    sw_time_format(sw_time_now(), when, sizeof when);
    usleep(50000);
    publish(&e, "1", 3, "after");
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "1", when);
    assert_true(wait_until(c, have_events, 3, 5000));
    usleep(200000);
    assert_int_equal(count(c), 3);
    assert_contiguous(c, "1", 4, 6);
    assert_string_equal(c->ev[0].body, "after-0");
    finish(&e, c, cl);
}

/* A second consumer with the same owner level takes the partition; the first is told. */
static void test_epoch_takeover(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *a = ctx_new(), *b = ctx_new();
    sw_amqp_options oa, ob;
    opts_for(&oa, a, cs);
    opts_for(&ob, b, cs);
    oa.owner_level = 0;
    ob.owner_level = 0;
    sw_amqp_client *ca = start_client(a, &oa);
    add(ca, "0", "earliest");
    publish(&e, "0", 3, "one");
    assert_true(wait_until(a, have_events, 3, 5000));
    sw_amqp_client *cb = start_client(b, &ob);
    add(cb, "0", "earliest");
    assert_true(wait_until(a, have_closed, 1, 5000));
    assert_int_equal(a->closed_err.code, SW_E_OWNERSHIP_LOST);
    assert_non_null(strstr(a->closed_err.msg, "amqp:link:stolen"));
    publish(&e, "0", 2, "two");
    assert_true(wait_until(b, have_events, 5, 5000));
    usleep(300000);
    assert_int_equal(count(a), 3); /* the old owner does not fight back */
    sw_amqp_stats st;
    sw_amqp_get_stats(ca, &st);
    assert_int_equal(st.reattaches, 0);
    /* a lower owner level cannot take it back */
    ctx *lo = ctx_new();
    sw_amqp_options ol;
    opts_for(&ol, lo, cs);
    ol.owner_level = -1;
    sw_amqp_client *cl = start_client(lo, &ol);
    add(cl, "0", "earliest");
    assert_true(wait_until(lo, have_closed, 1, 5000));
    assert_int_not_equal(lo->closed_err.code, SW_OK);
    sw_amqp_client_free(cl);
    pthread_mutex_destroy(&lo->mu);
    free(lo);
    sw_amqp_client_free(cb);
    pthread_mutex_destroy(&b->mu);
    free(b);
    finish(&e, a, ca);
}

/*
 * Connection dropped mid-stream: the client reconnects and resumes after the
 * last durable (settled) event; nothing is lost and nothing handed out is
 * handed out again.
 */
static void test_drop_resumes_from_durable(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    publish(&e, "0", 100, "m");
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *c = ctx_new();
    c->auto_settle_limit = 49; /* events 50.. are "not durable yet" */
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_events, 100, 5000));
    usleep(100000);
    char reply[128];
    assert_true(emu_cmd(&e, reply, sizeof reply, "drop-connections"));
    assert_true(wait_until(c, have_errors, 1, 5000));
    publish(&e, "0", 50, "n");
    pthread_mutex_lock(&c->mu);
    c->auto_settle_limit = INT64_MAX;
    pthread_mutex_unlock(&c->mu);
    assert_true(wait_until(c, have_events, 150, 10000));
    usleep(300000);
    assert_int_equal(count(c), 150);
    assert_contiguous(c, "0", 0, 149);
    sw_amqp_stats st;
    sw_amqp_get_stats(cl, &st);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.duplicates, 0); /* the reattach started after seq 49... */
    assert_int_equal(st.rebound, 50);   /* ...so 50..99 came again, bound, not handed out */
    sw_amqp_settle(cl, "0", 149);
    usleep(200000);
    sw_amqp_get_stats(cl, &st);
    assert_int_equal(st.settled, 150);
    finish(&e, c, cl);
}

/* server-busy on attach: jittered exponential backoff, then receiving. Also detach-forced and
 * connection:forced. */
static void test_server_busy_backoff_and_forced(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    char reply[128];
    assert_true(emu_cmd(&e, reply, sizeof reply, "refuse-attach 3 com.microsoft:server-busy"));
    publish(&e, "0", 5, "a");
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    o.backoff_min_us = 200000;
    o.backoff_max_us = 2000000;
    sw_amqp_client *cl = start_client(c, &o);
    int64_t t0 = sw_time_mono_us();
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_events, 5, 10000));
    int64_t took = sw_time_mono_us() - t0;
    assert_int_equal(c->errors, 3);
    assert_int_equal(c->last_err.code, SW_E_BUSY);
    /* each refused attach is a per-partition detach, then one open */
    pthread_mutex_lock(&c->mu);
    assert_int_equal(c->detached, 3);
    assert_non_null(strstr(c->detached_err.msg, "com.microsoft:server-busy"));
    assert_int_equal(c->opened, 1);
    pthread_mutex_unlock(&c->mu);
    /* delays are in [d/2, d] for d = 200, 400, 800 ms */
    int64_t gap1 = c->err_times[1] - c->err_times[0], gap2 = c->err_times[2] - c->err_times[1];
    if (gap1 < 100000 || gap2 < 200000 || took < 700000) {
        fail_msg("backoff too short: gaps %lld, %lld us, total %lld us", (long long)gap1,
                 (long long)gap2, (long long)took);
    }
    assert_true(emu_cmd(&e, reply, sizeof reply, "detach 0 amqp:link:detach-forced"));
    assert_true(wait_until(c, have_errors, 4, 5000));
    pthread_mutex_lock(&c->mu);
    assert_int_equal(c->detached, 4);
    assert_non_null(strstr(c->detached_err.msg, "amqp:link:detach-forced"));
    pthread_mutex_unlock(&c->mu);
    publish(&e, "0", 5, "b");
    assert_true(wait_until(c, have_events, 10, 5000));
    pthread_mutex_lock(&c->mu);
    assert_int_equal(c->opened, 2); /* re-attached */
    pthread_mutex_unlock(&c->mu);
    assert_true(emu_cmd(&e, reply, sizeof reply, "close-connections amqp:connection:forced"));
    assert_true(wait_until(c, have_errors, 5, 5000));
    assert_non_null(strstr(c->last_err.msg, "amqp:connection:forced"));
    publish(&e, "0", 5, "c");
    assert_true(wait_until(c, have_events, 15, 5000));
    usleep(200000);
    pthread_mutex_lock(&c->mu);
    assert_int_equal(c->detached, 4); /* a connection loss is on_error(NULL), not per partition */
    assert_int_equal(c->opened, 3);
    pthread_mutex_unlock(&c->mu);
    assert_contiguous(c, "0", 0, 14);
    assert_int_equal(c->fatal, 0);
    finish(&e, c, cl);
}

/* Non-retryable link conditions stop the partition with the condition text. */
static void test_not_found_is_fatal_for_partition(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "99", "earliest");
    assert_true(wait_until(c, have_closed, 1, 5000));
    assert_int_not_equal(c->closed_err.code, SW_OK);
    assert_false(c->closed_err.retriable);
    if (strstr(c->closed_err.msg, "amqp:not-found") == NULL &&
        strstr(c->closed_err.msg, "argument-out-of-range") == NULL) {
        fail_msg("expected the condition name, got: %s", c->closed_err.msg);
    }
    finish(&e, c, cl);
}

/* An Entra ID style provider for the test: a fixed bearer token, CBS type jwt. */
static bool jwt_get(void *self, const char *scope, char **tok, sw_time_us *exp, sw_err *err)
{
    if (strcmp(scope, "https://eventhubs.azure.net/.default") != 0) {
        return sw_err_set(err, SW_E_AUTH, "unexpected scope %s", scope);
    }
    *tok = strdup((const char *)self);
    *exp = sw_time_now() + 3600 * SW_US_PER_SEC;
    return *tok != NULL;
}

/* No key in the connection string: tokens come from the provider, sent as type jwt. */
static void test_entra_jwt_provider(void **state)
{
    emu e;
    const char *args[] = {"--bearer-token", "header.payload.signature", NULL};
    assert_true(emu_start(&e, args));
    publish(&e, "0", 3, "j");
    char cs[256];
    snprintf(cs, sizeof cs, "Endpoint=sb://localhost:%d;EntityPath=eh1;UseDevelopmentEmulator=true",
             e.port);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    o.eventhub = NULL; /* from EntityPath */
    sw_token_provider tp = {
        .type = SW_TOKEN_TYPE_JWT, .self = (void *)"header.payload.signature", .get = jwt_get};
    o.token_provider = &tp;
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_events, 3, 5000));
    char **ids;
    size_t n;
    sw_err err;
    if (!sw_amqp_get_partition_ids(cl, &ids, &n, &err)) {
        fail_msg("partition ids with jwt: %s", err.msg);
    }
    assert_int_equal(n, 4);
    sw_amqp_free_partition_ids(ids, n);
    assert_int_equal(c->errors, 0);
    finish(&e, c, cl);

    /* a wrong bearer token is rejected, fatally */
    assert_true(emu_start(&e, args));
    snprintf(cs, sizeof cs, "Endpoint=sb://localhost:%d;EntityPath=eh1;UseDevelopmentEmulator=true",
             e.port);
    c = ctx_new();
    opts_for(&o, c, cs);
    o.eventhub = NULL;
    tp.self = (void *)"not.the.token";
    o.token_provider = &tp;
    cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_errors, 1, 5000));
    assert_int_equal(c->fatal, 1);
    assert_int_equal(c->last_err.code, SW_E_AUTH);
    finish(&e, c, cl);
}

/* A pre-made SharedAccessSignature in the connection string is sent as is. */
static void test_connection_string_signature(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    publish(&e, "1", 2, "s");
    char aud[128];
    snprintf(aud, sizeof aud, "sb://localhost:%d/eh1", e.port);
    sw_err err;
    char *tok = sw_sas_sign(aud, KEY_NAME, KEY, sw_time_now() / SW_US_PER_SEC + 600, &err);
    assert_non_null(tok);
    char cs[1024];
    snprintf(cs, sizeof cs,
             "Endpoint=sb://localhost:%d;SharedAccessSignature=%s;EntityPath=eh1;"
             "UseDevelopmentEmulator=true",
             e.port, tok);
    free(tok);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "1", "earliest");
    assert_true(wait_until(c, have_events, 2, 5000));
    assert_int_equal(c->errors, 0);
    finish(&e, c, cl);
}

/* Settings that would weaken transport security are refused outside emulator mode. */
static void test_insecure_settings_refused(void **state)
{
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c,
             "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v");
    sw_err err;
    assert_true(sw_amqp_options_check(&o, &err)); /* check-config's check, no connection */
    o.tls_verify = false;
    assert_null(sw_amqp_client_new(&o, &err));
    assert_non_null(strstr(err.msg, "tls_verify=false"));
    assert_false(sw_amqp_options_check(&o, &err));
    assert_non_null(strstr(err.msg, "tls_verify=false"));
    o.tls_verify = true;
    o.tls = SW_AMQP_TLS_OFF;
    assert_null(sw_amqp_client_new(&o, &err));
    assert_non_null(strstr(err.msg, "tls=off"));
    assert_false(sw_amqp_options_check(&o, &err));
    assert_non_null(strstr(err.msg, "tls=off"));
    o.tls = SW_AMQP_TLS_AUTO;
    o.eventhub = NULL;
    assert_null(sw_amqp_client_new(&o, &err));
    assert_non_null(strstr(err.msg, "EntityPath"));
    assert_false(sw_amqp_options_check(&o, &err));
    assert_non_null(strstr(err.msg, "EntityPath"));
    o.eventhub = "eh1";
    o.ca_file = "/nonexistent/ca.pem";
    assert_false(sw_amqp_options_check(&o, &err));
    assert_non_null(strstr(err.msg, "ca_file"));
    o.ca_file = NULL;
    o.connection_string = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey=s3cr3tKEY=";
    assert_false(sw_amqp_options_check(&o, &err));
    assert_non_null(strstr(err.msg, "SharedAccessKeyName"));
    assert_null(strstr(err.msg, "s3cr3tKEY"));
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static const char *cert_dir(void)
{
    const char *d = getenv("SW_EMU_CERTS");
    if (d == NULL) {
        fail_msg("SW_EMU_CERTS is not set (ctest sets it; the emulator_test_certs fixture "
                 "makes the certificates)");
    }
    return d;
}

/* TLS on the emulator's port: verified against the test CA given as ca_file, with SNI/name. */
static void test_tls_with_test_ca(void **state)
{
    char cert[512], key[512], ca[512];
    snprintf(cert, sizeof cert, "%s/server.pem", cert_dir());
    snprintf(key, sizeof key, "%s/server.key", cert_dir());
    snprintf(ca, sizeof ca, "%s/ca.pem", cert_dir());
    emu e;
    const char *args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    assert_true(emu_start(&e, args));
    publish(&e, "0", 3, "t");
    char cs[512];
    /* no UseDevelopmentEmulator: TLS with full verification, as against Azure */
    snprintf(cs, sizeof cs,
             "Endpoint=sb://localhost:%d/;SharedAccessKeyName=" KEY_NAME ";SharedAccessKey=" KEY
             ";EntityPath=eh1",
             e.port);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    o.ca_file = ca;
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_events, 3, 10000));
    assert_int_equal(c->errors, 0);
    finish(&e, c, cl);
}

/* Without the test CA the server is unknown: refused, fatally, saying why. */
static void test_tls_unknown_ca_refused(void **state)
{
    char cert[512], key[512];
    snprintf(cert, sizeof cert, "%s/server.pem", cert_dir());
    snprintf(key, sizeof key, "%s/server.key", cert_dir());
    emu e;
    const char *args[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    assert_true(emu_start(&e, args));
    publish(&e, "0", 3, "t");
    char cs[512];
    snprintf(cs, sizeof cs,
             "Endpoint=sb://localhost:%d/;SharedAccessKeyName=" KEY_NAME ";SharedAccessKey=" KEY
             ";EntityPath=eh1",
             e.port);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_errors, 1, 10000));
    usleep(300000);
    assert_int_equal(c->fatal, 1);
    assert_int_equal(count(c), 0);
    if (strstr(c->last_err.msg, "certificate") == NULL) {
        fail_msg("expected a certificate error, got: %s", c->last_err.msg);
    }
    sw_amqp_stats st;
    sw_amqp_get_stats(cl, &st);
    assert_int_equal(st.connects, 0);
    finish(&e, c, cl);
}

/* A certificate for another name is refused even when its CA is trusted (name check via SNI host).
 */
static void test_tls_wrong_host_refused(void **state)
{
    char cert[512], key[512], ca[512];
    snprintf(cert, sizeof cert, "%s/server.pem", cert_dir());
    snprintf(key, sizeof key, "%s/server.key", cert_dir());
    snprintf(ca, sizeof ca, "%s/ca.pem", cert_dir());
    emu e;
    const char *args[] = {"--tls-cert", cert, "--tls-key", key, "--host", "127.0.0.2", NULL};
    assert_true(emu_start(&e, args));
    char cs[512];
    /* 127.0.0.2 is loopback too, but not a name in the certificate */
    snprintf(cs, sizeof cs,
             "Endpoint=sb://127.0.0.2:%d/;SharedAccessKeyName=" KEY_NAME ";SharedAccessKey=" KEY
             ";EntityPath=eh1",
             e.port);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    o.ca_file = ca;
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_errors, 1, 10000));
    sw_amqp_stats st;
    sw_amqp_get_stats(cl, &st);
    assert_int_equal(st.connects, 0);
    assert_int_equal(c->fatal, 1);
    if (strstr(c->last_err.msg, "certificate") == NULL) {
        fail_msg("expected a certificate name error, got: %s", c->last_err.msg);
    }
    finish(&e, c, cl);
}

typedef struct flaky {
    int calls;
} flaky;

/* Fails the first call as a transient error (as an unreachable token endpoint would). */
static bool flaky_get(void *self, const char *scope, char **tok, sw_time_us *exp, sw_err *err)
{
    flaky *f = self;
    if (f->calls++ == 0) {
        return sw_err_set(err, SW_E_HTTP, "token endpoint unreachable (test)");
    }
    *tok = strdup("header.payload.signature");
    *exp = sw_time_now() + 3600 * SW_US_PER_SEC;
    return *tok != NULL;
}

/* A transient token failure is retried with backoff, not fatal. */
static void test_token_provider_transient_failure(void **state)
{
    emu e;
    const char *args[] = {"--bearer-token", "header.payload.signature", NULL};
    assert_true(emu_start(&e, args));
    publish(&e, "0", 2, "f");
    char cs[256];
    snprintf(cs, sizeof cs, "Endpoint=sb://localhost:%d;EntityPath=eh1;UseDevelopmentEmulator=true",
             e.port);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    flaky f = {0};
    sw_token_provider tp = {.type = SW_TOKEN_TYPE_JWT, .self = &f, .get = flaky_get};
    o.token_provider = &tp;
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_events, 2, 5000));
    assert_int_equal(c->errors, 1);
    assert_int_equal(c->fatal, 0);
    assert_int_equal(c->last_err.code, SW_E_HTTP);
    finish(&e, c, cl);
}

/* Receiving pauses when max_unsettled events are handed out and not durable; settling resumes it.
 */
static void test_unsettled_bound_and_credit(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    publish(&e, "0", 50, "u");
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *c = ctx_new();
    c->auto_settle_limit = -1; /* nothing becomes durable */
    sw_amqp_options o;
    opts_for(&o, c, cs);
    o.prefetch = 4;
    o.max_unsettled = 10;
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_events, 10, 5000));
    usleep(500000);
    assert_int_equal(count(c), 10);
    pthread_mutex_lock(&c->mu);
    c->auto_settle_limit = INT64_MAX;
    pthread_mutex_unlock(&c->mu);
    sw_amqp_settle(cl, "0", 9);
    assert_true(wait_until(c, have_events, 50, 5000));
    assert_contiguous(c, "0", 0, 49);
    finish(&e, c, cl);
}

static int count_in(ctx *c, const char *partition)
{
    int n = 0;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->n; i++) {
        n += strcmp(c->ev[i].partition, partition) == 0;
    }
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* max_unsettled is one bound over all partitions: two partitions share it equally, so the
 * events held in memory do not grow with the number of partitions. */
static void test_unsettled_shared_by_partitions(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    publish(&e, "0", 30, "a");
    publish(&e, "1", 30, "b");
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *c = ctx_new();
    c->auto_settle_limit = -1; /* nothing becomes durable */
    sw_amqp_options o;
    opts_for(&o, c, cs);
    o.prefetch = 4;
    o.max_unsettled = 12;
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    add(cl, "1", "earliest");
    assert_true(wait_until(c, have_events, 12, 5000));
    usleep(500000);
    assert_int_equal(count(c), 12);
    assert_int_equal(count_in(c, "0"), 6);
    assert_int_equal(count_in(c, "1"), 6);
    pthread_mutex_lock(&c->mu);
    c->auto_settle_limit = INT64_MAX;
    pthread_mutex_unlock(&c->mu);
    sw_amqp_settle(cl, "0", 5);
    sw_amqp_settle(cl, "1", 5);
    assert_true(wait_until(c, have_events, 60, 5000));
    assert_contiguous(c, "0", 0, 29);
    assert_contiguous(c, "1", 0, 29);
    finish(&e, c, cl);
}

/* Frames the client sends, from proton's frame trace (PN_TRACE_FRM) on stderr. */
static char trace_buf[1 << 17];
/*
 * What goes on the wire: SASL ANONYMOUS, OPEN with the namespace host name and the SDKs'
 * 60 s idle timeout, put-token for the partition audience, the receiver's source address,
 * selector filter (ulong descriptor) and com.microsoft:epoch as a long.
 */
static void test_wire_frames(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    publish(&e, "2", 1, "w");
    /* proton traces frames to stderr when PN_TRACE_FRM=1 was set at start: catch them */
    if (getenv("PN_TRACE_FRM") == NULL) {
        fail_msg("run as `test_amqp_emulator --wire` with PN_TRACE_FRM=1 (ctest test_amqp_wire)");
    }
    fflush(stderr);
    int saved = dup(2);
    FILE *tf = tmpfile();
    assert_non_null(tf);
    dup2(fileno(tf), 2);
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    o.owner_level = 7;
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "2", "earliest");
    assert_true(wait_until(c, have_events, 1, 5000));
    sw_amqp_client_free(cl);
    c->client = NULL;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tf);
    size_t n = fread(trace_buf, 1, sizeof trace_buf - 1, tf);
    trace_buf[n] = '\0';
    fclose(tf);
    static const char *const want[] = {
        "@sasl-init(65) [mechanism=:ANONYMOUS",
        "@open(16) [container-id=\"scanwatch-eh1-",
        "hostname=\"localhost\"",
        "idle-time-out=0xea60", /* 60000 ms */
        /* the put-token request: string application properties, amqp-value string token */
        "\\xa1\\x09operation\\xa1\\x09put-token",
        "\\xa1\\x04type\\xa1\\x1fservicebus.windows.net:sastoken",
        "\\xa1\\x04name\\xa1=sb://localhost:",
        "/eh1/ConsumerGroups/$Default/Partitions/2\\x00Sw\\xa1",
        "SharedAccessSignature sr=sb%3A%2F%2Flocalhost%3A",
        "@source(40) [address=\"eh1/ConsumerGroups/$Default/Partitions/2\"",
        ":\"apache.org:selector-filter:string\"=@0x468c00000004\"amqp.annotation.x-opt-offset > "
        "\\x27-1\\x27\"",
        ":\"com.microsoft:epoch\"=7",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (strstr(trace_buf, want[i]) == NULL) {
            fprintf(stderr, "%s\n", trace_buf);
            fail_msg("frame trace lacks: %s", want[i]);
        }
    }
    emu_stop(&e);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* A partition removed and added again (e.g. after a rebalance) restarts at its new position. */
static void test_remove_and_readd(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    publish(&e, "1", 5, "r");
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *c = ctx_new();
    c->auto_settle_limit = -1;
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "1", "earliest");
    assert_true(wait_until(c, have_events, 5, 5000));
    char off1[32];
    snprintf(off1, sizeof off1, "%s", c->ev[1].offset);
    sw_amqp_remove_partition(cl, "1");
    sw_amqp_position after;
    sw_err err;
    assert_true(sw_amqp_position_after(&after, off1, 1, &err));
    assert_true(sw_amqp_add_partition(cl, "1", &after, &err));
    assert_true(wait_until(c, have_events, 8, 5000));
    usleep(300000);
    assert_int_equal(count(c), 8); /* 0..4, then 2..4 again from the new position */
    assert_true(c->ev[5].seq == 2 && c->ev[7].seq == 4);
    assert_int_equal(c->errors, 0);
    finish(&e, c, cl);
}

/* Nothing listening yet: the client keeps retrying with backoff and connects once it is up. */
static void test_connect_retries_until_up(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    int port = e.port;
    emu_stop(&e); /* the port is free again */
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    ctx *c = ctx_new();
    sw_amqp_options o;
    opts_for(&o, c, cs);
    sw_amqp_client *cl = start_client(c, &o);
    add(cl, "0", "earliest");
    assert_true(wait_until(c, have_errors, 2, 5000)); /* refused, retried, refused */
    char portarg[16];
    snprintf(portarg, sizeof portarg, "%d", port);
    const char *args[] = {"--port", portarg, NULL};
    assert_true(emu_start(&e, args));
    assert_int_equal(e.port, port);
    publish(&e, "0", 2, "late");
    assert_true(wait_until(c, have_events, 2, 10000));
    assert_int_equal(c->fatal, 0);
    sw_amqp_stats st;
    sw_amqp_get_stats(cl, &st);
    assert_int_equal(st.connects, 1);
    finish(&e, c, cl);
}

/*
 * Regression (chaos test, issue 9): a poke that came while the client thread was between
 * publishing its new connection and handing it to the proactor woke nothing and left
 * wake_req set, so every later request (here: a partition added once the connection is
 * idle) waited for unrelated traffic -- a partition that never attached. The callers poke
 * as fast as they can while the client starts, many times over.
 */
static void test_poke_while_connecting(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    publish(&e, "1", 1, "late");
    char cs[512];
    emu_connstr(&e, cs, sizeof cs, KEY);
    for (int round = 0; round < 25; round++) {
        ctx *c = ctx_new();
        sw_amqp_options o;
        opts_for(&o, c, cs);
        sw_amqp_client *cl = start_client(c, &o);
        add(cl, "0", "latest");
        /* Settling an empty partition's nothing still posts a request and pokes. */
        int64_t t0 = sw_time_mono_us();
        for (int64_t k = 0; sw_time_mono_us() - t0 < 5000; k++) {
            sw_amqp_settle(cl, "0", k);
        }
        usleep(200000); /* connected, partition 0 attached, nothing more to do */
        add(cl, "1", "earliest");
        if (!wait_until(c, have_events, 1, 3000)) {
            fail_msg("round %d: partition 1 added on an idle connection never delivered", round);
        }
        sw_amqp_client_free(cl);
        pthread_mutex_destroy(&c->mu);
        free(c);
    }
    emu_stop(&e);
}

int main(int argc, char **argv)
{
    sw_log_set_level(SW_LOG_WARN);
    if (argc > 1 && strcmp(argv[1], "--wire") == 0) {
        /* run with PN_TRACE_FRM=1 in the environment (ctest test_amqp_wire) */
        const struct CMUnitTest wire[] = {cmocka_unit_test(test_wire_frames)};
        return cmocka_run_group_tests(wire, NULL, NULL);
    }
    if (getenv("SW_TEST_FILTER") != NULL) {
        cmocka_set_test_filter(getenv("SW_TEST_FILTER"));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sas_discovery_all_partitions),
        cmocka_unit_test(test_sas_rejected),
        cmocka_unit_test(test_token_refresh),
        cmocka_unit_test(test_start_positions),
        cmocka_unit_test(test_start_enqueued_time),
        cmocka_unit_test(test_epoch_takeover),
        cmocka_unit_test(test_drop_resumes_from_durable),
        cmocka_unit_test(test_unsettled_bound_and_credit),
        cmocka_unit_test(test_unsettled_shared_by_partitions),
        cmocka_unit_test(test_remove_and_readd),
        cmocka_unit_test(test_connect_retries_until_up),
        cmocka_unit_test(test_poke_while_connecting),
        cmocka_unit_test(test_server_busy_backoff_and_forced),
        cmocka_unit_test(test_not_found_is_fatal_for_partition),
        cmocka_unit_test(test_entra_jwt_provider),
        cmocka_unit_test(test_token_provider_transient_failure),
        cmocka_unit_test(test_connection_string_signature),
        cmocka_unit_test(test_insecure_settings_refused),
        cmocka_unit_test(test_tls_with_test_ca),
        cmocka_unit_test(test_tls_unknown_ca_refused),
        cmocka_unit_test(test_tls_wrong_host_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
