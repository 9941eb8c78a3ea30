/* Unit tests of the project-wide pieces: errors, buffers, time, logging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scanwatch/buf.h"
#include "scanwatch/error.h"
#include "scanwatch/log.h"
#include "scanwatch/swtime.h"

static void test_error_table(void **state)
{
    sw_err err;
    sw_err_clear(&err);
    assert_true(sw_err_ok(&err));
    assert_false(sw_err_set(&err, SW_E_PARSE, "bad %s at %d", "token", 7));
    assert_int_equal(err.code, SW_E_PARSE);
    assert_false(err.retriable);
    assert_string_equal(err.msg, "bad token at 7");
    sw_err_prefix(&err, "partition %d", 3);
    assert_string_equal(err.msg, "partition 3: bad token at 7");
    assert_string_equal(sw_code_name(SW_E_TIMEOUT), "SW_E_TIMEOUT");
    assert_true(sw_code_retriable(SW_E_TIMEOUT));
    sw_err_set(&err, SW_E_IO, "disk");
    assert_true(err.retriable);
    sw_err_set_retriable(&err, SW_E_IO, false, "disk gone");
    assert_false(err.retriable);
    assert_false(sw_err_set(NULL, SW_E_IO, "ignored"));
}

static void test_buf_json_escape(void **state)
{
    sw_buf b;
    sw_buf_init(&b, 0);
    const char in[] = "a\"b\\c\n\x01<\xff\xc3\xa9";
    sw_buf_append_json_str(&b, in, sizeof in - 1);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\n\\u0001<\xEF\xBF\xBD\xc3\xa9\"");
    sw_buf_free(&b);
}

static void test_buf_bound(void **state)
{
    sw_buf b;
    sw_buf_init(&b, 8);
    assert_true(sw_buf_append_str(&b, "12345678"));
    assert_false(sw_buf_append_str(&b, "9"));
    assert_string_equal(b.data, "12345678");
    sw_err err;
    assert_false(sw_buf_check(&b, &err));
    assert_int_equal(err.code, SW_E_TOO_LARGE);
    sw_buf_reset(&b);
    assert_true(sw_buf_printf(&b, "%d", 42));
    assert_string_equal(b.data, "42");
    sw_buf_free(&b);
}

static void test_time_parse(void **state)
{
    sw_time_us t;
    assert_true(sw_time_parse("1970-01-01T00:00:00Z", 20, &t));
    assert_int_equal(t, 0);
    const char *s = "2023-08-20T13:15:34.5404476Z";
    assert_true(sw_time_parse(s, strlen(s), &t));
    char buf[SW_TIME_BUF];
    sw_time_format(t, buf, sizeof buf);
    assert_string_equal(buf, "2023-08-20T13:15:34.540447Z");
    s = "2023-08-20T15:15:34+02:00";
    sw_time_us t2;
    assert_true(sw_time_parse(s, strlen(s), &t2));
    assert_int_equal(t2, t - 540447);
    assert_false(sw_time_parse("2023-02-30T00:00:00Z", 20, &t));
    assert_false(sw_time_parse("2023-08-20", 10, &t));
    assert_false(sw_time_parse("2023-08-20T13:15:34Zjunk", 24, &t));
}

/* The hand-written formatter against gmtime_r + snprintf over 4 centuries, both signs of the epoch.
 */
static void test_time_format_matches_gmtime(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        /* 1900..2300 */
        int64_t secs = (int64_t)(x % (400ULL * 366 * 86400)) - 70LL * 365 * 86400;
        sw_time_us t = secs * SW_US_PER_SEC + (int64_t)(x >> 40) % SW_US_PER_SEC;
        if (i < 4) {
            t = (sw_time_us[]){0, -1, 951782400LL * SW_US_PER_SEC, 253402300799999999LL}[i];
        }
        int64_t s = t / SW_US_PER_SEC, us = t % SW_US_PER_SEC;
        if (us < 0) {
            us += SW_US_PER_SEC;
            s -= 1;
        }
        time_t tt = (time_t)s;
        struct tm tm;
        assert_non_null(gmtime_r(&tt, &tm));
        char want[64], got[SW_TIME_BUF];
        snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)us);
        sw_time_format(t, got, sizeof got);
        assert_string_equal(got, want);
        sw_time_us back;
        assert_true(sw_time_parse(got, strlen(got), &back));
        assert_int_equal(back, t);
    }
}

static void test_duration(void **state)
{
    int64_t us;
    assert_true(sw_duration_parse("300", &us));
    assert_int_equal(us, 300 * SW_US_PER_SEC);
    assert_true(sw_duration_parse("5m", &us));
    assert_int_equal(us, 300 * SW_US_PER_SEC);
    assert_true(sw_duration_parse("1500ms", &us));
    assert_int_equal(us, 1500000);
    assert_false(sw_duration_parse("-5s", &us));
    assert_false(sw_duration_parse("5 weeks", &us));
    assert_false(sw_duration_parse("99999999999999999999d", &us));
    char buf[32];
    sw_duration_format(300 * SW_US_PER_SEC, buf, sizeof buf);
    assert_string_equal(buf, "5m");
}

static void test_log_json_lines(void **state)
{
    char *out = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&out, &len);
    sw_log_set_sink(fp);
    sw_log_set_level(SW_LOG_INFO);
    SW_LOG(SW_LOG_DEBUG, "hidden", SW_LF_STR("k", "v"));
    SW_LOG(SW_LOG_WARN, "bad \"event\"", SW_LF_STR("reason", "x\ny"), SW_LF_INT("offset", -3),
           SW_LF_SECRET("key"));
    SW_LOG(SW_LOG_INFO, "no fields");
    sw_log_set_sink(NULL);
    fclose(fp);
    assert_non_null(strstr(out, "\"level\":\"warn\",\"msg\":\"bad \\\"event\\\"\",\"reason\":"
                                "\"x\\ny\",\"offset\":-3,\"key\":\"***\"}\n"));
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "\"msg\":\"no fields\"}\n"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_buf_json_escape),
        cmocka_unit_test(test_buf_bound),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_time_format_matches_gmtime),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_log_json_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
