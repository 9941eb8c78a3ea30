/*
 * A small blocking HTTP client on libcurl, shared by the Entra token
 * providers and the Graph sender. No curl type leaves http_client.c.
 *
 * Every request has a deadline and a bounded response body. Transport
 * failures become an sw_err (SW_E_TIMEOUT or SW_E_HTTP, both retriable);
 * any HTTP status is a successful exchange and is returned in the response.
 *
 * Ownership: the caller owns an sw_http_client and frees it with
 * sw_http_client_free; strings in a request are borrowed for the call; the
 * response body is owned by the sw_http_resp (sw_http_resp_free).
 * Thread safety: one sw_http_client per thread (it holds a curl handle that
 * keeps connections alive); different clients may be used concurrently.
 */
#ifndef SCANWATCH_HTTP_CLIENT_H
#define SCANWATCH_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/buf.h"
#include "scanwatch/error.h"

typedef struct sw_http_client sw_http_client;

typedef struct sw_http_req {
    const char *method; /* "GET" or "POST" */
    const char *url;
    const char *const *headers; /* "Name: value" lines */
    size_t n_headers;
    const char *body; /* POST body (may be NULL with len 0) */
    size_t body_len;
    int64_t timeout_us;
    size_t max_response; /* bytes kept of the response body; 0 = 1 MiB */
    bool no_proxy;       /* IMDS must never go through a proxy */
} sw_http_req;

typedef struct sw_http_resp {
    long status;
    sw_buf body;
    int64_t retry_after_us; /* -1 when the response had no usable Retry-After */
    char request_id[80];    /* Graph's request-id header, "" when absent */
} sw_http_resp;

sw_http_client *sw_http_client_new(sw_err *err);
void sw_http_client_free(sw_http_client *c);

void sw_http_resp_init(sw_http_resp *r);
void sw_http_resp_free(sw_http_resp *r);

/* Performs one exchange. resp must be initialized; it is reset first. */
bool sw_http_do(sw_http_client *c, const sw_http_req *req, sw_http_resp *resp, sw_err *err);

/*
 * Checks that url may carry credentials: https, or plain http to a loopback
 * host (127.x.x.x, localhost, [::1]: local test servers). Anything else
 * would send a client secret or a bearer token in clear text, so it is
 * refused with SW_E_CONFIG naming `setting`.
 */
bool sw_http_url_check_secure(const char *setting, const char *url, sw_err *err);

/* Appends s percent-encoded for a URL query or form value (RFC 3986 unreserved kept). */
bool sw_http_append_urlencoded(sw_buf *b, const char *s);

/*
 * Parses a Retry-After value: delta seconds or an HTTP date (relative to
 * now_us). Returns -1 when absent or unparsable; never negative otherwise.
 */
int64_t sw_http_parse_retry_after(const char *v, int64_t now_us);

#endif
