#include "scanwatch/log.h"

#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "scanwatch/buf.h"
#include "scanwatch/swtime.h"

static _Atomic int current_level = SW_LOG_INFO;
static FILE *sink;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

bool sw_log_enabled(sw_log_level level)
{
    return (int)level >= atomic_load_explicit(&current_level, memory_order_relaxed) &&
           level < SW_LOG_OFF;
}

void sw_log_set_level(sw_log_level level)
{
    atomic_store(&current_level, (int)level);
}

sw_log_level sw_log_get_level(void)
{
    return (sw_log_level)atomic_load(&current_level);
}

bool sw_log_level_parse(const char *s, sw_log_level *out)
{
    for (int i = SW_LOG_DEBUG; i <= SW_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (sw_log_level)i;
            return true;
        }
    }
    return false;
}

void sw_log_set_sink(FILE *fp)
{
    sink = fp;
}

static void append_field(sw_buf *b, const sw_log_field *f)
{
    sw_buf_append_char(b, ',');
    sw_buf_append_json_cstr(b, f->key);
    sw_buf_append_char(b, ':');
    switch (f->type) {
    case SW_LF_STR_T:
        sw_buf_append_json_cstr(b, f->v.s);
        break;
    case SW_LF_INT_T:
        sw_buf_printf(b, "%lld", f->v.i);
        break;
    case SW_LF_UINT_T:
        sw_buf_printf(b, "%llu", f->v.u);
        break;
    case SW_LF_DBL_T:
        sw_buf_printf(b, "%.6g", f->v.d);
        break;
    case SW_LF_BOOL_T:
        sw_buf_append_str(b, f->v.b ? "true" : "false");
        break;
    case SW_LF_SECRET_T:
        sw_buf_append_str(b, "\"***\"");
        break;
    case SW_LF_NONE_T:
        sw_buf_append_str(b, "null");
        break;
    }
}

void sw_log_emit(sw_log_level level, const char *msg, const sw_log_field *fields, size_t n)
{
    char ts[SW_TIME_BUF];
    sw_time_format(sw_time_now(), ts, sizeof ts);
    sw_buf b;
    sw_buf_init(&b, 64 * 1024);
    sw_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
    sw_buf_append_json_cstr(&b, msg);
    for (size_t i = 0; i < n; i++) {
        if (fields[i].type != SW_LF_NONE_T) {
            append_field(&b, &fields[i]);
        }
    }
    if (b.failed) {
        sw_buf_reset(&b);
        sw_buf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"log line too long\"", ts,
                      level_names[level]);
    }
    sw_buf_append_str(&b, "}\n");
    if (sink != NULL) {
        fwrite(b.data, 1, b.len, sink);
        fflush(sink);
    } else {
        size_t off = 0;
        while (off < b.len) {
            ssize_t w = write(STDERR_FILENO, b.data + off, b.len - off);
            if (w <= 0) {
                break;
            }
            off += (size_t)w;
        }
    }
    sw_buf_free(&b);
}
