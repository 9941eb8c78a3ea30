#include "load.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scanwatch/swtime.h"

/* The timed prefix ("2026-11-29T12:48:40.1234567+00:00" and the TAB) fits in this. */
#define LOAD_PREFIX_MAX 64
/* Longest line accepted before the body limit is checked exactly. */
#define LOAD_LINE_MAX (EMU_MAX_MESSAGE_SIZE + LOAD_PREFIX_MAX + 2)
#define LOAD_CHUNK (4 * 1024 * 1024)

/* Reads lines with their exact file positions (bodies are re-read there later). */
typedef struct {
    int fd;
    char *buf;
    int64_t base; /* file position of buf[0] */
    size_t start, end;
    bool eof;
} line_reader;

typedef enum { LINE_OK, LINE_EOF, LINE_TOO_LONG, LINE_IO } line_status;

static line_status next_line(line_reader *r, const char **line, size_t *len, int64_t *pos)
{
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl != NULL || (r->eof && r->end > r->start)) {
            size_t stop = nl != NULL ? (size_t)(nl - r->buf) : r->end;
            *line = r->buf + r->start;
            *len = stop - r->start;
            *pos = r->base + (int64_t)r->start;
            r->start = nl != NULL ? stop + 1 : stop;
            return *len > LOAD_LINE_MAX ? LINE_TOO_LONG : LINE_OK;
        }
        if (r->eof) {
            return LINE_EOF;
        }
        if (r->end - r->start > LOAD_LINE_MAX) {
            return LINE_TOO_LONG;
        }
        /* Keep the partial line, refill behind it. */
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->base += (int64_t)r->start;
        r->end -= r->start;
        r->start = 0;
        ssize_t n = read(r->fd, r->buf + r->end, LOAD_CHUNK - r->end);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return LINE_IO;
        }
        if (n == 0) {
            r->eof = true;
        }
        r->end += (size_t)n;
    }
}

bool emu_load_format_parse(const char *s, emu_load_format *out)
{
    if (strcmp(s, "plain") == 0) {
        *out = EMU_LOAD_PLAIN;
        return true;
    }
    if (strcmp(s, "timed") == 0) {
        *out = EMU_LOAD_TIMED;
        return true;
    }
    return false;
}

/* Splits a timed line into its enqueued time (ms) and body. */
static bool split_timed(const char *line, size_t n, int64_t *enq_ms, size_t *body_at, sw_err *err)
{
    const char *tab = memchr(line, '\t', n < LOAD_PREFIX_MAX ? n : LOAD_PREFIX_MAX);
    if (tab == NULL) {
        return sw_err_set(err, SW_E_PARSE,
                          "expected <RFC 3339 enqueued time><TAB><body> (no TAB in the first "
                          "%d bytes)",
                          LOAD_PREFIX_MAX);
    }
    size_t tl = (size_t)(tab - line);
    sw_time_us us;
    if (!sw_time_parse(line, tl, &us) || us < 0) {
        return sw_err_set(err, SW_E_PARSE,
                          "bad enqueued time '%.*s' (expected RFC 3339 UTC, e.g. "
                          "2026-01-31T08:00:00.000Z)",
                          (int)tl, line);
    }
    if (tl + 1 == n) {
        return sw_err_set(err, SW_E_PARSE, "empty body after the enqueued time");
    }
    *enq_ms = us / 1000;
    *body_at = tl + 1;
    return true;
}

/* The hub and, with --load-partition, the one partition events go to. */
static bool load_target(emu_store *s, const emu_load_options *o, emu_hub **hub,
                        emu_partition **fixed, sw_err *err)
{
    *hub = o->hub != NULL ? emu_store_hub(s, o->hub, strlen(o->hub)) : emu_store_hub_at(s, 0);
    if (*hub == NULL) {
        return sw_err_set(err, SW_E_CONFIG, "--load-hub '%s': no such hub", o->hub);
    }
    *fixed = NULL;
    if (o->partition != NULL) {
        *fixed = emu_hub_partition(*hub, o->partition, strlen(o->partition));
        if (*fixed == NULL) {
            return sw_err_set(err, SW_E_CONFIG,
                              "--load-partition '%s': hub %s has partitions 0..%d", o->partition,
                              (*hub)->name, (*hub)->partition_count - 1);
        }
    }
    return true;
}

