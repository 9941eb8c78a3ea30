/* Unit tests of routes, filters, rendering, the digest split, sinks and small parsers. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "http_client.h"
#include "notify_internal.h"
#include "notify_test_util.h"
#include "state_test_util.h"

/* A diff record whose new findings have the given severities (index = finding number). */
static cJSON *make_diff(const char *registry, const char *repo, const sw_severity *sev, int n,
                        const char *title)
{
    sw_buf b;
    sw_buf_init(&b, 0);
    const char *digest = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    sw_buf_printf(&b, "{\"image\":\"%s/%s@%s\",\"tags\":[\"1.4\",\"latest\"],", registry, repo,
                  digest);
    sw_buf_append_str(&b, "\"scan_time\":\"2026-11-29T07:00:00.000000Z\",\"new\":[");
    for (int i = 0; i < n; i++) {
        if (i > 0) {
            sw_buf_append_char(&b, ',');
        }
        nt_finding_json(&b, registry, repo, digest, i, title, sev[i], i % 2 == 0);
    }
    sw_buf_append_str(&b, "],\"resolved\":[\"CVE-2020-0001:zlib\",\"CVE-2020-0002\"],"
                          "\"unchanged\":7,\"partition\":\"0\",\"first_offset\":\"10\","
                          "\"last_offset\":\"12\"}");
    cJSON *d = cJSON_Parse(b.data);
    sw_buf_free(&b);
    assert_non_null(d);
    return d;
}

static void expect_route_error(const char *json, const char *needle)
{
    sw_routes r;
    sw_err err;
    sw_err_clear(&err);
    assert_false(sw_notify_routes_parse(json, "", &r, &err));
    if (strstr(err.msg, needle) == NULL) {
        fail_msg("routes %s: error '%s' does not mention '%s'", json, err.msg, needle);
    }
    assert_int_equal(err.code, SW_E_CONFIG);
}

static void test_routes_parse_errors(void **state)
{
    (void)state;
    expect_route_error("{\"to\":\"a@b.c\"}", "list");
    expect_route_error("[{\"to\":\"a@b.c\",\"colour\":\"red\"}]", "unknown field 'colour'");
    expect_route_error("[{\"to\":\"not-an-address\"}]", "'not-an-address' is not an e-mail");
    expect_route_error("[{\"name\":\"x\"}]", "'to' needs at least one address");
    expect_route_error("[{\"to\":\"a@b.c\",\"min_severity\":\"severe\"}]", "min_severity");
    expect_route_error("[{\"to\":\"a@b.c\",\"fixable_only\":3}]", "fixable_only");
    expect_route_error("[{\"name\":\"a\",\"to\":\"a@b.c\"},{\"name\":\"a\",\"to\":\"a@b.c\"}]",
                       "two routes are named 'a'");
    expect_route_error("[{\"to\":[\"a@b.c\", 5]}]", "only strings");

    sw_buf many;
    sw_buf_init(&many, 0);
    sw_buf_append_str(&many, "[{\"to\":[");
    for (int i = 0; i < 501; i++) {
        sw_buf_printf(&many, "%s\"u%d@example.com\"", i ? "," : "", i);
    }
    sw_buf_append_str(&many, "]}]");
    expect_route_error(many.data, "501 recipients");
    sw_buf_free(&many);

    /* mail_to alone makes one default route; comma-separated. */
    sw_routes r;
    sw_err err;
    assert_true(sw_notify_routes_parse("", "a@example.com, b@example.com", &r, &err));
    assert_int_equal(r.n, 1);
    assert_true(r.v[0].is_default);
    assert_int_equal(r.v[0].n_to, 2);
    assert_string_equal(r.v[0].to[1], "b@example.com");
    sw_notify_routes_free(&r);
    assert_true(sw_notify_routes_parse("", "", &r, &err));
    assert_int_equal(r.n, 0);
}

static int new_count(const cJSON *item)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(item, "new"));
}

