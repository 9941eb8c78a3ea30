/* Unit tests of amqp/: connection strings, SAS tokens, start positions, the message decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <proton/codec.h>
#include <proton/message.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../amqp/message.h"
#include "scanwatch/amqp.h"
#include "scanwatch/amqp_connstr.h"
#include "scanwatch/sas.h"
#include "scanwatch/settings.h"

#define KEY "c2VjcmV0a2V5PT0="

static void test_connstr_sas_key(void **state)
{
    sw_amqp_connstr cs;
    sw_err err;
    assert_true(sw_amqp_connstr_parse(
        " Endpoint=sb://myns.servicebus.windows.net/;SharedAccessKeyName=Root ; "
        "SharedAccessKey=" KEY ";EntityPath=hub1;",
        &cs, &err));
    assert_string_equal(cs.endpoint, "sb://myns.servicebus.windows.net/");
    assert_string_equal(cs.host, "myns.servicebus.windows.net");
    assert_int_equal(cs.port, 0);
    assert_string_equal(cs.key_name, "Root");
    assert_string_equal(cs.key, KEY); /* '=' inside the value kept: split at the first '=' */
    assert_string_equal(cs.entity_path, "hub1");
    assert_null(cs.sas);
    assert_false(cs.emulator);
    sw_amqp_connstr_free(&cs);
}

static void test_connstr_emulator_and_port(void **state)
{
    sw_amqp_connstr cs;
    sw_err err;
    assert_true(sw_amqp_connstr_parse("Endpoint=sb://localhost:5673;SharedAccessKeyName=k;"
                                      "SharedAccessKey=v;UseDevelopmentEmulator=true",
                                      &cs, &err));
    assert_string_equal(cs.endpoint, "sb://localhost:5673/"); /* port kept for audiences */
    assert_string_equal(cs.host, "localhost");
    assert_int_equal(cs.port, 5673);
    assert_true(cs.emulator);
    sw_amqp_connstr_free(&cs);
}

static void test_connstr_signature_and_entra(void **state)
{
    sw_amqp_connstr cs;
    sw_err err;
    assert_true(sw_amqp_connstr_parse("Endpoint=sb://n.servicebus.windows.net/;"
                                      "SharedAccessSignature=SharedAccessSignature sr=a&sig=b&"
                                      "se=1&skn=c",
                                      &cs, &err));
    assert_string_equal(cs.sas, "SharedAccessSignature sr=a&sig=b&se=1&skn=c");
    sw_amqp_connstr_free(&cs);
    assert_true(sw_amqp_connstr_parse("Endpoint=sb://n.servicebus.windows.net/", &cs, &err));
    assert_null(cs.key);
    assert_null(cs.sas);
    sw_amqp_connstr_free(&cs);
}

