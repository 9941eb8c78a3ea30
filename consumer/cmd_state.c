/*
 * scanwatch state images|show IMAGE|checkpoints|outbox|dead-letter --state DIR [--json]
 *
 * Read-only inspection of the RocksDB state (opened read-only, so it works
 * while the service runs). Human-readable by default; --json prints one
 * JSON object per line (scripts). Exit status: 0, 1 on state errors, 2 usage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "scanwatch/buf.h"
#include "scanwatch/state.h"

typedef struct view {
    bool json;
    sw_buf line;
    uint64_t n;
} view;

/*
 * Human-readable output goes to a terminal, and image names, tags, finding
 * keys and dead-letter reasons come from events anyone who can send to the
 * hub controls: control characters (C0, DEL, C1) and bidirectional overrides
 * are shown escaped, so that they can neither drive the terminal nor fake or
 * reorder lines. --json output is JSON-escaped already.
 */
static void write_text(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f) {
            printf("\\x%02x", u[i]);
        } else if (u[i] == 0xc2 && i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f) {
            printf("\\u%04x", u[i + 1]);
            i++;
        } else if (u[i] == 0xe2 && i + 2 < n &&
                   ((u[i + 1] == 0x80 && u[i + 2] >= 0xaa && u[i + 2] <= 0xae) ||
                    (u[i + 1] == 0x81 && u[i + 2] >= 0xa6 && u[i + 2] <= 0xa9))) {
            printf("\\u%04x", 0x2000 + ((u[i + 1] & 0x3f) << 6) + (u[i + 2] & 0x3f));
            i += 2;
        } else {
            putchar(u[i]);
        }
    }
}

/* Writes the line built so far (escaped in text mode); no count. */
static void flush_line(view *v)
{
    if (v->json) {
        fwrite(v->line.data, 1, v->line.len, stdout);
    } else {
        write_text(v->line.data, v->line.len);
    }
    fputc('\n', stdout);
    sw_buf_reset(&v->line);
}

static void emit(view *v)
{
    flush_line(v);
    v->n++;
}

static void fmt_time(sw_time_us t, char *buf, size_t n)
{
    if (t == SW_TIME_UNSET) {
        snprintf(buf, n, "-");
    } else {
        sw_time_format(t, buf, n);
    }
}

static void json_time(sw_buf *b, const char *name, sw_time_us t)
{
    char ts[SW_TIME_BUF];
    sw_buf_printf(b, ",\"%s\":", name);
    if (t == SW_TIME_UNSET) {
        sw_buf_append_str(b, "null");
    } else {
        sw_time_format(t, ts, sizeof ts);
        sw_buf_printf(b, "\"%s\"", ts);
    }
}

static bool image_cb(void *ctx, const sw_state_image_info *i)
{
    view *v = ctx;
    sw_buf *b = &v->line;
    if (v->json) {
        sw_buf_append_str(b, "{\"image\":");
        sw_buf_append_json_cstr(b, i->image);
        json_time(b, "last_scan", i->last_scan);
        json_time(b, "last_apply", i->last_apply);
        sw_buf_printf(b, ",\"findings\":%" PRIu64 ",\"window_open\":%s,\"tags\":[", i->findings,
                      i->window_open ? "true" : "false");
        for (size_t t = 0; t < i->n_tags; t++) {
            if (t > 0) {
                sw_buf_append_char(b, ',');
            }
            sw_buf_append_json_cstr(b, i->tags[t]);
        }
        sw_buf_append_str(b, "]}");
    } else {
        char ts[SW_TIME_BUF];
        fmt_time(i->last_scan, ts, sizeof ts);
        sw_buf_printf(b, "%-28s %6" PRIu64 " %-6s %s", ts, i->findings,
                      i->window_open ? "open" : "-", i->image);
        for (size_t t = 0; t < i->n_tags; t++) {
            sw_buf_printf(b, "%s%s", t == 0 ? "  tags: " : ",", i->tags[t]);
        }
    }
    emit(v);
    return true;
}

