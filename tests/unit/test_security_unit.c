/* Unit tests of the security checks that need no peer: which URLs may carry
 * credentials (sw_http_url_check_secure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http_client.h"

static void expect_url(const char *url, bool ok)
{
    sw_err err;
    sw_err_clear(&err);
    bool got = sw_http_url_check_secure("graph_base_url", url, &err);
    if (got != ok) {
        fail_msg("%s: got %s, want %s (%s)", url, got ? "accepted" : "refused",
                 ok ? "accepted" : "refused", err.msg);
    }
    if (!ok && (err.code != SW_E_CONFIG || strstr(err.msg, "graph_base_url") == NULL)) {
        fail_msg("%s: the error must be SW_E_CONFIG naming the setting, got %s: %s", url,
                 sw_code_name(err.code), err.msg);
    }
}

static void test_https_always(void **unused)
{
    (void)unused;
    expect_url("https://graph.microsoft.com", true);
    expect_url("HTTPS://graph.microsoft.us/", true);
    expect_url("https://127.0.0.1:8443", true);
}

static void test_http_loopback_only(void **unused)
{
    (void)unused;
    expect_url("http://127.0.0.1:4000", true);
    expect_url("http://127.1.2.3/", true);
    expect_url("http://localhost:80/x", true);
    expect_url("http://LOCALHOST", true);
    expect_url("http://[::1]:8080/", true);
    expect_url("http://graph.microsoft.com", false);
    expect_url("http://10.0.0.1", false);
    expect_url("http://127.0.0.1.evil.example/", false);
    expect_url("http://localhost.evil.example", false);
    expect_url("http://127.0.0.1:80@evil.example/", false);
    expect_url("http://localhost@evil.example", false);
    expect_url("http://[::2]/", false);
    expect_url("ftp://127.0.0.1/", false);
    expect_url("graph.microsoft.com", false);
    expect_url("", false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https_always),
        cmocka_unit_test(test_http_loopback_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
