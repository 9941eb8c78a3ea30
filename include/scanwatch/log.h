/*
 * Structured logging: one JSON object per line on stderr (or a sink set by
 * sw_log_set_sink, for tests), e.g.
 *   {"ts":"2026-11-29T07:30:00.123Z","level":"warn","msg":"bad event","partition":"3","reason":"..."}
 *
 * Usage:
 *   SW_LOG(SW_LOG_WARN, "bad event", SW_LF_STR("partition", pid), SW_LF_INT("offset", off));
 * Fields are formatted only when the level is enabled. Values are JSON-escaped.
 * Never pass a secret as a field value; SW_LF_SECRET exists for the rare place
 * that must show that a secret was set: it prints "***".
 *
 * Thread safety: SW_LOG may be called from any thread; each line is written
 * with one write(2). sw_log_set_level / sw_log_set_sink are for start-up only.
 */
#ifndef SCANWATCH_LOG_H
#define SCANWATCH_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    SW_LOG_DEBUG = 0,
    SW_LOG_INFO = 1,
    SW_LOG_WARN = 2,
    SW_LOG_ERROR = 3,
    SW_LOG_OFF = 4,
} sw_log_level;

typedef enum {
    SW_LF_NONE_T,
    SW_LF_STR_T,
    SW_LF_INT_T,
    SW_LF_UINT_T,
    SW_LF_DBL_T,
    SW_LF_BOOL_T,
    SW_LF_SECRET_T,
} sw_log_field_type;

typedef struct {
    const char *key;
    sw_log_field_type type;
    union {
        const char *s;
        long long i;
        unsigned long long u;
        double d;
        bool b;
    } v;
} sw_log_field;

#define SW_LF_STR(k, val) ((sw_log_field){.key = (k), .type = SW_LF_STR_T, .v.s = (val)})
#define SW_LF_INT(k, val) ((sw_log_field){.key = (k), .type = SW_LF_INT_T, .v.i = (long long)(val)})
#define SW_LF_UINT(k, val)                                                                         \
    ((sw_log_field){.key = (k), .type = SW_LF_UINT_T, .v.u = (unsigned long long)(val)})
#define SW_LF_DBL(k, val) ((sw_log_field){.key = (k), .type = SW_LF_DBL_T, .v.d = (double)(val)})
#define SW_LF_BOOL(k, val) ((sw_log_field){.key = (k), .type = SW_LF_BOOL_T, .v.b = (bool)(val)})
#define SW_LF_SECRET(k) ((sw_log_field){.key = (k), .type = SW_LF_SECRET_T})

#define SW_LOG(level, msg, ...)                                                                    \
    do {                                                                                           \
        if (sw_log_enabled(level)) {                                                               \
            const sw_log_field sw_log_fields_[] = {{.type = SW_LF_NONE_T}, __VA_ARGS__};           \
            sw_log_emit((level), (msg), sw_log_fields_,                                            \
                        sizeof sw_log_fields_ / sizeof sw_log_fields_[0]);                         \
        }                                                                                          \
    } while (0)

/* Also logs err's code name and message as fields "code" and "error". */
#define SW_LOG_ERR(level_, text_, errp_, ...)                                                      \
    SW_LOG(level_, text_, SW_LF_STR("code", sw_code_name((errp_)->code)),                         \
           SW_LF_STR("error", (errp_)->msg), __VA_ARGS__)

bool sw_log_enabled(sw_log_level level);
void sw_log_set_level(sw_log_level level);
sw_log_level sw_log_get_level(void);
/* Parses "debug|info|warn|error|off"; returns false for anything else. */
bool sw_log_level_parse(const char *s, sw_log_level *out);
/* Redirects log lines to fp (not owned); NULL restores stderr. */
void sw_log_set_sink(FILE *fp);
void sw_log_emit(sw_log_level level, const char *msg, const sw_log_field *fields, size_t n);

#endif
