/* Microsoft Graph sendMail client (one per sender thread). */
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "notify_internal.h"
#include "scanwatch/entra.h"
#include "scanwatch/log.h"

struct sw_graph {
    char *url;
    char *scope;
    sw_token_provider *tokens;
    int64_t timeout_us;
    sw_http_client *http;
};

static char *trim_slash(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/') {
        n--;
    }
    return strndup(s, n);
}

sw_graph *sw_graph_new(const char *base_url, const char *sender, sw_token_provider *tokens,
                       int64_t timeout_us, sw_err *err)
{
    if (sender == NULL || sender[0] == '\0') {
        sw_err_set(err, SW_E_CONFIG, "mail_sender is not set (the mailbox that sends the mails)");
        return NULL;
    }
    if (!sw_http_url_check_secure("graph_base_url", base_url, err)) {
        return NULL;
    }
    sw_graph *g = calloc(1, sizeof *g);
    char *base = trim_slash(base_url);
    sw_buf url, scope;
    sw_buf_init(&url, 8192);
    sw_buf_init(&scope, 8192);
    if (g == NULL || base == NULL) {
        free(g);
        free(base);
        sw_err_set(err, SW_E_NOMEM, "out of memory");
        return NULL;
    }
    sw_buf_printf(&url, "%s/v1.0/users/", base);
    sw_http_append_urlencoded(&url, sender);
    sw_buf_append_str(&url, "/sendMail");
    sw_buf_printf(&scope, "%s/.default", base);
    free(base);
    g->url = sw_buf_detach(&url, NULL);
    g->scope = sw_buf_detach(&scope, NULL);
    g->tokens = tokens;
    g->timeout_us = timeout_us;
    g->http = sw_http_client_new(err);
    if (g->url == NULL || g->scope == NULL || g->http == NULL) {
        if (g->http != NULL) {
            sw_err_set(err, SW_E_NOMEM, "out of memory");
        }
        sw_graph_free(g);
        return NULL;
    }
    return g;
}

void sw_graph_free(sw_graph *g)
{
    if (g != NULL) {
        free(g->url);
        free(g->scope);
        sw_http_client_free(g->http);
        free(g);
    }
}

const char *sw_graph_scope(const sw_graph *g)
{
    return g->scope;
}

void sw_graph_parse_error(const char *body, size_t len, sw_graph_result *res)
{
    cJSON *doc = cJSON_ParseWithLength(body, len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "code"));
    const char *msg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "message"));
    snprintf(res->code, sizeof res->code, "%s", code ? code : "");
    snprintf(res->message, sizeof res->message, "%s", msg ? msg : "");
    cJSON_Delete(doc);
}

static bool attempt(sw_graph *g, const char *body, size_t len, sw_graph_result *res, sw_err *err)
{
    char *token = NULL;
    sw_time_us exp = 0;
    if (!sw_token_provider_get(g->tokens, g->scope, &token, &exp, err)) {
        sw_err_prefix(err, "token for %s", g->scope);
        return false;
    }
    unsigned char r[16];
    char crid[80] = "client-request-id: ";
    if (RAND_bytes(r, sizeof r) == 1) {
        size_t o = strlen(crid);
        snprintf(crid + o, sizeof crid - o,
                 "%02x%02x%02x%02x-%02x%02x-4%x%02x-%x%x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
                 r[2], r[3], r[4], r[5], r[6] & 15, r[7], 8 | (r[8] & 3), r[8] >> 4, r[9], r[10],
                 r[11], r[12], r[13], r[14], r[15]);
    }
    size_t alen = strlen(token) + 32;
    char *auth = malloc(alen);
    if (auth == NULL) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
        return sw_err_set(err, SW_E_NOMEM, "out of memory");
    }
    snprintf(auth, alen, "Authorization: Bearer %s", token);
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    const char *hdrs[] = {auth, "Content-Type: application/json", crid,
                          "return-client-request-id: true"};
    sw_http_req req = {.method = "POST",
                       .url = g->url,
                       .headers = hdrs,
                       .n_headers = 4,
                       .body = body,
                       .body_len = len,
                       .timeout_us = g->timeout_us,
                       .max_response = 64 * 1024};
    sw_http_resp resp;
    sw_http_resp_init(&resp);
    bool ok = sw_http_do(g->http, &req, &resp, err);
    OPENSSL_cleanse(auth, strlen(auth));
    free(auth);
    if (ok) {
        res->status = resp.status;
        res->retry_after_us = resp.retry_after_us;
        snprintf(res->request_id, sizeof res->request_id, "%s", resp.request_id);
        if (resp.status < 200 || resp.status > 299) {
            sw_graph_parse_error(resp.body.data, resp.body.len, res);
        }
    }
    sw_http_resp_free(&resp);
    return ok;
}

bool sw_graph_send(sw_graph *g, const char *body, size_t len, sw_graph_result *res, sw_err *err)
{
    memset(res, 0, sizeof *res);
    res->retry_after_us = -1;
    if (!attempt(g, body, len, res, err)) {
        return false;
    }
    if (res->status == 401) {
        /* An expired or revoked token: fetch a new one and try once more. */
        SW_LOG(SW_LOG_INFO, "graph answered 401; refreshing the token once",
               SW_LF_STR("graph_code", res->code));
        sw_entra_invalidate(g->tokens, g->scope);
        memset(res, 0, sizeof *res);
        res->retry_after_us = -1;
        res->token_refreshed = true;
        if (!attempt(g, body, len, res, err)) {
            return false;
        }
        res->token_refreshed = true;
    }
    return true;
}

sw_send_outcome sw_graph_classify(long status)
{
    if (status >= 200 && status <= 299) {
        return SW_SEND_OK; /* accepted; a 2xx is never retried, Retry-After or not */
    }
    if (status == 429 || status == 503 || status == 504 || status == 500 || status == 502 ||
        status == 408 || status == 401) {
        /* 401 after the one refresh: credentials trouble, not the mail's fault. */
        return SW_SEND_RETRY;
    }
    return SW_SEND_PERMANENT;
}