static void test_routes_match_and_filter(void **state)
{
    (void)state;
    const char *routes = "[{\"name\":\"team-a-high\",\"registry\":\"*.azurecr.io\","
                         "\"repository\":\"team-a/*\",\"min_severity\":\"High\","
                         "\"to\":[\"a@example.com\"],\"cc\":\"lead@example.com\"},"
                         "{\"name\":\"fixable\",\"repository\":\"team-*\",\"fixable_only\":true,"
                         "\"to\":\"ops@example.com\"},"
                         "{\"name\":\"critical-only\",\"min_severity\":\"Critical\","
                         "\"repository\":\"team-a/*\",\"to\":\"sec@example.com\"},"
                         "{\"name\":\"rest\",\"default\":true,\"to\":\"all@example.com\"}]";
    sw_routes r;
    sw_err err;
    assert_true(sw_notify_routes_parse(routes, "", &r, &err));
    assert_int_equal(r.n, 4);
    sw_severity sev[] = {SW_SEV_CRITICAL, SW_SEV_HIGH, SW_SEV_MEDIUM, SW_SEV_LOW, SW_SEV_HIGH};
    cJSON *items[4];

    /* Several routes match one diff; each gets only what passes its filters. */
    cJSON *d = make_diff("contoso.azurecr.io", "team-a/api", sev, 5, "t");
    assert_true(sw_notify_route_diff(&r, d, items, &err));
    assert_non_null(items[0]);
    assert_int_equal(new_count(items[0]), 3); /* Critical, High, High */
    assert_non_null(items[1]);
    assert_int_equal(new_count(items[1]), 3); /* even findings are fixable: 0, 2, 4 */
    assert_non_null(items[2]);
    assert_int_equal(new_count(items[2]), 1);
    assert_null(items[3]); /* the default route only gets unmatched diffs */
    for (int i = 0; i < 4; i++) {
        cJSON_Delete(items[i]);
    }
    cJSON_Delete(d);

    /* A route with nothing left sends nothing. */
    sw_severity low[] = {SW_SEV_LOW, SW_SEV_MEDIUM};
    d = make_diff("contoso.azurecr.io", "team-a/api", low, 2, "t");
    assert_true(sw_notify_route_diff(&r, d, items, &err));
    assert_null(items[0]);
    assert_null(items[2]);
    assert_non_null(items[1]);
    assert_null(items[3]);
    for (int i = 0; i < 4; i++) {
        cJSON_Delete(items[i]);
    }
    cJSON_Delete(d);

    /* No route matches: the default route gets it. Registry globs ignore case. */
    d = make_diff("docker.io", "library/nginx", sev, 5, "t");
    assert_true(sw_notify_route_diff(&r, d, items, &err));
    assert_null(items[0]);
    assert_null(items[1]);
    assert_non_null(items[3]);
    assert_int_equal(new_count(items[3]), 5);
    for (int i = 0; i < 4; i++) {
        cJSON_Delete(items[i]);
    }
    cJSON_Delete(d);
    assert_true(sw_route_matches_image(&r.v[0], "CONTOSO.azurecr.io", "team-a/x"));
    assert_false(sw_route_matches_image(&r.v[0], "contoso.azurecr.io", "team-b/x"));

    /* A malformed diff record is an error naming the field. */
    cJSON *bad = cJSON_Parse("{\"image\":\"x\",\"new\":5}");
    assert_false(sw_notify_route_diff(&r, bad, items, &err));
    assert_non_null(strstr(err.msg, "new must be a list"));
    cJSON_Delete(bad);
    sw_notify_routes_free(&r);
}

static cJSON *request_of(const sw_mail_list *ml, size_t i)
{
    cJSON *doc = cJSON_Parse(ml->bodies[i]);
    assert_non_null(doc);
    return doc;
}

static const char *header(const cJSON *req, const char *name)
{
    const cJSON *h;
    cJSON_ArrayForEach(
        h, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(req, "message"),
                                            "internetMessageHeaders"))
    {
        if (strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(h, "name")), name) == 0) {
            return cJSON_GetStringValue(cJSON_GetObjectItem(h, "value"));
        }
    }
    return NULL;
}

