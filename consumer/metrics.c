#include "scanwatch/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 128
#define MAX_BOUNDS 32
#define OVERFLOW_LABELS "overflow=\"true\""

struct child {
    char *labels;
    double value; /* counter/gauge value, histogram sum */
    uint64_t count;
    uint64_t *buckets; /* histogram: cumulative counts are computed at render */
};

struct sw_metric {
    sw_metric_type type;
    char *name;
    char *help;
    double bounds[MAX_BOUNDS];
    int n_bounds;
    struct child *children;
    int n_children;
    int cap_children;
    pthread_mutex_t *lock; /* the registry's */
};

struct sw_metrics {
    pthread_mutex_t lock;
    sw_metric *families[MAX_FAMILIES];
    int n;
};

sw_metrics *sw_metrics_new(void)
{
    sw_metrics *m = calloc(1, sizeof *m);
    if (m != NULL) {
        pthread_mutex_init(&m->lock, NULL);
    }
    return m;
}

static void free_family(sw_metric *f)
{
    for (int i = 0; i < f->n_children; i++) {
        free(f->children[i].labels);
        free(f->children[i].buckets);
    }
    free(f->children);
    free(f->name);
    free(f->help);
    free(f);
}

void sw_metrics_free(sw_metrics *m)
{
    if (m == NULL) {
        return;
    }
    for (int i = 0; i < m->n; i++) {
        free_family(m->families[i]);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

sw_metric *sw_metrics_define(sw_metrics *m, sw_metric_type type, const char *name,
                             const char *help, const double *bounds, int n_bounds)
{
    if (n_bounds < 0 || n_bounds > MAX_BOUNDS) {
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    sw_metric *found = NULL;
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->families[i]->name, name) == 0) {
            found = m->families[i]->type == type ? m->families[i] : NULL;
            pthread_mutex_unlock(&m->lock);
            return found;
        }
    }
    sw_metric *f = NULL;
    if (m->n < MAX_FAMILIES) {
        f = calloc(1, sizeof *f);
    }
    if (f != NULL) {
        f->type = type;
        f->name = strdup(name);
        f->help = strdup(help);
        f->n_bounds = n_bounds;
        if (n_bounds > 0) {
            memcpy(f->bounds, bounds, (size_t)n_bounds * sizeof *bounds);
        }
        f->lock = &m->lock;
        if (f->name == NULL || f->help == NULL) {
            free_family(f);
            f = NULL;
        } else {
            m->families[m->n++] = f;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return f;
}

/* Finds or creates the child; called with the lock held. NULL on OOM. */
static struct child *child_for(sw_metric *f, const char *labels)
{
    if (labels == NULL) {
        labels = "";
    }
    for (int i = 0; i < f->n_children; i++) {
        if (strcmp(f->children[i].labels, labels) == 0) {
            return &f->children[i];
        }
    }
    if (f->n_children >= SW_METRICS_MAX_CHILDREN && strcmp(labels, OVERFLOW_LABELS) != 0) {
        return child_for(f, OVERFLOW_LABELS);
    }
    if (f->n_children == f->cap_children) {
        int cap = f->cap_children == 0 ? 8 : f->cap_children * 2;
        struct child *c = realloc(f->children, (size_t)cap * sizeof *c);
        if (c == NULL) {
            return NULL;
        }
        f->children = c;
        f->cap_children = cap;
    }
    struct child *c = &f->children[f->n_children];
    memset(c, 0, sizeof *c);
    c->labels = strdup(labels);
    if (f->type == SW_METRIC_HISTOGRAM) {
        c->buckets = calloc((size_t)f->n_bounds + 1, sizeof *c->buckets);
    }
    if (c->labels == NULL || (f->type == SW_METRIC_HISTOGRAM && c->buckets == NULL)) {
        free(c->labels);
        free(c->buckets);
        return NULL;
    }
    f->n_children++;
    return c;
}

void sw_metric_add(sw_metric *f, const char *labels, double v)
{
    if (f == NULL) {
        return;
    }
    pthread_mutex_lock(f->lock);
    struct child *c = child_for(f, labels);
    if (c != NULL) {
        c->value += v;
    }
    pthread_mutex_unlock(f->lock);
}

void sw_metric_set(sw_metric *f, const char *labels, double v)
{
    if (f == NULL) {
        return;
    }
    pthread_mutex_lock(f->lock);
    struct child *c = child_for(f, labels);
    if (c != NULL) {
        c->value = v;
    }
    pthread_mutex_unlock(f->lock);
}

void sw_metric_observe(sw_metric *f, const char *labels, double v)
{
    if (f == NULL || f->type != SW_METRIC_HISTOGRAM) {
        return;
    }
    pthread_mutex_lock(f->lock);
    struct child *c = child_for(f, labels);
    if (c != NULL) {
        int b = 0;
        while (b < f->n_bounds && v > f->bounds[b]) {
            b++;
        }
        c->buckets[b]++;
        c->count++;
        c->value += v;
    }
    pthread_mutex_unlock(f->lock);
}

double sw_metric_value(sw_metric *f, const char *labels)
{
    if (f == NULL) {
        return 0;
    }
    double v = 0;
    pthread_mutex_lock(f->lock);
    for (int i = 0; i < f->n_children; i++) {
        if (strcmp(f->children[i].labels, labels != NULL ? labels : "") == 0) {
            v = f->type == SW_METRIC_HISTOGRAM ? (double)f->children[i].count
                                                : f->children[i].value;
        }
    }
    pthread_mutex_unlock(f->lock);
    return v;
}

static void render_sample(sw_buf *out, const char *name, const char *suffix, const char *labels,
                          const char *extra, double v)
{
    bool has = labels[0] != '\0';
    bool has_extra = extra != NULL && extra[0] != '\0';
    sw_buf_printf(out, "%s%s", name, suffix);
    if (has || has_extra) {
        sw_buf_printf(out, "{%s%s%s}", labels, has && has_extra ? "," : "",
                      has_extra ? extra : "");
    }
    if (isinf(v)) {
        sw_buf_printf(out, " %s\n", v > 0 ? "+Inf" : "-Inf");
    } else {
        sw_buf_printf(out, " %.17g\n", v);
    }
}

static void render_family(sw_buf *out, const sw_metric *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    sw_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                  type_names[f->type]);
    for (int i = 0; i < f->n_children; i++) {
        const struct child *c = &f->children[i];
        if (f->type != SW_METRIC_HISTOGRAM) {
            render_sample(out, f->name, "", c->labels, NULL, c->value);
            continue;
        }
        uint64_t cum = 0;
        for (int b = 0; b <= f->n_bounds; b++) {
            char le[48];
            cum += c->buckets[b];
            if (b < f->n_bounds) {
                snprintf(le, sizeof le, "le=\"%g\"", f->bounds[b]);
            } else {
                snprintf(le, sizeof le, "le=\"+Inf\"");
            }
            render_sample(out, f->name, "_bucket", c->labels, le, (double)cum);
        }
        render_sample(out, f->name, "_sum", c->labels, NULL, c->value);
        render_sample(out, f->name, "_count", c->labels, NULL, (double)c->count);
    }
}

bool sw_metrics_render(sw_metrics *m, sw_buf *out)
{
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->n; i++) {
        render_family(out, m->families[i]);
    }
    pthread_mutex_unlock(&m->lock);
    return !out->failed;
}

void sw_metrics_label_escape(const char *value, char *buf, size_t size)
{
    size_t o = 0;
    for (const char *p = value; *p != '\0' && o + 3 < size; p++) {
        if (*p == '\\' || *p == '"') {
            buf[o++] = '\\';
            buf[o++] = *p;
        } else if (*p == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *p;
        }
    }
    if (size > 0) {
        buf[o < size ? o : size - 1] = '\0';
    }
}