/* Each bad string must fail, name the problem, and never echo the secret. */
static void test_connstr_errors_never_echo_key(void **state)
{
    static const struct {
        const char *in;
        const char *expect;
    } cases[] = {
        {"", "empty"},
        {"SharedAccessKeyName=k;SharedAccessKey=TOPSECRET", "Endpoint is missing"},
        {"Endpoint=sb://n/;SharedAccessKeyName=k", "without SharedAccessKey"},
        {"Endpoint=sb://n/;SharedAccessKey=TOPSECRET", "without SharedAccessKeyName"},
        {"Endpoint=sb://n/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET;"
         "SharedAccessSignature=SharedAccessSignature sr=x",
         "cannot be combined"},
        {"Endpoint=sb://n/;TOPSECRET", "part 2 has no '='"},
        {"Endpoint=sb://n/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET;"
         "SharedAccessKey=TOPSECRET",
         "more than once"},
        {"Endpoint=n.servicebus.windows.net;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET",
         "is not a URI"},
        {"Endpoint=sb://n:99999/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET", "invalid port"},
        {"Endpoint=sb:///;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET", "has no host"},
        {"Endpoint=sb://n/;SharedAccesKey=TOPSECRET", "unknown part 'SharedAccesKey'"},
        {"Endpoint=sb://n/;SharedAccessKeyName=k;SharedAccessKey=TOPSECRET;"
         "UseDevelopmentEmulator=yes",
         "UseDevelopmentEmulator must be true or false"},
        {"Endpoint=sb://n/;SharedAccessSignature=TOPSECRET", "must start with"},
        {"Endpoint=sb://n/;SharedAccessKeyName=k;SharedAccessKey=", "SharedAccessKey is empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sw_amqp_connstr cs;
        sw_err err;
        sw_err_clear(&err);
        bool ok = sw_amqp_connstr_parse(cases[i].in, &cs, &err);
        if (ok || strstr(err.msg, cases[i].expect) == NULL || strstr(err.msg, "TOPSECRET")) {
            fail_msg("case %zu: ok=%d msg='%s' expected '%s'", i, ok, err.msg, cases[i].expect);
        }
        assert_int_equal(err.code, SW_E_CONFIG);
    }
}

/* Vector computed with node's crypto + encodeURIComponent, as @azure/core-amqp signs. */
static void test_sas_known_vector(void **state)
{
    sw_err err;
    char *tok = sw_sas_sign("sb://myns.servicebus.windows.net/myhub/ConsumerGroups/$Default/"
                            "Partitions/0",
                            "RootManageSharedAccessKey", KEY, 1700000000, &err);
    assert_non_null(tok);
    assert_string_equal(
        tok, "SharedAccessSignature "
             "sr=sb%3A%2F%2Fmyns.servicebus.windows.net%2Fmyhub%2FConsumerGroups%2F%24Default%"
             "2FPartitions%2F0&sig=Wau08KrSUOTAXWYxGychVXoVXjkKczvDV7IsblA8YdA%3D&se=1700000000&"
             "skn=RootManageSharedAccessKey");
    free(tok);
}

static void test_sas_uri_encode(void **state)
{
    char out[64];
    assert_true(sw_sas_uri_encode("a-_.!~*'()b c/:?&=+$\xc3\xa9", out, sizeof out));
    assert_string_equal(out, "a-_.!~*'()b%20c%2F%3A%3F%26%3D%2B%24%C3%A9");
    assert_false(sw_sas_uri_encode("////", out, 8));
}

static void test_sas_providers(void **state)
{
    sw_token_provider p;
    sw_err err;
    assert_true(sw_sas_provider_init(&p, "k", "v", 10 * SW_US_PER_SEC, &err));
    assert_string_equal(p.type, SW_TOKEN_TYPE_SAS);
    char *tok = NULL;
    sw_time_us exp = 0;
    sw_time_us before = sw_time_now();
    assert_true(sw_token_provider_get(&p, "sb://h/x", &tok, &exp, &err));
    assert_true(exp >= before + 9 * SW_US_PER_SEC && exp <= before + 11 * SW_US_PER_SEC);
    assert_non_null(strstr(tok, "sr=sb%3A%2F%2Fh%2Fx&sig="));
    free(tok);
    sw_token_provider_destroy(&p);

    assert_true(sw_sas_static_provider_init(
        &p, "SharedAccessSignature sr=a&sig=b&se=1900000000&skn=c", &err));
    assert_true(sw_token_provider_get(&p, "anything", &tok, &exp, &err));
    assert_string_equal(tok, "SharedAccessSignature sr=a&sig=b&se=1900000000&skn=c");
    assert_true(exp == 1900000000LL * SW_US_PER_SEC);
    free(tok);
    sw_token_provider_destroy(&p);
    assert_false(sw_sas_static_provider_init(&p, "SharedAccessSignature sr=a&sig=b", &err));
    assert_non_null(strstr(err.msg, "se=<unix seconds>"));
}

static void test_positions(void **state)
{
    sw_amqp_position pos;
    sw_err err;
    assert_true(sw_amqp_position_parse("earliest", &pos, &err));
    assert_int_equal(pos.kind, SW_AMQP_START_EARLIEST);
    assert_true(sw_amqp_position_parse("latest", &pos, &err));
    assert_int_equal(pos.kind, SW_AMQP_START_LATEST);
    assert_true(sw_amqp_position_parse("2026-01-02T03:04:05Z", &pos, &err));
    assert_int_equal(pos.kind, SW_AMQP_START_ENQUEUED_AFTER);
    assert_true(pos.enqueued_time == 1767323045LL * SW_US_PER_SEC);
    assert_false(sw_amqp_position_parse("yesterday", &pos, &err));
    assert_non_null(strstr(err.msg, "start_position"));
    assert_true(sw_amqp_position_after(&pos, "4096", 7, &err));
    assert_string_equal(pos.offset, "4096");
    assert_false(sw_amqp_position_after(&pos, "1' OR '1", 7, &err));
}

/* Encodes a message the way a service would, with proton. */
static size_t encode_msg(pn_message_t *m, char *buf, size_t size)
{
    size_t n = size;
    assert_int_equal(pn_message_encode(m, buf, &n), 0);
    return n;
}

static void put_ann(pn_data_t *a, const char *k)
{
    pn_data_put_symbol(a, pn_bytes(strlen(k), k));
}

static void test_decode_annotations_and_data(void **state)
{
    pn_message_t *m = pn_message();
    pn_data_t *a = pn_message_annotations(m);
    pn_data_put_map(a);
    pn_data_enter(a);
    put_ann(a, "x-opt-sequence-number");
    pn_data_put_long(a, 123456789012LL);
    put_ann(a, "x-opt-offset");
    pn_data_put_string(a, pn_bytes(4, "8192"));
    put_ann(a, "x-opt-enqueued-time");
    pn_data_put_timestamp(a, 1700000000123LL);
    put_ann(a, "x-opt-partition-key");
    pn_data_put_string(a, pn_bytes(5, "img-1"));
    put_ann(a, "x-other");
    pn_data_put_list(a);
    pn_data_exit(a);
    pn_message_set_inferred(m, true);
    pn_data_put_binary(pn_message_body(m), pn_bytes(7, "{\"a\":1}"));
    char buf[1024];
    size_t n = encode_msg(m, buf, sizeof buf);
    sw_amqp_msg out;
    sw_buf scratch;
    sw_buf_init(&scratch, 1 << 20);
    sw_err err;
    assert_true(sw_amqp_msg_decode((unsigned char *)buf, n, &out, &scratch, &err));
    assert_true(out.has_sequence);
    assert_true(out.sequence == 123456789012LL);
    assert_int_equal(out.offset_len, 4);
    assert_memory_equal(out.offset, "8192", 4);
    assert_true(out.enqueued_ms == 1700000000123LL);
    assert_int_equal(out.partition_key_len, 5);
    assert_int_equal(out.body_kind, SW_AMQP_BODY_DATA);
    assert_int_equal(out.body_len, 7);
    assert_memory_equal(out.body, "{\"a\":1}", 7);
    /* every truncation fails cleanly */
    for (size_t cut = 0; cut < n; cut++) {
        sw_amqp_msg o2;
        bool ok = sw_amqp_msg_decode((unsigned char *)buf, cut, &o2, &scratch, &err);
        if (ok && cut != 0) {
            /* a cut at a section boundary is a valid shorter message */
            assert_true(o2.body_len <= 7);
        }
    }
    pn_message_free(m);
    sw_buf_free(&scratch);
}

static void test_decode_value_and_multi_data(void **state)
{
    pn_message_t *m = pn_message();
    pn_message_set_inferred(m, false);
    pn_data_put_string(pn_message_body(m), pn_bytes(5, "hello"));
    char buf[512];
    size_t n = encode_msg(m, buf, sizeof buf);
    sw_amqp_msg out;
    sw_buf scratch;
    sw_buf_init(&scratch, 1 << 20);
    sw_err err;
    assert_true(sw_amqp_msg_decode((unsigned char *)buf, n, &out, &scratch, &err));
    assert_int_equal(out.body_kind, SW_AMQP_BODY_STRING);
    assert_memory_equal(out.body, "hello", 5);
    assert_false(out.has_sequence);
    pn_message_free(m);

    /* two data sections, hand-encoded (proton keeps only the last one) */
    const unsigned char two[] = {0x00, 0x53, 0x75, 0xa0, 3, 'a', 'b', 'c',
                                 0x00, 0x53, 0x75, 0xa0, 2, 'd', 'e'};
    assert_true(sw_amqp_msg_decode(two, sizeof two, &out, &scratch, &err));
    assert_int_equal(out.body_len, 5);
    assert_memory_equal(out.body, "abcde", 5);
    const unsigned char bad[] = {0x00, 0x53, 0x75, 0xa0, 30, 'a'};
    assert_false(sw_amqp_msg_decode(bad, sizeof bad, &out, &scratch, &err));
    assert_int_equal(err.code, SW_E_PARSE);
    sw_buf_free(&scratch);
}

static void test_options_from_settings(void **state)
{
    sw_config *cfg = sw_config_new();
    assert_non_null(cfg);
    sw_amqp_options o;
    sw_amqp_position pos;
    sw_err err;
    assert_false(sw_amqp_options_from_config(cfg, &o, &pos, &err));
    assert_non_null(strstr(err.msg, "connection_string"));
    assert_true(sw_config_set(cfg, SW_CFG_CONNECTION_STRING,
                              "Endpoint=sb://n/;SharedAccessKeyName=k;SharedAccessKey=v",
                              SW_SRC_CODE, &err));
    assert_true(sw_config_set(cfg, SW_CFG_PREFETCH, "77", SW_SRC_CODE, &err));
    assert_true(sw_config_set(cfg, SW_CFG_OWNER_LEVEL, "5", SW_SRC_CODE, &err));
    assert_true(sw_config_set(cfg, SW_CFG_RECONNECT_BACKOFF_MIN, "250ms", SW_SRC_CODE, &err));
    assert_true(sw_config_set(cfg, SW_CFG_START_POSITION, "latest", SW_SRC_CODE, &err));
    assert_true(sw_config_set(cfg, SW_CFG_TLS, "on", SW_SRC_CODE, &err));
    assert_true(sw_amqp_options_from_config(cfg, &o, &pos, &err));
    assert_int_equal(o.prefetch, 77);
    assert_true(o.owner_level == 5);
    assert_true(o.backoff_min_us == 250000);
    assert_true(o.sas_token_lifetime_us == 3600 * SW_US_PER_SEC);
    assert_string_equal(o.consumer_group, "$Default");
    assert_int_equal(o.tls, SW_AMQP_TLS_ON);
    assert_int_equal(pos.kind, SW_AMQP_START_LATEST);
    assert_true(sw_config_set(cfg, SW_CFG_START_POSITION, "last tuesday", SW_SRC_CODE, &err));
    assert_false(sw_amqp_options_from_config(cfg, &o, &pos, &err));
    assert_non_null(strstr(err.msg, "start_position"));
    assert_true(sw_config_set(cfg, SW_CFG_START_POSITION, "earliest", SW_SRC_CODE, &err));
    assert_true(sw_config_set(cfg, SW_CFG_RECONNECT_BACKOFF_MAX, "100ms", SW_SRC_CODE, &err));
    assert_false(sw_amqp_options_from_config(cfg, &o, &pos, &err));
    assert_non_null(strstr(err.msg, "reconnect_backoff_max"));
    assert_false(sw_config_set(cfg, SW_CFG_PREFETCH, "0", SW_SRC_CODE, &err));
    sw_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connstr_sas_key),
        cmocka_unit_test(test_connstr_emulator_and_port),
        cmocka_unit_test(test_connstr_signature_and_entra),
        cmocka_unit_test(test_connstr_errors_never_echo_key),
        cmocka_unit_test(test_sas_known_vector),
        cmocka_unit_test(test_sas_uri_encode),
        cmocka_unit_test(test_sas_providers),
        cmocka_unit_test(test_positions),
        cmocka_unit_test(test_options_from_settings),
        cmocka_unit_test(test_decode_annotations_and_data),
        cmocka_unit_test(test_decode_value_and_multi_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