static void test_render_per_image(void **state)
{
    (void)state;
    sw_routes r;
    sw_err err;
    assert_true(sw_notify_routes_parse("[{\"name\":\"r\",\"to\":[\"a@example.com\"],\"cc\":"
                                       "[\"c@example.com\"],\"subject_prefix\":\"[prod]\"}]",
                                       "", &r, &err));
    sw_severity sev[] = {SW_SEV_HIGH, SW_SEV_CRITICAL, SW_SEV_HIGH, SW_SEV_LOW};
    cJSON *d = make_diff("contoso.azurecr.io", "shop/api", sev, 4,
                         "<script>alert(\"x\")</script> & 'quoted'");
    cJSON *items[1];
    assert_true(sw_notify_route_diff(&r, d, items, &err));
    sw_render_opts o = {.save_to_sent_items = false,
                        .max_request = 3670016,
                        .digest = false,
                        .now = 1795900000000000LL};
    sw_mail_list ml;
    assert_true(sw_notify_render(&o, &r.v[0], items, 1, &ml, &err));
    assert_int_equal(ml.n, 1);
    cJSON *req = request_of(&ml, 0);
    const cJSON *msg = cJSON_GetObjectItem(req, "message");
    const char *subject = cJSON_GetStringValue(cJSON_GetObjectItem(msg, "subject"));
    assert_string_equal(subject, "[prod] shop/api:1.4: 4 new vulnerabilities (1 Critical, 2 High, "
                                 "1 Low)");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(req, "saveToSentItems")));
    const cJSON *body = cJSON_GetObjectItem(msg, "body");
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(body, "contentType")), "HTML");
    const char *html = cJSON_GetStringValue(cJSON_GetObjectItem(body, "content"));
    /* Every value is HTML-escaped: the title's markup arrives as text. */
    assert_null(strstr(html, "<script>"));
    assert_non_null(
        strstr(html, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39;"));
    assert_non_null(strstr(html, "href=\"https://nvd.nist.gov/vuln/detail/CVE-2026-00001\""));
    assert_non_null(strstr(html, "sha256:001122334455")); /* short digest */
    assert_non_null(strstr(html, "2 findings resolved"));
    assert_non_null(strstr(html, "1.2.4")); /* fixed version */
    assert_non_null(strstr(html, "No fix yet"));
    /* Critical first. */
    assert_true(strstr(html, "CVE-2026-00001") < strstr(html, "CVE-2026-00000"));
    const cJSON *to = cJSON_GetObjectItem(msg, "toRecipients");
    assert_int_equal(cJSON_GetArraySize(to), 1);
    assert_string_equal(
        cJSON_GetStringValue(cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(to, 0), "emailAddress"), "address")),
        "a@example.com");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(msg, "ccRecipients")), 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(msg, "internetMessageHeaders")), 5);
    assert_string_equal(header(req, "x-scanwatch-image"),
                        "contoso.azurecr.io/shop/api@sha256:"
                        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    assert_string_equal(header(req, "x-scanwatch-severity"), "Critical");
    assert_string_equal(header(req, "x-scanwatch-new"), "4");
    assert_string_equal(header(req, "x-scanwatch-counts"),
                        "critical=1; high=2; medium=0; low=1; unknown=0");
    assert_string_equal(header(req, "x-scanwatch-resolved"), "2");
    cJSON_Delete(req);
    sw_mail_list_free(&ml);
    cJSON_Delete(items[0]);
    cJSON_Delete(d);
    sw_notify_routes_free(&r);
}

static void test_subject_limit_and_links(void **state)
{
    (void)state;
    sw_routes r;
    sw_err err;
    /* A prefix of multi-byte characters and a very long repository. */
    sw_buf routes;
    sw_buf_init(&routes, 0);
    sw_buf_append_str(&routes, "[{\"to\":\"a@example.com\",\"subject_prefix\":\"");
    for (int i = 0; i < 60; i++) {
        sw_buf_append_str(&routes, "\xc3\xa9"); /* é */
    }
    sw_buf_append_str(&routes, "\"}]");
    assert_true(sw_notify_routes_parse(routes.data, "", &r, &err));
    sw_buf_free(&routes);
    char repo[700];
    memset(repo, 'r', sizeof repo - 1);
    repo[sizeof repo - 1] = '\0';
    sw_severity sev[] = {SW_SEV_HIGH};
    cJSON *d = make_diff("contoso.azurecr.io", repo, sev, 1, "t");
    /* A link that is not http(s) is dropped; the CVE id gets the NVD link instead. */
    cJSON *f = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "new"), 0);
    cJSON_ReplaceItemInObject(f, "links", cJSON_Parse("[\"javascript:alert(1)\"]"));
    cJSON *items[1];
    assert_true(sw_notify_route_diff(&r, d, items, &err));
    sw_render_opts o = {.max_request = 3670016, .now = 0};
    sw_mail_list ml;
    assert_true(sw_notify_render(&o, &r.v[0], items, 1, &ml, &err));
    cJSON *req = request_of(&ml, 0);
    const char *subject =
        cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(req, "message"), "subject"));
    assert_true(strlen(subject) <= 255);
    /* Cut on a character boundary: the last byte is not the lead byte of é. */
    assert_true(strncmp(subject, "\xc3\xa9\xc3\xa9", 4) == 0);
    assert_true((unsigned char)subject[strlen(subject) - 1] != 0xc3);
    const char *html = cJSON_GetStringValue(cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(req, "message"), "body"), "content"));
    assert_null(strstr(html, "javascript:"));
    assert_non_null(strstr(html, "https://nvd.nist.gov/vuln/detail/CVE-2026-00000"));
    cJSON_Delete(req);
    sw_mail_list_free(&ml);
    cJSON_Delete(items[0]);
    cJSON_Delete(d);
    sw_notify_routes_free(&r);
}

