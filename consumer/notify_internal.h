/*
 * Internals of consumer/notify shared by its .c files and its unit tests:
 * routes and filters (notify_route.c), rendering of Graph sendMail requests
 * (notify_render.c), the Graph client (notify_graph.c) and sinks
 * (notify_sink.c). cJSON types stay inside consumer/.
 *
 * Ownership: each *_free releases what the matching constructor returned.
 * Thread safety: routes and render options are read-only after parsing and
 * may be shared; an sw_notify_sink / sw_graph is used by one thread at a time
 * except where noted.
 */
#ifndef SCANWATCH_NOTIFY_INTERNAL_H
#define SCANWATCH_NOTIFY_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scanwatch/buf.h"
#include "scanwatch/error.h"
#include "scanwatch/finding.h"
#include "scanwatch/token.h"

#define SW_NOTIFY_MAX_RECIPIENTS 500
#define SW_NOTIFY_MAX_SUBJECT 255
#define SW_NOTIFY_GRAPH_LIMIT (4 * 1024 * 1024)

/* ---- routes (notify_route.c) ------------------------------------------------ */

typedef struct sw_route {
    char *name;
    char *registry;   /* glob on the registry host; "*" = any */
    char *repository; /* glob on the repository path; "*" = any */
    sw_severity min_severity;
    bool fixable_only;
    bool is_default; /* gets diffs that matched no other route */
    bool include_resolved;
    char **to;
    size_t n_to;
    char **cc;
    size_t n_cc;
    char *subject_prefix; /* "" when none */
} sw_route;

typedef struct sw_routes {
    sw_route *v;
    size_t n;
} sw_routes;

/*
 * Parses the `routes` JSON (a list of route objects; "" = none) and, when it
 * is empty, builds the default route from mail_to (comma-separated; "" = no
 * route). Errors name the route (index and name) and the field.
 */
bool sw_notify_routes_parse(const char *json, const char *mail_to, sw_routes *out, sw_err *err);
void sw_notify_routes_free(sw_routes *r);

/* Whether the route's globs match the image. */
bool sw_route_matches_image(const sw_route *r, const char *registry, const char *repository);
/* Whether one normalized finding (JSON object) passes the route's filters. */
bool sw_route_passes(const sw_route *r, const cJSON *finding);

/*
 * For one diff record (parsed), the routes that get it: matched non-default
 * routes in order, or the default routes when none matched. Each element of
 * items_out (size routes->n) is NULL or a new "item": the diff record with
 * `new` reduced to the findings passing that route's filters, and NULL when
 * nothing is left. The caller cJSON_Deletes the items.
 */
bool sw_notify_route_diff(const sw_routes *routes, const cJSON *diff, cJSON **items_out,
                          sw_err *err);

/* Checks a diff record's shape (image, new[], resolved[]); error names the field. */
bool sw_notify_diff_check(const cJSON *diff, sw_err *err);

/* ---- rendering (notify_render.c) --------------------------------------------- */

typedef struct sw_render_opts {
    bool save_to_sent_items;
    size_t max_request; /* bytes of one sendMail request body */
    bool digest;
    sw_time_us now; /* printed in the mail footer */
} sw_render_opts;

typedef struct sw_mail_list {
    char **bodies; /* each one complete sendMail request JSON, NUL-terminated */
    size_t *lens;
    size_t n;
} sw_mail_list;

void sw_mail_list_free(sw_mail_list *l);

/*
 * Renders the mails for one route: items are per-image "items" (see
 * sw_notify_route_diff). per_image: one item -> normally one mail; digest:
 * all items -> one mail. Either is split into parts when one request would
 * exceed opts->max_request. No mail when there are no new findings.
 */
bool sw_notify_render(const sw_render_opts *opts, const sw_route *route, cJSON *const *items,
                      size_t n_items, sw_mail_list *out, sw_err *err);

/* HTML-escapes s (& < > " ') into b. */
bool sw_html_escape(sw_buf *b, const char *s);

/* ---- Graph client (notify_graph.c) ------------------------------------------ */

typedef struct sw_graph sw_graph;

typedef struct sw_graph_result {
    long status;            /* HTTP status; 0 when no response (see the sw_err) */
    char code[128];         /* Graph error.code, "" when none */
    char message[300];      /* Graph error.message (truncated) */
    int64_t retry_after_us; /* -1 when absent */
    char request_id[80];
    bool token_refreshed; /* a 401 made it fetch a new token and retry once */
} sw_graph_result;

/*
 * base_url: "https://graph.microsoft.com"; sender: the mailbox; tokens: a
 * provider (borrowed; must outlive the client and be thread-safe when several
 * clients share it).
 */
sw_graph *sw_graph_new(const char *base_url, const char *sender, sw_token_provider *tokens,
                       int64_t timeout_us, sw_err *err);
void sw_graph_free(sw_graph *g);
/* The token scope used: "<base_url>/.default". */
const char *sw_graph_scope(const sw_graph *g);

/*
 * POSTs one sendMail request. Returns true when Graph answered (any status,
 * in res); false when there was no answer (timeout, connection) or no token,
 * with err set (retriable when trying again may help). On 401 it drops the
 * cached token, fetches a new one and retries once.
 */
bool sw_graph_send(sw_graph *g, const char *body, size_t len, sw_graph_result *res, sw_err *err);

/* Fills res->code and res->message from a Graph error body
 * ({"error":{"code":..,"message":..}}; "" for what is missing or not JSON). */
void sw_graph_parse_error(const char *body, size_t len, sw_graph_result *res);

/* ---- sinks (notify_sink.c) --------------------------------------------------- */

typedef enum {
    SW_SINK_GRAPH,
    SW_SINK_DIR,
    SW_SINK_STDOUT,
} sw_sink_kind;

typedef struct sw_sink_spec {
    sw_sink_kind kind;
    char dir[4096];
} sw_sink_spec;

/* "graph" | "dir:<path>" | "stdout"; error names mail_sink. */
bool sw_sink_spec_parse(const char *s, sw_sink_spec *out, sw_err *err);

typedef enum {
    SW_SEND_OK,        /* accepted (202 / written) */
    SW_SEND_RETRY,     /* transient: 429/503/504/timeout/IO */
    SW_SEND_PERMANENT, /* dead letter: 400/403/404/413/... */
} sw_send_outcome;

typedef struct sw_send_result {
    sw_send_outcome outcome;
    long status;
    char code[128];
    char detail[400];
    int64_t retry_after_us; /* -1 when none */
} sw_send_result;

typedef struct sw_sink sw_sink;
/* A sink for one sender thread; for graph, shares tokens (thread-safe provider). */
sw_sink *sw_sink_new(const sw_sink_spec *spec, const char *graph_base_url, const char *sender,
                     sw_token_provider *tokens, int64_t timeout_us, sw_err *err);
void sw_sink_free(sw_sink *s);
/* Delivers one request body; never retries by itself except Graph's one 401 refresh. */
void sw_sink_send(sw_sink *s, const char *body, size_t len, sw_send_result *res);

/* Classifies a Graph answer: 2xx ok (never retried), 429/503/504/5xx retry, else permanent. */
sw_send_outcome sw_graph_classify(long status);

#endif
