/*
 * Interop of the sender: what sw_amqp_send writes to a second hub is read by Microsoft's
 * @azure/event-hubs consumer (tests/sdk/sender-interop.mjs) with the same bodies, byte for
 * byte, in order (binary with every byte value, JSON text, an empty body, 64 KiB).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu_harness.h"
#include "scanwatch/amqp.h"
#include "scanwatch/log.h"

#define NMSG 4
#define BIG (64 * 1024)

static char *to_hex(const unsigned char *b, size_t n)
{
    char *h = malloc(2 * n + 1);
    for (size_t i = 0; i < n; i++) {
        snprintf(h + 2 * i, 3, "%02x", b[i]);
    }
    h[2 * n] = '\0';
    return h;
}

static void test_js_sdk_reads_what_we_send(void **state)
{
    (void)state;
    emu e;
    const char *args[] = {"--hub", "eh1:4", "--hub", "route:4", NULL};
    assert_true(emu_start(&e, args));
    char cs[256];
    snprintf(cs, sizeof cs,
             "Endpoint=sb://localhost:%d;SharedAccessKeyName=RootManageSharedAccessKey;"
             "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;EntityPath=eh1",
             e.port);
    sw_amqp_options o;
    sw_amqp_options_default(&o);
    o.connection_string = cs;
    sw_err err;
    sw_amqp_client *c = sw_amqp_client_new(&o, &err);
    if (c == NULL) {
        fail_msg("client: %s", err.msg);
    }
    unsigned char bin[256];
    for (int i = 0; i < 256; i++) {
        bin[i] = (unsigned char)i;
    }
    static const char json[] = "{\"image\":\"reg.io/app@sha256:ab\",\"severity\":\"High\"}";
    unsigned char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) {
        big[i] = (unsigned char)('a' + i % 26);
    }
    sw_amqp_out out[NMSG] = {{bin, sizeof bin}, {json, sizeof json - 1}, {"", 0}, {big, BIG}};
    if (!sw_amqp_send(c, "route", "2", out, NMSG, &err)) {
        fail_msg("send: %s", err.msg);
    }
    sw_amqp_client_free(c);

    const char *src = getenv("SW_SOURCE_DIR");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s/tests/sdk' && node sender-interop.mjs --port %d --hub route --partition 2 "
             "--count %d",
             src != NULL ? src : ".", e.port, NMSG);
    FILE *js = popen(cmd, "r");
    assert_non_null(js);
    static char line[4 * BIG];
    int n = 0;
    while (fgets(line, sizeof line, js) != NULL) {
        cJSON *j = cJSON_Parse(line);
        if (j == NULL) {
            continue;
        }
        if (n >= NMSG) {
            fail_msg("more events than sent");
        }
        char *want = to_hex(out[n].body, out[n].len);
        const cJSON *body = cJSON_GetObjectItemCaseSensitive(j, "body");
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
        if (!cJSON_IsString(body) || strcmp(body->valuestring, want) != 0) {
            fail_msg("event %d: body differs (%zu bytes sent)", n, out[n].len);
        }
        assert_true(cJSON_IsNumber(seq));
        assert_int_equal((int)seq->valuedouble, n);
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "pkey")));
        free(want);
        cJSON_Delete(j);
        n++;
    }
    int rc = pclose(js);
    if (rc != 0 || n != NMSG) {
        fail_msg("node sender-interop.mjs failed (status %d, %d events); is node installed and "
                 "`npm ci` run in tests/sdk?",
                 rc, n);
    }
    free(big);
    emu_stop(&e);
}

int main(void)
{
    sw_log_set_level(SW_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_js_sdk_reads_what_we_send),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