static int count_str(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/* 2,000 findings with long titles: the digest must split, every part under 4 MB. */
static void test_digest_split_2000(void **state)
{
    (void)state;
    sw_routes r;
    sw_err err;
    assert_true(sw_notify_routes_parse("", "team@example.com", &r, &err));
    /* Titles are cut at 500 characters; quotes escape to 6 bytes each: ~4 KB per row. */
    char title[2600];
    memset(title, '"', sizeof title - 1);
    title[sizeof title - 1] = '\0';
    memcpy(title, "<b>long</b> ", 12);
    cJSON *items[10];
    sw_severity sev[200];
    for (int i = 0; i < 200; i++) {
        sev[i] = (sw_severity)(i % 5);
    }
    for (int im = 0; im < 10; im++) {
        char repo[64];
        snprintf(repo, sizeof repo, "team/app%d", im);
        cJSON *d = make_diff("contoso.azurecr.io", repo, sev, 200, title);
        cJSON *one[1];
        assert_true(sw_notify_route_diff(&r, d, one, &err));
        items[im] = one[0];
        cJSON_Delete(d);
    }
    sw_render_opts o = {.max_request = 3670016, .digest = true, .now = 0};
    sw_mail_list ml;
    assert_true(sw_notify_render(&o, &r.v[0], items, 10, &ml, &err));
    /* 2,000 rows of ~4 KB each do not fit one 4 MB request. */
    assert_true(ml.n >= 2);
    int rows = 0, hdr_total = 0;
    size_t total = 0;
    for (size_t i = 0; i < ml.n; i++) {
        if (ml.lens[i] > 3670016 || ml.lens[i] >= 4 * 1024 * 1024) {
            fail_msg("part %zu is %zu bytes", i, ml.lens[i]);
        }
        total += ml.lens[i];
        cJSON *req = request_of(&ml, i);
        const char *html = cJSON_GetStringValue(cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetObjectItem(req, "message"), "body"), "content"));
        int n = count_str(html, "nvd.nist.gov/vuln/detail/CVE-2026-");
        rows += n;
        int hn = (int)strtol(header(req, "x-scanwatch-new"), NULL, 10);
        hdr_total += hn;
        assert_int_equal(n, hn);
        const char *subject = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(req, "message"), "subject"));
        char suffix[32];
        snprintf(suffix, sizeof suffix, "[%zu/%zu]", i + 1, ml.n);
        assert_non_null(strstr(subject, suffix));
        assert_non_null(strstr(subject, "scanwatch digest:"));
        assert_null(strstr(html, "<b>long</b>"));
        cJSON_Delete(req);
    }
    assert_int_equal(rows, 2000);
    assert_int_equal(hdr_total, 2000);
    assert_true(total > 4 * 1024 * 1024);
    sw_mail_list_free(&ml);
    for (int i = 0; i < 10; i++) {
        cJSON_Delete(items[i]);
    }
    sw_notify_routes_free(&r);
}

