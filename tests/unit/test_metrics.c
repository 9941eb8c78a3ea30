/* Metrics registry rendering and the HTTP endpoint on a loopback port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanwatch/metrics.h"

static void test_render(void **state)
{
    sw_metrics *m = sw_metrics_new();
    sw_metric *ev = sw_metrics_define(m, SW_METRIC_COUNTER, "scanwatch_events_total",
                                      "Events received.", NULL, 0);
    assert_ptr_equal(ev, sw_metrics_define(m, SW_METRIC_COUNTER, "scanwatch_events_total", "x",
                                           NULL, 0));
    assert_null(sw_metrics_define(m, SW_METRIC_GAUGE, "scanwatch_events_total", "x", NULL, 0));
    sw_metric_add(ev, "partition=\"0\",shape=\"mdvm\"", 2);
    sw_metric_add(ev, "partition=\"0\",shape=\"mdvm\"", 3);
    const double bounds[] = {0.1, 1};
    sw_metric *lat = sw_metrics_define(m, SW_METRIC_HISTOGRAM, "scanwatch_latency_seconds",
                                       "Latency.", bounds, 2);
    sw_metric_observe(lat, NULL, 0.05);
    sw_metric_observe(lat, NULL, 0.5);
    sw_metric_observe(lat, NULL, 5);
    assert_int_equal((int)sw_metric_value(ev, "partition=\"0\",shape=\"mdvm\""), 5);
    sw_buf b;
    sw_buf_init(&b, 0);
    assert_true(sw_metrics_render(m, &b));
    assert_non_null(strstr(b.data, "# TYPE scanwatch_events_total counter\n"
                                   "scanwatch_events_total{partition=\"0\",shape=\"mdvm\"} 5\n"));
    assert_non_null(strstr(b.data, "scanwatch_latency_seconds_bucket{le=\"0.1\"} 1\n"
                                   "scanwatch_latency_seconds_bucket{le=\"1\"} 2\n"
                                   "scanwatch_latency_seconds_bucket{le=\"+Inf\"} 3\n"
                                   "scanwatch_latency_seconds_sum 5.5499999999999998\n"
                                   "scanwatch_latency_seconds_count 3\n"));
    sw_buf_free(&b);
    sw_metrics_free(m);
}

static void test_children_bounded(void **state)
{
    sw_metrics *m = sw_metrics_new();
    sw_metric *c = sw_metrics_define(m, SW_METRIC_COUNTER, "c", "c", NULL, 0);
    for (int i = 0; i < SW_METRICS_MAX_CHILDREN + 100; i++) {
        char l[32];
        snprintf(l, sizeof l, "k=\"%d\"", i);
        sw_metric_add(c, l, 1);
    }
    assert_int_equal((int)sw_metric_value(c, "overflow=\"true\""), 100);
    char esc[32];
    sw_metrics_label_escape("a\"b\\c\n", esc, sizeof esc);
    assert_string_equal(esc, "a\\\"b\\\\c\\n");
    sw_metrics_free(m);
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    sw_buf_append(ud, p, size * n);
    return size * n;
}

static long get(int port, const char *path, sw_buf *body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    long code = 0;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_easy_cleanup(c);
    return code;
}

static bool not_ready(void *ctx, sw_buf *text)
{
    sw_buf_append_str(text, "waiting for partitions\n");
    return false;
}

static void test_http(void **state)
{
    sw_metrics *m = sw_metrics_new();
    sw_metric_add(sw_metrics_define(m, SW_METRIC_COUNTER, "x_total", "x", NULL, 0), NULL, 1);
    sw_err err;
    sw_http *h = sw_http_start("127.0.0.1", 0, m, NULL, not_ready, NULL, &err);
    assert_non_null(h);
    assert_true(sw_http_port(h) > 0);
    sw_buf b;
    sw_buf_init(&b, 0);
    assert_int_equal(get(sw_http_port(h), "/metrics", &b), 200);
    assert_non_null(strstr(b.data, "x_total 1\n"));
    sw_buf_reset(&b);
    assert_int_equal(get(sw_http_port(h), "/healthz", &b), 200);
    sw_buf_reset(&b);
    assert_int_equal(get(sw_http_port(h), "/readyz", &b), 503);
    assert_string_equal(b.data, "waiting for partitions\n");
    sw_buf_reset(&b);
    assert_int_equal(get(sw_http_port(h), "/nope", &b), 404);
    sw_buf_free(&b);
    sw_http_stop(h);
    assert_null(sw_http_start("not-an-ip", 0, m, NULL, NULL, NULL, &err));
    assert_int_equal(err.code, SW_E_CONFIG);
    sw_metrics_free(m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_children_bounded),
        cmocka_unit_test(test_http),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
