/* The metrics and health endpoint, on libmicrohttpd's own thread. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "scanwatch/metrics.h"

#define MAX_RESPONSE (16 * 1024 * 1024)

struct sw_http {
    struct MHD_Daemon *daemon;
    sw_metrics *metrics;
    sw_status_fn healthz;
    sw_status_fn readyz;
    void *ctx;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned int status,
                             const char *content_type, sw_buf *body)
{
    size_t len = 0;
    char *data = sw_buf_detach(body, &len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    sw_http *h = cls;
    sw_buf body;
    sw_buf_init(&body, MAX_RESPONSE);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        sw_buf_append_str(&body, "method not allowed\n");
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", &body);
    }
    if (strcmp(url, "/metrics") == 0) {
        sw_metrics_render(h->metrics, &body);
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &body);
    }
    sw_status_fn fn = NULL;
    if (strcmp(url, "/healthz") == 0) {
        fn = h->healthz;
    } else if (strcmp(url, "/readyz") == 0) {
        fn = h->readyz;
    } else {
        sw_buf_append_str(&body, "not found: try /metrics, /healthz or /readyz\n");
        return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", &body);
    }
    bool ok = true;
    if (fn != NULL) {
        ok = fn(h->ctx, &body);
    } else {
        sw_buf_append_str(&body, "ok\n");
    }
    return reply(conn, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", &body);
}

sw_http *sw_http_start(const char *bind_addr, int port, sw_metrics *m, sw_status_fn healthz,
                       sw_status_fn readyz, void *ctx, sw_err *err)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1) {
        sw_err_set(err, SW_E_CONFIG, "metrics endpoint: '%s' is not an IPv4 address", bind_addr);
        return NULL;
    }
    sw_http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
        return NULL;
    }
    h->metrics = m;
    h->healthz = healthz;
    h->readyz = readyz;
    h->ctx = ctx;
    h->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
                                 NULL, handle, h, MHD_OPTION_SOCK_ADDR, &addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10, MHD_OPTION_END);
    if (h->daemon == NULL) {
        sw_err_set(err, SW_E_IO, "metrics endpoint: cannot listen on %s:%d (in use?)", bind_addr,
                   port);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : port;
    return h;
}

int sw_http_port(const sw_http *h)
{
    return h->port;
}

void sw_http_stop(sw_http *h)
{
    if (h == NULL) {
        return;
    }
    MHD_stop_daemon(h->daemon);
    free(h);
}
