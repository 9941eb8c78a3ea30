/* Mail sinks: Graph, a directory of request files, or stdout. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "notify_internal.h"
#include "scanwatch/swtime.h"

struct sw_sink {
    sw_sink_spec spec;
    sw_graph *graph;
};

bool sw_sink_spec_parse(const char *s, sw_sink_spec *out, sw_err *err)
{
    memset(out, 0, sizeof *out);
    if (strcmp(s, "graph") == 0) {
        out->kind = SW_SINK_GRAPH;
        return true;
    }
    if (strcmp(s, "stdout") == 0) {
        out->kind = SW_SINK_STDOUT;
        return true;
    }
    if (strncmp(s, "dir:", 4) == 0 && s[4] != '\0') {
        out->kind = SW_SINK_DIR;
        int n = snprintf(out->dir, sizeof out->dir, "%s", s + 4);
        if (n < 0 || (size_t)n >= sizeof out->dir) {
            return sw_err_set(err, SW_E_CONFIG, "setting mail_sink: directory path too long");
        }
        return true;
    }
    return sw_err_set(err, SW_E_CONFIG,
                      "setting mail_sink: '%.100s' is not one of graph, dir:<path>, stdout", s);
}

sw_sink *sw_sink_new(const sw_sink_spec *spec, const char *graph_base_url, const char *sender,
                     sw_token_provider *tokens, int64_t timeout_us, sw_err *err)
{
    sw_sink *s = calloc(1, sizeof *s);
    if (s == NULL) {
        sw_err_set(err, SW_E_NOMEM, "out of memory");
        return NULL;
    }
    s->spec = *spec;
    if (spec->kind == SW_SINK_GRAPH) {
        if (tokens == NULL) {
            free(s);
            sw_err_set(err, SW_E_CONFIG,
                       "mail_sink graph needs Entra ID credentials (auth_method and its settings)");
            return NULL;
        }
        s->graph = sw_graph_new(graph_base_url, sender, tokens, timeout_us, err);
        if (s->graph == NULL) {
            free(s);
            return NULL;
        }
    } else if (spec->kind == SW_SINK_DIR) {
        if (mkdir(spec->dir, 0700) != 0 && errno != EEXIST) {
            sw_err_set(err, SW_E_IO, "mail_sink dir:%s: %s", spec->dir, strerror(errno));
            free(s);
            return NULL;
        }
    }
    return s;
}

void sw_sink_free(sw_sink *s)
{
    if (s != NULL) {
        sw_graph_free(s->graph);
        free(s);
    }
}

/* Copies src into dst, cut to fit (details are for logs and the dead letter). */
static void copy_trunc(char *dst, size_t size, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;
    if (n >= size) {
        n = size - 1;
    }
    if (n > 0) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

static void set_result(sw_send_result *r, sw_send_outcome o, long status, const char *code,
                       const char *detail)
{
    r->outcome = o;
    r->status = status;
    copy_trunc(r->code, sizeof r->code, code);
    copy_trunc(r->detail, sizeof r->detail, detail);
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Names sort by time: 20261129T081500.123456Z-<pid>-<counter>.json. */
static void send_dir(sw_sink *s, const char *body, size_t len, sw_send_result *res)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static unsigned long long counter = 0;
    static sw_time_us last = 0;
    pthread_mutex_lock(&mu);
    sw_time_us now = sw_time_now();
    if (now <= last) {
        now = last + 1; /* strictly increasing names within this process */
    }
    last = now;
    unsigned long long c = ++counter;
    pthread_mutex_unlock(&mu);
    time_t secs = (time_t)(now / SW_US_PER_SEC);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char name[4300], tmp[4400];
    snprintf(name, sizeof name, "%s/%04d%02d%02dT%02d%02d%02d.%06lldZ-%d-%06llu.json", s->spec.dir,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long long)(now % SW_US_PER_SEC), (int)getpid(), c);
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    bool ok = fd >= 0 && write_all(fd, body, len) && write_all(fd, "\n", 1) && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) {
        close(fd);
    }
    /* rename: a reader never sees a half-written mail */
    ok = ok && rename(tmp, name) == 0;
    if (!ok) {
        char d[700];
        snprintf(d, sizeof d, "writing %.300s: %.80s", name, strerror(e ? e : errno));
        unlink(tmp);
        set_result(res, SW_SEND_RETRY, 0, "io", d);
        return;
    }
    set_result(res, SW_SEND_OK, 202, "", name);
}

void sw_sink_send(sw_sink *s, const char *body, size_t len, sw_send_result *res)
{
    memset(res, 0, sizeof *res);
    res->retry_after_us = -1;
    if (s->spec.kind == SW_SINK_STDOUT) {
        static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&mu);
        bool ok = fwrite(body, 1, len, stdout) == len && fputc('\n', stdout) != EOF &&
                  fflush(stdout) == 0;
        pthread_mutex_unlock(&mu);
        set_result(res, ok ? SW_SEND_OK : SW_SEND_RETRY, ok ? 202 : 0, ok ? "" : "io",
                   ok ? "stdout" : "writing to stdout failed");
        return;
    }
    if (s->spec.kind == SW_SINK_DIR) {
        send_dir(s, body, len, res);
        return;
    }
    sw_graph_result gr;
    sw_err err;
    sw_err_clear(&err);
    if (!sw_graph_send(s->graph, body, len, &gr, &err)) {
        /* No answer: a timeout may still have been accepted, but the outbox entry
         * stays until a 202, so retrying is the at-least-once choice. */
        set_result(res, SW_SEND_RETRY, 0,
                   err.code == SW_E_TIMEOUT ? "timeout"
                   : err.code == SW_E_AUTH  ? "token"
                                            : "transport",
                   err.msg);
        return;
    }
    char d[700];
    snprintf(d, sizeof d, "HTTP %ld%s%.100s%s%.200s%s, request-id %.80s", gr.status,
             gr.code[0] ? " " : "", gr.code, gr.message[0] ? ": " : "", gr.message,
             gr.token_refreshed ? " (after one token refresh)" : "",
             gr.request_id[0] ? gr.request_id : "-");
    set_result(res, sw_graph_classify(gr.status), gr.status, gr.code, d);
    res->retry_after_us = gr.retry_after_us;
}