static int open_load_file(const char *path, sw_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sw_err_set(err, SW_E_IO, "--load '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        sw_err_set(err, SW_E_CONFIG,
                   "--load '%s': not a regular file (events are re-read from it when delivered)",
                   path);
        return -1;
    }
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    return fd;
}

/* Appends one line's event (lineno is for errors). */
static bool load_line(emu_store *s, const emu_load_options *o, emu_hub *h, emu_partition *fixed,
                      const char *line, size_t n, int64_t pos, sw_err *err)
{
    int64_t enq_ms = sw_time_now() / 1000;
    size_t body_at = 0;
    if (o->format == EMU_LOAD_TIMED && !split_timed(line, n, &enq_ms, &body_at, err)) {
        return false;
    }
    size_t body_len = n - body_at;
    if (body_len > EMU_MAX_MESSAGE_SIZE) {
        return sw_err_set(err, SW_E_TOO_LARGE, "longer than the %d byte event limit",
                          EMU_MAX_MESSAGE_SIZE);
    }
    size_t key_len = o->key != NULL ? strlen(o->key) : 0;
    emu_partition *p = fixed != NULL ? fixed : emu_hub_route(h, o->key, key_len);
    if (o->format == EMU_LOAD_TIMED && p->next_seq > 0 && enq_ms < p->last_enq_ms) {
        char t[SW_TIME_BUF], prev[SW_TIME_BUF];
        sw_time_format(enq_ms * 1000, t, sizeof t);
        sw_time_format(p->last_enq_ms * 1000, prev, sizeof prev);
        return sw_err_set(err, SW_E_PARSE,
                          "enqueued time %s is before %s of the previous event of partition %s "
                          "(times must not decrease within a partition)",
                          t, prev, p->id);
    }
    return emu_partition_append_file(s, p, pos + (int64_t)body_at, body_len, enq_ms, err);
}

bool emu_load_file(emu_store *s, const emu_load_options *o, long long *events, sw_err *err)
{
    emu_hub *h;
    emu_partition *fixed;
    *events = 0;
    if (!load_target(s, o, &h, &fixed, err)) {
        return false;
    }
    int fd = open_load_file(o->path, err);
    if (fd < 0) {
        return false;
    }
    size_t key_len = o->key != NULL ? strlen(o->key) : 0;
    if (!emu_store_set_file(s, fd, o->key, key_len, err)) {
        return false;
    }
    line_reader r = {.fd = fd, .buf = malloc(LOAD_CHUNK)};
    if (r.buf == NULL) {
        return sw_err_set(err, SW_E_NOMEM, "--load read buffer");
    }
    long long lineno = 0;
    bool ok = true;
    for (;;) {
        const char *line;
        size_t n;
        int64_t pos;
        line_status st = next_line(&r, &line, &n, &pos);
        if (st == LINE_EOF) {
            break;
        }
        lineno++;
        if (st == LINE_IO) {
            ok = sw_err_set(err, SW_E_IO, "--load '%s' line %lld: %s", o->path, lineno,
                            strerror(errno));
            break;
        }
        if (st == LINE_TOO_LONG) {
            ok = sw_err_set(err, SW_E_TOO_LARGE,
                            "--load '%s' line %lld: longer than the %d byte event limit", o->path,
                            lineno, EMU_MAX_MESSAGE_SIZE);
            break;
        }
        if (n > 0 && line[n - 1] == '\r') {
            n--;
        }
        if (n == 0) {
            continue;
        }
        if (!load_line(s, o, h, fixed, line, n, pos, err)) {
            sw_err_prefix(err, "--load '%s' line %lld", o->path, lineno);
            ok = false;
            break;
        }
        (*events)++;
    }
    free(r.buf);
    return ok;
}