static bool set_cb(void *ctx, const sw_state_set_entry *e)
{
    view *v = ctx;
    sw_buf *b = &v->line;
    if (v->json) {
        sw_buf_append_str(b, "{\"key\":");
        sw_buf_append_json_cstr(b, e->key);
        json_time(b, "first_seen", e->first_seen);
        json_time(b, "last_seen", e->last_seen);
        sw_buf_append_str(b, ",\"finding\":");
        if (e->finding_len > 0) {
            sw_buf_append(b, e->finding_json, e->finding_len);
        } else {
            sw_buf_append_str(b, "null");
        }
        sw_buf_append_char(b, '}');
    } else {
        char f[SW_TIME_BUF], l[SW_TIME_BUF];
        fmt_time(e->first_seen, f, sizeof f);
        fmt_time(e->last_seen, l, sizeof l);
        sw_buf_printf(b, "  %-40s first %s  last %s", e->key, f, l);
    }
    emit(v);
    return true;
}

static bool pending_cb(void *ctx, const sw_state_pending *p)
{
    view *v = ctx;
    sw_buf *b = &v->line;
    if (v->json) {
        sw_buf_append_str(b, "{\"pending\":");
        sw_buf_append_json_cstr(b, p->key);
        sw_buf_printf(b, ",\"status\":\"%s\",\"snapshot\":%s,\"clean_marker\":%s",
                      p->resolved ? "resolved" : "active", p->snapshot ? "true" : "false",
                      p->clean_marker ? "true" : "false");
        json_time(b, "scan_time", p->scan_time);
        sw_buf_append_char(b, '}');
    } else {
        char ts[SW_TIME_BUF];
        fmt_time(p->scan_time, ts, sizeof ts);
        sw_buf_printf(b, "  pending %-32s %-8s %s%s%s", p->clean_marker ? "(clean marker)" : p->key,
                      p->resolved ? "resolved" : "active", ts, p->snapshot ? " snapshot" : "", "");
    }
    emit(v);
    return true;
}

static bool cp_cb(void *ctx, const char *partition, const sw_state_checkpoint *cp)
{
    view *v = ctx;
    sw_buf *b = &v->line;
    if (v->json) {
        sw_buf_append_str(b, "{\"partition\":");
        sw_buf_append_json_cstr(b, partition);
        sw_buf_append_str(b, ",\"offset\":");
        sw_buf_append_json_cstr(b, cp->offset);
        sw_buf_printf(b, ",\"sequence\":%" PRId64, cp->sequence);
        json_time(b, "enqueued", cp->enqueued);
        json_time(b, "max_event_time", cp->max_event_time);
        sw_buf_append_char(b, '}');
    } else {
        char ts[SW_TIME_BUF];
        fmt_time(cp->enqueued, ts, sizeof ts);
        sw_buf_printf(b, "partition %-10s offset %-16s sequence %-10" PRId64 " enqueued %s",
                      partition, cp->offset, cp->sequence, ts);
    }
    emit(v);
    return true;
}

static bool outbox_cb(void *ctx, uint64_t seq, const char *json, size_t len)
{
    view *v = ctx;
    if (v->json) {
        sw_buf_printf(&v->line, "{\"seq\":%" PRIu64 ",\"record\":", seq);
        sw_buf_append(&v->line, json, len);
        sw_buf_append_char(&v->line, '}');
    } else {
        sw_buf_printf(&v->line, "%" PRIu64 " ", seq);
        sw_buf_append(&v->line, json, len);
    }
    emit(v);
    return true;
}

static bool dl_cb(void *ctx, const sw_state_dead_letter *d)
{
    view *v = ctx;
    sw_buf *b = &v->line;
    if (v->json) {
        sw_buf_printf(b, "{\"seq\":%" PRIu64, d->seq);
        json_time(b, "time", d->time);
        sw_buf_append_str(b, ",\"kind\":");
        sw_buf_append_json_cstr(b, d->kind);
        sw_buf_append_str(b, ",\"reason\":");
        sw_buf_append_json_cstr(b, d->reason);
        sw_buf_append_str(b, ",\"partition\":");
        sw_buf_append_json_cstr(b, d->partition);
        sw_buf_append_str(b, ",\"offset\":");
        sw_buf_append_json_cstr(b, d->offset);
        sw_buf_printf(b, ",\"size\":%zu,\"kept\":%zu,\"bytes\":", d->orig_len, d->len);
        sw_buf_append_json_str(b, d->bytes != NULL ? d->bytes : "", d->len);
        sw_buf_append_char(b, '}');
    } else {
        char ts[SW_TIME_BUF];
        fmt_time(d->time, ts, sizeof ts);
        size_t show = d->len < 120 ? d->len : 120;
        sw_buf_printf(b, "%" PRIu64 " %s %s partition %s offset %s (%zu bytes): %s", d->seq, ts,
                      d->kind, d->partition, d->offset, d->orig_len, d->reason);
        flush_line(v);
        sw_buf_append_str(b, "    ");
        sw_buf_append_json_str(b, d->bytes != NULL ? d->bytes : "", show);
        if (show < d->len) {
            sw_buf_append_str(b, "...");
        }
    }
    emit(v);
    return true;
}