static void test_parsers_and_classify(void **state)
{
    (void)state;
    assert_int_equal(sw_http_parse_retry_after("5", 0), 5 * SW_US_PER_SEC);
    assert_int_equal(sw_http_parse_retry_after("0", 0), 0);
    assert_int_equal(sw_http_parse_retry_after("", 0), -1);
    assert_int_equal(sw_http_parse_retry_after("soon", 0), -1);
    assert_int_equal(sw_http_parse_retry_after("-3", 0), -1);
    /* An HTTP date 10 s after "now". */
    sw_time_us at;
    assert_true(sw_time_parse("2026-11-29T08:00:00Z", 20, &at));
    assert_int_equal(
        sw_http_parse_retry_after("Sun, 29 Nov 2026 08:00:00 GMT", at - 10 * SW_US_PER_SEC),
        10 * SW_US_PER_SEC);
    assert_int_equal(sw_http_parse_retry_after("Sun, 29 Nov 2026 08:00:00 GMT", at + SW_US_PER_SEC),
                     0);

    sw_sink_spec s;
    sw_err err;
    assert_true(sw_sink_spec_parse("graph", &s, &err));
    assert_int_equal(s.kind, SW_SINK_GRAPH);
    assert_true(sw_sink_spec_parse("stdout", &s, &err));
    assert_int_equal(s.kind, SW_SINK_STDOUT);
    assert_true(sw_sink_spec_parse("dir:/tmp/x", &s, &err));
    assert_string_equal(s.dir, "/tmp/x");
    assert_false(sw_sink_spec_parse("smtp", &s, &err));
    assert_non_null(strstr(err.msg, "mail_sink"));
    assert_false(sw_sink_spec_parse("dir:", &s, &err));

    assert_int_equal(sw_graph_classify(202), SW_SEND_OK);
    assert_int_equal(sw_graph_classify(200), SW_SEND_OK);
    assert_int_equal(sw_graph_classify(429), SW_SEND_RETRY);
    assert_int_equal(sw_graph_classify(503), SW_SEND_RETRY);
    assert_int_equal(sw_graph_classify(504), SW_SEND_RETRY);
    assert_int_equal(sw_graph_classify(400), SW_SEND_PERMANENT);
    assert_int_equal(sw_graph_classify(403), SW_SEND_PERMANENT);
    assert_int_equal(sw_graph_classify(404), SW_SEND_PERMANENT);
    assert_int_equal(sw_graph_classify(413), SW_SEND_PERMANENT);

    sw_buf b;
    sw_buf_init(&b, 0);
    assert_true(sw_html_escape(&b, "<a href='x'>&\"</a>\x01"));
    assert_string_equal(b.data, "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt; ");
    sw_buf_free(&b);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* dir: one file per mail, the exact request JSON, names sortable by time. */
static void test_dir_sink(void **state)
{
    (void)state;
    char *dir = sw_test_tmpdir("notify-dir");
    char spec_s[4200];
    snprintf(spec_s, sizeof spec_s, "dir:%s/mail", dir);
    sw_sink_spec spec;
    sw_err err;
    assert_true(sw_sink_spec_parse(spec_s, &spec, &err));
    sw_sink *s = sw_sink_new(&spec, "", "", NULL, 0, &err);
    assert_non_null(s);
    const char *bodies[] = {"{\"message\":{\"subject\":\"1\"}}",
                            "{\"message\":{\"subject\":\"2\"}}",
                            "{\"message\":{\"subject\":\"3\"}}"};
    for (int i = 0; i < 3; i++) {
        sw_send_result r;
        sw_sink_send(s, bodies[i], strlen(bodies[i]), &r);
        assert_int_equal(r.outcome, SW_SEND_OK);
    }
    sw_sink_free(s);
    char path[4300];
    snprintf(path, sizeof path, "%s/mail", dir);
    DIR *dh = opendir(path);
    assert_non_null(dh);
    char *names[8];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        if (de->d_name[0] != '.') {
            assert_true(n < 8);
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(dh);
    assert_int_equal(n, 3);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    for (int i = 0; i < n; i++) {
        char fp[4600], content[256];
        snprintf(fp, sizeof fp, "%s/%s", path, names[i]);
        FILE *f = fopen(fp, "r");
        assert_non_null(f);
        size_t len = fread(content, 1, sizeof content - 1, f);
        fclose(f);
        content[len] = '\0';
        char want[256];
        snprintf(want, sizeof want, "%s\n", bodies[i]);
        assert_string_equal(content, want);
        assert_non_null(strstr(names[i], ".json"));
        free(names[i]);
    }
    sw_test_rmdir(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_parse_errors),
        cmocka_unit_test(test_routes_match_and_filter),
        cmocka_unit_test(test_render_per_image),
        cmocka_unit_test(test_subject_limit_and_links),
        cmocka_unit_test(test_digest_split_2000),
        cmocka_unit_test(test_parsers_and_classify),
        cmocka_unit_test(test_dir_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
