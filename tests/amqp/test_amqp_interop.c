/*
 * Interop: events published by Microsoft's @azure/event-hubs (tests/sdk/amqp-interop.mjs)
 * arrive in scanwatch's client byte-exact: body bytes, partition key, and the same
 * sequence number, offset and enqueued time the SDK's own consumer sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "emu_harness.h"
#include "scanwatch/amqp.h"
#include "scanwatch/log.h"

#define MAX_EV 64

typedef struct got {
    char partition[8];
    int64_t seq;
    char offset[32];
    int64_t enq_ms;
    char pkey[64];
    bool has_pkey;
    char hex[1024];
    sw_amqp_body_kind kind;
} got;

typedef struct ctx {
    pthread_mutex_t mu;
    got ev[MAX_EV];
    int n;
} ctx;

static void on_event(void *vc, const sw_amqp_event *ev)
{
    ctx *c = vc;
    pthread_mutex_lock(&c->mu);
    if (c->n < MAX_EV) {
        got *g = &c->ev[c->n++];
        snprintf(g->partition, sizeof g->partition, "%s", ev->partition);
        g->seq = ev->sequence_number;
        snprintf(g->offset, sizeof g->offset, "%s", ev->offset);
        g->enq_ms = ev->enqueued_time / 1000;
        g->has_pkey = ev->partition_key != NULL;
        snprintf(g->pkey, sizeof g->pkey, "%s", g->has_pkey ? ev->partition_key : "");
        g->kind = ev->body_kind;
        size_t n = ev->body_len < 500 ? ev->body_len : 500;
        for (size_t i = 0; i < n; i++) {
            snprintf(g->hex + 2 * i, 3, "%02x", ev->body[i]);
        }
        g->hex[2 * n] = '\0';
    }
    pthread_mutex_unlock(&c->mu);
}

static void test_js_sdk_events_arrive_byte_exact(void **state)
{
    emu e;
    assert_true(emu_start(&e, NULL));
    const char *src = getenv("SW_SOURCE_DIR");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s/tests/sdk' && node amqp-interop.mjs --port %d",
             src != NULL ? src : ".", e.port);
    FILE *js = popen(cmd, "r");
    assert_non_null(js);
    cJSON *want[MAX_EV];
    int nwant = 0;
    char line[4096];
    while (fgets(line, sizeof line, js) != NULL && nwant < MAX_EV) {
        cJSON *j = cJSON_Parse(line);
        if (j != NULL) {
            want[nwant++] = j;
        }
    }
    int rc = pclose(js);
    if (rc != 0 || nwant != 6) {
        fail_msg("node amqp-interop.mjs failed (status %d, %d events); is node installed and "
                 "`npm ci` run in tests/sdk?",
                 rc, nwant);
    }

    ctx *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    char cs[256];
    snprintf(cs, sizeof cs,
             "Endpoint=sb://localhost:%d;SharedAccessKeyName=RootManageSharedAccessKey;"
             "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;EntityPath=eh1",
             e.port);
    sw_amqp_options o;
    sw_amqp_options_default(&o);
    o.connection_string = cs;
    o.cb.ctx = c;
    o.cb.on_event = on_event;
    sw_err err;
    sw_amqp_client *cl = sw_amqp_client_new(&o, &err);
    assert_non_null(cl);
    for (int p = 0; p < 4; p++) {
        char id[4];
        snprintf(id, sizeof id, "%d", p);
        assert_true(sw_amqp_add_partition(cl, id, NULL, &err));
    }
    for (int i = 0; i < 250; i++) {
        pthread_mutex_lock(&c->mu);
        int n = c->n;
        pthread_mutex_unlock(&c->mu);
        if (n >= nwant) {
            break;
        }
        usleep(20000);
    }
    sw_amqp_client_free(cl);
    assert_int_equal(c->n, nwant);
    for (int i = 0; i < nwant; i++) {
        const char *part = cJSON_GetObjectItem(want[i], "partition")->valuestring;
        int64_t seq = (int64_t)cJSON_GetObjectItem(want[i], "seq")->valuedouble;
        got *g = NULL;
        for (int k = 0; k < c->n; k++) {
            if (strcmp(c->ev[k].partition, part) == 0 && c->ev[k].seq == seq) {
                g = &c->ev[k];
            }
        }
        if (g == NULL) {
            fail_msg("event %s/%lld seen by the SDK is missing", part, (long long)seq);
        }
        assert_string_equal(g->hex, cJSON_GetObjectItem(want[i], "body")->valuestring);
        assert_string_equal(g->offset, cJSON_GetObjectItem(want[i], "offset")->valuestring);
        assert_true(g->enq_ms == (int64_t)cJSON_GetObjectItem(want[i], "enq")->valuedouble);
        cJSON *pk = cJSON_GetObjectItem(want[i], "pkey");
        if (cJSON_IsString(pk)) {
            assert_true(g->has_pkey);
            assert_string_equal(g->pkey, pk->valuestring);
        } else {
            assert_false(g->has_pkey);
        }
        /* the AMQP-value message comes as a string body, the others as data */
        bool is_value = strcmp(g->hex, "616d71702d76616c75652074657874") == 0;
        assert_int_equal(g->kind, is_value ? SW_AMQP_BODY_STRING : SW_AMQP_BODY_DATA);
        cJSON_Delete(want[i]);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
    emu_stop(&e);
}

int main(void)
{
    sw_log_set_level(SW_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_js_sdk_events_arrive_byte_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