static int usage(void)
{
    fprintf(stderr, "usage: scanwatch state images|show IMAGE|checkpoints|outbox|dead-letter "
                    "--state DIR [--json]\n");
    return SW_EXIT_USAGE;
}

static int show_image(sw_state *st, view *v, const char *image, sw_err *err)
{
    bool found = false;
    if (!sw_state_image_get(st, image, image_cb, v, &found, err)) {
        return SW_EXIT_FAIL;
    }
    if (!found) {
        fprintf(stderr, "scanwatch state: no state for image '%s'\n", image);
        return SW_EXIT_FAIL;
    }
    if (!v->json) {
        printf("finding set:\n");
    }
    if (!sw_state_set_iter(st, image, set_cb, v, err)) {
        return SW_EXIT_FAIL;
    }
    if (!v->json) {
        printf("open window:\n");
    }
    return sw_state_window_iter(st, image, pending_cb, v, err) ? SW_EXIT_OK : SW_EXIT_FAIL;
}

static int dispatch(sw_state *st, view *v, const char *what, const char *image)
{
    sw_err err;
    sw_err_clear(&err);
    bool ok = true;
    int rc = SW_EXIT_OK;
    if (strcmp(what, "images") == 0) {
        if (!v->json) {
            printf("%-28s %6s %-6s %s\n", "last scan", "finds", "window", "image");
        }
        ok = sw_state_images_iter(st, image_cb, v, &err);
    } else if (strcmp(what, "show") == 0) {
        rc = show_image(st, v, image, &err);
        ok = rc == SW_EXIT_OK || sw_err_ok(&err);
    } else if (strcmp(what, "checkpoints") == 0) {
        ok = sw_state_checkpoint_iter(st, cp_cb, v, &err);
    } else if (strcmp(what, "outbox") == 0) {
        ok = sw_state_outbox_iter(st, 0, outbox_cb, v, &err);
    } else {
        ok = sw_state_dead_letter_iter(st, dl_cb, v, &err);
    }
    if (!ok) {
        fprintf(stderr, "scanwatch state: %s\n", err.msg);
        return SW_EXIT_FAIL;
    }
    if (!v->json && strcmp(what, "show") != 0) {
        printf("(%" PRIu64 " %s)\n", v->n, strcmp(what, "images") == 0 ? "images" : "entries");
    }
    return rc;
}

int sw_cmd_state(sw_config *cfg, int argc, char **argv)
{
    view v = {0};
    const char *what = NULL, *image = NULL;
    for (int i = 1; i < argc; i++) {
        sw_err err;
        if (strcmp(argv[i], "--json") == 0) {
            v.json = true;
        } else if (strcmp(argv[i], "--state") == 0 || strncmp(argv[i], "--state=", 8) == 0) {
            const char *dir = argv[i][7] == '=' ? argv[i] + 8 : (i + 1 < argc ? argv[++i] : NULL);
            if (dir == NULL || !sw_config_set(cfg, SW_CFG_STATE_DIR, dir, SW_SRC_FLAG, &err)) {
                return usage();
            }
        } else if (what == NULL) {
            what = argv[i];
        } else if (image == NULL && strcmp(what, "show") == 0) {
            image = argv[i];
        } else {
            return usage();
        }
    }
    static const char *const whats[] = {"images", "show", "checkpoints", "outbox", "dead-letter"};
    bool known = false;
    for (size_t i = 0; what != NULL && i < sizeof whats / sizeof whats[0]; i++) {
        known = known || strcmp(what, whats[i]) == 0;
    }
    if (!known || (strcmp(what, "show") == 0) != (image != NULL)) {
        return usage();
    }
    sw_state_opts so;
    sw_state_opts_from_config(&so, cfg);
    so.read_only = true;
    sw_err err;
    sw_state *st = sw_state_open(&so, &err);
    if (st == NULL) {
        fprintf(stderr, "scanwatch state: %s\n", err.msg);
        return SW_EXIT_FAIL;
    }
    sw_buf_init(&v.line, 0);
    int rc = dispatch(st, &v, what, image);
    sw_buf_free(&v.line);
    sw_state_close(st);
    if (fflush(stdout) != 0) {
        rc = SW_EXIT_FAIL;
    }
    return rc;
}
