#include "http_client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scanwatch/swtime.h"

#define DEFAULT_MAX_RESPONSE (1024 * 1024)

struct sw_http_client {
    CURL *curl;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

sw_http_client *sw_http_client_new(sw_err *err)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        sw_err_set(err, SW_E_HTTP, "libcurl initialization failed: %s",
                   curl_easy_strerror(global_rc));
        return NULL;
    }
    sw_http_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
        return NULL;
    }
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        free(c);
        sw_err_set(err, SW_E_NOMEM, "curl_easy_init failed");
        return NULL;
    }
    return c;
}

void sw_http_client_free(sw_http_client *c)
{
    if (c != NULL) {
        curl_easy_cleanup(c->curl);
        free(c);
    }
}

void sw_http_resp_init(sw_http_resp *r)
{
    memset(r, 0, sizeof *r);
    sw_buf_init(&r->body, DEFAULT_MAX_RESPONSE);
    r->retry_after_us = -1;
}

void sw_http_resp_free(sw_http_resp *r)
{
    sw_buf_free(&r->body);
}

struct xfer {
    sw_http_resp *resp;
    size_t max;
    bool truncated;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    size_t room = x->max > x->resp->body.len ? x->max - x->resp->body.len : 0;
    size_t keep = len < room ? len : room;
    if (keep < len) {
        x->truncated = true; /* keep reading: an error body's head is enough */
    }
    if (keep > 0 && !sw_buf_append(&x->resp->body, p, keep)) {
        return 0;
    }
    return len;
}

static void trim_copy(char *dst, size_t dstsz, const char *v, size_t n)
{
    while (n > 0 && isspace((unsigned char)*v)) {
        v++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)v[n - 1])) {
        n--;
    }
    if (n >= dstsz) {
        n = dstsz - 1;
    }
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    const char *colon = memchr(p, ':', len);
    if (colon == NULL) {
        return len;
    }
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    if (nlen == 11 && strncasecmp(p, "retry-after", 11) == 0) {
        char tmp[128];
        trim_copy(tmp, sizeof tmp, v, vlen);
        x->resp->retry_after_us = sw_http_parse_retry_after(tmp, sw_time_now());
    } else if (nlen == 10 && strncasecmp(p, "request-id", 10) == 0) {
        trim_copy(x->resp->request_id, sizeof x->resp->request_id, v, vlen);
    }
    return len;
}

int64_t sw_http_parse_retry_after(const char *v, int64_t now_us)
{
    if (v == NULL || *v == '\0') {
        return -1;
    }
    if (isdigit((unsigned char)v[0])) {
        char *end = NULL;
        errno = 0;
        long long s = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || s < 0 || s > 86400LL * 365) {
            return -1;
        }
        return s * SW_US_PER_SEC;
    }
    time_t t = curl_getdate(v, NULL);
    if (t == (time_t)-1) {
        return -1;
    }
    int64_t d = (int64_t)t * SW_US_PER_SEC - now_us;
    return d > 0 ? d : 0;
}

bool sw_http_append_urlencoded(sw_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            sw_buf_append_char(b, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            sw_buf_append(b, e, 3);
        }
    }
    return !b->failed;
}

static bool loopback_host(const char *host, size_t n)
{
    if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
        (n == 5 && strncmp(host, "[::1]", 5) == 0)) {
        return true;
    }
    if (n < 4 || strncmp(host, "127.", 4) != 0) {
        return false;
    }
    for (size_t i = 4; i < n; i++) {
        if ((host[i] < '0' || host[i] > '9') && host[i] != '.') {
            return false;
        }
    }
    return true;
}

bool sw_http_url_check_secure(const char *setting, const char *url, sw_err *err)
{
    if (strncasecmp(url, "https://", 8) == 0) {
        return true;
    }
    if (strncasecmp(url, "http://", 7) == 0) {
        const char *host = url + 7;
        /* "http://127.0.0.1:80@example.com/" goes to example.com: no userinfo. */
        size_t authority = strcspn(host, "/?#");
        size_t n = host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":/?#@");
        if (memchr(host, '@', authority) == NULL && n <= authority && loopback_host(host, n)) {
            return true;
        }
    }
    return sw_err_set(err, SW_E_CONFIG,
                      "%s '%.200s' must be an https:// URL (plain http is allowed only to a "
                      "loopback host): credentials and tokens would travel in clear text",
                      setting, url);
}

bool sw_http_do(sw_http_client *c, const sw_http_req *req, sw_http_resp *resp, sw_err *err)
{
    CURL *h = c->curl;
    sw_buf_reset(&resp->body);
    resp->status = 0;
    resp->retry_after_us = -1;
    resp->request_id[0] = '\0';
    struct xfer x = {.resp = resp,
                     .max = req->max_response ? req->max_response : DEFAULT_MAX_RESPONSE};

    struct curl_slist *hdrs = NULL;
    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *n = curl_slist_append(hdrs, req->headers[i]);
        if (n == NULL) {
            curl_slist_free_all(hdrs);
            return sw_err_set(err, SW_E_NOMEM, "out of memory");
        }
        hdrs = n;
    }
    /* curl would otherwise add "Expect: 100-continue" to large POSTs and wait for it. */
    struct curl_slist *n = curl_slist_append(hdrs, "Expect:");
    if (n == NULL) {
        curl_slist_free_all(hdrs);
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    hdrs = n;

    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    long ms = (long)(req->timeout_us / 1000);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms > 0 ? ms : 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "scanwatch");
    if (req->no_proxy) {
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    }
    if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        return sw_err_set(err, SW_E_TIMEOUT, "%s %s: no response within %lld ms", req->method,
                          req->url, (long long)(req->timeout_us / 1000));
    }
    if (rc != CURLE_OK) {
        return sw_err_set(err, SW_E_HTTP, "%s %s: %s", req->method, req->url,
                          curl_easy_strerror(rc));
    }
    if (resp->body.failed) {
        return sw_err_set(err, SW_E_NOMEM, "out of memory reading the response");
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    return true;
}
