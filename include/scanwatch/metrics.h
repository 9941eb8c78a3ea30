/*
 * Prometheus metrics and the health endpoints.
 *
 * A registry holds named metric families (counter, gauge, histogram); each
 * family has children told apart by a preformatted label string such as
 * `partition="3",shape="mdvm"` (values escaped by the caller with
 * sw_metrics_label_escape when they come from input). Children are created on
 * first use, up to SW_METRICS_MAX_CHILDREN per family; past that, updates go
 * to one child labelled `overflow="true"` so a hostile input cannot grow
 * memory without bound.
 *
 * Thread safety: every function may be called from any thread.
 * Ownership: the registry owns its families; sw_metric pointers stay valid
 * until sw_metrics_free.
 */
#ifndef SCANWATCH_METRICS_H
#define SCANWATCH_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "scanwatch/buf.h"
#include "scanwatch/error.h"

#define SW_METRICS_MAX_CHILDREN 512

typedef enum {
    SW_METRIC_COUNTER,
    SW_METRIC_GAUGE,
    SW_METRIC_HISTOGRAM,
} sw_metric_type;

typedef struct sw_metrics sw_metrics;
typedef struct sw_metric sw_metric;

sw_metrics *sw_metrics_new(void);
void sw_metrics_free(sw_metrics *m);

/*
 * Defines (or returns the existing) family `name`. Histograms take the upper
 * bounds of their buckets (ascending, n_bounds <= 32); others pass NULL, 0.
 * Returns NULL on allocation failure or a name defined with another type.
 */
sw_metric *sw_metrics_define(sw_metrics *m, sw_metric_type type, const char *name,
                             const char *help, const double *bounds, int n_bounds);

/* labels may be NULL or "" for the unlabelled child. */
void sw_metric_add(sw_metric *f, const char *labels, double v);
void sw_metric_set(sw_metric *f, const char *labels, double v);
void sw_metric_observe(sw_metric *f, const char *labels, double v);
/* Current value of a counter/gauge child (0 if absent); for tests and status lines. */
double sw_metric_value(sw_metric *f, const char *labels);

/* Appends the whole registry in the Prometheus text exposition format 0.0.4. */
bool sw_metrics_render(sw_metrics *m, sw_buf *out);

/* Escapes a label value (backslash, quote, newline) into buf; truncates to size. */
void sw_metrics_label_escape(const char *value, char *buf, size_t size);

/*
 * The HTTP endpoint: GET /metrics, /healthz, /readyz on bind_addr:port
 * (port 0 picks a free port; sw_http_port tells which). The status callback
 * fills a short text and returns true for 200, false for 503; it is called on
 * the server's thread and must be thread-safe.
 */
typedef bool (*sw_status_fn)(void *ctx, sw_buf *text);
typedef struct sw_http sw_http;

sw_http *sw_http_start(const char *bind_addr, int port, sw_metrics *m, sw_status_fn healthz,
                       sw_status_fn readyz, void *ctx, sw_err *err);
int sw_http_port(const sw_http *h);
void sw_http_stop(sw_http *h);

#endif
